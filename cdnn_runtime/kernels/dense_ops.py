"""Dense operators of the runtime: pooling, activations, normalisation, small dense layers
and tensor plumbing. Semantics follow PyTorch (torch.nn.functional) exactly, NaN and Inf
included; every function takes float32 arrays and returns a new float32 array (inputs are
never modified), and an empty batch gives an empty result.

Pooling, element-wise activations, batch norm and LRN are numba kernels (threaded above
``ELEMENTWISE_PARALLEL_MIN`` elements); the rest is numpy.
"""

import math

import numpy as np
from numba import njit, prange

from ._common import (
    ACT_GELU,
    ACT_GELU_TANH,
    ACT_LEAKY_RELU,
    ACT_NONE,
    ACT_RELU,
    ACT_RELU6,
    ACT_SIGMOID,
    ACT_TANH,
    ELEMENTWISE_PARALLEL_MIN,
    Activation,
    KernelArgumentError,
    apply_activation,
    as_pair,
    check_float32,
    parse_activation,
)
from .._jit import jit_cache

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

__all__ = [
    "pool_output_size",
    "max_pool2d",
    "MaxPool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "activation",
    "relu",
    "relu6",
    "leaky_relu",
    "prelu",
    "sigmoid",
    "tanh",
    "gelu",
    "softmax",
    "log_softmax",
    "batch_norm",
    "local_response_norm",
    "linear_dense",
    "add",
    "mul",
    "cat",
    "flatten",
    "reshape",
    "permute",
]


def _float32_array(name, x):
    """A float32 ndarray (any layout); raises KernelArgumentError otherwise."""
    return check_float32(name, x, contiguous=False)


def _c(x):
    return np.ascontiguousarray(x)


def _parallel(n):
    return n >= ELEMENTWISE_PARALLEL_MIN


#: Work (outputs x window size) from which max pooling runs threaded.
POOL_PARALLEL_MIN = 1 << 20


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------


