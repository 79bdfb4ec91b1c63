"""Reliability: a writer killed mid-write never leaves a half file; huge batches fail cleanly."""

import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cdnn_runtime import CdnnFormatError, CdnnMemoryError
from cdnn_runtime.constants import MAGIC
from cdnn_runtime.reader import read
from cdnn_runtime.session import InferenceSession
from cdnn_runtime.writer import Writer

WRITER = r"""
import os, sys, tempfile, time
import numpy as np
from cdnn_runtime.writer import Writer
target, generation, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "cut":
    # Stop the atomic save half-way through writing its temporary file: write half of the
    # bytes, say where and how much, and wait to be killed.
    made, real_mkstemp, real_fdopen = [], tempfile.mkstemp, os.fdopen

    def mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        made.append(path)
        return fd, path

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

        def write(self, data):
            half = len(data) // 2
            self.fh.write(data[:half])
            self.fh.flush()
            print("partial", made[-1], half, len(data), flush=True)
            time.sleep(600)

    tempfile.mkstemp = mkstemp
    os.fdopen = lambda fd, *args, **kwargs: HalfWriter(real_fdopen(fd, *args, **kwargs))
w = Writer(metadata={"extra": {"generation": generation}})
w.add_raw("big", np.random.default_rng(generation).standard_normal(250_000).astype(np.float32))
w.save(target)
print("done", flush=True)
"""


def _writer(target, generation, mode):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(generation), mode],
                            stdout=subprocess.PIPE, text=True)


def _old_file(target):
    w = Writer(metadata={"extra": {"generation": -1}})
    w.add_raw("big", np.zeros(10, np.float32))
    w.save(target)
    return target.read_bytes()


def _line(proc, timeout=120):
    """The child's next line of output (it may first spend a while importing)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"the writer said nothing in {timeout} s"
    return proc.stdout.readline().split()


def test_killed_writer_leaves_the_old_file(tmp_path):
    """A writer killed while its temporary file is half written leaves the target as it was;
    the temporary is there, beside it, and holds only part of the new file."""
    target = tmp_path / "model.cdnn"
    old = _old_file(target)
    proc = _writer(target, 0, "cut")
    try:
        said = _line(proc)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert said[0] == "partial", said
    tmp, written, total = Path(said[1]), int(said[2]), int(said[3])
    assert tmp.parent == tmp_path and tmp.name.startswith(".model.cdnn.")
    assert tmp.name.endswith(".tmp")
    assert 0 < written < total and tmp.stat().st_size == written
    head = tmp.read_bytes()
    assert head.startswith(MAGIC)
    with pytest.raises(CdnnFormatError, match="truncated"):
        read(head)
    assert target.read_bytes() == old
    assert read(target).metadata["extra"]["generation"] == -1
    assert sorted(os.listdir(tmp_path)) == sorted(["model.cdnn", tmp.name])


def test_finished_writer_replaces_the_file(tmp_path):
    target = tmp_path / "model.cdnn"
    _old_file(target)
    proc = _writer(target, 1, "whole")
    try:
        assert _line(proc) == ["done"]
    finally:
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0
    assert read(target).metadata["extra"]["generation"] == 1
    assert os.listdir(tmp_path) == ["model.cdnn"]  # no temporary left behind


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
