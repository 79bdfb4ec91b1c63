"""Golden .cdnn files for spec/cdnn-format.md, each with its decoded content in a .json beside it.

`python spec/vectors/make_vectors.py` rewrites them; tests check that the reader decodes each to
its .json exactly and that the writer reproduces each: byte for byte where the header is stored
plain, and with equal header JSON and sections where it is deflated (DEFLATE's bytes depend on
the zlib build). README.md beside this file lists the vectors and the layout of the .json files.
"""

import json
import os
import sys

import numpy as np

from cdnn_runtime.huffman import code_lengths
from cdnn_runtime.reader import read
from cdnn_runtime.sparse import csr_from_dense
from cdnn_runtime.writer import Writer

HERE = os.path.dirname(os.path.abspath(__file__))
META = {"producer": "cdnn spec vectors", "producer_version": "1"}


def _sparse_matrix(rng, rows, n_cols, density, k):
    """Codes in 1..k-1 at random positions (code 0 is kept for 0.0, i.e. unused)."""
    mask = rng.random((rows, n_cols)) < density
    return np.where(mask, rng.integers(1, k, (rows, n_cols)), 0)


def _add_sparse(w, name, shape, codes2d, codebook, **kw):
    row_ptr, col_idx, codes = csr_from_dense(codes2d)
    w.add_sparse_codebook(name, shape, row_ptr, col_idx, codes, codebook, **kw)


def raw_tensors():
    w = Writer(metadata=META, header="plain")  # a header readable in a hex dump
    w.add_raw("f32", np.array([[1.5, -2.0, 0.0], [3.25, np.inf, -0.0]], dtype=np.float32))
    w.add_raw("f16", np.array([0.5, -1.0, 65504.0], dtype=np.float16))
    w.add_raw("i32", np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32))
    w.add_raw("i64", np.array([[-(2**40)], [7]], dtype=np.int64))
    w.add_raw("u8", np.arange(5, dtype=np.uint8))
    w.add_raw("scalar", np.array(42.0, dtype=np.float32))
    w.add_raw("empty", np.zeros((0, 3), dtype=np.float32))
    return w


def sparse_huffman():
    rng = np.random.default_rng(1)
    codebook = np.array([0.0, -0.75, -0.25, 0.125, 0.5, 1.0, 2.0, -3.5], dtype=np.float32)
    codes = _sparse_matrix(rng, 6, 40, 0.3, 8)
    codes[codes > 4] = 4  # skew the distribution so that Huffman wins
    w = Writer(metadata=META)
    _add_sparse(w, "fc.weight", (6, 40), codes, codebook, gap_bits=4, coding="huffman")
    return w


def sparse_fillers():
    codes = np.zeros((3, 30), dtype=np.int64)
    codes[0, [0, 9, 29]] = [1, 2, 1]  # skips of 8 and 19 zeros at gap_bits=2 need fillers
    codes[2, [3, 4]] = [2, 2]  # row 1 stays empty
    codebook = np.array([0.0, 0.5, -0.5], dtype=np.float32)
    w = Writer(metadata=META)
    _add_sparse(w, "w", (3, 30), codes, codebook, gap_bits=2, coding="packed")
    return w


def tiny_graph():
    rng = np.random.default_rng(3)
    codebook = np.linspace(-1, 1, 16).astype(np.float32)
    codebook[7] = 0.0625  # no exact zero: fillers, if any, get an appended 0.0 centroid
    codes = _sparse_matrix(rng, 8, 12, 0.4, 16)
    w = Writer(metadata={**META, "source_model": "tiny-mlp", "extra": {"accuracy": 0.5}})
    _add_sparse(w, "fc1.weight", (8, 12), codes, codebook, gap_bits=3)
    w.add_raw("fc1.bias", (np.arange(8, dtype=np.float32) - 4) / 8)
    w.add_raw("fc2.weight", ((np.arange(24, dtype=np.float32) % 5) - 2).reshape(3, 8) / 4)
    w.set_graph({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 3, 2, 2]}],
        "nodes": [
            {"name": "flatten", "op": "flatten", "inputs": ["x"], "outputs": ["x.flat"],
             "attrs": {"start_dim": 1}},
            {"name": "fc1", "op": "linear", "inputs": ["x.flat"], "outputs": ["h"],
             "params": {"weight": "fc1.weight", "bias": "fc1.bias"}},
            {"name": "relu", "op": "relu", "inputs": ["h"], "outputs": ["h.relu"]},
            {"name": "fc2", "op": "linear", "inputs": ["h.relu"], "outputs": ["logits"],
             "params": {"weight": "fc2.weight"}},
            {"name": "softmax", "op": "softmax", "inputs": ["logits"], "outputs": ["probs"],
             "attrs": {"dim": 1}},
        ],
        "outputs": [{"name": "probs"}, {"name": "logits"}],
    })
    return w


