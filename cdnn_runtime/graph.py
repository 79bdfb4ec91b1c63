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
    if any(v < -1 for v in attrs["shape"]):
        raise _bad(where, f"reshape shape {attrs['shape']} has a size below -1")


def _check_permute(node, attrs, tensors, where):
    dims = attrs["dims"]
    if sorted(d + len(dims) if d < 0 else d for d in dims) != list(range(len(dims))):
        raise _bad(where, f"permute dims {dims} are not a permutation of 0..{len(dims) - 1}")


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
    _check_not_batch(node, attrs, tensors, where)


# ---- shape ops (version 3)

def _check_not_batch(node, attrs, tensors, where):
    """A shape op's `dim` never names the batch (dim 0)."""
    if attrs["dim"] == 0:
        raise _bad(where, f"{node['op']} along dim 0, the batch dimension")


def _check_squeeze(node, attrs, tensors, where):
    dims = attrs["dims"]
    if not dims or 0 in dims or len(set(dims)) != len(dims):
        raise _bad(where, f"squeeze dims {dims} must be one or more distinct dims, not 0 "
                          "(the batch dimension)")


def _check_expand(node, attrs, tensors, where):
    if any(v < 1 and v != -1 for v in attrs["shape"]):
        raise _bad(where, f"expand shape {attrs['shape']} has a size below 1 other than -1")


def _check_pad(node, attrs, tensors, where):
    pads = attrs["pads"]
    if not pads or len(pads) % 2 or min(pads) < 0:
        raise _bad(where, f"pads {pads} must be one or more (before, after) pairs of ints >= 0")


# ---- elementwise, activations, reductions (version 3)

def _check_ordered_binary(node, attrs, tensors, where):
    """sub and div: `reverse` puts param 'other' first, so it needs one."""
    _check_binary(node, attrs, tensors, where)
    if attrs["reverse"] and "other" not in node["params"]:
        raise _bad(where, f"{node['op']} with reverse needs param 'other'")


def _check_reduction(node, attrs, tensors, where):
    """A reduction names one or more distinct dims, counted from 0, never the batch (0)."""
    dims, op = attrs["dims"], node["op"]
    if not dims:
        raise _bad(where, f"{op} over no dims")
    if 0 in dims:
        raise _bad(where, f"{op} over dim 0, the batch dimension")
    if min(dims) < 0 or len(set(dims)) != len(dims):
        raise _bad(where, f"{op} dims {dims} must be distinct and counted from 0 (no "
                          "negative dims)")


_UNARY = OpSpec(since=3)
_BINARY = OpSpec(inputs=(1, 2), params={"other": False}, since=3, check=_check_binary)
_ORDERED_BINARY = OpSpec(inputs=(1, 2), params={"other": False},
                         attrs={"reverse": ("bool", False)}, since=3,
                         check=_check_ordered_binary)
_REDUCTION = OpSpec(attrs={"dims": ("ints", None), "keepdim": ("bool", False)}, since=3,
                    check=_check_reduction)


# ---- normalisation, resizing, pooling (version 3)

def _check_layer_norm(node, attrs, tensors, where):
    """normalized_shape: the trailing dims normalised (never the batch), which shape the
    optional weight and bias."""
    shape = attrs["normalized_shape"]
    if not 1 <= len(shape) < MAX_RANK or min(shape) < 1:
        raise _bad(where, f"layer_norm normalized_shape {shape} must be 1 to {MAX_RANK - 1} "
                          "sizes >= 1")
    for role, name in sorted(node["params"].items()):
        if tensors[name]["shape"] != shape:
            raise _bad(where, f"layer_norm {role} shape {tensors[name]['shape']} differs from "
                              f"normalized_shape {shape}")


def _check_group_norm(node, attrs, tensors, where):
    shapes = [tensors[name]["shape"] for _, name in sorted(node["params"].items())]
    if any(len(s) != 1 for s in shapes) or len({tuple(s) for s in shapes}) > 1:
        raise _bad(where, f"group_norm weight and bias must be 1-D of one size, got {shapes}")
    if shapes and shapes[0][0] % attrs["num_groups"]:
        raise _bad(where, f"{shapes[0][0]} channels do not split into {attrs['num_groups']} "
                          "groups")


