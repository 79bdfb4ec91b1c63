"""The `cdnn` command line: demo, compress, dataset, inspect, run, verify, bench.

Exit codes: 0 success, 1 a failed check or a bad file, 2 bad usage.
`inspect`, `run` and `bench` without `--against` work without torch. The work is done by
library modules (sources, progress, verify, bench); this file parses and prints.
"""

import argparse
import importlib.util
import os
import sys
import time

from cdnn_runtime._argparse import add_command, positive, print_json
from cdnn_runtime.cli import add_runtime_commands, dispatch, emit_inspect
from cdnn_runtime.errors import CdnnUsageError
from cdnn_runtime.report import load_inspect

from .progress import Progress, count_layers
from .sources import DEFAULT_SHAPES, SOURCE_HELP, load_npy, load_source, require_torch


def _int_list(text, what):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") \
            from None
    return values


def _shape(text):
    dims = _int_list(text, "integers")
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"dimensions must be positive, got {text!r}")
    return dims


def _free_dim(text):
    """--free-dim [INPUT:]DIM:NAME[:MAX] as (input name or index, dim, name, max or None)."""
    parts = text.split(":")
    if parts and not parts[0].lstrip("-").isdigit():
        key, parts = parts[0], parts[1:]
    else:
        key = 0
    try:
        if len(parts) not in (2, 3) or not parts[1]:
            raise ValueError
        dim, name = int(parts[0]), parts[1]
        top = int(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected [INPUT:]DIM:NAME[:MAX] (e.g. ids:1:seq:512), "
                                         f"got {text!r}") from None
    return key, dim, name, top


def _batches(text):
    sizes = _int_list(text, "batch sizes")
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


def load_examples(paths):
    """The example inputs of `cdnn compress --example`: .npy files as tensors (floats as
    float32, integers as int64 ids)."""
    import numpy as np
    import torch
    tensors = []
    for path in paths:
        a = load_npy(path)
        dtype = np.int64 if a.dtype.kind in "iu" else np.float32
        tensors.append(torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)))
    return tuple(tensors)


def cmd_compress(args):
    if os.path.exists(args.output) and not args.force:
        print(f"error: {args.output} exists; pass --force to replace it", file=sys.stderr)
        return 2
    torch = require_torch("compress")
    from .compress import compress
    model, name = load_source(args.src, args.model, args.seed)
    if args.train_data or args.val_data or args.data_hook:
        return compress_to_budget_command(args, model, name)
    if args.example:
        example = load_examples(args.example)
    else:
        shape = args.input_shape or DEFAULT_SHAPES.get(args.src)
        if shape is None:
            print("error: --input-shape (for example --input-shape 1,3,224,224) or --example "
                  "(.npy files) is needed", file=sys.stderr)
            return 2
        shape = [max(2, shape[0])] + shape[1:]
        example = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) \
            if args.input_dtype == "float32" else torch.zeros(shape, dtype=torch.int64)
    dynamic_dims = {}
    for key, dim, dim_name, top in args.free_dim or ():
        dynamic_dims.setdefault(key, {})[dim] = (dim_name, top)
    progress = Progress(count_layers(model), quiet=args.quiet)
    progress.stage(f"capture {name} with torch.export, fold BatchNorm")
    t0 = time.perf_counter()
    try:
        packed = compress(model, example, args.recipe, preset=args.preset, seed=args.seed,
                          model_name=name if args.src in DEFAULT_SHAPES else None,
                          dynamic_dims=dynamic_dims or None, progress=progress)
    finally:
        progress.close()
    packed.save(args.output, overwrite=True)
    if not args.quiet:
        print(packed.format_report(), end="")
        print(f"wrote {args.output} in {time.perf_counter() - t0:.1f} s")
    return 0


