"""Magnitude pruning: per-layer masks, schedules, and holding masks through training.

Masks are boolean tensors keyed by the parameter names a user sees (``fc1.weight``).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from cdnn_runtime.errors import CdnnRecipeError

__all__ = [
    "CdnnRecipeError",
    "MaskHolder",
    "apply_masks",
    "density_schedule",
    "hold_masks",
    "layer_masks",
    "magnitude_mask",
    "masks_from_torch_prune",
]


def _fraction(name: str, value, *, low_open: bool, high: float | None) -> float:
    if isinstance(value, bool):
        raise CdnnRecipeError(f"{name} must be a number, got a bool")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CdnnRecipeError(f"{name} must be a number, got {value!r}") from None
    ok = math.isfinite(v) and (v > 0 if low_open else v >= 0) and (high is None or v <= high)
    if not ok:
        low = "0 < " if low_open else "0 <= "
        rng = low + name + (f" <= {high:g}" if high is not None else "")
        raise CdnnRecipeError(f"{name} must satisfy {rng}, got {value!r}")
    return v


def magnitude_mask(weight: torch.Tensor, *, density=None, quality=None) -> torch.Tensor:
    """Boolean mask (same shape) of the weights kept by magnitude pruning.

    ``density`` keeps the round-half-up(density * numel) largest |w| (ties go to the lower
    flat index); ``quality`` keeps |w| > quality * std(w), std over the whole tensor
    (Han et al. 2015). Exactly-zero weights are never kept. Give exactly one of the two.
    """
    if (density is None) == (quality is None):
        raise CdnnRecipeError("give exactly one of density= or quality=")
    if not isinstance(weight, torch.Tensor):
        raise CdnnRecipeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if not (weight.is_floating_point()):
        raise CdnnRecipeError(f"weight must be a floating-point tensor, got {weight.dtype}")
    w = weight.detach().to("cpu", torch.float64 if weight.dtype == torch.float64 else torch.float32)
    if not bool(torch.isfinite(w).all()):
        raise CdnnRecipeError("weight holds NaN or infinity")
    a = w.abs().reshape(-1)

    if quality is not None:
        q = _fraction("quality", quality, low_open=False, high=None)
        std = float(w.std(unbiased=False)) if w.numel() else 0.0
        keep = (a > q * std) & (a > 0)
        return keep.reshape(weight.shape).to(weight.device)

    d = _fraction("density", density, low_open=True, high=1.0)
    n = a.numel()
    target = int(math.floor(d * n + 0.5))
    nonzero = a > 0
    nnz = int(nonzero.sum())
    if target >= nnz:
        return nonzero.reshape(weight.shape).to(weight.device)
    keep = torch.zeros(n, dtype=torch.bool)
    if target > 0:
        arr = a.numpy()
        # The target-th largest magnitude: all above it are kept, ties kept by index.
        thr = np.partition(arr, n - target)[n - target]
        above = arr > thr
        need = target - int(above.sum())
        tied = np.flatnonzero(arr == thr)[:need]
        above[tied] = True
        keep = torch.from_numpy(above)
    return keep.reshape(weight.shape).to(weight.device)


def density_schedule(target, steps) -> list[float]:
    """Densities for iterative pruning: geometric from 1.0 down to ``target`` in ``steps``.

    Each step removes the same fraction of the weights still alive; the last entry is
    exactly ``target`` and 1.0 itself is not listed.
    """
    t = _fraction("target", target, low_open=True, high=1.0)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise CdnnRecipeError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    out = [t ** (i / steps) for i in range(1, steps)]
    out.append(t)
    return out


def _params(model: nn.Module) -> dict[str, nn.Parameter]:
    return dict(model.named_parameters(remove_duplicate=False))


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    mod_name, _, attr = name.rpartition(".")
    return (model.get_submodule(mod_name) if mod_name else model), attr


def _checked_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]
                   ) -> dict[str, tuple[nn.Parameter, torch.Tensor]]:
    params = _params(model)
    out = {}
    for name, mask in masks.items():
        if name not in params:
            raise CdnnRecipeError(f"mask for {name!r}, which is not a parameter of the model")
        p = params[name]
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(np.asarray(mask))
        if tuple(mask.shape) != tuple(p.shape):
            raise CdnnRecipeError(f"mask for {name!r} has shape {tuple(mask.shape)}, the "
                                  f"parameter {tuple(p.shape)}")
        if mask.dtype != torch.bool:
            if mask.is_floating_point() and not bool(((mask == 0) | (mask == 1)).all()):
                raise CdnnRecipeError(f"mask for {name!r} must hold only 0 and 1")
            mask = mask != 0
        out[name] = (p, mask.to(p.device))
    return out


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero, in place and once, every weight whose mask entry is False."""
    for p, mask in _checked_masks(model, masks).values():
        p.masked_fill_(~mask, 0)


