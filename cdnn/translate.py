"""ATen ops to ops of the format: one handler per ATen op, found in a table.

`HANDLERS` maps an ATen overload (``torch.ops.aten.relu.default``) to a function
``handler(g, node)`` that emits the node's graph op through the builder `g`
(:class:`cdnn.capture.GraphBuilder`) or maps its value onto another one. Adding an op is one
entry: a function decorated with ``@handles(overload, ...)``.
"""

import math
import operator
import os

import torch
import torch.utils._pytree as pytree

from cdnn_runtime.constants import MAX_NODE_OUTPUTS, MAX_RANK
from cdnn_runtime.errors import CdnnUnsupportedError

from .recurrent import CUSTOM_OPS

aten = torch.ops.aten

#: ATen overload -> handler(g, node)
HANDLERS = {}
#: Ops never computed at capture even on constants only (their handler maps values).
_NOT_FOLDED = {operator.getitem}


def handles(*targets):
    """Register the decorated function as the handler of every ATen overload in `targets`."""
    def register(fn):
        for t in targets:
            HANDLERS[t] = fn
        return fn
    return register


def source_line(node):
    """The user's source line that made `node` ("file, line N, in fn"), from its stack trace."""
    trace = node.meta.get("stack_trace") or ""
    frames = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
    torch_dir = os.path.dirname(torch.__file__)
    user = [f for f in frames if torch_dir not in f]
    pick = (user or frames or ["(unknown source)"])[-1]
    return pick.replace("File ", "", 1)


def module_path(node):
    """The path of the innermost nn.Module that made `node` ("features.3"), or "(top level)"."""
    stack = node.meta.get("nn_module_stack") or {}
    paths = [v[0] for v in stack.values() if isinstance(v, tuple) and v[0]]
    return paths[-1] if paths else "(top level)"


def unsupported(node, why=""):
    """Stop capture on `node`: the op, the module path and the user's source line."""
    raise CdnnUnsupportedError(
        f"op {node.target} is not supported by cdnn_runtime{': ' + why if why else ''} "
        f"(module {module_path(node)!r}, {source_line(node)})")


def translate(g, node):
    """Emit the graph op(s) of one call_function node, or stop on an op without a handler.
    An op on parameters and constants only is computed here, once (see _fold_constant)."""
    g.current = node
    if _fold_constant(g, node):
        return
    handler = HANDLERS.get(node.target)
    if handler is None:
        unsupported(node)
    handler(g, node)


def _fold_constant(g, node):
    """Compute `node` at capture when every tensor it reads is a parameter or a constant (a
    weight reshaped as `w.view(-1, 1, 1)` or `w[:, None, None]`, a mask from `arange`): its
    result becomes a constant of the graph. Returns whether it did."""
    if node.target in _NOT_FOLDED:
        return False
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor) or not all(isinstance(d, int) for d in val.shape):
        return False
    if isinstance(node.target, torch._ops.OpOverload) and \
            torch.Tag.nondeterministic_seeded in node.target.tags:
        return False
    leaves = [a for a in pytree.tree_leaves((node.args, node.kwargs))
              if isinstance(a, torch.fx.Node)]
    if not all(isinstance(g.values.get(a), tuple) and g.values[a][0] == "param"
               for a in leaves):
        return False
    args, kwargs = pytree.tree_map(
        lambda a: g.state[g.values[a][1]] if isinstance(a, torch.fx.Node) else a,
        (node.args, node.kwargs))
    with torch.no_grad():
        out = node.target(*args, **kwargs)
    name = f"{node.name}.const"
    g.state[name] = out
    g.values[node] = ("param", name)
    return True


def arg(node, i, key, default=None):
    """Argument `i` of the node, given by position or by keyword `key`."""
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def pair(v):
    """An int or a 1- or 2-element sequence as a list of two ints."""
    if isinstance(v, int):
        return [v, v]
    v = [int(x) for x in v]
    return v * 2 if len(v) == 1 else v


def _module_name(weight_name):
    return weight_name.rsplit(".", 1)[0] if "." in weight_name else weight_name


# ---- values that need no op ------------------------------------------------------------------

@handles(aten.sym_size.int)
def _sym_size(g, node):
    g.values[node] = ("sym", int(node.args[1]))
    g.sym_sources[node] = (node.args[0], int(node.args[1]))


@handles(aten.dropout.default, aten.dropout_.default, aten.clone.default,
         aten.contiguous.default, aten.alias.default, aten.detach.default,
         aten.feature_dropout.default, aten.alpha_dropout.default)
def _identity(g, node):
    g.values[node] = g.value_name(node.args[0])


@handles(operator.getitem)
def _getitem(g, node):
    """One output of a node with several (split), or the values of max_pool2d_with_indices."""
    src, index = node.args
    v = g.values[src]
    if isinstance(v, tuple) and v[0] == "multi":
        g.values[node] = v[1][index]
    elif index == 0:
        g.values[node] = v
    else:
        unsupported(node, f"output {index} of {src.target}")


# ---- activations -----------------------------------------------------------------------------

_ACTIVATIONS = {
    aten.relu.default: "relu", aten.relu_.default: "relu",
    aten.sigmoid.default: "sigmoid", aten.sigmoid_.default: "sigmoid",
    aten.tanh.default: "tanh", aten.tanh_.default: "tanh",
    aten.relu6.default: "relu6",
}


@handles(*_ACTIVATIONS)
def _activation(g, node):
    g.emit(node, _ACTIVATIONS[node.target], [g.value_name(node.args[0])])


@handles(aten.hardtanh.default, aten.hardtanh_.default)
def _hardtanh(g, node):
    """relu6 for hardtanh(0, 6), clamp for other bounds."""
    _emit_clamp(g, node, arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0))


@handles(aten.leaky_relu.default, aten.leaky_relu_.default)
def _leaky_relu(g, node):
    g.emit(node, "leaky_relu", [g.value_name(node.args[0])],
           attrs={"negative_slope": float(arg(node, 1, "negative_slope", 0.01))})


@handles(aten.prelu.default)
def _prelu(g, node):
    g.emit(node, "prelu", [g.value_name(node.args[0])], {"weight": g.param(node.args[1], node)})


@handles(aten.gelu.default)
def _gelu(g, node):
    g.emit(node, "gelu", [g.value_name(node.args[0])],
           attrs={"approximate": arg(node, 1, "approximate", "none")})


@handles(aten.softmax.int, aten._softmax.default, aten.log_softmax.int,
         aten._log_softmax.default)
def _softmax(g, node):
    op = "log_softmax" if "log" in str(node.target) else "softmax"
    g.emit(node, op, [g.value_name(node.args[0])], attrs={"dim": int(node.args[1])})


# ---- layers with weights ---------------------------------------------------------------------

def _weight_and_bias(g, node):
    """Params of a linear or conv node: its weight and, when given, its bias."""
    prm = {"weight": g.param(node.args[1], node)}
    if arg(node, 2, "bias") is not None:
        prm["bias"] = g.param(node.args[2], node)
    return prm


@handles(aten.linear.default)
def _linear(g, node):
    prm = _weight_and_bias(g, node)
    g.compressible(prm["weight"], "linear")
    g.emit(node, "linear", [g.value_name(node.args[0])], prm, name=_module_name(prm["weight"]))


