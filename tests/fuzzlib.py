"""Mutation fuzzing of .cdnn loading, decoding and running.

A case is named by its id ``"SEED-INDEX"``: :func:`make_case` draws the seed file and the
mutations from a ``random.Random`` seeded by that id alone, so any case can be re-created from
its id (as long as this module's mutations and seed files are unchanged). :func:`execute` takes one file through the validating reader, decodes every tensor (CSR
of sparse ones both with the parallel and the serial Huffman decoder) and, for a file with a
graph, builds an ``InferenceSession`` and runs it once (when ``cdnn_runtime.session`` is there).
Each case ends in one outcome:

=========== ===================================================================================
ok          loaded, every tensor decoded and self-consistent, the session built and ran (a
            ValueError or CdnnError from ``run`` on the generated input counts as ok)
rejected    a CdnnError subclass was raised while loading or decoding
crash       the worker process died (a signal such as SIGSEGV: an index no check stopped)
hang        no answer within the per-case timeout
other       any exception that is not a CdnnError (type, message and traceback are kept)
wrong       loaded, but the result breaks an invariant (a column past the column count, a
            code past the codebook, serial and parallel decoding disagree...), or a change
            that keeps the file's meaning (re-encoded streams, reordered sections, tensors
            or nodes, reformatted JSON) was rejected or changed the decoded content
gen-error   the mutation generator itself failed (a bug of this module, not of the runtime)
=========== ===================================================================================

:class:`Runner` executes cases in long-lived worker processes (this file run as a script with
``--worker``) fed through a pipe, so that a crash or hang costs one worker, which is restarted,
and never the caller.

Mutations come in three classes: ``byte`` (bit flips, truncations, insertions... with no
checksum repaired, so most stop at a CRC), ``preamble`` (a preamble field changed and the
preamble CRC recomputed) and ``struct`` (the file taken apart with ``craft.split``, its header
or sections changed and every checksum recomputed, so that the deep checks are reached).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import pickle
import random
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import craft  # noqa: E402
from cdnn_runtime.constants import ALIGNMENT  # noqa: E402

VECTORS = ROOT / "spec" / "vectors"
VECTOR_NAMES = ("raw_tensors", "sparse_huffman", "sparse_fillers", "chunked_huffman",
                "conv_weight", "tiny_graph")

OUTCOMES = ("ok", "rejected", "crash", "hang", "other", "wrong", "gen-error")
FAILURES = ("crash", "hang", "other", "wrong", "gen-error")
CLASSES = ("byte", "preamble", "struct")

#: Probability of each mutation class, then of stacking a second mutation on the first.
CLASS_WEIGHTS = {"byte": 0.24, "preamble": 0.06, "struct": 0.70}
STACK_PROBABILITY = 0.15

#: Seed files and how often each is drawn.
SEED_WEIGHTS = {"raw_tensors": 1.0, "sparse_huffman": 1.0, "sparse_fillers": 1.0,
                "chunked_huffman": 1.0, "conv_weight": 1.0, "tiny_graph": 1.5,
                "graph_ops": 2.5, "mixed_streams": 1.5, "big_parallel": 0.4}

#: Inputs larger than this (elements) are not run: a declared shape is not a reason to
#: allocate gigabytes in the fuzzer itself.
MAX_FEED_ELEMENTS = 1 << 20
#: Sparse tensors are densified (``CdnnFile.dense``) only up to this many elements.
MAX_DENSE_ELEMENTS = 1 << 22
#: Address-space cap of a worker, so that a runaway allocation fails there (MemoryError)
#: rather than taking the machine's memory.
WORKER_MEMORY_BYTES = 3 * 1024**3

ALIGN = ALIGNMENT
PRE = 64


# =============================================================================================
# Seed files
# =============================================================================================


def _csr(codes2d):
    from cdnn_runtime.sparse import csr_from_dense
    return csr_from_dense(codes2d)


def _codes(rng, rows, cols, density, k, skew=False):
    mask = rng.random((rows, cols)) < density
    vals = rng.integers(1, k, (rows, cols))
    if skew:
        vals = np.minimum(vals, rng.integers(1, k, (rows, cols)))
    return np.where(mask, vals, 0)


def _add_sparse(w, name, shape, codes2d, codebook, **kw):
    row_ptr, cols, codes = _csr(codes2d)
    w.add_sparse_codebook(name, shape, row_ptr, cols, codes, codebook, **kw)


def seed_graph_ops():
    """A graph touching every op of the format, two inputs, sparse conv and linear weights
    (the linear one with 1,200+ entries in Huffman chunks of 64 symbols)."""
    from cdnn_runtime.writer import Writer
    rng = np.random.default_rng(11)
    w = Writer(metadata={"producer": "cdnn fuzz seeds", "producer_version": "1"})
    cb = np.array([0.0, -0.5, -0.25, -0.125, 0.125, 0.25, 0.5, 1.0], np.float32)
    _add_sparse(w, "c1.weight", (8, 3, 3, 3), _codes(rng, 8, 27, 0.5, 8), cb, gap_bits=2)
    w.add_raw("c1.bias", rng.standard_normal(8).astype(np.float32) / 4)
    w.add_raw("bn1.mean", rng.standard_normal(8).astype(np.float32) / 8)
    w.add_raw("bn1.var", (rng.random(8) + 0.5).astype(np.float32))
    w.add_raw("bn1.weight", (rng.random(8) + 0.5).astype(np.float32))
    w.add_raw("bn1.bias", rng.standard_normal(8).astype(np.float32) / 8)
    w.add_raw("c2.weight", (rng.integers(-4, 5, (8, 4, 3, 3)) / 8).astype(np.float32))
    w.add_raw("prelu.weight", np.linspace(0.05, 0.4, 8).astype(np.float32))
    cb2 = np.linspace(-1, 1, 16).astype(np.float32)
    cb2[7] = 0.0625
    _add_sparse(w, "fc1.weight", (64, 32), _codes(rng, 64, 32, 0.6, 16, skew=True), cb2,
                gap_bits=3, coding="huffman", chunk_symbols=64)
    w.add_raw("fc1.bias", rng.standard_normal(64).astype(np.float32) / 8)
    w.add_raw("scale", (rng.random(64) + 0.5).astype(np.float32))
    w.add_raw("fc2.weight", (rng.standard_normal((10, 128)) / 8).astype(np.float32))
    w.add_raw("fc2.bias", np.zeros(10, np.float32))

    def node(name, op, inputs, out, params=None, attrs=None):
        n = {"name": name, "op": op, "inputs": inputs, "outputs": [out]}
        if params is not None:
            n["params"] = params
        if attrs is not None:
            n["attrs"] = attrs
        return n

    w.set_graph({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 3, 8, 8]},
                   {"name": "y", "dtype": "float32", "shape": [None, 10]}],
        "nodes": [
            node("c1", "conv2d", ["x"], "c1", {"weight": "c1.weight", "bias": "c1.bias"},
                 {"padding": [1, 1]}),
            node("bn1", "batch_norm", ["c1"], "bn1", {"mean": "bn1.mean", "var": "bn1.var",
                                                    "weight": "bn1.weight",
                                                    "bias": "bn1.bias"}, {"eps": 1e-5}),
            node("r1", "relu", ["bn1"], "r1"),
            node("p1", "max_pool2d", ["r1"], "p1", attrs={"kernel_size": [2, 2]}),
            node("c2", "conv2d", ["p1"], "c2", {"weight": "c2.weight"},
                 {"padding": [1, 1], "groups": 2}),
            node("lr", "leaky_relu", ["c2"], "lr", attrs={"negative_slope": 0.1}),
            node("res", "add", ["p1", "lr"], "res"),
            node("lrn", "local_response_norm", ["res"], "lrn", attrs={"size": 3}),
            node("ap", "avg_pool2d", ["lrn"], "ap",
                 attrs={"kernel_size": [2, 2], "stride": [1, 1], "padding": [1, 1],
                        "count_include_pad": False}),
            node("aap", "adaptive_avg_pool2d", ["ap"], "aap", attrs={"output_size": [2, 2]}),
            node("pr", "prelu", ["aap"], "pr", {"weight": "prelu.weight"}),
            node("fl", "flatten", ["pr"], "fl"),
            node("fc1", "linear", ["fl"], "fc1", {"weight": "fc1.weight", "bias": "fc1.bias"}),
            node("g", "gelu", ["fc1"], "g", attrs={"approximate": "tanh"}),
            node("do", "dropout", ["g"], "do0", attrs={"p": 0.2}),
            node("g2", "gelu", ["do0"], "do", attrs={"approximate": "none"}),
            node("scale", "mul", ["do"], "scale", {"other": "scale"}),
            node("rs", "reshape", ["scale"], "rs", attrs={"shape": [4, 16]}),
            node("tp", "transpose", ["rs"], "tp", attrs={"dim0": 1, "dim1": 2}),
            node("pm", "permute", ["tp"], "pm", attrs={"dims": [0, 2, 1]}),
            node("sg", "sigmoid", ["pm"], "sg"),
            node("th", "tanh", ["rs"], "th"),
            node("cat", "cat", ["sg", "th"], "cat", attrs={"dim": 1}),
            node("fl2", "flatten", ["cat"], "fl2", attrs={"start_dim": 1, "end_dim": -1}),
            node("fc2", "linear", ["fl2"], "fc2", {"weight": "fc2.weight", "bias": "fc2.bias"}),
            node("r6", "relu6", ["fc2"], "r6"),
            node("id", "identity", ["r6"], "id"),
            node("plus", "add", ["id", "y"], "plus"),
            node("sm", "softmax", ["plus"], "probs", attrs={"dim": 1}),
            node("lsm", "log_softmax", ["plus"], "logp", attrs={"dim": -1}),
        ],
        "outputs": [{"name": "probs"}, {"name": "logp"}, {"name": "fc1"}],
    })
    return w.to_bytes()


def seed_mixed_streams():
    """Packed and Huffman streams side by side: fillers at gap_bits 1, one-symbol chunks,
    an all-pruned tensor, a rank-3 sparse tensor, empty rows, integer raw tensors."""
    from cdnn_runtime.writer import Writer
    rng = np.random.default_rng(12)
    w = Writer(metadata={"producer": "cdnn fuzz seeds", "recipe": {"prune": 0.9, "bits": 4}})
    cb = np.array([0.0, 0.5, -0.5, 1.5], np.float32)
    codes = _codes(rng, 5, 50, 0.1, 4)
    codes[2] = 0
    _add_sparse(w, "fillers", (5, 50), codes, cb, gap_bits=1, coding="packed")
    _add_sparse(w, "one_symbol_chunks", (4, 3, 5), _codes(rng, 4, 15, 0.5, 4, skew=True),
                cb, gap_bits=2, coding="huffman", chunk_symbols=1)
    _add_sparse(w, "pruned", (3, 7), np.zeros((3, 7), np.int64), cb, gap_bits=3)
    cb2 = np.array([0.25, -1.0], np.float32)
    _add_sparse(w, "no_zero_centroid", (6, 9), _codes(rng, 6, 9, 0.7, 2) * 0 +
                np.where(rng.random((6, 9)) < 0.6, 1, 0), np.array([0.0, 0.25], np.float32),
                gap_bits=4, coding="huffman", chunk_symbols=5)
    _add_sparse(w, "dense_row", (2, 300), np.ones((2, 300), np.int64), cb2[::-1].copy(),
                gap_bits=8, coding="auto")
    w.add_raw("ids", np.arange(-3, 9, dtype=np.int64).reshape(3, 4))
    w.add_raw("bytes", np.arange(256, dtype=np.uint8))
    w.add_raw("half", np.linspace(-2, 2, 7).astype(np.float16))
    return w.to_bytes()


def seed_big_parallel():
    """A 1350 x 280 sparse weight with ~300,000 entries (rows of fewer than 256, so that
    row counts Huffman-code too) in chunks of 8,192 symbols: its streams take the parallel
    decoder; a graph runs it as a linear layer (large enough for the threaded kernels)."""
    from cdnn_runtime.huffman import PARALLEL_MIN_SYMBOLS
    from cdnn_runtime.writer import Writer
    rng = np.random.default_rng(13)
    w = Writer(metadata={"producer": "cdnn fuzz seeds"})
    cb = np.array([0.0, 0.1, -0.1, 0.2, -0.2, 0.4, -0.4, 0.8], np.float32)
    codes = _codes(rng, 1350, 280, 0.8, 8, skew=True)
    assert np.count_nonzero(codes) > PARALLEL_MIN_SYMBOLS
    assert np.count_nonzero(codes, axis=1).max() < 250
    _add_sparse(w, "big.weight", (1350, 280), codes, cb, gap_bits=2, coding="huffman",
                chunk_symbols=8192)
    w.add_raw("big.bias", np.linspace(-1, 1, 1350).astype(np.float32))
    w.set_graph({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 280]}],
        "nodes": [{"name": "big", "op": "linear", "inputs": ["x"], "outputs": ["h"],
                   "params": {"weight": "big.weight", "bias": "big.bias"}},
                  {"name": "act", "op": "tanh", "inputs": ["h"], "outputs": ["out"]}],
        "outputs": [{"name": "out"}],
    })
    return w.to_bytes()


def build_seeds():
    """{name: bytes} of every seed file: the golden vectors and three built here."""
    seeds = {}
    for name in VECTOR_NAMES:
        seeds[name] = (VECTORS / f"{name}.cdnn").read_bytes()
    seeds["graph_ops"] = seed_graph_ops()
    seeds["mixed_streams"] = seed_mixed_streams()
    seeds["big_parallel"] = seed_big_parallel()
    return seeds


# =============================================================================================
# File layout helpers (lenient: they also run on damaged files)
# =============================================================================================


def _align(n, to=ALIGN):
    return (n + to - 1) // to * to


def _crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def table_for(sections):
    table, pos = [], 0
    for s in sections:
        table.append({"offset": pos, "length": len(s), "crc32": _crc(s)})
        pos = _align(pos + len(s))
    return table


def layout(data):
    """Interesting byte offsets of a (possibly damaged) file: preamble fields, header end,
    data start, section starts and ends."""
    marks = {0, 1, 7, 8, 12, 16, 24, 32, 40, 44, 60, 63, 64, len(data) - 1}
    try:
        hl = struct.unpack_from("<Q", data, 24)[0]
        if PRE + hl <= len(data):
            marks.add(PRE + hl)
            start = _align(PRE + hl)
            marks.add(start)
            header = json.loads(craft.header_bytes(data))
            for s in header.get("sections", []):
                marks.add(start + s["offset"])
                marks.add(start + s["offset"] + s["length"])
    except Exception:
        pass
    return sorted(m for m in marks if 0 <= m < len(data))


def section_spans(data):
    """[(start, length)] of the sections as the header declares them, or []."""
    try:
        hl = struct.unpack_from("<Q", data, 24)[0]
        header = json.loads(craft.header_bytes(data))
        start = _align(PRE + hl)
        return [(start + s["offset"], s["length"]) for s in header["sections"]
                if start + s["offset"] + s["length"] <= len(data)]
    except Exception:
        return []


def checksums_ok(data):
    """True when the preamble, header and every declared section match their CRC-32s (so
    that a reader gets past every checksum to the structural checks)."""
    try:
        if len(data) < PRE or _crc(data[:60]) != struct.unpack_from("<I", data, 60)[0]:
            return False
        hl = struct.unpack_from("<Q", data, 24)[0]
        if PRE + hl > len(data):
            return False
        raw = data[PRE:PRE + hl]
        if _crc(raw) != struct.unpack_from("<I", data, 40)[0]:
            return False
        header = json.loads(craft.header_bytes(data))
        start = _align(PRE + hl)
        for s in header["sections"]:
            off, length, crc = s["offset"], s["length"], s["crc32"]
            if start + off + length > len(data) or _crc(data[start + off:start + off + length]) != crc:
                return False
        return True
    except Exception:
        return False


def dumps(obj, **kw):
    kw.setdefault("sort_keys", True)
    kw.setdefault("separators", (",", ":"))
    return json.dumps(obj, **kw).encode("utf-8", "surrogatepass")


def _fix_preamble_crc(d):
    d = bytearray(d)
    d[60:64] = struct.pack("<I", _crc(bytes(d[:60])))
    return bytes(d)


# =============================================================================================
# Mutation machinery
# =============================================================================================


class Skip(Exception):
    """This mutation does not apply to this file; the generator draws another."""


@dataclass
class Mutator:
    name: str
    cls: str
    weight: float
    fn: object
    first_only: bool


MUTATORS: dict[str, Mutator] = {}


def mutator(cls, weight=1.0, first_only=False):
    def deco(fn):
        MUTATORS[fn.__name__] = Mutator(fn.__name__, cls, weight, fn, first_only)
        return fn
    return deco


class Mut:
    """One mutation being applied: the input bytes, a random source, and what was done."""

    def __init__(self, rng, data, seed_name, seeds):
        self.rng = rng
        self.data = data
        self.seed_name = seed_name
        self.seeds = seeds
        self.notes = []
        #: None, or what the mutation keeps: "all" (decoded tensors, graph and metadata) or
        #: "content" (decoded tensors and graph).
        self.same = None

    def note(self, text):
        self.notes.append(str(text)[:200])

    def choice(self, seq):
        seq = list(seq)
        if not seq:
            raise Skip("nothing to choose from")
        return seq[self.rng.randrange(len(seq))]

    def split(self):
        try:
            header, sections = craft.split(self.data)
        except Exception:
            raise Skip("file does not split") from None
        if not isinstance(header, dict) or not isinstance(header.get("sections"), list):
            raise Skip("header is not a file header")
        return copy.deepcopy(header), [bytes(s) for s in sections]

    def pack(self, header, sections, *, keep_table=False, head=None, **dump_kw):
        """Assemble with valid checksums. The section table written is the one in `header`
        when keep_table (so that it can be mutated), else the correct one; the bytes are laid
        out by the correct one either way."""
        table = table_for(sections)
        h = dict(header)
        if not keep_table:
            h["sections"] = table
        if head is None:
            head = dumps(h, **dump_kw)
        deflated = len(self.data) >= PRE and bool(struct.unpack_from("<I", self.data, 12)[0] & 1)
        if deflated:
            head = craft.deflate_header(head)
        return craft.assemble(dict(header, sections=table), sections, header_bytes=head,
                              fix_sections=False, flags=int(deflated))

    # ---- views of the header -------------------------------------------------------------
    @staticmethod
    def tensors(header, encoding=None):
        ts = header.get("tensors")
        if not isinstance(ts, list):
            return []
        return [t for t in ts if isinstance(t, dict)
                and (encoding is None or t.get("encoding") == encoding)]

    def sparse_tensor(self, header, need=None):
        ts = [t for t in self.tensors(header, "sparse_codebook") if need is None or need(t)]
        return self.choice(ts)

    def stream(self, header, coding=None):
        """(tensor, key, descriptor) of a random stream (of the given coding)."""
        found = [(t, k, t[k]) for t in self.tensors(header, "sparse_codebook")
                 for k in ("row_counts", "gaps", "codes")
                 if isinstance(t.get(k), dict) and (coding is None or t[k].get("coding") == coding)]
        return self.choice(found)

    def graph(self, header):
        g = header.get("graph")
        if not isinstance(g, dict) or not isinstance(g.get("nodes"), list) or not g["nodes"]:
            raise Skip("no graph")
        return g

    def absurd(self, current=None):
        vals = list(ABSURD)
        if isinstance(current, int) and not isinstance(current, bool):
            vals += [current - 1, current + 1, current * 2, -current, current + 64,
                     current * 8 + 1, current // 2]
            vals += [current - 1, current + 1]  # off-by-one twice as often
        return self.choice(vals)


ABSURD = [0, 1, 2, 3, -1, -2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257,
          2**16, 2**24, 2**24 + 1, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**53 - 1,
          2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**31), -(2**63),
          -(2**64), -(10**30), 10**30, 10**400, 0.0, -0.0, 1.0, 0.5, 1.5, 1e300, -1e300,
          float(2**53), "1", "", "0x10", None, True, False, [], [1], {}, {"a": 1}]

OTHER_TYPES = [None, True, False, 0, -1, 1.5, "x", "", [], [None], [1, 2], {}, {"x": 1}]

STRINGS = ["", " ", "x" * 256, "x" * 257, "x" * 5000, "\u00e9", "\u0000", "\ud800", "\udfff",
           "\u540d\u524d", "\U0001F600", "raw", "sparse_codebook", "packed", "huffman",
           "float32", "float16", "int32", "int64", "uint8", "float64", "bool", "bfloat16",
           "linear", "conv2d", "relu", "none", "tanh", "x", "nope", "NaN", "null", "1"]


def _paths(obj, path=()):
    """Every (path, value) below obj, containers included."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, path + (i,))


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _put(obj, path, value):
    _get(obj, path[:-1])[path[-1]] = value


