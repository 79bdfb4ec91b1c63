"""1-D k-means for weight sharing: each layer's surviving weights share 2**bits centroids.

The values are sorted once; every cluster is then a contiguous run of the sorted array,
so a Lloyd iteration is a binary search of the centroid midpoints plus prefix-sum
differences (O(k log n)), and K-Means++ seeding only touches the points a new centre wins.
Labels in input order come from a grid-narrowed search of the final midpoints, which is
several times faster than arg-sorting the values to keep the permutation.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
from numba import njit

from cdnn_runtime._jit import jit_cache
from cdnn_runtime.constants import MAX_CODEBOOK_SIZE
from cdnn_runtime.errors import CdnnRecipeError

__all__ = [
    "CdnnRecipeError",
    "ClusterResult",
    "INITS",
    "fine_tune_centroids_grad",
    "initial_centroids",
    "kmeans_1d",
]

#: Initialisations compared by Deep Compression and by Liu, Wang & Ma (2019); the one list
#: that recipes and benchmarks use.
INITS = ("kmeans++", "linear", "random")

#: Points per block of the D^2 sampling table of K-Means++ seeding.
_BLOCK = 2048
#: Cells of the lookup grid that speeds up labelling.
_GRID = 1 << 16


@dataclass(frozen=True)
class ClusterResult:
    """Outcome of :func:`kmeans_1d`.

    ``centroids`` is float32, strictly ascending; ``labels`` (uint8, input order) index it,
    each value taking its nearest centroid (the lower one on an exact tie). ``inertia`` is
    the float64 sum of squared errors against the float32 centroids.
    """

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int

    @property
    def n_clusters(self) -> int:
        """Number of centroids actually used (may be below the number asked for)."""
        return int(self.centroids.size)

    def decode(self) -> np.ndarray:
        """The quantized values, ``centroids[labels]``, in input order."""
        return self.centroids[self.labels]


# --------------------------------------------------------------------------- numba kernels

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


@njit(cache=_CACHE, nogil=True)
def _count_distinct(xs):
    n = xs.size
    if n == 0:
        return 0
    d = 1
    for i in range(1, n):
        if xs[i] != xs[i - 1]:
            d += 1
    return d


@njit(cache=_CACHE, nogil=True)
def _distinct(xs):
    d = _count_distinct(xs)
    vals = np.empty(d, np.float64)
    counts = np.empty(d, np.int64)
    j = -1
    for i in range(xs.size):
        if i == 0 or xs[i] != xs[i - 1]:
            j += 1
            vals[j] = xs[i]
            counts[j] = 0
        counts[j] += 1
    return vals, counts


@njit(cache=_CACHE, nogil=True)
def _prefix_sums(xs, shift):
    s = np.empty(xs.size + 1, np.float64)
    acc = 0.0
    s[0] = 0.0
    for i in range(xs.size):
        acc += np.float64(xs[i]) - shift
        s[i + 1] = acc
    return s


@njit(cache=_CACHE, nogil=True)
def _upper(xs, v, lo):
    """First index i >= lo with xs[i] > v (xs sorted)."""
    hi = xs.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if xs[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=_CACHE, nogil=True)
def _bounds(xs, c, bounds):
    """Cluster j is xs[bounds[j]:bounds[j+1]] for ascending centroids c (ties go low)."""
    k = c.size
    bounds[0] = 0
    for j in range(k - 1):
        bounds[j + 1] = _upper(xs, 0.5 * (c[j] + c[j + 1]), bounds[j])
    bounds[k] = xs.size


@njit(cache=_CACHE, nogil=True)
def _kmeanspp(xs, k, u):
    """D^2 seeding on sorted xs; u holds k uniform draws. Returns ascending centres."""
    n = xs.size
    nb = (n + _BLOCK - 1) // _BLOCK
    d2 = np.empty(n, np.float64)
    bsum = np.zeros(nb, np.float64)
    centres = np.empty(k, np.float64)

    first = min(int(u[0] * n), n - 1)
    c = np.float64(xs[first])
    for i in range(n):
        d = np.float64(xs[i]) - c
        d2[i] = d * d
        bsum[i // _BLOCK] += d * d
    centres[0] = c
    m = 1

    while m < k:
        total = 0.0
        for b in range(nb):
            total += bsum[b]
        if not total > 0.0:
            break
        target = u[m] * total
        # Find the block, then the point, whose running sum first exceeds target.
        acc = 0.0
        b = 0
        while b < nb - 1 and acc + bsum[b] <= target:
            acc += bsum[b]
            b += 1
        pick = -1
        last_pos = -1
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            if d2[i] > 0.0:
                last_pos = i
                acc += d2[i]
                if acc > target:
                    pick = i
                    break
        if pick < 0:
            pick = last_pos
        if pick < 0:
            # Rounding left the chosen block empty: take the last point still uncovered.
            for i in range(n - 1, -1, -1):
                if d2[i] > 0.0:
                    pick = i
                    break
        c = np.float64(xs[pick])

        pos = m
        while pos > 0 and centres[pos - 1] > c:
            centres[pos] = centres[pos - 1]
            pos -= 1
        centres[pos] = c
        m += 1

        # Only points between the midpoints to the neighbouring centres move to c.
        lo = 0
        if pos > 0:
            lo = _upper(xs, 0.5 * (centres[pos - 1] + c), 0)
        hi = n
        if pos < m - 1:
            hi = _upper(xs, 0.5 * (c + centres[pos + 1]), lo)
        if hi <= lo:
            continue
        for i in range(lo, hi):
            d = np.float64(xs[i]) - c
            dd = d * d
            if dd < d2[i]:
                d2[i] = dd
        for bb in range(lo // _BLOCK, (hi - 1) // _BLOCK + 1):
            s = 0.0
            for i in range(bb * _BLOCK, min(n, (bb + 1) * _BLOCK)):
                s += d2[i]
            bsum[bb] = s
    return centres[:m].copy()


@njit(cache=_CACHE, nogil=True)
def _reseed(xs, bounds, newc):
    """Move empty clusters (NaN in newc) to the cluster end points of largest error."""
    k = newc.size
    cand_err = np.empty(2 * k, np.float64)
    cand_val = np.empty(2 * k, np.float64)
    nc = 0
    for j in range(k):
        lo = bounds[j]
        hi = bounds[j + 1]
        if hi <= lo:
            continue
        a = np.float64(xs[lo])
        e = (a - newc[j]) * (a - newc[j])
        if e > 0.0:
            cand_err[nc] = e
            cand_val[nc] = a
            nc += 1
        if hi - 1 > lo:
            b = np.float64(xs[hi - 1])
            e = (b - newc[j]) * (b - newc[j])
            if e > 0.0 and b != a:
                cand_err[nc] = e
                cand_val[nc] = b
                nc += 1
    order = np.argsort(-cand_err[:nc], kind="mergesort")
    used = 0
    for j in range(k):
        if used >= nc:
            break
        if np.isnan(newc[j]):
            newc[j] = cand_val[order[used]]
            used += 1
    return used


@njit(cache=_CACHE, nogil=True)
def _lloyd(xs, s1, shift, c0, max_iter, tol_abs):
    """Lloyd's iterations on sorted xs from ascending c0; returns (centres, n_iter)."""
    k = c0.size
    c = c0.copy()
    newc = np.empty(k, np.float64)
    bounds = np.empty(k + 1, np.int64)
    prev = np.full(k + 1, -1, np.int64)
    n_iter = 0
    for it in range(max_iter):
        _bounds(xs, c, bounds)
        n_iter = it + 1
        same = True
        for j in range(k + 1):
            if bounds[j] != prev[j]:
                same = False
                break
        if same:
            break
        prev[:] = bounds
        n_empty = 0
        for j in range(k):
            lo = bounds[j]
            hi = bounds[j + 1]
            if hi > lo:
                newc[j] = shift + (s1[hi] - s1[lo]) / (hi - lo)
            else:
                newc[j] = np.nan
                n_empty += 1
        if n_empty > 0:
            _reseed(xs, bounds, newc)
            for j in range(k):
                if np.isnan(newc[j]):
                    newc[j] = c[j]
            newc.sort()
        moved = 0.0
        for j in range(k):
            dj = abs(newc[j] - c[j])
            if dj > moved:
                moved = dj
        c[:] = newc
        if n_empty == 0 and moved <= tol_abs:
            break
    return c, n_iter


