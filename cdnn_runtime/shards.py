"""`cdnn batch`: a model over a folder (or glob) of .npy / .npz / Parquet shards, one output
shard per input shard, in a process pool or on a Ray cluster.

A shard's output is written atomically (a temporary file, then a rename), so a job killed at
any point leaves only whole shards; a rerun skips the shards already written (resumable, no
duplicates). A shard that fails (cannot be decoded, or does not fit the model) is reported by
name and the rest go on.

Shards and their outputs: `NAME.npy` (an array fed to the model's one input) and `NAME.npz`
(arrays named by column, as Predictor takes a dict) give `NAME.npz` holding the outputs and
the columns not fed; `NAME.parquet` (a table, as Predictor takes a DataFrame) gives
`NAME.parquet`.
"""

import glob
import io
import os
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np

from .batch import Predictor, install_worker_predictor, worker_predictor
from .errors import CdnnError, CdnnUsageError
from .writer import write_atomic

#: Input shard suffix -> output shard suffix.
SHARD_SUFFIXES = {".npy": ".npz", ".npz": ".npz", ".parquet": ".parquet"}

#: What reading a bad shard raises, by library (numpy, zip, pyarrow's errors are OSError or
#: ValueError subclasses).
_DECODE_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def find_shards(source):
    """The shard paths of a folder (its .npy / .npz / .parquet files) or a glob, sorted."""
    if os.path.isdir(source):
        paths = [os.path.join(source, n) for n in os.listdir(source)]
    else:
        paths = glob.glob(source)
    paths = sorted(p for p in paths if os.path.splitext(p)[1] in SHARD_SUFFIXES
                   and os.path.isfile(p))
    if not paths:
        raise CdnnUsageError(f"{source}: no .npy, .npz or .parquet shards there")
    return paths


def output_path(shard, output_dir):
    stem, suffix = os.path.splitext(os.path.basename(shard))
    return os.path.join(output_dir, stem + SHARD_SUFFIXES[suffix])


def read_shard(path, column):
    """A shard as Predictor's batch: a dict of arrays (.npy under `column`, .npz) or a
    DataFrame (.parquet)."""
    suffix = os.path.splitext(path)[1]
    if suffix == ".npy":
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise ValueError("not a .npy file (it does not start with NumPy's magic string)")
        return {column: np.load(path, allow_pickle=False)}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    import pyarrow.parquet as pq
    return pq.read_table(path).to_pandas()


def encode_shard(result):
    """The bytes of an output shard: .npz for a dict of arrays, Parquet for a DataFrame."""
    buf = io.BytesIO()
    if isinstance(result, dict):
        np.savez(buf, **result)
    else:
        result.to_parquet(buf, index=False)
    return buf.getvalue()


def process_shard(predictor, shard, output_dir):
    """Run one shard and write its output atomically: (shard, rows, error text or None)."""
    name = os.path.basename(shard)
    column = next(iter(predictor.columns.values()))
    try:
        batch = read_shard(shard, column)
    except _DECODE_ERRORS as exc:
        return shard, 0, f"{name}: cannot be decoded ({type(exc).__name__}: {exc})"
    try:
        result = predictor(batch)
    except CdnnError as exc:
        return shard, 0, f"{name}: {exc}"
    write_atomic(output_path(shard, output_dir), encode_shard(result))
    return shard, len(batch) if not isinstance(batch, dict) else len(batch[column]), None


def _process_in_worker(shard, output_dir):
    return process_shard(worker_predictor(), shard, output_dir)


def run_batch(model, source, output_dir, *, workers=1, ray_address=None, input_name=None,
              output_names=None, num_threads=None, progress=None):
    """Run `model` (a path, the file's bytes, a session, or a Predictor whose settings then
    rule) over the shards of `source` (a folder or a glob) into `output_dir`.

    Locally in this process (`workers=1`) or a pool of `workers` processes; on the Ray cluster
    at `ray_address` when given (the shards and `output_dir` on storage every node sees).
    `progress` (a ShardProgress) counts the shards done. Returns a dict: `shards`,
    `skipped` (already written), `done`, `rows`, `failed` (one message per bad shard), the
    output paths by shard in `outputs`, and `seconds`.
    """
    t0 = time.perf_counter()
    shards = find_shards(source)
    outputs = {s: output_path(s, output_dir) for s in shards}
    seen = {}
    for s, o in outputs.items():
        if o in seen:
            raise CdnnUsageError(f"{os.path.basename(seen[o])} and {os.path.basename(s)} would "
                                 f"both write {os.path.basename(o)}")
        seen[o] = s
    os.makedirs(output_dir, exist_ok=True)
    todo = [s for s in shards if not os.path.exists(outputs[s])]
    if num_threads is None and workers > 1:
        num_threads = max(1, (os.cpu_count() or 1) // workers)
    predictor = model if isinstance(model, Predictor) else \
        Predictor(model, input_name, output_names, num_threads)
    progress = progress or ShardProgress(quiet=True)
    progress.start(len(todo))
    results = []
    if ray_address is not None:
        results = _on_ray(predictor, todo, output_dir, ray_address, progress)
    elif workers == 1 or len(todo) <= 1:
        for s in todo:
            results.append(process_shard(predictor, s, output_dir))
            progress(os.path.basename(s))
    else:
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn"),
                                 initializer=install_worker_predictor,
                                 initargs=(predictor,)) as pool:
            futures = [pool.submit(_process_in_worker, s, output_dir) for s in todo]
            for f in as_completed(futures):
                results.append(f.result())
                progress(os.path.basename(results[-1][0]))
    failed = sorted(err for _, _, err in results if err)
    return {"shards": len(shards), "skipped": len(shards) - len(todo),
            "done": sum(1 for _, _, err in results if not err),
            "rows": sum(rows for _, rows, _ in results), "failed": failed,
            "outputs": {s: outputs[s] for s in shards if os.path.exists(outputs[s])},
            "seconds": time.perf_counter() - t0}


def _on_ray(predictor, shards, output_dir, address, progress):
    """Each shard a Ray task (retried by Ray when its worker dies); the predictor goes to the
    object store once, as the model's bytes."""
    import ray
    if not ray.is_initialized():
        ray.init(address=address)
    shipped = ray.put(predictor)
    task = ray.remote(max_retries=3, retry_exceptions=False)(_ray_shard)
    pending = [task.remote(shipped, s, output_dir) for s in shards]
    results = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        results.append(ray.get(done[0]))
        progress(os.path.basename(results[-1][0]))
    return results


def _ray_shard(predictor, shard, output_dir):
    return process_shard(predictor, shard, output_dir)


class ShardProgress:
    """Shards done on stderr: a tqdm bar on a terminal (when tqdm is installed), a timed line
    per shard elsewhere, nothing when quiet."""

    def __init__(self, *, quiet=False, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = self.count = 0
        self.bar = None
        self.t0 = time.perf_counter()

    def start(self, total):
        self.total = total
        if self.quiet or not total:
            return
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        if tty:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, desc="  batch", unit="shard", file=self.stream,
                            dynamic_ncols=True)

    def __call__(self, name):
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update(1)
        elif not self.quiet:
            print(f"  [{time.perf_counter() - self.t0:6.1f} s] {self.count}/{self.total} {name}",
                  file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
