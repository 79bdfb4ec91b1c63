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
    "unknown op": (edit(GOOD, lambda h, s: node(h, "relu").update(op="hardshrink")),
                   CdnnFormatError, "unknown op 'hardshrink'"),
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
        "header: JSON number 1000.* overflows a binary64"),  # refused anywhere in the header
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


# ---- shape ops (version 3): the split node of SPLIT made into another op
def _shape_op(op, attrs, n_outputs=1, version=3):
    def fn(h, s):
        node(h, "split").update(op=op, attrs=attrs, outputs=[f"x{k}" for k in range(n_outputs)])
        h.update(format_version=version)
    return edit(SPLIT, fn)


_AT = r"graph node 1 \('split'\)"
CASES.update({
    "shape op in a version 2 file": (_shape_op("slice", {"dim": 1, "end": 2}, version=2),
                                     CdnnFormatError, f"{_AT}: op 'slice' needs format "
                                                      "version 3; the file is version 2"),
    "unsqueeze before the batch": (_shape_op("unsqueeze", {"dim": 0}), CdnnFormatError,
                                   f"{_AT}: unsqueeze along dim 0, the batch dimension"),
    "slice of the batch": (_shape_op("slice", {"dim": 0, "end": 1}), CdnnFormatError,
                           f"{_AT}: slice along dim 0, the batch dimension"),
    "slice without an end": (_shape_op("slice", {"dim": 1}), CdnnFormatError,
                             f"{_AT}: op 'slice' needs attribute 'end'"),
    "slice step 0": (_shape_op("slice", {"dim": 1, "end": 2, "step": 0}), CdnnFormatError,
                     f"{_AT} attribute 'step': expected a positive integer, got 0"),
    "select of the batch": (_shape_op("select", {"dim": 0, "index": 0}), CdnnFormatError,
                            f"{_AT}: select along dim 0, the batch dimension"),
    "unbind of the batch": (_shape_op("unbind", {"dim": 0}, n_outputs=2), CdnnFormatError,
                            f"{_AT}: unbind along dim 0, the batch dimension"),
    "squeeze of no dims": (_shape_op("squeeze", {"dims": []}), CdnnFormatError,
                           rf"{_AT}: squeeze dims \[\] must be one or more distinct dims"),
    "squeeze of the batch": (_shape_op("squeeze", {"dims": [1, 0]}), CdnnFormatError,
                             r"squeeze dims \[1, 0\] must be .*not 0 \(the batch dimension\)"),
    "squeeze of a dim twice": (_shape_op("squeeze", {"dims": [1, 1]}), CdnnFormatError,
                               r"squeeze dims \[1, 1\] must be one or more distinct dims"),
    "expand to size 0": (_shape_op("expand", {"shape": [0]}), CdnnFormatError,
                         rf"{_AT}: expand shape \[0\] has a size below 1 other than -1"),
    "pad of no dims": (_shape_op("pad", {"pads": []}), CdnnFormatError,
                       rf"{_AT}: pads \[\] must be one or more \(before, after\) pairs"),
    "pad odd": (_shape_op("pad", {"pads": [1, 1, 1]}), CdnnFormatError,
                r"pads \[1, 1, 1\] must be one or more \(before, after\) pairs of ints >= 0"),
    "pad negative": (_shape_op("pad", {"pads": [1, -1]}), CdnnFormatError,
                     r"pads \[1, -1\] must be one or more \(before, after\) pairs"),
    "pad of five dims": (_shape_op("pad", {"pads": [1] * 10}), CdnnFormatError,
                         f"{_AT} attribute 'pads': expected a list of at most 8 integers"),
    "pad mode circular": (_shape_op("pad", {"pads": [1, 1], "mode": "circular"}),
                          CdnnFormatError, f"{_AT} attribute 'mode': expected one of"),
    "pixel_shuffle factor 0": (_shape_op("pixel_shuffle", {"upscale_factor": 0}),
                               CdnnFormatError, "attribute 'upscale_factor': expected a "
                                                "positive integer"),
    "channel_shuffle without groups": (_shape_op("channel_shuffle", {}), CdnnFormatError,
                                       "op 'channel_shuffle' needs attribute 'groups'"),
})


