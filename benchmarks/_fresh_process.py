"""Load time, start-up time and peak memory, each measured in a fresh interpreter running one of
the scripts in _children/ (cdnn_runtime alone, or PyTorch on the same weights)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from _common import DEFAULT_MODELS, SHAPES, log, stats

CHILDREN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_children")
#: Models whose cold start (empty caches, fresh process, first result) is measured.
COLD_START = ("vgg16", "resnet50")
CDNN_CHILD = os.path.join(CHILDREN, "cdnn_session.py")
TORCH_CHILD = os.path.join(CHILDREN, "torch_model.py")


def child_env(cache_dir, threads=None, pycache=None):
    """A child's environment: its own kernel cache; with `threads`, its thread counts; with
    `pycache`, Python's bytecode goes there (written even where the environment says not to,
    so that a warm process starts as an installed one would)."""
    env = dict(os.environ, CDNN_CACHE_DIR=cache_dir, NUMBA_CACHE_DIR=cache_dir)
    if threads is not None:
        env.update(NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = pycache
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(script, argv, cache_dir, threads, pycache=None):
    """Run a child script in child_env(). Returns its JSON line and the times seen from here."""
    env = child_env(cache_dir, threads, pycache)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, script, *argv], env=env, capture_output=True, text=True)
    t_exit = time.monotonic()
    if r.returncode != 0:
        raise RuntimeError(f"child failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["start_to_result_s"] = out["t_result"] - t0
    out["interpreter_start_s"] = out["t_start"] - t0
    out["wall_s"] = t_exit - t0
    return out


def cdnn_child(path, shape, threads, cache_dir, pycache=None):
    """A fresh process that loads the .cdnn file at `path` and runs batch 1 (see run_child)."""
    return run_child(CDNN_CHILD, [path, json.dumps(list(shape)), str(threads)], cache_dir,
                     threads, pycache)


def warmup_child(cache_dir, pycache):
    """`cdnn-runtime warmup --json` in a fresh process on the cache directory `cache_dir` (empty
    at first): its wall time and the signatures it compiled."""
    env = child_env(cache_dir, pycache=pycache)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "cdnn_runtime.cli", "warmup", "--json"], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"warmup failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return {**json.loads(r.stdout), "wall_s": time.monotonic() - t0}  # one indented object


def subprocess_part(files, threads, n_load, work):
    """files: {name: (cdnn path, torch state-dict path)}. Cold starts each get empty caches of
    their own; then `cdnn-runtime warmup` fills fresh shared ones, and every later child finds
    them (each child says how many signatures it still compiled)."""
    cache_dir = tempfile.mkdtemp(prefix="numba-", dir=work)
    pycache = tempfile.mkdtemp(prefix="pycache-", dir=work)
    res = {"runs": n_load}

    def cdnn(n, cache=cache_dir, pyc=pycache):
        return cdnn_child(files[n][0], SHAPES[n], threads, cache, pyc)

    def torch(n):
        return run_child(TORCH_CHILD, [n, files[n][1], json.dumps(list(SHAPES[n])),
                                       str(threads)], cache_dir, threads, pycache)

    for n in COLD_START:
        if n in files:
            log(f"subprocess: {n} cold start (empty Numba and bytecode caches) ...")
            cold = tempfile.mkdtemp(prefix="cold-", dir=work)
            res[f"{n}_cold"] = cdnn(n, os.path.join(cold, "numba"), os.path.join(cold, "pyc"))
            shutil.rmtree(cold, ignore_errors=True)
    log("subprocess: cdnn-runtime warmup into an empty cache, then each model ...")
    res["warmup"] = warmup_child(cache_dir, pycache)
    res["after_warmup"] = {n: cdnn(n) for n in files}  # also fills torch-free bytecode
    for n, r in res["after_warmup"].items():
        log(f"  {n:14s} compiled {r['compiled']} signatures after the warm-up")
    torch(next(n for n in files if n in DEFAULT_MODELS))
    if "vgg16" in files:
        log("subprocess: VGG-16 load, warm cache ...")
        runs = [cdnn("vgg16") for _ in range(n_load)]
        res["vgg16_warm"] = {"runs": runs, "load_s": stats([r["load_s"] for r in runs]),
                             "start_to_result_s": stats([r["start_to_result_s"]
                                                         for r in runs])}
    if "lenet-5" in files:
        log("subprocess: LeNet-5 start to first result, cdnn_runtime and PyTorch ...")
        c, t = [], []
        for _ in range(n_load):  # alternate
            c.append(cdnn("lenet-5"))
            t.append(torch("lenet-5"))
        res["lenet5_start"] = {
            "cdnn": {"runs": c, "start_to_result": stats([r["start_to_result_s"] for r in c])},
            "torch": {"runs": t, "start_to_result": stats([r["start_to_result_s"] for r in t])}}
        res["lenet5_start"]["ratio"] = (res["lenet5_start"]["cdnn"]["start_to_result"]
                                        ["median_ms"] / res["lenet5_start"]["torch"]
                                        ["start_to_result"]["median_ms"])
    log("subprocess: peak memory ...")
    mem = {}
    for n in files:
        c = cdnn(n)
        t = torch(n) if n in DEFAULT_MODELS else None  # the torch child builds these only
        mem[n] = {"cdnn_peak_rss_mb": c["peak_rss_mb"], "cdnn_torch_loaded": c["torch_loaded"],
                  "torch_peak_rss_mb": t and t["peak_rss_mb"],
                  "ratio": t and c["peak_rss_mb"] / t["peak_rss_mb"]}
        log(f"  {n:14s} peak RSS cdnn_runtime {c['peak_rss_mb']:.0f} MB (torch imported: "
            f"{c['torch_loaded']}), PyTorch {t['peak_rss_mb'] if t else '-'} MB")
    res["peak_memory"] = mem
    return res
