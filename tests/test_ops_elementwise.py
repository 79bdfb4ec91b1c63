"""Elementwise ops, activations and reductions of format version 3 against PyTorch: the
kernels on random and edge inputs (NaN, inf, signed zeros, empty batch, non-contiguous), the
vocabulary's rules, and capture-compress-run of small modules from a batch-1 example."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn import compress
from cdnn.capture import capture
from cdnn_runtime import CdnnFormatError, CdnnUnsupportedError, InferenceSession
from cdnn_runtime.graph import OPS, graph_version, normalize_attrs
from cdnn_runtime.kernels import KernelArgumentError, elementwise, reduce

SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)


def _edge_values():
    """Random values of several scales, then the edge cases every function must get right."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(3000) * np.repeat([0.01, 1.0, 30.0], 1000)).astype(np.float32)
    edges = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 88.7, -88.7, 20.0,
             -20.0, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 0.5, -0.5]
    return np.concatenate([x, np.array(edges, np.float32)])


X = _edge_values()


def assert_matches(y, ref, rtol=1e-5, atol=1e-30):
    """y equals PyTorch's `ref` within rtol of each value (plus atol), with NaN and inf in the
    same places (and of the same sign)."""
    ref = ref.numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    assert y.dtype == np.float32 and y.shape == ref.shape and y.flags.c_contiguous
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y[np.isinf(ref)], ref[np.isinf(ref)])
    np.testing.assert_allclose(y, ref, rtol=rtol, atol=atol)


