"""Scale-out: a session that pickles as its file, Predictor on Ray Data, Dask and a process
pool, `cdnn batch` (resume, atomic writes, bad shards), a Ray worker killed mid-job.

The model is the bundled LeNet-5 compressed without retraining; the data 10,000
Fashion-MNIST-sized images from the bundled sample. Ray and Dask run real local clusters,
one per module.
"""

import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest

from _scale_model import compressed_lenet5, fashion_images
from cdnn_runtime import CdnnArgumentError, CdnnUsageError, InferenceSession, writer
from cdnn_runtime import cli as runtime_cli
from cdnn_runtime.batch import Predictor, predict_in_processes
from cdnn_runtime.shards import ShardProgress, run_batch

IMAGES = 10_000
PARQUET_SHARDS = 8
NO_RAY = "ray[data] is not installed (pip install 'cdnn[scale]'; CI installs it with [dev])"
NO_DASK = "dask[distributed] is not installed (pip install 'cdnn[scale]'; CI installs it)"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "lenet5.cdnn"
    compressed_lenet5(path)
    return str(path)


@pytest.fixture(scope="module")
def images():
    return fashion_images(IMAGES)


@pytest.fixture(scope="module")
def reference(model, images):
    """The outputs of a single-process run over every image."""
    return InferenceSession(model)(images)


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory, images):
    """The images as Parquet shards: an id column and the image flattened (a list column)."""
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    folder = tmp_path_factory.mktemp("parquet")
    for k, ids in enumerate(np.array_split(np.arange(IMAGES), PARQUET_SHARDS)):
        frame = pd.DataFrame({"id": ids, "image": list(images[ids].reshape(len(ids), -1))})
        frame.to_parquet(folder / f"part-{k:02d}.parquet", index=False)
    return folder


# ---- the session travels ---------------------------------------------------------------------
def _outputs_in_child(session, x):
    return os.getpid(), session(x)


def test_session_pickles_as_its_bytes_and_runs_the_same_in_two_processes(model, images):
    data = open(model, "rb").read()
    sess = InferenceSession(data, num_threads=1)
    shipped = pickle.dumps(sess)
    assert len(data) < len(shipped) < len(data) + 1000  # the file and the options, no more
    x = images[:64]
    pids, outs = set(), []
    for _ in range(2):  # two spawned processes, each rebuilding the session from the bytes
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            pid, y = pool.submit(_outputs_in_child, sess, x).result()
        pids.add(pid)
        outs.append(y)
    assert len(pids) == 2 and os.getpid() not in pids
    assert np.array_equal(outs[0], outs[1])  # bit for bit
    assert np.array_equal(outs[0], sess(x))
    again = pickle.loads(shipped)
    assert again.num_threads == 1 and np.array_equal(again(x), outs[0])


def test_session_ships_its_path_when_asked(model, images, tmp_path):
    sess = InferenceSession(model, ship="path")
    shipped = pickle.dumps(sess)
    assert len(shipped) < 500 and os.path.abspath(model).encode() in shipped
    assert np.array_equal(pickle.loads(shipped)(images[:8]), sess(images[:8]))
    with pytest.raises(CdnnArgumentError, match="made from bytes"):
        InferenceSession(open(model, "rb").read(), ship="path")
    with pytest.raises(CdnnArgumentError, match="ship must be one of bytes, path"):
        InferenceSession(model, ship="file")
    moved = tmp_path / "gone.cdnn"
    moved.write_bytes(open(model, "rb").read())
    away = pickle.dumps(InferenceSession(moved, ship="path"))
    moved.unlink()
    with pytest.raises(FileNotFoundError):  # the path must be readable where it is unpickled
        pickle.loads(away)


# ---- Predictor -------------------------------------------------------------------------------
def test_predictor_on_a_dict_and_a_dataframe(model, images, reference):
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    pred = Predictor(model)
    x = images[:100]
    out = pred({"x": x, "id": np.arange(100)})
    assert sorted(out) == ["id", "output"] and np.array_equal(out["output"], reference[:100])
    flat = Predictor(open(model, "rb").read(), input_name="image")(
        {"image": x.reshape(100, -1)})  # flattened rows take the file's input shape
    assert np.array_equal(flat["output"], reference[:100])
    frame = pd.DataFrame({"id": np.arange(100), "image": list(x.reshape(100, -1))},
                         index=np.arange(500, 600))
    pred = Predictor(model, input_name="image")
    got = pred(frame)
    assert list(got.columns) == ["id", "output"] and list(got.index) == list(frame.index)
    assert np.array_equal(np.stack(got["output"]), reference[:100])
    meta = pred.meta(frame)
    assert list(meta.columns) == ["id", "output"] and len(meta) == 0
    assert meta["output"].dtype == object
    empty = pred(frame.iloc[:0])
    assert list(empty.columns) == ["id", "output"] and len(empty) == 0


