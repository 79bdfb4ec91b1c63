"""Mutators of class "struct" that edit a sparse tensor's streams: values that break a rule
of the spec's section 3.2 re-encoded with valid descriptors (only decoding can catch them),
the same values in another coding, and damaged Huffman or packed stream bytes."""

import hashlib
import struct
from dataclasses import dataclass

import numpy as np

from ... import streams
from ...reader import align
from .mutate import STREAMS, Skip, edit_by_table, mutator

#: Huffman chunk sizes a re-encoded stream is drawn with.
CHUNKS = [1, 2, 3, 7, 16, 64, 100, 1000, 8192, 65536, 2**24]

_DECODED = {}


def decoded_streams(data, name):
    """(row_counts, gaps, codes) of a tensor of a valid seed file, cached."""
    key = (hashlib.sha1(data).hexdigest(), name)
    if key not in _DECODED:
        from ...reader import read
        f = read(data)
        _DECODED[key] = tuple(np.asarray(a, np.int64) for a in f.entries(name))
    return _DECODED[key]


def _encode(m, values):
    """Re-encode values with a random coding; returns a descriptor (no section) and bytes."""
    values = np.asarray(values, np.int64)
    top = int(values.max()) if values.size else 0
    if top < 256 and m.rng.random() < 0.5:
        return streams.encode_stream(values.astype(np.uint8), coding="huffman",
                                     chunk_symbols=m.choice(CHUNKS))
    need = max(1, top.bit_length())
    bits = max(need, m.choice([need, need, min(32, need + 1), 32, need]))
    return streams.encode_stream(values.astype(np.uint32), coding="packed", bits=bits)


def _set_stream(t, key, secs, desc, data):
    """Stream `key` of tensor t replaced, in the section it had."""
    desc["section"] = t[key]["section"]
    t[key] = desc
    secs[desc["section"]] = data


class _Entries:
    """A sparse tensor's decoded streams being edited, with what the edits need to know."""

    def __init__(self, m, t):
        self.m, self.t = m, t
        self.rc, self.gaps, self.codes = (a.copy() for a in decoded_streams(m.data, t["name"]))
        self.gap_bits, self.k, self.fc = t["gap_bits"], t["codebook"]["size"], t["filler_code"]
        self.n_cols = t["cols"]

    def skip_unless(self, condition, op):
        if not condition:
            raise Skip(f"{op} does not apply")


def _gap_value(e, op):
    e.skip_unless(e.gaps.size, op)
    j = e.m.rng.randrange(e.gaps.size)
    e.gaps[j] = (1 << e.gap_bits) + e.m.choice([0, 0, 1, 5]) if op == "gap-past-bound" \
        else e.m.choice([2**16, 2**31, 2**32 - 1])
    return ["gaps"]


def _code_value(e, op):
    e.skip_unless(e.codes.size, op)
    j = e.m.rng.randrange(e.codes.size)
    e.codes[j] = {"code-past-size": e.k, "code-255": 255, "code-huge": 2**32 - 1}[op]
    return ["codes"]


def _code_to_filler(e, op):
    e.skip_unless(e.codes.size and e.fc is not None, op)
    real = np.flatnonzero(e.codes != e.fc)
    if not real.size:
        raise Skip("no real entries")
    e.codes[e.m.choice(real)] = e.fc
    return ["codes"]


def _filler_to_code(e, op):
    e.skip_unless(e.fc is not None, op)
    fill = np.flatnonzero(e.codes == e.fc)
    if not fill.size:
        raise Skip("no fillers")
    e.codes[e.m.choice(fill)] = (e.fc + 1) % e.k
    return ["codes"]


_ROW_COUNT_OPS = ("row+1", "row-1", "row-move", "row=cols+1", "row-huge")


def _row_count(e, op):
    e.skip_unless(e.rc.size, op)
    rc = e.rc
    r = e.m.rng.randrange(rc.size)
    if op == "row-move":
        r2 = e.m.rng.randrange(rc.size)
        d = e.m.choice([1, 2, int(rc[r2])])
        if r == r2 or rc[r2] < d:
            raise Skip("cannot move")
        rc[r] += d
        rc[r2] -= d
    elif op == "row-1" and rc[r] == 0:
        raise Skip("empty row")
    else:
        new = {"row+1": lambda: rc[r] + 1, "row-1": lambda: rc[r] - 1,
               "row=cols+1": lambda: e.n_cols + 1,
               "row-huge": lambda: e.m.choice([2**31, 2**32 - 1])}
        rc[r] = new[op]()
    return ["row_counts"]


