"""The latency benchmark's targets and its report: latency.md (tables and verdicts) and
latency.png from the report dict that bench_latency.py builds and saves as latency.json."""

import json
import os

import numpy as np

from _rounds import REWARM_BELOW_S

NAMES = {"lenet-300-100": "LeNet-300-100", "lenet-5": "LeNet-5", "alexnet": "AlexNet",
         "vgg16": "VGG-16", "resnet50": "ResNet-50", "mobilenet_v2": "MobileNetV2",
         "gpt": "GPT (4x256, 128 tokens)"}
#: Batch-1 targets of cdnn_runtime's median over PyTorch eager's.
TARGET_B1_TORCH = {"lenet-300-100": 0.5, "lenet-5": 0.5, "alexnet": 0.6, "vgg16": 0.8}
TARGET_B1_ORT = 1.0
#: Batch-1 targets of the models with no PyTorch target (the zoo CNNs of Performance III and
#: the sequence model), cdnn_runtime's median over onnxruntime fp32's.
TARGET_B1_ORT_ONLY = {"resnet50": 1.0, "mobilenet_v2": 1.0, "gpt": 1.0}
TARGET_B32_TORCH = 1.0
TARGET_FC_BOUND = 2.0
TARGET_VGG_LOAD_S = 0.5
#: Performance III: batch 1 at most onnxruntime dynamic int8 and batch 32 at most onnxruntime
#: fp32 on the reference networks; cold start (empty cache, fresh process, first result) and
#: peak memory.
TARGET_B1_ORT_INT8 = 1.0
TARGET_B32_ORT = 1.0
TARGET_COLD_S = {"vgg16": 10.0, "resnet50": 10.0}
TARGET_PEAK_MB = {"lenet-5": 100.0, "vgg16": 200.0}

RUNTIMES = [("cdnn", "cdnn_runtime"), ("torch", "PyTorch eager"),
            ("torch_int8", "PyTorch dyn. int8"), ("ort", "onnxruntime fp32"),
            ("ort_int8", "onnxruntime dyn. int8"), ("deepsparse", "DeepSparse")]
LABEL = dict(RUNTIMES)
COLORS = {"cdnn": "tab:red", "torch": "tab:blue", "torch_int8": "tab:cyan",
          "ort": "tab:green", "ort_int8": "tab:olive", "deepsparse": "tab:purple"}


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


def _fmt(v, spec):
    """`v` formatted with `spec`, or '-' for None."""
    return "-" if v is None else format(v, spec)


def cell(s, key="median_ms", lo="min_ms", hi="max_ms"):
    """'median (min-max)' of a timing summary."""
    return f"{num(s[key])} ({num(s[lo])}-{num(s[hi])})"


def _weights_text(report):
    """How the timed networks' weights were made."""
    ref = [n for n in report["models"] if n in TARGET_B1_TORCH]
    zoo = [NAMES[n] for n, m in report["models"].items()
           if n not in TARGET_B1_TORCH and "weights" not in m]
    text = []
    if ref:
        text.append("Seeded random weights pruned to Deep Compression's per-layer densities, "
                    "conv 8-bit and fc 5-bit codebooks, no retraining.")
    if zoo:
        text.append(f"{' and '.join(zoo)} (cdnn.zoo, full size): seeded random weights, the "
                    "deep-compression preset's defaults (conv 50% density at 8 bits, linear 10% "
                    "at 5 bits), no retraining.")
    text += [f"{NAMES[n]}: {m['weights']}." for n, m in report["models"].items()
             if "weights" in m]
    return " ".join(text)


def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def _row(text, value, goal, below=False):
    """A target row: `value` at most `goal` (strictly below with `below`); None: not judged."""
    met = None if value is None else bool(value < goal if below else value <= goal)
    return {"target": text, "value": value, "met": met}


