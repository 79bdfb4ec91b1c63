"""The `cdnn` command line: demo, compress, inspect, run, verify, bench.

Exit codes: 0 success, 1 a failed check or a bad file, 2 bad usage.
`inspect`, `run` and `bench` without `--against` work without torch.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time

import numpy as np

from cdnn_runtime.cli import _positive, add_runtime_commands, describe, dispatch, \
    emit_inspect, load_inspect
from cdnn_runtime.errors import CdnnError


class CdnnUsageError(CdnnError):
    """The command line was given something it cannot use."""


def _shape(text):
    try:
        dims = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"dimensions must be positive, got {text!r}")
    return dims


def _factory(spec):
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise CdnnUsageError(f"--model must look like package.module:factory, got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CdnnUsageError(f"--model {spec}: {exc}") from None
    return obj


def _batches(text):
    try:
        sizes = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes, got {text!r}") \
            from None
    if not sizes or any(b < 1 for b in sizes):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def _count(text):
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {text!r}")
    return v


def _torch(command):
    """torch, or a CdnnUsageError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise CdnnUsageError(f"`cdnn {command}` needs PyTorch: pip install 'cdnn[torch]' "
                             "(the CPU build of torch is enough)") from None
    return torch


def _eval_mode(model):
    try:
        model.eval()
    except NotImplementedError:  # a torch.export module: already in inference form
        pass
    return model


def load_source(src, model_spec=None, seed=0):
    """A torch module from a reference name, a .pt2 export, or a state_dict plus factory."""
    torch = _torch("compress")

    from . import models
    if src in models.MODELS:
        return models.seeded(models.MODELS[src], seed), src
    if not os.path.exists(src):
        raise CdnnUsageError(f"{src}: no such file, and not a reference model "
                             f"({', '.join(models.MODELS)})")
    if src.endswith(".pt2"):
        return torch.export.load(src).module(), os.path.basename(src)
    if model_spec is None:
        raise CdnnUsageError(f"{src}: a checkpoint needs --model package.module:factory to "
                             "build the architecture")
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that wants to run code, or not a checkpoint at all
        raise CdnnUsageError(f"{src}: refused to load as a weights-only checkpoint ({exc})") \
            from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = _factory(model_spec)()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CdnnUsageError(f"{src}: checkpoint does not fit {model_spec} (missing "
                             f"{missing[:3]}, unexpected {unexpected[:3]})")
    return model, model_spec


DEFAULT_SHAPES = {"lenet-300-100": [1, 1, 28, 28], "lenet-5": [1, 1, 28, 28],
                  "alexnet": [1, 3, 224, 224], "vgg16": [1, 3, 224, 224]}

SOURCE_HELP = "lenet-300-100 | lenet-5 | alexnet | vgg16 | FILE.pt2 | FILE.pt (with --model)"


# ---- compress ------------------------------------------------------------------------------

def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns(stream):
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class Progress:
    """Per-stage, per-layer progress of `compress` on stderr.

    A tqdm bar per stage when stderr is a terminal and tqdm is installed, plain lines
    otherwise (one per layer and stage, with the elapsed time), nothing when quiet. Called as
    `compress(..., progress=Progress(...))`; `stage(name)` marks a stage without layers.
    """

    def __init__(self, total=None, *, quiet=False, stream=None, use_tqdm=None):
        self.stream = stream or sys.stderr
        self.total = total or None
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.key = None
        self.count = 0
        self.bar = None
        self.tqdm = None
        if use_tqdm is None:
            use_tqdm = _isatty(self.stream) and _columns(self.stream) >= 40
        if not quiet and use_tqdm:
            try:
                from tqdm import tqdm
                self.tqdm = tqdm
            except ImportError:
                pass

    def _line(self, text):
        if not self.quiet:
            print(f"  [{time.perf_counter() - self.t0:6.1f} s] {text}", file=self.stream,
                  flush=True)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def stage(self, name):
        self._close()
        self.key = None
        self._line(name)

    def __call__(self, stage, layer, step=0):
        if self.quiet:
            return
        key = (stage, step)
        label = stage + (f" (step {step + 1})" if step else "")
        if key != self.key:
            self._close()
            self.key, self.count = key, 0
            if self.tqdm is not None:
                self.bar = self.tqdm(total=self.total, desc=f"  {label}", unit="layer",
                                     file=self.stream, leave=True, dynamic_ncols=True)
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(layer, refresh=False)
            self.bar.update(1)
        else:
            of = f"/{self.total}" if self.total else ""
            self._line(f"{label:<6} {self.count}{of} {layer}")
        if self.total and self.count == self.total and stage == "share":
            self.stage("encode")

    def close(self):
        self._close()


