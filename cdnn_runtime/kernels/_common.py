"""Shared pieces of the kernels: the fused-activation enum, argument checks, thresholds."""

import math

import numpy as np
from numba import njit, prange

from .._jit import jit_cache
from ..constants import MAX_CODEBOOK_SIZE, MAX_UINT16_COLUMNS
from ..errors import KernelArgumentError

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

#: Fast-math flags used by the kernels: reassociation, contraction (fused multiply-add) and
#: reciprocals ('arcp': x / y may become x * (1 / y)); never 'nnan' or 'ninf', so that NaN and
#: Inf still propagate as IEEE 754 says.
FASTMATH = {"reassoc", "contract", "arcp"}

#: Work (multiply-adds, or stored entries times samples) below which a sparse kernel runs its
#: serial variant: measured, the threaded kernels only win from about 4-8 K entries on
#: (a parallel launch costs a few microseconds, more when the threads must be woken up).
PARALLEL_MIN_WORK = 1 << 14

#: Elements below which an element-wise or pooling kernel runs serially.
ELEMENTWISE_PARALLEL_MIN = 1 << 16


# ---------------------------------------------------------------------------------------------
# Fused activations (applied in a kernel's epilogue, after the bias)
# ---------------------------------------------------------------------------------------------

ACT_NONE = 0
ACT_RELU = 1
ACT_RELU6 = 2
ACT_LEAKY_RELU = 3
ACT_SIGMOID = 4
ACT_TANH = 5
ACT_GELU = 6
ACT_GELU_TANH = 7

ACTIVATION_NAMES = {
    "none": ACT_NONE,
    "identity": ACT_NONE,
    "relu": ACT_RELU,
    "relu6": ACT_RELU6,
    "leaky_relu": ACT_LEAKY_RELU,
    "sigmoid": ACT_SIGMOID,
    "tanh": ACT_TANH,
    "gelu": ACT_GELU,
    "gelu_tanh": ACT_GELU_TANH,
}

#: Slope of leaky_relu when none is given (PyTorch's default).
DEFAULT_LEAKY_SLOPE = 0.01


class Activation:
    """A fused activation: a code from the ACT_* enum and one float parameter.

    Built from a spec by :func:`parse_activation`:
    ``None``, ``"none"``, ``"relu"``, ``"relu6"``, ``"sigmoid"``, ``"tanh"``,
    ``"leaky_relu"`` (slope 0.01) or ``"leaky_relu:<slope>"``, ``"gelu"`` (erf form),
    ``"gelu_tanh"`` (tanh approximation), an ``(name, param)`` pair, or an ``Activation``.
    """

    __slots__ = ("code", "param")

    def __init__(self, code, param=0.0):
        self.code = int(code)
        self.param = float(param)

    def __repr__(self):
        name = [k for k, v in ACTIVATION_NAMES.items() if v == self.code and k != "identity"][0]
        if self.code == ACT_LEAKY_RELU:
            return f"Activation('leaky_relu:{self.param!r}')"
        return f"Activation({name!r})"

    def __eq__(self, other):
        return isinstance(other, Activation) and \
            (self.code, self.param) == (other.code, other.param)

    def __hash__(self):
        return hash((self.code, self.param))


def parse_activation(spec):
    """Turn an activation spec into an :class:`Activation` (raises KernelArgumentError)."""
    if spec is None:
        return _NO_ACTIVATION
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        act = _parsed.get(spec)
        if act is None:
            act = _parse(spec)
            if len(_parsed) < 1024:
                _parsed[spec] = act
        return act
    return _parse(spec)


_parsed = {}


def _parse(spec):
    param = None
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[0], str):
            raise KernelArgumentError(f"activation tuple must be (name, param), got {spec!r}")
        name, param = spec
        if param is not None:
            try:
                param = float(param)
            except (TypeError, ValueError):
                raise KernelArgumentError(
                    f"activation {spec!r}: parameter is not a number") from None
    elif isinstance(spec, str):
        name, sep, rest = spec.partition(":")
        if sep:
            try:
                param = float(rest)
            except ValueError:
                raise KernelArgumentError(
                    f"activation {spec!r}: parameter {rest!r} is not a number") from None
    else:
        raise KernelArgumentError(
            f"activation must be a string, a (name, param) tuple or None, got {type(spec).__name__}"
        )
    name = name.strip().lower()
    if name not in ACTIVATION_NAMES:
        raise KernelArgumentError(
            f"unknown activation {name!r}; expected one of none, relu, relu6, leaky_relu[:slope], "
            "sigmoid, tanh, gelu, gelu_tanh"
        )
    code = ACTIVATION_NAMES[name]
    if code == ACT_LEAKY_RELU:
        slope = DEFAULT_LEAKY_SLOPE if param is None else float(param)
        if not math.isfinite(slope):
            raise KernelArgumentError(f"leaky_relu slope must be finite, got {slope!r}")
        return Activation(code, slope)
    if param is not None:
        raise KernelArgumentError(f"activation {name!r} takes no parameter, got {param!r}")
    return Activation(code)


