"""Latency of cdnn_runtime against dense peers, FC layers against the memory-bandwidth bound,
load time, start-up time and peak memory.

The four reference networks (LeNet-300-100, LeNet-5, AlexNet, VGG-16) get seeded random weights
pruned to Deep Compression's per-layer densities and shared with its codebooks (conv 8 bits,
fc 5 bits: the `deep-compression` preset, built as benchmarks/bench_runtime.py builds them), are
saved as .cdnn and run by cdnn_runtime.InferenceSession; so are ResNet-50 and MobileNetV2 from
cdnn.zoo, and `gpt`: the GPT-2-shaped decoder cdnn.zoo_sequence.gpt, 4 layers
of width 256, on 128 int64 token ids, seeded random weights at the per-layer density and bits
of benchmarks/results/chargpt.cdnn, or at 30% and 4 bits without that file; its FC-bound and
fresh-process parts are skipped). In the same run, on the same weights
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

usage: python benchmarks/bench_latency.py [--models lenet-300-100,lenet-5,alexnet,vgg16,
       resnet50,mobilenet_v2,gpt]
       [--repeats 50] [--quick] [--deepsparse-python /tmp/ds-venv/bin/python]
       [--no-subprocess] [--batches 1,32] [--threads 2]
"""

import argparse
import gc
import os
import platform
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass

import _peers
from _common import (
    LATENCY_MODELS,
    RESULTS,
    SEQUENCE,
    SHAPES,
    build,
    example_input,
    gpt_recipe,
    log,
    stats,
)
from _fc_bound import call_overhead, fc_layers
from _fresh_process import subprocess_part
from _latency_report import LABEL, NAMES, cell, write
from _machine import (
    cpu_model,
    cpu_snapshot,
    llc_bytes,
    loadavg,
    measure_bandwidth,
    others_cores,
    sum_kernel,
    versions,
)
from _rounds import REWARM_BELOW_S, compare, round_robin, warm_up