def compress_to_budget_command(args, model, name):
    """`cdnn compress ... --train-data --val-data --max-drop`: the budget search (cdnn.budget)."""
    from .budget import BudgetPlan, compress_to_budget, format_report, write_report_files
    from .budget_data import hook_splits, load_split
    ignored = [flag for flag, value in (("--recipe", args.recipe), ("--example", args.example),
                                        ("--free-dim", args.free_dim))
               if value] + (["--preset"] if args.preset != "deep-compression" else [])
    if ignored:
        raise CdnnUsageError(f"{', '.join(ignored)}: not used when compressing to a budget "
                             "(the search chooses densities and bits)")
    if args.data_hook:
        if args.train_data or args.val_data:
            raise CdnnUsageError("give either --data-hook or --train-data and --val-data")
        train, val = hook_splits(args.data_hook)
    elif not (args.train_data and args.val_data):
        raise CdnnUsageError("compressing to a budget needs both --train-data and --val-data "
                             "(or --data-hook)")
    else:
        train, val = load_split(args.train_data, "train"), load_split(args.val_data, "val")
    plan = BudgetPlan(metric=args.metric, max_drop=args.max_drop, min_score=args.min_score,
                      keep=tuple(args.keep), first_steps=args.prune_steps,
                      retrain_epochs=args.retrain_epochs, fine_tune_epochs=args.fine_tune_epochs,
                      lr=args.lr, batch_size=args.batch_size, distill=args.distill,
                      seed=args.seed, budget_minutes=args.budget_minutes)
    progress = Progress(count_layers(model), quiet=args.quiet)
    t0 = time.perf_counter()
    try:
        res = compress_to_budget(model, train, val, plan, model_name=name,
                                 work_dir=args.work_dir or args.output + ".work",
                                 example_shape=args.input_shape or DEFAULT_SHAPES.get(args.src),
                                 progress=progress)
    finally:
        progress.close()
    from cdnn_runtime.writer import write_atomic
    write_atomic(args.output, res.data)
    stem = os.path.splitext(args.output)[0]
    paths = write_report_files(res.report, stem)
    if not args.quiet:
        print(format_report(res.report), end="")
        print(f"wrote {args.output} ({len(res.data):,} bytes), {', '.join(paths)} in "
              f"{time.perf_counter() - t0:.1f} s")
    return 0


def _fractions(text):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions in (0, 1], got "
                                         f"{text!r}")
    return values


def cmd_dataset(args):
    from .budget_data import export_fashion_mnist
    paths = export_fashion_mnist(args.out, val=args.val, seed=args.seed, root=args.root)
    for split, path in paths.items():
        print(f"wrote {path} ({split})")
    return 0


def cmd_demo(args):
    require_torch("demo")
    from .demo import run_demo
    return run_demo(full=args.full, out=args.output)


def cmd_inspect(args):
    """The runtime's `inspect`, plus --plot (matplotlib; never torch)."""
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


def cmd_verify(args):
    from .verify import format_verify, verify
    res = verify(args.file, args.against, model_spec=args.model, seed=args.seed,
                 inputs=args.inputs, input_shape=args.input_shape, batch=args.batch,
                 input_seed=args.input_seed, tolerance=args.tolerance)
    if args.json:
        print_json(res)
    else:
        print(format_verify(res), end="")
    sha_match = res["source_sha256_match"]
    if sha_match is False and all(o["ok"] for o in res["outputs"]):
        print("error: the file was compressed from other source weights than --against gives "
              "(metadata source_sha256 differs): check the source, --seed and --model",
              file=sys.stderr)
        print("FAIL: source weights differ")
        return 1
    if not res["ok"]:
        hint = ("the file records other source weights (metadata source_sha256): check the "
                "source, --seed and --model" if sha_match is False else
                "the file's source matches, so this looks like a runtime bug: please report "
                "it with the file and this output")
        print(f"error: the runtime does not match the decompressed reference; {hint}",
              file=sys.stderr)
        return 1
    return 0


