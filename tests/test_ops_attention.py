"""Attention of format version 3 against PyTorch: matmul of activations, attention and
masked_fill kernels on random and edge inputs, the vocabulary's rules, and capture-compress-run
of PyTorch's attention modules and of functional attention from a batch-1 example."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn import compress
from cdnn.capture import capture
from cdnn_runtime import CdnnFormatError, CdnnUnsupportedError, InferenceSession
from cdnn_runtime.graph import OPS, graph_version, normalize_attrs
from cdnn_runtime.kernels import attention

NEW_OPS = ("matmul", "attention", "masked_fill")


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(y, ref, rtol=1e-5):
    ref = ref.numpy() if isinstance(ref, torch.Tensor) else ref
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y[np.isinf(ref)], ref[np.isinf(ref)])
    ok = np.isfinite(ref)
    scale = np.abs(ref[ok]).max() if ok.any() else 1.0
    np.testing.assert_allclose(y[ok], ref[ok], rtol=0, atol=rtol * max(scale, 1e-30))


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [((2, 3, 4, 5), (2, 3, 5, 6)), ((2, 1, 4, 5), (3, 5, 2)),
                                  ((3, 4), (4,)), ((4,), (2, 4, 3)), ((0, 4, 5), (0, 5, 2)),
                                  ((2, 4, 5), (5, 3))])
def test_matmul_broadcasts_like_torch(a, b):
    ta, tb = _randn(*a), _randn(*b, seed=1)
    _close(attention.matmul(ta.numpy(), tb.numpy()), torch.matmul(ta, tb))


def test_matmul_takes_non_contiguous_operands_and_refuses_mismatched_ones():
    a, b = _randn(2, 5, 4), _randn(2, 6, 5, seed=1)
    _close(attention.matmul(a.numpy().transpose(0, 2, 1), b.numpy().transpose(0, 2, 1)),
           torch.matmul(a.transpose(1, 2), b.transpose(1, 2)))
    with pytest.raises(ValueError, match=r"matmul of shapes \[2, 5, 4\] and \[2, 6, 5\]"):
        attention.matmul(a.numpy(), b.numpy())


def _masks(shape_l_s):
    bool_mask = _randn(*shape_l_s, seed=5) > -0.5
    return {"none": (None, None),
            "float": (_randn(*shape_l_s, seed=4), None),
            "bool": (bool_mask, torch.where(bool_mask, 0.0, float("-inf")))}


@pytest.mark.parametrize("mask_kind, causal", [("none", False), ("none", True),
                                              ("float", False), ("bool", False)])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_attention_matches_torch(mask_kind, causal, scale):
    q, k, v = _randn(2, 3, 5, 8), _randn(2, 3, 7, 8, seed=1), _randn(2, 3, 7, 6, seed=2)
    torch_mask, additive = _masks((5, 7))[mask_kind]
    additive = torch_mask if additive is None else additive
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=torch_mask, is_causal=causal,
                                         scale=scale)
    used = scale if scale is not None else 8 ** -0.5
    got = attention.attention(q.numpy(), k.numpy(), v.numpy(), used, causal,
                              None if additive is None else additive.numpy())
    _close(got, ref)


def test_attention_of_fully_masked_rows_non_contiguous_and_empty_batch():
    q, k, v = _randn(2, 4, 8), _randn(2, 6, 8, seed=1), _randn(2, 6, 3, seed=2)
    keep = torch.ones(4, 6, dtype=torch.bool)
    keep[1] = False  # a query that may attend to nothing
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    additive = torch.where(keep, 0.0, float("-inf")).numpy()
    got = attention.attention(q.numpy(), k.numpy(), v.numpy(), 8 ** -0.5, mask=additive)
    _close(got, ref)
    assert np.all(got[:, 1] == 0)
    kt = k.transpose(1, 2).contiguous().transpose(1, 2)  # same values, another layout
    got = attention.attention(q.numpy(), kt.numpy(), v.numpy(), 8 ** -0.5, causal=True)
    _close(got, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    empty = np.zeros((0, 4, 8), np.float32)
    assert attention.attention(empty, empty, empty, 1.0).shape == (0, 4, 8)


def test_attention_propagates_nan_like_torch_and_checks_shapes():
    q, k, v = _randn(1, 3, 4), _randn(1, 5, 4, seed=1), _randn(1, 5, 2, seed=2)
    v[0, 2, 1] = float("nan")
    _close(attention.attention(q.numpy(), k.numpy(), v.numpy(), 0.5),
           F.scaled_dot_product_attention(q, k, v, scale=0.5))
    with pytest.raises(ValueError, match="q and k need one feature size"):
        attention.attention(q.numpy(), v.numpy(), v.numpy(), 0.5)


def test_masked_fill_matches_torch_and_refuses_a_growing_mask():
    x = _randn(2, 3, 4)
    mask = torch.triu(torch.ones(3, 4, dtype=torch.bool), 1)
    for value in (float("-inf"), 0.0, 2.5, float("nan")):
        _close(attention.masked_fill(x.numpy(), mask.numpy(), value), x.masked_fill(mask, value))
    with pytest.raises(ValueError, match="does not broadcast to the value"):
        attention.masked_fill(x.numpy(), np.ones((5, 3, 4), np.float32), 0.0)


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

def test_the_ops_are_version_3():
    assert all(OPS[op].since == 3 for op in NEW_OPS)
    assert graph_version({"nodes": [{"op": "linear"}, {"op": "attention"}]}) == 3
    assert normalize_attrs("attention", {"scale": 0.5}, "here") == {"scale": 0.5,
                                                                     "causal": False}


@pytest.mark.parametrize("op, node, attrs, message", [
    ("attention", {"inputs": ["q", "k", "v", "m"], "params": {"mask": "w"}}, {"scale": 1.0},
     "a mask as input 4 or as param 'mask', not both"),
    ("attention", {"inputs": ["q", "k", "v"]}, {"scale": 0.0}, "scale 0.0 is not above 0"),
    ("masked_fill", {"params": {"mask": "w", "value": "m"}}, {}, r"value of shape \[2\]"),
    ("matmul", {"inputs": ["a", "b"]}, {"reverse": True}, "matmul with reverse needs param"),
])
def test_the_vocabulary_checks_its_rules(op, node, attrs, message):
    node = {"op": op, "inputs": ["a"], "outputs": ["y"], "params": {}, **node}
    attrs = normalize_attrs(op, attrs, "node")
    with pytest.raises(CdnnFormatError, match=message):
        OPS[op].check(node, attrs, {"w": {"shape": [1]}, "m": {"shape": [2]}}, "node")


# ---------------------------------------------------------------------------------------------
# Capture, compress, run
# ---------------------------------------------------------------------------------------------

def _run_against_reference(packed, shapes, batches=(1, 3)):
    """The file's outputs at each batch size within 1e-4 (of the largest output) of the
    decompressed reference; `shapes` the per-sample shape of each input."""
    sess = InferenceSession(packed.to_bytes())
    names = [i.name for i in sess.get_inputs()]
    for batch in batches:
        xs = [_randn(batch, *s, seed=batch + 10 * i) for i, s in enumerate(shapes)]
        with torch.no_grad():
            refs = packed.reference_model()(*xs)
        outs = sess.run(None, {n: x.numpy() for n, x in zip(names, xs)})
        refs = [r for r in (refs if isinstance(refs, (tuple, list)) else [refs])
                if r is not None]
        assert len(outs) == len(refs)
        for y, ref in zip(outs, refs):
            _close(y, ref, rtol=1e-4)


def _compress(model, shapes, preset="deep-compression"):
    return compress(model, tuple(_randn(1, *s, seed=7 + i) for i, s in enumerate(shapes)),
                    preset=preset)


class _SeqFirst(nn.Module):
    """A module of `[tokens, batch, features]` inputs run on `[batch, tokens, features]`."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x.transpose(0, 1))
        return out.transpose(0, 1)


