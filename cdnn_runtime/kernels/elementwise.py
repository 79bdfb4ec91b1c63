"""Element-wise operators as torch.nn.functional computes them: the activations (one numba
kernel over the ACT_* enum of :mod:`._common`, threaded above ``ELEMENTWISE_PARALLEL_MIN``
elements), prelu, and add and mul with numpy broadcasting. Inputs are float32 arrays of any
layout (or scalars for add and mul); every function returns a new C-contiguous float32 array.
"""

import math

import numpy as np
from numba import njit, prange

from .._jit import jit_cache
from ._common import (
    ACT_LEAKY_RELU,
    ACT_NONE,
    Activation,
    KernelArgumentError,
    apply_activation,
    check_float32_array,
    elementwise_threaded,
    parse_activation,
)

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


@njit(cache=_CACHE, parallel=True)
def activation_parallel(x, code, param, out):
    """out[i] = activation(x[i]) over flat float32 arrays."""
    for i in prange(x.shape[0]):
        out[i] = apply_activation(x[i], code, param)


@njit(cache=_CACHE)
def activation_serial(x, code, param, out):
    """Serial :func:`activation_parallel`."""
    for i in range(x.shape[0]):
        out[i] = apply_activation(x[i], code, param)


def activate_flat(x, act, out):
    """out = act(x) for flat float32 arrays of equal length (``out`` may be ``x``); ``act`` an
    :class:`Activation` other than none."""
    kern = activation_parallel if elementwise_threaded(x.shape[0]) else activation_serial
    kern(x, act.code, act.param, out)


def _map_activation(x, act):
    out = np.empty(x.shape, np.float32)
    if act.code == ACT_NONE:
        out[...] = x
        return out
    activate_flat(np.ascontiguousarray(x).reshape(-1), act, out.reshape(-1))
    return out


_RELU = parse_activation("relu")
_RELU6 = parse_activation("relu6")
_SIGMOID = parse_activation("sigmoid")
_TANH = parse_activation("tanh")
#: gelu's ``approximate`` argument -> its activation.
_GELU = {"none": parse_activation("gelu"), "tanh": parse_activation("gelu_tanh")}


def activation(x, spec):
    """Apply an activation given as a spec (see parse_activation) element-wise."""
    return _map_activation(check_float32_array("x", x), parse_activation(spec))


def relu(x):
    """max(x, 0); NaN stays NaN."""
    return _map_activation(check_float32_array("x", x), _RELU)


def relu6(x):
    """min(max(x, 0), 6); NaN stays NaN."""
    return _map_activation(check_float32_array("x", x), _RELU6)


def leaky_relu(x, negative_slope=0.01):
    """x if x >= 0 else negative_slope * x."""
    slope = float(negative_slope)
    if not math.isfinite(slope):
        raise KernelArgumentError(f"negative_slope must be finite, got {negative_slope!r}")
    return _map_activation(check_float32_array("x", x), Activation(ACT_LEAKY_RELU, slope))


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow."""
    return _map_activation(check_float32_array("x", x), _SIGMOID)


def tanh(x):
    """Hyperbolic tangent."""
    return _map_activation(check_float32_array("x", x), _TANH)


def gelu(x, approximate="none"):
    """GELU: exact erf form (approximate='none') or the tanh approximation ('tanh')."""
    act = _GELU.get(approximate) if isinstance(approximate, str) else None
    if act is None:
        raise KernelArgumentError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    return _map_activation(check_float32_array("x", x), act)


def prelu(x, weight):
    """x if x >= 0 else weight * x, weight float32 of one value or one per channel (axis 1)."""
    x = check_float32_array("x", x)
    weight = check_float32_array("weight", weight)
    if weight.ndim != 1:
        raise KernelArgumentError(f"prelu weight must be 1-D, got shape {weight.shape}")
    n = weight.shape[0]
    if n == 1:
        w = weight.reshape(())
    else:
        if x.ndim < 2 or x.shape[1] != n:
            raise KernelArgumentError(
                f"prelu weight has {n} values but x has shape {x.shape} (channels on axis 1)")
        w = weight.reshape((1, n) + (1,) * (x.ndim - 2))
    return np.ascontiguousarray(np.where(x < 0, x * w, x).astype(np.float32, copy=False))


# ---------------------------------------------------------------------------------------------
# Arithmetic with broadcasting
# ---------------------------------------------------------------------------------------------


def _operand(name, v):
    if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool):
        return np.float32(v)
    return check_float32_array(name, v)


def _binary(ufunc, a, b, what):
    """ufunc(a, b) in float32 after checking both operands and that their shapes broadcast."""
    a = _operand("a", a)
    b = _operand("b", b)
    try:
        np.broadcast_shapes(np.shape(a), np.shape(b))
    except ValueError:
        raise KernelArgumentError(
            f"{what}: shapes {np.shape(a)} and {np.shape(b)} do not broadcast") from None
    return np.ascontiguousarray(ufunc(a, b, dtype=np.float32))


def add(a, b):
    """a + b with numpy broadcasting (float32 arrays or Python/numpy scalars)."""
    return _binary(np.add, a, b, "add")


def mul(a, b):
    """a * b with numpy broadcasting (float32 arrays or Python/numpy scalars)."""
    return _binary(np.multiply, a, b, "mul")
