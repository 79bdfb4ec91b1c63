"""Element-wise operators as torch.nn.functional computes them: the activations (one numba
kernel over the ACT_* enum of :mod:`._common`, threaded above ``ELEMENTWISE_PARALLEL_MIN``
elements), prelu, the other activations and math functions as numpy expressions in PyTorch's
own formulas (erf as a numba kernel), and arithmetic with numpy broadcasting. Inputs are float32
arrays of any layout (or scalars for the arithmetic); every function returns a new C-contiguous
float32 array. NaN propagates as in PyTorch; log(0), sqrt(-1), x / 0 give what IEEE 754 says,
without warnings.
"""

import math

import numpy as np
from numba import njit, prange

from .._jit import jit_cache, threaded_or_serial
from ._common import (
    ACT_LEAKY_RELU,
    ACT_NONE,
    Activation,
    KernelArgumentError,
    bias_activation,
    check_float32_array,
    elementwise_threaded,
    parse_activation,
)

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


#: Elements per task of activation_parallel.
ACTIVATION_BLOCK = 1 << 14


@njit(cache=_CACHE, parallel=True)
def activation_parallel(x, code, param, out):
    """out[i] = activation(x[i]) over flat float32 arrays, in blocks spread over threads."""
    n = x.shape[0]
    for t in prange((n + ACTIVATION_BLOCK - 1) // ACTIVATION_BLOCK):
        i0 = t * ACTIVATION_BLOCK
        i1 = min(i0 + ACTIVATION_BLOCK, n)
        bias_activation(x[i0:i1], np.float32(0.0), code, param, out[i0:i1])


@njit(cache=_CACHE)
def activation_serial(x, code, param, out):
    """Serial :func:`activation_parallel`."""
    bias_activation(x, np.float32(0.0), code, param, out)


def activate_flat(x, act, out):
    """out = act(x) for flat float32 arrays of equal length (``out`` may be ``x``); ``act`` an
    :class:`Activation` other than none."""
    kern = threaded_or_serial(activation_parallel, activation_serial,
                              elementwise_threaded(x.shape[0]))
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
        with np.errstate(over="ignore"):
            return np.float32(v)
    return check_float32_array(name, v)


def _named(fn, name, doc):
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _binary(ufunc, what, doc):
    """The function (a, b) -> ufunc(a, b) in float32, for float32 arrays or Python/numpy
    scalars, after checking both operands and that their shapes broadcast (as numpy's)."""
    def fn(a, b):
        a = _operand("a", a)
        b = _operand("b", b)
        try:
            np.broadcast_shapes(np.shape(a), np.shape(b))
        except ValueError:
            raise KernelArgumentError(
                f"{what}: shapes {np.shape(a)} and {np.shape(b)} do not broadcast") from None
        with np.errstate(all="ignore"):
            return np.ascontiguousarray(ufunc(a, b, dtype=np.float32))
    return _named(fn, what, doc)


add = _binary(np.add, "add", "a + b with numpy broadcasting.")
mul = _binary(np.multiply, "mul", "a * b with numpy broadcasting.")
sub = _binary(np.subtract, "sub", "a - b with numpy broadcasting.")
div = _binary(np.divide, "div", "a / b (true division) with numpy broadcasting; x / 0 is +-inf, "
                                "0 / 0 NaN.")
minimum = _binary(np.minimum, "minimum", "torch.minimum: the smaller of a and b with numpy "
                                         "broadcasting; NaN if either is NaN.")
maximum = _binary(np.maximum, "maximum", "torch.maximum: the larger of a and b with numpy "
                                         "broadcasting; NaN if either is NaN.")


# ---------------------------------------------------------------------------------------------
# Math functions and activations of one input, in PyTorch's float32 formulas
# ---------------------------------------------------------------------------------------------

_ONE = np.float32(1.0)
_THREE = np.float32(3.0)
_SIX = np.float32(6.0)


def _apply(formula, x):
    """formula(x) over a checked float32 array, computed without warnings (inf and NaN results
    are meant), as a new C-contiguous float32 array."""
    x = check_float32_array("x", x)
    with np.errstate(all="ignore"):
        y = formula(x)
    return np.ascontiguousarray(y, dtype=np.float32)


def _unary(name, formula, doc):
    """The function x -> formula(x) of :func:`_apply`, named `name`."""
    return _named(lambda x: _apply(formula, x), name, doc)


def _relu6(v):
    return np.minimum(np.maximum(v, np.float32(0.0)), _SIX)


neg = _unary("neg", np.negative, "-x.")
absolute = _unary("absolute", np.abs, "|x| (the op `abs`).")
exp = _unary("exp", np.exp, "e ** x.")
log = _unary("log", np.log, "Natural logarithm: -inf at 0, NaN below 0.")
sqrt = _unary("sqrt", np.sqrt, "Square root: NaN below 0 (-0 stays -0).")
rsqrt = _unary("rsqrt", lambda v: _ONE / np.sqrt(v),
               "1 / sqrt(x), as torch.rsqrt: inf at 0, -inf at -0, NaN below 0.")
silu = _unary("silu", lambda v: v / (_ONE + np.exp(-v)),
              "x * sigmoid(x), as torch computes it: x / (1 + exp(-x)).")
hardsigmoid = _unary("hardsigmoid", lambda v: _relu6(v + _THREE) / _SIX,
                     "min(max(x + 3, 0), 6) / 6.")
hardswish = _unary("hardswish", lambda v: v * _relu6(v + _THREE) / _SIX,
                   "x * min(max(x + 3, 0), 6) / 6.")
mish = _unary("mish", lambda v: v * np.tanh(np.log1p(np.exp(v))),
              "x * tanh(softplus(x)) = x * tanh(log1p(exp(x))).")


def _float32(name, v):
    """A finite number as float32, as PyTorch casts a scalar for a float32 tensor (beyond
    float32's range it becomes +-inf)."""
    v = float(v)
    if not math.isfinite(v):
        raise KernelArgumentError(f"{name} must be finite, got {v!r}")
    with np.errstate(over="ignore"):
        return np.float32(v)


def elu(x, alpha=1.0, scale=1.0, input_scale=1.0):
    """scale * x for x > 0, else alpha * scale * (exp(input_scale * x) - 1): torch's elu
    (SELU and CELU are this with their constants)."""
    pos_coef = _float32("scale", scale)
    with np.errstate(over="ignore"):
        neg_coef = _float32("alpha", alpha) * pos_coef  # in float32, as torch's kernel does
    in_coef = _float32("input_scale", input_scale)
    return _apply(lambda v: np.where(v > 0, v * pos_coef, np.expm1(v * in_coef) * neg_coef), x)


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * x)) / beta, or x where beta * x > threshold (torch's rule)."""
    beta = _float32("beta", beta)
    threshold = _float32("threshold", threshold)
    return _apply(lambda v: np.where(v * beta > threshold, v,
                                     np.log1p(np.exp(v * beta)) / beta), x)


def power(x, exponent):
    """x ** exponent (the op `pow`) for a scalar exponent, with PyTorch's exact forms of the
    common ones (x * x for 2, sqrt for 0.5, 1 / x for -1...); a negative x to a fractional
    power is NaN."""
    e32 = _float32("exponent", exponent)
    form = _POWERS.get(float(e32))
    if form is None:
        form = lambda v: np.power(v, e32)  # noqa: E731
    return _apply(form, x)


#: exponent -> torch's form of x ** exponent (pow_tensor_scalar_optimized_kernel and friends).
_POWERS = {
    0.0: lambda v: np.ones_like(v),
    1.0: lambda v: v.copy(),
    2.0: lambda v: v * v,
    3.0: lambda v: v * v * v,
    0.5: np.sqrt,
    -0.5: lambda v: _ONE / np.sqrt(v),
    -1.0: lambda v: _ONE / v,
    -2.0: lambda v: _ONE / (v * v),
}


def clamp(x, low=None, high=None):
    """torch.clamp(x, min=low, max=high): max(x, low) then min(., high), either bound
    optional; NaN stays NaN, and low > high gives high everywhere, as in PyTorch."""
    if low is None and high is None:
        raise KernelArgumentError("clamp needs min or max")
    lo = None if low is None else _float32("min", low)
    hi = None if high is None else _float32("max", high)

    def bounded(v):
        if lo is not None:
            v = np.maximum(v, lo)
        if hi is not None:
            v = np.minimum(v, hi)
        return v
    return _apply(bounded, x)


@njit(cache=_CACHE)
def erf_flat(x, out):
    """out[i] = erf(x[i]) over flat float32 arrays (computed in float64)."""
    for i in range(x.shape[0]):
        out[i] = np.float32(math.erf(np.float64(x[i])))


def erf(x):
    """The error function; erf(+-inf) = +-1, NaN stays NaN."""
    x = check_float32_array("x", x)
    out = np.empty(x.shape, np.float32)
    erf_flat(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out
