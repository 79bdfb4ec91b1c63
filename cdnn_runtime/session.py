"""InferenceSession: run a .cdnn graph from its CSR indices and codebooks, never densifying.

The API follows onnxruntime: `InferenceSession(path_or_bytes)`, `run(output_names,
input_feed)`, `get_inputs()`, `get_outputs()`; plus `session(x)` for one input and one output.
"""

import threading
from dataclasses import dataclass

import numba
import numpy as np

from .constants import DEFAULT_MAX_DECODED_BYTES
from .errors import CdnnError, CdnnFormatError, CdnnMemoryError
from .kernels import dense_ops, prepare_conv, prepare_linear
from .ops import build_op
from .reader import read

#: Numba's default threading layer (workqueue) must not be entered by two threads at once, so
#: `run` holds this lock while kernels execute: sessions are safe to share between threads,
#: and calls from several threads are served one at a time.
_RUN_LOCK = threading.Lock()

_FUSABLE = {"relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh",
            "leaky_relu": "leaky_relu"}


@dataclass(frozen=True)
class NodeArg:
    """An input or output of the model, as onnxruntime describes one."""
    name: str
    shape: list  # None for the free batch dimension (or unknown)
    type: str = "tensor(float)"


def _narrow_cols(col_idx, ncols):
    return col_idx.astype(np.uint16) if ncols <= 65536 else col_idx.astype(np.int32)


class _Step:
    __slots__ = ("node", "fn", "inputs", "output")

    def __init__(self, node, fn, inputs, output):
        self.node, self.fn, self.inputs, self.output = node, fn, inputs, output


