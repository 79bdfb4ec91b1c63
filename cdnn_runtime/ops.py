"""Graph ops other than sparse layers: each builds, once at load, a function of its inputs.

:data:`OPS` maps an op name to its builder, ``builder(attrs, params) -> callable``: ``attrs``
the node's normalized attributes, ``params`` its raw parameter arrays by role (a weight that
may be sparse_codebook, graph.OPS' ``weights``, as the reader gives it: an array or a
SparseTensor). A new op is one builder and one entry.
"""

import numpy as np

from .errors import CdnnUnsupportedError
from .kernels import attention, elementwise, norms, pooling, reduce, resize, shape
from .kernels.embedding import Embedding
from .kernels.recurrent import Recurrent


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


# ---- shape ops (version 3)

def _attrs_of(fn, *names):
    """The builder of an op computing ``fn(x, *[attrs[n] for n in names])``."""
    def build(a, p):
        values = [a[n] for n in names]
        return lambda x: fn(x, *values)
    return build


# ---- elementwise, activations, reductions (version 3)

def _ordered_binary(fn):
    """The builder of sub or div: as add's, except that with attribute ``reverse`` the param
    ``other`` comes first (``other - x``)."""
    forward = _binary(fn)

    def build(a, p):
        if a["reverse"]:  # the vocabulary's check: reverse comes with param other
            other = p["other"]
            return lambda x: fn(other, x)
        return forward(a, p)
    return build


def _clamp_max(a, p):
    high = a["max"]
    return lambda x: elementwise.clamp(x, None, high)


# ---- normalisation, resizing, pooling (version 3)

def _layer_norm(a, p):
    return lambda x: norms.layer_norm(x, a["normalized_shape"], p.get("weight"), p.get("bias"),
                                      a["eps"])


def _group_norm(a, p):
    return lambda x: norms.group_norm(x, a["num_groups"], p.get("weight"), p.get("bias"),
                                      a["eps"])


def _interpolate2d(a, p):
    return resize.Interpolate2d(a["size"], a["mode"], a["align_corners"],
                                (a["scale_h"], a["scale_w"]))


def _max_pool1d(a, p):
    return pooling.MaxPool1d(a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                             a["ceil_mode"])


# ---- attention (version 3)

def _attention(a, p):
    """softmax(q k^T * scale + mask) v; the mask is input 4 or the constant param 'mask'."""
    scale, causal, constant_mask = a["scale"], a["causal"], p.get("mask")

    def run(q, k, v, mask=None):
        return attention.attention(q, k, v, scale, causal,
                                   constant_mask if mask is None else mask)
    return run


def _masked_fill(a, p):
    mask, value = p["mask"], float(p["value"][0])
    return lambda x: attention.masked_fill(x, mask, value)


# ---- constants over the batch (version 3)
def _constant(a, p):
    value = np.ascontiguousarray(p["value"], dtype=np.float32)
    return lambda like: np.repeat(value, like.shape[0], axis=0)


