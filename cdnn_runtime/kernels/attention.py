"""Matrix products of activations and scaled dot-product attention (numpy's BLAS matmul).

attention(q, k, v, mask) = softmax(q @ k^T * scale + mask) @ v, over the last two dims, with
leading dims broadcast as torch.matmul does; float32 in, float32 out.
"""

import numpy as np


def matmul(a, b):
    """a @ b with torch.matmul's rules (1-D operands, broadcast leading dims), in float32."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul of a 0-d value")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul of shapes {list(a.shape)} and {list(b.shape)}: the inner "
                         "dims differ")
    return np.matmul(a, b)


def causal_mask(rows, cols):
    """The additive mask of is_causal: 0 where column <= row, -inf above the diagonal (aligned
    top-left, as PyTorch's tril of ones(rows, cols))."""
    keep = np.arange(cols)[None, :] <= np.arange(rows)[:, None]
    return np.where(keep, np.float32(0), np.float32(-np.inf))


def softmax_rows(scores):
    """Softmax over the last dim, in place, stable (the row maximum subtracted first); a row
    whose every score is -inf gives zeros, as PyTorch's attention does."""
    top = scores.max(axis=-1, keepdims=True)
    top[~np.isfinite(top)] = 0  # a fully masked row: exp(-inf) = 0 everywhere
    np.subtract(scores, top, out=scores)
    np.exp(scores, out=scores)
    total = scores.sum(axis=-1, keepdims=True)
    total[total == 0] = 1
    np.divide(scores, total, out=scores)
    return scores


def attention(q, k, v, scale, causal=False, mask=None):
    """softmax(q k^T * scale + mask) v for q [..., L, E], k [..., S, E], v [..., S, Ev]; the
    additive float mask broadcasts to [..., L, S]; `causal` adds the causal mask too."""
    q, k, v = (np.asarray(t, dtype=np.float32) for t in (q, k, v))
    if min(q.ndim, k.ndim, v.ndim) < 2:
        raise ValueError("attention needs q, k and v of rank 2 or more")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention of q {list(q.shape)}, k {list(k.shape)}, v "
                         f"{list(v.shape)}: q and k need one feature size, k and v one length")
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    scores *= np.float32(scale)
    if causal:
        scores += causal_mask(q.shape[-2], k.shape[-2])
    if mask is not None:
        scores = scores + np.asarray(mask, dtype=np.float32)
    return np.matmul(softmax_rows(scores), v)


def masked_fill(x, mask, value):
    """x where `mask` (broadcast to x, nonzero = fill) is 0, else `value`."""
    x = np.asarray(x, dtype=np.float32)
    mask = np.asarray(mask)
    try:
        grown = np.broadcast_shapes(mask.shape, x.shape) != x.shape
    except ValueError:
        grown = True
    if grown:
        raise ValueError(f"masked_fill mask of shape {list(mask.shape)} does not broadcast to "
                         f"the value's shape {list(x.shape)}")
    return np.where(mask != 0, np.float32(value), x).astype(np.float32, copy=False)
