"""Inference kernels of the cdnn runtime (numpy and numba only).

* :mod:`.sparse_linear` -- fully-connected layers straight from CSR + codebook storage, and
  chains of them run in one call (:class:`LinearChain`);
* :mod:`.sparse_conv` -- direct sparse 2-D convolution from the same storage;
* :mod:`.dense_linear` -- linear layers whose weight is stored raw;
* :mod:`.pooling`, :mod:`.elementwise` (activations, math functions, arithmetic),
  :mod:`.reduce` (mean, sum, amax, amin), :mod:`.norms` (batch norm, LRN, softmax),
  :mod:`.shape` (flatten, reshape, permute, cat) -- the dense operators.

Sparse kernels take ``row_ptr`` int64[rows+1], ``col_idx`` uint16 (``n_cols <=
MAX_UINT16_COLUMNS``) or int32, ``codes`` uint8, ``codebook`` float32[1..MAX_CODEBOOK_SIZE] and
an optional float32 ``bias``; the value of entry k is ``codebook[codes[k]]``. Bad arguments raise
:class:`KernelArgumentError` (a ValueError and a CdnnError).

Kernels are compiled on first use and cached on disk by numba (``cache=_CACHE``, where
:func:`cdnn_runtime._jit.jit_cache` decides, so that a read-only installation works). The cache
is stamped with one hash of every kernel source (``cdnn_runtime._jit.KERNEL_SOURCES``), not of
each kernel's own file only: an edit to a helper that other modules' kernels inline, such as
``apply_activation`` in ``_common.py``, recompiles every kernel on next use.
"""

from . import dense_linear, elementwise, norms, pooling, reduce, shape, sparse_conv, sparse_linear
from ._common import (
    ACT_GELU,
    ACT_GELU_TANH,
    ACT_LEAKY_RELU,
    ACT_NONE,
    ACT_RELU,
    ACT_RELU6,
    ACT_SIGMOID,
    ACT_TANH,
    Activation,
    KernelArgumentError,
    parse_activation,
)
from .sparse_conv import SparseConv2d, conv2d, prepare_conv
from .sparse_linear import LinearChain, SparseLinear, check_linear_weights, linear, prepare_linear

__all__ = [
    "ACT_GELU",
    "ACT_GELU_TANH",
    "ACT_LEAKY_RELU",
    "ACT_NONE",
    "ACT_RELU",
    "ACT_RELU6",
    "ACT_SIGMOID",
    "ACT_TANH",
    "Activation",
    "KernelArgumentError",
    "LinearChain",
    "SparseConv2d",
    "SparseLinear",
    "check_linear_weights",
    "conv2d",
    "dense_linear",
    "elementwise",
    "linear",
    "norms",
    "parse_activation",
    "pooling",
    "prepare_conv",
    "prepare_linear",
    "reduce",
    "shape",
    "sparse_conv",
    "sparse_linear",
]
