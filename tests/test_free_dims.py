"""Free dims besides the batch (format v3): a sequence length declared free at capture
(`dynamic_dims`, `--free-dim`) stays free in the file up to a maximum the runtime checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cdnn import compress
from cdnn.capture import CdnnCaptureError
from cdnn.zoo_sequence import SEQUENCE_FAMILIES
from cdnn_runtime import InferenceSession
from test_cli import call


def _close(sess, ref_model, feeds):
    """The session's outputs within 1e-4 (of the largest) of the reference model's."""
    names = [i.name for i in sess.get_inputs()]
    ys = sess.run(None, {n: x.numpy() for n, x in zip(names, feeds)})
    with torch.no_grad():
        refs = ref_model(*feeds)
    refs = refs if isinstance(refs, tuple) else (refs,)
    for y, ref in zip(ys, refs):
        ref = ref.numpy()
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    fam = SEQUENCE_FAMILIES["gpt"]
    return compress(fam.tiny().eval(), (fam.example(),), dynamic_dims={"ids": {1: "seq"}})


def test_a_free_sequence_runs_any_length_up_to_the_position_table(gpt):
    sess = InferenceSession(gpt.to_bytes())
    spec = gpt.file.graph["inputs"][0]
    assert spec["shape"] == [None, 12]  # the traced length, checked at load
    assert spec["free"] == [{"dim": 1, "name": "seq", "max": 16}]  # wpe has 16 rows
    assert sess.get_inputs()[0].shape == [None, "seq"]
    assert sess.get_outputs()[0].shape == [None, "seq", 50]
    ref = gpt.reference_model().eval()
    g = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        for length in (5, 16):
            _close(sess, ref, [torch.randint(0, 50, (batch, length), generator=g)])
    # the position table stays a compressed table (an arange op, not a folded constant)
    ops = [n["op"] for n in gpt.file.graph["nodes"]]
    assert "arange" in ops and gpt.file.tensor("wpe.weight").encoding == "sparse_codebook"
    for bad in (17, 0):
        with pytest.raises(ValueError, match=rf"input 'ids' dim 1 \(seq\) is {bad}; the model "
                                             "takes 1 to 16"):
            sess.run(None, {"ids": np.zeros((1, bad), np.int64)})


class _ViewAttention(nn.Module):
    """Attention written as people write it: `view(B, T, H, D)`, `transpose`, a causal
    mask from is_causal, `view(B, T, C)` back, the last step picked with `[:, -1]`; two
    inputs sharing the free length; a declared maximum."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.out = nn.Linear(16, 16)

    def forward(self, x, bias):
        B, T, C = x.shape
        q, k, v = self.qkv(x + bias).split(C, dim=2)
        q, k, v = (t.view(B, T, 4, C // 4).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = self.out(y.transpose(1, 2).contiguous().view(B, T, C))
        return y, y[:, -1]


def test_reshapes_over_a_free_dim_and_inputs_that_share_it():
    torch.manual_seed(0)
    model = _ViewAttention().eval()
    example = (torch.randn(1, 6, 16), torch.randn(1, 6, 16))
    packed = compress(model, example, preset="lossless-ish",
                      dynamic_dims={"x": {1: ("seq", 40)}, "bias": {1: "seq"}})
    assert [i["free"] for i in packed.file.graph["inputs"]] == \
        [[{"dim": 1, "name": "seq", "max": 40}], [{"dim": 1, "name": "seq", "max": 2**20}]]
    sess = InferenceSession(packed.to_bytes())
    assert [o.shape for o in sess.get_outputs()] == [[None, "seq", 16], [None, 16]]
    ref = packed.reference_model().eval()
    for batch, length in ((1, 3), (3, 40), (2, 6)):
        _close(sess, ref, [torch.randn(batch, length, 16), torch.randn(batch, length, 16)])
    with pytest.raises(ValueError, match=r"inputs disagree on seq \(5 and 4\)"):
        sess.run(None, {"x": np.zeros((1, 5, 16), np.float32),
                        "bias": np.zeros((1, 4, 16), np.float32)})


class _FixesLength(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6 * 4, 3)

    def forward(self, x):
        return self.fc(x.reshape(x.shape[0], 6 * 4))


@pytest.mark.parametrize("model, example, dims, message", [
    (_FixesLength(), torch.randn(1, 6, 4), {"x": {1: "seq"}},
     r"cannot be traced with the dims declared free \(dynamic_dims\): torch.export says"),
    (_FixesLength(), torch.randn(1, 1, 4), {"x": {1: "seq"}},
     "input 'x' dim 1 is declared free but the example has size 1 there"),
    (_FixesLength(), torch.randn(1, 6, 4), {"ids": {1: "seq"}},
     r"dynamic_dims names input 'ids', which the model does not have \(its inputs: x\)"),
    (_FixesLength(), torch.randn(1, 6, 4), {"x": {0: "seq"}},
     r"dim 0 is not a dim of the input after the batch \(shape \[1, 6, 4\]\)"),
    (_FixesLength(), torch.randn(1, 6, 4), {0: {1: ("seq", 5)}},
     "input 0 dim 1: max 5 is below the example's size 6"),
])
def test_dims_that_cannot_be_free_are_refused_before_any_work(model, example, dims, message):
    with pytest.raises(CdnnCaptureError, match=message):
        compress(model.eval(), (example,), dynamic_dims=dims)


def test_command_line_compress_inspect_run_verify_of_token_ids(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(SEQUENCE_FAMILIES["gpt"].tiny().state_dict(), tmp_path / "gpt.pt")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ids.npy", rng.integers(0, 50, (1, 12)))
    np.save(tmp_path / "ids3.npy", rng.integers(0, 50, (3, 7)))
    out = tmp_path / "gpt.cdnn"
    model = "cdnn.zoo_sequence:gpt_tiny"
    code, text, err = call(capsys, "compress", tmp_path / "gpt.pt", "--model", model,
                            "--example", tmp_path / "ids.npy", "--free-dim", "ids:1:seq",
                            "-o", out, "--quiet")
    assert code == 0, err
    code, text, _ = call(capsys, "inspect", out)
    assert code == 0 and "inputs ids [N, seq<=16]; outputs output [N, seq, 50]" in text
    tied = [line.split()[:2] for line in text.splitlines() if "embedding+linear" in line]
    assert tied == [["head", "embedding+linear"]]  # the tied table, once, named after it
    code, text, _ = call(capsys, "run", out, "--input", tmp_path / "ids3.npy", "--output",
                          tmp_path / "y.npy")
    assert code == 0 and np.load(tmp_path / "y.npy").shape == (3, 7, 50)
    for extra in ([], ["--inputs", tmp_path / "ids3.npy"]):
        code, text, err = call(capsys, "verify", out, "--against", tmp_path / "gpt.pt",
                                "--model", model, *extra)
        assert code == 0 and "OK: output" in text, text + err
    code, _, err = call(capsys, "compress", tmp_path / "gpt.pt", "--model", model,
                         "--example", tmp_path / "ids.npy", "--free-dim", "ids:seq", "-o",
                         tmp_path / "x.cdnn")
    assert code == 2 and "expected [INPUT:]DIM:NAME[:MAX] (e.g. ids:1:seq:512)" in err
