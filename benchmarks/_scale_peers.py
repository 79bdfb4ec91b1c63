"""What bench_scale.py's workers run: the dense LeNet-5 in PyTorch behind the same batch
interface as cdnn_runtime.batch.Predictor, and a wrapper that adds each batch's worker and its
peak memory. Imported by name in the workers (benchmarks/ on their PYTHONPATH)."""

import io
import os
import resource

import numpy as np


def _rows(values):
    x = np.asarray(values)
    if x.dtype == object:
        x = np.stack([np.asarray(v) for v in x])
    return np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), 1, 28, 28)


class TorchPredictor:
    """The dense LeNet-5 from its state dict's bytes, one batch (a dict of arrays or a
    DataFrame) in, the same kind out with the logits under `output`, as Predictor does."""

    def __init__(self, state, input_name="x", num_threads=1):
        import torch

        from cdnn import models
        torch.set_num_threads(num_threads)
        self.torch, self.input_name = torch, input_name
        self.model = models.lenet_5()
        self.model.load_state_dict(torch.load(io.BytesIO(state), map_location="cpu",
                                              weights_only=True))
        self.model.eval()

    def __call__(self, batch):
        with self.torch.inference_mode():
            y = self.model(self.torch.from_numpy(_rows(batch[self.input_name]))).numpy()
        if isinstance(batch, dict):
            return {"output": y}
        import pandas as pd
        return pd.DataFrame({"output": list(y)}, index=batch.index)


def peak_rss_kb():
    """This process's peak resident memory in KiB: VmHWM, which starts afresh at exec (the
    rusage figure keeps the peak of the parent a worker was forked from)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Measured:
    """A batch callable built in the worker (`factory(*args)`) whose results also hold the
    worker's pid and peak resident memory (KiB) on every row."""

    def __init__(self, factory, *args, **kwargs):
        self.predict = factory(*args, **kwargs)

    def __call__(self, batch):
        out = self.predict(batch)
        rows = len(out["output"])
        extra = {"pid": np.full(rows, os.getpid()), "peak_rss_kb": np.full(rows, peak_rss_kb())}
        if isinstance(out, dict):
            out.update(extra)
            return out
        return out.assign(**extra)


def cdnn_predictor(model, input_name="x", num_threads=1):
    from cdnn_runtime.batch import Predictor
    return Predictor(model, input_name=input_name, num_threads=num_threads)


#: model kind -> factory of its batch callable in a worker: (shipped bytes, input column).
FACTORIES = {"cdnn": cdnn_predictor, "torch": TorchPredictor}

_WORKER = None
_BUILT = {}


def install(kind, shipped, input_name):
    """Process-pool initializer: build this worker's callable once."""
    global _WORKER
    _WORKER = Measured(FACTORIES[kind], shipped, input_name, 1)


def predict(batch):
    return _WORKER(batch)


def on_partition(part, kind, model, column):
    """Dask's map_partitions function: the worker's callable, built on its first partition
    from the model it received once (scattered), run on `part`."""
    key = (kind, len(model), hash(model))
    if key not in _BUILT:
        _BUILT[key] = Measured(FACTORIES[kind], model, column, 1)
    return _BUILT[key](part)


def fashion_frame(bounds):
    """Images bounds[0] to bounds[1] as a DataFrame partition: column `x`, one flattened image
    a row (made where the partition lives)."""
    import pandas as pd

    from _scale_model import fashion_images
    start, stop = bounds
    x = fashion_images(stop - start, start)
    return pd.DataFrame({"x": list(x.reshape(len(x), -1))}, index=np.arange(start, stop))
