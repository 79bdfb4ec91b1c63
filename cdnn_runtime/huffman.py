"""Canonical, length-limited Huffman coding of uint8 symbol streams.

Conventions (normative; spec/cdnn-format.md repeats them):

* Alphabet: symbols ``0 .. A-1`` with ``1 <= A <= HUFFMAN_MAX_ALPHABET`` (256).
* Code lengths: one ``uint8`` per symbol, 0 = the symbol has no code, otherwise
  ``1 .. HUFFMAN_MAX_CODE_LENGTH`` (16). Valid lengths satisfy the Kraft inequality
  ``sum(2**-len for len > 0) <= 1``; an incomplete code is allowed.
* Canonical codes (RFC 1951, 3.2.2): codes are handed out in increasing
  ``(length, symbol)`` order; ``code = 0``; for ``L`` in ``1 .. 16`` every symbol of
  length ``L`` (in increasing symbol order) takes ``code`` and ``code += 1``; after
  length ``L``, ``code <<= 1``.
* Bit order: MSB-first. Bit ``i`` of the stream is bit ``7 - i % 8`` of byte ``i // 8``;
  each code is written most significant bit first; the last byte is zero-padded.
* Chunks: the stream of ``count`` symbols is cut into chunks of ``chunk_symbols``
  symbols (the last may be shorter; ``count == 0`` gives no chunks). Chunk ``j``
  starts at bit ``chunk_bit_offsets[j]``; chunk 0 starts at bit 0; chunk ``j`` ends
  where chunk ``j + 1`` starts and the last chunk ends at ``payload_bits``. Chunks
  are not padded. A chunk must hold exactly its symbols: no code may cross its end
  bit, and its last code must end exactly at its end bit.

Code lengths are built by package-merge: optimal (minimum ``sum(freq * len)``) under
the length limit. Ties are broken by symbol index: among symbols of equal frequency a
lower symbol never gets a longer code than a higher one.

The kernels are Numba functions on raw arrays that return status codes; the Python
wrappers validate every input and turn statuses into :class:`CdnnFormatError`.
"""

from __future__ import annotations

import numbers

import numpy as np
from numba import njit, prange

from ._jit import jit_cache, threaded_or_serial
from .bitpack import flush_bits
from .constants import (
    HUFFMAN_MAX_ALPHABET,
    HUFFMAN_MAX_CODE_LENGTH,
    MAX_CHUNK_SYMBOLS,
    MIN_CHUNK_SYMBOLS,
)
from .errors import CdnnFormatError

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

__all__ = [
    "code_lengths",
    "validate_code_lengths",
    "canonical_codes",
    "encode",
    "decode",
    "encoded_size_bits",
    "symbol_frequencies",
    "chunk_count",
    "PARALLEL_MIN_SYMBOLS",
    "DECODE_OK",
    "DECODE_INVALID_CODE",
    "DECODE_PAST_CHUNK_END",
    "DECODE_CHUNK_ENDS_EARLY",
]

#: Kernel status codes of a decoded chunk.
DECODE_OK = 0
DECODE_INVALID_CODE = 1
DECODE_PAST_CHUNK_END = 2
DECODE_CHUNK_ENDS_EARLY = 3

#: Streams shorter than this are coded and decoded on one thread even when parallel
#: decoding is asked for: a parallel region costs more than it saves on them.
PARALLEL_MIN_SYMBOLS = 1 << 18

