"""Pooling as torch.nn.functional computes it (max, average, adaptive average and max; 2-D, and
1-D as 2-D planes of height 1), NaN and Inf included. Inputs are float32 [N, C, H, W] or
[C, H, W] ([N, C, L] or [C, L] for 1-D) in any layout; every function returns a new C-contiguous
float32 array. The kernels work on [planes, H, W], one plane per thread.
"""

import numpy as np
from numba import njit, prange

from .._jit import jit_cache, threaded_or_serial
from ._common import KernelArgumentError, as_pair, check_float32, elementwise_threaded

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

#: Work (outputs x window size) from which max pooling runs threaded.
POOL_PARALLEL_MIN = 1 << 20


# ---------------------------------------------------------------------------------------------
# Window parameters
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


def _check_planes(x, name):
    check_float32("x", x, contiguous=False)
    if x.ndim not in (3, 4):
        raise KernelArgumentError(
            f"{name} expects x of shape [N, C, H, W] or [C, H, W], got {x.shape}")


def _window(kernel_size, stride, padding, dilation, name):
    """(kernel, stride, padding, dilation) as pairs; stride None (or empty) is the kernel."""
    k = as_pair("kernel_size", kernel_size, 1)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if no_stride else as_pair("stride", stride, 1)
    p = as_pair("padding", padding, 0)
    d = as_pair("dilation", dilation, 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise KernelArgumentError(f"{name}: padding {p} must be at most half the kernel size {k}")
    return k, s, p, d


def _output_hw(h, w, k, s, p, d, ceil_mode, name):
    ho = pool_output_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    wo = pool_output_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    if ho < 1 or wo < 1:
        raise KernelArgumentError(f"{name}: input {h}x{w} too small for kernel {k}, padding {p}, "
                                  f"dilation {d}")
    return ho, wo


def _planes_and_out(x, ho, wo):
    """x as C-contiguous planes [P, H, W] and an empty output [P, Ho, Wo]."""
    planes = np.ascontiguousarray(x).reshape((-1,) + x.shape[-2:])
    return planes, np.empty((planes.shape[0], ho, wo), np.float32)


# ---------------------------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE)
def _max_pool_point(src, kh, kw, dh, dw, y0, x0):
    """The max over the taps of the window at (y0, x0) that lie inside src (NaN wins)."""
    h, w = src.shape
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
    return m


@njit(cache=_CACHE)
def _max_pool_plane(src, kh, kw, sh, sw, ph, pw, dh, dw, dst):
    """One plane: the max of each window over the taps inside the input (NaN wins). The
    columns whose windows lie inside the input's width tap by tap over the output row (no test
    per tap, unsigned indices: a loop LLVM vectorizes), the few others through
    :func:`_max_pool_point`."""
    h, w = src.shape
    ho, wo = dst.shape
    ox_lo = min(wo, (pw + sw - 1) // sw)  # first column whose window starts inside
    last = w - 1 - (kw - 1) * dw + pw  # columns with ox*sw <= last end inside
    ox_hi = max(ox_lo, min(wo, last // sw + 1)) if last >= 0 else ox_lo
    n = np.uint64(ox_hi - ox_lo)
    for oy in range(ho):
        y0 = oy * sh - ph
        drow = dst[oy, ox_lo:ox_hi]
        drow[:] = np.float32(-np.inf)
        for ky in range(kh):
            iy = y0 + ky * dh
            if iy < 0 or iy >= h:
                continue
            srow = src[iy]
            for kx in range(kw):
                base = np.uint64(ox_lo * sw + kx * dw - pw)  # >= 0 for the inside columns
                for i in range(n):
                    v = srow[base + i * np.uint64(sw)]
                    m = drow[i]
                    r = v if v > m else m  # m when m is NaN
                    drow[i] = v if v != v else r
        for ox in range(ox_lo):
            dst[oy, ox] = _max_pool_point(src, kh, kw, dh, dw, y0, ox * sw - pw)
        for ox in range(ox_hi, wo):
            dst[oy, ox] = _max_pool_point(src, kh, kw, dh, dw, y0, ox * sw - pw)


@njit(cache=_CACHE)
def _max_pool_plane_2x2(src, dst):
    """_max_pool_plane for 2x2 windows at stride 2 that lie inside the plane, in one pass (3x
    faster than tap by tap: LeNet's and VGG's pools); NaN wins as in _max_pool_plane."""
    ho, wo = dst.shape
    for oy in range(ho):
        r0 = src[2 * oy]
        r1 = src[2 * oy + 1]
        drow = dst[oy]
        for ox in range(wo):
            a = r0[2 * ox]
            b = r0[2 * ox + 1]
            c = r1[2 * ox]
            d = r1[2 * ox + 1]
            m = a if (a > b or a != a) else b
            n = c if (c > d or c != c) else d
            drow[ox] = m if (m > n or m != m) else n


# Two kinds of kernel, not one with a flag: each compiled kernel carries the machine code of
# all it calls, and a model's pools are usually all of one kind (VGG's 2x2, ResNet's 3x3).

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


@njit(cache=_CACHE, parallel=True)
def max_pool_2x2_parallel(x, out):
    """:func:`max_pool_parallel` for 2x2 windows at stride 2 inside the planes."""
    for p in prange(x.shape[0]):
        _max_pool_plane_2x2(x[p], out[p])


@njit(cache=_CACHE)
def max_pool_2x2_serial(x, out):
    """Serial :func:`max_pool_2x2_parallel`."""
    for p in range(x.shape[0]):
        _max_pool_plane_2x2(x[p], out[p])


class MaxPool2d:
    """max_pool2d with its parameters checked once: ``pool(x)`` as
    ``max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        self.k, self.s, self.p, self.d = _window(kernel_size, stride, padding, dilation,
                                                 "max_pool2d")
        self.ceil_mode = bool(ceil_mode)
        self._sizes = {}

    def _size(self, h, w):
        """(Ho, Wo, whether the windows are 2x2 at stride 2 and all inside the input) for an
        input of h x w."""
        got = self._sizes.get((h, w))
        if got is None:
            k, s, p, d = self.k, self.s, self.p, self.d
            ho, wo = _output_hw(h, w, k, s, p, d, self.ceil_mode, "max_pool2d")
            inside = p == (0, 0) and (ho - 1) * s[0] + (k[0] - 1) * d[0] < h and \
                (wo - 1) * s[1] + (k[1] - 1) * d[1] < w
            got = (ho, wo, inside and k == (2, 2) and s == (2, 2) and d == (1, 1))
            if len(self._sizes) >= 8:
                self._sizes.clear()
            self._sizes[(h, w)] = got
        return got

    def __call__(self, x):
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim not in (3, 4):
            _check_planes(x, "max_pool2d")
        h, w = x.shape[-2], x.shape[-1]
        ho, wo, pairs = self._size(h, w)
        planes, out = _planes_and_out(x, ho, wo)
        if out.size:
            k, s, p, d = self.k, self.s, self.p, self.d
            par = out.size * k[0] * k[1] >= POOL_PARALLEL_MIN and planes.shape[0] > 1
            if pairs:
                kern = threaded_or_serial(max_pool_2x2_parallel, max_pool_2x2_serial, par)
                kern(planes, out)
            else:
                kern = threaded_or_serial(max_pool_parallel, max_pool_serial, par)
                kern(planes, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], out)
        return out.reshape(x.shape[:-2] + (ho, wo))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """torch.nn.functional.max_pool2d: x float32 [N, C, H, W] (or [C, H, W]).

    kernel_size, stride (default: kernel_size), padding (at most half the kernel),
    dilation: int or (h, w). A NaN in a window gives NaN.
    """
    _check_planes(x, "max_pool2d")
    return MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode)(x)


# ---------------------------------------------------------------------------------------------
# Average pooling
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE)
def _avg_pool_plane(src, kh, kw, sh, sw, ph, pw, include_pad, divisor, dst):
    h, w = src.shape
    for oy in range(dst.shape[0]):
        y0 = oy * sh - ph
        y1 = min(y0 + kh, h + ph)
        for ox in range(dst.shape[1]):
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
    _check_planes(x, "avg_pool2d")
    k, s, p, d = _window(kernel_size, stride, padding, 1, "avg_pool2d")
    ho, wo = _output_hw(x.shape[-2], x.shape[-1], k, s, p, d, bool(ceil_mode), "avg_pool2d")
    if divisor_override is None:
        divisor = 0
    elif isinstance(divisor_override, (int, np.integer)) \
            and not isinstance(divisor_override, bool) and divisor_override > 0:
        divisor = int(divisor_override)
    else:
        raise KernelArgumentError(
            f"divisor_override must be a positive int or None, got {divisor_override!r}")
    planes, out = _planes_and_out(x, ho, wo)
    if out.size:
        work = out.size * k[0] * k[1]
        threaded = elementwise_threaded(work) and planes.shape[0] > 1
        kern = threaded_or_serial(avg_pool_parallel, avg_pool_serial, threaded)
        kern(planes, k[0], k[1], s[0], s[1], p[0], p[1], bool(count_include_pad), divisor, out)
    return out.reshape(x.shape[:-2] + (ho, wo))


# ---------------------------------------------------------------------------------------------
# Adaptive pooling: output o of a dim of size I -> O covers [floor(o*I/O), ceil((o+1)*I/O))
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE)
def _adaptive_plane(src, take_max, dst):
    """One plane: the average of each window, or with `take_max` its max (NaN wins)."""
    h, w = src.shape
    ho, wo = dst.shape
    for oy in range(ho):
        y0 = (oy * h) // ho
        y1 = -((-(oy + 1) * h) // ho)
        for ox in range(wo):
            x0 = (ox * w) // wo
            x1 = -((-(ox + 1) * w) // wo)
            if take_max:
                m = np.float32(-np.inf)
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        v = src[iy, ix]
                        if v > m or np.isnan(v):
                            m = v
                dst[oy, ox] = m
            else:
                acc = np.float32(0.0)
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        acc += src[iy, ix]
                dst[oy, ox] = acc / np.float32((y1 - y0) * (x1 - x0))


@njit(cache=_CACHE, parallel=True)
def adaptive_pool_parallel(x, take_max, out):
    """x [P, H, W] -> out [P, Ho, Wo]: the average, or with `take_max` the max (NaN wins),
    of window [floor(o*I/O), ceil((o+1)*I/O)) in each dim."""
    for p in prange(x.shape[0]):
        _adaptive_plane(x[p], take_max, out[p])


@njit(cache=_CACHE)
def adaptive_pool_serial(x, take_max, out):
    """Serial :func:`adaptive_pool_parallel`."""
    for p in range(x.shape[0]):
        _adaptive_plane(x[p], take_max, out[p])


def _adaptive_pool2d(x, output_size, take_max, name):
    _check_planes(x, name)
    h, w = x.shape[-2], x.shape[-1]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        ho = h if output_size[0] is None else output_size[0]
        wo = w if output_size[1] is None else output_size[1]
        ho, wo = as_pair("output_size", (ho, wo), 1)
    else:
        ho, wo = as_pair("output_size", output_size, 1)
    if h < 1 or w < 1:
        raise KernelArgumentError(f"{name}: input planes must not be empty, got {h}x{w}")
    planes, out = _planes_and_out(x, ho, wo)
    if (ho, wo) == (h, w):  # every window one element (VGG's 7x7 -> 7x7): a copy
        out[...] = planes
    elif (ho, wo) == (1, 1):  # global pooling (ResNet's, MobileNet's): numpy's reduction, one
        # kernel less to compile on a cold start; NaN wins in max as in the kernel
        flat = planes.reshape(planes.shape[0], h * w)
        out[:, 0, 0] = flat.max(axis=1) if take_max else flat.mean(axis=1, dtype=np.float32)
    elif out.size:
        threaded = elementwise_threaded(planes.size) and planes.shape[0] > 1
        kern = threaded_or_serial(adaptive_pool_parallel, adaptive_pool_serial, threaded)
        kern(planes, take_max, out)
    return out.reshape(x.shape[:-2] + (ho, wo))


def adaptive_avg_pool2d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool2d: x float32 [N, C, H, W] (or [C, H, W]);
    output_size an int or (h, w), None in a place keeping the input size."""
    return _adaptive_pool2d(x, output_size, False, "adaptive_avg_pool2d")


def adaptive_max_pool2d(x, output_size):
    """torch.nn.functional.adaptive_max_pool2d without the indices: as adaptive_avg_pool2d,
    the max of each window instead of its average (NaN wins)."""
    return _adaptive_pool2d(x, output_size, True, "adaptive_max_pool2d")


# ---------------------------------------------------------------------------------------------
# 1-D pooling: x [N, C, L] (or [C, L]) pooled as planes [N, C, 1, L], as PyTorch does
# ---------------------------------------------------------------------------------------------


def _as_planes_1d(x, name):
    """x [..., L] as [..., 1, L], after checking it is [N, C, L] or [C, L]."""
    check_float32("x", x, contiguous=False)
    if x.ndim not in (2, 3):
        raise KernelArgumentError(f"{name} expects x of shape [N, C, L] or [C, L], got "
                                  f"{x.shape}")
    return x.reshape(x.shape[:-1] + (1, x.shape[-1]))


def _as_int(name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise KernelArgumentError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _window_1d(kernel_size, stride, padding, dilation, name):
    """The 2-D window (pairs) of a 1-D pooling: height 1, no padding along it."""
    k = _as_int("kernel_size", kernel_size, 1)
    s = k if stride is None else _as_int("stride", stride, 1)
    p = _as_int("padding", padding, 0)
    d = _as_int("dilation", dilation, 1)
    if p > k // 2:
        raise KernelArgumentError(f"{name}: padding {p} must be at most half the kernel size "
                                  f"{k}")
    return (1, k), (1, s), (0, p), (1, d)


class MaxPool1d:
    """max_pool1d with its parameters checked once: ``pool(x)`` as
    ``max_pool1d(x, kernel_size, stride, padding, dilation, ceil_mode)``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        k, s, p, d = _window_1d(kernel_size, stride, padding, dilation, "max_pool1d")
        self._pool = MaxPool2d(k, s, p, d, ceil_mode)

    def __call__(self, x):
        y = self._pool(_as_planes_1d(x, "max_pool1d"))
        return y.reshape(y.shape[:-2] + y.shape[-1:])


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """torch.nn.functional.max_pool1d: x float32 [N, C, L] (or [C, L]); kernel_size, stride
    (default: kernel_size), padding (at most half the kernel), dilation: ints. A NaN in a
    window gives NaN."""
    return MaxPool1d(kernel_size, stride, padding, dilation, ceil_mode)(x)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """torch.nn.functional.avg_pool1d: x float32 [N, C, L] (or [C, L]); the divisor is the
    window clipped to the padded input (count_include_pad) or the input samples in it."""
    k, s, p, _ = _window_1d(kernel_size, stride, padding, 1, "avg_pool1d")
    y = avg_pool2d(_as_planes_1d(x, "avg_pool1d"), k, s, p, ceil_mode, count_include_pad)
    return y.reshape(y.shape[:-2] + y.shape[-1:])


def _adaptive_pool1d(x, output_size, take_max, name):
    size = _as_int("output_size", output_size, 1)
    y = _adaptive_pool2d(_as_planes_1d(x, name), (1, size), take_max, name)
    return y.reshape(y.shape[:-2] + y.shape[-1:])


def adaptive_avg_pool1d(x, output_size):
    """torch.nn.functional.adaptive_avg_pool1d: x float32 [N, C, L] (or [C, L]), output_size
    an int >= 1."""
    return _adaptive_pool1d(x, output_size, False, "adaptive_avg_pool1d")


def adaptive_max_pool1d(x, output_size):
    """torch.nn.functional.adaptive_max_pool1d without the indices (NaN wins)."""
    return _adaptive_pool1d(x, output_size, True, "adaptive_max_pool1d")
