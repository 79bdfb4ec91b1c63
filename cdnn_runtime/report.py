"""Where a .cdnn file's bytes go: per-layer and per-stream sizes, ratios and entropy bounds.

The command lines (`cdnn inspect`, `cdnn-runtime inspect`), the compressor's size report and the
benchmarks all build their figures here, so that a size is counted one way everywhere.
"""

import json
import sys

import numpy as np

from .errors import CdnnError
from .reader import read

STREAM_KEYS = ("codes", "gaps", "row_counts")


def entropy_bits(values):
    """Order-0 (empirical) entropy of a stream of small integers, in bits per symbol."""
    values = np.asarray(values)
    if values.size == 0:
        return 0.0
    counts = np.bincount(values.astype(np.int64, copy=False))
    p = counts[counts > 0] / values.size
    return float(-(p * np.log2(p)).sum())


def _weight_nodes(f):
    """{weight tensor name: graph node} for every node of the graph with a weight; a weight
    that several nodes use (a token table tied to the head: embedding and linear) as one node
    named after the tensor, its ops joined with '+'; a recurrent layer's matrix (w_ih, w_hh,
    ...) as a node of its own named after the tensor, with its bias (b_ih, b_hh, ...)."""
    if f.graph is None:
        return {}
    users = {}
    for n in f.graph["nodes"]:
        if "weight" in n["params"]:
            users.setdefault(n["params"]["weight"], []).append(n)
    nodes = {}
    for t, ns in users.items():
        if len(ns) == 1:
            nodes[t] = ns[0]
        else:
            bias = next((n["params"]["bias"] for n in ns if n["params"].get("bias")), None)
            nodes[t] = {"name": t.rpartition(".")[0] or t,
                        "op": "+".join(dict.fromkeys(n["op"] for n in ns)),
                        "params": {} if bias is None else {"bias": bias}}
    for n in f.graph["nodes"]:  # ---- recurrent layers (version 3)
        for role, t in n["params"].items() if n["op"] in ("lstm", "gru", "rnn") else ():
            if role.startswith("w_"):
                bias = n["params"].get("b_" + role[2:])
                nodes[t] = {"name": t.rpartition(".")[0] or t, "op": n["op"],
                            "params": {} if bias is None else {"bias": bias}}
    return nodes


def layer_report(f, t, node=None, entropy=False):
    """One sparse_codebook weight's bytes by stream (bias included), bits per nonzero, dense
    float32 size and ratio; `node` is its graph node when known; with `entropy`, the order-0
    entropy of its decoded code and gap streams."""
    d = t.desc
    numel = d["rows"] * d["cols"]
    nnz, entries = d["nnz"], d["entries"]
    size = {k: f.sections[d[k]["section"]][1] for k in STREAM_KEYS}
    size["codebook"] = f.sections[d["codebook"]["section"]][1]
    if node is not None:
        layer, op, bias_name = node["name"], node["op"], node["params"].get("bias")
    else:
        layer, op = t.name.rpartition(".")[0] or t.name, None
        bias_name = layer + ".bias"
    bias = f.tensor(bias_name).nbytes if bias_name in f.tensor_names else 0
    bias_f32 = 4 * int(np.prod(f.tensor(bias_name).shape)) if bias else 0
    size["bias"] = bias
    total = sum(size.values())
    per_nz = max(nnz, 1)
    row = {
        "layer": layer, "tensor": t.name, "op": op, "bias_tensor": bias_name if bias else None,
        "shape": list(t.shape), "weights": numel, "nnz": nnz, "entries": entries,
        "fillers": entries - nnz, "density": nnz / numel if numel else 0.0,
        "codebook_size": d["codebook"]["size"], "gap_bits": d["gap_bits"],
        "coding": {k: d[k]["coding"] for k in STREAM_KEYS},
        "bytes": {**size, "total": total},
        "bits_per_nnz": {**{k: 8 * size[k] / per_nz for k in STREAM_KEYS},
                         "total": 8 * sum(size[k] for k in STREAM_KEYS) / per_nz},
        "dense_bytes": 4 * numel + bias_f32, "ratio": (4 * numel + bias_f32) / max(total, 1),
    }
    if entropy:
        row_counts, gaps, codes = f.entries(t.name)
        h = {"codes": entropy_bits(codes), "gaps": entropy_bits(gaps)}
        row["entropy_bits_per_symbol"] = h
        row["entropy_bits_per_nnz"] = {k: v * entries / per_nz for k, v in h.items()}
        row["entropy_bytes"] = {k: v * entries / 8 for k, v in h.items()}
    return row


