"""Batch inference for the engines that scale it out (Ray Data, Dask) and for a process pool.

`Predictor(model)` is a callable on one batch: a dict of numpy arrays (Ray Data's batch format)
or a pandas DataFrame (Dask's partitions); it returns the same kind, the model's outputs as
columns named after them and every column it did not feed passed through (ids, labels). No
engine is imported here, nor pandas: a DataFrame can only come in once pandas is loaded.

Columns of samples with several values:
- dict of arrays: an array [rows, ...] per column, as Ray holds tensor columns; an input may
  also come flattened ([rows, 784] for the model's [N, 1, 28, 28]) and is reshaped to the
  file's input shape; an output is the array [rows, ...] the model returns.
- DataFrame: one numpy array per cell (an object column, as Parquet list columns load), of the
  sample's shape or flattened; an output with several values per row is an object column of
  flattened 1-D float32 rows (Parquet writes it as a list column; the file's output shape,
  `session.get_outputs()`, gives the layout back), an output with one value per row a plain
  column.
"""

import hashlib
import math
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from .constants import DEFAULT_MAX_DECODED_BYTES
from .errors import CdnnArgumentError
from .session import InferenceSession

#: Sessions built in this process: (file digest or path, options) -> session. A worker of Dask
#: or of a pool unpickles its Predictor once per task; the session is built once.
_SESSIONS = {}
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 4

#: The Predictor of a pool worker process (set by install_worker_predictor).
_WORKER_PREDICTOR = None


def cached_session(shipped, options):
    """The session of `shipped` (a file's bytes or path) and its options, built once per
    process."""
    options = {"num_threads": None, "max_decoded_bytes": DEFAULT_MAX_DECODED_BYTES,
               "ship": "bytes", **options}
    what = hashlib.sha256(shipped).hexdigest() if isinstance(shipped, bytes) else str(shipped)
    key = (what, tuple(sorted(options.items())))
    with _SESSIONS_LOCK:
        sess = _SESSIONS.get(key)
        if sess is None:
            sess = InferenceSession(shipped, **options)
            if len(_SESSIONS) >= _MAX_SESSIONS:
                _SESSIONS.pop(next(iter(_SESSIONS)))
            _SESSIONS[key] = sess
        return sess


