"""Mutators of class "struct" that edit the graph: wiring (cycles, values used before they
exist or defined twice), nodes removed or reordered, ops, attributes and params of the wrong
kind, hostile but well-typed attribute values, graph inputs; and one meaning-preserving
rewrite (another topological order, default attributes spelled out or left out)."""

import copy
import math
from dataclasses import dataclass

from ...graph import OPS
from .mutate import Skip, is_int, mutator, short

ATTR_VALUES = [0, 1, 2, -1, -2, 2**31, 2**31 + 1, 2**20, 2**20 + 1, 10**400, 1.5, 0.0, -0.0,
               1e308, -1e308, 1e-320, True, False, None, "tanh", "none", "erf", "", [], [1],
               [1, 1], [0, 0], [2, 2], [1, 1, 1], [-1, 1], [0, 1], [2**20, 2**20],
               [2**20 + 1, 1], [1.0, 1.0], [True, True], [None, None], {"a": 1},
               [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7, 8], [-1, -1], [4, -1],
               [2**31, 1], [3, 3], [7, 7], [64, 64]]

#: Attribute values of each kind in graph.OPS, within the kind's type but of hostile meaning.
KIND_VALUES = {
    "int": [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 2**31, -(2**31)],
    "posint": [1, 2, 3, 4, 7, 8, 9, 16, 64, 2**31],
    "float": [0, 0.0, -1.0, 1.0, 2.0, 1e30, -1e30, 1e-45, 1e308, -1e308, 2**31, 10**400,
              -(10**400), 0.9999999],
    "bool": [True, False],
    "pair+": [[1, 1], [2, 2], [3, 1], [1, 3], [3, 3], [5, 5], [9, 9], [64, 64],
              [2**20, 2**20], [1, 2**20], [2**20, 1]],
    "pair0": [[0, 0], [1, 1], [2, 2], [0, 5], [3, 3], [64, 64], [2**20, 2**20]],
    "ints": [[], [1], [-1], [0], [4, -1], [-1, 4], [16, 4], [64], [2, 2, 16], [0, 1, 2],
             [0, 2, 1], [2, 1, 0], [1, 0], [0, 1, 2, 3], [0, 0, 1], [5, 0, 1], [-1, -2, -3],
             [2**31], [2**31, -1], [1, 1, 1, 1, 1, 1, 1, 1], [3, -1], [0, -1], [-2, 32]],
}


@dataclass
class _Node:
    """A node drawn for an edit, with the graph and node list it sits in."""
    m: object
    g: dict
    nodes: list
    i: int
    n: dict


def _draw_node(m):
    """(header, sections, _Node) of a random node of the graph."""
    h, secs = m.split()
    g = m.graph(h)
    nodes = g["nodes"]
    i = m.rng.randrange(len(nodes))
    return h, secs, _Node(m, g, nodes, i, nodes[i])


def _values_defined(g):
    vals = [s.get("name") for s in g.get("inputs", []) if isinstance(s, dict)]
    vals += [v for n in g["nodes"]
             if isinstance(n, dict) and isinstance(n.get("outputs"), list) for v in n["outputs"]]
    return vals


