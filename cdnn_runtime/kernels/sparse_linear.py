"""Sparse fully-connected layer computed straight from CSR + codebook storage.

The weight is [rows, cols] (out_features x in_features) in CSR form: ``row_ptr`` int64[rows+1],
``cols`` uint16 or int32 column per entry, ``codes`` uint8 per entry and a float32 ``codebook``;
entry k has the value ``codebook[codes[k]]``, read where it is used. Nothing of size rows*cols
is ever allocated.

Kernels (all take raw arrays and write into ``out``):

* batch 1: a sparse mat-vec, one output per row;
* batch 2..7: per row, one sparse dot product per sample (the row's entries stay in L1);
* batch >= 8: ``x`` transposed to [cols, B] so the innermost loop runs over the batch
  contiguously, into a [rows, B] result that is transposed back.

Each has a parallel variant (rows split across threads) and a serial one for small layers.
"""

import numpy as np
from numba import njit, prange

from ._common import (
    PARALLEL_MIN_WORK,
    KernelArgumentError,
    apply_activation,
    check_csr,
    check_float32,
    parse_activation,
)

#: From this batch size on, the kernel working on the transposed input is used.
TRANSPOSED_MIN_BATCH = 8


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _row_dot(x, row_ptr, cols, codes, codebook, r):
    acc = np.float32(0.0)
    for k in range(row_ptr[r], row_ptr[r + 1]):
        acc += codebook[codes[k]] * x[cols[k]]
    return acc


@njit(cache=True)
def _bias_of(bias, has_bias, r):
    if has_bias:
        return bias[r]
    return np.float32(0.0)


@njit(cache=True, parallel=True)
def spmv_parallel(x, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out):
    """out[r] = act(sum_k codebook[codes[k]] * x[cols[k]] + bias[r]) for every row r."""
    for r in prange(row_ptr.shape[0] - 1):
        v = _row_dot(x, row_ptr, cols, codes, codebook, r) + _bias_of(bias, has_bias, r)
        out[r] = apply_activation(v, act, act_param)


@njit(cache=True)
def spmv_serial(x, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out):
    """Serial :func:`spmv_parallel`."""
    for r in range(row_ptr.shape[0] - 1):
        v = _row_dot(x, row_ptr, cols, codes, codebook, r) + _bias_of(bias, has_bias, r)
        out[r] = apply_activation(v, act, act_param)


@njit(cache=True, parallel=True)
def spmm_rows_parallel(x, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out):
    """Batched: x [B, cols] -> out [B, rows]; one sparse dot product per (row, sample)."""
    n_batch = x.shape[0]
    for r in prange(row_ptr.shape[0] - 1):
        b_r = _bias_of(bias, has_bias, r)
        for b in range(n_batch):
            v = _row_dot(x[b], row_ptr, cols, codes, codebook, r) + b_r
            out[b, r] = apply_activation(v, act, act_param)


@njit(cache=True)
def spmm_rows_serial(x, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out):
    """Serial :func:`spmm_rows_parallel`."""
    n_batch = x.shape[0]
    for r in range(row_ptr.shape[0] - 1):
        b_r = _bias_of(bias, has_bias, r)
        for b in range(n_batch):
            v = _row_dot(x[b], row_ptr, cols, codes, codebook, r) + b_r
            out[b, r] = apply_activation(v, act, act_param)


@njit(cache=True)
def _row_axpy_batch(xt, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out_t, r):
    o = out_t[r]
    n_batch = o.shape[0]
    for b in range(n_batch):
        o[b] = 0.0
    for k in range(row_ptr[r], row_ptr[r + 1]):
        w = codebook[codes[k]]
        xr = xt[cols[k]]
        for b in range(n_batch):
            o[b] += w * xr[b]
    b_r = _bias_of(bias, has_bias, r)
    for b in range(n_batch):
        o[b] = apply_activation(o[b] + b_r, act, act_param)


@njit(cache=True, parallel=True)
def spmm_t_parallel(xt, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out_t):
    """Batched on the transposed input: xt [cols, B] -> out_t [rows, B]."""
    for r in prange(row_ptr.shape[0] - 1):
        _row_axpy_batch(xt, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out_t, r)


@njit(cache=True)
def spmm_t_serial(xt, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out_t):
    """Serial :func:`spmm_t_parallel`."""
    for r in range(row_ptr.shape[0] - 1):
        _row_axpy_batch(xt, row_ptr, cols, codes, codebook, bias, has_bias, act, act_param, out_t, r)


# ---------------------------------------------------------------------------------------------
# Python wrapper
# ---------------------------------------------------------------------------------------------

_NO_BIAS = np.zeros(1, np.float32)


