"""What the latency benchmark records about the machine: CPU, last-level cache, load, the cores
other processes keep busy, library versions, and the sustained memory read bandwidth."""

import os
import platform
import time

import numpy as np

from cdnn_runtime.timing import summarize, time_calls

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def llc_bytes():
    """Size of cpu0's largest cache (32 MB where /sys does not say)."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for d in os.listdir(base):
            try:
                size = open(os.path.join(base, d, "size")).read().strip()
            except OSError:
                continue
            mult = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
            best = max(best, int(size.rstrip("KM")) * mult)
    except OSError:
        pass
    return best or 32 << 20


def loadavg():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def _pid_ticks(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0


def cpu_snapshot(pids=()):
    """(wall s, machine busy s, this process and its waited children s, `pids` s)."""
    try:
        v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / _TICK
    except (OSError, ValueError):
        busy = float("nan")
    t = os.times()
    return (time.monotonic(), busy, t.user + t.system + t.children_user + t.children_system,
            sum(_pid_ticks(p) for p in pids) / _TICK)


def others_cores(a, b):
    """Cores kept busy on average by processes other than this one (and `pids`), a to b."""
    wall = b[0] - a[0]
    if wall <= 0:
        return None
    return max(0.0, ((b[1] - a[1]) - (b[2] - a[2]) - (b[3] - a[3])) / wall)


def versions():
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "torch", "onnxruntime", "onnx", "matplotlib"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    import cdnn_runtime
    out["cdnn_runtime"] = cdnn_runtime.__version__
    return out


# ---- memory bandwidth ------------------------------------------------------------------------

def sum_kernel():
    """A numba parallel sum of a float32 array, compiled on first call."""
    from numba import njit, prange

    @njit(parallel=True, fastmath=True)
    def psum(a):
        # The index is unsigned: for a signed one numba checks on every access whether it is
        # negative (to wrap it around), which keeps the loop from vectorizing and made this
        # sum compute-bound at about half the memory's read bandwidth.
        n = a.shape[0]
        chunks = 512
        step = (n + chunks - 1) // chunks
        parts = np.zeros(chunks, np.float32)
        for c in prange(chunks):
            s = np.float32(0.0)
            i = np.uint64(c * step)
            end = np.uint64(min(n, (c + 1) * step))
            while i < end:
                s += a[i]
                i += np.uint64(1)
            parts[c] = s
        return parts.sum()
    return psum


def measure_bandwidth(psum, threads, mb=512, passes=7):
    """Sustained read bandwidth of a parallel sum over `mb` MB of float32, per thread count:
    best pass (as STREAM reports) and median, in GB/s (1e9 bytes)."""
    import numba
    a = np.ones(mb * (1 << 20) // 4, np.float32)
    out = {"array_mb": mb, "passes": passes}
    for t in sorted({1, threads}):
        numba.set_num_threads(t)
        s = summarize(time_calls(psum, a, repeats=passes, warmup=1))
        out[str(t)] = {"best_gbs": a.nbytes / s["min_ms"] / 1e6,
                       "median_gbs": a.nbytes / s["median_ms"] / 1e6}
    numba.set_num_threads(threads)
    del a
    return out
