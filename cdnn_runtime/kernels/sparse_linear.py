"""Sparse fully-connected layer computed straight from CSR + codebook storage.

The weight is [n_rows, n_cols] (out_features x in_features) in CSR form: ``row_ptr``
int64[n_rows+1], ``col_idx`` uint16 or int32 column per entry, ``codes`` uint8 per entry and a
float32 ``codebook``; entry k has the value ``codebook[codes[k]]``, read where it is used.
Nothing of size n_rows*n_cols is ever allocated.

Kernels (all take raw arrays and write into ``out``):

* batch 1: a sparse mat-vec, one output per row (with the AVX2 codebook lookup of
  :mod:`._simd` for codebooks of up to 32 values);
* batch 2..7: per row, one sparse dot product per sample (the row's entries stay in L1);
* batch >= 8: ``x`` transposed to [n_cols, B] so that the batch is the contiguous run, into a
  [n_rows, B] result that is transposed back: one layer runs as a 1x1 convolution of a 1 x B
  plane (:class:`SparseLinear`, the convolution's kernel: sums in vector registers over chunks
  of input features kept in L1), a chain layer by layer row by row (:func:`chain_t`).

Each has a parallel variant (rows split across threads) and a serial one for small layers.

:class:`LinearChain` runs consecutive layers in one call: ``chain_vec`` takes a sample through
every layer (batch 1), ``chain_t`` a batch in the transposed layout [features, B], transposed
once on the way in and once on the way out; each layer inside runs threaded or serially by its
size.
"""

import numpy as np
from numba import njit, prange

from .._jit import jit_cache, threaded_or_serial
from ..constants import MAX_CODEBOOK_SIZE, MAX_UINT16_COLUMNS
from ._common import (
    FASTMATH,
    PARALLEL_MIN_WORK,
    KernelArgumentError,
    apply_activation,
    bias_activation,
    check_csr,
    check_float32,
    parse_activation,
)
from ._simd import AVX2, LUT_SIZE, LUT_STEP, lut_dot, shifted_sum
from .shape import swap_last_axes
from .sparse_conv import chunk_pointers, convolve

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

#: From this batch size on, the kernel working on the transposed input is used.
TRANSPOSED_MIN_BATCH = 8

#: Stored entries (plus rows) from which a batch-1 product runs threaded. A matrix-vector
#: product moves about 3 bytes per entry and runs at about a nanosecond per entry on one core,
#: so below this size waking a second thread costs more than it saves.
PARALLEL_MIN_WORK_B1 = 1 << 16


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


# Entry indices in the batch-1 loops are unsigned: numba wraps a negative signed index around
# (x[-1] is the last element), and for a signed index it cannot prove non-negative it emits that
# check on every access, which doubles the instructions of the loop below. An unsigned index has
# no such check.
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U4 = np.uint64(4)


@njit(cache=_CACHE)
def _dot_range(x, col_idx, codes, codebook, k, end):
    """sum over entries k..end-1 (uint64) of codebook[codes[k]] * x[col_idx[k]], with four
    independent partial sums (the loads of consecutive entries overlap instead of waiting on one
    add chain). No fast-math here: with it LLVM may turn the loop into AVX2 gathers, which are
    slower on the CPUs measured."""
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    a2 = np.float32(0.0)
    a3 = np.float32(0.0)
    while k + _U4 <= end:
        a0 += codebook[codes[k]] * x[col_idx[k]]
        a1 += codebook[codes[k + _U1]] * x[col_idx[k + _U1]]
        a2 += codebook[codes[k + _U2]] * x[col_idx[k + _U2]]
        a3 += codebook[codes[k + _U3]] * x[col_idx[k + _U3]]
        k += _U4
    while k < end:
        a0 += codebook[codes[k]] * x[col_idx[k]]
        k += _U1
    return (a0 + a1) + (a2 + a3)


_LUT_MASK = np.uint64(LUT_STEP - 1)


