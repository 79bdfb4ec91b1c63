"""InferenceSession against PyTorch on the decompressed weights: every op, the reference nets."""

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn import models
from cdnn.compress import compress
from cdnn_runtime import CdnnFormatError
from cdnn_runtime.session import InferenceSession, load
from cdnn_runtime.testing.craft import one_node_graph
from test_compress import EveryOp, trained_bn


def close(got, want, what=""):
    scale = max(float(np.abs(want).max()), 1e-6)
    err = float(np.abs(got - want).max()) / scale
    assert err <= 1e-4, f"{what}: max error {err:.2e} of the largest output magnitude"


def torch_out(model, x):
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def packed_session(model, example, recipe=None, **kw):
    packed = compress(model, torch.from_numpy(example), recipe, **kw)
    return packed, InferenceSession(packed.to_bytes())


class Ops(nn.Module):
    """Every runtime op with non-default attributes, one path each."""

    def __init__(self, act):
        super().__init__()
        self.act = act
        self.c1 = nn.Conv2d(3, 6, 11, stride=4, padding=7)  # padding beyond half the kernel
        self.c2 = nn.Conv2d(6, 6, 3, padding=1, groups=6)  # depthwise
        self.c3 = nn.Conv2d(6, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 7)
        self.prelu = nn.PReLU()

    def forward(self, x):
        y = self.act(self.c1(x))
        y = self.c2(y) * y
        y = F.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)
        y = self.bn(self.c3(y))  # folded
        y = F.avg_pool2d(y, 2, stride=1, padding=1, ceil_mode=True)
        y = F.adaptive_avg_pool2d(y, (3, 3))
        y = y.permute(0, 2, 3, 1).transpose(1, 2).reshape(y.shape[0], -1)
        y = self.prelu(self.fc(y))
        return torch.softmax(y, dim=1)


ACTS = {"relu": F.relu, "relu6": F.relu6, "leaky": lambda v: F.leaky_relu(v, 0.2),
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu,
        "gelu_tanh": lambda v: F.gelu(v, approximate="tanh")}


@pytest.mark.parametrize("act", sorted(ACTS))
def test_ops_match_pytorch(act):
    torch.manual_seed(0)
    model = trained_bn(Ops(ACTS[act])).eval()
    x = np.random.default_rng(0).standard_normal((7, 3, 37, 41)).astype(np.float32)
    packed, sess = packed_session(model, x[:2], {"c*": {"density": 0.6, "bits": 6},
                                                 "fc": {"density": 0.5, "bits": 4}})
    ref = packed.reference_model()
    for b in (1, 7):
        close(sess(x[:b]), torch_out(ref, x[:b]), f"{act} batch {b}")


def test_every_op_model_matches_pytorch():
    torch.manual_seed(1)
    model = trained_bn(EveryOp()).eval()
    x = np.random.default_rng(1).standard_normal((7, 3, 12, 12)).astype(np.float32)
    packed, sess = packed_session(model, x[:2])
    ref = packed.reference_model()
    for b in (1, 7):
        close(sess(x[:b]), torch_out(ref, x[:b]), f"batch {b}")


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, a, b):
        h = F.relu(self.fc(a + b))
        return self.head(h), torch.cat([h, a], dim=1)