def inspect_report(f, file_bytes, *, entropy=True):
    """What a file holds and where its bytes go.

    `tensors`: per tensor, encoding, shape, density, codebook size, bytes by stream.
    `layers`: per sparse_codebook weight, its graph node and op, bytes by stream (codes,
    gaps, row counts, codebook, bias), bits per nonzero, and (with `entropy`) the order-0
    entropy of the decoded code and gap streams, the bound any per-symbol coding of them
    meets. `totals`: the file's bytes by kind, header and padding included.
    """
    nodes = _weight_nodes(f)
    rows = []
    layers = []
    for t in f.tensors:
        row = {"name": t.name, "encoding": t.encoding, "shape": list(t.shape),
               "dtype": t.dtype, "bytes": t.nbytes}
        if t.encoding == "sparse_codebook":
            d = t.desc
            numel = d["rows"] * d["cols"]
            node = nodes.get(t.name)
            row.update({
                "nnz": d["nnz"], "density": d["nnz"] / numel if numel else 0.0,
                "codebook_size": d["codebook"]["size"], "gap_bits": d["gap_bits"],
                "fillers": d["entries"] - d["nnz"],
                "streams": {k: {"coding": d[k]["coding"],
                                "bytes": f.sections[d[k]["section"]][1]}
                            for k in STREAM_KEYS},
                "codebook_bytes": f.sections[d["codebook"]["section"]][1],
                "dense_bytes": 4 * numel,
                "op": None if node is None else node["op"],
            })
            layers.append(layer_report(f, t, node, entropy))
        elif t.dtype == "float16":  # counted as the float32 it stands for
            row["dense_bytes"] = 2 * t.nbytes
        rows.append(row)
    dense = sum(r.get("dense_bytes", r["bytes"]) for r in rows)
    totals = {k: sum(r["bytes"][k] for r in layers)
              for k in ("codes", "gaps", "row_counts", "codebook", "bias")}
    in_layers = set()
    for r in layers:
        in_layers.add(r["tensor"])
        if r["bias_tensor"]:
            in_layers.add(r["bias_tensor"])
    totals["other_tensors"] = sum(r["bytes"] for r in rows if r["name"] not in in_layers)
    totals["header"] = file_bytes - sum(r["bytes"] for r in rows)
    totals["other"] = totals["other_tensors"] + totals["header"]
    totals.update({"nnz": sum(r["nnz"] for r in layers),
                   "weights": sum(r["weights"] for r in layers)})
    return {"version": f.version, "file_bytes": file_bytes, "tensors": rows, "layers": layers,
            "totals": totals, "dense_float32_bytes": dense,
            "ratio": dense / file_bytes if file_bytes else 0.0,
            "graph": None if f.graph is None else {
                "inputs": f.graph["inputs"], "outputs": f.graph["outputs"],
                "ops": [n["op"] for n in f.graph["nodes"]]},
            "metadata": f.metadata}


def print_table(out, header, rows, align):
    """Columns sized to their widest cell; align is a string of '<' and '>' per column."""
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        line = "  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths))
        out.write(line.rstrip() + "\n")


