"""Validating reader of .cdnn files.

Checks run in a fixed order, before anything is allocated or decoded: length, magic, preamble
checksum, version, preamble fields, header bounds, header checksum, header JSON, section layout
and checksums, tensor table (every count against the bytes present and the decoded-size limit),
graph, metadata. Decoding a tensor then checks what only decoding can reveal.
"""

import json
import os
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import streams
from .constants import (
    ALIGNMENT,
    CODING_HUFFMAN,
    DEFAULT_MAX_DECODED_BYTES,
    ENCODING_RAW,
    ENCODING_SPARSE_CODEBOOK,
    ENCODINGS,
    FLAG_HEADER_DEFLATE,
    KNOWN_FLAGS,
    MAGIC,
    MAX_CODEBOOK_SIZE,
    MAX_GAP_BITS,
    MAX_HEADER_BYTES,
    MAX_INT,
    MAX_JSON_DEPTH,
    MAX_NAME_LENGTH,
    MAX_RANK,
    MAX_SECTIONS,
    MAX_TENSORS,
    MAX_UINT16_COLUMNS,
    MIN_GAP_BITS,
    PREAMBLE,
    PREAMBLE_SIZE,
    RAW_DTYPES,
    SUPPORTED_VERSIONS,
)
from .errors import (
    CdnnArgumentError,
    CdnnChecksumError,
    CdnnFormatError,
    CdnnLimitError,
    CdnnVersionError,
)
from .graph import validate_graph
from .sparse import gaps_to_csr


def align(n, to=ALIGNMENT):
    return (n + to - 1) // to * to


def crc32(data):
    return zlib.crc32(data) & 0xFFFFFFFF


class _Check:
    """Schema checks on parsed JSON that raise CdnnFormatError naming where."""

    @staticmethod
    def keys(obj, where, required, optional=()):
        if not isinstance(obj, dict):
            raise CdnnFormatError(f"{where}: expected a JSON object")
        missing = sorted(set(required) - set(obj))
        if missing:
            raise CdnnFormatError(f"{where}: missing field {missing[0]!r}")
        unknown = sorted(set(obj) - set(required) - set(optional))
        if unknown:
            raise CdnnFormatError(f"{where}: unknown field {unknown[0]!r:.80}")

    @staticmethod
    def int(obj, key, lo, hi, where):
        v = obj[key]
        hi = MAX_INT if hi is None else hi
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise CdnnFormatError(f"{where}: {key} must be an integer in [{lo}, {hi}], "
                                  f"got {v!r:.80}")
        return v

    @staticmethod
    def enum(obj, key, choices, where):
        v = obj[key]
        if v not in choices:
            raise CdnnFormatError(f"{where}: {key} must be one of {', '.join(choices)}, "
                                  f"got {v!r:.80}")
        return v

    @staticmethod
    def list(obj, key, where, lo, hi):
        v = obj[key]
        if not isinstance(v, list) or not lo <= len(v) <= hi:
            raise CdnnFormatError(f"{where}: {key} must be a list of {lo} to {hi} items")
        return v


check = _Check()


