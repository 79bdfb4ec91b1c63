"""The graph section: the op vocabulary of the format, version by version, and the graph's
validation.

A graph is a list of nodes in topological order; every value is produced once (by a graph
input or one node) and used only after it is produced, so a valid graph has no cycles.
"""

from dataclasses import dataclass, field
from typing import Callable

from .constants import (
    BASE_VERSION,
    ENCODING_RAW,
    FORMAT_VERSION,
    MAX_GRAPH_NODES,
    MAX_NAME_LENGTH,
    MAX_NODE_INPUTS,
    MAX_NODE_OUTPUTS,
    MAX_RANK,
    VALUE_DTYPES,
)
from .errors import CdnnFormatError

# Attribute kinds: "int", "posint", "float", "bool", "pair+" (two ints >= 1),
# "pair0" (two ints >= 0), "ints" (list of at most MAX_RANK ints), "sizes" (list of 1 to
# MAX_NODE_OUTPUTS ints >= 1), ("enum", choices).


@dataclass(frozen=True)
class OpSpec:
    """One op of the vocabulary: what a node of it may hold, and since which format version.

    `attrs` maps a name to (kind, default); a default of None means the attribute is required,
    a string names the attribute it copies. `weights` maps a param role to the rank of a weight
    that MAY be sparse_codebook (every other param is a raw float32 or float16 tensor). `check`,
    when set, applies the op's local rules: ``check(node, attrs, tensors, where)`` with the
    node's params resolved against the tensor table and its attributes normalized.
    """
    inputs: tuple = (1, 1)
    params: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    outputs: tuple = (1, 1)
    since: int = BASE_VERSION
    weights: dict = field(default_factory=dict)
    check: Callable = None


def _bad(where, text):
    return CdnnFormatError(f"{where}: {text}")


def _check_bias(node, attrs, tensors, where):
    """A layer's bias has one value per output (weight dim 0)."""
    p = node["params"]
    if "bias" in p and tensors[p["bias"]]["shape"] != [tensors[p["weight"]]["shape"][0]]:
        raise _bad(where, f"bias shape {tensors[p['bias']]['shape']} does not match "
                          f"{tensors[p['weight']]['shape'][0]} outputs")


def _check_conv2d(node, attrs, tensors, where):
    _check_bias(node, attrs, tensors, where)
    shape = tensors[node["params"]["weight"]]["shape"]
    reach = [d * (k - 1) for d, k in zip(attrs["dilation"], shape[2:])]
    if any(p > r for p, r in zip(attrs["padding"], reach)):
        raise _bad(where, f"padding {attrs['padding']} exceeds the dilated kernel's reach "
                          f"{reach} (outputs would see only padding)")
    if shape[0] % attrs["groups"]:
        raise _bad(where, f"{shape[0]} output channels do not split into {attrs['groups']} "
                          "groups")


def _check_pool(node, attrs, tensors, where):
    if any(2 * p > k for p, k in zip(attrs["padding"], attrs["kernel_size"])):
        raise _bad(where, f"padding {attrs['padding']} exceeds half the kernel size "
                          f"{attrs['kernel_size']}")


def _check_reshape(node, attrs, tensors, where):
    if sum(1 for v in attrs["shape"] if v == -1) > 1:
        raise _bad(where, "reshape shape has more than one -1")


def _check_binary(node, attrs, tensors, where):
    if (len(node["inputs"]) == 2) == ("other" in node["params"]):
        raise _bad(where, f"{node['op']} takes two inputs, or one input and param 'other'")


