"""Embedding lookup: out[..., :] = table[ids[...], :], from a raw float32 table or straight from
a sparse_codebook one (row r's entries are row_ptr[r] <= k < row_ptr[r + 1]: out[i, col_idx[k]]
= codebook[codes[k]], the other columns zero), never densifying the table.

Ids are int64 or int32 of any shape; every id is checked against the table's rows before any
row is read. The result is a new C-contiguous float32 array of shape ids.shape + [width].
"""

import numpy as np
from numba import njit

from .._jit import jit_cache
from ._common import KernelArgumentError

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


@njit(cache=_CACHE)
def _lookup_csr(ids, row_ptr, col_idx, codes, codebook, out):
    """out[i, col_idx[k]] = codebook[codes[k]] for k in row ids[i] (out zeroed)."""
    for i in range(ids.shape[0]):
        r = ids[i]
        for k in range(row_ptr[r], row_ptr[r + 1]):
            out[i, col_idx[k]] = codebook[codes[k]]


def _checked_ids(ids, rows):
    """The ids flattened to contiguous int64, each checked to lie in [0, rows)."""
    if not isinstance(ids, np.ndarray) or ids.dtype not in (np.int64, np.int32):
        raise ValueError("embedding ids must be an int64 or int32 array, got "
                         f"{getattr(ids, 'dtype', type(ids).__name__)}")
    flat = np.ascontiguousarray(ids.reshape(-1), dtype=np.int64)
    if flat.size:
        low, high = int(flat.min()), int(flat.max())
        if low < 0 or high >= rows:
            bad = low if low < 0 else high
            # a ValueError of the input's values: the session names the node
            raise ValueError(f"token id {bad} is out of range for an embedding table of "
                             f"{rows} rows")
    return flat


def embedding_dense(ids, table):
    """Rows of the float32 table [rows, width] at `ids`."""
    flat = _checked_ids(ids, table.shape[0])
    return np.ascontiguousarray(table[flat], dtype=np.float32).reshape(
        ids.shape + (table.shape[1],))


def embedding_csr(ids, row_ptr, col_idx, codes, codebook, width):
    """Rows at `ids` of the table [rows, width] held as CSR with codes into `codebook` (the
    reader checked the CSR: columns below `width`, codes below the codebook size)."""
    rows = row_ptr.shape[0] - 1
    flat = _checked_ids(ids, rows)
    out = np.zeros((flat.shape[0], width), np.float32)
    if flat.size:
        _lookup_csr(flat, row_ptr, col_idx, codes, codebook, out)
    return out.reshape(ids.shape + (width,))


class Embedding:
    """The lookup of one table, raw (an ndarray) or sparse (a reader's SparseTensor)."""

    def __init__(self, table):
        if isinstance(table, np.ndarray):
            if table.ndim != 2:
                raise KernelArgumentError(f"embedding table must be 2-D, has shape "
                                          f"{list(table.shape)}")
            self._table = np.ascontiguousarray(table, dtype=np.float32)
            self._csr = None
        else:
            self._table = None
            self._csr = (np.ascontiguousarray(table.row_ptr, dtype=np.int64), table.col_idx,
                         table.codes, np.ascontiguousarray(table.codebook, dtype=np.float32),
                         int(table.n_cols))

    def __call__(self, ids):
        if self._csr is None:
            return embedding_dense(ids, self._table)
        return embedding_csr(ids, *self._csr)
