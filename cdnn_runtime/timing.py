"""Latency measurement shared by `cdnn bench`, `cdnn demo`, `InferenceSession.profile` and the
benchmarks: time repeated calls, summarise them as median and min-max in milliseconds."""

import sys
import time

import numpy as np


def time_calls(fn, *args, repeats, warmup=0):
    """Seconds taken by each of `repeats` calls `fn(*args)`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn(*args)
    out = np.empty(repeats, np.float64)
    clock = time.perf_counter
    for i in range(repeats):
        t = clock()
        fn(*args)
        out[i] = clock() - t
    return out


def summarize(seconds, batch=None):
    """{median_ms, min_ms, max_ms} of a list of durations in seconds; with `batch`, also the
    throughput at the median (samples_per_s)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timings to summarise")
    med = float(np.median(ms))
    out = {"median_ms": med, "min_ms": float(ms.min()), "max_ms": float(ms.max())}
    if batch is not None:
        out["samples_per_s"] = batch / med * 1e3 if med > 0 else float("inf")
    return out


def maxrss_bytes():
    """Peak resident memory of this process so far (ru_maxrss), in bytes; None where the
    platform has no `resource` module."""
    try:
        import resource
    except ImportError:
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024