class InferenceSession:
    """A validated, decoded, prepared .cdnn model ready to run many times."""

    def __init__(self, path_or_bytes, sess_options=None, *, num_threads=None,
                 max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES):
        if isinstance(path_or_bytes, InferenceSession):
            raise TypeError("InferenceSession takes a path or bytes")
        if num_threads is None and sess_options is not None:
            num_threads = getattr(sess_options, "intra_op_num_threads", None) or None
        if num_threads is not None:
            if not isinstance(num_threads, int) or num_threads < 1:
                raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
            num_threads = min(num_threads, numba.config.NUMBA_NUM_THREADS)
        self.num_threads = num_threads
        self.file = read(path_or_bytes, max_decoded_bytes=max_decoded_bytes)
        if self.file.graph is None:
            raise CdnnFormatError("the file holds tensors but no graph, so there is nothing to "
                                  "run (cdnn_runtime.read gives access to its tensors)")
        g = self.file.graph
        self._inputs = [NodeArg(i["name"], list(i["shape"])) for i in g["inputs"]]
        self._outputs = [NodeArg(o["name"], [None]) for o in g["outputs"]]
        self.metadata = self.file.metadata
        self._layers = {}
        self._steps = self._plan(g)
        self._last_use = {v: i for i, step in enumerate(self._steps) for v in step.inputs}
        self._check_shapes()
        self.graph = g
        self.file = None  # everything is decoded: the file's bytes are not kept

    # ---- preparation -----------------------------------------------------------------------
    def _weight(self, name):
        """A weight in runtime layout: ('sparse', csr arrays) or ('raw', array)."""
        t = self.file.tensor(name)
        if t.encoding == "raw":
            return self.file.raw(name)
        return self.file.sparse(name, narrow=True)

    def _raw(self, name):
        return np.ascontiguousarray(self.file.raw(name), dtype=np.float32)

    def _plan(self, g):
        nodes = g["nodes"]
        uses = {}
        for n in nodes:
            for v in n["inputs"]:
                uses[v] = uses.get(v, 0) + 1
        outputs = {o["name"] for o in g["outputs"]}
        by_input = {}
        for i, n in enumerate(nodes):
            if len(n["inputs"]) == 1:
                by_input.setdefault(n["inputs"][0], []).append(i)
        fused = set()
        steps = []
        for i, n in enumerate(nodes):
            if i in fused:
                continue
            out = n["outputs"][0]
            activation = "none"
            if n["op"] in ("linear", "conv2d") and uses.get(out) == 1 and out not in outputs:
                nxt = by_input.get(out, [])
                if len(nxt) == 1 and nodes[nxt[0]]["op"] in _FUSABLE:
                    act_node = nodes[nxt[0]]
                    activation = _FUSABLE[act_node["op"]]
                    if act_node["op"] == "leaky_relu":
                        activation = ("leaky_relu", act_node["attrs"]["negative_slope"])
                    fused.add(nxt[0])
                    out = act_node["outputs"][0]
            try:
                fn = self._build(n, activation)
            except CdnnError:
                raise
            except (ValueError, TypeError) as exc:
                raise CdnnFormatError(f"graph node {n['name']!r} ({n['op']}): {exc}") from None
            steps.append(_Step(n, fn, list(n["inputs"]), out))
        return steps

    def _build(self, n, activation):
        op, a, p = n["op"], n["attrs"], n["params"]
        if op in ("linear", "conv2d"):
            w = self._weight(p["weight"])
            bias = self._raw(p["bias"]) if "bias" in p else None
            shape = self.file.tensor(p["weight"]).shape
            if isinstance(w, np.ndarray):  # a raw dense weight: small layers stored as is
                w = np.ascontiguousarray(w, dtype=np.float32)
                if op == "linear":
                    return lambda x: dense_ops.linear_dense(x, w, bias, activation)
                return self._dense_conv(w, bias, a, activation)
            cols = w.col_idx
            if op == "linear":
                layer = prepare_linear(w.row_ptr, cols, w.codes, w.codebook, bias,
                                       in_features=w.cols)
            else:
                layer = prepare_conv(w.row_ptr, cols, w.codes, w.codebook, bias,
                                     in_channels=shape[1] * a["groups"],
                                     kernel_size=tuple(shape[2:]), stride=tuple(a["stride"]),
                                     padding=tuple(a["padding"]),
                                     dilation=tuple(a["dilation"]), groups=a["groups"])
            self._layers[n["name"]] = layer
            return lambda x: layer(x, activation)
        return build_op(op, a, {k: self._raw(v) for k, v in p.items()})

    def _dense_conv(self, w, bias, a, activation):
        """A conv with a raw weight runs through the sparse kernel over all its entries."""
        rows = w.shape[0]
        flat = w.reshape(rows, -1)
        nz = flat != 0
        row_ptr = np.zeros(rows + 1, np.int64)
        np.cumsum(nz.sum(1), out=row_ptr[1:])
        r, c = np.nonzero(nz)
        codebook, codes = np.unique(flat[nz], return_inverse=True)
        if codebook.size > 256:  # more distinct values than a codebook holds
            raise CdnnFormatError("a raw conv2d weight with more than 256 distinct values is "
                                  "not supported in format v1; store it as sparse_codebook")
        layer = prepare_conv(row_ptr, _narrow_cols(c, flat.shape[1]), codes.astype(np.uint8),
                             codebook.astype(np.float32) if codebook.size else np.zeros(1, np.float32),
                             bias, in_channels=w.shape[1] * a["groups"],
                             kernel_size=tuple(w.shape[2:]), stride=tuple(a["stride"]),
                             padding=tuple(a["padding"]), dilation=tuple(a["dilation"]),
                             groups=a["groups"])
        return lambda x: layer(x, activation)

    def _check_shapes(self):
        """Run the graph once on an empty batch so that every shape mismatch shows at load."""
        feed = {}
        for i in self._inputs:
            feed[i.name] = np.zeros([0] + [d for d in i.shape[1:]], np.float32) \
                if i.shape[0] is None else None
        if any(v is None for v in feed.values()):
            return  # fixed batch: checked on first run
        try:
            self._execute(feed, [o.name for o in self._outputs])
        except ValueError as exc:
            raise CdnnFormatError(f"the graph does not fit its declared input shapes: {exc}") \
                from None

    # ---- running ---------------------------------------------------------------------------
    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def get_modelmeta(self):
        return dict(self.metadata)

    def _execute(self, feed, wanted):
        env = dict(feed)
        last_use = self._last_use
        keep = set(wanted)
        for i, s in enumerate(self._steps):
            args = [env[v] for v in s.inputs]
            try:
                env[s.output] = s.fn(*args)
            except CdnnError:
                raise
            except (ValueError, TypeError, IndexError) as exc:
                raise ValueError(f"node {s.node['name']!r} ({s.node['op']}): {exc}") from None
            for v in s.inputs:
                if last_use.get(v) == i and v not in keep:
                    env.pop(v, None)
        return [env[name] for name in wanted]

    def run(self, output_names, input_feed, run_options=None):
        """Outputs named in `output_names` (None: all) for the float32 arrays in `input_feed`."""
        if not isinstance(input_feed, dict):
            raise ValueError("input_feed must be a dict mapping input names to arrays")
        expected = {i.name: i for i in self._inputs}
        unknown = sorted(set(input_feed) - set(expected))
        if unknown:
            raise ValueError(f"unknown input {unknown[0]!r}; the model's inputs are "
                             f"{', '.join(expected)}")
        feed = {}
        batch = None
        for name, spec in expected.items():
            if name not in input_feed:
                raise ValueError(f"missing input {name!r} (shape {self._shape_text(spec)}, "
                                 "float32)")
            x = input_feed[name]
            if not isinstance(x, np.ndarray):
                raise ValueError(f"input {name!r} must be a numpy array, got "
                                 f"{type(x).__name__}")
            if x.dtype != np.float32:
                raise ValueError(f"input {name!r} must be float32, got {x.dtype}")
            ok = x.ndim == len(spec.shape) and all(
                d is None or d == s for d, s in zip(spec.shape, x.shape))
            if not ok:
                raise ValueError(f"input {name!r} has shape {list(x.shape)}, expected "
                                 f"{self._shape_text(spec)}")
            if batch is not None and spec.shape[0] is None and x.shape[0] != batch:
                raise ValueError(f"inputs disagree on the batch size ({batch} and "
                                 f"{x.shape[0]})")
            batch = x.shape[0] if spec.shape[0] is None else batch
            feed[name] = np.ascontiguousarray(x)
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        valid = {o.name for o in self._outputs}
        for n in names:
            if n not in valid:
                raise ValueError(f"unknown output {n!r}; the model's outputs are "
                                 f"{', '.join(sorted(valid))}")
        with _RUN_LOCK:
            if self.num_threads is not None:
                numba.set_num_threads(self.num_threads)
            try:
                outs = self._execute(feed, names)
            except MemoryError:
                raise CdnnMemoryError(f"not enough memory to run batch {batch}; try a smaller "
                                      "batch") from None
            finally:
                if self.num_threads is not None:
                    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        return [np.asarray(o) for o in outs]

    @staticmethod
    def _shape_text(spec):
        return "[" + ", ".join("N" if d is None else str(d) for d in spec.shape) + "]"

    def __call__(self, x):
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise ValueError("session(x) is for models with one input and one output; use "
                             "run(output_names, input_feed)")
        return self.run(None, {self._inputs[0].name: x})[0]


def load(path_or_bytes, **kwargs):
    """Same as InferenceSession(path_or_bytes, **kwargs)."""
    return InferenceSession(path_or_bytes, **kwargs)