def _column_overflow(e, op):
    """The last gap of a row set to reach past the column count (or as far as it can)."""
    rows = np.flatnonzero(e.rc)
    if not rows.size:
        raise Skip("no entries")
    r = e.m.choice(rows)
    end = int(e.rc[:r + 1].sum()) - 1
    start = end - int(e.rc[r]) + 1
    col = int((e.gaps[start:end + 1] + 1).sum()) - 1
    need = e.n_cols - col + int(e.gaps[end])
    e.gaps[end] = min(need, (1 << e.gap_bits) - 1) if e.m.rng.random() < 0.8 else need
    return ["gaps"]


def _entry_count(e, op):
    """One entry appended or dropped in gaps, codes or both, counts left as they are."""
    if op == "append-entry":
        e.gaps = np.append(e.gaps, 0)
        e.codes = np.append(e.codes, 1 % e.k)
    else:
        if not e.gaps.size:
            raise Skip("no entries")
        e.gaps, e.codes = e.gaps[:-1], e.codes[:-1]
    return e.m.choice([["gaps"], ["codes"], ["gaps", "codes"]])


def _append_entry_fixed(e, op):
    """One entry inserted at the end of a row, every count following."""
    r = e.m.rng.randrange(e.rc.size) if e.rc.size else None
    if r is None:
        raise Skip("no rows")
    end = int(e.rc[:r + 1].sum())
    e.gaps = np.insert(e.gaps, end, 0)
    code = e.m.choice([c for c in range(e.k) if c != e.fc] or [0])
    e.codes = np.insert(e.codes, end, code)
    e.rc[r] += 1
    e.t["entries"] += 1
    e.t["nnz"] += 0 if code == e.fc else 1
    return list(STREAMS)


def _drop_row_fixed(e, op):
    """One row removed with its entries, every count and the shape following."""
    if e.rc.size < 1:
        raise Skip("no rows")
    r = e.m.rng.randrange(e.rc.size)
    start = int(e.rc[:r].sum())
    n = int(e.rc[r])
    gone = e.codes[start:start + n]
    e.gaps = np.delete(e.gaps, range(start, start + n))
    e.codes = np.delete(e.codes, range(start, start + n))
    e.rc = np.delete(e.rc, r)
    e.t["rows"] -= 1
    e.t["shape"][0] -= 1
    e.t["entries"] -= n
    e.t["nnz"] -= int(np.sum(gone != e.fc)) if e.fc is not None else n
    return list(STREAMS)


def _swap_codes(e, op):
    real = np.flatnonzero(e.codes != (-1 if e.fc is None else e.fc))
    if real.size < 2:
        raise Skip("too few entries")
    a, b = e.m.rng.sample(list(real), 2)
    e.codes[a], e.codes[b] = e.codes[b], e.codes[a]
    return ["codes"]


def _shuffle_rows(e, op):
    starts = np.concatenate([[0], np.cumsum(e.rc)])
    order = list(range(e.rc.size))
    e.m.rng.shuffle(order)
    e.gaps = np.concatenate([e.gaps[starts[r]:starts[r + 1]] for r in order] or [e.gaps[:0]])
    e.codes = np.concatenate([e.codes[starts[r]:starts[r + 1]] for r in order]
                             or [e.codes[:0]])
    e.rc = e.rc[order]
    return list(STREAMS)


def _empty_all(e, op):
    e.rc[:] = 0
    e.gaps, e.codes = e.gaps[:0], e.codes[:0]
    e.t["entries"] = e.t["nnz"] = 0
    return list(STREAMS)


_VALUE_EDITS = {
    **dict.fromkeys(("gap-past-bound", "gap-huge"), _gap_value),
    **dict.fromkeys(("code-past-size", "code-255", "code-huge"), _code_value),
    "code-to-filler": _code_to_filler,
    "filler-to-code": _filler_to_code,
    **dict.fromkeys(_ROW_COUNT_OPS, _row_count),
    "col-overflow": _column_overflow,
    **dict.fromkeys(("append-entry", "drop-entry"), _entry_count),
    "append-entry-fixed": _append_entry_fixed,
    "drop-row-fixed": _drop_row_fixed,
    "swap-codes": _swap_codes,
    "shuffle-rows": _shuffle_rows,
    "empty-all": _empty_all,
}


