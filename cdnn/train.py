"""A small default training loop for users who have a DataLoader (and for our benchmarks).

`fit(model, loader, loss, epochs, lr)` trains with Adam; use `functools.partial` to turn it
into the `train(model)` hook that `cdnn.compress` calls after each pruning step and after
clustering (it builds its optimizer over `model.parameters()` on every call, as a user's loop
would, so cdnn's masks and weight sharing hold whatever the optimizer does).
"""

import math

import torch

from cdnn_runtime.errors import CdnnArgumentError


def fit(model, loader, loss=None, epochs=1, lr=1e-3, *, weight_decay=0.0, schedule=None,
        log=None):
    """Train `model` for `epochs` passes over `loader` with Adam; returns the last mean loss.

    `schedule` is None (constant `lr`) or "cosine": the rate falls from `lr` to 0 along a half
    cosine over all the steps of this call (so each call of a retraining hook starts high again,
    a warm restart).
    """
    if schedule not in (None, "cosine"):
        raise CdnnArgumentError(f"schedule must be None or 'cosine', not {schedule!r}")
    loss = loss or torch.nn.functional.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    total_steps = max(1, epochs * len(loader)) if schedule else 0
    step = 0
    model.train()
    mean = float("nan")
    for epoch in range(epochs):
        total, count = 0.0, 0
        for x, y in loader:
            if schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * step / total_steps))
                step += 1
            opt.zero_grad(set_to_none=True)
            value = loss(model(x), y)
            value.backward()
            opt.step()
            total += float(value.detach()) * len(x)
            count += len(x)
        mean = total / max(count, 1)
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {mean:.4f}")
    model.eval()
    return mean


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    """Top-1 accuracy of a torch model on tensors x, y."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def loader(x, y, batch_size=128, seed=0, shuffle=True):
    """A seeded DataLoader over in-memory tensors."""
    ds = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle,
                                       generator=torch.Generator().manual_seed(seed))