#: op -> (edit the node or the graph, which key, its new value from a _Node); drawn in this
#: order.
_WIRING = {
    "cycle-self": ("node", "inputs", lambda c: [c.n["outputs"][0]] + c.n["inputs"][1:]),
    "cycle-later": ("node", "inputs", lambda c: [
        c.nodes[c.m.rng.randrange(c.i, len(c.nodes))]["outputs"][0]] + c.n["inputs"][1:]),
    "undefined-input": ("node", "inputs", lambda c: ["never.made"] + c.n["inputs"][1:]),
    "output-is-input": ("node", "outputs", lambda c: [c.g["inputs"][0]["name"]]),
    "output-dup": ("node", "outputs", lambda c: [c.m.choice(_values_defined(c.g))]),
    "node-name-dup": ("node", "name",
                      lambda c: c.nodes[c.m.rng.randrange(len(c.nodes))]["name"]),
    "input-dup": ("node", "inputs", lambda c: c.n["inputs"] + c.n["inputs"][:1]),
    "graph-input-dup": ("graph", "inputs",
                        lambda c: c.g["inputs"] + [copy.deepcopy(c.g["inputs"][0])]),
    "output-unproduced": ("graph", "outputs", lambda c: c.g["outputs"] + [
        {"name": "never.made"}]),
    "output-twice": ("graph", "outputs", lambda c: c.g["outputs"] + [dict(c.g["outputs"][0])]),
    "outputs-empty": ("graph", "outputs", lambda c: []),
    "outputs-65": ("graph", "outputs", lambda c: [{"name": f"o{j}"} for j in range(65)]),
    "outputs-input": ("graph", "outputs", lambda c: [{"name": c.g["inputs"][0]["name"]}]),
    "two-outputs": ("node", "outputs", lambda c: c.n["outputs"] + [c.n["outputs"][0] + ".b"]),
    "no-outputs": ("node", "outputs", lambda c: []),
    "outputs-one-less": ("node", "outputs", lambda c: _one_output_less(c)),
    "input-empty-name": ("node", "inputs", lambda c: [""]),
}


@mutator("struct", 2.5)
def graph_wiring(m):
    """Cycles, values used before they exist, values defined twice, dangling names."""
    h, secs, c = _draw_node(m)
    op = m.choice(_WIRING)
    where, key, new = _WIRING[op]
    (c.n if where == "node" else c.g)[key] = new(c)
    m.note(f"graph: {op} at node {c.i} ({c.n.get('name')!r})")
    return m.pack(h, secs)


def _one_output_less(c):
    """A node with several outputs (split, unbind) names one output fewer than it computes."""
    many = [n for n in c.nodes if isinstance(n.get("outputs"), list) and len(n["outputs"]) > 1]
    if not many:
        return c.n["outputs"][:-1]
    node = c.m.choice(many)
    c.n = node
    return node["outputs"][:-1]


def _swap_adjacent(c):
    if len(c.nodes) < 2:
        raise Skip("swap-adjacent does not apply")
    j = min(c.i + 1, len(c.nodes) - 1)
    c.nodes[j - 1], c.nodes[j] = c.nodes[j], c.nodes[j - 1]
    return j - 1


def _swap_nodes(c):
    if len(c.nodes) < 2:
        raise Skip("swap does not apply")
    j = c.m.rng.randrange(len(c.nodes))
    c.nodes[c.i], c.nodes[j] = c.nodes[j], c.nodes[c.i]


def _many_inputs(c):
    n = copy.deepcopy(c.nodes[c.i])
    n["name"] += ".many"
    n["outputs"] = [n["outputs"][0] + ".many"]
    n["inputs"] = n["inputs"] * c.m.choice([2, 64, 65])
    c.nodes.append(n)


def _remove(c):
    del c.nodes[c.i]


#: Node-list edits; each returns the index of the node it names in the note, or None.
_NODE_LIST_EDITS = {
    "remove": _remove,
    "swap-adjacent": _swap_adjacent,
    "swap": _swap_nodes,
    "reverse": lambda c: c.nodes.reverse(),
    "shuffle": lambda c: c.m.rng.shuffle(c.nodes),
    "duplicate": lambda c: c.nodes.insert(c.i + 1, copy.deepcopy(c.nodes[c.i])),
    "move-first": lambda c: c.nodes.insert(0, c.nodes.pop(c.i)),
    "all-removed": lambda c: c.g.update(nodes=[]),
    "many-inputs": _many_inputs,
}