def pool_output_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's pooling output size: floor (or ceil) division, and with ceil_mode the last
    window must start inside the input or the left padding."""
    eff = dilation * (kernel - 1) + 1
    num = size + 2 * pad - eff + ((stride - 1) if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_params(x, kernel_size, stride, padding, dilation, ceil_mode, name):
    check_float32("x", x, contiguous=False)
    if x.ndim not in (3, 4):
        raise KernelArgumentError(f"{name} expects x of shape [N, C, H, W] or [C, H, W], got {x.shape}")
    k = as_pair("kernel_size", kernel_size, 1)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else as_pair(
        "stride", stride, 1)
    p = as_pair("padding", padding, 0)
    d = as_pair("dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise KernelArgumentError(f"{name}: padding {p} must be at most half the kernel size {k}")
    h, w = x.shape[-2], x.shape[-1]
    ho = pool_output_size(h, k[0], s[0], p[0], d[0], bool(ceil_mode))
    wo = pool_output_size(w, k[1], s[1], p[1], d[1], bool(ceil_mode))
    if ho < 1 or wo < 1:
        raise KernelArgumentError(f"{name}: input {h}x{w} too small for kernel {k}, padding {p}, dilation {d}")
    return k, s, p, d, ho, wo


@njit(cache=_CACHE)
def _max_pool_plane(src, kh, kw, sh, sw, ph, pw, dh, dw, dst):
    h, w = src.shape
    ho, wo = dst.shape
    for oy in range(ho):
        y0 = oy * sh - ph
        for ox in range(wo):
            x0 = ox * sw - pw
            m = np.float32(-np.inf)
            for ky in range(kh):
                iy = y0 + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = x0 + kx * dw
                    if ix < 0 or ix >= w:
                        continue
                    v = src[iy, ix]
                    if v > m or np.isnan(v):
                        m = v
            dst[oy, ox] = m


@njit(cache=_CACHE, parallel=True)
def max_pool_parallel(x, kh, kw, sh, sw, ph, pw, dh, dw, out):
    """x [P, H, W] -> out [P, Ho, Wo]: max over each window (NaN wins, padding ignored)."""
    for p in prange(x.shape[0]):
        _max_pool_plane(x[p], kh, kw, sh, sw, ph, pw, dh, dw, out[p])


@njit(cache=_CACHE)
def max_pool_serial(x, kh, kw, sh, sw, ph, pw, dh, dw, out):
    """Serial :func:`max_pool_parallel`."""
    for p in range(x.shape[0]):
        _max_pool_plane(x[p], kh, kw, sh, sw, ph, pw, dh, dw, out[p])


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """torch.nn.functional.max_pool2d: x float32 [N, C, H, W] (or [C, H, W]).

    kernel_size, stride (default: kernel_size), padding (at most half the kernel),
    dilation: int or (h, w). A NaN in a window gives NaN.
    """
    k, s, p, d, ho, wo = _pool_params(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    lead = x.shape[:-2]
    planes = _c(x).reshape((-1,) + x.shape[-2:])
    out = np.empty((planes.shape[0], ho, wo), np.float32)
    if out.size:
        work = out.size * k[0] * k[1]
        par = work >= POOL_PARALLEL_MIN and planes.shape[0] > 1
        h, w = x.shape[-2], x.shape[-1]
        if p == (0, 0) and (ho - 1) * s[0] + (k[0] - 1) * d[0] < h and (wo - 1) * s[1] + (k[1] - 1) * d[1] < w:
            kern = max_pool_inside_parallel if par else max_pool_inside_serial
            kern(planes, k[0], k[1], s[0], s[1], d[0], d[1], out)
        else:
            kern = max_pool_parallel if par else max_pool_serial
            kern(planes, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], out)
    return out.reshape(lead + (ho, wo))


@njit(cache=_CACHE)
def _max_pool_plane_inside(src, kh, kw, sh, sw, dh, dw, dst):
    """_max_pool_plane when every window lies inside the plane: tap by tap over whole output
    rows (plain loops that LLVM vectorizes); NaN wins as in _max_pool_plane."""
    ho, wo = dst.shape
    for oy in range(ho):
        drow = dst[oy]
        first = src[oy * sh]
        for ox in range(wo):
            drow[ox] = first[ox * sw]
        for ky in range(kh):
            srow = src[oy * sh + ky * dh]
            for kx in range(kw):
                if ky == 0 and kx == 0:
                    continue
                off = kx * dw
                for ox in range(wo):
                    v = srow[ox * sw + off]
                    m = drow[ox]
                    drow[ox] = v if (v > m or v != v) else m


@njit(cache=_CACHE, parallel=True)
def max_pool_inside_parallel(x, kh, kw, sh, sw, dh, dw, out):
    """max_pool_parallel for windows that all lie inside the planes (no padding reached)."""
    for p in prange(x.shape[0]):
        _max_pool_plane_inside(x[p], kh, kw, sh, sw, dh, dw, out[p])


@njit(cache=_CACHE)
def max_pool_inside_serial(x, kh, kw, sh, sw, dh, dw, out):
    """Serial :func:`max_pool_inside_parallel`."""
    for p in range(x.shape[0]):
        _max_pool_plane_inside(x[p], kh, kw, sh, sw, dh, dw, out[p])


class MaxPool2d:
    """max_pool2d with its parameters checked once: ``pool(x)`` as
    ``max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        self.args = (kernel_size, stride, padding, dilation, ceil_mode)
        self.k = as_pair("kernel_size", kernel_size, 1)
        self.s = self.k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
            else as_pair("stride", stride, 1)
        self.p = as_pair("padding", padding, 0)
        self.d = as_pair("dilation", dilation, 1)
        self.ceil_mode = bool(ceil_mode)
        if self.p[0] > self.k[0] // 2 or self.p[1] > self.k[1] // 2:
            raise KernelArgumentError(f"max_pool2d: padding {self.p} must be at most half the kernel size {self.k}")
        self._sizes = {}

    def _size(self, h, w):
        got = self._sizes.get((h, w))
        if got is None:
            k, s, p, d = self.k, self.s, self.p, self.d
            ho = pool_output_size(h, k[0], s[0], p[0], d[0], self.ceil_mode)
            wo = pool_output_size(w, k[1], s[1], p[1], d[1], self.ceil_mode)
            if ho < 1 or wo < 1:
                raise KernelArgumentError(f"max_pool2d: input {h}x{w} too small for kernel {k}, padding {p}, "
                                          f"dilation {d}")
            inside = p == (0, 0) and (ho - 1) * s[0] + (k[0] - 1) * d[0] < h and \
                (wo - 1) * s[1] + (k[1] - 1) * d[1] < w
            got = (ho, wo, inside)
            if len(self._sizes) >= 8:
                self._sizes.clear()
            self._sizes[(h, w)] = got
        return got

    def __call__(self, x):
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim not in (3, 4):
            return max_pool2d(x, *self.args)
        h, w = x.shape[-2], x.shape[-1]
        ho, wo, inside = self._size(h, w)
        lead = x.shape[:-2]
        planes = _c(x).reshape((-1, h, w))
        out = np.empty((planes.shape[0], ho, wo), np.float32)
        if out.size:
            k, s, p, d = self.k, self.s, self.p, self.d
            par = out.size * k[0] * k[1] >= POOL_PARALLEL_MIN and planes.shape[0] > 1
            if inside:
                kern = max_pool_inside_parallel if par else max_pool_inside_serial
                kern(planes, k[0], k[1], s[0], s[1], d[0], d[1], out)
            else:
                kern = max_pool_parallel if par else max_pool_serial
                kern(planes, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], out)
        return out.reshape(lead + (ho, wo))


