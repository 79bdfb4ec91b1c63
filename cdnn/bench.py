"""Latency, throughput, load time and peak memory of cdnn_runtime on a .cdnn file, side by
side with PyTorch on the dense source model, the two engines alternating run by run."""

import io
import os
import time

import numpy as np

from cdnn_runtime.report import print_table
from cdnn_runtime.timing import maxrss_bytes, summarize, time_calls

from .sources import eval_mode, load_source, require_torch


def _warm_up(fn, batches, warmup):
    for b in batches:
        for _ in range(warmup):
            fn(b)


def bench(path, *, against=None, model_spec=None, seed=0, batches=(1, 32), threads=None,
          repeats=50, warmup=5):
    """Time the .cdnn file at `path` (and with `against`, its dense source model as
    `load_source` takes it) per batch size; the result as a dict.

    Per batch size, `cdnn_runtime` and `torch_dense` (None without `against`): median, min,
    max ms and samples/s of `repeats` runs after `warmup` untimed ones, the engines taking
    turns to go first. `threads` sets both engines' thread count (torch's is restored after);
    `peak_rss_bytes` is ru_maxrss at each stage.
    """
    import numba

    from cdnn_runtime.session import InferenceSession
    batches = list(batches)
    rss = {"start": maxrss_bytes()}
    t0 = time.perf_counter()
    sess = InferenceSession(path, num_threads=threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    rss["after_load"] = maxrss_bytes()
    specs = sess.get_inputs()
    fixed = {s.shape[0] for s in specs if s.shape[0] is not None}
    note = None
    if fixed:
        wanted, batches = batches, sorted(fixed)[:1]
        if wanted != batches:
            note = f"the model's batch size is fixed at {batches[0]}; --batch ignored"
    rng = np.random.default_rng(0)
    feeds = {b: {s.name: rng.standard_normal([b] + list(s.shape[1:])).astype(np.float32)
                 for s in specs} for b in batches}
    engines = [("cdnn_runtime", lambda b: sess.run(None, feeds[b]))]
    _warm_up(engines[0][1], batches, warmup)
    rss["after_cdnn_warmup"] = maxrss_bytes()
    torch_threads = None
    restore = None
    name = None
    if against:
        torch = require_torch("bench --against")
        model, name = load_source(against, model_spec, seed)
        eval_mode(model)
        if threads:
            restore = torch.get_num_threads()
            torch.set_num_threads(threads)
        torch_threads = torch.get_num_threads()
        tensors = {b: [torch.from_numpy(feeds[b][s.name]) for s in specs] for b in batches}

        def run_torch(b):
            with torch.inference_mode():
                model(*tensors[b])
        engines.append(("torch_dense", run_torch))
    try:
        if against:
            _warm_up(run_torch, batches, warmup)
        results = []
        for b in batches:
            times = {key: [] for key, _ in engines}
            for r in range(repeats):
                for key, fn in (engines if r % 2 == 0 else engines[::-1]):
                    times[key].append(time_calls(fn, b, repeats=1)[0])
            results.append({"batch": b, "torch_dense": None,
                            **{key: summarize(t, b) for key, t in times.items()}})
    finally:
        if restore is not None:
            torch.set_num_threads(restore)
    rss["end"] = maxrss_bytes()
    return {"file": str(path), "file_bytes": os.path.getsize(path),
            "against": name, "load_ms": load_ms, "repeats": repeats, "warmup": warmup,
            "threads": {"cdnn_runtime": sess.num_threads or numba.config.NUMBA_NUM_THREADS,
                        "torch": torch_threads},
            "peak_rss_bytes": rss, "note": note, "results": results}


def format_bench(res):
    """The text report of a `bench` result: settings, a table per batch and engine, memory."""
    th = res["threads"]
    out = io.StringIO()
    out.write(f"bench {res['file']} ({res['file_bytes']:,} bytes)"
              + (f" against {res['against']} (PyTorch dense)" if res["against"] else "") + "\n")
    out.write(f"load (InferenceSession): {res['load_ms']:.1f} ms; threads: cdnn_runtime "
              f"{th['cdnn_runtime']}" + (f", torch {th['torch']}" if th["torch"] else "")
              + f"; {res['repeats']} repeats after {res['warmup']} warm-up "
                f"run{'s' if res['warmup'] != 1 else ''}"
              + (", the two engines alternating" if res["against"] else "") + "\n")
    if res["note"]:
        out.write(f"note: {res['note']}\n")
    header = ["batch", "engine", "median ms", "min ms", "max ms", "samples/s", "speed-up"]
    rows = []
    for r in res["results"]:
        c, t = r["cdnn_runtime"], r["torch_dense"]
        for label, s in (("cdnn_runtime", c), ("torch dense", t)):
            if s is None:
                continue
            speed = f"{t['median_ms'] / c['median_ms']:.2f}x" if t and s is c else ""
            rows.append([str(r["batch"]), label, f"{s['median_ms']:.3f}", f"{s['min_ms']:.3f}",
                         f"{s['max_ms']:.3f}", f"{s['samples_per_s']:,.0f}", speed])
    if not res["against"]:
        header, rows = header[:-1], [r[:-1] for r in rows]
    print_table(out, header, rows, "><" + ">" * (len(header) - 2))
    if res["against"]:
        out.write("(speed-up: torch median / cdnn_runtime median)\n")
    rss = res["peak_rss_bytes"]
    if rss["end"] is not None:
        mib = lambda v: f"{v / 2**20:.1f} MiB"  # noqa: E731
        out.write(f"peak memory (ru_maxrss): {mib(rss['after_cdnn_warmup'])} after loading "
                  f"and warming up cdnn_runtime" + (f"; {mib(rss['end'])} at the end, with "
                                                    "torch and the dense model loaded"
                                                    if res["against"] else "") + "\n")
    return out.getvalue()
