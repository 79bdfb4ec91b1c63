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
