"""cdnn_runtime.kernels against PyTorch references.

Sparse layers are checked against torch.nn.functional on a dense weight that the test builds
from the CSR arrays; every comparison allows 1e-4 * max|reference| (float32, summation order
differs). All data comes from seeded numpy generators.
"""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from cdnn_runtime.constants import MAX_UINT16_COLUMNS  # noqa: E402
from cdnn_runtime.errors import CdnnError  # noqa: E402
from cdnn_runtime.kernels import (  # noqa: E402
    Activation,
    KernelArgumentError,
    conv2d,
    dense_linear,
    elementwise,
    linear,
    norms,
    parse_activation,
    pooling,
    prepare_conv,
    prepare_linear,
    shape,
)
from cdnn_runtime.kernels.pooling import pool_output_size  # noqa: E402

RTOL = 1e-4


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def make_csr(rng, rows, n_cols, density=0.3, k=16, mask=None, col_dtype=None):
    """Random CSR + codebook weight and the dense float32 [rows, n_cols] it stands for."""
    if mask is None:
        mask = rng.random((rows, n_cols)) < density
    r_idx, c_idx = np.nonzero(mask)
    row_ptr = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(r_idx, minlength=rows), out=row_ptr[1:])
    if col_dtype is None:
        col_dtype = np.uint16 if n_cols <= MAX_UINT16_COLUMNS else np.int32
    codebook = rng.standard_normal(k).astype(np.float32)
    codes = rng.integers(0, k, size=r_idx.size).astype(np.uint8)
    dense = np.zeros((rows, n_cols), np.float32)
    dense[r_idx, c_idx] = codebook[codes]
    return row_ptr, c_idx.astype(col_dtype), codes, codebook, dense


def assert_close(y, ref, rtol=RTOL):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    assert isinstance(y, np.ndarray)
    assert y.dtype == np.float32
    assert y.shape == ref.shape, (y.shape, ref.shape)
    nan_y, nan_r = np.isnan(y), np.isnan(ref)
    assert np.array_equal(nan_y, nan_r), "NaN positions differ"
    inf_r = np.isinf(ref)
    assert np.array_equal(y[inf_r], ref[inf_r]), "Inf values differ"
    assert np.array_equal(np.isinf(y), inf_r), "Inf positions differ"
    fin = ~(nan_r | inf_r)
    if fin.any():
        scale = float(np.abs(ref[fin]).max())
        err = float(np.abs(y[fin].astype(np.float64) - ref[fin]).max())
        assert err <= rtol * scale or err == 0.0, f"max error {err} > {rtol} * {scale}"


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


TORCH_ACT = {
    "none": lambda v: v,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda v: F.leaky_relu(v, 0.01),
    "leaky_relu:0.2": lambda v: F.leaky_relu(v, 0.2),
    "leaky_relu:-1.5": lambda v: F.leaky_relu(v, -1.5),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    # float64: PyTorch's vectorised float32 erf gives GELU(+inf) = NaN on AVX-512 CPUs
    "gelu": lambda v: F.gelu(v.double()).float(),
    "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
}


# ---------------------------------------------------------------------------------------------
# Activation specs
# ---------------------------------------------------------------------------------------------


def test_parse_activation():
    assert parse_activation(None).code == parse_activation("none").code == 0
    a = parse_activation("leaky_relu:0.25")
    assert (a.code, a.param) == (parse_activation("leaky_relu").code, 0.25)
    assert parse_activation("leaky_relu").param == pytest.approx(0.01)
    assert parse_activation(("leaky_relu", 0.5)).param == 0.5
    assert parse_activation(a) is a
    assert isinstance(parse_activation("ReLU"), Activation)
    for bad in ("swish", "relu:1", "leaky_relu:x", ("tanh", 1.0), 3, ("leaky_relu", "x"),
                "leaky_relu:inf"):
        with pytest.raises(KernelArgumentError):
            parse_activation(bad)


def test_errors_are_value_errors_and_cdnn_errors():
    with pytest.raises(ValueError):
        parse_activation("nope")
    with pytest.raises(CdnnError):
        parse_activation("nope")


# ---------------------------------------------------------------------------------------------
# Sparse linear
# ---------------------------------------------------------------------------------------------


def _linear_case(name, rng):
    rows, n_cols = 37, 53
    if name == "random":
        return make_csr(rng, rows, n_cols, 0.3)
    if name == "empty_rows":
        mask = rng.random((rows, n_cols)) < 0.4
        mask[::3] = False
        return make_csr(rng, rows, n_cols, mask=mask)
    if name == "all_pruned":
        return make_csr(rng, rows, n_cols, mask=np.zeros((rows, n_cols), bool))
    if name == "single":
        mask = np.zeros((rows, n_cols), bool)
        mask[17, 52] = True
        return make_csr(rng, rows, n_cols, mask=mask)
    if name == "dense":
        return make_csr(rng, rows, n_cols, mask=np.ones((rows, n_cols), bool), k=256)
    if name == "one_centroid":
        return make_csr(rng, rows, n_cols, 0.5, k=1)
    if name == "int32_cols_small":
        return make_csr(rng, rows, n_cols, 0.3, col_dtype=np.int32)
    raise AssertionError(name)


LINEAR_CASES = ["random", "empty_rows", "all_pruned", "single", "dense", "one_centroid",
                "int32_cols_small"]


@pytest.mark.parametrize("case", LINEAR_CASES)
@pytest.mark.parametrize("batch", [0, 1, 3, 7, 9])
@pytest.mark.parametrize("parallel", [False, True])
def test_linear_matches_torch(case, batch, parallel):
    rng = np.random.default_rng(LINEAR_CASES.index(case) * 100 + batch)
    row_ptr, col_idx, codes, codebook, dense = _linear_case(case, rng)
    bias = rng.standard_normal(dense.shape[0]).astype(np.float32)
    x = rng.standard_normal((batch, dense.shape[1])).astype(np.float32)
    for b in (bias, None):
        y = linear(x, row_ptr, col_idx, codes, codebook, b, "none", parallel=parallel)
        assert_close(y, F.linear(t(x), t(dense), None if b is None else t(b)))


@pytest.mark.parametrize("case", ["random", "empty_rows", "int32_cols_small"])
def test_linear_batches_in_slices(case, monkeypatch):
    """From TRANSPOSED_MIN_BATCH samples a layer runs as a 1x1 convolution of the transposed
    input, batches over BATCH_SLICE in slices (the last one at least half a slice);
    BATCH_SLICE made small here, so that every way a batch splits shows on small batches."""
    from cdnn_runtime.kernels import sparse_linear as SL
    monkeypatch.setattr(SL, "BATCH_SLICE", 16)
    rng = np.random.default_rng(31)
    row_ptr, col_idx, codes, codebook, dense = _linear_case(case, rng)
    bias = rng.standard_normal(dense.shape[0]).astype(np.float32)
    layer = prepare_linear(row_ptr, col_idx, codes, codebook, bias, in_features=dense.shape[1])
    x = rng.standard_normal((57, dense.shape[1])).astype(np.float32)
    for batch in (8, 16, 23, 24, 25, 40, 57):
        for parallel in (False, True):
            assert_close(layer(x[:batch], "relu", parallel=parallel),
                         F.relu(F.linear(t(x[:batch]), t(dense), t(bias))))
    assert max(layer._kptr) < 24  # the sizes of the last slices run: none as long as 1.5 runs


