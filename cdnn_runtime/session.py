"""InferenceSession: run a .cdnn graph from its CSR indices and codebooks, never densifying.

The API follows onnxruntime: `InferenceSession(path_or_bytes)`, `run(output_names,
input_feed)`, `get_inputs()`, `get_outputs()`; plus `session(x)` for one input and one output.
"""

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass

import numba
import numpy as np

from ._jit import first_use
from .constants import DEFAULT_MAX_DECODED_BYTES, MAX_CODEBOOK_SIZE, MAX_UINT16_COLUMNS
from .errors import CdnnArgumentError, CdnnError, CdnnFormatError, CdnnMemoryError
from .graph import OPS as GRAPH_OPS
from .kernels import ACT_NONE, parse_activation, prepare_conv, prepare_linear
from .kernels.dense_linear import linear_dense
from .kernels.elementwise import activation, add
from .kernels.shape import flatten
from .kernels.sparse_conv import prepare_conv1d
from .kernels.sparse_conv_transpose import prepare_conv_transpose
from .kernels.sparse_linear import LinearChain, SparseLinear
from .ops import build_op
from .reader import read
from .timing import summarize

#: Numba's default threading layer (workqueue) must not be entered by two threads at once, so
#: `run` holds this lock while kernels execute: sessions are safe to share between threads,
#: and calls from several threads are served one at a time.
_RUN_LOCK = threading.Lock()

#: Ops computed by numpy's matmul, whose BLAS runs on its own thread pool.
_BLAS_OPS = frozenset({"matmul", "attention"})
_BLAS = []  # the threadpoolctl controller, found once


