"""The command line: success paths, failure paths, exit codes.

Subprocesses (each pays for importing torch) check the entry points; the rest calls
`cdnn.cli.main` in this process, which runs the same code.
"""

import importlib.util
import io
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from cdnn import models
from cdnn.cli import main

BIN = os.path.dirname(sys.executable)


def cdnn(*args, cwd=None):
    exe = os.path.join(BIN, "cdnn")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "cdnn.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd)


def call(capsys, *args):
    """(exit code, stdout, stderr) of `cdnn ARGS` run in this process."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help (0) and bad usage (2)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_has_examples(capsys):
    r = cdnn("compress", "--help")
    assert r.returncode == 0 and "example" in r.stdout
    assert cdnn().returncode == 2  # no command: bad usage
    for command in ("demo", "compress", "inspect", "run", "verify", "bench"):
        code, out, _ = call(capsys, command, "--help")
        assert code == 0 and "example" in out and f"cdnn {command}" in out, command
    code, out, _ = call(capsys, "run", "--help")
    assert "cdnn run model.cdnn" in out
    code, _, err = call(capsys, "bench", "model.cdnn", "--batch", "1,0")
    assert code == 2 and "positive" in err
    code, _, err = call(capsys, "verify", "model.cdnn")
    assert code == 2 and "--against" in err


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    out = d / "lenet.cdnn"
    r = cdnn("compress", "lenet-300-100", "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "prune" not in r.stderr and r.stdout == ""
    return d, out


def test_compress_inspect_run(lenet):
    d, out = lenet
    r = cdnn("inspect", out)
    assert r.returncode == 0 and "fc1.weight" in r.stdout and "sparse_codebook" in r.stdout
    assert "bits per nonzero" in r.stdout and "entropy" in r.stdout
    assert [ln.split()[:2] for ln in r.stdout.splitlines() if ln.startswith("fc")][:3] == \
        [["fc1", "linear"], ["fc2", "linear"], ["fc3", "linear"]]
    rep = json.loads(cdnn("inspect", out, "--json").stdout)
    assert rep["file_bytes"] == out.stat().st_size and rep["ratio"] > 20
    assert rep["tensors"][0]["streams"]["codes"]["bytes"] > 0  # the keys of before still there
    layers = {r["layer"]: r for r in rep["layers"]}
    assert sorted(layers) == ["fc1", "fc2", "fc3"]
    fc1 = layers["fc1"]
    assert fc1["op"] == "linear" and fc1["tensor"] == "fc1.weight" and fc1["shape"] == [300, 784]
    assert fc1["bytes"]["bias"] == 4 * 300 and fc1["bytes"]["codebook"] == 4 * fc1["codebook_size"]
    for k in ("codes", "gaps"):  # no code of the decoded symbols beats their order-0 entropy
        assert 0 < fc1["entropy_bits_per_nnz"][k] <= fc1["bits_per_nnz"][k] + 1e-9
    assert fc1["entropy_bits_per_nnz"]["codes"] <= np.log2(fc1["codebook_size"]) + 1e-9
    t = rep["totals"]
    parts = ("codes", "gaps", "row_counts", "codebook", "bias", "other")
    assert sum(t[k] for k in parts) == rep["file_bytes"] and t["header"] > 0
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
    r = cdnn("compress", "lenet-300-100", "-o", out, "--force", "--preset", "lossless-ish")
    assert r.returncode == 0 and out.read_bytes() != before
    # progress on stderr: plain lines when stderr is not a terminal, one per stage and layer
    lines = r.stderr.splitlines()
    for stage in ("capture", "encode"):
        assert any(stage in ln for ln in lines), r.stderr
    for stage in ("prune", "share"):
        assert [ln.split()[-1] for ln in lines if f"] {stage}" in ln] == ["fc1", "fc2", "fc3"]
    assert "wrote" in r.stdout and "ratio" in r.stdout


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


def test_bad_inputs_of_verify_bench_and_plot(lenet, tmp_path, capsys, monkeypatch):
    d, out = lenet
    bad = tmp_path / "bad.cdnn"
    bad.write_bytes(out.read_bytes()[:-10])
    for command in (["verify", bad, "--against", "lenet-300-100"], ["bench", bad]):
        code, _, err = call(capsys, *command)
        assert code == 1 and "truncated" in err, command
    code, _, err = call(capsys, "verify", out, "--against", "no-such-model")
    assert code == 1 and "not a reference model" in err
    code, _, err = call(capsys, "verify", out, "--against", "lenet-5")  # another architecture
    assert code == 1 and "compressed from" in err
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3), np.float32))
    code, _, err = call(capsys, "verify", out, "--against", "lenet-300-100", "--inputs",
                        tmp_path / "wrong.npy")
    assert code == 1 and "expected [N, 1, 28, 28]" in err
    (tmp_path / "text.npy").write_text("not an array")
    code, _, err = call(capsys, "verify", out, "--against", "lenet-300-100", "--inputs",
                        tmp_path / "text.npy")
    assert code == 1 and "numpy.save" in err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, out_text, err = call(capsys, "inspect", out, "--plot", tmp_path / "p.png")
    assert code == 1 and "pip install 'cdnn[plot]'" in err and out_text == ""
    assert not (tmp_path / "p.png").exists()


def test_verify(lenet, capsys):
    d, out = lenet
    code, text, _ = call(capsys, "verify", out, "--against", "lenet-300-100")
    assert code == 0, text
    assert "vs decompressed reference" in text and "vs dense original" in text
    assert "OK" in text and "match the file's source_sha256" in text
    x = np.random.default_rng(1).standard_normal((5, 1, 28, 28)).astype(np.float32)
    np.save(d / "x5.npy", x)
    code, text, _ = call(capsys, "verify", out, "--against", "lenet-300-100", "--inputs",
                         d / "x5.npy", "--json")
    res = json.loads(text)
    assert code == 0 and res["ok"] and res["inputs"]["shapes"] == [[5, 1, 28, 28]]
    assert res["weights_replaced"] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                      "fc3.weight", "fc3.bias"]
    o = res["outputs"][0]
    assert o["shape"] == [5, 10] and o["vs_reference"]["max_abs"] <= o["allowed"]
    assert o["vs_reference"]["top1"] == {"agree": 5, "of": 5, "fraction": 1.0}
    assert o["vs_dense"]["max_abs"] > o["vs_reference"]["max_abs"]  # pruning changed it
    # the same file against other weights (seed 1): the decoded weights with seed-1 biases
    code, text, err = call(capsys, "verify", out, "--against", "lenet-300-100", "--seed", "1")
    assert code == 1 and "FAIL" in text and "source_sha256" in err


def test_verify_folds_batchnorm_like_compress(tmp_path, capsys):
    from cdnn.compress import compress
    from test_compress import Small, trained_bn
    model = trained_bn(models.seeded(Small, 3)).eval()
    torch.save(model.state_dict(), tmp_path / "bn.pt")
    compress(model, torch.randn(2, 1, 8, 8)).save(tmp_path / "bn.cdnn")
    code, text, err = call(capsys, "verify", tmp_path / "bn.cdnn", "--against",
                           tmp_path / "bn.pt", "--model", "test_compress:Small", "--json")
    res = json.loads(text)
    assert code == 0 and res["ok"], err
    assert res["batchnorm_folded"] == 1 and res["source_sha256_match"] is True


class BnAndInstanceNorm(torch.nn.Module):
    """A BatchNorm that folds into its conv, and an InstanceNorm with running statistics,
    which the file keeps as a batch_norm node."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.inorm = torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True)

    def forward(self, x):
        return self.inorm(torch.relu(self.bn(self.conv(x))))