@mutator("struct", 5, first_only=True)
def stream_values(m):
    """Decode a tensor's streams, break one rule of section 3.2 in the values, re-encode
    (packed or Huffman, random chunking), fix every descriptor, count and checksum: only
    decoding can catch these."""
    h, secs = m.split()
    t = m.sparse_tensor(h)
    e = _Entries(m, t)
    op = m.choice(["gap-past-bound", "gap-huge", "code-past-size", "code-255", "code-huge",
                   "code-to-filler", "filler-to-code", "row+1", "row-1", "row-move",
                   "row=cols+1", "row-huge", "col-overflow", "append-entry", "drop-entry",
                   "append-entry-fixed", "drop-row-fixed", "swap-codes", "shuffle-rows",
                   "empty-all"])
    keys = _VALUE_EDITS[op](e, op)
    values = {"row_counts": e.rc, "gaps": e.gaps, "codes": e.codes}
    for key in keys:
        _set_stream(t, key, secs, *_encode(m, values[key]))
    m.note(f"{t['name']!r}: {op}, re-encoded {', '.join(keys)} "
           f"({', '.join(t[k]['coding'] for k in keys)})")
    return m.pack(h, secs)


@mutator("struct", 2.5, first_only=True)
def stream_recode_same(m):
    """Re-encode one or all streams of a tensor with another coding, chunk size or width:
    the same values, so the decoded tensor must not change."""
    h, secs = m.split()
    t = m.sparse_tensor(h)
    vals = dict(zip(STREAMS, decoded_streams(m.data, t["name"])))
    keys = [m.choice(sorted(vals))] if m.rng.random() < 0.6 else sorted(vals)
    for key in keys:
        bound = {"gaps": 1 << t["gap_bits"], "codes": t["codebook"]["size"]}.get(key)
        for _ in range(10):
            desc, data = _encode(m, vals[key])
            if desc["coding"] == "packed" or bound is None or desc["alphabet_size"] <= bound:
                break
        _set_stream(t, key, secs, desc, data)
    m.same = "all"
    m.note(f"{t['name']!r}: re-encoded " + ", ".join(
        f"{k} as {t[k]['coding']}" + (f"/{t[k]['chunk_symbols']}" if t[k]["coding"] == "huffman"
                                      else f"/{t[k]['bits']}b") for k in keys))
    return m.pack(h, secs)


# ---- damaged stream bytes --------------------------------------------------------------------

