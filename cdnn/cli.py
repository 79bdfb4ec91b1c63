"""The `cdnn` command line: demo, compress, inspect, run.

Exit codes: 0 success, 1 a failed check or a bad file, 2 bad usage.
"""

import argparse
import importlib
import os
import sys
import time

import numpy as np

from cdnn_runtime.cli import add_runtime_commands, dispatch
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


def load_source(src, model_spec=None, seed=0):
    """A torch module from a reference name, a .pt2 export, or a state_dict plus factory."""
    import torch

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


def cmd_compress(args):
    import torch

    from .compress import compress
    if os.path.exists(args.output) and not args.force:
        print(f"error: {args.output} exists; pass --force to replace it", file=sys.stderr)
        return 2
    model, name = load_source(args.src, args.model, args.seed)
    shape = args.input_shape or DEFAULT_SHAPES.get(args.src)
    if shape is None:
        print("error: --input-shape is needed (for example --input-shape 1,3,224,224)",
              file=sys.stderr)
        return 2
    example = torch.randn(*([max(2, shape[0])] + shape[1:]),
                          generator=torch.Generator().manual_seed(0))

    def progress(stage, layer, step):
        if not args.quiet:
            print(f"  {stage:<6} {layer}" + (f" (step {step + 1})" if step else ""),
                  file=sys.stderr)

    t0 = time.perf_counter()
    packed = compress(model, example, args.recipe, preset=args.preset, seed=args.seed,
                      model_name=name if args.src in DEFAULT_SHAPES else None,
                      progress=progress)
    packed.save(args.output, overwrite=True)
    if not args.quiet:
        print(packed.format_report(), end="")
        print(f"wrote {args.output} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_demo(args):
    from .demo import run_demo
    return run_demo(full=args.full, out=args.output)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="cdnn", description="Compress PyTorch models into .cdnn files and run them.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="compress a small model, run it, print a table",
                       description="example: cdnn demo")
    p.add_argument("--full", action="store_true", help="use the whole Fashion-MNIST test set")
    p.add_argument("-o", "--output", default="demo.cdnn", help="where to write the file")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "compress", help="compress a model into a .cdnn file",
        description="Compress a model (a reference name, a .pt2 export, or a state_dict "
                    "checkpoint plus --model) into a .cdnn file.\n\n"
                    "examples:\n  cdnn compress lenet-5 -o lenet5.cdnn\n"
                    "  cdnn compress ckpt.pt --model mypkg.nets:make_net "
                    "--input-shape 1,3,32,32 -o net.cdnn",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="lenet-300-100 | lenet-5 | alexnet | vgg16 | FILE.pt2 | FILE.pt")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--model", help="package.module:factory building the architecture")
    p.add_argument("--input-shape", type=_shape, help="e.g. 1,3,224,224 (batch first)")
    p.add_argument("--preset", default="deep-compression",
                   choices=["deep-compression", "lossless-ish"])
    p.add_argument("--recipe", help="JSON (or YAML) recipe file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_compress)
    add_runtime_commands(sub)
    args = parser.parse_args(argv)
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