@mutator("struct", 2)
def graph_nodes(m):
    """Nodes removed, reordered, duplicated."""
    h, secs, c = _draw_node(m)
    op = m.choice(["remove", "remove", "swap-adjacent", "swap", "reverse", "shuffle",
                   "duplicate", "move-first", "all-removed", "many-inputs"])
    moved = _NODE_LIST_EDITS[op](c)
    m.note(f"graph nodes: {op} (node {c.i if moved is None else moved})")
    return m.pack(h, secs)


@mutator("struct", 1.5)
def graph_topo_same(m):
    """Another valid topological order of the nodes, and defaults spelled out or dropped:
    the same network."""
    h, secs = m.split()
    g = m.graph(h)
    defined = {s["name"] for s in g["inputs"]}
    left = list(g["nodes"])
    order = []
    while left:
        ready = [n for n in left if all(v in defined for v in n["inputs"])]
        n = m.choice(ready)
        left.remove(n)
        order.append(n)
        defined.update(n["outputs"])
    g["nodes"] = order
    for n in order:
        spec = OPS[n["op"]].attrs
        if m.rng.random() < 0.3:
            attrs = n.setdefault("attrs", {})
            for a, (kind, default) in spec.items():
                if a not in attrs and default is not None \
                        and not (isinstance(default, str) and default in spec):
                    attrs[a] = copy.deepcopy(default)
        elif m.rng.random() < 0.4 and isinstance(n.get("attrs"), dict):
            for a, v in list(n["attrs"].items()):
                if a in spec and v == spec[a][1]:
                    del n["attrs"][a]
        for key in ("params", "attrs"):
            if m.rng.random() < 0.3 and not n.get(key):
                if key in n:
                    del n[key]
                else:
                    n[key] = {}
    m.same = "all"
    m.note("graph: nodes in another topological order, default attributes spelled out or "
           "left out")
    return m.pack(h, secs)


#: op -> (key of the node, the value it is set to, drawn from a _Node).
_NODE_VALUES = {
    "op-unknown": ("op", lambda c: c.m.choice(["conv3d", "Linear", "", "relu ", "matmul",
                                               "x" * 300])),
    "op-type": ("op", lambda c: c.m.choice([None, 1, True, ["linear"], {"op": "linear"}, 1.5])),
    "op-other": ("op", lambda c: c.m.choice(sorted(OPS))),
    "attrs-type": ("attrs", lambda c: c.m.choice([[], None, "x", 1])),
    "params-type": ("params", lambda c: c.m.choice([[], None, "x", 1, {"weight": 1},
                                                    {"weight": None}])),
    "inputs-arity": ("inputs", lambda c: c.m.choice([
        [], c.n["inputs"] * 2, c.n["inputs"] * 65, c.n["inputs"] + [c.g["inputs"][0]["name"]]])),
    "inputs-type": ("inputs", lambda c: c.m.choice([None, "x", [1], [None], {"x": 1}])),
}


def _drop_one(m, n, key):
    if not n.get(key):
        raise Skip(f"no {key}")
    del n[key][m.choice(sorted(n[key]))]


def _node_edit(m, h, n, op, spec):
    """The edits of graph_ops that are not one value set; the op as the note tells it."""
    if op == "attr-unknown":
        n.setdefault("attrs", {})[m.choice(["alpha", "kernel", "stride", "foo", "dim",
                                            "groups", "axis"])] = 1
    elif op == "attr-value":
        names = sorted(spec.attrs) if spec else []
        if not names:
            raise Skip("op has no attributes")
        a = m.choice(names)
        n.setdefault("attrs", {})[a] = copy.deepcopy(m.choice(ATTR_VALUES))
        op = f"attr-value {a}={short(n['attrs'][a])}"
    elif op == "param-unknown":
        tensor = m.choice([t.get("name") for t in m.tensors(h)] + ["nope"])
        n.setdefault("params", {})[m.choice(["weight", "bias", "other", "mean", "gamma"])] = \
            tensor
    else:
        _drop_one(m, n, "attrs" if op == "attr-drop" else "params")
    return op


