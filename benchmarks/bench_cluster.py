"""Benchmark of cdnn.cluster.kmeans_1d at VGG-16 scale.

Clusters the surviving weights of every VGG-16 layer at Deep Compression's densities
(about 10.3M values: 256 centroids for conv, 32 for fc), then one 10M-value layer at 256
centroids with each init. Prints a table and writes benchmarks/results/cluster.json.

Usage: python benchmarks/bench_cluster.py [--threads N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from _common import RESULTS
from cdnn.cluster import INITS, kmeans_1d

#: (name, weight count, Deep Compression density, fan-in) of VGG-16's weight layers.
VGG16_LAYERS = [
    ("conv1_1", 1728, 0.58, 27),
    ("conv1_2", 36864, 0.22, 576),
    ("conv2_1", 73728, 0.34, 576),
    ("conv2_2", 147456, 0.36, 1152),
    ("conv3_1", 294912, 0.53, 1152),
    ("conv3_2", 589824, 0.24, 2304),
    ("conv3_3", 589824, 0.42, 2304),
    ("conv4_1", 1179648, 0.32, 2304),
    ("conv4_2", 2359296, 0.27, 4608),
    ("conv4_3", 2359296, 0.34, 4608),
    ("conv5_1", 2359296, 0.35, 4608),
    ("conv5_2", 2359296, 0.29, 4608),
    ("conv5_3", 2359296, 0.36, 4608),
    ("fc6", 102760448, 0.04, 25088),
    ("fc7", 16777216, 0.04, 4096),
    ("fc8", 4096000, 0.23, 4096),
]

OUT = Path(RESULTS) / "cluster.json"


def pruned_normal(rng: np.random.Generator, count: int, density: float, std: float) -> np.ndarray:
    """The ``round(count * density)`` survivors of magnitude-pruning ``count`` N(0, std^2) weights.

    Draws from the normal tail |z| > a (a the two-sided quantile for ``density``) by Robert's
    exponential rejection sampler, so the pruned-away weights are never generated.
    """
    from statistics import NormalDist

    n = int(round(count * density))
    a = NormalDist().inv_cdf(1 - density / 2)
    alpha = (a + np.sqrt(a * a + 4)) / 2
    out = np.empty(0)
    while out.size < n:
        m = int((n - out.size) * 1.3) + 16
        z = a + rng.exponential(1 / alpha, m)
        ok = rng.random(m) <= np.exp(-((z - alpha) ** 2) / 2)
        out = np.concatenate([out, z[ok]])
    out = out[:n] * rng.choice(np.array([-1.0, 1.0]), n)
    return (out * std).astype(np.float32)


def make_vgg16(seed: int) -> list[tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    layers = []
    for name, count, density, fan_in in VGG16_LAYERS:
        k = 32 if name.startswith("fc") else 256
        layers.append((name, pruned_normal(rng, count, density, np.sqrt(2.0 / fan_in)), k))
    return layers


def run_layers(layers, threads: int, init: str = "kmeans++"):
    def one(item):
        name, values, k = item
        t = time.perf_counter()
        r = kmeans_1d(values, k, init=init)
        return name, values.size, k, time.perf_counter() - t, r.inertia, r.n_iter

    t = time.perf_counter()
    # Largest layers first so the two workers finish together.
    order = sorted(layers, key=lambda item: -item[1].size)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            rows = list(pool.map(one, order))
    else:
        rows = [one(item) for item in order]
    total = time.perf_counter() - t
    by_name = {row[0]: row for row in rows}
    return [by_name[name] for name, _, _ in layers], total


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2,
                    help="layers clustered in parallel (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    warm = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    for init in INITS:  # load the compiled kernels before timing
        kmeans_1d(warm, 16, init=init)

    layers = make_vgg16(args.seed)
    n_values = sum(v.size for _, v, _ in layers)
    rows, serial = run_layers(layers, 1)
    _, parallel = run_layers(layers, args.threads) if args.threads > 1 else (rows, serial)

    print(f"VGG-16 at Deep Compression densities: {n_values:,} values in {len(layers)} layers")
    print(f"{'layer':8} {'values':>10} {'k':>4} {'seconds':>8} {'n_iter':>6} {'inertia':>12}")
    for name, n, k, sec, inertia, n_iter in rows:
        print(f"{name:8} {n:>10,} {k:>4} {sec:>8.3f} {n_iter:>6} {inertia:>12.5g}")
    print(f"total, 1 thread:  {serial:.2f} s")
    print(f"total, {args.threads} threads: {parallel:.2f} s  (target < 10 s)")

    rng = np.random.default_rng(args.seed + 1)
    big = pruned_normal(rng, 10_000_000 * 4, 0.25, 0.01)
    single = {}
    print(f"\nsingle layer: {big.size:,} values, 256 clusters")
    for init in INITS:
        t = time.perf_counter()
        r = kmeans_1d(big, 256, init=init)
        sec = time.perf_counter() - t
        single[init] = {"seconds": round(sec, 4), "inertia": r.inertia, "n_iter": r.n_iter}
        print(f"  {init:9} {sec:6.3f} s  inertia {r.inertia:.6g}  n_iter {r.n_iter}")

    vgg_inertia = {}
    for init in INITS:
        init_rows, _ = run_layers(layers, args.threads, init)
        vgg_inertia[init] = sum(row[4] for row in init_rows)
    print("VGG-16 total inertia by init: "
          + ", ".join(f"{k} {v:.6g}" for k, v in vgg_inertia.items()))

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "python": platform.python_version(),
            "numpy": np.__version__,
            "note": "shared machine: timings vary with other load",
        },
        "vgg16": {
            "values": n_values,
            "seconds_1_thread": round(serial, 4),
            "threads": args.threads,
            "seconds_threads": round(parallel, 4),
            "target_seconds": 10.0,
            "layers": [
                {"name": name, "values": n, "k": k, "seconds": round(sec, 4),
                 "inertia": inertia, "n_iter": n_iter}
                for name, n, k, sec, inertia, n_iter in rows
            ],
            "total_inertia_by_init": vgg_inertia,
        },
        "single_10m_256": {"values": int(big.size), "by_init": single},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {OUT}")
    return result


if __name__ == "__main__":
    main()
