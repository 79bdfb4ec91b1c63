"""Scale-out: a session that pickles as its file, Predictor on Ray Data, Dask and a process
pool, `cdnn batch` (resume, atomic writes, bad shards), a Ray worker killed mid-job.

The model is the bundled LeNet-5 compressed without retraining; the data 10,000
Fashion-MNIST-sized images from the bundled sample. Ray and Dask run real local clusters,
one per module.
"""

import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest

from _scale_model import compressed_lenet5, fashion_images
from cdnn_runtime import CdnnArgumentError, InferenceSession

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
