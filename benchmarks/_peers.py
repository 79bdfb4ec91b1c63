"""Peer runtimes for bench_latency.py, all built from the same dense (decompressed) weights.

Each peer is a `Peer`: `timed(x, n)` runs it n times on x and returns the n times in seconds,
`output(x)` returns its result as a numpy array, `close()` frees it. A peer that cannot be
built here is reported by `make_*` returning (None, reason) instead of (peer, None).

* PyTorch eager, float32, under torch.inference_mode();
* PyTorch dynamic int8 (torch.ao.quantization.quantize_dynamic on nn.Linear);
* onnxruntime float32 (torch.onnx.export, TorchScript exporter, opset 13);
* onnxruntime dynamic int8 (onnxruntime.quantization.quantize_dynamic, QInt8 weights, MatMul;
  the exporter's Gemm nodes are rewritten as MatMul + Add first, since onnxruntime's dynamic
  quantizer does not handle Gemm);
* DeepSparse, in a separate interpreter (its own venv, numpy<2), on the exported ONNX file,
  driven over a pipe so that its calls can be interleaved with the others
  (_children/deepsparse_engine.py).

onnxruntime and onnx are imported lazily: without them those peers are skipped with a reason.
"""

import copy
import json
import logging
import os
import queue
import subprocess
import threading
import warnings

import numpy as np

from cdnn_runtime.timing import time_calls

ONNX_OPSET = 13  # DeepSparse 1.8 rejects opsets above 19; the TorchScript exporter's default is 20
#: scaled_dot_product_attention exports from opset 14 on (a sequence model's opset).
ONNX_OPSET_ATTENTION = 14


class Peer:
    """A runtime under test that runs in this process."""

    def __init__(self, key, label, fn, to_numpy=np.asarray, info=None):
        self.key, self.label, self._fn, self._to_numpy = key, label, fn, to_numpy
        self.info = info or {}

    def timed(self, x, n=1):
        return time_calls(self._fn, x, repeats=n).tolist()

    def output(self, x):
        return np.asarray(self._to_numpy(self._fn(x)), dtype=np.float32)

    def close(self):
        self._fn = None


# ---- PyTorch ---------------------------------------------------------------------------------

def _torch_fn(model):
    """model(x) on a numpy array; the caller holds torch.inference_mode() around the timings
    (entered once, not per call, as a serving loop would)."""
    import torch

    def fn(x):
        return model(torch.from_numpy(x))
    return fn


def make_torch_eager(model):
    return Peer("torch", "PyTorch eager", _torch_fn(model), lambda y: y.numpy(),
                {"dtype": "float32"}), None


def make_torch_int8(model):
    import torch
    from torch import nn
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic
            q = quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)
    except Exception as exc:  # noqa: BLE001 - any failure means: skip this peer, say why
        return None, f"torch.ao.quantization.quantize_dynamic failed: {exc}"
    return Peer("torch_int8", "PyTorch dyn. int8", _torch_fn(q), lambda y: y.numpy(),
                {"quantized": "nn.Linear weights qint8 per tensor, activations dynamic",
                 "engine": torch.backends.quantized.engine}), None


# ---- ONNX export and onnxruntime -------------------------------------------------------------

def export_onnx(model, shape, path, dtype="float32", opset=ONNX_OPSET):
    """Export with a free batch dimension (an input of `dtype`: float32, or int64 token ids);
    returns (path, None) or (None, reason)."""
    import torch
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            example = torch.zeros((1,) + tuple(shape), dtype=getattr(torch, dtype))
            torch.onnx.export(model, (example,), path, dynamo=False,
                              opset_version=opset, input_names=["x"],
                              output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    except Exception as exc:  # noqa: BLE001
        return None, f"torch.onnx.export failed: {type(exc).__name__}: {exc}"
    return path, None


def gemm_to_matmul(src, dst):
    """Rewrite Gemm(x, W, b) with a constant W as MatMul(x, W^T) + b, for the dynamic quantizer
    (which quantizes MatMul but not Gemm)."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    uses = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    nodes, drop, rewritten = [], set(), 0
    for n in g.node:
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "Gemm" and n.input[1] in inits and a.get("transA", 0) == 0 \
                and a.get("alpha", 1.0) == 1.0 and a.get("beta", 1.0) == 1.0:
            w = numpy_helper.to_array(inits[n.input[1]])
            if a.get("transB", 0):
                w = w.T
            wname = n.input[1] + "_kxn"
            g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), wname))
            if uses[n.input[1]] == 1:
                drop.add(n.input[1])
            has_bias = len(n.input) > 2 and n.input[2]
            mm_out = n.output[0] + "_matmul" if has_bias else n.output[0]
            nodes.append(helper.make_node("MatMul", [n.input[0], wname], [mm_out],
                                          name=(n.name or "gemm") + "_matmul"))
            if has_bias:
                nodes.append(helper.make_node("Add", [mm_out, n.input[2]], [n.output[0]],
                                              name=(n.name or "gemm") + "_add"))
            rewritten += 1
        else:
            nodes.append(n)
    keep = [i for i in g.initializer if i.name not in drop]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.node[:]
    g.node.extend(nodes)
    onnx.save(m, dst)
    return rewritten


def _ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _ort_peer(key, label, path, threads, info):
    sess = _ort_session(path, threads)
    name = sess.get_inputs()[0].name

    def fn(x):
        return sess.run(None, {name: x})[0]
    return Peer(key, label, fn, info=info)


def ort_missing():
    """None when onnxruntime and onnx import, else the reason to skip the ORT peers."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return (f"not installed ({exc.name}); pip install onnxruntime onnx "
                "(the 'bench' extra)")
    return None


