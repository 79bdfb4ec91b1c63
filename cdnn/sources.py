"""The models the commands start from: a reference name, a .pt2 export, or a state_dict
checkpoint (.pt or .safetensors) plus a `package.module:factory` that builds its architecture."""

import importlib
import os

from cdnn_runtime.errors import CdnnUsageError

#: Input shape (batch first) of each reference model, for `cdnn compress` without --input-shape.
DEFAULT_SHAPES = {"lenet-300-100": [1, 1, 28, 28], "lenet-5": [1, 1, 28, 28],
                  "alexnet": [1, 3, 224, 224], "vgg16": [1, 3, 224, 224]}

SOURCE_HELP = ("lenet-300-100 | lenet-5 | alexnet | vgg16 | FILE.pt2 | FILE.pt or "
               "FILE.safetensors (with --model)")
#: How many mismatched names a checkpoint error lists of each kind.
MISMATCHES_SHOWN = 5


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


def import_object(spec, option="--model", kind="factory"):
    """The object `package.module:name` names, given on the command line as `option`."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise CdnnUsageError(f"{option} must look like package.module:{kind}, got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise CdnnUsageError(f"{option} {spec}: {exc}") from None
    return obj


def load_npy(path):
    """A .npy file's array, or a CdnnUsageError saying how to write one."""
    import numpy as np
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CdnnUsageError(f"{path}: cannot read as a .npy array ({exc}); save one with "
                             "numpy.save") from None


def _load_safetensors(src):
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise CdnnUsageError(f"{src}: reading .safetensors needs the safetensors package: "
                             "pip install 'cdnn[torch]'") from None
    try:
        return load_file(src, device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CdnnUsageError(f"{src}: not a readable .safetensors file ({exc})") from None


def _load_pickled(src, torch):
    try:
        state = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that wants to run code, or not a checkpoint at all
        raise CdnnUsageError(f"{src}: refused to load as a weights-only checkpoint ({exc})") \
            from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CdnnUsageError(f"{src}: holds a {type(state).__name__}, not a state dict")
    return state


def _shown(names):
    more = len(names) - MISMATCHES_SHOWN
    return ", ".join(names[:MISMATCHES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def state_dict_mismatches(model, state):
    """What keeps `state` from loading into `model`: missing keys, unexpected keys, and shape
    mismatches ("name: checkpoint [a, b] vs model [c, d]"), each list in the model's order.

    A missing BatchNorm `num_batches_tracked` is no mismatch: inference never reads it."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = sorted((k for k in state if k not in expected),  # counters last
                        key=lambda k: k.endswith("num_batches_tracked"))
    shapes = [f"{k}: checkpoint {list(state[k].shape)} vs model {list(v.shape)}"
              for k, v in expected.items()
              if k in state and hasattr(state[k], "shape") and state[k].shape != v.shape]
    return missing, unexpected, shapes


def fit_checkpoint(model, state, src, model_spec):
    """Load `state` into `model`, or a CdnnUsageError naming the first mismatches."""
    missing, unexpected, shapes = state_dict_mismatches(model, state)
    if missing or unexpected or shapes:
        parts = [f"{label} ({len(names)}): {_shown(names)}" for label, names in
                 (("missing keys", missing), ("unexpected keys", unexpected),
                  ("shape mismatches", shapes)) if names]
        raise CdnnUsageError(f"{src}: the state dict does not fit {model_spec}; "
                             + "; ".join(parts))
    model.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    return model


def load_source(src, model_spec=None, seed=0):
    """(torch module, name) from a reference name, a .pt2 export, or a state_dict plus factory.

    A .pt checkpoint is loaded weights-only (a pickle that would run code is refused), a
    .safetensors one with the safetensors package; either must fit the factory's architecture
    exactly."""
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
    state = _load_safetensors(src) if src.endswith(".safetensors") else _load_pickled(src, torch)
    return fit_checkpoint(import_object(model_spec)(), state, src, model_spec), model_spec
