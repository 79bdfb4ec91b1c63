"""Tests of cdnn_runtime.huffman: code construction, canonical codes, encode/decode."""

from __future__ import annotations

import itertools

import huffman as huffman_oracle
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdnn_runtime import huffman as H
from cdnn_runtime.constants import HUFFMAN_MAX_CODE_LENGTH
from cdnn_runtime.errors import CdnnFormatError

SETTINGS = settings(derandomize=True, deadline=None, max_examples=60)


@pytest.fixture(autouse=True, scope="module")
def parallel_even_for_small_streams():
    """Run the prange kernels on the small streams of these tests too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(H, "PARALLEL_MIN_SYMBOLS", 0)
        yield


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------


def oracle_total(freqs) -> tuple[int, int]:
    """(total coded bits, longest code) of an unrestricted Huffman code."""
    items = [(s, int(f)) for s, f in enumerate(freqs) if f > 0]
    if len(items) == 1:
        return items[0][1], 1
    book = huffman_oracle.codebook(items)
    return sum(int(freqs[s]) * len(c) for s, c in book.items()), max(map(len, book.values()))


def fibonacci(n: int) -> np.ndarray:
    fib = [1, 1]
    while len(fib) < n:
        fib.append(fib[-1] + fib[-2])
    return np.array(fib[:n], dtype=np.int64)


def stream(freqs, seed=0) -> np.ndarray:
    """A shuffled symbol stream with exactly the given frequencies."""
    sym = np.repeat(np.arange(len(freqs), dtype=np.uint8), np.asarray(freqs, dtype=np.int64))
    np.random.default_rng(seed).shuffle(sym)
    return sym


def round_trip(sym, alphabet, chunk_symbols, lengths=None):
    sym = np.asarray(sym, dtype=np.uint8)
    freqs = H.symbol_frequencies(sym, alphabet)
    if lengths is None:
        lengths = H.code_lengths(freqs)
    payload, offsets, bits = H.encode(sym, lengths, chunk_symbols)
    assert payload.dtype == np.uint8 and payload.shape == ((bits + 7) // 8,)
    assert offsets.dtype == np.uint64 and offsets.shape == (-(-sym.size // chunk_symbols),)
    assert bits == H.encoded_size_bits(freqs, lengths)
    par = H.decode(payload, bits, lengths, sym.size, chunk_symbols, offsets, parallel=True)
    ser = H.decode(payload, bits, lengths, sym.size, chunk_symbols, offsets, parallel=False)
    np.testing.assert_array_equal(par, sym)
    np.testing.assert_array_equal(ser, sym)
    return payload, offsets, bits, lengths


def reference_bits(sym, lengths) -> str:
    """The coded bit string, built symbol by symbol from canonical_codes."""
    codes = H.canonical_codes(lengths)
    return "".join(format(int(codes[s]), f"0{int(lengths[s])}b") for s in sym)


def payload_bits_str(payload, nbits) -> str:
    return "".join(format(int(b), "08b") for b in payload)[:nbits]


def assert_format_error(fn, *args, match=None, **kw):
    with pytest.raises(CdnnFormatError, match=match):
        fn(*args, **kw)


# ----------------------------------------------------------------------------
# Canonical codes
# ----------------------------------------------------------------------------


def test_rfc1951_example():
    codes = H.canonical_codes([3, 3, 3, 3, 3, 2, 4, 4])
    lengths = [3, 3, 3, 3, 3, 2, 4, 4]
    assert [format(int(c), f"0{n}b") for c, n in zip(codes, lengths)] == [
        "010", "011", "100", "101", "110", "00", "1110", "1111",
    ]
    assert codes.dtype == np.uint32


def test_canonical_codes_zero_lengths_and_incomplete():
    codes = H.canonical_codes([0, 2, 0, 1, 3])
    # (1, sym 3) -> 0; (2, sym 1) -> 10; (3, sym 4) -> 110
    assert codes.tolist() == [0, 0b10, 0, 0b0, 0b110]


def prefix_free(lengths, codes) -> bool:
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths) if n > 0]
    return not any(a != b and b.startswith(a) for a in words for b in words) and len(
        set(words)
    ) == len(words)


@SETTINGS
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=40))
def test_canonical_codes_prefix_free(freqs):
    lengths = H.code_lengths(freqs)
    codes = H.canonical_codes(lengths)
    assert prefix_free(lengths, codes)
    for c, n in zip(codes, lengths):
        assert int(c) < (1 << int(n)) or n == 0


def test_canonical_order_is_length_then_symbol():
    lengths = np.array([4, 2, 4, 3, 2, 0, 4, 4], dtype=np.uint8)
    codes = H.canonical_codes(lengths)
    used = [s for s in range(8) if lengths[s]]
    by_code = sorted(used, key=lambda s: int(codes[s]) << (16 - int(lengths[s])))
    assert by_code == sorted(used, key=lambda s: (int(lengths[s]), s))


# ----------------------------------------------------------------------------
# Code lengths
# ----------------------------------------------------------------------------


def test_code_lengths_small_cases():
    assert H.code_lengths([10, 1, 1, 2, 3, 0, 5, 8]).tolist() == [2, 5, 5, 4, 3, 0, 2, 2]
    assert H.code_lengths([0, 7, 0]).tolist() == [0, 1, 0]
    assert H.code_lengths([0, 0]).tolist() == [0, 0]
    assert H.code_lengths([9]).tolist() == [1]
    assert H.code_lengths([1] * 256).tolist() == [8] * 256
    assert H.code_lengths([1] * 256).dtype == np.uint8


def test_ties_broken_by_symbol_index():
    assert H.code_lengths([5, 5, 5]).tolist() == [1, 2, 2]
    assert H.code_lengths([3, 3, 3, 3, 3]).tolist() == [2, 2, 2, 3, 3]
    assert H.code_lengths([0, 4, 0, 4, 4]).tolist() == [0, 1, 0, 2, 2]


def test_code_lengths_golden():
    freqs = [int(x) for x in (np.arange(40) * 7919 % 13)]  # every frequency 3 or 4 times
    expected = [
        0, 7, 6, 5, 5, 5, 4, 7, 6, 6, 5, 5, 4, 0, 7, 6, 5, 5, 5, 4,
        7, 6, 6, 5, 5, 4, 0, 7, 6, 5, 5, 5, 4, 7, 6, 6, 5, 5, 5, 0,
    ]
    for _ in range(3):
        assert H.code_lengths(freqs).tolist() == expected
        assert H.code_lengths(np.array(freqs, dtype=np.uint16)).tolist() == expected
    # Frequency 11 occurs at symbols 12, 25, 38: the two lower ones get the shorter code.
    assert [expected[s] for s in (12, 25, 38)] == [4, 4, 5]
    assert H.encoded_size_bits(freqs, expected) == oracle_total(freqs)[0] == 1166


@SETTINGS
@given(st.lists(st.integers(0, 50), min_size=1, max_size=60))
def test_code_lengths_monotone_and_deterministic(freqs):
    lengths = H.code_lengths(freqs)
    assert lengths.tolist() == H.code_lengths(freqs).tolist()
    for a in range(len(freqs)):
        assert (lengths[a] == 0) == (freqs[a] == 0)
        for b in range(a + 1, len(freqs)):
            if freqs[a] and freqs[b] and freqs[a] >= freqs[b]:
                assert lengths[a] <= lengths[b]


@SETTINGS
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=256).filter(lambda f: any(f))
)
def test_code_lengths_optimal_vs_huffman(freqs):
    lengths = H.code_lengths(freqs)
    H.validate_code_lengths(lengths)
    total, longest = oracle_total(freqs)
    got = H.encoded_size_bits(freqs, lengths)
    if longest <= HUFFMAN_MAX_CODE_LENGTH:
        assert got == total
    else:
        assert got >= total
        if sum(freqs) >= 10_000:
            assert got <= total * 1.01


@pytest.mark.parametrize("n", [20, 22, 25, 30])
def test_length_limit_binds_fibonacci(n):
    freqs = fibonacci(n)
    assert freqs.sum() >= 10_000
    total, longest = oracle_total(freqs)
    assert longest > HUFFMAN_MAX_CODE_LENGTH
    lengths = H.code_lengths(freqs)
    assert lengths.max() == HUFFMAN_MAX_CODE_LENGTH
    got = H.encoded_size_bits(freqs, lengths)
    assert total <= got <= total * 1.01


def test_fibonacci_stream_round_trip():
    freqs = fibonacci(22)  # 46367 symbols, unrestricted code 21 bits deep
    sym = stream(freqs, seed=3)
    _, _, bits, lengths = round_trip(sym, 22, 4096)
    assert lengths.max() == 16
    assert bits <= oracle_total(freqs)[0] * 1.01


def brute_force_optimal(freqs, max_length) -> int:
    used = [f for f in freqs if f > 0]
    best = None
    for combo in itertools.product(range(1, max_length + 1), repeat=len(used)):
        if sum(2.0 ** -n for n in combo) <= 1.0:
            cost = sum(f * n for f, n in zip(used, combo))
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize(
    "freqs,max_length",
    [
        ([1, 1, 2, 4, 8, 16], 3),
        ([1, 2, 3, 5, 8, 13], 4),
        ([7, 1, 1, 1, 1, 30], 3),
        ([1, 1, 1, 1], 2),
        ([100, 1, 1, 1, 1, 1, 1], 3),
        ([2, 3, 5, 7, 11], 3),
    ],
)
def test_package_merge_matches_brute_force(freqs, max_length):
    lengths = H.code_lengths(freqs, max_length=max_length)
    assert lengths.max() <= max_length
    H.validate_code_lengths(lengths)
    assert H.encoded_size_bits(freqs, lengths) == brute_force_optimal(freqs, max_length)


def test_code_lengths_bad_inputs():
    assert_format_error(H.code_lengths, [], match="alphabet size")
    assert_format_error(H.code_lengths, [1] * 257, match="alphabet size")
    assert_format_error(H.code_lengths, [1, -1], match="< 0")
    assert_format_error(H.code_lengths, [1.5, 2.0], match="integer")
    assert_format_error(H.code_lengths, [[1, 2]], match="one-dimensional")
    assert_format_error(H.code_lengths, [1, 2], max_length=17, match="max_length")
    assert_format_error(H.code_lengths, [1, 2], max_length=0, match="max_length")
    assert_format_error(H.code_lengths, [1] * 5, max_length=2, match="cannot get codes")


# ----------------------------------------------------------------------------
# Length validation
# ----------------------------------------------------------------------------


def test_validate_code_lengths():
    H.validate_code_lengths([1])
    H.validate_code_lengths([0])
    H.validate_code_lengths([16] * 256)
    H.validate_code_lengths([1, 1])
    H.validate_code_lengths([1, 2, 0, 3])
    assert_format_error(H.validate_code_lengths, [1, 1, 1], match="Kraft sum .* exceeds 1")
    assert_format_error(H.validate_code_lengths, [1, 2, 2, 16], match="Kraft sum")
    assert_format_error(H.validate_code_lengths, [1, 17], match="length 17 > 16")
    assert_format_error(H.validate_code_lengths, [1, -1], match="< 0")
    assert_format_error(H.validate_code_lengths, [], match="alphabet size")
    assert_format_error(H.validate_code_lengths, [1] * 257, match="alphabet size")
    assert_format_error(H.validate_code_lengths, [1.0, 1.0], match="integer")
    assert_format_error(H.canonical_codes, [1, 1, 1], match="Kraft")


# ----------------------------------------------------------------------------
# Encode / decode round trips
# ----------------------------------------------------------------------------


def test_bit_layout_msb_first():
    lengths = np.array([3, 3, 3, 3, 3, 2, 4, 4], dtype=np.uint8)
    sym = np.array([5, 6, 0, 7, 1, 5, 4], dtype=np.uint8)
    payload, offsets, bits = H.encode(sym, lengths, 3)
    ref = reference_bits(sym, lengths)  # 00 1110 010 | 1111 011 00 | 110
    assert ref == "001110010" + "111101100" + "110"
    assert bits == 21
    assert payload_bits_str(payload, bits) == ref
    assert payload.tolist() == [0b00111001, 0b01111011, 0b00110000]
    assert offsets.tolist() == [0, 9, 18]
    np.testing.assert_array_equal(H.decode(payload, bits, lengths, 7, 3, offsets), sym)


def test_padding_is_zero_and_offsets_unpadded():
    lengths = np.array([1, 2, 2], dtype=np.uint8)
    sym = np.array([1, 2, 0, 0, 1, 2], dtype=np.uint8)  # 10 11 | 0 0 | 10 11 -> 10 bits
    payload, offsets, bits = H.encode(sym, lengths, 2)
    assert bits == 10
    assert offsets.tolist() == [0, 4, 6]
    assert payload.tolist() == [0b10110010, 0b11000000]


def test_empty_stream():
    payload, offsets, bits = H.encode(np.zeros(0, np.uint8), [1, 1], 7)
    assert bits == 0 and payload.size == 0 and offsets.size == 0
    out = H.decode(payload, 0, [1, 1], 0, 7, offsets)
    assert out.dtype == np.uint8 and out.size == 0
    out = H.decode(b"", 0, [0, 0], 0, 7, np.zeros(0, np.uint64))
    assert out.size == 0


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_one_symbol_stream(chunk):
    sym = np.full(1000, 3, dtype=np.uint8)
    payload, _, bits, lengths = round_trip(sym, 5, chunk)
    assert lengths.tolist() == [0, 0, 0, 1, 0]
    assert bits == 1000 and not payload.any()
    round_trip(np.array([0], np.uint8), 1, chunk)


@pytest.mark.parametrize("chunk", [1, 7, 65536])
@pytest.mark.parametrize("alphabet", [1, 2, 3, 17, 32, 255, 256])
def test_round_trip_uniform_and_skewed(alphabet, chunk):
    rng = np.random.default_rng(alphabet * 1000 + chunk)
    n = 2000 if chunk == 1 else 20000
    uniform = rng.integers(0, alphabet, n).astype(np.uint8)
    round_trip(uniform, alphabet, chunk)
    p = 0.5 ** np.minimum(np.arange(alphabet), 40)
    p /= p.sum()
    skewed = rng.choice(alphabet, n, p=p).astype(np.uint8)
    round_trip(skewed, alphabet, chunk)


def test_round_trip_large_stream_default_threshold(monkeypatch):
    monkeypatch.setattr(H, "PARALLEL_MIN_SYMBOLS", 1 << 18)
    rng = np.random.default_rng(2)
    sym = np.clip(rng.normal(16, 4, 300_000).round(), 0, 31).astype(np.uint8)
    payload, offsets, bits, lengths = round_trip(sym, 32, 4096)
    late = offsets.copy()
    late[50] += np.uint64(1)
    decode_both(payload, bits, lengths, sym.size, 4096, late, r"chunk 49 .*before")


def test_round_trip_fixed_lengths_and_all_16_bit_codes():
    rng = np.random.default_rng(5)
    lengths = np.full(256, 16, dtype=np.uint8)
    sym = rng.integers(0, 256, 5000).astype(np.uint8)
    payload, _, bits, _ = round_trip(sym, 256, 7, lengths=lengths)
    assert bits == 16 * 5000
    lengths = np.array([1] + [0] * 254 + [16], dtype=np.uint8)  # incomplete code
    sym = rng.choice(np.array([0, 255], np.uint8), 3001)
    round_trip(sym, 256, 65536, lengths=lengths)


def test_round_trip_matches_reference_bits():
    rng = np.random.default_rng(9)
    sym = rng.choice(6, 300, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]).astype(np.uint8)
    lengths = H.code_lengths(H.symbol_frequencies(sym, 6))
    payload, offsets, bits = H.encode(sym, lengths, 37)
    assert payload_bits_str(payload, bits) == reference_bits(sym, lengths)
    ends = np.cumsum([len(reference_bits(sym[i : i + 37], lengths)) for i in range(0, 300, 37)])
    assert offsets.tolist() == [0] + ends[:-1].tolist()


@SETTINGS
@given(
    alphabet=st.integers(1, 256),
    n=st.integers(0, 3000),
    kind=st.sampled_from(["uniform", "skewed", "one", "geometric"]),
    chunk=st.sampled_from([1, 7, 64, 1000, 65536]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_property(alphabet, n, kind, chunk, seed):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        sym = rng.integers(0, alphabet, n)
    elif kind == "one":
        sym = np.full(n, rng.integers(0, alphabet))
    else:
        base = 0.5 if kind == "geometric" else 0.9
        p = base ** np.minimum(np.arange(alphabet), 60)
        p /= p.sum()
        sym = rng.choice(alphabet, n, p=p)
    round_trip(sym.astype(np.uint8), alphabet, chunk)


def test_decode_into_out_and_bytes_payload():
    rng = np.random.default_rng(1)
    sym = rng.integers(0, 10, 5000).astype(np.uint8)
    lengths = H.code_lengths(H.symbol_frequencies(sym, 10))
    payload, offsets, bits = H.encode(sym, lengths, 333)
    out = np.zeros(5000, np.uint8)
    res = H.decode(payload.tobytes(), bits, lengths, 5000, 333, offsets.astype(np.int64), out=out)
    assert res is out
    np.testing.assert_array_equal(out, sym)
    with pytest.raises(ValueError, match="out must be"):
        H.decode(payload, bits, lengths, 5000, 333, offsets, out=np.zeros(4999, np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        H.decode(payload, bits, lengths, 5000, 333, offsets, out=np.zeros(5000, np.int8))


def test_decode_accepts_trailing_payload_bytes():
    sym = np.array([0, 1, 1, 0], np.uint8)
    payload, offsets, bits = H.encode(sym, [1, 1], 2)
    padded = np.concatenate([payload, np.full(9, 0xFF, np.uint8)])
    np.testing.assert_array_equal(H.decode(padded, bits, [1, 1], 4, 2, offsets), sym)


# ----------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coded():
    rng = np.random.default_rng(11)
    sym = rng.choice(5, 700, p=[0.4, 0.3, 0.1, 0.1, 0.1]).astype(np.uint8)
    lengths = H.code_lengths(H.symbol_frequencies(sym, 5))
    payload, offsets, bits = H.encode(sym, lengths, 100)
    return sym, lengths, payload, offsets, bits


def decode_both(payload, bits, lengths, count, chunk, offsets, match):
    for parallel in (True, False):
        with pytest.raises(CdnnFormatError, match=match):
            H.decode(payload, bits, lengths, count, chunk, offsets, parallel=parallel)


def test_encode_symbol_without_code():
    assert_format_error(H.encode, np.array([0, 1, 2], np.uint8), [1, 1, 0], 2,
                        match="symbol 2 at index 2 .*no Huffman code")
    assert_format_error(H.encode, np.array([0, 5], np.uint8), [1, 1], 2,
                        match="symbol 5 at index 1 .*outside the alphabet")
    assert_format_error(H.encode, np.array([0, 300]), [1, 1], 2, match="0..255")
    assert_format_error(H.encode, np.array([0, 1], np.uint8), [1, 1, 1], 2, match="Kraft")
    assert_format_error(H.encode, np.array([0, 1], np.uint8), [1, 1], 0, match="chunk_symbols")
    assert_format_error(H.encode, np.zeros((2, 2), np.uint8), [1, 1], 2, match="one-dimensional")


def test_encoded_size_bits_checks():
    assert H.encoded_size_bits([3, 0, 1], [1, 0, 1]) == 4
    assert H.encoded_size_bits([2**53, 2**53], [16, 16]) == 2**58
    assert_format_error(H.encoded_size_bits, [1, 1], [1, 0], match="no Huffman code")
    assert_format_error(H.encoded_size_bits, [1, 1, 1], [1, 1], match="3 frequencies")


def test_decode_bad_lengths(coded):
    sym, lengths, payload, offsets, bits = coded
    bad = lengths.copy()
    bad[0] = 17
    decode_both(payload, bits, bad, sym.size, 100, offsets, "length 17 > 16")
    decode_both(payload, bits, [1, 1, 1, 2, 2], sym.size, 100, offsets, "Kraft sum")
    decode_both(payload, bits, [0, 0, 0, 0, 0], sym.size, 100, offsets, "no symbol has")


def test_decode_invalid_code():
    lengths = np.array([2, 2, 2, 0], np.uint8)  # code 11 is unused
    sym = np.array([0, 1, 2, 0, 1, 2], np.uint8)
    payload, offsets, bits = H.encode(sym, lengths, 3)
    payload = payload.copy()
    payload[0] |= 0b00000011  # symbol 3 (bits 6..7) -> 11
    decode_both(payload, bits, lengths, 6, 3, offsets, r"chunk 1 .*invalid code at bit 6")


def test_decode_truncated_payload(coded):
    sym, lengths, payload, offsets, bits = coded
    decode_both(payload[:-1], bits, lengths, sym.size, 100, offsets, "truncated")
    decode_both(payload[:0], bits, lengths, sym.size, 100, offsets, "truncated")
    # Fewer bits declared: the last chunk's codes run past its end.
    decode_both(payload, bits - 1, lengths, sym.size, 100, offsets,
                r"chunk 6 .*runs past the chunk's end bit")


def test_decode_bad_offsets(coded):
    sym, lengths, payload, offsets, bits = coded
    n = sym.size
    dec = offsets.copy()
    dec[3], dec[4] = dec[4], dec[3]
    decode_both(payload, bits, lengths, n, 100, dec, "decrease: chunk 4")
    past = offsets.copy()
    past[5] = bits + 1
    decode_both(payload, bits, lengths, n, 100, past, "chunk 5 starts at bit .* past payload_bits")
    huge = offsets.copy()
    huge[6] = np.uint64(2**64 - 1)
    decode_both(payload, bits, lengths, n, 100, huge, "past payload_bits")
    decode_both(payload, bits, lengths, n, 100, offsets[:-1], "expected 7")
    decode_both(payload, bits, lengths, n, 100, np.append(offsets, offsets[-1]), "expected 7")
    first = offsets.copy()
    first[0] = 1
    decode_both(payload, bits, lengths, n, 100, first, "chunk 0 starts at bit 1")
    decode_both(payload, bits, lengths, n, 100, offsets.astype(np.int64) - 1, "non-negative")
    decode_both(payload, bits, lengths, n, 100, offsets.astype(float), "integer")
    decode_both(payload, bits, lengths, n, 0, offsets, "chunk_symbols")
    decode_both(payload, bits, lengths, -1, 100, offsets, "negative")
    decode_both(payload, bits, lengths, 0, 100, offsets[:0], "payload_bits")


def test_decode_chunk_ends_early_or_late(coded):
    sym, lengths, payload, offsets, bits = coded
    n = sym.size
    late = offsets.copy()
    late[2] += np.uint64(1)  # chunk 1 is one bit longer than its codes
    decode_both(payload, bits, lengths, n, 100, late,
                r"chunk 1 .*symbols end at bit \d+, before the chunk's end bit")
    early = offsets.copy()
    early[2] -= np.uint64(1)  # chunk 1's last code crosses its end
    decode_both(payload, bits, lengths, n, 100, early, r"chunk 1 .*runs past the chunk's end")
    decode_both(payload, bits, lengths, n + 1, 100, offsets, "expected 8")
    # One symbol fewer than coded: the last chunk's symbols end early.
    decode_both(payload, bits, lengths, n - 1, 100, offsets, r"chunk 6 .*before the chunk's end")
    # One symbol more than coded: the last chunk's codes run out of bits.
    p2, o2, b2 = H.encode(sym[:650], lengths, 100)
    decode_both(p2, b2, lengths, 651, 100, o2, r"chunk 6 .*runs past the chunk's end")
    decode_both(payload, bits, lengths, 10**9, 10**6, [0] * 1000, "cannot fit")


def test_decode_never_reads_out_of_bounds():
    # Every offset at the very end of a 1-byte payload; 16-bit codes that cannot fit.
    lengths = np.full(256, 16, np.uint8)
    for nbytes in range(0, 4):
        payload = np.full(nbytes, 0xFF, np.uint8)
        bits = 8 * nbytes
        for count in range(1, bits + 1):
            offsets = np.zeros(count, np.uint64)
            offsets[1:] = bits
            decode_both(payload, bits, lengths, count, 1, offsets, "chunk")


@SETTINGS
@given(
    data=st.binary(min_size=0, max_size=64),
    freqs=st.lists(st.integers(0, 100), min_size=1, max_size=40),
    raw_lengths=st.booleans(),
    count=st.integers(1, 200),
    chunk=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_decode_garbage_raises_cleanly(data, freqs, raw_lengths, count, chunk, seed):
    rng = np.random.default_rng(seed)
    lengths = [min(f, 16) for f in freqs] if raw_lengths else H.code_lengths(freqs)
    payload = np.frombuffer(data, np.uint8)
    bits = int(rng.integers(0, 8 * len(data) + 1))
    count = min(count, max(bits, 1))
    nch = -(-count // chunk)
    offsets = np.sort(rng.integers(0, bits + 1, nch)).astype(np.uint64)
    offsets[0] = 0
    for parallel in (True, False):
        try:
            out = H.decode(payload, bits, lengths, count, chunk, offsets, parallel=parallel)
        except CdnnFormatError:
            continue
        assert out.shape == (count,)
        assert int(out.max()) < len(lengths)


@SETTINGS
@given(
    alphabet=st.integers(2, 40),
    n=st.integers(1, 400),
    chunk=st.sampled_from([1, 3, 16, 1000]),
    flips=st.lists(st.integers(0, 2**31), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_decode_corrupted_stream(alphabet, n, chunk, flips, seed):
    rng = np.random.default_rng(seed)
    p = 0.7 ** np.arange(alphabet)
    sym = rng.choice(alphabet, n, p=p / p.sum()).astype(np.uint8)
    lengths = H.code_lengths(H.symbol_frequencies(sym, alphabet))
    payload, offsets, bits = H.encode(sym, lengths, chunk)
    bad = payload.copy()
    for f in flips:
        bit = f % bits
        bad[bit // 8] ^= np.uint8(1 << (7 - bit % 8))
    results = []
    for parallel in (True, False):
        try:
            results.append(H.decode(bad, bits, lengths, n, chunk, offsets, parallel=parallel))
        except CdnnFormatError as exc:
            results.append(str(exc))
    if isinstance(results[0], str):
        assert results[0] == results[1]  # both name the first bad chunk
    else:
        np.testing.assert_array_equal(results[0], results[1])