@njit(cache=_CACHE)
def _dot_range_lut(x, col_idx, codes, codebook, k, end, use_register_lookup):
    """:func:`_dot_range`; with ``use_register_lookup`` (the codebook padded to LUT_SIZE values,
    codes below it) on an AVX2 CPU, the whole steps of LUT_STEP entries by the register lookup
    of :func:`._simd.lut_dot` and the rest by the scalar loop."""
    if AVX2 and use_register_lookup:
        mid = end - ((end - k) & _LUT_MASK)
        return lut_dot(x, col_idx, codes, codebook, k, mid) + \
            _dot_range(x, col_idx, codes, codebook, mid, end)
    return _dot_range(x, col_idx, codes, codebook, k, end)


@njit(cache=_CACHE)
def _row_dot(x, row_ptr, col_idx, codes, codebook, use_register_lookup, r):
    """One row's sparse dot product."""
    return _dot_range_lut(x, col_idx, codes, codebook, np.uint64(row_ptr[r]),
                          np.uint64(row_ptr[r + 1]), use_register_lookup)


@njit(cache=_CACHE)
def _bias_of(bias, has_bias, r):
    if has_bias:
        return bias[r]
    return np.float32(0.0)


@njit(cache=_CACHE, parallel=True)
def spmv_parallel(x, row_ptr, col_idx, codes, codebook, use_register_lookup, bias, has_bias, act,
                  act_param, out):
    """out[r] = act(sum_k codebook[codes[k]] * x[col_idx[k]] + bias[r]) for every row r;
    ``use_register_lookup``: the codebook is padded to LUT_SIZE values (see
    :func:`_dot_range_lut`)."""
    for r in prange(row_ptr.shape[0] - 1):
        v = _row_dot(x, row_ptr, col_idx, codes, codebook, use_register_lookup, r) + \
            _bias_of(bias, has_bias, r)
        out[r] = apply_activation(v, act, act_param)


@njit(cache=_CACHE)
def spmv_serial(x, row_ptr, col_idx, codes, codebook, use_register_lookup, bias, has_bias, act,
                act_param, out):
    """Serial :func:`spmv_parallel`."""
    for r in range(row_ptr.shape[0] - 1):
        v = _row_dot(x, row_ptr, col_idx, codes, codebook, use_register_lookup, r) + \
            _bias_of(bias, has_bias, r)
        out[r] = apply_activation(v, act, act_param)


@njit(cache=_CACHE, parallel=True)
def spmm_rows_parallel(x, row_ptr, col_idx, codes, codebook, use_register_lookup, bias, has_bias,
                       act, act_param, out):
    """Batched: x [B, n_cols] -> out [B, n_rows]; one sparse dot product per (row, sample)."""
    n_batch = x.shape[0]
    for r in prange(row_ptr.shape[0] - 1):
        b_r = _bias_of(bias, has_bias, r)
        for b in range(n_batch):
            v = _row_dot(x[b], row_ptr, col_idx, codes, codebook, use_register_lookup, r) + b_r
            out[b, r] = apply_activation(v, act, act_param)


@njit(cache=_CACHE)
def spmm_rows_serial(x, row_ptr, col_idx, codes, codebook, use_register_lookup, bias, has_bias,
                     act, act_param, out):
    """Serial :func:`spmm_rows_parallel`."""
    n_batch = x.shape[0]
    for r in range(row_ptr.shape[0] - 1):
        b_r = _bias_of(bias, has_bias, r)
        for b in range(n_batch):
            v = _row_dot(x[b], row_ptr, col_idx, codes, codebook, use_register_lookup, r) + b_r
            out[b, r] = apply_activation(v, act, act_param)


#: Samples of a batch one run of a layer as a convolution takes (the convolution's run: a
#: larger batch is run in slices of this size, the last one between half and one and a half).
BATCH_SLICE = 1 << 10

#: Samples of a batch one pass over a row's entries takes at most (in the transposed layout,
#: the floats of each input row it reads).
BATCH_RUN = 1 << 9