def test_predictor_refuses_what_it_cannot_feed(model, images):
    pred = Predictor(model)
    with pytest.raises(CdnnArgumentError, match="no column 'x'.*its columns are image"):
        pred({"image": images[:4]})
    with pytest.raises(CdnnArgumentError, match="uint8.*takes float32"):
        pred({"x": (images[:4] * 255).astype(np.uint8)})
    with pytest.raises(CdnnArgumentError, match="holds text.*convert-string"):
        pred({"x": np.array(["[0.1, 0.2]"] * 4)})
    with pytest.raises(CdnnArgumentError, match=r"column\(s\) x: input 'x' has shape"):
        pred({"x": images[:4, :, :20]})
    with pytest.raises(CdnnArgumentError, match="unknown output 'logits'"):
        Predictor(model, output_names=["logits"])
    with pytest.raises(CdnnArgumentError, match="model must be a path"):
        Predictor(42)
    with pytest.raises(CdnnArgumentError, match="dict of numpy arrays or a pandas DataFrame"):
        pred([images[:4]])


def test_predictor_pickles_once_per_process(model):
    pred = Predictor(model)
    first, second = pickle.loads(pickle.dumps(pred)), pickle.loads(pickle.dumps(pred))
    assert first.session is second.session  # built once, then taken from the process's cache