def _region_paths(m, header, pred, root=False):
    """Paths matching pred, drawn first by region (section table, tensors, graph, metadata,
    top level) so that the big section table does not drown the rest."""
    regions = defaultdict(list)
    for path, v in _paths(header):
        if (path or root) and pred(path, v):
            regions[path[0] if path and path[0] in ("sections", "tensors", "graph",
                                                     "metadata") else "top"].append(path)
    if not regions:
        raise Skip("no such field")
    weights = {"sections": 1, "tensors": 4, "graph": 3, "metadata": 0.5, "top": 0.5}
    names = sorted(regions)
    r = m.rng.choices(names, [weights[n] for n in names])[0]
    return m.choice(regions[r])


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _fmt_path(path):
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _short(v):
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


# ---- byte class ----------------------------------------------------------------------------


def _pos(m, d):
    if not d:
        raise Skip("empty file")
    if m.rng.random() < 0.3:
        hl = struct.unpack_from("<Q", d, 24)[0] if len(d) >= 32 else 0
        return m.rng.randrange(min(len(d), PRE + min(hl, len(d))))
    return m.rng.randrange(len(d))


@mutator("byte", 3)
def byte_flip(m):
    d = bytearray(m.data)
    n = m.choice([1, 1, 1, 2, 3, 8])
    where = []
    for _ in range(n):
        p = _pos(m, d)
        d[p] ^= 1 << m.rng.randrange(8)
        where.append(p)
    m.note(f"flip {n} bit(s) at {where}")
    return bytes(d)


@mutator("byte", 2)
def byte_set(m):
    d = bytearray(m.data)
    where = []
    for _ in range(m.choice([1, 1, 2, 4])):
        p = _pos(m, d)
        d[p] = m.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, m.rng.randrange(256)])
        where.append(p)
    m.note(f"set byte(s) at {where}")
    return bytes(d)


@mutator("byte", 2)
def byte_truncate_boundary(m):
    b = m.choice(layout(m.data))
    cut = max(0, min(len(m.data) - 1, b + m.choice([-1, 0, 0, 1])))
    m.note(f"truncate to {cut} of {len(m.data)} bytes")
    return m.data[:cut]


@mutator("byte", 1)
def byte_truncate_random(m):
    cut = m.rng.randrange(len(m.data))
    m.note(f"truncate to {cut} of {len(m.data)} bytes")
    return m.data[:cut]


@mutator("byte", 1.5)
def byte_insert(m):
    p = m.choice(layout(m.data)) if m.rng.random() < 0.5 else m.rng.randrange(len(m.data) + 1)
    n = m.choice([1, 2, 7, 8, 63, 64])
    ins = b"\0" * n if m.rng.random() < 0.4 else m.rng.randbytes(n)
    m.note(f"insert {n} byte(s) at {p}")
    return m.data[:p] + ins + m.data[p:]


@mutator("byte", 1.5)
def byte_delete(m):
    p = m.choice(layout(m.data)) if m.rng.random() < 0.5 else m.rng.randrange(len(m.data))
    n = m.choice([1, 2, 7, 8, 63, 64])
    m.note(f"delete {n} byte(s) at {p}")
    return m.data[:p] + m.data[p + n:]


@mutator("byte", 1)
def byte_swap_sections(m):
    spans = section_spans(m.data)
    if len(spans) < 2:
        raise Skip("fewer than two sections")
    i, j = sorted(m.rng.sample(range(len(spans)), 2))
    (a, la), (b, lb) = spans[i], spans[j]
    d = m.data
    out = d[:a] + d[b:b + lb] + d[a + la:b] + d[a:a + la] + d[b + lb:]
    m.note(f"swap the bytes of sections {i} and {j} (no checksum fixed)")
    return out


@mutator("byte", 0.5)
def byte_splice(m):
    other = m.seeds[m.choice(sorted(m.seeds))]
    n = min(len(other), len(m.data))
    a = m.rng.randrange(n)
    b = min(n, a + m.choice([8, 64, 512, n]))
    m.note(f"splice bytes {a}-{b} of another seed")
    return m.data[:a] + other[a:b] + m.data[b:]


@mutator("byte", 0.5)
def byte_append(m):
    n = m.choice([1, 8, 63, 64, 65, 128])
    tail = b"\0" * n if m.rng.random() < 0.5 else m.rng.randbytes(n)
    m.note(f"append {n} byte(s)")
    return m.data + tail


@mutator("byte", 0.5)
def byte_magic(m):
    d = m.data
    variants = {
        "lf->crlf": d[:4] + b"\r\r\n" + d[6:],
        "crlf->lf": d[:4] + b"\n\x1a\n" + d[8:],
        "last lf->crlf": d[:7] + b"\r\n" + d[8:],
        "high bit lost": bytes([d[0] & 0x7F]) + d[1:],
        "png": b"\x89PNG\r\n\x1a\n" + d[8:],
        "zeros": b"\0" * 8 + d[8:],
        "text": b"CDNN\n" + d[5:],
        "short": d[:8],
        "empty": b"",
        "magic only": d[:4],
    }
    k = m.choice(sorted(variants))
    m.note(f"magic: {k}")
    return variants[k]


@mutator("byte", 1)
def byte_padding(m):
    """A nonzero byte in zero padding (header padding or between sections): no checksum
    covers padding, so this reaches the padding checks with every CRC intact."""
    gaps = []
    try:
        hl = struct.unpack_from("<Q", m.data, 24)[0]
        pos = PRE + hl
        for start, length in [(s, n) for s, n in section_spans(m.data)] + [(len(m.data), 0)]:
            if start > pos:
                gaps.append((pos, start))
            pos = max(pos, start + length)
    except Exception:
        pass
    if not gaps:
        raise Skip("no padding")
    a, b = m.choice(gaps)
    p = m.rng.randrange(a, b)
    d = bytearray(m.data)
    d[p] = m.rng.randrange(1, 256)
    m.note(f"nonzero padding byte at {p}")
    return bytes(d)


# ---- preamble class ------------------------------------------------------------------------

PREAMBLE_FIELDS = {"version": (8, "<I"), "flags": (12, "<I"), "header_offset": (16, "<Q"),
                   "header_length": (24, "<Q"), "file_length": (32, "<Q"),
                   "header_crc": (40, "<I")}


@mutator("preamble", 3)
def pre_field(m):
    if len(m.data) < PRE:
        raise Skip("no preamble")
    name = m.choice(sorted(PREAMBLE_FIELDS) + ["reserved"])
    d = bytearray(m.data)
    if name == "reserved":
        p = m.rng.randrange(44, 60)
        d[p] = m.rng.randrange(1, 256)
        m.note(f"reserved byte {p} set")
        return _fix_preamble_crc(d)
    off, fmt = PREAMBLE_FIELDS[name]
    cur = struct.unpack_from(fmt, d, off)[0]
    top = 2**32 - 1 if fmt == "<I" else 2**64 - 1
    cands = [0, 1, 2, cur - 1, cur + 1, cur + 64, cur - 64, cur * 2, top, top - 1, 2**31,
             2**32, 2**53, 2**63, len(d), len(d) + 1, len(d) - 1, 16 * 1024**2,
             16 * 1024**2 + 1, 64, 63, 65, 128]
    v = m.choice([c for c in cands if 0 <= c <= top and c != cur])
    struct.pack_into(fmt, d, off, v)
    m.note(f"preamble {name}: {cur} -> {v}")
    return _fix_preamble_crc(d)


@mutator("preamble", 2)
def header_deflate(m):
    """Store the header deflated (a meaning-preserving rewrite), or damage a deflated header
    (flipped or cut bytes, trailing garbage, a stream that inflates past the cap) with every
    checksum fixed, so that the reader's inflate checks are reached."""
    header, sections = m.split()
    head = dumps(header)
    kind = m.choice(["rewrite", "flip", "cut", "trail", "bomb", "plain-flagged"])
    if kind == "rewrite":
        m.same = "all"
        m.note("header stored deflated / plain swapped")
        flagged = bool(struct.unpack_from("<I", m.data, 12)[0] & 1)
        return craft.assemble(header, sections, deflate=not flagged)
    if kind == "plain-flagged":
        m.note("plain header with the deflate flag set")
        return craft.assemble(header, sections, header_bytes=head, flags=1)
    packed = bytearray(craft.deflate_header(head))
    if kind == "flip":
        p = m.rng.randrange(len(packed))
        packed[p] ^= 1 << m.rng.randrange(8)
    elif kind == "cut":
        packed = packed[:m.rng.randrange(len(packed))]
    elif kind == "trail":
        packed += bytes(m.rng.randrange(256) for _ in range(m.rng.randrange(1, 9)))
    else:
        packed = bytearray(craft.deflate_header(head + b" " * (16 * 1024 * 1024)))
    m.note(f"deflated header damaged: {kind}")
    return craft.assemble(header, sections, header_bytes=bytes(packed), flags=1)


