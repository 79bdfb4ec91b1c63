"""Mutators of class "struct" that edit any value of the parsed header (every checksum
recomputed): absurd integers, values of another type, strange strings, keys dropped or
added."""

import copy

from .mutate import (
    OTHER_TYPES,
    fmt_path,
    get_at,
    is_int,
    mutator,
    put_at,
    region_path,
    short,
)

STRINGS = ["", " ", "x" * 256, "x" * 257, "x" * 5000, "\u00e9", "\u0000", "\ud800", "\udfff",
           "\u540d\u524d", "\U0001F600", "raw", "sparse_codebook", "packed", "huffman",
           "float32", "float16", "int32", "int64", "uint8", "float64", "bool", "bfloat16",
           "linear", "conv2d", "relu", "none", "tanh", "x", "nope", "NaN", "null", "1"]


def _replace_value(m, pred, new, *, keep_table=True, describe=short):
    """One value matching pred(path, value) replaced by new(current, header)."""
    h, secs = m.split(table=keep_table)
    path = region_path(m, h, pred)
    cur = get_at(h, path)
    v = new(cur, h)
    put_at(h, path, v)
    m.note(f"{fmt_path(path)}: {describe(cur)} -> {short(v)}")
    return m.pack(h, secs, keep_table=keep_table)


@mutator("struct", 6)
def hdr_int(m):
    return _replace_value(m, lambda p, v: is_int(v), lambda cur, h: m.absurd(cur))


@mutator("struct", 3)
def hdr_type(m):
    def other_type(cur, h):
        return copy.deepcopy(m.choice([x for x in OTHER_TYPES if type(x) is not type(cur)]))
    return _replace_value(m, lambda p, v: True, other_type,
                          describe=lambda cur: type(cur).__name__)


@mutator("struct", 2.5)
def hdr_string(m):
    def strange(cur, h):
        names = [t.get("name") for t in m.tensors(h)]
        return m.choice(STRINGS + [s for s in names if isinstance(s, str)] +
                        [cur.upper(), cur + " ", cur[:-1], cur + cur])
    return _replace_value(m, lambda p, v: isinstance(v, str), strange, keep_table=False)


def _some_object(m, pred):
    """(header, sections, path, object) of a JSON object in the header matching pred."""
    h, secs = m.split(table=True)
    path = region_path(m, h, pred, root=True)
    return h, secs, path, get_at(h, path)


@mutator("struct", 2)
def hdr_key_drop(m):
    h, secs, path, obj = _some_object(m, lambda p, v: isinstance(v, dict) and v)
    k = m.choice(list(obj))
    del obj[k]
    m.note(f"drop {fmt_path(path + (k,))}")
    return m.pack(h, secs, keep_table=True)


@mutator("struct", 1.5)
def hdr_key_add(m):
    h, secs, path, obj = _some_object(m, lambda p, v: isinstance(v, dict))
    k = m.choice(["extra", "Name", "name ", "", "bits", "section", "alphabet_size", "dtype",
                  "params", "attrs", "metadata", "graph", "offset", "\u00e9"])
    if k in obj:
        k = k + "_"
    obj[k] = copy.deepcopy(m.choice(OTHER_TYPES + [1, "float32"]))
    m.note(f"add key {fmt_path(path + (k,))}")
    return m.pack(h, secs, keep_table=True)