@mutator("struct", 3)
def graph_ops(m):
    """Unknown ops, attributes and params; attributes of the wrong type or range."""
    h, secs, c = _draw_node(m)
    n = c.n
    op = m.choice(["op-unknown", "op-type", "op-other", "attr-unknown", "attr-value",
                   "attr-value", "attr-value", "attr-drop", "attrs-type", "param-unknown",
                   "params-type", "param-drop", "inputs-arity", "inputs-type"])
    spec = OPS.get(n.get("op")) if isinstance(n.get("op"), str) else None
    if op in _NODE_VALUES:
        key, new = _NODE_VALUES[op]
        n[key] = new(c)
    else:
        op = _node_edit(m, h, n, op, spec)
    m.note(f"graph node {c.i} ({n.get('name')!r}): {op}")
    return m.pack(h, secs)


@mutator("struct", 5)
def graph_semantics(m):
    """Attribute values of the right type and range (so that the reader accepts them) but
    of hostile meaning: kernels larger than the input, dims out of range, reshapes that do
    not fit, huge paddings and strides, channel counts that do not split into groups."""
    h, secs = m.split()
    g = m.graph(h)
    cands = [n for n in g["nodes"] if isinstance(n.get("op"), str) and OPS.get(n["op"])
             and OPS[n["op"]].attrs]
    n = m.choice(cands)
    specs = OPS[n["op"]].attrs
    changed = []
    for _ in range(m.choice([1, 1, 2])):
        a = m.choice(sorted(specs))
        kind = specs[a][0]
        vals = kind[1] if isinstance(kind, tuple) else KIND_VALUES[kind]
        v = copy.deepcopy(m.choice(vals))
        if not isinstance(n.get("attrs"), dict):
            n["attrs"] = {}
        n["attrs"][a] = v
        changed.append(f"{a}={short(v)}")
    if m.rng.random() < 0.2:
        u = m.choice([x for x in g["nodes"] if x["op"] in (
            "relu", "relu6", "sigmoid", "tanh", "identity", "dropout", "gelu", "flatten",
            "leaky_relu")] or [n])
        u["op"] = m.choice(["softmax", "log_softmax", "flatten", "transpose", "permute",
                            "reshape", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
                            "local_response_norm", "cat"])
        u["attrs"] = {a: copy.deepcopy(m.choice(KIND_VALUES[k[0]] if isinstance(k[0], str)
                                                 else k[0][1]))
                      for a, k in OPS[u["op"]].attrs.items()
                      if k[1] is None or m.rng.random() < 0.5}
        changed.append(f"{u['name']} -> {u['op']} {short(u['attrs'])}")
    m.note(f"graph node {n['name']!r} ({n['op']}): {', '.join(changed)}")
    return m.pack(h, secs)


def _retarget(m, target, op, secs):
    """The tensor a param names reshaped, given another dtype or a longer last dimension,
    its section resized to match."""
    if op == "reshape-target":
        shape = target["shape"]
        numel = math.prod(shape)
        if target["encoding"] == "raw":
            target["shape"] = m.choice([[numel], [1, numel], [numel, 1], [1, 1, numel],
                                        list(reversed(shape))])
        else:
            rows, n_cols = target["rows"], target["cols"]
            target["shape"] = m.choice([[rows, n_cols], [rows, 1, n_cols],
                                        [rows, n_cols, 1, 1], [rows, 1, 1, n_cols]])
        return
    if op == "dtype-target":
        if target["encoding"] != "raw":
            raise Skip("not raw")
        target["dtype"] = m.choice(["int32", "float16", "uint8", "int64"])
        item = {"int32": 4, "float16": 2, "uint8": 1, "int64": 8}[target["dtype"]]
        i = target["section"]
        secs[i] = (secs[i] * 2)[:math.prod(target["shape"]) * item]
        return
    if target["encoding"] != "raw" or target["dtype"] != "float32" or not target["shape"]:
        raise Skip("not a raw float32 tensor")
    target["shape"][-1] += m.choice([1, 2, 3])
    i = target["section"]
    numel = math.prod(target["shape"])
    secs[i] = (secs[i] + bytes(4 * numel))[:numel * 4]


