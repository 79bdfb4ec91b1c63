"""Reductions over given axes, as torch.mean / sum / amax / amin with a list of dims and
keepdim: float32 in, a new C-contiguous float32 array out, inputs of any layout. Sums and
means accumulate in float64 (at least as accurate as PyTorch's cascade sum); NaN propagates,
and inf - inf inside a sum is NaN, without warnings.
"""

import numpy as np

from ._common import KernelArgumentError, check_axis, check_float32_array


def _axes(x, dims, what):
    """`dims` (ints, negative counting from the end) as a sorted tuple of distinct axes."""
    if isinstance(dims, (int, np.integer)):
        dims = [dims]
    axes = tuple(sorted(check_axis(x, d) for d in dims))
    if not axes:
        raise KernelArgumentError(f"{what}: no dims to reduce")
    if len(set(axes)) != len(axes):
        raise KernelArgumentError(f"{what}: dims {list(dims)} name an axis twice")
    return axes


def _reduce(x, dims, keepdim, what, reduce_fn):
    """``reduce_fn(x, axes, keepdims)`` after checking x and `dims`."""
    x = check_float32_array("x", x)
    axes = _axes(x, dims, what)
    if what in ("amax", "amin") and any(x.shape[a] == 0 for a in axes):
        raise KernelArgumentError(f"{what}: an empty axis has no {what[1:]}imum")
    with np.errstate(all="ignore"):
        y = reduce_fn(x, axis=axes, keepdims=bool(keepdim))
    return np.ascontiguousarray(y, dtype=np.float32)


def _sum64(x, axis, keepdims):
    return np.sum(x, axis=axis, dtype=np.float64, keepdims=keepdims)


def _mean64(x, axis, keepdims):
    return np.mean(x, axis=axis, dtype=np.float64, keepdims=keepdims)


def mean(x, dims, keepdim=False):
    """torch.mean(x, dims, keepdim): the average over `dims` (NaN over an empty axis)."""
    return _reduce(x, dims, keepdim, "mean", _mean64)


def sum(x, dims, keepdim=False):
    """torch.sum(x, dims, keepdim): the sum over `dims` (0 over an empty axis)."""
    return _reduce(x, dims, keepdim, "sum", _sum64)


def amax(x, dims, keepdim=False):
    """torch.amax(x, dims, keepdim): the largest value over `dims`; NaN if any is NaN."""
    return _reduce(x, dims, keepdim, "amax", np.max)


def amin(x, dims, keepdim=False):
    """torch.amin(x, dims, keepdim): the smallest value over `dims`; NaN if any is NaN."""
    return _reduce(x, dims, keepdim, "amin", np.min)
