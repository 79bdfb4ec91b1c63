"""The writer and the validating reader: round trips, determinism, and one case per bad file."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdnn_runtime import CdnnArgumentError, CdnnError, CdnnFormatError
from cdnn_runtime.reader import read
from cdnn_runtime.sparse import csr_from_dense
from cdnn_runtime.testing.craft import (
    VECTORS,
    is_deflated,
    plain_header,
    split,
    vector,
    vector_makers,
    vector_names,
)
from cdnn_runtime.writer import Writer, write_atomic

# ---- round trips -------------------------------------------------------------------------

def test_raw_round_trip_every_dtype():
    rng = np.random.default_rng(0)
    arrays = {"f32": rng.standard_normal((3, 4)).astype(np.float32),
              "f16": rng.standard_normal(7).astype(np.float16),
              "i32": rng.integers(-2**31, 2**31, 5, dtype=np.int32),
              "i64": rng.integers(-2**62, 2**62, (2, 2), dtype=np.int64),
              "u8": rng.integers(0, 256, 9, dtype=np.uint8),
              "big_endian": np.arange(4, dtype=">f4"),
              "empty": np.zeros((0,), np.float32), "scalar": np.float32(3.5)}
    w = Writer()
    for name, a in arrays.items():
        w.add_raw(name, a)
    f = read(w.to_bytes())
    for name, a in arrays.items():
        got = f.raw(name)
        assert got.shape == np.shape(a) and np.array_equal(got, a), name
        assert got.dtype.isnative


@settings(derandomize=True, deadline=None, max_examples=40)
@given(rows=st.integers(1, 12), n_cols=st.integers(1, 300), density=st.floats(0, 1),
       k=st.integers(1, 256), gap_bits=st.one_of(st.none(), st.integers(1, 8)),
       coding=st.sampled_from(["auto", "packed", "huffman"]), chunk=st.sampled_from([1, 5, 65536]),
       seed=st.integers(0, 2**32 - 1))
def test_sparse_round_trip_exact(rows, n_cols, density, k, gap_bits, coding, chunk, seed):
    rng = np.random.default_rng(seed)
    codebook = rng.standard_normal(k).astype(np.float32)
    codebook[codebook == 0] = 1.0
    codes = rng.integers(0, k, (rows, n_cols))
    dense = np.where(rng.random((rows, n_cols)) < density, codebook[codes], 0).astype(np.float32)
    row_ptr, col_idx, _ = csr_from_dense(dense)
    kept_codes = codes[dense != 0]
    w = Writer()
    w.add_sparse_codebook("w", (rows, n_cols), row_ptr, col_idx, kept_codes, codebook,
                          gap_bits=gap_bits, coding=coding, chunk_symbols=chunk)
    data = w.to_bytes()
    s = read(data).sparse("w")
    assert np.array_equal(s.to_dense(), dense)
    assert (s.rows, s.n_cols) == (rows, n_cols)
    assert np.array_equal(s.row_ptr, row_ptr) and np.array_equal(s.col_idx, col_idx)
    assert np.array_equal(s.codebook[:k], codebook)
    s_serial = read(data).sparse("w", parallel=False)
    assert np.array_equal(s_serial.codes, s.codes)


def test_sparse_conv_shape_view_and_fillers():
    rng = np.random.default_rng(1)
    dense = np.zeros((4, 3, 5, 5), np.float32)
    dense[0, 0, 0, 0] = 1.0
    dense[0, 2, 4, 4] = 2.0  # a skip of 73 zeros
    dense[3] = rng.choice([0.0, 1.0, 2.0], (3, 5, 5))
    codebook = np.array([1.0, 2.0], np.float32)
    row_ptr, col_idx, vals = csr_from_dense(dense.reshape(4, -1))
    codes = (vals == 2.0).astype(np.uint8)
    w = Writer()
    w.add_sparse_codebook("conv", dense.shape, row_ptr, col_idx, codes, codebook, gap_bits=2)
    f = read(w.to_bytes())
    t = f.tensor("conv")
    assert t.shape == (4, 3, 5, 5) and t.desc["cols"] == 75
    assert t.desc["entries"] > t.desc["nnz"] and t.desc["filler_code"] == 2  # 0.0 appended
    assert np.array_equal(f.sparse("conv").to_dense(), dense)


def test_zero_centroid_entries_are_pruned_weights():
    codebook = np.array([0.0, 1.0], np.float32)
    w = Writer()
    w.add_sparse_codebook("w", (2, 3), [0, 2, 3], [0, 2, 1], [0, 1, 1], codebook)
    s = read(w.to_bytes()).sparse("w")
    assert s.nnz == 2 and np.array_equal(s.to_dense(), [[0, 0, 1], [0, 1, 0]])


def test_all_pruned_and_one_centroid():
    w = Writer()
    w.add_sparse_codebook("empty", (3, 4), [0, 0, 0, 0], [], [], [0.5])
    w.add_sparse_codebook("one", (1, 1), [0, 1], [0], [0], [0.5])
    f = read(w.to_bytes())
    assert f.sparse("empty").nnz == 0 and not f.sparse("empty").to_dense().any()
    assert f.sparse("one").to_dense().tolist() == [[0.5]]


def test_writer_is_deterministic():
    makers = vector_makers()
    for name in ("tiny_graph", "sparse_huffman"):
        assert makers[name]().to_bytes() == makers[name]().to_bytes()


def test_writer_rejects_bad_input():
    w = Writer()
    sparse = ("w", (1, 4), [0, 1], [2], [0], [1.0])
    cases = [
        (lambda: w.add_sparse_codebook("w", (1, 4), [0, 2], [2, 1], [0, 0], [1.0]),
         "tensor 'w': columns must be .* strictly increasing"),
        (lambda: w.add_sparse_codebook("w", (1, 4), [0, 1], [2], [3], [1.0]),
         "tensor 'w': codes must be below the codebook size"),
        (lambda: w.add_sparse_codebook("w", (1, 4), [0, 1], [2], [0], [np.nan]),
         "tensor 'w': codebook must hold"),
        (lambda: w.add_sparse_codebook("w", (4,), [0, 0], [], [], [1.0]),
         "tensor 'w': sparse_codebook needs rank >= 2"),
        (lambda: w.add_sparse_codebook(*sparse, gap_bits=9), "tensor 'w': gap_bits must be"),
        (lambda: w.add_sparse_codebook(*sparse, gap_bits=2.0), "tensor 'w': gap_bits must be"),
        (lambda: w.add_sparse_codebook(*sparse, coding="zip"), "tensor 'w': coding must be"),
        (lambda: w.add_sparse_codebook(*sparse, chunk_symbols=0),
         "tensor 'w': chunk_symbols must be"),
        (lambda: w.add_raw("b", np.array([True])), "tensor 'b': dtype bool cannot be stored raw"),
        (lambda: w.add_raw("", np.zeros(1, np.float32)), "tensor name must be a non-empty string"),
        (lambda: Writer(header="gzip"), "header must be"),
    ]
    for call, message in cases:
        with pytest.raises(CdnnArgumentError, match=message):
            call()
    assert issubclass(CdnnArgumentError, CdnnError) and issubclass(CdnnArgumentError, ValueError)
    w.add_raw("a", np.zeros(1, np.float32))
    with pytest.raises(CdnnArgumentError, match="tensor 'a' added twice"):
        w.add_raw("a", np.zeros(1, np.float32))
    with pytest.raises(CdnnFormatError):  # graph checked when written
        w.set_graph({"inputs": [], "nodes": [], "outputs": []})
        w.to_bytes()


def test_writer_full_codebook_without_zero_needs_no_fillers():
    """256 nonzero centroids leave no code for fillers: a skip too wide for every gap width
    is refused, naming the tensor; a fixed width that needs fillers is refused too."""
    codebook = np.arange(1, 257, dtype=np.float32)
    w = Writer()
    with pytest.raises(CdnnArgumentError, match="tensor 'wide': no gap width fits"):
        w.add_sparse_codebook("wide", (1, 300), [0, 1], [299], [5], codebook)
    with pytest.raises(CdnnArgumentError, match="tensor 'wide': 1 filler entries needed"):
        w.add_sparse_codebook("wide", (1, 300), [0, 1], [5], [5], codebook, gap_bits=2)
    w.add_sparse_codebook("wide", (1, 300), [0, 1], [5], [5], codebook)
    assert read(w.to_bytes()).sparse("wide").col_idx.tolist() == [5]


def test_reader_wrong_encoding_is_an_argument_error():
    f = read(vector("tiny_graph"))
    with pytest.raises(CdnnArgumentError, match="tensor 'fc1.weight' is sparse_codebook"):
        f.raw("fc1.weight")
    with pytest.raises(CdnnArgumentError, match="tensor 'fc1.bias' is raw"):
        f.sparse("fc1.bias")


def test_atomic_save(tmp_path):
    target = tmp_path / "m.cdnn"
    target.write_bytes(b"old")
    w = Writer()
    w.add_raw("a", np.ones(3, np.float32))
    with pytest.raises(FileExistsError):
        w.save(target, overwrite=False)
    assert target.read_bytes() == b"old"
    size = w.save(target)
    assert size == len(w.to_bytes()) and read(str(target)).raw("a").tolist() == [1, 1, 1]
    assert sorted(os.listdir(tmp_path)) == ["m.cdnn"]  # no temporary left behind



def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.cdnn"
    target.write_bytes(b"old")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new bytes")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["m.cdnn"]


def test_the_error_family_is_exported_whole():
    import inspect

    import cdnn_runtime
    from cdnn_runtime import errors
    family = {name for name, cls in vars(errors).items()
              if inspect.isclass(cls) and issubclass(cls, CdnnError)}
    assert family <= set(cdnn_runtime.__all__)
    assert all(getattr(cdnn_runtime, name) is getattr(errors, name) for name in family)


def test_runtime_never_imports_torch():
    code = ("import sys, numpy as np, cdnn_runtime, cdnn_runtime.reader, cdnn_runtime.writer; "
            "from cdnn_runtime.reader import read; "
            "read(open(sys.argv[1], 'rb').read()).sparse('fc1.weight'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, os.path.join(VECTORS, "tiny_graph.cdnn")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- golden vectors ----------------------------------------------------------------------

VECTOR_NAMES = vector_names()


def test_there_are_enough_vectors():
    assert len(VECTOR_NAMES) >= 5
    # both kinds of header storage, so that both comparisons below run
    assert {is_deflated(vector(name)) for name in VECTOR_NAMES} == {False, True}


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_decodes_exactly(name):
    with open(os.path.join(VECTORS, name + ".json")) as fh:
        expected = json.load(fh)
    f = read(vector(name))
    assert f.metadata == expected["metadata"]
    assert f.graph == expected["graph"]
    assert sorted(f.tensor_names) == sorted(expected["tensors"])
    for tname, exp in expected["tensors"].items():
        t = f.tensor(tname)
        assert [t.encoding, list(t.shape), t.dtype] == [exp["encoding"], exp["shape"],
                                                        exp["dtype"]]
        if t.encoding == "raw":
            want = np.array([float(v) if isinstance(v, str) else v for v in exp["values"]])
            got = f.raw(tname).ravel().astype(np.float64)
            assert np.array_equal(got, want) and np.array_equal(np.signbit(got),
                                                                np.signbit(want))
        else:
            s = f.sparse(tname)
            assert s.codebook.tolist() == exp["codebook"]
            assert s.row_ptr.tolist() == exp["row_ptr"]
            assert s.col_idx.tolist() == exp["col_idx"]
            assert s.codes.tolist() == exp["codes"]
            stored = f.entries(tname)
            assert [a.tolist() for a in stored] == [exp["stored"][k] for k in
                                                    ("row_counts", "gaps", "codes")]
            assert {k: t.desc[k]["coding"] for k in exp["streams"]} == exp["streams"]


def _decoded(data):
    """(metadata, graph, {tensor: its decoded arrays as (dtype, shape, bytes)}) of a file."""
    f = read(data)
    tensors = {}
    for t in f.tensors:
        arrays = [f.raw(t.name)] if t.encoding == "raw" else [*f.entries(t.name),
                                                              f.sparse(t.name).codebook]
        tensors[t.name] = [(a.dtype.str, a.shape, a.tobytes()) for a in arrays]
    return f.metadata, f.graph, tensors


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_writer_reproduces_vector(name):
    """Byte for byte where the writer's bytes do not depend on zlib. A deflated header
    (preamble flag bit 0) may deflate to other valid bytes with another zlib build: there the
    header JSON, every section, the decoded content and the file with its header inflated are
    compared."""
    golden = vector(name)
    made = vector_makers()[name]().to_bytes()
    if not is_deflated(golden):
        assert made == golden
        assert plain_header(golden) == golden  # inflating a plain file changes nothing
        return
    assert split(made) == split(golden)
    assert _decoded(made) == _decoded(golden)
    assert plain_header(made) == plain_header(golden)


def test_vectors_cover_the_encodings():
    codings = set()
    fillers = False
    for name in VECTOR_NAMES:
        f = read(vector(name))
        for t in f.tensors:
            if t.encoding == "sparse_codebook":
                codings |= {t.desc[k]["coding"] for k in ("gaps", "codes")}
                fillers |= t.desc["entries"] > t.desc["nnz"]
                if t.desc["codes"]["coding"] == "huffman" and t.desc["codes"]["count"] > \
                        t.desc["codes"]["chunk_symbols"]:
                    codings.add("chunked")
    assert codings == {"packed", "huffman", "chunked"} and fillers


def test_the_spec_lists_every_op_with_its_version():
    """Section 7's op table names every op of graph.OPS, with "(since N)" for later ones."""
    import re

    from cdnn_runtime.constants import BASE_VERSION
    from cdnn_runtime.graph import OPS
    text = open(os.path.join(VECTORS, os.pardir, "cdnn-format.md"), encoding="utf-8").read()
    section = text[text.index("## 7. Graph"):text.index("## 8. Metadata")]
    listed = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            since = re.search(r"\(since (\d+)\)", first)
            for name in re.findall(r"`([a-z0-9_]+)`", first):
                listed[name] = int(since.group(1)) if since else BASE_VERSION
    assert listed == {op: spec.since for op, spec in OPS.items()}