# ---- convolutions (version 3): conv_weight's [4, 2, 3, 3] weight and [4] bias in one layer
def _conv_layer(op, attrs, weight_shape=(4, 2, 3, 3), input_shape=(4, 5, 5)):
    def fn(h, s):
        tensor(h, "conv.weight").update(shape=list(weight_shape))  # same [4, 18] 2-D view
        h.update(format_version=3, graph={
            "inputs": [{"name": "x", "dtype": "float32", "shape": [None, *input_shape]}],
            "nodes": [{"name": "c", "op": op, "inputs": ["x"], "outputs": ["y"],
                       "params": {"weight": "conv.weight", "bias": "conv.bias"},
                       "attrs": attrs}],
            "outputs": [{"name": "y"}]})
    return edit(vector("conv_weight"), fn)


def _conv1d(attrs, weight_shape=(4, 2, 9)):
    return _conv_layer("conv1d", {"groups": 2, **attrs}, weight_shape, (4, 16))


_C = r"graph node 0 \('c'\)"
CASES.update({
    "conv1d weight of rank 4": (_conv1d({}, (4, 2, 3, 3)), CdnnFormatError,
                                rf"{_C} param 'weight' \('conv.weight'\): conv1d weight must "
                                r"have rank 3, has shape \[4, 2, 3, 3\]"),
    "conv1d stride above 2**20": (_conv1d({"stride": 2**20 + 1}), CdnnFormatError,
                                  rf"{_C}: stride 1048577 or dilation 1 above 1048576"),
    "conv1d padding beyond the kernel": (_conv1d({"padding": [0, 9]}), CdnnFormatError,
                                         rf"{_C}: padding \[0, 9\] exceeds the dilated "
                                         r"kernel's reach 8"),
    "conv1d padding an int": (_conv1d({"padding": 1}), CdnnFormatError,
                              r"attribute 'padding': expected two integers >= 0, got 1"),
    "conv1d groups": (_conv1d({"groups": 3}), CdnnFormatError,
                      rf"{_C}: 4 output channels do not split into 3 groups"),
    "conv_transpose2d groups": (_conv_layer("conv_transpose2d", {"groups": 3}),
                                CdnnFormatError, rf"{_C}: 4 input channels do not split into "
                                                 "3 groups"),
    "conv_transpose2d bias": (_conv_layer("conv_transpose2d", {}), CdnnFormatError,
                              rf"{_C}: bias shape \[4\] does not match 2 outputs"),
    "conv_transpose2d output_padding": (_conv_layer("conv_transpose2d", {
        "groups": 2, "stride": [2, 2], "output_padding": [2, 0]}), CdnnFormatError,
        rf"{_C}: output_padding \[2, 0\] is not below the stride \[2, 2\] or the dilation "
        r"\[1, 1\]"),
    "conv_transpose2d in a version 2 file": (edit(_conv_layer("conv_transpose2d", {
        "groups": 2}), lambda h, s: h.update(format_version=2)), CdnnFormatError,
        rf"{_C}: op 'conv_transpose2d' needs format version 3; the file is version 2"),
})

# ---- token inputs and embeddings (version 3): conv_weight's sparse [4, 18] weight as a table
def _embedding(weight_shape=(4, 18), dtype="int64", version=3, ids_shape=(5,)):
    def fn(h, s):
        tensor(h, "conv.weight").update(shape=list(weight_shape))
        h.update(format_version=version, graph={
            "inputs": [{"name": "ids", "dtype": dtype, "shape": [None, *ids_shape]}],
            "nodes": [{"name": "wte", "op": "embedding", "inputs": ["ids"], "outputs": ["y"],
                       "params": {"weight": "conv.weight"}}],
            "outputs": [{"name": "y"}]})
    return edit(vector("conv_weight"), fn)


CASES.update({
    "int64 input in a version 2 file": (_embedding(version=2), CdnnFormatError,
                                        r"graph input 0 \('ids'\): dtype int64 needs format "
                                        "version 3; the file is version 2"),
    "int32 input in a version 2 file": (_embedding(dtype="int32", version=2), CdnnFormatError,
                                        r"graph input 0 \('ids'\): dtype int32 needs format "
                                        "version 3; the file is version 2"),
    "input dtype a list": (_embedding(dtype=["int64"]), CdnnFormatError,
                           r"graph input 0 \('ids'\): dtype must be one of float32, int64, "
                           "int32"),
    "embedding table of rank 4": (_embedding((4, 2, 3, 3)), CdnnFormatError,
                                  r"graph node 0 \('wte'\) param 'weight' \('conv.weight'\): "
                                  r"embedding weight must have rank 2, has shape \[4, 2, 3, 3\]"),
    "embedding in a version 2 file": (edit(_embedding(dtype="float32"),
                                           lambda h, s: h.update(format_version=2)),
                                      CdnnFormatError, r"graph node 0 \('wte'\): op "
                                      "'embedding' needs format version 3; the file is "
                                      "version 2"),
    "embedding without a table": (edit(_embedding(), lambda h, s: node(h, "wte").update(
        params={})), CdnnFormatError, r"graph node 0 \('wte'\): op 'embedding' needs param "
                                      "'weight'"),
})


