"""Child of the latency benchmark: import torch, load a reference net's state dict, run batch 1.

usage: python torch_model.py MODEL STATE_DICT SHAPE_JSON THREADS; prints one JSON line as
cdnn_session.py does. The model is built on the meta device and the state dict loaded
memory-mapped (assign=True), so its weights are held once.
"""
import time

t_start = time.monotonic()
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(sys.argv[4]))
from cdnn.models import MODELS  # noqa: E402

t1 = time.monotonic()
with torch.device("meta"):
    model = MODELS[sys.argv[1]]()
model.load_state_dict(torch.load(sys.argv[2], mmap=True, weights_only=True), assign=True)
model.eval()
t2 = time.monotonic()
x = np.random.default_rng(0).standard_normal([1] + json.loads(sys.argv[3])).astype(np.float32)
with torch.inference_mode():
    y = model(torch.from_numpy(x))
t3 = time.monotonic()
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(json.dumps({"t_start": t_start, "t_result": t3, "import_s": t1 - t_start,
                  "load_s": t2 - t1, "first_run_s": t3 - t2,
                  "peak_rss_mb": int(hwm) / 1024, "out0": float(y.ravel()[0])}))