# ---- token inputs and embeddings (version 3)
@handles(aten.embedding.default)
def _embedding(g, node):
    """Rows of a table parameter at integer ids (padding_idx matters to training only). A table
    tied to a linear head is one tensor that both nodes name."""
    weight = g.param(node.args[0], node)
    g.compressible(weight, "embedding")
    ids = g.value_name(node.args[1])
    if ids in g.positions:  # a position table bounds the free dim it is indexed by
        _bound_free_dim(g, *g.positions[ids], g.params[weight].shape[0])
    g.emit(node, "embedding", [ids], {"weight": weight}, name=_module_name(weight))


# ---- free sequence dims (version 3) ------------------------------------------------------------

def _bound_free_dim(g, value, dim, rows):
    """Lower the max of graph input `value`'s free `dim` to `rows` (a position table's)."""
    for spec in g.graph["inputs"]:
        for f in spec.get("free", ()) if spec["name"] == value else ():
            if f["dim"] == dim:
                f["max"] = min(f["max"] or rows, rows)


@handles(aten.arange.default, aten.arange.start, aten.arange.start_step)
def _arange(g, node):
    """torch.arange over a size known at run time (a free sequence's length): positions
    0..n-1, int64, as the `arange` op of the tensor whose size it is."""
    args = list(node.args)
    start, end, step = (0, args[0], 1) if len(args) == 1 else (args + [1])[:3]
    dtype = node.kwargs.get("dtype")
    source = g.sym_sources.get(end)
    if source is None or start != 0 or step != 1 or dtype not in (None, torch.int64):
        unsupported(node, "an arange other than torch.arange(x.shape[d]) of int64 positions")
    tensor, dim = source
    like = g.value_name(tensor)
    g.emit(node, "arange", [like], attrs={"dim": dim})
    if any(s["name"] == like for s in g.graph["inputs"]):
        g.positions[node.name] = (like, dim)