@dataclass
class Plan:
    """What the command line asked for, and the peers that cannot run here (with why)."""

    threads: int
    quick: bool
    max_rounds: int
    deepsparse_python: str | None
    ort_why: str | None = None
    ds_why: str | None = None

    def rounds(self, batch, round_s):
        """Rounds for one model and batch: as many as fit in the time budget (seconds of timed
        rounds: 20 at batch 1, 60 above; 3 and 5 with --quick), within the bounds."""
        if batch == 1:
            budget = 3.0 if self.quick else 20.0
        else:
            budget = 5.0 if self.quick else 60.0
        min_rounds = min(self.max_rounds, 1 if self.quick else 3)
        return int(min(self.max_rounds, max(min_rounds, budget // max(round_s, 1e-9))))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(LATENCY_MODELS),
                    help="comma list of " + ", ".join(SHAPES) + " (default: the first four)")
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
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        if n not in SHAPES:
            ap.error(f"unknown model {n!r}; known: {', '.join(SHAPES)}")
    return args, names


def set_threads(threads):
    """The same thread count for every runtime: torch intra-op (inter-op 1) and numba."""
    import numba
    import torch
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def machine_part(report, plan):
    """Read bandwidth, threading layer, AVX2/AVX-512 lookup, the fixed cost of a layer call."""
    import numba

    from cdnn_runtime.kernels._simd import AVX2, AVX512
    threads = plan.threads
    log(f"read bandwidth: numba parallel sum over 512 MB, 1 and {threads} threads ...")
    report["bandwidth"] = measure_bandwidth(sum_kernel(), threads,
                                            passes=3 if plan.quick else 7)
    b = report["bandwidth"]
    log(f"  1 thread {b['1']['best_gbs']:.1f} GB/s, {threads} threads "
        f"{b[str(threads)]['best_gbs']:.1f} GB/s (best pass)")
    report["machine"]["numba_threading_layer"] = numba.threading_layer()
    report["machine"]["cdnn_avx2"] = AVX2
    report["machine"]["cdnn_avx512"] = AVX512
    report["call_overhead_us"] = call_overhead(1000)


def in_process_peers(name, sess, ref, plan, work, entry, skipped):
    """cdnn_runtime, then each dense peer that can be built here; the ONNX file (or None)."""
    made = [_peers.Peer("cdnn", "cdnn_runtime", sess)]
    for key, mk in (("torch", lambda: _peers.make_torch_eager(ref)),
                    ("torch_int8", lambda: _peers.make_torch_int8(ref))):
        p, why = mk()
        if p:
            made.append(p)
        else:
            skipped.setdefault(key, why)
            log(f"  {LABEL[key]} skipped: {why}")
    onnx_path = None
    if not plan.ort_why or not plan.ds_why:
        t = time.perf_counter()
        seq = name in SEQUENCE
        onnx_path, why = _peers.export_onnx(
            ref, SHAPES[name], os.path.join(work, name + ".onnx"),
            dtype="int64" if seq else "float32",
            opset=_peers.ONNX_OPSET_ATTENTION if seq else _peers.ONNX_OPSET)
        entry["peers"]["onnx_export_s"] = time.perf_counter() - t
        if why:
            log(f"  ONNX export failed: {why}")
            entry["peers"]["onnx_export_error"] = why
    if not plan.ort_why:
        for key, mk in (("ort", lambda: _peers.make_ort_fp32(onnx_path, plan.threads)),
                        ("ort_int8", lambda: _peers.make_ort_int8(onnx_path, work,
                                                                  plan.threads))):
            t = time.perf_counter()
            p, why = mk()
            if p:
                made.append(p)
                entry["peers"][key] = {**p.info, "setup_s": time.perf_counter() - t}
            else:
                entry["peers"][key] = {"error": why}
                log(f"  {LABEL[key]} skipped: {why}")
    return made, onnx_path


def time_batch(made, onnx_path, x, plan, work, entry):
    """One model at one batch size: DeepSparse compiled for it (if asked for), outputs checked
    against PyTorch eager, then interleaved rounds of every runtime."""
    batch = x.shape[0]
    peers = list(made)
    ds = None
    if not plan.ds_why:
        log(f"  batch {batch}: compiling DeepSparse ...")
        ds, why = _peers.make_deepsparse(plan.deepsparse_python, onnx_path, x, plan.threads,
                                         work)
        if ds:
            peers.append(ds)
            entry["peers"].setdefault("deepsparse", {})[str(batch)] = ds.info
        else:
            log(f"  DeepSparse skipped: {why}")
            entry["peers"].setdefault("deepsparse", {})[str(batch)] = {"error": why}
    ref_out = made[1].output(x) if made[1].key == "torch" else None
    check = {}
    for p in peers:
        if ref_out is not None and p.key != "torch":
            check[p.key] = compare(ref_out, p.output(x))
    est = {}
    for p in peers:
        est[p.key] = warm_up(p, x, plan.quick)
    round_s = sum(v * (2 if v < REWARM_BELOW_S else 1) + 0.03 for v in est.values())
    rounds = plan.rounds(batch, round_s)
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
    log(f"  batch {batch}: " + "; ".join(
        f"{LABEL[k]} {cell(s)}" + (f" [x{ratios[k]:.2f}]" if k in ratios else "")
        for k, s in runtimes.items()))
    return {"rounds": rounds, "runtimes": runtimes, "ratios": ratios,
            "check": check, "loadavg_before": load, "others_cores": others,
            "settle_ms": stats(waited) if waited else None,
            "samples_ms": {k: [t * 1e3 for t in v] for k, v in samples.items()}}


def time_model(name, batches, plan, report, work):
    """Compress one reference net, time it against its peers at each batch size and its FC
    layers against the bandwidth bound; returns (its report entry, (.cdnn, state dict))."""
    import torch

    from cdnn_runtime import InferenceSession
    log(f"== {NAMES[name]}: compressing ...")
    _, packed, compress_s = build(name)
    path = os.path.join(work, name + ".cdnn")
    packed.save(path)
    ref = packed.reference_model().eval()
    pt = os.path.join(work, name + ".pt")
    torch.save(ref.state_dict(), pt)
    entry = {"file_bytes": packed.nbytes, "dense_bytes": packed.dense_bytes,
             "ratio": packed.ratio, "compress_s": compress_s, "peers": {}, "latency": {}}
    if name in SEQUENCE:
        entry["weights"] = "seeded random weights (cdnn.zoo_sequence.gpt, seed 0) at " + \
            gpt_recipe()[1] + ", no retraining"
    del packed
    gc.collect()
    sess = InferenceSession(path, num_threads=plan.threads)
    made, onnx_path = in_process_peers(name, sess, ref, plan, work, entry, report["skipped"])
    log(f"  {entry['file_bytes']:,} B .cdnn ({entry['ratio']:.1f}x), compress "
        f"{compress_s:.1f} s; runtimes: {', '.join(p.label for p in made)}")
    with torch.inference_mode():
        for batch in batches:
            x = example_input(name, batch)
            entry["latency"][str(batch)] = time_batch(made, onnx_path, x, plan, work, entry)
    if 1 in batches and name not in SEQUENCE:  # a sequence model's layers see 128 rows
        log("  FC layers at batch 1 ...")
        entry["fc_layers"] = fc_layers(path, report["bandwidth"], plan.threads, llc_bytes(),
                                       report["call_overhead_us"]["serial_us"],
                                       reps_hot=50 if plan.quick else 300,
                                       reps_cold=10 if plan.quick else 60)
        for r in entry["fc_layers"]:
            log(f"    {r['layer']:14s} {r['shape'][0]}x{r['shape'][1]} "
                f"{r['bytes']['total']:>11,} B  bound {r['bound_us']:8.1f} us  "
                f"measured {r['cold_us']['median_us']:8.1f} us (hot "
                f"{r['hot_us']['median_us']:.1f})  ratio {r['ratio']:.2f}")
    for p in made:
        p.close()
    del made, sess, ref
    for f in os.listdir(work):
        if f.endswith(".onnx"):
            os.unlink(os.path.join(work, f))
    gc.collect()
    return entry, (path, pt)


def main(argv=None):
    args, names = parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    plan = Plan(threads=args.threads, quick=args.quick,
                max_rounds=args.repeats or (5 if args.quick else 50),
                deepsparse_python=args.deepsparse_python)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*quantiz.*")
    set_threads(plan.threads)

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="cdnn-latency-")
    report = {"quick": plan.quick, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "args": vars(args),
              "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                          "threads": plan.threads, "platform": platform.platform(),
                          "llc_mb": llc_bytes() / 2 ** 20, "loadavg_start": loadavg(),
                          "versions": versions()},
              "skipped": {}, "models": {}}
    plan.ds_why, ds_version = _peers.check_deepsparse(args.deepsparse_python)
    if plan.ds_why:
        report["skipped"]["deepsparse"] = plan.ds_why
        log(f"DeepSparse skipped: {plan.ds_why}")
    else:
        report["machine"]["deepsparse"] = ds_version
    plan.ort_why = _peers.ort_missing()
    if plan.ort_why:
        for k in ("ort", "ort_int8"):
            report["skipped"][k] = plan.ort_why
        log(f"onnxruntime peers skipped: {plan.ort_why}")

    t_run = time.perf_counter()
    run_snap = cpu_snapshot()
    try:
        machine_part(report, plan)
        files = {}
        for name in names:
            report["models"][name], files[name] = time_model(name, batches, plan, report, work)
        files = {n: f for n, f in files.items() if n not in SEQUENCE}  # children: float input
        if args.no_subprocess:
            report["subprocess_skipped"] = "Skipped (--no-subprocess)."
        elif not files:
            report["subprocess_skipped"] = "Skipped (a sequence model only)."
        else:
            n_load = 2 if plan.quick else 5
            try:  # a failure here must not lose the in-process figures above
                report["subprocess"] = subprocess_part(files, plan.threads, n_load, work)
            except Exception as exc:  # noqa: BLE001 (reported, the rest is written)
                report["subprocess_skipped"] = f"Failed: {type(exc).__name__}: {exc}"
                log(f"subprocess part failed: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["run_s"] = time.perf_counter() - t_run
    report["machine"]["others_cores_run"] = others_cores(run_snap, cpu_snapshot())
    report["machine"]["loadavg_end"] = loadavg()
    md, _ = write(report, args.out)
    print()
    print(md)
    log(f"total {report['run_s']:.0f} s; wrote {os.path.join(args.out, 'latency.*')}")


if __name__ == "__main__":
    main()