@njit(cache=_CACHE)
def _avg_pool_plane(src, kh, kw, sh, sw, ph, pw, include_pad, divisor, dst):
    h, w = src.shape
    ho, wo = dst.shape
    for oy in range(ho):
        y0 = oy * sh - ph
        y1 = min(y0 + kh, h + ph)
        for ox in range(wo):
            x0 = ox * sw - pw
            x1 = min(x0 + kw, w + pw)
            pool_size = (y1 - y0) * (x1 - x0)
            ya = max(y0, 0)
            xa = max(x0, 0)
            yb = min(y1, h)
            xb = min(x1, w)
            if ya >= yb or xa >= xb:
                dst[oy, ox] = 0.0
                continue
            acc = np.float32(0.0)
            for iy in range(ya, yb):
                for ix in range(xa, xb):
                    acc += src[iy, ix]
            if divisor > 0:
                div = divisor
            elif include_pad:
                div = pool_size
            else:
                div = (yb - ya) * (xb - xa)
            dst[oy, ox] = acc / np.float32(div)


@njit(cache=_CACHE, parallel=True)
def avg_pool_parallel(x, kh, kw, sh, sw, ph, pw, include_pad, divisor, out):
    """x [P, H, W] -> out [P, Ho, Wo]: PyTorch's avg_pool2d window means."""
    for p in prange(x.shape[0]):
        _avg_pool_plane(x[p], kh, kw, sh, sw, ph, pw, include_pad, divisor, out[p])


