"""Batch-1 and batch-32 latency of cdnn_runtime against dense PyTorch, start-up times, memory.

For each reference network (seeded random weights pruned to Deep Compression's densities and
quantized with its bits; no data is needed to time them), in one run:
  - cold start: a fresh process with an empty Numba cache: import, InferenceSession, first run;
  - warm start: a fresh process with the cache filled by the cold start;
  - latency: median and min-max over repeated runs, cdnn_runtime and PyTorch eager
    (inference_mode, dense weights) alternating in the same process;
  - peak resident memory of a process that loads and runs the .cdnn model (no torch imported).
Writes benchmarks/results/runtime.json and runtime.md.
usage: python benchmarks/bench_runtime.py [--models lenet-300-100,lenet-5,alexnet,vgg16]
       [--repeats 50] [--threads 2]
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from _common import DEFAULT_MODELS, RESULTS, SHAPES, build, stats
from _fresh_process import cdnn_child
from cdnn_runtime.timing import time_calls

#: The child's figures that runtime.json keeps for each start.
START_KEYS = ("import_s", "load_s", "first_run_s", "total_s", "torch_loaded", "peak_rss_mb")


def start(path, shape, cache_dir, threads):
    """A fresh process loads and runs the file: its phases' seconds and peak memory."""
    out = cdnn_child(path, shape, threads, cache_dir)
    out["total_s"] = out["t_result"] - out["t_start"]
    return {k: out[k] for k in START_KEYS}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args()
    import torch

    from cdnn_runtime import InferenceSession
    torch.set_num_threads(args.threads)
    import numba
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    os.makedirs(RESULTS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="cdnn-bench-")
    report = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "torch": torch.__version__, "numba": numba.__version__,
                          "threads": args.threads, "date": time.strftime("%Y-%m-%d")},
              "models": {}}
    for name in args.models.split(","):
        shape = SHAPES[name]
        model, packed, compress_s = build(name)
        path = os.path.join(work, name + ".cdnn")
        packed.save(path)
        cache = tempfile.mkdtemp(prefix="numba-cache-", dir=work)
        cold = start(path, shape, cache, args.threads)
        warm = start(path, shape, cache, args.threads)
        sess = InferenceSession(path, num_threads=args.threads)
        entry = {"file_bytes": packed.nbytes, "dense_bytes": packed.dense_bytes,
                 "ratio": packed.ratio, "compress_s": compress_s, "cold_start": cold,
                 "warm_start": warm, "latency": {}}
        for batch in [int(b) for b in args.batches.split(",")]:
            x = np.random.default_rng(1).standard_normal((batch,) + shape).astype(np.float32)
            xt = torch.from_numpy(x)
            reps = args.repeats if batch == 1 or name.startswith("lenet") else max(
                5, args.repeats // 5)
            with torch.inference_mode():
                tt, tc = [], []
                for _ in range(reps):  # alternate, so both see the same machine
                    tt.append(time_calls(model, xt, repeats=1, warmup=3)[0])
                    tc.append(time_calls(sess, x, repeats=1, warmup=3)[0])
            cdnn, dense = stats(tc), stats(tt)
            entry["latency"][str(batch)] = {"cdnn": cdnn, "torch": dense,
                                            "ratio": cdnn["median_ms"] / dense["median_ms"]}
            print(f"{name:14s} batch {batch:3d}: cdnn {cdnn['median_ms']:8.3f} ms "
                  f"({cdnn['min_ms']:.3f}-{cdnn['max_ms']:.3f})  torch {dense['median_ms']:8.3f}"
                  f" ms ({dense['min_ms']:.3f}-{dense['max_ms']:.3f})  ratio "
                  f"{entry['latency'][str(batch)]['ratio']:.2f}", flush=True)
        print(f"{name:14s} cold start {cold['total_s']:.2f} s (load {cold['load_s']:.2f}, first "
              f"run {cold['first_run_s']:.2f}); warm start {warm['total_s']:.2f} s (load "
              f"{warm['load_s']:.3f}, first run {warm['first_run_s']:.3f}); peak RSS "
              f"{warm['peak_rss_mb']:.0f} MB; torch loaded: {warm['torch_loaded']}", flush=True)
        report["models"][name] = entry
        del model, packed, sess
    with open(os.path.join(RESULTS, "runtime.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    lines = [f"# cdnn_runtime vs PyTorch eager (dense), {report['machine']['date']}, "
             f"{args.threads} threads, {report['machine']['platform']}", "",
             "| model | file | ratio | batch | cdnn_runtime ms (min-max) | PyTorch ms (min-max) | "
             "cdnn/PyTorch | cold start s | warm start s | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, e in report["models"].items():
        for b, lat in e["latency"].items():
            c, d = lat["cdnn"], lat["torch"]
            lines.append(f"| {name} | {e['file_bytes']:,} B | {e['ratio']:.1f}x | {b} | "
                         f"{c['median_ms']:.3f} ({c['min_ms']:.3f}-{c['max_ms']:.3f}) | "
                         f"{d['median_ms']:.3f} ({d['min_ms']:.3f}-{d['max_ms']:.3f}) | "
                         f"{lat['ratio']:.2f} | {e['cold_start']['total_s']:.2f} | "
                         f"{e['warm_start']['total_s']:.2f} | "
                         f"{e['warm_start']['peak_rss_mb']:.0f} |")
    with open(os.path.join(RESULTS, "runtime.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
