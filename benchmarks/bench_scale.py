"""Batch inference scaled out: images per second for 1 and 2 workers, cdnn_runtime against
PyTorch (dense) on the same engine, what each worker receives and how soon it answers.

The bundled LeNet-5 (Fashion-MNIST) compressed without retraining, against its dense float32
weights in PyTorch; Fashion-MNIST-sized images from the bundled sample. For each engine (a
process pool, Ray Data, Dask on a LocalCluster), model and worker count, one thread per worker:
  - images per second over the whole job (workers started, model shipped, every batch back)
    and in the steady state (after the first batch is back);
  - the bytes each worker receives to build its model (the pickled callable or its constructor
    arguments: the .cdnn file against the state dict);
  - the time from submitting the job to its first result;
  - the peak resident memory of each worker process (its largest, and the mean).
Writes benchmarks/results/scale.json and scale.md. `--quick` is a smoke test (a few thousand
images, one round), not a measurement.
usage: python benchmarks/bench_scale.py [--images 200000] [--batch 1000] [--rounds 3]
       [--engines pool,ray,dask] [--workers 1,2] [--quick]
"""

import argparse
import json
import os
import pickle
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from _common import RESULTS, log, stats
from _machine import cpu_model
from _scale_model import ASSETS, compressed_lenet5, fashion_images
from _scale_peers import FACTORIES, Measured, fashion_frame, install, on_partition, predict

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("cdnn", "torch")


def shipped_models(work):
    """{kind: bytes a worker receives}: the .cdnn file, the dense state dict."""
    path = os.path.join(work, "lenet5.cdnn")
    compressed_lenet5(path)
    return {"cdnn": open(path, "rb").read(),
            "torch": open(os.path.join(ASSETS, "lenet5_fashion.pt"), "rb").read()}


def shipped_bytes(kind, model):
    """What one worker receives: the pickled callable's constructor arguments."""
    return len(pickle.dumps((FACTORIES[kind], model, "x", 1)))


def collect(results, t0):
    """(seconds to the first result, seconds to the last, {pid: peak RSS KiB}, rows) of an
    iterator of result batches."""
    first, peaks, rows = None, {}, 0
    for out in results:
        if first is None:
            first = time.perf_counter() - t0
        rows += len(out["output"])
        for pid, kb in zip(np.asarray(out["pid"]), np.asarray(out["peak_rss_kb"])):
            peaks[int(pid)] = max(peaks.get(int(pid), 0), int(kb))
    return first, time.perf_counter() - t0, peaks, rows


# ---- engines: each runs one job and returns collect()'s tuple ---------------------------------
def run_pool(kind, model, images, workers, batch, ctx):
    batches = [{"x": images[k:k + batch]} for k in range(0, len(images), batch)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=install,
                             initargs=(kind, model, "x")) as pool:
        return collect(pool.map(predict, batches), t0)


def run_ray(kind, model, images, workers, batch, ctx):
    ds = ctx["ray_data"][len(images)]
    t0 = time.perf_counter()
    job = ds.map_batches(Measured, fn_constructor_args=(FACTORIES[kind], model, "data", 1),
                         compute=ctx["ray"].data.ActorPoolStrategy(size=workers),
                         batch_size=batch, num_cpus=1)
    return collect(job.iter_batches(batch_size=None, batch_format="numpy"), t0)