def targets(report):
    """One row per target: what is measured against what, the value, met (None: not judged)."""
    rows = []
    for name, m in report["models"].items():
        lat = m["latency"]
        r1, r32 = (lat.get(b, {}).get("ratios", {}) for b in ("1", "32"))
        if name in TARGET_B1_ORT_ONLY and "1" in lat:
            goal = TARGET_B1_ORT_ONLY[name]
            rows.append(_row(f"{NAMES[name]} batch 1: cdnn / onnxruntime fp32 <= {goal}",
                             r1.get("ort"), goal))
        if name in TARGET_B1_TORCH and "1" in lat:
            rows.append(_row(f"{NAMES[name]} batch 1: cdnn / onnxruntime dyn. int8 <= "
                             f"{TARGET_B1_ORT_INT8}", r1.get("ort_int8"), TARGET_B1_ORT_INT8))
        if name in TARGET_B1_TORCH and "32" in lat:
            rows.append(_row(f"{NAMES[name]} batch 32: cdnn / onnxruntime fp32 <= "
                             f"{TARGET_B32_ORT}", r32.get("ort"), TARGET_B32_ORT))
        if name not in TARGET_B1_TORCH:  # measured and reported, no target set here
            continue
        if "1" in lat:
            goal = TARGET_B1_TORCH[name]
            rows.append(_row(f"{NAMES[name]} batch 1: cdnn / PyTorch eager <= {goal}",
                             r1.get("torch"), goal))
            rows.append(_row(f"{NAMES[name]} batch 1: cdnn / onnxruntime fp32 <= "
                             f"{TARGET_B1_ORT}", r1.get("ort"), TARGET_B1_ORT))
        if "32" in lat:
            rows.append(_row(f"{NAMES[name]} batch 32: cdnn / PyTorch eager <= "
                             f"{TARGET_B32_TORCH}", r32.get("torch"), TARGET_B32_TORCH))
        for layer in m.get("fc_layers", []):
            rows.append({"target": f"{NAMES[name]} {layer['layer']}: FC time / bandwidth bound "
                                   f"<= {TARGET_FC_BOUND}",
                         "value": layer["ratio"], "met": layer["met"]})
    sub = report.get("subprocess") or {}
    for name, goal in TARGET_COLD_S.items():
        if f"{name}_cold" in sub:
            rows.append(_row(f"{NAMES[name]} cold start (empty cache) to first result <= "
                             f"{goal:g} s", sub[f"{name}_cold"]["start_to_result_s"], goal))
    for name, r in (sub.get("after_warmup") or {}).items():
        rows.append(_row(f"{NAMES[name]} after `cdnn-runtime warmup`: signatures compiled = 0",
                         r.get("compiled"), 0))
    for name, goal in TARGET_PEAK_MB.items():
        mm = (sub.get("peak_memory") or {}).get(name)
        if mm and not mm["cdnn_torch_loaded"]:
            rows.append(_row(f"{NAMES[name]} peak memory, cdnn_runtime only < {goal:g} MB",
                             mm["cdnn_peak_rss_mb"], goal, below=True))
    if "vgg16_warm" in sub:
        rows.append(_row(f"VGG-16 InferenceSession load (warm cache) < {TARGET_VGG_LOAD_S} s",
                         sub["vgg16_warm"]["load_s"]["median_ms"] / 1e3, TARGET_VGG_LOAD_S,
                         below=True))
    return rows


def markdown(report):
    """latency.md: the machine, latency and ratio tables, FC layers against their bandwidth
    bound, load, start-up and memory, and the targets."""
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
         + (" cdnn_runtime's batch-1 linear layers use the AVX-512 codebook lookup (16 entries "
            "a step, one gather)." if mach.get("cdnn_avx512") else
            " cdnn_runtime's batch-1 linear layers use the AVX2 codebook lookup."
            if mach.get("cdnn_avx2") else
            " cdnn_runtime's batch-1 linear layers use the scalar loop (no AVX2)."
            if mach.get("cdnn_avx2") is not None else ""),
         "",
         _weights_text(report) + " Peers run the same weights dense (decompressed). "
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
            if name in TARGET_B1_ORT_ONLY and b == "1":
                goal = TARGET_B1_ORT_ONLY[name]
                tgt = (f"<= {goal} x onnxruntime fp32: "
                       f"{verdict(r['ort'] <= goal if 'ort' in r else None)}")
            elif name not in TARGET_B1_TORCH:
                tgt = "measured only (targets: the performance issue)"
            elif b == "1":
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
          "instead of the codebook lookup, timed in turn with it (- where the lookup does "
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
        for name in TARGET_COLD_S:
            if name != "vgg16" and f"{name}_cold" in sub:
                c = sub[f"{name}_cold"]
                L.append(f"- {NAMES[name]} cold start, once: process start to first result "
                         f"{c['start_to_result_s']:.2f} s (import {c['import_s']:.2f}, load "
                         f"{c['load_s']:.2f}, first run with compilation "
                         f"{c['first_run_s']:.2f}).")
        if "warmup" in sub:
            w = sub["warmup"]
            aw = sub.get("after_warmup") or {}
            L.append(f"- `cdnn-runtime warmup` into an empty cache, fresh process: "
                     f"{w['wall_s']:.1f} s, {w['compiled']} signatures compiled. Then, each in "
                     "a fresh process on that cache, signatures compiled: " + ", ".join(
                         f"{NAMES[n]} {r['compiled']}" for n, r in aw.items()) + ".")
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
                     f" | {_fmt(mm['torch_peak_rss_mb'], '.0f')} | {_fmt(mm['ratio'], '.2f')} |")
    L += ["", "## Targets", "", "| target | value | |", "|---|---:|---|"]
    for r in report["targets"]:
        L.append(f"| {r['target']} | {num(r['value'])} | {verdict(r['met'])} |")
    met = sum(1 for r in report["targets"] if r["met"])
    known = sum(1 for r in report["targets"] if r["met"] is not None)
    L += ["", f"{met} of {known} targets met."]
    return "\n".join(L) + "\n"


def plot(report, path):
    """Batch-1 latency per model and runtime (log scale, min-max bars); False if nothing to
    draw."""
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


def write(report, out):
    """latency.json, latency.md and (with matplotlib) latency.png into `out`; returns the
    markdown, and whether the plot was drawn."""
    report["targets"] = targets(report)
    md = markdown(report)
    with open(os.path.join(out, "latency.json"), "w") as fh:
        json.dump(report, fh, indent=1, default=_json_default)
    with open(os.path.join(out, "latency.md"), "w") as fh:
        fh.write(md)
    try:
        plotted = plot(report, os.path.join(out, "latency.png"))
    except ImportError as exc:
        print(f"no plot: {exc}", flush=True)
        plotted = False
    return md, plotted
