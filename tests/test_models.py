import gzip

import numpy as np
import pytest
import torch

from cdnn.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD, fashion_mnist, normalize, read_idx
from cdnn.models import (
    DEEP_COMPRESSION_DENSITY,
    MODELS,
    alexnet,
    lenet_5,
    lenet_300_100,
    seeded,
    vgg16,
)
from cdnn_runtime.errors import CdnnDatasetError, CdnnDatasetMissingError

PUBLISHED_PARAMS = {
    "lenet-300-100": 266_610,
    "lenet-5": 431_080,
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
}


def _meta(factory):
    with torch.device("meta"):
        return factory()


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts(name):
    model = _meta(MODELS[name])
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[name]


def test_lenet_names_and_shapes():
    m = seeded(lenet_300_100, 0)
    assert [n for n, _ in m.named_parameters()] == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    m = seeded(lenet_5, 0)
    assert [n for n, _ in m.named_parameters()][::2] == [
        "conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    assert m.fc1.weight.shape == (500, 800)
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_torchvision_names():
    a = _meta(alexnet)
    assert [n for n, _ in a.named_parameters()][::2] == [
        "features.0.weight", "features.3.weight", "features.6.weight", "features.8.weight",
        "features.10.weight", "classifier.1.weight", "classifier.4.weight", "classifier.6.weight"]
    assert isinstance(a.avgpool, torch.nn.AdaptiveAvgPool2d) and a.avgpool.output_size == (6, 6)
    assert sum(isinstance(m, torch.nn.Dropout) for m in a.classifier) == 2
    v = _meta(vgg16)
    weights = [n for n, _ in v.named_parameters()][::2]
    assert len(weights) == 16
    assert weights[0] == "features.0.weight" and weights[12] == "features.28.weight"
    assert weights[13:] == ["classifier.0.weight", "classifier.3.weight", "classifier.6.weight"]


@pytest.mark.parametrize("name", sorted(DEEP_COMPRESSION_DENSITY))
def test_density_tables_name_real_layers(name):
    model = _meta(MODELS[name])
    modules = dict(model.named_modules())
    table = DEEP_COMPRESSION_DENSITY[name]
    weighted = [n for n, m in modules.items() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert sorted(table) == sorted(weighted)
    assert all(0 < d <= 1 for d in table.values())
    assert DEEP_COMPRESSION_DENSITY["vgg16"]["classifier.0"] == 0.04
    assert DEEP_COMPRESSION_DENSITY["alexnet"]["features.0"] == 0.84


def test_seeded_is_deterministic_and_leaves_global_rng():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = seeded(lenet_5, 7)
    b = seeded(lenet_5, 7)
    c = seeded(lenet_5, 8)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert seeded(lenet_300_100, 1, num_classes=3).fc3.out_features == 3


@torch.no_grad()
def test_alexnet_forward():
    m = seeded(alexnet, 0, num_classes=10).eval()
    assert m(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


@torch.no_grad()
def test_vgg16_forward():
    m = seeded(vgg16, 0, num_classes=10).eval()
    assert m(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


# --------------------------------------------------------------------------- Fashion-MNIST reader


def _idx(dtype_code: int, arr: np.ndarray) -> bytes:
    head = bytes([0, 0, dtype_code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return head + arr.tobytes()


def _write_split(root, prefix, n, *, gz, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    for stem, data in ((f"{prefix}-images-idx3-ubyte", _idx(8, images)),
                       (f"{prefix}-labels-idx1-ubyte", _idx(8, labels))):
        path = root / (stem + suffix)
        if gz:
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx(tmp_path, gz):
    images, labels = _write_split(tmp_path, "t10k", 5, gz=gz)
    x, y = fashion_mnist(tmp_path, split="test")
    assert x.dtype == np.float32 and x.shape == (5, 1, 28, 28)
    assert y.dtype == np.int64 and y.tolist() == labels.tolist()
    assert np.array_equal(x[:, 0], images.astype(np.float32) / 255)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_fashion_mnist_env_and_missing(tmp_path, monkeypatch):
    _write_split(tmp_path, "train", 3, gz=True)
    monkeypatch.setenv("CDNN_FASHION_MNIST", str(tmp_path))
    x, y = fashion_mnist()
    assert x.shape == (3, 1, 28, 28)
    with pytest.raises(CdnnDatasetMissingError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist(split="test")
    with pytest.raises(CdnnDatasetMissingError):
        fashion_mnist(tmp_path / "nowhere")
    with pytest.raises(CdnnDatasetError):
        fashion_mnist(tmp_path, split="validation")
    assert issubclass(CdnnDatasetMissingError, FileNotFoundError)


def test_dataset_errors_are_the_runtime_family():
    import cdnn.datasets
    assert cdnn.datasets.CdnnDatasetError is CdnnDatasetError  # the old import still works
    assert cdnn.datasets.CdnnDatasetMissingError is CdnnDatasetMissingError


def test_idx_header_validation(tmp_path):
    good = _idx(8, np.arange(12, dtype=np.uint8).reshape(3, 4))
    p = tmp_path / "a-idx2-ubyte"
    p.write_bytes(good)
    assert read_idx(p).tolist() == np.arange(12).reshape(3, 4).tolist()
    p.write_bytes(_idx(0x0C, np.array([1, -2, 70000], ">i4")))
    assert read_idx(p).tolist() == [1, -2, 70000]
    bad = {
        "magic": b"\x01" + good[1:],
        "type": good[:2] + b"\x07" + good[3:],
        "truncated": good[:-1],
        "too long": good + b"\x00",
        "short header": good[:6],
    }
    for what, data in bad.items():
        p.write_bytes(data)
        with pytest.raises(CdnnDatasetError):
            read_idx(p)
        gz = tmp_path / "b-idx2-ubyte.gz"
        gz.write_bytes(gzip.compress(data))
        with pytest.raises(CdnnDatasetError):
            read_idx(gz)
    huge = bytes([0, 0, 8, 3]) + np.array([2**32 - 1] * 3, ">u4").tobytes()
    gz.write_bytes(gzip.compress(huge))
    with pytest.raises(CdnnDatasetError, match="truncated"):
        read_idx(gz)
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(CdnnDatasetError):
        read_idx(gz)


def test_fashion_mnist_shape_checks(tmp_path):
    _write_split(tmp_path, "train", 4, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(8, np.zeros(3, np.uint8)))
    with pytest.raises(CdnnDatasetError, match="labels"):
        fashion_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(8, np.full(4, 12, np.uint8)))
    with pytest.raises(CdnnDatasetError, match="outside"):
        fashion_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(8, np.zeros((4, 28, 27), np.uint8)))
    with pytest.raises(CdnnDatasetError, match="28, 28"):
        fashion_mnist(tmp_path)


def test_normalize():
    x = np.array([FASHION_MNIST_MEAN, FASHION_MNIST_MEAN + FASHION_MNIST_STD], np.float32)
    np.testing.assert_allclose(normalize(x), [0.0, 1.0], atol=1e-6)