def cmd_bench(args):
    from .bench import bench, format_bench
    res = bench(args.file, against=args.against, model_spec=args.model, seed=args.seed,
                batches=args.batch, threads=args.threads, repeats=args.repeats,
                warmup=args.warmup)
    if args.json:
        print_json(res)
    else:
        print(format_bench(res), end="")
    return 0


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
    p = add_command(
        sub, "demo", cmd_demo, "compress a small model, run it, print a table",
        "Compress the bundled LeNet-5 (trained on Fashion-MNIST), run it with cdnn_runtime, "
        "and compare size, accuracy and latency with PyTorch.", "cdnn demo")
    p.add_argument("--full", action="store_true", help="use the whole Fashion-MNIST test set")
    p.add_argument("-o", "--output", default="demo.cdnn", help="where to write the file")
    p = add_command(
        sub, "compress", cmd_compress, "compress a model into a .cdnn file",
        "Compress a model (a reference name, a .pt2 export, or a state_dict checkpoint plus "
        "--model) into a .cdnn file. Progress goes to stderr: tqdm bars on a terminal when "
        "tqdm is installed, plain lines otherwise.",
        "cdnn compress lenet-5 -o lenet5.cdnn",
        "cdnn compress ckpt.pt --model mypkg.nets:make_net --input-shape 1,3,32,32 "
        "-o net.cdnn\n"
        "  cdnn compress gpt.pt --model mypkg.nets:make_gpt --example ids.npy "
        "--free-dim ids:1:seq -o gpt.cdnn")
    p.add_argument("src", help=SOURCE_HELP)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--model", help="package.module:factory building the architecture")
    p.add_argument("--input-shape", type=_shape, help="e.g. 1,3,224,224 (batch first)")
    p.add_argument("--input-dtype", choices=["float32", "int64"], default="float32",
                   help="int64: token ids (the example is zeros of --input-shape)")
    p.add_argument("--example", nargs="+", metavar="NPY",
                   help="the example inputs as .npy files, one per model input, in order "
                        "(batch 1 is fine; int64 token ids too); instead of --input-shape")
    p.add_argument("--free-dim", action="append", type=_free_dim,
                   metavar="[INPUT:]DIM:NAME[:MAX]",
                   help="a dim besides the batch left free in the file, e.g. ids:1:seq:512 (a "
                        "sequence length; MAX defaults to the position table's rows); "
                        "repeatable")
    p.add_argument("--preset", default="deep-compression",
                   choices=["deep-compression", "lossless-ish"])
    p.add_argument("--recipe", help="JSON (or YAML) recipe file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress and no report")
    g = p.add_argument_group(
        "compress to an accuracy budget (retrains on your data; docs/compress-your-model.md)")
    g.add_argument("--train-data", metavar="NPZ_OR_DIR",
                   help="training data: an .npz with x and y, or a folder of x*.npy / y*.npy "
                        "shards")
    g.add_argument("--val-data", metavar="NPZ_OR_DIR",
                   help="validation data (same forms): the budget is measured on it")
    g.add_argument("--data-hook", metavar="PKG.MOD:FN",
                   help="instead: FN('train') and FN('val') return (x, y) arrays")
    g.add_argument("--metric", choices=["top1", "mse"], default="top1",
                   help="top1 (class labels, cross-entropy) or mse (targets shaped like outputs)")
    g.add_argument("--max-drop", type=float, default=0.5,
                   help="largest drop from the fair baseline: points of top-1 accuracy, or MSE "
                        "increase (default 0.5)")
    g.add_argument("--min-score", type=float,
                   help="an absolute budget as well: least top-1 percent, or largest MSE")
    g.add_argument("--keep", type=_fractions, default=[0.3, 0.2, 0.14, 0.1, 0.075, 0.055],
                   help="fractions of the weights kept, one search level each "
                        "(default 0.3,0.2,0.14,0.1,0.075,0.055)")
    g.add_argument("--prune-steps", type=positive, default=3,
                   help="pruning steps to the first level (default 3)")
    g.add_argument("--retrain-epochs", type=_count, default=2,
                   help="epochs of retraining per pruning step (default 2)")
    g.add_argument("--fine-tune-epochs", type=_count, default=2,
                   help="epochs of centroid fine-tuning per file (default 2)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam's rate, down a cosine per call")
    g.add_argument("--batch-size", type=positive, default=128)
    g.add_argument("--distill", action="store_true",
                   help="retrain half on the fair baseline's outputs as soft targets")
    g.add_argument("--budget-minutes", type=float,
                   help="start no new search level after this many minutes")
    g.add_argument("--work-dir", help="where each finished stage is kept, to resume an "
                                      "interrupted run (default OUTPUT.work)")
    p = add_command(
        sub, "dataset", cmd_dataset, "write Fashion-MNIST as .npz files with x and y",
        "Write the Fashion-MNIST IDX files as train.npz, val.npz (held out from the training "
        "images, seeded: the split `make paper` uses) and test.npz, each holding x float32 "
        "[N, 1, 28, 28] in [0, 1] and y int64: the data `cdnn compress --train-data` takes.",
        "cdnn dataset fashion-mnist --out data/")
    p.add_argument("name", choices=["fashion-mnist"])
    p.add_argument("--out", required=True, help="folder to write train.npz, val.npz, test.npz")
    p.add_argument("--val", type=positive, default=5000, help="training images held out")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out permutation")
    p.add_argument("--root", help="folder of the IDX files (default: Debian's)")
    p = add_runtime_commands(sub)["inspect"]
    p.description += "\n  cdnn inspect model.cdnn --plot model.png   (needs matplotlib)"
    p.add_argument("--plot", metavar="PNG",
                   help="also draw weight histograms with their centroids and where the "
                        "bytes go, into this image (pip install 'cdnn[plot]')")
    p.set_defaults(func=cmd_inspect)
    p = add_command(
        sub, "verify", cmd_verify,
        "check that the runtime computes what the source model computes",
        "Run FILE with cdnn_runtime and compare its outputs with (a) the decompressed "
        "reference: the source model with its linear and conv weights replaced by the "
        "file's decoded ones (BatchNorm folded as at compression), and (b) the original "
        "dense model: max and mean absolute difference, top-1 agreement. Exit 0 when the "
        "runtime matches (a) within --tolerance x max |reference|, 1 otherwise.",
        "cdnn verify lenet5.cdnn --against lenet-5",
        "cdnn verify net.cdnn --against ckpt.pt --model mypkg.nets:make_net --inputs x.npy")
    p.add_argument("file")
    _add_source_args(p, required=True)
    p.add_argument("--inputs", nargs="+", metavar="NPY",
                   help="input arrays (.npy, batch first), one per model input; default: "
                        "random normal")
    p.add_argument("--input-shape", type=_shape,
                   help="shape of the random input, batch first; the batch dim is taken from "
                        "--batch (default: the file's input shape)")
    p.add_argument("--batch", type=positive, default=8,
                   help="batch of random inputs (default 8; a fixed batch in the file wins)")
    p.add_argument("--input-seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="allowed max |runtime - reference| relative to max |reference| "
                        "(default 1e-4)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add_command(
        sub, "bench", cmd_bench, "latency, throughput, load time and memory of the runtime",
        "Time cdnn_runtime on FILE, and PyTorch on the dense source model with --against, "
        "the two alternating run by run: median, min and max latency and throughput per "
        "batch size, session load time, peak memory (ru_maxrss).",
        "cdnn bench lenet5.cdnn",
        "cdnn bench lenet5.cdnn --against lenet-5 --batch 1,32 --threads 1")
    p.add_argument("file")
    _add_source_args(p, required=False)
    p.add_argument("--batch", type=_batches, default=[1, 32],
                   help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--threads", type=positive, default=None,
                   help="threads for both engines (default: each engine's own default)")
    p.add_argument("--repeats", type=positive, default=50, help="timed runs per batch size")
    p.add_argument("--warmup", type=_count, default=5, help="untimed runs first (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
