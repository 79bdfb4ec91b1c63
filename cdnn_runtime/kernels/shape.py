"""Tensor plumbing as torch computes it: flatten, reshape, permute, cat, split and the shape ops
of version 3 (squeeze, expand, slice, select, pad, pixel and channel shuffles) of float32 arrays
(numpy; views where the layout allows, C-contiguous results)."""

import numpy as np
from numba import njit

from .._jit import jit_cache
from ._common import KernelArgumentError, check_axis, check_float32_array

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

#: Elements from which swapping the last two axes runs through the blocked kernel (below,
#: numpy's copy of the transposed view is as fast).
SWAP_BLOCKED_MIN = 1 << 12


@njit(cache=_CACHE)
def _swap_last2(x, out):
    """out[p, j, i] = x[p, i, j] for x [P, R, C], in 16 x 16 blocks (read and written within
    L1; numpy copies a transposed view element by element in one order, one side strided)."""
    n_rows, n_cols = x.shape[1], x.shape[2]
    for p in range(x.shape[0]):
        src = x[p]
        dst = out[p]
        for i0 in range(0, n_rows, 16):
            i1 = min(i0 + 16, n_rows)
            for j0 in range(0, n_cols, 16):
                for j in range(j0, min(j0 + 16, n_cols)):
                    drow = dst[j]
                    for i in range(i0, i1):
                        drow[i] = src[i, j]


def swap_last_axes(x):
    """A C-contiguous copy of float32 x (2-D or more) with its last two axes swapped."""
    if x.ndim < 2:
        raise KernelArgumentError(f"swap_last_axes needs 2 dims or more, got {x.ndim}")
    if x.size < SWAP_BLOCKED_MIN or not x.flags.c_contiguous or x.dtype != np.float32:
        return np.ascontiguousarray(np.swapaxes(x, -1, -2))
    n_rows, n_cols = x.shape[-2], x.shape[-1]
    out = np.empty(x.shape[:-2] + (n_cols, n_rows), np.float32)
    _swap_last2(x.reshape(-1, n_rows, n_cols), out.reshape(-1, n_cols, n_rows))
    return out


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
        raise ValueError(f"split sizes {list(sizes)} do not add up to axis {ax} of shape "
                         f"{list(x.shape)}")
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
    if x.ndim >= 2 and norm == tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2):
        return swap_last_axes(x)
    return np.ascontiguousarray(np.transpose(x, norm))


# ---- ops of format version 3 -----------------------------------------------------------------
# Attributes come from the file: where they do not fit the input's shape, these raise a plain
# ValueError, which the session names with the node (as it does a mis-shaped feed).

def _sample_axis(x, dim, what, rank=None):
    """``dim`` (negative counting from the end of a rank-`rank` array, x's rank by default) as
    a non-negative axis after the batch axis, or a ValueError."""
    rank = x.ndim if rank is None else rank
    if not -rank <= dim < rank:
        raise ValueError(f"{what} dim {dim} is out of range for shape {list(x.shape)}")
    axis = dim % rank
    if axis == 0:
        raise ValueError(f"{what} along dim 0, the batch dimension")
    return axis


def unsqueeze(x, dim):
    """torch.unsqueeze: a new axis of size 1 at `dim` of the output (never before the batch)."""
    check_float32_array("x", x)
    axis = _sample_axis(x, dim, "unsqueeze", x.ndim + 1)
    return np.ascontiguousarray(np.expand_dims(x, axis))


def squeeze(x, dims):
    """torch.squeeze of the given dims, each of which must have size 1."""
    check_float32_array("x", x)
    axes = [_sample_axis(x, d, "squeeze") for d in dims]
    if len(set(axes)) != len(axes):
        raise ValueError(f"squeeze dims {list(dims)} name an axis twice")
    wide = [a for a in axes if x.shape[a] != 1]
    if wide:
        raise ValueError(f"squeeze of dims {wide} of shape {list(x.shape)}, which are not 1")
    return np.ascontiguousarray(np.squeeze(x, tuple(axes)))


def expand(x, sizes):
    """Tensor.expand: dims of size 1 repeated to `sizes` (the dims after the batch; -1 keeps a
    dim as it is); returns a C-contiguous copy."""
    check_float32_array("x", x)
    sizes = _ints("sizes", sizes)
    if len(sizes) != x.ndim - 1:
        raise ValueError(f"expand to {len(sizes)} dims after the batch of an array of shape "
                         f"{list(x.shape)}")
    out = (x.shape[0],) + tuple(d if s == -1 else s for s, d in zip(sizes, x.shape[1:]))
    if any(s < 1 and s != -1 for s in sizes) or any(
            d != o and d != 1 for d, o in zip(x.shape[1:], out[1:])):
        raise ValueError(f"cannot expand shape {list(x.shape)} to {list(sizes)} after the batch")
    return np.ascontiguousarray(np.broadcast_to(x, out))


def slice_axis(x, dim, start, end, step):
    """x[..., start:end:step, ...] along dim (Python's rule: negative bounds count from the
    end, and bounds are clamped to the axis); step >= 1."""
    check_float32_array("x", x)
    axis = _sample_axis(x, dim, "slice")
    if step < 1:
        raise ValueError(f"slice step {step} is not positive")
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, end, step)
    return np.ascontiguousarray(x[tuple(index)])