def check_linear_weights(row_ptr, cols, codes, codebook, bias, in_features, full=True):
    """Check a sparse linear layer's arrays: shapes, dtypes, contiguity, row_ptr ends;
    with ``full`` also every value (row_ptr monotonic, columns in range and strictly
    increasing within a row, codes below the codebook size), O(E), meant for once at load."""
    if not isinstance(row_ptr, np.ndarray) or row_ptr.ndim != 1 or row_ptr.shape[0] < 1:
        raise KernelArgumentError("row_ptr must be a 1-D numpy array of out_features+1 entries")
    check_csr(row_ptr, cols, codes, codebook, row_ptr.shape[0] - 1, int(in_features), bias=bias, full=full)


def run_linear(x, row_ptr, cols, codes, codebook, bias, act, parallel=None):
    """Pick and run a kernel; arguments already checked, ``act`` an Activation."""
    n_batch = x.shape[0]
    n_rows = row_ptr.shape[0] - 1
    has_bias = bias is not None
    b_arr = bias if has_bias else _NO_BIAS
    if n_batch == 0 or n_rows == 0:
        return np.empty((n_batch, n_rows), np.float32)
    if parallel is None:
        parallel = (cols.shape[0] + n_rows) * n_batch >= PARALLEL_MIN_WORK
    if n_batch == 1:
        out = np.empty((1, n_rows), np.float32)
        kern = spmv_parallel if parallel else spmv_serial
        kern(x[0], row_ptr, cols, codes, codebook, b_arr, has_bias, act.code, act.param, out[0])
        return out
    if n_batch < TRANSPOSED_MIN_BATCH:
        out = np.empty((n_batch, n_rows), np.float32)
        kern = spmm_rows_parallel if parallel else spmm_rows_serial
        kern(x, row_ptr, cols, codes, codebook, b_arr, has_bias, act.code, act.param, out)
        return out
    xt = np.ascontiguousarray(x.T)
    out_t = np.empty((n_rows, n_batch), np.float32)
    kern = spmm_t_parallel if parallel else spmm_t_serial
    kern(xt, row_ptr, cols, codes, codebook, b_arr, has_bias, act.code, act.param, out_t)
    return np.ascontiguousarray(out_t.T)


def _check_x(x, in_features):
    check_float32("x", x, ndim=2)
    if x.shape[1] != in_features:
        raise KernelArgumentError(f"x has {x.shape[1]} features, the layer expects {in_features}")


class SparseLinear:
    """A sparse linear layer checked once (values included), ready to run many times.

    Built by :func:`prepare_linear`. ``layer(x, activation="none")`` returns float32
    [B, out_features] for float32 [B, in_features] ``x``; only ``x`` is checked per call.
    """

    __slots__ = ("row_ptr", "cols", "codes", "codebook", "bias", "in_features", "out_features")

    def __init__(self, row_ptr, cols, codes, codebook, bias, in_features):
        in_features = int(in_features)
        if in_features < 0:
            raise KernelArgumentError(f"in_features must be >= 0, got {in_features}")
        check_linear_weights(row_ptr, cols, codes, codebook, bias, in_features, full=True)
        self.row_ptr = row_ptr
        self.cols = cols
        self.codes = codes
        self.codebook = codebook
        self.bias = bias
        self.in_features = in_features
        self.out_features = row_ptr.shape[0] - 1

    @property
    def nnz(self):
        return self.cols.shape[0]

    def __call__(self, x, activation="none", *, parallel=None):
        _check_x(x, self.in_features)
        return run_linear(
            x, self.row_ptr, self.cols, self.codes, self.codebook, self.bias, parse_activation(activation), parallel
        )


def prepare_linear(row_ptr, cols, codes, codebook, bias=None, *, in_features):
    """Check a sparse linear layer once (every value, O(E)) and return a :class:`SparseLinear`."""
    return SparseLinear(row_ptr, cols, codes, codebook, bias, in_features)


def linear(x, row_ptr, cols, codes, codebook, bias=None, activation="none", *, check_values=True, parallel=None):
    """Sparse fully-connected layer: ``act(x @ W.T + bias)``, W read from CSR + codebook.

    x: float32 [B, in_features], C-contiguous (B may be 0).
    row_ptr: int64[out_features + 1]. cols: uint16 (allowed when in_features <= 65536) or int32,
    one column per entry. codes: uint8 per entry. codebook: float32[1..256].
    bias: float32[out_features] or None.
    activation: "none", "relu", "relu6", "leaky_relu[:slope]", "sigmoid", "tanh",
    a (name, param) pair or an ``Activation``; applied with the bias in the kernel's epilogue.
    check_values: check every CSR value too (O(E)); pass False when the arrays were already
    checked, e.g. by :func:`prepare_linear` or :func:`check_linear_weights`.
    parallel: force (True) or forbid (False) the threaded kernels; None picks by work size.

    Returns float32 [B, out_features], C-contiguous.
    """
    check_float32("x", x, ndim=2)
    check_linear_weights(row_ptr, cols, codes, codebook, bias, x.shape[1], full=check_values)
    return run_linear(x, row_ptr, cols, codes, codebook, bias, parse_activation(activation), parallel)
