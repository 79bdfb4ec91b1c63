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
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
SHAPES = {"lenet-300-100": (1, 28, 28), "lenet-5": (1, 28, 28), "alexnet": (3, 224, 224),
          "vgg16": (3, 224, 224)}

CHILD = r"""
import os, sys, time, json, resource
t0 = time.perf_counter()
import numpy as np
import cdnn_runtime
from cdnn_runtime import InferenceSession
t1 = time.perf_counter()
sess = InferenceSession(sys.argv[1])
t2 = time.perf_counter()
x = np.random.default_rng(0).standard_normal([1] + json.loads(sys.argv[2])).astype(np.float32)
sess(x)
t3 = time.perf_counter()
# VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork and exec
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_run_s": t3 - t2,
                  "total_s": t3 - t0, "torch_loaded": "torch" in sys.modules,
                  "peak_rss_mb": int(hwm) / 1024}))
"""


def child(path, shape, cache_dir, threads):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, NUMBA_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", CHILD, path, json.dumps(list(shape))],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timings(fn, x, repeats):
    for _ in range(3):
        fn(x)
    t = []
    for _ in range(repeats):
        s = time.perf_counter()
        fn(x)
        t.append(time.perf_counter() - s)
    return t


def stats(seconds):
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(ms)), "min_ms": float(ms.min()),
            "max_ms": float(ms.max()), "n": int(ms.size)}


def build(name):
    """The reference network `name` (seed 0) pruned and shared by the deep-compression
    preset, without retraining: (the dense torch model, its CompressedModel, seconds the
    compression took)."""
    import torch

    from cdnn import models
    from cdnn.compress import compress
    model = models.seeded(models.MODELS[name], 0).eval()
    t = time.perf_counter()
    packed = compress(model, torch.randn(2, *SHAPES[name]), model_name=name)
    return model, packed, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(SHAPES))
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
        cold = child(path, shape, cache, args.threads)
        warm = child(path, shape, cache, args.threads)
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
                    tt += timings(model, xt, 1)
                    tc += timings(sess, x, 1)
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
