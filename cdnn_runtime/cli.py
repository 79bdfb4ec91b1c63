"""Torch-free commands: `inspect` and `run` (also reachable as `cdnn inspect` / `cdnn run`).

Exit codes: 0 success, 1 a failed check or a bad file, 2 bad usage.
"""

import argparse
import json
import sys

import numpy as np

from .errors import CdnnError
from .reader import read


def inspect_report(f, file_bytes):
    """Per tensor: encoding, shape, density, codebook size, bytes by stream."""
    rows = []
    for t in f.tensors:
        row = {"name": t.name, "encoding": t.encoding, "shape": list(t.shape),
               "dtype": t.dtype, "bytes": t.nbytes}
        if t.encoding == "sparse_codebook":
            d = t.desc
            numel = d["rows"] * d["cols"]
            row.update({
                "nnz": d["nnz"], "density": d["nnz"] / numel if numel else 0.0,
                "codebook_size": d["codebook"]["size"], "gap_bits": d["gap_bits"],
                "fillers": d["entries"] - d["nnz"],
                "streams": {k: {"coding": d[k]["coding"],
                                "bytes": f.sections[d[k]["section"]][1]}
                            for k in ("row_counts", "gaps", "codes")},
                "dense_bytes": 4 * numel,
            })
        rows.append(row)
    dense = sum(r.get("dense_bytes", r["bytes"]) for r in rows)
    return {"version": f.version, "file_bytes": file_bytes, "tensors": rows,
            "dense_float32_bytes": dense, "ratio": dense / file_bytes if file_bytes else 0.0,
            "graph": None if f.graph is None else {
                "inputs": f.graph["inputs"], "outputs": f.graph["outputs"],
                "ops": [n["op"] for n in f.graph["nodes"]]},
            "metadata": f.metadata}


def print_inspect(rep, out=sys.stdout):
    out.write(f".cdnn version {rep['version']}, {rep['file_bytes']:,} bytes\n")
    out.write(f"{'tensor':<24}{'encoding':<17}{'shape':>18}{'density':>9}{'K':>5}"
              f"{'codes':>14}{'gaps':>14}{'bytes':>10}\n")
    for r in rep["tensors"]:
        shape = "x".join(map(str, r["shape"])) or "scalar"
        if r["encoding"] == "sparse_codebook":
            s = r["streams"]
            codes = f"{s['codes']['bytes']} {s['codes']['coding'][0]}"
            gaps = f"{s['gaps']['bytes']} {s['gaps']['coding'][0]}"
            out.write(f"{r['name']:<24}{r['encoding']:<17}{shape:>18}{r['density']:>9.1%}"
                      f"{r['codebook_size']:>5}{codes:>14}{gaps:>14}{r['bytes']:>10}\n")
        else:
            out.write(f"{r['name']:<24}{r['encoding'] + ' ' + r['dtype']:<17}{shape:>18}"
                      f"{'':>9}{'':>5}{'':>14}{'':>14}{r['bytes']:>10}\n")
    out.write("(streams: p = bit-packed, h = Huffman)\n")
    out.write(f"dense float32 {rep['dense_float32_bytes']:,} bytes -> {rep['file_bytes']:,} bytes"
              f" on disk = {rep['ratio']:.1f}x\n")
    if rep["graph"]:
        g = rep["graph"]
        ins = ", ".join(f"{i['name']} {['N' if d is None else d for d in i['shape']]}"
                        for i in g["inputs"])
        out.write(f"graph: {len(g['ops'])} nodes; inputs {ins}; outputs "
                  f"{', '.join(o['name'] for o in g['outputs'])}\n")
    meta = {k: v for k, v in rep["metadata"].items() if k != "recipe"}
    if meta:
        out.write(f"metadata: {json.dumps(meta, sort_keys=True)}\n")


def cmd_inspect(args):
    with open(args.file, "rb") as fh:
        data = fh.read()
    rep = inspect_report(read(data), len(data))
    if args.json:
        json.dump(rep, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print_inspect(rep)
    return 0


def cmd_run(args):
    from .session import InferenceSession
    sess = InferenceSession(args.file, num_threads=args.threads)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise SystemExit(f"error: the model has {len(inputs)} inputs; `run` feeds one")
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.input} as a .npy array: {exc}", file=sys.stderr)
        return 2
    outs = sess.run(None, {inputs[0].name: x.astype(np.float32, copy=False)})
    if args.output:
        np.save(args.output, outs[0])
    for o, y in zip(sess.get_outputs(), outs):
        print(f"{o.name}: shape {list(y.shape)}"
              + (f", argmax per row {np.argmax(y.reshape(y.shape[0], -1), 1)[:16].tolist()}"
                 if y.ndim >= 2 and y.shape[0] else ""))
    return 0


def add_runtime_commands(sub):
    p = sub.add_parser("inspect", help="show what a .cdnn file holds and where its bytes go",
                       description="Show per-tensor sizes, streams and ratio.\n\n"
                                   "example: cdnn inspect model.cdnn --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("run", help="run a .cdnn model on a .npy input (no torch needed)",
                       description="Run the model on one input array.\n\n"
                                   "example: cdnn run model.cdnn --input x.npy --output y.npy",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--input", required=True, help=".npy file, float32, batch first")
    p.add_argument("--output", help="where to save the first output as .npy")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.set_defaults(func=cmd_run)


def dispatch(args):
    try:
        return args.func(args)
    except CdnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # wrong input shape, dtype or name
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="cdnn-runtime",
                                     description="Inspect and run .cdnn models.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_runtime_commands(sub)
    args = parser.parse_args(argv)
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