def _count_layers(model):
    """Linear and conv2d weights of a torch model, as compress will find them (by shape)."""
    return sum(1 for name, p in model.named_parameters()
               if name.rpartition(".")[2] == "weight" and p.dim() in (2, 4))


def cmd_compress(args):
    if os.path.exists(args.output) and not args.force:
        print(f"error: {args.output} exists; pass --force to replace it", file=sys.stderr)
        return 2
    torch = _torch("compress")
    from .compress import compress
    model, name = load_source(args.src, args.model, args.seed)
    shape = args.input_shape or DEFAULT_SHAPES.get(args.src)
    if shape is None:
        print("error: --input-shape is needed (for example --input-shape 1,3,224,224)",
              file=sys.stderr)
        return 2
    example = torch.randn(*([max(2, shape[0])] + shape[1:]),
                          generator=torch.Generator().manual_seed(0))
    progress = Progress(_count_layers(model), quiet=args.quiet)
    progress.stage(f"capture {name} with torch.export, fold BatchNorm")
    t0 = time.perf_counter()
    try:
        packed = compress(model, example, args.recipe, preset=args.preset, seed=args.seed,
                          model_name=name if args.src in DEFAULT_SHAPES else None,
                          progress=progress)
    finally:
        progress.close()
    packed.save(args.output, overwrite=True)
    if not args.quiet:
        print(packed.format_report(), end="")
        print(f"wrote {args.output} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_demo(args):
    _torch("demo")
    from .demo import run_demo
    return run_demo(full=args.full, out=args.output)


# ---- inspect --plot ------------------------------------------------------------------------

def cmd_inspect(args):
    plot = getattr(args, "plot", None)
    if plot and importlib.util.find_spec("matplotlib") is None:
        from .plots import PLOT_EXTRA
        print(f"error: --plot needs matplotlib: {PLOT_EXTRA}", file=sys.stderr)
        return 1
    f, rep = load_inspect(args.file, entropy=not args.no_entropy)
    emit_inspect(rep, args)
    if plot:
        from .plots import save_inspect_figure
        save_inspect_figure(f, rep, plot)
        print(f"wrote {plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


# ---- verify --------------------------------------------------------------------------------

def _model_inputs(specs, args):
    """float32 arrays, one per graph input: from --inputs, or seeded random normal."""
    if args.inputs:
        if len(args.inputs) != len(specs):
            raise CdnnUsageError(f"--inputs gives {len(args.inputs)} arrays; the model takes "
                                 f"{len(specs)} ({', '.join(s.name for s in specs)})")
        arrays = []
        for path in args.inputs:
            try:
                a = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise CdnnUsageError(f"{path}: cannot read as a .npy array ({exc}); save one "
                                     "with numpy.save") from None
            arrays.append(np.ascontiguousarray(a, dtype=np.float32))
        return arrays, "from " + ", ".join(map(str, args.inputs))
    if args.input_shape is not None and len(specs) != 1:
        raise CdnnUsageError(f"--input-shape describes one input; the model takes "
                             f"{len(specs)}: pass one .npy per input with --inputs")
    rng = np.random.default_rng(args.input_seed)
    arrays = []
    for spec in specs:
        rest = args.input_shape[1:] if args.input_shape else spec.shape[1:]
        batch = spec.shape[0] if spec.shape[0] is not None else args.batch
        arrays.append(rng.standard_normal([batch] + list(rest)).astype(np.float32))
    return arrays, f"random normal, seed {args.input_seed}"


def _as_arrays(out):
    """A torch model's output (tensor, tuple, list or dict of them) as numpy arrays."""
    import torch
    if isinstance(out, torch.Tensor):
        return [out.detach().float().cpu().numpy()]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in _as_arrays(o)]
    raise CdnnUsageError(f"the model returned a {type(out).__name__}, not tensors")


def _compare(got, ref):
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    top1 = None
    if got.ndim >= 2 and got.shape[0] and int(np.prod(got.shape[1:])) > 1:
        n = got.shape[0]
        agree = int((got.reshape(n, -1).argmax(1) == ref.reshape(n, -1).argmax(1)).sum())
        top1 = {"agree": agree, "of": n, "fraction": agree / n}
    return {"max_abs": float(diff.max()) if diff.size else 0.0,
            "mean_abs": float(diff.mean()) if diff.size else 0.0,
            "max_ref": float(np.abs(ref).max()) if ref.size else 0.0, "top1": top1}


def decompressed_reference(model, f, example_inputs):
    """A copy of `model` computing what file `f` holds: BatchNorm folded as at compression
    (when the file's graph has fewer batch_norm nodes than the model has BatchNorm layers),
    then every sparse_codebook weight of the file written over the parameter of that name,
    and every raw float32 tensor of the file whose name and shape match a parameter (biases,
    retrained along with the weights). Returns (model, folded, names).
    """
    torch = _torch("verify")
    from torch import nn

    from .capture import prepare_for_capture
    from .compress import fold_batchnorm
    work = prepare_for_capture(model)
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in work.modules())
    in_graph = sum(n["op"] == "batch_norm" for n in f.graph["nodes"])
    folded = fold_batchnorm(work, tuple(example_inputs)) if n_bn > in_graph else 0
    params = dict(work.named_parameters())
    replaced = []
    with torch.no_grad():
        for t in f.tensors:
            if t.encoding != "sparse_codebook":
                p = params.get(t.name)
                if p is not None and t.dtype == "float32" and tuple(p.shape) == tuple(t.shape):
                    p.copy_(torch.from_numpy(f.raw(t.name)).to(p.dtype))
                    replaced.append(t.name)
                continue
            p = params.get(t.name)
            if p is None:
                raise CdnnUsageError(
                    f"the file's weight {t.name!r} is no parameter of the model given with "
                    f"--against (parameters: {', '.join(list(params)[:6])}, ...): is it the "
                    "model this file was compressed from?")
            if tuple(p.shape) != tuple(t.shape):
                raise CdnnUsageError(
                    f"the file's weight {t.name!r} has shape {list(t.shape)}, the model's "
                    f"{list(p.shape)}: is --against the model this file was compressed from?")
            p.copy_(torch.from_numpy(f.sparse(t.name).to_dense()).to(p.dtype))
            replaced.append(t.name)
    return work, folded, replaced


