"""Mutators of class "struct" that edit the tensor table: tensors duplicated, dropped,
renamed or reordered, raw tensors' dtypes and shapes, sparse tensors' dimensions and counts,
codebooks (every checksum recomputed)."""

import copy
import math

import numpy as np

from .mutate import (
    Mut,
    Skip,
    edit_by_table,
    is_int,
    mutator,
    ref_get,
    renumber_after_drop,
    section_refs,
    short,
    spelled_edit,
)


def _rename_everywhere(header, old, new):
    for t in Mut.tensors(header):
        if t.get("name") == old:
            t["name"] = new
    g = header.get("graph")
    if isinstance(g, dict):
        for n in g.get("nodes", []):
            for role, tname in (n.get("params") or {}).items():
                if tname == old:
                    n["params"][role] = new


def _drop_with_sections(m, h, secs, ts, i, name):
    t = ts.pop(i)
    gone = sorted({ref_get(r) for r in section_refs({"tensors": [t]})}, reverse=True)
    for idx in gone:
        if is_int(idx) and 0 <= idx < len(secs):
            del secs[idx]
            renumber_after_drop(h, idx)


def _move_to_end(m, h, secs, ts, i, name):
    ts.append(ts.pop(i))
    m.same = "all"


_TENSOR_LIST_EDITS = {
    "dup": lambda m, h, secs, ts, i, name: ts.append(copy.deepcopy(ts[i])),
    "dup-renamed": lambda m, h, secs, ts, i, name: ts.append(
        dict(copy.deepcopy(ts[i]), name=f"{name}.copy")),
    "drop": lambda m, h, secs, ts, i, name: ts.pop(i),
    "drop-with-sections": _drop_with_sections,
    "rename": lambda m, h, secs, ts, i, name: ts[i].update(
        name=m.choice([f"{name}_", "", "x" * 257, "\u00e9", 7, None])),
    "rename-everywhere": lambda m, h, secs, ts, i, name: _rename_everywhere(
        h, name, f"renamed.{i}"),
    "empty-list": lambda m, h, secs, ts, i, name: h.update(tensors=[]),
    "move-to-end": _move_to_end,
}


@mutator("struct", 1.5)
def tensor_table(m):
    h, secs = m.split()
    ts = h.get("tensors")
    if not isinstance(ts, list) or not ts:
        raise Skip("no tensors")
    i = m.rng.randrange(len(ts))
    op = m.choice(["dup", "dup-renamed", "drop", "drop-with-sections", "rename",
                   "rename-everywhere", "empty-list", "move-to-end"])
    name = ts[i].get("name")
    _TENSOR_LIST_EDITS[op](m, h, secs, ts, i, name)
    m.note(f"tensors: {op} ({name!r})")
    return m.pack(h, secs)


@mutator("struct", 1.5)
def tensor_reorder_same(m):
    h, secs = m.split()
    ts = h.get("tensors")
    if not isinstance(ts, list) or len(ts) < 2:
        raise Skip("fewer than two tensors")
    m.rng.shuffle(ts)
    m.same = "all"
    m.note("tensor list shuffled")
    return m.pack(h, secs)


