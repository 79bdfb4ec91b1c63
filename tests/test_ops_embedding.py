"""Token inputs and embeddings (format version 3): integer graph inputs, the `embedding` op
looked up from a raw or sparse_codebook table, a head tied to its token embedding, against
PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn.capture import capture
from cdnn.compress import compress
from cdnn.recipe import resolve
from cdnn_runtime import InferenceSession
from cdnn_runtime.errors import CdnnFormatError, CdnnUnsupportedError
from cdnn_runtime.kernels.embedding import Embedding, embedding_csr, embedding_dense
from cdnn_runtime.reader import read
from cdnn_runtime.testing.craft import one_node_graph
from cdnn_runtime.writer import Writer
from test_kernels import make_csr

VOCAB, WIDTH, SEQ = 40, 16, 6


def _lookup_both(rng, rows=12, width=9, density=0.4, col_dtype=None):
    """(sparse lookup, dense lookup, the dense table) of one random CSR table."""
    mask = rng.random((rows, width)) < density
    mask[3] = False  # an all-pruned row
    row_ptr, col_idx, codes, codebook, dense = make_csr(rng, rows, width, k=8, mask=mask,
                                                       col_dtype=col_dtype)
    return (lambda ids: embedding_csr(ids, row_ptr, col_idx, codes, codebook, width),
            lambda ids: embedding_dense(ids, dense), dense)


@pytest.mark.parametrize("col_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("ids_dtype", [np.int64, np.int32])
def test_kernel_matches_torch(col_dtype, ids_dtype):
    rng = np.random.default_rng(0)
    sparse, dense_lookup, dense = _lookup_both(rng, col_dtype=col_dtype)
    ids = rng.integers(0, 12, (4, 7)).astype(ids_dtype)
    ids[0, :3] = [3, 0, 11]
    ref = F.embedding(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(dense)).numpy()
    for lookup in (sparse, dense_lookup):
        y = lookup(ids)
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_array_equal(y, ref)
    strided = ids[:, ::2]  # non-contiguous ids
    np.testing.assert_array_equal(sparse(strided), ref[:, ::2])
    np.testing.assert_array_equal(sparse(np.asarray(ids[0, 0])), ref[0, 0])  # 0-D ids: a row


def test_kernel_empty_batch_and_empty_table_rows():
    rng = np.random.default_rng(1)
    sparse, dense_lookup, _ = _lookup_both(rng, density=0.0)
    for lookup in (sparse, dense_lookup):
        assert lookup(np.zeros((0, 5), np.int64)).shape == (0, 5, 9)
        np.testing.assert_array_equal(lookup(np.array([[1, 2]])), np.zeros((1, 2, 9)))


@pytest.mark.parametrize("bad", [-1, 12, 2**40, -2**40])
def test_kernel_refuses_ids_out_of_range(bad):
    rng = np.random.default_rng(2)
    sparse, dense_lookup, _ = _lookup_both(rng)
    ids = np.array([[0, bad, 3]], np.int64)
    for lookup in (sparse, dense_lookup):
        with pytest.raises(ValueError, match=f"token id {bad} is out of range for an embedding "
                                             "table of 12 rows"):
            lookup(ids)
    with pytest.raises(ValueError, match="out of range"):
        sparse(np.array([bad], np.int64).astype(np.int32) if abs(bad) < 2**31 else ids)


def test_kernel_refuses_float_ids():
    with pytest.raises(ValueError, match="ids must be an int64 or int32 array, got float32"):
        Embedding(np.zeros((3, 2), np.float32))(np.zeros(2, np.float32))


# ---- captured models ----------------------------------------------------------------------

class TinyGPT(nn.Module):
    """Token and position embeddings (positions from arange, folded at capture), a block, a
    head of its own and a head tied to the token embedding (F.linear on wte's weight)."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, WIDTH)
        self.wpe = nn.Embedding(SEQ, WIDTH)
        self.fc = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, 5)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        x = F.gelu(self.fc(x)) + x
        return self.head(x), F.linear(x, self.wte.weight)


