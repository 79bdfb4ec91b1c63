"""Capture: a batch-1 example gives a file that runs any batch; a fixed batch is named."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from cdnn import compress
from cdnn.capture import FixedBatchWarning, UncompressedWeightWarning, capture
from cdnn_runtime import CdnnUnsupportedError, InferenceSession


class _ConvFc(nn.Module):
    """conv, then a flatten written as `how` says, then a linear layer."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3 * 6 * 6, 5)

    def forward(self, x):
        y = self.conv(x)
        if self.how == "view_size":
            y = y.view(y.size(0), -1)
        elif self.how == "reshape_shape_after_permute":
            y = y.permute(0, 2, 3, 1).reshape(y.shape[0], -1)
        elif self.how == "torch_flatten":
            y = torch.flatten(y, 1)
        elif self.how == "method_flatten":
            y = y.flatten(1)
        elif self.how == "fixed":
            y = y.reshape(1, -1)  # the line that fixes the batch
        return self.fc(y)


def _model(how):
    torch.manual_seed(0)
    return _ConvFc(how).eval()


@pytest.mark.parametrize("how", ["view_size", "reshape_shape_after_permute", "torch_flatten",
                                 "method_flatten"])
def test_batch_one_example_gives_a_free_batch(how):
    model = _model(how)
    example = torch.randn(1, 2, 8, 8)
    cap = capture(model, example)
    assert cap.graph["inputs"][0]["shape"] == [None, 2, 8, 8]
    packed = compress(model, example, preset="lossless-ish")
    sess = InferenceSession(packed.to_bytes())
    assert sess.get_inputs()[0].shape[0] is None
    for batch in (1, 3):
        x = torch.randn(batch, 2, 8, 8, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = packed.reference_model()(x).numpy()
        y = sess(x.numpy())
        assert y.shape == (batch, 5)
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_a_fixed_batch_converts_with_a_warning_naming_the_line():
    model = _model("fixed")
    example = torch.randn(1, 2, 8, 8)
    with pytest.warns(FixedBatchWarning, match=r"fixes the batch size at \S*test_capture\.py, "
                                               r"line \d+, in forward: y = y\.reshape\(1, -1\)"):
        cap = capture(model, example)
    assert cap.graph["inputs"][0]["shape"] == [1, 2, 8, 8]
    with pytest.warns(FixedBatchWarning):
        packed = compress(model, example, preset="lossless-ish")
    sess = InferenceSession(packed.to_bytes())
    assert sess(example.numpy()).shape == (1, 5)
    with pytest.raises(ValueError, match=r"expected \[1, 2, 8, 8\]"):
        sess(np.zeros((3, 2, 8, 8), np.float32))


class _Ghost(nn.Module):
    """GhostNet-style: a conv, a cheap depthwise conv, cat, then chunk and split."""

    def __init__(self):
        super().__init__()
        self.primary = nn.Conv2d(4, 6, 3, padding=1)
        self.cheap = nn.Conv2d(6, 6, 3, padding=1, groups=6)

    def forward(self, x):
        y = self.primary(x)
        a, b = torch.chunk(y, 2, dim=1)
        p, _, r = torch.split(torch.cat([y, self.cheap(y)], 1), [5, 3, 4], dim=1)
        return a * torch.sigmoid(b), p + 1, r


def test_nodes_with_several_outputs_run_and_stamp_version_3():
    torch.manual_seed(1)
    model = _Ghost().eval()
    packed = compress(model, torch.randn(1, 4, 8, 8), preset="lossless-ish")
    f = packed.file
    assert f.version == 3
    splits = [n for n in f.graph["nodes"] if n["op"] == "split"]
    assert [n["attrs"]["sizes"] for n in splits] == [[3, 3], [5, 3, 4]]
    assert [len(n["outputs"]) for n in splits] == [2, 3]
    sess = InferenceSession(packed.to_bytes())
    x = torch.randn(3, 4, 8, 8)
    with torch.no_grad():
        refs = packed.reference_model()(x)
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert len(outs) == 3
    for y, ref in zip(outs, refs):
        np.testing.assert_allclose(y, ref.numpy(), rtol=0, atol=1e-5 * ref.abs().max().item())


def test_a_model_of_version_2_ops_is_written_as_version_2():
    packed = compress(_model("view_size"), torch.randn(1, 2, 8, 8), preset="lossless-ish")
    assert packed.file.version == 2


def test_a_split_of_the_batch_is_refused_with_its_line():
    class BatchSplit(nn.Module):
        def forward(self, x):
            a, b = torch.split(x, 1, dim=0)
            return a + b

    with pytest.raises(CdnnUnsupportedError, match=r"aten\.split\.Tensor.*batch dimension.*"
                                                   r"test_capture\.py"):
        capture(BatchSplit(), torch.randn(2, 3))


class _Scaled(nn.Module):
    """Parameters reshaped in forward, and a constant built from arange: folded at capture."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gamma = nn.Parameter(torch.randn(4))
        self.beta = nn.Parameter(torch.randn(4))

    def forward(self, x):
        y = self.gamma[:, None, None] * self.conv(x) + self.beta.view(-1, 1, 1)
        return y + torch.arange(6, dtype=torch.float32)


def test_ops_on_parameters_only_are_folded_at_capture():
    torch.manual_seed(2)
    model = _Scaled().eval()
    packed = compress(model, torch.randn(1, 3, 8, 8), preset="lossless-ish")
    assert [n["op"] for n in packed.file.graph["nodes"]] == ["conv2d", "mul", "add", "add"]
    others = [packed.file.raw(n["params"]["other"]) for n in packed.file.graph["nodes"][1:]]
    assert [o.shape for o in others] == [(4, 1, 1), (4, 1, 1), (6,)]
    sess = InferenceSession(packed.to_bytes())
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        ref = packed.reference_model()(x).numpy()
    np.testing.assert_allclose(sess(x.numpy()), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_a_parameter_where_a_computed_value_is_needed_names_the_op():
    class WeightIntoCat(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(2, 3))

        def forward(self, x):
            return torch.cat([x, self.w], 1)

    with pytest.raises(CdnnUnsupportedError, match=r"op aten\.cat\.default.*input 'p_w' is "
                                                   r"not a tensor value.*test_capture\.py"):
        capture(WeightIntoCat(), torch.randn(2, 3))


def test_a_weight_that_is_not_a_modules_weight_is_stored_raw_with_a_warning():
    class BareWeights(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 4))
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            return self.fc(torch.nn.functional.linear(x, self.w))

    model = BareWeights().eval()
    with pytest.warns(UncompressedWeightWarning, match="'w' is the weight of a linear"):
        packed = compress(model, torch.randn(1, 4), preset="lossless-ish")
    f = packed.file
    assert f.tensor("w").encoding == "raw"
    assert f.tensor("fc.weight").encoding == "sparse_codebook"
    x = torch.randn(3, 4)
    with torch.no_grad():
        ref = packed.reference_model()(x).numpy()
    np.testing.assert_allclose(InferenceSession(packed.to_bytes())(x.numpy()), ref, rtol=0,
                               atol=1e-5 * np.abs(ref).max())


def test_a_refusal_raised_in_forward_is_not_taken_for_a_fixed_batch():
    """cdnn's own CdnnError from a module's forward (cdnn.mha refusing a 3-D mask) stops
    capture as it is, without a FixedBatchWarning first."""
    import warnings

    from cdnn.capture import prepare_for_capture

    class PerHeadMask(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            mask = torch.zeros(4, 5, 5)
            return self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]

    with warnings.catch_warnings():
        warnings.simplefilter("error", FixedBatchWarning)
        with pytest.raises(CdnnUnsupportedError, match="3-D attn_mask"):
            capture(prepare_for_capture(PerHeadMask().eval()), torch.randn(1, 5, 8))