def no_warnings(fn, *args):
    """fn(*args), failing on any warning (log(0), 0/0 and friends must be silent)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

#: name -> (our function, PyTorch's): the functions of the same name, then parameterised ones
UNARY = {name: (getattr(elementwise, name), getattr(torch, name))
         for name in ("neg", "exp", "log", "sqrt", "rsqrt", "erf")}
UNARY.update({name: (getattr(elementwise, name), getattr(F, name))
              for name in ("silu", "hardswish", "hardsigmoid", "mish", "elu")})
UNARY.update({
    "abs": (elementwise.absolute, torch.abs),
    "elu(0.3)": (lambda x: elementwise.elu(x, 0.3), lambda t: F.elu(t, 0.3)),
    "selu": (lambda x: elementwise.elu(x, *SELU), F.selu),
    "celu(0.4)": (lambda x: elementwise.elu(x, 0.4, 1.0, 1 / 0.4), lambda t: F.celu(t, 0.4)),
    "softplus": (elementwise.softplus, F.softplus),
    "softplus(2, 5)": (lambda x: elementwise.softplus(x, 2.0, 5.0),
                       lambda t: F.softplus(t, 2.0, 5.0)),
    "clamp(-1, 2)": (lambda x: elementwise.clamp(x, -1.0, 2.0), lambda t: t.clamp(-1.0, 2.0)),
    "clamp(min=0.5)": (lambda x: elementwise.clamp(x, 0.5), lambda t: t.clamp(min=0.5)),
    "clamp(max=-0.5)": (lambda x: elementwise.clamp(x, None, -0.5),
                        lambda t: t.clamp(max=-0.5)),
    "clamp(3, 1)": (lambda x: elementwise.clamp(x, 3.0, 1.0), lambda t: t.clamp(3.0, 1.0)),
    "hardtanh(-2, 3)": (lambda x: elementwise.clamp(x, -2.0, 3.0),
                        lambda t: F.hardtanh(t, -2.0, 3.0)),
})
UNARY.update({f"pow({e})": ((lambda x, e=e: elementwise.power(x, e)), (lambda t, e=e: t ** e))
              for e in (0, 1, 2, 3, 0.5, -0.5, -1, -2, 1.5, -1.3, 2.5, 7)})


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_torch_on_edge_values(name):
    fn, ref = UNARY[name]
    assert_matches(no_warnings(fn, X), ref(torch.from_numpy(X)))


@pytest.mark.parametrize("name", ["exp", "erf", "mish", "pow(1.5)", "clamp(-1, 2)", "selu"])
def test_unary_takes_any_layout_and_an_empty_batch(name):
    fn, ref = UNARY[name]
    base = X[:2400].reshape(4, 6, 10, 10)
    for x in (base.transpose(0, 2, 3, 1), base[:, ::2, 1::3], base[:0], base[1:2]):
        y = fn(x)
        assert_matches(y, ref(torch.from_numpy(np.ascontiguousarray(x))))
        assert not np.shares_memory(y, x)


BINARY = {"sub": (elementwise.sub, torch.sub), "div": (elementwise.div, torch.div),
          "minimum": (elementwise.minimum, torch.minimum),
          "maximum": (elementwise.maximum, torch.maximum)}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasts_like_torch(name):
    fn, ref = BINARY[name]
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    a.flat[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0]
    for b in (rng.standard_normal((3, 4, 5, 6)).astype(np.float32),
              rng.standard_normal((4, 1, 1)).astype(np.float32),
              np.zeros((1, 6), np.float32), a[:, :, ::-1][:, :, :1]):
        for lhs, rhs in ((a, b), (b, a)):
            assert_matches(no_warnings(fn, lhs, rhs),
                           ref(torch.from_numpy(lhs.copy()), torch.from_numpy(rhs.copy())))
    if name in ("sub", "div"):  # a number on either side, as param `other` with reverse
        assert_matches(no_warnings(fn, a, 0.0), ref(torch.from_numpy(a), 0.0))
        assert_matches(no_warnings(fn, 2.0, a), ref(2.0, torch.from_numpy(a)))
    with pytest.raises(KernelArgumentError, match=f"{name}: shapes .* do not broadcast"):
        fn(a, np.zeros((5, 5), np.float32))


def test_kernel_arguments_are_checked():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(KernelArgumentError, match="float32"):
        elementwise.silu(x.astype(np.float64))
    with pytest.raises(KernelArgumentError, match="exponent must be finite"):
        elementwise.power(x, float("nan"))
    with pytest.raises(KernelArgumentError, match="clamp needs min or max"):
        elementwise.clamp(x)
    with pytest.raises(KernelArgumentError, match="beta must be finite"):
        elementwise.softplus(x, float("inf"))
    # bounds beyond float32 become inf, as PyTorch casts them, silently
    y = no_warnings(elementwise.clamp, np.array([1e38, np.inf], np.float32), 1e300)
    np.testing.assert_array_equal(y, [np.inf, np.inf])


REDUCTIONS = {"mean": (reduce.mean, torch.mean), "sum": (reduce.sum, torch.sum),
              "amax": (reduce.amax, torch.amax), "amin": (reduce.amin, torch.amin)}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("dims", [[1], [2, 3], [-1], [3, 1], [1, 2, 3]])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_match_torch(name, dims, keepdim):
    fn, ref = REDUCTIONS[name]
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3, 8, 7, 9)) * 10).astype(np.float32)
    for v in (x, x.transpose(0, 1, 3, 2), x[:, ::2, :, 1::2], x[:0]):
        # a sum's float32 rounding is relative to the sum of magnitudes, not to the sum
        magnitude = np.max(fn(np.abs(v), dims), initial=0) if name in ("sum", "mean") else 0
        assert_matches(fn(v, dims, keepdim),
                       ref(torch.from_numpy(np.ascontiguousarray(v)), dims, keepdim=keepdim),
                       atol=1e-6 * magnitude + 1e-30)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_propagate_nan_and_inf(name):
    fn, ref = REDUCTIONS[name]
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x[0, 0, 1] = np.nan
    x[0, 1, 2] = np.inf
    x[1, 2, :2] = [np.inf, -np.inf]  # inf - inf: NaN in a sum
    assert_matches(no_warnings(fn, x, [2]), ref(torch.from_numpy(x), [2]))


def test_mean_of_many_values_is_accurate():
    x = np.full((2, 3, 224, 224), 0.1, np.float32) + np.float32(1000)
    np.testing.assert_allclose(reduce.mean(x, [2, 3]), np.float32(1000.1), rtol=1e-7)


def test_reduction_arguments_are_checked():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(KernelArgumentError, match="axis 3 out of range"):
        reduce.mean(x, [3])
    with pytest.raises(KernelArgumentError, match=r"dims \[2, -1\] name an axis twice"):
        reduce.sum(x, [2, -1])
    with pytest.raises(KernelArgumentError, match="no dims"):
        reduce.amax(x, [])
    with pytest.raises(KernelArgumentError, match="empty axis has no maximum"):
        reduce.amax(np.zeros((2, 0), np.float32), [1])


# ---------------------------------------------------------------------------------------------
# The vocabulary
# ---------------------------------------------------------------------------------------------

NEW_OPS = ("sub", "div", "minimum", "maximum", "neg", "abs", "exp", "log", "sqrt", "rsqrt",
           "erf", "pow", "clamp", "clamp_min", "clamp_max", "silu", "hardswish", "hardsigmoid",
           "mish", "elu", "softplus", "mean", "sum", "amax", "amin")


def test_the_ops_are_version_3():
    assert all(OPS[op].since == 3 for op in NEW_OPS)
    graph = {"nodes": [{"op": "relu"}, {"op": "silu"}]}
    assert graph_version(graph) == 3
    assert normalize_attrs("softplus", {}, "here") == {"beta": 1.0, "threshold": 20.0}
    assert normalize_attrs("mean", {"dims": [2, 3]}, "here") == {"dims": [2, 3],
                                                                 "keepdim": False}


@pytest.mark.parametrize("op, node, attrs, message", [
    ("mean", {}, {"dims": [0, 2]}, "mean over dim 0, the batch dimension"),
    ("amax", {}, {"dims": []}, "amax over no dims"),
    ("sum", {}, {"dims": [-1]}, r"sum dims \[-1\] must be distinct and counted from 0"),
    ("amin", {}, {"dims": [2, 2]}, r"amin dims \[2, 2\] must be distinct"),
    ("sub", {"inputs": ["a", "b"]}, {"reverse": True}, "sub with reverse needs param 'other'"),
    ("div", {"inputs": ["a"]}, {"reverse": False}, "div takes two inputs, or one input and"),
    ("maximum", {"inputs": ["a", "b"], "params": {"other": "w"}}, {},
     "maximum takes two inputs, or one"),
])
def test_the_vocabulary_checks_its_rules(op, node, attrs, message):
    node = {"op": op, "inputs": ["a"], "outputs": ["y"], "params": {}, **node}
    attrs = normalize_attrs(op, attrs, "node")
    with pytest.raises(CdnnFormatError, match=message):
        OPS[op].check(node, attrs, {"w": {"shape": [1]}}, "node")


# ---------------------------------------------------------------------------------------------
# Capture, compress, run
# ---------------------------------------------------------------------------------------------


def _run_against_reference(packed, shape, batches=(1, 3)):
    """The file's outputs at each batch size within 1e-4 (of the largest output) of the
    decompressed reference."""
    sess = InferenceSession(packed.to_bytes())
    for batch in batches:
        x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            refs = packed.reference_model()(x)
        outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        refs = refs if isinstance(refs, (tuple, list)) else [refs]
        assert len(outs) == len(refs)
        for y, ref in zip(outs, refs):
            ref = ref.numpy()
            assert y.shape == ref.shape
            np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
            ok = ~np.isnan(ref)
            np.testing.assert_allclose(y[ok], ref[ok], rtol=0,
                                       atol=1e-4 * np.abs(ref[ok]).max())


class _Arithmetic(nn.Module):
    """Every elementwise op and activation, on tensors, parameters and numbers."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.w = nn.Parameter(torch.rand(4, 1, 1) + 0.5)
        self.acts = nn.Sequential(nn.SiLU(inplace=True), nn.Hardswish(inplace=True),
                                  nn.Mish(), nn.ELU(0.5, inplace=True), nn.SELU(),
                                  nn.CELU(0.7), nn.Softplus(2.0, 4.0), nn.Hardtanh(-2.0, 3.0),
                                  nn.Hardsigmoid(inplace=True))

    def forward(self, x):
        y = self.conv(x)
        a = (y - x.mean(1, keepdim=True)) / (y.abs() + 1) - (1 - y) + self.w / (y * y + 1)
        b = torch.minimum(a, y) * torch.maximum(y, -a) - y / 3 + 2 / (y.exp() + 1)
        c = y.clamp(-1.5, 1.0) + y.clamp(min=0.25) - y.clamp(max=-0.25) + F.hardtanh(y)
        d = (y.abs() + 1).log() + (y * y + 0.5).sqrt() + (y.abs() + 0.1).rsqrt() + -y
        e = torch.erf(y) + y ** 2 + (y.abs() + 1) ** 0.5 + (y.abs() + 1).pow(-1.5) + y.square()
        f = y - self.w
        return self.acts(a + b + c + d + e + f)