def _check_interpolate2d(node, attrs, tensors, where):
    if attrs["align_corners"] and attrs["mode"] != "bilinear":
        raise _bad(where, f"align_corners applies to mode bilinear only, not {attrs['mode']!r}")
    if attrs["scale_h"] < 0 or attrs["scale_w"] < 0:
        raise _bad(where, f"scales {attrs['scale_h']}, {attrs['scale_w']} must be >= 0 "
                          "(0: from the sizes)")


def _check_pool1d(node, attrs, tensors, where):
    if not 0 <= 2 * attrs["padding"] <= attrs["kernel_size"]:
        raise _bad(where, f"padding {attrs['padding']} must be from 0 to half the kernel size "
                          f"{attrs['kernel_size']}")


# ---- convolutions (version 3)

def _check_conv1d(node, attrs, tensors, where):
    """conv1d: bias per output, output channels in whole groups, stride and dilation within
    the pairs' bound, each side's padding within the dilated kernel's reach."""
    _check_bias(node, attrs, tensors, where)
    cout, _, k = tensors[node["params"]["weight"]]["shape"]
    if max(attrs["stride"], attrs["dilation"]) > 2**20:
        raise _bad(where, f"stride {attrs['stride']} or dilation {attrs['dilation']} above "
                          f"{2**20}")
    reach = attrs["dilation"] * (k - 1)
    if max(attrs["padding"]) > reach:
        raise _bad(where, f"padding {attrs['padding']} exceeds the dilated kernel's reach "
                          f"{reach} (outputs would see only padding)")
    if cout % attrs["groups"]:
        raise _bad(where, f"{cout} output channels do not split into {attrs['groups']} groups")


def _check_conv_transpose2d(node, attrs, tensors, where):
    """conv_transpose2d: weight [Cin, Cout/groups, kh, kw]; input channels in whole groups,
    bias per output channel, output_padding below the stride or the dilation (PyTorch's
    rule: more would add outputs that no input reaches)."""
    p = node["params"]
    cin, cout_g = tensors[p["weight"]]["shape"][:2]
    if cin % attrs["groups"]:
        raise _bad(where, f"{cin} input channels do not split into {attrs['groups']} groups")
    if "bias" in p and tensors[p["bias"]]["shape"] != [cout_g * attrs["groups"]]:
        raise _bad(where, f"bias shape {tensors[p['bias']]['shape']} does not match "
                          f"{cout_g * attrs['groups']} outputs")
    if any(op >= max(s, d) for op, s, d in zip(attrs["output_padding"], attrs["stride"],
                                                attrs["dilation"])):
        raise _bad(where, f"output_padding {attrs['output_padding']} is not below the stride "
                          f"{attrs['stride']} or the dilation {attrs['dilation']}")


# ---- attention (version 3)

def _check_attention(node, attrs, tensors, where):
    """attention: the additive mask is input 4 or param 'mask', not both; a scale above 0."""
    if len(node["inputs"]) == 4 and "mask" in node["params"]:
        raise _bad(where, "attention takes a mask as input 4 or as param 'mask', not both")
    if not attrs["scale"] > 0:
        raise _bad(where, f"attention scale {attrs['scale']} is not above 0")


def _check_masked_fill(node, attrs, tensors, where):
    """masked_fill: one fill value."""
    shape = tensors[node["params"]["value"]]["shape"]
    if shape != [1]:
        raise _bad(where, f"masked_fill value of shape {shape} is not [1]")


# ---- constants over the batch (version 3)
def _check_constant(node, attrs, tensors, where):
    """constant: a value whose dim 0 (the batch) is 1, repeated over the reference's batch."""
    shape = tensors[node["params"]["value"]]["shape"]
    if not shape or shape[0] != 1:
        raise _bad(where, f"constant value of shape {shape} does not have 1 in dim 0")


# ---- recurrent layers (version 3)

#: Recurrent op -> gates per hidden unit (rows of w_ih and w_hh per hidden unit).
RECURRENT_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
_DIRECTION = ("w_ih", "w_hh", "b_ih", "b_hh")