class _MHASeqFirst(nn.Module):
    """nn.MultiheadAttention with batch_first False, both outputs (attention weights too)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4)

    def forward(self, x):
        t = x.transpose(0, 1)
        mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
        out, weights = self.attn(t, t, t, attn_mask=mask)
        return out.transpose(0, 1), weights


class _Decoder(nn.Module):
    """A causal decoder layer reading a memory (a second input)."""

    def __init__(self, norm_first, batch_first):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(32, 4, 64, dropout=0.0, norm_first=norm_first,
                                                batch_first=batch_first)
        self.batch_first = batch_first

    def forward(self, x, memory):
        if not self.batch_first:
            x, memory = x.transpose(0, 1), memory.transpose(0, 1)
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[0 if not self.batch_first
                                                                      else 1])
        out = self.layer(x, memory, tgt_mask=mask, tgt_is_causal=True)
        return out if self.batch_first else out.transpose(0, 1)


class _Functional(nn.Module):
    """Attention written out: projections as `x @ weight.t()`, is_causal, a boolean and a
    float mask, matmul of activations with a masked_fill of a folded triu mask, a raw matmul."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16, bias=False)
        self.w = nn.Parameter(_randn(16, 16, seed=3) * 0.2)

    def forward(self, x):
        q = self.q(x).unflatten(-1, (2, 8)).transpose(1, 2)
        k = (x @ self.k.weight.t()).unflatten(-1, (2, 8)).transpose(1, 2)
        v = torch.matmul(x, self.w).unflatten(-1, (2, 8)).transpose(1, 2)
        keep = torch.tril(torch.ones(6, 6)).bool()
        bias = torch.arange(6.0)[None, :] * 0.1
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        b = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.2)
        c = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        scores = (q @ k.transpose(-2, -1)).masked_fill(~keep, float("-inf"))
        d = torch.matmul(scores.softmax(-1), v)
        e = torch.bmm(x, x.transpose(1, 2)).softmax(-1) @ x
        return (a + b + c + d).transpose(1, 2).flatten(2) + e