@pytest.mark.parametrize("act", list(TORCH_ACT))
@pytest.mark.parametrize("batch", [1, 2, 8])
def test_linear_fused_activations(act, batch):
    rng = np.random.default_rng(7 + batch)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 41, 29, 0.4)
    bias = rng.standard_normal(41).astype(np.float32)
    x = (3 * rng.standard_normal((batch, 29))).astype(np.float32)
    ref = TORCH_ACT[act](F.linear(t(x), t(dense), t(bias)))
    assert_close(linear(x, row_ptr, col_idx, codes, codebook, bias, act, parallel=False), ref)
    assert_close(linear(x, row_ptr, col_idx, codes, codebook, bias, act, parallel=True), ref)


def test_linear_auto_parallel_larger_layer():
    rng = np.random.default_rng(3)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 300, 700, 0.2, k=256)
    layer = prepare_linear(row_ptr, col_idx, codes, codebook, None, in_features=700)
    assert layer.nnz == col_idx.shape[0] and layer.out_features == 300
    for batch in (1, 5, 16):
        x = rng.standard_normal((batch, 700)).astype(np.float32)
        assert_close(layer(x, "relu"), F.relu(F.linear(t(x), t(dense))))


def test_linear_int32_columns_beyond_uint16():
    rng = np.random.default_rng(11)
    n_cols = 70001
    mask = rng.random((3, n_cols)) < 0.01
    mask[0, 70000] = mask[2, 65536] = True
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 3, n_cols, mask=mask)
    assert col_idx.dtype == np.int32 and col_idx.max() >= 65536
    x = rng.standard_normal((2, n_cols)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    for batch in (1, 2):
        assert_close(linear(x[:batch], row_ptr, col_idx, codes, codebook, bias),
                     F.linear(t(x[:batch]), t(dense), t(bias)))
    with pytest.raises(KernelArgumentError, match="int32"):
        linear(x, row_ptr, col_idx.astype(np.uint16), codes, codebook, bias)


def test_linear_uint16_full_range():
    rng = np.random.default_rng(12)
    mask = rng.random((2, 65536)) < 0.01
    mask[1, 65535] = True
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 2, 65536, mask=mask)
    assert col_idx.dtype == np.uint16 and col_idx.max() == 65535
    x = rng.standard_normal((1, 65536)).astype(np.float32)
    assert_close(linear(x, row_ptr, col_idx, codes, codebook), F.linear(t(x), t(dense)))


@pytest.mark.parametrize("batch", [1, 3, 9])
@pytest.mark.parametrize("act", ["none", "relu"])
def test_linear_nan_inf_propagation(batch, act):
    """A NaN or Inf input reaches every output whose row stores that column; rows where the
    column is pruned do not read it (a pruned weight is absent, not a multiplication by 0)."""
    rng = np.random.default_rng(21)
    n_rows, n_cols = 12, 10
    mask = rng.random((n_rows, n_cols)) < 0.5
    mask[:, 2] = True  # column 2 stored in every row
    mask[:6, 5] = True  # column 5 stored in rows 0..5 only
    mask[6:, 5] = False
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, n_rows, n_cols, mask=mask)
    codebook[codebook == 0] = 1.0
    dense[mask] = codebook[codes]
    x = rng.standard_normal((batch, n_cols)).astype(np.float32)
    x[0, 2] = np.nan
    if batch > 1:
        x[1, 2] = np.inf
        x[2, 5] = -np.inf
    y = linear(x, row_ptr, col_idx, codes, codebook, None, act, parallel=False)
    assert_close(linear(x, row_ptr, col_idx, codes, codebook, None, act, parallel=True), y)
    ref = TORCH_ACT[act](F.linear(t(x), t(dense)))
    assert np.isnan(y[0]).all()
    if batch > 1:
        assert_close(y[1], ref[1])
        assert np.isinf(y[1]).all() or act == "relu"
        assert_close(y[2, :6], ref[2, :6])
        assert np.isinf(y[2, :6]).all() or act == "relu"
        x_clean = x[2].copy()
        x_clean[5] = 0.0
        assert_close(y[2, 6:], TORCH_ACT[act](F.linear(t(x_clean[None]), t(dense)))[0, 6:])
    if batch > 2:
        assert_close(y[3:], ref[3:])


def test_linear_argument_checks():
    rng = np.random.default_rng(5)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 6, 8, 0.5)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    bad = [
        ((x.astype(np.float64), row_ptr, col_idx, codes, codebook), "dtype float32"),
        ((x[:, ::2], row_ptr, col_idx, codes, codebook), "float32|contiguous|features"),
        ((np.asfortranarray(np.ones((2, 8), np.float32)), row_ptr, col_idx, codes, codebook),
         "contiguous"),
        ((x, row_ptr.astype(np.int32), col_idx, codes, codebook), "row_ptr"),
        ((x, row_ptr, col_idx.astype(np.int64), codes, codebook), "col_idx"),
        ((x, row_ptr, col_idx, codes[:-1], codebook), "codes"),
        ((x, row_ptr, col_idx, codes, np.zeros(0, np.float32)), "codebook"),
        ((x, row_ptr, col_idx, codes, np.zeros(257, np.float32)), "codebook"),
        ((np.ascontiguousarray(x[:, :7]), row_ptr, col_idx[col_idx < 7].copy(), codes, codebook),
         "entries"),
        ((x.reshape(2, 8, 1), row_ptr, col_idx, codes, codebook), "2-D"),
    ]
    for args, msg in bad:
        with pytest.raises(KernelArgumentError, match=msg):
            linear(*args)
    with pytest.raises(KernelArgumentError, match="bias"):
        linear(x, row_ptr, col_idx, codes, codebook, np.zeros(5, np.float32))
    c2 = col_idx.copy()
    c2[0] = 8
    with pytest.raises(KernelArgumentError, match="out of range"):
        linear(x, row_ptr, c2, codes, codebook)
    r2 = row_ptr.copy()
    r2[2], r2[3] = r2[3], r2[2]
    if r2[2] != r2[3]:
        with pytest.raises(KernelArgumentError, match="non-decreasing"):
            linear(x, r2, col_idx, codes, codebook)
    c3 = col_idx.copy()
    first_long_row = int(np.argmax(np.diff(row_ptr) >= 2))
    s = row_ptr[first_long_row]
    c3[s], c3[s + 1] = c3[s + 1], c3[s]
    with pytest.raises(KernelArgumentError, match="increasing"):
        linear(x, row_ptr, c3, codes, codebook)
    codes2 = codes.copy()
    codes2[0] = 16
    with pytest.raises(KernelArgumentError, match="codebook size"):
        linear(x, row_ptr, col_idx, codes2, codebook)
    layer = prepare_linear(row_ptr, col_idx, codes, codebook, in_features=8)
    with pytest.raises(KernelArgumentError, match="features"):
        layer(np.zeros((1, 9), np.float32))