# ---- free sequence dims (version 3): the embedding file's ids [N, 5] with a free dim 1
def _free(free, version=3, dtype="int64"):
    def fn(h, s):
        h["graph"]["inputs"][0]["free"] = free
        h.update(format_version=version)
    return edit(_embedding(dtype=dtype), fn)


_FI = r"graph input 0 \('ids'\)"
CASES.update({
    "free dims in a version 2 file": (_free([{"dim": 1, "name": "seq", "max": 9}], 2, "float32"),
                                      CdnnFormatError, f"{_FI}: free dims need format version "
                                                       "3; the file is version 2"),
    "free batch dim": (_free([{"dim": 0, "name": "seq", "max": 9}]), CdnnFormatError,
                       rf"{_FI} free dim 0: dim 0 must be a dim of the input from 1 \(dim 0 is "
                       r"the batch\) to 1, named once"),
    "free dim named twice": (_free([{"dim": 1, "name": "a", "max": 9}] * 2), CdnnFormatError,
                             f"{_FI}: free must be a list of 1 to 1 dims"),
    "free max below the traced size": (_free([{"dim": 1, "name": "seq", "max": 4}]),
                                       CdnnFormatError, rf"{_FI} free dim 0: max 4 must be an "
                                                        "integer from the traced size 5 to 2"),
    "free dim without a max": (_free([{"dim": 1, "name": "seq"}]), CdnnFormatError,
                               f"{_FI} free dim 0: must be an object with exactly dim, name and "
                               "max"),
    "free dims an object": (_free({"1": 9}), CdnnFormatError,
                            f"{_FI}: free must be a list of 1 to 1 dims"),
})


# ---- normalisation, resizing, pooling (version 3): a node of a golden vector made into one of
# these ops (SPLIT's fc.weight is [2, 6], GOOD's fc1.bias is [8])
def _norm_op(op, attrs, params=None, base=SPLIT, at="split", version=3):
    def fn(h, s):
        n = node(h, at)
        n.update(op=op, attrs=attrs, params=params or {}, outputs=n["outputs"][:1])
        h.update(format_version=version)
    return edit(base, fn)


_N = r"graph node 1 \('split'\)"
CASES.update({
    "group_norm in a version 2 file": (_norm_op("group_norm", {"num_groups": 1}, version=2),
                                       CdnnFormatError, f"{_N}: op 'group_norm' needs format "
                                                        "version 3; the file is version 2"),
    "layer_norm over no dims": (_norm_op("layer_norm", {"normalized_shape": []}),
                                CdnnFormatError, rf"{_N}: layer_norm normalized_shape \[\] must "
                                                 "be 1 to 7 sizes >= 1"),
    "layer_norm over a dim of size 0": (_norm_op("layer_norm", {"normalized_shape": [6, 0]}),
                                        CdnnFormatError, r"normalized_shape \[6, 0\] must be 1 "
                                                         "to 7 sizes >= 1"),
    "layer_norm weight of another shape": (_norm_op("layer_norm", {"normalized_shape": [6]},
                                                    {"weight": "fc.weight"}), CdnnFormatError,
                                           rf"{_N}: layer_norm weight shape \[2, 6\] differs "
                                           r"from normalized_shape \[6\]"),
    "group_norm weight of rank 2": (_norm_op("group_norm", {"num_groups": 1},
                                             {"weight": "fc.weight"}), CdnnFormatError,
                                    rf"{_N}: group_norm weight and bias must be 1-D of one "
                                    r"size, got \[\[2, 6\]\]"),
    "group_norm groups not dividing the channels": (
        _norm_op("group_norm", {"num_groups": 3}, {"bias": "fc1.bias"}, GOOD, "relu"),
        CdnnFormatError, r"graph node 2 \('relu'\): 8 channels do not split into 3 groups"),
    "interpolate2d without a size": (_norm_op("interpolate2d", {"mode": "bilinear"}),
                                     CdnnFormatError, f"{_N}: op 'interpolate2d' needs "
                                                      "attribute 'size'"),
    "interpolate2d align_corners with nearest": (
        _norm_op("interpolate2d", {"size": [2, 2], "align_corners": True}), CdnnFormatError,
        f"{_N}: align_corners applies to mode bilinear only, not 'nearest'"),
    "interpolate2d negative scale": (
        _norm_op("interpolate2d", {"size": [2, 2], "mode": "bilinear", "scale_w": -2.0}),
        CdnnFormatError, rf"{_N}: scales 0.0, -2.0 must be >= 0 \(0: from the sizes\)"),
    "max_pool1d without a stride": (_norm_op("max_pool1d", {"kernel_size": 3}),
                                    CdnnFormatError, "op 'max_pool1d' needs attribute 'stride'"),
    "max_pool1d padding beyond half the kernel": (
        _norm_op("max_pool1d", {"kernel_size": 3, "stride": 1, "padding": 2}), CdnnFormatError,
        f"{_N}: padding 2 must be from 0 to half the kernel size 3"),
    "avg_pool1d negative padding": (
        _norm_op("avg_pool1d", {"kernel_size": 3, "stride": 1, "padding": -1}),
        CdnnFormatError, f"{_N}: padding -1 must be from 0 to half the kernel size 3"),
    "adaptive_max_pool2d output size 0": (
        _norm_op("adaptive_max_pool2d", {"output_size": [0, 2]}), CdnnFormatError,
        f"{_N} attribute 'output_size': expected two integers >= 1"),
})