class TiedModules(nn.Module):
    """A head tied as a module (head.weight = wte.weight), positions as a second int input."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, WIDTH)
        self.wpe = nn.Embedding(SEQ, WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, ids, pos):
        return self.head(torch.tanh(self.wte(ids) + self.wpe(pos)))


def _ids(batch, seed=0, dtype=torch.int64):
    return torch.randint(0, VOCAB, (batch, SEQ), generator=torch.Generator().manual_seed(seed),
                         dtype=dtype)


def _positions(batch, dtype=torch.int32):
    return torch.arange(SEQ, dtype=dtype).repeat(batch, 1)


def _assert_runs_like_reference(packed, make_inputs):
    sess = InferenceSession(packed.to_bytes())
    ref_model = packed.reference_model().eval()
    names = [i.name for i in sess.get_inputs()]
    for batch in (1, 3):
        inputs = make_inputs(batch)
        ys = sess.run(None, {n: x.numpy() for n, x in zip(names, inputs)})
        with torch.no_grad():
            refs = ref_model(*inputs)
        refs = refs if isinstance(refs, tuple) else (refs,)
        assert len(ys) == len(refs)
        for y, ref in zip(ys, refs):
            ref = ref.numpy()
            assert y.shape == ref.shape
            np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    return sess


@pytest.mark.parametrize("preset", ["deep-compression", "lossless-ish"])
def test_gpt_style_model_runs_from_its_codebooks(preset):
    torch.manual_seed(0)
    packed = compress(TinyGPT(), (_ids(1),), preset=preset)
    f = packed.file
    assert f.version == 3
    assert f.graph["inputs"] == [{"name": "ids", "dtype": "int64", "shape": [None, SEQ]}]
    users = [n for n in f.graph["nodes"] if n["params"].get("weight") == "wte.weight"]
    assert sorted(n["op"] for n in users) == ["embedding", "linear"]  # one tensor, two nodes
    assert [t.name for t in f.tensors].count("wte.weight") == 1
    assert f.tensor("wte.weight").encoding == "sparse_codebook"
    assert packed.settings["wte"] == resolve({"wte": "embedding"}, preset=preset)["wte"]
    sess = _assert_runs_like_reference(packed, lambda b: (_ids(b, seed=b),))
    assert sess.get_inputs()[0].type == "tensor(int64)"


def test_tied_module_head_and_int32_positions():
    torch.manual_seed(1)
    packed = compress(TiedModules(), (_ids(1), _positions(1)),
                      recipe={"kind:embedding": {"density": 0.5, "bits": 4}})
    f = packed.file
    assert [i["dtype"] for i in f.graph["inputs"]] == ["int64", "int32"]
    # torch.export names the tied table after the last module holding it
    tables = {n["params"]["weight"] for n in f.graph["nodes"] if "weight" in n["params"]}
    assert tables == {"head.weight", "wpe.weight"}
    assert {t.name: t.encoding for t in f.tensors} == {"head.weight": "sparse_codebook",
                                                       "wpe.weight": "sparse_codebook"}
    assert packed.settings["wpe"]["density"] == 0.5 and packed.settings["wpe"]["bits"] == 4
    assert f.sparse("wpe.weight").nnz == SEQ * WIDTH // 2
    sess = _assert_runs_like_reference(packed, lambda b: (_ids(b, seed=b), _positions(b)))
    assert [i.type for i in sess.get_inputs()] == ["tensor(int64)", "tensor(int32)"]


class MatmulTied(nn.Module):
    """GPT-2's head: the activations times the token table transposed."""

    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, WIDTH)

    def forward(self, ids):
        return torch.tanh(self.wte(ids)) @ self.wte.weight.t()