def chunked():
    rng = np.random.default_rng(4)
    codebook = np.array([0.0, 0.1, -0.1, 0.3, -0.3], dtype=np.float32)
    codes = _sparse_matrix(rng, 10, 20, 0.5, 5)
    w = Writer(metadata=META)
    _add_sparse(w, "w", (10, 20), codes, codebook, gap_bits=2, coding="huffman",
                chunk_symbols=16)
    return w


def conv_weight():
    rng = np.random.default_rng(5)
    codebook = np.array([0.0, -0.5, 0.25, 0.75], dtype=np.float32)
    codes = _sparse_matrix(rng, 4, 2 * 3 * 3, 0.5, 4)
    w = Writer(metadata=META)
    _add_sparse(w, "conv.weight", (4, 2, 3, 3), codes, codebook, gap_bits=3)
    w.add_raw("conv.bias", np.array([0.5, -0.5, 1.0, 0.0], dtype=np.float32))
    return w


def split_graph():
    """Format version 3: a node with several outputs (one of them unused)."""
    w = Writer(metadata=META)
    w.add_raw("fc.weight", ((np.arange(12, dtype=np.float32) % 7) - 3).reshape(2, 6) / 4)
    w.set_graph({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 6]}],
        "nodes": [
            {"name": "fc", "op": "linear", "inputs": ["x"], "outputs": ["a"],
             "params": {"weight": "fc.weight"}},
            {"name": "split", "op": "split", "inputs": ["x"], "outputs": ["x0", "x1", "x2"],
             "attrs": {"sizes": [1, 2, 3], "dim": 1}},
            {"name": "join", "op": "cat", "inputs": ["x2", "a", "x0"], "outputs": ["y"],
             "attrs": {"dim": 1}},
        ],
        "outputs": [{"name": "y"}, {"name": "x2"}],
    })
    return w


def huffman_skipped_lengths():
    """Canonical Huffman codes across lengths no symbol has: the codes stream gets lengths 1 and
    4 only (one frequent code, eight rare ones), so the running code shifts three times between
    them (spec 4.2: codes 0, 1000, 1001, ...)."""
    rng = np.random.default_rng(6)
    codebook = np.array([0.0, 0.5, -0.25, 0.125, -0.125, 0.375, -0.375, 0.75, -0.75, 1.0],
                        dtype=np.float32)
    codes = np.array([1] * 32 + [c for c in range(2, 10) for _ in range(3)])
    rng.shuffle(codes)
    grid = np.zeros(8 * 16, dtype=np.int64)
    grid[np.sort(rng.choice(grid.size, codes.size, replace=False))] = codes
    w = Writer(metadata=META)
    _add_sparse(w, "w", (8, 16), grid.reshape(8, 16), codebook, gap_bits=3, coding="huffman")
    assert code_lengths(np.bincount(codes)).tolist() == [0, 1] + [4] * 8  # as the writer builds
    return w