_ONLY_TAP = np.zeros(1, np.int64)  # a linear layer as shifted_sum's one-tap "convolution"


@njit(cache=_CACHE, fastmath=FASTMATH)
def _row_axpy_batch(xt, col_idx, codes, codebook, k, end, b_r, act, act_param, o):
    """o[:] = act(sum over entries k..end-1 of w_k * xt[col_idx[k], :] + b_r), o one row of
    the transposed output: the row summed in vector registers (:func:`._simd.shifted_sum`,
    entries read as input channels of pitch B with one tap), then the bias and activation."""
    n_batch = o.shape[0]
    flat = xt.reshape(-1)
    for b0 in range(0, n_batch, BATCH_RUN):
        shifted_sum(flat, b0, k, end, col_idx, 0, codes, codebook, _ONLY_TAP, n_batch, o[b0:],
                    min(BATCH_RUN, n_batch - b0), False)
    bias_activation(o, b_r, act, act_param, o)


# ---------------------------------------------------------------------------------------------
# Chains of sparse linear layers in one call
# ---------------------------------------------------------------------------------------------
# A chain's layers share concatenated arrays: ``row_ptr`` (each layer's own, from 0),
# ``col_idx``, ``codes``, ``codebooks`` [L, MAX_CODEBOOK_SIZE] (zero-padded) and ``bias``;
# ``meta`` [L, 8] int64 holds per layer n_rows, n_cols, entry offset, row_ptr offset, bias
# offset (-1: none), activation code, whether to run threaded and whether it uses the register
# lookup (every code below LUT_SIZE); ``params`` [L] float32 the activation parameters.

M_N_ROWS, M_N_COLS, M_ENTRY, M_RP, M_BIAS, M_ACT, M_PAR, M_REGISTER_LOOKUP = range(8)


@njit(cache=_CACHE, inline="always")
def _chain_layer(meta, params, codebooks, li):
    """Layer li of a chain: (n_rows, entry offset, row_ptr offset, bias offset, activation code,
    activation parameter, codebook)."""
    return (meta[li, M_N_ROWS], meta[li, M_ENTRY], meta[li, M_RP], meta[li, M_BIAS],
            meta[li, M_ACT], params[li], codebooks[li])


@njit(cache=_CACHE, inline="always")
def _chain_dst(buf, out, li, n_layers, n_rows):
    """Where layer li of a chain writes: ``out`` for the last layer, else half of ``buf``."""
    if li == n_layers - 1:
        return out
    return buf[li & 1, :n_rows]


@njit(cache=_CACHE, inline="always")
def _chain_row_t(xt, row_ptr, rp, eo, col_idx, codes, codebook, bias, bo, act, param, dst, r):
    """Output row r of one chain layer in the transposed layout (see :func:`_row_axpy_batch`)."""
    bval = bias[bo + r] if bo >= 0 else np.float32(0.0)
    _row_axpy_batch(xt, col_idx, codes, codebook, eo + row_ptr[rp + r], eo + row_ptr[rp + r + 1],
                    bval, act, param, dst[r])


@njit(cache=_CACHE, inline="always")
def _chain_row_vec(x, row_ptr, rp, eo, col_idx, codes, codebook, use_register_lookup, bias, bo,
                   act, param, r):
    """Output r of one chain layer at batch 1: act(row r's dot product + its bias)."""
    v = _dot_range_lut(x, col_idx, codes, codebook, np.uint64(eo + row_ptr[rp + r]),
                       np.uint64(eo + row_ptr[rp + r + 1]), use_register_lookup)
    if bo >= 0:
        v += bias[bo + r]
    return apply_activation(v, act, param)


