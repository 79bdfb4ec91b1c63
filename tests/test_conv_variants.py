"""Conv1d and ConvTranspose2d with compressed weights, and BatchNorm1d folding: the sparse
kernels against PyTorch (random and edge cases), the stored layout, capture-compress-run from
a batch-1 example at batches 1 and 3, recipes, and folding."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn.capture import capture
from cdnn.compress import compress, fold_batchnorm, layer_kinds
from cdnn.recipe import PRESETS, resolve
from cdnn_runtime import (
    CdnnFormatError,
    CdnnRecipeError,
    CdnnUnsupportedError,
    InferenceSession,
)
from cdnn_runtime.errors import KernelArgumentError
from cdnn_runtime.kernels import sparse_conv
from cdnn_runtime.kernels.sparse_conv import conv1d, prepare_conv1d
from cdnn_runtime.kernels.sparse_conv_transpose import conv_transpose2d, prepare_conv_transpose
from cdnn_runtime.reader import read
from cdnn_runtime.testing.craft import split
from cdnn_runtime.writer import Writer
from test_bad_files import _conv1d, _conv_layer
from test_kernels import TORCH_ACT, assert_close, make_csr, t

# ---------------------------------------------------------------------------------------------
# conv1d kernel
# ---------------------------------------------------------------------------------------------

# name: (batch, cin, cout, L, k, stride, padding, dilation, groups, density)
CONV1D_CASES = {
    "k3": (2, 3, 5, 17, 3, 1, 1, 1, 1, 0.5),
    "k1": (2, 6, 4, 9, 1, 1, 0, 1, 1, 0.6),
    "m5_first": (1, 1, 8, 400, 80, 16, 0, 1, 1, 0.5),
    "stride3": (2, 4, 3, 23, 4, 3, 2, 1, 1, 0.5),
    "dilation3": (2, 4, 3, 30, 3, 1, 3, 3, 1, 0.5),
    "groups2": (2, 4, 6, 15, 5, 2, (3, 1), 1, 2, 0.5),
    "depthwise": (3, 6, 6, 12, 3, 1, 1, 1, 6, 0.8),
    "same_even": (2, 3, 4, 11, 4, 1, "same", 1, 1, 0.6),
    "same_dilated": (1, 3, 4, 11, 4, 1, "same", 3, 1, 0.6),
    "valid": (2, 3, 4, 11, 4, 2, "valid", 1, 1, 0.6),
    "one_out_channel": (2, 5, 1, 13, 3, 1, 1, 1, 1, 0.5),
    "empty_rows": (2, 3, 6, 10, 3, 1, 1, 1, 1, "empty_rows"),
    "all_pruned": (2, 3, 4, 10, 3, 1, 1, 1, 1, 0.0),
    "batch0": (0, 3, 4, 10, 3, 1, 1, 1, 1, 0.5),
    "kernel_is_input": (2, 3, 4, 7, 7, 1, 0, 1, 1, 0.5),
}


def _mask(rng, rows, n_cols, density):
    """A nonzero mask: random, or with every other row empty."""
    if density == "empty_rows":
        mask = rng.random((rows, n_cols)) < 0.6
        mask[::2] = False
        return mask
    return rng.random((rows, n_cols)) < density


def _torch_conv1d(x, w, b, s, p, d, g):
    if isinstance(p, tuple):  # (left, right)
        return F.conv1d(F.pad(t(x), p), t(w), b, s, 0, d, g)
    return F.conv1d(t(x), t(w), b, s, p, d, g)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", list(CONV1D_CASES))
@pytest.mark.parametrize("parallel", [False, True])
def test_conv1d_matches_torch(case, parallel):
    batch, cin, cout, length, k, s, p, d, g, density = CONV1D_CASES[case]
    rng = np.random.default_rng(list(CONV1D_CASES).index(case))
    mask = _mask(rng, cout, cin // g * k, density)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, cout, cin // g * k, mask=mask)
    w = dense.reshape(cout, cin // g, k)
    bias = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((batch, cin, length)).astype(np.float32)
    y = conv1d(x, row_ptr, col_idx, codes, codebook, bias, k, s, p, d, g, parallel=parallel)
    assert_close(y, _torch_conv1d(x, w, t(bias), s, p, d, g))
    layer = prepare_conv1d(row_ptr, col_idx, codes, codebook, None, in_channels=cin,
                           kernel_size=k, stride=s, padding=p, dilation=d, groups=g)
    assert_close(layer(x, "relu", parallel=parallel), F.relu(_torch_conv1d(x, w, None, s, p, d, g)))
    assert layer.output_size(length) == y.shape[2]


def test_conv1d_non_contiguous_input_activations_and_checks():
    rng = np.random.default_rng(40)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 4, 3 * 5, 0.5)
    w = dense.reshape(4, 3, 5)
    bias = rng.standard_normal(4).astype(np.float32)
    layer = prepare_conv1d(row_ptr, col_idx, codes, codebook, bias, in_channels=3, kernel_size=5,
                           padding=(1, 3))
    assert layer.padding == (1, 3)
    x = rng.standard_normal((3, 40, 3)).astype(np.float32).transpose(0, 2, 1)  # not contiguous
    ref = F.conv1d(F.pad(t(x), (1, 3)), t(w), t(bias))
    for act, fn in TORCH_ACT.items():
        assert_close(layer(x, act), fn(ref))
    with pytest.raises(KernelArgumentError, match="3-D"):
        layer(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(KernelArgumentError, match="channels"):
        layer(np.zeros((1, 2, 10), np.float32))
    with pytest.raises(KernelArgumentError, match="smaller"):
        layer(np.zeros((1, 3, 0), np.float32))
    with pytest.raises(KernelArgumentError, match="stride must be an int >= 1"):
        prepare_conv1d(row_ptr, col_idx, codes, codebook, in_channels=3, kernel_size=5,
                       stride=(1, 2))
    with pytest.raises(KernelArgumentError, match="divisible"):
        prepare_conv1d(row_ptr, col_idx, codes, codebook, in_channels=6, kernel_size=5, groups=3)
    with pytest.raises(KernelArgumentError, match="same"):
        prepare_conv1d(row_ptr, col_idx, codes, codebook, in_channels=3, kernel_size=5,
                       stride=2, padding="same")
    with pytest.raises(KernelArgumentError, match="kernel_size"):
        conv1d(x, row_ptr, col_idx, codes, codebook)


# ---------------------------------------------------------------------------------------------
# conv_transpose2d kernel
# ---------------------------------------------------------------------------------------------

# name: (batch, cin, cout, H, W, kernel, stride, padding, output_padding, dilation, groups,
#        density)
CONVT_CASES = {
    "k2s2_unet": (2, 4, 3, 5, 6, 2, 2, 0, 0, 1, 1, 0.6),
    "k3s2p1op1": (2, 4, 6, 5, 4, 3, 2, 1, 1, 1, 1, 0.5),
    "k4s2p1": (1, 3, 4, 6, 6, 4, 2, 1, 0, 1, 1, 0.5),
    "stride1": (2, 3, 5, 6, 7, 3, 1, 1, 0, 1, 1, 0.5),
    "stride1_dilated_op": (1, 3, 2, 5, 5, 3, 1, 2, 1, 2, 1, 0.5),
    "rect": (2, 4, 6, 5, 4, (2, 3), (2, 3), (0, 1), (1, 2), 1, 2, 0.6),
    "stride_beyond_kernel": (2, 3, 2, 3, 4, 2, 5, 0, 3, 1, 1, 0.6),
    "dilated_stride": (2, 2, 4, 4, 4, (1, 2), (4, 3), (0, 1), (2, 0), (1, 2), 2, 0.7),
    "depthwise": (2, 6, 6, 5, 5, 3, 2, 1, 1, 1, 6, 0.8),
    "big_padding": (1, 2, 3, 4, 4, 5, 2, 4, 1, 1, 1, 0.7),
    "one_out_channel": (2, 5, 1, 4, 5, 3, 2, 1, 0, 1, 1, 0.5),
    "empty_rows": (2, 4, 3, 4, 4, 3, 2, 1, 1, 1, 1, "empty_rows"),
    "all_pruned": (2, 3, 4, 4, 4, 3, 2, 1, 0, 1, 1, 0.0),
    "batch0": (0, 3, 4, 4, 4, 3, 2, 1, 0, 1, 1, 0.5),
    "one_pixel": (3, 4, 2, 1, 1, 3, 2, 0, 1, 1, 1, 0.5),
}


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _convt_case(case):
    """(layer arguments, x, the dense weight, bias) of a case."""
    batch, cin, cout, h, w, k, s, p, op, d, g, density = CONVT_CASES[case]
    rng = np.random.default_rng(100 + list(CONVT_CASES).index(case))
    kh, kw = _pair(k)
    n_cols = cout // g * kh * kw
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, cin, n_cols,
                                                        mask=_mask(rng, cin, n_cols, density))
    bias = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((batch, cin, h, w)).astype(np.float32)
    args = dict(out_channels=cout, kernel_size=k, stride=s, padding=p, output_padding=op,
                dilation=d, groups=g)
    return (row_ptr, col_idx, codes, codebook), args, x, dense.reshape(cin, cout // g, kh, kw), bias


def _torch_convt(x, w, bias, a):
    return F.conv_transpose2d(t(x), t(w), None if bias is None else t(bias), a["stride"],
                              a["padding"], a["output_padding"], a["groups"], a["dilation"])


@pytest.mark.parametrize("case", list(CONVT_CASES))
@pytest.mark.parametrize("parallel", [False, True])
def test_conv_transpose2d_matches_torch(case, parallel):
    csr, args, x, w, bias = _convt_case(case)
    y = conv_transpose2d(x, *csr, bias, **args, parallel=parallel)
    assert_close(y, _torch_convt(x, w, bias, args))
    layer = prepare_conv_transpose(*csr, None, **args)
    assert_close(layer(x, "sigmoid", parallel=parallel),
                 torch.sigmoid(_torch_convt(x, w, None, args)))
    assert layer.output_size(*x.shape[2:]) == y.shape[2:]


@pytest.mark.parametrize("case", ["k3s2p1op1", "rect", "stride_beyond_kernel", "stride1"])
@pytest.mark.parametrize("act", ["none", "relu", "tanh", "leaky_relu:0.2"])
def test_conv_transpose2d_in_bands_and_chunks(case, act, monkeypatch):
    """Bands of one phase-plane row, several parts of the rows per band, one input channel per
    chunk, the parallel weave."""
    from cdnn_runtime.kernels import _common
    from cdnn_runtime.kernels import sparse_conv_transpose as SCT
    monkeypatch.setattr(sparse_conv, "BAND_RUN", 1)
    monkeypatch.setattr(sparse_conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(sparse_conv, "GROUP_BYTES", 1)
    monkeypatch.setattr(sparse_conv, "SPLIT_PARALLEL_MIN", 0)
    monkeypatch.setattr(_common, "ELEMENTWISE_PARALLEL_MIN", 0)
    csr, args, x, w, bias = _convt_case(case)
    layer = SCT.prepare_conv_transpose(*csr, bias, **args)
    ref = TORCH_ACT[act](_torch_convt(x, w, bias, args))
    for parallel in (False, True):
        assert_close(layer(x, act, parallel=parallel), ref)
    geo = layer._geometry_for(*x.shape[2:])
    assert geo[11] == 1  # one row per band
    assert geo[12].shape[1] == layer.in_channels + 1  # one input channel per chunk


def test_conv_transpose2d_phases_and_layout():
    """Entries sorted by output phase: k2s2 has four phases, each with a quarter of the taps;
    a stride beyond the kernel leaves phases without taps (no plane, bias only)."""
    csr, args, x, w, bias = _convt_case("k2s2_unet")
    layer = prepare_conv_transpose(*csr, bias, **args)
    assert layer.n_slots == 4 and layer.row_ptr.shape[0] == 4 * 3 + 1
    assert layer.nnz == csr[1].shape[0]
    assert layer._geometry_for(5, 6)[8]  # direct: no padded copy of the input
    csr, args, x, w, bias = _convt_case("stride_beyond_kernel")
    layer = prepare_conv_transpose(*csr, bias, **args)
    assert layer.n_slots == 4 and (layer.slot_of < 0).sum() == 25 - 4


def test_conv_transpose2d_non_contiguous_int32_columns_and_checks():
    rng = np.random.default_rng(41)
    cout = 7300  # cout * 3 * 3 columns > 65536: int32 column indices
    mask = rng.random((2, cout * 9)) < 0.01
    mask[1, -1] = True
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 2, cout * 9, mask=mask)
    assert col_idx.dtype == np.int32
    layer = prepare_conv_transpose(row_ptr, col_idx, codes, codebook, out_channels=cout,
                                   kernel_size=3, stride=2)
    x = rng.standard_normal((1, 3, 2, 2)).astype(np.float32).transpose(0, 3, 1, 2)[:, :2]
    assert not x.flags.c_contiguous
    assert_close(layer(x), F.conv_transpose2d(t(x), t(dense.reshape(2, cout, 3, 3)), stride=2))

    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 4, 2 * 9, 0.5)
    csr = (row_ptr, col_idx, codes, codebook)
    with pytest.raises(KernelArgumentError, match="divisible"):
        prepare_conv_transpose(*csr, out_channels=6, kernel_size=3, groups=3)
    with pytest.raises(KernelArgumentError, match="output_padding"):
        prepare_conv_transpose(*csr, out_channels=2, kernel_size=3, stride=2, output_padding=2)
    with pytest.raises(KernelArgumentError, match="out of range"):
        prepare_conv_transpose(*csr, out_channels=1, kernel_size=3)
    with pytest.raises(KernelArgumentError, match="bias must have 2 entries"):
        prepare_conv_transpose(*csr, np.zeros(4, np.float32), out_channels=2, kernel_size=3)
    layer = prepare_conv_transpose(*csr, out_channels=4, kernel_size=3, groups=2, padding=2)
    with pytest.raises(KernelArgumentError, match="empty output"):
        layer(np.zeros((1, 4, 1, 1), np.float32))
    with pytest.raises(KernelArgumentError, match="channels"):
        layer(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(KernelArgumentError, match="float32"):
        layer(np.zeros((1, 4, 5, 5)))


# ---------------------------------------------------------------------------------------------
# The stored layout: files written by hand, run by the session, against PyTorch
# ---------------------------------------------------------------------------------------------


def _weight_of(data):
    """The dense conv.weight [4, 18] and the bias of the conv_weight vector."""
    f = read(data)
    return f.dense("conv.weight"), f.raw("conv.bias")


@pytest.mark.parametrize("op", ["conv1d", "conv_transpose2d"])
def test_hand_written_files_run_in_the_stored_layout(op):
    """conv_weight's sparse [4, 2, ...] weight as a conv1d [out, in/g, k] and as a
    conv_transpose2d [in, out/g, kh, kw] (rows: input channels, PyTorch's layout)."""
    if op == "conv1d":
        data = _conv1d({"stride": 2, "padding": [3, 1], "dilation": 1})
        x = np.random.default_rng(1).standard_normal((3, 4, 16)).astype(np.float32)
        dense, bias = _weight_of(data)
        ref = F.conv1d(F.pad(t(x), (3, 1)), t(dense.reshape(4, 2, 9)), t(bias), 2, groups=2)
    else:
        attrs = {"stride": [2, 1], "padding": [1, 0], "output_padding": [1, 0], "groups": 2}
        data = _conv_layer("conv_transpose2d", attrs)
        x = np.random.default_rng(2).standard_normal((3, 4, 5, 5)).astype(np.float32)
        dense, bias = _weight_of(data)
        ref = F.conv_transpose2d(t(x), t(dense.reshape(4, 2, 3, 3)), t(bias), (2, 1), (1, 0),
                                 (1, 0), 2)
    assert split(data)[0]["format_version"] == 3
    assert_close(InferenceSession(data)(x), ref)


@pytest.mark.parametrize("op", ["conv1d", "conv_transpose2d"])
def test_raw_weights_run_through_the_sparse_kernels(op):
    rng = np.random.default_rng(3)
    shape = (4, 3, 5) if op == "conv1d" else (3, 2, 3, 3)
    w = (rng.integers(-8, 9, shape) / 8).astype(np.float32)
    x = rng.standard_normal((2, 3, 9) if op == "conv1d" else (2, 3, 4, 4)).astype(np.float32)
    wr = Writer()
    wr.add_raw("w", w)
    wr.set_graph({"inputs": [{"name": "x", "dtype": "float32", "shape": [None, *x.shape[1:]]}],
                  "nodes": [{"name": "c", "op": op, "inputs": ["x"], "outputs": ["y"],
                             "params": {"weight": "w"}, "attrs": {"stride": 2} if op ==
                             "conv1d" else {"stride": [2, 2]}},
                            {"name": "r", "op": "relu", "inputs": ["y"], "outputs": ["z"]}],
                  "outputs": [{"name": "z"}]})
    sess = InferenceSession(wr.to_bytes())
    assert [s.op for s in sess._steps] == [f"{op}+relu"]  # the relu fused into the layer
    ref = F.conv1d(t(x), t(w), stride=2) if op == "conv1d" else \
        F.conv_transpose2d(t(x), t(w), stride=2)
    assert_close(sess(x), F.relu(ref))


# ---------------------------------------------------------------------------------------------
# The compressor: capture, recipes, folding, compress from a batch-1 example
# ---------------------------------------------------------------------------------------------


def _trained_bn(model):
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.3)
    return model.eval()


