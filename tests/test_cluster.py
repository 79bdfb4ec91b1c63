import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdnn.cluster import (
    ClusterResult,
    fine_tune_centroids_grad,
    initial_centroids,
    kmeans_1d,
)
from cdnn_runtime.errors import CdnnError, CdnnRecipeError


def _data(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        x = rng.standard_normal(n)
    elif kind == "pruned":  # survivors of magnitude pruning: bimodal with a gap at zero
        x = rng.standard_normal(4 * n)
        x = x[np.abs(x) > 1.15][:n]
    elif kind == "bimodal":
        x = np.concatenate([rng.normal(-3, 0.3, n // 2), rng.normal(2, 0.1, n - n // 2)])
    elif kind == "laplace":
        x = rng.laplace(0, 1, n)
    elif kind == "cauchy":
        x = rng.standard_cauchy(n)
    else:
        raise AssertionError(kind)
    return x.astype(np.float32)


def _check_nearest(values, res: ClusterResult):
    c = res.centroids.astype(np.float64)
    d = np.abs(values.astype(np.float64)[:, None] - c[None, :])
    best = d.min(axis=1)
    assert np.array_equal(d[np.arange(values.size), res.labels], best)


def _brute_lloyd(values, c0, max_iter=1000):
    """Textbook O(nk) Lloyd from given centres, until the assignment is stable."""
    x = values.astype(np.float64)
    c = np.array(c0, dtype=np.float64)
    prev = None
    for _ in range(max_iter):
        lab = np.argmin(np.abs(x[:, None] - c[None, :]), axis=1)
        if prev is not None and np.array_equal(lab, prev):
            break
        prev = lab
        counts = np.bincount(lab, minlength=c.size)
        assert counts.min() > 0, "reference does not handle empty clusters"
        c = np.bincount(lab, weights=x, minlength=c.size) / counts
    return c, lab


@pytest.mark.parametrize("init", ["kmeans++", "linear", "random"])
def test_result_contract(init):
    x = _data("normal", 3000, 1)
    r = kmeans_1d(x, 16, init=init, seed=3)
    assert r.centroids.dtype == np.float32 and r.centroids.shape == (16,)
    assert np.all(np.diff(r.centroids) > 0)
    assert r.labels.dtype == np.uint8 and r.labels.shape == x.shape
    assert np.bincount(r.labels, minlength=16).min() > 0
    assert isinstance(r.inertia, float) and isinstance(r.n_iter, int)
    expect = float(((x.astype(np.float64) - r.centroids[r.labels].astype(np.float64)) ** 2).sum())
    assert r.inertia == pytest.approx(expect, rel=1e-9)
    assert np.array_equal(r.decode(), r.centroids[r.labels])
    _check_nearest(x, r)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_deterministic_and_order_independent(init):
    x = _data("laplace", 5000, 2)
    a = kmeans_1d(x, 32, init=init, seed=7)
    b = kmeans_1d(x.copy(), 32, init=init, seed=7)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.labels, b.labels)
    assert a.inertia == b.inertia and a.n_iter == b.n_iter
    perm = np.random.default_rng(0).permutation(x.size)
    c = kmeans_1d(x[perm], 32, init=init, seed=7)
    assert np.array_equal(c.centroids, a.centroids)
    assert np.array_equal(c.labels, a.labels[perm])
    other = kmeans_1d(x, 32, init=init, seed=8)
    assert not np.array_equal(other.centroids, a.centroids)


def test_kmeanspp_beats_random_init_on_average():
    wins, ratios = 0, []
    trials = 0
    for kind in ("bimodal", "pruned", "cauchy", "laplace"):
        x = _data(kind, 4000, 11)
        for seed in range(6):
            pp = kmeans_1d(x, 16, init="kmeans++", seed=seed).inertia
            rnd = kmeans_1d(x, 16, init="random", seed=seed).inertia
            ratios.append(pp / rnd)
            wins += pp <= rnd
            trials += 1
    assert np.mean(ratios) < 0.9
    assert wins > trials // 2


def test_kmeanspp_seeding_beats_forgy_seeding():
    x = _data("cauchy", 4000, 5)
    pp = np.mean([kmeans_1d(x, 16, init="kmeans++", seed=s, max_iter=0).inertia for s in range(8)])
    rnd = np.mean([kmeans_1d(x, 16, init="random", seed=s, max_iter=0).inertia for s in range(8)])
    assert pp < 0.5 * rnd


@pytest.mark.parametrize("kind,k,init", [
    ("normal", 8, "kmeans++"),
    ("pruned", 16, "kmeans++"),
    ("laplace", 4, "random"),
    ("normal", 5, "linear"),
    ("bimodal", 2, "linear"),
])
def test_matches_brute_force_lloyd(kind, k, init):
    x = _data(kind, 1500, 3)
    c0 = initial_centroids(x, k, init=init, seed=4)
    assert c0.shape == (k,) and np.all(np.diff(c0) > 0)
    ref_c, ref_lab = _brute_lloyd(x, c0)
    r = kmeans_1d(x, k, init=init, seed=4, max_iter=1000, tol=0.0)
    np.testing.assert_allclose(r.centroids, ref_c.astype(np.float32), rtol=1e-5, atol=1e-6)
    assert np.array_equal(r.labels, ref_lab)


def test_explicit_init_array_and_max_iter_zero():
    x = _data("normal", 800, 9)
    c0 = np.array([-1.0, 0.0, 1.0])
    r0 = kmeans_1d(x, 3, init=c0, max_iter=0)
    assert np.array_equal(r0.centroids, c0.astype(np.float32)) and r0.n_iter == 0
    ref_c, _ = _brute_lloyd(x, c0)
    r = kmeans_1d(x, 3, init=c0[::-1], max_iter=500, tol=0)
    np.testing.assert_allclose(r.centroids, ref_c, rtol=1e-5)


def test_empty_clusters_are_refilled():
    # Linear init puts most centres in the gap between two tight modes.
    x = np.concatenate([np.linspace(-1.01, -0.99, 100),
                        np.linspace(0.99, 1.01, 100)]).astype(np.float32)
    r = kmeans_1d(x, 8, init="linear", max_iter=200)
    assert r.n_clusters == 8
    assert np.bincount(r.labels, minlength=8).min() > 0
    _check_nearest(x, r)


def test_k_equal_one():
    x = _data("normal", 999, 4)
    r = kmeans_1d(x, 1)
    assert r.centroids.shape == (1,)
    assert r.centroids[0] == pytest.approx(x.astype(np.float64).mean(), abs=1e-6)
    assert not r.labels.any()


def test_fewer_distinct_values_than_clusters():
    x = np.array([3.0, -1.0, 3.0, 0.5, -1.0, 0.5, 0.5], np.float32)
    r = kmeans_1d(x, 8)
    assert np.array_equal(r.centroids, np.array([-1.0, 0.5, 3.0], np.float32))
    assert np.array_equal(r.centroids[r.labels], x)
    assert r.inertia == 0.0 and r.n_iter == 0
    # Exactly as many distinct values as clusters.
    r = kmeans_1d(x, 3, init="random")
    assert np.array_equal(r.centroids[r.labels], x)


def test_single_value_and_all_equal():
    r = kmeans_1d(np.array([0.25], np.float32), 256)
    assert r.centroids.tolist() == [0.25] and r.labels.tolist() == [0]
    r = kmeans_1d(np.full(100, -0.5, np.float32), 4, init="linear")
    assert r.centroids.tolist() == [-0.5] and not r.labels.any() and r.inertia == 0.0


def test_empty_input():
    r = kmeans_1d(np.empty(0, np.float32), 4)
    assert r.centroids.size == 0 and r.labels.size == 0 and r.inertia == 0.0


def test_256_clusters_and_dtypes():
    x = _data("pruned", 20000, 6)
    r = kmeans_1d(x, 256)
    assert r.n_clusters == 256 and int(r.labels.max()) == 255
    _check_nearest(x, r)
    r64 = kmeans_1d(x.astype(np.float64), 16)
    r16 = kmeans_1d(x.astype(np.float16), 16)
    assert r64.n_clusters == 16 and r16.n_clusters == 16
    ri = kmeans_1d(np.arange(100), 4)
    assert ri.n_clusters == 4


@pytest.mark.parametrize("kwargs", [
    {"n_clusters": 0}, {"n_clusters": 257}, {"n_clusters": 2.0}, {"n_clusters": True},
    {"n_clusters": 4, "init": "forgy"}, {"n_clusters": 4, "max_iter": -1},
    {"n_clusters": 4, "tol": -1.0}, {"n_clusters": 4, "tol": float("nan")},
    {"n_clusters": 4, "init": [0.0, 1.0]}, {"n_clusters": 4, "init": [0.0, 1.0, 2.0, np.nan]},
    {"n_clusters": 4, "seed": "abc"}, {"n_clusters": 4, "seed": -1},
])
def test_bad_arguments(kwargs):
    x = _data("normal", 50, 0)
    with pytest.raises(CdnnRecipeError):
        kmeans_1d(x, **kwargs)
    with pytest.raises(CdnnRecipeError):  # checked even when the data would not need them
        kmeans_1d(x[:1], **kwargs)


def test_bad_values():
    for bad in (np.ones((3, 3), np.float32), np.array([1.0, np.nan]), np.array([np.inf, 1.0]),
                np.array([1 + 1j, 2j]), np.array(["a", "b"])):
        with pytest.raises(CdnnError):
            kmeans_1d(bad, 2)
    assert issubclass(CdnnRecipeError, ValueError)
    import cdnn.cluster
    import cdnn.prune
    assert cdnn.cluster.CdnnRecipeError is cdnn.prune.CdnnRecipeError is CdnnRecipeError


def test_fine_tune_centroids_grad():
    g = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    lab = np.array([1, 0, 1, 3], np.uint8)
    out = fine_tune_centroids_grad(g, lab, 4)
    assert out.dtype == np.float32
    assert out.tolist() == [-1.0, 2.5, 0.0, 0.25]
    with pytest.raises(CdnnRecipeError):
        fine_tune_centroids_grad(g, lab, 3)
    with pytest.raises(CdnnRecipeError):
        fine_tune_centroids_grad(g, lab[:3], 4)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(-40, 40), min_size=1, max_size=200),
    st.integers(1, 12),
    st.sampled_from(["kmeans++", "linear", "random"]),
    st.integers(0, 3),
)
def test_contract_holds_on_arbitrary_small_inputs(ints, k, init, seed):
    x = (np.array(ints, np.float64) / 8).astype(np.float32)  # many duplicates
    r = kmeans_1d(x, k, init=init, seed=seed)
    distinct = np.unique(x).size
    assert 1 <= r.n_clusters <= min(k, distinct)
    if distinct <= k:
        assert np.array_equal(r.centroids, np.unique(x))
    assert np.all(np.diff(r.centroids) > 0)
    assert np.bincount(r.labels, minlength=r.n_clusters).min() > 0
    _check_nearest(x, r)
