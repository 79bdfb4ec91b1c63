"""The compressor: capture, recipes, prune, share, fine-tune, encode; read back exactly."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn.capture import capture, prepare_for_capture
from cdnn.compress import compress, fold_batchnorm
from cdnn.recipe import resolve
from cdnn_runtime import CdnnRecipeError, CdnnUnsupportedError
from cdnn_runtime.reader import read


class EveryOp(nn.Module):
    """A small net touching every op kind the capture knows."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=2)
        self.dw = nn.Conv2d(8, 8, 1, groups=8, bias=False)
        self.prelu = nn.PReLU(8)
        self.lrn = nn.LocalResponseNorm(3)
        self.pool = nn.AdaptiveAvgPool2d((2, 2))
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 5)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 2, ceil_mode=True)
        y = F.leaky_relu(self.conv2(x), 0.1)
        y = self.prelu(self.dw(y)) + y
        y = self.lrn(F.relu6(y))
        y = F.avg_pool2d(y, 3, stride=1, padding=1, count_include_pad=False)
        y = torch.cat([self.pool(y), torch.sigmoid(self.pool(y)) * 0.5], dim=1)
        y = torch.flatten(y, 1)
        y = self.drop(torch.tanh(self.fc1(y.reshape(y.shape[0], -1)[:, :64])))
        return F.log_softmax(F.gelu(self.fc2(y)), dim=1)


