"""A second, minimal reader of .cdnn files, written from spec/cdnn-format.md alone.

It shares no code with cdnn_runtime (numpy and the standard library only) and decodes
everything at once: `read(data)` returns the version, the metadata, the graph with its defaults
applied (read from the op table of section 7 itself) and every tensor decoded (raw arrays;
sparse_codebook tensors as their stored streams and as CSR). The tests hold it to agree with
cdnn_runtime.read on every golden file and every file they write: it is the spec's executable
check, so a rule belongs in the spec before it belongs here.

It checks the byte-level rules of sections 2 to 6 and 8 in the order of section 6, and of the
graph (section 7) only the structure: keys, names defined before use, ops of the file's
version, known and required params and attributes. Attribute types and ranges, param dtypes and
shapes and each op's own rules are left to cdnn_runtime.
"""

import copy
import json
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPEC = Path(__file__).with_name("cdnn-format.md")

# section 2
MAGIC = b"\x89CDN\r\n\x1a\n"
VERSIONS = (2, 3)
PREAMBLE = struct.Struct("<8sIIQQQI16sI")
# sections 3 and 5
MAX_HEADER = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT = 2**53 - 1
MAX_RANK = 8
MAX_NAME = 256
MAX_TENSORS = 1_000_000
MAX_SECTIONS = 4_000_000
MAX_GRAPH_VALUES = 64
MAX_NODES = 100_000
DEFAULT_LIMIT = 8 * 1024**3
DTYPES = {"float32": "<f4", "float16": "<f2", "int32": "<i4", "int64": "<i8", "uint8": "u1"}
BASE_VERSION = 2
INPUT_DTYPES = {"float32": BASE_VERSION, "int64": 3, "int32": 3}  # section 7: since version
REQUIRED = object()  # an attribute without default


class SpecError(ValueError):
    """The file breaks a rule of the spec; the message says where."""


class ChecksumError(SpecError):
    """A CRC-32 does not match (section 6)."""


class VersionError(SpecError):
    """A version this reader does not accept."""


class LimitError(SpecError):
    """A size over a cap on memory (section 6 lists them)."""


def _fail(where, what, kind=SpecError):
    raise kind(f"{where}: {what}")


def _align8(n):
    return (n + 7) // 8 * 8


def _crc(data):
    return zlib.crc32(data) & 0xFFFFFFFF


# ---- JSON (section 3) -------------------------------------------------------------------------

def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            _fail("header", f"duplicate key {key!r:.40}")
        obj[key] = value
    return obj


def _finite(text, value):
    try:
        if abs(float(value)) != float("inf"):
            return value
    except OverflowError:
        pass
    _fail("header", f"number {text:.40} rounds to infinity")


def _no_constant(name):
    _fail("header", f"constant {name} is not JSON")


def parse_json(raw):
    """The header's JSON value, under the rules of section 3."""
    if raw.startswith(b"\xef\xbb\xbf"):
        _fail("header", "starts with a byte-order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail("header", f"not UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                           parse_float=lambda s: _finite(s, float(s)),
                           parse_int=lambda s: _finite(s, int(s)))
    except SpecError:
        raise
    except (ValueError, RecursionError) as exc:
        _fail("header", f"not JSON ({type(exc).__name__}: {str(exc):.80})")
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            _fail("header", f"a value at depth {depth}, deeper than {MAX_DEPTH}")
        if isinstance(v, dict):
            stack += [(x, depth + 1) for pair in v.items() for x in pair]
        elif isinstance(v, list):
            stack += [(x, depth + 1) for x in v]
        elif isinstance(v, str) and re.search("[\ud800-\udfff]", v):
            _fail("header", f"string {v!r:.40} has a lone surrogate")
    return value


def _keys(obj, where, required, optional=()):
    if not isinstance(obj, dict):
        _fail(where, "not an object")
    for key in sorted(set(required) - set(obj)):
        _fail(where, f"missing {key!r}")
    for key in sorted(set(obj) - set(required) - set(optional)):
        _fail(where, f"unknown key {key!r:.40}")
    return obj


