"""Capture a PyTorch model as a .cdnn graph with torch.export (ATen level).

Every ATen op maps to one op of the format's vocabulary, or capture stops with a
CdnnUnsupportedError naming the op, the module path and the source line, before any work.
"""

import copy
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from cdnn_runtime.errors import CdnnError, CdnnUnsupportedError
from cdnn._callable import make_callable

aten = torch.ops.aten


class CdnnCaptureError(CdnnError):
    """The model could not be traced into a graph (export failed, shapes, inputs)."""


@dataclass
class Captured:
    """A captured model: the spec-form graph and its parameters by tensor name."""
    graph: dict
    params: dict  # tensor name -> float32 numpy array
    weights: dict = field(default_factory=dict)  # compressible weight -> op (linear/conv2d)

    @property
    def nodes(self):
        return self.graph["nodes"]


def _source_line(node):
    trace = node.meta.get("stack_trace") or ""
    frames = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
    torch_dir = os.path.dirname(torch.__file__)
    user = [f for f in frames if torch_dir not in f]
    pick = (user or frames or ["(unknown source)"])[-1]
    return pick.replace("File ", "", 1)


def _module_path(node):
    stack = node.meta.get("nn_module_stack") or {}
    paths = [v[0] for v in stack.values() if isinstance(v, tuple) and v[0]]
    return paths[-1] if paths else "(top level)"


def _unsupported(node, why=""):
    raise CdnnUnsupportedError(
        f"op {node.target} is not supported by cdnn_runtime{': ' + why if why else ''} "
        f"(module {_module_path(node)!r}, {_source_line(node)})")


def _pair(v, name="value"):
    if isinstance(v, int):
        return [v, v]
    v = [int(x) for x in v]
    return v * 2 if len(v) == 1 else v


