"""The one exception family of cdnn: every failure on user input is a CdnnError."""


class CdnnError(Exception):
    """Base class of every error cdnn raises on bad input."""


class CdnnFormatError(CdnnError, ValueError):
    """A .cdnn file (or bytes) breaks a rule of the format specification."""


class CdnnChecksumError(CdnnFormatError):
    """A CRC-32 stored in the file does not match the bytes it covers."""


class CdnnLimitError(CdnnFormatError):
    """A declared size exceeds a limit set by the reader (decompression bomb guard)."""


class CdnnVersionError(CdnnFormatError):
    """The file is of a format version this reader does not accept."""


class CdnnUnsupportedError(CdnnError):
    """An op, dtype or feature that this version of cdnn cannot handle."""


class CdnnMemoryError(CdnnError, MemoryError):
    """Running the model needs more memory than the machine can give (e.g. a huge batch)."""


class CdnnArgumentError(CdnnError, ValueError):
    """A value handed to a cdnn function is out of its range (the writer's tensor names,
    dtypes and options, a kernel's arrays)."""


class KernelArgumentError(CdnnArgumentError):
    """An array or parameter handed to a kernel has the wrong shape, dtype, layout or value."""


# -- the compressor's errors (cdnn, with torch); defined here so that the family is one list --

class CdnnCaptureError(CdnnError):
    """The model could not be traced into a graph (export failed, shapes, inputs)."""


class CdnnRecipeError(CdnnError, ValueError):
    """A compression setting (bits, density, quality, init, ...) is out of range or malformed."""


class CdnnDatasetError(CdnnError, ValueError):
    """A data set file is malformed or does not match what was expected of it."""


class CdnnDatasetMissingError(CdnnDatasetError, FileNotFoundError):
    """The files of a data set are not where they were looked for."""


class CdnnUsageError(CdnnError):
    """The command line was given something it cannot use."""


class PlotUnavailableError(CdnnError, ImportError):
    """A figure was asked for and matplotlib is not installed."""
