"""Capture a PyTorch model as a .cdnn graph with torch.export (ATen level).

Every ATen op maps to one op of the format's vocabulary through the handler table of
:mod:`cdnn.translate`, or capture stops with a CdnnUnsupportedError naming the op, the module
path and the source line, before any work.
"""

import copy
import inspect
import os
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from cdnn._callable import make_callable
from cdnn_runtime.errors import CdnnCaptureError, CdnnError, CdnnUnsupportedError

from .mha import CaptureAttention
from .recurrent import CaptureRecurrent
from .translate import translate, unsupported

__all__ = ["Captured", "CdnnCaptureError", "FixedBatchWarning", "GraphBuilder",
           "UncompressedWeightWarning", "capture", "export_model", "prepare_for_capture"]


@dataclass
class Captured:
    """A captured model: the spec-form graph and its parameters by tensor name."""
    graph: dict
    params: dict  # tensor name -> float32 numpy array
    weights: dict = field(default_factory=dict)  # compressible weight -> op (linear/conv2d)

    @property
    def nodes(self):
        return self.graph["nodes"]


class GraphBuilder:
    """The graph being built from an exported program; handlers of :mod:`cdnn.translate` add
    nodes to it.

    `values` maps an fx node to its graph value name, or to ``("param", tensor name)`` for a
    parameter, buffer or constant, ``("sym", dim)`` for a symbolic size, or ``("multi",
    [value names])`` for the outputs of a node with several.
    """

    def __init__(self, state, dynamic=True, free_dims=()):
        self.state = state  # tensor name -> torch tensor (parameters, buffers, constants)
        self.dynamic = dynamic  # whether the batch dimension is free
        # per user input (in order): {dim: [name, max]} of its free dims besides the batch; a
        # position table over a free dim lowers its max to the table's rows
        self.free_dims = [dict(f) for f in free_dims]
        self.sym_sources = {}  # fx node of a symbolic size -> (fx node of the tensor, dim)
        self.positions = {}  # graph value of an `arange` -> (graph input, dim) it counts
        self.traced_sizes = []  # per user input: its example's shape (free dims' traced size)
        self.graph = {"inputs": [], "nodes": [], "outputs": []}
        self.params = {}
        self.weights = {}
        self.values = {}
        self.current = None  # the fx node being translated, named in errors
        self._node_names = set()

    def value_name(self, node):
        """The graph value that fx node `node` computes (a tensor of the graph, not a param)."""
        v = self.values.get(node)
        if v is None or isinstance(v, tuple):
            unsupported(self.current if self.current is not None else node,
                        f"input {node.name!r} is not a tensor value of the graph (a parameter "
                        "or a constant where the op takes only computed values)")
        return v

    def param(self, arg, node):
        """The tensor name of parameter `arg` of `node`, its values kept for the file."""
        v = self.values.get(arg)
        if not (isinstance(v, tuple) and v[0] == "param"):
            unsupported(node, "a parameter computed at run time")
        name = v[1]
        if name not in self.params:
            self.params[name] = self.state[name].detach().float().cpu().numpy().copy()
        return name

    def compressible(self, weight, kind):
        """Mark parameter `weight` as the compressible weight of a layer of `kind`. The
        compressor works per module, on `<module>.weight`: another parameter used as a weight
        (`F.linear(x, self.w)`) is stored raw, with a warning."""
        if weight.rpartition(".")[2] != "weight":
            warnings.warn(f"{weight!r} is the weight of a {kind} but not a module's `weight` "
                          "parameter: it is stored raw, uncompressed (wrap it in an nn module "
                          "to compress it)", UncompressedWeightWarning, stacklevel=2)
            return
        self.weights.setdefault(weight, kind)  # a table tied to a head: the kind of its first use

    def const_param(self, value, node):
        """A Python number or array operand of `node` kept as a float32 tensor of the file."""
        name = f"{node.name}.other"
        value = np.asarray(value, dtype=np.float32)
        self.params[name] = value.reshape(1) if value.ndim == 0 else value
        return name

    def operands(self, node, args):
        """(graph value inputs, params) of a binary op: tensors of the graph are inputs, a
        parameter or a constant is param "other"."""
        ins, prm = [], {}
        for v in args:
            if isinstance(v, torch.fx.Node) and not isinstance(self.values.get(v), tuple):
                ins.append(self.value_name(v))
            elif isinstance(v, torch.fx.Node):
                prm["other"] = self.param(v, node)
            else:
                prm["other"] = self.const_param(v, node)
        if not ins:
            unsupported(node, "an op on constants only")
        return ins, prm

    def emit(self, node, op, inputs, params=None, attrs=None, name=None, n_outputs=None):
        """Add a graph node computing fx node `node`; its name is `name` (or the fx name),
        made unique. With `n_outputs`, the node has that many outputs (format v3), which the
        fx node's getitem users pick as ``("multi", [value names])``."""
        base = name or node.name
        nname, i = base, 1
        while nname in self._node_names:
            i += 1
            nname = f"{base}_{i}"
        self._node_names.add(nname)
        outputs = [node.name] if n_outputs is None else \
            [f"{node.name}.{k}" for k in range(n_outputs)]
        self.graph["nodes"].append({"name": nname, "op": op, "inputs": inputs,
                                    "outputs": outputs, "params": params or {},
                                    "attrs": attrs or {}})
        self.values[node] = node.name if n_outputs is None else ("multi", outputs)