class MaskHolder:
    """Keeps pruned weights at exactly zero while a user's training loop runs.

    Gradients of pruned entries are zeroed (so optimizer state stays at zero for them);
    after every optimizer step and before every forward the pruned entries are set back to
    zero if anything changed them. Parameter names and objects are never changed.
    ``remove()`` (or leaving a ``with`` block) zeroes them a last time and detaches the hooks.
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor]):
        self.model = model
        self._entries = {
            name: (p, ~mask) for name, (p, mask) in _checked_masks(model, masks).items()
        }
        self._versions: dict[str, int] = {}
        self._handles: list = []
        self._enforce()
        for name, (p, pruned) in self._entries.items():
            if p.requires_grad:
                self._handles.append(
                    p.register_hook(lambda g, pruned=pruned: g.masked_fill(pruned, 0)))
        by_module: dict[int, tuple[nn.Module, list[str]]] = {}
        for name in self._entries:
            mod, _ = _owner(model, name)
            by_module.setdefault(id(mod), (mod, []))[1].append(name)
        for mod, names in by_module.values():
            self._handles.append(
                mod.register_forward_pre_hook(lambda m, a, names=names: self._enforce(names)))
        self._handles.append(
            register_optimizer_step_post_hook(lambda opt, a, kw: self._enforce())
        )
        self.active = True

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """The held masks (True = kept), by parameter name."""
        return {name: ~pruned for name, (_, pruned) in self._entries.items()}

    @torch.no_grad()
    def _enforce(self, names: Iterable[str] | None = None) -> None:
        # In-place writes only when the parameter changed since last enforced, so graphs
        # that saved it (two forwards before one backward) are not invalidated.
        for name in self._entries if names is None else names:
            p, pruned = self._entries[name]
            if self._versions.get(name) == p._version:
                continue
            p.masked_fill_(pruned, 0)
            self._versions[name] = p._version

    def remove(self) -> None:
        """Make the pruning permanent and stop holding: zero pruned entries, drop hooks."""
        if not self.active:
            return
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._versions.clear()
        self._enforce()
        self.active = False

    def __enter__(self) -> "MaskHolder":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def hold_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> MaskHolder:
    """Zero the pruned weights now and keep them at zero until ``.remove()``."""
    return MaskHolder(model, masks)


def layer_masks(model: nn.Module, densities: Mapping[str, float], *,
                param: str = "weight") -> dict[str, torch.Tensor]:
    """Magnitude masks for the ``param`` of each named module, at its given density.

    ``densities`` maps module names (``features.0``, as in ``DEEP_COMPRESSION_DENSITY``) to
    kept fractions; the masks come back keyed ``features.0.weight``.
    """
    params = _params(model)
    out = {}
    for mod_name, d in densities.items():
        name = f"{mod_name}.{param}" if mod_name else param
        if name not in params:
            raise CdnnRecipeError(f"the model has no parameter {name!r}")
        out[name] = magnitude_mask(params[name], density=d)
    return out


@torch.no_grad()
def masks_from_torch_prune(model: nn.Module
                           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Masks and effective weights of a model pruned with ``torch.nn.utils.prune``.

    Returns ``(masks, weights)``, both keyed by the names the user knows (``fc1.weight``,
    not ``fc1.weight_orig``); ``weights`` are ``weight_orig * weight_mask``, detached.
    """
    from torch.nn.utils import prune as tprune

    masks: dict[str, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    for mod_name, mod in model.named_modules():
        for hook in mod._forward_pre_hooks.values():
            if not isinstance(hook, tprune.BasePruningMethod):
                continue
            attr = hook._tensor_name
            orig = getattr(mod, attr + "_orig", None)
            mask = getattr(mod, attr + "_mask", None)
            if orig is None or mask is None:
                raise CdnnRecipeError(f"module {mod_name!r} has a pruning hook but no "
                                      f"{attr}_orig/{attr}_mask")
            name = f"{mod_name}.{attr}" if mod_name else attr
            masks[name] = mask != 0
            weights[name] = (orig * mask).detach().clone()
    return masks, weights
