"""Resizing as torch.nn.functional.interpolate computes it on [N, C, H, W]: modes "nearest",
"nearest-exact" and "bilinear" (align_corners either way), to a given output size, the
source coordinates computed in float32 exactly as PyTorch's CPU kernels do (so that nearest
picks the same pixels). Inputs are float32 in any layout; every function returns a new
C-contiguous float32 array. The kernels work on [planes, H, W], one plane per thread.
"""

import numpy as np
from numba import njit, prange

from .._jit import jit_cache, threaded_or_serial
from ._common import KernelArgumentError, as_pair, check_float32, elementwise_threaded

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

#: The modes of :func:`interpolate`.
MODES = ("nearest", "nearest-exact", "bilinear")


# ---------------------------------------------------------------------------------------------
# Source coordinates, one dim at a time (tiny tables, computed in numpy)
# ---------------------------------------------------------------------------------------------


def _scale(in_size, out_size, scale_factor):
    """PyTorch's compute_scales_value: 1 / scale_factor when one was given (> 0), else
    in / out, in float32."""
    if scale_factor > 0:
        return np.float32(1.0 / scale_factor)
    return np.float32(in_size) / np.float32(out_size)


def nearest_index(in_size, out_size, scale_factor=0.0, exact=False):
    """int64 [out_size]: the source of each output along one dim. "nearest" is
    floor(dst * scale) (dst itself when out == in, dst // 2 when out == 2 * in, as PyTorch);
    "nearest-exact" (`exact`) is floor((dst + 0.5) * scale); both clipped to in - 1."""
    dst = np.arange(out_size, dtype=np.int64)
    if not exact and out_size == in_size:
        return dst
    if not exact and out_size == 2 * in_size:
        return dst >> 1
    scale = _scale(in_size, out_size, scale_factor)
    if exact:  # (dst + 0.5) * scale in double, then floorf of it as a float
        src = ((dst + 0.5) * np.float64(scale)).astype(np.float32)
    else:
        src = dst.astype(np.float32) * scale
    return np.minimum(np.floor(src).astype(np.int64), in_size - 1)


def linear_taps(in_size, out_size, align_corners, scale_factor=0.0):
    """(i0, i1, w0, w1), each [out_size]: output o is w0 * x[i0] + w1 * x[i1] along one dim,
    from the source coordinate scale * o (align_corners, scale (in-1)/(out-1)) or
    scale * (o + 0.5) - 0.5 clipped at 0 (scale from :func:`_scale`), in float32; x[o] itself
    when out == in, as PyTorch."""
    dst = np.arange(out_size, dtype=np.float32)
    if out_size == in_size:
        same = np.arange(out_size, dtype=np.int64)
        return same, same, np.ones(out_size, np.float32), np.zeros(out_size, np.float32)
    if align_corners:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 \
            else np.float32(0)
        src = scale * dst
    else:
        scale = _scale(in_size, out_size, scale_factor)
        src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    w1 = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1))
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (np.float32(1) - w1).astype(np.float32), w1.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE)
def _nearest_plane(src, iy, ix, dst):
    for oy in range(dst.shape[0]):
        srow = src[iy[oy]]
        drow = dst[oy]
        for ox in range(dst.shape[1]):
            drow[ox] = srow[ix[ox]]


@njit(cache=_CACHE, parallel=True)
def nearest_parallel(x, iy, ix, out):
    """x [P, H, W] -> out [P, Ho, Wo]: out[p, oy, ox] = x[p, iy[oy], ix[ox]]."""
    for p in prange(x.shape[0]):
        _nearest_plane(x[p], iy, ix, out[p])


@njit(cache=_CACHE)
def nearest_serial(x, iy, ix, out):
    """Serial :func:`nearest_parallel`."""
    for p in range(x.shape[0]):
        _nearest_plane(x[p], iy, ix, out[p])


@njit(cache=_CACHE)
def _bilinear_plane(src, y0, y1, hy0, hy1, x0, x1, wx0, wx1, dst):
    for oy in range(dst.shape[0]):
        r0 = src[y0[oy]]
        r1 = src[y1[oy]]
        a = hy0[oy]
        b = hy1[oy]
        drow = dst[oy]
        for ox in range(dst.shape[1]):
            i, j = x0[ox], x1[ox]
            drow[ox] = a * (wx0[ox] * r0[i] + wx1[ox] * r0[j]) + \
                b * (wx0[ox] * r1[i] + wx1[ox] * r1[j])


