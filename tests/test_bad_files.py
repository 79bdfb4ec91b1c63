"""One hand-made bad file per rule of the spec: each raises the right CdnnError subclass with a
message that says what is wrong and where."""

import copy
import json
import struct
import tracemalloc

import numpy as np
import pytest

from cdnn_runtime import (
    CdnnChecksumError,
    CdnnError,
    CdnnFormatError,
    CdnnLimitError,
    CdnnVersionError,
)
from cdnn_runtime.bitpack import pack
from cdnn_runtime.reader import read
from cdnn_runtime.testing.craft import (
    assemble,
    deflate_header,
    fix_preamble_crc,
    split,
    vector,
    with_preamble,
)

GOOD = vector("tiny_graph")
HUFF = vector("chunked_huffman")
FILL = vector("sparse_fillers")
SPLIT = vector("split_graph")  # format version 3


def load_all(data, **kw):
    f = read(data, **kw)
    for t in f.tensors:
        f.dense(t.name)
    return f


def patch(data, offset, new):
    data = bytearray(data)
    data[offset:offset + len(new)] = new
    return bytes(data)


def edit(data, fn, fix_sections=True):
    header, sections = split(data)
    header = copy.deepcopy(header)
    sections = list(sections)
    fn(header, sections)
    return assemble(header, sections, fix_sections=fix_sections)


def tensor(header, name):
    return next(t for t in header["tensors"] if t["name"] == name)


def retensor(data, tensor_name, /, *part, **fields):
    """The file with fields of a tensor (or of its codebook or stream `part`) set."""
    def fn(header, sections):
        t = tensor(header, tensor_name)
        (t[part[0]] if part else t).update(fields)
    return edit(data, fn)


def node(header, name):
    return next(n for n in header["graph"]["nodes"] if n["name"] == name)


def raw_header(text):
    h, s = split(GOOD)
    return assemble(h, s, header_bytes=text)