_KRAFT_ONE = 1 << HUFFMAN_MAX_CODE_LENGTH


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _as_int(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise CdnnFormatError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _as_int_array(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise CdnnFormatError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise CdnnFormatError(f"{what} must have an integer dtype, got {arr.dtype}")
    return arr


def _check_alphabet_size(a: int) -> None:
    if not 1 <= a <= HUFFMAN_MAX_ALPHABET:
        raise CdnnFormatError(
            f"Huffman alphabet size {a} is outside 1..{HUFFMAN_MAX_ALPHABET}"
        )


def _per_symbol_array(values, what: str, one: str) -> np.ndarray:
    """``values`` (one per symbol of the alphabet) as a 1-D integer array with no negative
    entry; ``what`` names the array and ``one`` an entry in messages."""
    arr = _as_int_array(values, what)
    _check_alphabet_size(arr.shape[0])
    if arr.min() < 0:
        sym = int(np.argmin(arr))
        raise CdnnFormatError(f"{one} {int(arr[sym])} < 0 (symbol {sym})")
    return arr


def _checked_lengths(lengths) -> np.ndarray:
    """Validated code lengths as a fresh contiguous ``uint8`` array."""
    arr = _per_symbol_array(lengths, "Huffman code lengths", "Huffman code length")
    if arr.max() > HUFFMAN_MAX_CODE_LENGTH:
        sym = int(np.argmax(arr))
        raise CdnnFormatError(
            f"Huffman code length {int(arr[sym])} > {HUFFMAN_MAX_CODE_LENGTH} (symbol {sym})"
        )
    out = np.ascontiguousarray(arr, dtype=np.uint8).copy()
    nz = out[out > 0].astype(np.int64)
    kraft = int(np.sum(np.left_shift(1, HUFFMAN_MAX_CODE_LENGTH - nz)))
    if kraft > _KRAFT_ONE:
        raise CdnnFormatError(
            f"Huffman code lengths: Kraft sum {kraft}/{_KRAFT_ONE} "
            f"(= {kraft / _KRAFT_ONE:.6g}) exceeds 1"
        )
    return out


def _check_chunk_symbols(chunk_symbols) -> int:
    cs = _as_int(chunk_symbols, "chunk_symbols")
    if not MIN_CHUNK_SYMBOLS <= cs <= MAX_CHUNK_SYMBOLS:
        raise CdnnFormatError(
            f"chunk_symbols {cs} is outside {MIN_CHUNK_SYMBOLS}..{MAX_CHUNK_SYMBOLS}"
        )
    return cs


def chunk_count(count: int, chunk_symbols: int) -> int:
    """Number of chunks of a stream of ``count`` symbols: ``ceil(count / chunk_symbols)``."""
    count = _as_int(count, "count")
    cs = _check_chunk_symbols(chunk_symbols)
    if count < 0:
        raise CdnnFormatError(f"symbol count {count} is negative")
    return -(-count // cs)


def validate_code_lengths(lengths) -> None:
    """Raise :class:`CdnnFormatError` unless ``lengths`` is a valid code-length table.

    Valid: 1-D integers, 1..256 entries, each in 0..16, Kraft sum <= 1.
    """
    _checked_lengths(lengths)


# ----------------------------------------------------------------------------
# Code construction
# ----------------------------------------------------------------------------


def symbol_frequencies(symbols, alphabet_size: int) -> np.ndarray:
    """Occurrences of each symbol ``0 .. alphabet_size-1`` in ``symbols`` (int64)."""
    a = _as_int(alphabet_size, "alphabet_size")
    _check_alphabet_size(a)
    sym = _checked_symbols(symbols)
    freqs = np.bincount(sym, minlength=HUFFMAN_MAX_ALPHABET).astype(np.int64)
    if np.any(freqs[a:]):
        bad = int(np.nonzero(freqs[a:])[0][0]) + a
        raise CdnnFormatError(f"symbol {bad} is outside the alphabet of size {a}")
    return freqs[:a].copy()


def code_lengths(freqs, max_length: int = HUFFMAN_MAX_CODE_LENGTH) -> np.ndarray:
    """Optimal length-limited code lengths (``uint8[A]``) for symbol frequencies.

    Package-merge: minimises ``sum(freq * len)`` subject to ``len <= max_length``.
    Zero-frequency symbols get length 0; a single used symbol gets length 1. Ties
    are broken by symbol index (a lower symbol never gets a longer code than a higher
    symbol of the same frequency), so the result depends only on the input.
    """
    arr = _per_symbol_array(freqs, "Huffman frequencies", "Huffman frequency")
    a = arr.shape[0]
    lmax = _as_int(max_length, "max_length")
    if not 1 <= lmax <= HUFFMAN_MAX_CODE_LENGTH:
        raise CdnnFormatError(
            f"max_length {lmax} is outside 1..{HUFFMAN_MAX_CODE_LENGTH}"
        )
    f = [int(v) for v in arr.tolist()]
    out = np.zeros(a, dtype=np.uint8)
    # Leaves in increasing (frequency, -symbol): the earlier a leaf, the longer its code.
    leaves = sorted((s for s in range(a) if f[s] > 0), key=lambda s: (f[s], -s))
    n = len(leaves)
    if n == 0:
        return out
    if n == 1:
        out[leaves[0]] = 1
        return out
    if n > (1 << lmax):
        raise CdnnFormatError(
            f"{n} used symbols cannot get codes of at most {lmax} bits "
            f"(at most {1 << lmax} can)"
        )
    weights = [f[s] for s in leaves]
    # levels[d] lists, for the merged list of depth d+1 (d = 0 is depth 1), whether each
    # item is a leaf (True) or a package of two items of the next deeper list (False).
    levels: list[list[bool]] = [None] * lmax  # type: ignore[list-item]
    prev_w: list[int] = list(weights)
    levels[lmax - 1] = [True] * n
    for d in range(lmax - 2, -1, -1):
        packs = [prev_w[2 * i] + prev_w[2 * i + 1] for i in range(len(prev_w) // 2)]
        merged_w: list[int] = []
        kinds: list[bool] = []
        i = k = 0
        while i < n or k < len(packs):
            if k >= len(packs) or (i < n and weights[i] <= packs[k]):
                merged_w.append(weights[i])
                kinds.append(True)
                i += 1
            else:
                merged_w.append(packs[k])
                kinds.append(False)
                k += 1
        levels[d] = kinds
        prev_w = merged_w
    depth = np.zeros(n, dtype=np.int64)
    take = 2 * n - 2
    for d in range(lmax):
        kinds = levels[d][:take]
        n_leaves = sum(kinds)
        depth[:n_leaves] += 1
        take = 2 * (take - n_leaves)
    out[np.asarray(leaves, dtype=np.int64)] = depth.astype(np.uint8)
    return out


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codes (``uint32[A]``) for valid code lengths; 0 where the length is 0."""
    lens = _checked_lengths(lengths)
    return _canonical_codes_unchecked(lens)


def _canonical_codes_unchecked(lens: np.ndarray) -> np.ndarray:
    bl_count = np.bincount(lens, minlength=HUFFMAN_MAX_CODE_LENGTH + 1).astype(np.int64)
    bl_count[0] = 0
    next_code = np.zeros(HUFFMAN_MAX_CODE_LENGTH + 1, dtype=np.int64)
    code = 0
    for length in range(1, HUFFMAN_MAX_CODE_LENGTH + 1):
        code = (code + int(bl_count[length - 1])) << 1
        next_code[length] = code
    order = np.argsort(lens, kind="stable")  # increasing (length, symbol)
    sorted_lens = lens[order].astype(np.int64)
    first = np.searchsorted(sorted_lens, sorted_lens, side="left")
    rank = np.arange(lens.shape[0], dtype=np.int64) - first
    codes = np.zeros(lens.shape[0], dtype=np.uint32)
    used = sorted_lens > 0
    codes[order[used]] = (next_code[sorted_lens[used]] + rank[used]).astype(np.uint32)
    return codes


def encoded_size_bits(freqs, lengths) -> int:
    """Total coded bits ``sum(freq * len)``; raises if a used symbol has no code."""
    f = _as_int_array(freqs, "Huffman frequencies")
    lens = _checked_lengths(lengths)
    if f.shape[0] != lens.shape[0]:
        raise CdnnFormatError(
            f"{f.shape[0]} frequencies for an alphabet of {lens.shape[0]} code lengths"
        )
    if f.size and f.min() < 0:
        raise CdnnFormatError("Huffman frequencies must be non-negative")
    missing = np.nonzero((f > 0) & (lens == 0))[0]
    if missing.size:
        raise CdnnFormatError(f"symbol {int(missing[0])} occurs but has no Huffman code")
    return sum(int(x) * int(y) for x, y in zip(f.tolist(), lens.tolist()))


# ----------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------


@njit(cache=_CACHE)
def _build_table(lens, codes, lmax):
    """Lookup table of ``2**lmax`` entries: ``(length << 8) | symbol``; 0 = no code."""
    table = np.zeros(1 << lmax, dtype=np.uint16)
    for s in range(lens.shape[0]):
        ln = np.int64(lens[s])
        if ln == 0:
            continue
        span = np.int64(1) << (lmax - ln)
        start = np.int64(codes[s]) << (lmax - ln)
        entry = np.uint16((ln << 8) | s)
        for t in range(start, start + span):
            table[t] = entry
    return table


@njit(cache=_CACHE, inline="always")
def _decode_chunk(payload, table, lmax, out, o0, n, s, e):
    """Decode ``n`` symbols from bits ``[s, e)`` into ``out[o0:o0+n]``.

    Returns ``(status, bit)``: status 0 and ``e`` on success, else the status code and
    the bit position of the offending code (or where the symbols ended).
    """
    nbytes = np.int64(payload.shape[0])
    shift = np.uint64(64 - lmax)
    per_refill = np.int64(57) // lmax
    bytepos = s >> 3
    buf = np.uint64(0)
    nbits = np.int64(0)
    pos = s
    i = np.int64(0)
    while nbits <= 56:
        if bytepos < nbytes:
            buf |= np.uint64(payload[bytepos]) << np.uint64(56 - nbits)
        bytepos += 1
        nbits += 8
    skip = s & 7
    buf <<= np.uint64(skip)
    nbits -= skip
    while i < n:
        # Refill to at least 57 valid bits (zeros past the end of the payload).
        if nbits <= 56:
            if bytepos + 8 <= nbytes:
                w = (
                    (np.uint64(payload[bytepos]) << np.uint64(56))
                    | (np.uint64(payload[bytepos + 1]) << np.uint64(48))
                    | (np.uint64(payload[bytepos + 2]) << np.uint64(40))
                    | (np.uint64(payload[bytepos + 3]) << np.uint64(32))
                    | (np.uint64(payload[bytepos + 4]) << np.uint64(24))
                    | (np.uint64(payload[bytepos + 5]) << np.uint64(16))
                    | (np.uint64(payload[bytepos + 6]) << np.uint64(8))
                    | np.uint64(payload[bytepos + 7])
                )
                buf |= w >> np.uint64(nbits)
                k = (64 - nbits) >> 3
                bytepos += k
                nbits += k << 3
            else:
                while nbits <= 56:
                    if bytepos < nbytes:
                        buf |= np.uint64(payload[bytepos]) << np.uint64(56 - nbits)
                    bytepos += 1
                    nbits += 8
        m = n - i
        if m > per_refill:
            m = per_refill
        for _ in range(m):
            entry = table[buf >> shift]
            ln = np.int64(entry >> np.uint16(8))
            if ln == 0:
                return DECODE_INVALID_CODE, pos
            if pos + ln > e:
                return DECODE_PAST_CHUNK_END, pos
            # an unsigned index: no wrap-around check
            out[np.uint64(o0 + i)] = np.uint8(entry & np.uint16(0xFF))
            buf <<= np.uint64(ln)
            nbits -= ln
            pos += ln
            i += 1
    if pos != e:
        return DECODE_CHUNK_ENDS_EARLY, pos
    return DECODE_OK, pos


@njit(cache=_CACHE, inline="always")
def _decode_chunk_j(payload, table, lmax, offs, payload_bits, count, cs, out, j):
    nch = offs.shape[0]
    o0 = j * cs
    n = count - o0
    if n > cs:
        n = cs
    s = offs[j]
    e = offs[j + 1] if j + 1 < nch else payload_bits
    return _decode_chunk(payload, table, lmax, out, o0, n, s, e)


@njit(cache=_CACHE, parallel=True)
def _decode_parallel(payload, table, lmax, offs, payload_bits, count, cs, out, status, errbit):
    for j in prange(offs.shape[0]):
        st, bit = _decode_chunk_j(payload, table, lmax, offs, payload_bits, count, cs, out, j)
        status[j] = st
        errbit[j] = bit


@njit(cache=_CACHE)
def _decode_serial(payload, table, lmax, offs, payload_bits, count, cs, out, status, errbit):
    for j in range(offs.shape[0]):
        st, bit = _decode_chunk_j(payload, table, lmax, offs, payload_bits, count, cs, out, j)
        status[j] = st
        errbit[j] = bit
        if st != DECODE_OK:
            break


@njit(cache=_CACHE, inline="always")
def _chunk_bits_j(symbols, len256, cs, bits, bad, j):
    count = symbols.shape[0]
    a = j * cs
    b = a + cs
    if b > count:
        b = count
    tot = np.int64(0)
    first_bad = np.int64(-1)
    for i in range(a, b):
        ln = np.int64(len256[symbols[i]])
        if ln == 0 and first_bad < 0:
            first_bad = i
        tot += ln
    bits[j] = tot
    bad[j] = first_bad


@njit(cache=_CACHE, parallel=True)
def _chunk_bits_parallel(symbols, len256, cs, bits, bad):
    """Bits of each chunk; ``bad[j]`` = index of the first symbol without a code, or -1."""
    for j in prange(bits.shape[0]):
        _chunk_bits_j(symbols, len256, cs, bits, bad, j)


@njit(cache=_CACHE)
def _chunk_bits_serial(symbols, len256, cs, bits, bad):
    for j in range(bits.shape[0]):
        _chunk_bits_j(symbols, len256, cs, bits, bad, j)


@njit(cache=_CACHE)
def _encode_write(symbols, len256, code256, out):
    acc = np.uint64(0)
    nacc = np.int64(0)
    p = np.int64(0)
    for i in range(symbols.shape[0]):
        sym = symbols[i]
        ln = len256[sym]
        acc = (acc << np.uint64(ln)) | np.uint64(code256[sym])
        nacc += np.int64(ln)
        if nacc >= 32:
            nacc -= 32
            v = acc >> np.uint64(nacc)
            out[p] = np.uint8((v >> np.uint64(24)) & np.uint64(0xFF))
            out[p + 1] = np.uint8((v >> np.uint64(16)) & np.uint64(0xFF))
            out[p + 2] = np.uint8((v >> np.uint64(8)) & np.uint64(0xFF))
            out[p + 3] = np.uint8(v & np.uint64(0xFF))
            p += 4
    return flush_bits(acc, nacc, out, p)


# ----------------------------------------------------------------------------
# Encode / decode wrappers
# ----------------------------------------------------------------------------


def _checked_symbols(symbols) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.ndim != 1:
        raise CdnnFormatError(f"symbols must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint8)
    if arr.dtype.kind not in "iu":
        raise CdnnFormatError(f"symbols must have an integer dtype, got {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        raise CdnnFormatError(f"symbols must lie in 0..255, got range {lo}..{hi}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def encode(symbols, lengths, chunk_symbols: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Huffman-code a ``uint8`` symbol stream with canonical codes of ``lengths``.

    Returns ``(payload, chunk_bit_offsets, payload_bits)``: ``payload`` is
    ``uint8[ceil(payload_bits / 8)]``, ``chunk_bit_offsets`` is ``uint64[n_chunks]``.
    Raises :class:`CdnnFormatError` if a symbol has no code.
    """
    lens = _checked_lengths(lengths)
    sym = _checked_symbols(symbols)
    cs = _check_chunk_symbols(chunk_symbols)
    count = sym.shape[0]
    nch = -(-count // cs)
    len256 = np.zeros(HUFFMAN_MAX_ALPHABET, dtype=np.uint8)
    len256[: lens.shape[0]] = lens
    code256 = np.zeros(HUFFMAN_MAX_ALPHABET, dtype=np.uint32)
    code256[: lens.shape[0]] = _canonical_codes_unchecked(lens)
    bits = np.zeros(nch, dtype=np.int64)
    bad = np.full(nch, -1, dtype=np.int64)
    if nch:
        use_parallel = nch > 1 and count >= PARALLEL_MIN_SYMBOLS
        kernel = threaded_or_serial(_chunk_bits_parallel, _chunk_bits_serial, use_parallel)
        kernel(sym, len256, cs, bits, bad)
    bad_any = np.nonzero(bad >= 0)[0]
    if bad_any.size:
        idx = int(bad[bad_any[0]])
        s = int(sym[idx])
        why = (
            f"is outside the alphabet of size {lens.shape[0]}"
            if s >= lens.shape[0]
            else "has no Huffman code (length 0)"
        )
        raise CdnnFormatError(f"symbol {s} at index {idx} {why}")
    offsets = np.zeros(nch, dtype=np.uint64)
    if nch > 1:
        offsets[1:] = np.cumsum(bits[:-1]).astype(np.uint64)
    payload_bits = int(bits.sum())
    payload = np.empty((payload_bits + 7) // 8, dtype=np.uint8)
    if count:
        written = _encode_write(sym, len256, code256, payload)
        assert written == payload.shape[0]
    return payload, offsets, payload_bits


def _as_payload(payload) -> np.ndarray:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return np.frombuffer(payload, dtype=np.uint8)
    arr = np.asarray(payload)
    if arr.ndim != 1 or arr.dtype != np.uint8:
        raise CdnnFormatError(
            f"Huffman payload must be a 1-D uint8 array, got {arr.dtype} of shape {arr.shape}"
        )
    return np.ascontiguousarray(arr)


def decode(
    payload,
    payload_bits: int,
    lengths,
    count: int,
    chunk_symbols: int,
    chunk_bit_offsets,
    *,
    parallel: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode ``count`` symbols (``uint8[count]``) of a chunked Huffman payload.

    Validates every input first, then decodes each chunk with a table of ``2**Lmax``
    entries (``Lmax`` = longest code). ``parallel`` decodes chunks with ``prange``
    (streams of fewer than ``PARALLEL_MIN_SYMBOLS`` symbols are decoded serially);
    the result is the same either way. Raises :class:`CdnnFormatError` (naming the
    chunk and bit position) on an invalid code, a code that crosses its chunk's end,
    or a chunk whose symbols end before its end bit.
    """
    data = _as_payload(payload)
    pbits = _as_int(payload_bits, "payload_bits")
    lens = _checked_lengths(lengths)
    count = _as_int(count, "count")
    cs = _check_chunk_symbols(chunk_symbols)
    if count < 0:
        raise CdnnFormatError(f"symbol count {count} is negative")
    if pbits < 0:
        raise CdnnFormatError(f"payload_bits {pbits} is negative")
    if pbits > 8 * data.shape[0]:
        raise CdnnFormatError(
            f"payload_bits {pbits} exceeds the {data.shape[0]}-byte payload "
            f"({8 * data.shape[0]} bits): payload truncated"
        )
    nch = -(-count // cs)
    offs_in = _as_int_array(chunk_bit_offsets, "chunk_bit_offsets")
    if offs_in.shape[0] != nch:
        raise CdnnFormatError(
            f"{offs_in.shape[0]} chunk bit offsets for {count} symbols in chunks of "
            f"{cs} (expected {nch})"
        )
    if nch:
        if offs_in.dtype.kind == "i" and offs_in.min() < 0:
            raise CdnnFormatError("chunk bit offsets must be non-negative")
        past = np.nonzero(offs_in > pbits)[0]
        if past.size:
            j = int(past[0])
            raise CdnnFormatError(
                f"chunk {j} starts at bit {int(offs_in[j])}, past payload_bits {pbits}"
            )
        offs = offs_in.astype(np.int64)
        if offs[0] != 0:
            raise CdnnFormatError(f"chunk 0 starts at bit {int(offs[0])}, not 0")
        dec = np.nonzero(np.diff(offs) < 0)[0]
        if dec.size:
            j = int(dec[0]) + 1
            raise CdnnFormatError(
                f"chunk bit offsets decrease: chunk {j} starts at bit {int(offs[j])}, "
                f"before chunk {j - 1} (bit {int(offs[j - 1])})"
            )
    else:
        offs = np.zeros(0, dtype=np.int64)
        if pbits != 0:
            raise CdnnFormatError(f"empty Huffman stream has payload_bits {pbits}, not 0")
    if count > pbits:
        raise CdnnFormatError(
            f"{count} symbols cannot fit in {pbits} bits (every code is at least 1 bit)"
        )
    lmax = int(lens.max())
    if count > 0 and lmax == 0:
        raise CdnnFormatError(f"{count} symbols to decode but no symbol has a Huffman code")
    if out is None:
        out = np.empty(count, dtype=np.uint8)
    else:
        if (
            not isinstance(out, np.ndarray)
            or out.dtype != np.uint8
            or out.shape != (count,)
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            raise ValueError(f"out must be a writable contiguous uint8 array of shape ({count},)")
    if count == 0:
        return out
    codes = _canonical_codes_unchecked(lens)
    table = _build_table(lens, codes, lmax)
    status = np.zeros(nch, dtype=np.int64)
    errbit = np.zeros(nch, dtype=np.int64)
    use_parallel = parallel and nch > 1 and count >= PARALLEL_MIN_SYMBOLS
    kernel = threaded_or_serial(_decode_parallel, _decode_serial, use_parallel)
    kernel(data, table, lmax, offs, pbits, count, cs, out, status, errbit)
    failed = np.nonzero(status != DECODE_OK)[0]
    if failed.size:
        j = int(failed[0])
        st, bit = int(status[j]), int(errbit[j])
        start = int(offs[j])
        end = int(offs[j + 1]) if j + 1 < nch else pbits
        where = f"Huffman chunk {j} (bits {start}..{end})"
        if st == DECODE_INVALID_CODE:
            msg = f"{where}: invalid code at bit {bit}"
        elif st == DECODE_PAST_CHUNK_END:
            msg = f"{where}: code at bit {bit} runs past the chunk's end bit {end}"
        else:
            msg = f"{where}: symbols end at bit {bit}, before the chunk's end bit {end}"
        raise CdnnFormatError(msg)
    return out
