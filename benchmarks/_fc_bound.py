"""Fully-connected layers at batch 1 against the memory-bandwidth bound: each sparse linear
layer of a file timed alone, its weights coming from memory, and the fixed cost of one call."""

from functools import partial

import numpy as np

from _common import stats
from _latency_report import TARGET_FC_BOUND
from cdnn_runtime.timing import summarize, time_calls


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
        x = rng.standard_normal((1, s.n_cols)).astype(np.float32)
        nbytes = {"codes": s.codes.nbytes, "col_idx": s.col_idx.nbytes,
                  "row_ptr": s.row_ptr.nbytes, "codebook": s.codebook.nbytes,
                  "bias": 0 if bias is None else bias.nbytes, "input": x.nbytes}
        total = sum(nbytes.values())
        n_copies = int(min(5000, max(2, -(-3 * llc // total) + 1)))
        copies = []
        for _ in range(n_copies):
            copies.append((prepare_linear(
                s.row_ptr.copy(), s.col_idx.copy(), s.codes.copy(), s.codebook.copy(),
                None if bias is None else bias.copy(), in_features=s.n_cols), x.copy()))
        layer, x0 = copies[-1]
        hot_scalar = None
        if layer.use_register_lookup:
            # the same layer through the scalar loop, timed in turn with the register lookup
            from cdnn_runtime.kernels import parse_activation
            from cdnn_runtime.kernels.sparse_linear import run_linear
            scalar_args = (x0, layer.row_ptr, layer.col_idx, layer.codes, layer.codebook,
                           layer.bias, parse_activation("none"), None, False)
            time_calls(layer, x0, repeats=3, warmup=3)
            hot, hot_scalar = [], []
            for _ in range(reps_hot):
                hot.append(time_calls(layer, x0, repeats=1)[0])
                hot_scalar.append(time_calls(run_linear, *scalar_args, repeats=1)[0])
        else:
            hot = time_calls(layer, x0, repeats=reps_hot, warmup=3)
        # the copies in turn, oldest first; the last one is the hot one
        cold = [time_calls(*copies[i % (n_copies - 1)], repeats=1)[0] for i in range(reps_cold)]
        del copies, layer
        bound_us = total / bw * 1e6
        c, h = stats(cold), stats(hot)
        ratio = c["median_ms"] * 1e3 / bound_us
        judged = bound_us >= 10 * floor_us
        out.append({"layer": node["name"], "weight": wname, "shape": [s.rows, s.n_cols],
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
        ts = time_calls(partial(layer, parallel=par), x, repeats=reps, warmup=10)
        res[key] = summarize(ts)["median_ms"] * 1e3
    return res
