"""Graph ops other than sparse layers: each builds, once at load, a function of its inputs.

:data:`OPS` maps an op name to its builder, ``builder(attrs, params) -> callable``: ``attrs``
the node's normalized attributes, ``params`` its raw parameter arrays by role. A new op is one
builder and one entry.
"""

from .errors import CdnnUnsupportedError
from .kernels import elementwise, norms, pooling, shape


def _identity(x):
    return x


def _fixed(fn):
    """The builder of an op without attributes or params: always ``fn`` itself."""
    return lambda attrs, params: fn


def _max_pool2d(a, p):
    return pooling.MaxPool2d(a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                             a["ceil_mode"])


def _avg_pool2d(a, p):
    return lambda x: pooling.avg_pool2d(x, a["kernel_size"], a["stride"], a["padding"],
                                        a["ceil_mode"], a["count_include_pad"])


def _adaptive_avg_pool2d(a, p):
    return lambda x: pooling.adaptive_avg_pool2d(x, tuple(a["output_size"]))


def _leaky_relu(a, p):
    return lambda x: elementwise.leaky_relu(x, a["negative_slope"])


def _prelu(a, p):
    return lambda x: elementwise.prelu(x, p["weight"])


def _gelu(a, p):
    return lambda x: elementwise.gelu(x, a["approximate"])


def _binary(fn):
    """The builder of add or mul: of two inputs, or of one and the constant param ``other``."""
    def build(a, p):
        other = p.get("other")
        if other is None:
            return fn
        return lambda x: fn(x, other)
    return build


def _softmax(a, p):
    return lambda x: norms.softmax(x, a["dim"])


def _log_softmax(a, p):
    return lambda x: norms.log_softmax(x, a["dim"])


def _batch_norm(a, p):
    return lambda x: norms.batch_norm(x, p["mean"], p["var"], p.get("weight"), p.get("bias"),
                                      a["eps"])


def _local_response_norm(a, p):
    return lambda x: norms.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["k"])


def _flatten(a, p):
    return lambda x: shape.flatten(x, a["start_dim"], a["end_dim"])


def _reshape(a, p):
    """Reshape the dims after the batch dim; a -1 is inferred per sample (so batch 0 works)."""
    dims_after_batch = list(a["shape"])

    def fn(x):
        dims = list(dims_after_batch)
        if -1 in dims:
            per_sample = 1
            for d in x.shape[1:]:
                per_sample *= d
            known = 1
            for d in dims:
                known *= d if d != -1 else 1
            if known == 0 or per_sample % known:
                raise ValueError(f"cannot reshape samples of shape {list(x.shape[1:])} "
                                 f"to {dims_after_batch}")
            dims[dims.index(-1)] = per_sample // known
        return shape.reshape(x, [x.shape[0]] + dims)
    return fn


def _permute(a, p):
    return lambda x: shape.permute(x, a["dims"])


def _transpose(a, p):
    d0, d1 = a["dim0"], a["dim1"]

    def fn(x):
        perm = list(range(x.ndim))
        i, j = d0 % x.ndim, d1 % x.ndim
        perm[i], perm[j] = perm[j], perm[i]
        return shape.permute(x, perm)
    return fn


def _cat(a, p):
    return lambda *xs: shape.cat(list(xs), a["dim"])


def _split(a, p):
    return lambda x: shape.split(x, a["sizes"], a["dim"])


#: op name -> builder(attrs, params) -> the op's function of its inputs (a list of arrays for
#: an op with several outputs).
OPS = {
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "relu": _fixed(elementwise.relu),
    "relu6": _fixed(elementwise.relu6),
    "sigmoid": _fixed(elementwise.sigmoid),
    "tanh": _fixed(elementwise.tanh),
    "leaky_relu": _leaky_relu,
    "prelu": _prelu,
    "gelu": _gelu,
    "add": _binary(elementwise.add),
    "mul": _binary(elementwise.mul),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "batch_norm": _batch_norm,
    "local_response_norm": _local_response_norm,
    "flatten": _flatten,
    "reshape": _reshape,
    "permute": _permute,
    "transpose": _transpose,
    "cat": _cat,
    "split": _split,
    "dropout": _fixed(_identity),
    "identity": _fixed(_identity),
}


def build_op(op, a, p):
    """A callable for one dense op; `a` its normalized attributes, `p` its raw params."""
    builder = OPS.get(op)
    if builder is None:
        raise CdnnUnsupportedError(f"op {op!r} has no runtime implementation")
    return builder(a, p)