class UncompressedWeightWarning(UserWarning):
    """A layer's weight that the compressor cannot take: the file stores it raw."""


class FixedBatchWarning(UserWarning):
    """The model's code fixes the batch size, so its file runs that batch size only."""


def _batch_of_two(example_inputs):
    """The example with every batch-1 tensor repeated to batch 2: torch.export specialises a
    dimension of size 1 to the constant 1, so a batch-1 example would fix the batch."""
    return tuple(torch.cat([x, x]) if isinstance(x, torch.Tensor) and x.ndim and x.shape[0] == 1
                 else x for x in example_inputs)


def _user_frame(frames):
    """'file, line N, in fn: code' of the innermost of `frames` (traceback.FrameSummary)
    outside torch and this module, or None."""
    torch_dir = os.path.dirname(torch.__file__)
    user = [f for f in frames if not f.filename.startswith(torch_dir)
            and f.filename != __file__ and "contextlib" not in f.filename]
    if not user:
        return None
    f = user[-1]
    return f"{f.filename}, line {f.lineno}, in {f.name}: {(f.line or '').strip()}"


class _BatchTracker(TorchDispatchMode):
    """Runs a model and notes the first op that takes a tensor descending from the inputs
    with the batch in dim 0 and returns none that keeps it there: the line that fixes the
    batch size (a reshape to a literal size, a transpose of the batch away...)."""

    def __init__(self, inputs, batch):
        super().__init__()
        self.batch = batch
        self.carrying = {id(t) for t in inputs}
        self.keep = list(inputs)  # ids stay valid while their tensors live
        self.where = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.where is not None:
            return out
        ins = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if any(id(t) in self.carrying for t in ins):
            outs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
            kept = [t for t in outs if t.ndim and t.shape[0] == self.batch]
            if outs and not kept:
                self.where = _user_frame(traceback.extract_stack())
            self.carrying.update(id(t) for t in kept)
            self.keep.extend(kept)
        return out


def _where_batch_is_fixed(model, inputs, exc):
    """The source line that fixes the batch size of `model`, found by running it on `inputs`
    (batch 2); else the user's line in the traceback of the export failure `exc`."""
    batch = inputs[0].shape[0]
    tracker = _BatchTracker([x for x in inputs if isinstance(x, torch.Tensor)], batch)
    try:
        with torch.no_grad(), tracker:
            model(*inputs)
    except Exception:  # the model cannot run this batch: the tracker has seen the line
        pass
    return tracker.where or _user_frame(traceback.extract_tb(exc.__traceback__)) or \
        "the line is not known"


#: The largest size a free dim may declare (the batch's bound too).
MAX_FREE_SIZE = 2**20