def _check_recurrent(node, attrs, tensors, where):
    """lstm, gru, rnn: the LSTM's initial states h0 and c0 together; w_ih [G*H, in], w_hh
    [G*H, H], b_ih and b_hh [G*H] (G gates, H hidden_size); the `_reverse` params exactly
    when bidirectional, the same roles as the forward ones, w_ih of the same width."""
    op, p, hidden = node["op"], node["params"], attrs["hidden_size"]
    if op == "lstm" and len(node["inputs"]) == 2:
        raise _bad(where, "lstm takes x alone or x, h0 and c0 (both initial states)")
    forward = sorted(r for r in p if not r.endswith("_reverse"))
    reverse = sorted(r[:-len("_reverse")] for r in p if r.endswith("_reverse"))
    if not attrs["bidirectional"] and reverse:
        raise _bad(where, f"{op} has reverse params {reverse} but is not bidirectional")
    if attrs["bidirectional"] and reverse != forward:
        raise _bad(where, f"bidirectional {op}'s reverse params {reverse} differ from its "
                          f"forward ones {forward}")
    rows = RECURRENT_GATES[op] * hidden
    width = tensors[p["w_ih"]]["shape"][1]
    for suffix in ("", "_reverse") if attrs["bidirectional"] else ("",):
        want = {"w_ih": [rows, width], "w_hh": [rows, hidden], "b_ih": [rows], "b_hh": [rows]}
        for role in _DIRECTION:
            shape = tensors[p[role + suffix]]["shape"] if role + suffix in p else want[role]
            if shape != want[role]:
                gates = RECURRENT_GATES[op]
                raise _bad(where, f"{op} {role}{suffix} of shape {shape} is not {want[role]} "
                                  f"(hidden_size {hidden}, {gates} gate{'s' * (gates > 1)})")


_RECURRENT_PARAMS = {"w_ih": True, "w_hh": True, "b_ih": False, "b_hh": False,
                     **{f"{role}_reverse": False for role in _DIRECTION}}
_RECURRENT_WEIGHTS = {f"{role}{suffix}": 2 for suffix in ("", "_reverse")
                      for role in ("w_ih", "w_hh")}
_RECURRENT_ATTRS = {"hidden_size": ("posint", None), "bidirectional": ("bool", False)}


# ---- free sequence dims (version 3)
def _check_unflatten(node, attrs, tensors, where):
    """unflatten: one dim (never the batch) into sizes."""
    _check_not_batch(node, attrs, tensors, where)
    if len(attrs["sizes"]) >= MAX_RANK:
        raise _bad(where, f"unflatten into {len(attrs['sizes'])} dims (at most "
                          f"{MAX_RANK - 1})")


_POOL = {"kernel_size": ("pair+", None), "stride": ("pair+", "kernel_size"),
         "padding": ("pair0", [0, 0]), "ceil_mode": ("bool", False)}