@njit(cache=_CACHE)
def apply_activation(v, code, param):
    """Activation `code` (ACT_*) of the float32 `v`; NaN in gives NaN out."""
    if code == ACT_NONE:
        return v
    if code == ACT_RELU:
        return np.float32(0.0) if v < 0 else v
    if code == ACT_RELU6:
        if v < 0:
            return np.float32(0.0)
        if v > 6:
            return np.float32(6.0)
        return v
    if code == ACT_LEAKY_RELU:
        return np.float32(v * param) if v < 0 else v
    if code == ACT_SIGMOID:
        if v >= 0:
            return np.float32(1.0 / (1.0 + math.exp(-v)))
        e = math.exp(v)
        return np.float32(e / (1.0 + e))
    if code == ACT_TANH:
        return np.float32(math.tanh(v))
    if code == ACT_GELU:
        return np.float32(0.5 * v * (1.0 + math.erf(v * 0.7071067811865476)))
    # ACT_GELU_TANH
    return np.float32(0.5 * v * (1.0 + math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))))


@njit(cache=_CACHE)
def bias_activation(src, bo, code, param, dst):
    """dst[i] = activation `code` of (src[i] + bo) over 1-D float32 arrays of one length (dst
    may be src): bias_activation_rows with one row."""
    bias_activation_rows(src, dst.shape[0], bo, code, param, dst.reshape((1, dst.shape[0])))


@njit(cache=_CACHE)
def bias_activation_rows(src, pitch, bo, code, param, dst):
    """dst[y, x] = activation `code` of (src[y * pitch + x] + bo) for dst [rows, width]
    (a convolution's epilogue: its accumulator has a longer row pitch). The branch on `code`
    is taken once: ReLU, ReLU6, leaky ReLU and none are plain loops that LLVM vectorizes;
    element by element through apply_activation (not vectorized: about 6 ns an element) is
    left for the transcendental ones. The row loop is written out in each branch on purpose:
    one row loop with the branch inside it made LeNet-5's conv1 1.7x slower (21.4 us against
    12.6, one thread)."""
    rows, n = dst.shape
    if code == ACT_RELU:
        for y in range(rows):
            s = src[y * pitch:y * pitch + n]
            d = dst[y]
            for i in range(n):
                v = s[i] + bo
                d[i] = np.float32(0.0) if v < 0 else v
    elif code == ACT_NONE:
        for y in range(rows):
            s = src[y * pitch:y * pitch + n]
            d = dst[y]
            for i in range(n):
                d[i] = s[i] + bo
    elif code == ACT_RELU6:
        for y in range(rows):
            s = src[y * pitch:y * pitch + n]
            d = dst[y]
            for i in range(n):
                v = s[i] + bo
                d[i] = np.float32(0.0) if v < 0 else (np.float32(6.0) if v > 6 else v)
    elif code == ACT_LEAKY_RELU:
        slope = np.float32(param)
        for y in range(rows):
            s = src[y * pitch:y * pitch + n]
            d = dst[y]
            for i in range(n):
                v = s[i] + bo
                d[i] = v * slope if v < 0 else v
    else:
        for y in range(rows):
            s = src[y * pitch:y * pitch + n]
            d = dst[y]
            for i in range(n):
                d[i] = apply_activation(s[i] + bo, code, param)


_NO_ACTIVATION = Activation(ACT_NONE)


# ---------------------------------------------------------------------------------------------
# Argument checks (run once per call, outside the kernels)
# ---------------------------------------------------------------------------------------------


