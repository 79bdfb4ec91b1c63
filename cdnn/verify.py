"""Does the runtime compute what the source model computes? A .cdnn file run by
cdnn_runtime, compared with (a) the decompressed reference, the source model carrying the
file's decoded weights, and (b) the dense source model."""

import io

import numpy as np

from cdnn_runtime.errors import CdnnUsageError
from cdnn_runtime.report import print_table

from .sources import eval_mode, load_npy, load_source, require_torch

#: A graph input's type (NodeArg.type) -> its numpy dtype.
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64,
                 "tensor(int32)": np.int32}


def id_bounds(graph, f):
    """{integer graph input: the fewest rows of the embedding tables it indexes}, so that
    random ids stay in range."""
    bounds = {}
    for n in graph["nodes"]:
        if n["op"] == "embedding":
            rows = f.tensor(n["params"]["weight"]).shape[0]
            bounds[n["inputs"][0]] = min(rows, bounds.get(n["inputs"][0], rows))
    return bounds


def _loaded(spec, a, path):
    """A loaded array as the input's dtype: floats as float32; ids must be integers."""
    dtype = _INPUT_DTYPES.get(spec.type, np.float32)
    if dtype is not np.float32 and a.dtype.kind not in "iu":
        raise CdnnUsageError(f"{path}: input {spec.name!r} takes integer ids, the array is "
                             f"{a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def model_inputs(specs, inputs=None, input_shape=None, batch=8, seed=0, bounds=None,
                 traced=None):
    """(arrays, one per graph input; where they come from): loaded from the .npy paths
    `inputs`, or seeded random of `input_shape` (or the file's input shape, with `batch` where
    the file leaves the batch open and the traced size, `traced[name]`, at a free dim such as a
    sequence): normal for float32 inputs, ids in [0, bounds[name]) (2 when not given) for
    integer ones."""
    if inputs:
        if len(inputs) != len(specs):
            raise CdnnUsageError(f"--inputs gives {len(inputs)} arrays; the model takes "
                                 f"{len(specs)} ({', '.join(s.name for s in specs)})")
        arrays = []
        for path in inputs:
            arrays.append(_loaded(specs[len(arrays)], load_npy(path), path))
        return arrays, "from " + ", ".join(map(str, inputs))
    if input_shape is not None and len(specs) != 1:
        raise CdnnUsageError(f"--input-shape describes one input; the model takes "
                             f"{len(specs)}: pass one .npy per input with --inputs")
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        rest = input_shape[1:] if input_shape else \
            [(traced or {}).get(spec.name, spec.shape)[k] if isinstance(d, str) else d
             for k, d in enumerate(spec.shape) if k]
        n = spec.shape[0] if spec.shape[0] is not None else batch
        dtype = _INPUT_DTYPES.get(spec.type, np.float32)
        if dtype is np.float32:
            arrays.append(rng.standard_normal([n] + list(rest)).astype(np.float32))
        else:
            high = (bounds or {}).get(spec.name, 2)
            arrays.append(rng.integers(0, high, [n] + list(rest)).astype(dtype))
    return arrays, f"random normal, seed {seed}"


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