def _same_padding(node, padding, stride, dilation):
    """A conv's string padding as numbers, or stop where PyTorch would pad one side only."""
    kshape = node.args[1].meta["val"].shape[2:]
    if padding == "valid":
        return [0, 0]
    if padding == "same" and stride == [1, 1] and all(
            (d * (k - 1)) % 2 == 0 for d, k in zip(dilation, kshape)):
        return [d * (k - 1) // 2 for d, k in zip(dilation, kshape)]
    unsupported(node, f"padding={padding!r} with asymmetric padding")


@handles(aten.conv2d.default, aten.conv2d.padding)
def _conv2d(g, node):
    prm = _weight_and_bias(g, node)
    stride = pair(arg(node, 3, "stride", 1))
    padding = arg(node, 4, "padding", 0)
    dilation = pair(arg(node, 5, "dilation", 1))
    if isinstance(padding, str):
        padding = _same_padding(node, padding, stride, dilation)
    g.compressible(prm["weight"], "conv2d")
    g.emit(node, "conv2d", [g.value_name(node.args[0])], prm,
           {"stride": stride, "padding": pair(padding), "dilation": dilation,
            "groups": int(arg(node, 6, "groups", 1))}, name=_module_name(prm["weight"]))


# ---- convolutions (version 3)

def _one(v):
    """A 1-D conv argument (an int or a list of one int) as an int."""
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


def _layer_input(g, node, rank):
    """The input value of a conv layer, which must have the batch dim (rank `rank`)."""
    if len(node.args[0].meta["val"].shape) != rank:
        unsupported(node, f"an input without a batch dimension (rank {rank - 1})")
    return [g.value_name(node.args[0])]


@handles(aten.conv1d.default, aten.conv1d.padding)
def _conv1d(g, node):
    """conv1d; padding "same" as [left, right] (the odd zero on the right, as PyTorch pads)."""
    prm = _weight_and_bias(g, node)
    stride, dilation = _one(arg(node, 3, "stride", 1)), _one(arg(node, 5, "dilation", 1))
    reach = dilation * (int(node.args[1].meta["val"].shape[2]) - 1)
    padding = arg(node, 4, "padding", 0)
    if padding == "same":
        padding = [reach // 2, reach - reach // 2]
    elif padding == "valid":
        padding = [0, 0]
    else:
        padding = [_one(padding)] * 2
    if max(padding) > reach:
        unsupported(node, f"padding {padding[0]} beyond the dilated kernel's reach {reach}")
    g.compressible(prm["weight"], "conv1d")
    g.emit(node, "conv1d", _layer_input(g, node, 3), prm,
           {"stride": stride, "padding": padding, "dilation": dilation,
            "groups": int(arg(node, 6, "groups", 1))}, name=_module_name(prm["weight"]))


@handles(aten.conv_transpose2d.input)
def _conv_transpose2d(g, node):
    prm = _weight_and_bias(g, node)
    g.compressible(prm["weight"], "conv_transpose2d")
    g.emit(node, "conv_transpose2d", _layer_input(g, node, 4), prm,
           {"stride": pair(arg(node, 3, "stride", 1)),
            "padding": pair(arg(node, 4, "padding", 0)),
            "output_padding": pair(arg(node, 5, "output_padding", 0)),
            "groups": int(arg(node, 6, "groups", 1)),
            "dilation": pair(arg(node, 7, "dilation", 1))}, name=_module_name(prm["weight"]))

@handles(aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default)
def _batch_norm(g, node):
    x, w, b, mean, var = node.args[:5]
    eps = float(arg(node, 7, "eps", 1e-5)) if node.target == aten.batch_norm.default \
        else float(node.args[6])
    prm = {"mean": g.param(mean, node), "var": g.param(var, node)}
    if w is not None:
        prm["weight"] = g.param(w, node)
    if b is not None:
        prm["bias"] = g.param(b, node)
    g.emit(node, "batch_norm", [g.value_name(x)], prm, {"eps": eps})


# ---- pooling and normalisation ---------------------------------------------------------------

def _window(node):
    """kernel_size and stride (the kernel size when not given) of a pooling node."""
    k = pair(arg(node, 1, "kernel_size"))
    s = arg(node, 2, "stride", None)
    return k, pair(s) if s else k


@handles(aten.max_pool2d.default, aten.max_pool2d_with_indices.default)
def _max_pool2d(g, node):
    k, s = _window(node)
    g.emit(node, "max_pool2d", [g.value_name(node.args[0])], attrs={
        "kernel_size": k, "stride": s, "padding": pair(arg(node, 3, "padding", 0)),
        "dilation": pair(arg(node, 4, "dilation", 1)),
        "ceil_mode": bool(arg(node, 5, "ceil_mode", False))})


@handles(aten.avg_pool2d.default)
def _avg_pool2d(g, node):
    k, s = _window(node)
    if arg(node, 6, "divisor_override") is not None:
        unsupported(node, "divisor_override")
    g.emit(node, "avg_pool2d", [g.value_name(node.args[0])], attrs={
        "kernel_size": k, "stride": s, "padding": pair(arg(node, 3, "padding", 0)),
        "ceil_mode": bool(arg(node, 4, "ceil_mode", False)),
        "count_include_pad": bool(arg(node, 5, "count_include_pad", True))})


@handles(aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default)
def _adaptive_avg_pool2d(g, node):
    out = arg(node, 1, "output_size")
    sizes = list(out) if isinstance(out, (list, tuple)) else [out]
    if out is None or any(v is None for v in sizes):
        unsupported(node, "adaptive pooling with a free output size")
    g.emit(node, "adaptive_avg_pool2d", [g.value_name(node.args[0])],
           attrs={"output_size": pair(out)})


@torch.library.custom_op("cdnn::local_response_norm", mutates_args=())
def _lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """LocalResponseNorm as one op (PyTorch's own decomposes into a dozen)."""
    return torch.nn.functional.local_response_norm(x, size, alpha, beta, k)


@_lrn.register_fake
def _(x, size, alpha, beta, k):
    return torch.empty_like(x)


@handles(torch.ops.cdnn.local_response_norm.default)
def _local_response_norm(g, node):
    a = node.args
    g.emit(node, "local_response_norm", [g.value_name(a[0])], attrs={
        "size": int(a[1]), "alpha": float(a[2]), "beta": float(a[3]), "k": float(a[4])})


# ---- shape -----------------------------------------------------------------------------------

@handles(aten.flatten.using_ints)
def _flatten(g, node):
    g.emit(node, "flatten", [g.value_name(node.args[0])], attrs={
        "start_dim": int(arg(node, 1, "start_dim", 0)),
        "end_dim": int(arg(node, 2, "end_dim", -1))})


def _per_sample(shape):
    """Elements of one sample of a value of `shape` (batch first), or None if a dim is free."""
    n = 1
    for d in shape[1:]:
        if not isinstance(d, int):
            return None
        n *= d
    return n


@handles(aten.view.default, aten.reshape.default, aten._unsafe_view.default)
def _reshape(g, node):
    shape = list(node.args[1])
    src = node.args[0].meta["val"].shape
    first = shape[0]
    rest = []
    for d in shape[1:]:
        if not isinstance(d, int):
            if isinstance(d, torch.fx.Node) and d in g.sym_sources:
                return _reshape_over_free_dims(g, node)
            unsupported(node, "a reshape to a size known only at run time")
        rest.append(int(d))
    # with a free batch, a literal first dim equal to the example's batch is ambiguous only
    # when another dim is -1; with a fixed batch it is the batch
    is_batch = (isinstance(first, torch.fx.Node) and g.values.get(first) == ("sym", 0)) or \
        first == -1 or (isinstance(first, int) and isinstance(src[0], int) and first == src[0]
                        and (-1 not in rest or not g.dynamic))
    if not is_batch:
        unsupported(node, "a reshape that changes the batch dimension")
    if first == -1 and -1 in rest:
        unsupported(node, "a reshape with two -1")
    per_sample = _per_sample(src)
    known = 1
    for d in rest:
        known *= d if d != -1 else 1
    if per_sample is not None and -1 not in rest and known != per_sample:
        unsupported(node, f"a reshape of samples of {per_sample} elements to {rest}, "
                          "which moves elements across the batch dimension")
    g.emit(node, "reshape", [g.value_name(node.args[0])], attrs={"shape": rest})


@handles(aten.permute.default)
def _permute(g, node):
    g.emit(node, "permute", [g.value_name(node.args[0])],
           attrs={"dims": [int(d) for d in node.args[1]]})


@handles(aten.transpose.int)
def _transpose(g, node):
    if _transpose_of_recurrent_output(g, node):  # recurrent layers (version 3)
        return
    g.emit(node, "transpose", [g.value_name(node.args[0])],
           attrs={"dim0": int(node.args[1]), "dim1": int(node.args[2])})


@handles(aten.t.default)
def _t(g, node):
    g.emit(node, "transpose", [g.value_name(node.args[0])], attrs={"dim0": 0, "dim1": 1})


@handles(aten.cat.default)
def _cat(g, node):
    g.emit(node, "cat", [g.value_name(v) for v in node.args[0]],
           attrs={"dim": int(arg(node, 1, "dim", 0))})


def _static_dim(g, node, dim, free_ok=False):
    """`dim` of the node's input as a non-negative axis and its size, which must be known at
    capture (None for a free dim, with `free_ok`) and must not be the batch."""
    shape = node.args[0].meta["val"].shape
    axis = dim % len(shape)
    if axis == 0:
        unsupported(node, "an op along dim 0, the batch dimension")
    if not isinstance(shape[axis], int):
        if free_ok:
            return axis, None
        unsupported(node, f"dim {dim} of a size known only at run time")
    return axis, int(shape[axis])


@handles(aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default)
def _split(g, node):
    axis, size = _static_dim(g, node, int(arg(node, 2, "dim", 0)))
    if node.target == aten.chunk.default:  # torch.chunk's rule: pieces of ceil(size / n)
        step = -(-size // int(node.args[1]))
        sizes = [min(step, size - k) for k in range(0, size, step)]
    else:
        sizes = node.args[1]
        if isinstance(sizes, int):
            sizes = [min(sizes, size - k) for k in range(0, size, sizes)]
    g.emit(node, "split", [g.value_name(node.args[0])],
           attrs={"sizes": [int(v) for v in sizes], "dim": axis}, n_outputs=len(sizes))


# ---- shape ops (version 3)

@handles(aten.unsqueeze.default, aten.unsqueeze_.default)
def _unsqueeze(g, node):
    rank = len(node.args[0].meta["val"].shape) + 1
    axis = int(node.args[1]) % rank
    if axis == 0:
        unsupported(node, "a new dim before the batch dimension")
    g.emit(node, "unsqueeze", [g.value_name(node.args[0])], attrs={"dim": axis})


@handles(aten.squeeze.default, aten.squeeze.dim, aten.squeeze.dims, aten.squeeze_.default,
         aten.squeeze_.dim, aten.squeeze_.dims)
def _squeeze(g, node):
    """The dims of size 1 among those given (all by default); torch leaves the others, and
    torch.export keeps a free batch (so `x.squeeze()` keeps it)."""
    shape = node.args[0].meta["val"].shape
    dims = arg(node, 1, "dim")
    dims = range(len(shape)) if dims is None else [dims] if isinstance(dims, int) else dims
    axes = sorted({a for a in (int(d) % len(shape) for d in dims)
                   if isinstance(shape[a], int) and shape[a] == 1})
    if 0 in axes:
        unsupported(node, "a squeeze of the batch dimension, fixed at 1")
    if not axes:
        return _identity(g, node)
    g.emit(node, "squeeze", [g.value_name(node.args[0])], attrs={"dims": axes})


def _batch_kept(node):
    """Whether the node's output has its input's batch dim (dim 0)."""
    a, b = node.args[0].meta["val"].shape[0], node.meta["val"].shape[0]
    return isinstance(a, int) == isinstance(b, int) and str(a) == str(b)


@handles(aten.expand.default, aten.expand_as.default)
def _expand(g, node):
    src, out = node.args[0].meta["val"].shape, node.meta["val"].shape
    if isinstance(g.values.get(node.args[0]), tuple) and len(out) == len(src) and \
            src[0] == 1 and not isinstance(out[0], int):
        return _constant_over_batch(g, node)
    if len(out) != len(src) or not _batch_kept(node):
        unsupported(node, "an expand of the batch dimension or to more dims")
    if not all(isinstance(d, int) for d in out[1:]):
        unsupported(node, "an expand to a size known only at run time")
    g.emit(node, "expand", [g.value_name(node.args[0])],
           attrs={"shape": [-1 if o == s else int(o) for s, o in zip(src[1:], out[1:])]})


def _constant_over_batch(g, node):
    """A parameter expanded over the free batch (a ViT's class token, `cls.expand(B, -1, -1)`):
    a `constant` node, its batch that of the first graph input."""
    src, out = node.args[0].meta["val"].shape, node.meta["val"].shape
    if not all(isinstance(d, int) for d in out[1:]):
        unsupported(node, "an expand to a size known only at run time")
    value = g.state[g.param(node.args[0], node)]
    if list(src[1:]) == list(out[1:]):
        name = g.param(node.args[0], node)
    else:
        name = g.const_param(value.detach().float().expand(1, *out[1:]).numpy(), node)
    g.emit(node, "constant", [g.graph["inputs"][0]["name"]], params={"value": name})


def _emit_slice(g, node, dim, start, end, step):
    """A slice of dim (not the batch) with Python's bounds, as clamped non-negative ones; the
    input itself when it takes the whole dim."""
    axis, size = _static_dim(g, node, dim, free_ok=True)
    if not all(isinstance(v, int) for v in (start, end, step)):
        unsupported(node, "a slice with bounds known only at run time")
    if size is None:  # a free dim: Python's bounds, applied by the runtime
        if (start, step) == (0, 1) and end >= 2**62:
            return _identity(g, node)
        return g.emit(node, "slice", [g.value_name(node.args[0])],
                      attrs={"dim": axis, "start": start, "end": min(end, 2**62), "step": step})
    start, end, step = slice(start, end, step).indices(size)
    if not range(start, end, step):
        unsupported(node, "a slice that selects nothing")
    if (start, end, step) == (0, size, 1):
        return _identity(g, node)
    g.emit(node, "slice", [g.value_name(node.args[0])],
           attrs={"dim": axis, "start": start, "end": end, "step": step})


@handles(aten.slice.Tensor)
def _slice(g, node):
    shape = node.args[0].meta["val"].shape
    dim = int(arg(node, 1, "dim", 0))
    start, end, step = arg(node, 2, "start"), arg(node, 3, "end"), arg(node, 4, "step", 1)
    if dim % len(shape) == 0:  # x[0:], x[:x.size(0)]: the whole batch
        whole = end is None or g.values.get(end) == ("sym", 0) or isinstance(end, int) and (
            end >= 2**62 or isinstance(shape[0], int) and end >= shape[0])
        if start in (None, 0) and step == 1 and whole:
            return _identity(g, node)
        unsupported(node, "a slice of the batch dimension")
    _emit_slice(g, node, dim, 0 if start is None else start, 2**62 if end is None else end,
                step)


@handles(aten.narrow.default)
def _narrow(g, node):
    _, dim, start, length = node.args[:4]
    if not isinstance(start, int) or not isinstance(length, int):
        unsupported(node, "a narrow with bounds known only at run time")
    size = _static_dim(g, node, int(dim))[1]
    start = start % size if start < 0 else start
    _emit_slice(g, node, int(dim), start, start + length, 1)


@handles(aten.select.int)
def _select(g, node):
    if _select_of_recurrent_state(g, node):  # recurrent layers (version 3): h_n[-1]
        return
    axis, size = _static_dim(g, node, int(node.args[1]), free_ok=True)
    index = node.args[2]
    if size is None and isinstance(index, int):  # a free dim: the runtime checks the index
        return g.emit(node, "select", [g.value_name(node.args[0])],
                      attrs={"dim": axis, "index": index})
    if not isinstance(index, int) or not -size <= index < size:
        unsupported(node, f"select of index {index} of a dim of size {size}")
    g.emit(node, "select", [g.value_name(node.args[0])],
           attrs={"dim": axis, "index": index % size})


@handles(aten.unbind.int)
def _unbind(g, node):
    axis, size = _static_dim(g, node, int(arg(node, 1, "dim", 0)))
    if not 1 <= size <= MAX_NODE_OUTPUTS:
        unsupported(node, f"unbind of a dim of size {size} (1 to {MAX_NODE_OUTPUTS} outputs)")
    g.emit(node, "unbind", [g.value_name(node.args[0])], attrs={"dim": axis}, n_outputs=size)


@handles(aten.unflatten.int)
def _unflatten(g, node):
    axis, _ = _static_dim(g, node, int(node.args[1]))
    out = node.meta["val"].shape
    if all(isinstance(d, int) for d in out[1:]):
        g.emit(node, "reshape", [g.value_name(node.args[0])],
               attrs={"shape": [int(d) for d in out[1:]]})
    else:  # other dims free (version 3)
        n = len(out) - len(node.args[0].meta["val"].shape) + 1
        g.emit(node, "unflatten", [g.value_name(node.args[0])],
               attrs={"dim": axis, "sizes": [int(d) for d in out[axis:axis + n]]})


def _reshape_over_free_dims(g, node):
    """A reshape of the trailing dims of a value with free dims (`x.view(B, T, H, D)`): the dims
    the input and output share (the batch, the sequence) kept, the rest flattened and split."""
    src, out = node.args[0].meta["val"].shape, node.meta["val"].shape
    p = 0
    while p < min(len(src), len(out)) and str(src[p]) == str(out[p]):
        p += 1
    tail_in, tail_out = src[p:], out[p:]
    if p < 1 or not tail_out or not all(isinstance(d, int) for d in (*tail_in, *tail_out)) or \
            math.prod(tail_in) != math.prod(tail_out):
        unsupported(node, "a reshape that moves elements across a free dim (only the dims "
                          "after the batch and the free dims may be reshaped)")
    value = g.value_name(node.args[0])
    if list(tail_in) == list(tail_out):
        return _identity(g, node)
    if len(tail_in) != 1:
        g.emit(node, "flatten", [value], attrs={"start_dim": p, "end_dim": -1})
        value = g.graph["nodes"][-1]["outputs"][0] = f"{node.name}.flat"
    if list(tail_out) != [math.prod(tail_in)]:
        g.emit(node, "unflatten", [value], attrs={"dim": p, "sizes": [int(d) for d in tail_out]})
    if g.graph["nodes"][-1]["outputs"][0] != node.name:
        g.graph["nodes"][-1]["outputs"][0] = node.name


_PAD_MODES = {aten.reflection_pad1d.default: "reflect", aten.reflection_pad2d.default: "reflect",
              aten.reflection_pad3d.default: "reflect",
              aten.replication_pad1d.default: "replicate",
              aten.replication_pad2d.default: "replicate",
              aten.replication_pad3d.default: "replicate"}


@handles(aten.pad.default, aten.constant_pad_nd.default, *_PAD_MODES)
def _pad(g, node):
    """F.pad over trailing dims (never the batch) with pads >= 0: constant, reflect, replicate."""
    if node.target == aten.pad.default:
        mode, value = arg(node, 2, "mode", "constant"), arg(node, 3, "value")
    elif node.target == aten.constant_pad_nd.default:
        mode, value = "constant", arg(node, 2, "value", 0.0)
    else:
        mode, value = _PAD_MODES[node.target], None
    pads = list(node.args[1])
    if mode not in ("constant", "reflect", "replicate"):
        unsupported(node, f"padding mode {mode!r}")
    if not all(isinstance(p, int) for p in pads) or len(pads) % 2:
        unsupported(node, f"pads {pads}, which are not pairs of ints")
    while pads[-2:] == [0, 0]:  # pairs of zeros for the leading dims pad nothing
        pads = pads[:-2]
    if not pads:
        return _identity(g, node)
    if len(pads) // 2 >= len(node.args[0].meta["val"].shape):
        unsupported(node, "padding of the batch dimension")
    if min(pads) < 0:
        unsupported(node, "negative padding (a crop: write it as a slice)")
    value = 0.0 if value is None else float(value)
    if not math.isfinite(value):
        unsupported(node, f"padding with the value {value}")
    if len(pads) > MAX_RANK:
        unsupported(node, f"padding of more than {MAX_RANK // 2} dims")
    g.emit(node, "pad", [g.value_name(node.args[0])],
           attrs={"pads": pads, "mode": mode, "value": value})


_SHUFFLES = {aten.pixel_shuffle.default: ("pixel_shuffle", "upscale_factor", 4),
             aten.pixel_unshuffle.default: ("pixel_unshuffle", "downscale_factor", 4),
             aten.channel_shuffle.default: ("channel_shuffle", "groups", 3),
             aten.native_channel_shuffle.default: ("channel_shuffle", "groups", 3)}


@handles(*_SHUFFLES)
def _shuffle(g, node):
    """pixel_shuffle, pixel_unshuffle, channel_shuffle: one int attribute each."""
    op, attr, min_rank = _SHUFFLES[node.target]
    if len(node.args[0].meta["val"].shape) < min_rank:
        unsupported(node, f"{op} of a value of rank below {min_rank}, whose channels would "
                          "include the batch dimension")
    g.emit(node, op, [g.value_name(node.args[0])], attrs={attr: int(node.args[1])})


# ---- arithmetic ------------------------------------------------------------------------------

@handles(aten.add.Tensor, aten.add_.Tensor, aten.mul.Tensor, aten.mul_.Tensor)
def _add_mul(g, node):
    op = "add" if "add" in str(node.target) else "mul"
    if node.kwargs.get("alpha", 1) != 1:
        unsupported(node, "add with alpha")
    ins, prm = g.operands(node, node.args[:2])
    g.emit(node, op, ins, prm)


# ---- elementwise, activations, reductions (version 3)

#: ATen ops of one tensor and nothing else (and their in-place forms) -> the format's op, all
#: emitted by _activation.
_UNARY = {getattr(aten, op + suffix).default: op
          for op in ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "erf", "silu", "hardswish",
                     "hardsigmoid", "mish")
          for suffix in ("", "_")}
_ACTIVATIONS.update(_UNARY)
handles(*_UNARY)(_activation)


def _is_value(g, v):
    """Whether operand `v` is a tensor of the graph (not a parameter or a number)."""
    return isinstance(v, torch.fx.Node) and not isinstance(g.values.get(v), tuple)


def _emit_ordered(g, node, op, first, second):
    """op(first, second) for sub, div, minimum, maximum: graph tensors as inputs in order, a
    parameter or number as param "other", with `reverse` when it comes first (w - x)."""
    ins, prm = g.operands(node, [first, second])
    reverse = bool(prm) and op in ("sub", "div") and not _is_value(g, first)
    g.emit(node, op, ins, prm, {"reverse": True} if reverse else None)


_BINARY = {aten.sub.Tensor: "sub", aten.sub_.Tensor: "sub", aten.div.Tensor: "div",
           aten.div_.Tensor: "div", aten.div.Tensor_mode: "div", aten.div_.Tensor_mode: "div",
           aten.true_divide.Tensor: "div", aten.minimum.default: "minimum",
           aten.maximum.default: "maximum", aten.min.other: "minimum",
           aten.max.other: "maximum"}


@handles(*_BINARY)
def _binary(g, node):
    """a - b (an `alpha` folded into a number b), a / b (true division only), minimum and
    maximum of two tensors."""
    a, b = node.args[:2]
    if node.kwargs.get("rounding_mode") is not None:
        unsupported(node, f"division with rounding_mode={node.kwargs['rounding_mode']!r}")
    alpha = node.kwargs.get("alpha", 1)
    if alpha != 1:
        if not isinstance(b, (int, float)):
            unsupported(node, "sub with alpha and a tensor operand")
        b = alpha * b
    _emit_ordered(g, node, _BINARY[node.target], a, b)


@handles(aten.rsub.Scalar, aten.rsub.Tensor)
def _rsub(g, node):
    """rsub(x, other) = other - x, what `1 - x` exports to."""
    if node.kwargs.get("alpha", 1) != 1:
        unsupported(node, "rsub with alpha")
    _emit_ordered(g, node, "sub", node.args[1], node.args[0])


@handles(aten.reciprocal.default, aten.reciprocal_.default)
def _reciprocal(g, node):
    """1 / x, what `2 / x` exports to (with a mul after it)."""
    _emit_ordered(g, node, "div", 1.0, node.args[0])


@handles(aten.pow.Tensor_Scalar, aten.pow_.Scalar, aten.square.default, aten.square_.default)
def _pow(g, node):
    exponent = 2.0 if "square" in str(node.target) else node.args[1]
    if not isinstance(exponent, (int, float)) or not math.isfinite(exponent):
        unsupported(node, f"pow with the exponent {exponent}, not a finite number")
    g.emit(node, "pow", [g.value_name(node.args[0])], attrs={"exponent": float(exponent)})


def _emit_clamp(g, node, low, high):
    """clamp of the node's input to [low, high], either bound None (or infinite: no bound);
    relu for low 0 alone and relu6 for (0, 6), which fuse into the layer before them."""
    bounds = []
    for v, unbounded in ((low, -math.inf), (high, math.inf)):
        if v is not None and not (isinstance(v, (int, float)) and not math.isnan(v)):
            unsupported(node, f"a clamp bound {v} that is not a number")
        bounds.append(None if v is None or v == unbounded else float(v))
    if any(v is not None and math.isinf(v) for v in bounds):
        unsupported(node, f"a clamp to an infinite bound {bounds}")
    low, high = bounds
    x = [g.value_name(node.args[0])]
    if low is None and high is None:
        _identity(g, node)
    elif (low, high) == (0.0, None):
        g.emit(node, "relu", x)
    elif (low, high) == (0.0, 6.0):
        g.emit(node, "relu6", x)
    elif high is None:
        g.emit(node, "clamp_min", x, attrs={"min": low})
    elif low is None:
        g.emit(node, "clamp_max", x, attrs={"max": high})
    else:
        g.emit(node, "clamp", x, attrs={"min": low, "max": high})


@handles(aten.clamp.default, aten.clamp_.default)
def _clamp(g, node):
    _emit_clamp(g, node, arg(node, 1, "min"), arg(node, 2, "max"))


@handles(aten.clamp_min.default, aten.clamp_min_.default)
def _clamp_min(g, node):
    _emit_clamp(g, node, node.args[1], None)


@handles(aten.clamp_max.default, aten.clamp_max_.default)
def _clamp_max(g, node):
    _emit_clamp(g, node, None, node.args[1])


def _emit_elu(g, node, alpha, scale=1.0, input_scale=1.0):
    g.emit(node, "elu", [g.value_name(node.args[0])], attrs={
        "alpha": float(alpha), "scale": float(scale), "input_scale": float(input_scale)})


@handles(aten.elu.default, aten.elu_.default)
def _elu(g, node):
    _emit_elu(g, node, arg(node, 1, "alpha", 1.0), arg(node, 2, "scale", 1.0),
              arg(node, 3, "input_scale", 1.0))


@handles(aten.selu.default, aten.selu_.default)
def _selu(g, node):
    """selu is elu with its two constants, as PyTorch computes it."""
    _emit_elu(g, node, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946)


@handles(aten.celu.default, aten.celu_.default)
def _celu(g, node):
    """celu(x, alpha) is elu(x, alpha, 1, 1 / alpha), as PyTorch computes it."""
    alpha = float(arg(node, 1, "alpha", 1.0))
    if alpha == 0:
        unsupported(node, "celu with alpha 0")
    _emit_elu(g, node, alpha, 1.0, 1.0 / alpha)


@handles(aten.softplus.default)
def _softplus(g, node):
    g.emit(node, "softplus", [g.value_name(node.args[0])], attrs={
        "beta": float(arg(node, 1, "beta", 1.0)),
        "threshold": float(arg(node, 2, "threshold", 20.0))})


_REDUCTIONS = {aten.mean.dim: "mean", aten.sum.dim_IntList: "sum", aten.amax.default: "amax",
               aten.amin.default: "amin", aten.max.dim: "amax", aten.min.dim: "amin",
               aten.mean.default: "mean", aten.sum.default: "sum"}


@handles(*_REDUCTIONS)
def _reduction(g, node):
    """mean, sum, amax, amin over the given dims (all when none are given), never over the
    batch; of torch.max(x, dim) and torch.min(x, dim) only the values (output 0)."""
    op = _REDUCTIONS[node.target]
    dtype = node.kwargs.get("dtype")
    if dtype not in (None, torch.float32):
        unsupported(node, f"a {op} computed in {dtype}")
    rank = len(node.args[0].meta["val"].shape)
    dims = arg(node, 1, "dim")
    dims = [dims] if isinstance(dims, int) else list(dims or range(rank))
    axes = sorted({int(d) % rank for d in dims})
    if 0 in axes:
        unsupported(node, f"a {op} over dim 0, the batch dimension")
    indices = node.target in (aten.max.dim, aten.min.dim)
    if indices and any(u.target is operator.getitem and u.args[1] != 0 and u.users
                       for u in node.users):
        unsupported(node, "the indices of torch.max or torch.min along a dim (an argmax)")
    g.emit(node, op, [g.value_name(node.args[0])],
           attrs={"dims": axes, "keepdim": bool(arg(node, 2, "keepdim", False))})
    if indices:  # (values, indices), the indices unused
        g.values[node] = ("multi", [node.name, None])


# ---- normalisation, resizing, pooling (version 3)

def _first_output_only(g, node, others):
    """After emitting `node`, whose ATen op returns a tuple: its first value is the node's
    output; the rest (`others`: statistics, indices) get no graph value and may not be used."""
    for user in node.users:
        if user.target is operator.getitem and user.args[1] != 0 and user.users:
            unsupported(node, f"a use of its {others}")
    n = len(node.meta["val"]) if isinstance(node.meta.get("val"), (tuple, list)) else 1
    g.values[node] = ("multi", [g.values[node]] + [None] * (n - 1))


def _affine(g, node, weight, bias):
    """The params of a normalisation's optional weight and bias."""
    prm = {}
    if weight is not None:
        prm["weight"] = g.param(weight, node)
    if bias is not None:
        prm["bias"] = g.param(bias, node)
    return prm


@handles(aten.layer_norm.default, aten.native_layer_norm.default)
def _layer_norm(g, node):
    x, shape = node.args[0], [int(d) for d in node.args[1]]
    if len(shape) >= len(x.meta["val"].shape):
        unsupported(node, "a layer norm over the batch dimension")
    g.emit(node, "layer_norm", [g.value_name(x)],
           _affine(g, node, arg(node, 2, "weight"), arg(node, 3, "bias")),
           {"normalized_shape": shape, "eps": float(arg(node, 4, "eps", 1e-5))})
    if node.target == aten.native_layer_norm.default:
        _first_output_only(g, node, "mean and rstd")


@handles(aten.group_norm.default, aten.native_group_norm.default)
def _group_norm(g, node):
    if node.target == aten.group_norm.default:
        groups, eps = int(node.args[1]), float(arg(node, 4, "eps", 1e-5))
        w, b = arg(node, 2, "weight"), arg(node, 3, "bias")
    else:  # (input, weight, bias, N, C, HxW, group, eps)
        (w, b), groups, eps = node.args[1:3], int(node.args[6]), float(node.args[7])
    g.emit(node, "group_norm", [g.value_name(node.args[0])], _affine(g, node, w, b),
           {"num_groups": groups, "eps": eps})
    if node.target == aten.native_group_norm.default:
        _first_output_only(g, node, "mean and rstd")


@handles(aten.instance_norm.default)
def _instance_norm(g, node):
    """Instance norm: group norm with a group per channel; in eval mode with running
    statistics (use_input_stats false), the inference batch norm."""
    x, w, b, mean, var, use_input_stats = node.args[:6]
    eps = float(arg(node, 7, "eps", 1e-5))
    if not use_input_stats:
        prm = {"mean": g.param(mean, node), "var": g.param(var, node), **_affine(g, node, w, b)}
        g.emit(node, "batch_norm", [g.value_name(x)], prm, {"eps": eps})
        return
    shape = x.meta["val"].shape
    if len(shape) < 3 or not isinstance(shape[1], int):
        unsupported(node, "instance norm of a value without static channels and spatial dims")
    g.emit(node, "group_norm", [g.value_name(x)], _affine(g, node, w, b),
           {"num_groups": int(shape[1]), "eps": eps})


_INTERPOLATE_MODES = {
    aten.upsample_nearest2d.vec: "nearest", aten.upsample_nearest2d.default: "nearest",
    aten._upsample_nearest_exact2d.vec: "nearest-exact",
    aten._upsample_nearest_exact2d.default: "nearest-exact",
    aten.upsample_bilinear2d.vec: "bilinear", aten.upsample_bilinear2d.default: "bilinear"}


@handles(*_INTERPOLATE_MODES)
def _interpolate2d(g, node):
    """F.interpolate / nn.Upsample on [N, C, H, W]: the output size fixed at capture; the
    scale factors given, which PyTorch's source coordinates use, kept as scale_h, scale_w."""
    mode = _INTERPOLATE_MODES[node.target]
    bilinear = mode == "bilinear"
    align_corners = bool(arg(node, 2, "align_corners", False)) if bilinear else False
    first = 3 if bilinear else 2  # where the scales start: (input, output_size, [align,] ...)
    if str(node.target).endswith(".vec"):
        scales = arg(node, first, "scale_factors") or [None, None]
    else:
        scales = [arg(node, first, "scales_h"), arg(node, first + 1, "scales_w")]
    scales = [0.0 if v is None else float(v) for v in scales]
    size = node.meta["val"].shape[2:]
    if len(size) != 2 or not all(isinstance(d, int) for d in size):
        unsupported(node, "an output size known only at run time")
    g.emit(node, "interpolate2d", [g.value_name(node.args[0])], attrs={
        "size": [int(d) for d in size], "mode": mode, "align_corners": align_corners,
        "scale_h": scales[0], "scale_w": scales[1]})


def _one(v):
    """An int or a one-element sequence of ints (1-D pooling arguments) as an int."""
    return int(v) if isinstance(v, int) else int(v[0])


@handles(aten.max_pool1d.default, aten.max_pool1d_with_indices.default,
         aten.avg_pool1d.default)
def _pool1d(g, node):
    k = _one(arg(node, 1, "kernel_size"))
    s = arg(node, 2, "stride", None)
    attrs = {"kernel_size": k, "stride": _one(s) if s else k,
             "padding": _one(arg(node, 3, "padding", 0))}
    if node.target == aten.avg_pool1d.default:
        attrs.update(ceil_mode=bool(arg(node, 4, "ceil_mode", False)),
                     count_include_pad=bool(arg(node, 5, "count_include_pad", True)))
    else:
        attrs.update(dilation=_one(arg(node, 4, "dilation", 1)),
                     ceil_mode=bool(arg(node, 5, "ceil_mode", False)))
    op = "avg_pool1d" if node.target == aten.avg_pool1d.default else "max_pool1d"
    g.emit(node, op, [g.value_name(node.args[0])], attrs=attrs)
    if node.target == aten.max_pool1d_with_indices.default:
        _first_output_only(g, node, "indices")


_ADAPTIVE = {aten.adaptive_avg_pool1d.default: "adaptive_avg_pool1d",
             aten.adaptive_max_pool1d.default: "adaptive_max_pool1d",
             aten.adaptive_max_pool2d.default: "adaptive_max_pool2d"}


@handles(*_ADAPTIVE)
def _adaptive_pool(g, node):
    op = _ADAPTIVE[node.target]
    out = list(node.args[1]) if isinstance(node.args[1], (list, tuple)) else [node.args[1]]
    if not all(isinstance(v, int) for v in out):
        unsupported(node, "adaptive pooling with a free output size")
    size = pair(out) if op.endswith("2d") else _one(out)
    g.emit(node, op, [g.value_name(node.args[0])], attrs={"output_size": size})
    if op.startswith("adaptive_max"):
        _first_output_only(g, node, "indices")


# ---- attention (version 3)

def _rank(v):
    return len(v.meta["val"].shape)


def _transposed_weight(g, v):
    """The fx node of module weight `w` when `v` is `w.t()`, `w.T` or `w.transpose(0, 1)` of
    a 2-D parameter named `<module>.weight` (what `x @ w.t()` multiplies by), else None."""
    if not isinstance(v, torch.fx.Node) or not isinstance(v.args[0] if v.args else None,
                                                          torch.fx.Node):
        return None
    src = v.args[0]
    swaps = v.target == aten.t.default or \
        (v.target == aten.transpose.int and {int(d) % 2 for d in v.args[1:3]} == {0, 1}) or \
        (v.target == aten.permute.default and list(v.args[1]) == [1, 0])
    held = g.values.get(src)
    if swaps and isinstance(held, tuple) and held[0] == "param" and _rank(src) == 2 and \
            held[1].rpartition(".")[2] == "weight":
        return src
    return None


@handles(aten.matmul.default, aten.bmm.default, aten.mm.default)
def _matmul(g, node):
    """a @ b with torch.matmul's broadcasting. `x @ w.t()` of a module's weight is that
    module's (compressed) linear; another parameter or constant operand is stored raw as param
    'other'. Two computed values must each keep the batch in a leading dim (rank 3 or more)."""
    a, b = node.args[:2]
    weight = _transposed_weight(g, b)
    if weight is not None and _is_value(g, a) and _rank(a) >= 2:
        name = g.param(weight, node)
        g.compressible(name, "linear")
        g.emit(node, "linear", [g.value_name(a)], {"weight": name}, name=_module_name(name))
        return
    for v, side in ((a, "first"), (b, "second")):
        if _is_value(g, v) and _rank(v) < (2 if side == "first" and not _is_value(g, b)
                                           else 3):
            unsupported(node, f"a matmul whose {side} operand, of rank {_rank(v)}, would "
                              "multiply along the batch dimension")
    _emit_ordered(g, node, "matmul", a, b)


def _const_mask(g, node, v, key):
    """Constant mask `v` as a float32 param of the file (a boolean one as 0 where True and
    -inf where False when `key` is "keep", 1 where True when it is "fill")."""
    t = g.state[g.values[v][1]].detach()
    if t.dtype == torch.bool:
        t = torch.where(t, 0.0, float("-inf")) if key == "keep" else t.float()
    name = f"{node.name}.mask"
    g.params[name] = t.float().cpu().numpy().copy()
    return name


@handles(aten._assert_tensor_metadata.default)
def _metadata_check(g, node):
    """A check of a tensor's dtype that export leaves after a conversion (`mask.bool()`)."""


@handles(aten.scaled_dot_product_attention.default)
def _attention(g, node):
    """softmax(q k^T * scale + mask) v: the mask a constant (param 'mask'), a float tensor of
    the graph (input 4) or the causal mask; dropout 0 only."""
    q, k, v = (g.value_name(t) for t in node.args[:3])
    mask = arg(node, 3, "attn_mask")
    if float(arg(node, 4, "dropout_p", 0.0)) != 0.0:
        unsupported(node, "attention with dropout")
    if node.kwargs.get("enable_gqa", False):
        unsupported(node, "attention with enable_gqa")
    causal = bool(arg(node, 5, "is_causal", False))
    scale = node.kwargs.get("scale")
    if scale is None:
        scale = 1.0 / math.sqrt(node.args[0].meta["val"].shape[-1])
    ins, prm = [q, k, v], {}
    if isinstance(mask, torch.fx.Node) and _is_value(g, mask):
        if mask.meta["val"].dtype != torch.float32:
            unsupported(node, f"an attention mask of dtype {mask.meta['val'].dtype} computed "
                              "at run time (a float32 one is taken)")
        ins.append(g.value_name(mask))
    elif mask is not None:
        prm["mask"] = _const_mask(g, node, mask, "keep")
    g.emit(node, "attention", ins, prm, {"scale": float(scale), "causal": causal})


@handles(aten.masked_fill.Scalar, aten.masked_fill_.Scalar, aten.masked_fill.Tensor,
         aten.masked_fill_.Tensor)
def _masked_fill(g, node):
    """x with `value` where a constant mask is True (a mask made of constants, such as
    `torch.triu(torch.ones(n, n), 1).bool()`, is folded at capture)."""
    x, mask, value = node.args[:3]
    if _is_value(g, mask) or not isinstance(mask, torch.fx.Node):
        unsupported(node, "masked_fill with a mask computed at run time")
    if isinstance(value, torch.fx.Node):
        if _is_value(g, value) or g.state[g.values[value][1]].numel() != 1:
            unsupported(node, "masked_fill with a fill value that is not one constant")
        value = float(g.state[g.values[value][1]])
    prm = {"mask": _const_mask(g, node, mask, "fill"),
           "value": g.const_param([float(value)], node)}
    g.emit(node, "masked_fill", [g.value_name(x)], prm)


# ---- recurrent layers (version 3)

#: ATen op of nn.LSTM, nn.GRU, nn.RNN, or cdnn.recurrent's op of the same arguments (which
#: keeps a free sequence length) -> (the format's op, its nonlinearity for rnn).
_RECURRENT = {aten.lstm.input: ("lstm", None), aten.gru.input: ("gru", None),
              aten.rnn_tanh.input: ("rnn", "tanh"), aten.rnn_relu.input: ("rnn", "relu"),
              **CUSTOM_OPS}


class _Part:
    """A stand-in fx node for one of the graph nodes one ATen op becomes (a layer of an
    nn.LSTM): `g.emit` names that node's outputs after it."""

    def __init__(self, name):
        self.name = name


def _emit_part(g, node, suffix, op, inputs, params=None, attrs=None, n_outputs=None,
               name=None):
    """Emit a graph node for a part of fx node `node`, its outputs named `<node>.<suffix>`
    (`.0`, `.1`, ... with `n_outputs`); returns the output's value name (or list of them)."""
    part = _Part(f"{node.name}.{suffix}")
    g.emit(part, op, inputs, params, attrs, name=name or part.name, n_outputs=n_outputs)
    value = g.values.pop(part)
    return value[1] if isinstance(value, tuple) else value


def _first_dims_swapped(g, node, v, suffix):
    """The graph value of fx value `v` with dims 0 and 1 swapped: the source of `v` when `v`
    is such a transpose of a graph value (a sequence-first layout made from a batch-first
    one; through `.contiguous()`), whose node goes when nothing else reads it; else a new
    transpose node."""
    chain = [v]
    while chain[-1].target in (aten.clone.default, aten.contiguous.default):
        chain.append(chain[-1].args[0])
    t = chain[-1]
    if _swaps_first_dims(t) and _is_value(g, t.args[0]):
        if all(len(c.users) == 1 for c in chain):  # the transpose was for this layer only
            g.graph["nodes"] = [n for n in g.graph["nodes"] if n["outputs"] != [g.values[t]]]
        return g.value_name(t.args[0])
    return _emit_part(g, node, suffix, "transpose", [g.value_name(v)],
                      attrs={"dim0": 0, "dim1": 1})


@handles(aten.zeros.default)
def _zeros_of_batch(g, node):
    """Zeros sized at run time (by the free batch): no graph value, taken by a recurrent op as
    its default initial state (what nn.LSTM and nn.GRU make when given none)."""
    if not node.users or not all(u.target in _RECURRENT for u in node.users):
        unsupported(node, "zeros of a size known only at run time (the batch's), other than "
                          "a recurrent layer's initial state")
    g.values[node] = ("zeros", None)


def _initial_states(g, node, state, key, layers, dirs):
    """Per layer, the graph value [N, D, H] of initial state `state` (of the module's shape
    [layers * D, N, H]), or None for zeros (the default state, or a constant of zeros)."""
    held = g.values.get(state)
    if isinstance(held, tuple) and held[0] == "param" and \
            not bool((g.state[held[1]] == 0).all()):
        unsupported(node, f"an initial state {key} that is a constant other than zeros (give "
                          "it as an input)")
    if isinstance(held, tuple):
        return [None] * layers
    batch_first = _first_dims_swapped(g, node, state, key)
    if layers == 1:
        return [batch_first]
    return [_emit_part(g, node, f"{key}_l{k}", "slice", [batch_first],
                       attrs={"dim": 1, "start": k * dirs, "end": (k + 1) * dirs, "step": 1})
            for k in range(layers)]


def _output_of(v):
    """(recurrent fx node, output index) when fx value `v` is an output of one, else None."""
    if v.target is operator.getitem and v.args[0].target in _RECURRENT:
        return v.args[0], v.args[1]
    return None


def _dim0_pick(u):
    """Whether fx node `u` selects along dim 0 (`h_n[-1]`, a sequence-first `out[-1]`)."""
    return u.target == aten.select.int and int(u.args[1]) % _rank(u.args[0]) == 0


def _swaps_first_dims(u):
    """Whether fx node `u` is a transpose of dims 0 and 1."""
    return u.target == aten.transpose.int and \
        {int(d) % _rank(u) for d in u.args[1:3]} == {0, 1}


def _read_from_layers(u, index, batch_first):
    """Whether fx node `u`, a user of output `index` of a recurrent op, reads the layers' own
    outputs instead: a pick of one layer's state (`h_n[-1]`); of a sequence-first module's
    output, a step (`out[-1]`) or the output made batch first again."""
    if index:
        return _dim0_pick(u)
    return not batch_first and (_dim0_pick(u) or _swaps_first_dims(u))


def _output_used(node, index):
    """Whether output `index` of recurrent fx node `node` is used other than by the users
    that read the layers' own outputs."""
    return any(u.target is operator.getitem and u.args[1] == index and
               any(not _read_from_layers(w, index, node.args[8]) for w in u.users)
               for u in node.users)


def _transpose_of_recurrent_output(g, node):
    """`out.transpose(0, 1)` of a sequence-first recurrent module's output `out`: the last
    layer's batch-first output itself. Returns whether it was one."""
    found = _output_of(node.args[0]) if _swaps_first_dims(node) else None
    if found is None or found[1] != 0 or found[0].args[8]:
        return False
    g.values[node] = g.values[("recurrent output", found[0])]
    return True


def _select_of_recurrent_state(g, node):
    """`h_n[i]` of a recurrent module's h_n or c_n ([layers * D, N, H]): its layer's state
    [N, D, H] at direction i % D, without the stitched value; `out[t]` of a sequence-first
    module's output: step t of the last layer's batch-first output. Returns whether it was
    one of these."""
    found = _output_of(node.args[0]) if _dim0_pick(node) else None
    if found is None:
        return False
    rec, index = found
    if index == 0:
        if rec.args[8]:  # batch first: dim 0 is the batch
            return False
        g.emit(node, "select", [g.values[("recurrent output", rec)]],
               attrs={"dim": 1, "index": int(node.args[2])})
        return True
    layer_outputs = g.values[("recurrent layers", rec)]
    dirs = 2 if rec.args[7] else 1
    layer, direction = divmod(int(node.args[2]) % (len(layer_outputs) * dirs), dirs)
    g.emit(node, "select", [layer_outputs[layer][index]], attrs={"dim": 1, "index": direction})
    return True


@handles(*_RECURRENT)
def _recurrent(g, node):
    """nn.LSTM, nn.GRU, nn.RNN in eval mode: one graph node per layer on the batch-first
    sequence (a sequence-first one transposed on the way in and out), each direction's
    weights compressible; the module's h_n and c_n ([layers * D, N, H]) stitched from the
    layers' [N, D, H] where they are used."""
    op, nonlinearity = _RECURRENT[node.target]
    x, hx, flat, has_biases, layers, _, train, bidirectional, batch_first = node.args[:9]
    if train:
        unsupported(node, "a recurrent layer in training mode")
    if _rank(x) != 3:
        unsupported(node, "an unbatched input (rank 2)")
    dirs, per = (2 if bidirectional else 1), (4 if has_biases else 2)
    if len(flat) != layers * dirs * per:
        unsupported(node, "an LSTM with proj_size > 0")
    hidden = int(flat[1].meta["val"].shape[1])  # W_hh [G * H, H]
    states = [_initial_states(g, node, s, key, layers, dirs)
              for key, s in zip(("h0", "c0"), hx if op == "lstm" else [hx])]
    if op == "lstm" and (states[0][0] is None) != (states[1][0] is None):
        unsupported(node, "an LSTM given one of h0 and c0 and zeros for the other (give both)")
    attrs = {"hidden_size": hidden, "bidirectional": bool(bidirectional)}
    if nonlinearity is not None:
        attrs["nonlinearity"] = nonlinearity
    base = module_path(node) if module_path(node) != "(top level)" else node.name
    seq = g.value_name(x) if batch_first else _first_dims_swapped(g, node, x, "input")
    layer_outputs = []
    for k in range(layers):
        prm = {}
        for d, suffix in enumerate(("", "_reverse")[:dirs]):
            group = flat[(k * dirs + d) * per:(k * dirs + d + 1) * per]
            for role, p in zip(("w_ih", "w_hh", "b_ih", "b_hh"), group):
                prm[role + suffix] = g.param(p, node)
            for role in ("w_ih", "w_hh"):
                g.compressible(prm[role + suffix], op)
        ins = [seq] + [s[k] for s in states if s[k] is not None]
        outs = _emit_part(g, node, f"l{k}", op, ins, prm, attrs, name=f"{base}.l{k}",
                          n_outputs=3 if op == "lstm" else 2)
        seq = outs[0]
        layer_outputs.append(outs)
    results = [None] * (3 if op == "lstm" else 2)
    if _output_used(node, 0):
        results[0] = seq if batch_first else _emit_part(g, node, "output", "transpose", [seq],
                                                        attrs={"dim0": 0, "dim1": 1})
    for index, key in ((1, "h_n"), (2, "c_n"))[:len(results) - 1]:
        if _output_used(node, index):
            pieces = [outs[index] for outs in layer_outputs]
            stacked = pieces[0] if layers == 1 else \
                _emit_part(g, node, f"{key}_cat", "cat", pieces, attrs={"dim": 1})
            results[index] = _emit_part(g, node, key, "transpose", [stacked],
                                        attrs={"dim0": 0, "dim1": 1})
    g.values[node] = ("multi", results)
    g.values[("recurrent layers", node)] = layer_outputs  # for _select_of_recurrent_state
    g.values[("recurrent output", node)] = seq  # for _transpose_of_recurrent_output
