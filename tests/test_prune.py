import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from cdnn.models import DEEP_COMPRESSION_DENSITY, lenet_300_100, seeded
from cdnn.prune import (
    apply_masks,
    density_schedule,
    hold_masks,
    layer_masks,
    magnitude_mask,
    masks_from_torch_prune,
)
from cdnn_runtime.errors import CdnnError, CdnnRecipeError


def _w(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


@pytest.mark.parametrize("density", [0.01, 0.08, 0.26, 0.5, 0.999, 1.0])
def test_density_keeps_exact_count_of_largest(density):
    w = _w((300, 100))
    m = magnitude_mask(w, density=density)
    assert m.dtype == torch.bool and m.shape == w.shape
    want = math.floor(density * w.numel() + 0.5)
    assert int(m.sum()) == want
    if 0 < want < w.numel():
        assert w[m].abs().min() >= w[~m].abs().max()


def test_density_ties_broken_by_flat_index():
    w = torch.tensor([[1.0, -2.0, 2.0], [2.0, 0.5, -2.0]])
    m = magnitude_mask(w, density=0.5)  # keep 3 of the four |w| == 2
    assert m.tolist() == [[False, True, True], [True, False, False]]
    assert torch.equal(magnitude_mask(w.clone(), density=0.5), m)


def test_zeros_never_kept():
    w = _w((50, 40), 1)
    w[w.abs() < 0.8] = 0
    nnz = int((w != 0).sum())
    m = magnitude_mask(w, density=1.0)
    assert torch.equal(m, w != 0)
    m = magnitude_mask(w, density=0.9)  # asks for more than survive
    assert int(m.sum()) == nnz and not m[w == 0].any()
    m = magnitude_mask(w, quality=0.0)
    assert torch.equal(m, w != 0)
    assert not magnitude_mask(torch.zeros(4, 4), density=1.0).any()


def test_quality_threshold():
    w = _w((200, 50), 2)
    for q in (0.0, 0.5, 1.0, 2.5):
        m = magnitude_mask(w, quality=q)
        thr = q * float(w.std(unbiased=False))
        assert torch.equal(m, (w.abs() > thr) & (w != 0))


@pytest.mark.parametrize("kwargs", [
    {}, {"density": 0.5, "quality": 1.0}, {"density": 0.0}, {"density": 1.5}, {"density": -0.1},
    {"density": float("nan")}, {"quality": -1.0}, {"quality": float("inf")}, {"density": "half"},
    {"density": True},
])
def test_bad_settings(kwargs):
    with pytest.raises(CdnnRecipeError):
        magnitude_mask(_w((4, 4)), **kwargs)
    assert issubclass(CdnnRecipeError, CdnnError)


def test_nan_weights_and_int_weights_rejected():
    with pytest.raises(CdnnRecipeError):
        magnitude_mask(torch.tensor([1.0, float("nan")]), density=0.5)
    with pytest.raises(CdnnRecipeError):
        magnitude_mask(torch.tensor([1, 2]), density=0.5)


def test_density_schedule():
    s = density_schedule(0.08, 4)
    assert len(s) == 4 and s[-1] == 0.08
    assert all(a > b for a, b in zip([1.0] + s, s))
    ratios = [b / a for a, b in zip([1.0] + s, s)]
    assert max(ratios) - min(ratios) < 1e-12
    assert density_schedule(0.3, 1) == [0.3]
    for bad in ((0.0, 3), (1.2, 3), (0.5, 0), (0.5, 2.0)):
        with pytest.raises(CdnnRecipeError):
            density_schedule(*bad)


def _batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        yield torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)


def test_masks_held_through_adam_training():
    model = seeded(lenet_300_100, 0)
    masks = layer_masks(model, DEEP_COMPRESSION_DENSITY["lenet-300-100"])
    assert set(masks) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    names_before = list(model.state_dict())
    # Optimizer built before holding, with weight decay and momentum state from dense steps.
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for x, y in _batches(2, 1):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    holder = hold_masks(model, masks)
    for name, m in masks.items():
        assert not model.get_parameter(name)[~m].any()
    fc1_before = model.fc1.weight.detach().clone()
    for x, y in _batches(5, 2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        assert not model.fc1.weight.grad[~masks["fc1.weight"]].any()
        opt.step()
        for name, m in masks.items():
            assert not model.get_parameter(name)[~m].any(), name
    assert not torch.equal(model.fc1.weight, fc1_before)  # kept weights did train
    holder.remove()
    assert list(model.state_dict()) == names_before
    assert "fc1.weight" in dict(model.named_parameters())
    for name, m in masks.items():
        assert not model.get_parameter(name)[~m].any()
    # After remove, nothing holds the zeros any more.
    for x, y in _batches(1, 3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert model.fc1.weight[~masks["fc1.weight"]].any()


def test_hold_allows_two_forwards_before_backward():
    model = seeded(lenet_300_100, 1)
    masks = layer_masks(model, {"fc1": 0.1})
    with hold_masks(model, masks):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        (x1, y1), (x2, y2) = _batches(2)
        loss = (nn.functional.cross_entropy(model(x1), y1)
                + nn.functional.cross_entropy(model(x2), y2))
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.fc1.weight.add_(1.0)  # a user edit between steps
        model(x1)
        assert not model.fc1.weight[~masks["fc1.weight"]].any()


def test_apply_masks_and_bad_masks():
    model = seeded(lenet_300_100, 2)
    masks = layer_masks(model, {"fc2": 0.2})
    apply_masks(model, {"fc2.weight": masks["fc2.weight"].float()})
    assert int((model.fc2.weight != 0).sum()) == int(masks["fc2.weight"].sum())
    with pytest.raises(CdnnRecipeError):
        apply_masks(model, {"fc9.weight": masks["fc2.weight"]})
    with pytest.raises(CdnnRecipeError):
        apply_masks(model, {"fc1.weight": masks["fc2.weight"]})
    with pytest.raises(CdnnRecipeError):
        layer_masks(model, {"nope": 0.5})


def test_masks_from_torch_prune():
    model = seeded(lenet_300_100, 3)
    tprune.l1_unstructured(model.fc1, "weight", amount=0.9)
    tprune.l1_unstructured(model.fc1, "weight", amount=0.5)  # a second pass: PruningContainer
    tprune.random_unstructured(model.fc3, "bias", amount=0.3)
    assert "fc1.weight_orig" in dict(model.named_parameters())
    masks, weights = masks_from_torch_prune(model)
    assert set(masks) == {"fc1.weight", "fc3.bias"} == set(weights)
    assert masks["fc1.weight"].dtype == torch.bool
    assert torch.equal(masks["fc1.weight"], model.fc1.weight_mask != 0)
    assert int(masks["fc1.weight"].sum()) == round(0.1 * 784 * 300 * 0.5)
    assert torch.equal(weights["fc1.weight"], model.fc1.weight_orig * model.fc1.weight_mask)
    assert torch.equal(weights["fc3.bias"], model.fc3.bias.detach())
    # The masks apply under the user's names once torch's reparametrization is removed.
    tprune.remove(model.fc1, "weight")
    tprune.remove(model.fc3, "bias")
    holder = hold_masks(model, masks)
    holder.remove()
    assert torch.equal(model.fc1.weight.detach(), weights["fc1.weight"])
    assert masks_from_torch_prune(seeded(lenet_300_100, 0)) == ({}, {})