class Audio(nn.Module):
    """Conv1d with a large strided first kernel, BatchNorm1d after each conv1d (folded), an
    even kernel with padding="same", groups, dilation; a linear with BatchNorm1d on [N, C]
    (folded) and one BatchNorm1d after an activation (kept, on [N, C, L])."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, 20, stride=4)
        self.bn1 = nn.BatchNorm1d(8)
        self.conv2 = nn.Conv1d(8, 8, 4, padding="same", groups=2, bias=False)
        self.bn2 = nn.BatchNorm1d(8)
        self.conv3 = nn.Conv1d(8, 6, 3, stride=2, dilation=2, padding=1)
        self.bn3 = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6 * 12, 5)
        self.bn4 = nn.BatchNorm1d(5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = torch.tanh(self.bn2(self.conv2(x)))
        x = self.bn3(F.relu(self.conv3(x)))  # after an activation: not foldable
        return F.log_softmax(self.bn4(self.fc(torch.flatten(x, 1))), dim=1)


class UpNet(nn.Module):
    """ConvTranspose2d as U-Nets use it (k2 s2), with BatchNorm2d after it (folded), one with
    padding, output_padding and groups, and a conv2d head."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.bn1 = nn.BatchNorm2d(4)
        self.up2 = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.up3 = nn.ConvTranspose2d(6, 3, 3, padding=2, dilation=2, bias=False)
        self.head = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        x = F.relu(self.bn1(self.up1(x)))
        x = F.leaky_relu(self.up2(x), 0.1)
        return torch.sigmoid(self.head(self.up3(x)))