def export_model(model, example_inputs, dynamic_batch=True):
    """torch.export the model in eval mode, with a free batch dimension when it can be had."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    model = model.eval()
    errors = []
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=2**20)
        import inspect
        try:
            names = list(inspect.signature(model.forward).parameters)[:len(example_inputs)]
            dyn = {n: {0: batch} for n in names}
            return torch.export.export(model, example_inputs, dynamic_shapes=dyn), True
        except Exception as exc:  # a model whose code fixes the batch size
            errors.append(exc)
    try:
        return torch.export.export(model, example_inputs), False
    except CdnnError:
        raise
    except Exception as exc:
        raise CdnnCaptureError(f"torch.export could not trace the model: {exc}") from exc


def capture(model, example_inputs, *, input_names=None, output_names=None,
            dynamic_batch=True):
    """Trace `model` on `example_inputs` into a Captured graph (BatchNorm left unfolded)."""
    if isinstance(model, torch.export.ExportedProgram):
        ep, dynamic = model, True
    else:
        ep, dynamic = export_model(model, example_inputs, dynamic_batch)
    sig = ep.graph_signature
    state = dict(ep.state_dict)
    state.update(getattr(ep, "constants", {}) or {})
    place = {}  # fx placeholder name -> tensor name
    for name, target in list(sig.inputs_to_parameters.items()) + list(
            sig.inputs_to_buffers.items()) + list(
            getattr(sig, "inputs_to_lifted_tensor_constants", {}).items()):
        place[name] = target
    graph = {"inputs": [], "nodes": [], "outputs": []}
    params = {}
    weights = {}
    values = {}  # fx node -> value name, or ("param", tensor name), or ("sym", None)
    user_inputs = [s for s in sig.user_inputs]
    used_names = set()

    def value_name(node):
        v = values.get(node)
        if v is None or isinstance(v, tuple):
            _unsupported(node, "an input that is not a tensor value of the graph")
        return v

    def param(arg, node):
        v = values.get(arg)
        if not (isinstance(v, tuple) and v[0] == "param"):
            _unsupported(node, "a parameter computed at run time")
        name = v[1]
        if name not in params:
            params[name] = state[name].detach().float().cpu().numpy().copy()
        return name

    def emit(node, op, inputs, prm=None, attrs=None, name=None):
        base = name or node.name
        nname = base
        i = 1
        while nname in used_names:
            i += 1
            nname = f"{base}_{i}"
        used_names.add(nname)
        graph["nodes"].append({"name": nname, "op": op, "inputs": inputs,
                               "outputs": [node.name], "params": prm or {},
                               "attrs": attrs or {}})
        values[node] = node.name

    def const_param(value, node):
        name = f"{node.name}.other"
        params[name] = np.asarray(value, dtype=np.float32).reshape(())[None] \
            if np.ndim(value) == 0 else np.asarray(value, np.float32)
        return name

    n_user = 0
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            if node.name in place:
                values[node] = ("param", place[node.name])
                continue
            t = node.meta.get("val")
            if not isinstance(t, torch.Tensor):
                _unsupported(node, "a non-tensor input")
            if t.dtype != torch.float32:
                raise CdnnUnsupportedError(f"input {node.name!r}: dtype {t.dtype}, cdnn runs "
                                           "float32 inputs")
            shape = [int(d) if isinstance(d, int) or not hasattr(d, "node") else None
                     for d in t.shape]
            shape = [d if isinstance(d, int) else None for d in shape]
            if dynamic and shape:
                shape[0] = None
            name = input_names[n_user] if input_names and n_user < len(input_names) \
                else user_inputs[n_user] if n_user < len(user_inputs) else node.name
            n_user += 1
            graph["inputs"].append({"name": node.name, "dtype": "float32", "shape": shape})
            values[node] = node.name
            continue
        if node.op == "output":
            outs = node.args[0]
            for i, o in enumerate(outs if isinstance(outs, (list, tuple)) else [outs]):
                graph["outputs"].append({"name": value_name(o)})
            continue
        if node.op != "call_function":
            _unsupported(node, f"fx op kind {node.op}")
        _translate(node, values, emit, param, const_param, weights, value_name)
    graph = _rename_io(graph, input_names, output_names)
    return Captured(graph=graph, params=params, weights=weights)


def _rename_io(graph, input_names, output_names):
    mapping = {}
    if input_names:
        for spec, new in zip(graph["inputs"], input_names):
            mapping[spec["name"]] = new
    if output_names:
        for spec, new in zip(graph["outputs"], output_names):
            mapping[spec["name"]] = new
    if not mapping:
        return graph
    ren = lambda v: mapping.get(v, v)  # noqa: E731
    for spec in graph["inputs"] + graph["outputs"]:
        spec["name"] = ren(spec["name"])
    for n in graph["nodes"]:
        n["inputs"] = [ren(v) for v in n["inputs"]]
        n["outputs"] = [ren(v) for v in n["outputs"]]
    return graph


_ELEMENTWISE = {
    aten.relu.default: "relu", aten.relu_.default: "relu",
    aten.sigmoid.default: "sigmoid", aten.sigmoid_.default: "sigmoid",
    aten.tanh.default: "tanh", aten.tanh_.default: "tanh",
    aten.relu6.default: "relu6",
}
_IDENTITY = {aten.dropout.default, aten.dropout_.default, aten.clone.default,
             aten.contiguous.default, aten.alias.default, aten.detach.default,
             aten.feature_dropout.default, aten.alpha_dropout.default}


def _translate(node, values, emit, param, const_param, weights, value_name):
    t, a = node.target, node.args
    kw = node.kwargs

    def arg(i, key, default=None):
        return a[i] if len(a) > i else kw.get(key, default)

    def module_name(weight_name):
        return weight_name.rsplit(".", 1)[0] if "." in weight_name else weight_name

    if t == aten.sym_size.int:
        values[node] = ("sym", int(a[1]))
        return
    if t in _IDENTITY:
        values[node] = value_name(a[0])
        return
    if t in _ELEMENTWISE:
        return emit(node, _ELEMENTWISE[t], [value_name(a[0])])
    if t in (aten.hardtanh.default, aten.hardtanh_.default):
        lo, hi = arg(1, "min_val", -1.0), arg(2, "max_val", 1.0)
        if (lo, hi) != (0.0, 6.0):
            _unsupported(node, "hardtanh other than relu6")
        return emit(node, "relu6", [value_name(a[0])])
    if t in (aten.leaky_relu.default, aten.leaky_relu_.default):
        return emit(node, "leaky_relu", [value_name(a[0])],
                    attrs={"negative_slope": float(arg(1, "negative_slope", 0.01))})
    if t == aten.prelu.default:
        return emit(node, "prelu", [value_name(a[0])], {"weight": param(a[1], node)})
    if t == aten.gelu.default:
        return emit(node, "gelu", [value_name(a[0])],
                    attrs={"approximate": kw.get("approximate", arg(1, "approximate", "none"))})
    if t == aten.linear.default:
        w = param(a[1], node)
        prm = {"weight": w}
        if arg(2, "bias") is not None:
            prm["bias"] = param(a[2], node)
        weights[w] = "linear"
        return emit(node, "linear", [value_name(a[0])], prm, name=module_name(w))
    if t in (aten.conv2d.default, aten.conv2d.padding):
        w = param(a[1], node)
        prm = {"weight": w}
        if arg(2, "bias") is not None:
            prm["bias"] = param(a[2], node)
        stride = _pair(arg(3, "stride", 1))
        padding = arg(4, "padding", 0)
        dilation = _pair(arg(5, "dilation", 1))
        groups = int(arg(6, "groups", 1))
        if isinstance(padding, str):
            kshape = node.args[1].meta["val"].shape[2:]
            if padding == "valid":
                padding = [0, 0]
            elif padding == "same" and stride == [1, 1] and all(
                    (d * (k - 1)) % 2 == 0 for d, k in zip(dilation, kshape)):
                padding = [d * (k - 1) // 2 for d, k in zip(dilation, kshape)]
            else:
                _unsupported(node, f"padding={padding!r} with asymmetric padding")
        weights[w] = "conv2d"
        return emit(node, "conv2d", [value_name(a[0])], prm,
                    {"stride": stride, "padding": _pair(padding), "dilation": dilation,
                     "groups": groups}, name=module_name(w))
    if t in (aten.max_pool2d.default, aten.max_pool2d_with_indices.default):
        k = _pair(arg(1, "kernel_size"))
        s = arg(2, "stride", None)
        return emit(node, "max_pool2d", [value_name(a[0])], attrs={
            "kernel_size": k, "stride": _pair(s) if s else k,
            "padding": _pair(arg(3, "padding", 0)), "dilation": _pair(arg(4, "dilation", 1)),
            "ceil_mode": bool(arg(5, "ceil_mode", False))})
    if t == aten.avg_pool2d.default:
        k = _pair(arg(1, "kernel_size"))
        s = arg(2, "stride", None)
        if arg(6, "divisor_override") is not None:
            _unsupported(node, "divisor_override")
        return emit(node, "avg_pool2d", [value_name(a[0])], attrs={
            "kernel_size": k, "stride": _pair(s) if s else k,
            "padding": _pair(arg(3, "padding", 0)), "ceil_mode": bool(arg(4, "ceil_mode", False)),
            "count_include_pad": bool(arg(5, "count_include_pad", True))})
    if t in (aten.adaptive_avg_pool2d.default, aten._adaptive_avg_pool2d.default):
        out = arg(1, "output_size")
        if out is None or any(v is None for v in _as_list(out)):
            _unsupported(node, "adaptive pooling with a free output size")
        return emit(node, "adaptive_avg_pool2d", [value_name(a[0])],
                    attrs={"output_size": _pair(out)})
    if t in (aten.softmax.int, aten._softmax.default, aten.log_softmax.int,
             aten._log_softmax.default):
        op = "log_softmax" if "log" in str(t) else "softmax"
        return emit(node, op, [value_name(a[0])], attrs={"dim": int(a[1])})
    if t == aten.flatten.using_ints:
        return emit(node, "flatten", [value_name(a[0])], attrs={
            "start_dim": int(arg(1, "start_dim", 0)), "end_dim": int(arg(2, "end_dim", -1))})
    if t in (aten.view.default, aten.reshape.default, aten._unsafe_view.default):
        shape = list(a[1])
        src = a[0].meta["val"].shape
        first = shape[0]
        rest = []
        for d in shape[1:]:
            if not isinstance(d, int):
                _unsupported(node, "a reshape to a size known only at run time")
            rest.append(int(d))
        is_batch = (isinstance(first, torch.fx.Node) and values.get(first) == ("sym", 0)) or \
            first == -1 or (isinstance(first, int) and isinstance(src[0], int)
                            and first == src[0] and -1 not in rest)
        if not is_batch:
            _unsupported(node, "a reshape that changes the batch dimension")
        if first == -1 and -1 in rest:
            _unsupported(node, "a reshape with two -1")
        per_sample = 1
        for d in src[1:]:
            per_sample = per_sample * d if isinstance(d, int) else None
            if per_sample is None:
                break
        known = 1
        for d in rest:
            known *= d if d != -1 else 1
        if per_sample is not None and -1 not in rest and known != per_sample:
            _unsupported(node, f"a reshape of samples of {per_sample} elements to {rest}, "
                               "which moves elements across the batch dimension")
        return emit(node, "reshape", [value_name(a[0])], attrs={"shape": rest})
    if t == aten.permute.default:
        return emit(node, "permute", [value_name(a[0])], attrs={"dims": [int(d) for d in a[1]]})
    if t == aten.transpose.int:
        return emit(node, "transpose", [value_name(a[0])],
                    attrs={"dim0": int(a[1]), "dim1": int(a[2])})
    if t == aten.t.default:
        return emit(node, "transpose", [value_name(a[0])], attrs={"dim0": 0, "dim1": 1})
    if t in (aten.add.Tensor, aten.add_.Tensor, aten.mul.Tensor, aten.mul_.Tensor):
        op = "add" if "add" in str(t) else "mul"
        if kw.get("alpha", 1) != 1:
            _unsupported(node, "add with alpha")
        x, y = a[0], a[1]
        ins, prm = [], {}
        for v in (x, y):
            if isinstance(v, torch.fx.Node) and not isinstance(values.get(v), tuple):
                ins.append(value_name(v))
            elif isinstance(v, torch.fx.Node):
                prm["other"] = param(v, node)
            else:
                prm["other"] = const_param(v, node)
        if not ins:
            _unsupported(node, "an op on constants only")
        return emit(node, op, ins, prm)
    if t == aten.cat.default:
        return emit(node, "cat", [value_name(v) for v in a[0]], attrs={"dim": int(arg(1, "dim", 0))})
    if t in (aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default):
        if t == aten.batch_norm.default:
            x, w, b, mean, var = a[:5]
            eps = float(arg(7, "eps", 1e-5))
        else:
            x, w, b, mean, var = a[:5]
            eps = float(a[6])
        prm = {"mean": param(mean, node), "var": param(var, node)}
        if w is not None:
            prm["weight"] = param(w, node)
        if b is not None:
            prm["bias"] = param(b, node)
        return emit(node, "batch_norm", [value_name(x)], prm, {"eps": eps})
    if t == torch.ops.cdnn.local_response_norm.default:
        return emit(node, "local_response_norm", [value_name(a[0])], attrs={
            "size": int(a[1]), "alpha": float(a[2]), "beta": float(a[3]), "k": float(a[4])})
    if t == getattr(__import__("operator"), "getitem"):
        values[node] = values[a[0]]
        return
    _unsupported(node)


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


@torch.library.custom_op("cdnn::local_response_norm", mutates_args=())
def _lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    return torch.nn.functional.local_response_norm(x, size, alpha, beta, k)


@_lrn.register_fake
def _(x, size, alpha, beta, k):
    return torch.empty_like(x)


class _LRN(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.args = (m.size, m.alpha, m.beta, m.k)

    def forward(self, x):
        return torch.ops.cdnn.local_response_norm(x, *self.args)


def prepare_for_capture(model):
    """A copy of the model ready to trace: eval mode, torch.nn.utils.prune masks made permanent
    (weights keep their names), LocalResponseNorm kept as one op."""
    from torch.nn.utils import prune as tprune
    memo = {}
    for _, mod in model.named_modules():  # pruned weights are computed tensors: copy values
        for hook in getattr(mod, "_forward_pre_hooks", {}).values():
            if isinstance(hook, tprune.BasePruningMethod):
                t = getattr(mod, hook._tensor_name, None)
                if isinstance(t, torch.Tensor) and not t.is_leaf:
                    memo[id(t)] = t.detach().clone()
    model = copy.deepcopy(model, memo).eval()
    for _, mod in model.named_modules():
        for hook in list(getattr(mod, "_forward_pre_hooks", {}).values()):
            if isinstance(hook, tprune.BasePruningMethod):
                tprune.remove(mod, hook._tensor_name)
    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.LocalResponseNorm):
                setattr(mod, cname, _LRN(child))
    return model


make_callable(__name__)
