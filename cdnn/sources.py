"""The models the commands start from: a reference name, a .pt2 export, or a state_dict
checkpoint plus a `package.module:factory` that builds its architecture."""

import importlib
import os

from cdnn_runtime.errors import CdnnUsageError

#: Input shape (batch first) of each reference model, for `cdnn compress` without --input-shape.
DEFAULT_SHAPES = {"lenet-300-100": [1, 1, 28, 28], "lenet-5": [1, 1, 28, 28],
                  "alexnet": [1, 3, 224, 224], "vgg16": [1, 3, 224, 224]}

SOURCE_HELP = "lenet-300-100 | lenet-5 | alexnet | vgg16 | FILE.pt2 | FILE.pt (with --model)"


def require_torch(command):
    """torch, or a CdnnUsageError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise CdnnUsageError(f"`cdnn {command}` needs PyTorch: pip install 'cdnn[torch]' "
                             "(the CPU build of torch is enough)") from None
    return torch


def eval_mode(model):
    """`model` switched to inference (a torch.export module already is, and refuses eval())."""
    try:
        model.eval()
    except NotImplementedError:
        pass
    return model


def _factory(spec):
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise CdnnUsageError(f"--model must look like package.module:factory, got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CdnnUsageError(f"--model {spec}: {exc}") from None
    return obj


def load_source(src, model_spec=None, seed=0):
    """(torch module, name) from a reference name, a .pt2 export, or a state_dict plus factory.

    A checkpoint is loaded weights-only (a pickle that would run code is refused) and must fit
    the factory's architecture exactly."""
    torch = require_torch("compress")

    from . import models
    if src in models.MODELS:
        return models.seeded(models.MODELS[src], seed), src
    if not os.path.exists(src):
        raise CdnnUsageError(f"{src}: no such file, and not a reference model "
                             f"({', '.join(models.MODELS)})")
    if src.endswith(".pt2"):
        return torch.export.load(src).module(), os.path.basename(src)
    if model_spec is None:
        raise CdnnUsageError(f"{src}: a checkpoint needs --model package.module:factory to "
                             "build the architecture")
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that wants to run code, or not a checkpoint at all
        raise CdnnUsageError(f"{src}: refused to load as a weights-only checkpoint ({exc})") \
            from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = _factory(model_spec)()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CdnnUsageError(f"{src}: checkpoint does not fit {model_spec} (missing "
                             f"{missing[:3]}, unexpected {unexpected[:3]})")
    return model, model_spec
