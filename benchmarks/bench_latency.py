"""Latency of cdnn_runtime against dense peers, FC layers against the memory-bandwidth bound,
load time, start-up time and peak memory.

The four reference networks (LeNet-300-100, LeNet-5, AlexNet, VGG-16) get seeded random weights
pruned to Deep Compression's per-layer densities and shared with its codebooks (conv 8 bits,
fc 5 bits: the `deep-compression` preset, built as benchmarks/bench_runtime.py builds them), are
saved as .cdnn and run by cdnn_runtime.InferenceSession. In the same run, on the same weights
run dense (the decompressed model):
  - PyTorch eager (float32, torch.inference_mode());
  - PyTorch dynamic int8 (torch.ao.quantization.quantize_dynamic on nn.Linear);
  - onnxruntime float32 (torch.onnx.export, opset 13);
  - onnxruntime dynamic int8 (onnxruntime.quantization.quantize_dynamic, QInt8, MatMul);
  - DeepSparse 1.8 on the same ONNX file, with --deepsparse-python (a separate venv).
Every runtime gets the same thread count (2: torch.set_num_threads, onnxruntime intra-op 2 and
inter-op 1, numba 2, DeepSparse num_cores 2).

For batch 1 and batch 32: warm-up, then rounds in which every runtime runs once (the order
rotating from round to round, so machine noise hits all alike). Before each turn the harness
waits until the previous runtime's threads have stopped spinning (onnxruntime's spin for tens
of ms after a run, OpenMP's for some ms; on 2 cores they would take a core from the next
runtime), and runtimes of under 50 ms get one untimed call first, so that each finds its own
threads and caches as in back-to-back serving. Median and min-max per runtime, and cdnn/peer
ratios of the medians.

For each pruned fully-connected layer at batch 1: the bytes its kernel must read (codes, column
indices, row pointers, codebook, bias, input vector) over the sustained read bandwidth measured
in the same run (a numba parallel sum over 512 MB of float32, 1 and 2 threads) is its memory
bound; the layer alone is timed through the runtime's SparseLinear (the object the session
calls) with its weights coming from memory (copies filling three last-level caches, called in
turn) and hot (one copy back to back, for reference).

In fresh subprocesses (skipped with --no-subprocess): InferenceSession(path) of VGG-16 with a warm
Numba cache (median of several) and once with an empty one (cold start); start to first LeNet-5
result for cdnn_runtime against a process that imports torch and runs the dense model; peak
memory (VmHWM) of a process running each model with cdnn_runtime only (torch never imported)
and with PyTorch.

Writes benchmarks/results/latency.json, latency.md and latency.png.

usage: python benchmarks/bench_latency.py [--models lenet-300-100,lenet-5,alexnet,vgg16]
       [--repeats 50] [--quick] [--deepsparse-python /tmp/ds-venv/bin/python]
       [--no-subprocess] [--batches 1,32] [--threads 2]
"""

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _peers  # noqa: E402
from bench_runtime import RESULTS, SHAPES, build, stats, timings  # noqa: E402

NAMES = {"lenet-300-100": "LeNet-300-100", "lenet-5": "LeNet-5", "alexnet": "AlexNet",
         "vgg16": "VGG-16"}
#: Batch-1 targets of cdnn_runtime's median over PyTorch eager's.
TARGET_B1_TORCH = {"lenet-300-100": 0.5, "lenet-5": 0.5, "alexnet": 0.6, "vgg16": 0.8}
TARGET_B1_ORT = 1.0
TARGET_B32_TORCH = 1.0
TARGET_FC_BOUND = 2.0
TARGET_VGG_LOAD_S = 0.5

RUNTIMES = [("cdnn", "cdnn_runtime"), ("torch", "PyTorch eager"),
            ("torch_int8", "PyTorch dyn. int8"), ("ort", "onnxruntime fp32"),
            ("ort_int8", "onnxruntime dyn. int8"), ("deepsparse", "DeepSparse")]
LABEL = dict(RUNTIMES)
COLORS = {"cdnn": "tab:red", "torch": "tab:blue", "torch_int8": "tab:cyan",
          "ort": "tab:green", "ort_int8": "tab:olive", "deepsparse": "tab:purple"}

REWARM_BELOW_S = 0.05  # runtimes faster than this get one untimed call before each timed one


def log(*a):
    print(*a, flush=True)


# ---- statistics and formatting ---------------------------------------------------------------