def trained_bn(model):
    """Give the BatchNorm layers non-trivial statistics."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 6 * 6, 4)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


def seeded(cls, seed=0):
    torch.manual_seed(seed)
    return cls()


class FcThen(nn.Module):
    """One linear layer, then `then(y, x)` of its output and the input: the small test models
    that need one compressible layer and some ops after it."""

    def __init__(self, then, n_in=4, n_out=4):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.then = then

    def forward(self, x):
        return self.then(self.fc(x), x)


def test_unsupported_op_is_named_before_any_work():
    bad = FcThen(lambda y, x: torch.fft.fft(y).real)
    with pytest.raises(CdnnUnsupportedError, match=r"aten\._fft|fft.*test_compress\.py"):
        compress(bad, torch.randn(2, 4))


def test_fold_batchnorm_keeps_outputs():
    model = trained_bn(seeded(Small)).eval()
    x = torch.randn(3, 1, 8, 8)
    before = model(x)
    work = prepare_for_capture(model)
    assert fold_batchnorm(work, (x,)) == 1
    assert isinstance(work.bn, nn.Identity)
    torch.testing.assert_close(work(x), before, rtol=1e-5, atol=1e-5)
    ops = [n["op"] for n in capture(work, (x,)).nodes]
    assert "batch_norm" not in ops


def test_compressed_file_holds_exact_codebook_values_at_surviving_positions():
    model = trained_bn(seeded(Small)).eval()
    x = torch.randn(2, 1, 8, 8)
    packed = compress(model, x, {"conv": {"density": 0.5, "bits": 3},
                                 "fc": {"density": 0.25, "bits": 2, "init": "linear"}})
    ref = dict(packed.reference_model().named_parameters())
    f = read(packed.to_bytes())
    for name, density, bits in (("conv.weight", 0.5, 3), ("fc.weight", 0.25, 2)):
        s = f.sparse(name)
        w = ref[name].detach().numpy()
        assert np.array_equal(s.to_dense(), w)
        assert s.nnz == round(density * w.size)
        assert len(np.unique(s.values())) <= 2 ** bits
        assert set(np.unique(s.values())) <= set(s.codebook.tolist())
    # the dense model the weights came from is the folded one; the file is its exact copy
    assert read(packed.to_bytes()).metadata["recipe"]["batchnorm_folded"] == 1


def test_float16_biases_are_stored_and_kept_exactly():
    from cdnn_runtime import InferenceSession
    model = trained_bn(seeded(Small)).eval()
    x = torch.randn(3, 1, 8, 8)
    plain = compress(model, x, {"conv": {"density": 0.5, "bits": 3}})
    half = compress(model, x, {"conv": {"density": 0.5, "bits": 3, "bias": "float16"}})
    f = read(half.to_bytes())
    assert f.tensor("conv.bias").dtype == "float16" and f.tensor("fc.bias").dtype == "float32"
    assert f.tensor("conv.bias").nbytes == 12 and \
        read(plain.to_bytes()).tensor("conv.bias").nbytes == 24
    ref = half.reference_model()
    stored = f.raw("conv.bias").astype(np.float32)
    assert np.array_equal(ref.conv.bias.detach().numpy(), stored)
    assert not np.array_equal(read(plain.to_bytes()).raw("conv.bias"), stored)
    with torch.no_grad():
        want = ref(x).numpy()
    got = InferenceSession(half.to_bytes())(x.numpy())
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    # ratios count a float16 bias as the float32 it stands for
    from cdnn_runtime.report import inspect_report
    assert inspect_report(f, half.nbytes)["dense_float32_bytes"] == \
        inspect_report(read(plain.to_bytes()), plain.nbytes)["dense_float32_bytes"] == \
        4 * sum(p.numel() for p in ref.parameters())
    conv = next(r for r in half.report()["layers"] if r["layer"] == "conv")
    assert conv["dense_bytes"] == 4 * (6 * 9 + 6)
    with pytest.raises(CdnnRecipeError, match="bias must be one of float32, float16"):
        compress(model, x, {"fc": {"bias": "int8"}})


def test_every_op_compresses_and_records_graph():
    model = trained_bn(seeded(EveryOp)).eval()
    x = torch.randn(2, 3, 12, 12)
    packed = compress(model, x, preset="deep-compression")
    f = read(packed.to_bytes())
    ops = {n["op"] for n in f.graph["nodes"]}
    assert {"conv2d", "max_pool2d", "leaky_relu", "prelu", "add", "relu6", "local_response_norm",
            "avg_pool2d", "adaptive_avg_pool2d", "cat", "sigmoid", "mul", "flatten", "tanh",
            "linear", "gelu", "log_softmax", "relu"} <= ops
    assert "batch_norm" not in ops and "dropout" not in ops
    sparse = {t.name for t in f.tensors if t.encoding == "sparse_codebook"}
    assert sparse == {"conv1.weight", "conv2.weight", "dw.weight", "fc1.weight", "fc2.weight"}
    assert f.graph["inputs"][0]["shape"] == [None, 3, 12, 12]


def test_same_model_same_bytes():
    a = compress(seeded(Small), torch.randn(2, 1, 8, 8)).to_bytes()
    b = compress(seeded(Small), torch.randn(2, 1, 8, 8)).to_bytes()
    assert a == b


def test_torch_prune_masks_and_names_are_kept():
    from torch.nn.utils import prune as tprune
    model = seeded(Small)
    tprune.l1_unstructured(model.fc, "weight", amount=0.7)
    mask = model.fc.weight_mask.clone().bool()
    packed = compress(model, torch.randn(2, 1, 8, 8), {"fc": {"density": 1.0, "bits": 8}})
    s = read(packed.to_bytes()).sparse("fc.weight")
    got = s.to_dense() != 0
    assert np.array_equal(got, mask.numpy())
    assert hasattr(model.fc, "weight_orig")  # the user's model is left as it was


def test_recipe_resolution():
    layers = {"conv1": "conv2d", "conv2": "conv2d", "fc1": "linear", "fc2": "linear"}
    s = resolve(layers, {"conv*": {"density": 0.3}, "conv2": {"bits": 4},
                         "kind:linear": {"quality": 1.5, "init": "random"}})
    assert s["conv1"]["density"] == 0.3 and s["conv1"]["bits"] == 8
    assert s["conv2"] == {"init": "kmeans++", "gap_bits": None, "density": 0.3, "bits": 4,
                          "bias": "float32"}
    assert s["fc1"]["quality"] == 1.5 and "density" not in s["fc1"] and s["fc1"]["bits"] == 5
    dc = resolve(layers)  # the LeNet-5 layer names: Deep Compression's table applies
    assert dc["conv1"]["density"] == 0.66 and dc["fc1"]["density"] == 0.08
    with pytest.raises(CdnnRecipeError, match="matches no layer"):
        resolve(layers, {"nope": {"bits": 3}})
    with pytest.raises(CdnnRecipeError, match="bits must be 1 to 8"):
        resolve(layers, {"fc1": {"bits": 9}})
    with pytest.raises(CdnnRecipeError, match="unknown setting"):
        resolve(layers, {"fc1": {"bitz": 3}})
    with pytest.raises(CdnnRecipeError, match="unknown preset"):
        resolve(layers, preset="zip")


def _toy_task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, 8, 8, generator=g)
    teacher = seeded(Small, 1).eval()
    with torch.no_grad():
        y = teacher(x).argmax(1)
    return x, y


def test_retraining_holds_masks_and_fine_tuning_moves_centroids():
    x, y = _toy_task()
    model = seeded(Small, 2)
    losses = []

    def train(m):
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()

    def evaluate(m):
        with torch.no_grad():
            loss = float(F.cross_entropy(m(x), y))
        losses.append(loss)
        return -loss

    packed = compress(model, x[:2], {"conv": {"density": 0.5, "bits": 2},
                                     "fc": {"density": 0.3, "bits": 2}},
                      train=train, evaluate=evaluate, prune_steps=2)
    scores = packed.scores
    assert scores["fine_tuned"] > scores["shared"]  # fine-tuning the centroids lowers the loss
    for name, layer in packed.layers.items():
        assert not np.allclose(layer.codebook, layer.codebook_before_fine_tune)
    f = read(packed.to_bytes())
    ref = dict(packed.reference_model().named_parameters())
    for name in ("conv.weight", "fc.weight"):
        s = f.sparse(name)
        assert np.array_equal(s.to_dense(), ref[name].detach().numpy())
        assert len(np.unique(s.values())) <= 4
        assert s.nnz == round({"conv.weight": 0.5, "fc.weight": 0.3}[name] * s.rows * s.n_cols)


def test_already_pruned_model_with_masks_skips_pruning_and_keeps_them():
    from cdnn.compress import prune
    model = trained_bn(seeded(Small, 3)).eval()
    x = torch.randn(2, 1, 8, 8)
    base = {"conv": {"density": 0.5, "bits": 8}, "fc": {"density": 0.25, "bits": 8}}
    folded = prepare_for_capture(model)
    fold_batchnorm(folded, (x,))
    settings = resolve({"conv": "conv2d", "fc": "linear"}, base)
    masks = prune(folded, settings, steps=1)
    calls = []
    # 3 bits where the pruning used 8: the same surviving positions, fewer centroids; the
    # training hook runs once (centroid fine-tuning), not once per pruning step
    packed = compress(folded, x, {"conv": {"bits": 3}, "fc": {"bits": 3}}, masks=masks,
                      train=lambda m: calls.append(1), prune_steps=3)
    assert len(calls) == 1
    f = read(packed.to_bytes())
    for name, mask in masks.items():
        s = f.sparse(name)
        assert np.array_equal(s.to_dense() != 0, mask.numpy())
        assert len(np.unique(s.values())) <= 8
    with pytest.raises(CdnnRecipeError, match="no mask for 'fc.weight'"):
        compress(folded, x, masks={"conv.weight": masks["conv.weight"]})
    with pytest.raises(CdnnRecipeError, match="has shape"):
        compress(folded, x, masks=dict(masks, **{"fc.weight": torch.ones(3, 3, dtype=bool)}))


def test_sensitivity_curves_and_picked_recipe():
    from cdnn.sensitivity import sensitivity
    x, y = _toy_task()
    model = seeded(Small, 1)  # the teacher itself: accuracy 1.0 unpruned

    def acc(m):
        with torch.no_grad():
            return float((m(x).argmax(1) == y).float().mean())

    s = sensitivity(model, acc, x[:2], densities=(0.5, 0.1, 0.01))
    assert s.baseline == 1.0 and set(s.curves) == {"conv", "fc"}
    assert all(len(c) == 3 for c in s.curves.values())
    assert s.curves["fc"][-1][1] < s.baseline  # 1% of the classifier cannot keep it
    picked = s.pick(budget=0.05)
    assert set(picked) == {"conv", "fc"} and all(0 < d <= 1 for d in picked.values())
    for layer, d in picked.items():
        if d < 1.0:
            assert dict(s.curves[layer])[d] >= s.baseline - 0.05
    assert s.recipe(0.05, bits=4)["fc"] == {"density": picked["fc"], "bits": 4}
    # the user's model is untouched
    assert torch.equal(model.fc.weight, seeded(Small, 1).fc.weight)
    packed = compress(model, x[:2], s.recipe(0.05, bits=4))
    assert packed.nbytes > 0