# ---------------------------------------------------------------------------------------------
# Sparse convolution
# ---------------------------------------------------------------------------------------------

# name: (batch, cin, cout, H, W, kernel, stride, padding, dilation, groups, density)
CONV_CASES = {
    "3x3": (2, 3, 5, 9, 11, 3, 1, 1, 1, 1, 0.5),
    "1x1": (2, 6, 4, 7, 5, 1, 1, 0, 1, 1, 0.5),
    "1x1_stride2": (1, 5, 3, 8, 7, 1, 2, 0, 1, 1, 0.6),
    "11x11_stride4": (1, 3, 4, 31, 27, 11, 4, 2, 1, 1, 0.3),
    "big_padding": (1, 2, 3, 6, 5, 3, 2, 3, 1, 1, 0.7),
    "dilation2": (2, 4, 3, 12, 10, 3, 1, 2, 2, 1, 0.5),
    "groups2": (2, 4, 6, 10, 9, (3, 5), (2, 1), (3, 2), 2, 2, 0.5),
    "depthwise": (3, 6, 6, 8, 7, 3, 2, 1, 1, 6, 0.8),
    "depthwise_x2": (1, 4, 8, 9, 9, 5, 1, 2, 1, 4, 0.8),
    "odd_sizes": (1, 3, 5, 13, 9, (3, 5), (3, 2), (1, 2), (2, 1), 1, 0.4),
    "one_out_channel": (2, 5, 1, 7, 7, 3, 1, 1, 1, 1, 0.5),
    "batch7": (7, 3, 4, 6, 6, 3, 1, 1, 1, 1, 0.5),
    "batch0": (0, 3, 4, 6, 6, 3, 1, 1, 1, 1, 0.5),
    "all_pruned": (2, 3, 4, 6, 6, 3, 1, 1, 1, 1, 0.0),
    "single": (1, 3, 4, 6, 6, 3, 1, 1, 1, 1, "single"),
    "all_nonzero": (1, 3, 4, 6, 6, 3, 2, 1, 1, 1, 1.0),
    "one_centroid": (1, 3, 4, 6, 6, 3, 1, 1, 1, 1, "k1"),
    "kernel_is_input": (2, 3, 4, 5, 5, 5, 1, 0, 1, 1, 0.5),
}


def _conv_weight(rng, cout, cin_g, kh, kw, density):
    n_cols = cin_g * kh * kw
    if density == "single":
        mask = np.zeros((cout, n_cols), bool)
        mask[cout - 1, n_cols // 2] = True
        return make_csr(rng, cout, n_cols, mask=mask)
    if density == "k1":
        return make_csr(rng, cout, n_cols, 0.5, k=1)
    return make_csr(rng, cout, n_cols, density)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("parallel", [False, True])
def test_conv_matches_torch(case, parallel):
    batch, cin, cout, h, w, k, s, p, d, g, density = CONV_CASES[case]
    rng = np.random.default_rng(list(CONV_CASES).index(case))
    kh, kw = _pair(k)
    row_ptr, col_idx, codes, codebook, dense = _conv_weight(rng, cout, cin // g, kh, kw, density)
    weight = dense.reshape(cout, cin // g, kh, kw)
    bias = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((batch, cin, h, w)).astype(np.float32)
    ref = F.conv2d(t(x), t(weight), t(bias), stride=s, padding=p, dilation=d, groups=g)
    y = conv2d(x, row_ptr, col_idx, codes, codebook, bias, k, s, p, d, g, parallel=parallel)
    assert_close(y, ref)
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, None, in_channels=cin, kernel_size=k,
                         stride=s, padding=p, dilation=d, groups=g)
    assert_close(layer(x, parallel=parallel), F.conv2d(t(x), t(weight), None, s, p, d, g))


@pytest.mark.parametrize("act", list(TORCH_ACT))
def test_conv_fused_activations(act):
    rng = np.random.default_rng(31)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 4, 3 * 9, 0.5)
    weight = dense.reshape(4, 3, 3, 3)
    bias = rng.standard_normal(4).astype(np.float32)
    x = (2 * rng.standard_normal((2, 3, 8, 8))).astype(np.float32)
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, bias, in_channels=3, kernel_size=3,
                         padding=1)
    ref = TORCH_ACT[act](F.conv2d(t(x), t(weight), t(bias), padding=1))
    assert_close(layer(x, act, parallel=False), ref)
    assert_close(layer(x, act, parallel=True), ref)