_SHA256 = re.compile("[0-9a-f]{64}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_json_tree(value):
    """Depth (the top value at 1, every value inside a container one deeper, scalars
    included) and strings without lone surrogates (which only a `\\ud800` escape can give)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > MAX_JSON_DEPTH:
            raise CdnnFormatError(f"header: JSON nested deeper than {MAX_JSON_DEPTH}")
        if isinstance(v, dict):
            stack.extend((k, d + 1) for k in v)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
        elif isinstance(v, str) and _SURROGATE.search(v):
            raise CdnnFormatError(f"header: string {v!r:.60} holds a lone surrogate escape "
                                  "(not a Unicode character)")


def _finite_number(text, value):
    """A JSON number that rounds to infinity as a binary64 is refused, as NaN is."""
    try:
        finite = abs(float(value)) != float("inf")
    except OverflowError:
        finite = False
    if not finite:
        raise CdnnFormatError(f"header: JSON number {text:.40} overflows a binary64")
    return value


def _inflate_header(stored):
    """The JSON bytes of a header stored as raw DEFLATE, never more than the header cap."""
    end = PREAMBLE_SIZE + len(stored) - 1
    inflater = zlib.decompressobj(wbits=-15)
    try:
        raw = inflater.decompress(stored, MAX_HEADER_BYTES + 1)
    except zlib.error as exc:
        raise CdnnFormatError(f"header (bytes {PREAMBLE_SIZE}-{end}): not a valid DEFLATE "
                              f"stream ({exc})") from None
    if len(raw) > MAX_HEADER_BYTES:
        raise CdnnLimitError(f"header (bytes {PREAMBLE_SIZE}-{end}): inflates to more than the "
                             f"{MAX_HEADER_BYTES}-byte cap")
    if not inflater.eof:
        raise CdnnFormatError(f"header (bytes {PREAMBLE_SIZE}-{end}): DEFLATE stream is "
                              "truncated")
    if inflater.unused_data:
        raise CdnnFormatError(f"header (bytes {PREAMBLE_SIZE}-{end}): "
                              f"{len(inflater.unused_data)} bytes after the end of the "
                              "DEFLATE stream")
    return raw


def _parse_header(raw):
    def no_duplicates(pairs):
        obj = {}
        for k, v in pairs:
            if k in obj:
                raise CdnnFormatError(f"header: duplicate JSON key {k!r:.80}")
            obj[k] = v
        return obj

    def no_constant(name):
        raise CdnnFormatError(f"header: JSON constant {name} is not allowed")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CdnnFormatError(f"header: not valid UTF-8 at byte {PREAMBLE_SIZE + exc.start}") \
            from None
    try:
        header = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant,
                            parse_float=lambda s: _finite_number(s, float(s)),
                            parse_int=lambda s: _finite_number(s, int(s)))
    except CdnnFormatError:
        raise
    except json.JSONDecodeError as exc:
        raise CdnnFormatError(f"header: invalid JSON at character {exc.pos}: {exc.msg}") from None
    except RecursionError:
        raise CdnnFormatError(f"header: JSON nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise CdnnFormatError(f"header: unreadable JSON value ({exc})") from None
    _check_json_tree(header)
    return header


def _magic_problem(head):
    if head.startswith(b"\x89CDN\r\r\n") or head.startswith(b"\x89CDN\n\x1a") \
            or head.startswith(b"\x89CDN\r\n\x1a\r\n"):
        return "bad magic: line endings were changed (was the file copied in text mode?)"
    if head.startswith(b"\x09CDN") or head.startswith(b"CDN"):
        return "bad magic: the high bit of the first byte was lost (7-bit transfer?)"
    return f"not a .cdnn file: magic is {head[:8]!r}, expected {MAGIC!r}"


@dataclass
class TensorInfo:
    """One tensor of the file as the header describes it (nothing decoded)."""
    name: str
    encoding: str
    shape: tuple
    dtype: str
    desc: dict = field(repr=False)
    nbytes: int = 0  # bytes of its sections in the file

    @property
    def nnz(self):
        return self.desc.get("nnz")


def _check_dense(name, shape, need, limit):
    if need > limit:
        raise CdnnLimitError(f"tensor {name!r}: a dense copy of shape {list(shape)} would take "
                             f"{need} bytes, more than the {max(limit, 0)} bytes the "
                             "decoded-size limit leaves")


@dataclass
class SparseTensor:
    """A decoded sparse_codebook tensor: CSR with per-entry codes into a float32 codebook."""
    name: str
    shape: tuple
    rows: int
    n_cols: int
    row_ptr: np.ndarray  # int64[rows + 1]
    col_idx: np.ndarray  # int32[nnz], or uint16 when read with narrow=True
    codes: np.ndarray  # uint8[nnz]
    codebook: np.ndarray  # float32[K]
    #: bytes a dense copy may take: what the reader's decoded-size limit leaves (spec section 5)
    dense_limit: int = field(default=DEFAULT_MAX_DECODED_BYTES, repr=False)

    @property
    def nnz(self):
        return int(self.col_idx.size)

    def values(self):
        """Weight value per stored entry (codebook lookup)."""
        return self.codebook[self.codes]

    def to_dense(self):
        """Dense float32 copy in the original shape, for checking and tests only; refused
        (CdnnLimitError) when it would take more than `dense_limit` bytes."""
        _check_dense(self.name, self.shape, 4 * self.rows * self.n_cols, self.dense_limit)
        dense = np.zeros((self.rows, self.n_cols), dtype=np.float32)
        rows = np.repeat(np.arange(self.rows), np.diff(self.row_ptr))
        dense[rows, self.col_idx] = self.values()
        return dense.reshape(self.shape)


class CdnnFile:
    """A validated .cdnn file: header, graph and metadata parsed; tensors decoded on request."""

    def __init__(self, data, *, max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
        self._data = memoryview(data)
        self.max_decoded_bytes = max_decoded_bytes
        self._validate()

    # ---- validation, in the order the spec gives ------------------------------------------
    def _validate(self):
        data = self._data
        n = len(data)
        if n == 0:
            raise CdnnFormatError("file is empty (0 bytes): not a .cdnn file")
        if n < PREAMBLE_SIZE:
            if bytes(data[:8]) != MAGIC[:min(8, n)]:
                raise CdnnFormatError(_magic_problem(bytes(data[:16])))
            raise CdnnFormatError(f"file is {n} bytes, shorter than the {PREAMBLE_SIZE}-byte "
                                  "preamble (truncated?)")
        (magic, version, flags, header_offset, header_length, file_length, header_crc,
         reserved, preamble_crc) = PREAMBLE.unpack_from(data, 0)
        if magic != MAGIC:
            raise CdnnFormatError(_magic_problem(bytes(data[:16])))
        if crc32(data[:PREAMBLE_SIZE - 4]) != preamble_crc:
            raise CdnnChecksumError("preamble (bytes 0-63): checksum mismatch")
        if version not in SUPPORTED_VERSIONS:
            raise CdnnVersionError(
                f"file is format version {version}; this reader accepts version(s) "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))} (a newer cdnn may read it)")
        if flags & ~KNOWN_FLAGS:
            raise CdnnFormatError(f"preamble: unknown flag bits 0x{flags & ~KNOWN_FLAGS:x} "
                                  "(bytes 12-15); this reader knows only bit 0 (header "
                                  "deflated)")
        if any(reserved):
            raise CdnnFormatError("preamble: reserved bytes (44-59) must be 0")
        if file_length != n:
            what = "truncated" if file_length > n else "has trailing bytes"
            raise CdnnFormatError(f"preamble: file is {n} bytes but declares {file_length} "
                                  f"({what})")
        if header_offset != PREAMBLE_SIZE:
            raise CdnnFormatError(f"preamble: header offset must be {PREAMBLE_SIZE}, "
                                  f"got {header_offset}")
        if header_length > MAX_HEADER_BYTES:
            raise CdnnLimitError(f"preamble: header length {header_length} exceeds the "
                                 f"{MAX_HEADER_BYTES}-byte cap")
        if PREAMBLE_SIZE + header_length > n:
            raise CdnnFormatError(f"preamble: header of {header_length} bytes runs past the "
                                  f"end of the {n}-byte file")
        raw = data[PREAMBLE_SIZE:PREAMBLE_SIZE + header_length]
        if crc32(raw) != header_crc:
            raise CdnnChecksumError(f"header (bytes {PREAMBLE_SIZE}-"
                                    f"{PREAMBLE_SIZE + header_length - 1}): checksum mismatch")
        raw = bytes(raw)
        if flags & FLAG_HEADER_DEFLATE:
            raw = _inflate_header(raw)
        self.header_deflated = bool(flags & FLAG_HEADER_DEFLATE)
        header = _parse_header(raw)
        self.version = version
        self._header_length = header_length
        self._data_start = align(PREAMBLE_SIZE + header_length)
        self._validate_header(header)

    def _validate_header(self, header):
        check.keys(header, "header", required={"format_version", "sections", "tensors"},
                   optional={"graph", "metadata"})
        fv = header["format_version"]
        if not isinstance(fv, int) or isinstance(fv, bool) or fv != self.version:
            raise CdnnFormatError(f"header: format_version {header['format_version']!r:.20} "
                                  f"differs from the preamble's {self.version}")
        self._validate_sections(header)
        self._validate_tensors(header)
        # an absent graph is no graph; `"graph": null` is not a graph object, so an error
        self.graph = None if "graph" not in header else validate_graph(
            header["graph"], {t.name: {"shape": list(t.shape), "encoding": t.encoding,
                             "dtype": t.dtype} for t in self.tensors}, check, self.version)
        metadata = header.get("metadata", {})
        if not isinstance(metadata, dict):
            raise CdnnFormatError("metadata: expected a JSON object")
        for key in ("producer", "producer_version", "source_model", "source_sha256"):
            if key in metadata and not isinstance(metadata[key], str):
                raise CdnnFormatError(f"metadata: {key} must be a string")
        if "source_sha256" in metadata and not _SHA256.fullmatch(metadata["source_sha256"]):
            raise CdnnFormatError(f"metadata: source_sha256 {metadata['source_sha256']!r:.80} "
                                  "is not 64 lower-case hex digits (a SHA-256 digest)")
        self.metadata = metadata

    def _validate_sections(self, header):
        data = self._data
        sections = check.list(header, "sections", "header", 0, MAX_SECTIONS)
        pos = self._data_start
        if pos > len(data):
            raise CdnnFormatError(f"header: data area starts at byte {pos}, past the end of "
                                  f"the {len(data)}-byte file")
        self._check_zero(PREAMBLE_SIZE + self._header_length, pos, "header padding")
        self.sections = []
        for i, sec in enumerate(sections):
            where = f"section {i}"
            check.keys(sec, where, required={"offset", "length", "crc32"})
            off = check.int(sec, "offset", 0, None, where)
            length = check.int(sec, "length", 0, None, where)
            crc = check.int(sec, "crc32", 0, 2**32 - 1, where)
            start = self._data_start + off
            if start % ALIGNMENT:
                raise CdnnFormatError(f"{where}: offset {off} is not a multiple of {ALIGNMENT}")
            if start != align(pos):
                raise CdnnFormatError(f"{where}: starts at byte {start}, expected {align(pos)}"
                                      " (sections must follow each other in order, each at "
                                      f"the next {ALIGNMENT}-byte boundary)")
            if start + length > len(data):
                raise CdnnFormatError(f"{where}: bytes {start}-{start + length - 1} run past the"
                                      f" end of the {len(data)}-byte file")
            self._check_zero(pos, start, f"padding before {where}")
            if crc32(data[start:start + length]) != crc:
                raise CdnnChecksumError(f"{where} (bytes {start}-{start + length - 1}): "
                                        "checksum mismatch")
            self.sections.append((start, length))
            pos = start + length
        if pos != len(data):
            raise CdnnFormatError(f"file has {len(data) - pos} bytes after the last section "
                                  f"(byte {pos} on)")

    def _check_zero(self, start, stop, where):
        if start < stop and any(self._data[start:stop]):
            raise CdnnFormatError(f"{where} (bytes {start}-{stop - 1}): must be zero")

    def _validate_tensors(self, header):
        tensors = check.list(header, "tensors", "header", 0, MAX_TENSORS)
        used = {}
        self.tensors = []
        self._by_name = {}
        decoded = 0

        def section(desc, key, where):
            idx = desc[key] if key == "section" else desc[key]["section"]
            if not isinstance(idx, int) or isinstance(idx, bool) or \
                    not 0 <= idx < len(self.sections):
                raise CdnnFormatError(f"{where}: section index {idx!r:.20} out of range "
                                      f"(file has {len(self.sections)})")
            if idx in used:
                raise CdnnFormatError(f"{where}: section {idx} already used by {used[idx]}")
            used[idx] = where
            return idx

        for i, t in enumerate(tensors):
            where = f"tensor {i}"
            if not isinstance(t, dict) or "encoding" not in t or "name" not in t:
                raise CdnnFormatError(f"{where}: expected an object with name and encoding")
            name = t["name"]
            if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
                raise CdnnFormatError(f"{where}: name must be a string of 1 to "
                                      f"{MAX_NAME_LENGTH} characters")
            where = f"tensor {name!r}"
            if name in self._by_name:
                raise CdnnFormatError(f"{where}: name used twice")
            encoding = check.enum(t, "encoding", ENCODINGS, where)
            shape = t.get("shape")
            if not (isinstance(shape, list) and len(shape) <= MAX_RANK and all(
                    isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_INT
                    for d in shape)):
                raise CdnnFormatError(f"{where}: shape must be a list of at most {MAX_RANK} "
                                      "non-negative integers")
            numel = 1
            for d in shape:
                numel *= d
            if numel > MAX_INT:
                raise CdnnFormatError(f"{where}: shape {shape} has more than 2^53 elements")
            if encoding == ENCODING_RAW:
                check.keys(t, where, required={"name", "encoding", "shape", "dtype", "section"})
                dtype = check.enum(t, "dtype", tuple(RAW_DTYPES), where)
                idx = section(t, "section", where)
                length = self.sections[idx][1]
                need = numel * RAW_DTYPES[dtype].itemsize
                if length != need:
                    raise CdnnFormatError(f"{where}: shape {shape} of {dtype} needs {need} "
                                          f"bytes, section {idx} holds {length}")
                nbytes = length
                decoded += need
            else:
                dtype = "float32"
                nbytes, size = self._validate_sparse(t, shape, numel, where, section)
                decoded += size
            if decoded > self.max_decoded_bytes:
                raise CdnnLimitError(f"{where}: decoded tensors would take more than the "
                                     f"limit of {self.max_decoded_bytes} bytes")
            info = TensorInfo(name, encoding, tuple(shape), dtype, t, nbytes)
            self.tensors.append(info)
            self._by_name[name] = info
        unused = sorted(set(range(len(self.sections))) - set(used))
        if unused:
            raise CdnnFormatError(f"section {unused[0]} is not used by any tensor")
        self.decoded_bytes = decoded  # charged against max_decoded_bytes (spec section 5)

    def _validate_sparse(self, t, shape, numel, where, section):
        check.keys(t, where, required={"name", "encoding", "shape", "rows", "cols", "nnz",
                                       "entries", "codebook", "filler_code", "gap_bits",
                                       "row_counts", "gaps", "codes"})
        if len(shape) < 2:
            raise CdnnFormatError(f"{where}: a sparse_codebook tensor has rank 2 or more")
        rows = check.int(t, "rows", 0, None, where)
        n_cols = check.int(t, "cols", 0, None, where)
        if rows != shape[0] or rows * n_cols != numel:
            raise CdnnFormatError(f"{where}: rows x cols = {rows} x {n_cols} is not the 2-D view "
                                  f"[shape[0], rest] of shape {shape}")
        nnz = check.int(t, "nnz", 0, numel, where)
        entries = check.int(t, "entries", nnz, numel, where)
        gap_bits = check.int(t, "gap_bits", MIN_GAP_BITS, MAX_GAP_BITS, where)
        cb = t["codebook"]
        check.keys(cb, f"{where} codebook", required={"section", "size"})
        k = check.int(cb, "size", 1, MAX_CODEBOOK_SIZE, f"{where} codebook")
        cb_idx = section(t, "codebook", f"{where} codebook")
        if self.sections[cb_idx][1] != 4 * k:
            raise CdnnFormatError(f"{where} codebook: {k} float32 centroids need {4 * k} bytes, "
                                  f"section {cb_idx} holds {self.sections[cb_idx][1]}")
        start = self.sections[cb_idx][0]
        codebook = np.frombuffer(self._data[start:start + 4 * k], dtype="<f4")
        if not np.all(np.isfinite(codebook)):
            raise CdnnFormatError(f"{where} codebook: centroids must be finite")
        filler = t["filler_code"]
        if filler is not None:
            check.int(t, "filler_code", 0, k - 1, where)
            if codebook[filler] != 0.0:
                raise CdnnFormatError(f"{where}: filler code {filler} maps to "
                                      f"{codebook[filler]}, not 0.0")
        elif entries != nnz:
            raise CdnnFormatError(f"{where}: {entries - nnz} filler entries declared but no "
                                  "filler code")
        nbytes = 4 * k
        expect = {"row_counts": (rows, None), "gaps": (entries, 1 << gap_bits),
                  "codes": (entries, k)}
        for key, (count, alphabet) in expect.items():
            w = f"{where} {key} stream"
            desc = t[key]
            streams.check_descriptor(desc, w, check)
            if desc["count"] != count:
                raise CdnnFormatError(f"{w}: holds {desc['count']} values, expected {count}")
            if alphabet is not None and desc["coding"] == CODING_HUFFMAN \
                    and desc["alphabet_size"] > alphabet:
                raise CdnnFormatError(f"{w}: alphabet of {desc['alphabet_size']} symbols, "
                                      f"more than the {alphabet} possible values")
            idx = section(t, key, w)
            if self.sections[idx][1] != streams.stream_nbytes(desc):
                raise CdnnFormatError(f"{w}: descriptor needs {streams.stream_nbytes(desc)} "
                                      f"bytes, section {idx} holds {self.sections[idx][1]}")
            nbytes += self.sections[idx][1]
        # decoded: row pointers (8/row), gaps, codes and columns (1 + 1 + 4 per entry)
        return nbytes, 8 * (rows + 1) + 6 * entries + 4 * k

    # ---- access ----------------------------------------------------------------------------
    @property
    def tensor_names(self):
        return [t.name for t in self.tensors]

    def tensor(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in this file") from None

    def _section_bytes(self, idx):
        start, length = self.sections[idx]
        return self._data[start:start + length]

    def raw(self, name):
        """A raw tensor as a numpy array (a copy, native byte order)."""
        t = self.tensor(name)
        if t.encoding != ENCODING_RAW:
            raise CdnnArgumentError(f"tensor {name!r} is {t.encoding}, not raw")
        arr = np.frombuffer(self._section_bytes(t.desc["section"]), dtype=RAW_DTYPES[t.dtype])
        return arr.astype(RAW_DTYPES[t.dtype].newbyteorder("="), copy=True).reshape(t.shape)

    def codebook(self, name):
        t = self._sparse_info(name)
        return np.frombuffer(self._section_bytes(t.desc["codebook"]["section"]),
                             dtype="<f4").astype(np.float32)

    def _sparse_info(self, name):
        t = self.tensor(name)
        if t.encoding != ENCODING_SPARSE_CODEBOOK:
            raise CdnnArgumentError(f"tensor {name!r} is {t.encoding}, not sparse_codebook")
        return t

    def entries(self, name, *, parallel=True):
        """The stored streams of a sparse tensor, fillers included: (row_counts, gaps, codes)."""
        t = self._sparse_info(name)
        d = t.desc
        out = []
        for key in ("row_counts", "gaps", "codes"):
            where = f"tensor {name!r} {key} stream (section {d[key]['section']}, byte " \
                    f"{self.sections[d[key]['section']][0]})"
            out.append(streams.decode_stream(d[key], self._section_bytes(d[key]["section"]),
                                             where, parallel=parallel))
        row_counts, gaps, codes = out
        where = f"tensor {name!r}"
        if row_counts.size and int(row_counts.max()) > d["cols"]:
            raise CdnnFormatError(f"{where}: row {int(np.argmax(row_counts))} declares "
                                  f"{int(row_counts.max())} entries, more than {d['cols']} columns")
        if codes.size and int(codes.max()) >= d["codebook"]["size"]:
            raise CdnnFormatError(f"{where}: code {int(codes.max())} at entry "
                                  f"{int(np.argmax(codes))} is not below the codebook size "
                                  f"{d['codebook']['size']}")
        if gaps.size and int(gaps.max()) >= (1 << d["gap_bits"]):
            raise CdnnFormatError(f"{where}: gap {int(gaps.max())} does not fit "
                                  f"{d['gap_bits']} bits")
        return row_counts, gaps.astype(np.uint8, copy=False), codes.astype(np.uint8, copy=False)

    def _check_fillers(self, t, gaps, codes, where):
        """Fillers have the widest gap; no other entry has a value of 0.0 (spec 3.2)."""
        d = t.desc
        filler = d["filler_code"]
        if filler is not None:
            short = np.flatnonzero((codes == filler) & (gaps != (1 << d["gap_bits"]) - 1))
            if short.size:
                k = int(short[0])
                raise CdnnFormatError(f"{where}: filler at entry {k} has gap {int(gaps[k])}, "
                                      f"not {(1 << d['gap_bits']) - 1} (2^gap_bits - 1)")
        zero = np.flatnonzero(self.codebook(t.name) == 0.0)
        zero = zero[zero != filler] if filler is not None else zero
        if zero.size:
            bad = np.flatnonzero(np.isin(codes, zero))
            if bad.size:
                k = int(bad[0])
                raise CdnnFormatError(f"{where}: entry {k} has code {int(codes[k])}, whose "
                                      "centroid is 0.0, and is not a filler (a zero weight is a "
                                      "pruned weight, not stored)")

    def sparse(self, name, *, parallel=True, narrow=False):
        """Decode a sparse_codebook tensor to CSR, fillers dropped, every index checked.

        Column indices are int32, or uint16 with `narrow` when the columns fit (the
        runtime's layout)."""
        t = self._sparse_info(name)
        d = t.desc
        row_counts, gaps, stored_codes = self.entries(name, parallel=parallel)
        col_dtype = np.uint16 if narrow and d["cols"] <= MAX_UINT16_COLUMNS else np.int32
        row_ptr, col_idx, codes = gaps_to_csr(row_counts, gaps, stored_codes, d["cols"],
                                              d["filler_code"], d["nnz"], f"tensor {name!r}",
                                              col_dtype=col_dtype)
        self._check_fillers(t, gaps, stored_codes, f"tensor {name!r}")
        del row_counts, gaps, stored_codes
        return SparseTensor(name, t.shape, d["rows"], d["cols"], row_ptr, col_idx, codes,
                            self.codebook(name), self._dense_limit())

    def _dense_limit(self):
        return self.max_decoded_bytes - self.decoded_bytes

    def dense(self, name):
        """Any tensor as a dense float array (sparse ones densified: for checking only)."""
        t = self.tensor(name)
        if t.encoding == ENCODING_RAW:
            return self.raw(name)
        _check_dense(name, t.shape, 4 * t.desc["rows"] * t.desc["cols"], self._dense_limit())
        return self.sparse(name).to_dense()

    def __repr__(self):
        graph = f"a graph of {len(self.graph['nodes'])} nodes" if self.graph else "no graph"
        return f"<CdnnFile v{self.version}: {len(self.tensors)} tensors, {graph}>"


def read(source, *, max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
    """Open and validate a .cdnn file from a path or bytes; tensors decode on request."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = os.fspath(source)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except IsADirectoryError:
            raise CdnnFormatError(f"{path}: is a directory, not a .cdnn file") from None
    return CdnnFile(data, max_decoded_bytes=max_decoded_bytes)
