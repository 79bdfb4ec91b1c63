"""Fixed-width bit packing, MSB-first, as the format's `packed` stream coding defines it."""

import numba
import numpy as np

from ._jit import jit_cache
from .constants import PACKED_MAX_BITS
from .errors import CdnnFormatError

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


@numba.njit(cache=_CACHE)
def flush_bits(acc, nacc, out, pos):
    """Write the ``nacc`` low bits of the uint64 ``acc`` to ``out[pos:]``, most significant
    first, the last byte zero-padded; return the position after them."""
    while nacc >= 8:
        nacc -= 8
        out[pos] = np.uint8((acc >> np.uint64(nacc)) & np.uint64(0xFF))
        pos += 1
    if nacc > 0:
        out[pos] = np.uint8((acc << np.uint64(8 - nacc)) & np.uint64(0xFF))
        pos += 1
    return pos


@numba.njit(cache=_CACHE)
def _pack(values, bits, out):
    acc = np.uint64(0)
    nacc = 0
    pos = 0
    mask = np.uint64((1 << bits) - 1)
    for i in range(values.size):
        acc = (acc << np.uint64(bits)) | (np.uint64(values[i]) & mask)
        nacc += bits
        while nacc >= 8:
            nacc -= 8
            out[pos] = np.uint8((acc >> np.uint64(nacc)) & np.uint64(0xFF))
            pos += 1
    flush_bits(acc, nacc, out, pos)


@numba.njit(cache=_CACHE)
def _unpack(buf, bits, count, out):
    acc = np.uint64(0)
    nacc = 0
    pos = 0
    mask = np.uint64((1 << bits) - 1)
    for i in range(count):
        while nacc < bits:
            acc = (acc << np.uint64(8)) | np.uint64(buf[pos])
            pos += 1
            nacc += 8
        nacc -= bits
        out[i] = np.uint32((acc >> np.uint64(nacc)) & mask)


def packed_nbytes(count, bits):
    """Bytes a packed stream of `count` values of `bits` bits occupies."""
    return (count * bits + 7) // 8


def pack(values, bits):
    """Pack unsigned integers below 2**bits into bytes, most significant bit first."""
    if not 1 <= bits <= PACKED_MAX_BITS:
        raise ValueError(f"packed width must be 1..{PACKED_MAX_BITS} bits, got {bits}")
    values = np.ascontiguousarray(values)
    if values.ndim != 1:
        raise ValueError("pack expects a 1-D array")
    if values.size and (values.min() < 0 or int(values.max()) >= (1 << bits)):
        raise ValueError(f"values do not fit in {bits} bits")
    out = np.zeros(packed_nbytes(values.size, bits), dtype=np.uint8)
    _pack(values.astype(np.uint32, copy=False), bits, out)
    return out


def unpack(buf, bits, count):
    """Unpack `count` values of `bits` bits; the buffer must hold exactly the packed bytes."""
    if not 1 <= bits <= PACKED_MAX_BITS:
        raise CdnnFormatError(f"packed width must be 1..{PACKED_MAX_BITS} bits, got {bits}")
    buf = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    need = packed_nbytes(count, bits)
    if buf.size != need:
        raise CdnnFormatError(
            f"packed stream of {count} x {bits}-bit values needs {need} bytes, has {buf.size}")
    out = np.empty(count, dtype=np.uint32)
    if count:
        _unpack(buf, bits, count, out)
    return out