def num(v):
    """A figure with three significant digits, never in exponent form."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def cell(s, key="median_ms", lo="min_ms", hi="max_ms"):
    return f"{num(s[key])} ({num(s[lo])}-{num(s[hi])})"


def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "**not met**")


# ---- machine ---------------------------------------------------------------------------------

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def llc_bytes():
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


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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

def _sum_kernel():
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
        psum(a)
        ts = []
        for _ in range(passes):
            s = time.perf_counter()
            psum(a)
            ts.append(time.perf_counter() - s)
        ts = np.asarray(ts)
        out[str(t)] = {"best_gbs": a.nbytes / ts.min() / 1e9,
                       "median_gbs": a.nbytes / np.median(ts) / 1e9}
    numba.set_num_threads(threads)
    del a
    return out


# ---- building the models ---------------------------------------------------------------------

# ---- latency ---------------------------------------------------------------------------------

def warm_up(peer, x, quick):
    """Untimed calls; returns the time of one call (estimated from the last ones)."""
    first = peer.timed(x, 1)[0]
    if first > 2.0:
        return first
    ts = peer.timed(x, 1 if quick else 2)
    while sum(ts) < 0.3 and len(ts) < 20:
        ts += peer.timed(x, 1)
    return float(np.median(ts))


def settle(limit_s=0.3, window_s=0.01, quiet_s=0.001):
    """Wait until this process's threads stop spinning: after a run, onnxruntime's workers
    spin for tens of ms and OpenMP's (torch, numba) for some ms, and on 2 cores a spinning
    thread of one runtime would take a core from the next. Returns the seconds waited."""
    t0 = time.perf_counter()
    last = time.process_time()
    while time.perf_counter() - t0 < limit_s:
        time.sleep(window_s)
        c = time.process_time()
        if c - last < quiet_s:
            break
        last = c
    return time.perf_counter() - t0


def round_robin(peers, x, rounds, est):
    """`rounds` rounds; in each, every runtime in turn (the order rotating): wait for the
    previous one's threads to go quiet, one untimed call if it is a fast one, one timed call."""
    samples = {p.key: [] for p in peers}
    waited = []
    n = len(peers)
    for r in range(rounds):
        for p in peers[r % n:] + peers[:r % n]:
            waited.append(settle())
            if est[p.key] < REWARM_BELOW_S:
                p.timed(x, 1)
            samples[p.key] += p.timed(x, 1)
    return samples, waited


def compare(ref, y):
    ref, y = ref.reshape(ref.shape[0], -1), y.reshape(y.shape[0], -1)
    diff = float(np.max(np.abs(ref - y))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) or 1.0
    return {"max_abs_diff": diff, "max_rel_diff": diff / scale,
            "top1_agree": float(np.mean(ref.argmax(1) == y.argmax(1)))}


# ---- FC layers against the bandwidth bound ---------------------------------------------------

def _in_us(st):
    """A :func:`stats` dict in microseconds, without the count."""
    return {k.replace("_ms", "_us"): v * 1e3 for k, v in st.items() if k != "n"}