CASES = {
    "encoder, 2 layers, batch_first": (
        lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0,
                                                                 batch_first=True), 2,
                                      enable_nested_tensor=False), [(6, 32)]),
    "encoder layer, norm_first, sequence first": (
        lambda: _SeqFirst(nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, norm_first=True,
                                                     activation="gelu")), [(6, 32)]),
    "decoder layer, causal, batch_first": (lambda: _Decoder(False, True), [(5, 32), (7, 32)]),
    "decoder layer, norm_first, sequence first": (lambda: _Decoder(True, False),
                                                  [(5, 32), (7, 32)]),
    "multihead attention, sequence first, weights": (_MHASeqFirst, [(5, 16)]),
    "functional attention": (_Functional, [(6, 16)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_attention_models_capture_from_batch_one_and_run_batches_of_one_and_three(name):
    make, shapes = CASES[name]
    torch.manual_seed(0)
    packed = _compress(make().eval(), shapes)
    ops = {n["op"] for n in packed.file.graph["nodes"]}
    assert "attention" in ops or "matmul" in ops
    _run_against_reference(packed, shapes)


def test_projections_are_compressed_linears_and_the_encoder_runs_the_fast_path_free():
    """Every projection of the attention is a compressed layer; `x @ weight.t()` of a module
    is its linear, `x @ parameter` a raw matmul."""
    make, shapes = CASES["encoder, 2 layers, batch_first"]
    packed = _compress(make().eval(), shapes)
    layers = {n["name"] for n in packed.file.graph["nodes"] if n["op"] == "linear"}
    assert {"layers.0.self_attn.q_proj", "layers.1.self_attn.v_proj",
            "layers.1.self_attn.out_proj", "layers.0.linear2"} <= layers
    cap = capture(_Functional().eval(), (_randn(1, 6, 16),))
    ops = {n["name"]: n["op"] for n in cap.nodes}
    assert ops["k"] == "linear" and cap.weights["k.weight"] == "linear"
    assert sum(op == "matmul" for op in ops.values()) == 5  # x @ w, 2 of q k^T v, bmm, @ x
    assert sum(op == "attention" for op in ops.values()) == 3
    assert "masked_fill" in ops.values()


class _Dropout(nn.Module):
    def forward(self, x):
        return F.scaled_dot_product_attention(x, x, x, dropout_p=0.5)


@pytest.mark.parametrize("model, message", [(_Dropout, "attention with dropout")])
def test_unsupported_forms_name_the_op_and_line(model, message):
    with pytest.raises(CdnnUnsupportedError, match=message) as info:
        capture(model().eval(), (_randn(1, 4, 4),))
    assert "test_ops_attention.py" in str(info.value)


def test_multihead_attention_with_a_key_bias_is_refused_before_any_work():
    model = nn.MultiheadAttention(16, 4, add_bias_kv=True, batch_first=True)
    with pytest.raises(CdnnUnsupportedError, match="add_bias_kv or add_zero_attn"):
        _compress(model, [(5, 16)])


class _MaskInputs(nn.Module):
    """Masks fed at run time as float32 inputs: an additive attention mask per sample and
    MultiheadAttention's key_padding_mask."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x, mask, padding):
        q = x.unflatten(-1, (2, 8)).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, q, q, attn_mask=mask.unsqueeze(1))
        b = self.attn(x, x, x, key_padding_mask=padding, need_weights=False)[0]
        return a.transpose(1, 2).flatten(2) + b


def test_masks_fed_as_inputs_are_the_fourth_input_of_attention():
    packed = _compress(_MaskInputs().eval(), [(6, 16), (6, 6), (6,)])
    nodes = [n for n in packed.file.graph["nodes"] if n["op"] == "attention"]
    assert len(nodes) == 2 and all(len(n["inputs"]) == 4 for n in nodes)
    _run_against_reference(packed, [(6, 16), (6, 6), (6,)])
