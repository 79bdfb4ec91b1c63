"""Torch-free commands: `inspect` and `run` (also reachable as `cdnn inspect` / `cdnn run`).

Exit codes: 0 success, 1 a failed check or a bad file, 2 bad usage.
"""

import argparse
import json
import os
import sys
import textwrap

import numpy as np

from .errors import CdnnError
from .report import load_inspect, print_inspect, print_profile


def emit_inspect(rep, args, out=sys.stdout):
    if args.json:
        json.dump(rep, out, indent=1, sort_keys=True)
        out.write("\n")
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
    feed = {inputs[0].name: x.astype(np.float32, copy=False)}
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


def describe(text, *examples):
    """A command's --help description: the text wrapped, then its examples."""
    out = textwrap.fill(text, 88)
    if examples:
        out += "\n\nexample" + ("s" if len(examples) > 1 else "") + ":\n" + \
            "\n".join("  " + e for e in examples)
    return out


def add_runtime_commands(sub):
    """Add `inspect` and `run` to an argparse subparsers object; returns {name: parser}."""
    p = sub.add_parser(
        "inspect", help="show what a .cdnn file holds and where its bytes go",
        description=describe(
            "Per layer: op, shape, density, codebook size, gap bits, bytes by stream (codes, "
            "gaps, row counts, codebook, bias), bits per nonzero next to the order-0 entropy "
            "of the decoded code and gap streams, ratio; then every tensor and the totals.",
            "cdnn inspect model.cdnn", "cdnn inspect model.cdnn --json"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-entropy", action="store_true",
                   help="skip decoding the streams (no entropy figures; faster on big files)")
    p.set_defaults(func=cmd_inspect)
    parsers = {"inspect": p}
    p = sub.add_parser("run", help="run a .cdnn model on a .npy input (no torch needed)",
                       description=describe(
                           "Run the model on one input array (float32, batch first) and "
                           "print each output's shape and per-row argmax; with --profile, "
                           "the time of every step of the graph.",
                           "cdnn run model.cdnn --input x.npy --output y.npy",
                           "cdnn run model.cdnn --input x.npy --profile --repeats 50"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--input", required=True, help=".npy file, float32, batch first")
    p.add_argument("--output", help="where to save the first output as .npy")
    p.add_argument("--threads", type=_positive, default=None,
                   help="threads (default: all cores)")
    p.add_argument("--profile", action="store_true",
                   help="also time every step of the graph (fused layers shown joined by '+')")
    p.add_argument("--repeats", type=_positive, default=10,
                   help="runs timed with --profile (default 10; medians are shown)")
    p.set_defaults(func=cmd_run)
    parsers["run"] = p
    return parsers


def _positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def dispatch(args):
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except CdnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # missing file, a directory, no permission, disk full
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # wrong input shape, dtype or name
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