CASES = {
    # --- preamble ---------------------------------------------------------------------------
    "empty file": (b"", CdnnFormatError, "not a .cdnn file"),
    "short file": (GOOD[:40], CdnnFormatError, "shorter than the 64-byte preamble"),
    "other magic": (b"\x89PNG\r\n\x1a\n" + GOOD[8:], CdnnFormatError, "not a .cdnn file"),
    "text-mode CRLF damage": (GOOD[:4] + b"\r\r\n" + GOOD[6:], CdnnFormatError, "line endings"),
    "high bit stripped": (b"\x09" + GOOD[1:], CdnnFormatError, "7-bit"),
    "preamble checksum": (patch(GOOD, 20, b"\x01"), CdnnChecksumError, "preamble"),
    "newer version": (with_preamble(GOOD, version=4), CdnnVersionError,
                      r"version 4.*accepts version.*2, 3"),
    "older draft version": (with_preamble(GOOD, version=1), CdnnVersionError,
                            r"version 1.*accepts version.*2, 3"),
    "unknown flag": (with_preamble(GOOD, flags=3), CdnnFormatError, "unknown flag bits 0x2"),
    "reserved set": (fix_preamble_crc(patch(GOOD, 50, b"\x07")), CdnnFormatError,
                     "reserved bytes"),
    # --- deflated header ------------------------------------------------------------------
    "deflate flag on a plain header": (None, CdnnFormatError, "not a valid DEFLATE stream"),
    "deflated header cut short": (None, CdnnFormatError, "DEFLATE stream is truncated"),
    "bytes after the deflated header": (None, CdnnFormatError,
                                        "3 bytes after the end of the DEFLATE stream"),
    "deflated header bomb": (None, CdnnLimitError, "inflates to more than the 16777216-byte"),
    "deflated header not JSON": (None, CdnnFormatError, "invalid JSON"),
    "truncated": (GOOD[:-1], CdnnFormatError, "truncated"),
    "truncated at the header": (GOOD[:100], CdnnFormatError, "truncated"),
    "trailing bytes": (GOOD + b"\0", CdnnFormatError, "trailing bytes"),
    "header offset": (with_preamble(GOOD, header_offset=128), CdnnFormatError,
                      "header offset must be 64"),
    "header over the cap": (with_preamble(GOOD, header_length=2**40, file_length=len(GOOD)),
                            CdnnLimitError, "exceeds the 16777216-byte cap"),
    "header past the end": (with_preamble(GOOD, header_length=len(GOOD)), CdnnFormatError,
                            "runs past the end"),
    "header checksum": (patch(GOOD, 70, b"X"), CdnnChecksumError, "header .*checksum"),
    # --- header JSON ------------------------------------------------------------------------
    "header not UTF-8": (raw_header(b'{"a":"\xff"}'), CdnnFormatError, "not valid UTF-8"),
    "header not JSON": (raw_header(b"{not json"), CdnnFormatError, "invalid JSON"),
    "header is a list": (raw_header(b"[]"), CdnnFormatError, "expected a JSON object"),
    "duplicate keys": (raw_header(b'{"tensors":[],"tensors":[]}'), CdnnFormatError,
                       "duplicate JSON key"),
    "NaN in header": (raw_header(b'{"format_version":NaN}'), CdnnFormatError, "NaN"),
    "deep nesting": (raw_header(b"[" * 5000 + b"]" * 5000), CdnnFormatError, "nested deeper"),
    "moderate nesting": (raw_header(b'{"metadata":' + b"[" * 70 + b"]" * 70 + b"}"),
                         CdnnFormatError, "nested deeper"),
    "unknown top-level key": (edit(GOOD, lambda h, s: h.update(extra=1)), CdnnFormatError,
                              "unknown field 'extra'"),
    "missing tensors": (edit(GOOD, lambda h, s: h.pop("tensors")), CdnnFormatError,
                        "missing field 'tensors'"),
    "format_version differs": (with_preamble(edit(GOOD, lambda h, s: h.update(format_version=3)),
                                             version=2),
                               CdnnFormatError, "header: format_version 3 differs from the "
                                                "preamble's 2"),
    # --- sections ---------------------------------------------------------------------------
    "section misaligned": (edit(GOOD, lambda h, s: h["sections"][1].update(offset=65), False),
                           CdnnFormatError, "section 1: offset 65 is not a multiple of 8"),
    "sections overlap": (edit(GOOD, lambda h, s: h["sections"][1].update(offset=0), False),
                         CdnnFormatError, "section 1: starts at byte"),
    "section past the end": (edit(GOOD, lambda h, s: h["sections"][-1].update(length=10**6),
                                  False), CdnnFormatError, "run past the end"),
    "section checksum": (patch(GOOD, len(GOOD) - 1, b"\x55"), CdnnChecksumError,
                         r"section \d+ \(bytes \d+-\d+\): checksum mismatch"),
    "nonzero padding": (None, CdnnFormatError, "padding before section .*must be zero"),
    "nonzero header padding": (None, CdnnFormatError, "header padding"),
    "unused section": (edit(GOOD, lambda h, s: s.append(b"spare")), CdnnFormatError,
                       "not used by any tensor"),
    "section used twice": (edit(GOOD, lambda h, s: tensor(h, "fc2.weight").update(
        section=tensor(h, "fc1.bias")["section"])), CdnnFormatError, "already used"),
    "section index out of range": (retensor(GOOD, "fc1.bias", section=99), CdnnFormatError,
                                   "section index 99 out of range"),
    # --- tensors ----------------------------------------------------------------------------
    "duplicate tensor name": (retensor(GOOD, "fc2.weight", name="fc1.bias"), CdnnFormatError,
                              "name used twice"),
    "unknown encoding": (retensor(GOOD, "fc1.bias", encoding="zip"), CdnnFormatError,
                         "encoding must be one of"),
    "unknown dtype": (retensor(GOOD, "fc1.bias", dtype="float64"), CdnnFormatError,
                      "dtype must be one of"),
    "negative dim": (retensor(GOOD, "fc1.bias", shape=[-8]), CdnnFormatError, "shape must be"),
    "boolean dim": (retensor(GOOD, "fc1.bias", shape=[True]), CdnnFormatError, "shape must be"),
    "raw length mismatch": (retensor(GOOD, "fc1.bias", shape=[9]), CdnnFormatError,
                            "needs 36 bytes, section 4 holds 32"),
    "absurd shape": (retensor(GOOD, "fc1.bias", shape=[2**40, 2**40]), CdnnFormatError,
                     "more than 2\\^53"),
    "rows differ from shape": (retensor(GOOD, "fc1.weight", rows=4), CdnnFormatError,
                               "not the 2-D view"),
    "nnz above numel": (retensor(GOOD, "fc1.weight", nnz=2**63), CdnnFormatError,
                        "nnz must be an integer"),
    "entries below nnz": (retensor(GOOD, "fc1.weight", entries=0), CdnnFormatError,
                          "entries must be an integer"),
    "gap_bits 9": (retensor(GOOD, "fc1.weight", gap_bits=9), CdnnFormatError,
                   "gap_bits must be an integer in \\[1, 8\\]"),
    "codebook of 0": (retensor(GOOD, "fc1.weight", "codebook", size=0), CdnnFormatError,
                      "size must be an integer in \\[1, 256\\]"),
    "codebook of 257": (retensor(GOOD, "fc1.weight", "codebook", size=257), CdnnFormatError,
                        "size must be an integer in \\[1, 256\\]"),
    "codebook length": (retensor(GOOD, "fc1.weight", "codebook", size=3), CdnnFormatError,
                        "3 float32 centroids need 12 bytes"),
    "codebook NaN": (None, CdnnFormatError, "centroids must be finite"),
    "filler code not zero": (retensor(FILL, "w", filler_code=1), CdnnFormatError,
                             "filler code 1 maps to 0.5"),
    "fillers without filler code": (retensor(FILL, "w", filler_code=None), CdnnFormatError,
                                    "no filler code"),
    "stream count": (retensor(GOOD, "fc1.weight", "row_counts", count=7), CdnnFormatError,
                     "row_counts stream: holds 7 values, expected 8"),
    "stream bits 0": (retensor(FILL, "w", "gaps", bits=0), CdnnFormatError,
                      "bits must be an integer in \\[1, 32\\]"),
    "unknown coding": (retensor(FILL, "w", "gaps", coding="lzma"), CdnnFormatError,
                       "coding must be one of"),
    "stream section length": (retensor(FILL, "w", "gaps", bits=3), CdnnFormatError,
                              "descriptor needs 5 bytes"),
    "huffman alphabet too large": (retensor(HUFF, "w", "gaps", alphabet_size=200),
                                   CdnnFormatError, "more than the 4 possible values"),
    "huffman chunk size 0": (retensor(HUFF, "w", "codes", chunk_symbols=0), CdnnFormatError,
                             "chunk_symbols must be"),
    "missing stream field": (edit(HUFF, lambda h, s: tensor(h, "w")["codes"].pop(
        "payload_bits")), CdnnFormatError, "missing field 'payload_bits'"),
    # --- decoding ---------------------------------------------------------------------------
    "column past the end": (None, CdnnFormatError, "column index at or past"),
    "code past the codebook": (None, CdnnFormatError, "not below the codebook size"),
    "row counts disagree": (None, CdnnFormatError, "row 0 declares 31 entries, more than 30"),
    "nnz mismatch": (retensor(FILL, "w", nnz=4), CdnnFormatError,
                     "5 nonzero entries decoded, header declares 4"),
    "kraft sum above one": (None, CdnnFormatError, "Kraft"),
    "code length 17": (None, CdnnFormatError, "17"),
    "chunk offsets decreasing": (None, CdnnFormatError, "chunk"),
    "payload padding bits": (None, CdnnFormatError, "padding bits"),
    # --- graph ------------------------------------------------------------------------------
    "unknown op": (edit(GOOD, lambda h, s: node(h, "relu").update(op="hardswish")),
                   CdnnFormatError, "unknown op 'hardswish'"),
    "cycle": (edit(GOOD, lambda h, s: node(h, "fc1").update(inputs=["h.relu"])),
              CdnnFormatError, "input 'h.relu' is not a graph input or the output of an earlier"),
    "value defined twice": (edit(GOOD, lambda h, s: node(h, "relu").update(outputs=["h"])),
                            CdnnFormatError, "value 'h' already defined"),
    "dangling tensor": (edit(GOOD, lambda h, s: node(h, "fc2")["params"].update(
        weight="nope")), CdnnFormatError, "names no tensor"),
    "missing weight": (edit(GOOD, lambda h, s: node(h, "fc2").pop("params")), CdnnFormatError,
                       "needs param 'weight'"),
    "missing attribute": (edit(GOOD, lambda h, s: node(h, "softmax").pop("attrs")),
                          CdnnFormatError, "needs attribute 'dim'"),
    "unknown attribute": (edit(GOOD, lambda h, s: node(h, "relu").update(
        attrs={"inplace": True})), CdnnFormatError, "unknown attribute 'inplace'"),
    "attribute type": (edit(GOOD, lambda h, s: node(h, "softmax").update(
        attrs={"dim": "1"})), CdnnFormatError, "expected an integer"),
    "weight rank": (edit(GOOD, lambda h, s: node(h, "fc2")["params"].update(
        weight="fc1.bias")), CdnnFormatError, "linear weight must have rank 2"),
    "bias shape": (edit(GOOD, lambda h, s: node(h, "fc2")["params"].update(bias="fc1.bias")),
                   CdnnFormatError, "bias shape \\[8\\] does not match 3 outputs"),
    "output never produced": (edit(GOOD, lambda h, s: h["graph"]["outputs"].append(
        {"name": "ghost"})), CdnnFormatError, "value 'ghost' is never produced"),
    "no outputs": (edit(GOOD, lambda h, s: h["graph"].update(outputs=[])), CdnnFormatError,
                   "outputs must be a list of 1"),
    "input shape": (edit(GOOD, lambda h, s: h["graph"]["inputs"][0].update(
        shape=[None, None, 2, 2])), CdnnFormatError, "only dim 0 may be null"),
    "input dtype": (edit(GOOD, lambda h, s: h["graph"]["inputs"][0].update(dtype="int8")),
                    CdnnFormatError, "dtype must be one of"),
    "node with two outputs": (edit(GOOD, lambda h, s: node(h, "relu").update(
        outputs=["a", "b"])), CdnnFormatError, "exactly one output"),
    "pool padding": (None, CdnnFormatError, "exceeds half the kernel"),
    "integer too long for JSON": (raw_header(b'{"format_version":' + b"9" * 5000 + b"}"),
                                  CdnnFormatError, "unreadable JSON value"),
    "format_version true": (edit(GOOD, lambda h, s: h.update(format_version=True)),
                            CdnnFormatError, "differs from the preamble"),
    "op is a list": (edit(GOOD, lambda h, s: node(h, "relu").update(op=["relu"])),
                     CdnnFormatError, "unknown op"),
    "float attribute overflows": (edit(GOOD, lambda h, s: node(h, "relu").update(
        op="leaky_relu", attrs={"negative_slope": 10**400})), CdnnFormatError,
        "expected a finite number"),
    "conv padding beyond the kernel": (None, CdnnFormatError, "exceeds the dilated kernel"),
    "metadata not an object": (edit(GOOD, lambda h, s: h.update(metadata=[1])),
                               CdnnFormatError, "metadata: expected a JSON object"),
    # --- version 3: ops of a later version, several outputs ---------------------------------
    "version 3 op in a version 2 file": (edit(SPLIT, lambda h, s: h.update(format_version=2)),
                                         CdnnFormatError, r"graph node 1 \('split'\): op "
                                         r"'split' needs format version 3; the file is version 2"),
    "split outputs differ from its sizes": (edit(SPLIT, lambda h, s: node(h, "split").update(
        outputs=["x0", "x1"])), CdnnFormatError, "split into 3 sizes names 2 outputs"),
    "split along the batch": (edit(SPLIT, lambda h, s: node(h, "split")["attrs"].update(dim=0)),
                              CdnnFormatError, "split along dim 0, the batch dimension"),
    "split size zero": (edit(SPLIT, lambda h, s: node(h, "split")["attrs"].update(
        sizes=[1, 0, 5])), CdnnFormatError, "sizes.*expected a list of 1 to 64 integers >= 1"),
    "split output defined twice": (edit(SPLIT, lambda h, s: node(h, "split").update(
        outputs=["x0", "x1", "x0"])), CdnnFormatError, "value 'x0' already defined"),
    "too many outputs": (edit(SPLIT, lambda h, s: node(h, "split").update(
        outputs=[f"o{i}" for i in range(65)])), CdnnFormatError, "op 'split' has 1 to 64 outputs"),
}