class Predictor:
    """Runs a .cdnn model on a batch (a dict of arrays or a DataFrame) and returns the same
    kind with the outputs as columns; the columns fed to the model are dropped, the rest kept.

    `model` is a path, the file's bytes or an InferenceSession; `input_name` the column fed to
    a one-input model (None: the column named like the model's input), or a dict {model input:
    column}; `output_names` the outputs to compute (None: all). A Predictor pickles as its
    model's bytes (or path) and settings; each process builds the session once.
    """

    def __init__(self, model, input_name=None, output_names=None, num_threads=None):
        if isinstance(model, InferenceSession):
            self.session = model
        elif isinstance(model, (bytes, bytearray, memoryview, str, os.PathLike)):
            shipped = bytes(model) if isinstance(model, (bytearray, memoryview)) else model
            self.session = cached_session(shipped, {"num_threads": num_threads})
        else:
            raise CdnnArgumentError(f"model must be a path, the file's bytes or an "
                                    f"InferenceSession, got {type(model).__name__}")
        self.input_name, self.output_names, self.num_threads = \
            input_name, output_names, num_threads
        inputs = {i.name: i for i in self.session.get_inputs()}
        if input_name is None:
            self.columns = {name: name for name in inputs}
        elif isinstance(input_name, str):
            if len(inputs) != 1:
                raise CdnnArgumentError(f"the model has {len(inputs)} inputs "
                                        f"({', '.join(inputs)}); give input_name as a dict "
                                        "{model input: column}")
            self.columns = {next(iter(inputs)): input_name}
        elif isinstance(input_name, dict):
            if set(input_name) != set(inputs):
                raise CdnnArgumentError(f"input_name maps {sorted(input_name)}; the model's "
                                        f"inputs are {sorted(inputs)}")
            self.columns = dict(input_name)
        else:
            raise CdnnArgumentError("input_name must be None, a column name or a dict "
                                    f"{{model input: column}}, got {type(input_name).__name__}")
        self._inputs = inputs
        outputs = {o.name: o for o in self.session.get_outputs()}
        wanted = list(outputs) if output_names is None else list(output_names)
        for name in wanted:
            if name not in outputs:
                raise CdnnArgumentError(f"unknown output {name!r}; the model's outputs are "
                                        f"{', '.join(outputs)}")
        self._outputs = [outputs[name] for name in wanted]

    def __reduce__(self):
        return _unpickle_predictor, (self.session._shipped, self.session._options,
                                     self.input_name, self.output_names)

    def __call__(self, batch):
        if _is_dataframe(batch):
            return self._on_frame(batch)
        if isinstance(batch, dict):
            return self._on_dict(batch)
        raise CdnnArgumentError("a batch must be a dict of numpy arrays or a pandas DataFrame, "
                                f"got {type(batch).__name__}")

    def predict(self, columns):
        """The outputs [rows, ...] for {column: array or sequence of per-row arrays}."""
        self._check_columns(columns)
        feed = {name: self._as_input(columns[column], self._inputs[name], column)
                for name, column in self.columns.items()}
        try:
            outs = self.session.run([o.name for o in self._outputs], feed)
        except ValueError as exc:
            raise CdnnArgumentError(f"column(s) {', '.join(self.columns.values())}: {exc}") \
                from None
        return dict(zip((o.name for o in self._outputs), outs))

    def _check_columns(self, columns):
        for name, column in self.columns.items():
            if column not in columns:
                raise CdnnArgumentError(f"the batch has no column {column!r} for the model's "
                                        f"input {name!r}; its columns are "
                                        f"{', '.join(map(str, columns))}")

    def _on_dict(self, batch):
        result = {k: v for k, v in batch.items() if k not in self.columns.values()}
        result.update(self.predict(batch))
        return result

    def _on_frame(self, frame):
        import pandas as pd
        self._check_columns(list(frame.columns))
        outs = self.predict({c: frame[c].to_numpy() for c in self.columns.values()})
        result = frame.drop(columns=list(self.columns.values()))
        for name, y in outs.items():
            if y.ndim == 1:
                result[name] = pd.Series(y, index=frame.index)
            else:
                rows = np.ascontiguousarray(y).reshape(len(y), math.prod(y.shape[1:]))
                result[name] = pd.Series(list(rows), index=frame.index, dtype=object)
        return result

    def meta(self, frame):
        """The empty DataFrame that the call returns for partitions like `frame` (a pandas or
        Dask DataFrame): Dask's `map_partitions(..., meta=predictor.meta(ddf))`."""
        import pandas as pd
        fed = set(self.columns.values())
        cols = {c: pd.Series(dtype=t) for c, t in frame.dtypes.items() if c not in fed}
        for o in self._outputs:
            many = len(o.shape) > 1
            cols[o.name] = pd.Series(dtype=object if many else np.float32)
        return pd.DataFrame(cols)

    @staticmethod
    def _as_input(values, spec, column):
        """`values` (an array, or per-row arrays) as the model's input `spec`: stacked, in
        the input's dtype, each row reshaped to the file's shape if it came flattened."""
        x = np.asarray(values)
        if x.dtype == object:
            x = np.stack([np.asarray(v) for v in x]) if len(x) else np.zeros((0,), np.float32)
        want = np.dtype({"tensor(float)": "float32", "tensor(int64)": "int64",
                         "tensor(int32)": "int32"}[spec.type])
        if x.dtype != want:
            if x.dtype.kind in "USO":
                raise CdnnArgumentError(f"column {column!r} holds text ({x.dtype}), not "
                                        "arrays; Dask's from_pandas turns object columns "
                                        "into strings unless dask.config.set("
                                        "{'dataframe.convert-string': False})")
            if x.dtype.kind != want.kind and not (want.kind == "i" and x.dtype.kind == "u"):
                raise CdnnArgumentError(f"column {column!r} is {x.dtype}; the model's input "
                                        f"{spec.name!r} takes {want} (images: scale and "
                                        "convert, x.astype(numpy.float32) / 255)")
            x = x.astype(want)
        rest = [d if isinstance(d, int) else None for d in spec.shape[1:]]
        if len(x) == 0:
            return np.zeros([0] + [d or 1 for d in rest], want)
        if None not in rest and list(x.shape[1:]) != rest and \
                math.prod(x.shape[1:]) == math.prod(rest):
            x = x.reshape([len(x)] + rest)
        return x


def _is_dataframe(batch):
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(batch, pandas.DataFrame)


def _unpickle_predictor(shipped, options, input_name, output_names):
    return Predictor(cached_session(shipped, options), input_name, output_names,
                     options.get("num_threads"))


def install_worker_predictor(predictor):
    """Pool initializer: keep the (unpickled) Predictor of this worker process."""
    global _WORKER_PREDICTOR
    _WORKER_PREDICTOR = predictor


def worker_predictor():
    """The Predictor that install_worker_predictor set in this process."""
    return _WORKER_PREDICTOR


def _predict_in_worker(batch):
    return _WORKER_PREDICTOR(batch)


def predict_in_processes(model, batches, *, workers=None, input_name=None, output_names=None,
                         num_threads=None, mp_context="spawn"):
    """Predictor(model)(batch) for each of `batches`, in order, from a pool of `workers`
    processes (default: the cores) that each build the session once from the model's bytes.

    The standard library's recipe for one machine without Ray or Dask; each worker uses
    `num_threads` threads (default: the cores shared out among the workers).
    """
    workers = workers or os.cpu_count() or 1
    if num_threads is None:
        num_threads = max(1, (os.cpu_count() or 1) // workers)
    predictor = Predictor(model, input_name, output_names, num_threads)
    with ProcessPoolExecutor(workers, mp_context=get_context(mp_context),
                             initializer=install_worker_predictor,
                             initargs=(predictor,)) as pool:
        yield from pool.map(_predict_in_worker, batches)