def test_verify_folds_batchnorm_beside_an_instance_norm(tmp_path, capsys):
    from cdnn.compress import compress
    from test_compress import trained_bn
    model = trained_bn(models.seeded(BnAndInstanceNorm, 5)).eval()
    with torch.no_grad():
        model.inorm.running_mean.uniform_(-1, 1)
        model.inorm.running_var.uniform_(0.5, 2)
    torch.save(model.state_dict(), tmp_path / "in.pt")
    compress(model, torch.randn(1, 1, 8, 8), preset="lossless-ish").save(tmp_path / "in.cdnn")
    code, text, err = call(capsys, "verify", tmp_path / "in.cdnn", "--against",
                           tmp_path / "in.pt", "--model", "test_cli:BnAndInstanceNorm",
                           "--input-shape", "1,1,8,8", "--json")
    res = json.loads(text)
    assert code == 0 and res["ok"], (err, res["outputs"][0])
    assert res["batchnorm_folded"] == 1


def test_verify_uses_retrained_biases(tmp_path, capsys):
    from cdnn.compress import compress
    model = models.seeded(models.lenet_300_100, 4).eval()
    torch.save(model.state_dict(), tmp_path / "src.pt")

    def train(m):  # retraining moves the biases too
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.endswith("bias"):
                    p.add_(0.5)

    compress(model, torch.randn(2, 1, 28, 28), train=train,
             prune_steps=1).save(tmp_path / "r.cdnn")
    code, text, err = call(capsys, "verify", tmp_path / "r.cdnn", "--against",
                           tmp_path / "src.pt", "--model", "cdnn.models:lenet_300_100",
                           "--input-shape", "1,1,28,28", "--json")
    res = json.loads(text)
    assert code == 0 and res["ok"], err
    assert "fc1.bias" in res["weights_replaced"]