def fc_layers(path, bandwidth, threads, llc, floor_us, reps_hot, reps_cold):
    """Each sparse linear layer of the file alone, at batch 1, against its bandwidth bound.

    Cold: the layer's arrays are copied as many times as it takes to fill three last-level
    caches and the copies are called in turn, oldest first, so that each call reads its weights
    from memory while the interpreter's own data stays cached (a cache flush would evict that
    too). Hot: one copy called back to back."""
    import numba

    import cdnn_runtime
    from cdnn_runtime.kernels import prepare_linear
    numba.set_num_threads(threads)
    f = cdnn_runtime.read(path)
    rng = np.random.default_rng(2)
    bw = bandwidth[str(threads)]["best_gbs"] * 1e9
    out = []
    for node in f.graph["nodes"]:
        if node["op"] != "linear":
            continue
        wname = node["params"]["weight"]
        if f.tensor(wname).encoding != "sparse_codebook":
            continue
        s = f.sparse(wname, narrow=True)
        bias = None
        if "bias" in node["params"]:
            bias = np.ascontiguousarray(f.raw(node["params"]["bias"]), dtype=np.float32)
        x = rng.standard_normal((1, s.cols)).astype(np.float32)
        nbytes = {"codes": s.codes.nbytes, "col_idx": s.col_idx.nbytes,
                  "row_ptr": s.row_ptr.nbytes, "codebook": s.codebook.nbytes,
                  "bias": 0 if bias is None else bias.nbytes, "input": x.nbytes}
        total = sum(nbytes.values())
        n_copies = int(min(5000, max(2, -(-3 * llc // total) + 1)))
        copies = []
        for _ in range(n_copies):
            copies.append((prepare_linear(
                s.row_ptr.copy(), s.col_idx.copy(), s.codes.copy(), s.codebook.copy(),
                None if bias is None else bias.copy(), in_features=s.cols), x.copy()))
        layer, x0 = copies[-1]
        hot_scalar = None
        if layer.register_lookup:
            # the same layer through the scalar loop, timed in turn with the register lookup
            from cdnn_runtime.kernels import parse_activation
            from cdnn_runtime.kernels.sparse_linear import run_linear
            none = parse_activation("none")
            timings(layer, x0, 3)
            hot, hot_scalar = [], []
            for _ in range(reps_hot):
                t = time.perf_counter()
                layer(x0)
                hot.append(time.perf_counter() - t)
                t = time.perf_counter()
                run_linear(x0, layer.row_ptr, layer.cols, layer.codes, layer.codebook, layer.bias,
                           none, None, False)
                hot_scalar.append(time.perf_counter() - t)
        else:
            hot = timings(layer, x0, reps_hot)
        cold = []
        for i in range(reps_cold):
            lay, xi = copies[i % (n_copies - 1)]  # the last copy is the hot one
            t = time.perf_counter()
            lay(xi)
            cold.append(time.perf_counter() - t)
        del copies, layer, lay
        bound_us = total / bw * 1e6
        c, h = stats(cold), stats(hot)
        ratio = c["median_ms"] * 1e3 / bound_us
        judged = bound_us >= 10 * floor_us
        out.append({"layer": node["name"], "weight": wname, "shape": [s.rows, s.cols],
                    "nnz": int(s.codes.size), "col_dtype": str(s.col_idx.dtype),
                    "bytes": {**nbytes, "total": total}, "bound_us": bound_us,
                    "copies": n_copies,
                    "cold_us": _in_us(c), "hot_us": _in_us(h),
                    "register_lookup": hot_scalar is not None,
                    "hot_scalar_us": None if hot_scalar is None else _in_us(stats(hot_scalar)),
                    "ratio": ratio, "judged": judged,
                    "met": bool(ratio <= TARGET_FC_BOUND) if judged else None})
    return out


def call_overhead(reps):
    """Time of a 1x1 sparse layer, serial and parallel kernel: the fixed cost of one call."""
    from cdnn_runtime.kernels import prepare_linear
    layer = prepare_linear(np.array([0, 1], np.int64), np.zeros(1, np.uint16),
                           np.zeros(1, np.uint8), np.ones(1, np.float32), None, in_features=1)
    x = np.ones((1, 1), np.float32)
    res = {}
    for key, par in (("serial_us", False), ("parallel_us", True)):
        for _ in range(10):
            layer(x, parallel=par)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            layer(x, parallel=par)
            ts.append(time.perf_counter() - t)
        res[key] = float(np.median(ts)) * 1e6
    return res


# ---- subprocesses: load, start-up, memory ----------------------------------------------------

CDNN_CHILD = r"""
import json, sys, time
t_start = time.monotonic()
import numpy as np
from cdnn_runtime import InferenceSession
t1 = time.monotonic()
sess = InferenceSession(sys.argv[1], num_threads=int(sys.argv[3]))
t2 = time.monotonic()
x = np.random.default_rng(0).standard_normal([1] + json.loads(sys.argv[2])).astype(np.float32)
y = sess(x)
t3 = time.monotonic()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"t_start": t_start, "t_result": t3, "import_s": t1 - t_start,
                  "load_s": t2 - t1, "first_run_s": t3 - t2, "torch_loaded": "torch" in sys.modules,
                  "peak_rss_mb": int(hwm) / 1024, "out0": float(y.ravel()[0])}))
"""

TORCH_CHILD = r"""
import json, sys, time
t_start = time.monotonic()
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[4]))
from cdnn.models import MODELS
t1 = time.monotonic()
with torch.device("meta"):
    model = MODELS[sys.argv[1]]()
model.load_state_dict(torch.load(sys.argv[2], mmap=True, weights_only=True), assign=True)
model.eval()
t2 = time.monotonic()
x = np.random.default_rng(0).standard_normal([1] + json.loads(sys.argv[3])).astype(np.float32)
with torch.inference_mode():
    y = model(torch.from_numpy(x))
t3 = time.monotonic()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"t_start": t_start, "t_result": t3, "import_s": t1 - t_start,
                  "load_s": t2 - t1, "first_run_s": t3 - t2,
                  "peak_rss_mb": int(hwm) / 1024, "out0": float(y.ravel()[0])}))
"""


def run_child(code, argv, cache_dir, threads, pycache):
    """Run a child; Python's bytecode goes to `pycache` (written even where the environment
    says not to, so that a warm process starts as an installed one would)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, NUMBA_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads), PYTHONPYCACHEPREFIX=pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True,
                       text=True)
    t_exit = time.monotonic()
    if r.returncode != 0:
        raise RuntimeError(f"child failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["start_to_result_s"] = out["t_result"] - t0
    out["interpreter_start_s"] = out["t_start"] - t0
    out["wall_s"] = t_exit - t0
    return out


def subprocess_part(files, threads, n_load, work):
    """files: {name: (cdnn path, torch state-dict path)}. Fresh Numba and bytecode caches under
    `work`: the first child of each kind fills them (the cold start), later ones find them."""
    cache_dir = tempfile.mkdtemp(prefix="numba-", dir=work)
    pycache = tempfile.mkdtemp(prefix="pycache-", dir=work)
    res = {"runs": n_load}
    cdnn_child = lambda n, cache=cache_dir, pyc=pycache: run_child(  # noqa: E731
        CDNN_CHILD, [files[n][0], json.dumps(list(SHAPES[n])), str(threads)], cache, threads,
        pyc)
    torch_child = lambda n: run_child(  # noqa: E731
        TORCH_CHILD, [n, files[n][1], json.dumps(list(SHAPES[n])), str(threads)], cache_dir,
        threads, pycache)
    if "vgg16" in files:
        log("subprocess: VGG-16 cold start (empty Numba and bytecode caches) ...")
        cold = tempfile.mkdtemp(prefix="cold-", dir=work)
        res["vgg16_cold"] = cdnn_child("vgg16", os.path.join(cold, "numba"),
                                       os.path.join(cold, "pyc"))
        shutil.rmtree(cold, ignore_errors=True)
    for n in files:  # fill the caches for every model's kernels, and torch's bytecode
        cdnn_child(n)
    torch_child(next(iter(files)))
    if "vgg16" in files:
        log("subprocess: VGG-16 load, warm cache ...")
        runs = [cdnn_child("vgg16") for _ in range(n_load)]
        res["vgg16_warm"] = {"runs": runs, "load_s": stats([r["load_s"] for r in runs]),
                             "start_to_result_s": stats([r["start_to_result_s"]
                                                         for r in runs])}
    if "lenet-5" in files:
        log("subprocess: LeNet-5 start to first result, cdnn_runtime and PyTorch ...")
        c, t = [], []
        for _ in range(n_load):  # alternate
            c.append(cdnn_child("lenet-5"))
            t.append(torch_child("lenet-5"))
        res["lenet5_start"] = {
            "cdnn": {"runs": c, "start_to_result": stats([r["start_to_result_s"] for r in c])},
            "torch": {"runs": t, "start_to_result": stats([r["start_to_result_s"] for r in t])}}
        res["lenet5_start"]["ratio"] = (res["lenet5_start"]["cdnn"]["start_to_result"]
                                        ["median_ms"] / res["lenet5_start"]["torch"]
                                        ["start_to_result"]["median_ms"])
    log("subprocess: peak memory ...")
    mem = {}
    for n in files:
        c = cdnn_child(n)
        t = torch_child(n)
        mem[n] = {"cdnn_peak_rss_mb": c["peak_rss_mb"], "cdnn_torch_loaded": c["torch_loaded"],
                  "torch_peak_rss_mb": t["peak_rss_mb"],
                  "ratio": c["peak_rss_mb"] / t["peak_rss_mb"]}
        log(f"  {n:14s} peak RSS cdnn_runtime {c['peak_rss_mb']:.0f} MB (torch imported: "
            f"{c['torch_loaded']}), PyTorch {t['peak_rss_mb']:.0f} MB")
    res["peak_memory"] = mem
    return res


# ---- report ----------------------------------------------------------------------------------

def targets(report):
    rows = []
    for name, m in report["models"].items():
        lat = m["latency"]
        if "1" in lat:
            r = lat["1"]["ratios"]
            goal = TARGET_B1_TORCH[name]
            v = r.get("torch")
            rows.append({"target": f"{NAMES[name]} batch 1: cdnn / PyTorch eager <= {goal}",
                         "value": v, "met": None if v is None else bool(v <= goal)})
            v = r.get("ort")
            rows.append({"target": f"{NAMES[name]} batch 1: cdnn / onnxruntime fp32 <= "
                                   f"{TARGET_B1_ORT}",
                         "value": v, "met": None if v is None else bool(v <= TARGET_B1_ORT)})
        if "32" in lat:
            v = lat["32"]["ratios"].get("torch")
            rows.append({"target": f"{NAMES[name]} batch 32: cdnn / PyTorch eager <= "
                                   f"{TARGET_B32_TORCH}",
                         "value": v, "met": None if v is None else bool(v <= TARGET_B32_TORCH)})
        for layer in m.get("fc_layers", []):
            rows.append({"target": f"{NAMES[name]} {layer['layer']}: FC time / bandwidth bound "
                                   f"<= {TARGET_FC_BOUND}",
                         "value": layer["ratio"], "met": layer["met"]})
    sub = report.get("subprocess") or {}
    if "vgg16_warm" in sub:
        v = sub["vgg16_warm"]["load_s"]["median_ms"] / 1e3
        rows.append({"target": f"VGG-16 InferenceSession load (warm cache) < "
                               f"{TARGET_VGG_LOAD_S} s", "value": v,
                     "met": bool(v < TARGET_VGG_LOAD_S)})
    return rows


def markdown(report):
    mach = report["machine"]
    v = mach["versions"]
    quick = "QUICK run (smoke test: few repeats, not for quoting). " if report["quick"] else ""
    L = [f"# cdnn_runtime latency against dense peers{' (QUICK)' if report['quick'] else ''}",
         "",
         f"{quick}{report['date']}; {mach['cpu']}, {mach['cpu_count']} cores, "
         f"{mach['threads']} threads for every runtime; load average at start "
         f"{mach['loadavg_start']}, at end {mach['loadavg_end']}. Python {v['python']}, "
         f"torch {v['torch']}, onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, numpy "
         f"{v['numpy']}, numba {v['numba']} (threading layer {mach.get('numba_threading_layer')})"
         + (f", DeepSparse {mach['deepsparse']}" if mach.get("deepsparse") else "") + "."
         + (" cdnn_runtime's batch-1 linear layers use the AVX2 codebook lookup."
            if mach.get("cdnn_avx2") else
            " cdnn_runtime's batch-1 linear layers use the scalar loop (no AVX2)."
            if mach.get("cdnn_avx2") is not None else ""),
         "",
         "Seeded random weights pruned to Deep Compression's per-layer densities, conv 8-bit "
         "and fc 5-bit codebooks, no retraining. Peers run the same weights dense (decompressed). "
         "Times in ms: median (min-max) over interleaved rounds; n = rounds. In each round "
         "every runtime takes its turn (the order rotating); before each turn the harness "
         "waits until the previous runtime's threads stop spinning, and a runtime faster than "
         f"{REWARM_BELOW_S * 1e3:.0f} ms gets one untimed call before its timed one.", ""]
    occ = [b["others_cores"] for m in report["models"].values()
           for b in m["latency"].values() if b.get("others_cores") is not None]
    run_occ = mach.get("others_cores_run")
    if run_occ is not None:
        L += [f"Other processes kept {run_occ:.2f} of the {mach['cpu_count']} cores busy on "
              "average over the run (from /proc/stat, less this process and its children)"
              + (f", at most {max(occ):.2f} while one model and batch was timed." if occ
                 else "."), ""]
    if max(occ + [run_occ or 0.0]) > 0.25:
        L += [f"**Busy machine**: other processes took up to {max(occ + [run_occ or 0.0]):.2f} "
              "cores, so they competed for the cores during the run. A parallel region whose "
              "worker thread is "
              "asleep then waits for the scheduler (milliseconds, in steps of the timer tick), "
              "which inflates every threaded runtime; runtimes whose threads spin suffer less. "
              "Take the figures as development figures, not as the runtimes' speeds.", ""]
    skipped = report.get("skipped", {})
    if skipped:
        L.append("Skipped peers: " + "; ".join(f"{LABEL[k]}: {why}"
                                               for k, why in skipped.items()) + ".")
        L.append("")
    present = [k for k, _ in RUNTIMES
               if any(k in b["runtimes"] for m in report["models"].values()
                      for b in m["latency"].values())]
    peers = [k for k in present if k != "cdnn"]
    L += ["## Latency", "",
          "| model | batch | n | " + " | ".join(LABEL[k] for k in present) + " |",
          "|---|---:|---:|" + "---:|" * len(present)]
    for name, m in report["models"].items():
        for b, lat in m["latency"].items():
            cells = [cell(lat["runtimes"][k]) if k in lat["runtimes"] else "-" for k in present]
            L.append(f"| {NAMES[name]} | {b} | {lat['rounds']} | " + " | ".join(cells) + " |")
    L += ["", "## cdnn_runtime / peer (ratio of medians; below 1 means cdnn_runtime is faster)",
          "", "| model | batch | " + " | ".join(LABEL[k] for k in peers) + " | target |",
          "|---|---:|" + "---:|" * len(peers) + "---|"]
    for name, m in report["models"].items():
        for b, lat in m["latency"].items():
            r = lat["ratios"]
            cells = [num(r[k]) if k in r else "-" for k in peers]
            if b == "1":
                goal = TARGET_B1_TORCH[name]
                t_ok = r["torch"] <= goal if "torch" in r else None
                o_ok = r["ort"] <= TARGET_B1_ORT if "ort" in r else None
                tgt = (f"<= {goal} x PyTorch: {verdict(t_ok)}; <= {TARGET_B1_ORT} x "
                       f"onnxruntime fp32: {verdict(o_ok)}")
            elif b == "32":
                t_ok = r["torch"] <= TARGET_B32_TORCH if "torch" in r else None
                tgt = f"<= {TARGET_B32_TORCH} x PyTorch: {verdict(t_ok)}"
            else:
                tgt = ""
            L.append(f"| {NAMES[name]} | {b} | " + " | ".join(cells) + f" | {tgt} |")
    L += ["", "Outputs against PyTorch eager (max abs difference / largest |output|, top-1 "
          "agreement), batch 1:", "",
          "| model | " + " | ".join(LABEL[k] for k in present if k != "torch") + " |",
          "|---|" + "---:|" * len([k for k in present if k != "torch"])]
    for name, m in report["models"].items():
        lat = m["latency"].get("1") or next(iter(m["latency"].values()))
        cells = []
        for k in present:
            if k == "torch":
                continue
            c = lat["check"].get(k)
            cells.append("-" if c is None else
                         f"{c['max_rel_diff']:.1e}, {100 * c['top1_agree']:.0f}%")
        L.append(f"| {NAMES[name]} | " + " | ".join(cells) + " |")
    bw = report["bandwidth"]
    t = str(mach["threads"])
    L += ["", "## Fully-connected layers at batch 1 against the memory-bandwidth bound", "",
          f"Read bandwidth (numba parallel sum over {bw['array_mb']} MB float32, best of "
          f"{bw['passes']} / median): 1 thread {bw['1']['best_gbs']:.1f} / "
          f"{bw['1']['median_gbs']:.1f} GB/s, {t} threads {bw[t]['best_gbs']:.1f} / "
          f"{bw[t]['median_gbs']:.1f} GB/s. Bound = bytes read (codes, column indices, row "
          f"pointers, codebook, bias, input) / best {t}-thread bandwidth. Measured: the "
          "layer alone (cdnn_runtime SparseLinear, the object the session calls, 2 threads), "
          "its weights read from memory: copies of the layer filling three times the "
          f"last-level cache ({report['machine']['llc_mb']:.0f} MB) are called in turn; hot = "
          "one copy called back to back, weights in cache. Fixed cost of one layer call (a 1x1 "
          f"layer): {num(report['call_overhead_us']['serial_us'])} us serial kernel, "
          f"{num(report['call_overhead_us']['parallel_us'])} us parallel kernel. The 2x target "
          "is judged only where the bound is at least 10 times the serial fixed cost; below "
          "that the call's fixed cost, not memory, sets the time (n/a).", "",
          "hot, scalar loop us = the same layer, weights in cache, through the scalar loop "
          "instead of the AVX2 codebook lookup, timed in turn with it (- where the lookup does "
          "not apply).", "",
          "| model | layer | shape | nnz | bytes read | bound us | measured us (min-max) | "
          "hot us | hot, scalar loop us | measured / bound | target <= 2x |",
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, m in report["models"].items():
        for r in m.get("fc_layers", []):
            L.append(f"| {NAMES[name]} | {r['layer']} | {r['shape'][0]}x{r['shape'][1]} | "
                     f"{r['nnz']:,} | {r['bytes']['total']:,} | {num(r['bound_us'])} | "
                     f"{cell(r['cold_us'], 'median_us', 'min_us', 'max_us')} | "
                     f"{num(r['hot_us']['median_us'])} | "
                     f"{num(r['hot_scalar_us']['median_us']) if r.get('hot_scalar_us') else '-'} | "
                     f"{r['ratio']:.2f} | "
                     f"{verdict(r['met'])} |")
    sub = report.get("subprocess")
    L += ["", "## Load, start-up, memory (fresh processes)", ""]
    if not sub:
        L.append(report.get("subprocess_skipped", "Skipped (--no-subprocess)."))
    else:
        if "vgg16_warm" in sub:
            w = sub["vgg16_warm"]
            lo = w["load_s"]
            L.append(f"- VGG-16 `InferenceSession(path)`, warm Numba cache, median of "
                     f"{lo['n']}: **{lo['median_ms'] / 1e3:.3f} s** "
                     f"({lo['min_ms'] / 1e3:.3f}-{lo['max_ms'] / 1e3:.3f}); target < "
                     f"{TARGET_VGG_LOAD_S} s: "
                     f"{verdict(lo['median_ms'] / 1e3 < TARGET_VGG_LOAD_S)}. Process start to "
                     f"first result: {w['start_to_result_s']['median_ms'] / 1e3:.2f} s.")
        if "vgg16_cold" in sub:
            c = sub["vgg16_cold"]
            L.append(f"- VGG-16 cold start (empty Numba and bytecode caches), once: process "
                     f"start to first "
                     f"result {c['start_to_result_s']:.2f} s (import {c['import_s']:.2f}, load "
                     f"{c['load_s']:.2f}, first run with compilation {c['first_run_s']:.2f}).")
        if "lenet5_start" in sub:
            s = sub["lenet5_start"]
            c, t = s["cdnn"]["start_to_result"], s["torch"]["start_to_result"]
            L.append(f"- LeNet-5, fresh process start to first result, median of {c['n']}: "
                     f"cdnn_runtime (warm cache) {c['median_ms'] / 1e3:.2f} s "
                     f"({c['min_ms'] / 1e3:.2f}-{c['max_ms'] / 1e3:.2f}), PyTorch (import "
                     f"torch, dense model) {t['median_ms'] / 1e3:.2f} s "
                     f"({t['min_ms'] / 1e3:.2f}-{t['max_ms'] / 1e3:.2f}); ratio "
                     f"{s['ratio']:.2f}.")
        L += ["", "Peak resident memory (VmHWM) of a process that loads the model and runs "
              "batch 1; the PyTorch process builds the model on the meta device and loads "
              "the state dict memory-mapped (assign=True), so its weights are held once.", "",
              "| model | .cdnn file | cdnn_runtime MB | torch imported | PyTorch MB | ratio |",
              "|---|---:|---:|---|---:|---:|"]
        for name, mm in sub["peak_memory"].items():
            L.append(f"| {NAMES[name]} | {report['models'][name]['file_bytes']:,} B | "
                     f"{mm['cdnn_peak_rss_mb']:.0f} | {'yes' if mm['cdnn_torch_loaded'] else 'no'}"
                     f" | {mm['torch_peak_rss_mb']:.0f} | {mm['ratio']:.2f} |")
    L += ["", "## Targets", "", "| target | value | |", "|---|---:|---|"]
    for r in report["targets"]:
        L.append(f"| {r['target']} | {num(r['value'])} | {verdict(r['met'])} |")
    met = sum(1 for r in report["targets"] if r["met"])
    known = sum(1 for r in report["targets"] if r["met"] is not None)
    L += ["", f"{met} of {known} targets met."]
    return "\n".join(L) + "\n"


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [n for n, m in report["models"].items() if "1" in m["latency"]]
    keys = [k for k, _ in RUNTIMES
            if any(k in report["models"][n]["latency"]["1"]["runtimes"] for n in names)]
    if not names:
        return False
    fig, ax = plt.subplots(figsize=(9, 4.8))
    width = 0.8 / len(keys)
    for i, k in enumerate(keys):
        xs, med, lo, hi = [], [], [], []
        for j, n in enumerate(names):
            s = report["models"][n]["latency"]["1"]["runtimes"].get(k)
            if s is None:
                continue
            xs.append(j + (i - (len(keys) - 1) / 2) * width)
            med.append(s["median_ms"])
            lo.append(s["median_ms"] - s["min_ms"])
            hi.append(s["max_ms"] - s["median_ms"])
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=2, label=LABEL[k], color=COLORS[k],
               error_kw={"elinewidth": 0.8})
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([NAMES[n] for n in names])
    ax.set_yscale("log")
    ax.set_ylabel("batch-1 latency, ms (median, bars min-max)")
    title = f"Batch-1 latency, {report['machine']['threads']} threads, {report['date']}"
    ax.set_title(title + (" (QUICK)" if report["quick"] else ""))
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(SHAPES),
                    help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--repeats", type=int, default=None,
                    help="most rounds per model and batch (default 50, 5 with --quick); "
                         "slow configurations get fewer, within a time budget (20 s at batch 1, "
                         "60 s above), but at least 3 (1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    ap.add_argument("--deepsparse-python", default=None,
                    help="python of a venv with deepsparse==1.8.0 and numpy<2")
    ap.add_argument("--no-subprocess", action="store_true",
                    help="skip load time, start-up and peak memory (fresh processes)")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=RESULTS, help="folder for latency.json/.md/.png")
    args = ap.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        if n not in SHAPES:
            ap.error(f"unknown model {n!r}; known: {', '.join(SHAPES)}")
    batches = [int(b) for b in args.batches.split(",")]
    quick = args.quick
    max_rounds = args.repeats or (5 if quick else 50)
    min_rounds = min(max_rounds, 1 if quick else 3)
    budget = {1: 3.0 if quick else 20.0}  # seconds of timed rounds per model and batch
    budget_large = 5.0 if quick else 60.0
    threads = args.threads
    n_load = 2 if quick else 5

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*quantiz.*")
    import torch
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    import numba

    from cdnn_runtime import InferenceSession
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="cdnn-latency-")
    report = {"quick": quick, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "args": vars(args),
              "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": threads,
                          "platform": platform.platform(), "llc_mb": llc_bytes() / 2 ** 20,
                          "loadavg_start": loadavg(), "versions": versions()},
              "skipped": {}, "models": {}}
    ds_why, ds_version = _peers.check_deepsparse(args.deepsparse_python)
    if ds_why:
        report["skipped"]["deepsparse"] = ds_why
        log(f"DeepSparse skipped: {ds_why}")
    else:
        report["machine"]["deepsparse"] = ds_version
    ort_why = _peers.ort_missing()
    if ort_why:
        for k in ("ort", "ort_int8"):
            report["skipped"][k] = ort_why
        log(f"onnxruntime peers skipped: {ort_why}")

    t_run = time.perf_counter()
    run_snap = cpu_snapshot()
    try:
        log(f"read bandwidth: numba parallel sum over 512 MB, 1 and {threads} threads ...")
        psum = _sum_kernel()
        report["bandwidth"] = measure_bandwidth(psum, threads, passes=3 if quick else 7)
        b = report["bandwidth"]
        log(f"  1 thread {b['1']['best_gbs']:.1f} GB/s, {threads} threads "
            f"{b[str(threads)]['best_gbs']:.1f} GB/s (best pass)")
        report["machine"]["numba_threading_layer"] = numba.threading_layer()
        from cdnn_runtime.kernels._simd import AVX2
        report["machine"]["cdnn_avx2"] = AVX2
        report["call_overhead_us"] = call_overhead(1000)
        files = {}
        for name in names:
            log(f"== {NAMES[name]}: compressing ...")
            _, packed, compress_s = build(name)
            shape = SHAPES[name]
            path = os.path.join(work, name + ".cdnn")
            packed.save(path)
            ref = packed.reference_model().eval()
            pt = os.path.join(work, name + ".pt")
            torch.save(ref.state_dict(), pt)
            files[name] = (path, pt)
            entry = {"file_bytes": packed.nbytes, "dense_bytes": packed.dense_bytes,
                     "ratio": packed.ratio, "compress_s": compress_s, "peers": {},
                     "latency": {}}
            del packed
            gc.collect()
            sess = InferenceSession(path, num_threads=threads)
            cdnn_peer = _peers.Peer("cdnn", "cdnn_runtime", sess)
            made = [cdnn_peer]
            for key, mk in (("torch", lambda: _peers.make_torch_eager(ref)),
                            ("torch_int8", lambda: _peers.make_torch_int8(ref))):
                p, why = mk()
                if p:
                    made.append(p)
                else:
                    report["skipped"].setdefault(key, why)
                    log(f"  {LABEL[key]} skipped: {why}")
            onnx_path = None
            if not ort_why or not ds_why:
                t = time.perf_counter()
                onnx_path, why = _peers.export_onnx(ref, shape, os.path.join(work, name + ".onnx"))
                entry["peers"]["onnx_export_s"] = time.perf_counter() - t
                if why:
                    log(f"  ONNX export failed: {why}")
                    entry["peers"]["onnx_export_error"] = why
            if not ort_why:
                for key, mk in (("ort", lambda: _peers.make_ort_fp32(onnx_path, threads)),
                                ("ort_int8", lambda: _peers.make_ort_int8(onnx_path, work,
                                                                          threads))):
                    t = time.perf_counter()
                    p, why = mk()
                    if p:
                        made.append(p)
                        entry["peers"][key] = {**p.info, "setup_s": time.perf_counter() - t}
                    else:
                        entry["peers"][key] = {"error": why}
                        log(f"  {LABEL[key]} skipped: {why}")
            log(f"  {entry['file_bytes']:,} B .cdnn ({entry['ratio']:.1f}x), compress "
                f"{compress_s:.1f} s; runtimes: {', '.join(p.label for p in made)}")
            with torch.inference_mode():
                for batch in batches:
                    x = np.random.default_rng(1).standard_normal(
                        (batch,) + shape).astype(np.float32)
                    peers = list(made)
                    ds = None
                    if not ds_why:
                        log(f"  batch {batch}: compiling DeepSparse ...")
                        ds, why = _peers.make_deepsparse(args.deepsparse_python, onnx_path, x,
                                                         threads, work)
                        if ds:
                            peers.append(ds)
                            entry["peers"].setdefault("deepsparse", {})[str(batch)] = ds.info
                        else:
                            log(f"  DeepSparse skipped: {why}")
                            entry["peers"].setdefault("deepsparse", {})[str(batch)] = \
                                {"error": why}
                    ref_out = made[1].output(x) if made[1].key == "torch" else None
                    check = {}
                    for p in peers:
                        if ref_out is not None and p.key != "torch":
                            check[p.key] = compare(ref_out, p.output(x))
                    est = {}
                    for p in peers:
                        est[p.key] = warm_up(p, x, quick)
                    round_s = sum(v * (2 if v < REWARM_BELOW_S else 1) + 0.03
                                  for v in est.values())
                    bud = budget.get(batch, budget_large)
                    rounds = int(min(max_rounds, max(min_rounds, bud // max(round_s, 1e-9))))
                    log(f"  batch {batch}: {rounds} rounds of ~{round_s:.2f} s")
                    load = loadavg()
                    pids = [ds.pid] if ds else []
                    snap = cpu_snapshot(pids)
                    samples, waited = round_robin(peers, x, rounds, est)
                    others = others_cores(snap, cpu_snapshot(pids))
                    if ds:
                        ds.close()
                    runtimes = {k: stats(v) for k, v in samples.items()}
                    c = runtimes["cdnn"]["median_ms"]
                    ratios = {k: c / s["median_ms"] for k, s in runtimes.items() if k != "cdnn"}
                    entry["latency"][str(batch)] = {
                        "rounds": rounds, "runtimes": runtimes, "ratios": ratios,
                        "check": check, "loadavg_before": load, "others_cores": others,
                        "settle_ms": stats(waited) if waited else None,
                        "samples_ms": {k: [t * 1e3 for t in v] for k, v in samples.items()}}
                    log(f"  batch {batch}: " + "; ".join(
                        f"{LABEL[k]} {cell(s)}" + (f" [x{ratios[k]:.2f}]" if k in ratios else "")
                        for k, s in runtimes.items()))
            if 1 in batches:
                log("  FC layers at batch 1 ...")
                entry["fc_layers"] = fc_layers(path, report["bandwidth"], threads,
                                               llc_bytes(), report["call_overhead_us"]
                                               ["serial_us"], reps_hot=50 if quick else 300,
                                               reps_cold=10 if quick else 60)
                for r in entry["fc_layers"]:
                    log(f"    {r['layer']:14s} {r['shape'][0]}x{r['shape'][1]} "
                        f"{r['bytes']['total']:>11,} B  bound {r['bound_us']:8.1f} us  "
                        f"measured {r['cold_us']['median_us']:8.1f} us (hot "
                        f"{r['hot_us']['median_us']:.1f})  ratio {r['ratio']:.2f}")
            for p in made:
                p.close()
            del made, peers, sess, ref, cdnn_peer
            for f in os.listdir(work):
                if f.endswith(".onnx"):
                    os.unlink(os.path.join(work, f))
            gc.collect()
            report["models"][name] = entry
        if args.no_subprocess:
            report["subprocess_skipped"] = "Skipped (--no-subprocess)."
        else:
            report["subprocess"] = subprocess_part(files, threads, n_load, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["run_s"] = time.perf_counter() - t_run
    report["machine"]["others_cores_run"] = others_cores(run_snap, cpu_snapshot())
    report["machine"]["loadavg_end"] = loadavg()
    report["targets"] = targets(report)
    md = markdown(report)
    with open(os.path.join(args.out, "latency.json"), "w") as fh:
        json.dump(report, fh, indent=1, default=_json_default)
    with open(os.path.join(args.out, "latency.md"), "w") as fh:
        fh.write(md)
    try:
        plot(report, os.path.join(args.out, "latency.png"))
    except ImportError as exc:
        log(f"no plot: {exc}")
    print()
    print(md)
    log(f"total {report['run_s']:.0f} s; wrote {os.path.join(args.out, 'latency.*')}")


if __name__ == "__main__":
    main()