def make_ort_fp32(onnx_path, threads):
    why = ort_missing()
    if why:
        return None, why
    if onnx_path is None:
        return None, "no ONNX file (export failed)"
    try:
        return _ort_peer("ort", "onnxruntime fp32", onnx_path, threads,
                         {"file_bytes": os.path.getsize(onnx_path), "opset": ONNX_OPSET}), None
    except Exception as exc:  # noqa: BLE001
        return None, f"onnxruntime could not load the model: {exc}"


def make_ort_int8(onnx_path, work, threads):
    why = ort_missing()
    if why:
        return None, why
    if onnx_path is None:
        return None, "no ONNX file (export failed)"
    base = os.path.splitext(onnx_path)[0]
    mm, q = base + ".matmul.onnx", base + ".int8.onnx"
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        n = gemm_to_matmul(onnx_path, mm)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its advice to pre-process applies to static quantization
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_dynamic(mm, q, op_types_to_quantize=["MatMul"],
                                 weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        os.unlink(mm)
        return _ort_peer("ort_int8", "onnxruntime dyn. int8", q, threads,
                         {"file_bytes": os.path.getsize(q), "gemm_rewritten": n,
                          "quantized": "MatMul weights QInt8 per tensor, activations dynamic"}
                         ), None
    except Exception as exc:  # noqa: BLE001
        return None, f"onnxruntime dynamic quantization failed: {type(exc).__name__}: {exc}"


# ---- DeepSparse, in its own interpreter -----------------------------------------------------

DS_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_children",
                        "deepsparse_engine.py")


def _ds_env():
    """The environment of the DeepSparse interpreter: its own venv, no analytics."""
    env = dict(os.environ, NM_DISABLE_ANALYTICS="1")
    env.pop("PYTHONPATH", None)
    return env


class DeepSparsePeer:
    """DeepSparse compiled for one batch size in a child interpreter; timings measured there
    (around engine.run, the same span as the in-process peers) and sent back per call."""

    key, label = "deepsparse", "DeepSparse"

    def __init__(self, python, onnx_path, x, threads, work, timeout=900):
        self.info = {}
        self._inp = os.path.join(work, f"ds-in-{x.shape[0]}.npy")
        self._out = os.path.join(work, f"ds-out-{x.shape[0]}.npy")
        np.save(self._inp, x)
        self._log = open(os.path.join(work, f"ds-{x.shape[0]}.log"), "w+")
        self._proc = subprocess.Popen(
            [python, DS_CHILD, onnx_path, str(x.shape[0]), str(threads), self._inp,
             self._out], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, env=_ds_env(), cwd=work)
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        msg = self._next(timeout)
        if "error" in msg:
            self.close()
            raise RuntimeError(msg["error"])
        self.info = {"version": msg["version"], "compile_s": msg["compile_s"],
                     "numpy": msg["numpy"]}

    @property
    def pid(self):
        return self._proc.pid

    def _pump(self):
        for line in self._proc.stdout:
            if line.startswith("@@"):
                self._lines.put(json.loads(line[2:]))
        self._lines.put(None)

    def _next(self, timeout):
        try:
            msg = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise RuntimeError(f"DeepSparse child gave no answer within {timeout} s") from None
        if msg is None:
            self._log.seek(0)
            tail = self._log.read()[-600:].strip()
            raise RuntimeError(f"DeepSparse child exited (code {self._proc.wait()}): {tail}")
        return msg

    def timed(self, x, n=1):
        self._proc.stdin.write(f"run {n}\n")
        self._proc.stdin.flush()
        return self._next(600)

    def output(self, x):
        return np.load(self._out).astype(np.float32)

    def close(self):
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write("quit\n")
                self._proc.stdin.flush()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def check_deepsparse(python):
    """None if `python` imports deepsparse, else the reason; and its version or None."""
    if not python:
        return "not requested (pass --deepsparse-python PATH, the python of a venv with " \
               "deepsparse==1.8.0 and numpy<2)", None
    if not os.path.exists(python):
        return f"--deepsparse-python {python}: no such file", None
    try:
        r = subprocess.run([python, "-c", "import deepsparse, numpy; "
                            "print(deepsparse.__version__, numpy.__version__)"],
                           capture_output=True, text=True, timeout=120, env=_ds_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} could not be run: {exc}", None
    if r.returncode != 0:
        return f"{python} cannot import deepsparse: " + \
            (r.stderr.strip().splitlines() or ["?"])[-1], None
    return None, r.stdout.split()[0]


def make_deepsparse(python, onnx_path, x, threads, work):
    if onnx_path is None:
        return None, "no ONNX file (export failed)"
    try:
        return DeepSparsePeer(python, onnx_path, x, threads, work), None
    except Exception as exc:  # noqa: BLE001
        return None, f"DeepSparse failed: {exc}"