@njit(cache=_CACHE, parallel=True)
def bilinear_parallel(x, y0, y1, hy0, hy1, x0, x1, wx0, wx1, out):
    """x [P, H, W] -> out [P, Ho, Wo]: out[p, oy, ox] = hy0 * (wx0 * x[y0, x0] + wx1 * x[y0, x1])
    + hy1 * (wx0 * x[y1, x0] + wx1 * x[y1, x1]), the taps and weights indexed by oy and ox."""
    for p in prange(x.shape[0]):
        _bilinear_plane(x[p], y0, y1, hy0, hy1, x0, x1, wx0, wx1, out[p])


@njit(cache=_CACHE)
def bilinear_serial(x, y0, y1, hy0, hy1, x0, x1, wx0, wx1, out):
    """Serial :func:`bilinear_parallel`."""
    for p in range(x.shape[0]):
        _bilinear_plane(x[p], y0, y1, hy0, hy1, x0, x1, wx0, wx1, out[p])


# ---------------------------------------------------------------------------------------------
# interpolate
# ---------------------------------------------------------------------------------------------


class Interpolate2d:
    """interpolate with its parameters checked once: ``resize(x)`` as ``interpolate(x, size,
    mode, align_corners, scales)``; the coordinate tables are kept per input size."""

    def __init__(self, size, mode="nearest", align_corners=False, scales=(0.0, 0.0)):
        self.size = as_pair("size", size, 1)
        if mode not in MODES:
            raise KernelArgumentError(f"interpolate mode must be one of {', '.join(MODES)}, "
                                      f"got {mode!r}")
        if align_corners and mode != "bilinear":
            raise KernelArgumentError(f"interpolate: align_corners applies to bilinear only, "
                                      f"not {mode!r}")
        if len(scales) != 2 or not all(np.isfinite(v) and v >= 0 for v in scales):
            raise KernelArgumentError(f"interpolate scales must be two finite numbers >= 0 "
                                      f"(0: from the sizes), got {scales!r}")
        self.mode, self.align_corners = mode, bool(align_corners)
        self.scales = (float(scales[0]), float(scales[1]))
        self._tables = {}

    def _taps(self, h, w):
        got = self._tables.get((h, w))
        if got is None:
            (ho, wo), (sh, sw) = self.size, self.scales
            if self.mode == "bilinear":
                got = linear_taps(h, ho, self.align_corners, sh) + \
                    linear_taps(w, wo, self.align_corners, sw)
            else:
                exact = self.mode == "nearest-exact"
                got = (nearest_index(h, ho, sh, exact), nearest_index(w, wo, sw, exact))
            if len(self._tables) >= 8:
                self._tables.clear()
            self._tables[(h, w)] = got
        return got

    def __call__(self, x):
        check_float32("x", x, contiguous=False)
        if x.ndim != 4:
            raise KernelArgumentError(f"interpolate expects x of shape [N, C, H, W], got "
                                      f"{x.shape}")
        h, w = x.shape[-2:]
        if h < 1 or w < 1:
            raise KernelArgumentError(f"interpolate: input planes must not be empty, got "
                                      f"{h}x{w}")
        ho, wo = self.size
        planes = np.ascontiguousarray(x).reshape(-1, h, w)
        out = np.empty((planes.shape[0], ho, wo), np.float32)
        if out.size:
            taps = self._taps(h, w)
            threaded = elementwise_threaded(out.size) and planes.shape[0] > 1
            if self.mode == "bilinear":
                kern = threaded_or_serial(bilinear_parallel, bilinear_serial, threaded)
            else:
                kern = threaded_or_serial(nearest_parallel, nearest_serial, threaded)
            kern(planes, *taps, out)
        return out.reshape(x.shape[:2] + (ho, wo))


def interpolate(x, size, mode="nearest", align_corners=False, scales=(0.0, 0.0)):
    """torch.nn.functional.interpolate of x float32 [N, C, H, W] to `size` (int or (h, w)).

    `scales` (h, w) are the scale factors the size came from, as PyTorch passes them on
    (``scale_factor`` without ``recompute_scale_factor``): when > 0, a source coordinate is
    dst / scale instead of dst * in / out (align_corners ignores them).
    """
    return Interpolate2d(size, mode, align_corners, scales)(x)