@njit(cache=_CACHE, parallel=True)
def chain_vec(x, row_ptr, col_idx, codes, codebooks, bias, meta, params, buf, out):
    """Batch 1 through every layer of a chain: x [n_cols of layer 0] -> out [n_rows of the
    last]; buf [2, widest] holds the intermediate vectors. Each layer runs threaded or serially
    as its ``meta`` row says."""
    n_layers = meta.shape[0]
    src = x
    for li in range(n_layers):
        n_rows, eo, rp, bo, act, param, codebook = _chain_layer(meta, params, codebooks, li)
        use_register_lookup = meta[li, M_REGISTER_LOOKUP] != 0
        dst = _chain_dst(buf, out, li, n_layers, n_rows)
        if meta[li, M_PAR]:
            for r in prange(n_rows):
                dst[r] = _chain_row_vec(src, row_ptr, rp, eo, col_idx, codes, codebook,
                                        use_register_lookup, bias, bo, act, param, r)
        else:
            for r in range(n_rows):
                dst[r] = _chain_row_vec(src, row_ptr, rp, eo, col_idx, codes, codebook,
                                        use_register_lookup, bias, bo, act, param, r)
        src = dst


@njit(cache=_CACHE, parallel=True, fastmath=FASTMATH)
def chain_t(xt, row_ptr, col_idx, codes, codebooks, bias, meta, params, buf, out_t):
    """A batch through every layer of a chain in the transposed layout [features, B], the
    batch the contiguous inner loop: xt [n_cols of layer 0, B] -> out_t [n_rows of the last, B];
    buf [2, widest, B] holds the intermediate activations."""
    n_layers = meta.shape[0]
    src = xt
    for li in range(n_layers):
        n_rows, eo, rp, bo, act, param, codebook = _chain_layer(meta, params, codebooks, li)
        dst = _chain_dst(buf, out_t, li, n_layers, n_rows)
        if meta[li, M_PAR]:
            for r in prange(n_rows):
                _chain_row_t(src, row_ptr, rp, eo, col_idx, codes, codebook, bias, bo, act, param,
                             dst, r)
        else:
            for r in range(n_rows):
                _chain_row_t(src, row_ptr, rp, eo, col_idx, codes, codebook, bias, bo, act, param,
                             dst, r)
        src = dst


# ---------------------------------------------------------------------------------------------
# Python wrapper
# ---------------------------------------------------------------------------------------------

_NO_BIAS = np.zeros(1, np.float32)


def check_linear_weights(row_ptr, col_idx, codes, codebook, bias, in_features, full=True):
    """Check a sparse linear layer's arrays: shapes, dtypes, contiguity, row_ptr ends;
    with ``full`` also every value (row_ptr monotonic, columns in range and strictly
    increasing within a row, codes below the codebook size), O(E), meant for once at load."""
    if not isinstance(row_ptr, np.ndarray) or row_ptr.ndim != 1 or row_ptr.shape[0] < 1:
        raise KernelArgumentError("row_ptr must be a 1-D numpy array of out_features+1 entries")
    check_csr(row_ptr, col_idx, codes, codebook, row_ptr.shape[0] - 1, int(in_features), bias=bias,
              full=full)


def register_lookup_table(codebook, codes):
    """(lookup_table, use_register_lookup): the first LUT_SIZE codebook values (zero-padded)
    and True when the AVX2 register lookup can use them (see :mod:`._simd`): every code is
    below LUT_SIZE (a file's codebook may hold one more value, for the gap fillers, that no
    stored entry uses). Else the codebook itself and False."""
    if AVX2 and (codebook.shape[0] <= LUT_SIZE or (codes.shape[0] and int(codes.max()) < LUT_SIZE)):
        table = np.zeros(LUT_SIZE, np.float32)
        n = min(LUT_SIZE, codebook.shape[0])
        table[:n] = codebook[:n]
        return table, True
    return codebook, False


