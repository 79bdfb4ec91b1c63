"""`cdnn compress --train-data --val-data --max-drop`: bad data refused before any training,
a tiny end-to-end search with its report and curve, resuming, and the tiny ResNet-50."""

import json

import numpy as np
import pytest
import torch

from cdnn import budget, budget_data, models, zoo
from cdnn.budget_data import export_fashion_mnist
from cdnn_runtime import InferenceSession
from test_cli import call

#: One level of a tiny search: short enough for a unit test.
TINY = ["--prune-steps", "1", "--retrain-epochs", "1", "--fine-tune-epochs", "1"]


def blobs(n, seed, shape=(1, 28, 28), classes=10):
    """Seeded separable data: one random prototype per class plus noise."""
    protos = np.random.default_rng(0).normal(size=(classes, *shape)).astype(np.float32)
    r = np.random.default_rng(seed)
    y = r.integers(0, classes, n)
    x = protos[y] + 0.8 * r.normal(size=(n, *shape)).astype(np.float32)
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train.npz, val.npz, and source.pt: the user's checkpoint, a LeNet-300-100 trained on
    train.npz for two epochs (the search prunes what it is given)."""
    d = tmp_path_factory.mktemp("budget")
    for name, n, seed in (("train", 400, 1), ("val", 200, 2)):
        x, y = blobs(n, seed)
        np.savez(d / f"{name}.npz", x=x, y=y)
    torch.manual_seed(0)
    net = models.lenet_300_100()
    x, y = blobs(400, 1)
    budget.train_epochs(net, budget_data.Split(x, y, "train"), "top1", 2,
                        budget.BudgetPlan(), seed=0)
    torch.save(net.state_dict(), d / "source.pt")
    return d


def source(data):
    """The command line's model arguments for the trained checkpoint of `data`."""
    return [data / "source.pt", "--model", "cdnn.models:lenet_300_100", "--input-shape",
            "1,1,28,28"]


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started on bad input")
    monkeypatch.setattr(budget, "train_epochs", refuse)


def _bad(d, name, **arrays):
    path = d / f"{name}.npz"
    np.savez(path, **arrays)
    return path


def test_bad_data_is_refused_before_training(data, tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    x, y = blobs(20, 3)
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "x_000.npy", x)
    np.save(shards / "x_001.npy", x)
    np.save(shards / "y_000.npy", y)
    cases = [
        (_bad(tmp_path, "shape", x=x[:, :, :20, :20], y=y),
         "inputs shaped [1, 20, 20] per example, the model takes [1, 28, 28]"),
        (_bad(tmp_path, "labels", x=x, y=np.where(y == 3, 12, y)),
         "label 12 is out of range for the model's 10 outputs (0..9)"),
        (_bad(tmp_path, "negative", x=x, y=np.where(y == 3, -1, y)), "label -1 is out of range"),
        (_bad(tmp_path, "empty", x=x[:0], y=y[:0]), "the split is empty"),
        (_bad(tmp_path, "lengths", x=x, y=y[:-1]), "x holds 20 examples but y 19"),
        (_bad(tmp_path, "noy", x=x), "no array named 'y'"),
        (_bad(tmp_path, "floaty", x=x, y=y.astype(np.float32)), "integer class labels"),
        (shards, "its targets y_001.npy are missing"),
        (tmp_path / "nothing.npz", "no such file or folder"),
    ]
    for path, message in cases:
        for flag in ("--val-data", "--train-data"):
            other = "--train-data" if flag == "--val-data" else "--val-data"
            code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                                flag, path, other, data / f"{other[2:-5]}.npz")
            assert code == 1 and message in err, (path, flag, err)
            assert flag[2:-5] in err, err  # names the split
    # mean squared error: targets shaped like the outputs
    code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                        "--metric", "mse", "--train-data", _bad(tmp_path, "mse", x=x, y=x[:, 0]),
                        "--val-data", data / "val.npz")
    assert code == 1 and "targets shaped [28, 28] per example, the model outputs [10]" in err
    code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                        "--train-data", data / "train.npz")
    assert code == 1 and "needs both --train-data and --val-data" in err
    code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                        "--train-data", data / "train.npz", "--val-data", data / "val.npz",
                        "--recipe", "r.json")
    assert code == 1 and "--recipe: not used when compressing to a budget" in err
    code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                        "--data-hook", "test_budget:nothing_here")
    assert code == 1 and "--data-hook test_budget:nothing_here" in err


def bad_hook(split):
    return {"x": 1}


def test_bad_hook_and_a_budget_the_dense_model_misses(data, tmp_path, capsys):
    code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                        "--data-hook", "test_budget:bad_hook")
    assert code == 1 and "returned dict, not an (x, y) pair" in err
    code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                        "--train-data", data / "train.npz", "--val-data", data / "val.npz",
                        "--min-score", "100.5", "--keep", "0.5", *TINY, "--quiet")
    assert code == 1 and "the dense model itself misses the budget" in err, err
    assert "2-epoch fine-tune" in err and "asks for 100.5" in err
    assert not (tmp_path / "o.cdnn").exists()


