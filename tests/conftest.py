"""Every test process (and the processes the tests start) compiles the serial variant of a
kernel when a call asks for it, even with a cold cache: the serial kernels are then the ones the
serial tests run. tests/test_warmup.py checks the default, one variant per kernel in a cold
process, on its own."""

import os

os.environ["CDNN_COLD_ONE_VARIANT"] = "0"