def resolve_dynamic_dims(model, example_inputs, dynamic_dims, input_names=None):
    """`dynamic_dims` ({input: {dim: name | (name, max) | torch.export.Dim}}, an input named
    as in `input_names`, else as the forward's parameter, or by position) as one
    {dim: [name, max or None]} per example input, checked against the example."""
    n = len(example_inputs)
    free = [{} for _ in range(n)]
    if not dynamic_dims:
        return free
    if not isinstance(dynamic_dims, dict):
        raise CdnnCaptureError("dynamic_dims must map an input (name or position) to "
                               "{dim: name}, e.g. {'ids': {1: 'seq'}}")
    names = list(input_names or [])
    if len(names) < n:
        try:
            params = [p.name for p in inspect.signature(model.forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = []
        names += params[len(names):n]
    for key, dims in dynamic_dims.items():
        k = key if isinstance(key, int) and not isinstance(key, bool) else \
            names.index(key) if key in names else None
        if k is None or not 0 <= k < n:
            raise CdnnCaptureError(f"dynamic_dims names input {key!r}, which the model does "
                                   f"not have (its inputs: {', '.join(map(str, names[:n]))})")
        x = example_inputs[k]
        if not isinstance(dims, dict) or not isinstance(x, torch.Tensor):
            raise CdnnCaptureError(f"dynamic_dims[{key!r}] must map dims of a tensor input to "
                                   "names, e.g. {1: 'seq'}")
        for d, spec in dims.items():
            if not isinstance(d, int) or not 1 <= d % max(x.ndim, 1) < x.ndim:
                raise CdnnCaptureError(f"dynamic_dims[{key!r}]: dim {d!r} is not a dim of the "
                                       f"input after the batch (shape {list(x.shape)})")
            if isinstance(spec, torch.export.Dim):
                spec = (spec.__name__, getattr(spec, "max", None))
            name, top = (spec, None) if isinstance(spec, str) else tuple(spec)
            if top is not None and top >= MAX_FREE_SIZE:
                top = None
            size = x.shape[d]
            if size < 2:
                raise CdnnCaptureError(f"input {key!r} dim {d} is declared free but the example "
                                       f"has size {size} there: trace with a length of 2 or "
                                       "more (torch.export fixes a dim of size 1)")
            if top is not None and not size <= top <= MAX_FREE_SIZE:
                raise CdnnCaptureError(f"input {key!r} dim {d}: max {top} is below the "
                                       f"example's size {size}")
            free[k][d % x.ndim] = [str(name), top]
    return free


def export_model(model, example_inputs, dynamic_batch=True, free_dims=None):
    """torch.export the model in eval mode, with a free batch dimension (dim 0 of every tensor
    input) unless the model's code fixes it; returns (exported program, whether the batch is
    free). A fixed batch is exported as the example has it, with a FixedBatchWarning naming
    the line that fixes it. `free_dims` (from resolve_dynamic_dims) frees more dims."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    model = model.eval()
    free_dims = free_dims or [{} for _ in example_inputs]
    named = {}
    for dims in free_dims:
        for name, top in dims.values():
            named.setdefault(name, torch.export.Dim(name, min=1, max=top or MAX_FREE_SIZE))
    extra = [{d: named[name] for d, (name, _) in dims.items()} for dims in free_dims]
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=MAX_FREE_SIZE)
        dyn = tuple({0: batch, **more} if isinstance(x, torch.Tensor) and x.ndim else None
                    for x, more in zip(example_inputs, extra))
        batch_of_two = _batch_of_two(example_inputs)
        try:
            return torch.export.export(model, batch_of_two, dynamic_shapes=dyn), True
        except CdnnError:  # refused by cdnn's own code in the model (cdnn.mha): not the batch
            raise
        except Exception as exc:  # a model whose code fixes the batch size
            if named:
                _refuse_free_dims(exc)
            where = _where_batch_is_fixed(model, batch_of_two, exc)
            n = example_inputs[0].shape[0] if isinstance(example_inputs[0], torch.Tensor) \
                else "?"
            # one place of issue, so that the default filter shows it once per process
            warnings.warn(f"the model's code fixes the batch size at {where}; the file runs "
                          f"batches of {n} only", FixedBatchWarning, stacklevel=2)
    try:
        dyn = tuple(more or None for more in extra) if named else None
        return torch.export.export(model, example_inputs, dynamic_shapes=dyn), False
    except CdnnError:
        raise
    except Exception as exc:
        if named:
            _refuse_free_dims(exc)
        raise CdnnCaptureError(f"torch.export could not trace the model: {exc}") from exc


def _refuse_free_dims(exc):
    """A free-dim export that failed: torch.export's reason, first lines, as a capture error."""
    text = "\n".join(str(exc).strip().splitlines()[:6])
    raise CdnnCaptureError("the model cannot be traced with the dims declared free "
                           f"(dynamic_dims): torch.export says: {text}") from exc


#: torch dtype of a user input -> the graph input's dtype (integers: format version 3).
_INPUT_DTYPES = {torch.float32: "float32", torch.int64: "int64", torch.int32: "int32"}


def _graph_input(g, node, dynamic):
    """Declare placeholder `node` (a user input) as a graph input."""
    t = node.meta.get("val")
    if not isinstance(t, torch.Tensor):
        unsupported(node, "a non-tensor input")
    dtype = _INPUT_DTYPES.get(t.dtype)
    if dtype is None:
        raise CdnnUnsupportedError(f"input {node.name!r}: dtype {t.dtype}, cdnn runs float32 "
                                   "inputs and int64 or int32 ones (token ids, positions)")
    k = len(g.graph["inputs"])
    free = g.free_dims[k] if k < len(g.free_dims) else {}
    shape = [int(d) if isinstance(d, int) else None for d in t.shape]
    for d in free:
        shape[d] = g.traced_sizes[k][d]
    if dynamic and shape:
        shape[0] = None
    spec = {"name": node.name, "dtype": dtype, "shape": shape}
    if free:
        spec["free"] = [{"dim": d, "name": name, "max": top} for d, (name, top) in free.items()]
    g.graph["inputs"].append(spec)
    g.values[node] = node.name


def capture(model, example_inputs, *, input_names=None, output_names=None,
            dynamic_batch=True, dynamic_dims=None):
    """Trace `model` on `example_inputs` into a Captured graph (BatchNorm left unfolded).
    `dynamic_dims` ({input: {dim: name or (name, max)}}) declares dims besides the batch free
    (a sequence length); their max is the one given, else the rows of a position table they
    index, else 2^20."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    free = resolve_dynamic_dims(model, example_inputs, dynamic_dims, input_names)
    if isinstance(model, torch.export.ExportedProgram):
        ep, dynamic = model, True
    else:
        ep, dynamic = export_model(model, example_inputs, dynamic_batch, free)
    sig = ep.graph_signature
    state = dict(ep.state_dict)
    state.update(getattr(ep, "constants", {}) or {})
    g = GraphBuilder(state, dynamic, free)
    g.traced_sizes = [list(x.shape) if isinstance(x, torch.Tensor) else [] for x in
                      example_inputs]
    lifted = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
              **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in lifted:
            g.values[node] = ("param", lifted[node.name])
        elif node.op == "placeholder":
            _graph_input(g, node, dynamic)
        elif node.op == "output":
            outs = node.args[0]
            for o in outs if isinstance(outs, (list, tuple)) else [outs]:
                g.graph["outputs"].append({"name": g.value_name(o)})
        elif node.op == "call_function":
            translate(g, node)
        else:
            unsupported(node, f"fx op kind {node.op}")
    for spec in g.graph["inputs"]:
        for f in spec.get("free", ()):
            f["max"] = f["max"] or MAX_FREE_SIZE
    graph = _rename_io(g.graph, input_names, output_names)
    return Captured(graph=graph, params=g.params, weights=g.weights)


def _rename_io(graph, input_names, output_names):
    """The graph with its inputs and outputs renamed: inputs as the user asked (else the
    forward's parameter names, as traced), outputs as the user asked, else ``output`` (one
    output) or ``output_0, output_1, ...``. A default name taken by another value of the graph
    gets a ``_`` suffix; an output that is also a graph input or repeats an earlier output
    keeps its name."""
    outputs = [spec["name"] for spec in graph["outputs"]]
    if not output_names:
        output_names = ["output"] if len(outputs) == 1 else \
            [f"output_{k}" for k in range(len(outputs))]
        taken = {i["name"] for i in graph["inputs"]} | \
            {v for n in graph["nodes"] for v in n["outputs"]}
        output_names = [_free_name(new, taken - {old}) for new, old in zip(output_names, outputs)]
    mapping = {}
    if input_names:
        for spec, new in zip(graph["inputs"], input_names):
            mapping[spec["name"]] = new
    inputs = {i["name"] for i in graph["inputs"]}
    for old, new in zip(outputs, output_names):
        if old not in inputs and old not in mapping:
            mapping[old] = new
    if not mapping:
        return graph
    for spec in graph["inputs"] + graph["outputs"]:
        spec["name"] = mapping.get(spec["name"], spec["name"])
    for n in graph["nodes"]:
        n["inputs"] = [mapping.get(v, v) for v in n["inputs"]]
        n["outputs"] = [mapping.get(v, v) for v in n["outputs"]]
    return graph


def _free_name(name, taken):
    """`name`, or `name` with underscores appended until no value in `taken` has it."""
    while name in taken:
        name += "_"
    return name


class _LRN(nn.Module):
    """nn.LocalResponseNorm traced as the single op cdnn::local_response_norm."""

    def __init__(self, m):
        super().__init__()
        self.args = (m.size, m.alpha, m.beta, m.k)

    def forward(self, x):
        return torch.ops.cdnn.local_response_norm(x, *self.args)


def prepare_for_capture(model):
    """A copy of the model ready to trace: eval mode, torch.nn.utils.prune masks made permanent
    (weights keep their names), LocalResponseNorm kept as one op, MultiheadAttention as
    cdnn.mha.CaptureAttention (its projections q_proj, k_proj, v_proj, out_proj), nn.LSTM,
    nn.GRU and nn.RNN as cdnn.recurrent.CaptureRecurrent (its matrices ih_l0, hh_l0, ...)."""
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
            elif isinstance(child, nn.MultiheadAttention):  # attention (version 3)
                setattr(mod, cname, CaptureAttention(child))
            elif isinstance(child, nn.RNNBase):  # recurrent layers (version 3)
                setattr(mod, cname, CaptureRecurrent(child))
    if isinstance(model, nn.RNNBase):  # recurrent layers (version 3)
        return CaptureRecurrent(model)
    return CaptureAttention(model) if isinstance(model, nn.MultiheadAttention) else model


make_callable(__name__)