def compare(got, ref):
    """Max and mean |got - ref|, max |ref|, and (for batched scores) top-1 agreement."""
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
    torch = require_torch("verify")
    from torch import nn

    from .capture import prepare_for_capture
    from .compress import fold_batchnorm
    work = prepare_for_capture(model)
    bn_modules = {name for name, m in work.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    # batch_norm nodes of BatchNorm layers (an InstanceNorm with running statistics is one too)
    in_graph = sum(n["op"] == "batch_norm" and n["params"]["mean"].rpartition(".")[0]
                   in bn_modules for n in f.graph["nodes"])
    n_bn = len(bn_modules)
    folded = fold_batchnorm(work, tuple(example_inputs)) if n_bn > in_graph else 0
    params = dict(work.named_parameters(remove_duplicate=False))  # tied tables too
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


def verify(path, against, *, model_spec=None, seed=0, inputs=None, input_shape=None, batch=8,
           input_seed=0, tolerance=1e-4):
    """Run the .cdnn file at `path` and its source model `against` (as `load_source` takes
    it) on the same inputs (see `model_inputs`); the result as a dict.

    Per output, `vs_reference` and `vs_dense` (see `compare`) and `ok`: max |diff| from the
    decompressed reference <= `tolerance` x its max |value|. `source_sha256_match` is None
    when the file records no source hash. `ok` overall: every output ok and no hash mismatch.
    """
    torch = require_torch("verify")
    from cdnn_runtime.reader import read
    from cdnn_runtime.session import InferenceSession

    from .compress import weights_sha256
    with open(path, "rb") as fh:
        data = fh.read()
    f = read(data)
    sess = InferenceSession(data)
    specs = sess.get_inputs()
    arrays, where = model_inputs(specs, inputs, input_shape, batch, input_seed,
                                 id_bounds(sess.graph, f),
                                 {i["name"]: i["shape"] for i in sess.graph["inputs"]})
    got = sess.run(None, {s.name: x for s, x in zip(specs, arrays)})
    model, name = load_source(against, model_spec, seed)
    eval_mode(model)
    example = tuple(torch.from_numpy(x) for x in arrays)
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
    for o, g, r, d in zip(sess.get_outputs(), got, ref, dense):
        if g.shape != r.shape:
            raise CdnnUsageError(f"output {o.name!r}: the runtime gives shape {list(g.shape)}, "
                                 f"the model {list(r.shape)}: is --against the model this file "
                                 "was compressed from?")
        vs_ref = compare(g, r)
        allowed = tolerance * vs_ref["max_ref"]
        outputs.append({"name": o.name, "shape": list(g.shape), "vs_reference": vs_ref,
                        "vs_dense": compare(g, d), "allowed": allowed,
                        "ok": vs_ref["max_abs"] <= allowed})
    return {"file": str(path), "against": name, "seed": seed,
            "inputs": {"source": where, "shapes": [list(x.shape) for x in arrays]},
            "tolerance": tolerance, "batchnorm_folded": folded,
            "weights_replaced": replaced, "source_sha256_match": sha_match,
            "outputs": outputs,
            "ok": all(o["ok"] for o in outputs) and sha_match is not False}


def _fmt_top1(t):
    return "-" if t is None else f"{t['agree']}/{t['of']} ({t['fraction']:.1%})"


def format_verify(res):
    """The text report of a `verify` result: what was compared, a table per output, verdicts."""
    shapes = ", ".join(str(s) for s in res["inputs"]["shapes"])
    sha = res["source_sha256_match"]
    lines = [f"verify {res['file']} against {res['against']} (seed {res['seed']})",
             f"inputs: {shapes}, {res['inputs']['source']}",
             f"decompressed reference: the source model with the file's "
             f"{len(res['weights_replaced'])} decoded weights; BatchNorm layers folded: "
             f"{res['batchnorm_folded']}",
             "source weights: " + ("match the file's source_sha256" if sha else
                                   "differ from the file's source_sha256" if sha is False else
                                   "the file records no source_sha256")]
    for o in res["outputs"]:
        lines.append(f"\noutput {o['name']} {o['shape']}")
        rows = []
        for label, key in (("vs decompressed reference", "vs_reference"),
                           ("vs dense original", "vs_dense")):
            c = o[key]
            rows.append(["", label, f"{c['max_abs']:.3g}", f"{c['mean_abs']:.3g}",
                         _fmt_top1(c["top1"]), f"{c['max_ref']:.4g}"])
        table = io.StringIO()  # the empty first column indents the table by two spaces
        print_table(table, ["", "", "max |diff|", "mean |diff|", "top-1 agreement",
                            "max |ref|"], rows, "<<>>>>")
        lines.append(table.getvalue().rstrip("\n"))
    for o in res["outputs"]:
        c = o["vs_reference"]
        verdict = "OK" if o["ok"] else "FAIL"
        rel = "<=" if o["ok"] else ">"
        lines.append(f"{verdict}: {o['name']}: max |diff| {c['max_abs']:.3g} {rel} "
                     f"{res['tolerance']:g} x max |ref| = {o['allowed']:.3g}")
    return "\n".join(lines) + "\n"