_LAYER = {"weight": True, "bias": False}
# 1-D pooling: ints; the stride is always written (no default copying an int attribute)
_POOL1D = {"kernel_size": ("posint", None), "stride": ("posint", None), "padding": ("int", 0),
           "ceil_mode": ("bool", False)}

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
    "permute": OpSpec(attrs={"dims": ("ints", None)}, check=_check_permute),
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
    # ---- shape ops (version 3)
    "unsqueeze": OpSpec(attrs={"dim": ("int", None)}, since=3, check=_check_not_batch),
    "squeeze": OpSpec(attrs={"dims": ("ints", None)}, since=3, check=_check_squeeze),
    "expand": OpSpec(attrs={"shape": ("ints", None)}, since=3, check=_check_expand),
    "slice": OpSpec(attrs={"dim": ("int", None), "start": ("int", 0), "end": ("int", None),
                           "step": ("posint", 1)}, since=3, check=_check_not_batch),
    "select": OpSpec(attrs={"dim": ("int", None), "index": ("int", None)}, since=3,
                     check=_check_not_batch),
    "unbind": OpSpec(attrs={"dim": ("int", None)}, outputs=(1, MAX_NODE_OUTPUTS), since=3,
                     check=_check_not_batch),
    "pad": OpSpec(attrs={"pads": ("ints", None),
                         "mode": (("enum", ("constant", "reflect", "replicate")), "constant"),
                         "value": ("float", 0.0)}, since=3, check=_check_pad),
    "pixel_shuffle": OpSpec(attrs={"upscale_factor": ("posint", None)}, since=3),
    "pixel_unshuffle": OpSpec(attrs={"downscale_factor": ("posint", None)}, since=3),
    "channel_shuffle": OpSpec(attrs={"groups": ("posint", None)}, since=3),
    # ---- elementwise, activations, reductions (version 3)
    "sub": _ORDERED_BINARY,
    "div": _ORDERED_BINARY,
    "minimum": _BINARY,
    "maximum": _BINARY,
    **{op: _UNARY for op in ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "erf", "silu",
                             "hardswish", "hardsigmoid", "mish")},
    "pow": OpSpec(attrs={"exponent": ("float", None)}, since=3),
    "clamp": OpSpec(attrs={"min": ("float", None), "max": ("float", None)}, since=3),
    "clamp_min": OpSpec(attrs={"min": ("float", None)}, since=3),
    "clamp_max": OpSpec(attrs={"max": ("float", None)}, since=3),
    "elu": OpSpec(attrs={"alpha": ("float", 1.0), "scale": ("float", 1.0),
                         "input_scale": ("float", 1.0)}, since=3),
    "softplus": OpSpec(attrs={"beta": ("float", 1.0), "threshold": ("float", 20.0)}, since=3),
    **{op: _REDUCTION for op in ("mean", "sum", "amax", "amin")},
    # ---- normalisation, resizing, pooling (version 3)
    "layer_norm": OpSpec(params={"weight": False, "bias": False},
                         attrs={"normalized_shape": ("ints", None), "eps": ("float", 1e-5)},
                         since=3, check=_check_layer_norm),
    "group_norm": OpSpec(params={"weight": False, "bias": False},
                         attrs={"num_groups": ("posint", None), "eps": ("float", 1e-5)},
                         since=3, check=_check_group_norm),
    "interpolate2d": OpSpec(attrs={"size": ("pair+", None),
                                   "mode": (("enum", ("nearest", "nearest-exact", "bilinear")),
                                            "nearest"),
                                   "align_corners": ("bool", False), "scale_h": ("float", 0.0),
                                   "scale_w": ("float", 0.0)},
                            since=3, check=_check_interpolate2d),
    "max_pool1d": OpSpec(attrs={**_POOL1D, "dilation": ("posint", 1)}, since=3,
                         check=_check_pool1d),
    "avg_pool1d": OpSpec(attrs={**_POOL1D, "count_include_pad": ("bool", True)}, since=3,
                         check=_check_pool1d),
    "adaptive_avg_pool1d": OpSpec(attrs={"output_size": ("posint", None)}, since=3),
    "adaptive_max_pool1d": OpSpec(attrs={"output_size": ("posint", None)}, since=3),
    "adaptive_max_pool2d": OpSpec(attrs={"output_size": ("pair+", None)}, since=3),
    # ---- convolutions (version 3)
    "conv1d": OpSpec(params=_LAYER, weights={"weight": 3}, since=3, check=_check_conv1d,
                     attrs={"stride": ("posint", 1), "padding": ("pair0", [0, 0]),
                            "dilation": ("posint", 1), "groups": ("posint", 1)}),
    "conv_transpose2d": OpSpec(params=_LAYER, weights={"weight": 4}, since=3,
                               check=_check_conv_transpose2d,
                               attrs={"stride": ("pair+", [1, 1]), "padding": ("pair0", [0, 0]),
                                      "output_padding": ("pair0", [0, 0]),
                                      "dilation": ("pair+", [1, 1]), "groups": ("posint", 1)}),
    # ---- token inputs and embeddings (version 3)
    "embedding": OpSpec(params={"weight": True}, weights={"weight": 2}, since=3),
    # ---- attention (version 3)
    "matmul": _ORDERED_BINARY,
    "attention": OpSpec(inputs=(3, 4), params={"mask": False},
                        attrs={"scale": ("float", None), "causal": ("bool", False)}, since=3,
                        check=_check_attention),
    "masked_fill": OpSpec(params={"mask": True, "value": True}, since=3,
                          check=_check_masked_fill),
    # ---- constants over the batch (version 3)
    "constant": OpSpec(params={"value": True}, since=3, check=_check_constant),
    # ---- free sequence dims (version 3)
    "arange": OpSpec(attrs={"dim": ("int", None)}, since=3, check=_check_not_batch),
    "unflatten": OpSpec(attrs={"dim": ("int", None), "sizes": ("sizes", None)}, since=3,
                        check=_check_unflatten),
    # ---- recurrent layers (version 3): one layer of nn.LSTM, nn.GRU, nn.RNN, batch first
    "lstm": OpSpec(inputs=(1, 3), params=_RECURRENT_PARAMS, attrs=_RECURRENT_ATTRS,
                   outputs=(3, 3), since=3, weights=_RECURRENT_WEIGHTS, check=_check_recurrent),
    "gru": OpSpec(inputs=(1, 2), params=_RECURRENT_PARAMS, attrs=_RECURRENT_ATTRS,
                  outputs=(2, 2), since=3, weights=_RECURRENT_WEIGHTS, check=_check_recurrent),
    "rnn": OpSpec(inputs=(1, 2), params=_RECURRENT_PARAMS,
                  attrs={**_RECURRENT_ATTRS,
                         "nonlinearity": (("enum", ("tanh", "relu")), "tanh")},
                  outputs=(2, 2), since=3, weights=_RECURRENT_WEIGHTS, check=_check_recurrent),
}