def _check_runs(packed, shape):
    """The file runs batches of 1 and 3 within 1e-4 of the reference model (relative to the
    largest output)."""
    sess = InferenceSession(packed.to_bytes())
    for batch in (1, 3):
        x = torch.randn(batch, *shape)
        with torch.no_grad():
            ref = packed.reference_model()(x)
        assert_close(sess(x.numpy()), ref)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("net,shape,kind", [(Audio, (1, 120), "conv1d"),
                                            (UpNet, (6, 3, 4), "conv_transpose2d")])
def test_compress_from_a_batch_1_example_runs_at_batches_1_and_3(net, shape, kind, preset):
    torch.manual_seed(4)
    model = _trained_bn(net())
    packed = compress(model, torch.randn(1, *shape), preset=preset)
    assert packed.file.version == 3
    assert packed.file.graph["inputs"][0]["shape"] == [None, *shape]
    ops = [n["op"] for n in packed.file.graph["nodes"]]
    assert kind in ops
    layers = {n["name"]: n for n in packed.file.graph["nodes"] if n["op"] == kind}
    for name, node in layers.items():
        weight = packed.file.tensor(node["params"]["weight"])
        assert weight.encoding == "sparse_codebook"
        assert list(weight.shape) == list(model.get_submodule(name).weight.shape)
        assert packed.settings[name]["bits"] == PRESETS[preset][f"kind:{kind}"]["bits"]
    if net is Audio:
        assert ops.count("batch_norm") == 1  # bn3 follows a relu
        assert packed.file.metadata["recipe"]["batchnorm_folded"] == 3
    else:
        assert "batch_norm" not in ops
    _check_runs(packed, shape)


