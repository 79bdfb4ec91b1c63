"""ATen ops to ops of the format: one handler per ATen op, found in a table.

`HANDLERS` maps an ATen overload (``torch.ops.aten.relu.default``) to a function
``handler(g, node)`` that emits the node's graph op through the builder `g`
(:class:`cdnn.capture.GraphBuilder`) or maps its value onto another one. Adding an op is one
entry: a function decorated with ``@handles(overload, ...)``.
"""

import operator
import os

import torch

from cdnn_runtime.errors import CdnnUnsupportedError

aten = torch.ops.aten

#: ATen overload -> handler(g, node)
HANDLERS = {}


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
    """Emit the graph op(s) of one call_function node, or stop on an op without a handler."""
    handler = HANDLERS.get(node.target)
    if handler is None:
        unsupported(node)
    handler(g, node)


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
    if (arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0)) != (0.0, 6.0):
        unsupported(node, "hardtanh other than relu6")
    g.emit(node, "relu6", [g.value_name(node.args[0])])


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
    g.weights[prm["weight"]] = "linear"
    g.emit(node, "linear", [g.value_name(node.args[0])], prm, name=_module_name(prm["weight"]))


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
    g.weights[prm["weight"]] = "conv2d"
    g.emit(node, "conv2d", [g.value_name(node.args[0])], prm,
           {"stride": stride, "padding": pair(padding), "dilation": dilation,
            "groups": int(arg(node, 6, "groups", 1))}, name=_module_name(prm["weight"]))


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
    g.emit(node, "transpose", [g.value_name(node.args[0])],
           attrs={"dim0": int(node.args[1]), "dim1": int(node.args[2])})


@handles(aten.t.default)
def _t(g, node):
    g.emit(node, "transpose", [g.value_name(node.args[0])], attrs={"dim0": 0, "dim1": 1})


@handles(aten.cat.default)
def _cat(g, node):
    g.emit(node, "cat", [g.value_name(v) for v in node.args[0]],
           attrs={"dim": int(arg(node, 1, "dim", 0))})


def _static_dim(g, node, dim):
    """`dim` of the node's input as a non-negative axis and its size, which must be known at
    capture and must not be the batch."""
    shape = node.args[0].meta["val"].shape
    axis = dim % len(shape)
    if axis == 0:
        unsupported(node, "an op along dim 0, the batch dimension")
    if not isinstance(shape[axis], int):
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


# ---- arithmetic ------------------------------------------------------------------------------

@handles(aten.add.Tensor, aten.add_.Tensor, aten.mul.Tensor, aten.mul_.Tensor)
def _add_mul(g, node):
    op = "add" if "add" in str(node.target) else "mul"
    if node.kwargs.get("alpha", 1) != 1:
        unsupported(node, "add with alpha")
    ins, prm = g.operands(node, node.args[:2])
    g.emit(node, op, ins, prm)