@njit(cache=_CACHE)
def avg_pool_serial(x, kh, kw, sh, sw, ph, pw, include_pad, divisor, out):
    """Serial :func:`avg_pool_parallel`."""
    for p in range(x.shape[0]):
        _avg_pool_plane(x[p], kh, kw, sh, sw, ph, pw, include_pad, divisor, out[p])


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """torch.nn.functional.avg_pool2d: x float32 [N, C, H, W] (or [C, H, W]).

    The divisor is the window size clipped to the padded input (count_include_pad), or the
    number of input pixels in the window, or divisor_override when given.
    """
    k, s, p, _, ho, wo = _pool_params(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    if divisor_override is None:
        divisor = 0
    elif isinstance(divisor_override, (int, np.integer)) and not isinstance(divisor_override, bool) \
            and divisor_override > 0:
        divisor = int(divisor_override)
    else:
        raise KernelArgumentError(f"divisor_override must be a positive int or None, got {divisor_override!r}")
    lead = x.shape[:-2]
    planes = _c(x).reshape((-1,) + x.shape[-2:])
    out = np.empty((planes.shape[0], ho, wo), np.float32)
    if out.size:
        work = out.size * k[0] * k[1]
        kern = avg_pool_parallel if _parallel(work) and planes.shape[0] > 1 else avg_pool_serial
        kern(planes, k[0], k[1], s[0], s[1], p[0], p[1], bool(count_include_pad), divisor, out)
    return out.reshape(lead + (ho, wo))


@njit(cache=_CACHE)
def _adaptive_avg_plane(src, dst):
    h, w = src.shape
    ho, wo = dst.shape
    for oy in range(ho):
        y0 = (oy * h) // ho
        y1 = -((-(oy + 1) * h) // ho)
        for ox in range(wo):
            x0 = (ox * w) // wo
            x1 = -((-(ox + 1) * w) // wo)
            acc = np.float32(0.0)
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    acc += src[iy, ix]
            dst[oy, ox] = acc / np.float32((y1 - y0) * (x1 - x0))


@njit(cache=_CACHE, parallel=True)
def adaptive_avg_pool_parallel(x, out):
    """x [P, H, W] -> out [P, Ho, Wo], window [floor(o*I/O), ceil((o+1)*I/O))."""
    for p in prange(x.shape[0]):
        _adaptive_avg_plane(x[p], out[p])


@njit(cache=_CACHE)
def adaptive_avg_pool_serial(x, out):
    """Serial :func:`adaptive_avg_pool_parallel`."""
    for p in range(x.shape[0]):
        _adaptive_avg_plane(x[p], out[p])


def adaptive_avg_pool2d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool2d: x float32 [N, C, H, W] (or [C, H, W]);
    output_size an int or (h, w), None in a place keeping the input size."""
    check_float32("x", x, contiguous=False)
    if x.ndim not in (3, 4):
        raise KernelArgumentError(f"adaptive_avg_pool2d expects x of shape [N, C, H, W] or [C, H, W], got {x.shape}")
    h, w = x.shape[-2], x.shape[-1]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        ho = h if output_size[0] is None else output_size[0]
        wo = w if output_size[1] is None else output_size[1]
        ho, wo = as_pair("output_size", (ho, wo), 1)
    else:
        ho, wo = as_pair("output_size", output_size, 1)
    if h < 1 or w < 1:
        raise KernelArgumentError(f"adaptive_avg_pool2d: input planes must not be empty, got {h}x{w}")
    lead = x.shape[:-2]
    planes = _c(x).reshape((-1, h, w))
    out = np.empty((planes.shape[0], ho, wo), np.float32)
    if out.size:
        kern = adaptive_avg_pool_parallel if _parallel(planes.size) and planes.shape[0] > 1 \
            else adaptive_avg_pool_serial
        kern(planes, out)
    return out.reshape(lead + (ho, wo))


# ---------------------------------------------------------------------------------------------
# Element-wise activations
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE, parallel=True)
def activation_parallel(x, code, param, out):
    """out[i] = activation(x[i]) over flat float32 arrays."""
    for i in prange(x.shape[0]):
        out[i] = apply_activation(x[i], code, param)


@njit(cache=_CACHE)
def activation_serial(x, code, param, out):
    """Serial :func:`activation_parallel`."""
    for i in range(x.shape[0]):
        out[i] = apply_activation(x[i], code, param)


def _map_activation(x, act):
    flat = _c(x).reshape(-1)
    out = np.empty(x.shape, np.float32)
    if act.code == ACT_NONE:
        out[...] = x
        return out
    kern = activation_parallel if _parallel(flat.shape[0]) else activation_serial
    kern(flat, act.code, act.param, out.reshape(-1))
    return out


def activation(x, spec):
    """Apply an activation given as a spec (see parse_activation) element-wise."""
    return _map_activation(_float32_array("x", x), parse_activation(spec))


def relu(x):
    """max(x, 0); NaN stays NaN."""
    return _map_activation(_float32_array("x", x), Activation(ACT_RELU))


def relu6(x):
    """min(max(x, 0), 6); NaN stays NaN."""
    return _map_activation(_float32_array("x", x), Activation(ACT_RELU6))


def leaky_relu(x, negative_slope=0.01):
    """x if x >= 0 else negative_slope * x."""
    slope = float(negative_slope)
    if not math.isfinite(slope):
        raise KernelArgumentError(f"negative_slope must be finite, got {negative_slope!r}")
    return _map_activation(_float32_array("x", x), Activation(ACT_LEAKY_RELU, slope))


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow."""
    return _map_activation(_float32_array("x", x), Activation(ACT_SIGMOID))


def tanh(x):
    """Hyperbolic tangent."""
    return _map_activation(_float32_array("x", x), Activation(ACT_TANH))


def gelu(x, approximate="none"):
    """GELU: exact erf form (approximate='none') or the tanh approximation ('tanh')."""
    if approximate == "none":
        act = Activation(ACT_GELU)
    elif approximate == "tanh":
        act = Activation(ACT_GELU_TANH)
    else:
        raise KernelArgumentError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    return _map_activation(_float32_array("x", x), act)


def prelu(x, weight):
    """x if x >= 0 else weight * x, weight float32 of one value or one per channel (axis 1)."""
    x = _float32_array("x", x)
    weight = _float32_array("weight", weight)
    if weight.ndim != 1:
        raise KernelArgumentError(f"prelu weight must be 1-D, got shape {weight.shape}")
    n = weight.shape[0]
    if n == 1:
        w = weight.reshape(())
    else:
        if x.ndim < 2 or x.shape[1] != n:
            raise KernelArgumentError(
                f"prelu weight has {n} values but x has shape {x.shape} (channels on axis 1)")
        w = weight.reshape((1, n) + (1,) * (x.ndim - 2))
    return _c(np.where(x < 0, x * w, x).astype(np.float32, copy=False))


# ---------------------------------------------------------------------------------------------
# Softmax
# ---------------------------------------------------------------------------------------------


def _axis(x, axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise KernelArgumentError(f"axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise KernelArgumentError(f"axis {axis} out of range for a {x.ndim}-D array")
    return int(axis) % x.ndim


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along axis."""
    x = _float32_array("x", x)
    if x.ndim == 0:
        raise KernelArgumentError("softmax needs at least 1 dimension")
    axis = _axis(x, axis)
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(x - m)
        s = np.sum(e, axis=axis, keepdims=True)
        out = e / s
    return _c(out.astype(np.float32, copy=False))


def log_softmax(x, axis=-1):
    """x - max - log(sum(exp(x - max))) along axis."""
    x = _float32_array("x", x)
    if x.ndim == 0:
        raise KernelArgumentError("log_softmax needs at least 1 dimension")
    axis = _axis(x, axis)
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        shifted = x - m
        lse = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        out = shifted - lse
    return _c(out.astype(np.float32, copy=False))


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE, parallel=True)
def affine_channels_parallel(x, mean, scale, shift, out):
    """x, out [N, C, S]: out = (x - mean[c]) * scale[c] + shift[c]."""
    n_ch = x.shape[1]
    for t in prange(x.shape[0] * n_ch):
        b = t // n_ch
        c = t - b * n_ch
        m = mean[c]
        a = scale[c]
        s = shift[c]
        src = x[b, c]
        dst = out[b, c]
        for i in range(src.shape[0]):
            dst[i] = (src[i] - m) * a + s


@njit(cache=_CACHE)
def affine_channels_serial(x, mean, scale, shift, out):
    """Serial :func:`affine_channels_parallel`."""
    n_ch = x.shape[1]
    for b in range(x.shape[0]):
        for c in range(n_ch):
            m = mean[c]
            a = scale[c]
            s = shift[c]
            src = x[b, c]
            dst = out[b, c]
            for i in range(src.shape[0]):
                dst[i] = (src[i] - m) * a + s


def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    """Inference batch norm over axis 1: (x - mean) / sqrt(var + eps) * weight + bias.

    x float32 [N, C, ...]; running_mean, running_var, weight, bias float32 [C]
    (weight and bias optional: 1 and 0).
    """
    x = _float32_array("x", x)
    if x.ndim < 2:
        raise KernelArgumentError(f"batch_norm expects x of shape [N, C, ...], got {x.shape}")
    n_ch = x.shape[1]
    vecs = {}
    for name, v in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if v is None and name in ("weight", "bias"):
            continue
        check_float32(name, v, ndim=1, contiguous=False)
        if v.shape[0] != n_ch:
            raise KernelArgumentError(f"batch_norm {name} must have {n_ch} values, got {v.shape[0]}")
        vecs[name] = v
    eps = float(eps)
    inv = 1.0 / np.sqrt(vecs["running_var"].astype(np.float64) + eps)
    scale = inv if weight is None else inv * vecs["weight"]
    scale = scale.astype(np.float32)
    shift = np.zeros(n_ch, np.float32) if bias is None else _c(vecs["bias"])
    mean = _c(vecs["running_mean"])
    xc = _c(x).reshape(x.shape[0], n_ch, -1) if x.size else None
    out = np.empty(x.shape, np.float32)
    if x.size:
        kern = affine_channels_parallel if _parallel(x.size) else affine_channels_serial
        kern(xc, mean, scale, shift, out.reshape(xc.shape))
    return out


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
    x = _float32_array("x", x)
    if x.ndim < 3:
        raise KernelArgumentError(f"local_response_norm expects x of shape [N, C, ...], got {x.shape}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise KernelArgumentError(f"local_response_norm size must be an int >= 1, got {size!r}")
    out = np.empty(x.shape, np.float32)
    if x.size == 0:
        return out
    xc = _c(x).reshape(x.shape[0], x.shape[1], -1)
    work = x.size * min(int(size), x.shape[1])
    kern = lrn_parallel if _parallel(work) and x.shape[0] > 1 else lrn_serial
    kern(xc, int(size), float(alpha), float(beta), float(k), out.reshape(xc.shape))
    return out


# ---------------------------------------------------------------------------------------------
# Dense linear (small layers stored raw)
# ---------------------------------------------------------------------------------------------


def linear_dense(x, weight, bias=None, activation="none"):
    """act(x @ weight.T + bias) with a raw float32 weight [out, in]; x float32 [B, in]."""
    x = _float32_array("x", x)
    check_float32("weight", weight, ndim=2, contiguous=False)
    if x.ndim != 2:
        raise KernelArgumentError(f"x must be 2-D [B, in_features], got shape {x.shape}")
    if x.shape[1] != weight.shape[1]:
        raise KernelArgumentError(f"x has {x.shape[1]} features, weight expects {weight.shape[1]}")
    if bias is not None:
        check_float32("bias", bias, ndim=1, contiguous=False)
        if bias.shape[0] != weight.shape[0]:
            raise KernelArgumentError(f"bias must have {weight.shape[0]} values, got {bias.shape[0]}")
    act = parse_activation(activation)
    out = np.matmul(x, weight.T)
    if bias is not None:
        out += bias
    out = _c(out)
    if act.code != ACT_NONE and out.size:
        flat = out.reshape(-1)
        kern = activation_parallel if _parallel(flat.shape[0]) else activation_serial
        kern(flat, act.code, act.param, flat)
    return out


# ---------------------------------------------------------------------------------------------
# Arithmetic and tensor plumbing
# ---------------------------------------------------------------------------------------------


def _operand(name, v):
    if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool):
        return np.float32(v)
    return _float32_array(name, v)


def _broadcast(a, b, what):
    try:
        np.broadcast_shapes(np.shape(a), np.shape(b))
    except ValueError:
        raise KernelArgumentError(f"{what}: shapes {np.shape(a)} and {np.shape(b)} do not broadcast") from None


def add(a, b):
    """a + b with numpy broadcasting (float32 arrays or Python/numpy scalars)."""
    a = _operand("a", a)
    b = _operand("b", b)
    _broadcast(a, b, "add")
    return _c(np.add(a, b, dtype=np.float32))


def mul(a, b):
    """a * b with numpy broadcasting (float32 arrays or Python/numpy scalars)."""
    a = _operand("a", a)
    b = _operand("b", b)
    _broadcast(a, b, "mul")
    return _c(np.multiply(a, b, dtype=np.float32))


def cat(xs, axis=1):
    """Concatenate float32 arrays of equal rank along axis (sizes equal on the other axes)."""
    xs = list(xs)
    if not xs:
        raise KernelArgumentError("cat needs at least one array")
    for i, x in enumerate(xs):
        _float32_array(f"xs[{i}]", x)
    nd = xs[0].ndim
    if nd == 0:
        raise KernelArgumentError("cat cannot join 0-D arrays")
    ax = _axis(xs[0], axis)
    for i, x in enumerate(xs):
        if x.ndim != nd or x.shape[:ax] != xs[0].shape[:ax] or x.shape[ax + 1:] != xs[0].shape[ax + 1:]:
            raise KernelArgumentError(
                f"cat along axis {ax}: xs[{i}] has shape {x.shape}, incompatible with {xs[0].shape}")
    return np.concatenate(xs, axis=ax)


def _prod(dims):
    p = 1
    for d in dims:
        p *= int(d)
    return p


def flatten(x, start_dim=1, end_dim=-1):
    """torch.flatten: merge axes start_dim..end_dim (inclusive) into one."""
    x = _float32_array("x", x)
    if x.ndim == 0:
        return _c(x).reshape(1)
    s = _axis(x, start_dim)
    e = _axis(x, end_dim)
    if s > e:
        raise KernelArgumentError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:s] + (_prod(x.shape[s:e + 1]),) + x.shape[e + 1:]
    return _c(x).reshape(shape)


def reshape(x, shape):
    """Reshape (one -1 allowed, inferred; ambiguous for empty arrays, hence refused there)."""
    x = _float32_array("x", x)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise KernelArgumentError(f"shape must be a sequence of ints, got {shape!r}") from None
    if any(d < -1 for d in shape) or shape.count(-1) > 1:
        raise KernelArgumentError(f"invalid shape {shape}: sizes must be >= 0 with at most one -1")
    if -1 in shape:
        known = _prod(d for d in shape if d != -1)
        if known == 0:
            raise KernelArgumentError(f"cannot infer the -1 in {shape} for an array of {x.size} elements")
        if x.size % known:
            raise KernelArgumentError(f"cannot reshape an array of shape {x.shape} to {shape}")
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    if _prod(shape) != x.size:
        raise KernelArgumentError(f"cannot reshape an array of shape {x.shape} ({x.size} elements) to {shape}")
    return _c(x).reshape(shape)


def permute(x, perm):
    """Axes reordered by perm (a permutation of range(ndim)); returns a C-contiguous copy."""
    x = _float32_array("x", x)
    try:
        perm = tuple(int(p) for p in perm)
    except (TypeError, ValueError):
        raise KernelArgumentError(f"perm must be a sequence of ints, got {perm!r}") from None
    norm = tuple(p % x.ndim if -x.ndim <= p < x.ndim else -1 for p in perm) if x.ndim else perm
    if sorted(norm) != list(range(x.ndim)):
        raise KernelArgumentError(f"perm {perm} is not a permutation of the {x.ndim} axes")
    return np.ascontiguousarray(np.transpose(x, norm))
