"""Normalisation (layer, group, instance norm), resizing (interpolate) and pooling (adaptive max,
1-D max, average and adaptive) against PyTorch: the kernels on random and edge inputs, then
models using them captured from a batch-1 example, compressed and run at batch 1 and 3."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from cdnn import compress  # noqa: E402
from cdnn.capture import capture  # noqa: E402
from cdnn_runtime import CdnnUnsupportedError, InferenceSession  # noqa: E402
from cdnn_runtime.kernels import KernelArgumentError, norms, pooling, resize  # noqa: E402


def _rng(seed=0):
    return np.random.default_rng(seed)


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


def _close(got, ref, atol=1e-5):
    """Within `atol` of the reference, NaN where it has NaN."""
    ref = ref.numpy() if isinstance(ref, torch.Tensor) else ref
    assert got.shape == ref.shape and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# Layer norm, group norm, instance norm
# ---------------------------------------------------------------------------------------------


def _opt(a):
    return None if a is None else _t(a)


@pytest.mark.parametrize("op, shape, arg", [
    ("layer_norm", (2, 5, 6, 7), (7,)), ("layer_norm", (3, 4, 5), (4, 5)),
    ("layer_norm", (2, 3, 4, 4, 96), (96,)), ("layer_norm", (4, 8), (8,)),
    ("layer_norm", (2, 3, 4, 5), (3, 4, 5)),
    ("group_norm", (2, 6, 5, 7), 3), ("group_norm", (1, 32, 12, 12), 8),
    ("group_norm", (3, 4, 10), 4), ("group_norm", (2, 6), 2), ("group_norm", (2, 8, 3, 3), 1),
    ("group_norm", (2, 4, 3, 2, 2), 2)])
@pytest.mark.parametrize("affine", [True, False])
def test_norms_match_torch(op, shape, arg, affine):
    """layer_norm over `arg` trailing dims, group_norm with `arg` groups."""
    rng = _rng(len(shape))
    x = (rng.standard_normal(shape) * 3 + 20).astype(np.float32)  # a mean far from 0
    affine_shape = arg if op == "layer_norm" else (shape[1],)
    w, b = [rng.standard_normal(affine_shape).astype(np.float32) if affine else None
            for _ in range(2)]
    ref = getattr(F, op)(_t(x), arg, _opt(w), _opt(b), 1e-5)
    _close(getattr(norms, op)(x, arg, w, b, 1e-5), ref)


def test_layer_norm_channels_last_view_nan_and_empty_batch():
    rng = _rng(1)
    x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    x[1, 2, 3, 1] = np.nan  # one channels-last row of NaN, the others untouched
    view = x.transpose(0, 2, 3, 1)  # not contiguous
    w, b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    ref = F.layer_norm(_t(view), (6,), _t(w), _t(b), 1e-6)
    got = norms.layer_norm(view, [6], w, b, 1e-6)
    _close(got, ref)
    assert np.isnan(got).sum() == 6
    assert norms.layer_norm(np.zeros((0, 3, 6), np.float32), (6,)).shape == (0, 3, 6)


def test_group_norm_as_instance_norm_non_contiguous_nan_and_empty():
    rng = _rng(2)
    x = rng.standard_normal((3, 5, 7, 4)).astype(np.float32)
    x[0, 1, 2, 2] = np.nan
    view = x[:, :, ::-1, :].transpose(0, 1, 3, 2)  # reversed and transposed
    w, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    ref = F.instance_norm(_t(view), weight=_t(w), bias=_t(b), eps=1e-5)
    got = norms.group_norm(view, 5, w, b, 1e-5)
    _close(got, ref)
    assert np.isnan(got).sum() == 28  # the one plane with the NaN
    assert norms.group_norm(np.zeros((0, 4, 3, 3), np.float32), 2).shape == (0, 4, 3, 3)


def test_norm_arguments_are_checked():
    x = np.zeros((2, 6, 4), np.float32)
    with pytest.raises(KernelArgumentError, match=r"layer_norm over \[5\] needs x ending"):
        norms.layer_norm(x, (5,))
    with pytest.raises(KernelArgumentError, match=r"weight must have shape \[4\]"):
        norms.layer_norm(x, (4,), np.ones(5, np.float32))
    with pytest.raises(KernelArgumentError, match="normalized_shape must be a non-empty"):
        norms.layer_norm(x, ())
    with pytest.raises(KernelArgumentError, match="6 channels do not split into 4 groups"):
        norms.group_norm(x, 4)
    with pytest.raises(KernelArgumentError, match=r"bias must have shape \[6\]"):
        norms.group_norm(x, 3, None, np.ones(3, np.float32))


# ---------------------------------------------------------------------------------------------
# interpolate
# ---------------------------------------------------------------------------------------------

_MODES = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True)]


@pytest.mark.parametrize("mode, align", _MODES)
@pytest.mark.parametrize("hw", [(5, 5), (4, 7), (1, 3), (13, 6)])
def test_interpolate_by_scale_factor_matches_torch(mode, align, hw):
    x = _rng(hw[0]).standard_normal((2, 3) + hw).astype(np.float32)
    for factor in (2, 1.5, 0.5, 3, 1.7, 0.3, 1.0, 2.25):
        out = [int(np.floor(d * factor)) for d in hw]
        if min(out) < 1:
            continue
        ref = F.interpolate(_t(x), scale_factor=factor, mode=mode, align_corners=align)
        got = resize.interpolate(x, out, mode, bool(align), (factor, factor))
        # nearest picks the very pixels PyTorch picks
        _close(got, ref, atol=0 if mode != "bilinear" else 3e-6)


@pytest.mark.parametrize("mode, align", _MODES)
def test_interpolate_by_size_matches_torch(mode, align):
    x = _rng(3).standard_normal((2, 3, 5, 6)).astype(np.float32)
    for size in [(7, 9), (3, 2), (5, 6), (10, 18), (1, 1), (17, 4), (5, 12)]:
        ref = F.interpolate(_t(x), size=size, mode=mode, align_corners=align)
        _close(resize.interpolate(x, size, mode, bool(align)), ref,
               atol=0 if mode != "bilinear" else 3e-6)


def test_interpolate_non_contiguous_nan_and_empty_batch():
    x = _rng(4).standard_normal((2, 3, 6, 5)).astype(np.float32)
    x[0, 0, 2, 2] = np.nan
    x[1, 2, 0, 0] = np.inf
    view = x.transpose(0, 1, 3, 2)
    for mode, align in _MODES:
        ref = F.interpolate(_t(view), size=(11, 8), mode=mode, align_corners=align)
        _close(resize.interpolate(view, (11, 8), mode, bool(align)), ref, atol=3e-6)
        empty = resize.interpolate(np.zeros((0, 3, 4, 4), np.float32), (8, 8), mode,
                                   bool(align))
        assert empty.shape == (0, 3, 8, 8)


def test_interpolate_arguments_are_checked():
    x = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(KernelArgumentError, match="mode must be one of"):
        resize.interpolate(x, (4, 4), "bicubic")
    with pytest.raises(KernelArgumentError, match="align_corners applies to bilinear only"):
        resize.interpolate(x, (4, 4), "nearest", True)
    with pytest.raises(KernelArgumentError, match="scales must be two finite numbers"):
        resize.interpolate(x, (4, 4), "nearest", False, (-1.0, 2.0))
    with pytest.raises(KernelArgumentError, match=r"expects x of shape \[N, C, H, W\]"):
        resize.interpolate(x[0], (4, 4))


# ---------------------------------------------------------------------------------------------
# Pooling: adaptive max 2-D, 1-D max, average, adaptive average and max
# ---------------------------------------------------------------------------------------------


def test_adaptive_pool2d_matches_torch_nan_and_inf_included():
    x = _rng(5).standard_normal((2, 3, 11, 9)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    x[1, 1, 5, 5] = np.inf
    x[1, 2, 3, 3] = -np.inf
    for out in [(2, 3), (11, 9), (4, 4), (1, 1), (5, 7), (13, 10)]:
        _close(pooling.adaptive_max_pool2d(x, out), F.adaptive_max_pool2d(_t(x), out), atol=0)
        _close(pooling.adaptive_avg_pool2d(x, out), F.adaptive_avg_pool2d(_t(x), out), 1e-6)
    view = x.transpose(1, 0, 3, 2)
    _close(pooling.adaptive_max_pool2d(view, (3, 2)), F.adaptive_max_pool2d(_t(view), (3, 2)),
           atol=0)
    assert pooling.adaptive_max_pool2d(np.zeros((0, 2, 4, 4), np.float32), 2).shape == \
        (0, 2, 2, 2)


def test_pool1d_matches_torch_over_its_parameters():
    x = _rng(6).standard_normal((2, 3, 17)).astype(np.float32)
    x[0, 1, 4] = np.nan
    t = _t(x)
    for k, s, p, d, ceil in itertools.product([1, 2, 3, 4], [1, 2, 3], [0, 1, 2], [1, 2],
                                              [False, True]):
        if 2 * p > k:
            continue
        _close(pooling.max_pool1d(x, k, s, p, d, ceil), F.max_pool1d(t, k, s, p, d, ceil),
               atol=0)
        for include in (False, True):
            _close(pooling.avg_pool1d(x, k, s, p, ceil, include),
                   F.avg_pool1d(t, k, s, p, ceil, include), 1e-6)


def test_adaptive_pool1d_non_contiguous_unbatched_and_empty():
    x = _rng(7).standard_normal((3, 2, 19)).astype(np.float32)
    x[1, 0, 7] = np.nan
    view = x.transpose(1, 0, 2)
    for out in (1, 3, 5, 19, 24):
        _close(pooling.adaptive_avg_pool1d(view, out), F.adaptive_avg_pool1d(_t(view), out),
               1e-6)
        _close(pooling.adaptive_max_pool1d(view, out), F.adaptive_max_pool1d(_t(view), out),
               atol=0)
    _close(pooling.max_pool1d(x[0], 3), F.max_pool1d(_t(x[0]), 3), atol=0)  # [C, L]
    assert pooling.max_pool1d(np.zeros((0, 2, 9), np.float32), 3, 2).shape == (0, 2, 4)
    assert pooling.adaptive_avg_pool1d(np.zeros((0, 2, 9), np.float32), 4).shape == (0, 2, 4)


def test_pool1d_arguments_are_checked():
    x = np.zeros((1, 2, 9), np.float32)
    with pytest.raises(KernelArgumentError, match="padding 2 must be at most half the kernel"):
        pooling.max_pool1d(x, 3, 1, 2)
    with pytest.raises(KernelArgumentError, match=r"expects x of shape \[N, C, L\]"):
        pooling.avg_pool1d(np.zeros((1, 2, 3, 9), np.float32), 3)
    with pytest.raises(KernelArgumentError, match="output_size must be an int >= 1"):
        pooling.adaptive_max_pool1d(x, 0)


# ---------------------------------------------------------------------------------------------
# Capture, compress, run at batch 1 and 3
# ---------------------------------------------------------------------------------------------


class _Norms(nn.Module):
    """LayerNorm channels-last through permute (ConvNeXt), GroupNorm affine or not,
    InstanceNorm with and without affine, and with running statistics (eval mode)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.ln = nn.LayerNorm(8, eps=1e-6)
        self.gn = nn.GroupNorm(4, 8)
        self.gn_plain = nn.GroupNorm(2, 8, affine=False)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.inorm_plain = nn.InstanceNorm2d(8)
        self.inorm_stats = nn.InstanceNorm2d(8, affine=True, track_running_stats=True)
        self.head = nn.Linear(8 * 6 * 6, 5)
        with torch.no_grad():
            for m in (self.ln, self.gn, self.inorm, self.inorm_stats):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            self.inorm_stats.running_mean.uniform_(-0.5, 0.5)
            self.inorm_stats.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        y = self.conv(x)
        y = self.ln(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.gn_plain(self.gn(y))
        y = self.inorm_stats(self.inorm_plain(self.inorm(y)))
        return self.head(F.layer_norm(y, (6, 6)).flatten(1))


class _UpDown(nn.Module):
    """A U-Net-like path: pooling down, upsampling back (bilinear and nearest, by scale and
    by size, align_corners both ways), skip concatenation, adaptive max pooling."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.mid = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.dec = nn.Conv2d(8, 4, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d((2, 3))
        self.head = nn.Linear(4 * 2 * 3 * 4, 6)

    def forward(self, x):
        skip = self.enc(x)
        y = self.up(self.mid(F.max_pool2d(skip, 2)))
        y = self.dec(torch.cat([y, skip], 1))
        a = F.interpolate(y, scale_factor=1.5, mode="nearest")
        b = F.interpolate(y, size=(7, 9), mode="bilinear")
        c = F.interpolate(y, scale_factor=0.7, mode="bilinear")
        d = F.interpolate(y, scale_factor=2, mode="nearest-exact")
        pooled = [self.pool(v).flatten(1) for v in (a, b, c, d)]
        return torch.sigmoid(self.head(torch.cat(pooled, 1)))


class _Audio(nn.Module):
    """Raw-audio pooling: max_pool1d, avg_pool1d, adaptive average and max pooling 1-D."""

    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool1d(3, 2, padding=1)
        self.avg = nn.AvgPool1d(2, ceil_mode=True, count_include_pad=False)
        self.head = nn.Linear(4 * 3 + 4 * 5, 5)

    def forward(self, x):
        a = F.adaptive_avg_pool1d(self.avg(self.pool(x)), 3)
        b = F.adaptive_max_pool1d(x, 5)
        return F.log_softmax(self.head(torch.cat([a.flatten(1), b.flatten(1)], 1)), 1)


_MODELS = {
    "norms": (_Norms, (3, 6, 6), {"layer_norm": 2, "group_norm": 4, "batch_norm": 1}),
    "updown": (_UpDown, (3, 8, 8), {"interpolate2d": 5, "adaptive_max_pool2d": 4}),
    "audio": (_Audio, (4, 33), {"max_pool1d": 1, "avg_pool1d": 1, "adaptive_avg_pool1d": 1,
                                "adaptive_max_pool1d": 1}),
}


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_models_capture_from_batch_one_and_run_batches_of_one_and_three(name):
    cls, sample, ops = _MODELS[name]
    torch.manual_seed(0)
    model = cls().eval()
    packed = compress(model, torch.randn(1, *sample), preset="lossless-ish")
    nodes = packed.file.graph["nodes"]
    assert packed.file.version == 3
    assert {op: sum(n["op"] == op for n in nodes) for op in ops} == ops
    sess = InferenceSession(packed.to_bytes())
    for batch in (1, 3):
        x = torch.randn(batch, *sample, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = packed.reference_model()(x).numpy()
        y = sess(x.numpy())
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_capture_keeps_the_scale_factor_pytorch_computes_with():
    class Up(nn.Module):
        def forward(self, x):
            return (F.interpolate(x, scale_factor=1.5, mode="nearest"),
                    F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=True))

    nodes = capture(Up(), torch.randn(1, 2, 5, 6)).nodes
    assert [n["attrs"] for n in nodes] == [
        {"size": [7, 9], "mode": "nearest", "align_corners": False, "scale_h": 1.5,
         "scale_w": 1.5},
        {"size": [7, 9], "mode": "bilinear", "align_corners": True, "scale_h": 0.0,
         "scale_w": 0.0}]


def test_indices_of_adaptive_max_pooling_are_refused_with_their_line():
    class WithIndices(nn.Module):
        def forward(self, x):
            y, idx = F.adaptive_max_pool2d(x, 2, return_indices=True)
            return y + idx.float()

    with pytest.raises(CdnnUnsupportedError, match=r"aten\.adaptive_max_pool2d\.default.*"
                                                   r"a use of its indices.*test_ops_norm"):
        capture(WithIndices(), torch.randn(1, 3, 4, 4))


def test_antialiased_resizing_is_refused():
    class Antialias(nn.Module):
        def forward(self, x):
            return F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)

    with pytest.raises(CdnnUnsupportedError, match=r"aten\._upsample_bilinear2d_aa"):
        capture(Antialias(), torch.randn(1, 3, 8, 8))