def test_every_elementwise_op_captures_and_runs_from_a_batch_1_example():
    torch.manual_seed(0)
    model = _Arithmetic().eval()
    packed = compress(model, torch.randn(1, 3, 6, 6), preset="lossless-ish")
    nodes = packed.file.graph["nodes"]
    ops = {n["op"] for n in nodes}
    assert ops >= {"sub", "div", "minimum", "maximum", "neg", "abs", "exp", "log", "sqrt",
                   "rsqrt", "erf", "pow", "clamp", "clamp_min", "clamp_max", "silu",
                   "hardswish", "hardsigmoid", "mish", "elu", "softplus", "mean"}
    assert packed.file.version == 3
    reversed_ = [n for n in nodes if n["attrs"].get("reverse")]
    assert sorted(n["op"] for n in reversed_) == ["div", "div", "sub"]  # w / ., 2 / ., 1 - y
    assert {n["attrs"]["alpha"] for n in nodes if n["op"] == "elu"} == {0.5, SELU[0], 0.7}
    _run_against_reference(packed, (3, 6, 6))


@pytest.mark.parametrize("how", ["mean_23", "mean_keepdim", "adaptive_pool", "amax", "sum"])
def test_squeeze_excitation_reductions(how):
    """EfficientNet's SE (SiLU, mean), MobileNetV3's (Hardswish, Hardsigmoid, adaptive pool)
    and GhostNet's (mean over [2, 3] with keepdim), then reductions at the head."""

    class SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.reduce = nn.Conv2d(8, 4, 1)
            self.expand = nn.Conv2d(4, 8, 1)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            y = F.silu(self.conv(x)) if how.startswith("mean") else F.hardswish(self.conv(x))
            if how == "mean_23":
                s = y.mean((2, 3))[:, :, None, None]
            elif how == "mean_keepdim":
                s = torch.mean(y, dim=[2, 3], keepdim=True)
            elif how == "adaptive_pool":
                s = F.adaptive_avg_pool2d(y, 1)
            elif how == "amax":
                s = y.amax((-2, -1), keepdim=True)
            else:
                s = y.sum(-1, keepdim=True).sum(2, keepdim=True) / 36
            gate = torch.sigmoid if how.startswith("mean") else F.hardsigmoid
            y = y * gate(self.expand(F.relu(self.reduce(s))))
            head = y.mean(-1).amin(-1) if how != "amax" else torch.max(y, 3)[0].mean(-1)
            return self.fc(head)

    torch.manual_seed(1)
    packed = compress(SE().eval(), torch.randn(1, 3, 6, 6), preset="lossless-ish")
    _run_against_reference(packed, (3, 6, 6))