@pytest.mark.parametrize("case", ["groups2", "depthwise", "depthwise_x2"])
@pytest.mark.parametrize("act", list(TORCH_ACT))
def test_grouped_conv_group_by_group_and_whole_split_agree(case, act, monkeypatch):
    """A grouped layer with few channels per group runs group by group (each task splits only
    its own groups' input); the whole-input split in bands computes the same."""
    from cdnn_runtime.kernels import sparse_conv as SC
    batch, cin, cout, h, w, k, s, p, d, g, density = CONV_CASES[case]
    rng = np.random.default_rng(120 + list(CONV_CASES).index(case))
    kh, kw = _pair(k)
    row_ptr, col_idx, codes, codebook, dense = _conv_weight(rng, cout, cin // g, kh, kw, density)
    bias = rng.standard_normal(cout).astype(np.float32)
    x = (3 * rng.standard_normal((batch, cin, h, w))).astype(np.float32)
    ref = TORCH_ACT[act](F.conv2d(t(x), t(dense.reshape(cout, cin // g, kh, kw)), t(bias),
                                  stride=s, padding=p, dilation=d, groups=g))
    for limit, band_is_zero in ((SC.GROUP_SPLIT_MAX, True), (0, False)):
        monkeypatch.setattr(SC, "GROUP_SPLIT_MAX", limit)
        layer = prepare_conv(row_ptr, col_idx, codes, codebook, bias, in_channels=cin,
                             kernel_size=k, stride=s, padding=p, dilation=d, groups=g)
        assert (layer._geometry_for(h, w)[9] == 0) is band_is_zero
        for parallel in (False, True):
            y = layer(x, act, parallel=parallel)
            assert_close(y, ref)


def test_shifted_sum_every_run_length_and_start():
    """The register loop of the convolution (_simd.shifted_sum) against numpy for every run
    length up to three register runs (whole vectors, a masked last vector, one to eight
    vectors), from zero and on top of earlier sums, and with nothing beyond the run written:
    the floats after it in acc keep their value."""
    from numba import njit

    from cdnn_runtime.kernels._simd import SUM_RUN, shifted_sum

    @njit
    def run(xs, base, k, end, entry, tap_bits, codes, codebook, tap_off, chan_stride, acc, n,
            init):
        shifted_sum(xs, base, k, end, entry, tap_bits, codes, codebook, tap_off, chan_stride,
                    acc, n, init)

    rng = np.random.default_rng(7)
    tap_bits, n_ch, chan_stride = 2, 5, 4 * SUM_RUN
    tap_off = np.array([0, 1, 9, 17], np.int64)
    xs = rng.standard_normal(n_ch * chan_stride + 40).astype(np.float32)
    codebook = rng.standard_normal(7).astype(np.float32)
    n_entries = 9  # odd: the two-set loop's last entry alone
    ch = rng.integers(0, n_ch, n_entries)
    tap = rng.integers(0, 4, n_entries)
    entry = ((ch << tap_bits) | tap).astype(np.uint32)
    codes = rng.integers(0, 7, n_entries).astype(np.uint8)
    base = 3
    for n in list(range(0, 2 * SUM_RUN + 2)) + [3 * SUM_RUN - 1]:
        for k, end in ((0, n_entries), (2, 3), (4, 4)):
            want = np.zeros(n, np.float64)
            for i in range(k, end):
                src = base + ch[i] * chan_stride + tap_off[tap[i]]
                want += np.float64(codebook[codes[i]]) * xs[src:src + n]
            for init in (False, True):
                acc = np.full(n + 5, 2.0, np.float32)
                run(xs, base, k, end, entry, tap_bits, codes, codebook, tap_off, chan_stride,
                    acc, n, init)
                np.testing.assert_allclose(acc[:n], want + (2.0 if init else 0.0), rtol=1e-5,
                                           atol=1e-5, err_msg=f"n={n} k={k} end={end}")
                assert (acc[n:] == 2.0).all(), f"n={n}: written beyond the run"


def test_chunk_pointers_split_each_row_by_input_channel(monkeypatch):
    """kptr[o, c]:kptr[o, c+1] are row o's entries whose input channel falls in chunk c (as
    many channels per chunk as CHUNK_BYTES holds); a layer whose rows are not in input-channel
    order gets one chunk."""
    from cdnn_runtime.kernels import sparse_conv as SC

    rng = np.random.default_rng(8)
    n_rows, n_in, tap_bits = 6, 40, 3
    counts = rng.integers(1, 30, n_rows)
    counts[2] = 0  # an empty row
    row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    in_ch = np.concatenate([np.sort(rng.integers(0, n_in, c)) for c in counts]).astype(np.int64)
    entry = ((in_ch << tap_bits) | rng.integers(0, 8, in_ch.shape[0])).astype(np.uint32)
    rows_read, wq, n_phase = 3, 8, 2
    per_channel = 4 * n_phase * rows_read * wq
    for per in (1, 3, 7, n_in):
        monkeypatch.setattr(SC, "CHUNK_BYTES", per * per_channel)
        kptr = SC.chunk_pointers(row_ptr, entry, tap_bits, n_in, rows_read, wq, n_phase)
        n_chunks = -(-n_in // per)
        assert kptr.shape == (n_rows, n_chunks + 1)
        for o in range(n_rows):
            mine = np.arange(row_ptr[o], row_ptr[o + 1])
            for c in range(n_chunks):
                want = mine[in_ch[mine] // per == c]
                assert np.array_equal(np.arange(kptr[o, c], kptr[o, c + 1]), want), (per, o, c)
    monkeypatch.setattr(SC, "CHUNK_BYTES", per_channel)
    backwards = entry.copy()
    first = slice(row_ptr[0], row_ptr[1])
    backwards[first] = np.sort(entry[first])[::-1]
    assert in_ch[first].min() < in_ch[first].max()
    kptr = SC.chunk_pointers(row_ptr, backwards, tap_bits, n_in, rows_read, wq, n_phase)
    assert np.array_equal(kptr, np.stack([row_ptr[:-1], row_ptr[1:]], axis=1))


@pytest.mark.parametrize("stride", [(7, 1), (1, 9), (1 << 20, 1 << 20)])
def test_conv_stride_beyond_the_input_reads_only_the_input(stride):
    """A stride that never steps (one output row or column) costs no more than the input: a
    file may declare strides up to 2**20, and the phase split must not allocate that many."""
    import tracemalloc
    rng = np.random.default_rng(33)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 4, 3 * 6, 0.5)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, None, in_channels=3,
                         kernel_size=(2, 3), stride=stride, padding=1)
    layer(x, parallel=False)  # compiled before measuring
    tracemalloc.start()
    y = layer(x, parallel=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_close(y, F.conv2d(t(x), t(dense.reshape(4, 3, 2, 3)), stride=stride, padding=1))
    assert peak < 64 * x.nbytes


def test_conv_larger_layer_auto_parallel_and_reuse():
    rng = np.random.default_rng(32)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 24, 16 * 9, 0.3, k=256)
    weight = dense.reshape(24, 16, 3, 3)
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, None, in_channels=16, kernel_size=3,
                         padding=1)
    for size in (20, 13, 20):
        x = rng.standard_normal((2, 16, size, size + 3)).astype(np.float32)
        assert_close(layer(x, "relu6"), F.relu6(F.conv2d(t(x), t(weight), padding=1)))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_asymmetric_and_same_padding():
    rng = np.random.default_rng(33)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 3, 2 * 4 * 3, 0.6)
    weight = dense.reshape(3, 2, 4, 3)
    x = rng.standard_normal((2, 2, 9, 8)).astype(np.float32)
    top, left, bottom, right = 2, 0, 1, 3
    ref = F.conv2d(F.pad(t(x), (left, right, top, bottom)), t(weight), stride=(2, 1))
    y = conv2d(x, row_ptr, col_idx, codes, codebook, None, (4, 3), (2, 1),
               (top, left, bottom, right))
    assert_close(y, ref)
    for d in (1, 2):
        ref = F.conv2d(t(x), t(weight), padding="same", dilation=d)
        assert_close(conv2d(x, row_ptr, col_idx, codes, codebook, None, (4, 3), 1, "same", d), ref)
    assert_close(conv2d(x, row_ptr, col_idx, codes, codebook, None, (4, 3), 1, "valid"),
                 F.conv2d(t(x), t(weight)))


def test_conv_int32_channel_and_column_indices():
    rng = np.random.default_rng(34)
    cin = 65537
    mask = rng.random((2, cin)) < 0.002
    mask[1, cin - 1] = True
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 2, cin, mask=mask)
    assert col_idx.dtype == np.int32
    x = rng.standard_normal((1, cin, 1, 2)).astype(np.float32)
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, None, in_channels=cin, kernel_size=1)
    assert layer.in_ch.max() == cin - 1 and layer.tap_bits == 0
    assert_close(layer(x), F.conv2d(t(x), t(dense.reshape(2, cin, 1, 1))))


def test_conv_many_taps():
    rng = np.random.default_rng(35)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 2, 2 * 17 * 17, 0.3)
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, None, in_channels=2, kernel_size=17,
                         padding=3)
    assert layer.tap_bits == 9 and layer.tap.max() >= 256
    x = rng.standard_normal((1, 2, 20, 19)).astype(np.float32)
    assert_close(layer(x), F.conv2d(t(x), t(dense.reshape(2, 2, 17, 17)), padding=3))


