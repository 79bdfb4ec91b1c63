"""Reliability: a writer killed mid-write never leaves a half file; huge batches fail cleanly."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cdnn_runtime import CdnnMemoryError
from cdnn_runtime.reader import read
from cdnn_runtime.session import InferenceSession
from cdnn_runtime.writer import Writer

WRITER = r"""
import sys, numpy as np
from cdnn_runtime.writer import Writer
target, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(n)
w = Writer(metadata={"extra": {"generation": n}})
w.add_raw("big", rng.standard_normal(4_000_000).astype(np.float32))  # 16 MB
w.save(target)
print("done", flush=True)
"""


def test_killed_writer_leaves_old_or_new_file(tmp_path):
    target = tmp_path / "model.cdnn"
    w = Writer(metadata={"extra": {"generation": -1}})
    w.add_raw("big", np.zeros(10, np.float32))
    w.save(target)
    generations = set()
    for n, delay in enumerate([0.3, 0.6, 0.9, 1.2, 1.5, 2.0, 3.0]):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(n)],
                             stdout=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        f = read(str(target))  # always a complete, valid file: the old one or the new one
        generations.add(f.metadata["extra"]["generation"])
    assert generations <= {-1, 0, 1, 2, 3, 4, 5, 6}
    print("generations seen:", sorted(generations))
    # leftovers are only temporaries beside the target, never the target half-written
    for name in os.listdir(tmp_path):
        assert name == "model.cdnn" or name.endswith(".tmp")


def test_huge_batch_is_a_clear_memory_error():
    w = Writer()
    w.add_sparse_codebook("fc.weight", (1 << 20, 1), np.arange((1 << 20) + 1) // 2,
                          np.zeros(1 << 19, np.int64), np.zeros(1 << 19, np.uint8), [1.0])
    w.set_graph({"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 1]}],
                 "nodes": [{"name": "fc", "op": "linear", "inputs": ["x"], "outputs": ["y"],
                            "params": {"weight": "fc.weight"}}],
                 "outputs": [{"name": "y"}]})
    sess = InferenceSession(w.to_bytes())
    assert sess(np.ones((2, 1), np.float32)).shape == (2, 1 << 20)
    with pytest.raises(CdnnMemoryError, match="not enough memory to run batch 100000"):
        sess(np.ones((100_000, 1), np.float32))  # 100,000 x 2^20 floats: 400 GB