# ---- recurrent layers (version 3)
def _recurrent(a, p, cell):
    """One layer of one or two directions (the reverse one's params are `<role>_reverse`),
    its weights as stored (raw or the reader's SparseTensor)."""
    directions = [tuple(p.get(role + suffix) for role in ("w_ih", "w_hh", "b_ih", "b_hh"))
                  for suffix in (("", "_reverse") if a["bidirectional"] else ("",))]
    return Recurrent(cell, a["hidden_size"], directions)


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
    # ---- shape ops (version 3)
    "unsqueeze": _attrs_of(shape.unsqueeze, "dim"),
    "squeeze": _attrs_of(shape.squeeze, "dims"),
    "expand": _attrs_of(shape.expand, "shape"),
    "slice": _attrs_of(shape.slice_axis, "dim", "start", "end", "step"),
    "select": _attrs_of(shape.select, "dim", "index"),
    "unbind": _attrs_of(shape.unbind, "dim"),
    "pad": _attrs_of(shape.pad, "pads", "mode", "value"),
    "pixel_shuffle": _attrs_of(shape.pixel_shuffle, "upscale_factor"),
    "pixel_unshuffle": _attrs_of(shape.pixel_unshuffle, "downscale_factor"),
    "channel_shuffle": _attrs_of(shape.channel_shuffle, "groups"),
    # ---- elementwise, activations, reductions (version 3)
    "sub": _ordered_binary(elementwise.sub),
    "div": _ordered_binary(elementwise.div),
    "minimum": _binary(elementwise.minimum),
    "maximum": _binary(elementwise.maximum),
    "neg": _fixed(elementwise.neg),
    "abs": _fixed(elementwise.absolute),
    "exp": _fixed(elementwise.exp),
    "log": _fixed(elementwise.log),
    "sqrt": _fixed(elementwise.sqrt),
    "rsqrt": _fixed(elementwise.rsqrt),
    "erf": _fixed(elementwise.erf),
    "pow": _attrs_of(elementwise.power, "exponent"),
    "clamp": _attrs_of(elementwise.clamp, "min", "max"),
    "clamp_min": _attrs_of(elementwise.clamp, "min"),
    "clamp_max": _clamp_max,
    "silu": _fixed(elementwise.silu),
    "hardswish": _fixed(elementwise.hardswish),
    "hardsigmoid": _fixed(elementwise.hardsigmoid),
    "mish": _fixed(elementwise.mish),
    "elu": _attrs_of(elementwise.elu, "alpha", "scale", "input_scale"),
    "softplus": _attrs_of(elementwise.softplus, "beta", "threshold"),
    "mean": _attrs_of(reduce.mean, "dims", "keepdim"),
    "sum": _attrs_of(reduce.sum, "dims", "keepdim"),
    "amax": _attrs_of(reduce.amax, "dims", "keepdim"),
    "amin": _attrs_of(reduce.amin, "dims", "keepdim"),
    # ---- normalisation, resizing, pooling (version 3)
    "layer_norm": _layer_norm,
    "group_norm": _group_norm,
    "interpolate2d": _interpolate2d,
    "max_pool1d": _max_pool1d,
    "avg_pool1d": _attrs_of(pooling.avg_pool1d, "kernel_size", "stride", "padding", "ceil_mode",
                            "count_include_pad"),
    "adaptive_avg_pool1d": _attrs_of(pooling.adaptive_avg_pool1d, "output_size"),
    "adaptive_max_pool1d": _attrs_of(pooling.adaptive_max_pool1d, "output_size"),
    "adaptive_max_pool2d": _attrs_of(pooling.adaptive_max_pool2d, "output_size"),
    "dropout": _fixed(_identity),
    "identity": _fixed(_identity),
    # ---- token inputs and embeddings (version 3): the table as stored (raw or the reader's
    # SparseTensor), looked up row by row
    "embedding": lambda a, p: Embedding(p["weight"]),
    # ---- attention (version 3)
    "matmul": _ordered_binary(attention.matmul),
    "attention": _attention,
    "masked_fill": _masked_fill,
    # ---- constants over the batch (version 3)
    "constant": _constant,
    # ---- free sequence dims (version 3)
    "arange": _attrs_of(shape.arange, "dim"),
    "unflatten": _attrs_of(shape.unflatten, "dim", "sizes"),
    # ---- recurrent layers (version 3)
    "lstm": lambda a, p: _recurrent(a, p, "lstm"),
    "gru": lambda a, p: _recurrent(a, p, "gru"),
    "rnn": lambda a, p: _recurrent(a, p, f"rnn_{a['nonlinearity']}"),
}


def build_op(op, a, p):
    """A callable for one dense op; `a` its normalized attributes, `p` its raw params."""
    builder = OPS.get(op)
    if builder is None:
        raise CdnnUnsupportedError(f"op {op!r} has no runtime implementation")
    return builder(a, p)
