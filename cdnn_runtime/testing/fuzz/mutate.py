"""The mutation machinery: the registry of mutators, the state of one mutation (`Mut`), and
helpers for finding and editing values in a parsed header.

A mutator is a function of a `Mut` that returns the mutated bytes, or raises `Skip` when it
does not apply to the file. It draws every choice from `m.rng`, so that a case id re-creates
it; the order of registration is part of that (it is the order `make_case` draws from).
"""

from __future__ import annotations

import copy
import json
import operator
import re
from collections import defaultdict
from dataclasses import dataclass

from ...constants import PREAMBLE_SIZE
from .. import craft


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
    """Register a mutator of class `cls` ("byte", "preamble" or "struct"), drawn with
    `weight`; a first_only one is never stacked on another mutation."""
    def deco(fn):
        MUTATORS[fn.__name__] = Mutator(fn.__name__, cls, weight, fn, first_only)
        return fn
    return deco


def dumps(obj, **kw):
    """JSON bytes as the writer spells them unless told otherwise (lone surrogates kept)."""
    kw.setdefault("sort_keys", True)
    kw.setdefault("separators", (",", ":"))
    return json.dumps(obj, **kw).encode("utf-8", "surrogatepass")


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

    def zeros_or_random(self, n, p_zeros):
        """n zero bytes with probability p_zeros, else n random bytes."""
        return b"\0" * n if self.rng.random() < p_zeros else self.rng.randbytes(n)

    def split(self, *, table=False):
        """Copies of (header, sections) of the file; with table, the header's section table
        recomputed, for mutations that pack with `keep_table` and should keep it valid."""
        try:
            header, sections = craft.split(self.data)
        except Exception:
            raise Skip("file does not split") from None
        if not isinstance(header, dict) or not isinstance(header.get("sections"), list):
            raise Skip("header is not a file header")
        header, sections = copy.deepcopy(header), [bytes(s) for s in sections]
        if table:
            header["sections"] = craft.section_table(sections)
        return header, sections

    def pack(self, header, sections, *, keep_table=False, head=None, **dump_kw):
        """Assemble with valid checksums. The section table written is the one in `header`
        when keep_table (so that it can be mutated), else the correct one; the bytes are laid
        out by the correct one either way. The header is stored deflated when it was."""
        table = craft.section_table(sections)
        h = dict(header)
        if not keep_table:
            h["sections"] = table
        if head is None:
            head = dumps(h, **dump_kw)
        deflated = len(self.data) >= PREAMBLE_SIZE and craft.is_deflated(self.data)
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
                 for k in STREAMS
                 if isinstance(t.get(k), dict) and (coding is None or t[k].get("coding") == coding)]
        return self.choice(found)

    def graph(self, header):
        g = header.get("graph")
        if not isinstance(g, dict) or not isinstance(g.get("nodes"), list) or not g["nodes"]:
            raise Skip("no graph")
        return g

    def absurd(self, current=None):
        vals = list(ABSURD)
        if is_int(current):
            vals += [current - 1, current + 1, current * 2, -current, current + 64,
                     current * 8 + 1, current // 2]
            vals += [current - 1, current + 1]  # off-by-one twice as often
        return self.choice(vals)


#: The three streams of a sparse tensor, and every key of one that names a section.
STREAMS = ("row_counts", "gaps", "codes")
SECTION_KEYS = ("codebook",) + STREAMS

ABSURD = [0, 1, 2, 3, -1, -2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257,
          2**16, 2**24, 2**24 + 1, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**53 - 1,
          2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**31), -(2**63),
          -(2**64), -(10**30), 10**30, 10**400, 0.0, -0.0, 1.0, 0.5, 1.5, 1e300, -1e300,
          float(2**53), "1", "", "0x10", None, True, False, [], [1], {}, {"a": 1}]

OTHER_TYPES = [None, True, False, 0, -1, 1.5, "x", "", [], [None], [1, 2], {}, {"x": 1}]


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def short(v):
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def fmt_path(path):
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


# ---- edits spelled by their names ------------------------------------------------------------

_EDIT = re.compile(r"(\w+)([-+=^])(\d+|null)$")
_APPLY = {"+": operator.add, "-": operator.sub, "^": operator.xor, "=": lambda cur, v: v}


def spelled_edit(obj, op, aliases=None):
    """Make the edit an op's name spells, "field" then one of + - ^ = then a number or null:
    "rows+1", "length-64", "crc^1" (aliases map "crc" to "crc32"), "gap_bits=9",
    "filler=null". False when the name spells no such edit."""
    found = _EDIT.match(op)
    if found is None:
        return False
    name, sign, value = found.groups()
    key = (aliases or {}).get(name, name)
    value = None if value == "null" else int(value)
    obj[key] = _APPLY[sign](obj[key] if sign != "=" else None, value)
    return True


def edit_by_table(op, table, *args):
    """Run table[op](*args); False when op has no entry or its handler says it does not
    apply (returns False), so that the caller can fall back to its default edit."""
    handler = table.get(op)
    return handler is not None and handler(*args) is not False


# ---- values inside a header ------------------------------------------------------------------

def paths(obj, path=()):
    """Every (path, value) below obj, containers included."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, path + (i,))


def get_at(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def put_at(obj, path, value):
    get_at(obj, path[:-1])[path[-1]] = value


_REGION_WEIGHTS = {"sections": 1, "tensors": 4, "graph": 3, "metadata": 0.5, "top": 0.5}


def region_path(m, header, pred, root=False):
    """A path matching pred(path, value), drawn first by region (section table, tensors,
    graph, metadata, top level) so that the big section table does not drown the rest."""
    regions = defaultdict(list)
    for path, v in paths(header):
        if (path or root) and pred(path, v):
            regions[path[0] if path and path[0] in _REGION_WEIGHTS else "top"].append(path)
    if not regions:
        raise Skip("no such field")
    names = sorted(regions)
    r = m.rng.choices(names, [_REGION_WEIGHTS[n] for n in names])[0]
    return m.choice(regions[r])


# ---- section references ------------------------------------------------------------------

def section_refs(header):
    """(tensor, key) of every section reference: key None for a tensor's own "section", else
    the key of the codebook or stream descriptor that holds one."""
    out = []
    for t in Mut.tensors(header):
        if "section" in t:
            out.append((t, None))
        for k in SECTION_KEYS:
            if isinstance(t.get(k), dict) and "section" in t[k]:
                out.append((t, k))
    return out


def ref_get(ref):
    t, k = ref
    return t["section"] if k is None else t[k]["section"]


def ref_set(ref, v):
    t, k = ref
    (t if k is None else t[k])["section"] = v


def renumber_after_drop(header, dropped):
    """Section references past a dropped section move down by one."""
    for ref in section_refs(header):
        v = ref_get(ref)
        if is_int(v) and v > dropped:
            ref_set(ref, v - 1)


def section_owner(header, idx):
    """Who uses section idx, for notes: 'name' or 'name'.key, or '?'."""
    for t in Mut.tensors(header):
        if t.get("section") == idx:
            return f"{t.get('name')!r}"
        for k in SECTION_KEYS:
            if isinstance(t.get(k), dict) and t[k].get("section") == idx:
                return f"{t.get('name')!r}.{k}"
    return "?"
