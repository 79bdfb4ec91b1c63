"""Tensor plumbing as torch computes it: flatten, reshape, permute and cat of float32 arrays
(numpy; views where the layout allows, C-contiguous results)."""

import numpy as np

from ._common import KernelArgumentError, check_axis, check_float32_array


def _prod(dims):
    p = 1
    for d in dims:
        p *= int(d)
    return p


def _ints(name, values):
    """``values`` as a tuple of Python ints (KernelArgumentError when they are not ints)."""
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise KernelArgumentError(f"{name} must be a sequence of ints, got {values!r}") from None


def cat(xs, axis=1):
    """Concatenate float32 arrays of equal rank along axis (sizes equal on the other axes)."""
    xs = list(xs)
    if not xs:
        raise KernelArgumentError("cat needs at least one array")
    for i, x in enumerate(xs):
        check_float32_array(f"xs[{i}]", x)
    nd = xs[0].ndim
    if nd == 0:
        raise KernelArgumentError("cat cannot join 0-D arrays")
    ax = check_axis(xs[0], axis)
    first = xs[0].shape
    for i, x in enumerate(xs):
        if x.ndim != nd or x.shape[:ax] != first[:ax] or x.shape[ax + 1:] != first[ax + 1:]:
            raise KernelArgumentError(
                f"cat along axis {ax}: xs[{i}] has shape {x.shape}, incompatible with {first}")
    return np.concatenate(xs, axis=ax)


def split(x, sizes, axis):
    """torch.split with explicit sizes: the pieces of x along axis, each contiguous."""
    check_float32_array("x", x)
    ax = check_axis(x, axis)
    if sum(sizes) != x.shape[ax]:
        raise KernelArgumentError(f"split sizes {list(sizes)} do not add up to axis {ax} of "
                                  f"shape {list(x.shape)}")
    bounds = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(piece) for piece in np.split(x, bounds, axis=ax)]


def flatten(x, start_dim=1, end_dim=-1):
    """torch.flatten: merge axes start_dim..end_dim (inclusive) into one."""
    x = check_float32_array("x", x)
    if x.ndim == 0:
        return np.ascontiguousarray(x).reshape(1)
    s = check_axis(x, start_dim)
    e = check_axis(x, end_dim)
    if s > e:
        raise KernelArgumentError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:s] + (_prod(x.shape[s:e + 1]),) + x.shape[e + 1:]
    return np.ascontiguousarray(x).reshape(shape)


def reshape(x, shape):
    """Reshape (one -1 allowed, inferred; ambiguous for empty arrays, hence refused there)."""
    x = check_float32_array("x", x)
    shape = _ints("shape", shape)
    if any(d < -1 for d in shape) or shape.count(-1) > 1:
        raise KernelArgumentError(f"invalid shape {shape}: sizes must be >= 0 with at most one -1")
    if -1 in shape:
        known = _prod(d for d in shape if d != -1)
        if known == 0:
            raise KernelArgumentError(
                f"cannot infer the -1 in {shape} for an array of {x.size} elements")
        if x.size % known:
            raise KernelArgumentError(f"cannot reshape an array of shape {x.shape} to {shape}")
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    if _prod(shape) != x.size:
        raise KernelArgumentError(
            f"cannot reshape an array of shape {x.shape} ({x.size} elements) to {shape}")
    return np.ascontiguousarray(x).reshape(shape)


def permute(x, perm):
    """Axes reordered by perm (a permutation of range(ndim)); returns a C-contiguous copy."""
    x = check_float32_array("x", x)
    perm = _ints("perm", perm)
    norm = tuple(p % x.ndim if -x.ndim <= p < x.ndim else -1 for p in perm) if x.ndim else perm
    if sorted(norm) != list(range(x.ndim)):
        raise KernelArgumentError(f"perm {perm} is not a permutation of the {x.ndim} axes")
    return np.ascontiguousarray(np.transpose(x, norm))