def _fill_computed_cases():
    h, s = split(GOOD)
    plain = assemble(h, s)
    hl = struct.unpack_from("<Q", plain, 24)[0]
    head = plain[64:64 + hl]

    def with_header(stored):
        return assemble(h, s, header_bytes=stored, flags=1)
    packed = deflate_header(head)
    for name, data in {"deflate flag on a plain header": with_header(head),
                       "deflated header cut short": with_header(packed[:-5]),
                       "bytes after the deflated header": with_header(packed + b"abc"),
                       "deflated header bomb": with_header(
                           deflate_header(head + b" " * (16 * 1024 * 1024))),
                       "deflated header not JSON": with_header(deflate_header(b"{nope"))
                       }.items():
        CASES[name] = (data,) + CASES[name][1:]
    # a byte of padding between two sections
    start = (64 + hl + 7) // 8 * 8
    gap = next(e for e, nxt in zip(h["sections"], h["sections"][1:])
               if e["offset"] + e["length"] < nxt["offset"])
    CASES["nonzero padding"] = (patch(plain, start + gap["offset"] + gap["length"], b"\x01"),) \
        + CASES["nonzero padding"][1:]

    head = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    data = bytearray(assemble(h, s))
    data[64 + len(head)] = 1  # the byte right after the header is padding
    CASES["nonzero header padding"] = (bytes(data),) + CASES["nonzero header padding"][1:]

    def nan_codebook(h, s):
        idx = tensor(h, "fc1.weight")["codebook"]["section"]
        s[idx] = np.frombuffer(s[idx], "<f4").copy().astype("<f4")
        s[idx][0] = np.nan
        s[idx] = s[idx].tobytes()
    CASES["codebook NaN"] = (edit(GOOD, nan_codebook),) + CASES["codebook NaN"][1:]

    def big_gap(h, s):  # row 0 packed gaps: make the last one jump past column 29
        t = tensor(h, "w")
        gaps = [0, 3, 3, 0, 3, 3, 3, 3, 3, 3, 0]
        gaps[8] = 3
        t["gap_bits"] = 5
        t["gaps"]["bits"] = 5
        gaps[8] = 31
        s[t["gaps"]["section"]] = pack(np.array(gaps, np.uint32), 5).tobytes()
    CASES["column past the end"] = (edit(FILL, big_gap),) + CASES["column past the end"][1:]

    def big_code(h, s):
        t = tensor(h, "w")
        t["codes"]["bits"] = 3
        codes = [1, 0, 0, 2, 0, 0, 0, 0, 1, 2, 7]
        s[t["codes"]["section"]] = pack(np.array(codes, np.uint32), 3).tobytes()
    CASES["code past the codebook"] = (edit(FILL, big_code),) + \
        CASES["code past the codebook"][1:]

    def row_counts(h, s):
        t = tensor(h, "w")
        t["row_counts"]["bits"] = 5
        s[t["row_counts"]["section"]] = pack(np.array([31, 0, 0], np.uint32), 5).tobytes()
    CASES["row counts disagree"] = (edit(FILL, row_counts),) + CASES["row counts disagree"][1:]

    def lengths(values):
        def fn(h, s):
            t = tensor(h, "w")
            sec = bytearray(s[t["codes"]["section"]])
            sec[:len(values)] = bytes(values)
            s[t["codes"]["section"]] = bytes(sec)
        return fn
    CASES["kraft sum above one"] = (edit(HUFF, lengths([1, 1, 1, 1, 1])),) + \
        CASES["kraft sum above one"][1:]
    CASES["code length 17"] = (edit(HUFF, lengths([17, 1, 2, 3, 3])),) + \
        CASES["code length 17"][1:]

    def offsets(h, s):
        t = tensor(h, "w")
        sec = bytearray(s[t["codes"]["section"]])
        head = (t["codes"]["alphabet_size"] + 7) // 8 * 8
        sec[head + 8:head + 16] = struct.pack("<Q", 10**6)
        s[t["codes"]["section"]] = bytes(sec)
    CASES["chunk offsets decreasing"] = (edit(HUFF, offsets),) + \
        CASES["chunk offsets decreasing"][1:]

    def padding_bits(h, s):
        t = tensor(h, "w")
        bits = t["codes"]["payload_bits"]
        assert bits % 8, "the vector's payload must end inside a byte"
        sec = bytearray(s[t["codes"]["section"]])
        sec[-1] |= 1
        s[t["codes"]["section"]] = bytes(sec)
    CASES["payload padding bits"] = (edit(HUFF, padding_bits),) + \
        CASES["payload padding bits"][1:]

    def pool(h, s):
        h["graph"]["nodes"].insert(0, {"name": "pool", "op": "max_pool2d", "inputs": ["x"],
                                       "outputs": ["p"], "attrs": {"kernel_size": [2, 2],
                                                                   "padding": [2, 0]}})
    CASES["pool padding"] = (edit(GOOD, pool),) + CASES["pool padding"][1:]

    conv = edit(vector("conv_weight"), lambda h, s: h.update(graph={
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2, 8, 8]}],
        "nodes": [{"name": "c", "op": "conv2d", "inputs": ["x"], "outputs": ["y"],
                   "params": {"weight": "conv.weight", "bias": "conv.bias"},
                   "attrs": {"padding": [3, 1]}}],
        "outputs": [{"name": "y"}]}))
    CASES["conv padding beyond the kernel"] = (conv,) + \
        CASES["conv padding beyond the kernel"][1:]