def test_clamps_that_are_relu_or_relu6_stay_version_2_and_fuse():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 4 * 4, 3)

        def forward(self, x):
            y = self.conv(x).clamp(0, 6)
            return F.hardtanh(self.fc(torch.flatten(y.clamp(min=0), 1)), 0.0, 6.0)

    torch.manual_seed(2)
    packed = compress(Net().eval(), torch.randn(1, 3, 6, 6), preset="lossless-ish")
    assert [n["op"] for n in packed.file.graph["nodes"]] == ["conv2d", "relu6", "relu",
                                                              "flatten", "linear", "relu6"]
    assert packed.file.version == 2
    _run_against_reference(packed, (3, 6, 6))


def test_nan_and_inf_run_through_like_torch():
    """log of 0 and negatives, sqrt of negatives, a fractional power of a negative, x / 0."""

    from test_compress import FcThen

    def edges(y, x):
        return y.log() + y.sqrt(), y.pow(0.5) - y.rsqrt(), y / (y - y), x.amax(1)

    torch.manual_seed(3)
    model = FcThen(edges).eval()
    packed = compress(model, torch.randn(1, 4), preset="lossless-ish")
    sess = InferenceSession(packed.to_bytes())
    x = torch.randn(6, 4)
    x[0, 1] = float("nan")
    with torch.no_grad():
        refs = packed.reference_model()(x)
    outs = no_warnings(sess.run, None, {sess.get_inputs()[0].name: x.numpy()})
    for y, ref in zip(outs, refs):
        assert_matches(y, ref, rtol=1e-4)


@pytest.mark.parametrize("expr, message", [
    (lambda x: x.mean(0), r"aten\.mean\.dim.*a mean over dim 0, the batch dimension"),
    (lambda x: x - x.mean(), r"aten\.mean\.default.*over dim 0, the batch dimension"),
    (lambda x: x.sum([]), r"aten\.sum\.dim_IntList.*over dim 0, the batch dimension"),
    (lambda x: x.amax(-4), r"aten\.amax\.default.*over dim 0"),
    (lambda x: torch.sub(x, x * 2, alpha=2), "sub with alpha and a tensor operand"),
    (lambda x: torch.div(x, 2, rounding_mode="floor"), "division with rounding_mode='floor'"),
    (lambda x: 2 ** x, r"aten\.pow\.Scalar is not supported"),
    (lambda x: x.pow(x), r"aten\.pow\.Tensor_Tensor is not supported"),
    (lambda x: x.clamp(min=x * 0), r"aten\.clamp\.Tensor is not supported"),
    (lambda x: torch.max(x, 1)[1].float(), r"aten\.max\.dim.*the indices of torch\.max"),
])
def test_unsupported_forms_name_the_op_and_line(expr, message):
    class Net(nn.Module):
        def forward(self, x):
            return expr(x)

    with pytest.raises(CdnnUnsupportedError, match=message + r".*test_ops_elementwise\.py"):
        capture(Net(), torch.randn(1, 3, 4, 4))