@njit(cache=_CACHE, nogil=True)
def _nonempty(xs, c):
    """The ascending centres c without those that no point of sorted xs is nearest to."""
    k = c.size
    bounds = np.empty(k + 1, np.int64)
    _bounds(xs, c, bounds)
    keep = 0
    for j in range(k):
        if bounds[j + 1] > bounds[j]:
            keep += 1
    out = np.empty(keep, np.float64)
    t = 0
    for j in range(k):
        if bounds[j + 1] > bounds[j]:
            out[t] = c[j]
            t += 1
    return out


@njit(cache=_CACHE, nogil=True)
def _label(values, xs, c, labels):
    """Nearest centre (lower on ties) of each value; returns the float64 inertia.

    A table over a uniform grid of the central value range narrows each search to the
    midpoints inside one grid cell; the final walks make the answer exact whatever rounding
    did to the cell index.
    """
    k = c.size
    n = xs.size
    grid = _GRID
    mids = np.empty(max(k - 1, 1), np.float64)
    for j in range(k - 1):
        mids[j] = 0.5 * (c[j] + c[j + 1])
    lo = np.float64(xs[n >> 10])
    hi = np.float64(xs[n - 1 - (n >> 10)])
    scale = grid / (hi - lo) if hi > lo else 0.0
    table = np.empty(grid + 2, np.int64)
    j = 0
    for g in range(grid + 1):
        edge = lo + g / scale if scale > 0.0 else lo
        while j < k - 1 and mids[j] < edge:
            j += 1
        table[g] = j
    table[0] = 0
    table[grid + 1] = k - 1
    inertia = 0.0
    for i in range(values.size):
        x = np.float64(values[i])
        t = (x - lo) * scale
        g = 0
        if t >= grid:
            g = grid
        elif t > 0.0:
            g = int(t)
        pos = table[g]
        end = table[g + 1]
        while pos < end:
            m = (pos + end) >> 1
            if mids[m] < x:
                pos = m + 1
            else:
                end = m
        while pos > 0 and not (mids[pos - 1] < x):
            pos -= 1
        while pos < k - 1 and mids[pos] < x:
            pos += 1
        labels[i] = pos
        d = x - c[pos]
        inertia += d * d
    return inertia