def _fmt_top1(t):
    return "-" if t is None else f"{t['agree']}/{t['of']} ({t['fraction']:.1%})"


def cmd_verify(args):
    torch = _torch("verify")
    from cdnn_runtime.session import InferenceSession

    from cdnn_runtime.reader import read

    from .compress import weights_sha256
    with open(args.file, "rb") as fh:
        data = fh.read()
    f = read(data)
    sess = InferenceSession(data)
    specs = sess.get_inputs()
    inputs, where = _model_inputs(specs, args)
    feed = {s.name: x for s, x in zip(specs, inputs)}
    got = sess.run(None, feed)
    model, name = load_source(args.against, args.model, args.seed)
    _eval_mode(model)
    example = tuple(torch.from_numpy(x) for x in inputs)
    reference, folded, replaced = decompressed_reference(model, f, example)
    with torch.no_grad():
        ref = _as_arrays(reference(*example))
        dense = _as_arrays(model(*example))
    if len(ref) != len(got):
        raise CdnnUsageError(f"the model gives {len(ref)} outputs, the file's graph {len(got)}:"
                             " is --against the model this file was compressed from?")
    sha = f.metadata.get("source_sha256")
    sha_match = None if sha is None else sha == weights_sha256(model)
    outputs = []
    ok = True
    for o, g, r, d in zip(sess.get_outputs(), got, ref, dense):
        if g.shape != r.shape:
            raise CdnnUsageError(f"output {o.name!r}: the runtime gives shape {list(g.shape)}, "
                                 f"the model {list(r.shape)}: is --against the model this file "
                                 "was compressed from?")
        vs_ref, vs_dense = _compare(g, r), _compare(g, d)
        allowed = args.tolerance * vs_ref["max_ref"]
        passed = vs_ref["max_abs"] <= allowed
        ok &= passed
        outputs.append({"name": o.name, "shape": list(g.shape), "vs_reference": vs_ref,
                        "vs_dense": vs_dense, "allowed": allowed, "ok": passed})
    result = {"file": str(args.file), "against": name, "seed": args.seed,
              "inputs": {"source": where, "shapes": [list(x.shape) for x in inputs]},
              "tolerance": args.tolerance, "batchnorm_folded": folded,
              "weights_replaced": replaced, "source_sha256_match": sha_match,
              "outputs": outputs, "ok": ok and sha_match is not False}
    if args.json:
        json.dump(result, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        _print_verify(result)
    if ok and sha_match is False:
        print("error: the file was compressed from other source weights than --against gives "
              "(metadata source_sha256 differs): check the source, --seed and --model",
              file=sys.stderr)
        print("FAIL: source weights differ")
        return 1
    if not ok:
        hint = ("the file records other source weights (metadata source_sha256): check the "
                "source, --seed and --model" if sha_match is False else
                "the file's source matches, so this looks like a runtime bug: please report "
                "it with the file and this output")
        print(f"error: the runtime does not match the decompressed reference; {hint}",
              file=sys.stderr)
        return 1
    return 0


def _print_verify(res):
    print(f"verify {res['file']} against {res['against']} (seed {res['seed']})")
    shapes = ", ".join(str(s) for s in res["inputs"]["shapes"])
    print(f"inputs: {shapes}, {res['inputs']['source']}")
    print(f"decompressed reference: the source model with the file's "
          f"{len(res['weights_replaced'])} decoded weights; BatchNorm layers folded: "
          f"{res['batchnorm_folded']}")
    sha = res["source_sha256_match"]
    print("source weights: " + ("match the file's source_sha256" if sha else
                                "differ from the file's source_sha256" if sha is False else
                                "the file records no source_sha256"))
    for o in res["outputs"]:
        print(f"\noutput {o['name']} {o['shape']}")
        rows = [["", "max |diff|", "mean |diff|", "top-1 agreement", "max |ref|"]]
        for label, key in (("vs decompressed reference", "vs_reference"),
                           ("vs dense original", "vs_dense")):
            c = o[key]
            rows.append([label, f"{c['max_abs']:.3g}", f"{c['mean_abs']:.3g}",
                         _fmt_top1(c["top1"]), f"{c['max_ref']:.4g}"])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  " + "  ".join(f"{c:{'<' if i == 0 else '>'}{w}}"
                                   for i, (c, w) in enumerate(zip(r, widths))))
    for o in res["outputs"]:
        c = o["vs_reference"]
        verdict = "OK" if o["ok"] else "FAIL"
        rel = "<=" if o["ok"] else ">"
        print(f"{verdict}: {o['name']}: max |diff| {c['max_abs']:.3g} {rel} "
              f"{res['tolerance']:g} x max |ref| = {o['allowed']:.3g}")