def run_linear(x, row_ptr, col_idx, codes, codebook, bias, act, parallel=None,
               use_register_lookup=False):
    """Pick and run the batch-1 kernel or the per-row one (any batch; :class:`SparseLinear`
    takes batches from TRANSPOSED_MIN_BATCH on as a convolution instead); arguments already
    checked, ``act`` an Activation; ``use_register_lookup``: the codebook is a table from
    :func:`register_lookup_table` that allows the register lookup."""
    n_batch = x.shape[0]
    n_rows = row_ptr.shape[0] - 1
    has_bias = bias is not None
    b_arr = bias if has_bias else _NO_BIAS
    if n_batch == 0 or n_rows == 0:
        return np.empty((n_batch, n_rows), np.float32)
    if parallel is None:
        work = (col_idx.shape[0] + n_rows) * n_batch
        parallel = work >= (PARALLEL_MIN_WORK_B1 if n_batch == 1 else PARALLEL_MIN_WORK)
    if n_batch == 1:
        out = np.empty((1, n_rows), np.float32)
        kern = threaded_or_serial(spmv_parallel, spmv_serial, parallel)
        kern(x[0], row_ptr, col_idx, codes, codebook, use_register_lookup, b_arr, has_bias,
             act.code, act.param, out[0])
        return out
    out = np.empty((n_batch, n_rows), np.float32)
    kern = threaded_or_serial(spmm_rows_parallel, spmm_rows_serial, parallel)
    kern(x, row_ptr, col_idx, codes, codebook, use_register_lookup, b_arr, has_bias,
         act.code, act.param, out)
    return out


def _check_x(x, in_features):
    check_float32("x", x, ndim=2)
    if x.shape[1] != in_features:
        raise KernelArgumentError(f"x has {x.shape[1]} features, the layer expects {in_features}")


class SparseLinear:
    """A sparse linear layer checked once (values included), ready to run many times.

    Built by :func:`prepare_linear`. ``layer(x, activation="none")`` returns float32
    [B, out_features] for float32 [B, in_features] ``x``; only ``x`` is checked per call.
    ``lookup_table`` is what the kernels read the values from: the codebook, or its first
    LUT_SIZE values when ``use_register_lookup`` (batches 1 to 7 take the AVX2 codebook lookup
    of :mod:`._simd`).
    """

    __slots__ = ("row_ptr", "col_idx", "codes", "codebook", "bias", "in_features", "out_features",
                 "lookup_table", "use_register_lookup", "_entry", "_kptr")

    def __init__(self, row_ptr, col_idx, codes, codebook, bias, in_features, check_values=True):
        in_features = int(in_features)
        if in_features < 0:
            raise KernelArgumentError(f"in_features must be >= 0, got {in_features}")
        check_linear_weights(row_ptr, col_idx, codes, codebook, bias, in_features,
                             full=check_values)
        self.row_ptr, self.col_idx, self.codes = row_ptr, col_idx, codes
        self.codebook, self.bias = codebook, bias
        self.in_features = in_features
        self.out_features = row_ptr.shape[0] - 1
        self.lookup_table, self.use_register_lookup = register_lookup_table(codebook, codes)
        self._entry = None  # col_idx as uint32, made on the first batch run as a convolution
        self._kptr = {}  # per batch size: chunk_pointers for that run

    @property
    def nnz(self):
        return self.col_idx.shape[0]

    def __call__(self, x, activation="none", *, parallel=None):
        _check_x(x, self.in_features)
        act = parse_activation(activation)
        n_batch = x.shape[0]
        if n_batch >= max(TRANSPOSED_MIN_BATCH, 1) and self.out_features:
            if n_batch <= BATCH_SLICE:
                return self._as_conv(x, act, parallel)
            out = np.empty((n_batch, self.out_features), np.float32)
            for b0 in range(0, n_batch, BATCH_SLICE):  # the last slice: at least half of one
                b1 = n_batch if n_batch - b0 < 3 * BATCH_SLICE // 2 else b0 + BATCH_SLICE
                out[b0:b1] = self._as_conv(x[b0:b1], act, parallel)
                if b1 == n_batch:
                    break
            return out
        return run_linear(x, self.row_ptr, self.col_idx, self.codes, self.lookup_table, self.bias,
                          act, parallel, self.use_register_lookup)

    def _as_conv(self, x, act, parallel):
        """A batch of B samples (up to about BATCH_SLICE: larger batches are run in slices) as a
        1x1 convolution of the transposed input
        [1, in_features, 1, B]: the convolution's kernel (sums in registers over chunks of
        input features kept in L1, threads over parts of the rows) with the columns as input
        channels of one tap."""
        n_batch = x.shape[0]
        if self._entry is None:
            self._entry = self.col_idx.astype(np.uint32)
        kptr = self._kptr.get(n_batch)
        if kptr is None:
            kptr = chunk_pointers(self.row_ptr, self._entry, 0, self.in_features, 1, n_batch, 1)
            if len(self._kptr) >= 4:
                self._kptr.clear()
            self._kptr[n_batch] = kptr
        out_t = np.empty((1, self.out_features, 1, n_batch), np.float32)
        if parallel is None:
            parallel = (self.nnz + self.out_features) * n_batch >= PARALLEL_MIN_WORK
        convolve(swap_last_axes(x), kptr, self._entry, 0, self.codes, self.codebook, _ONLY_TAP,
                 n_batch, 0, n_batch, 1, self.bias, act, out_t, bool(parallel))
        return swap_last_axes(out_t.reshape(self.out_features, n_batch))