def test_several_inputs_and_outputs_and_api():
    torch.manual_seed(2)
    model = TwoHeads().eval()
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((3, 6)).astype(np.float32) for _ in range(2))
    packed = compress(model, (torch.from_numpy(a), torch.from_numpy(b)),
                      {"*": {"density": 1.0, "bits": 8}}, input_names=["a", "b"],
                      output_names=["logits", "features"])
    sess = load(packed.to_bytes(), num_threads=1)
    assert [i.name for i in sess.get_inputs()] == ["a", "b"]
    assert sess.get_inputs()[0].shape == [None, 6]
    assert [o.name for o in sess.get_outputs()] == ["logits", "features"]
    ref = packed.reference_model()
    with torch.inference_mode():
        want = [t.numpy() for t in ref(torch.from_numpy(a), torch.from_numpy(b))]
    got = sess.run(None, {"a": a, "b": b})
    for g, w in zip(got, want):
        close(g, w)
    (only,) = sess.run(["features"], {"a": a, "b": b})
    close(only, want[1])
    with pytest.raises(ValueError, match="missing input 'b'"):
        sess.run(None, {"a": a})
    with pytest.raises(ValueError, match="unknown input 'c'"):
        sess.run(None, {"a": a, "b": b, "c": a})
    with pytest.raises(ValueError, match=r"input 'a' has shape \[3, 5\], expected \[N, 6\]"):
        sess.run(None, {"a": a[:, :5], "b": b})
    with pytest.raises(ValueError, match="must be float32, got float64"):
        sess.run(None, {"a": a.astype(np.float64), "b": b})
    with pytest.raises(ValueError, match="unknown output 'nope'"):
        sess.run(["nope"], {"a": a, "b": b})
    with pytest.raises(ValueError, match="one input and one output"):
        sess(a)
    with pytest.raises(ValueError, match="disagree on the batch size"):
        sess.run(None, {"a": a, "b": b[:2]})


def test_batch_zero_nan_and_threads():
    torch.manual_seed(3)
    model = models.lenet_5().eval()
    x = np.random.default_rng(3).standard_normal((8, 1, 28, 28)).astype(np.float32)
    packed, sess = packed_session(model, x[:2])
    assert sess(x[:0]).shape == (0, 10)
    bad = x[:2].copy()
    bad[0, 0, 10, 10] = np.nan
    out = sess(bad)
    assert np.isnan(out[0]).any() and np.isfinite(out[1]).all()
    serial = [sess(x[i:i + 1]) for i in range(8)]
    results = {}

    def worker(k):
        for rep in range(10):
            i = (k + rep) % 8
            results[(k, rep)] = np.array_equal(sess(x[i:i + 1]), serial[i])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and all(results.values())


def test_a_file_without_graph_is_refused_clearly():
    from cdnn_runtime.writer import Writer
    w = Writer()
    w.add_raw("a", np.ones(2, np.float32))
    with pytest.raises(CdnnFormatError, match="no graph"):
        InferenceSession(w.to_bytes())


def test_graph_that_does_not_fit_its_shapes_is_refused_at_load():
    from cdnn_runtime.writer import Writer
    w = Writer()
    w.add_raw("fc.weight", np.ones((2, 5), np.float32))
    w.set_graph(one_node_graph("linear", [None, 4], {"weight": "fc.weight"}, name="fc"))
    with pytest.raises(CdnnFormatError, match="does not fit"):
        InferenceSession(w.to_bytes())


REFERENCE = {  # input sizes small enough for CI; the layers are the full ones
    "lenet-300-100": (1, 28, 28),
    "lenet-5": (1, 28, 28),
    "alexnet": (3, 67, 67),
    "vgg16": (3, 32, 32),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_networks_at_deep_compression_densities(name, tmp_path):
    model = models.seeded(models.MODELS[name], 0).eval()
    x = np.random.default_rng(4).standard_normal((7,) + REFERENCE[name]).astype(np.float32)
    packed = compress(model, torch.from_numpy(x[:2]), model_name=name)
    path = tmp_path / f"{name}.cdnn"
    packed.save(path)
    sess = InferenceSession(str(path))
    ref = packed.reference_model()
    for b in (1, 7):
        close(sess(x[:b]), torch_out(ref, x[:b]), f"{name} batch {b}")
    if name == "lenet-5":
        np.save(tmp_path / "x.npy", x[:3])
        # torch made unimportable: the runtime's `run` must not need it anywhere
        code = ("import sys; sys.modules['torch'] = None; "
                "sys.argv = ['cdnn-runtime', 'run', sys.argv[1], '--input', "
                "sys.argv[2], '--output', sys.argv[3]]; import cdnn_runtime.cli as c; "
                "rc = c.main(sys.argv[1:]); assert sys.modules['torch'] is None; sys.exit(rc)")
        subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], check=True, capture_output=True)
        close(np.load(tmp_path / "y.npy"), torch_out(ref, x[:3]), "cdnn-runtime run")


