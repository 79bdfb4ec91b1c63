"""Torch-free commands: `inspect`, `run`, `batch` and `warmup` (also reachable as `cdnn
inspect`, ...).

Exit codes: 0 success, 1 a failed check or a bad file, 2 bad usage.
"""

import argparse
import os
import sys

import numpy as np

from ._argparse import add_command, positive, print_json
from .errors import CdnnError
from .report import load_inspect, print_inspect, print_profile


def emit_inspect(rep, args, out=None):
    """The report of `inspect`: JSON with --json, else the tables."""
    out = out or sys.stdout
    if args.json:
        print_json(rep, out)
    else:
        print_inspect(rep, out, name=str(args.file))


def cmd_inspect(args):
    _, rep = load_inspect(args.file, entropy=not args.no_entropy)
    emit_inspect(rep, args)
    return 0


def cmd_run(args):
    from .session import InferenceSession
    sess = InferenceSession(args.file, num_threads=args.threads)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        print(f"error: the model has {len(inputs)} inputs and `run` feeds one; call "
              "cdnn_runtime.InferenceSession(...).run(None, {name: array, ...}) from Python",
              file=sys.stderr)
        return 1
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.input} as a .npy array ({exc}); save one with "
              "numpy.save", file=sys.stderr)
        return 1
    feed = {inputs[0].name: _as_input(x, inputs[0])}
    outs = sess.run(None, feed)
    if args.profile:
        print_profile(sess.profile(feed, repeats=args.repeats))
    if args.output:
        np.save(args.output, outs[0])
    for o, y in zip(sess.get_outputs(), outs):
        print(f"{o.name}: shape {list(y.shape)}"
              + (f", argmax per row {np.argmax(y.reshape(y.shape[0], -1), 1)[:16].tolist()}"
                 if y.ndim >= 2 and y.shape[0] else ""))
    return 0


def cmd_batch(args):
    from .shards import ShardProgress, run_batch
    progress = ShardProgress(quiet=args.quiet)
    try:
        rep = run_batch(args.file, args.input, args.output, workers=args.workers,
                        ray_address=args.ray, input_name=args.column,
                        num_threads=args.threads, progress=progress)
    finally:
        progress.close()
    if args.json:
        print_json(rep)
    else:
        print(f"{rep['done']} shard(s) written to {args.output} ({rep['rows']} rows), "
              f"{rep['skipped']} already there, {len(rep['failed'])} failed, in "
              f"{rep['seconds']:.1f} s")
    for message in rep["failed"]:
        print(f"error: {message}", file=sys.stderr)
    return 1 if rep["failed"] else 0


def _as_input(x, spec):
    """Array `x` for graph input `spec`: an integer or boolean array whose values float32
    holds exactly is converted for a float32 input, saying so on stderr; any other dtype that
    is not the input's is refused, naming the input and both dtypes."""
    if spec.type != "tensor(float)" or x.dtype == np.float32:
        return x
    if x.dtype.kind in "iub":
        y = x.astype(np.float32)
        with np.errstate(all="ignore"):
            exact = np.array_equal(y, x) and np.array_equal(y.astype(x.dtype), x)
        if exact:
            print(f"note: input {spec.name!r}: {x.dtype} converted to float32", file=sys.stderr)
            return y
        raise ValueError(f"input {spec.name!r} is float32 and the array is {x.dtype} with "
                         "values float32 cannot hold exactly; convert it yourself "
                         "(numpy: x.astype(numpy.float32)) if the rounding is intended")
    raise ValueError(f"input {spec.name!r} is float32 and the array is {x.dtype}; save it as "
                     "float32 (numpy: x.astype(numpy.float32))")


