"""Compile the whole kernel set once, so that no model compiles anything later.

Numba compiles a kernel the first time a process calls it with new argument types and keeps the
result in its on-disk cache (cdnn_runtime/_jit.py). Which kernels a model calls depends on its
ops, on its layers' sizes (a serial or a threaded variant, chosen against work thresholds) and
on its streams (a parallel Huffman decoder for long ones), so each new architecture used to pay
compilation again. :func:`warmup` runs files that hold every op of the vocabulary (the fuzz
seeds `seed_graph_ops`, `seed_mixed_streams`, `seed_big_parallel`) twice, once with every
threshold at 0 and once with every threshold out of reach, at batches of 1 and 9: every variant
of every kernel compiles and lands in the cache. A model loaded after it, in any process that
uses the same cache directory, compiles nothing (:func:`compiled_signatures` counts it;
tests/test_warmup.py checks it on several architectures).
"""

import contextlib
import sys
import time

import numpy as np

#: (module, name) of every size threshold that picks a kernel variant.
THRESHOLDS = (
    ("cdnn_runtime.kernels.sparse_conv", "SPLIT_PARALLEL_MIN"),
    ("cdnn_runtime.kernels.sparse_conv", "CONV_PARALLEL_MIN_WORK"),
    ("cdnn_runtime.kernels.pooling", "POOL_PARALLEL_MIN"),
    ("cdnn_runtime.kernels._common", "PARALLEL_MIN_WORK"),
    ("cdnn_runtime.kernels._common", "ELEMENTWISE_PARALLEL_MIN"),
    ("cdnn_runtime.kernels._common", "CHECK_PARALLEL_MIN"),
    ("cdnn_runtime.kernels.sparse_linear", "TRANSPOSED_MIN_BATCH"),
    ("cdnn_runtime.huffman", "PARALLEL_MIN_SYMBOLS"),
)



def compiled_signatures():
    """How many kernel signatures this process has compiled (not loaded from the cache), over
    every numba dispatcher of cdnn_runtime's modules."""
    from numba.core.registry import CPUDispatcher
    total = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("cdnn_runtime") and module is not None:
            for value in vars(module).values():
                if isinstance(value, CPUDispatcher):
                    total += sum(value.stats.cache_misses.values())
    return total


@contextlib.contextmanager
def _thresholds(value):
    """Every threshold of THRESHOLDS set to `value` for the duration."""
    import importlib
    saved = []
    try:
        for module_name, attr in THRESHOLDS:
            module = importlib.import_module(module_name)
            saved.append((module, attr, getattr(module, attr)))
            setattr(module, attr, value)
        yield
    finally:
        for module, attr, old in saved:
            setattr(module, attr, old)


def _feed(session, batch):
    """Inputs for `session` at `batch`: normal floats, zero ids, free dims at 2."""
    from .session import _TYPE_NAMES
    rng = np.random.default_rng(0)
    feed = {}
    for spec in session.get_inputs():
        shape = [batch if spec.shape[0] is None else spec.shape[0]]
        shape += [d if isinstance(d, int) else 2 for d in spec.shape[1:]]
        dtype = {t: np.dtype(name) for name, t in _TYPE_NAMES.items()}[spec.type]
        feed[spec.name] = rng.standard_normal(shape).astype(dtype) if dtype == np.float32 \
            else np.zeros(shape, dtype)
    return feed


def warmup(progress=None):
    """Compile every kernel variant into the cache; returns {"seconds", "compiled"} (the
    signatures compiled here: 0 when the cache was already warm)."""
    t0 = time.perf_counter()
    before = compiled_signatures()
    from ._jit import every_variant
    with every_variant():  # the seeds' encoding too: _chunk_bits_serial
        _run_seeds(progress)
    return {"seconds": time.perf_counter() - t0, "compiled": compiled_signatures() - before}


def _run_seeds(progress):
    """Make the seed files and run them with every threshold at 0, then out of reach."""
    from .reader import read
    from .session import InferenceSession
    from .testing.fuzz.seeds import seed_big_parallel, seed_graph_ops, seed_mixed_streams
    seeds = {"graph_ops": seed_graph_ops(), "mixed_streams": seed_mixed_streams(),
             "big_parallel": seed_big_parallel()}
    for label, value in (("threaded", 0), ("serial", 1 << 62)):
        with _thresholds(value):
            for name, data in seeds.items():
                if progress is not None:
                    progress(f"{label} kernels: {name}")
                f = read(data)
                if f.graph is None:  # streams only: decode every tensor
                    for t in f.tensors:
                        f.sparse(t.name) if t.encoding == "sparse_codebook" else f.raw(t.name)
                    continue
                session = InferenceSession(data)
                for batch in (1, 9):
                    session.run(None, _feed(session, batch))