# --------------------------------------------------------------------------- public API


def _as_values(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise CdnnRecipeError(f"values must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32 if arr.dtype.itemsize < 4 else np.float64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64)
    raise CdnnRecipeError(f"values must be real numbers, got dtype {arr.dtype}")


def _as_int(value, name: str) -> int:
    """An integer argument (bools refused), or a CdnnRecipeError naming it."""
    if isinstance(value, bool):
        raise CdnnRecipeError(f"{name} must be an integer, got a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise CdnnRecipeError(f"{name} must be an integer, got {value!r}") from None


def _as_count(n_clusters) -> int:
    k = _as_int(n_clusters, "n_clusters")
    if not 1 <= k <= MAX_CODEBOOK_SIZE:
        raise CdnnRecipeError(f"n_clusters must be in 1..{MAX_CODEBOOK_SIZE} (bits 1..8), "
                              f"got {k}")
    return k


def _rng(seed) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise CdnnRecipeError(f"bad seed {seed!r}: {exc}") from None


def _sorted_checked(x: np.ndarray) -> np.ndarray:
    xs = np.sort(x)
    if xs.size and not (math.isfinite(xs[0]) and math.isfinite(xs[-1])):
        raise CdnnRecipeError("values must be finite (found NaN or infinity)")
    return xs


def _check_init(init, k: int):
    """The init name, or the given starting centres as an ascending float64 array."""
    def bad():
        return CdnnRecipeError(f"init must be one of {', '.join(INITS)} or an array, "
                               f"got {init!r:.80}")

    if isinstance(init, str):
        if init not in INITS:
            raise bad()
        return init
    try:
        c = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise bad() from None
    if c.ndim != 1 or c.size != k:
        raise CdnnRecipeError(f"an init array must hold n_clusters={k} values, "
                              f"got shape {c.shape}")
    if not np.isfinite(c).all():
        raise CdnnRecipeError("an init array must be finite")
    return np.sort(c)


def _init(xs: np.ndarray, k: int, init, rng: np.random.Generator) -> np.ndarray:
    """Ascending float64 initial centres for sorted, finite xs with more than k distinct values.

    ``init`` is a checked name or array (see :func:`_check_init`).
    """
    if not isinstance(init, str):
        return init
    if init == "linear":
        return np.linspace(float(xs[0]), float(xs[-1]), k)
    if init == "random":
        vals, counts = _distinct(xs)
        pick = rng.choice(vals.size, size=k, replace=False, p=counts / counts.sum())
        return np.sort(vals[pick])
    return _kmeanspp(xs, k, rng.random(k))


def initial_centroids(values, n_clusters, *, init="kmeans++", seed=0) -> np.ndarray:
    """The ascending float64 centres :func:`kmeans_1d` starts Lloyd's iterations from.

    With no more distinct values than ``n_clusters`` these are the distinct values.
    """
    x = _as_values(values)
    k = _as_count(n_clusters)
    init = _check_init(init, k)
    rng = _rng(seed)
    xs = _sorted_checked(x)
    if _count_distinct(xs) <= k:
        return _distinct(xs)[0]
    return _init(xs, k, init, rng)


def kmeans_1d(values, n_clusters, *, init="kmeans++", seed=0, max_iter=100,
              tol=1e-7) -> ClusterResult:
    """Cluster 1-D ``values`` into at most ``n_clusters`` (1..256) shared centroids.

    ``init`` is "kmeans++" (D^2 seeding from ``numpy.random.default_rng(seed)``), "linear"
    (evenly spaced over [min, max], as in Deep Compression), "random" (Forgy: distinct data
    points) or an array of ``n_clusters`` starting centres. Lloyd's iterations stop when no
    assignment changes, after ``max_iter`` iterations, or when no centroid moves more than
    ``tol * (max - min)``. Empty clusters are moved to the point of largest error.

    Fewer centroids than asked for come back only when there are fewer distinct values (the
    centroids are then those values, or none for empty input), or, rarely, when max_iter
    stops the iterations with a cluster still empty. The result depends on the multiset of
    values and the seed only, not on their order.
    """
    x = _as_values(values)
    k = _as_count(n_clusters)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise CdnnRecipeError(f"max_iter must be a non-negative integer, got {max_iter!r}")
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise CdnnRecipeError(f"tol must be a number, got {tol!r}") from None
    if not (math.isfinite(tol) and tol >= 0):
        raise CdnnRecipeError(f"tol must be finite and >= 0, got {tol!r}")
    init = _check_init(init, k)
    rng = _rng(seed)

    if x.size == 0:
        return ClusterResult(np.empty(0, np.float32), np.empty(0, np.uint8), 0.0, 0)

    xs = _sorted_checked(x)
    n_iter = 0
    if _count_distinct(xs) <= k:
        centres = _distinct(xs)[0]
    else:
        c0 = _init(xs, k, init, rng)
        lo, hi = float(xs[0]), float(xs[-1])
        shift = float(xs[xs.size // 2])
        s1 = _prefix_sums(xs, shift)
        centres, n_iter = _lloyd(xs, s1, shift, c0, int(max_iter), tol * (hi - lo))
        del s1

    # Store float32 centroids; label against exactly those, dropping merged or unused ones.
    c32 = np.unique(centres.astype(np.float32))
    c64 = _nonempty(xs, c32.astype(np.float64))
    labels = np.empty(x.size, np.uint8)
    inertia = _label(x, xs, c64, labels)
    return ClusterResult(c64.astype(np.float32), labels, float(inertia), int(n_iter))


def fine_tune_centroids_grad(grad_values, labels, k) -> np.ndarray:
    """Gradient of each shared centroid: the sum of the gradients of the weights using it.

    Deep Compression sec. 3.3; ``grad_values`` and ``labels`` are aligned 1-D arrays.
    """
    g = np.asarray(grad_values)
    lab = np.asarray(labels)
    k = _as_int(k, "k")
    if k < 1:
        raise CdnnRecipeError(f"k must be >= 1, got {k}")
    if g.ndim != 1 or lab.ndim != 1 or g.shape != lab.shape:
        raise CdnnRecipeError(f"grad_values and labels must be 1-D of equal length, "
                              f"got {g.shape} and {lab.shape}")
    if lab.dtype.kind not in "iu":
        raise CdnnRecipeError(f"labels must be integers, got dtype {lab.dtype}")
    if g.dtype.kind not in "fiu":
        raise CdnnRecipeError(f"grad_values must be real numbers, got dtype {g.dtype}")
    if lab.size and (int(lab.min()) < 0 or int(lab.max()) >= k):
        raise CdnnRecipeError(f"labels must lie in 0..{k - 1}")
    out = np.bincount(lab.astype(np.intp, copy=False),
                      weights=g.astype(np.float64, copy=False), minlength=k)
    return out.astype(np.float32)