@mutator("struct", 2.5)
def graph_params(m):
    """Params naming tensors of the wrong rank, shape, dtype or encoding."""
    h, secs = m.split()
    g = m.graph(h)
    n = m.choice([n for n in g["nodes"] if isinstance(n.get("params"), dict) and n["params"]])
    role = m.choice(sorted(n["params"]))
    names = [t.get("name") for t in m.tensors(h)]
    op = m.choice(["other-tensor", "other-tensor", "dangling", "reshape-target",
                   "dtype-target", "shape-target"])
    target = next((t for t in m.tensors(h) if t.get("name") == n["params"][role]), None)
    if op == "other-tensor":
        n["params"][role] = m.choice(names)
    elif op == "dangling":
        n["params"][role] = m.choice(["nope", "", n["params"][role] + " "])
    elif target is None:
        raise Skip("param names no tensor")
    else:
        _retarget(m, target, op, secs)
    m.note(f"graph node {n.get('name')!r} param {role!r}: {op}")
    return m.pack(h, secs)


@dataclass
class _Input:
    """A graph input drawn for an edit, with its graph."""
    m: object
    g: dict
    spec: dict
    shape: list


def _one_dim(c):
    j = c.m.rng.randrange(len(c.shape))
    c.shape[j] = c.m.choice([0, -1, 2**31, 2**31 + 1, 1.0, True, "3", None, 1, 2**16])


def _fixed_batch(c):
    c.shape[0] = c.m.choice([1, 2, 3])


def _null_second_dim(c):
    if len(c.shape) < 2:
        raise Skip("rank 1")
    c.shape[1] = None


def _spatial(c, grow):
    last = c.shape[-1]
    if grow:
        c.shape[-1] = last + c.m.choice([1, 2, 5]) if is_int(last) else 3
    else:
        c.shape[-1] = max(1, last - c.m.choice([1, 2, 5])) if is_int(last) else 1


_INPUT_EDITS = {
    "dim": _one_dim,
    "rank0": lambda c: c.spec.update(shape=[]),
    "rank9": lambda c: c.spec.update(shape=[None] + [1] * 8),
    "null-dim1": _null_second_dim,
    "fixed-batch": _fixed_batch,
    "dtype": lambda c: c.spec.update(dtype=c.m.choice(["float16", "float64", "int32", None,
                                                       "", 1])),
    "name": lambda c: c.spec.update(name=c.m.choice(["", None, 1, "x" * 257, "never.used"])),
    "inputs-empty": lambda c: c.g.update(inputs=[]),
    "inputs-65": lambda c: c.g.update(inputs=c.g["inputs"] + [
        {"name": f"in{j}", "dtype": "float32", "shape": [None, 1]} for j in range(65)]),
    "extra-input": lambda c: c.g["inputs"].append(
        {"name": "unused", "dtype": "float32", "shape": [None, 4]}),
    "grow-spatial": lambda c: _spatial(c, True),
    "shrink-spatial": lambda c: _spatial(c, False),
}


@mutator("struct", 2)
def graph_io(m):
    """Graph input declarations: shapes, dtypes, names, counts."""
    h, secs = m.split()
    g = m.graph(h)
    spec = m.choice(g["inputs"])
    op = m.choice(["dim", "dim", "rank0", "rank9", "null-dim1", "fixed-batch", "dtype",
                   "name", "inputs-empty", "inputs-65", "extra-input", "grow-spatial",
                   "shrink-spatial"])
    _INPUT_EDITS[op](_Input(m, g, spec, spec["shape"]))
    m.note(f"graph input {spec.get('name')!r}: {op} -> {short(spec.get('shape'))}")
    return m.pack(h, secs)