def test_linear_chains_match_pytorch_at_every_batch_path():
    """LeNet-300-100 runs flatten and its three layers as one step (one kernel call for
    batch 1, the transposed layout from batch 8 on, layer by layer in between)."""
    model = models.seeded(models.MODELS["lenet-300-100"], 5).eval()
    x = np.random.default_rng(5).standard_normal((33, 1, 28, 28)).astype(np.float32)
    packed, sess = packed_session(model, x[:2], model_name="lenet-300-100")
    assert [s.op for s in sess._steps] == ["flatten+linear+relu+linear+relu+linear"]
    ref = packed.reference_model()
    for b in (0, 1, 2, 8, 33):
        got = sess(x[:b])
        assert got.shape == (b, 10)
        if b:
            close(got, torch_out(ref, x[:b]), f"batch {b}")
    close(sess(np.asfortranarray(x[:3])), torch_out(ref, x[:3]), "non-contiguous input")


class _Residuals(nn.Module):
    """Residual adds the session fuses into the convolution before them: conv -> add -> relu
    with the skip branch (a strided 1x1 conv) computed after the main one, as torchvision's
    Bottleneck does; conv -> add with no activation (MobileNetV2's projection); a depthwise
    conv -> add; and adds it must not fuse: one that broadcasts a [C, 1, 1] value, one whose
    conv output is used twice."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.down = nn.Conv2d(3, 8, 1, stride=2)
        self.c = nn.Conv2d(8, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.e = nn.Conv2d(8, 8, 3, padding=1)
        self.scale = nn.Parameter(torch.randn(8, 1, 1))
        self.f = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        main = self.b(F.relu(self.a(x)))
        y = F.relu(main + self.down(x))  # the skip branch after the main conv
        y = self.c(y) + y  # no activation after the add
        y = F.relu6(self.dw(y) + y)  # a grouped conv
        y = self.e(y) + self.scale  # broadcasts: not fused
        z = self.f(y)
        return torch.tanh(z + z * 0.5)  # z used twice: not fused


def test_residual_adds_fuse_into_the_convolution_before_them():
    model = _Residuals().eval()
    x = np.random.default_rng(11).standard_normal((3, 3, 16, 15)).astype(np.float32)
    packed, sess = packed_session(model, x[:1])
    ops = [s.op for s in sess._steps]
    assert ops.count("conv2d+add+relu") == 1, ops
    assert ops.count("conv2d+add") == 1, ops
    assert ops.count("conv2d+add+relu6") == 1, ops
    assert "conv2d" in ops and "add" in ops, ops  # the broadcasting add and the shared output
    ref = packed.reference_model()
    for b in (1, 3):
        close(sess(x[:b]), torch_out(ref, x[:b]), f"batch {b}")
    assert sess(x[:0]).shape[0] == 0


def test_conv_with_residual_in_its_epilogue():
    """SparseConv2d(x, act, residual=r) is act(conv(x) + r): banded kernels and the group by
    group path, threaded and serial; a residual of another shape is refused."""
    from cdnn_runtime.kernels import KernelArgumentError, prepare_conv

    rng = np.random.default_rng(12)
    for cin, cout, groups, act in ((6, 4, 1, "relu"), (6, 6, 6, "relu6"), (4, 6, 2, "none")):
        w = rng.standard_normal((cout, cin // groups, 3, 3)).astype(np.float32)
        w[rng.random(w.shape) < 0.5] = 0
        w2 = w.reshape(cout, -1)
        row_ptr = np.concatenate([[0], np.cumsum((w2 != 0).sum(1))]).astype(np.int64)
        cols = np.nonzero(w2)[1].astype(np.int32)
        codebook, codes = np.unique(w2[w2 != 0], return_inverse=True)
        bias = rng.standard_normal(cout).astype(np.float32)
        layer = prepare_conv(row_ptr, cols, codes.astype(np.uint8), codebook.astype(np.float32),
                             bias, in_channels=cin, kernel_size=3, padding=1, groups=groups)
        x = rng.standard_normal((2, cin, 9, 8)).astype(np.float32)
        r = rng.standard_normal((2, cout, 9, 8)).astype(np.float32)
        y = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias),
                     padding=1, groups=groups) + torch.from_numpy(r)
        want = {"relu": F.relu, "relu6": F.relu6, "none": lambda v: v}[act](y).numpy()
        for parallel in (False, True):
            close(layer(x, act, parallel=parallel, residual=r), want, f"{cin} {groups} {act}")
        with pytest.raises(KernelArgumentError, match="residual"):
            layer(x, act, residual=r[:, :, :8])


def test_profile_times_every_node_once(tmp_path):
    model = models.seeded(models.MODELS["lenet-5"], 6).eval()
    x = np.random.default_rng(6).standard_normal((2, 1, 28, 28)).astype(np.float32)
    packed, sess = packed_session(model, x[:2], model_name="lenet-5")
    prof = sess.profile({"x": x}, repeats=3)
    assert prof["batch"] == 2 and prof["repeats"] == 3 and prof["total_ms"] > 0
    names = [n for st in prof["steps"] for n in st["nodes"]]
    assert sorted(names) == sorted(n["name"] for n in sess.graph["nodes"])
    for st in prof["steps"]:
        assert 0 <= st["min_ms"] <= st["median_ms"] <= st["max_ms"]
        assert st["name"] == "+".join(st["nodes"])
    assert prof["steps"][0]["op"] == "conv2d"
    assert prof["steps"][0]["output_shape"] == [2, 20, 24, 24]
    assert prof["steps"][-1]["output_shape"] == [2, 10]
    assert "linear+relu+linear" in prof["steps"][-1]["op"]
    with pytest.raises(ValueError, match="must be float32"):
        sess.profile({"x": x.astype(np.float64)})
    with pytest.raises(ValueError, match="repeats"):
        sess.profile({"x": x}, repeats=0)
    # the command line prints the same table
    path = tmp_path / "lenet5.cdnn"
    packed.save(path)
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-m", "cdnn_runtime.cli", "run", str(path), "--input",
                          str(tmp_path / "x.npy"), "--profile", "--repeats", "2"],
                         check=True, capture_output=True, text=True).stdout
    assert "profile: batch 2, median of 2 runs" in out and "conv1" in out
    assert "whole run" in out and "max_pool2d" in out


def test_blas_runs_on_one_thread_only_where_the_graph_multiplies_with_numpy(monkeypatch):
    """numpy's BLAS pool spins after each call and starves numba's threads: a graph with
    matmul or attention runs with BLAS held to one thread, others never touch it."""
    from threadpoolctl import threadpool_info

    from cdnn_runtime import session as session_module
    from cdnn_runtime.testing.craft import one_node_graph
    from cdnn_runtime.writer import Writer
    seen = []
    real = session_module._blas_on_one_thread

    def spy():
        ctx = real()
        seen.append(ctx)
        return ctx
    monkeypatch.setattr(session_module, "_blas_on_one_thread", spy)
    w = Writer()
    w.add_raw("w", np.eye(4, dtype=np.float32))
    w.set_graph(one_node_graph("matmul", [None, 3, 4], {"other": "w"}))
    with_blas = InferenceSession(w.to_bytes())
    threads = []
    original = session_module.InferenceSession._execute

    def execute(self, *args, **kwargs):
        threads.append([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
        return original(self, *args, **kwargs)
    monkeypatch.setattr(session_module.InferenceSession, "_execute", execute)
    x = np.ones((2, 3, 4), np.float32)
    np.testing.assert_array_equal(with_blas.run(None, {"x": x})[0], x)
    assert len(seen) == 1 and threads[-1] and all(n == 1 for n in threads[-1])
    lenet = InferenceSession(compress(models.lenet_300_100(), torch.randn(1, 1, 28, 28),
                                      preset="lossless-ish").to_bytes())
    lenet.run(None, {"x": np.ones((1, 1, 28, 28), np.float32)})
    assert len(seen) == 1
