"""The graph section: the op vocabulary of format version 2 and the graph's validation.

A graph is a list of nodes in topological order; every value is produced once (by a graph
input or one node) and used only after it is produced, so a valid graph has no cycles.
"""

from .constants import (
    ENCODING_RAW,
    MAX_GRAPH_NODES,
    MAX_NAME_LENGTH,
    MAX_NODE_INPUTS,
    MAX_RANK,
    VALUE_DTYPES,
)
from .errors import CdnnFormatError

# Attribute kinds: "int", "posint", "float", "bool", "pair+" (two ints >= 1),
# "pair0" (two ints >= 0), "ints" (list of ints), ("enum", choices).
_POOL = {"kernel_size": ("pair+", None), "stride": ("pair+", "kernel_size"),
         "padding": ("pair0", [0, 0]), "ceil_mode": ("bool", False)}

#: op -> (min inputs, max inputs, params {role: required}, attrs {name: (kind, default)})
#: A default of None means the attribute is required; a string names the attribute it copies.
OPS = {
    "linear": (1, 1, {"weight": True, "bias": False}, {}),
    "conv2d": (1, 1, {"weight": True, "bias": False},
               {"stride": ("pair+", [1, 1]), "padding": ("pair0", [0, 0]),
                "dilation": ("pair+", [1, 1]), "groups": ("posint", 1)}),
    "max_pool2d": (1, 1, {}, {**_POOL, "dilation": ("pair+", [1, 1])}),
    "avg_pool2d": (1, 1, {}, {**_POOL, "count_include_pad": ("bool", True)}),
    "adaptive_avg_pool2d": (1, 1, {}, {"output_size": ("pair+", None)}),
    "relu": (1, 1, {}, {}),
    "relu6": (1, 1, {}, {}),
    "sigmoid": (1, 1, {}, {}),
    "tanh": (1, 1, {}, {}),
    "leaky_relu": (1, 1, {}, {"negative_slope": ("float", 0.01)}),
    "prelu": (1, 1, {"weight": True}, {}),
    "gelu": (1, 1, {}, {"approximate": (("enum", ("none", "tanh")), "none")}),
    "softmax": (1, 1, {}, {"dim": ("int", None)}),
    "log_softmax": (1, 1, {}, {"dim": ("int", None)}),
    "flatten": (1, 1, {}, {"start_dim": ("int", 1), "end_dim": ("int", -1)}),
    "reshape": (1, 1, {}, {"shape": ("ints", None)}),
    "permute": (1, 1, {}, {"dims": ("ints", None)}),
    "transpose": (1, 1, {}, {"dim0": ("int", None), "dim1": ("int", None)}),
    "add": (1, 2, {"other": False}, {}),
    "mul": (1, 2, {"other": False}, {}),
    "cat": (1, MAX_NODE_INPUTS, {}, {"dim": ("int", None)}),
    "batch_norm": (1, 1, {"mean": True, "var": True, "weight": False, "bias": False},
                   {"eps": ("float", 1e-5)}),
    "local_response_norm": (1, 1, {}, {"size": ("posint", None), "alpha": ("float", 1e-4),
                                       "beta": ("float", 0.75), "k": ("float", 1.0)}),
    "dropout": (1, 1, {}, {"p": ("float", 0.5)}),
    "identity": (1, 1, {}, {}),
}

#: Params whose tensor may be sparse_codebook; every other param must be raw float32.
_WEIGHT_PARAMS = {("linear", "weight"), ("conv2d", "weight")}


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
    spec = OPS[op][3]
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
    if op in ("max_pool2d", "avg_pool2d"):
        if any(2 * p > k for p, k in zip(out["padding"], out["kernel_size"])):
            raise CdnnFormatError(f"{where}: padding {out['padding']} exceeds half the kernel "
                                  f"size {out['kernel_size']}")
    if op == "reshape" and sum(1 for v in out["shape"] if v == -1) > 1:
        raise CdnnFormatError(f"{where}: reshape shape has more than one -1")
    return out


def _check_param(op, role, tensor, where):
    shape = tensor["shape"]
    if (op, role) in _WEIGHT_PARAMS:
        rank = 2 if op == "linear" else 4
        if len(shape) != rank:
            raise CdnnFormatError(f"{where}: {op} weight must have rank {rank}, has shape "
                                  f"{shape}")
        if tensor["encoding"] == ENCODING_RAW and tensor["dtype"] != "float32":
            raise CdnnFormatError(f"{where}: {op} weight must be float32 or sparse_codebook")
        return
    if tensor["encoding"] != ENCODING_RAW or tensor["dtype"] not in ("float32", "float16"):
        raise CdnnFormatError(f"{where}: parameter {role!r} must be a raw float32 or float16 "
                              "tensor")


def validate_graph(graph, tensors, check):
    """Validate the graph object against the tensor table; returns it with attrs normalized."""
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
        lo, hi, param_spec, _ = OPS[op]
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
        if op in ("add", "mul") and (len(ins) == 2) == ("other" in params):
            raise CdnnFormatError(f"{w}: {op} takes two inputs, or one input and param 'other'")
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
        _check_params_agree(op, params, tensors, w)
        outs = node["outputs"]
        if not isinstance(outs, list) or len(outs) != 1:
            raise CdnnFormatError(f"{w}: a node has exactly one output in format v2")
        for v in outs:
            _name(v, w)
            if v in defined:
                raise CdnnFormatError(f"{w}: value {v!r} already defined by {defined[v]}")
            defined[v] = w
        attrs = normalize_attrs(op, node.get("attrs", {}), w)
        if op == "conv2d":
            kernel = tensors[params["weight"]]["shape"][2:]
            reach = [d * (k - 1) for d, k in zip(attrs["dilation"], kernel)]
            if any(p > r for p, r in zip(attrs["padding"], reach)):
                raise CdnnFormatError(f"{w}: padding {attrs['padding']} exceeds the dilated "
                                      f"kernel's reach {reach} (outputs would see only padding)")
        if op == "conv2d" and tensors[params["weight"]]["shape"][0] % attrs["groups"]:
            raise CdnnFormatError(f"{w}: {tensors[params['weight']]['shape'][0]} output "
                                  f"channels do not split into {attrs['groups']} groups")
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


def _check_params_agree(op, params, tensors, where):
    """Shapes that must agree between a node's params (bias vs weight, groups, batch norm)."""
    shape = lambda role: tensors[params[role]]["shape"]  # noqa: E731
    if op in ("linear", "conv2d") and "bias" in params:
        if shape("bias") != [shape("weight")[0]]:
            raise CdnnFormatError(f"{where}: bias shape {shape('bias')} does not match "
                                  f"{shape('weight')[0]} outputs")
    if op == "batch_norm":
        sizes = {tuple(shape(r)) for r in params}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise CdnnFormatError(f"{where}: batch_norm params must be 1-D of one size")
    if op == "prelu" and len(shape("weight")) != 1:
        raise CdnnFormatError(f"{where}: prelu weight must be 1-D")