def graph_version(graph):
    """The lowest format version whose vocabulary holds every op of `graph` (a writer stamps
    its file with it, so that files of older ops stay readable by older readers)."""
    ops = [n["op"] for n in (graph or {}).get("nodes", ())]
    inputs = [i for i in (graph or {}).get("inputs", ()) if isinstance(i, dict)]
    dtypes = [i.get("dtype") for i in inputs]
    return max([BASE_VERSION] + [OPS[op].since for op in ops if op in OPS]
               + [VALUE_DTYPES[d] for d in dtypes if isinstance(d, str) and d in VALUE_DTYPES]
               + [FREE_DIMS_SINCE for i in inputs if "free" in i])


#: Graph inputs with free dims besides the batch (key "free") since this format version.
FREE_DIMS_SINCE = 3


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _free_dims(spec, name, w, version):
    """The input's declared free dims (key "free", version 3): a list of {"dim", "name", "max"},
    each dim from 1 (never the batch) to its rank - 1, once, with a maximum from the traced size
    (shape[dim]) to 2^31."""
    free = spec["free"]
    if version < FREE_DIMS_SINCE:
        raise CdnnFormatError(f"{w} ({name!r}): free dims need format version "
                              f"{FREE_DIMS_SINCE}; the file is version {version}")
    shape = spec["shape"]
    if not isinstance(free, list) or not 1 <= len(free) < len(shape):
        raise CdnnFormatError(f"{w} ({name!r}): free must be a list of 1 to {len(shape) - 1} "
                              "dims")
    seen = set()
    for k, f in enumerate(free):
        fw = f"{w} ({name!r}) free dim {k}"
        if not isinstance(f, dict) or set(f) != {"dim", "name", "max"}:
            raise CdnnFormatError(f"{fw}: must be an object with exactly dim, name and max")
        d = f["dim"]
        if not _is_int(d) or not 1 <= d < len(shape) or d in seen:
            raise CdnnFormatError(f"{fw}: dim {d!r:.20} must be a dim of the input from 1 "
                                  f"(dim 0 is the batch) to {len(shape) - 1}, named once")
        seen.add(d)
        _name(f["name"], fw)
        if not _is_int(f["max"]) or not shape[d] <= f["max"] <= 2**31:
            raise CdnnFormatError(f"{fw}: max {f['max']!r:.20} must be an integer from the "
                                  f"traced size {shape[d]} to 2^31")
    return [dict(f) for f in free]


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
        check.keys(spec, w, required={"name", "dtype", "shape"}, optional={"free"})
        name = _name(spec["name"], w)
        dtype = spec["dtype"]
        if not isinstance(dtype, str) or dtype not in VALUE_DTYPES:
            raise CdnnFormatError(f"{w} ({name!r}): dtype must be one of "
                                  f"{', '.join(VALUE_DTYPES)}")
        if VALUE_DTYPES[dtype] > version:
            raise CdnnFormatError(f"{w} ({name!r}): dtype {dtype} needs format version "
                                  f"{VALUE_DTYPES[dtype]}; the file is version {version}")
        shape = spec["shape"]
        if not (isinstance(shape, list) and 1 <= len(shape) <= MAX_RANK):
            raise CdnnFormatError(f"{w} ({name!r}): shape must be a list of 1 to {MAX_RANK} dims")
        for j, d in enumerate(shape):
            ok = (d is None and j == 0) or (isinstance(d, int) and not isinstance(d, bool)
                                            and 1 <= d <= 2**31)
            if not ok:
                raise CdnnFormatError(f"{w} ({name!r}): dim {j} must be a positive integer"
                                      " (only dim 0 may be null, the free batch dimension)")
        if "free" in spec:
            _free_dims(spec, name, w, version)
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
