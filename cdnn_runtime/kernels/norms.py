"""Normalisations as torch.nn.functional computes them: inference batch norm and local response
norm (numba kernels over [N, C, S], threaded above ``ELEMENTWISE_PARALLEL_MIN`` elements), layer
norm and group norm (numba kernels over rows, moments summed in float64), softmax and
log_softmax (numpy). Inputs are float32 arrays of any layout; every function returns a new
C-contiguous float32 array, and an empty batch gives an empty result.
"""

import numpy as np
from numba import njit, prange

from .._jit import jit_cache, threaded_or_serial
from ._common import (
    FASTMATH,
    KernelArgumentError,
    check_axis,
    check_float32,
    check_float32_array,
    elementwise_threaded,
)

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


# ---------------------------------------------------------------------------------------------
# Softmax
# ---------------------------------------------------------------------------------------------


def _max_along(x, axis, name):
    """(x checked, its axis, the maximum along it kept as a dimension)."""
    x = check_float32_array("x", x)
    if x.ndim == 0:
        raise KernelArgumentError(f"{name} needs at least 1 dimension")
    axis = check_axis(x, axis)
    return x, axis, np.max(x, axis=axis, keepdims=True, initial=-np.inf)


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along axis."""
    x, axis, m = _max_along(x, axis, "softmax")
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(x - m)
        s = np.sum(e, axis=axis, keepdims=True)
        out = e / s
    return np.ascontiguousarray(out.astype(np.float32, copy=False))


def log_softmax(x, axis=-1):
    """x - max - log(sum(exp(x - max))) along axis."""
    x, axis, m = _max_along(x, axis, "log_softmax")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        shifted = x - m
        lse = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        out = shifted - lse
    return np.ascontiguousarray(out.astype(np.float32, copy=False))


# ---------------------------------------------------------------------------------------------
# Batch norm
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE)
def _affine_plane(src, m, a, s, dst):
    for i in range(src.shape[0]):
        dst[i] = (src[i] - m) * a + s


@njit(cache=_CACHE, parallel=True)
def affine_channels_parallel(x, mean, scale, shift, out):
    """x, out [N, C, S]: out = (x - mean[c]) * scale[c] + shift[c]."""
    n_ch = x.shape[1]
    for t in prange(x.shape[0] * n_ch):
        b = t // n_ch
        c = t - b * n_ch
        _affine_plane(x[b, c], mean[c], scale[c], shift[c], out[b, c])


@njit(cache=_CACHE)
def affine_channels_serial(x, mean, scale, shift, out):
    """Serial :func:`affine_channels_parallel`."""
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            _affine_plane(x[b, c], mean[c], scale[c], shift[c], out[b, c])


def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    """Inference batch norm over axis 1: (x - mean) / sqrt(var + eps) * weight + bias.

    x float32 [N, C, ...]; running_mean, running_var, weight, bias float32 [C]
    (weight and bias optional: 1 and 0).
    """
    x = check_float32_array("x", x)
    if x.ndim < 2:
        raise KernelArgumentError(f"batch_norm expects x of shape [N, C, ...], got {x.shape}")
    n_ch = x.shape[1]
    vecs = {}
    for name, v in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if v is None and name in ("weight", "bias"):
            continue
        check_float32(name, v, ndim=1, contiguous=False)
        if v.shape[0] != n_ch:
            raise KernelArgumentError(
                f"batch_norm {name} must have {n_ch} values, got {v.shape[0]}")
        vecs[name] = v
    eps = float(eps)
    inv = 1.0 / np.sqrt(vecs["running_var"].astype(np.float64) + eps)
    scale = inv if weight is None else inv * vecs["weight"]
    scale = scale.astype(np.float32)
    shift = np.zeros(n_ch, np.float32) if bias is None else np.ascontiguousarray(vecs["bias"])
    mean = np.ascontiguousarray(vecs["running_mean"])
    out = np.empty(x.shape, np.float32)
    if x.size:
        xc = np.ascontiguousarray(x).reshape(x.shape[0], n_ch, -1)
        kern = threaded_or_serial(affine_channels_parallel, affine_channels_serial,
                                  elementwise_threaded(x.size))
        kern(xc, mean, scale, shift, out.reshape(xc.shape))
    return out


# ---------------------------------------------------------------------------------------------
# Local response norm
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE, error_model="numpy")
def _lrn_sample(src, size, alpha, beta, k, acc, dst):
    n_ch, n_pix = src.shape
    before = size // 2
    after = (size - 1) // 2
    a = alpha / size
    for c in range(n_ch):
        for i in range(n_pix):
            acc[i] = 0.0
        lo = max(c - before, 0)
        hi = min(c + after, n_ch - 1)
        for j in range(lo, hi + 1):
            row = src[j]
            for i in range(n_pix):
                acc[i] += row[i] * row[i]
        xrow = src[c]
        drow = dst[c]
        for i in range(n_pix):
            drow[i] = xrow[i] / np.float32((k + a * acc[i]) ** beta)


@njit(cache=_CACHE, parallel=True, error_model="numpy")
def lrn_parallel(x, size, alpha, beta, k, out):
    """x, out [N, C, S]: x / (k + alpha/size * sum of x^2 over the channel window)^beta."""
    for b in prange(x.shape[0]):
        acc = np.empty(x.shape[2], np.float32)
        _lrn_sample(x[b], size, alpha, beta, k, acc, out[b])


@njit(cache=_CACHE, error_model="numpy")
def lrn_serial(x, size, alpha, beta, k, out):
    """Serial :func:`lrn_parallel`."""
    acc = np.empty(x.shape[2], np.float32)
    for b in range(x.shape[0]):
        _lrn_sample(x[b], size, alpha, beta, k, acc, out[b])


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """torch.nn.functional.local_response_norm over axis 1 of x float32 [N, C, ...]:
    x / (k + alpha/size * sum over channels [c - size//2, c + (size-1)//2] of x^2)^beta,
    channels outside [0, C) counting as zero."""
    x = check_float32_array("x", x)
    if x.ndim < 3:
        raise KernelArgumentError(
            f"local_response_norm expects x of shape [N, C, ...], got {x.shape}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise KernelArgumentError(f"local_response_norm size must be an int >= 1, got {size!r}")
    out = np.empty(x.shape, np.float32)
    if x.size == 0:
        return out
    xc = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    work = x.size * min(int(size), x.shape[1])
    kern = threaded_or_serial(lrn_parallel, lrn_serial,
                              elementwise_threaded(work) and x.shape[0] > 1)
    kern(xc, int(size), float(alpha), float(beta), float(k), out.reshape(xc.shape))
    return out


# ---------------------------------------------------------------------------------------------
# Layer norm and group norm: rows normalised by their own moments, then a per-channel affine
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE, fastmath=FASTMATH, inline="always")
def _row_moments(row):
    """(mean, biased variance) of a row, summed in float64 in two passes."""
    n = row.shape[0]
    total = 0.0
    for i in range(n):
        total += row[i]
    mean = total / n
    squares = 0.0
    for i in range(n):
        d = row[i] - mean
        squares += d * d
    return mean, squares / n


@njit(cache=_CACHE, fastmath=FASTMATH)
def _normalize_row(src, group, rep, weight, bias, eps, dst):
    """dst = (src - mean) / sqrt(var + eps) * weight[c] + bias[c], where element i of the row
    belongs to channel c = group * (K / rep) + i // rep."""
    mean, var = _row_moments(src)
    rstd = 1.0 / np.sqrt(var + eps)
    n_channels = src.shape[0] // rep
    first = group * n_channels
    for j in range(n_channels):
        scale = rstd * weight[first + j]
        shift = np.float64(bias[first + j])
        for i in range(j * rep, (j + 1) * rep):
            dst[i] = np.float32((src[i] - mean) * scale + shift)


@njit(cache=_CACHE, parallel=True)
def normalize_rows_parallel(x, n_groups, rep, weight, bias, eps, out):
    """x, out [R, K]: each row normalised by its mean and biased variance, then element i of
    row r scaled by weight[c] and shifted by bias[c], c = (r % n_groups) * (K / rep) + i // rep
    (layer norm: n_groups 1, rep 1; group norm over [N * G, C / G * S]: n_groups G, rep S)."""
    for r in prange(x.shape[0]):
        _normalize_row(x[r], r % n_groups, rep, weight, bias, eps, out[r])


@njit(cache=_CACHE)
def normalize_rows_serial(x, n_groups, rep, weight, bias, eps, out):
    """Serial :func:`normalize_rows_parallel`."""
    for r in range(x.shape[0]):
        _normalize_row(x[r], r % n_groups, rep, weight, bias, eps, out[r])


def _affine_vector(name, v, shape, op):
    """weight or bias as a C-contiguous float32 vector of prod(shape) values (1 or 0 when
    None)."""
    size = int(np.prod(shape))
    if v is None:
        return np.full(size, 1.0 if name == "weight" else 0.0, np.float32)
    check_float32(name, v, contiguous=False)
    if v.shape != tuple(shape):
        raise KernelArgumentError(f"{op} {name} must have shape {list(shape)}, got "
                                  f"{list(v.shape)}")
    return np.ascontiguousarray(v).reshape(size)


def _normalize(x, rows, n_groups, rep, weight, bias, eps):
    """x as [rows, K] normalised by :func:`normalize_rows_parallel`, in x's shape."""
    out = np.empty(x.shape, np.float32)
    if out.size == 0:
        return out
    x2 = np.ascontiguousarray(x).reshape(rows, -1)
    threaded = elementwise_threaded(x.size) and rows > 1
    kern = threaded_or_serial(normalize_rows_parallel, normalize_rows_serial, threaded)
    kern(x2, n_groups, rep, weight, bias, float(eps), out.reshape(x2.shape))
    return out


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.layer_norm: each sample's trailing dims `normalized_shape`
    normalised by their mean and biased variance, then times weight plus bias (both of
    shape `normalized_shape`, optional)."""
    x = check_float32_array("x", x)
    shape = tuple(normalized_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                        for d in shape):
        raise KernelArgumentError(f"layer_norm normalized_shape must be a non-empty list of "
                                  f"ints >= 1, got {list(shape)}")
    if x.ndim < len(shape) or x.shape[x.ndim - len(shape):] != shape:
        raise KernelArgumentError(f"layer_norm over {list(shape)} needs x ending in those "
                                  f"dims, got shape {list(x.shape)}")
    w = _affine_vector("weight", weight, shape, "layer_norm")
    b = _affine_vector("bias", bias, shape, "layer_norm")
    rows = int(np.prod(x.shape[:x.ndim - len(shape)]))
    return _normalize(x, rows, 1, 1, w, b, eps)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.group_norm: x [N, C, ...] with its C channels in `num_groups`
    groups, each sample's group normalised by its mean and biased variance, then times
    weight[c] plus bias[c] (both [C], optional). Instance norm is num_groups = C."""
    x = check_float32_array("x", x)
    if x.ndim < 2:
        raise KernelArgumentError(f"group_norm expects x of shape [N, C, ...], got {x.shape}")
    n_ch = x.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) \
            or num_groups < 1 or n_ch % num_groups:
        raise KernelArgumentError(f"group_norm: {n_ch} channels do not split into "
                                  f"{num_groups!r} groups")
    w = _affine_vector("weight", weight, (n_ch,), "group_norm")
    b = _affine_vector("bias", bias, (n_ch,), "group_norm")
    rep = int(np.prod(x.shape[2:]))
    return _normalize(x, x.shape[0] * int(num_groups), int(num_groups), max(rep, 1), w, b, eps)
