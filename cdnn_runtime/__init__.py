"""cdnn_runtime: the .cdnn format and a CPU runtime for it (numpy and numba only, never torch)."""

from .errors import (
    CdnnArgumentError,
    CdnnCaptureError,
    CdnnChecksumError,
    CdnnDatasetError,
    CdnnDatasetMissingError,
    CdnnError,
    CdnnFormatError,
    CdnnLimitError,
    CdnnMemoryError,
    CdnnRecipeError,
    CdnnUnsupportedError,
    CdnnUsageError,
    CdnnVersionError,
    KernelArgumentError,
    PlotUnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "CdnnArgumentError",
    "CdnnCaptureError",
    "CdnnChecksumError",
    "CdnnDatasetError",
    "CdnnDatasetMissingError",
    "CdnnError",
    "CdnnFormatError",
    "CdnnLimitError",
    "CdnnMemoryError",
    "CdnnRecipeError",
    "CdnnUnsupportedError",
    "CdnnUsageError",
    "CdnnVersionError",
    "InferenceSession",
    "KernelArgumentError",
    "NodeArg",
    "PlotUnavailableError",
    "load",
    "read",
]


def read(source, **kwargs):
    """Open and validate a .cdnn file (path or bytes); see cdnn_runtime.reader.read."""
    from .reader import read as _read
    return _read(source, **kwargs)


def __getattr__(name):
    if name in ("InferenceSession", "load", "NodeArg"):
        from . import session
        return getattr(session, name)
    raise AttributeError(f"module 'cdnn_runtime' has no attribute {name!r}")