def _check_batch_norm(node, attrs, tensors, where):
    sizes = {tuple(tensors[t]["shape"]) for t in node["params"].values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise _bad(where, "batch_norm params must be 1-D of one size")


def _check_prelu(node, attrs, tensors, where):
    if len(tensors[node["params"]["weight"]]["shape"]) != 1:
        raise _bad(where, "prelu weight must be 1-D")


def _check_split(node, attrs, tensors, where):
    if len(attrs["sizes"]) != len(node["outputs"]):
        raise _bad(where, f"split into {len(attrs['sizes'])} sizes names "
                          f"{len(node['outputs'])} outputs")
    if attrs["dim"] == 0:
        raise _bad(where, "split along dim 0, the batch dimension")


_POOL = {"kernel_size": ("pair+", None), "stride": ("pair+", "kernel_size"),
         "padding": ("pair0", [0, 0]), "ceil_mode": ("bool", False)}
_LAYER = {"weight": True, "bias": False}

#: The vocabulary: op name -> OpSpec. A new op is one entry here (with `since` the version that
#: adds it), one row in the spec's op table, and its builders in cdnn/translate.py and ops.py.
OPS = {
    "linear": OpSpec(params=_LAYER, weights={"weight": 2}, check=_check_bias),
    "conv2d": OpSpec(params=_LAYER, weights={"weight": 4}, check=_check_conv2d,
                     attrs={"stride": ("pair+", [1, 1]), "padding": ("pair0", [0, 0]),
                            "dilation": ("pair+", [1, 1]), "groups": ("posint", 1)}),
    "max_pool2d": OpSpec(attrs={**_POOL, "dilation": ("pair+", [1, 1])}, check=_check_pool),
    "avg_pool2d": OpSpec(attrs={**_POOL, "count_include_pad": ("bool", True)},
                         check=_check_pool),
    "adaptive_avg_pool2d": OpSpec(attrs={"output_size": ("pair+", None)}),
    "relu": OpSpec(),
    "relu6": OpSpec(),
    "sigmoid": OpSpec(),
    "tanh": OpSpec(),
    "leaky_relu": OpSpec(attrs={"negative_slope": ("float", 0.01)}),
    "prelu": OpSpec(params={"weight": True}, check=_check_prelu),
    "gelu": OpSpec(attrs={"approximate": (("enum", ("none", "tanh")), "none")}),
    "softmax": OpSpec(attrs={"dim": ("int", None)}),
    "log_softmax": OpSpec(attrs={"dim": ("int", None)}),
    "flatten": OpSpec(attrs={"start_dim": ("int", 1), "end_dim": ("int", -1)}),
    "reshape": OpSpec(attrs={"shape": ("ints", None)}, check=_check_reshape),
    "permute": OpSpec(attrs={"dims": ("ints", None)}),
    "transpose": OpSpec(attrs={"dim0": ("int", None), "dim1": ("int", None)}),
    "add": OpSpec(inputs=(1, 2), params={"other": False}, check=_check_binary),
    "mul": OpSpec(inputs=(1, 2), params={"other": False}, check=_check_binary),
    "cat": OpSpec(inputs=(1, MAX_NODE_INPUTS), attrs={"dim": ("int", None)}),
    "batch_norm": OpSpec(params={"mean": True, "var": True, "weight": False, "bias": False},
                         attrs={"eps": ("float", 1e-5)}, check=_check_batch_norm),
    "local_response_norm": OpSpec(attrs={"size": ("posint", None), "alpha": ("float", 1e-4),
                                         "beta": ("float", 0.75), "k": ("float", 1.0)}),
    "dropout": OpSpec(attrs={"p": ("float", 0.5)}),
    "identity": OpSpec(),
    # ---- version 3 --------------------------------------------------------------------------
    "split": OpSpec(attrs={"sizes": ("sizes", None), "dim": ("int", None)},
                    outputs=(1, MAX_NODE_OUTPUTS), since=3, check=_check_split),
}


def graph_version(graph):
    """The lowest format version whose vocabulary holds every op of `graph` (a writer stamps
    its file with it, so that files of older ops stay readable by older readers)."""
    ops = [n["op"] for n in (graph or {}).get("nodes", ())]
    return max([BASE_VERSION] + [OPS[op].since for op in ops if op in OPS])


def _name(value, where):
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_LENGTH:
        raise CdnnFormatError(f"{where}: a name must be a string of 1 to {MAX_NAME_LENGTH} "
                              f"characters, got {value!r:.80}")
    return value


def _attr(kind, value, where):
    def bad(expect):
        return CdnnFormatError(f"{where}: expected {expect}, got {value!r:.80}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind in ("int", "posint"):
        if not is_int(value) or abs(value) > 2**31 or (kind == "posint" and value < 1):
            raise bad("a positive integer" if kind == "posint" else "an integer")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a finite number")
        try:
            finite = abs(float(value)) < float("inf")
        except OverflowError:
            finite = False
        if not finite:
            raise bad("a finite number")
    elif kind in ("pair+", "pair0"):
        low = 1 if kind == "pair+" else 0
        if not (isinstance(value, list) and len(value) == 2
                and all(is_int(v) and low <= v <= 2**20 for v in value)):
            raise bad(f"two integers >= {low}")
    elif kind == "sizes":
        if not (isinstance(value, list) and 1 <= len(value) <= MAX_NODE_OUTPUTS
                and all(is_int(v) and 1 <= v <= 2**31 for v in value)):
            raise bad(f"a list of 1 to {MAX_NODE_OUTPUTS} integers >= 1")
    elif kind == "ints":
        if not (isinstance(value, list) and len(value) <= MAX_RANK
                and all(is_int(v) and abs(v) <= 2**31 for v in value)):
            raise bad(f"a list of at most {MAX_RANK} integers")
    else:
        if value not in kind[1]:
            raise bad(f"one of {', '.join(kind[1])}")
    return value


def normalize_attrs(op, attrs, where):
    """Check a node's attributes against the vocabulary and fill in the defaults."""
    spec = OPS[op].attrs
    if not isinstance(attrs, dict):
        raise CdnnFormatError(f"{where}: attrs must be an object")
    unknown = sorted(set(attrs) - set(spec))
    if unknown:
        raise CdnnFormatError(f"{where}: unknown attribute {unknown[0]!r} for op {op!r}")
    out = {}
    for key, (kind, default) in spec.items():
        if key in attrs:
            out[key] = _attr(kind, attrs[key], f"{where} attribute {key!r}")
        elif default is None:
            raise CdnnFormatError(f"{where}: op {op!r} needs attribute {key!r}")
        elif isinstance(default, str) and default in spec:
            out[key] = None  # copies another attribute, filled below
        else:
            out[key] = default
    for key, (kind, default) in spec.items():
        if out[key] is None and isinstance(default, str) and default in spec:
            out[key] = list(out[default])
    return out


def _check_param(op, role, tensor, where):
    shape = tensor["shape"]
    rank = OPS[op].weights.get(role)
    if rank is not None:
        if len(shape) != rank:
            raise CdnnFormatError(f"{where}: {op} weight must have rank {rank}, has shape "
                                  f"{shape}")
        if tensor["encoding"] == ENCODING_RAW and tensor["dtype"] != "float32":
            raise CdnnFormatError(f"{where}: {op} weight must be float32 or sparse_codebook")
        return
    if tensor["encoding"] != ENCODING_RAW or tensor["dtype"] not in ("float32", "float16"):
        raise CdnnFormatError(f"{where}: parameter {role!r} must be a raw float32 or float16 "
                              "tensor")


def validate_graph(graph, tensors, check, version=FORMAT_VERSION):
    """Validate the graph object against the tensor table of a file of format `version`;
    returns it with attrs normalized."""
    where = "graph"
    check.keys(graph, where, required={"inputs", "outputs", "nodes"})
    defined = {}
    inputs = check.list(graph, "inputs", where, 1, MAX_NODE_INPUTS)
    for i, spec in enumerate(inputs):
        w = f"graph input {i}"
        check.keys(spec, w, required={"name", "dtype", "shape"})
        name = _name(spec["name"], w)
        if spec["dtype"] not in VALUE_DTYPES:
            raise CdnnFormatError(f"{w} ({name!r}): dtype must be one of {VALUE_DTYPES}")
        shape = spec["shape"]
        if not (isinstance(shape, list) and 1 <= len(shape) <= MAX_RANK):
            raise CdnnFormatError(f"{w} ({name!r}): shape must be a list of 1 to {MAX_RANK} dims")
        for j, d in enumerate(shape):
            ok = (d is None and j == 0) or (isinstance(d, int) and not isinstance(d, bool)
                                            and 1 <= d <= 2**31)
            if not ok:
                raise CdnnFormatError(f"{w} ({name!r}): dim {j} must be a positive integer"
                                      " (only dim 0 may be null, the free batch dimension)")
        if name in defined:
            raise CdnnFormatError(f"{w}: value {name!r} defined twice")
        defined[name] = w
    nodes = check.list(graph, "nodes", where, 0, MAX_GRAPH_NODES)
    node_names = set()
    normalized = []
    for i, node in enumerate(nodes):
        w = f"graph node {i}"
        check.keys(node, w, required={"name", "op", "inputs", "outputs"},
                   optional={"params", "attrs"})
        name = _name(node["name"], w)
        w = f"graph node {i} ({name!r})"
        if name in node_names:
            raise CdnnFormatError(f"{w}: node name used twice")
        node_names.add(name)
        op = node["op"]
        if not isinstance(op, str) or op not in OPS:
            raise CdnnFormatError(f"{w}: unknown op {op!r:.40}")
        spec = OPS[op]
        if spec.since > version:
            raise CdnnFormatError(f"{w}: op {op!r} needs format version {spec.since}; the file "
                                  f"is version {version}")
        (lo, hi), param_spec = spec.inputs, spec.params
        params = node.get("params", {})
        if not isinstance(params, dict):
            raise CdnnFormatError(f"{w}: params must be an object")
        ins = node["inputs"]
        if not isinstance(ins, list) or not lo <= len(ins) <= hi:
            raise CdnnFormatError(f"{w}: op {op!r} takes {lo} to {hi} inputs")
        for v in ins:
            _name(v, w)
            if v not in defined:
                raise CdnnFormatError(f"{w}: input {v!r} is not a graph input or the output "
                                      "of an earlier node")
        for role in params:
            if role not in param_spec:
                raise CdnnFormatError(f"{w}: unknown param {role!r} for op {op!r}")
        for role, required in param_spec.items():
            if role not in params:
                if required:
                    raise CdnnFormatError(f"{w}: op {op!r} needs param {role!r}")
                continue
            tname = params[role]
            if not isinstance(tname, str) or tname not in tensors:
                raise CdnnFormatError(f"{w}: param {role!r} names no tensor of the file "
                                      f"({tname!r:.80})")
            _check_param(op, role, tensors[tname], f"{w} param {role!r} ({tname!r})")
        outs = node["outputs"]
        lo, hi = spec.outputs
        if not isinstance(outs, list) or not lo <= len(outs) <= hi:
            count = "exactly one output" if (lo, hi) == (1, 1) else f"{lo} to {hi} outputs"
            raise CdnnFormatError(f"{w}: op {op!r} has {count}")
        for v in outs:
            _name(v, w)
            if v in defined:
                raise CdnnFormatError(f"{w}: value {v!r} already defined by {defined[v]}")
            defined[v] = w
        attrs = normalize_attrs(op, node.get("attrs", {}), w)
        if spec.check is not None:
            spec.check({"op": op, "inputs": ins, "outputs": outs, "params": params}, attrs,
                       tensors, w)
        normalized.append({"name": name, "op": op, "inputs": list(ins), "outputs": list(outs),
                           "params": dict(params), "attrs": attrs})
    outputs = check.list(graph, "outputs", where, 1, MAX_NODE_INPUTS)
    seen = set()
    for i, spec in enumerate(outputs):
        w = f"graph output {i}"
        check.keys(spec, w, required={"name"})
        name = _name(spec["name"], w)
        if name not in defined:
            raise CdnnFormatError(f"{w}: value {name!r} is never produced")
        if name in seen:
            raise CdnnFormatError(f"{w}: value {name!r} listed twice")
        seen.add(name)
    return {"inputs": [dict(s) for s in inputs], "outputs": [dict(s) for s in outputs],
            "nodes": normalized}