def _blas_on_one_thread():
    """A context that keeps numpy's BLAS on one thread: its pool's threads spin after each
    call and starve numba's threads, which made a GPT three times slower (38.5 ms against
    12.0 at batch 1 with 2 cores)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")

#: A graph input's dtype -> its type as onnxruntime's NodeArg names it.
_TYPE_NAMES = {"float32": "tensor(float)", "int64": "tensor(int64)", "int32": "tensor(int32)"}

#: What a pickled session carries: the file's bytes, or the path it was read from.
SHIP_MODES = ("bytes", "path")

#: Most input elements of the zeros a fixed-batch model runs on at load (64 MiB of float32).
_MAX_CHECK_ELEMENTS = 1 << 24

#: Activation ops that fuse into the layer (an op of _LAYER_BUILDERS) before them: op -> the
#: fused activation's spec (see kernels.parse_activation) from the node's attributes.
_FUSABLE = {
    "relu": lambda attrs: "relu",
    "relu6": lambda attrs: "relu6",
    "sigmoid": lambda attrs: "sigmoid",
    "tanh": lambda attrs: "tanh",
    "leaky_relu": lambda attrs: ("leaky_relu", attrs["negative_slope"]),
}


@dataclass(frozen=True)
class NodeArg:
    """An input or output of the model, as onnxruntime describes one."""
    name: str
    shape: list  # None for the free batch dimension (or unknown), a name for a free dim
    type: str = "tensor(float)"


class _Step:
    """One call of the plan: `fn` maps the values named `inputs` to the value `output`.
    `nodes` lists the graph nodes it computes (an activation fused into its layer, a chain of
    linear layers); `layer` and `activation` are set for a sparse linear layer, which chains
    with its neighbours."""
    __slots__ = ("node", "fn", "inputs", "output", "nodes", "layer", "activation",
                 "in_slots", "out_slot", "free", "extra_outputs", "extra_slots")

    def __init__(self, node, fn, inputs, output, nodes=None, layer=None, activation=None):
        self.node, self.fn, self.inputs, self.output = node, fn, inputs, output
        self.nodes = nodes if nodes is not None else [node]
        self.layer, self.activation = layer, activation
        self.in_slots, self.out_slot, self.free = (), 0, ()
        # a node with several outputs (format v3): `fn` returns a sequence whose first value
        # goes to `output` and the rest to these
        self.extra_outputs = tuple(node["outputs"][1:]) if node is not None else ()
        self.extra_slots = ()

    @property
    def name(self):
        return "+".join(n["name"] for n in self.nodes)

    @property
    def op(self):
        return "+".join(n["op"] for n in self.nodes)


class InferenceSession:
    """A validated, decoded, prepared .cdnn model ready to run many times.

    A session pickles as its file and options, never its compiled state, and is rebuilt where
    it is unpickled (a worker process, a cluster node). `ship="bytes"` (the default) keeps the
    file's bytes in memory to send them (the file's size: small); `ship="path"`, for a session
    from a path, sends only the path, which the receiving side must be able to read.
    """

    def __init__(self, path_or_bytes, sess_options=None, *, num_threads=None,
                 max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES, ship="bytes"):
        if isinstance(path_or_bytes, InferenceSession):
            raise TypeError("InferenceSession takes a path or bytes")
        if ship not in SHIP_MODES:
            raise CdnnArgumentError(f"ship must be one of {', '.join(SHIP_MODES)}, got "
                                    f"{ship!r}")
        from_bytes = isinstance(path_or_bytes, (bytes, bytearray, memoryview))
        if ship == "path" and from_bytes:
            raise CdnnArgumentError("ship='path' needs a session made from a path; this one "
                                    "was made from bytes")
        self._options = {"num_threads": num_threads, "max_decoded_bytes": max_decoded_bytes,
                         "ship": ship}
        if num_threads is None and sess_options is not None:
            num_threads = getattr(sess_options, "intra_op_num_threads", None) or None
        if num_threads is not None:
            if not isinstance(num_threads, int) or num_threads < 1:
                raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
            num_threads = min(num_threads, numba.config.NUMBA_NUM_THREADS)
        self.num_threads = num_threads
        self._ran = False  # the first run compiles what the load did not (see first_use)
        with first_use():
            self._load(path_or_bytes, max_decoded_bytes, ship)

    def _load(self, path_or_bytes, max_decoded_bytes, ship):
        self.file = read(path_or_bytes, max_decoded_bytes=max_decoded_bytes)
        # what a pickle of the session carries: the file's bytes, or its absolute path
        self._shipped = bytes(self.file._data.obj) if ship == "bytes" else \
            os.path.abspath(os.fspath(path_or_bytes))
        if self.file.graph is None:
            raise CdnnFormatError("the file holds tensors but no graph, so there is nothing to "
                                  "run (cdnn_runtime.read gives access to its tensors)")
        g = self.file.graph
        # free dims besides the batch (format v3): input name -> {dim: (name, max)}
        self._free = {i["name"]: {f["dim"]: (f["name"], f["max"]) for f in i.get("free", ())}
                      for i in g["inputs"]}
        self._traced = {i["name"]: list(i["shape"]) for i in g["inputs"]}
        self._inputs = [NodeArg(i["name"], [self._free[i["name"]].get(d, (s,))[0]
                                            for d, s in enumerate(i["shape"])],
                                _TYPE_NAMES[i["dtype"]])
                        for i in g["inputs"]]
        self._input_dtypes = {i["name"]: np.dtype(i["dtype"]) for i in g["inputs"]}
        # [None] until _check_shapes computes each output's shape
        self._outputs = [NodeArg(o["name"], [None]) for o in g["outputs"]]
        self.metadata = self.file.metadata
        self._layers = {}
        self._steps = self._plan(g)
        self._uses_blas = any(n["op"] in _BLAS_OPS for n in g["nodes"])
        self._input_specs = [(i.name, tuple(i.shape), i) for i in self._inputs]
        self._input_names = {i.name for i in self._inputs}
        self._output_names = [o.name for o in self._outputs]
        self._output_slots = {o.name: self._slots[o.name] for o in self._outputs}
        self._check_shapes()
        self.graph = g
        self.file = None  # everything is decoded: only what a pickle ships is kept

    # ---- pickling: the file and the options, rebuilt on the receiving side ----------------
    def __reduce__(self):
        return _unpickle_session, (self._shipped, self._options)

    # ---- preparation -----------------------------------------------------------------------
    def _weight(self, name):
        """A weight as the kernels take it: the array of a raw tensor, or the SparseTensor (CSR,
        uint16 column indices where they fit) of a sparse_codebook one."""
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
        residual_at = self._residual_adds(nodes, uses, outputs)
        deferred = {ci for ci, _ in residual_at.values()}
        steps = []
        for i, n in enumerate(nodes):
            if i in fused or i in deferred:
                continue
            if i in residual_at:
                steps.append(self._residual_step(nodes, i, *residual_at[i], fused))
                continue
            out = n["outputs"][0]
            activation = "none"
            covered = [n]
            if n["op"] in _LAYER_BUILDERS and uses.get(out) == 1 and out not in outputs:
                nxt = by_input.get(out, [])
                if len(nxt) == 1 and nodes[nxt[0]]["op"] in _FUSABLE:
                    act_node = nodes[nxt[0]]
                    activation = _FUSABLE[act_node["op"]](act_node["attrs"])
                    fused.add(nxt[0])
                    covered.append(act_node)
                    out = act_node["outputs"][0]
            fn = self._build(n, activation)
            layer = self._layers.get(n["name"]) if n["op"] == "linear" else None
            steps.append(_Step(n, fn, list(n["inputs"]), out, covered,
                               layer if isinstance(layer, SparseLinear) else None,
                               parse_activation(activation)))
        steps = self._chain(steps, uses, outputs)
        self._assign_slots(steps, g, outputs)
        return steps

    @staticmethod
    def _residual_adds(nodes, uses, outputs):
        """Residual connections to fuse into the convolution before them: {index of an add of
        two values: (index of the conv2d whose only use is that add, index of the activation
        of _FUSABLE that is the add's only use, or None)}. The convolution then runs where the
        add is (its other input may be computed after the convolution, as a downsampling
        branch is), adding the other input in its epilogue."""
        consumers = {}
        for i, n in enumerate(nodes):
            for v in n["inputs"]:
                consumers.setdefault(v, []).append(i)
        found = {}
        for i, n in enumerate(nodes):
            out = n["outputs"][0]
            if n["op"] != "conv2d" or uses.get(out) != 1 or out in outputs:
                continue
            (j,) = consumers[out]
            add = nodes[j]
            if add["op"] != "add" or len(add["inputs"]) != 2 or add["params"] \
                    or add["inputs"][0] == add["inputs"][1] or j in found:
                continue
            z = add["outputs"][0]
            act = None
            if uses.get(z) == 1 and z not in outputs and len(consumers[z]) == 1 \
                    and nodes[consumers[z][0]]["op"] in _FUSABLE:
                act = consumers[z][0]
            found[j] = (i, act)
        return found

    def _residual_step(self, nodes, j, i, act_index, fused):
        """The step of conv2d node i with the add node j (and the activation act_index) fused
        into it: inputs (the convolution's input, the add's other input)."""
        conv, add = nodes[i], nodes[j]
        covered, out, activation = [conv, add], add["outputs"][0], "none"
        if act_index is not None:
            act_node = nodes[act_index]
            activation = _FUSABLE[act_node["op"]](act_node["attrs"])
            fused.add(act_index)
            covered.append(act_node)
            out = act_node["outputs"][0]
        other = [v for v in add["inputs"] if v != conv["outputs"][0]][0]
        fn = self._build(conv, activation, residual=True)
        return _Step(conv, fn, [conv["inputs"][0], other], out, covered)

    def _chain(self, steps, uses, outputs):
        """Merge runs of sparse linear steps, each feeding only the next, into one step that
        runs them in one kernel call (LinearChain); a plain flatten of the batch's samples
        feeding such a run joins it."""
        merged = []
        i = 0
        while i < len(steps):
            s = steps[i]
            lead = None
            if (s.node["op"] == "flatten" and s.node["attrs"].get("start_dim") == 1
                    and s.node["attrs"].get("end_dim") == -1 and i + 1 < len(steps)
                    and steps[i + 1].layer is not None and uses.get(s.output) == 1
                    and s.output not in outputs and steps[i + 1].inputs == [s.output]):
                lead, s = s, steps[i + 1]
                i += 1
            if s.layer is None:
                merged.append(s)
                i += 1
                continue
            run = [s]
            while (i + 1 < len(steps) and steps[i + 1].layer is not None
                   and uses.get(run[-1].output) == 1 and run[-1].output not in outputs
                   and steps[i + 1].inputs == [run[-1].output]):
                i += 1
                run.append(steps[i])
            i += 1
            if len(run) == 1 and lead is None:
                merged.append(s)
                continue
            chain = LinearChain([(st.layer, st.activation) for st in run])
            for st in run:  # the chain holds the weights now, in one copy
                self._layers[st.node["name"]] = chain
            nodes = ([lead.node] if lead is not None else []) + [n for st in run for n in st.nodes]
            first = lead if lead is not None else run[0]
            merged.append(_Step(first.node, _chain_fn(chain, lead is not None), first.inputs,
                                run[-1].output, nodes))
        return merged

    def _assign_slots(self, steps, g, outputs):
        """Number every value; per step, the slots to read, to write and to free after it."""
        slots = {}
        for i in g["inputs"]:
            slots.setdefault(i["name"], len(slots))
        for st in steps:
            for v in st.inputs:
                slots.setdefault(v, len(slots))
            for v in (st.output,) + st.extra_outputs:
                slots.setdefault(v, len(slots))
        last = {}
        for k, st in enumerate(steps):
            for v in st.inputs:
                last[v] = k
        for k, st in enumerate(steps):
            st.in_slots = tuple(slots[v] for v in st.inputs)
            st.out_slot = slots[st.output]
            st.extra_slots = tuple(slots[v] for v in st.extra_outputs)
            unused = {slots[v] for v in (st.output,) + st.extra_outputs
                      if v not in last and v not in outputs}
            st.free = tuple(sorted({slots[v] for v in st.inputs
                                    if last[v] == k and v not in outputs} | unused))
        self._slots = slots

    def _build(self, n, activation, residual=False):
        """The step function of node `n`; `activation` is fused into it when it is a layer;
        with `residual` (a conv2d) it takes a second input added before the activation. A
        node whose attributes or weights do not fit is a CdnnFormatError naming it."""
        try:
            return self._step_function(n, activation, residual)
        except CdnnError:
            raise
        except (ValueError, TypeError) as exc:
            raise CdnnFormatError(f"graph node {n['name']!r} ({n['op']}): {exc}") from None

    def _step_function(self, n, activation, residual):
        op, p = n["op"], n["params"]
        layer_builder = _LAYER_BUILDERS.get(op)
        if layer_builder is None:  # a weight that may be sparse (embedding) stays as stored
            sparse_roles = GRAPH_OPS[op].weights
            return build_op(op, n["attrs"], {k: self._weight(v) if k in sparse_roles
                                             else self._raw(v) for k, v in p.items()})
        w = self._weight(p["weight"])
        bias = self._raw(p["bias"]) if "bias" in p else None
        if residual:
            return _with_residual(self._conv2d(n, w, bias, None), parse_activation(activation))
        return layer_builder(self, n, w, bias, parse_activation(activation))

    # The reader built a sparse weight's arrays and checked every value on the way (columns in
    # range and increasing within each row, codes below the codebook size): the layers below
    # check their shapes and dtypes only, not the values a second time.

    def _linear(self, n, w, bias, act):
        """A linear layer: a raw weight through numpy's matmul, a sparse one through the CSR
        kernels (and a candidate for a chain)."""
        if isinstance(w, np.ndarray):  # a raw dense weight: small layers stored as is
            w = np.ascontiguousarray(w, dtype=np.float32)
            return _over_rows(lambda x: linear_dense(x, w, bias, act))
        layer = prepare_linear(w.row_ptr, w.col_idx, w.codes, w.codebook, bias,
                               in_features=w.n_cols, check_values=False)
        self._layers[n["name"]] = layer
        return _over_rows(lambda x: layer(x, act))

    def _conv_layer(self, n, w, act, prepare, **geometry):
        """The step function of a convolution layer: `prepare(row_ptr, col_idx, codes,
        codebook, ...)` on the weight's CSR. A raw weight runs through the sparse kernel over
        all its entries (its values checked there); a sparse one was checked by the reader."""
        raw = isinstance(w, np.ndarray)
        csr = _raw_conv_as_csr(w, n["op"]) if raw else (w.row_ptr, w.col_idx, w.codes,
                                                         w.codebook)
        a = n["attrs"]
        layer = prepare(*csr, dilation=_dims(a["dilation"]), groups=a["groups"],
                        stride=_dims(a["stride"]), check_values=raw, **geometry)
        if not raw:
            self._layers[n["name"]] = layer
        if act is None:  # the layer itself (a residual step calls it)
            return layer
        return lambda x: layer(x, act)

    def _conv2d(self, n, w, bias, act):
        a = n["attrs"]
        return self._conv_layer(n, w, act, prepare_conv, bias=bias,
                                in_channels=w.shape[1] * a["groups"],
                                kernel_size=tuple(w.shape[2:]), padding=tuple(a["padding"]))

    def _conv1d(self, n, w, bias, act):
        """conv1d: weight [Cout, Cin/groups, k]; padding [left, right]."""
        a = n["attrs"]
        return self._conv_layer(n, w, act, prepare_conv1d, bias=bias,
                                in_channels=w.shape[1] * a["groups"], kernel_size=w.shape[2],
                                padding=tuple(a["padding"]))

    def _conv_transpose2d(self, n, w, bias, act):
        """conv_transpose2d: weight [Cin, Cout/groups, kh, kw], stored with a row per input
        channel."""
        a = n["attrs"]
        return self._conv_layer(n, w, act, prepare_conv_transpose, bias=bias,
                                out_channels=w.shape[1] * a["groups"],
                                kernel_size=tuple(w.shape[2:]), padding=tuple(a["padding"]),
                                output_padding=tuple(a["output_padding"]))

    def _check_shapes(self):
        """Run the graph once on an empty batch (a fixed batch: on zeros) at the traced sizes
        so that every shape mismatch shows at load; the outputs' shapes come from that run,
        the free batch (a dim that is 0 on the empty batch) as None. With free dims besides the
        batch, a second run one step away from the traced sizes tells which output dims follow
        them: a dim equal to a free dim's size in both runs takes its name, another that
        changes is None."""
        for i in self._inputs:
            if i.shape[0] is not None and math.prod(self._traced[i.name]) > _MAX_CHECK_ELEMENTS:
                return  # a large fixed batch: checked on first run
        outs = self._run_at(0)
        free = any(i.shape[0] is None for i in self._inputs)
        shapes = [[None if free and d == 0 else int(d) for d in y.shape] for y in outs]
        traced = [(self._traced[name][d], top) for name, f in self._free.items()
                  for d, (_, top) in f.items()]
        step = 1 if all(s < top for s, top in traced) else \
            -1 if all(s > 1 for s, _ in traced) else 0
        if traced and step:
            sizes = {}
            for name, f in self._free.items():
                for d, (dim_name, _) in f.items():
                    sizes[dim_name] = (self._traced[name][d], self._traced[name][d] + step)
            for shape, y in zip(shapes, self._run_at(step)):
                for k, d in enumerate(y.shape):
                    if shape[k] is not None and d != shape[k]:
                        named = [n for n, (a, b) in sizes.items() if (a, b) == (shape[k], d)]
                        shape[k] = named[0] if len(named) == 1 else None
        self._outputs = [NodeArg(o.name, shape) for o, shape in zip(self._outputs, shapes)]

    def _run_at(self, step):
        """The outputs for zeros at the traced sizes, the free dims `step` from them (the free
        batch empty)."""
        feed = {}
        for i in self._inputs:
            shape = [0 if i.shape[0] is None else self._traced[i.name][0]]
            shape += [s + step if d in self._free[i.name] else s
                      for d, s in enumerate(self._traced[i.name]) if d]
            feed[i.name] = np.zeros(shape, self._input_dtypes[i.name])
        try:
            with np.errstate(all="ignore"):
                return self._execute(feed, [o.name for o in self._outputs])
        except ValueError as exc:
            raise CdnnFormatError(f"the graph does not fit its declared input shapes: {exc}") \
                from None
        except MemoryError:
            raise CdnnMemoryError("not enough memory to run the model's fixed batch once at "
                                  "load") from None

    # ---- running ---------------------------------------------------------------------------
    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def get_modelmeta(self):
        return dict(self.metadata)

    def _execute(self, feed, wanted, times=None):
        """Run the plan on `feed` ({input name: array}, checked); the values named in `wanted`.
        With `times` (a list), append each step's wall time in seconds."""
        env = [None] * len(self._slots)
        slots = self._slots
        for name, x in feed.items():
            env[slots[name]] = x
        for s in self._steps:
            try:
                if times is None:
                    if len(s.in_slots) == 1:
                        y = s.fn(env[s.in_slots[0]])
                    else:
                        y = s.fn(*[env[k] for k in s.in_slots])
                else:
                    t0 = time.perf_counter()
                    y = s.fn(*[env[k] for k in s.in_slots])
                    times.append(time.perf_counter() - t0)
                if s.extra_slots:
                    _store_outputs(env, s, y)
                else:
                    env[s.out_slot] = y
            except CdnnError:
                raise
            except (ValueError, TypeError, IndexError) as exc:
                raise ValueError(f"node {s.node['name']!r} ({s.node['op']}): {exc}") from None
            for k in s.free:
                env[k] = None
        return [env[self._output_slots[name]] for name in wanted]

    def _check_feed(self, input_feed):
        """The checked feed ({name: C-contiguous array of the input's dtype}) and its batch
        size."""
        if not isinstance(input_feed, dict):
            raise ValueError("input_feed must be a dict mapping input names to arrays")
        feed = {}
        batch = None
        free_sizes = {}
        for name, shape, spec in self._input_specs:
            x = input_feed.get(name)
            if x is None:
                raise ValueError(f"missing input {name!r} (shape {self._shape_text(spec)}, "
                                 f"{self._input_dtypes[name]})")
            if type(x) is not np.ndarray and not isinstance(x, np.ndarray):
                raise ValueError(f"input {name!r} must be a numpy array, got "
                                 f"{type(x).__name__}")
            if x.dtype != self._input_dtypes[name]:  # never converted, ids least of all
                raise ValueError(f"input {name!r} must be {self._input_dtypes[name]}, got "
                                 f"{x.dtype}")
            xs = x.shape
            if len(xs) != len(shape) or any(d is not None and not isinstance(d, str) and d != s
                                            for d, s in zip(shape, xs)):
                raise ValueError(f"input {name!r} has shape {list(xs)}, expected "
                                 f"{self._shape_text(spec)}")
            for d, (dim_name, top) in self._free[name].items():
                if not 1 <= xs[d] <= top:
                    raise ValueError(f"input {name!r} dim {d} ({dim_name}) is {xs[d]}; the "
                                     f"model takes 1 to {top}")
                if free_sizes.setdefault(dim_name, xs[d]) != xs[d]:
                    raise ValueError(f"inputs disagree on {dim_name} ({free_sizes[dim_name]} "
                                     f"and {xs[d]})")
            if shape[0] is None:
                if batch is not None and xs[0] != batch:
                    raise ValueError(f"inputs disagree on the batch size ({batch} and "
                                     f"{xs[0]})")
                batch = xs[0]
            feed[name] = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        if len(input_feed) != len(feed):
            unknown = sorted(set(input_feed) - self._input_names)
            raise ValueError(f"unknown input {unknown[0]!r}; the model's inputs are "
                             f"{', '.join(n for n, _, _ in self._input_specs)}")
        return feed, batch

    def _wanted(self, output_names):
        if output_names is None:
            return self._output_names
        names = list(output_names)
        for n in names:
            if n not in self._output_slots:
                raise ValueError(f"unknown output {n!r}; the model's outputs are "
                                 f"{', '.join(sorted(self._output_slots))}")
        return names

    def _locked(self, feed, names, batch, times=None):
        with _RUN_LOCK:
            switch = self.num_threads is not None and \
                self.num_threads != numba.config.NUMBA_NUM_THREADS
            if switch:
                numba.set_num_threads(self.num_threads)
            try:
                with _blas_on_one_thread() if self._uses_blas else contextlib.nullcontext(), \
                        contextlib.nullcontext() if self._ran else first_use():
                    out = self._execute(feed, names, times)
                    self._ran = True
                    return out
            except MemoryError:
                raise CdnnMemoryError(f"not enough memory to run batch {batch}; try a smaller "
                                      "batch") from None
            finally:
                if switch:
                    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    def run(self, output_names, input_feed, run_options=None):
        """Outputs named in `output_names` (None: all) for the arrays in `input_feed`."""
        feed, batch = self._check_feed(input_feed)
        return self._locked(feed, self._wanted(output_names), batch)

    def profile(self, input_feed, repeats=10, warmup=1):
        """Time each step of the plan on `input_feed` (checked as by `run`).

        Runs the graph `warmup` times unrecorded, then `repeats` times timing every step.
        Returns a dict: `batch`; `repeats`; `steps`, one dict per step in execution order with
        `name` and `op` (joined with '+' when the step computes several graph nodes: an activation
        fused into its layer, a chain of linear layers run as one kernel), `nodes` (the graph
        node names), `output_shape` and `median_ms`, `min_ms`, `max_ms`; `total_ms`, the
        median of the whole runs (the steps' sum plus the session's own overhead).
        """
        if not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
        feed, batch = self._check_feed(input_feed)
        names = self._output_names
        for _ in range(max(int(warmup), 0)):
            self._locked(feed, names, batch)
        per_step = [[] for _ in self._steps]
        totals = []
        for _ in range(repeats):
            times = []
            t0 = time.perf_counter()
            self._locked(feed, names, batch, times)
            totals.append(time.perf_counter() - t0)
            for k, t in enumerate(times):
                per_step[k].append(t)
        shapes = self._step_shapes(feed)
        steps = []
        for st, ts, shape in zip(self._steps, per_step, shapes):
            steps.append({"name": st.name, "op": st.op, "nodes": [n["name"] for n in st.nodes],
                          "output_shape": shape, **summarize(ts)})
        return {"batch": batch, "repeats": repeats, "steps": steps,
                "total_ms": summarize(totals)["median_ms"]}

    def _step_shapes(self, feed):
        """Each step's output shape for `feed` (one more run, outputs kept)."""
        env = [None] * len(self._slots)
        for name, x in feed.items():
            env[self._slots[name]] = x
        shapes = []
        with _RUN_LOCK:
            for s in self._steps:
                _store_outputs(env, s, s.fn(*[env[k] for k in s.in_slots]))
                shapes.append(list(env[s.out_slot].shape))
                for k in s.free:
                    env[k] = None
        return shapes

    @staticmethod
    def _shape_text(spec):
        return "[" + ", ".join("N" if d is None else str(d) for d in spec.shape) + "]"

    def __call__(self, x):
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise ValueError("session(x) is for models with one input and one output; use "
                             "run(output_names, input_feed)")
        return self.run(None, {self._inputs[0].name: x})[0]


#: Ops with a weight, whose step function the session builds itself: op -> the method
#: (session, node, weight, bias, fused Activation) -> step function.
_LAYER_BUILDERS = {"linear": InferenceSession._linear, "conv2d": InferenceSession._conv2d,
                   "conv1d": InferenceSession._conv1d,
                   "conv_transpose2d": InferenceSession._conv_transpose2d}


def _dims(v):
    """A 1-D attribute (an int) as is, a 2-D one (a list of two) as a tuple."""
    return tuple(v) if isinstance(v, list) else v


def _raw_conv_as_csr(w, op):
    """(row_ptr, col_idx, codes, codebook) of the nonzero entries of a raw conv weight as its
    2-D view [dim 0, the rest], one codebook value per distinct value."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    rows = w.shape[0]
    flat = w.reshape(rows, -1)
    nz = flat != 0
    row_ptr = np.zeros(rows + 1, np.int64)
    np.cumsum(nz.sum(1), out=row_ptr[1:])
    _, col_idx = np.nonzero(nz)
    codebook, codes = np.unique(flat[nz], return_inverse=True)
    if codebook.size > MAX_CODEBOOK_SIZE:  # more distinct values than a codebook holds
        raise CdnnFormatError(f"a raw {op} weight with more than {MAX_CODEBOOK_SIZE} distinct "
                              "values is not supported; store it as sparse_codebook")
    codebook = codebook.astype(np.float32) if codebook.size else np.zeros(1, np.float32)
    col_dtype = np.uint16 if flat.shape[1] <= MAX_UINT16_COLUMNS else np.int32
    return row_ptr, col_idx.astype(col_dtype), codes.astype(np.uint8), codebook


def _store_outputs(env, step, values):
    """Put the values a step computed into their slots (one value, or one per output of a node
    with several)."""
    if not step.extra_slots:
        env[step.out_slot] = values
        return
    if len(values) != 1 + len(step.extra_slots):
        raise ValueError(f"computed {len(values)} values for {1 + len(step.extra_slots)} "
                         "outputs")
    env[step.out_slot] = values[0]
    for k, v in zip(step.extra_slots, values[1:]):
        env[k] = v


def _chain_fn(chain, flatten_samples):
    """The step function of a LinearChain, after a flatten of each sample when
    `flatten_samples`."""
    if flatten_samples:
        def fn(x):
            if type(x) is np.ndarray and x.ndim >= 2 and x.flags.c_contiguous:
                return chain(x.reshape(x.shape[0], math.prod(x.shape[1:])))  # a view
            return chain(flatten(x, 1, -1))
        return fn
    return _over_rows(chain)


# ---- linear over inputs of rank above 2 (version 3)
def _with_residual(layer, act):
    """The step function of a conv2d layer with a residual add (and `act`) fused: act(conv(x)
    + r) in the convolution's epilogue when r is float32 of the convolution's output shape;
    otherwise (an add that broadcasts, another dtype) the convolution, then the add and the
    activation as separate ops would compute them."""
    def step(x, r):
        if (type(r) is np.ndarray and r.dtype == np.float32 and type(x) is np.ndarray
                and x.ndim == 4 and r.shape == (x.shape[0], layer.out_channels)
                + layer.output_size(*x.shape[2:])):
            return layer(x, act, residual=r)
        y = add(layer(x), r)
        return y if act.code == ACT_NONE else activation(y, act)
    return step


def _over_rows(fn):
    """A linear step `fn` (float32 [B, in] -> [B, out]) for inputs [N, ..., in] of any rank
    >= 2: the leading dims as rows, as nn.Linear does (ConvNeXt's channels-last blocks)."""
    def step(x):
        if x.ndim <= 2:
            return fn(x)
        y = fn(np.ascontiguousarray(x).reshape(-1, x.shape[-1]))
        return y.reshape(x.shape[:-1] + y.shape[-1:])
    return step


def _unpickle_session(shipped, options):
    """A session rebuilt from what a pickle shipped (bytes or a path) and its options."""
    return InferenceSession(shipped, **options)


def load(path_or_bytes, **kwargs):
    """Same as InferenceSession(path_or_bytes, **kwargs)."""
    return InferenceSession(path_or_bytes, **kwargs)
