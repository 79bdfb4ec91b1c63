"""Deterministic, atomic writer of .cdnn files (same input, same bytes)."""

import json
import os
import stat
import tempfile
import threading
import zlib

import numpy as np

from . import huffman, streams
from .constants import (
    CODINGS,
    DEFAULT_CHUNK_SYMBOLS,
    ENCODING_RAW,
    ENCODING_SPARSE_CODEBOOK,
    FLAG_HEADER_DEFLATE,
    MAGIC,
    MAX_CHUNK_SYMBOLS,
    MAX_CODEBOOK_SIZE,
    MAX_GAP_BITS,
    MIN_CHUNK_SYMBOLS,
    MIN_GAP_BITS,
    PREAMBLE,
    PREAMBLE_SIZE,
    RAW_DTYPES,
)
from .errors import CdnnArgumentError
from .graph import graph_version
from .reader import align, crc32, read
from .sparse import count_fillers, csr_to_gaps

#: How the writer may store the JSON header, and how a stream may be coded.
HEADER_STORAGE = ("auto", "deflate", "plain")
STREAM_CODINGS = ("auto", *CODINGS)


def canonical_json(obj):
    """The header's byte form: sorted keys, no spaces, ASCII only, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _stream_cost_bits(values, bits):
    """Bits of the smaller of packed and huffman coding (payload only, for choosing widths)."""
    packed = values.size * bits
    if values.size == 0:
        return 0
    freqs = np.bincount(values, minlength=1).astype(np.int64)
    lengths = huffman.code_lengths(freqs)
    chunks = -(-values.size // DEFAULT_CHUNK_SYMBOLS)
    coded = huffman.encoded_size_bits(freqs, lengths) + 8 * (-(-freqs.size // 8) * 8) \
        + 64 * chunks
    return min(packed, coded)


def best_gap_bits(row_ptr, col_idx, codes, filler_code, code_bits, candidates=None,
                  code_bits_without_fillers=None, where="tensor"):
    """The gap width in 1..8 that makes gaps plus codes (fillers included) smallest.

    `code_bits_without_fillers` is the packed code width when no filler is needed (a 0.0
    centroid appended only for fillers is then dropped again).
    """
    best = None
    for bits in candidates or range(MIN_GAP_BITS, MAX_GAP_BITS + 1):
        fillers = count_fillers(row_ptr, col_idx, bits)
        if filler_code is None and fillers:
            continue
        _, gaps, ecodes = csr_to_gaps(row_ptr, col_idx, codes, bits, filler_code, where)
        width = code_bits if fillers or code_bits_without_fillers is None \
            else code_bits_without_fillers
        cost = _stream_cost_bits(gaps, bits) + _stream_cost_bits(ecodes, width)
        if best is None or cost < best[0]:
            best = (cost, bits)
    if best is None:
        raise CdnnArgumentError(f"{where}: no gap width fits without filler entries, and the "
                                f"codebook is full ({MAX_CODEBOOK_SIZE} nonzero centroids) so "
                                "no filler code is free")
    return best[1]


def deflate_header(head):
    """Raw DEFLATE (RFC 1951) of the header bytes, zlib level 9: deterministic for a given
    zlib; a different DEFLATE implementation may give other (equally valid) bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return packer.compress(head) + packer.flush()


