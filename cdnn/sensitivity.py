"""Sensitivity analysis: prune each layer alone over a range of densities and watch the score.

This is how a user picks per-layer densities for a model that no preset knows (Han et al.,
"Learning both weights and connections", Figure 5): layers whose score holds up at low density
can be pruned hard.
"""

from dataclasses import dataclass

import torch

from cdnn_runtime.errors import CdnnRecipeError

from ._callable import make_callable
from .capture import prepare_for_capture
from .compress import layer_kinds
from .prune import magnitude_mask

DEFAULT_DENSITIES = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


@dataclass
class Sensitivity:
    """Scores per layer and density, and the unpruned model's score."""
    baseline: float
    curves: dict  # layer -> [(density, score), ...] in the order measured

    def pick(self, budget):
        """Per layer, the lowest density whose score stays within `budget` of the baseline
        (pruning that layer alone); 1.0 where no tested density does."""
        out = {}
        for layer, curve in self.curves.items():
            ok = [d for d, s in curve if s >= self.baseline - budget]
            out[layer] = min(ok) if ok else 1.0
        return out

    def recipe(self, budget, bits=None):
        """A recipe dict (see cdnn.recipe) with the picked densities."""
        extra = {} if bits is None else {"bits": bits}
        return {layer: {"density": d, **extra} for layer, d in self.pick(budget).items()}

    def table(self):
        densities = sorted({d for c in self.curves.values() for d, _ in c}, reverse=True)
        head = "layer".ljust(20) + "".join(f"{d:>9.0%}" for d in densities)
        rows = [head, "baseline".ljust(20) + f"{self.baseline:>9.4f}"]
        for layer, curve in self.curves.items():
            got = dict(curve)
            rows.append(layer.ljust(20) + "".join(
                f"{got[d]:>9.4f}" if d in got else " " * 9 for d in densities))
        return "\n".join(rows)


@torch.no_grad()
def sensitivity(model, eval_fn, example_inputs, densities=DEFAULT_DENSITIES, layers=None):
    """Prune each compressible layer alone to each density (magnitude pruning, no retraining)
    and score the model with `eval_fn(model) -> float` (higher is better)."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    for d in densities:
        if not 0 < d <= 1:
            raise CdnnRecipeError(f"densities must be in (0, 1], got {d!r}")
    work = prepare_for_capture(model)
    kinds = layer_kinds(work, example_inputs)
    names = list(kinds) if layers is None else list(layers)
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise CdnnRecipeError(f"no compressible layer named {unknown[0]!r} (layers: "
                              f"{', '.join(kinds)})")
    params = dict(work.named_parameters(remove_duplicate=False))  # tied tables too
    baseline = float(eval_fn(work))
    curves = {}
    for name in names:
        w = params[f"{name}.weight"]
        saved = w.detach().clone()
        curve = []
        for d in densities:
            w.mul_(magnitude_mask(saved, density=d).to(w.dtype))
            curve.append((float(d), float(eval_fn(work))))
            w.copy_(saved)
        curves[name] = curve
    return Sensitivity(baseline, curves)


make_callable(__name__)