# ---- elementwise, activations, reductions (version 3): SPLIT's split node made into these ops
# (with _shape_op above)
CASES.update({
    "reduction in a version 2 file": (_shape_op("mean", {"dims": [1]}, version=2),
                                      CdnnFormatError, f"{_AT}: op 'mean' needs format "
                                                       "version 3; the file is version 2"),
    "reduction over the batch": (_shape_op("mean", {"dims": [1, 0]}), CdnnFormatError,
                                 f"{_AT}: mean over dim 0, the batch dimension"),
    "reduction over no dims": (_shape_op("amax", {"dims": []}), CdnnFormatError,
                               f"{_AT}: amax over no dims"),
    "reduction over a negative dim": (_shape_op("sum", {"dims": [-1]}), CdnnFormatError,
                                      rf"{_AT}: sum dims \[-1\] must be distinct and counted "
                                      r"from 0 \(no negative dims\)"),
    "reduction over a dim twice": (_shape_op("amin", {"dims": [1, 1]}), CdnnFormatError,
                                   rf"{_AT}: amin dims \[1, 1\] must be distinct"),
    "sub reversed without other": (edit(SPLIT, lambda h, s: node(h, "split").update(
        op="sub", inputs=["x", "x"], outputs=["x0"], attrs={"reverse": True})),
        CdnnFormatError, f"{_AT}: sub with reverse needs param 'other'"),
    "maximum of one input": (_shape_op("maximum", {}), CdnnFormatError,
                             f"{_AT}: maximum takes two inputs, or one input and param 'other'"),
    "pow without an exponent": (_shape_op("pow", {}), CdnnFormatError,
                                f"{_AT}: op 'pow' needs attribute 'exponent'"),
    "clamp bound not a number": (_shape_op("clamp", {"min": 0, "max": "6"}), CdnnFormatError,
                                 f"{_AT} attribute 'max': expected a finite number"),
})


# ---- attention (version 3): SPLIT's split node made into these ops (with _norm_op above;
# SPLIT's fc.weight is [2, 6])
def _attention_op(inputs, attrs, params=None, version=3):
    def fn(h, s):
        node(h, "split").update(op="attention", inputs=inputs, attrs=attrs,
                                params=params or {}, outputs=["x0"])
        h.update(format_version=version)
    return edit(SPLIT, fn)


