"""The command line through its entry points: success paths, failure paths, exit codes."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from cdnn import models

BIN = os.path.dirname(sys.executable)


def cdnn(*args, cwd=None):
    exe = os.path.join(BIN, "cdnn")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "cdnn.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def test_help_has_examples():
    r = cdnn("compress", "--help")
    assert r.returncode == 0 and "example" in r.stdout
    r = cdnn("run", "--help")
    assert r.returncode == 0 and "cdnn run model.cdnn" in r.stdout
    assert cdnn().returncode == 2  # no command: bad usage


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    out = d / "lenet.cdnn"
    r = cdnn("compress", "lenet-300-100", "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return d, out


def test_compress_inspect_run(lenet):
    d, out = lenet
    r = cdnn("inspect", out)
    assert r.returncode == 0 and "fc1.weight" in r.stdout and "sparse_codebook" in r.stdout
    rep = json.loads(cdnn("inspect", out, "--json").stdout)
    assert rep["file_bytes"] == out.stat().st_size and rep["ratio"] > 20
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    np.save(d / "x.npy", x)
    r = cdnn("run", out, "--input", d / "x.npy", "--output", d / "y.npy")
    assert r.returncode == 0, r.stderr
    assert np.load(d / "y.npy").shape == (4, 10)


def test_compress_refuses_to_overwrite(lenet):
    d, out = lenet
    before = out.read_bytes()
    r = cdnn("compress", "lenet-300-100", "-o", out, "--quiet", "--preset", "lossless-ish")
    assert r.returncode == 2 and "--force" in r.stderr
    assert out.read_bytes() == before
    r = cdnn("compress", "lenet-300-100", "-o", out, "--quiet", "--force", "--preset",
             "lossless-ish")
    assert r.returncode == 0 and out.read_bytes() != before


def test_bad_inputs_fail_clearly(lenet, tmp_path):
    d, out = lenet
    bad = tmp_path / "bad.cdnn"
    bad.write_bytes(out.read_bytes()[:-10])
    r = cdnn("inspect", bad)
    assert r.returncode == 1 and "truncated" in r.stderr
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3), np.float32))
    r = cdnn("run", out, "--input", tmp_path / "wrong.npy")
    assert r.returncode == 1 and "expected [N, 1, 28, 28]" in r.stderr
    r = cdnn("inspect", tmp_path / "missing.cdnn")
    assert r.returncode == 1 and "No such file" in r.stderr
    r = cdnn("compress", "no-such-model", "-o", tmp_path / "o.cdnn")
    assert r.returncode == 1 and "not a reference model" in r.stderr


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('CDNN_PWNED', '/tmp/cdnn-pwned')}",))


def test_checkpoint_and_export_inputs(tmp_path):
    model = models.seeded(models.lenet_5, 1)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    r = cdnn("compress", tmp_path / "ckpt.pt", "--model", "cdnn.models:lenet_5",
             "--input-shape", "1,1,28,28", "-o", tmp_path / "a.cdnn", "--quiet")
    assert r.returncode == 0, r.stderr
    r = cdnn("compress", tmp_path / "ckpt.pt", "-o", tmp_path / "b.cdnn")
    assert r.returncode == 1 and "--model" in r.stderr
    ep = torch.export.export(model.eval(), (torch.randn(2, 1, 28, 28),))
    torch.export.save(ep, tmp_path / "m.pt2")
    r = cdnn("compress", tmp_path / "m.pt2", "--input-shape", "2,1,28,28", "-o",
             tmp_path / "c.cdnn", "--quiet")
    assert r.returncode == 0, r.stderr
    # a pickle that would run code is refused, and the code never runs
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"fc1.weight": Payload()}, fh)
    env_marker = dict(os.environ, CDNN_PWNED=str(marker))
    exe = os.path.join(BIN, "cdnn")
    r = subprocess.run([exe, "compress", str(tmp_path / "evil.pt"), "--model",
                        "cdnn.models:lenet_5", "--input-shape", "1,1,28,28", "-o",
                        str(tmp_path / "d.cdnn")], capture_output=True, text=True,
                       env=env_marker)
    assert r.returncode == 1 and "weights-only" in r.stderr
    assert not marker.exists() and not (tmp_path / "d.cdnn").exists()