def add_runtime_commands(sub):
    """Add `inspect`, `run` and `batch` to an argparse subparsers object; returns {name:
    parser}."""
    p = add_command(
        sub, "inspect", cmd_inspect, "show what a .cdnn file holds and where its bytes go",
        "Per layer: op, shape, density, codebook size, gap bits, bytes by stream (codes, "
        "gaps, row counts, codebook, bias), bits per nonzero next to the order-0 entropy "
        "of the decoded code and gap streams, ratio; then every tensor and the totals.",
        "cdnn inspect model.cdnn", "cdnn inspect model.cdnn --json")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-entropy", action="store_true",
                   help="skip decoding the streams (no entropy figures; faster on big files)")
    parsers = {"inspect": p}
    p = add_command(
        sub, "run", cmd_run, "run a .cdnn model on a .npy input (no torch needed)",
        "Run the model on one input array (float32, batch first) and print each output's "
        "shape and per-row argmax; with --profile, the time of every step of the graph.",
        "cdnn run model.cdnn --input x.npy --output y.npy",
        "cdnn run model.cdnn --input x.npy --profile --repeats 50")
    p.add_argument("file")
    p.add_argument("--input", required=True, help=".npy file, float32, batch first")
    p.add_argument("--output", help="where to save the first output as .npy")
    p.add_argument("--threads", type=positive, default=None,
                   help="threads (default: all cores)")
    p.add_argument("--profile", action="store_true",
                   help="also time every step of the graph (fused layers shown joined by '+')")
    p.add_argument("--repeats", type=positive, default=10,
                   help="runs timed with --profile (default 10; medians are shown)")
    parsers["run"] = p
    p = add_command(
        sub, "batch", cmd_batch, "run a .cdnn model over a folder of shards, locally or on Ray",
        "Run the model over every .npy / .npz / Parquet shard of a folder (or a glob) and "
        "write one output shard each into the output folder (NAME.npz, or NAME.parquet for "
        "Parquet): a .npy is the model's input; a .npz or a table holds columns, the one named "
        "like the model's input (or --column) is fed and the others copied. Each shard is "
        "written atomically and shards already written are skipped, so a rerun resumes. A "
        "shard that fails is named on stderr, the rest go on, and the exit code is 1.",
        "cdnn batch model.cdnn --input shards/ --output preds/ --workers 2",
        "cdnn batch model.cdnn --input 'data/*.parquet' --output preds/ --column image",
        "cdnn batch model.cdnn --input /shared/shards --output /shared/preds --ray auto")
    p.add_argument("file")
    p.add_argument("--input", required=True, help="a folder of shards, or a glob (quoted)")
    p.add_argument("--output", required=True, help="the folder of output shards")
    p.add_argument("--workers", type=positive, default=1,
                   help="local worker processes (default 1: this process)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run on the Ray cluster at ADDRESS ('auto': the one this machine "
                        "belongs to); shards and output on storage every node sees")
    p.add_argument("--column", help="the column fed to the model (default: the model's "
                                    "input name)")
    p.add_argument("--threads", type=positive, default=None,
                   help="threads per worker (default: the cores shared out among workers)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parsers["batch"] = p
    p = add_command(
        sub, "warmup", cmd_warmup, "compile every kernel once, so that no model compiles later",
        "Compile every variant of every kernel into the kernel cache (about a minute on 2 "
        "cores, once per installation and cache directory; CDNN_CACHE_DIR chooses it): a model "
        "loaded afterwards, in any process, starts without compiling.",
        "cdnn-runtime warmup")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    parsers["warmup"] = p
    return parsers


def cmd_warmup(args):
    from .warmup import warmup
    say = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    res = warmup(progress=say)
    if args.json:
        print_json(res)
    else:
        print(f"compiled {res['compiled']} kernel signatures in {res['seconds']:.1f} s (0: the "
              "cache was warm)")
    return 0


def dispatch(args):
    """Run the parsed command; a CdnnError, OSError or ValueError becomes `error: ...` on
    stderr and exit code 1."""
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (CdnnError, OSError, ValueError) as exc:  # bad file or input; missing file, a
        # directory, no permission, disk full; wrong input shape, dtype or name
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="cdnn-runtime", description="Inspect and run .cdnn models (no torch needed).",
        epilog="examples:\n  cdnn-runtime inspect model.cdnn\n"
               "  cdnn-runtime run model.cdnn --input x.npy --output y.npy",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_runtime_commands(sub)
    args = parser.parse_args(argv)
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