@mutator("preamble", 1)
def pre_header_length_consistent(m):
    """header_length shrunk or grown with file_length moved the same way, CRCs fixed."""
    if len(m.data) < PRE:
        raise Skip("no preamble")
    d = bytearray(m.data)
    hl = struct.unpack_from("<Q", d, 24)[0]
    delta = m.choice([-1, 1, -64, 64, -hl])
    new = hl + delta
    if new < 0:
        raise Skip("negative")
    if delta > 0:
        d[PRE + hl:PRE + hl] = b" " * delta
    else:
        del d[PRE + new:PRE + hl]
    struct.pack_into("<Q", d, 24, new)
    struct.pack_into("<Q", d, 32, len(d))
    struct.pack_into("<I", d, 40, _crc(bytes(d[PRE:PRE + new])))
    m.note(f"header_length {hl} -> {new} (file and header CRC follow)")
    return _fix_preamble_crc(d)


# ---- struct class: generic header edits ----------------------------------------------------


@mutator("struct", 6)
def hdr_int(m):
    h, secs = m.split()
    h["sections"] = table_for(secs)
    path = _region_paths(m, h, lambda p, v: _is_int(v))
    cur = _get(h, path)
    v = m.absurd(cur)
    _put(h, path, v)
    m.note(f"{_fmt_path(path)}: {_short(cur)} -> {_short(v)}")
    return m.pack(h, secs, keep_table=True)


@mutator("struct", 3)
def hdr_type(m):
    h, secs = m.split()
    h["sections"] = table_for(secs)
    path = _region_paths(m, h, lambda p, v: True)
    cur = _get(h, path)
    v = m.choice([x for x in OTHER_TYPES if type(x) is not type(cur)])
    _put(h, path, copy.deepcopy(v))
    m.note(f"{_fmt_path(path)}: {type(cur).__name__} -> {_short(v)}")
    return m.pack(h, secs, keep_table=True)


@mutator("struct", 2.5)
def hdr_string(m):
    h, secs = m.split()
    path = _region_paths(m, h, lambda p, v: isinstance(v, str))
    cur = _get(h, path)
    names = [t.get("name") for t in m.tensors(h)]
    v = m.choice(STRINGS + [s for s in names if isinstance(s, str)] +
                 [cur.upper(), cur + " ", cur[:-1], cur + cur])
    _put(h, path, v)
    m.note(f"{_fmt_path(path)}: {_short(cur)} -> {_short(v)}")
    return m.pack(h, secs)


@mutator("struct", 2)
def hdr_key_drop(m):
    h, secs = m.split()
    h["sections"] = table_for(secs)
    path = _region_paths(m, h, lambda p, v: isinstance(v, dict) and v, root=True)
    obj = _get(h, path)
    k = m.choice(list(obj))
    del obj[k]
    m.note(f"drop {_fmt_path(path + (k,))}")
    return m.pack(h, secs, keep_table=True)


@mutator("struct", 1.5)
def hdr_key_add(m):
    h, secs = m.split()
    h["sections"] = table_for(secs)
    path = _region_paths(m, h, lambda p, v: isinstance(v, dict), root=True)
    obj = _get(h, path)
    k = m.choice(["extra", "Name", "name ", "", "bits", "section", "alphabet_size", "dtype",
                  "params", "attrs", "metadata", "graph", "offset", "\u00e9"])
    if k in obj:
        k = k + "_"
    obj[k] = copy.deepcopy(m.choice(OTHER_TYPES + [1, "float32"]))
    m.note(f"add key {_fmt_path(path + (k,))}")
    return m.pack(h, secs, keep_table=True)


# ---- struct class: sections ----------------------------------------------------------------


@mutator("struct", 2.5)
def sec_table(m):
    h, secs = m.split()
    table = table_for(secs)
    if not table:
        raise Skip("no sections")
    end = table[-1]["offset"] + table[-1]["length"]
    i = m.rng.randrange(len(table))
    e = table[i]
    op = m.choice(["offset=other", "offset+64", "offset-64", "offset+1", "offset=end",
                   "offset=huge", "length+1", "length-1", "length+64", "length=0",
                   "length=huge", "crc^1", "crc=0", "swap", "drop", "dup", "append-empty",
                   "empty", "reverse"])
    if op == "offset=other":
        e["offset"] = table[m.rng.randrange(len(table))]["offset"]
    elif op == "offset+64":
        e["offset"] += 64
    elif op == "offset-64":
        e["offset"] -= 64
    elif op == "offset+1":
        e["offset"] += 1
    elif op == "offset=end":
        e["offset"] = _align(end) + m.choice([0, 64, 2**20])
    elif op == "offset=huge":
        e["offset"] = m.choice([2**53 - 64, 2**53, 2**63, 2**64])
    elif op == "length+1":
        e["length"] += 1
    elif op == "length-1":
        e["length"] -= 1
    elif op == "length+64":
        e["length"] += 64
    elif op == "length=0":
        e["length"] = 0
    elif op == "length=huge":
        e["length"] = m.choice([2**31, 2**32, 2**53 - 1, 2**63])
    elif op == "crc^1":
        e["crc32"] ^= 1
    elif op == "crc=0":
        e["crc32"] = 0
    elif op == "swap":
        j = m.rng.randrange(len(table))
        table[i], table[j] = table[j], table[i]
    elif op == "drop":
        del table[i]
    elif op == "dup":
        table.insert(i, dict(e))
    elif op == "append-empty":
        table.append({"offset": _align(end), "length": 0, "crc32": 0})
    elif op == "empty":
        table = []
    else:
        table.reverse()
    h["sections"] = table
    m.note(f"section table: {op} (entry {i})")
    return m.pack(h, secs, keep_table=True)


def _owner(header, idx):
    for t in Mut.tensors(header):
        if t.get("section") == idx:
            return f"{t.get('name')!r}"
        for k in ("codebook", "row_counts", "gaps", "codes"):
            if isinstance(t.get(k), dict) and t[k].get("section") == idx:
                return f"{t.get('name')!r}.{k}"
    return "?"


@mutator("struct", 4)
def sec_payload(m):
    """Random bytes inside one section, its CRC recomputed."""
    h, secs = m.split()
    idx = [i for i, s in enumerate(secs) if s]
    i = m.choice(idx)
    s = bytearray(secs[i])
    op = m.choice(["bytes", "bytes", "bits", "run", "zeros", "ones", "last"])
    if op == "bytes":
        for _ in range(m.choice([1, 1, 2, 8])):
            s[m.rng.randrange(len(s))] = m.rng.randrange(256)
    elif op == "bits":
        for _ in range(m.choice([1, 2, 3])):
            s[m.rng.randrange(len(s))] ^= 1 << m.rng.randrange(8)
    elif op == "run":
        a = m.rng.randrange(len(s))
        b = min(len(s), a + m.choice([4, 8, 16, 64]))
        s[a:b] = m.rng.randbytes(b - a)
    elif op == "zeros":
        s[:] = bytes(len(s))
    elif op == "ones":
        s[:] = b"\xff" * len(s)
    else:
        s[-1] ^= 1 << m.rng.randrange(8)
    secs[i] = bytes(s)
    m.note(f"section {i} ({_owner(h, i)}): {op}, CRC fixed")
    return m.pack(h, secs)


@mutator("struct", 1.5)
def sec_resize(m):
    h, secs = m.split()
    if not secs:
        raise Skip("no sections")
    i = m.rng.randrange(len(secs))
    n = m.choice([1, 7, 8, 64, len(secs[i])])
    if m.rng.random() < 0.5:
        secs[i] = secs[i] + (b"\0" * n if m.rng.random() < 0.5 else m.rng.randbytes(n))
        m.note(f"section {i} ({_owner(h, i)}): {n} byte(s) appended")
    else:
        secs[i] = secs[i][:max(0, len(secs[i]) - n)]
        m.note(f"section {i} ({_owner(h, i)}): {n} byte(s) cut")
    return m.pack(h, secs)


def _refs(header):
    """(tensor, key) of every section reference: key "section", or a dict key whose value
    holds "section"."""
    out = []
    for t in Mut.tensors(header):
        if "section" in t:
            out.append((t, None))
        for k in ("codebook", "row_counts", "gaps", "codes"):
            if isinstance(t.get(k), dict) and "section" in t[k]:
                out.append((t, k))
    return out


def _ref_get(ref):
    t, k = ref
    return t["section"] if k is None else t[k]["section"]


def _ref_set(ref, v):
    t, k = ref
    if k is None:
        t["section"] = v
    else:
        t[k]["section"] = v


@mutator("struct", 1)
def sec_drop(m):
    h, secs = m.split()
    if not secs:
        raise Skip("no sections")
    i = m.rng.randrange(len(secs))
    del secs[i]
    renumber = m.rng.random() < 0.6
    if renumber:
        for ref in _refs(h):
            v = _ref_get(ref)
            if _is_int(v) and v > i:
                _ref_set(ref, v - 1)
    m.note(f"drop section {i}{', references renumbered' if renumber else ''}")
    return m.pack(h, secs)


@mutator("struct", 0.7)
def sec_dup(m):
    h, secs = m.split()
    if not secs:
        raise Skip("no sections")
    i = m.rng.randrange(len(secs))
    secs.append(secs[i])
    m.note(f"section {i} duplicated at the end (unused)")
    return m.pack(h, secs)


@mutator("struct", 1)
def sec_swap(m):
    h, secs = m.split()
    if len(secs) < 2:
        raise Skip("fewer than two sections")
    i, j = m.rng.sample(range(len(secs)), 2)
    secs[i], secs[j] = secs[j], secs[i]
    m.note(f"swap sections {i} and {j}, references unchanged, CRCs fixed")
    return m.pack(h, secs)


@mutator("struct", 1.5)
def sec_permute_same(m):
    """Sections reordered and every reference remapped: the same file in another order."""
    h, secs = m.split()
    if len(secs) < 2:
        raise Skip("fewer than two sections")
    perm = list(range(len(secs)))
    m.rng.shuffle(perm)
    new = [None] * len(secs)
    for old, pos in enumerate(perm):
        new[pos] = secs[old]
    for ref in _refs(h):
        _ref_set(ref, perm[_ref_get(ref)])
    m.same = "all"
    m.note(f"sections permuted {perm[:12]}{'...' if len(perm) > 12 else ''}, refs remapped")
    return m.pack(h, new)


@mutator("struct", 2)
def sec_ref(m):
    h, secs = m.split()
    refs = _refs(h)
    ref = m.choice(refs)
    cur = _ref_get(ref)
    op = m.choice(["other", "other", "swap", "len", "-1", "huge", "float", "bool"])
    if op == "other":
        v = m.rng.randrange(len(secs)) if secs else 0
    elif op == "swap":
        other = m.choice(refs)
        v = _ref_get(other)
        _ref_set(other, cur)
    elif op == "len":
        v = len(secs)
    elif op == "-1":
        v = -1
    elif op == "huge":
        v = m.choice([2**31, 2**53, 2**63])
    elif op == "float":
        v = float(cur)
    else:
        v = True
    _ref_set(ref, v)
    m.note(f"{ref[0].get('name')!r}.{ref[1] or 'section'}: section {cur} -> {v!r} ({op})")
    return m.pack(h, secs)


# ---- struct class: tensors -----------------------------------------------------------------


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
    if op == "dup":
        ts.append(copy.deepcopy(ts[i]))
    elif op == "dup-renamed":
        t = copy.deepcopy(ts[i])
        t["name"] = f"{name}.copy"
        ts.append(t)
    elif op == "drop":
        del ts[i]
    elif op == "drop-with-sections":
        t = ts.pop(i)
        gone = sorted({_ref_get(r) for r in _refs({"tensors": [t]})}, reverse=True)
        for idx in gone:
            if _is_int(idx) and 0 <= idx < len(secs):
                del secs[idx]
                for ref in _refs(h):
                    v = _ref_get(ref)
                    if _is_int(v) and v > idx:
                        _ref_set(ref, v - 1)
    elif op == "rename":
        ts[i]["name"] = m.choice([f"{name}_", "", "x" * 257, "\u00e9", 7, None])
    elif op == "rename-everywhere":
        _rename_everywhere(h, name, f"renamed.{i}")
    elif op == "empty-list":
        h["tensors"] = []
    else:
        ts.append(ts.pop(i))
        m.same = "all"
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