def select(x, dim, index):
    """torch.select: the entries at `index` along dim (negative counts from the end), which
    is removed."""
    check_float32_array("x", x)
    axis = _sample_axis(x, dim, "select")
    if not -x.shape[axis] <= index < x.shape[axis]:
        raise ValueError(f"select index {index} is out of range for dim {axis} of shape "
                         f"{list(x.shape)}")
    return np.ascontiguousarray(np.take(x, index, axis=axis))


def unbind(x, dim):
    """torch.unbind: one array per index along dim, which each of them lacks."""
    check_float32_array("x", x)
    axis = _sample_axis(x, dim, "unbind")
    return [np.ascontiguousarray(np.take(x, i, axis=axis)) for i in range(x.shape[axis])]


PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def pad(x, pads, mode="constant", value=0.0):
    """F.pad: `pads` holds (before, after) pairs, >= 0, for the last dims, the last dim first;
    "reflect" mirrors without repeating the edge (pads below the dim's size), "replicate"
    repeats the edge."""
    check_float32_array("x", x)
    pads = _ints("pads", pads)
    if mode not in PAD_MODES:
        raise ValueError(f"pad mode {mode!r} is not one of {sorted(PAD_MODES)}")
    if not pads or len(pads) % 2 or len(pads) // 2 > x.ndim - 1 or min(pads) < 0:
        raise ValueError(f"pads {list(pads)} are not pairs >= 0 for dims after the batch of "
                         f"shape {list(x.shape)}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pads) // 2):
        widths[x.ndim - 1 - k] = (pads[2 * k], pads[2 * k + 1])
    for axis, (before, after) in enumerate(widths):
        size = x.shape[axis]
        if mode == "reflect" and max(before, after) >= size and (before or after):
            raise ValueError(f"reflect padding {[before, after]} of dim {axis} needs a size "
                             f"above the padding, the shape is {list(x.shape)}")
        if mode == "replicate" and size == 0 and (before or after):
            raise ValueError(f"replicate padding of dim {axis}, which is empty in shape "
                             f"{list(x.shape)}")
    if mode == "constant":
        out = np.full([d + b + a for d, (b, a) in zip(x.shape, widths)], value, np.float32)
        out[tuple(slice(b, b + d) for d, (b, a) in zip(x.shape, widths))] = x
        return out
    return np.pad(x, widths, mode=PAD_MODES[mode])


def _factor(x, factor, what):
    if x.ndim < 4:
        raise ValueError(f"{what} needs [N, ..., C, H, W], got shape {list(x.shape)}")
    if factor < 1:
        raise ValueError(f"{what} factor {factor} is not positive")


def pixel_shuffle(x, upscale_factor):
    """F.pixel_shuffle: [*, C*r*r, H, W] -> [*, C, H*r, W*r]."""
    check_float32_array("x", x)
    r = upscale_factor
    _factor(x, r, "pixel_shuffle")
    *lead, c, h, w = x.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle by {r} of {c} channels, not a multiple of {r * r}")
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    n = len(lead)
    y = y.transpose(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return np.ascontiguousarray(y).reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(x, downscale_factor):
    """F.pixel_unshuffle: [*, C, H*r, W*r] -> [*, C*r*r, H, W]."""
    check_float32_array("x", x)
    r = downscale_factor
    _factor(x, r, "pixel_unshuffle")
    *lead, c, h, w = x.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle by {r} of a {h}x{w} image, not multiples of {r}")
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    n = len(lead)
    y = y.transpose(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return np.ascontiguousarray(y).reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(x, groups):
    """nn.ChannelShuffle: [N, C, *] with the channels read as [groups, C/groups] and
    transposed (ShuffleNet)."""
    check_float32_array("x", x)
    if x.ndim < 3:
        raise ValueError(f"channel_shuffle needs [N, C, *], got shape {list(x.shape)}")
    n, c = x.shape[:2]
    if groups < 1 or c % groups:
        raise ValueError(f"channel_shuffle of {c} channels into {groups} groups")
    y = x.reshape(n, groups, c // groups, *x.shape[2:]).swapaxes(1, 2)
    return np.ascontiguousarray(y).reshape(x.shape)


# ---- free sequence dims (version 3)
def unflatten(x, dim, sizes):
    """torch.unflatten: dim (never the batch) split into `sizes`, whose product is its size."""
    check_float32_array("x", x)
    axis = _sample_axis(x, dim, "unflatten")
    sizes = _ints("sizes", sizes)
    if _prod(sizes) != x.shape[axis] or min(sizes, default=0) < 1:
        raise ValueError(f"unflatten of dim {axis} of shape {list(x.shape)} into "
                         f"{list(sizes)}")
    return np.ascontiguousarray(x).reshape(x.shape[:axis] + sizes + x.shape[axis + 1:])


def arange(like, dim):
    """torch.arange(like.shape[dim]) as int64 positions (a free sequence's position ids)."""
    if not isinstance(like, np.ndarray):
        raise KernelArgumentError(f"like must be a numpy array, got {type(like).__name__}")
    axis = _sample_axis(like, dim, "arange")
    return np.arange(like.shape[axis], dtype=np.int64)