# ---- bench ---------------------------------------------------------------------------------

def _maxrss_bytes():
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _stats(times_s, batch):
    t = np.asarray(times_s) * 1e3
    med = float(np.median(t))
    return {"median_ms": med, "min_ms": float(t.min()), "max_ms": float(t.max()),
            "samples_per_s": batch / med * 1e3 if med > 0 else float("inf")}


def cmd_bench(args):
    import numba

    from cdnn_runtime.session import InferenceSession
    rss = {"start": _maxrss_bytes()}
    t0 = time.perf_counter()
    sess = InferenceSession(args.file, num_threads=args.threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    rss["after_load"] = _maxrss_bytes()
    specs = sess.get_inputs()
    fixed = {s.shape[0] for s in specs if s.shape[0] is not None}
    batches = args.batch
    note = None
    if fixed:
        batches = sorted(fixed)[:1]
        if args.batch != batches:
            note = f"the model's batch size is fixed at {batches[0]}; --batch ignored"
    rng = np.random.default_rng(0)
    feeds = {b: {s.name: rng.standard_normal([b] + list(s.shape[1:])).astype(np.float32)
                 for s in specs} for b in batches}
    for b in batches:
        for _ in range(args.warmup):
            sess.run(None, feeds[b])
    rss["after_cdnn_warmup"] = _maxrss_bytes()
    torch_fn = None
    torch_threads = None
    restore = None
    name = None
    if args.against:
        torch = _torch("bench --against")
        model, name = load_source(args.against, args.model, args.seed)
        _eval_mode(model)
        if args.threads:
            restore = torch.get_num_threads()
            torch.set_num_threads(args.threads)
        torch_threads = torch.get_num_threads()
        tensors = {b: [torch.from_numpy(feeds[b][s.name]) for s in specs] for b in batches}

        def torch_fn(b):
            with torch.inference_mode():
                model(*tensors[b])
    try:
        if torch_fn is not None:
            for b in batches:
                for _ in range(args.warmup):
                    torch_fn(b)
        results = []
        for b in batches:
            times = {"cdnn": [], "torch": []}
            engines = [("cdnn", lambda b=b: sess.run(None, feeds[b]))]
            if torch_fn is not None:
                engines.append(("torch", lambda b=b: torch_fn(b)))
            for r in range(args.repeats):
                for key, fn in (engines if r % 2 == 0 else engines[::-1]):
                    t = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - t)
            results.append({"batch": b, "cdnn_runtime": _stats(times["cdnn"], b),
                            "torch_dense": _stats(times["torch"], b) if times["torch"]
                            else None})
    finally:
        if restore is not None:
            torch.set_num_threads(restore)
    rss["end"] = _maxrss_bytes()
    res = {"file": str(args.file), "file_bytes": os.path.getsize(args.file),
           "against": name, "load_ms": load_ms, "repeats": args.repeats, "warmup": args.warmup,
           "threads": {"cdnn_runtime": sess.num_threads or numba.config.NUMBA_NUM_THREADS,
                       "torch": torch_threads},
           "peak_rss_bytes": rss, "note": note, "results": results}
    if args.json:
        json.dump(res, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        _print_bench(res)
    return 0


def _print_bench(res):
    th = res["threads"]
    print(f"bench {res['file']} ({res['file_bytes']:,} bytes)"
          + (f" against {res['against']} (PyTorch dense)" if res["against"] else ""))
    print(f"load (InferenceSession): {res['load_ms']:.1f} ms; threads: cdnn_runtime "
          f"{th['cdnn_runtime']}" + (f", torch {th['torch']}" if th["torch"] else "")
          + f"; {res['repeats']} repeats after {res['warmup']} warm-up "
            f"run{'s' if res['warmup'] != 1 else ''}"
          + (", the two engines alternating" if res["against"] else ""))
    if res["note"]:
        print(f"note: {res['note']}")
    rows = [["batch", "engine", "median ms", "min ms", "max ms", "samples/s", "speed-up"]]
    for r in res["results"]:
        c, t = r["cdnn_runtime"], r["torch_dense"]
        for label, s in (("cdnn_runtime", c), ("torch dense", t)):
            if s is None:
                continue
            speed = f"{t['median_ms'] / c['median_ms']:.2f}x" if t and s is c else ""
            rows.append([str(r["batch"]), label, f"{s['median_ms']:.3f}", f"{s['min_ms']:.3f}",
                         f"{s['max_ms']:.3f}", f"{s['samples_per_s']:,.0f}", speed])
    if not res["against"]:
        rows = [r[:-1] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(f"{c:{'<' if i == 1 else '>'}{w}}"
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    if res["against"]:
        print("(speed-up: torch median / cdnn_runtime median)")
    rss = res["peak_rss_bytes"]
    if rss["end"] is not None:
        mib = lambda v: f"{v / 2**20:.1f} MiB"  # noqa: E731
        print(f"peak memory (ru_maxrss): {mib(rss['after_cdnn_warmup'])} after loading and "
              f"warming up cdnn_runtime" + (f"; {mib(rss['end'])} at the end, with torch and "
                                           "the dense model loaded" if res["against"] else ""))


# ---- the parser ----------------------------------------------------------------------------

def _add_source_args(p, required):
    p.add_argument("--against", required=required, metavar="SRC",
                   help=f"the source model: {SOURCE_HELP}")
    p.add_argument("--model", help="package.module:factory building the architecture "
                                   "(for a state_dict checkpoint)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of a reference model's weights, as given to `cdnn compress`")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cdnn", description="Compress PyTorch models into .cdnn files and run them.",
        epilog="examples:\n  cdnn compress lenet-5 -o lenet5.cdnn\n"
               "  cdnn inspect lenet5.cdnn\n  cdnn verify lenet5.cdnn --against lenet-5\n"
               "  cdnn bench lenet5.cdnn --against lenet-5\n"
               "Exit codes: 0 success, 1 a failed check or a bad file, 2 bad usage.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="compress a small model, run it, print a table",
                       description=describe(
                           "Compress the bundled LeNet-5 (trained on Fashion-MNIST), run it "
                           "with cdnn_runtime, and compare size, accuracy and latency with "
                           "PyTorch.", "cdnn demo"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="use the whole Fashion-MNIST test set")
    p.add_argument("-o", "--output", default="demo.cdnn", help="where to write the file")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "compress", help="compress a model into a .cdnn file",
        description=describe(
            "Compress a model (a reference name, a .pt2 export, or a state_dict checkpoint "
            "plus --model) into a .cdnn file. Progress goes to stderr: tqdm bars on a terminal "
            "when tqdm is installed, plain lines otherwise.",
            "cdnn compress lenet-5 -o lenet5.cdnn",
            "cdnn compress ckpt.pt --model mypkg.nets:make_net --input-shape 1,3,32,32 "
            "-o net.cdnn"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help=SOURCE_HELP)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--model", help="package.module:factory building the architecture")
    p.add_argument("--input-shape", type=_shape, help="e.g. 1,3,224,224 (batch first)")
    p.add_argument("--preset", default="deep-compression",
                   choices=["deep-compression", "lossless-ish"])
    p.add_argument("--recipe", help="JSON (or YAML) recipe file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress and no report")
    p.set_defaults(func=cmd_compress)
    runtime = add_runtime_commands(sub)
    p = runtime["inspect"]
    p.description += "\n  cdnn inspect model.cdnn --plot model.png   (needs matplotlib)"
    p.add_argument("--plot", metavar="PNG",
                   help="also draw weight histograms with their centroids and where the "
                        "bytes go, into this image (pip install 'cdnn[plot]')")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser(
        "verify", help="check that the runtime computes what the source model computes",
        description=describe(
            "Run FILE with cdnn_runtime and compare its outputs with (a) the decompressed "
            "reference: the source model with its linear and conv weights replaced by the "
            "file's decoded ones (BatchNorm folded as at compression), and (b) the original "
            "dense model: max and mean absolute difference, top-1 agreement. Exit 0 when the "
            "runtime matches (a) within --tolerance x max |reference|, 1 otherwise.",
            "cdnn verify lenet5.cdnn --against lenet-5",
            "cdnn verify net.cdnn --against ckpt.pt --model mypkg.nets:make_net --inputs x.npy"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    _add_source_args(p, required=True)
    p.add_argument("--inputs", nargs="+", metavar="NPY",
                   help="input arrays (.npy, batch first), one per model input; default: "
                        "random normal")
    p.add_argument("--input-shape", type=_shape,
                   help="shape of the random input, batch first; the batch dim is taken from "
                        "--batch (default: the file's input shape)")
    p.add_argument("--batch", type=_positive, default=8,
                   help="batch of random inputs (default 8; a fixed batch in the file wins)")
    p.add_argument("--input-seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="allowed max |runtime - reference| relative to max |reference| "
                        "(default 1e-4)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser(
        "bench", help="latency, throughput, load time and memory of the runtime",
        description=describe(
            "Time cdnn_runtime on FILE, and PyTorch on the dense source model with --against, "
            "the two alternating run by run: median, min and max latency and throughput per "
            "batch size, session load time, peak memory (ru_maxrss).",
            "cdnn bench lenet5.cdnn",
            "cdnn bench lenet5.cdnn --against lenet-5 --batch 1,32 --threads 1"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    _add_source_args(p, required=False)
    p.add_argument("--batch", type=_batches, default=[1, 32],
                   help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--threads", type=_positive, default=None,
                   help="threads for both engines (default: each engine's own default)")
    p.add_argument("--repeats", type=_positive, default=50, help="timed runs per batch size")
    p.add_argument("--warmup", type=_count, default=5, help="untimed runs first (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