_fill_computed_cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file(case):
    data, error, message = CASES[case]
    with pytest.raises(error, match=message):
        load_all(data)


def test_string_defaults_are_values_not_references():
    """gelu's default `approximate` is the string "none", not a reference to an attribute."""
    data = edit(GOOD, lambda h, s: node(h, "relu").update(op="gelu"))
    f = read(data)
    assert next(n for n in f.graph["nodes"] if n["name"] == "relu")["attrs"] == {
        "approximate": "none"}


def test_good_files_pass_the_same_loader():
    for data in (GOOD, HUFF, FILL):
        load_all(data)


def _peak_bytes(fn):
    """The most bytes held at once while fn runs, above what was held before: tracemalloc
    counts Python's allocations and numpy's array buffers."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()


def test_decompression_bomb_fails_fast():
    """A 1 KB file that claims 10**12 entries is refused before anything large is allocated:
    the row counts' payload is too short for the rows declared, which the reader sees from
    the header alone."""
    def bomb(h, s):
        t = tensor(h, "w")
        t.update(shape=[10**6, 10**6], rows=10**6, cols=10**6, nnz=10**12, entries=10**12)
        for key in ("row_counts", "gaps", "codes"):
            t[key]["count"] = 10**6 if key == "row_counts" else 10**12
    data = edit(HUFF, bomb)
    assert len(data) < 2048

    def refused():
        with pytest.raises(CdnnFormatError, match=r"^tensor 'w' row_counts stream: declares "
                           r"1000000 symbols in 22 payload bits \(every symbol takes at least "
                           r"one bit\)$"):
            read(data)
    assert _peak_bytes(refused) < 1 << 20  # 10**6 row counts alone would be 8 MB
    assert _peak_bytes(lambda: np.ones(1 << 21, np.uint8)) >= 1 << 21  # numpy's buffers count


def test_decoded_size_limit():
    with pytest.raises(CdnnLimitError, match="limit of 100 bytes"):
        read(GOOD, max_decoded_bytes=100)
    read(GOOD, max_decoded_bytes=10**6)


def test_every_single_byte_change_is_caught():
    """Any one changed byte, anywhere in the file, is refused (checksums and zero padding)."""
    for data in (GOOD, HUFF):
        for i in range(len(data)):
            bad = bytearray(data)
            bad[i] ^= 0x5A
            with pytest.raises(CdnnError):
                load_all(bytes(bad))


def test_every_truncation_is_caught():
    for data in (GOOD, HUFF):
        for n in range(len(data)):
            with pytest.raises(CdnnFormatError):
                read(data[:n])


def test_read_from_path_and_directory(tmp_path):
    p = tmp_path / "m.cdnn"
    p.write_bytes(GOOD)
    assert read(p).tensor_names == read(GOOD).tensor_names
    with pytest.raises(CdnnFormatError, match="is a directory"):
        read(tmp_path)