def conv_v3():
    """Format version 3: compressed conv1d and conv_transpose2d weights (the latter's rows are
    input channels), a layer_norm over the last dim and a mean."""
    rng = np.random.default_rng(6)
    codebook = np.array([0.0, 0.5, -0.25, 1.0, -1.5], dtype=np.float32)
    w = Writer(metadata=META)
    _add_sparse(w, "c1.weight", (4, 2, 3), _sparse_matrix(rng, 4, 2 * 3, 0.5, 5), codebook,
                gap_bits=2)
    w.add_raw("c1.bias", np.array([0.25, 0.0, -0.5, 1.0], dtype=np.float32))
    _add_sparse(w, "up.weight", (2, 3, 2, 2), _sparse_matrix(rng, 2, 3 * 2 * 2, 0.6, 5),
                codebook, gap_bits=2)
    w.add_raw("ln.weight", np.linspace(0.5, 1.5, 8).astype(np.float32))
    w.set_graph({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2, 8]}],
        "nodes": [
            {"name": "c1", "op": "conv1d", "inputs": ["x"], "outputs": ["h"],
             "params": {"weight": "c1.weight", "bias": "c1.bias"},
             "attrs": {"stride": 2, "padding": [1, 1]}},
            {"name": "image", "op": "reshape", "inputs": ["h"], "outputs": ["h2"],
             "attrs": {"shape": [2, 2, 4]}},
            {"name": "up", "op": "conv_transpose2d", "inputs": ["h2"], "outputs": ["u"],
             "params": {"weight": "up.weight"}, "attrs": {"stride": [2, 2]}},
            {"name": "ln", "op": "layer_norm", "inputs": ["u"], "outputs": ["n"],
             "params": {"weight": "ln.weight"}, "attrs": {"normalized_shape": [8]}},
            {"name": "pool", "op": "mean", "inputs": ["n"], "outputs": ["y"],
             "attrs": {"dims": [2, 3]}},
        ],
        "outputs": [{"name": "y"}],
    })
    return w


VECTORS = {
    "raw_tensors": raw_tensors,
    "sparse_huffman": sparse_huffman,
    "sparse_fillers": sparse_fillers,
    "tiny_graph": tiny_graph,
    "chunked_huffman": chunked,
    "conv_weight": conv_weight,
    "split_graph": split_graph,
    "conv_v3": conv_v3,
    "huffman_skipped_lengths": huffman_skipped_lengths,
}


def _num(v):
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        return repr(v)  # JSON has no inf/nan: spelled as strings
    return v


def expected_content(data):
    """The decoded content of a file, as plain JSON."""
    f = read(data)
    out = {"header": "deflate" if f.header_deflated else "plain", "metadata": f.metadata,
           "graph": f.graph, "tensors": {}}
    for t in f.tensors:
        entry = {"encoding": t.encoding, "shape": list(t.shape), "dtype": t.dtype}
        if t.encoding == "raw":
            arr = f.raw(t.name).ravel()
            entry["values"] = [_num(v) if arr.dtype.kind == "f" else int(v) for v in arr]
        else:
            s = f.sparse(t.name)
            row_counts, gaps, codes = f.entries(t.name)
            entry.update({
                "gap_bits": t.desc["gap_bits"], "filler_code": t.desc["filler_code"],
                "codebook": [_num(v) for v in s.codebook],
                "row_ptr": s.row_ptr.tolist(), "col_idx": s.col_idx.tolist(),
                "codes": s.codes.tolist(),
                "stored": {"row_counts": row_counts.tolist(), "gaps": gaps.tolist(),
                           "codes": codes.tolist()},
                "streams": {k: t.desc[k]["coding"] for k in ("row_counts", "gaps", "codes")},
            })
        out["tensors"][t.name] = entry
    return out


def main(names=None):
    """Write the golden files named (all by default): `make_vectors.py NAME ...` adds a new one
    without rewriting the others."""
    for name, make in VECTORS.items():
        if names and name not in names:
            continue
        data = make().to_bytes()
        with open(os.path.join(HERE, name + ".cdnn"), "wb") as fh:
            fh.write(data)
        with open(os.path.join(HERE, name + ".json"), "w") as fh:
            json.dump(expected_content(data), fh, indent=1, sort_keys=True)
            fh.write("\n")
        print(f"{name}.cdnn: {len(data)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
