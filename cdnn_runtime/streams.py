"""Integer streams of the format: `packed` (fixed width) or `huffman` (canonical, chunked).

A stream descriptor lives in the JSON header; its bytes are one section. Layout of a huffman
section: code lengths (u8 x alphabet_size), zero padding to a multiple of 8, chunk bit offsets
(u64 LE x n_chunks), payload (MSB-first bits, zero-padded to a byte).
"""

import numpy as np

from . import bitpack, huffman
from .constants import (
    CODING_HUFFMAN,
    CODING_PACKED,
    DEFAULT_CHUNK_SYMBOLS,
    HUFFMAN_MAX_ALPHABET,
    HUFFMAN_MAX_CODE_LENGTH,
    MAX_CHUNK_SYMBOLS,
    MIN_CHUNK_SYMBOLS,
    PACKED_MAX_BITS,
)
from .errors import CdnnArgumentError, CdnnFormatError


def n_chunks(count, chunk_symbols):
    return (count + chunk_symbols - 1) // chunk_symbols


def _align8(n):
    return (n + 7) & ~7


def stream_nbytes(desc):
    """Exact byte length of the section a (validated) stream descriptor describes."""
    if desc["coding"] == CODING_PACKED:
        return bitpack.packed_nbytes(desc["count"], desc["bits"])
    return (_align8(desc["alphabet_size"]) + 8 * n_chunks(desc["count"], desc["chunk_symbols"])
            + (desc["payload_bits"] + 7) // 8)


def _bit_width(max_value):
    return max(1, int(max_value).bit_length())


def encode_packed(values, bits=None):
    values = np.ascontiguousarray(values)
    if bits is None:
        bits = _bit_width(values.max() if values.size else 0)
    data = bitpack.pack(values, bits)
    return {"coding": CODING_PACKED, "count": int(values.size), "bits": int(bits)}, data.tobytes()


def encode_huffman(values, chunk_symbols=DEFAULT_CHUNK_SYMBOLS, where="stream"):
    values = np.ascontiguousarray(values)
    if values.size and int(values.max()) >= HUFFMAN_MAX_ALPHABET:
        raise CdnnArgumentError(f"{where}: huffman streams hold symbols below "
                                f"{HUFFMAN_MAX_ALPHABET}, got {int(values.max())}")
    symbols = values.astype(np.uint8)
    alphabet = int(symbols.max()) + 1 if symbols.size else 1
    freqs = np.bincount(symbols, minlength=alphabet).astype(np.int64)
    lengths = huffman.code_lengths(freqs)
    payload, offsets, payload_bits = huffman.encode(symbols, lengths, chunk_symbols)
    head = np.zeros(_align8(alphabet), dtype=np.uint8)
    head[:alphabet] = lengths
    data = head.tobytes() + np.asarray(offsets, dtype="<u8").tobytes() + np.asarray(
        payload, dtype=np.uint8).tobytes()
    desc = {"coding": CODING_HUFFMAN, "count": int(symbols.size), "alphabet_size": alphabet,
            "chunk_symbols": int(chunk_symbols), "payload_bits": int(payload_bits)}
    return desc, data


def encode_stream(values, *, bits=None, coding="auto", chunk_symbols=DEFAULT_CHUNK_SYMBOLS,
                  where="stream"):
    """Encode unsigned integers; `auto` keeps the smaller of packed and huffman (packed on ties)."""
    values = np.ascontiguousarray(values)
    if coding not in ("auto", CODING_PACKED, CODING_HUFFMAN):
        raise CdnnArgumentError(f"{where}: unknown stream coding {coding!r}")
    if coding == CODING_PACKED or (coding == "auto" and values.size == 0):
        return encode_packed(values, bits)
    fits = values.size == 0 or int(values.max()) < HUFFMAN_MAX_ALPHABET
    if coding == CODING_HUFFMAN:
        return encode_huffman(values, chunk_symbols, where)
    packed = encode_packed(values, bits)
    if not fits:
        return packed
    coded = encode_huffman(values, chunk_symbols)
    return coded if len(coded[1]) < len(packed[1]) else packed


def decode_stream(desc, data, where, *, parallel=True):
    """Decode a stream whose descriptor passed validation; `data` is its section's bytes."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != stream_nbytes(desc):
        raise CdnnFormatError(f"{where}: section holds {buf.size} bytes, descriptor needs "
                              f"{stream_nbytes(desc)}")
    count = desc["count"]
    if desc["coding"] == CODING_PACKED:
        bits = desc["bits"]
        tail = count * bits % 8
        if tail and buf[-1] & ((1 << (8 - tail)) - 1):
            raise CdnnFormatError(f"{where}: nonzero padding bits after the last packed value")
        return bitpack.unpack(buf, bits, count)
    alphabet = desc["alphabet_size"]
    chunks = n_chunks(count, desc["chunk_symbols"])
    head = _align8(alphabet)
    lengths = buf[:alphabet].copy()
    if np.any(buf[alphabet:head]):
        raise CdnnFormatError(f"{where}: nonzero padding after the code lengths")
    offsets = buf[head:head + 8 * chunks].view("<u8").astype(np.uint64)
    payload = buf[head + 8 * chunks:]
    payload_bits = desc["payload_bits"]
    tail = payload_bits % 8
    if tail and payload[-1] & ((1 << (8 - tail)) - 1):
        raise CdnnFormatError(f"{where}: nonzero padding bits after the last huffman code")
    try:
        return huffman.decode(payload, payload_bits, lengths, count, desc["chunk_symbols"],
                              offsets, parallel=parallel)
    except CdnnFormatError as exc:
        raise CdnnFormatError(f"{where}: {exc}") from None


def check_descriptor(desc, where, check):
    """Validate a stream descriptor's fields and the counts they imply (no bytes read)."""
    check.keys(desc, where, required={"coding", "count", "section"},
               optional={"bits", "alphabet_size", "chunk_symbols", "payload_bits"})
    coding = check.enum(desc, "coding", (CODING_PACKED, CODING_HUFFMAN), where)
    count = check.int(desc, "count", 0, None, where)
    check.int(desc, "section", 0, None, where)
    if coding == CODING_PACKED:
        check.keys(desc, where, required={"coding", "count", "section", "bits"})
        check.int(desc, "bits", 1, PACKED_MAX_BITS, where)
    else:
        check.keys(desc, where, required={"coding", "count", "section", "alphabet_size",
                                          "chunk_symbols", "payload_bits"})
        check.int(desc, "alphabet_size", 1, HUFFMAN_MAX_ALPHABET, where)
        check.int(desc, "chunk_symbols", MIN_CHUNK_SYMBOLS, MAX_CHUNK_SYMBOLS, where)
        bits = check.int(desc, "payload_bits", 0, None, where)
        if count > bits:
            raise CdnnFormatError(f"{where}: declares {count} symbols in {bits} payload bits "
                                  "(every symbol takes at least one bit)")
        if bits > HUFFMAN_MAX_CODE_LENGTH * count:
            raise CdnnFormatError(f"{where}: {bits} payload bits for {count} symbols exceed "
                                  f"{HUFFMAN_MAX_CODE_LENGTH} bits per symbol")
    return count
