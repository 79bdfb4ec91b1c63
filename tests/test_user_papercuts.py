"""What a new user met on the demo model (issue 21): output shapes and names, the mode of a
written file, a codebook larger than its layer, the clipped bytes chart, `run` on an int64
array."""

import io
import os
import stat
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn.capture import FixedBatchWarning, capture
from cdnn.compress import compress
from cdnn_runtime import load
from cdnn_runtime.cli import main as runtime_main
from cdnn_runtime.report import inspect_report, load_inspect, print_inspect
from cdnn_runtime.writer import write_atomic


class SmallConvNet(nn.Module):
    """LeNet-5's first layers at small size: conv1 has 20x1x5x5 weights, so that at the
    deep-compression preset's density its surviving weights are fewer than 4 bytes of
    codebook per 8-bit code."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.fc = nn.Linear(20 * 4 * 4, 10)

    def forward(self, image):
        h = F.max_pool2d(F.relu(self.conv1(image)), 2)
        return self.fc(h.flatten(1))


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, features):
        h = self.fc(features)
        return h, torch.relu(h)[:, :2]


class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(x).reshape(2, 2, 2)


def _seeded(cls):
    torch.manual_seed(0)
    return cls().eval()


@pytest.fixture(scope="module")
def small_conv():
    """(model, example, compressed at the deep-compression preset)."""
    model = _seeded(SmallConvNet)
    x = torch.randn(1, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    return model, x, compress(model, x, preset="deep-compression")


# ---- 1. output shapes and names --------------------------------------------------------------

def test_one_output_is_named_output_with_its_full_shape(small_conv, tmp_path):
    _, _, packed = small_conv
    sess = load(packed.to_bytes())
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [("image", [None, 1, 12, 12])]
    assert [(o.name, o.shape) for o in sess.get_outputs()] == [("output", [None, 10])]
    assert sess.run(None, {"image": np.zeros((3, 1, 12, 12), np.float32)})[0].shape == (3, 10)
    path = tmp_path / "small.cdnn"
    packed.save(path)
    _, rep = load_inspect(path)
    assert rep["graph"]["outputs"] == [{"name": "output", "shape": [None, 10]}]
    out = io.StringIO()
    print_inspect(rep, out)
    assert "inputs image [N, 1, 12, 12]; outputs output [N, 10]" in out.getvalue()


def test_several_outputs_are_numbered_and_user_names_win():
    model = _seeded(TwoOutputs)
    x = torch.randn(1, 6)
    recipe = {"*": {"density": 1.0, "bits": 8}}
    sess = load(compress(model, x, recipe).to_bytes())
    assert [(o.name, o.shape) for o in sess.get_outputs()] == \
        [("output_0", [None, 4]), ("output_1", [None, 2])]
    named = load(compress(model, x, recipe, output_names=["logits", "top"]).to_bytes())
    assert [(o.name, o.shape) for o in named.get_outputs()] == \
        [("logits", [None, 4]), ("top", [None, 2])]
    assert [i.name for i in named.get_inputs()] == ["features"]


def test_default_output_name_does_not_take_another_value():
    class NamedOutput(nn.Module):
        def forward(self, output):
            return output * 2
    cap = capture(NamedOutput().eval(), (torch.randn(1, 3),))
    assert cap.graph["inputs"][0]["name"] == "output"
    assert cap.graph["outputs"][0]["name"] == "output_"
    assert cap.graph["nodes"][-1]["outputs"] == ["output_"]


def test_fixed_batch_output_shape_is_all_numbers():
    model = _seeded(FixedBatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FixedBatchWarning)
        packed = compress(model, torch.randn(2, 6), {"*": {"density": 1.0, "bits": 8}})
    sess = load(packed.to_bytes())
    assert sess.get_inputs()[0].shape == [2, 6]
    assert sess.get_outputs()[0].shape == [2, 2, 2]


# ---- 2. the mode of a written file ----------------------------------------------------------

@pytest.fixture
def umask():
    """Set the process's umask for one test, restored after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_new_file_gets_mode_of_plain_open_under_umask(tmp_path, umask, mask):
    umask(mask)
    target = tmp_path / "model.cdnn"
    write_atomic(target, b"data")
    plain = tmp_path / "plain"
    with open(plain, "w"):
        pass
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_overwrite_keeps_existing_mode(tmp_path, umask, small_conv):
    umask(0o077)
    target = tmp_path / "model.cdnn"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    _, _, packed = small_conv
    packed.save(target)  # what `cdnn compress --force` calls
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() == packed.to_bytes()