def test_conv_transpose2d_rows_are_input_channels():
    """The compressor stores the PyTorch weight [in, out/groups, kh, kw] with a row per input
    channel: the decoded file equals the reference model's weight."""
    torch.manual_seed(5)
    packed = compress(UpNet().eval(), torch.randn(1, 6, 3, 4), preset="deep-compression")
    ref = packed.reference_model()
    for name in ("up1", "up2", "up3"):
        w = ref.get_submodule(name).weight.detach().numpy()
        stored = packed.file.sparse(f"{name}.weight")
        assert (stored.rows, stored.n_cols) == (w.shape[0], w[0].size)
        np.testing.assert_array_equal(stored.to_dense(), w)
        assert (w != 0).mean() == pytest.approx(0.5, abs=0.02)


def test_fold_batchnorm_1d_gives_the_same_outputs():
    torch.manual_seed(6)
    model = _trained_bn(Audio())
    folded = copy.deepcopy(model)
    x = torch.randn(2, 1, 120)
    assert fold_batchnorm(folded, x) == 3
    assert isinstance(folded.bn1, nn.Identity) and isinstance(folded.bn4, nn.Identity)
    assert isinstance(folded.bn3, nn.BatchNorm1d)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    up = _trained_bn(UpNet())
    folded = copy.deepcopy(up)
    x = torch.randn(2, 6, 3, 4)
    assert fold_batchnorm(folded, x) == 1
    with torch.no_grad():
        torch.testing.assert_close(folded(x), up(x), rtol=1e-5, atol=1e-5)