def test_end_to_end_report_curve_and_resume(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "net.cdnn"
    args = ["compress", *source(data), "-o", out, "--train-data", data / "train.npz",
            "--val-data", data / "val.npz", "--max-drop", "5", "--keep", "0.2,0.1", *TINY]
    scored = []
    real_score = budget.runtime_score

    def interrupted(*a, **k):  # the run is killed while level 2's file is scored
        scored.append(1)
        if len(scored) == 2:
            raise KeyboardInterrupt
        return real_score(*a, **k)
    monkeypatch.setattr(budget, "runtime_score", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call(capsys, *args)
    assert not out.exists()
    monkeypatch.setattr(budget, "runtime_score", real_score)
    calls = []
    real_train = budget.train_epochs
    monkeypatch.setattr(budget, "train_epochs",
                        lambda *a, **k: (calls.append(a[3]), real_train(*a, **k)))
    code, stdout, err = call(capsys, *args)
    assert code == 0, err
    assert "fair baseline of 2 epochs: done before (resumed)" in err
    assert "fair baseline of 3 epochs: done before (resumed)" in err
    assert "sensitivity: done before" in err
    assert "level 1: file made before (resumed)" in err and "level 2: pruned before" in err
    assert calls == [1]  # level 2's centroid fine-tuning only
    assert "fair baseline" in err and "level 2" in err and "sensitivity" in err
    report = json.loads((tmp_path / "net.budget.json").read_text())
    chosen = report["chosen"]
    # each level against the source trained as long as it was: 2 and 3 epochs
    assert report["fair_baselines"].keys() == {"2", "3"}
    assert report["fair_baseline_epochs"] == chosen["epochs"] == chosen["fair_baseline"]["epochs"]
    assert [p["fair_baseline"]["epochs"] for p in report["points"]] == [
        p["epochs"] for p in report["points"]]
    assert len(report["curve"]["points"]) >= 2
    assert set(chosen["layers"]) == {"fc1", "fc2", "fc3"}
    for layer in chosen["layers"].values():
        assert 0 < layer["density"] <= 1 and layer["bits_why"]["tried"]
        assert "drop_alone_at_density" in layer["density_why"]
    data_bytes = out.read_bytes()
    assert len(data_bytes) == chosen["file_bytes"] == min(
        p["file_bytes"] for p in report["points"] if p["within_budget"])
    # the budget holds through cdnn_runtime on the validation data
    val = np.load(data / "val.npz")
    sess = InferenceSession(data_bytes)
    acc = 100 * float((sess(val["x"]).argmax(1) == val["y"]).mean())
    assert acc == pytest.approx(chosen["validation_score"])
    assert acc >= report["fair_baseline_validation"] - 5
    assert "chosen: level" in stdout and "fc1" in stdout
    if (tmp_path / "net.budget.png").exists():
        assert (tmp_path / "net.budget.png").read_bytes()[:4] == b"\x89PNG"

    # level 2's file made again from its saved pruned net: the same bytes (seeded)
    (tmp_path / "net.cdnn.work" / "level-2.json").unlink()
    calls.clear()
    code, _, err = call(capsys, *args, "--force")
    assert code == 0 and calls == [1], err
    assert out.read_bytes() == data_bytes
    # another run's work directory is refused
    code, _, err = call(capsys, *args[:-6], "--keep", "0.3", *TINY, "--force")
    assert code == 1 and "holds another run" in err


def test_resnet50_tiny_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(budget, "SENSITIVITY_DENSITIES", (0.5, 0.1))
    monkeypatch.setattr(budget, "CONV_BITS", (8, 5))
    monkeypatch.setattr(budget, "MATRIX_BITS", (5, 3))
    torch.manual_seed(0)
    torch.save(zoo.resnet50_tiny().state_dict(), tmp_path / "r.pt")
    for name, n, seed in (("train", 24, 1), ("val", 16, 2)):
        x, y = blobs(n, seed, shape=(3, 32, 32))
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    code, _, err = call(capsys, "compress", tmp_path / "r.pt", "--model",
                        "cdnn.zoo:resnet50_tiny", "--input-shape", "1,3,32,32",
                        "-o", tmp_path / "r.cdnn", "--train-data", tmp_path / "train.npz",
                        "--val-data", tmp_path / "val.npz", "--max-drop", "100",
                        "--keep", "0.5", *TINY, "--quiet")
    assert code == 0, err
    report = json.loads((tmp_path / "r.budget.json").read_text())
    assert len(report["chosen"]["layers"]) == 18
    out = InferenceSession((tmp_path / "r.cdnn").read_bytes())(
        np.load(tmp_path / "val.npz")["x"])
    assert out.shape == (16, 10)


def test_export_fashion_mnist(tmp_path):
    try:
        paths = export_fashion_mnist(tmp_path, val=5000)
    except Exception as exc:  # the data set is not installed here
        pytest.skip(str(exc))
    with np.load(paths["val"]) as v, np.load(paths["test"]) as t:
        assert v["x"].shape == (5000, 1, 28, 28) and v["x"].dtype == np.float32
        assert t["y"].shape == (10000,) and t["y"].dtype == np.int64


def regression_data(split):
    """A data hook: y = x @ W for a fixed W, 4 outputs."""
    r = np.random.default_rng({"train": 1, "val": 2}[split])
    x = r.normal(size=(200, 8)).astype(np.float32)
    w = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    return torch.from_numpy(x), x @ w


def test_mse_through_a_data_hook(tmp_path):
    from cdnn.budget_data import hook_splits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    train, val = hook_splits("test_budget:regression_data")
    plan = budget.BudgetPlan(metric="mse", max_drop=10.0, keep=(0.5,), first_steps=1,
                             retrain_epochs=1, fine_tune_epochs=1)
    res = budget.compress_to_budget(model, train, val, plan, work_dir=tmp_path / "work")
    chosen = res.report["chosen"]
    x, y = val.x, val.y
    mse = float(((InferenceSession(res.data)(x) - y) ** 2).mean())
    assert mse == pytest.approx(chosen["validation_score"], rel=1e-4)
    assert mse <= res.report["fair_baseline_validation"] + 10.0


def test_npy_shard_folder(data, tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    x, y = blobs(30, 4)
    for i in range(3):
        np.save(tmp_path / f"x_{i:03d}.npy", x[10 * i:10 * i + 10])
        np.save(tmp_path / f"y_{i:03d}.npy", y[10 * i:10 * i + 10])
    from cdnn.budget_data import load_split
    split = load_split(str(tmp_path), "train")
    assert split.x.shape == (30, 1, 28, 28) and (split.y == y).all()
    np.save(tmp_path / "x_003.npy", x[:5, :, :14])
    np.save(tmp_path / "y_003.npy", y[:5])
    code, _, err = call(capsys, "compress", "lenet-300-100", "-o", tmp_path / "o.cdnn",
                        "--train-data", tmp_path, "--val-data", data / "val.npz")
    assert code == 1 and "x_003.npy: inputs shaped [1, 14, 28], the first shard's" in err


def test_bits_are_chosen_by_the_predictions_their_sharing_changes():
    """Top-1: a layer's bits cost the share of trial examples whose predicted class the
    sharing alone changes (recomputed here); the fewest bits within the tolerance win, and the
    first candidate over it ends the trials."""
    from cdnn.cluster import kmeans_1d
    from cdnn.compress import layer_kinds
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 40), torch.nn.ReLU(),
                              torch.nn.Linear(40, 6)).eval()
    x, y = blobs(300, 3, shape=(12,), classes=6)
    trial = budget_data.Split(x, y, "trial")
    masks = {n: torch.rand_like(p) < 0.6 for n, p in net.named_parameters()
             if n.endswith("weight")}
    with torch.no_grad():
        for n, p in net.named_parameters():
            if n in masks:
                p.mul_(masks[n])
    kinds = layer_kinds(net, (torch.from_numpy(x[:2]),))
    with torch.no_grad():
        base = net(torch.from_numpy(x)).argmax(1)
    everything = budget.choose_bits(net, masks, kinds, trial, "top1", 100.0, 0)
    for name, got in everything.items():
        assert got["bits"] == budget.MATRIX_BITS[-1]  # nothing is over a 100-point tolerance
        assert [b for b, _ in got["tried"]] == list(budget.MATRIX_BITS)
        w = dict(net.named_parameters())[f"{name}.weight"]
        saved = w.detach().clone()
        mask = masks[f"{name}.weight"] & (saved != 0)
        for bits, cost in got["tried"]:
            res = kmeans_1d(saved[mask].numpy(), 2 ** bits, init="kmeans++", seed=0)
            shared = saved.clone()
            shared[mask] = torch.from_numpy(res.centroids[res.labels].astype(np.float32))
            with torch.no_grad():
                w.copy_(shared)
                changed = 100.0 * float((net(torch.from_numpy(x)).argmax(1) != base)
                                        .float().mean())
                w.copy_(saved)
            assert cost == pytest.approx(changed, abs=1e-4)
    assert max(c for g in everything.values() for _, c in g["tried"]) > 0  # 2 bits change some
    strict = budget.choose_bits(net, masks, kinds, trial, "top1", -1.0, 0)
    for got in strict.values():  # every candidate is over: the first one stays, alone tried
        assert got["bits"] == budget.MATRIX_BITS[0] and len(got["tried"]) == 1
