"""CSR <-> relative column gaps with filler entries, as the sparse_codebook encoding stores them.

Within a row, entry k sits at column ``col[k] = col[k-1] + gap[k] + 1`` with ``col[-1] = -1``:
a gap counts the zeros skipped. A skip wider than ``2**gap_bits - 1`` is bridged by filler
entries (gap at its maximum, code `filler_code`, value 0.0), as in Deep Compression.
"""

import numba
import numpy as np

from ._jit import jit_cache
from .constants import MAX_UINT16_COLUMNS
from .errors import CdnnArgumentError, CdnnFormatError

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


@numba.njit(cache=_CACHE)
def _count_entries(row_ptr, col_idx, max_gap):
    rows = row_ptr.size - 1
    counts = np.zeros(rows, dtype=np.int64)
    for r in range(rows):
        prev = -1
        n = 0
        for k in range(row_ptr[r], row_ptr[r + 1]):
            c = np.int64(col_idx[k])
            n += (c - prev - 1) // (max_gap + 1) + 1
            prev = c
        counts[r] = n
    return counts


@numba.njit(cache=_CACHE)
def _to_gaps(row_ptr, col_idx, codes, max_gap, filler_code, counts, gaps_out, codes_out):
    pos = 0
    for r in range(row_ptr.size - 1):
        prev = -1
        for k in range(row_ptr[r], row_ptr[r + 1]):
            c = np.int64(col_idx[k])
            while c - prev - 1 > max_gap:
                gaps_out[pos] = max_gap
                codes_out[pos] = filler_code
                prev += max_gap + 1
                pos += 1
            gaps_out[pos] = c - prev - 1
            codes_out[pos] = codes[k]
            prev = c
            pos += 1


def csr_to_gaps(row_ptr, col_idx, codes, gap_bits, filler_code, where="tensor"):
    """Turn CSR (sorted columns per row) into (row_counts, gaps, codes) with fillers.

    `filler_code` may be None only when no skip needs a filler; otherwise CdnnArgumentError.
    """
    row_ptr = np.ascontiguousarray(row_ptr, dtype=np.int64)
    col_idx = np.ascontiguousarray(col_idx, dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    max_gap = (1 << gap_bits) - 1
    counts = _count_entries(row_ptr, col_idx, max_gap)
    total = int(counts.sum())
    if total != col_idx.size and filler_code is None:
        raise CdnnArgumentError(f"{where}: {total - col_idx.size} filler entries needed at "
                                f"gap_bits={gap_bits} but no filler code is available")
    gaps = np.empty(total, dtype=np.uint8)
    out_codes = np.empty(total, dtype=np.uint8)
    _to_gaps(row_ptr, col_idx, codes, max_gap, -1 if filler_code is None else filler_code,
             counts, gaps, out_codes)
    return counts, gaps, out_codes


def count_fillers(row_ptr, col_idx, gap_bits):
    """Number of filler entries the gap width would need (to choose the width)."""
    counts = _count_entries(np.ascontiguousarray(row_ptr, dtype=np.int64),
                            np.ascontiguousarray(col_idx, dtype=np.int64), (1 << gap_bits) - 1)
    return int(counts.sum()) - int(np.asarray(col_idx).size)


@numba.njit(cache=_CACHE)
def _from_gaps(row_counts, gaps, codes, n_cols, filler_code, row_ptr, col_idx_out, codes_out):
    """The number of entries kept on success; -(r+1) when row r runs past the column count.
    (src and dst are unsigned: numba checks a signed index for wrap-around on every access.)"""
    one = np.uint64(1)
    src = np.uint64(0)
    dst = np.uint64(0)
    row_ptr[0] = 0
    for r in range(row_counts.size):
        prev = -1
        for _ in range(row_counts[r]):
            c = prev + np.int64(gaps[src]) + 1
            if c >= n_cols:
                return -(r + 1)
            if np.int64(codes[src]) != filler_code:
                col_idx_out[dst] = c
                codes_out[dst] = codes[src]
                dst += one
            prev = c
            src += one
        row_ptr[r + 1] = dst
    return np.int64(dst)


def gaps_to_csr(row_counts, gaps, codes, n_cols, filler_code, nnz, where="tensor",
                col_dtype=np.int32):
    """Rebuild CSR (row_ptr int64, col_idx `col_dtype`, codes uint8) and drop fillers.

    Checks every column against `n_cols` and the stored-entry count against `nnz`. uint16
    column indices (the runtime's layout) need `n_cols <= MAX_UINT16_COLUMNS`.
    """
    if np.dtype(col_dtype) == np.uint16 and n_cols > MAX_UINT16_COLUMNS:
        raise CdnnArgumentError(f"{where}: uint16 column indices need at most "
                                f"{MAX_UINT16_COLUMNS} columns, not {n_cols}")
    row_counts = np.ascontiguousarray(row_counts, dtype=np.int64)
    if int(row_counts.sum()) != gaps.size or gaps.size != codes.size:
        raise CdnnFormatError(f"{where}: row counts sum to {int(row_counts.sum())} but "
                              f"{gaps.size} gaps and {codes.size} codes are stored")
    rows = row_counts.size
    row_ptr = np.empty(rows + 1, dtype=np.int64)
    col_idx = np.empty(gaps.size, dtype=col_dtype)
    out_codes = np.empty(gaps.size, dtype=np.uint8)
    status = _from_gaps(row_counts, np.ascontiguousarray(gaps), np.ascontiguousarray(codes),
                        n_cols, -1 if filler_code is None else filler_code, row_ptr, col_idx,
                        out_codes)
    if status < 0:
        raise CdnnFormatError(f"{where}: row {-status - 1} has a column index at or past "
                              f"the column count {n_cols}")
    if status != nnz:
        raise CdnnFormatError(f"{where}: {status} nonzero entries decoded, header declares {nnz}")
    if status == gaps.size:
        return row_ptr, col_idx, out_codes
    return row_ptr, col_idx[:status].copy(), out_codes[:status].copy()


def csr_from_dense(matrix):
    """CSR of the nonzero entries of a 2-D array: (row_ptr int64, col_idx int64, values)."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise CdnnArgumentError(f"csr_from_dense expects a 2-D array, got shape {matrix.shape}")
    row_of, col_idx = np.nonzero(matrix)
    row_ptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=matrix.shape[0]), out=row_ptr[1:])
    return row_ptr, col_idx.astype(np.int64), matrix[row_of, col_idx]
