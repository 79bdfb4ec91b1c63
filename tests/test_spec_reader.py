"""The spec's executable check: spec/reference_reader.py, a second reader written from
spec/cdnn-format.md alone, decodes every golden file and the files written here (fuzz seeds,
reference models, random writer output) and agrees with cdnn_runtime.read on everything it
decodes; every bad file that cdnn_runtime refuses, it refuses too, with the same error class.
A disagreement is a gap in the spec or a bug in one of the readers."""

import copy
import functools
import importlib.util
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdnn_runtime import (
    CdnnChecksumError,
    CdnnError,
    CdnnFormatError,
    CdnnLimitError,
    CdnnVersionError,
)
from cdnn_runtime.graph import OPS
from cdnn_runtime.reader import read
from cdnn_runtime.sparse import csr_from_dense
from cdnn_runtime.testing.craft import VECTORS, assemble, split, vector, vector_names
from cdnn_runtime.testing.fuzz.seeds import SEED_WEIGHTS, build_seeds
from cdnn_runtime.writer import Writer


def _load_reference_reader():
    path = VECTORS.parent / "reference_reader.py"
    spec = importlib.util.spec_from_file_location("reference_reader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rr = _load_reference_reader()
DENSE_CAP = 1 << 26  # dense copies compared up to 64 MB


def agree(data):
    """Both readers accept `data` and decode the same; the spec reader's file."""
    mine = rr.read(data)
    f = read(data)
    assert (mine.version, mine.header_deflated) == (f.version, f.header_deflated)
    assert mine.metadata == f.metadata
    assert mine.graph == f.graph
    assert list(mine.tensors) == f.tensor_names
    assert mine.decoded_bytes == f.decoded_bytes
    for t in f.tensors:
        got = mine.tensors[t.name]
        if t.encoding == "raw":
            want = f.raw(t.name)
            assert isinstance(got, np.ndarray) and got.dtype == want.dtype, t.name
            assert got.shape == want.shape and got.tobytes() == want.tobytes(), t.name
        else:
            s = f.sparse(t.name)
            assert (got.shape, got.rows, got.cols) == (s.shape, s.rows, s.n_cols), t.name
            assert (got.gap_bits, got.filler_code) == (t.desc["gap_bits"], t.desc["filler_code"])
            assert got.codebook.tobytes() == s.codebook.tobytes(), t.name
            for a, b in zip((got.row_counts, got.gaps, got.codes), f.entries(t.name)):
                assert np.array_equal(a, b), t.name
            assert np.array_equal(got.row_ptr, s.row_ptr), t.name
            assert np.array_equal(got.col_idx, s.col_idx), t.name
            assert np.array_equal(got.csr_codes, s.codes), t.name
            assert got.codings == {k: t.desc[k]["coding"] for k in got.codings}
        if 4 * int(np.prod(t.shape)) <= DENSE_CAP:
            assert mine.dense(t.name).tobytes() == f.dense(t.name).tobytes(), t.name
    return mine


# ---- what the spec reader decodes ----------------------------------------------------------

def _num(v):
    v = float(v)
    return repr(v) if v != v or v in (float("inf"), float("-inf")) else v


def golden_content(mine):
    """A file's decoded content in the layout spec/vectors/README.md gives the golden .json."""
    out = {"header": "deflate" if mine.header_deflated else "plain", "metadata": mine.metadata,
           "graph": mine.graph, "tensors": {}}
    for name, t in mine.tensors.items():
        if isinstance(t, np.ndarray):
            out["tensors"][name] = {
                "encoding": "raw", "shape": list(t.shape), "dtype": t.dtype.name,
                "values": [_num(v) if t.dtype.kind == "f" else int(v) for v in t.ravel()]}
            continue
        out["tensors"][name] = {
            "encoding": "sparse_codebook", "shape": list(t.shape), "dtype": "float32",
            "gap_bits": t.gap_bits, "filler_code": t.filler_code,
            "codebook": [_num(v) for v in t.codebook], "row_ptr": t.row_ptr.tolist(),
            "col_idx": t.col_idx.tolist(), "codes": t.csr_codes.tolist(),
            "stored": {"row_counts": t.row_counts.tolist(), "gaps": t.gaps.tolist(),
                       "codes": t.codes.tolist()},
            "streams": t.codings}
    return out


@pytest.mark.parametrize("name", vector_names())
def test_golden_vector(name):
    mine = agree(vector(name))
    with open(VECTORS / f"{name}.json") as fh:
        assert golden_content(mine) == json.load(fh)


@functools.lru_cache(maxsize=1)
def _seeds():
    return build_seeds()


@pytest.mark.parametrize("name", sorted(SEED_WEIGHTS))
def test_fuzz_seed(name):
    agree(_seeds()[name])


@pytest.mark.parametrize("name", ["lenet-300-100", "lenet-5"])
def test_reference_model(name):
    """The LeNets of cdnn/models.py compressed by cdnn's default recipe (no training); AlexNet
    and VGG-16 are left out for their cost (hundreds of MB of weights to prune and cluster)."""
    torch = pytest.importorskip("torch")
    from cdnn.compress import compress
    from cdnn.models import MODELS, seeded
    data = compress(seeded(MODELS[name], 0), torch.zeros(2, 1, 28, 28)).to_bytes()
    mine = agree(data)
    assert mine.graph and any(not isinstance(t, np.ndarray) for t in mine.tensors.values())
    _check_huffman_lengths(data, mine)


@settings(derandomize=True, deadline=None, max_examples=30)
@given(rows=st.integers(1, 10), n_cols=st.integers(1, 200), density=st.floats(0, 1),
       k=st.integers(1, 256), gap_bits=st.one_of(st.none(), st.integers(1, 8)),
       coding=st.sampled_from(["auto", "packed", "huffman"]), chunk=st.sampled_from([1, 3, 65536]),
       header=st.sampled_from(["auto", "plain", "deflate"]), seed=st.integers(0, 2**32 - 1))
def test_random_writer_files(rows, n_cols, density, k, gap_bits, coding, chunk, header, seed):
    rng = np.random.default_rng(seed)
    codebook = rng.standard_normal(k).astype(np.float32)
    codebook[rng.random(k) < 0.1] = 0.0
    codes = rng.integers(0, k, (rows, n_cols))
    codes[rng.random((rows, n_cols)) >= density] = -1
    row_ptr, col_idx, _ = csr_from_dense(codes + 1)
    w = Writer(metadata={"extra": {"seed": seed}}, header=header)
    w.add_sparse_codebook("w", (rows, n_cols), row_ptr, col_idx, codes[codes >= 0], codebook,
                          gap_bits=gap_bits, coding=coding, chunk_symbols=chunk)
    w.add_raw("half", rng.standard_normal((rows, 2)).astype(np.float16))
    w.add_raw("ids", rng.integers(-2**40, 2**40, rows))
    w.add_raw("empty", np.zeros((0, n_cols), np.float32))
    data = w.to_bytes()
    _check_huffman_lengths(data, agree(data))


# ---- the writer's choices (spec 3.3) ---------------------------------------------------------

def package_merge(counts, limit=16):
    """Code lengths as section 3.3 tells the reference writer's package-merge."""
    lengths = [0] * len(counts)
    leaves = sorted((s for s, c in enumerate(counts) if c), key=lambda s: (counts[s], -s))
    if len(leaves) == 1:
        lengths[leaves[0]] = 1
    if len(leaves) < 2:
        return lengths
    lists = {limit: [(counts[s], s) for s in leaves]}  # (weight, leaf symbol or None)
    for d in range(limit - 1, 0, -1):
        deeper = lists[d + 1]
        packages = [(deeper[i][0] + deeper[i + 1][0], None) for i in range(0, len(deeper) - 1, 2)]
        merged, i, j = [], 0, 0
        while i < len(leaves) or j < len(packages):
            if j == len(packages) or (i < len(leaves) and counts[leaves[i]] <= packages[j][0]):
                merged.append((counts[leaves[i]], leaves[i]))
                i += 1
            else:
                merged.append(packages[j])
                j += 1
        lists[d] = merged
    take = 2 * len(leaves) - 2
    for d in range(1, limit + 1):
        chosen = lists[d][:take]
        for _, symbol in chosen:
            if symbol is not None:
                lengths[symbol] += 1
        take = 2 * sum(1 for _, symbol in chosen if symbol is None)
    return lengths


def _check_huffman_lengths(data, mine):
    """Every Huffman stream of a file the reference writer wrote has the code lengths of
    section 3.3's package-merge, and an alphabet of its largest value + 1."""
    header, sections = split(data)
    for t in header["tensors"]:
        if t["encoding"] != "sparse_codebook":
            continue
        decoded = mine.tensors[t["name"]]
        for key in ("row_counts", "gaps", "codes"):
            desc = t[key]
            if desc["coding"] != "huffman":
                continue
            values = getattr(decoded, key)
            counts = np.bincount(values, minlength=1).tolist()
            assert desc["alphabet_size"] == len(counts)
            stored = list(sections[desc["section"]][:desc["alphabet_size"]])
            assert stored == package_merge(counts), (t["name"], key)


def test_package_merge_as_specified():
    assert package_merge([0, 32] + [3] * 8) == [0, 1] + [4] * 8
    assert package_merge([5]) == [1] and package_merge([0, 0]) == [0, 0]
    # two optimal codes exist for 1, 1, 2, 2 (2 2 2 2 and 3 3 2 1): the rule picks one
    assert package_merge([1, 1, 2, 2]) == [2, 2, 2, 2]
    assert max(package_merge([2**i for i in range(30)])) == 16  # the limit binds
    for name in vector_names():
        data = vector(name)
        _check_huffman_lengths(data, rr.read(data))


def test_op_table_is_the_vocabulary():
    """Section 7's op table gives every op of graph.OPS with its version, its params (`?` for
    optional ones) and every attribute with its default, `required` or `= other`."""
    table = rr.op_table()
    assert sorted(table) == sorted(OPS)
    for op, spec in OPS.items():
        since, params, attrs = table[op]
        assert since == spec.since, op
        assert params == spec.params, op
        want = {name: rr.REQUIRED if default is None else ("=", default)
                if isinstance(default, str) and default in spec.attrs else default
                for name, (kind, default) in spec.attrs.items()}
        assert attrs == want, op


# ---- what both refuse --------------------------------------------------------------------

_CLASSES = [(CdnnChecksumError, rr.ChecksumError), (CdnnVersionError, rr.VersionError),
            (CdnnLimitError, rr.LimitError), (CdnnFormatError, rr.SpecError)]


def _outcome(read_fn, dense, data, errors, **kw):
    """None when the file reads and densifies, else the exception."""
    try:
        f = read_fn(data, **kw)
        for name in dense(f):
            f.dense(name)
    except errors as exc:
        return exc
    return None


def refusals(data, **kw):
    """(cdnn_runtime's exception, the spec reader's), either None when it accepts."""
    theirs = _outcome(read, lambda f: f.tensor_names, data, CdnnError,
                      max_decoded_bytes=kw.get("limit", rr.DEFAULT_LIMIT))
    mine = _outcome(rr.read, lambda f: list(f.tensors), data, rr.SpecError, **kw)
    return theirs, mine


def assert_both_refuse(data, **kw):
    theirs, mine = refusals(data, **kw)
    assert theirs is not None and mine is not None, (theirs, mine)
    expected = next(cls for cls, _ in _CLASSES if isinstance(theirs, cls))
    assert type(mine) is dict(_CLASSES)[expected], (theirs, mine)


def _bad_cases():
    from test_bad_files import CASES  # one bad file per rule of the spec
    return CASES


@pytest.mark.parametrize("case", sorted(_bad_cases()))
def test_bad_file_refused_by_both(case):
    """A rule of a node that the minimal reader leaves to cdnn_runtime (attribute types,
    param shapes, an op's own rule) is the only reason it may accept a bad file."""
    data = _bad_cases()[case][0]
    theirs, mine = refusals(data)
    assert theirs is not None
    if mine is None:
        assert re.match(r"graph node \d+ \(", str(theirs)), (case, theirs)
        return
    assert_both_refuse(data)


def test_decoded_size_limit_refused_by_both():
    assert_both_refuse(vector("tiny_graph"), limit=100)
    agree(vector("tiny_graph"))


@pytest.mark.parametrize("name", vector_names())
def test_every_changed_byte_and_truncation_refused_by_both(name):
    data = vector(name)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        assert_both_refuse(bytes(bad))
    for n in range(len(data)):
        assert_both_refuse(data[:n])


# ---- edge cases of the spec that both accept (or both refuse) ---------------------------

FILL = vector("sparse_fillers")  # row 0: 9 entries, fillers among them; row 2: 2 entries


def _edit(data, fn, **kw):
    header, sections = split(data)
    header, sections = copy.deepcopy(header), list(sections)
    fn(header, sections)
    return assemble(header, sections, **kw)


def _sparse(header):
    return next(t for t in header["tensors"] if t["encoding"] == "sparse_codebook")


def _fill_edit(codebook=None, gaps=None, codes=None, **fields):
    def fn(h, s):
        t = _sparse(h)
        t.update(fields)
        if codebook is not None:
            t["codebook"]["size"] = len(codebook)
            s[t["codebook"]["section"]] = np.array(codebook, "<f4").tobytes()
        for key, values in (("gaps", gaps), ("codes", codes)):
            if values is not None:
                bits = np.unpackbits(np.array(values, np.uint8)[:, None], axis=1)[:, -2:]
                s[t[key]["section"]] = np.packbits(bits.ravel()).tobytes()
    return _edit(FILL, fn)


def _nested(depth):
    """tiny_graph.cdnn whose metadata holds a scalar at `depth` (the top object at 1)."""
    def fn(h, s):
        value = 0
        for _ in range(depth - 3):
            value = [value]
        h["metadata"]["deep"] = value  # top 1, metadata 2, "deep" 3
    return _edit(vector("tiny_graph"), fn)


def _renamed(name):
    def fn(h, s):
        t = next(t for t in h["tensors"] if t["name"] == "fc1.bias")
        t["name"] = name
        next(n for n in h["graph"]["nodes"] if n["name"] == "fc1")["params"]["bias"] = name
    return _edit(vector("tiny_graph"), fn)


def _shared_names(h, s):
    """A node, the value it makes and its weight all named fc2; a graph input as an output;
    a value used twice by one node."""
    node = next(n for n in h["graph"]["nodes"] if n["name"] == "fc2")
    t = next(t for t in h["tensors"] if t["name"] == "fc2.weight")
    t["name"] = node["params"]["weight"] = node["outputs"][0] = "fc2"
    sm = next(n for n in h["graph"]["nodes"] if n["name"] == "softmax")
    sm["inputs"] = ["fc2"]
    h["graph"]["nodes"].append({"name": "twice", "op": "add", "inputs": ["fc2", "fc2"],
                                "outputs": ["y"]})
    h["graph"]["outputs"] = [{"name": "probs"}, {"name": "x"}, {"name": "y"}]


def _pretty(h, s):
    return json.dumps(h, indent=2).replace("/", "\\/").encode()


ACCEPTED = {
    "filler centroid -0.0": lambda: _fill_edit(codebook=[-0.0, 0.5, -0.5]),
    "an unused zero centroid": lambda: _fill_edit(codebook=[0.0, 0.5, -0.5, 0.0]),
    "a filler ending a row": lambda: _fill_edit(gaps=[0, 3, 3, 0, 3, 3, 3, 3, 3, 3, 3],
                                                codes=[1, 0, 0, 2, 0, 0, 0, 0, 1, 2, 0], nnz=4),
    "a scalar at depth 64": lambda: _nested(64),
    "a name of 256 code points beyond U+FFFF": lambda: _renamed("\U0001f600" * 256),
    "node, value and tensor of one name": lambda: _edit(vector("tiny_graph"), _shared_names),
    "whitespace, escaped slashes, keys unsorted": lambda: _edit(
        vector("tiny_graph"), lambda h, s: None,
        header_bytes=_pretty(*split(vector("tiny_graph")))),
}

REFUSED = {
    "a scalar at depth 65": lambda: _nested(65),
    "a name of 257 code points": lambda: _renamed("\U0001f600" * 257),
    "a filler whose gap is not the widest": lambda: _fill_edit(
        gaps=[0, 3, 3, 0, 3, 3, 3, 3, 3, 3, 2], codes=[1, 0, 0, 2, 0, 0, 0, 0, 1, 2, 0], nnz=4),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_edge_case_accepted_by_both(case):
    agree(ACCEPTED[case]())


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_edge_case_refused_by_both(case):
    assert_both_refuse(REFUSED[case]())


def test_dense_copy_charged_by_both():
    """A sparse tensor of 3 x 10^12 with 5 entries reads, decodes to CSR, and refuses to
    densify (spec section 5)."""
    data = _fill_edit(shape=[3, 10**12], cols=10**12)
    mine = rr.read(data)
    f = read(data)
    assert f.sparse("w").nnz == 5 and mine.tensors["w"].col_idx.size == 5
    with pytest.raises(CdnnLimitError, match="a dense copy of shape"):
        f.sparse("w").to_dense()
    with pytest.raises(CdnnLimitError, match="a dense copy of shape"):
        f.dense("w")
    with pytest.raises(rr.LimitError, match="dense copy"):
        mine.dense("w")


def test_fuzz_cases_judged_alike():
    """Mutated seed files (the fuzzer's cases): where cdnn_runtime reads and decodes one, the
    spec reader agrees with it; where cdnn_runtime refuses one, so does the spec reader, with
    the same error class, unless for a node rule it leaves to cdnn_runtime."""
    from cdnn_runtime.testing.fuzz.cases import make_case
    for index in range(400):
        case = make_case(_seeds(), 20261206, index)
        theirs, mine = refusals(case.data)
        if theirs is None:
            assert mine is None, (case.id, mine)
            agree(case.data)
        elif mine is None:
            assert re.match(r"graph node \d+ \(", str(theirs)), (case.id, theirs)
        else:
            assert_both_refuse(case.data)


def test_the_second_reader_shares_no_code():
    """It imports numpy and the standard library only: nothing of cdnn or cdnn_runtime."""
    import ast
    import sys
    tree = ast.parse((VECTORS.parent / "reference_reader.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported - set(sys.stdlib_module_names) == {"numpy"}