class SeqLinear(nn.Module):
    """A linear over [N, L, F] then BatchNorm1d(L): the BatchNorm normalises L, not the
    linear's features (L == F here), so it must not fold; it runs as batch_norm."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.bn = nn.BatchNorm1d(5)

    def forward(self, x):
        return self.bn(self.fc(x))


def test_batchnorm1d_over_a_linear_of_3d_input_is_kept_and_runs():
    torch.manual_seed(7)
    model = _trained_bn(SeqLinear())
    assert fold_batchnorm(copy.deepcopy(model), torch.randn(1, 5, 4)) == 0
    packed = compress(model, torch.randn(1, 5, 4), preset="lossless-ish")
    assert [n["op"] for n in packed.file.graph["nodes"]] == ["linear", "batch_norm"]
    _check_runs(packed, (5, 4))


def test_recipes_and_presets_know_the_new_kinds():
    torch.manual_seed(8)
    kinds = layer_kinds(UpNet().eval(), torch.randn(1, 6, 3, 4))
    assert kinds == {"up1": "conv_transpose2d", "up2": "conv_transpose2d",
                     "up3": "conv_transpose2d", "head": "conv2d"}
    assert layer_kinds(Audio().eval(), torch.randn(1, 1, 120))["conv2"] == "conv1d"
    for preset, table in PRESETS.items():
        assert table["kind:conv1d"] == table["kind:conv_transpose2d"] == table["kind:conv2d"]
    settings = resolve({"c": "conv1d", "u": "conv_transpose2d", "f": "linear"},
                       {"kind:conv1d": {"bits": 4}, "kind:conv_transpose2d": {"density": 0.3}})
    assert settings["c"]["bits"] == 4 and settings["c"]["density"] == 0.5
    assert settings["u"]["density"] == 0.3 and settings["u"]["bits"] == 8
    with pytest.raises(CdnnRecipeError, match="kinds are kind:linear, kind:conv2d, "
                                              "kind:conv1d, kind:conv_transpose2d"):
        resolve({"c": "conv1d"}, {"kind:conv3d": {"bits": 4}})


def test_capture_of_output_size_and_of_padding_beyond_the_kernel():
    class Sized(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)

        def forward(self, x):
            return self.up(x, output_size=[8, 8])

    torch.manual_seed(9)
    cap = capture(Sized().eval(), torch.randn(1, 2, 4, 4))
    assert cap.nodes[0]["attrs"]["output_padding"] == [1, 1]
    packed = compress(Sized().eval(), torch.randn(1, 2, 4, 4), preset="lossless-ish")
    _check_runs(packed, (2, 4, 4))

    with pytest.raises(CdnnUnsupportedError, match=r"aten\.conv1d.*padding 3 beyond the "
                                                    r"dilated kernel's reach 1.*module '1'"):
        capture(nn.Sequential(nn.Conv1d(2, 2, 3, padding=1),
                              nn.Conv1d(2, 2, 2, padding=3)).eval(), torch.randn(1, 2, 8))


class M5(nn.Module):
    """M5 (Dai et al. 2017) at small width: Conv1d 80/4, then 3-wide Conv1d, each with
    BatchNorm1d (folded), ReLU and a 4x max pool; the mean over time, fc, log_softmax."""

    def __init__(self, width=8, classes=10):
        super().__init__()
        widths = (1, width, width, 2 * width, 4 * width)
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 80 if i == 0 else 3, stride=4 if i == 0 else 1)
                                   for i, (a, b) in enumerate(zip(widths, widths[1:])))
        self.bns = nn.ModuleList(nn.BatchNorm1d(b) for b in widths[1:])
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.max_pool1d(F.relu(bn(conv(x))), 4)
        return F.log_softmax(self.fc(x.mean(-1)), dim=-1)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_m5_converts_from_a_batch_1_example(preset):
    torch.manual_seed(10)
    model = _trained_bn(M5())
    packed = compress(model, torch.randn(1, 1, 4000), preset=preset)
    ops = [n["op"] for n in packed.file.graph["nodes"]]
    assert ops.count("conv1d") == 4 and "batch_norm" not in ops
    assert {"max_pool1d", "mean", "log_softmax"} <= set(ops)
    coded = sum(math.prod(t.shape) for t in packed.file.tensors
                if t.encoding == "sparse_codebook")
    assert coded >= 0.9 * packed.dense_params
    _check_runs(packed, (1, 4000))
    x = torch.randn(3, 1, 4000)
    with torch.no_grad():
        assert packed.reference_model()(x).std() > 0.01  # the outputs differ: a real check


def test_a_transposed_conv_that_crops_everything_is_refused_at_load():
    data = _conv_layer("conv_transpose2d", {"groups": 2, "padding": [3, 0]}, input_shape=(4, 1, 1))
    with pytest.raises(CdnnFormatError, match="does not fit its declared input shapes.*"
                                              "empty output"):
        InferenceSession(data)