def _int(obj, key, where, lo=0, hi=MAX_INT):
    v = obj[key]
    if type(v) is not int or not lo <= v <= hi:
        _fail(where, f"{key} is {v!r:.40}, not an integer in [{lo}, {hi}]")
    return v


def _list(obj, key, where, lo, hi):
    v = obj[key]
    if not isinstance(v, list) or not lo <= len(v) <= hi:
        _fail(where, f"{key} is not a list of {lo} to {hi} items")
    return v


def _name(v, where):
    if not isinstance(v, str) or not 1 <= len(v) <= MAX_NAME:
        _fail(where, f"name {v!r:.40} is not a string of 1 to {MAX_NAME} code points")
    return v


# ---- streams (section 4) ----------------------------------------------------------------------

def _descriptor(desc, count, alphabet, where):
    """Check a stream descriptor against the count it must hold; its section's length."""
    if not isinstance(desc, dict) or desc.get("coding") not in ("packed", "huffman"):
        _fail(where, "not a packed or huffman stream")
    if desc["coding"] == "packed":
        _keys(desc, where, {"coding", "count", "bits", "section"})
        bits = _int(desc, "bits", where, 1, 32)
    else:
        _keys(desc, where, {"coding", "count", "alphabet_size", "chunk_symbols",
                            "payload_bits", "section"})
        size = _int(desc, "alphabet_size", where, 1, min(alphabet, 256))
        chunk = _int(desc, "chunk_symbols", where, 1, 2**24)
        bits = _int(desc, "payload_bits", where)
    if _int(desc, "count", where) != count:
        _fail(where, f"holds {desc['count']} values, not {count}")
    if desc["coding"] == "packed":
        return (count * bits + 7) // 8
    if not count <= bits <= 16 * count:
        _fail(where, f"{bits} payload bits for {count} symbols")
    return _align8(size) + 8 * (-(-count // chunk)) + (bits + 7) // 8


def decode_packed(desc, buf, where):
    count, bits = desc["count"], desc["bits"]
    flat = np.unpackbits(np.frombuffer(buf, np.uint8))
    if flat[count * bits:].any():
        _fail(where, "nonzero padding bits")
    weights = np.left_shift(1, np.arange(bits - 1, -1, -1, dtype=np.int64))
    return flat[:count * bits].reshape(count, bits).astype(np.int64) @ weights


def canonical_codes(lengths):
    """Section 4.2 (RFC 1951, 3.2.2): one code per symbol of nonzero length."""
    bl_count = [0] * 17
    for n in lengths:
        bl_count[n] += 1
    bl_count[0] = 0
    next_code = [0] * 17
    for n in range(2, 17):
        next_code[n] = (next_code[n - 1] + bl_count[n - 1]) << 1
    codes = {}
    for symbol, n in enumerate(lengths):
        if n:
            codes[symbol] = next_code[n]
            next_code[n] += 1
    return codes


def decode_huffman(desc, buf, where):
    count, size, chunk = desc["count"], desc["alphabet_size"], desc["chunk_symbols"]
    total = desc["payload_bits"]
    buf = np.frombuffer(buf, np.uint8)
    lengths = [int(n) for n in buf[:size]]
    head = _align8(size)
    if buf[size:head].any():
        _fail(where, "nonzero padding after the code lengths")
    if max(lengths) > 16:
        _fail(where, f"code length {max(lengths)} is over 16")
    if sum(1 << (16 - n) for n in lengths if n) > 1 << 16:
        _fail(where, "code lengths break Kraft's inequality")
    n_chunks = -(-count // chunk)
    offsets = [int(v) for v in np.frombuffer(buf[head:head + 8 * n_chunks].tobytes(), "<u8")]
    payload = buf[head + 8 * n_chunks:]
    if total % 8 and payload[-1] & (0xFF >> (total % 8)):
        _fail(where, "nonzero padding bits after the payload")
    if offsets and offsets[0] != 0:
        _fail(where, f"chunk 0 starts at bit {offsets[0]}")
    for j in range(1, n_chunks):
        if not offsets[j - 1] < offsets[j] <= total:
            _fail(where, f"chunk {j} starts at bit {offsets[j]}")
    if count == 0:
        return np.zeros(0, np.int64)
    codes = canonical_codes(lengths)
    if not codes:
        _fail(where, "no symbol has a code")
    longest = max(lengths)
    length_of = np.zeros(1 << longest, np.int64)  # the code that each window starts with
    symbol_of = np.zeros(1 << longest, np.int64)
    for symbol, code in codes.items():
        span = longest - lengths[symbol]
        length_of[code << span:(code + 1) << span] = lengths[symbol]
        symbol_of[code << span:(code + 1) << span] = symbol
    bits = np.concatenate([np.unpackbits(payload)[:total], np.zeros(longest, np.uint8)])
    window = np.zeros(total, np.int64)  # the `longest` bits from each bit position on
    for i in range(longest):
        window = (window << 1) | bits[i:i + total]
    code_length = length_of[window].tolist()
    starts = []
    for j, start in enumerate(offsets):
        end = offsets[j + 1] if j + 1 < n_chunks else total
        pos = start
        for _ in range(min(chunk, count - j * chunk)):
            n = code_length[pos] if pos < end else 0
            if n == 0 or pos + n > end:
                _fail(where, f"chunk {j}: no code ends within the chunk at bit {pos}")
            starts.append(pos)
            pos += n
        if pos != end:
            _fail(where, f"chunk {j}: symbols end at bit {pos}, before its end {end}")
    return symbol_of[window[starts]]


# ---- the graph's vocabulary, from section 7's op table ---------------------------------------

_PARAM = re.compile(r"(?:^|(?<=, ))([a-z][a-z0-9_]*)(\??)")


class _Unreadable(str):
    """A default the op table does not write as JSON, `required` or `= other`."""


def _split_top(cell):
    """The cell's items: cut at each `, ` outside parentheses, brackets and backticks."""
    items, depth, tick, start = [], 0, False, 0
    for i, c in enumerate(cell):
        tick ^= c == "`"
        depth += 0 if tick else (c in "([") - (c in ")]")
        if not tick and depth == 0 and cell.startswith(", ", i):
            items.append(cell[start:i])
            start = i + 2
    return items + [cell[start:]]


def _default(text):
    text = text.replace("`", "").strip()
    if re.match(r"((both|all|each) )?required", text):
        return REQUIRED
    if text.startswith("="):
        return ("=", text[1:].split()[0].strip(",;"))
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except ValueError:
        return _Unreadable(text)


def _attr_defaults(cell):
    """{attribute: default} of an attrs cell: items `name (default) commentary`, where bare
    names before an item share its default (`dim0, dim1 (required)`); other items are prose."""
    defaults, waiting = {}, []
    for item in _split_top(cell.strip()):
        m = re.match(r"([a-z][a-z0-9_]*)(?: [A-Za-z]\w*)?( \(|$)", item)
        if not m:
            waiting = []
            continue
        if not m.group(2):
            waiting.append(m.group(1))
            continue
        depth = 0
        for end in range(m.end() - 1, len(item)):
            depth += (item[end] == "(") - (item[end] == ")")
            if depth == 0:
                break
        for name in waiting + [m.group(1)]:
            defaults[name] = _default(item[m.end():end])
        waiting = []
    return defaults


def op_table(text=None):
    """{op: (since, {role: required}, {attribute: default})} from section 7's op table."""
    lines = (SPEC.read_text(encoding="utf-8") if text is None else text).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| op | inputs |"))
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        ops = re.findall(r"`([a-z0-9_]+)`", cells[0])
        since = re.search(r"\(since (\d+)\)", cells[0])
        plain = re.sub(r"`[^`]*`|\([^)]*\)", "", cells[2])
        params = {m.group(1): not m.group(2) for m in _PARAM.finditer(plain.strip())}
        entry = (int(since.group(1)) if since else BASE_VERSION, params,
                 _attr_defaults(cells[3]))
        table.update({op: entry for op in ops})
    return table


_OPS = {}


def _ops():
    if not _OPS:
        _OPS.update(op_table())
    return _OPS


def _free_dims(free, shape, where, version):
    """An input's free dims (section 7, since version 3)."""
    if version < 3 or not isinstance(free, list) or not 1 <= len(free) < len(shape):
        _fail(where, "free dims")
    dims = set()
    for f in free:
        _keys(f, where + " free dim", {"dim", "name", "max"})
        d, top = f["dim"], f["max"]
        if type(d) is not int or not 1 <= d < len(shape) or d in dims or type(top) is not int \
                or not shape[d] <= top <= 2**31:
            _fail(where, f"free dim {d!r:.20}")
        dims.add(d)
        _name(f["name"], where)


def read_graph(graph, tensors, version):
    """The graph with params and attrs in every node and every attribute's default applied."""
    _keys(graph, "graph", {"inputs", "nodes", "outputs"})
    defined = set()
    for i, spec in enumerate(_list(graph, "inputs", "graph", 1, MAX_GRAPH_VALUES)):
        where = f"graph input {i}"
        _keys(spec, where, {"name", "dtype", "shape"}, {"free"})
        shape = spec["shape"]
        if not isinstance(spec["dtype"], str) or INPUT_DTYPES.get(spec["dtype"], version + 1) \
                > version or not isinstance(shape, list) or not 1 <= len(shape) \
                <= MAX_RANK or not all((d is None and j == 0) or (type(d) is int and 1 <= d
                                       <= 2**31) for j, d in enumerate(shape)):
            _fail(where, "dtype or shape")
        if "free" in spec:
            _free_dims(spec["free"], shape, where, version)
        if _name(spec["name"], where) in defined:
            _fail(where, f"value {spec['name']!r} defined twice")
        defined.add(spec["name"])
    nodes, names = [], set()
    for i, node in enumerate(_list(graph, "nodes", "graph", 0, MAX_NODES)):
        where = f"graph node {i}"
        _keys(node, where, {"name", "op", "inputs", "outputs"}, {"params", "attrs"})
        if _name(node["name"], where) in names:
            _fail(where, "node name used twice")
        names.add(node["name"])
        if not isinstance(node["op"], str) or node["op"] not in _ops():
            _fail(where, f"op {node['op']!r:.40} is not in the spec's op table")
        since, roles, attr_spec = _ops()[node["op"]]
        if since > version:
            _fail(where, f"op {node['op']} is of version {since}, the file of {version}")
        ins, outs = node["inputs"], node["outputs"]
        if not isinstance(ins, list) or not isinstance(outs, list) or not outs:
            _fail(where, "inputs and outputs must be lists")
        for v in ins:
            if _name(v, where) not in defined:
                _fail(where, f"input {v!r} is not defined before")
        params = node.get("params", {})
        _keys(params, f"{where} params", [r for r, needed in roles.items() if needed], roles)
        for role, t in params.items():
            if not isinstance(t, str) or t not in tensors:
                _fail(where, f"param {role} names no tensor")
        attrs = dict(_keys(node.get("attrs", {}), f"{where} attrs", [], attr_spec))
        for key, default in attr_spec.items():
            if key not in attrs:
                if default is REQUIRED:
                    _fail(where, f"attribute {key!r} is required")
                if isinstance(default, _Unreadable):
                    raise SpecError(f"spec op table, {node['op']}: the default of {key!r} "
                                    f"({default}) is not JSON, required or = another attribute")
                attrs[key] = copy.deepcopy(default)
        for key, default in attr_spec.items():
            if isinstance(default, tuple) and attrs[key] == default:
                attrs[key] = list(attrs[default[1]])
        for v in outs:
            if _name(v, where) in defined:
                _fail(where, f"value {v!r} defined twice")
            defined.add(v)
        nodes.append({"name": node["name"], "op": node["op"], "inputs": list(ins),
                      "outputs": list(outs), "params": dict(params), "attrs": attrs})
    seen = set()
    outputs = _list(graph, "outputs", "graph", 1, MAX_GRAPH_VALUES)
    for i, spec in enumerate(outputs):
        _keys(spec, f"graph output {i}", {"name"})
        if _name(spec["name"], f"graph output {i}") not in defined or spec["name"] in seen:
            _fail(f"graph output {i}", f"{spec['name']!r} is not a defined value, or repeated")
        seen.add(spec["name"])
    return {"inputs": [dict(s) for s in graph["inputs"]], "nodes": nodes,
            "outputs": [dict(s) for s in outputs]}


# ---- the file -----------------------------------------------------------------------------------

@dataclass
class Sparse:
    """A decoded sparse_codebook tensor: its stored streams, and the CSR of its weights."""
    shape: tuple
    rows: int
    cols: int
    gap_bits: int
    filler_code: object
    codebook: np.ndarray  # float32[size]
    row_counts: np.ndarray  # as stored, fillers included
    gaps: np.ndarray
    codes: np.ndarray
    row_ptr: np.ndarray  # CSR, fillers dropped
    col_idx: np.ndarray
    csr_codes: np.ndarray
    codings: dict  # stream -> "packed" or "huffman"


@dataclass
class File:
    version: int
    header_deflated: bool
    metadata: dict
    graph: object
    tensors: dict  # name -> numpy array (raw) or Sparse, in file order
    decoded_bytes: int
    limit: int

    def dense(self, name):
        """A tensor as a dense array; a sparse one's copy is charged first (section 5)."""
        t = self.tensors[name]
        if isinstance(t, np.ndarray):
            return t
        if self.decoded_bytes + 4 * t.rows * t.cols > self.limit:
            _fail(f"tensor {name!r}", "a dense copy would pass the decoded-size limit",
                  LimitError)
        out = np.zeros((t.rows, t.cols), np.float32)
        out[np.repeat(np.arange(t.rows), np.diff(t.row_ptr)), t.col_idx] = \
            t.codebook[t.csr_codes]
        return out.reshape(t.shape)


def _preamble(data):
    if len(data) < 64:
        _fail("file", f"{len(data)} bytes, shorter than the preamble")
    (magic, version, flags, header_offset, header_length, file_length, header_crc, reserved,
     preamble_crc) = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        _fail("preamble", "bad magic")
    if _crc(data[:60]) != preamble_crc:
        _fail("preamble", "CRC-32 mismatch", ChecksumError)
    if version not in VERSIONS:
        _fail("preamble", f"version {version}; this reader reads {VERSIONS}", VersionError)
    if flags & ~1 or any(reserved):
        _fail("preamble", "unknown flags or nonzero reserved bytes")
    if file_length != len(data):
        _fail("preamble", f"file_length {file_length}, but the file has {len(data)} bytes")
    if header_offset != 64:
        _fail("preamble", f"header_offset {header_offset}")
    if header_length > MAX_HEADER:
        _fail("preamble", f"header_length {header_length} over 16 MiB", LimitError)
    if 64 + header_length > file_length:
        _fail("preamble", "the header runs past the end of the file")
    stored = data[64:64 + header_length]
    if _crc(stored) != header_crc:
        _fail("header", "CRC-32 mismatch", ChecksumError)
    if not flags & 1:
        return version, False, stored, header_length
    inflater = zlib.decompressobj(-15)
    try:
        raw = inflater.decompress(stored, MAX_HEADER + 1)
    except zlib.error as exc:
        _fail("header", f"not raw DEFLATE ({exc})")
    if len(raw) > MAX_HEADER:
        _fail("header", "inflates past 16 MiB", LimitError)
    if not inflater.eof or inflater.unused_data:
        _fail("header", "the DEFLATE stream does not end at the last stored byte")
    return version, True, raw, header_length


def _sections(data, header, header_length):
    data_start = _align8(64 + header_length)
    if data_start > len(data):
        _fail("file", f"data_start {data_start} is past the end")
    if any(data[64 + header_length:data_start]):
        _fail("header padding", "not zero")
    out, pos = [], data_start
    for i, sec in enumerate(_list(header, "sections", "header", 0, MAX_SECTIONS)):
        where = f"section {i}"
        _keys(sec, where, {"offset", "length", "crc32"})
        start = data_start + _int(sec, "offset", where)
        end = start + _int(sec, "length", where)
        crc = _int(sec, "crc32", where, 0, 2**32 - 1)
        if start != _align8(pos) or end > len(data):
            _fail(where, f"at {start}-{end}, not at {_align8(pos)} within the file")
        if any(data[pos:start]):
            _fail(where, "nonzero padding before it")
        if _crc(data[start:end]) != crc:
            _fail(where, "CRC-32 mismatch", ChecksumError)
        out.append(data[start:end])
        pos = end
    if pos != len(data):
        _fail("file", f"{len(data) - pos} bytes after the last section")
    return out


def _tensor_table(header, sections, limit):
    """Section 3.2 and step 8 of section 6: the tensors as described, nothing decoded."""
    used, tensors, decoded = set(), {}, 0

    def section(obj, where):
        idx = obj["section"]
        if type(idx) is not int or not 0 <= idx < len(sections) or idx in used:
            _fail(where, f"section {idx!r:.20} is out of range or used twice")
        used.add(idx)
        return sections[idx]

    for i, t in enumerate(_list(header, "tensors", "header", 0, MAX_TENSORS)):
        if not isinstance(t, dict) or "name" not in t:
            _fail(f"tensor {i}", "not an object with a name")
        where = f"tensor {_name(t['name'], f'tensor {i}')!r}"
        if t["name"] in tensors:
            _fail(where, "name used twice")
        shape = t.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_RANK or \
                not all(type(d) is int and 0 <= d <= MAX_INT for d in shape):
            _fail(where, "shape")
        numel = int(np.prod(shape, dtype=object))
        if numel > MAX_INT:
            _fail(where, "more than 2^53 - 1 elements")
        if t.get("encoding") == "raw":
            _keys(t, where, {"name", "encoding", "shape", "dtype", "section"})
            if not isinstance(t["dtype"], str) or t["dtype"] not in DTYPES:
                _fail(where, f"dtype {t['dtype']!r:.20}")
            need = numel * np.dtype(DTYPES[t["dtype"]]).itemsize
            if len(section(t, where)) != need:
                _fail(where, f"its section is not {need} bytes")
            decoded += need
        elif t.get("encoding") == "sparse_codebook":
            _keys(t, where, {"name", "encoding", "shape", "rows", "cols", "nnz", "entries",
                             "gap_bits", "filler_code", "codebook", "row_counts", "gaps",
                             "codes"})
            if len(shape) < 2 or _int(t, "rows", where) != shape[0] or \
                    _int(t, "rows", where) * _int(t, "cols", where) != numel:
                _fail(where, "rows and cols are not the 2-D view of the shape")
            nnz = _int(t, "nnz", where, 0, numel)
            entries = _int(t, "entries", where, nnz, numel)
            gap_bits = _int(t, "gap_bits", where, 1, 8)
            cb = _keys(t["codebook"], f"{where} codebook", {"section", "size"})
            size = _int(cb, "size", f"{where} codebook", 1, 256)
            if len(section(cb, where)) != 4 * size:
                _fail(where, f"codebook section is not {4 * size} bytes")
            codebook = np.frombuffer(sections[cb["section"]], "<f4").astype(np.float32)
            if not np.isfinite(codebook).all():
                _fail(where, "a centroid is not finite")
            if t["filler_code"] is not None:
                filler = _int(t, "filler_code", where, 0, size - 1)
                if codebook[filler] != 0.0:
                    _fail(where, "the filler code's centroid is not 0.0")
            elif entries != nnz:
                _fail(where, "fillers without a filler code")
            for key, count, alphabet in (("row_counts", t["rows"], 256),
                                         ("gaps", entries, 1 << gap_bits),
                                         ("codes", entries, size)):
                need = _descriptor(t[key], count, alphabet, f"{where} {key}")
                if len(section(t[key], f"{where} {key}")) != need:
                    _fail(f"{where} {key}", f"section is not {need} bytes")
            decoded += 8 * (t["rows"] + 1) + 6 * entries + 4 * size
        else:
            _fail(where, f"encoding {t.get('encoding')!r:.40}")
        if decoded > limit:
            _fail(where, "decoded tensors would pass the limit", LimitError)
        tensors[t["name"]] = t
    if len(used) != len(sections):
        _fail("file", f"section {min(set(range(len(sections))) - used)} is used by no tensor")
    return tensors, decoded


def _decode_sparse(t, sections, where):
    """Section 3.2: the stored entries to CSR, with every check of its decoding."""
    streams = {}
    for key in ("row_counts", "gaps", "codes"):
        desc = t[key]
        decode = decode_packed if desc["coding"] == "packed" else decode_huffman
        streams[key] = decode(desc, sections[desc["section"]], f"{where} {key}")
    row_counts, gaps, codes = streams["row_counts"], streams["gaps"], streams["codes"]
    rows, cols, size = t["rows"], t["cols"], t["codebook"]["size"]
    codebook = np.frombuffer(sections[t["codebook"]["section"]], "<f4").astype(np.float32)
    widest = (1 << t["gap_bits"]) - 1
    if (codes >= size).any() or (gaps > widest).any():
        _fail(where, "a code past the codebook or a gap past gap_bits")
    if int(row_counts.sum()) != t["entries"]:
        _fail(where, "row counts do not sum to entries")
    row_of = np.repeat(np.arange(rows), row_counts)
    steps = np.cumsum(gaps + 1)
    before = np.concatenate([[0], steps])[np.concatenate([[0], np.cumsum(row_counts)[:-1]])]
    col = steps - before[row_of] - 1
    if (col >= cols).any():
        _fail(where, f"an entry of row {int(row_of[np.argmax(col >= cols)])} at a column "
                     f"past {cols - 1}")
    filler = codes == t["filler_code"] if t["filler_code"] is not None else codes < 0
    if (gaps[filler] != widest).any():
        _fail(where, "a filler whose gap is not 2^gap_bits - 1")
    if (codebook[codes[~filler]] == 0.0).any():
        _fail(where, "an entry other than a filler has the value 0.0")
    if int((~filler).sum()) != t["nnz"]:
        _fail(where, f"{int((~filler).sum())} weights decoded, nnz is {t['nnz']}")
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(row_of[~filler], minlength=rows))])
    return Sparse(tuple(t["shape"]), rows, cols, t["gap_bits"], t["filler_code"], codebook,
                  row_counts, gaps, codes, row_ptr.astype(np.int64), col[~filler],
                  codes[~filler], {key: t[key]["coding"] for key in streams})


