"""Child of the runtime benchmarks: import cdnn_runtime, load a .cdnn file, run batch 1 once.

usage: python cdnn_session.py FILE SHAPE_JSON THREADS; prints one JSON line: clock readings
(time.monotonic, comparable with the parent's), the phases' seconds, whether torch was
imported, the peak resident memory (VmHWM) and how many kernel signatures it compiled (not
found in the cache).
"""
import time

t_start = time.monotonic()
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from cdnn_runtime import InferenceSession  # noqa: E402
from cdnn_runtime.warmup import compiled_signatures  # noqa: E402

t1 = time.monotonic()
sess = InferenceSession(sys.argv[1], num_threads=int(sys.argv[3]))
t2 = time.monotonic()
x = np.random.default_rng(0).standard_normal([1] + json.loads(sys.argv[2])).astype(np.float32)
y = sess(x)
t3 = time.monotonic()
# VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork and exec
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(json.dumps({"t_start": t_start, "t_result": t3, "import_s": t1 - t_start,
                  "load_s": t2 - t1, "first_run_s": t3 - t2, "torch_loaded": "torch" in sys.modules,
                  "peak_rss_mb": int(hwm) / 1024, "compiled": compiled_signatures(),
                  "out0": float(y.ravel()[0])}))