def test_batch_module_imports_no_engine():
    code = ("import sys, cdnn_runtime.batch, cdnn_runtime.shards; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'ray', 'dask', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_process_pool_recipe(model, images, reference):
    batches = [{"x": images[k:k + 250], "id": np.arange(k, k + 250)} for k in range(0, 1000, 250)]
    got = list(predict_in_processes(model, batches, workers=2))
    assert [list(b["id"][:1]) for b in got] == [[0], [250], [500], [750]]  # in order
    assert np.array_equal(np.concatenate([b["output"] for b in got]), reference[:1000])


# ---- cdnn batch ------------------------------------------------------------------------------
def _npy_shards(folder, images, count=4, size=50):
    folder.mkdir(exist_ok=True)
    for k in range(count):
        np.save(folder / f"s{k}.npy", images[k * size:(k + 1) * size])
    return folder


def _shard_outputs(folder, count=4):
    return np.concatenate([np.load(folder / f"s{k}.npz")["output"] for k in range(count)])


def test_batch_command_help(capsys):
    with pytest.raises(SystemExit) as exc:
        runtime_cli.main(["batch", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "cdnn batch model.cdnn --input shards/" in out
    assert "--ray ADDRESS" in out and "resumes" in out


def test_batch_command_resumes(model, images, reference, tmp_path, capsys):
    source, out = _npy_shards(tmp_path / "in", images), tmp_path / "out"
    assert runtime_cli.main(["batch", model, "--input", str(source), "--output", str(out)]) == 0
    assert "4 shard(s) written" in capsys.readouterr().out
    assert np.array_equal(_shard_outputs(out), reference[:200])
    (out / "s2.npz").unlink()
    kept = os.stat(out / "s1.npz")
    assert runtime_cli.main(["batch", model, "--input", str(source / "*.npy"), "--output",
                             str(out), "--json", "--quiet"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert (rep["done"], rep["skipped"], rep["failed"], rep["rows"]) == (1, 3, [], 50)
    assert os.stat(out / "s1.npz").st_mtime_ns == kept.st_mtime_ns  # not written again
    assert np.array_equal(_shard_outputs(out), reference[:200])


def test_batch_command_writes_each_shard_whole(model, images, reference, tmp_path,
                                               monkeypatch):
    """A job that dies while writing its third shard leaves two whole shards and no partial
    file; the rerun writes the rest."""
    source, out = _npy_shards(tmp_path / "in", images), tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def dying_fsync(fd):
        calls.append(fd)
        if len(calls) == 5:  # two shards done (file and folder each), the third mid-write
            raise KeyboardInterrupt
        return real_fsync(fd)

    monkeypatch.setattr(writer.os, "fsync", dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        run_batch(model, str(source), str(out))
    monkeypatch.setattr(writer.os, "fsync", real_fsync)
    assert sorted(os.listdir(out)) == ["s0.npz", "s1.npz"]  # no temporary file left
    rep = run_batch(model, str(source), str(out))
    assert (rep["done"], rep["skipped"]) == (2, 2)
    assert np.array_equal(_shard_outputs(out), reference[:200])


def test_batch_command_reports_bad_shards_and_goes_on(model, images, reference, tmp_path):
    source, out = _npy_shards(tmp_path / "in", images), tmp_path / "out"
    (source / "broken.npy").write_bytes(b"\x93NUMPY not really")
    (source / "text.npy").write_bytes(b"id,image\n")
    np.savez(source / "columns.npz", image=images[:3])  # no column named like the input
    exe = os.path.join(os.path.dirname(sys.executable), "cdnn")
    r = subprocess.run([exe, "batch", model, "--input", source, "--output", out, "--workers",
                        "2"], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "error: broken.npy: cannot be decoded" in r.stderr
    assert "error: columns.npz: the batch has no column 'x'" in r.stderr
    assert "error: text.npy: cannot be decoded (ValueError: not a .npy file" in r.stderr
    assert "4 shard(s) written" in r.stdout and "3 failed" in r.stdout
    assert sorted(os.listdir(out)) == [f"s{k}.npz" for k in range(4)]
    assert np.array_equal(_shard_outputs(out), reference[:200])


def test_batch_progress_lines_and_bar():
    lines = io.StringIO()
    progress = ShardProgress(stream=lines)
    progress.start(2)
    progress("a.npy")
    progress("b.npz")
    progress.close()
    assert re.fullmatch(r"  \[ *[0-9.]+ s\] 1/2 a.npy\n  \[ *[0-9.]+ s\] 2/2 b.npz\n",
                        lines.getvalue())

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    pytest.importorskip("tqdm")
    screen = Terminal()
    progress = ShardProgress(stream=screen)
    progress.start(2)
    progress("a.npy")
    progress.close()
    assert "1/2" in screen.getvalue() and "shard" in screen.getvalue()
    quiet = io.StringIO()
    progress = ShardProgress(stream=quiet, quiet=True)
    progress.start(2)
    progress("a.npy")
    assert quiet.getvalue() == ""


def test_batch_command_usage_errors(model, tmp_path):
    with pytest.raises(CdnnUsageError, match="no .npy, .npz or .parquet shards"):
        run_batch(model, str(tmp_path), str(tmp_path / "out"))
    np.save(tmp_path / "a.npy", np.zeros((1, 1, 28, 28), np.float32))
    np.savez(tmp_path / "a.npz", x=np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(CdnnUsageError, match="a.npy and a.npz would both write a.npz"):
        run_batch(model, str(tmp_path), str(tmp_path / "out"))


def test_batch_command_on_parquet(model, reference, parquet_dir, tmp_path):
    pd = pytest.importorskip("pandas")
    rep = run_batch(model, str(parquet_dir / "part-0[01].parquet"), str(tmp_path),
                    input_name="image")
    assert rep["done"] == 2 and rep["rows"] == 2 * IMAGES // PARQUET_SHARDS
    got = pd.concat([pd.read_parquet(p) for p in sorted(rep["outputs"].values())])
    assert list(got.columns) == ["id", "output"]
    assert np.array_equal(np.stack(got["output"]), reference[got["id"].to_numpy()])


# ---- Ray -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason=NO_RAY)
    pytest.importorskip("ray.data", reason=NO_RAY)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    # the test's own classes go to the workers by value (the tests folder is not on their path)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def _ray_predictions(ds):
    ids, outs = [], []
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        ids.append(batch["id"])
        outs.append(batch["output"])
    return np.concatenate(ids), np.concatenate(outs)


def test_ray_data_recipe(ray_cluster, model, reference, parquet_dir):
    ds = ray_cluster.data.read_parquet(str(parquet_dir)).repartition(PARQUET_SHARDS)
    preds = ds.map_batches(Predictor, fn_constructor_kwargs={
        "model": open(model, "rb").read(), "input_name": "image", "num_threads": 1},
        compute=ray_cluster.data.ActorPoolStrategy(size=2), batch_size=1000, num_cpus=0.5)
    ids, outs = _ray_predictions(preds)
    assert sorted(ids.tolist()) == list(range(IMAGES))
    assert np.array_equal(outs, reference[ids])


class KillingPredictor(Predictor):
    """A Predictor whose process dies (SIGKILL) in the middle of the job, once: the first
    batch past image 4,000 finds no marker file, makes it and kills its own worker."""

    def __init__(self, model, marker, **kwargs):
        super().__init__(model, **kwargs)
        self.marker = marker

    def __call__(self, batch):
        if batch["id"][0] >= 4000:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(batch)


def test_ray_worker_killed_mid_job_is_retried(ray_cluster, model, reference, parquet_dir,
                                              tmp_path):
    marker = tmp_path / "killed"
    ds = ray_cluster.data.read_parquet(str(parquet_dir)).repartition(PARQUET_SHARDS)
    preds = ds.map_batches(KillingPredictor, fn_constructor_kwargs={
        "model": open(model, "rb").read(), "marker": str(marker), "input_name": "image",
        "num_threads": 1}, compute=ray_cluster.data.ActorPoolStrategy(size=2), batch_size=500,
        num_cpus=0.5)
    ids, outs = _ray_predictions(preds)
    assert marker.exists()  # a worker did die
    assert len(ids) == IMAGES and sorted(ids.tolist()) == list(range(IMAGES))  # no duplicates
    assert np.array_equal(outs, reference[ids])


class ShardKillingPredictor(Predictor):
    """A Predictor whose Ray task worker dies (SIGKILL) on the first shard it runs, once."""

    def __init__(self, model, marker):
        super().__init__(model)
        self.marker = marker

    def __reduce__(self):
        return ShardKillingPredictor, (self.session, self.marker)

    def __call__(self, batch):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().__call__(batch)
        os.kill(os.getpid(), signal.SIGKILL)


def test_batch_command_on_ray_with_a_worker_killed(ray_cluster, model, images, reference,
                                                   tmp_path):
    source, out = _npy_shards(tmp_path / "in", images), tmp_path / "out"
    marker = tmp_path / "killed"
    rep = run_batch(ShardKillingPredictor(model, str(marker)), str(source), str(out),
                    ray_address="auto")
    assert marker.exists()  # a task's worker did die, and Ray ran the shard again
    assert (rep["done"], rep["failed"]) == (4, [])
    assert sorted(os.listdir(out)) == [f"s{k}.npz" for k in range(4)]  # whole, no leftovers
    assert np.array_equal(_shard_outputs(out), reference[:200])


# ---- Dask ------------------------------------------------------------------------------------
def test_dask_recipe(model, reference, parquet_dir):
    pytest.importorskip("distributed", reason=NO_DASK)
    dd = pytest.importorskip("dask.dataframe", reason=NO_DASK)
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        ddf = dd.read_parquet(str(parquet_dir))
        pred = Predictor(model, input_name="image", num_threads=1)
        got = ddf.map_partitions(pred, meta=pred.meta(ddf)).compute()
    ids = got["id"].to_numpy()
    assert sorted(ids.tolist()) == list(range(IMAGES))
    assert np.array_equal(np.stack(got["output"]), reference[ids])



# ---- the benchmark's estimate ----------------------------------------------------------------
def test_bench_estimate_of_a_100_node_job():
    from bench_scale import estimate
    run = {"engine": "ray", "model": "cdnn", "first_result_s": 6.0}
    report = {"machine": {"cpu_count": 2}, "shipped_bytes_per_worker": {"cdnn": 50_000},
              "runs": [{**run, "workers": 1, "steady_images_per_s": 1000.0},
                       {**run, "workers": 2, "steady_images_per_s": 2000.0}]}
    (row,) = estimate(report)["rows"]
    assert row["node_images_per_s"] == 2000.0  # the node's cores as workers, as measured
    assert row["minutes"] == pytest.approx((1e8 / (100 * 2000.0) + 6.0) / 60)
    assert row["shipped_bytes"] == 100 * 2 * 50_000
    report["runs"].pop()  # one worker measured: its rate times the cores
    assert estimate(report)["rows"][0]["node_images_per_s"] == 2000.0