def prepare_linear(row_ptr, col_idx, codes, codebook, bias=None, *, in_features,
                   check_values=True):
    """Check a sparse linear layer once (every value, O(E)) and return a :class:`SparseLinear`.

    ``check_values=False`` checks shapes and dtypes only: for arrays whose values are already
    known good (the reader's ``CdnnFile.sparse`` checks every column, the order within each
    row and every code as it builds them)."""
    return SparseLinear(row_ptr, col_idx, codes, codebook, bias, in_features, check_values)


def linear(x, row_ptr, col_idx, codes, codebook, bias=None, activation="none", *,
           check_values=True, parallel=None):
    """Sparse fully-connected layer: ``act(x @ W.T + bias)``, W read from CSR + codebook.

    x: float32 [B, in_features], C-contiguous (B may be 0).
    row_ptr: int64[out_features + 1]. col_idx: uint16 (allowed when in_features <=
    MAX_UINT16_COLUMNS) or int32, one column per entry. codes: uint8 per entry.
    codebook: float32[1..MAX_CODEBOOK_SIZE]. bias: float32[out_features] or None.
    activation: "none", "relu", "relu6", "leaky_relu[:slope]", "sigmoid", "tanh",
    a (name, param) pair or an ``Activation``; applied with the bias in the kernel's epilogue.
    check_values: check every CSR value too (O(E)); pass False when the arrays were already
    checked, e.g. by :func:`prepare_linear` or :func:`check_linear_weights`.
    parallel: force (True) or forbid (False) the threaded kernels; None picks by work size.

    Returns float32 [B, out_features], C-contiguous.
    """
    check_float32("x", x, ndim=2)
    layer = SparseLinear(row_ptr, col_idx, codes, codebook, bias, x.shape[1], check_values)
    return layer(x, activation, parallel=parallel)