def test_head_as_matmul_with_the_table_transposed():
    torch.manual_seed(2)
    packed = compress(MatmulTied(), (_ids(1),))
    f = packed.file
    assert [(t.name, t.encoding) for t in f.tensors] == [("wte.weight", "sparse_codebook")]
    assert [(n["op"], n["params"]) for n in f.graph["nodes"] if n["params"]] == [
        ("embedding", {"weight": "wte.weight"}), ("linear", {"weight": "wte.weight"})]
    _assert_runs_like_reference(packed, lambda b: (_ids(b, seed=b),))


@pytest.fixture(scope="module")
def gpt_session():
    torch.manual_seed(0)
    return InferenceSession(compress(TinyGPT(), (_ids(1),)).to_bytes())


def test_feed_dtype_must_match(gpt_session):
    ids = _ids(2).numpy()
    for wrong in (ids.astype(np.float32), ids.astype(np.int32), ids.astype(np.float64)):
        with pytest.raises(ValueError, match=f"input 'ids' must be int64, got {wrong.dtype}"):
            gpt_session.run(None, {"ids": wrong})
    with pytest.raises(ValueError, match=r"missing input 'ids' \(shape \[N, 6\], int64\)"):
        gpt_session.run(None, {})


def test_out_of_range_ids_refused_at_run(gpt_session):
    for bad in (VOCAB, -1):
        ids = _ids(2).numpy()
        ids[1, 2] = bad
        with pytest.raises(ValueError, match=rf"node 'wte' \(embedding\): token id {bad} is "
                                             f"out of range for an embedding table of {VOCAB} "
                                             "rows"):
            gpt_session.run(None, {"ids": ids})


def test_empty_batch_runs(gpt_session):
    ys = gpt_session.run(None, {"ids": np.zeros((0, SEQ), np.int64)})
    assert [y.shape for y in ys] == [(0, SEQ, 5), (0, SEQ, VOCAB)]


def test_float_ids_into_embedding_refused_at_load():
    """A version-3 file whose embedding reads a float32 input reads, but does not load."""
    w = Writer()
    w.add_raw("t.weight", np.zeros((4, 3), np.float32))
    w.set_graph(one_node_graph("embedding", [None, 2], {"weight": "t.weight"}, name="t"))
    with pytest.raises(CdnnFormatError, match=r"node 't' \(embedding\): embedding ids must be "
                                              "an int64 or int32 array, got float32"):
        InferenceSession(w.to_bytes())


def test_input_of_another_dtype_refused_at_capture():
    """Capture declares float32, int64 and int32 inputs; a float16 one is refused, by name."""
    m = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(CdnnUnsupportedError, match="input 'input': dtype torch.float16, cdnn "
                                                   "runs float32 inputs and int64 or int32"):
        capture(m.half(), (torch.zeros(1, 4, dtype=torch.float16),))


def test_verify_and_run_commands_with_int_ids(tmp_path, capsys):
    """`cdnn verify` feeds random ids within the tables; `cdnn run` takes an int64 .npy."""
    from cdnn.cli import main
    from cdnn.verify import verify
    torch.manual_seed(0)
    model = TinyGPT().eval()
    compress(model, (_ids(1),)).save(tmp_path / "g.cdnn")
    free = {0: torch.export.Dim("batch", min=1, max=64)}
    torch.export.save(torch.export.export(model, (_ids(2),), dynamic_shapes=(free,)),
                      tmp_path / "g.pt2")
    result = verify(str(tmp_path / "g.cdnn"), str(tmp_path / "g.pt2"), batch=3)
    assert result["ok"]
    np.save(tmp_path / "ids.npy", _ids(2).numpy())
    assert main(["run", str(tmp_path / "g.cdnn"), "--input", str(tmp_path / "ids.npy")]) == 0
    assert f"shape [2, {SEQ}, 5]" in capsys.readouterr().out


def test_an_int_input_alone_makes_a_version_3_file():
    """The writer stamps the lowest version holding the file: int inputs need version 3."""
    w = Writer()
    w.set_graph({"inputs": [{"name": "ids", "dtype": "int32", "shape": [None, 2]}],
                 "nodes": [], "outputs": [{"name": "ids"}]})
    assert read(w.to_bytes()).version == 3