@mutator("struct", 2)
def tensor_raw(m):
    h, secs = m.split()
    t = m.choice(m.tensors(h, "raw"))
    shape = t.get("shape")
    numel = math.prod(shape) if isinstance(shape, list) and all(_is_int(d) for d in shape) else 0
    op = m.choice(["dtype", "dtype", "reshape", "reshape", "rank9", "zero-dim", "grow",
                   "encoding", "scalar", "huge-dims", "negative"])
    if op == "dtype":
        t["dtype"] = m.choice(["float32", "float16", "int32", "int64", "uint8", "float64",
                               "bool", "F32", None])
    elif op == "reshape":
        if numel <= 0:
            raise Skip("empty tensor")
        divs = [d for d in range(1, numel + 1) if numel % d == 0]
        a = m.choice(divs)
        t["shape"] = m.choice([[numel], [a, numel // a], [1, a, numel // a], [numel, 1],
                               [1] * 8 + [numel]])
    elif op == "rank9":
        t["shape"] = [1] * 9
    elif op == "zero-dim":
        t["shape"] = [0] + list(shape or [])
    elif op == "grow":
        t["shape"] = list(shape or []) + [2]
    elif op == "encoding":
        t["encoding"] = "sparse_codebook"
    elif op == "scalar":
        t["shape"] = []
    elif op == "huge-dims":
        t["shape"] = m.choice([[2**26, 2**26, 2**2], [2**53 - 1], [2**53], [2**31, 2**31, 4],
                               [0, 2**60]])
    else:
        t["shape"] = [-(d or 1) for d in (shape or [1])]
    m.note(f"raw {t.get('name')!r}: {op} -> {_short({k: t.get(k) for k in ('dtype', 'shape')})}")
    return m.pack(h, secs)


@mutator("struct", 3)
def tensor_sparse_dims(m):
    h, secs = m.split()
    t = m.sparse_tensor(h)
    rows, cols, shape = t.get("rows"), t.get("cols"), t.get("shape")
    op = m.choice(["rows+1", "rows-1", "cols+1", "cols-1", "shape0+1", "swap-rc",
                   "reshape-cols", "rank1", "nnz+1", "nnz-1", "entries+1", "entries-1",
                   "nnz=entries+1", "entries=numel+1", "gap_bits+1", "gap_bits-1",
                   "gap_bits=0", "gap_bits=9", "filler=null", "filler=0", "filler=size",
                   "filler=last", "zero-everything", "cols=huge", "rows=huge"])
    if op == "rows+1":
        t["rows"] = rows + 1
    elif op == "rows-1":
        t["rows"] = rows - 1
    elif op == "cols+1":
        t["cols"] = cols + 1
    elif op == "cols-1":
        t["cols"] = cols - 1
    elif op == "shape0+1":
        shape[0] += 1
    elif op == "swap-rc":
        t["rows"], t["cols"] = cols, rows
        t["shape"] = [cols, rows]
    elif op == "reshape-cols":
        divs = [d for d in range(1, cols + 1) if cols % d == 0]
        a = m.choice(divs)
        t["shape"] = [rows, a, cols // a]
    elif op == "rank1":
        t["shape"] = [rows * cols]
    elif op == "nnz+1":
        t["nnz"] += 1
    elif op == "nnz-1":
        t["nnz"] -= 1
    elif op == "entries+1":
        t["entries"] += 1
    elif op == "entries-1":
        t["entries"] -= 1
    elif op == "nnz=entries+1":
        t["nnz"] = t["entries"] + 1
    elif op == "entries=numel+1":
        t["entries"] = rows * cols + 1
    elif op == "gap_bits+1":
        t["gap_bits"] += 1
    elif op == "gap_bits-1":
        t["gap_bits"] -= 1
    elif op == "gap_bits=0":
        t["gap_bits"] = 0
    elif op == "gap_bits=9":
        t["gap_bits"] = 9
    elif op == "filler=null":
        t["filler_code"] = None
    elif op == "filler=0":
        t["filler_code"] = 0
    elif op == "filler=size":
        t["filler_code"] = t["codebook"]["size"]
    elif op == "filler=last":
        t["filler_code"] = t["codebook"]["size"] - 1
    elif op == "zero-everything":
        t.update(rows=0, cols=0, shape=[0, 0], nnz=0, entries=0)
    elif op == "cols=huge":
        big = m.choice([2**31, 2**32, 2**40])
        t["cols"] = big
        t["shape"] = [rows, big]
    else:
        t["rows"] = 2**40
        t["shape"] = [2**40] + list(shape[1:])
    m.note(f"sparse {t.get('name')!r}: {op}")
    return m.pack(h, secs)


@mutator("struct", 2.5)
def codebook(m):
    h, secs = m.split()
    t = m.sparse_tensor(h)
    cb = t["codebook"]
    i = cb["section"]
    k = cb["size"]
    vals = np.frombuffer(secs[i], "<f4").copy()
    op = m.choice(["size0", "size257", "size+1", "size-1", "shrink", "nan", "inf", "-inf",
                   "neg-zero", "denormal", "filler-nonzero", "max-size", "one"])
    if op == "size0":
        cb["size"] = 0
        secs[i] = b""
    elif op == "size257":
        cb["size"] = 257
        secs[i] = np.resize(vals, 257).astype("<f4").tobytes()
    elif op == "size+1":
        cb["size"] = k + 1
        secs[i] = np.append(vals, np.float32(0.75)).astype("<f4").tobytes()
    elif op == "size-1":
        cb["size"] = k - 1
        secs[i] = vals[:k - 1].astype("<f4").tobytes()
    elif op == "shrink":
        n = m.rng.randint(1, max(1, k - 1))
        cb["size"] = n
        secs[i] = vals[:n].astype("<f4").tobytes()
        fc = t.get("filler_code")
        if _is_int(fc) and fc >= n:
            t["filler_code"] = None if m.rng.random() < 0.5 else n - 1
    elif op in ("nan", "inf", "-inf", "neg-zero", "denormal"):
        j = m.rng.randrange(k)
        vals[j] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "neg-zero": -0.0,
                   "denormal": np.float32(1e-45)}[op]
        secs[i] = vals.astype("<f4").tobytes()
    elif op == "filler-nonzero":
        fc = t.get("filler_code")
        if not _is_int(fc):
            raise Skip("no filler code")
        vals[fc] = 0.5
        secs[i] = vals.astype("<f4").tobytes()
    elif op == "max-size":
        cb["size"] = 256
        secs[i] = np.resize(vals, 256).astype("<f4").tobytes()
    else:
        cb["size"] = 1
        secs[i] = vals[:1].astype("<f4").tobytes()
    m.note(f"codebook of {t.get('name')!r}: {op}")
    return m.pack(h, secs)


# ---- struct class: streams -----------------------------------------------------------------


def _a8(n):
    return (n + 7) & ~7


def huff_parts(desc, data):
    a = desc["alphabet_size"]
    c = -(-desc["count"] // desc["chunk_symbols"])
    head = _a8(a)
    lengths = bytearray(data[:a])
    pad = bytearray(data[a:head])
    offsets = list(struct.unpack_from(f"<{c}Q", data, head))
    payload = bytearray(data[head + 8 * c:])
    return lengths, pad, offsets, payload


def huff_join(lengths, pad, offsets, payload):
    return (bytes(lengths) + bytes(pad) + struct.pack(f"<{len(offsets)}Q", *offsets)
            + bytes(payload))


_DECODED = {}


def decoded_streams(data, name):
    """(row_counts, gaps, codes) of a tensor of a valid seed file, cached."""
    key = (hashlib.sha1(data).hexdigest(), name)
    if key not in _DECODED:
        from cdnn_runtime.reader import read
        f = read(data)
        _DECODED[key] = tuple(np.asarray(a, np.int64) for a in f.entries(name))
    return _DECODED[key]


CHUNKS = [1, 2, 3, 7, 16, 64, 100, 1000, 8192, 65536, 2**24]


def _encode(m, values, same_bits=None):
    """Re-encode values with a random coding; returns a descriptor (no section) and bytes."""
    from cdnn_runtime import streams
    values = np.asarray(values, np.int64)
    top = int(values.max()) if values.size else 0
    if top < 256 and m.rng.random() < 0.5:
        desc, data = streams.encode_stream(values.astype(np.uint8), coding="huffman",
                                           chunk_symbols=m.choice(CHUNKS))
    else:
        need = max(1, top.bit_length())
        bits = m.choice([need, need, min(32, need + 1), 32, same_bits or need])
        bits = max(bits, need)
        desc, data = streams.encode_stream(values.astype(np.uint32), coding="packed",
                                           bits=bits)
    return desc, data


def _replace_stream(m, h, secs, t, key, values):
    desc, data = _encode(m, values)
    idx = t[key]["section"]
    desc["section"] = idx
    t[key] = desc
    secs[idx] = data
    return desc


@mutator("struct", 5, first_only=True)
def stream_values(m):
    """Decode a tensor's streams, break one rule of section 3.2 in the values, re-encode
    (packed or Huffman, random chunking), fix every descriptor, count and checksum: only
    decoding can catch these."""
    h, secs = m.split()
    t = m.sparse_tensor(h)
    name = t["name"]
    rc, gaps, codes = (a.copy() for a in decoded_streams(m.data, name))
    gap_bits, k, fc = t["gap_bits"], t["codebook"]["size"], t["filler_code"]
    cols = t["cols"]
    op = m.choice(["gap-past-bound", "gap-huge", "code-past-size", "code-255", "code-huge",
                   "code-to-filler", "filler-to-code", "row+1", "row-1", "row-move",
                   "row=cols+1", "row-huge", "col-overflow", "append-entry", "drop-entry",
                   "append-entry-fixed", "drop-row-fixed", "swap-codes", "shuffle-rows",
                   "empty-all"])
    keys = []
    if op in ("gap-past-bound", "gap-huge") and gaps.size:
        j = m.rng.randrange(gaps.size)
        gaps[j] = (1 << gap_bits) + m.choice([0, 0, 1, 5]) if op == "gap-past-bound" \
            else m.choice([2**16, 2**31, 2**32 - 1])
        keys = ["gaps"]
    elif op in ("code-past-size", "code-255", "code-huge") and codes.size:
        j = m.rng.randrange(codes.size)
        codes[j] = {"code-past-size": k, "code-255": 255, "code-huge": 2**32 - 1}[op]
        keys = ["codes"]
    elif op == "code-to-filler" and codes.size and fc is not None:
        real = np.flatnonzero(codes != fc)
        if not real.size:
            raise Skip("no real entries")
        codes[m.choice(real)] = fc
        keys = ["codes"]
    elif op == "filler-to-code" and fc is not None:
        fill = np.flatnonzero(codes == fc)
        if not fill.size:
            raise Skip("no fillers")
        codes[m.choice(fill)] = (fc + 1) % k
        keys = ["codes"]
    elif op in ("row+1", "row-1", "row-move", "row=cols+1", "row-huge") and rc.size:
        r = m.rng.randrange(rc.size)
        if op == "row+1":
            rc[r] += 1
        elif op == "row-1":
            if rc[r] == 0:
                raise Skip("empty row")
            rc[r] -= 1
        elif op == "row-move":
            r2 = m.rng.randrange(rc.size)
            d = m.choice([1, 2, int(rc[r2])])
            if r == r2 or rc[r2] < d:
                raise Skip("cannot move")
            rc[r] += d
            rc[r2] -= d
        elif op == "row=cols+1":
            rc[r] = cols + 1
        else:
            rc[r] = m.choice([2**31, 2**32 - 1])
        keys = ["row_counts"]
    elif op == "col-overflow":
        rows = np.flatnonzero(rc)
        if not rows.size:
            raise Skip("no entries")
        r = m.choice(rows)
        end = int(rc[:r + 1].sum()) - 1
        start = end - int(rc[r]) + 1
        col = int((gaps[start:end + 1] + 1).sum()) - 1
        need = cols - col + int(gaps[end])
        gaps[end] = min(need, (1 << gap_bits) - 1) if m.rng.random() < 0.8 else need
        keys = ["gaps"]
    elif op in ("append-entry", "drop-entry"):
        if op == "append-entry":
            gaps = np.append(gaps, 0)
            codes = np.append(codes, 1 % k)
        else:
            if not gaps.size:
                raise Skip("no entries")
            gaps, codes = gaps[:-1], codes[:-1]
        keys = m.choice([["gaps"], ["codes"], ["gaps", "codes"]])
    elif op == "append-entry-fixed":
        r = m.rng.randrange(rc.size) if rc.size else None
        if r is None:
            raise Skip("no rows")
        end = int(rc[:r + 1].sum())
        gaps = np.insert(gaps, end, 0)
        code = m.choice([c for c in range(k) if c != fc] or [0])
        codes = np.insert(codes, end, code)
        rc[r] += 1
        t["entries"] += 1
        t["nnz"] += 0 if code == fc else 1
        keys = ["row_counts", "gaps", "codes"]
    elif op == "drop-row-fixed":
        if rc.size < 1:
            raise Skip("no rows")
        r = m.rng.randrange(rc.size)
        start = int(rc[:r].sum())
        n = int(rc[r])
        gone = codes[start:start + n]
        gaps = np.delete(gaps, range(start, start + n))
        codes = np.delete(codes, range(start, start + n))
        rc = np.delete(rc, r)
        t["rows"] -= 1
        t["shape"][0] -= 1
        t["entries"] -= n
        t["nnz"] -= int(np.sum(gone != fc)) if fc is not None else n
        keys = ["row_counts", "gaps", "codes"]
    elif op == "swap-codes":
        real = np.flatnonzero(codes != (-1 if fc is None else fc))
        if real.size < 2:
            raise Skip("too few entries")
        a, b = m.rng.sample(list(real), 2)
        codes[a], codes[b] = codes[b], codes[a]
        keys = ["codes"]
    elif op == "shuffle-rows":
        starts = np.concatenate([[0], np.cumsum(rc)])
        order = list(range(rc.size))
        m.rng.shuffle(order)
        gaps = np.concatenate([gaps[starts[r]:starts[r + 1]] for r in order] or [gaps[:0]])
        codes = np.concatenate([codes[starts[r]:starts[r + 1]] for r in order] or [codes[:0]])
        rc = rc[order]
        keys = ["row_counts", "gaps", "codes"]
    elif op == "empty-all":
        rc[:] = 0
        gaps, codes = gaps[:0], codes[:0]
        t["entries"] = t["nnz"] = 0
        keys = ["row_counts", "gaps", "codes"]
    else:
        raise Skip(f"{op} does not apply")
    vals = {"row_counts": rc, "gaps": gaps, "codes": codes}
    for key in keys:
        _replace_stream(m, h, secs, t, key, vals[key])
    m.note(f"{name!r}: {op}, re-encoded {', '.join(keys)} "
           f"({', '.join(t[k]['coding'] for k in keys)})")
    return m.pack(h, secs)


@mutator("struct", 2.5, first_only=True)
def stream_recode_same(m):
    """Re-encode one or all streams of a tensor with another coding, chunk size or width:
    the same values, so the decoded tensor must not change."""
    h, secs = m.split()
    t = m.sparse_tensor(h)
    vals = dict(zip(("row_counts", "gaps", "codes"), decoded_streams(m.data, t["name"])))
    keys = [m.choice(sorted(vals))] if m.rng.random() < 0.6 else sorted(vals)
    for key in keys:
        if key == "gaps":
            bound = 1 << t["gap_bits"]
        elif key == "codes":
            bound = t["codebook"]["size"]
        else:
            bound = None
        for _ in range(10):
            desc, data = _encode(m, vals[key])
            if desc["coding"] == "packed" or bound is None or desc["alphabet_size"] <= bound:
                break
        desc["section"] = t[key]["section"]
        t[key] = desc
        secs[desc["section"]] = data
    m.same = "all"
    m.note(f"{t['name']!r}: re-encoded " + ", ".join(
        f"{k} as {t[k]['coding']}" + (f"/{t[k]['chunk_symbols']}" if t[k]["coding"] == "huffman"
                                      else f"/{t[k]['bits']}b") for k in keys))
    return m.pack(h, secs)


@mutator("struct", 3)
def huff_lengths(m):
    h, secs = m.split()
    t, key, desc = m.stream(h, "huffman")
    i = desc["section"]
    lengths, pad, offs, payload = huff_parts(desc, secs[i])
    a = len(lengths)
    used = [j for j in range(a) if lengths[j]]
    op = m.choice(["all-one", "shorter", "longer", "used-to-zero", "17", "255", "all-zero",
                   "swap", "reverse", "pad-nonzero", "kraft-over", "random"])
    if op == "all-one":
        lengths[:] = bytes([1]) * a
    elif op == "shorter" and used:
        j = m.choice(used)
        lengths[j] = max(1, lengths[j] - 1)
    elif op == "longer" and used:
        j = m.choice(used)
        lengths[j] = min(16, lengths[j] + 1)
    elif op == "used-to-zero" and used:
        lengths[m.choice(used)] = 0
    elif op == "17":
        lengths[m.rng.randrange(a)] = 17
    elif op == "255":
        lengths[m.rng.randrange(a)] = 255
    elif op == "all-zero":
        lengths[:] = bytes(a)
    elif op == "swap" and a > 1:
        x, y = m.rng.sample(range(a), 2)
        lengths[x], lengths[y] = lengths[y], lengths[x]
    elif op == "reverse":
        lengths.reverse()
    elif op == "pad-nonzero":
        if not pad:
            raise Skip("no padding")
        pad[m.rng.randrange(len(pad))] = m.rng.randrange(1, 256)
    elif op == "kraft-over":
        j = m.rng.randrange(a)
        lengths[j] = 1 if lengths[j] != 1 else 2
        if a == 1:
            raise Skip("one symbol")
    else:
        lengths[:] = bytes(m.rng.randrange(17) for _ in range(a))
    secs[i] = huff_join(lengths, pad, offs, payload)
    m.note(f"{t['name']!r}.{key} code lengths: {op} -> {list(lengths)[:16]}")
    return m.pack(h, secs)


@mutator("struct", 3)
def huff_offsets(m):
    h, secs = m.split()
    t, key, desc = m.stream(h, "huffman")
    i = desc["section"]
    lengths, pad, offs, payload = huff_parts(desc, secs[i])
    if not offs:
        raise Skip("no chunks")
    p = desc["payload_bits"]
    j = m.rng.randrange(len(offs))
    op = m.choice(["first=1", "first=8", "equal-prev", "swap", "=P", "=P+1", "2^63",
                   "2^64-1", "2^53", "+1", "-1", "all-zero", "reverse", "last=P-1", "huge-mid"])
    if op == "first=1":
        offs[0] = 1
    elif op == "first=8":
        offs[0] = 8
    elif op == "equal-prev":
        if j == 0:
            j = min(1, len(offs) - 1)
        offs[j] = offs[j - 1] if j else offs[j]
    elif op == "swap" and len(offs) > 1:
        x, y = m.rng.sample(range(len(offs)), 2)
        offs[x], offs[y] = offs[y], offs[x]
    elif op == "=P":
        offs[j] = p
    elif op == "=P+1":
        offs[j] = p + 1
    elif op == "2^63":
        offs[j] = 2**63
    elif op == "2^64-1":
        offs[j] = 2**64 - 1
    elif op == "2^53":
        offs[j] = 2**53
    elif op == "+1":
        offs[j] = offs[j] + 1
    elif op == "-1":
        offs[j] = max(0, offs[j] - 1) if offs[j] else 2**64 - 1
    elif op == "all-zero":
        offs = [0] * len(offs)
    elif op == "reverse":
        offs.reverse()
    elif op == "last=P-1":
        offs[-1] = max(0, p - 1)
    else:
        offs[len(offs) // 2] = p * 4
    secs[i] = huff_join(lengths, pad, offs, payload)
    m.note(f"{t['name']!r}.{key} chunk offsets: {op} at {j} of {len(offs)}")
    return m.pack(h, secs)


@mutator("struct", 3)
def huff_payload(m):
    h, secs = m.split()
    t, key, desc = m.stream(h, "huffman")
    i = desc["section"]
    lengths, pad, offs, payload = huff_parts(desc, secs[i])
    p = desc["payload_bits"]
    op = m.choice(["flip", "flip", "flip-chunk-end", "pad-bit", "P+1", "P-1", "P+8", "P-8",
                   "P=count-1", "P=16count+1", "P=0", "zero-payload", "ones", "cut-byte"])
    count = desc["count"]

    def setp(newp, fill=0):
        nonlocal payload
        if newp < 0:
            raise Skip("negative")
        n = (newp + 7) // 8
        payload = payload[:n] + bytes([fill]) * (n - len(payload))
        if newp % 8 and payload:
            payload[-1] &= (0xFF << (8 - newp % 8)) & 0xFF
        desc["payload_bits"] = newp

    if op == "flip" and p:
        for _ in range(m.choice([1, 1, 2, 5])):
            b = m.rng.randrange(p)
            payload[b // 8] ^= 0x80 >> (b % 8)
    elif op == "flip-chunk-end" and p:
        b = max(0, m.choice(offs[1:] + [p]) - m.choice([1, 2]))
        payload[b // 8] ^= 0x80 >> (b % 8)
    elif op == "pad-bit":
        if p % 8 == 0:
            raise Skip("no padding bits")
        payload[-1] |= 1
    elif op == "P+1":
        setp(p + 1)
    elif op == "P-1":
        setp(p - 1)
    elif op == "P+8":
        setp(p + 8, m.rng.randrange(256))
    elif op == "P-8":
        setp(p - 8)
    elif op == "P=count-1":
        setp(count - 1)
    elif op == "P=16count+1":
        setp(16 * count + 1, 0x55)
    elif op == "P=0":
        setp(0)
    elif op == "zero-payload":
        payload = bytearray(len(payload))
    elif op == "ones":
        payload = bytearray(b"\xff" * len(payload))
        if p % 8 and payload:
            payload[-1] &= (0xFF << (8 - p % 8)) & 0xFF
    elif op == "cut-byte" and payload:
        payload = payload[:-1]
    else:
        raise Skip(f"{op} does not apply")
    secs[i] = huff_join(lengths, pad, offs, payload)
    m.note(f"{t['name']!r}.{key} payload: {op} (P {p} -> {desc['payload_bits']})")
    return m.pack(h, secs)


@mutator("struct", 2)
def huff_desc(m):
    """alphabet_size, chunk_symbols or count changed, the section resized to match, so
    that the length check passes and the decoder meets the inconsistency."""
    h, secs = m.split()
    t, key, desc = m.stream(h, "huffman")
    i = desc["section"]
    lengths, pad, offs, payload = huff_parts(desc, secs[i])
    op = m.choice(["alphabet+1", "alphabet-1", "alphabet=256", "chunks-smaller",
                   "chunks-larger", "chunks=1", "count+1", "count-1", "count+chunk"])
    if op.startswith("alphabet"):
        a = len(lengths)
        new = {"alphabet+1": a + 1, "alphabet-1": a - 1, "alphabet=256": 256}[op]
        if new < 1:
            raise Skip("empty alphabet")
        lengths = (lengths + bytes(max(0, new - a)))[:new]
        if op != "alphabet-1" and m.rng.random() < 0.5:
            lengths[-1] = m.rng.randrange(1, 17)
        pad = bytearray(_a8(new) - new)
        desc["alphabet_size"] = new
    elif op.startswith("chunks"):
        cs = desc["chunk_symbols"]
        new = {"chunks-smaller": max(1, cs // 2), "chunks-larger": cs * 2 + 1,
               "chunks=1": 1}[op]
        c = -(-desc["count"] // new)
        if c > 1 << 16:
            raise Skip("too many chunks")
        offs = (offs + [desc["payload_bits"]] * c)[:c]
        desc["chunk_symbols"] = new
    else:
        count = desc["count"]
        new = {"count+1": count + 1, "count-1": count - 1,
               "count+chunk": count + desc["chunk_symbols"]}[op]
        if new < 0:
            raise Skip("negative")
        c = -(-new // desc["chunk_symbols"])
        offs = (offs + [desc["payload_bits"]] * c)[:c]
        desc["count"] = new
        if m.rng.random() < 0.5:
            if key == "row_counts":
                t["rows"] = new
                t["shape"][0] = new
            else:
                t["entries"] = new
    secs[i] = huff_join(lengths, pad, offs, payload)
    m.note(f"{t['name']!r}.{key}: {op}")
    return m.pack(h, secs)


@mutator("struct", 2)
def packed_desc(m):
    h, secs = m.split()
    t, key, desc = m.stream(h, "packed")
    i = desc["section"]
    data = bytearray(secs[i])
    count, bits = desc["count"], desc["bits"]
    op = m.choice(["bits+1", "bits-1", "bits=32", "bits=33", "bits=0", "pad-bit",
                   "count+1", "count-1", "ones"])

    def resize(c, b):
        n = (c * b + 7) // 8
        return (data + bytes(max(0, n - len(data))))[:n]

    if op in ("bits+1", "bits-1", "bits=32"):
        new = {"bits+1": bits + 1, "bits-1": bits - 1, "bits=32": 32}[op]
        if new < 1:
            raise Skip("zero width")
        data = resize(count, new)
        desc["bits"] = new
    elif op in ("bits=33", "bits=0"):
        desc["bits"] = 33 if op == "bits=33" else 0
    elif op == "pad-bit":
        if (count * bits) % 8 == 0:
            raise Skip("no padding bits")
        data[-1] |= 1
    elif op in ("count+1", "count-1"):
        new = count + (1 if op == "count+1" else -1)
        if new < 0:
            raise Skip("negative")
        data = resize(new, bits)
        if data and m.rng.random() < 0.5:
            data[-1] |= 0x80
        desc["count"] = new
    else:
        data = bytearray(b"\xff" * len(data))
        if (count * bits) % 8 and data:
            data[-1] &= (0xFF << (8 - (count * bits) % 8)) & 0xFF
    secs[i] = bytes(data)
    m.note(f"{t['name']!r}.{key} packed: {op}")
    return m.pack(h, secs)


# ---- struct class: graph -------------------------------------------------------------------

ATTR_VALUES = [0, 1, 2, -1, -2, 2**31, 2**31 + 1, 2**20, 2**20 + 1, 10**400, 1.5, 0.0, -0.0,
               1e308, -1e308, 1e-320, True, False, None, "tanh", "none", "erf", "", [], [1],
               [1, 1], [0, 0], [2, 2], [1, 1, 1], [-1, 1], [0, 1], [2**20, 2**20],
               [2**20 + 1, 1], [1.0, 1.0], [True, True], [None, None], {"a": 1},
               [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7, 8], [-1, -1], [4, -1],
               [2**31, 1], [3, 3], [7, 7], [64, 64]]


def _values_defined(g):
    vals = [s.get("name") for s in g.get("inputs", []) if isinstance(s, dict)]
    vals += [n["outputs"][0] for n in g["nodes"]
             if isinstance(n, dict) and isinstance(n.get("outputs"), list) and n["outputs"]]
    return vals


@mutator("struct", 2.5)
def graph_wiring(m):
    """Cycles, values used before they exist, values defined twice, dangling names."""
    h, secs = m.split()
    g = m.graph(h)
    nodes = g["nodes"]
    i = m.rng.randrange(len(nodes))
    n = nodes[i]
    op = m.choice(["cycle-self", "cycle-later", "undefined-input", "output-is-input",
                   "output-dup", "node-name-dup", "input-dup", "graph-input-dup",
                   "output-unproduced", "output-twice", "outputs-empty", "outputs-65",
                   "outputs-input", "two-outputs", "no-outputs", "input-empty-name"])
    if op == "cycle-self":
        n["inputs"] = [n["outputs"][0]] + n["inputs"][1:]
    elif op == "cycle-later":
        j = m.rng.randrange(i, len(nodes))
        n["inputs"] = [nodes[j]["outputs"][0]] + n["inputs"][1:]
    elif op == "undefined-input":
        n["inputs"] = ["never.made"] + n["inputs"][1:]
    elif op == "output-is-input":
        n["outputs"] = [g["inputs"][0]["name"]]
    elif op == "output-dup":
        n["outputs"] = [m.choice(_values_defined(g))]
    elif op == "node-name-dup":
        n["name"] = nodes[m.rng.randrange(len(nodes))]["name"]
    elif op == "input-dup":
        n["inputs"] = n["inputs"] + n["inputs"][:1]
    elif op == "graph-input-dup":
        g["inputs"].append(copy.deepcopy(g["inputs"][0]))
    elif op == "output-unproduced":
        g["outputs"].append({"name": "never.made"})
    elif op == "output-twice":
        g["outputs"].append(dict(g["outputs"][0]))
    elif op == "outputs-empty":
        g["outputs"] = []
    elif op == "outputs-65":
        g["outputs"] = [{"name": f"o{j}"} for j in range(65)]
    elif op == "outputs-input":
        g["outputs"] = [{"name": g["inputs"][0]["name"]}]
    elif op == "two-outputs":
        n["outputs"] = n["outputs"] + [n["outputs"][0] + ".b"]
    elif op == "no-outputs":
        n["outputs"] = []
    else:
        n["inputs"] = [""]
    m.note(f"graph: {op} at node {i} ({n.get('name')!r})")
    return m.pack(h, secs)


@mutator("struct", 2)
def graph_nodes(m):
    """Nodes removed, reordered, duplicated."""
    h, secs = m.split()
    g = m.graph(h)
    nodes = g["nodes"]
    i = m.rng.randrange(len(nodes))
    op = m.choice(["remove", "remove", "swap-adjacent", "swap", "reverse", "shuffle",
                   "duplicate", "move-first", "all-removed", "many-inputs"])
    if op == "remove":
        del nodes[i]
    elif op == "swap-adjacent" and len(nodes) > 1:
        j = min(i + 1, len(nodes) - 1)
        i = j - 1
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif op == "swap" and len(nodes) > 1:
        j = m.rng.randrange(len(nodes))
        nodes[i], nodes[j] = nodes[j], nodes[i]
    elif op == "reverse":
        nodes.reverse()
    elif op == "shuffle":
        m.rng.shuffle(nodes)
    elif op == "duplicate":
        nodes.insert(i + 1, copy.deepcopy(nodes[i]))
    elif op == "move-first":
        nodes.insert(0, nodes.pop(i))
    elif op == "all-removed":
        g["nodes"] = []
    elif op == "many-inputs":
        n = copy.deepcopy(nodes[i])
        n["name"] += ".many"
        n["outputs"] = [n["outputs"][0] + ".many"]
        n["inputs"] = n["inputs"] * m.choice([2, 64, 65])
        nodes.append(n)
    else:
        raise Skip(f"{op} does not apply")
    m.note(f"graph nodes: {op} (node {i})")
    return m.pack(h, secs)


@mutator("struct", 1.5)
def graph_topo_same(m):
    """Another valid topological order of the nodes, and defaults spelled out or dropped:
    the same network."""
    h, secs = m.split()
    g = m.graph(h)
    nodes = g["nodes"]
    defined = {s["name"] for s in g["inputs"]}
    left = list(nodes)
    order = []
    while left:
        ready = [n for n in left if all(v in defined for v in n["inputs"])]
        n = m.choice(ready)
        left.remove(n)
        order.append(n)
        defined.add(n["outputs"][0])
    g["nodes"] = order
    from cdnn_runtime.graph import OPS
    for n in order:
        spec = OPS[n["op"]][3]
        if m.rng.random() < 0.3:
            attrs = n.setdefault("attrs", {})
            for a, (kind, default) in spec.items():
                if a not in attrs and default is not None \
                        and not (isinstance(default, str) and default in spec):
                    attrs[a] = copy.deepcopy(default)
        elif m.rng.random() < 0.4 and isinstance(n.get("attrs"), dict):
            for a, v in list(n["attrs"].items()):
                if a in spec and v == spec[a][1]:
                    del n["attrs"][a]
        for key in ("params", "attrs"):
            if m.rng.random() < 0.3 and not n.get(key):
                if key in n:
                    del n[key]
                else:
                    n[key] = {}
    m.same = "all"
    m.note("graph: nodes in another topological order, default attributes spelled out or "
           "left out")
    return m.pack(h, secs)


@mutator("struct", 3)
def graph_ops(m):
    """Unknown ops, attributes and params; attributes of the wrong type or range."""
    h, secs = m.split()
    g = m.graph(h)
    nodes = g["nodes"]
    i = m.rng.randrange(len(nodes))
    n = nodes[i]
    from cdnn_runtime.graph import OPS
    op = m.choice(["op-unknown", "op-type", "op-other", "attr-unknown", "attr-value",
                   "attr-value", "attr-value", "attr-drop", "attrs-type", "param-unknown",
                   "params-type", "param-drop", "inputs-arity", "inputs-type"])
    spec = OPS.get(n.get("op")) if isinstance(n.get("op"), str) else None
    if op == "op-unknown":
        n["op"] = m.choice(["conv3d", "Linear", "", "relu ", "matmul", "x" * 300])
    elif op == "op-type":
        n["op"] = m.choice([None, 1, True, ["linear"], {"op": "linear"}, 1.5])
    elif op == "op-other":
        n["op"] = m.choice(sorted(OPS))
    elif op == "attr-unknown":
        n.setdefault("attrs", {})[m.choice(["alpha", "kernel", "stride", "foo", "dim",
                                            "groups", "axis"])] = 1
    elif op == "attr-value":
        names = sorted(spec[3]) if spec else []
        if not names:
            raise Skip("op has no attributes")
        a = m.choice(names)
        n.setdefault("attrs", {})[a] = copy.deepcopy(m.choice(ATTR_VALUES))
        op = f"attr-value {a}={_short(n['attrs'][a])}"
    elif op == "attr-drop":
        if not n.get("attrs"):
            raise Skip("no attributes")
        del n["attrs"][m.choice(sorted(n["attrs"]))]
    elif op == "attrs-type":
        n["attrs"] = m.choice([[], None, "x", 1])
    elif op == "param-unknown":
        n.setdefault("params", {})[m.choice(["weight", "bias", "other", "mean", "gamma"])] = \
            m.choice([t.get("name") for t in m.tensors(h)] + ["nope"])
    elif op == "params-type":
        n["params"] = m.choice([[], None, "x", 1, {"weight": 1}, {"weight": None}])
    elif op == "param-drop":
        if not n.get("params"):
            raise Skip("no params")
        del n["params"][m.choice(sorted(n["params"]))]
    elif op == "inputs-arity":
        n["inputs"] = m.choice([[], n["inputs"] * 2, n["inputs"] * 65,
                                n["inputs"] + [g["inputs"][0]["name"]]])
    else:
        n["inputs"] = m.choice([None, "x", [1], [None], {"x": 1}])
    m.note(f"graph node {i} ({n.get('name')!r}): {op}")
    return m.pack(h, secs)


KIND_VALUES = {
    "int": [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 2**31, -(2**31)],
    "posint": [1, 2, 3, 4, 7, 8, 9, 16, 64, 2**31],
    "float": [0, 0.0, -1.0, 1.0, 2.0, 1e30, -1e30, 1e-45, 1e308, -1e308, 2**31, 10**400,
              -(10**400), 0.9999999],
    "bool": [True, False],
    "pair+": [[1, 1], [2, 2], [3, 1], [1, 3], [3, 3], [5, 5], [9, 9], [64, 64],
              [2**20, 2**20], [1, 2**20], [2**20, 1]],
    "pair0": [[0, 0], [1, 1], [2, 2], [0, 5], [3, 3], [64, 64], [2**20, 2**20]],
    "ints": [[], [1], [-1], [0], [4, -1], [-1, 4], [16, 4], [64], [2, 2, 16], [0, 1, 2],
             [0, 2, 1], [2, 1, 0], [1, 0], [0, 1, 2, 3], [0, 0, 1], [5, 0, 1], [-1, -2, -3],
             [2**31], [2**31, -1], [1, 1, 1, 1, 1, 1, 1, 1], [3, -1], [0, -1], [-2, 32]],
}


@mutator("struct", 5)
def graph_semantics(m):
    """Attribute values of the right type and range (so that the reader accepts them) but
    of hostile meaning: kernels larger than the input, dims out of range, reshapes that do
    not fit, huge paddings and strides, channel counts that do not split into groups."""
    h, secs = m.split()
    g = m.graph(h)
    from cdnn_runtime.graph import OPS
    cands = [n for n in g["nodes"] if isinstance(n.get("op"), str) and OPS.get(n["op"])
             and OPS[n["op"]][3]]
    n = m.choice(cands)
    specs = OPS[n["op"]][3]
    changed = []
    for _ in range(m.choice([1, 1, 2])):
        a = m.choice(sorted(specs))
        kind = specs[a][0]
        vals = kind[1] if isinstance(kind, tuple) else KIND_VALUES[kind]
        v = copy.deepcopy(m.choice(vals))
        if not isinstance(n.get("attrs"), dict):
            n["attrs"] = {}
        n["attrs"][a] = v
        changed.append(f"{a}={_short(v)}")
    if m.rng.random() < 0.2:
        u = m.choice([x for x in g["nodes"] if x["op"] in (
            "relu", "relu6", "sigmoid", "tanh", "identity", "dropout", "gelu", "flatten",
            "leaky_relu")] or [n])
        u["op"] = m.choice(["softmax", "log_softmax", "flatten", "transpose", "permute",
                            "reshape", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
                            "local_response_norm", "cat"])
        u["attrs"] = {a: copy.deepcopy(m.choice(KIND_VALUES[k[0]] if isinstance(k[0], str)
                                                 else k[0][1]))
                      for a, k in OPS[u["op"]][3].items() if k[1] is None or m.rng.random() < 0.5}
        changed.append(f"{u['name']} -> {u['op']} {_short(u['attrs'])}")
    m.note(f"graph node {n['name']!r} ({n['op']}): {', '.join(changed)}")
    return m.pack(h, secs)


@mutator("struct", 2.5)
def graph_params(m):
    """Params naming tensors of the wrong rank, shape, dtype or encoding."""
    h, secs = m.split()
    g = m.graph(h)
    with_params = [n for n in g["nodes"] if isinstance(n.get("params"), dict) and n["params"]]
    n = m.choice(with_params)
    role = m.choice(sorted(n["params"]))
    names = [t.get("name") for t in m.tensors(h)]
    op = m.choice(["other-tensor", "other-tensor", "dangling", "reshape-target",
                   "dtype-target", "shape-target"])
    target = next((t for t in m.tensors(h) if t.get("name") == n["params"][role]), None)
    if op == "other-tensor":
        n["params"][role] = m.choice(names)
    elif op == "dangling":
        n["params"][role] = m.choice(["nope", "", n["params"][role] + " "])
    elif target is None:
        raise Skip("param names no tensor")
    elif op == "reshape-target":
        shape = target["shape"]
        numel = math.prod(shape)
        if target["encoding"] == "raw":
            target["shape"] = m.choice([[numel], [1, numel], [numel, 1], [1, 1, numel],
                                        list(reversed(shape))])
        else:
            rows, cols = target["rows"], target["cols"]
            target["shape"] = m.choice([[rows, cols], [rows, 1, cols], [rows, cols, 1, 1],
                                        [rows, 1, 1, cols]])
    elif op == "dtype-target":
        if target["encoding"] != "raw":
            raise Skip("not raw")
        target["dtype"] = m.choice(["int32", "float16", "uint8", "int64"])
        item = {"int32": 4, "float16": 2, "uint8": 1, "int64": 8}[target["dtype"]]
        i = target["section"]
        numel = math.prod(target["shape"])
        secs[i] = (secs[i] * 2)[:numel * item]
    else:
        if target["encoding"] != "raw" or target["dtype"] != "float32" or not target["shape"]:
            raise Skip("not a raw float32 tensor")
        target["shape"][-1] += m.choice([1, 2, 3])
        i = target["section"]
        numel = math.prod(target["shape"])
        secs[i] = (secs[i] + bytes(4 * numel))[:numel * 4]
    m.note(f"graph node {n.get('name')!r} param {role!r}: {op}")
    return m.pack(h, secs)


@mutator("struct", 2)
def graph_io(m):
    """Graph input declarations: shapes, dtypes, names, counts."""
    h, secs = m.split()
    g = m.graph(h)
    spec = m.choice(g["inputs"])
    op = m.choice(["dim", "dim", "rank0", "rank9", "null-dim1", "fixed-batch", "dtype",
                   "name", "inputs-empty", "inputs-65", "extra-input", "grow-spatial",
                   "shrink-spatial"])
    shape = spec["shape"]
    if op == "dim":
        j = m.rng.randrange(len(shape))
        shape[j] = m.choice([0, -1, 2**31, 2**31 + 1, 1.0, True, "3", None, 1, 2**16])
    elif op == "rank0":
        spec["shape"] = []
    elif op == "rank9":
        spec["shape"] = [None] + [1] * 8
    elif op == "null-dim1":
        if len(shape) < 2:
            raise Skip("rank 1")
        shape[1] = None
    elif op == "fixed-batch":
        shape[0] = m.choice([1, 2, 3])
    elif op == "dtype":
        spec["dtype"] = m.choice(["float16", "float64", "int32", None, "", 1])
    elif op == "name":
        spec["name"] = m.choice(["", None, 1, "x" * 257, "never.used"])
    elif op == "inputs-empty":
        g["inputs"] = []
    elif op == "inputs-65":
        g["inputs"] = g["inputs"] + [{"name": f"in{j}", "dtype": "float32", "shape": [None, 1]}
                                     for j in range(65)]
    elif op == "extra-input":
        g["inputs"].append({"name": "unused", "dtype": "float32", "shape": [None, 4]})
    elif op == "grow-spatial":
        shape[-1] = shape[-1] + m.choice([1, 2, 5]) if _is_int(shape[-1]) else 3
    else:
        shape[-1] = max(1, shape[-1] - m.choice([1, 2, 5])) if _is_int(shape[-1]) else 1
    m.note(f"graph input {spec.get('name')!r}: {op} -> {_short(spec.get('shape'))}")
    return m.pack(h, secs)


# ---- struct class: metadata and header text ------------------------------------------------


def _with_metadata_text(m, h, secs, text):
    h = dict(h)
    h.pop("metadata", None)
    h["sections"] = table_for(secs)
    head = dumps(h)
    head = head[:-1] + b',"metadata":' + text + b"}"
    return m.pack(h, secs, head=head)


@mutator("struct", 1.5)
def meta_deep(m):
    h, secs = m.split()
    depth = m.choice([60, 61, 62, 63, 64, 65, 66, 100, 1000, 100_000])
    kind = m.choice(["list", "dict"])
    if kind == "list":
        inner = b"[" * depth + b"]" * depth
    else:
        inner = b'{"a":' * depth + b"1" + b"}" * depth
    m.note(f"metadata nested {depth} deep ({kind})")
    return _with_metadata_text(m, h, secs, b'{"deep":' + inner + b"}")


@mutator("struct", 1.5)
def meta_same(m):
    """Metadata edits a reader must accept: unknown keys, any recipe, non-ASCII text."""
    h, secs = m.split()
    md = h.setdefault("metadata", {})
    op = m.choice(["unknown-key", "recipe", "unicode", "long", "extra", "drop-all", "floats"])
    if op == "unknown-key":
        md["x-fuzz"] = {"k": [1, 2.5, None, True, "s"]}
    elif op == "recipe":
        md["recipe"] = m.choice([[], None, 3, "text", {"a": {"b": [{"c": 1}]}}])
    elif op == "unicode":
        md["source_model"] = "\u00e9\u540d\U0001F600"
    elif op == "long":
        md["extra"] = "x" * m.choice([1000, 100_000])
    elif op == "extra":
        md["extra"] = {"accuracy": 0.75, "list": list(range(50))}
    elif op == "drop-all":
        h.pop("metadata")
    else:
        md["extra"] = [1e-300, 1e300, -0.0, 5e-324]
    m.same = "content"
    m.note(f"metadata: {op}")
    return m.pack(h, secs, ensure_ascii=m.rng.random() < 0.5)


@mutator("struct", 1)
def meta_bad(m):
    h, secs = m.split()
    op = m.choice(["producer-int", "producer-null", "sha-list", "not-object", "null"])
    md = h.setdefault("metadata", {})
    if op == "producer-int":
        md["producer"] = 1
    elif op == "producer-null":
        md["producer_version"] = None
    elif op == "sha-list":
        md["source_sha256"] = ["ab"]
    elif op == "not-object":
        h["metadata"] = m.choice([[], "x", 1, True])
    else:
        h["metadata"] = None
    m.note(f"metadata: {op}")
    return m.pack(h, secs)


_NUM = re.compile(rb"(?<=[:\[,])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[,\]}])")
_STR = re.compile(rb'"(?:[^"\\]|\\.)*"')


@mutator("struct", 4)
def json_text(m):
    """Edits of the header's JSON text (all checksums fixed)."""
    h, secs = m.split()
    h["sections"] = table_for(secs)
    text = dumps(h)
    op = m.choice(["dup-key", "dup-key", "nan", "number-form", "number-form", "big-int",
                   "unicode", "bad-utf8", "bom", "truncate", "trailing", "comment",
                   "single-quotes", "long-string", "toplevel", "empty", "control-char",
                   "deep-array"])
    if op == "dup-key":
        starts = [mt.start() for mt in re.finditer(rb'\{"', text)]
        p = m.choice(starts)
        key = re.match(rb'\{("(?:[^"\\]|\\.)*"):', text[p:]).group(1)
        val = m.choice([b"null", b"0", b'"x"', b"[]"])
        text = text[:p + 1] + key + b":" + val + b"," + text[p + 1:]
        op = f"dup-key {key.decode(errors='replace')[:40]}"
    elif op in ("nan", "number-form", "big-int"):
        nums = list(_NUM.finditer(text))
        mt = m.choice(nums)
        if op == "nan":
            new = m.choice([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"])
        elif op == "number-form":
            v = mt.group().decode()
            new = m.choice([v + ".0", v + "e0", v + "E+0", "-0", "0.0", "1e999", "-1e999",
                            "1e-999", "0" + v, "+" + v, "." + v, "0x" + v, v + "_0",
                            v + ".", "1.0e1", "-" + v]).encode()
        else:
            new = m.choice([b"9" * 4300, b"9" * 4301, b"1" + b"0" * 5000, b"-" + b"9" * 5000,
                            b"1" + b"0" * 400, b"1" + b"0" * 400 + b".0", b"1e400"])
        text = text[:mt.start()] + new + text[mt.end():]
        op = f"{op} {mt.group()[:20].decode()} -> {new[:20].decode()}{'...' if len(new) > 20 else ''}"
    elif op in ("unicode", "bad-utf8", "control-char"):
        strs = list(_STR.finditer(text))
        mt = m.choice(strs)
        p = mt.start() + 1 + m.rng.randrange(max(1, len(mt.group()) - 1))
        p = min(p, mt.end() - 1)
        if op == "unicode":
            ins = m.choice([b"\\ud800", b"\\udfff", b"\\u0000", b"\xc3\xa9", b"\xf0\x9f\x98\x80",
                            b"\\u00e9", b"\\uD83D\\uDE00", b"\\uFFFF", b"\\u"])
        elif op == "bad-utf8":
            ins = m.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xc3", b"\xf8\x88\x80\x80",
                            b"\x80"])
        else:
            ins = m.choice([b"\x00", b"\n", b"\t", b"\x1f", b"\\x41", b"\\q"])
        if text[p - 1:p] == b"\\":
            p -= 1
        text = text[:p] + ins + text[p:]
        op = f"{op} {ins!r} in {mt.group()[:30].decode(errors='replace')}"
    elif op == "bom":
        text = b"\xef\xbb\xbf" + text
    elif op == "truncate":
        text = text[:m.rng.randrange(len(text))]
    elif op == "trailing":
        text = text + m.choice([b"x", b"{}", b"\0", b",", b"]", b"\xff"])
    elif op == "comment":
        text = text[:1] + b"/* c */" + text[1:]
    elif op == "single-quotes":
        text = text.replace(b'"', b"'", 2)
    elif op == "long-string":
        strs = list(_STR.finditer(text))
        mt = m.choice(strs)
        text = text[:mt.start()] + b'"' + b"x" * m.choice([257, 5000, 1 << 20]) + b'"' + \
            text[mt.end():]
    elif op == "toplevel":
        text = m.choice([b"[]", b'""', b"1", b"null", b"{}", b"true", b"[" + text + b"]"])
    elif op == "empty":
        text = b""
    else:
        text = text[:-1] + b',"deep":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    m.note(f"header text: {op}")
    return m.pack(h, secs, head=text)


@mutator("struct", 2)
def json_same(m):
    """The same header as other valid JSON: whitespace, key order, escapes."""
    h, secs = m.split()
    h["sections"] = table_for(secs)
    op = m.choice(["indent", "spaces", "key-order", "whitespace-around", "escapes",
                   "ensure-ascii-off", "all"])
    ops = ["indent", "spaces", "key-order", "whitespace-around", "escapes"] \
        if op == "all" else [op]
    kw = {}
    obj = h
    if "key-order" in ops:
        def shuffled(o):
            if isinstance(o, dict):
                items = list(o.items())
                m.rng.shuffle(items)
                return {k: shuffled(v) for k, v in items}
            if isinstance(o, list):
                return [shuffled(v) for v in o]
            return o
        obj = shuffled(h)
        kw["sort_keys"] = False
    if "indent" in ops:
        kw["indent"] = m.choice([1, 2, "\t"])
    if "spaces" in ops:
        kw["separators"] = (" , ", " : ")
    if "ensure-ascii-off" in ops:
        kw["ensure_ascii"] = False
    text = dumps(obj, **kw)
    if "whitespace-around" in ops:
        text = b" \n\t\r" + text + b"\r\n "
    if "escapes" in ops:
        text = text.replace(b'"name"', b'"\\u006eame"').replace(b'"op"', b'"o\\u0070"')
        text = text.replace(b'"float32"', b'"float\\u0033\\u0032"')
    m.same = "all"
    m.note(f"header re-serialized: {op}")
    return m.pack(h, secs, head=text)


# =============================================================================================
# Cases
# =============================================================================================


@dataclass
class Case:
    id: str
    seed: str
    kinds: list
    cls: str
    detail: str
    data: bytes
    same: object = None
    crc_ok: bool = False


def parse_case_id(case_id):
    fuzz_seed, index = str(case_id).rsplit("-", 1)
    return int(fuzz_seed), int(index)


def _pick_mutator(rng, cls=None, first=True):
    pool = [mu for mu in MUTATORS.values()
            if (cls is None or mu.cls == cls) and (first or not mu.first_only)]
    return rng.choices(pool, [mu.weight for mu in pool])[0]


def make_case(seeds, fuzz_seed, index):
    """The case named f"{fuzz_seed}-{index}": a seed file and one or two mutations."""
    case_id = f"{fuzz_seed}-{index}"
    rng = random.Random(f"cdnn-fuzz/{case_id}")
    names = [n for n in SEED_WEIGHTS if n in seeds]
    seed = rng.choices(names, [SEED_WEIGHTS[n] for n in names])[0]
    data = seeds[seed]
    classes = sorted(CLASS_WEIGHTS)
    cls = rng.choices(classes, [CLASS_WEIGHTS[c] for c in classes])[0]
    kinds, notes, same = [], [], None
    for attempt in range(50):
        mu = _pick_mutator(rng, cls)
        m = Mut(rng, data, seed, seeds)
        try:
            out = mu.fn(m)
        except Skip:
            continue
        kinds.append(mu.name)
        notes += m.notes
        same = m.same
        data = out
        break
    else:
        raise RuntimeError(f"case {case_id}: no {cls} mutation applies to {seed}")
    if rng.random() < STACK_PROBABILITY:
        for attempt in range(20):
            mu = _pick_mutator(rng, None, first=False)
            m = Mut(rng, data, seed, seeds)
            try:
                out = mu.fn(m)
            except Skip:
                continue
            except Exception:
                continue  # the first mutation left nothing this one understands
            kinds.append(mu.name)
            notes += m.notes
            same = same if m.same is not None and same is not None else None
            if same is not None and m.same == "content":
                same = "content"
            data = out
            if mu.cls != cls:
                cls = "mixed"
            break
    return Case(case_id, seed, kinds, cls, "; ".join(notes), bytes(data), same,
                checksums_ok(data))


# =============================================================================================
# Executing one file
# =============================================================================================


class WrongResult(Exception):
    """A file loaded, but what it decoded to breaks an invariant."""


def _digest(*arrays):
    hsh = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        hsh.update(str((a.dtype.str, a.shape)).encode())
        hsh.update(a.tobytes())
    return hsh.hexdigest()


def _desc_key(t, sections_bytes):
    """What determines a tensor's decoded content: its descriptor without section indices,
    and the bytes of its sections."""
    d = copy.deepcopy(t.desc)
    secs = []
    if "section" in d:
        secs.append(sections_bytes(d.pop("section")))
    for k in ("codebook", "row_counts", "gaps", "codes"):
        if isinstance(d.get(k), dict) and "section" in d[k]:
            secs.append(sections_bytes(d[k].pop("section")))
    return json.dumps(d, sort_keys=True) + "|" + "|".join(
        hashlib.sha1(bytes(s)).hexdigest() for s in secs)


def _check_sparse(f, t, s):
    d = t.desc
    rows, cols = d["rows"], d["cols"]
    rp, ci, codes, cb = s.row_ptr, s.col_idx, s.codes, s.codebook
    problems = []
    if rp.dtype != np.int64 or rp.shape != (rows + 1,):
        problems.append(f"row_ptr {rp.dtype}{rp.shape}, expected int64[{rows + 1}]")
    elif rp[0] != 0 or np.any(np.diff(rp) < 0) or rp[-1] != ci.size:
        problems.append("row_ptr not monotonic from 0 to nnz")
    if ci.size != d["nnz"] or codes.size != ci.size:
        problems.append(f"{ci.size} columns, {codes.size} codes for nnz {d['nnz']}")
    if ci.size and (int(ci.min()) < 0 or int(ci.max()) >= cols):
        problems.append(f"column index outside [0, {cols})")
    if cb.dtype != np.float32 or cb.size != d["codebook"]["size"] or not np.all(np.isfinite(cb)):
        problems.append("codebook has the wrong size or non-finite values")
    if codes.size and int(codes.max()) >= cb.size:
        problems.append("code past the codebook")
    fc = d["filler_code"]
    if fc is not None and codes.size and np.any(codes == fc):
        problems.append("a filler entry was kept")
    if not problems and ci.size and rp.shape == (rows + 1,):
        row_of = np.repeat(np.arange(rows), np.diff(rp))
        same_row = row_of[1:] == row_of[:-1]
        if np.any(np.diff(ci.astype(np.int64))[same_row] <= 0):
            problems.append("columns not strictly increasing within a row")
    if problems:
        raise WrongResult(f"tensor {t.name!r}: " + "; ".join(problems))


def _feed(graph, seed=0):
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in graph["inputs"]:
        shape = [2 if d is None else d for d in spec["shape"]]
        if math.prod(shape) > MAX_FEED_ELEMENTS:
            return None
        feed[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    return feed


def _site(tb):
    """module.function of the innermost cdnn_runtime frame of a traceback."""
    site = "?"
    for frame in traceback.extract_tb(tb):
        fn = frame.filename.replace("\\", "/")
        if "/cdnn_runtime/" in fn:
            mod = fn.split("/cdnn_runtime/", 1)[1][:-3].replace("/", ".")
            site = f"{mod}.{frame.name}"
    return site


def session_class():
    """(InferenceSession, None), or (None, why not) while cdnn_runtime.session is missing
    or incomplete."""
    import importlib
    import importlib.util
    try:
        if importlib.util.find_spec("cdnn_runtime.session") is None:
            return None, "cdnn_runtime.session does not exist"
        mod = importlib.import_module("cdnn_runtime.session")
    except Exception as exc:
        return None, f"cdnn_runtime.session does not import: {type(exc).__name__}: {exc}"
    cls = getattr(mod, "InferenceSession", None)
    if cls is None:
        return None, "cdnn_runtime.session has no InferenceSession"
    return cls, None


class Executor:
    """Runs files; knows the seeds' decoded content to check unchanged tensors against."""

    def __init__(self, seeds, *, use_session=True):
        self.seeds = seeds
        self.session_cls, self.session_note = None, "turned off"
        self.ref_tensors = {}  # _desc_key -> digest
        self.ref_content = {}  # seed -> {"tensors", "graph", "metadata"}
        self.ref_outputs = {}  # seed -> outputs (or None)
        for name, data in seeds.items():
            res = self.execute(data, reference=True)
            if res["outcome"] != "ok":
                raise RuntimeError(f"seed {name} does not load: {res}")
            self.ref_content[name] = res["content"]
        if use_session:
            self.session_cls, self.session_note = session_class()
        if self.session_cls is not None:
            self.session_note = None
            self.seed_session_failures = {}
            for name, data in seeds.items():
                res = self.execute(data, reference=True)
                if res["outcome"] != "ok":
                    self.seed_session_failures[name] = f"{res.get('exc')}: {res.get('msg')}"
                self.ref_outputs[name] = res.get("outputs")
            if self.seed_session_failures:
                name, why = sorted(self.seed_session_failures.items())[0]
                self.session_cls = None
                self.session_note = (f"turned off: InferenceSession fails on the valid seed "
                                     f"{name} ({why[:300]})")

    def execute(self, data, *, seed=None, same=None, reraise=False, reference=False):
        """Load, decode, check and run one file; a dict with the outcome."""
        from cdnn_runtime.errors import CdnnError
        from cdnn_runtime.reader import read
        stage = "read"
        res = {"outcome": None, "stage": stage}
        try:
            f = read(data)
            stage = "decode"
            content = {}

            def sec(i):
                a, n = f.sections[i]
                return f._data[a:a + n]

            for t in f.tensors:
                if t.encoding == "raw":
                    arr = f.raw(t.name)
                    if arr.shape != tuple(t.shape) or arr.dtype.kind not in "fiu":
                        raise WrongResult(f"raw {t.name!r} decoded to {arr.dtype}{arr.shape}")
                    digest = _digest(arr)
                else:
                    s = f.sparse(t.name, parallel=True)
                    _check_sparse(f, t, s)
                    s2 = f.sparse(t.name, parallel=False)
                    digest = _digest(s.row_ptr, s.col_idx, s.codes, s.codebook)
                    if digest != _digest(s2.row_ptr, s2.col_idx, s2.codes, s2.codebook):
                        raise WrongResult(f"tensor {t.name!r}: parallel and serial decoding "
                                          "differ")
                    if math.prod(t.shape) <= MAX_DENSE_ELEMENTS:
                        dense = f.dense(t.name)
                        if dense.shape != tuple(t.shape) or np.count_nonzero(dense) > s.nnz:
                            raise WrongResult(f"tensor {t.name!r}: dense form is wrong")
                key = _desc_key(t, sec)
                if reference:
                    self.ref_tensors[key] = digest
                elif key in self.ref_tensors and self.ref_tensors[key] != digest:
                    raise WrongResult(f"tensor {t.name!r}: same descriptor and bytes as in a "
                                      "seed, different content")
                content[t.name] = digest
            graph = None if f.graph is None else dict(
                f.graph, nodes=sorted(f.graph["nodes"], key=lambda n: n["name"]))
            content = {"tensors": content,
                       "graph": json.dumps(graph, sort_keys=True),
                       "metadata": json.dumps(f.metadata, sort_keys=True)}
            if same is not None and seed is not None:
                ref = self.ref_content[seed]
                keys = ("tensors", "graph", "metadata") if same == "all" else ("tensors", "graph")
                for k in keys:
                    if content[k] != ref[k]:
                        raise WrongResult(f"a change that keeps the file's meaning changed its "
                                          f"decoded {k}")
            res["content"] = content
            if f.graph is not None and self.session_cls is not None:
                stage = "session"
                sess = self.session_cls(data)
                stage = "run"
                feed = _feed(f.graph)
                if feed is None:
                    res["run"] = "input too large, not run"
                else:
                    try:
                        outs = sess.run(None, feed)
                    except (CdnnError, ValueError) as exc:
                        res["run"] = f"run rejected the input: {type(exc).__name__}: {exc}"[:300]
                        outs = None
                    if outs is not None:
                        if len(outs) != len(f.graph["outputs"]) or not all(
                                isinstance(o, np.ndarray) and o.dtype == np.float32
                                for o in outs):
                            raise WrongResult("session outputs are not one float32 array per "
                                              "graph output")
                        res["outputs"] = [np.asarray(o) for o in outs] if reference else None
                        if same is not None and seed is not None and \
                                self.ref_outputs.get(seed) is not None:
                            ref = self.ref_outputs[seed]
                            if len(ref) != len(outs) or not all(
                                    a.shape == b.shape and np.allclose(a, b, rtol=1e-5,
                                                                       atol=1e-6, equal_nan=True)
                                    for a, b in zip(ref, outs)):
                                raise WrongResult("a change that keeps the file's meaning "
                                                  "changed the session's outputs")
            res["outcome"] = "ok"
        except CdnnError as exc:
            if same is not None and seed is not None:
                res.update(outcome="wrong", exc=type(exc).__name__,
                           msg=f"a file with the meaning of seed {seed} was rejected: {exc}"[:500],
                           site=_site(exc.__traceback__))
            else:
                res.update(outcome="rejected", exc=type(exc).__name__, msg=str(exc)[:300],
                           site=_site(exc.__traceback__))
        except WrongResult as exc:
            res.update(outcome="wrong", exc="WrongResult", msg=str(exc)[:500])
        except Exception as exc:
            if reraise:
                raise
            res.update(outcome="other", exc=f"{type(exc).__module__}.{type(exc).__qualname__}",
                       msg=str(exc)[:500], site=_site(exc.__traceback__),
                       tb="".join(traceback.format_exception(exc))[-4000:])
        res["stage"] = stage
        if not reference:
            res.pop("content", None)
            res.pop("outputs", None)
        return res

    def run_case(self, fuzz_seed, index, announce=None):
        t0 = time.perf_counter()
        try:
            case = make_case(self.seeds, fuzz_seed, index)
        except Exception as exc:
            return {"id": f"{fuzz_seed}-{index}", "outcome": "gen-error",
                    "exc": type(exc).__name__, "msg": str(exc)[:300],
                    "tb": traceback.format_exc()[-4000:], "kinds": [], "cls": "?",
                    "seed": "?", "detail": "", "crc_ok": False, "time": 0.0}
        info = {"id": case.id, "seed": case.seed, "kinds": case.kinds, "cls": case.cls,
                "detail": case.detail, "crc_ok": case.crc_ok, "same": case.same,
                "size": len(case.data)}
        if announce:
            announce(info)
        res = self.execute(case.data, seed=case.seed, same=case.same)
        res.update(info)
        res["time"] = time.perf_counter() - t0
        return res


# =============================================================================================
# Worker process and runner
# =============================================================================================


def _send(fh, obj):
    b = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack("<Q", len(b)) + b)
    fh.flush()


def _recv(fh):
    head = fh.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(fh.read(n))


def _selftest(what):
    """Deliberate failures, to test the runner itself."""
    if what == "segfault":
        import ctypes
        ctypes.c_int64.from_address(8).value
    elif what == "hang":
        while True:
            time.sleep(1)
    elif what == "abort":
        os.abort()
    return {"outcome": "ok"}


def worker_main(seeds_path):
    import faulthandler
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to the log, never into the protocol
    sys.stdout = sys.stderr
    faulthandler.enable()
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    with open(seeds_path, "rb") as fh:
        seeds = pickle.load(fh)
    ex = Executor(seeds, use_session=os.environ.get("CDNN_FUZZ_SESSION", "1") != "0")
    _send(proto, {"ready": True, "session": ex.session_note})
    stdin = sys.stdin.buffer
    while True:
        msg = _recv(stdin)
        if msg is None:
            return
        kind = msg[0]
        if kind == "case":
            _, fuzz_seed, index = msg
            print(f"case {fuzz_seed}-{index}", file=sys.stderr, flush=True)
            res = ex.run_case(fuzz_seed, index, announce=lambda i: _send(proto, {"start": i}))
            _send(proto, {"result": res})
        elif kind == "selftest":
            _send(proto, {"start": {"id": msg[1], "kinds": ["selftest"], "cls": "selftest",
                                    "seed": "-", "detail": msg[1], "crc_ok": False}})
            res = _selftest(msg[1])
            res.update(id=msg[1], kinds=["selftest"], cls="selftest", seed="-", detail=msg[1],
                       crc_ok=False, time=0.0)
            _send(proto, {"result": res})


class _Worker:
    def __init__(self, runner, slot):
        self.runner = runner
        self.slot = slot
        self.proc = None
        self.buf = b""
        self.case = None
        self.started = None
        self.deadline = None
        self.log_path = None

    def start(self):
        self.spawn()
        self.wait_ready()

    def spawn(self):
        r = self.runner
        self.log_path = os.path.join(r.tmp, f"worker{self.slot}-{r.restarts}.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        env["CDNN_FUZZ_SESSION"] = "1" if r.use_session else "0"
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                      r.seeds_path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     cwd=str(ROOT))
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.case = None

    def wait_ready(self):
        r = self.runner
        deadline = time.monotonic() + r.startup_timeout
        while True:
            msg = self._read_msg(deadline)
            if msg is None:
                raise RuntimeError(f"fuzz worker did not start: {self.log_tail()}")
            if msg.get("ready"):
                r.session_note = msg.get("session")
                return

    def _read_msg(self, deadline):
        while True:
            msg = self._parse()
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(min(left, 1.0))
            sel.close()
            if ready:
                if not self._fill():
                    return None

    def _fill(self):
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _parse(self):
        if len(self.buf) < 8:
            return None
        (n,) = struct.unpack_from("<Q", self.buf)
        if len(self.buf) < 8 + n:
            return None
        msg = pickle.loads(self.buf[8:8 + n])
        self.buf = self.buf[8 + n:]
        return msg

    def send(self, msg, case_id):
        self.case = {"id": case_id}
        self.started = time.monotonic()
        self.deadline = self.started + self.runner.timeout
        _send(self.proc.stdin, msg)

    def log_tail(self, n=3000):
        try:
            self.log.flush()
            with open(self.log_path, "rb") as fh:
                data = fh.read()
            return data[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, kill=False):
        if self.proc is None:
            return
        try:
            if kill:
                self.proc.kill()
            else:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        for fh in (self.proc.stdout, self.proc.stdin):
            try:
                fh.close()
            except Exception:
                pass
        self.log.close()
        self.proc = None


class Runner:
    """Feeds cases to `jobs` worker processes; restarts a worker that dies or hangs."""

    def __init__(self, seeds=None, *, jobs=1, timeout=10.0, startup_timeout=180.0,
                 use_session=True):
        self.seeds = seeds if seeds is not None else build_seeds()
        self.jobs = max(1, int(jobs))
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.use_session = use_session
        self.session_note = None
        self.restarts = 0
        self.tmp = tempfile.mkdtemp(prefix="cdnn-fuzz-")
        self.seeds_path = os.path.join(self.tmp, "seeds.pickle")
        with open(self.seeds_path, "wb") as fh:
            pickle.dump(self.seeds, fh)
        self.workers = []

    def __enter__(self):
        self.workers = [_Worker(self, slot) for slot in range(self.jobs)]
        for w in self.workers:
            w.spawn()
        for w in self.workers:
            w.wait_ready()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for w in self.workers:
            w.stop()
        self.workers = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _restart(self, w, kill):
        w.stop(kill=kill)
        self.restarts += 1
        w.start()

    def _died(self, w, outcome):
        info = dict(w.case or {})
        rc = w.proc.poll() if w.proc else None
        if outcome == "crash":
            try:
                rc = w.proc.wait(timeout=5)
            except Exception:
                rc = None
            if rc is not None and rc < 0:
                try:
                    sig = signal.Signals(-rc).name
                except ValueError:
                    sig = f"signal {-rc}"
                msg = f"worker killed by {sig}"
            else:
                msg = f"worker exited with status {rc}"
        else:
            msg = f"no answer within {self.timeout} s"
        info.update(outcome=outcome, msg=msg, returncode=rc, log=w.log_tail(),
                    time=time.monotonic() - (w.started or time.monotonic()))
        info.setdefault("kinds", [])
        info.setdefault("cls", "?")
        info.setdefault("seed", "?")
        info.setdefault("detail", "")
        info.setdefault("crc_ok", False)
        return info

    def run(self, messages):
        """Run (message, case id) pairs; yields one result dict per case, as they finish."""
        pending = iter(messages)
        idle = list(self.workers)
        busy = {}
        exhausted = False
        while True:
            while idle and not exhausted:
                try:
                    msg, case_id = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                w = idle.pop()
                try:
                    w.send(msg, case_id)
                except (BrokenPipeError, ConnectionResetError):
                    # The worker died after its last answer: start a new one for this case.
                    self._restart(w, kill=True)
                    w.send(msg, case_id)
                busy[w.proc.stdout.fileno()] = w
            if not busy:
                return
            sel = selectors.DefaultSelector()
            for fd, w in busy.items():
                sel.register(fd, selectors.EVENT_READ, w)
            wait = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
            events = sel.select(min(wait, 1.0))
            sel.close()
            for key, _ in events:
                w = key.data
                alive = w._fill()
                while True:
                    msg = w._parse()
                    if msg is None:
                        break
                    if "start" in msg:
                        w.case = dict(msg["start"])
                    elif "result" in msg:
                        del busy[key.fd]
                        w.case = None
                        idle.append(w)
                        yield msg["result"]
                        break
                if not alive and key.fd in busy:
                    del busy[key.fd]
                    yield self._died(w, "crash")
                    self._restart(w, kill=True)
                    idle.append(w)
            now = time.monotonic()
            for fd, w in list(busy.items()):
                if now > w.deadline:
                    del busy[fd]
                    res = self._died(w, "hang")
                    self._restart(w, kill=True)
                    idle.append(w)
                    yield res

    def run_cases(self, fuzz_seed, indices):
        return self.run((("case", fuzz_seed, i), f"{fuzz_seed}-{i}") for i in indices)


# =============================================================================================
# Summaries
# =============================================================================================


@dataclass
class Summary:
    fuzz_seed: int
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_kind: dict = field(default_factory=lambda: defaultdict(Counter))
    by_class: dict = field(default_factory=lambda: defaultdict(Counter))
    by_seed: dict = field(default_factory=lambda: defaultdict(Counter))
    sites: Counter = field(default_factory=Counter)
    stages: Counter = field(default_factory=Counter)
    crc_ok: int = 0
    struct_crc_ok: int = 0
    struct_crc_ok_ok: int = 0
    same_checked: int = 0
    run_notes: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    slowest: list = field(default_factory=list)
    seconds: float = 0.0
    session: object = None
    restarts: int = 0

    def add(self, r):
        self.cases += 1
        o = r["outcome"]
        self.outcomes[o] += 1
        for k in r.get("kinds") or ["?"]:
            self.by_kind[k][o] += 1
        self.by_class[r.get("cls", "?")][o] += 1
        self.by_seed[r.get("seed", "?")][o] += 1
        if o in ("rejected", "other") and r.get("site"):
            self.sites[r["site"]] += 1
        if o in ("rejected", "other", "ok", "wrong"):
            self.stages[f"{o}@{r.get('stage')}"] += 1
        if r.get("crc_ok"):
            self.crc_ok += 1
            if r.get("cls") == "struct":
                self.struct_crc_ok += 1
                if o == "ok":
                    self.struct_crc_ok_ok += 1
        if r.get("same") is not None:
            self.same_checked += 1
        if r.get("run"):
            self.run_notes[r["run"].split(":")[0]] += 1
        if o in FAILURES:
            self.failures.append({k: r.get(k) for k in (
                "id", "outcome", "seed", "kinds", "cls", "detail", "exc", "msg", "site",
                "stage", "returncode", "tb", "log", "same")})
        self.slowest.append((r.get("time") or 0.0, r.get("id")))
        if len(self.slowest) > 1000:
            self.slowest = sorted(self.slowest, reverse=True)[:10]

    @property
    def failure_ids(self):
        return [f["id"] for f in self.failures]

    def to_json(self):
        return {
            "fuzz_seed": self.fuzz_seed, "cases": self.cases, "seconds": round(self.seconds, 2),
            "cases_per_second": round(self.cases / self.seconds, 1) if self.seconds else None,
            "outcomes": {o: self.outcomes.get(o, 0) for o in OUTCOMES},
            "checksums_valid": self.crc_ok,
            "struct_with_valid_checksums": self.struct_crc_ok,
            "struct_with_valid_checksums_loaded": self.struct_crc_ok_ok,
            "meaning_preserving_checked": self.same_checked,
            "by_class": {k: dict(v) for k, v in sorted(self.by_class.items())},
            "by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
            "by_seed": {k: dict(v) for k, v in sorted(self.by_seed.items())},
            "stages": dict(self.stages.most_common()),
            "rejection_sites": dict(self.sites.most_common()),
            "run_notes": dict(self.run_notes),
            "session": self.session or "available",
            "worker_restarts": self.restarts,
            "slowest": [{"id": i, "seconds": round(t, 3)}
                        for t, i in sorted(self.slowest, reverse=True)[:10]],
            "failures": self.failures,
        }

    def table(self):
        lines = []
        tot = max(1, self.cases)
        lines.append(f"{self.cases} cases in {self.seconds:.1f} s "
                     f"({self.cases / max(self.seconds, 1e-9):.0f}/s), fuzz seed {self.fuzz_seed}")
        lines.append("outcomes: " + ", ".join(f"{o} {self.outcomes.get(o, 0)}" for o in OUTCOMES))
        lines.append(f"checksums valid: {self.crc_ok} ({100 * self.crc_ok / tot:.0f}%); "
                     f"structure-aware with valid checksums: {self.struct_crc_ok} "
                     f"({100 * self.struct_crc_ok / tot:.0f}%), of which loaded: "
                     f"{self.struct_crc_ok_ok}; meaning-preserving checked: {self.same_checked}")
        lines.append(f"session: {self.session or 'available'}; worker restarts: {self.restarts}")
        head = ["kind"] + list(OUTCOMES)
        rows = [[k] + [str(v.get(o, 0)) for o in OUTCOMES] for k, v in sorted(
            self.by_kind.items())]
        rows += [["class " + k] + [str(v.get(o, 0)) for o in OUTCOMES]
                 for k, v in sorted(self.by_class.items())]
        rows.append(["total"] + [str(self.outcomes.get(o, 0)) for o in OUTCOMES])
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(r, widths)))
        lines.append(fmt(head))
        lines.append("  ".join("-" * w for w in widths))
        lines += [fmt(r) for r in rows]
        lines.append("where files were rejected (innermost cdnn_runtime function):")
        lines += [f"  {n:6d}  {s}" for s, n in self.sites.most_common(25)]
        if self.failures:
            lines.append(f"FAILURES ({len(self.failures)}):")
            for f in self.failures[:40]:
                lines.append(f"  {f['id']}  {f['outcome']}  {f['seed']}  {'+'.join(f['kinds'])}"
                             f"  {f.get('exc') or ''}: {(f.get('msg') or '')[:160]}")
                lines.append(f"      {(f.get('detail') or '')[:200]}")
        return "\n".join(lines)


def fuzz(fuzz_seed, cases, *, jobs=2, timeout=10.0, start=0, seeds=None, progress=None,
         use_session=True):
    """Run cases start..start+cases-1 of fuzz_seed; a Summary."""
    s = Summary(fuzz_seed)
    t0 = time.perf_counter()
    with Runner(seeds, jobs=jobs, timeout=timeout, use_session=use_session) as r:
        s.session = r.session_note
        for res in r.run_cases(fuzz_seed, range(start, start + cases)):
            s.add(res)
            if progress:
                progress(s, time.perf_counter() - t0)
        s.restarts = r.restarts
    s.seconds = time.perf_counter() - t0
    return s


def replay(case_id, *, seeds=None, save=None, use_session=True, out=sys.stdout):
    """Re-create one case and run it in this process, with a traceback on failure."""
    import faulthandler
    faulthandler.enable()
    seeds = seeds if seeds is not None else build_seeds()
    fuzz_seed, index = parse_case_id(case_id)
    case = make_case(seeds, fuzz_seed, index)
    print(f"case {case.id}: seed {case.seed}, {' + '.join(case.kinds)} ({case.cls}), "
          f"{len(case.data)} bytes, checksums {'valid' if case.crc_ok else 'broken'}"
          f"{', meaning kept: ' + case.same if case.same else ''}", file=out)
    print(f"  {case.detail}", file=out)
    if save:
        Path(save).write_bytes(case.data)
        print(f"  saved to {save}", file=out)
    ex = Executor(seeds, use_session=use_session)
    if ex.session_cls is None:
        print(f"  (no session step: {ex.session_note})", file=out)
    res = ex.execute(case.data, seed=case.seed, same=case.same, reraise=True)
    for k in ("outcome", "stage", "exc", "site", "msg", "run"):
        if res.get(k) is not None:
            print(f"  {k}: {res[k]}", file=out)
    return res


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
    else:
        print("usage: python benchmarks/fuzz.py --help  (this module is a library)")
        sys.exit(2)