def read(data, *, limit=DEFAULT_LIMIT):
    """Read and decode a whole .cdnn file (bytes); SpecError on any broken rule."""
    data = bytes(data)
    version, deflated, raw, header_length = _preamble(data)  # steps 1 to 6
    header = parse_json(raw)
    _keys(header, "header", {"format_version", "sections", "tensors"}, {"graph", "metadata"})
    if type(header["format_version"]) is not int or header["format_version"] != version:
        _fail("header", "format_version differs from the preamble's version")
    sections = _sections(data, header, header_length)  # step 7
    table, decoded = _tensor_table(header, sections, limit)  # step 8
    graph = read_graph(header["graph"], table, version) if "graph" in header else None  # 9
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        _fail("metadata", "not an object")
    for key in ("producer", "producer_version", "source_model", "source_sha256"):
        if key in metadata and not isinstance(metadata[key], str):
            _fail("metadata", f"{key} is not a string")
    if not re.fullmatch("[0-9a-f]{64}", metadata.get("source_sha256", "0" * 64)):
        _fail("metadata", "source_sha256 is not 64 lower-case hex digits")
    tensors = {}
    for name, t in table.items():  # step 10
        if t["encoding"] == "raw":
            tensors[name] = np.frombuffer(sections[t["section"]], DTYPES[t["dtype"]]).astype(
                np.dtype(DTYPES[t["dtype"]]).newbyteorder("=")).reshape(t["shape"])
        else:
            tensors[name] = _decode_sparse(t, sections, f"tensor {name!r}")
    return File(version, deflated, metadata, graph, tensors, decoded, limit)
