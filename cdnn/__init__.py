"""cdnn: compress PyTorch models into .cdnn files (prune, K-Means++ weight sharing, Huffman).

Importing `cdnn` does not import torch; the compressor's names load it on first use, so the
command line's torch-free commands (`cdnn run`, `cdnn inspect`) work without it.
"""

from cdnn_runtime import __version__

_LAZY = {
    "compress": ("cdnn.compress", "compress"),
    "CompressedModel": ("cdnn.compress", "CompressedModel"),
    "capture": ("cdnn.capture", "capture"),
    "sensitivity": ("cdnn.sensitivity", "sensitivity"),
    "models": ("cdnn.models", None),
    "recipe": ("cdnn.recipe", None),
    "prune": ("cdnn.prune", None),
    "cluster": ("cdnn.cluster", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'cdnn' has no attribute {name!r}")
    import importlib
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


__all__ = ["__version__", *_LAZY]