def _n_chunks(count, chunk_symbols):
    """Chunks of a Huffman stream (ceiling division; the descriptor may hold nonsense, as
    after a stacked mutation, and then this is what decides the layout that is edited)."""
    return -(-count // chunk_symbols)


@dataclass
class HuffmanParts:
    """A Huffman stream's section: code lengths, their zero padding, chunk offsets, payload."""
    lengths: bytearray
    pad: bytearray
    offsets: list
    payload: bytearray

    @classmethod
    def parse(cls, desc, data):
        a = desc["alphabet_size"]
        c = _n_chunks(desc["count"], desc["chunk_symbols"])
        head = align(a, 8)
        return cls(bytearray(data[:a]), bytearray(data[a:head]),
                   list(struct.unpack_from(f"<{c}Q", data, head)),
                   bytearray(data[head + 8 * c:]))

    def join(self):
        return (bytes(self.lengths) + bytes(self.pad)
                + struct.pack(f"<{len(self.offsets)}Q", *self.offsets) + bytes(self.payload))


def _edit_stream(m, coding, edit):
    """edit(m, tensor, key, descriptor, stream) -> (note, stream) applied to a random stream
    of that coding (a HuffmanParts, or the packed bytes as a bytearray)."""
    h, secs = m.split()
    t, key, desc = m.stream(h, coding)
    i = desc["section"]
    huffman = coding == "huffman"
    stream = HuffmanParts.parse(desc, secs[i]) if huffman else bytearray(secs[i])
    note, stream = edit(m, t, key, desc, stream)
    secs[i] = stream.join() if huffman else bytes(stream)
    m.note(note)
    return m.pack(h, secs)


def _clear_padding(data, bits):
    """Zero the bits past `bits` in the last byte."""
    if bits % 8 and data:
        data[-1] &= (0xFF << (8 - bits % 8)) & 0xFF


def _flip_bit(data, b):
    data[b // 8] ^= 0x80 >> (b % 8)


def _shorter(m, lengths, pad, used):
    if not used:
        return False
    j = m.choice(used)
    lengths[j] = max(1, lengths[j] - 1)


def _longer(m, lengths, pad, used):
    if not used:
        return False
    j = m.choice(used)
    lengths[j] = min(16, lengths[j] + 1)


def _unused(m, lengths, pad, used):
    if not used:
        return False
    lengths[m.choice(used)] = 0


def _swap_lengths(m, lengths, pad, used):
    if len(lengths) < 2:
        return False
    x, y = m.rng.sample(range(len(lengths)), 2)
    lengths[x], lengths[y] = lengths[y], lengths[x]


def _nonzero_pad(m, lengths, pad, used):
    if not pad:
        raise Skip("no padding")
    pad[m.rng.randrange(len(pad))] = m.rng.randrange(1, 256)


def _kraft_over(m, lengths, pad, used):
    j = m.rng.randrange(len(lengths))
    lengths[j] = 1 if lengths[j] != 1 else 2
    if len(lengths) == 1:
        raise Skip("one symbol")


def _set_one_length(value):
    def edit(m, lengths, pad, used):
        lengths[m.rng.randrange(len(lengths))] = value
    return edit


def _set_all_lengths(value):
    def edit(m, lengths, pad, used):
        lengths[:] = bytes([value]) * len(lengths)
    return edit


#: Code-length edits; one that does not apply (returns False) becomes "random".
_LENGTH_EDITS = {
    "all-one": _set_all_lengths(1),
    "shorter": _shorter,
    "longer": _longer,
    "used-to-zero": _unused,
    "17": _set_one_length(17),
    "255": _set_one_length(255),
    "all-zero": _set_all_lengths(0),
    "swap": _swap_lengths,
    "reverse": lambda m, lengths, pad, used: lengths.reverse(),
    "pad-nonzero": _nonzero_pad,
    "kraft-over": _kraft_over,
}


def _code_lengths(m, t, key, desc, parts):
    lengths = parts.lengths
    used = [j for j in range(len(lengths)) if lengths[j]]
    op = m.choice(["all-one", "shorter", "longer", "used-to-zero", "17", "255", "all-zero",
                   "swap", "reverse", "pad-nonzero", "kraft-over", "random"])
    if not edit_by_table(op, _LENGTH_EDITS, m, lengths, parts.pad, used):
        lengths[:] = bytes(m.rng.randrange(17) for _ in range(len(lengths)))
    return f"{t['name']!r}.{key} code lengths: {op} -> {list(lengths)[:16]}", parts


@mutator("struct", 3)
def huff_lengths(m):
    return _edit_stream(m, "huffman", _code_lengths)


def _chunk_offsets(m, t, key, desc, parts):
    offs = parts.offsets
    if not offs:
        raise Skip("no chunks")
    p = desc["payload_bits"]
    n = len(offs)
    j = m.rng.randrange(n)
    op = m.choice(["first=1", "first=8", "equal-prev", "swap", "=P", "=P+1", "2^63",
                   "2^64-1", "2^53", "+1", "-1", "all-zero", "reverse", "last=P-1", "huge-mid"])
    # (index, value) of the edits that set one offset
    set_one = {"first=1": (0, 1), "first=8": (0, 8), "=P": (j, p), "=P+1": (j, p + 1),
               "2^63": (j, 2**63), "2^64-1": (j, 2**64 - 1), "2^53": (j, 2**53),
               "+1": (j, offs[j] + 1), "-1": (j, max(0, offs[j] - 1) if offs[j] else 2**64 - 1),
               "last=P-1": (-1, max(0, p - 1)), "huge-mid": (n // 2, p * 4)}
    if op == "equal-prev":
        j = j or min(1, n - 1)
        offs[j] = offs[j - 1] if j else offs[j]
    elif op == "swap" and n > 1:
        x, y = m.rng.sample(range(n), 2)
        offs[x], offs[y] = offs[y], offs[x]
    elif op in ("all-zero", "reverse"):
        offs[:] = [0] * n if op == "all-zero" else offs[::-1]
    else:  # a swap of one chunk's offset is huge-mid
        at, value = set_one.get(op, set_one["huge-mid"])
        offs[at] = value
    return f"{t['name']!r}.{key} chunk offsets: {op} at {j} of {n}", parts


@mutator("struct", 3)
def huff_offsets(m):
    return _edit_stream(m, "huffman", _chunk_offsets)


def _payload(m, t, key, desc, parts):
    p = desc["payload_bits"]
    op = m.choice(["flip", "flip", "flip-chunk-end", "pad-bit", "P+1", "P-1", "P+8", "P-8",
                   "P=count-1", "P=16count+1", "P=0", "zero-payload", "ones", "cut-byte"])
    count = desc["count"]
    # new payload bit counts, and the byte that fills a longer payload (None: random)
    resize = {"P+1": (p + 1, 0), "P-1": (p - 1, 0), "P+8": (p + 8, None), "P-8": (p - 8, 0),
              "P=count-1": (count - 1, 0), "P=16count+1": (16 * count + 1, 0x55),
              "P=0": (0, 0)}
    payload = parts.payload
    if op == "flip" and p:
        for _ in range(m.choice([1, 1, 2, 5])):
            _flip_bit(payload, m.rng.randrange(p))
    elif op == "flip-chunk-end" and p:
        _flip_bit(payload, max(0, m.choice(parts.offsets[1:] + [p]) - m.choice([1, 2])))
    elif op == "pad-bit":
        if p % 8 == 0:
            raise Skip("no padding bits")
        payload[-1] |= 1
    elif op in resize:
        new, fill = resize[op]
        fill = m.rng.randrange(256) if fill is None else fill
        if new < 0:
            raise Skip("negative")
        n = (new + 7) // 8
        payload = payload[:n] + bytes([fill]) * (n - len(payload))
        _clear_padding(payload, new)
        desc["payload_bits"] = new
    elif op == "zero-payload":
        payload = bytearray(len(payload))
    elif op == "ones":
        payload = bytearray(b"\xff" * len(payload))
        _clear_padding(payload, p)
    elif op == "cut-byte" and payload:
        payload = payload[:-1]
    else:
        raise Skip(f"{op} does not apply")
    parts.payload = payload
    return f"{t['name']!r}.{key} payload: {op} (P {p} -> {desc['payload_bits']})", parts


@mutator("struct", 3)
def huff_payload(m):
    return _edit_stream(m, "huffman", _payload)


def _huffman_descriptor(m, t, key, desc, parts):
    """alphabet_size, chunk_symbols or count changed, the section resized to match, so
    that the length check passes and the decoder meets the inconsistency."""
    op = m.choice(["alphabet+1", "alphabet-1", "alphabet=256", "chunks-smaller",
                   "chunks-larger", "chunks=1", "count+1", "count-1", "count+chunk"])
    if op.startswith("alphabet"):
        a = len(parts.lengths)
        new = {"alphabet+1": a + 1, "alphabet-1": a - 1, "alphabet=256": 256}[op]
        if new < 1:
            raise Skip("empty alphabet")
        parts.lengths = (parts.lengths + bytes(max(0, new - a)))[:new]
        if op != "alphabet-1" and m.rng.random() < 0.5:
            parts.lengths[-1] = m.rng.randrange(1, 17)
        parts.pad = bytearray(align(new, 8) - new)
        desc["alphabet_size"] = new
        return f"{t['name']!r}.{key}: {op}", parts
    if op.startswith("chunks"):
        cs = desc["chunk_symbols"]
        new = {"chunks-smaller": max(1, cs // 2), "chunks-larger": cs * 2 + 1,
               "chunks=1": 1}[op]
        c = _n_chunks(desc["count"], new)
        if c > 1 << 16:
            raise Skip("too many chunks")
        desc["chunk_symbols"] = new
    else:
        count = desc["count"]
        new = {"count+1": count + 1, "count-1": count - 1,
               "count+chunk": count + desc["chunk_symbols"]}[op]
        if new < 0:
            raise Skip("negative")
        c = _n_chunks(new, desc["chunk_symbols"])
        desc["count"] = new
        if m.rng.random() < 0.5:
            if key == "row_counts":
                t["rows"] = new
                t["shape"][0] = new
            else:
                t["entries"] = new
    parts.offsets = (parts.offsets + [desc["payload_bits"]] * c)[:c]
    return f"{t['name']!r}.{key}: {op}", parts


@mutator("struct", 2)
def huff_desc(m):
    """A Huffman descriptor's alphabet size, chunk size or count changed, the section
    resized to match."""
    return _edit_stream(m, "huffman", _huffman_descriptor)


def _packed(m, t, key, desc, data):
    count, bits = desc["count"], desc["bits"]
    op = m.choice(["bits+1", "bits-1", "bits=32", "bits=33", "bits=0", "pad-bit",
                   "count+1", "count-1", "ones"])

    def resized(c, b):
        n = (c * b + 7) // 8
        return (data + bytes(max(0, n - len(data))))[:n]

    if op in ("bits+1", "bits-1", "bits=32"):
        new = {"bits+1": bits + 1, "bits-1": bits - 1, "bits=32": 32}[op]
        if new < 1:
            raise Skip("zero width")
        data = resized(count, new)
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
        data = resized(new, bits)
        if data and m.rng.random() < 0.5:
            data[-1] |= 0x80
        desc["count"] = new
    else:
        data = bytearray(b"\xff" * len(data))
        _clear_padding(data, count * bits)
    return f"{t['name']!r}.{key} packed: {op}", data


@mutator("struct", 2)
def packed_desc(m):
    return _edit_stream(m, "packed", _packed)