def _reshaped(m, shape, numel):
    if numel <= 0:
        raise Skip("empty tensor")
    a = m.choice([d for d in range(1, numel + 1) if numel % d == 0])
    return m.choice([[numel], [a, numel // a], [1, a, numel // a], [numel, 1],
                     [1] * 8 + [numel]])


#: op -> (field, its new value from (m, shape, numel)).
_RAW_EDITS = {
    "dtype": ("dtype", lambda m, shape, numel: m.choice(
        ["float32", "float16", "int32", "int64", "uint8", "float64", "bool", "F32", None])),
    "reshape": ("shape", _reshaped),
    "rank9": ("shape", lambda m, shape, numel: [1] * 9),
    "zero-dim": ("shape", lambda m, shape, numel: [0] + list(shape or [])),
    "grow": ("shape", lambda m, shape, numel: list(shape or []) + [2]),
    "encoding": ("encoding", lambda m, shape, numel: "sparse_codebook"),
    "scalar": ("shape", lambda m, shape, numel: []),
    "huge-dims": ("shape", lambda m, shape, numel: m.choice(
        [[2**26, 2**26, 2**2], [2**53 - 1], [2**53], [2**31, 2**31, 4], [0, 2**60]])),
    "negative": ("shape", lambda m, shape, numel: [-(d or 1) for d in (shape or [1])]),
}


@mutator("struct", 2)
def tensor_raw(m):
    h, secs = m.split()
    t = m.choice(m.tensors(h, "raw"))
    shape = t.get("shape")
    numel = math.prod(shape) if isinstance(shape, list) and all(is_int(d) for d in shape) else 0
    op = m.choice(["dtype", "dtype", "reshape", "reshape", "rank9", "zero-dim", "grow",
                   "encoding", "scalar", "huge-dims", "negative"])
    key, new = _RAW_EDITS[op]
    t[key] = new(m, shape, numel)
    m.note(f"raw {t.get('name')!r}: {op} -> {short({k: t.get(k) for k in ('dtype', 'shape')})}")
    return m.pack(h, secs)


def _grow_first_dim(m, t, rows, n_cols, shape):
    shape[0] += 1


def _swap_rows_and_columns(m, t, rows, n_cols, shape):
    t["rows"], t["cols"] = n_cols, rows
    t["shape"] = [n_cols, rows]


def _split_columns(m, t, rows, n_cols, shape):
    a = m.choice([d for d in range(1, n_cols + 1) if n_cols % d == 0])
    t["shape"] = [rows, a, n_cols // a]


def _huge_columns(m, t, rows, n_cols, shape):
    big = m.choice([2**31, 2**32, 2**40])
    t["cols"] = big
    t["shape"] = [rows, big]


#: Sparse-tensor edits other than those spelled by their names ("nnz+1", "gap_bits=9"...).
_SPARSE_EDITS = {
    "shape0+1": _grow_first_dim,
    "swap-rc": _swap_rows_and_columns,
    "reshape-cols": _split_columns,
    "rank1": lambda m, t, rows, n_cols, shape: t.update(shape=[rows * n_cols]),
    "nnz=entries+1": lambda m, t, rows, n_cols, shape: t.update(nnz=t["entries"] + 1),
    "entries=numel+1": lambda m, t, rows, n_cols, shape: t.update(entries=rows * n_cols + 1),
    "filler=size": lambda m, t, rows, n_cols, shape: t.update(
        filler_code=t["codebook"]["size"]),
    "filler=last": lambda m, t, rows, n_cols, shape: t.update(
        filler_code=t["codebook"]["size"] - 1),
    "zero-everything": lambda m, t, rows, n_cols, shape: t.update(
        rows=0, cols=0, shape=[0, 0], nnz=0, entries=0),
    "cols=huge": _huge_columns,
    "rows=huge": lambda m, t, rows, n_cols, shape: t.update(
        rows=2**40, shape=[2**40] + list(shape[1:])),
}


@mutator("struct", 3)
def tensor_sparse_dims(m):
    h, secs = m.split()
    t = m.sparse_tensor(h)
    rows, n_cols, shape = t.get("rows"), t.get("cols"), t.get("shape")
    op = m.choice(["rows+1", "rows-1", "cols+1", "cols-1", "shape0+1", "swap-rc",
                   "reshape-cols", "rank1", "nnz+1", "nnz-1", "entries+1", "entries-1",
                   "nnz=entries+1", "entries=numel+1", "gap_bits+1", "gap_bits-1",
                   "gap_bits=0", "gap_bits=9", "filler=null", "filler=0", "filler=size",
                   "filler=last", "zero-everything", "cols=huge", "rows=huge"])
    if not edit_by_table(op, _SPARSE_EDITS, m, t, rows, n_cols, shape):
        spelled_edit(t, op, {"filler": "filler_code"})
    m.note(f"sparse {t.get('name')!r}: {op}")
    return m.pack(h, secs)


def _shrink(m, t, vals, k):
    n = m.rng.randint(1, max(1, k - 1))
    fc = t.get("filler_code")
    if is_int(fc) and fc >= n:
        t["filler_code"] = None if m.rng.random() < 0.5 else n - 1
    return n, vals[:n]


def _nonzero_filler(m, t, vals, k):
    fc = t.get("filler_code")
    if not is_int(fc):
        raise Skip("no filler code")
    vals[fc] = 0.5
    return k, vals


_SPECIAL_CENTROIDS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "neg-zero": -0.0,
                      "denormal": np.float32(1e-45)}


def _special_centroid(op):
    def edit(m, t, vals, k):
        vals[m.rng.randrange(k)] = _SPECIAL_CENTROIDS[op]
        return k, vals
    return edit


#: op -> function of (m, tensor, centroids, size) giving the new (size, centroids).
_CODEBOOK_EDITS = {
    "size0": lambda m, t, vals, k: (0, vals[:0]),
    "size257": lambda m, t, vals, k: (257, np.resize(vals, 257)),
    "size+1": lambda m, t, vals, k: (k + 1, np.append(vals, np.float32(0.75))),
    "size-1": lambda m, t, vals, k: (k - 1, vals[:k - 1]),
    "shrink": _shrink,
    "filler-nonzero": _nonzero_filler,
    "max-size": lambda m, t, vals, k: (256, np.resize(vals, 256)),
    "one": lambda m, t, vals, k: (1, vals[:1]),
    **{op: _special_centroid(op) for op in _SPECIAL_CENTROIDS},
}


@mutator("struct", 2.5)
def codebook(m):
    h, secs = m.split()
    t = m.sparse_tensor(h)
    cb = t["codebook"]
    i = cb["section"]
    vals = np.frombuffer(secs[i], "<f4").copy()
    op = m.choice(["size0", "size257", "size+1", "size-1", "shrink", "nan", "inf", "-inf",
                   "neg-zero", "denormal", "filler-nonzero", "max-size", "one"])
    cb["size"], vals = _CODEBOOK_EDITS[op](m, t, vals, cb["size"])
    secs[i] = vals.astype("<f4").tobytes()
    m.note(f"codebook of {t.get('name')!r}: {op}")
    return m.pack(h, secs)