def run_dask(kind, model, images, workers, batch, ctx):
    import dask
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster, as_completed, wait
    bounds = [(k, min(k + batch, len(images))) for k in range(0, len(images), batch)]
    # object columns of arrays stay arrays (Dask would turn them into strings)
    with dask.config.set({"dataframe.convert-string": False}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        ddf = client.persist(dd.from_map(fashion_frame, bounds))
        wait(ddf)
        meta = pd.DataFrame({"output": pd.Series(dtype=object), "pid": pd.Series(dtype=int),
                             "peak_rss_kb": pd.Series(dtype=int)})
        t0 = time.perf_counter()
        # every worker receives the model once and builds its callable on its first partition
        shipped = client.scatter(model, broadcast=True)
        parts = ddf.map_partitions(on_partition, kind, shipped, "x", meta=meta).to_delayed()
        futures = client.compute(parts)
        return collect((f.result() for f in as_completed(futures)), t0)


ENGINES = {"pool": run_pool, "ray": run_ray, "dask": run_dask}


def ray_context(sizes, batch):
    """A local Ray cluster and, per image count, the images as a materialized dataset."""
    import ray
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([HERE] + sys.path)}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    data = {}
    for n in sizes:
        x = fashion_images(n)
        data[n] = ray.data.from_numpy(x).repartition(max(1, n // batch)).materialize()
    return {"ray": ray, "ray_data": data}


def summarize_runs(rounds, engine, kind, workers, args):
    """One row of the report from the rounds of one job (collect()'s tuples)."""
    assert all(r[3] == args.images for r in rounds), "rows lost"
    total = stats([r[1] for r in rounds])["median_ms"] / 1e3
    steady = [(args.images - args.batch) / (r[1] - r[0]) for r in rounds if r[1] > r[0]]
    peaks = [kb / 1024 for r in rounds for kb in r[2].values()]
    return {"engine": engine, "model": kind, "workers": workers,
            "images_per_s": args.images / total,
            "steady_images_per_s": float(np.median(steady)) if steady else None,
            "first_result_s": stats([r[0] for r in rounds])["median_ms"] / 1e3,
            "job_s": stats([r[1] for r in rounds]),
            "peak_rss_mb_max": max(peaks), "peak_rss_mb_mean": float(np.mean(peaks)),
            "worker_processes": len(rounds[-1][2])}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each job (medians kept)")
    ap.add_argument("--engines", default="pool,ray,dask")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--quick", action="store_true", help="a smoke test: 4,000 images, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.images, args.batch, args.rounds = 4000, 500, 1
    engines = args.engines.split(",")
    worker_counts = [int(w) for w in args.workers.split(",")]
    work = tempfile.mkdtemp(prefix="cdnn-scale-")
    models = shipped_models(work)
    images = fashion_images(args.images)
    ctx = ray_context([args.images], args.batch) if "ray" in engines else {}
    import numba
    import torch
    report = {"machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                          "platform": platform.platform(),
                          "torch": torch.__version__, "numba": numba.__version__,
                          "date": time.strftime("%Y-%m-%d"), "quick": args.quick},
              "images": args.images, "batch": args.batch, "rounds": args.rounds,
              "threads_per_worker": 1,
              "file_bytes": {k: len(m) for k, m in models.items()},
              "shipped_bytes_per_worker": {k: shipped_bytes(k, m) for k, m in models.items()},
              "runs": []}
    for engine in engines:
        for workers in worker_counts:
            rounds = {kind: [] for kind in KINDS}
            for _ in range(args.rounds):  # the two models take turns, so both see one machine
                for kind in KINDS:
                    rounds[kind].append(ENGINES[engine](kind, models[kind], images, workers,
                                                        args.batch, ctx))
            for kind in KINDS:
                run = summarize_runs(rounds[kind], engine, kind, workers, args)
                report["runs"].append(run)
                log(f"{engine:5s} {kind:5s} {workers} worker(s): {run['images_per_s']:9.0f} "
                    f"images/s (steady {run['steady_images_per_s'] or 0:9.0f}), first result "
                    f"{run['first_result_s']:.2f} s, peak RSS {run['peak_rss_mb_max']:.0f} MB "
                    "per worker")
    if "ray" in ctx:
        ctx["ray"].shutdown()
    write_report(report)


def estimate(report, images=100_000_000, nodes=100):
    """The job of `images` on `nodes` nodes like this machine: per engine and model, a node's
    steady rate (its cores as workers, else one worker's rate times its cores), the minutes
    (images / (nodes x node rate) + the first result's delay) and the model bytes shipped to
    every worker of every node."""
    cores = report["machine"]["cpu_count"]
    rows = []
    for engine in dict.fromkeys(r["engine"] for r in report["runs"]):
        for kind in KINDS:
            runs = {r["workers"]: r for r in report["runs"]
                    if r["engine"] == engine and r["model"] == kind}
            if not runs:
                continue
            full = runs.get(cores)
            if full is not None:
                rate, first = full["steady_images_per_s"] or 0, full["first_result_s"]
            else:
                one = runs[min(runs)]
                rate = (one["steady_images_per_s"] or 0) * cores / min(runs)
                first = one["first_result_s"]
            minutes = (images / (nodes * rate) + first) / 60 if rate else float("inf")
            rows.append({"engine": engine, "model": kind, "node_images_per_s": rate,
                         "minutes": minutes, "shipped_bytes":
                         nodes * cores * report["shipped_bytes_per_worker"][kind]})
    return {"images": images, "nodes": nodes, "node_cores": cores, "rows": rows}


def write_report(report):
    report["estimate"] = estimate(report)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "scale.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    m = report["machine"]
    ship = report["shipped_bytes_per_worker"]
    lines = [f"# Batch inference scaled out, {m['date']}, {m.get('cpu', 'CPU not recorded')}, "
             f"{m['cpu_count']} cores, "
             f"{m['platform']}" + (" (QUICK SMOKE RUN: not a measurement)" if m["quick"] else ""),
             "",
             f"{report['images']:,} Fashion-MNIST-sized images, batches of {report['batch']}, "
             f"one thread per worker, medians of {report['rounds']} run(s). Bytes each worker "
             f"receives: cdnn_runtime {ship['cdnn']:,} B (the .cdnn file), PyTorch "
             f"{ship['torch']:,} B (the dense state dict).", "",
             "| engine | model | workers | images/s | steady images/s | first result s | "
             "peak RSS MB per worker (max, mean) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        lines.append(f"| {r['engine']} | {'cdnn_runtime' if r['model'] == 'cdnn' else 'PyTorch'}"
                     f" | {r['workers']} | {r['images_per_s']:,.0f} | "
                     f"{r['steady_images_per_s'] or 0:,.0f} | {r['first_result_s']:.2f} | "
                     f"{r['peak_rss_mb_max']:.0f}, {r['peak_rss_mb_mean']:.0f} |")
    est = report["estimate"]
    lines += ["", f"Estimate on paper (docs/scale-out.md): {est['images']:,} images on "
              f"{est['nodes']} nodes of {est['node_cores']} cores, each node at the steady rate "
              f"measured here with {est['node_cores']} workers (else one worker's rate times "
              f"{est['node_cores']}), plus the first result's delay.",
              "", "| engine | model | images/s per node | minutes | model bytes shipped in all |",
              "|---|---|---:|---:|---:|"]
    for e in est["rows"]:
        lines.append(f"| {e['engine']} | {'cdnn_runtime' if e['model'] == 'cdnn' else 'PyTorch'}"
                     f" | {e['node_images_per_s']:,.0f} | {e['minutes']:,.1f} | "
                     f"{e['shipped_bytes']:,} |")
    with open(os.path.join(RESULTS, "scale.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