class Writer:
    """Collects tensors, a graph and metadata, and writes them as one .cdnn file.

    `header` chooses how the JSON header is stored: "auto" (deflated when that is smaller,
    the default), "deflate" or "plain".
    """

    def __init__(self, metadata=None, *, header="auto"):
        if header not in HEADER_STORAGE:
            raise CdnnArgumentError(f"header must be 'auto', 'deflate' or 'plain', not "
                                    f"{header!r}")
        self.header_storage = header
        self._tensors = []
        self._sections = []
        self._names = set()
        self.graph = None
        self.metadata = {"producer": "cdnn_runtime", "producer_version": _version()}
        self.metadata.update(metadata or {})

    def _add_section(self, data):
        self._sections.append(bytes(data))
        return len(self._sections) - 1

    def _claim(self, name):
        if not isinstance(name, str) or not name:
            raise CdnnArgumentError(f"tensor name must be a non-empty string, got {name!r}")
        if name in self._names:
            raise CdnnArgumentError(f"tensor {name!r} added twice")
        self._names.add(name)

    def add_raw(self, name, array):
        """A dense tensor stored as it is (float32, float16, int32, int64 or uint8)."""
        array = np.asarray(array)
        dtype = {v.newbyteorder("="): k for k, v in RAW_DTYPES.items()}.get(
            array.dtype.newbyteorder("="))
        if dtype is None:
            raise CdnnArgumentError(f"tensor {name!r}: dtype {array.dtype} cannot be stored raw "
                                    f"(use one of {', '.join(RAW_DTYPES)})")
        self._claim(name)
        data = np.ascontiguousarray(array, dtype=RAW_DTYPES[dtype]).tobytes()
        self._tensors.append({"name": name, "encoding": ENCODING_RAW, "dtype": dtype,
                              "shape": [int(d) for d in array.shape],
                              "section": self._add_section(data)})

    def add_sparse_codebook(self, name, shape, row_ptr, col_idx, codes, codebook, *,
                            gap_bits=None, coding="auto", chunk_symbols=DEFAULT_CHUNK_SYMBOLS):
        """A weight as CSR over its 2-D view [shape[0], rest] with codes into a codebook.

        Entries whose centroid is exactly 0.0 are pruned weights and are not stored. When a
        column skip needs filler entries, a 0.0 centroid serves as their code (appended if
        the codebook has none). `gap_bits=None` picks the width giving the smallest file.
        """
        where = f"tensor {name!r}"
        shape = [int(d) for d in shape]
        if len(shape) < 2:
            raise CdnnArgumentError(f"{where}: sparse_codebook needs rank >= 2, got {shape}")
        _check_stream_options(gap_bits, coding, chunk_symbols, where)
        rows = shape[0]
        n_cols = int(np.prod(shape[1:], dtype=np.int64))
        row_ptr = np.asarray(row_ptr, dtype=np.int64)
        col_idx = np.asarray(col_idx, dtype=np.int64)
        codes = np.asarray(codes)
        codebook = np.asarray(codebook, dtype=np.float32).ravel()
        if not 1 <= codebook.size <= MAX_CODEBOOK_SIZE or not np.all(np.isfinite(codebook)):
            raise CdnnArgumentError(f"{where}: codebook must hold 1 to {MAX_CODEBOOK_SIZE} "
                                    "finite values")
        if row_ptr.shape != (rows + 1,) or row_ptr[0] != 0 or np.any(np.diff(row_ptr) < 0) \
                or row_ptr[-1] != col_idx.size or codes.shape != col_idx.shape:
            raise CdnnArgumentError(f"{where}: row_ptr must be {rows + 1} non-decreasing "
                                    "offsets from 0 to the number of entries, one code per "
                                    "column")
        if col_idx.size:
            row_of = np.repeat(np.arange(rows), np.diff(row_ptr))
            step = np.diff(col_idx)
            new_row = np.diff(row_of) != 0
            if col_idx.min() < 0 or col_idx.max() >= n_cols or np.any((step <= 0) & ~new_row):
                raise CdnnArgumentError(f"{where}: columns must be in [0, {n_cols}) and "
                                        "strictly increasing within each row")
            if codes.min() < 0 or codes.max() >= codebook.size:
                raise CdnnArgumentError(f"{where}: codes must be below the codebook size "
                                        f"{codebook.size}")
        codes = codes.astype(np.uint8)
        keep = codebook[codes] != 0.0
        if not np.all(keep):
            row_of = np.repeat(np.arange(rows), np.diff(row_ptr))
            counts = np.bincount(row_of[keep], minlength=rows)
            row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            col_idx, codes = col_idx[keep], codes[keep]
        zero = np.flatnonzero(codebook == 0.0)
        filler = int(zero[0]) if zero.size else None
        appended = filler is None and codebook.size < MAX_CODEBOOK_SIZE
        if appended:
            codebook = np.append(codebook, np.float32(0.0))
            filler = codebook.size - 1
        code_bits = max(1, (codebook.size - 1).bit_length())
        if gap_bits is None:
            gap_bits = best_gap_bits(
                row_ptr, col_idx, codes, filler, code_bits,
                code_bits_without_fillers=max(1, (codebook.size - 2).bit_length())
                if appended else None, where=where)
        if appended and count_fillers(row_ptr, col_idx, gap_bits) == 0:
            codebook = codebook[:-1]
            filler = None
            code_bits = max(1, (codebook.size - 1).bit_length())
        row_counts, gaps, ecodes = csr_to_gaps(row_ptr, col_idx, codes, gap_bits, filler, where)
        desc = {"name": name, "encoding": ENCODING_SPARSE_CODEBOOK, "shape": shape,
                "rows": rows, "cols": n_cols, "nnz": int(col_idx.size),
                "entries": int(gaps.size), "gap_bits": int(gap_bits), "filler_code": filler}
        self._claim(name)
        desc["codebook"] = {"size": int(codebook.size),
                            "section": self._add_section(codebook.astype("<f4").tobytes())}
        for key, values, bits in (("row_counts", row_counts, None), ("gaps", gaps, gap_bits),
                                  ("codes", ecodes, code_bits)):
            sdesc, data = streams.encode_stream(values, bits=bits, coding=coding,
                                                chunk_symbols=chunk_symbols,
                                                where=f"{where} {key} stream")
            sdesc["section"] = self._add_section(data)
            desc[key] = sdesc
        self._tensors.append(desc)

    def set_graph(self, graph):
        self.graph = graph

    def to_bytes(self, *, verify=True):
        """The file's bytes; with verify, read back through the validating reader first."""
        offsets, pos = [], 0
        for data in self._sections:
            offsets.append(pos)
            pos = align(pos + len(data))
        version = graph_version(self.graph)
        header = {"format_version": version, "tensors": self._tensors,
                  "sections": [{"offset": off, "length": len(d), "crc32": crc32(d)}
                               for off, d in zip(offsets, self._sections)],
                  "metadata": self.metadata}
        if self.graph is not None:
            header["graph"] = self.graph
        head, flags = canonical_json(header), 0
        if self.header_storage != "plain":
            packed = deflate_header(head)
            if self.header_storage == "deflate" or len(packed) < len(head):
                head, flags = packed, FLAG_HEADER_DEFLATE
        data_start = align(PREAMBLE_SIZE + len(head))
        total = data_start + (offsets[-1] + len(self._sections[-1]) if self._sections else 0)
        out = bytearray(total)
        out[PREAMBLE_SIZE:PREAMBLE_SIZE + len(head)] = head
        for off, data in zip(offsets, self._sections):
            out[data_start + off:data_start + off + len(data)] = data
        pre = PREAMBLE.pack(MAGIC, version, flags, PREAMBLE_SIZE, len(head), total,
                            crc32(head), b"\0" * 16, 0)
        out[:PREAMBLE_SIZE] = pre[:-4] + crc32(pre[:-4]).to_bytes(4, "little")
        out = bytes(out)
        if verify:
            f = read(out)
            for t in f.tensors:
                if t.encoding == ENCODING_SPARSE_CODEBOOK:
                    f.sparse(t.name)
        return out

    def save(self, path, *, overwrite=True, verify=True):
        """Write atomically: a temporary file beside `path`, fsync, then rename over it."""
        write_atomic(path, self.to_bytes(verify=verify), overwrite=overwrite)
        return os.path.getsize(path)