CASES.update({
    "attention in a version 2 file": (_attention_op(["x", "x", "x"], {"scale": 1.0}, version=2),
                                      CdnnFormatError, f"{_AT}: op 'attention' needs format "
                                                       "version 3; the file is version 2"),
    "attention with two masks": (_attention_op(["x", "x", "x", "x"], {"scale": 1.0},
                                               {"mask": "fc.weight"}), CdnnFormatError,
                                 f"{_AT}: attention takes a mask as input 4 or as param "
                                 "'mask', not both"),
    "attention scale of zero": (_attention_op(["x", "x", "x"], {"scale": 0.0}), CdnnFormatError,
                                f"{_AT}: attention scale 0.0 is not above 0"),
    "attention of two inputs": (_attention_op(["x", "x"], {"scale": 1.0}), CdnnFormatError,
                                f"{_AT}: op 'attention' takes 3 to 4 inputs"),
    "masked_fill value of several numbers": (
        _norm_op("masked_fill", {}, {"mask": "fc.weight", "value": "fc.weight"}),
        CdnnFormatError, rf"{_N}: masked_fill value of shape \[2, 6\] is not \[1\]"),
    # ---- constants over the batch (version 3)
    "constant of a value with 2 in dim 0": (
        _norm_op("constant", {}, {"value": "fc.weight"}), CdnnFormatError,
        rf"{_N}: constant value of shape \[2, 6\] does not have 1 in dim 0"),
    "matmul reversed without other": (edit(SPLIT, lambda h, s: node(h, "split").update(
        op="matmul", inputs=["x", "x"], outputs=["x0"], attrs={"reverse": True})),
        CdnnFormatError, f"{_AT}: matmul with reverse needs param 'other'"),
})


# ---- recurrent layers (version 3): SPLIT's split node made into these ops, SPLIT's fc.weight
# [2, 6] as every matrix (an rnn of 2 hidden units takes it as w_ih, not as w_hh)
def _recurrent_op(op, params, attrs, inputs=("x",), version=3):
    outputs = ["x0", "x1", "x2"][:3 if op == "lstm" else 2]
    return edit(SPLIT, lambda h, s: (node(h, "split").update(
        op=op, inputs=list(inputs), params=params, attrs=attrs, outputs=outputs),
        h.update(format_version=version)))


_RNN = {"w_ih": "fc.weight", "w_hh": "fc.weight"}
CASES.update({
    "rnn in a version 2 file": (_recurrent_op("rnn", _RNN, {"hidden_size": 2}, version=2),
                                CdnnFormatError, f"{_AT}: op 'rnn' needs format version 3; "
                                                 "the file is version 2"),
    "lstm given h0 without c0": (_recurrent_op("lstm", _RNN, {"hidden_size": 2}, ("x", "x")),
                                 CdnnFormatError, f"{_AT}: lstm takes x alone or x, h0 and c0"),
    "rnn reverse params without bidirectional": (
        _recurrent_op("rnn", {**_RNN, "w_ih_reverse": "fc.weight"}, {"hidden_size": 2}),
        CdnnFormatError, rf"{_AT}: rnn has reverse params \['w_ih'\] but is not bidirectional"),
    "gru bidirectional without all reverse params": (
        _recurrent_op("gru", {**_RNN, "w_ih_reverse": "fc.weight"},
                      {"hidden_size": 2, "bidirectional": True}), CdnnFormatError,
        rf"{_AT}: bidirectional gru's reverse params \['w_ih'\] differ from its forward ones"),
    "rnn w_hh of the wrong shape": (_recurrent_op("rnn", _RNN, {"hidden_size": 2}),
                                    CdnnFormatError, rf"{_AT}: rnn w_hh of shape \[2, 6\] is "
                                                     r"not \[2, 2\] \(hidden_size 2, 1 gate\)"),
    "lstm without w_hh": (_recurrent_op("lstm", {"w_ih": "fc.weight"}, {"hidden_size": 2}),
                          CdnnFormatError, f"{_AT}: op 'lstm' needs param 'w_hh'"),
})


# ---- the spec's edge cases (issue 20): JSON, null, fillers, node rules, metadata, dense copies
def _retext(data, old, new):
    """The file with its header's JSON text edited (for what json.dumps cannot write)."""
    h, s = split(data)
    text = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()
    assert text.count(old) == 1
    return assemble(h, s, header_bytes=text.replace(old, new))


def _fill_streams(gaps=None, codes=None, codebook=None, **fields):
    """sparse_fillers.cdnn (row 0: gaps 0 3 3 0 3 3 3 3 3, codes 1 0 0 2 0 0 0 0 1, filler
    code 0; row 2: gaps 3 0, codes 2 2; 30 columns) with other streams or centroids."""
    def fn(h, s):
        t = tensor(h, "w")
        t.update(fields)
        for key, values in (("gaps", gaps), ("codes", codes)):
            if values is not None:
                s[t[key]["section"]] = pack(np.array(values, np.uint32), 2).tobytes()
        if codebook is not None:
            s[t["codebook"]["section"]] = np.array(codebook, "<f4").tobytes()
    return edit(FILL, fn)