def test_conv_argument_checks():
    rng = np.random.default_rng(36)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 4, 2 * 9, 0.5)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    with pytest.raises(KernelArgumentError, match="divisible"):
        prepare_conv(row_ptr, col_idx, codes, codebook, in_channels=4, kernel_size=3, groups=3)
    with pytest.raises(KernelArgumentError, match="out of range"):
        prepare_conv(row_ptr, col_idx, codes, codebook, in_channels=1, kernel_size=3)
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, in_channels=4, kernel_size=3, groups=2)
    with pytest.raises(KernelArgumentError, match="channels"):
        layer(np.ascontiguousarray(x[:, :3]))
    with pytest.raises(KernelArgumentError, match="smaller"):
        layer(np.ascontiguousarray(x[:, :, :2]))
    with pytest.raises(KernelArgumentError, match="float32"):
        layer(x.astype(np.float64))
    with pytest.raises(KernelArgumentError, match="contiguous"):
        layer(x[:, :, :, ::-1])
    with pytest.raises(KernelArgumentError, match="4-D"):
        layer(x[0])
    with pytest.raises(KernelArgumentError, match="stride"):
        prepare_conv(row_ptr, col_idx, codes, codebook, in_channels=4, kernel_size=3, groups=2,
                     stride=0)
    with pytest.raises(KernelArgumentError, match="same"):
        prepare_conv(row_ptr, col_idx, codes, codebook, in_channels=4, kernel_size=3, groups=2,
                     stride=2, padding="same")
    with pytest.raises(KernelArgumentError, match="kernel_size"):
        conv2d(x, row_ptr, col_idx, codes, codebook)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def test_pool_output_size_matches_torch():
    x = torch.zeros(1, 1, 1, 1)
    for size in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    for d in (1, 2):
                        if d * (k - 1) + 1 > size + 2 * p:
                            continue
                        for ceil in (False, True):
                            x = torch.zeros(1, 1, size, 1)
                            ref = F.max_pool2d(x, (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=ceil)
                            got = pool_output_size(size, k, s, p, d, ceil)
                            assert got == ref.shape[2], (size, k, s, p, d, ceil)


MAX_POOL_CASES = [
    # (shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 7, 7), 3, 2, 1, 1, True),
    ((2, 3, 7, 7), 3, 2, 1, 1, False),
    ((1, 2, 6, 9), 2, 2, 1, 1, True),
    ((1, 2, 5, 5), 2, 2, 0, 1, True),
    ((1, 2, 9, 8), (3, 2), (2, 3), (1, 1), 1, True),
    ((1, 2, 10, 10), 3, 2, 1, 2, True),
    ((1, 2, 11, 11), 3, 1, 0, (2, 3), False),
    ((1, 1, 4, 4), 4, 1, 2, 1, True),
    ((3, 5, 5), 3, 3, 1, 1, True),
    ((0, 3, 7, 7), 3, 2, 1, 1, True),
    ((1, 2, 13, 14), 4, 3, 2, 1, True),  # stride 3: three column phases
    ((1, 2, 12, 12), (2, 5), (1, 4), (1, 2), (1, 2), False),
]


@pytest.mark.parametrize("case", range(len(MAX_POOL_CASES)))
def test_max_pool2d(case):
    shape, k, s, p, d, ceil = MAX_POOL_CASES[case]
    rng = np.random.default_rng(40 + case)
    x = rng.standard_normal(shape).astype(np.float32)
    assert_close(pooling.max_pool2d(x, k, s, p, d, ceil),
                 F.max_pool2d(t(x), k, s, p, d, ceil_mode=ceil))


def test_max_pool2d_nan_inf_and_large_input():
    rng = np.random.default_rng(49)
    x = rng.standard_normal((2, 4, 64, 64)).astype(np.float32)
    x[0, 0, 3, 3] = np.nan
    x[0, 1, 5, 0] = np.nan  # in a border column
    x[0, 2, 7, 63] = np.nan
    x[1, 2, 10, 11] = np.inf
    x[1, 3, :4, :4] = -np.inf
    for ceil in (False, True):
        assert_close(pooling.max_pool2d(x, 3, 2, 1, ceil_mode=ceil),
                     F.max_pool2d(t(x), 3, 2, 1, ceil_mode=ceil))
    assert_close(pooling.max_pool2d(x, 2), F.max_pool2d(t(x), 2))


AVG_POOL_CASES = [
    # (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    ((2, 3, 7, 7), 3, 2, 1, True, True, None),
    ((2, 3, 7, 7), 3, 2, 1, True, False, None),
    ((2, 3, 7, 7), 3, 2, 1, False, True, None),
    ((1, 2, 6, 9), 2, 2, 1, True, True, None),
    ((1, 2, 6, 9), 2, 2, 1, True, False, None),
    ((1, 2, 8, 5), (3, 2), (2, 3), (1, 1), True, True, None),
    ((1, 2, 8, 5), (3, 2), (2, 3), (1, 1), True, False, None),
    ((1, 2, 5, 5), 4, 3, 2, True, True, None),
    ((1, 2, 5, 5), 4, 3, 2, True, False, None),
    ((1, 2, 9, 9), 3, 2, 1, True, True, 5),
    ((3, 5, 5), 2, 2, 0, True, True, None),
    ((0, 3, 7, 7), 3, 2, 1, True, True, None),
    ((2, 8, 32, 32), 2, 2, 0, False, True, None),
]


@pytest.mark.parametrize("case", range(len(AVG_POOL_CASES)))
def test_avg_pool2d(case):
    shape, k, s, p, ceil, cip, div = AVG_POOL_CASES[case]
    rng = np.random.default_rng(60 + case)
    x = rng.standard_normal(shape).astype(np.float32)
    ref = F.avg_pool2d(t(x), k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    assert_close(pooling.avg_pool2d(x, k, s, p, ceil, cip, div), ref)


def test_pool_argument_checks():
    x = np.zeros((1, 1, 5, 5), np.float32)
    with pytest.raises(KernelArgumentError, match="half"):
        pooling.max_pool2d(x, 2, padding=2)
    with pytest.raises(KernelArgumentError, match="small"):
        pooling.avg_pool2d(x, 7)
    with pytest.raises(KernelArgumentError):
        pooling.max_pool2d(x[0, 0], 2)
    with pytest.raises(KernelArgumentError, match="divisor"):
        pooling.avg_pool2d(x, 2, divisor_override=0)


@pytest.mark.parametrize(
    "shape,out",
    [((2, 3, 7, 5), (3, 2)), ((1, 2, 10, 10), (3, 4)), ((1, 2, 5, 6), (7, 9)), ((2, 3, 9, 7), 1),
     ((1, 2, 6, 11), (None, 4)), ((4, 5, 6), (4, 5)), ((0, 3, 7, 7), (2, 2)),
     ((0, 4, 3, 3), 1),
     ((1, 3, 7, 7), 7), ((2, 3, 5, 4), (None, None))],  # the last two: the input's size
)
def test_adaptive_avg_pool2d(shape, out):
    rng = np.random.default_rng(80)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:min(3, x.size)] = [np.nan, np.inf, -np.inf][:x.size]
    y = pooling.adaptive_avg_pool2d(x, out)
    assert_close(y, F.adaptive_avg_pool2d(t(x), out))
    assert not np.shares_memory(y, x)
    assert_close(pooling.adaptive_max_pool2d(x, out), F.adaptive_max_pool2d(t(x), out))


# ---------------------------------------------------------------------------------------------
# Element-wise activations, softmax, normalisation
# ---------------------------------------------------------------------------------------------


def _special_values(rng, shape):
    x = (4 * rng.standard_normal(shape)).astype(np.float32)
    flat = x.reshape(-1)
    flat[:8] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, 1e-30]
    return x