def _check_stream_options(gap_bits, coding, chunk_symbols, where):
    """The writer's options for a sparse tensor's streams, checked before any work."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if gap_bits is not None and not (is_int(gap_bits) and MIN_GAP_BITS <= gap_bits <= MAX_GAP_BITS):
        raise CdnnArgumentError(f"{where}: gap_bits must be None or an integer in "
                                f"{MIN_GAP_BITS}..{MAX_GAP_BITS}, got {gap_bits!r}")
    if coding not in STREAM_CODINGS:
        raise CdnnArgumentError(f"{where}: coding must be one of {', '.join(STREAM_CODINGS)}, "
                                f"got {coding!r}")
    if not (is_int(chunk_symbols) and MIN_CHUNK_SYMBOLS <= chunk_symbols <= MAX_CHUNK_SYMBOLS):
        raise CdnnArgumentError(f"{where}: chunk_symbols must be an integer in "
                                f"{MIN_CHUNK_SYMBOLS}..{MAX_CHUNK_SYMBOLS}, got "
                                f"{chunk_symbols!r}")


def write_atomic(path, data, *, overwrite=True):
    """Never leaves a half-written file under `path`: temp file, fsync, rename, fsync dir."""
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists (pass overwrite=True, or --force, to replace it)")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        os.fchmod(fd, _target_mode(path))  # mkstemp's 0600 would survive the rename
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} exists")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _target_mode(path):
    """The permission bits the file at `path` gets: an existing file's own (it is replaced),
    else those of a plain open(path, "w"): 0o666 less the process's umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


_UMASK_LOCK = threading.Lock()


def _umask():
    """The process's umask, read from /proc where it shows, else set and restored at once
    under a lock (os.umask has no read-only form)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _version():
    from . import __version__
    return __version__
