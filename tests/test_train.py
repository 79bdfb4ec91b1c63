"""The default training loop: Adam, optional cosine schedule, seeded loaders."""

import pytest
import torch

from cdnn.train import accuracy, fit, loader
from cdnn_runtime.errors import CdnnArgumentError


def toy(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


@pytest.mark.parametrize("schedule", [None, "cosine"])
def test_fit_learns_a_separable_toy_task(schedule):
    x, y = toy()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    before = accuracy(model, x, y)
    last = fit(model, loader(x, y, 64, seed=1), epochs=20, lr=1e-2, schedule=schedule)
    assert accuracy(model, x, y) > max(before, 0.9)
    assert last < 0.3


def test_cosine_schedule_ends_near_zero_rate():
    x, y = toy()
    seen = []

    class Spy(torch.optim.Adam):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    model = torch.nn.Linear(8, 2)
    real = torch.optim.Adam
    torch.optim.Adam = Spy
    try:
        fit(model, loader(x, y, 64, seed=1), epochs=2, lr=0.1, schedule="cosine")
    finally:
        torch.optim.Adam = real
    assert len(seen) == 16 and seen[0] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(seen, seen[1:])) and seen[-1] < 0.1 * 0.01


def test_unknown_schedule_is_refused():
    x, y = toy()
    with pytest.raises(CdnnArgumentError, match="schedule must be None or 'cosine'"):
        fit(torch.nn.Linear(8, 2), loader(x, y), schedule="step")