@pytest.mark.parametrize("size", [(3, 5, 4, 4), (300, 300), (0, 5)])
def test_elementwise_activations(size):
    rng = np.random.default_rng(90)
    x = _special_values(rng, size) if np.prod(size) else np.zeros(size, np.float32)
    xt = t(x)
    assert_close(elementwise.relu(x), F.relu(xt))
    assert_close(elementwise.relu6(x), F.relu6(xt))
    assert_close(elementwise.leaky_relu(x), F.leaky_relu(xt))
    assert_close(elementwise.leaky_relu(x, 0.3), F.leaky_relu(xt, 0.3))
    assert_close(elementwise.sigmoid(x), torch.sigmoid(xt))
    assert_close(elementwise.tanh(x), torch.tanh(xt))
    assert_close(elementwise.gelu(x), TORCH_ACT["gelu"](xt))
    assert_close(elementwise.gelu(x, "tanh"), F.gelu(xt, approximate="tanh"))
    for spec, fn in TORCH_ACT.items():
        assert_close(elementwise.activation(x, spec), fn(xt))
    x_nc = x.T
    assert_close(elementwise.relu(x_nc), F.relu(t(x_nc)))


def test_relu_propagates_nan():
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, -1.0, 2.0], np.float32)
    y = elementwise.relu(x)
    assert np.isnan(y[:2]).all() and y[2] == np.inf and y[3] == 0.0 and y[4] == 0.0 and y[5] == 2.0


def test_prelu():
    rng = np.random.default_rng(91)
    x = _special_values(rng, (2, 3, 4, 5))
    w = rng.standard_normal(3).astype(np.float32)
    assert_close(elementwise.prelu(x, w), F.prelu(t(x), t(w)))
    w1 = np.array([0.25], np.float32)
    assert_close(elementwise.prelu(x, w1), F.prelu(t(x), t(w1)))
    x2 = x.reshape(2, -1)[:, :3].copy()
    assert_close(elementwise.prelu(x2, w), F.prelu(t(x2), t(w)))
    with pytest.raises(KernelArgumentError):
        elementwise.prelu(x, np.ones(4, np.float32))


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax(axis):
    rng = np.random.default_rng(92)
    x = (10 * rng.standard_normal((4, 6, 5))).astype(np.float32)
    x[0, 0] += 1000.0
    x[1, 1, :] = -np.inf
    x[2, 2, 1] = np.nan
    x[3, 3, 2] = np.inf
    x[3, 4, 0] = -np.inf
    assert_close(norms.softmax(x, axis), F.softmax(t(x), axis))
    assert_close(norms.log_softmax(x, axis), F.log_softmax(t(x), axis))
    e = np.zeros((0, 5), np.float32)
    assert norms.softmax(e, 1).shape == (0, 5)
    assert norms.log_softmax(e, 0).shape == (0, 5)


@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 5, 3), (0, 4, 2, 2), (2, 4, 7)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(shape, affine):
    rng = np.random.default_rng(93)
    x = _special_values(rng, shape) if np.prod(shape) else np.zeros(shape, np.float32)
    c = shape[1]
    mean = rng.standard_normal(c).astype(np.float32)
    var = rng.random(c).astype(np.float32) + 0.1
    w = rng.standard_normal(c).astype(np.float32) if affine else None
    b = rng.standard_normal(c).astype(np.float32) if affine else None
    ref = F.batch_norm(t(x), t(mean), t(var), None if w is None else t(w),
                       None if b is None else t(b), training=False, eps=1e-3)
    assert_close(norms.batch_norm(x, mean, var, w, b, eps=1e-3), ref)


@pytest.mark.parametrize("shape", [(2, 7, 5, 6), (3, 4, 9), (1, 16, 13, 13), (0, 3, 4, 4)])
@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (2, 0.5, 0.6, 1.0),
                                               (1, 1e-3, 1.0, 1.0), (9, 0.3, 0.75, 0.5)])
def test_local_response_norm(shape, size, alpha, beta, k):
    rng = np.random.default_rng(94)
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    ref = F.local_response_norm(t(x), size, alpha, beta, k)
    assert_close(norms.local_response_norm(x, size, alpha, beta, k), ref)


# ---------------------------------------------------------------------------------------------
# Dense linear, arithmetic, plumbing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [0, 1, 7])
def test_linear_dense(batch):
    rng = np.random.default_rng(95)
    w = rng.standard_normal((10, 12)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    x = rng.standard_normal((batch, 12)).astype(np.float32)
    assert_close(dense_linear.linear_dense(x, w, b), F.linear(t(x), t(w), t(b)))
    assert_close(dense_linear.linear_dense(x, w, None, "tanh"), torch.tanh(F.linear(t(x), t(w))))
    if batch:
        x[0, 3] = np.nan
        assert np.isnan(dense_linear.linear_dense(x, w, b)[0]).all()
    with pytest.raises(KernelArgumentError):
        dense_linear.linear_dense(x[:, :5], w)


def test_add_mul_broadcast():
    rng = np.random.default_rng(96)
    a = _special_values(rng, (2, 3, 4, 1))
    b = rng.standard_normal((3, 1, 5)).astype(np.float32)
    assert_close(elementwise.add(a, b), t(a) + t(b))
    assert_close(elementwise.mul(a, b), t(a) * t(b))
    assert_close(elementwise.add(a, 2.5), t(a) + 2.5)
    assert_close(elementwise.mul(a, np.float32(-1)), -t(a))
    assert elementwise.add(np.zeros((0, 3), np.float32), np.ones(3, np.float32)).shape == (0, 3)
    with pytest.raises(KernelArgumentError, match="broadcast"):
        elementwise.add(a, np.ones((5, 1), np.float32))
    with pytest.raises(KernelArgumentError, match="float32"):
        elementwise.mul(a, np.ones(1, np.float64))


def test_cat_flatten_reshape_permute():
    rng = np.random.default_rng(97)
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 2, 4, 5)).astype(np.float32)
    assert_close(shape.cat([a, b], 1), torch.cat([t(a), t(b)], 1))
    assert_close(shape.cat([a, a], -1), torch.cat([t(a), t(a)], -1))
    with pytest.raises(KernelArgumentError):
        shape.cat([a, b], 0)
    with pytest.raises(KernelArgumentError):
        shape.cat([], 0)
    assert_close(shape.flatten(a), torch.flatten(t(a), 1))
    assert_close(shape.flatten(a, 0), torch.flatten(t(a)))
    assert_close(shape.flatten(a, 1, 2), torch.flatten(t(a), 1, 2))
    e = np.zeros((0, 3, 4, 5), np.float32)
    assert shape.flatten(e).shape == (0, 60)
    assert_close(shape.reshape(a, (6, -1)), t(a).reshape(6, -1))
    assert shape.reshape(e, (0, 60)).shape == (0, 60)
    with pytest.raises(KernelArgumentError):
        shape.reshape(a, (7, -1))
    with pytest.raises(KernelArgumentError):
        shape.reshape(e, (-1, 0))
    p = shape.permute(a, (0, 2, 3, 1))
    assert p.flags.c_contiguous
    assert_close(p, t(a).permute(0, 2, 3, 1))
    assert_close(shape.permute(a, (-1, 0, 1, 2)), t(a).permute(-1, 0, 1, 2))
    with pytest.raises(KernelArgumentError):
        shape.permute(a, (0, 1, 1, 2))