# ---- 3. a codebook larger than its layer ----------------------------------------------------

def test_small_layer_gets_bits_whose_codebook_does_not_outweigh_its_codes(small_conv):
    _, _, packed = small_conv
    conv1 = packed.layers["conv1"]
    n = conv1.codes.size
    assert 0 < n < 4 * 256  # at 8 bits the codebook would outweigh the codes
    assert conv1.bits < 8 and conv1.codebook.size <= 2 ** conv1.bits
    assert 4 * conv1.codebook.size <= n * conv1.bits / 8
    assert 4 * 2 ** (conv1.bits + 1) > n * (conv1.bits + 1) / 8  # lowered no further
    row = {r["layer"]: r for r in packed.report()["layers"]}["conv1"]
    assert row["codebook_size"] == conv1.codebook.size
    assert "bits 8 ->" in row["bits_note"] and "outweighed" in row["bits_note"]
    assert f"conv1: bits 8 -> {conv1.bits}" in packed.format_report()
    recorded = packed.file.metadata["recipe"]["layers"]["conv1"]
    assert recorded["bits"] == conv1.bits and recorded["bits_note"] == row["bits_note"]
    fc = packed.layers["fc"]  # 32 centroids for ~320 codes: kept at the preset's 5 bits
    assert fc.bits == 5 and fc.bits_note is None


@pytest.mark.parametrize("recipe", [{"conv1": {"bits": 8}}, {"conv*": {"bits": 8}},
                                    {"kind:conv2d": {"bits": 8}}])
def test_bits_a_recipe_names_are_kept(small_conv, recipe):
    model, x, _ = small_conv
    packed = compress(model, x, recipe, preset="deep-compression")
    conv1 = packed.layers["conv1"]
    assert conv1.bits == 8 and conv1.bits_note is None
    assert conv1.codebook.size == min(256, conv1.codes.size) > 2 ** 7
    assert "bits_note" not in {r["layer"]: r for r in packed.report()["layers"]}["conv1"]


# ---- 4. the bytes-per-layer chart -----------------------------------------------------------

def test_bytes_chart_holds_every_bar_and_label(small_conv):
    pytest.importorskip("matplotlib")
    from cdnn.plots import inspect_figure
    _, _, packed = small_conv
    f = packed.file
    rep = inspect_report(f, packed.nbytes)
    fig = inspect_figure(f, rep)
    ax = fig.axes[-1]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    lo, hi = ax.get_ylim()
    tops = [p.get_y() + p.get_height() for p in ax.patches]
    assert max(tops) < hi
    box = ax.get_window_extent(renderer)
    labels = [t for t in ax.texts]
    assert len(labels) == len(rep["layers"]) + 1  # a total per bar
    for t in labels:
        e = t.get_window_extent(renderer)
        assert box.y0 <= e.y0 and e.y1 <= box.y1 and box.x0 <= e.x0 and e.x1 <= box.x1, \
            t.get_text()
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(box) or legend.x0 >= box.x1 - 1  # beside the bars


# ---- 5. `run` on an integer array -----------------------------------------------------------

@pytest.fixture(scope="module")
def small_file(small_conv, tmp_path_factory):
    path = tmp_path_factory.mktemp("papercuts") / "small.cdnn"
    small_conv[2].save(path)
    return path


def _run(capsys, *args):
    code = runtime_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_converts_exact_int64_saying_so(small_file, tmp_path, capsys):
    x = np.random.default_rng(0).integers(0, 255, (2, 1, 12, 12)).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(capsys, "run", small_file, "--input", tmp_path / "x.npy",
                          "--output", tmp_path / "y.npy")
    assert code == 0, err
    assert "input 'image': int64 converted to float32" in err
    assert "output: shape [2, 10]" in out
    want = load(str(small_file)).run(None, {"image": x.astype(np.float32)})[0]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


@pytest.mark.parametrize("array, words", [
    (np.full((1, 1, 12, 12), 2 ** 24 + 1, np.int64), ["int64", "cannot hold exactly"]),
    (np.zeros((1, 1, 12, 12), np.float64), ["float64", "float32"]),
])
def test_run_refuses_what_float32_cannot_take_as_is(small_file, tmp_path, capsys, array,
                                                    words):
    np.save(tmp_path / "x.npy", array)
    code, out, err = _run(capsys, "run", small_file, "--input", tmp_path / "x.npy")
    assert code == 1 and out == ""
    assert "input 'image'" in err and all(w in err for w in words), err