def print_inspect(rep, out=sys.stdout, name=None):
    tensors = rep["tensors"]
    n_sparse = sum(r["encoding"] == "sparse_codebook" for r in tensors)
    plural = "s" if len(tensors) != 1 else ""
    out.write(f"{name + ': ' if name else ''}.cdnn version {rep['version']}, "
              f"{rep['file_bytes']:,} bytes, {len(tensors)} tensor{plural} ({n_sparse} "
              f"sparse_codebook, {len(tensors) - n_sparse} raw)\n")
    if rep["graph"]:
        g = rep["graph"]
        dims = lambda shape: ", ".join("N" if d is None else str(d) for d in shape)  # noqa: E731

        def free(i):  # a free dim as its name and max: [N, seq<=128]
            named = {f["dim"]: f"{f['name']}<={f['max']}" for f in i.get("free", ())}
            return [named.get(k, d) for k, d in enumerate(i["shape"])]
        ins = ", ".join(f"{i['name']} [{dims(free(i))}]" for i in g["inputs"])
        outs = ", ".join(o["name"] + (f" [{dims(o['shape'])}]" if "shape" in o else "")
                         for o in g["outputs"])
        out.write(f"graph: {len(g['ops'])} nodes; inputs {ins}; outputs {outs}\n")
    else:
        out.write("graph: none (a tensor-only file)\n")
    layers = rep["layers"]
    if layers:
        out.write("\nbytes by stream, per layer (p = bit-packed, h = Huffman)\n")
        rows = []
        for r in layers:
            b, c = r["bytes"], r["coding"]
            rows.append([r["layer"], r["op"] or "-", "x".join(map(str, r["shape"])),
                         f"{r['density']:.1%}", str(r["codebook_size"]), str(r["gap_bits"]),
                         f"{b['codes']:,} {c['codes'][0]}", f"{b['gaps']:,} {c['gaps'][0]}",
                         f"{b['row_counts']:,} {c['row_counts'][0]}", f"{b['codebook']:,}",
                         f"{b['bias']:,}", f"{b['total']:,}", f"{r['ratio']:.1f}x"])
        print_table(out, ["layer", "op", "shape", "density", "K", "gap", "codes", "gaps",
                     "row counts", "codebook", "bias", "total", "ratio"], rows,
               "<<>>>>>>>>>>>")
        out.write("\nbits per nonzero weight: stored" + (
            " (order-0 entropy bound of the stream)\n" if "entropy_bits_per_nnz" in layers[0]
            else "\n"))
        rows = []
        for r in layers:
            bits, h = r["bits_per_nnz"], r.get("entropy_bits_per_nnz")
            pair = (lambda k: f"{bits[k]:.2f} ({h[k]:.2f})") if h else \
                (lambda k: f"{bits[k]:.2f}")
            rows.append([r["layer"], f"{r['nnz']:,}", f"{r['fillers']:,}", pair("codes"),
                         pair("gaps"), f"{bits['row_counts']:.2f}", f"{bits['total']:.2f}"])
        print_table(out, ["layer", "nonzeros", "fillers", "codes", "gaps", "row counts", "total"],
               rows, "<>>>>>>")
    out.write("\ntensors\n")
    rows = []
    for r in tensors:
        enc = r["encoding"] if r["encoding"] == "sparse_codebook" else f"raw {r['dtype']}"
        rows.append([r["name"], enc, "x".join(map(str, r["shape"])) or "scalar",
                     f"{r['density']:.1%}" if "density" in r else "", f"{r['bytes']:,}"])
    print_table(out, ["name", "encoding", "shape", "density", "bytes"], rows, "<<>>>")
    t = rep["totals"]
    out.write(f"\ntotal: {rep['file_bytes']:,} bytes = codes {t['codes']:,} + gaps "
              f"{t['gaps']:,} + row counts {t['row_counts']:,} + codebooks {t['codebook']:,}\n"
              f"       + biases {t['bias']:,} + other tensors {t['other_tensors']:,} + header "
              f"and padding {t['header']:,}\n")
    out.write(f"dense float32 {rep['dense_float32_bytes']:,} bytes -> {rep['file_bytes']:,} bytes"
              f" on disk = {rep['ratio']:.1f}x\n")
    meta = {k: v for k, v in rep["metadata"].items() if k != "recipe"}
    if meta:
        out.write(f"metadata: {json.dumps(meta, sort_keys=True)}\n")


def load_inspect(path, *, entropy=True):
    """(CdnnFile, report) of the file at `path`."""
    with open(path, "rb") as fh:
        data = fh.read()
    f = read(data)
    rep = inspect_report(f, len(data), entropy=entropy)
    if rep["graph"] is not None:
        rep["graph"]["outputs"] = _outputs_with_shapes(data, rep["graph"]["outputs"])
    return f, rep


def _outputs_with_shapes(data, outputs):
    """The graph's outputs, each with the shape the session computes for it at load (None for
    the free batch); without shapes where the file does not load as a session."""
    from .session import InferenceSession
    try:
        args = InferenceSession(data).get_outputs()
    except CdnnError:
        return outputs
    return [{**o, "shape": a.shape} for o, a in zip(outputs, args)]


def print_profile(prof, out=sys.stdout):
    """The table of InferenceSession.profile: per step, its nodes, op, output shape, times."""
    rows = []
    total = sum(st["median_ms"] for st in prof["steps"]) or 1.0
    for st in prof["steps"]:
        rows.append([st["name"], st["op"], "x".join(map(str, st["output_shape"])),
                     f"{st['median_ms']:.4f}", f"{st['min_ms']:.4f}-{st['max_ms']:.4f}",
                     f"{100 * st['median_ms'] / total:.1f}%"])
    out.write(f"\nprofile: batch {prof['batch']}, median of {prof['repeats']} runs\n")
    print_table(out, ["step", "op", "output", "ms", "min-max", "share"], rows, "<<>>>>")
    steps = sum(st["median_ms"] for st in prof["steps"])
    out.write(f"steps {steps:.4f} ms; whole run {prof['total_ms']:.4f} ms (the rest is the "
              "session's own work)\n")