# ---------------------------------------------------------------------------------------------
# Import hygiene
# ---------------------------------------------------------------------------------------------


def test_kernels_import_without_torch():
    code = (
        "import sys, cdnn_runtime.kernels; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'pandas')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------------
# Chains of linear layers, banded convolution, max pooling with windows inside, CSR checks
# ---------------------------------------------------------------------------------------------


def _chain_layers(rng, widths, acts, col_dtype=None):
    layers, dense = [], []
    for (n_in, n_out), act in zip(zip(widths, widths[1:]), acts):
        row_ptr, col_idx, codes, codebook, w = make_csr(rng, n_out, n_in, 0.3, col_dtype=col_dtype)
        bias = rng.standard_normal(n_out).astype(np.float32) if n_out % 2 else None
        layer = prepare_linear(row_ptr, col_idx, codes, codebook, bias, in_features=n_in)
        layers.append((layer, act))
        dense.append((w, bias, act))
    return layers, dense


@pytest.mark.parametrize("batch", [0, 1, 3, 8, 33])
@pytest.mark.parametrize("threaded", [False, True])
def test_linear_chain_matches_torch(batch, threaded, monkeypatch):
    from cdnn_runtime.kernels import sparse_linear as SL
    if threaded:  # every layer through the prange loops
        monkeypatch.setattr(SL, "PARALLEL_MIN_WORK", 0)
        monkeypatch.setattr(SL, "PARALLEL_MIN_WORK_B1", 0)
    rng = np.random.default_rng(70 + batch)
    acts = ["relu", "leaky_relu:0.2", "none", "sigmoid"]
    layers, dense = _chain_layers(rng, [37, 29, 41, 16, 7], acts)
    chain = SL.LinearChain(layers)
    x = rng.standard_normal((batch, 37)).astype(np.float32)
    ref = t(x)
    for w, bias, act in dense:
        ref = TORCH_ACT[act](F.linear(ref, t(w), None if bias is None else t(bias)))
    assert_close(chain(x), ref)
    # the same as the layers one after the other
    y = x
    for lay, act in layers:
        y = lay(y, act)
    assert_close(chain(x), y)


def test_linear_chain_int32_columns_and_checks():
    from cdnn_runtime.kernels.sparse_linear import LinearChain
    rng = np.random.default_rng(75)
    layers, dense = _chain_layers(rng, [9, 6, 4], ["tanh", "none"], col_dtype=np.int32)
    x = rng.standard_normal((1, 9)).astype(np.float32)
    ref = F.linear(torch.tanh(F.linear(t(x), t(dense[0][0]), None if dense[0][1] is None
                                       else t(dense[0][1]))), t(dense[1][0]),
                   None if dense[1][1] is None else t(dense[1][1]))
    assert_close(LinearChain(layers)(x), ref)
    with pytest.raises(KernelArgumentError, match="features"):
        LinearChain(layers)(np.zeros((1, 8), np.float32))
    with pytest.raises(KernelArgumentError, match="do not fit"):
        LinearChain([layers[1], layers[0]])
    with pytest.raises(KernelArgumentError, match="at least one"):
        LinearChain([])


@pytest.mark.parametrize("case", ["3x3", "11x11_stride4", "groups2", "odd_sizes", "batch7"])
@pytest.mark.parametrize("act", ["none", "relu", "tanh"])
def test_conv_in_bands_and_channel_chunks(case, act, monkeypatch):
    """Bands of one output row, several parts of the output channels per band, each output
    channel's sums kept alone (groups of one), one input channel per chunk."""
    from cdnn_runtime.kernels import sparse_conv as SC
    monkeypatch.setattr(SC, "BAND_RUN", 1)
    monkeypatch.setattr(SC, "CHUNK_BYTES", 1)
    monkeypatch.setattr(SC, "GROUP_BYTES", 1)
    monkeypatch.setattr(SC, "SPLIT_PARALLEL_MIN", 0)
    monkeypatch.setattr(SC, "GROUP_SPLIT_MAX", 0)  # groups too: the whole input split, in bands
    batch, cin, cout, h, w, k, s, p, d, g, density = CONV_CASES[case]
    rng = np.random.default_rng(80 + list(CONV_CASES).index(case))
    kh, kw = _pair(k)
    row_ptr, col_idx, codes, codebook, dense = _conv_weight(rng, cout, cin // g, kh, kw, density)
    bias = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((batch, cin, h, w)).astype(np.float32)
    ref = TORCH_ACT[act](F.conv2d(t(x), t(dense.reshape(cout, cin // g, kh, kw)), t(bias),
                                  stride=s, padding=p, dilation=d, groups=g))
    layer = prepare_conv(row_ptr, col_idx, codes, codebook, bias, in_channels=cin, kernel_size=k,
                         stride=s, padding=p, dilation=d, groups=g)
    for parallel in (False, True):
        assert_close(layer(x, act, parallel=parallel), ref)
    geo = layer._geometry_for(h, w)
    assert geo[9] == 1  # one output row per band
    assert geo[10].shape == (cout, cin + 1)  # one input channel per chunk


def test_max_pool_windows_inside_and_prepared(monkeypatch):
    rng = np.random.default_rng(90)
    x = rng.standard_normal((2, 3, 12, 11)).astype(np.float32)
    x[0, 1, 4, 5] = np.nan
    x[1, 2, 0, 0] = np.inf
    for k, s, p, d, ceil in [(2, 2, 0, 1, False), (3, 2, 0, 1, False), (2, 1, 0, 2, False),
                             ((3, 2), (2, 3), 0, 1, True), (3, 2, 1, 1, True), (2, 2, 0, 1, True)]:
        ref = F.max_pool2d(t(x), k, s, p, d, ceil_mode=ceil)
        assert_close(pooling.max_pool2d(x, k, s, p, d, ceil), ref)
        pool = pooling.MaxPool2d(k, s, p, d, ceil)
        assert_close(pool(x), ref)
        assert_close(pool(x[0]), F.max_pool2d(t(x[0]), k, s, p, d, ceil_mode=ceil))
    big = rng.standard_normal((2, 64, 40, 40)).astype(np.float32)
    monkeypatch.setattr(pooling, "POOL_PARALLEL_MIN", 0)  # threaded
    assert_close(pooling.MaxPool2d(2)(big), F.max_pool2d(t(big), 2))
    assert_close(pooling.MaxPool2d(3, 2, 1)(big), F.max_pool2d(t(big), 3, 2, 1))
    assert_close(pooling.max_pool2d(big, 2), F.max_pool2d(t(big), 2))
    with pytest.raises(KernelArgumentError, match="float32"):
        pooling.MaxPool2d(2)(x.astype(np.float64))
    with pytest.raises(KernelArgumentError, match="padding"):
        pooling.MaxPool2d(2, padding=2)


def test_max_pool_2x2_stride_2_in_one_pass_nan_anywhere(monkeypatch):
    """The one-pass 2x2 stride-2 path: NaN in any of the four places of a window wins, and
    infinities and ties as torch gives them."""
    x = np.zeros((1, 6, 4, 5), np.float32)
    for c, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        x[0, c, dy, dx] = np.nan
        x[0, c, 2 + dy, 2 + dx] = -np.inf
    x[0, 4] = np.inf
    x[0, 5, 0, :] = [1, 1, -2, 7, 9]
    for parallel_min in (1 << 62, 0):  # serial, threaded
        monkeypatch.setattr(pooling, "POOL_PARALLEL_MIN", parallel_min)
        assert_close(pooling.MaxPool2d(2)(x), F.max_pool2d(t(x), 2))


def test_csr_value_check_threaded_agrees_with_serial():
    from cdnn_runtime.kernels._common import _first_csr_error, _first_csr_error_parallel
    rng = np.random.default_rng(91)
    row_ptr, col_idx, codes, codebook, _ = make_csr(rng, 50, 40, 0.4)
    cases = [(row_ptr, col_idx, codes)]
    bad = col_idx.copy()
    bad[-1] = 40  # out of range in the last row
    cases.append((row_ptr, bad, codes))
    bad = col_idx.copy()
    r = int(np.argmax(np.diff(row_ptr) >= 2))
    bad[row_ptr[r] + 1] = bad[row_ptr[r]]  # repeated column
    cases.append((row_ptr, bad, codes))
    bad_codes = codes.copy()
    bad_codes[3] = 16
    cases.append((row_ptr, col_idx, bad_codes))
    rp = row_ptr.copy()
    rp[10] = rp[11] + 1
    cases.append((rp, col_idx, codes))
    for rp, c, k in cases:
        assert _first_csr_error_parallel(rp, c, k, 40, 16) == _first_csr_error(rp, c, k, 40, 16)
    assert [_first_csr_error(rp, c, k, 40, 16) for rp, c, k in cases] == [0, 2, 3, 4, 1]


def test_prepared_layers_check_values_unless_told_the_values_are_known_good():
    rng = np.random.default_rng(11)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 6, 8, 0.5)
    c2 = col_idx.copy()
    c2[0] = 8  # out of range
    with pytest.raises(KernelArgumentError, match="out of range"):
        prepare_linear(row_ptr, c2, codes, codebook, in_features=8)
    with pytest.raises(KernelArgumentError, match="out of range"):
        prepare_conv(row_ptr, c2, codes, codebook, in_channels=2, kernel_size=2)
    # check_values=False (the session, on arrays the reader has checked) skips the O(E) value
    # pass but still checks shapes, dtypes and the row pointers' ends
    layer = prepare_linear(row_ptr, col_idx, codes, codebook, in_features=8, check_values=False)
    x = rng.standard_normal((1, 8)).astype(np.float32)
    assert np.allclose(layer(x), x @ dense.T, atol=1e-5)
    with pytest.raises(KernelArgumentError, match="codes"):
        prepare_linear(row_ptr, col_idx, codes[:-1], codebook, in_features=8, check_values=False)
    with pytest.raises(KernelArgumentError, match="row_ptr"):
        prepare_conv(row_ptr[:-1], col_idx, codes, codebook, in_channels=2, kernel_size=2,
                     check_values=False)
    with pytest.raises(KernelArgumentError, match="col_idx"):
        prepare_conv(row_ptr, col_idx.astype(np.int64), codes, codebook, in_channels=2,
                     kernel_size=2, check_values=False)


@pytest.mark.parametrize("k", [1, 2, 8, 9, 16, 31, 32, 33, 256])
@pytest.mark.parametrize("col_dtype", [np.uint16, np.int32])
def test_linear_codebook_sizes_around_the_register_lookup(k, col_dtype):
    """Codebooks of up to LUT_SIZE values take the register lookup (on CPUs with AVX2; with
    AVX-512 its 16-entry gather step), larger ones the scalar loop; every row length 0..40
    covers every tail after whole steps of LUT_STEP (8 or 16) entries, and the codes cover
    every value (bits 3 and 4 pick the register)."""
    from cdnn_runtime.kernels import sparse_linear as SL
    from cdnn_runtime.kernels._simd import AVX2, LUT_SIZE
    rng = np.random.default_rng(k)
    rows, n_cols = 41, 97
    mask = np.zeros((rows, n_cols), bool)
    for r in range(rows):
        mask[r, rng.choice(n_cols, r, replace=False)] = True
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, rows, n_cols, mask=mask, k=k,
                                                        col_dtype=col_dtype)
    codes[:k] = np.arange(k)  # 820 entries
    dense[:] = 0
    r_of = np.repeat(np.arange(rows), np.diff(row_ptr))
    dense[r_of, col_idx.astype(np.int64)] = codebook[codes]
    layer = prepare_linear(row_ptr, col_idx, codes, codebook, None, in_features=n_cols)
    assert layer.use_register_lookup == (AVX2 and k <= LUT_SIZE)
    x = rng.standard_normal((3, n_cols)).astype(np.float32)
    for batch in (1, 3):
        ref = F.linear(t(x[:batch]), t(dense))
        assert_close(layer(x[:batch]), ref)
        # the scalar loop on the same arrays agrees
        assert_close(SL.run_linear(x[:batch], row_ptr, col_idx, codes, codebook, None,
                                   parse_activation("none"), use_register_lookup=False), ref)
    chain = SL.LinearChain([(layer, "none")])  # batch 1 through chain_vec
    assert chain.meta[0, SL.M_REGISTER_LOOKUP] == layer.use_register_lookup
    assert_close(chain(x[:1]), F.linear(t(x[:1]), t(dense)))


def test_linear_register_lookup_with_an_unused_last_codebook_value():
    """A file's codebook can hold one value more than the codes use (the gap fillers' value):
    the register lookup still applies when every code is below LUT_SIZE."""
    from cdnn_runtime.kernels._simd import AVX2, LUT_SIZE
    rng = np.random.default_rng(5)
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, 23, 300, 0.3, k=LUT_SIZE)
    codebook = np.append(codebook, np.float32(0.0))  # LUT_SIZE + 1 values, the last unused
    layer = prepare_linear(row_ptr, col_idx, codes, codebook, None, in_features=300)
    assert layer.use_register_lookup == AVX2
    x = rng.standard_normal((1, 300)).astype(np.float32)
    assert_close(layer(x), F.linear(t(x), t(dense)))
    codes[0] = LUT_SIZE  # now a code needs the last value: the scalar loop
    dense[np.searchsorted(row_ptr, 0, side="right") - 1, col_idx[0]] = 0.0  # entry 0's row
    layer = prepare_linear(row_ptr, col_idx, codes, codebook, None, in_features=300)
    assert not layer.use_register_lookup
    assert_close(layer(x), F.linear(t(x), t(dense)))