def test_bench(lenet, capsys):
    d, out = lenet
    threads = torch.get_num_threads()
    code, text, _ = call(capsys, "bench", out, "--against", "lenet-300-100", "--batch", "1,4",
                         "--repeats", "3", "--warmup", "1", "--threads", "1", "--json")
    assert code == 0
    res = json.loads(text)
    assert torch.get_num_threads() == threads  # restored for the caller
    assert [r["batch"] for r in res["results"]] == [1, 4] and res["repeats"] == 3
    assert res["threads"] == {"cdnn_runtime": 1, "torch": 1}
    for r in res["results"]:
        for engine in ("cdnn_runtime", "torch_dense"):
            s = r[engine]
            assert 0 < s["min_ms"] <= s["median_ms"] <= s["max_ms"]
            assert s["samples_per_s"] == pytest.approx(r["batch"] / s["median_ms"] * 1e3)
    assert res["load_ms"] > 0 and res["peak_rss_bytes"]["end"] >= \
        res["peak_rss_bytes"]["after_load"] > 0
    code, text, _ = call(capsys, "bench", out, "--batch", "2", "--repeats", "2", "--warmup", "0")
    assert code == 0 and "cdnn_runtime" in text and "torch dense" not in text
    assert "peak memory" in text and "load (InferenceSession)" in text


def test_inspect_plot_without_torch(lenet, tmp_path):
    pytest.importorskip("matplotlib")
    d, out = lenet
    png = tmp_path / "lenet.png"
    code = ("import sys; from cdnn.cli import main; "
            f"rc = main(['inspect', {str(out)!r}, '--plot', {str(png)!r}]); "
            "assert 'torch' not in sys.modules, 'inspect --plot imported torch'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"wrote {png}" in r.stdout and "bits per nonzero" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def feed_progress(p):
    p.stage("capture")
    for stage in ("prune", "share"):
        for layer in ("conv1", "fc1"):
            p(stage, layer, 0)
    p.close()


def test_progress_lines_and_quiet():
    from cdnn.progress import Progress
    feed = feed_progress
    out = io.StringIO()
    feed(Progress(2, stream=out))  # not a terminal: plain lines
    lines = out.getvalue().splitlines()
    assert [ln.split("] ")[1] for ln in lines] == [
        "capture", "prune  1/2 conv1", "prune  2/2 fc1", "share  1/2 conv1", "share  2/2 fc1",
        "encode"]
    out = io.StringIO()
    feed(Progress(2, stream=out, quiet=True))
    assert out.getvalue() == ""


def test_progress_bars_with_tqdm():
    pytest.importorskip("tqdm")
    from cdnn.progress import Progress
    out = io.StringIO()
    feed_progress(Progress(2, stream=out, use_tqdm=True))
    assert "prune" in out.getvalue() and "2/2" in out.getvalue()


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_and_export_inputs(tmp_path, capsys):
    model = models.seeded(models.lenet_5, 1)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    r = cdnn("compress", tmp_path / "ckpt.pt", "--model", "cdnn.models:lenet_5",
             "--input-shape", "1,1,28,28", "-o", tmp_path / "a.cdnn", "--quiet")
    assert r.returncode == 0, r.stderr
    code, _, err = call(capsys, "compress", tmp_path / "ckpt.pt", "-o", tmp_path / "b.cdnn")
    assert code == 1 and "--model" in err
    ep = torch.export.export(model.eval(), (torch.randn(2, 1, 28, 28),))
    torch.export.save(ep, tmp_path / "m.pt2")
    code, _, err = call(capsys, "compress", tmp_path / "m.pt2", "--input-shape", "2,1,28,28",
                        "-o", tmp_path / "c.cdnn", "--quiet")
    assert code == 0, err
    # verify takes the same sources
    code, text, err = call(capsys, "verify", tmp_path / "a.cdnn", "--against",
                           tmp_path / "ckpt.pt", "--model", "cdnn.models:lenet_5")
    assert code == 0 and "OK" in text, text + err
    code, text, err = call(capsys, "verify", tmp_path / "c.cdnn", "--against", tmp_path / "m.pt2",
                           "--batch", "2")
    assert code == 0 and "OK" in text, text + err
    code, _, err = call(capsys, "verify", tmp_path / "a.cdnn", "--against", tmp_path / "ckpt.pt")
    assert code == 1 and "--model" in err
    # a pickle that would run code is refused, and the code never runs
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"fc1.weight": Payload(marker)}, fh)
    r = cdnn("compress", tmp_path / "evil.pt", "--model", "cdnn.models:lenet_5",
             "--input-shape", "1,1,28,28", "-o", tmp_path / "d.cdnn")
    assert r.returncode == 1 and "weights-only" in r.stderr
    assert not marker.exists() and not (tmp_path / "d.cdnn").exists()
    code, _, err = call(capsys, "verify", tmp_path / "a.cdnn", "--against", tmp_path / "evil.pt",
                        "--model", "cdnn.models:lenet_5")
    assert code == 1 and "weights-only" in err and not marker.exists()