class LinearChain:
    """Consecutive sparse linear layers (each with its fused activation) run in one call.

    Built from ``[(SparseLinear, activation), ...]`` whose widths match; ``chain(x)`` maps
    float32 [B, in_features] to [B, out_features] of the last layer. Batch 1 runs all layers
    in one kernel call; from batch ``TRANSPOSED_MIN_BATCH`` on, the input is transposed once
    and every layer works on [features, B]; batches in between run layer by layer.
    """

    def __init__(self, layers):
        if not layers:
            raise KernelArgumentError("a chain needs at least one layer")
        self.layers = [(lay, parse_activation(act)) for lay, act in layers]
        for (a, _), (b, _) in zip(self.layers, self.layers[1:]):
            if a.out_features != b.in_features:
                raise KernelArgumentError(f"chain layers do not fit: {a.out_features} outputs "
                                          f"into {b.in_features} inputs")
        wide = any(lay.in_features > MAX_UINT16_COLUMNS for lay, _ in self.layers)
        col_dtype = np.int32 if wide else np.uint16
        n = len(self.layers)
        self.meta = np.zeros((n, 8), np.int64)
        self.params = np.zeros(n, np.float32)
        self.codebooks = np.zeros((n, MAX_CODEBOOK_SIZE), np.float32)
        eo = rp = bo = 0
        biases = []
        for i, (lay, act) in enumerate(self.layers):
            self.meta[i] = (lay.out_features, lay.in_features, eo, rp,
                            bo if lay.bias is not None else -1, act.code, 0,
                            lay.use_register_lookup)
            self.params[i] = act.param
            self.codebooks[i, :lay.codebook.shape[0]] = lay.codebook
            if lay.bias is not None:
                biases.append(lay.bias)
                bo += lay.out_features
            eo += lay.nnz
            rp += lay.out_features + 1
        self.row_ptr = np.concatenate([lay.row_ptr for lay, _ in self.layers])
        self.col_idx = np.concatenate([lay.col_idx.astype(col_dtype, copy=False)
                                       for lay, _ in self.layers])
        self.codes = np.concatenate([lay.codes for lay, _ in self.layers])
        self.bias = np.concatenate(biases) if biases else np.zeros(1, np.float32)
        # the layers, run one by one for batches 2..7, as views of the concatenated arrays
        # (the chain holds no second copy of any weight)
        views = []
        for i, (lay, act) in enumerate(self.layers):
            rows, _, eo, rp = self.meta[i, :4]
            views.append((self.row_ptr[rp:rp + rows + 1], self.col_idx[eo:eo + lay.nnz],
                          self.codes[eo:eo + lay.nnz], lay.lookup_table, lay.bias, act,
                          lay.use_register_lookup))
        self._views = views
        self.in_features = self.layers[0][0].in_features
        self.out_features = self.layers[-1][0].out_features
        self.width = max([lay.out_features for lay, _ in self.layers[:-1]] + [1])
        self._work = np.array([lay.nnz + lay.out_features for lay, _ in self.layers])
        self.layers = [(lay.in_features, lay.out_features, act) for lay, act in self.layers]
        self._meta_vec = self._meta_for(1)

    def _meta_for(self, n_batch):
        meta = self.meta.copy()
        meta[:, M_PAR] = self._par_flags(n_batch)
        return meta

    def _par_flags(self, n_batch):
        return (self._work * n_batch >= PARALLEL_MIN_WORK_B1 if n_batch == 1 else
                self._work * n_batch >= PARALLEL_MIN_WORK).astype(np.int64)

    def __call__(self, x):
        _check_x(x, self.in_features)
        return self.run(x)

    def run(self, x):
        """As calling the chain, with x already checked (float32 [B, in_features], C order)."""
        n_batch = x.shape[0]
        if n_batch == 1:
            out = np.empty((1, self.out_features), np.float32)
            chain_vec(x[0], self.row_ptr, self.col_idx, self.codes, self.codebooks, self.bias,
                      self._meta_vec, self.params, np.empty((2, self.width), np.float32), out[0])
            return out
        if n_batch < TRANSPOSED_MIN_BATCH:
            for row_ptr, col_idx, codes, table, bias, act, use_register_lookup in self._views:
                x = run_linear(x, row_ptr, col_idx, codes, table, bias, act,
                               use_register_lookup=use_register_lookup)
            return x
        xt = swap_last_axes(x)
        out_t = np.empty((self.out_features, n_batch), np.float32)
        buf = np.empty((2, self.width, n_batch), np.float32)
        chain_t(xt, self.row_ptr, self.col_idx, self.codes, self.codebooks, self.bias,
                self._meta_for(n_batch), self.params, buf, out_t)
        return swap_last_axes(out_t)