def _to_op(op, inputs=("h",), params=None, **attrs):
    """tiny_graph.cdnn with its relu node made into another op."""
    def fn(h, s):
        node(h, "relu").update(op=op, inputs=list(inputs), attrs=attrs)
        if params is not None:
            node(h, "relu")["params"] = params
    return edit(GOOD, fn)


def _half_weight(h, s):
    t = tensor(h, "fc2.weight")
    s[t["section"]] = np.frombuffer(s[t["section"]], "<f4").astype("<f2").tobytes()
    t["dtype"] = "float16"


CASES.update({
    "byte-order mark": (raw_header(b"\xef\xbb\xbf" + json.dumps(split(GOOD)[0]).encode()),
                        CdnnFormatError, "invalid JSON at character 0: Unexpected UTF-8 BOM"),
    "number overflowing a binary64": (_retext(GOOD, b'"metadata":{', b'"metadata":{"x":1e400,'),
                                      CdnnFormatError, "JSON number 1e400 overflows a binary64"),
    "lone surrogate escape": (_retext(GOOD, b'"tiny-mlp"', b'"tiny\\ud800"'), CdnnFormatError,
                              "string 'tiny\\\\ud800' holds a lone surrogate escape"),
    "integer written 3.0": (retensor(GOOD, "fc1.weight", gap_bits=3.0), CdnnFormatError,
                            r"gap_bits must be an integer in \[1, 8\], got 3.0"),
    "graph null": (edit(GOOD, lambda h, s: h.update(graph=None)), CdnnFormatError,
                   "^graph: expected a JSON object$"),
    "graph output as a bare string": (edit(GOOD, lambda h, s: h["graph"].update(
        outputs=["probs"])), CdnnFormatError, "^graph output 0: expected a JSON object$"),
    "node attrs null": (edit(GOOD, lambda h, s: node(h, "softmax").update(attrs=None)),
                        CdnnFormatError, r"graph node 4 \('softmax'\): attrs must be an object"),
    "attribute null": (edit(GOOD, lambda h, s: node(h, "softmax").update(attrs={"dim": None})),
                       CdnnFormatError, "attribute 'dim': expected an integer, got None"),
    "filler_code absent": (edit(FILL, lambda h, s: tensor(h, "w").pop("filler_code")),
                           CdnnFormatError, "tensor 'w': missing field 'filler_code'"),
    "filler with a short gap": (_fill_streams(gaps=[0, 2, 3, 0, 3, 3, 3, 3, 3, 3, 0]),
                                CdnnFormatError, r"^tensor 'w': filler at entry 1 has gap 2, not "
                                                 r"3 \(2\^gap_bits - 1\)$"),
    "filler past the last column": (_fill_streams(gaps=[0, 3, 3, 1, 3, 3, 3, 3, 3, 3, 0],
                                                  codes=[1, 0, 0, 2, 0, 0, 0, 0, 0, 2, 2], nnz=4),
                                    CdnnFormatError, "row 0 has a column index at or past the "
                                                     "column count 30"),
    "stored entry of value -0.0": (_fill_streams(codebook=[0.0, 0.5, -0.0]), CdnnFormatError,
                                   "^tensor 'w': entry 3 has code 2, whose centroid is 0.0, and "
                                   "is not a filler"),
    "add of two inputs and other": (_to_op("add", ("h", "h"), {"other": "fc1.bias"}),
                                    CdnnFormatError, "add takes two inputs, or one input and "
                                                     "param 'other'"),
    "float16 linear weight": (edit(GOOD, _half_weight), CdnnFormatError,
                              r"param 'weight' \('fc2.weight'\): linear weight must be float32 "
                              "or sparse_codebook"),
    "reshape size below -1": (_to_op("reshape", shape=[-2, 4]), CdnnFormatError,
                              r"reshape shape \[-2, 4\] has a size below -1"),
    "permute dims not a permutation": (_to_op("permute", dims=[0, -2]), CdnnFormatError,
                                       r"permute dims \[0, -2\] are not a permutation of 0..1"),
    "source_sha256 in upper case": (edit(GOOD, lambda h, s: h["metadata"].update(
        source_sha256="AB" * 32)), CdnnFormatError, "^metadata: source_sha256 'ABAB.* is not "
                                                     r"64 lower-case hex digits"),
    "dense copy over the limit": (retensor(FILL, "w", shape=[3, 10**12], cols=10**12),
                                  CdnnLimitError, r"^tensor 'w': a dense copy of shape "
                                                  r"\[3, 1000000000000\] would take "
                                                  "12000000000000 bytes, more than the "),
})


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