def check_array(name, a, dtypes, ndim=None, contiguous=True):
    """Check that `a` is a numpy array of one of `dtypes` (and `ndim`, C-contiguous)."""
    if not isinstance(a, np.ndarray):
        raise KernelArgumentError(f"{name} must be a numpy array, got {type(a).__name__}")
    if not isinstance(dtypes, tuple):
        dtypes = (dtypes,)
    if a.dtype not in dtypes:
        want = " or ".join(str(np.dtype(d)) for d in dtypes)
        raise KernelArgumentError(f"{name} must have dtype {want}, got {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise KernelArgumentError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if contiguous and not a.flags.c_contiguous:
        raise KernelArgumentError(f"{name} must be C-contiguous (use np.ascontiguousarray)")
    if not a.dtype.isnative:
        raise KernelArgumentError(f"{name} must be in native byte order")
    return a


def check_float32(name, a, ndim=None, contiguous=True):
    return check_array(name, a, np.float32, ndim=ndim, contiguous=contiguous)


def check_float32_array(name, a):
    """A float32 ndarray of any layout (the dense ops' inputs); raises KernelArgumentError."""
    return check_array(name, a, np.float32, contiguous=False)


def check_axis(x, axis):
    """``axis`` (an int, negative counting from the end) as an index into x's dimensions."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise KernelArgumentError(f"axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise KernelArgumentError(f"axis {axis} out of range for a {x.ndim}-D array")
    return int(axis) % x.ndim


def elementwise_threaded(n_elements):
    """Whether an element-wise or pooling kernel over ``n_elements`` runs threaded."""
    return n_elements >= ELEMENTWISE_PARALLEL_MIN


def check_csr(row_ptr, col_idx, codes, codebook, n_rows, n_cols, bias=None, full=True):
    """Check a CSR + codebook weight of logical shape [n_rows, n_cols].

    Shapes and dtypes are always checked. With ``full`` the values are checked too
    (row_ptr monotonic from 0 to E, columns in range and strictly increasing within a row,
    codes below the codebook size): O(E), meant to run once when a layer is loaded.
    """
    check_array("row_ptr", row_ptr, np.int64, ndim=1)
    if n_cols <= MAX_UINT16_COLUMNS:
        check_array("col_idx", col_idx, (np.uint16, np.int32), ndim=1)
    else:
        check_array("col_idx", col_idx, np.int32, ndim=1)
    check_array("codes", codes, np.uint8, ndim=1)
    check_array("codebook", codebook, np.float32, ndim=1)
    if row_ptr.shape[0] != n_rows + 1:
        raise KernelArgumentError(f"row_ptr must have rows+1 = {n_rows + 1} entries, got "
                                  f"{row_ptr.shape[0]}")
    n_entries = col_idx.shape[0]
    if codes.shape[0] != n_entries:
        raise KernelArgumentError(f"codes has {codes.shape[0]} entries but col_idx has {n_entries}")
    if not 1 <= codebook.shape[0] <= MAX_CODEBOOK_SIZE:
        raise KernelArgumentError(f"codebook must hold 1..{MAX_CODEBOOK_SIZE} centroids, got "
                                  f"{codebook.shape[0]}")
    if bias is not None:
        check_array("bias", bias, np.float32, ndim=1)
        if bias.shape[0] != n_rows:
            raise KernelArgumentError(f"bias must have {n_rows} entries, got {bias.shape[0]}")
    if row_ptr[0] != 0 or row_ptr[-1] != n_entries:
        raise KernelArgumentError(
            f"row_ptr must start at 0 and end at the entry count {n_entries}, got "
            f"{row_ptr[0]}..{row_ptr[-1]}"
        )
    if full:
        check = _first_csr_error_parallel if n_entries >= CHECK_PARALLEL_MIN else _first_csr_error
        bad = check(row_ptr, col_idx, codes, n_cols, codebook.shape[0])
        if bad == 1:
            raise KernelArgumentError("row_ptr must be non-decreasing")
        if bad == 2:
            raise KernelArgumentError(f"a column index is out of range [0, {n_cols})")
        if bad == 3:
            raise KernelArgumentError("column indices must be strictly increasing within a row")
        if bad == 4:
            raise KernelArgumentError(f"a code is >= the codebook size {codebook.shape[0]}")


#: Stored entries from which the O(E) value check of a CSR weight runs threaded (only the
#: largest layers: a parallel launch can cost milliseconds on a busy machine).
CHECK_PARALLEL_MIN = 1 << 20


@njit(cache=_CACHE)
def _row_error(row_ptr, col_idx, codes, n_cols, k, r):
    prev = -1
    for e in range(row_ptr[r], row_ptr[r + 1]):
        c = np.int64(col_idx[e])
        if c < 0 or c >= n_cols:
            return 2
        if c <= prev:
            return 3
        prev = c
        if codes[e] >= k:
            return 4
    return 0


@njit(cache=_CACHE)
def _first_csr_error(row_ptr, col_idx, codes, n_cols, k):
    for r in range(row_ptr.shape[0] - 1):
        if row_ptr[r + 1] < row_ptr[r]:
            return 1
    for r in range(row_ptr.shape[0] - 1):
        bad = _row_error(row_ptr, col_idx, codes, n_cols, k, r)
        if bad:
            return bad
    return 0


@njit(cache=_CACHE, parallel=True)
def _first_csr_error_parallel(row_ptr, col_idx, codes, n_cols, k):
    """:func:`_first_csr_error` with the rows checked on every thread (same answer)."""
    n_rows = row_ptr.shape[0] - 1
    for r in range(n_rows):
        if row_ptr[r + 1] < row_ptr[r]:
            return 1
    errs = np.zeros(n_rows, np.int64)
    for r in prange(n_rows):
        errs[r] = _row_error(row_ptr, col_idx, codes, n_cols, k, r)
    for r in range(n_rows):
        if errs[r]:
            return errs[r]
    return 0


def as_pair(name, v, minimum):
    """An int or a pair of ints -> a tuple of two Python ints, each >= minimum."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        t = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(
        isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v
    ):
        t = (int(v[0]), int(v[1]))
    else:
        raise KernelArgumentError(f"{name} must be an int or a pair of ints, got {v!r}")
    if t[0] < minimum or t[1] < minimum:
        raise KernelArgumentError(f"{name} must be >= {minimum}, got {v!r}")
    return t