def test_safetensors_checkpoint_compresses_and_verifies(tmp_path, capsys):
    from safetensors.torch import save_file

    from cdnn import zoo
    state = models.seeded(zoo.mobilenet_v2_tiny, 5).state_dict()
    save_file(state, tmp_path / "mnv2.safetensors")
    src = ["--model", "cdnn.zoo:mobilenet_v2_tiny"]
    r = cdnn("compress", tmp_path / "mnv2.safetensors", *src, "--input-shape", "1,3,32,32",
             "-o", tmp_path / "mnv2.cdnn", "--quiet")
    assert r.returncode == 0, r.stderr
    code, text, err = call(capsys, "verify", tmp_path / "mnv2.cdnn", "--against",
                           tmp_path / "mnv2.safetensors", *src, "--json")
    res = json.loads(text)
    assert code == 0 and res["ok"] and res["source_sha256_match"] is True, err
    # a state dict that does not fit the factory names the first mismatches, .pt as .safetensors
    bad = dict(state)
    del bad["features.1.conv.1.weight"]
    bad["head.weight"] = torch.zeros(2)
    bad["classifier.1.weight"] = torch.zeros(7, 64)
    save_file(bad, tmp_path / "bad.safetensors")
    torch.save(bad, tmp_path / "bad.pt")
    for ckpt in ("bad.safetensors", "bad.pt"):
        for command in ("compress", "verify"):
            args = ([tmp_path / "mnv2.cdnn", "--against"] if command == "verify" else []) + \
                [tmp_path / ckpt, *src, "--input-shape", "1,3,32,32"] + \
                (["-o", tmp_path / "o.cdnn"] if command == "compress" else [])
            code, _, err = call(capsys, command, *args)
            assert code == 1 and "does not fit cdnn.zoo:mobilenet_v2_tiny" in err, err
            assert "missing keys (1): features.1.conv.1.weight" in err
            assert "unexpected keys (1): head.weight" in err
            assert "classifier.1.weight: checkpoint [7, 64] vs model [10, 64]" in err
    assert not (tmp_path / "o.cdnn").exists()
    code, _, err = call(capsys, "compress", tmp_path / "mnv2.safetensors", "--model",
                        "cdnn.zoo:resnet50_tiny", "--input-shape", "1,3,32,32",
                        "-o", tmp_path / "o.cdnn")
    assert code == 1 and re.search(r"missing keys \(\d+\): conv1\.weight, .* and \d+ more; "
                                   r"unexpected keys \(\d+\): classifier\.1\.bias, ", err), err
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    code, _, err = call(capsys, "compress", tmp_path / "junk.safetensors", *src,
                        "--input-shape", "1,3,32,32", "-o", tmp_path / "o.cdnn")
    assert code == 1 and "not a readable .safetensors file" in err, err
