"""cdnn_runtime: the .cdnn format and a CPU runtime for it (numpy and numba only, never torch)."""

from .errors import (
    CdnnChecksumError,
    CdnnError,
    CdnnFormatError,
    CdnnLimitError,
    CdnnUnsupportedError,
    CdnnVersionError,
)

__version__ = "0.1.0"
