"""`cdnn-runtime warmup` compiles every kernel variant once: afterwards, in fresh processes with
the same cache directory, loading and running architectures never seen before compiles
nothing (numba's dispatchers count the signatures they compiled)."""

import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch import nn

from cdnn import compress, models, zoo
from cdnn.zoo_sequence import SEQUENCE_FAMILIES


class _Wide(nn.Module):
    """Layers big enough for the threaded kernels and the parallel Huffman decoder: a depthwise
    5x5 and a strided 11x11 convolution over a 96x96 image, adaptive pooling, a 2304 x 1024
    linear layer."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(3, 3, 5, padding=2, groups=3)
        self.conv = nn.Conv2d(3, 64, 11, stride=4, padding=2)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.fc = nn.Linear(64 * 36, 1024)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(self.dw(x)))).flatten(1))


_RUN = """
import json, sys
import numpy as np
import cdnn_runtime
from cdnn_runtime.warmup import compiled_signatures
counts = {}
for path in sys.argv[1:]:
    before = compiled_signatures()
    sess = cdnn_runtime.InferenceSession(path)
    feed = {}
    for i in sess.get_inputs():
        shape = [2] + [d if isinstance(d, int) else 5 for d in i.shape[1:]]
        feed[i.name] = np.ones(shape, np.float32) if i.type == "tensor(float)" else \\
            np.zeros(shape, np.int64)
    sess.run(None, feed)
    counts[path] = compiled_signatures() - before
print(json.dumps(counts))
"""


def _files(tmp_path):
    torch.manual_seed(0)
    cases = {"lenet5": (models.lenet_5(), torch.randn(1, 1, 28, 28), None),
             "resnet_tiny": (zoo.resnet50_tiny(), torch.randn(1, 3, 32, 32), None),
             "mobilenet_v2_tiny": (zoo.mobilenet_v2_tiny(), torch.randn(1, 3, 32, 32), None),
             "wide": (_Wide(), torch.randn(1, 3, 96, 96), None)}
    for name in ("gpt", "lstm_kws"):
        family = SEQUENCE_FAMILIES[name]
        cases[name] = (family.tiny(), family.example(), {0: {family.seq_dim: "seq"}})
    paths = []
    for name, (model, example, free) in cases.items():
        path = tmp_path / f"{name}.cdnn"
        compress(model.eval(), (example,), dynamic_dims=free).save(path)
        paths.append(str(path))
    return paths


def test_after_warmup_no_architecture_compiles_anything(tmp_path):
    paths = _files(tmp_path)
    # the default: a cold process compiles one variant per kernel, but warmup compiles both
    env = {**os.environ, "CDNN_CACHE_DIR": str(tmp_path / "kernels"),
           "CDNN_COLD_ONE_VARIANT": "1"}
    exe = [sys.executable, "-m", "cdnn_runtime.cli", "warmup", "--json"]
    cold = subprocess.run(exe, env=env, capture_output=True, text=True, timeout=900)
    assert cold.returncode == 0, cold.stderr
    assert json.loads(cold.stdout)["compiled"] > 50  # the whole kernel set, from cold
    run = subprocess.run([sys.executable, "-c", _RUN, *paths], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {p: 0 for p in paths}
    warm = subprocess.run(exe, env=env, capture_output=True, text=True, timeout=600)
    assert json.loads(warm.stdout)["compiled"] == 0


class _SmallThenBig(nn.Module):
    """A small convolution (its serial variant asked for) before a big one (threaded)."""

    def __init__(self):
        super().__init__()
        self.small = nn.Conv2d(3, 4, 3, padding=1)
        self.big = nn.Conv2d(3, 32, 5, padding=2)

    def forward(self, x):
        a = self.small(nn.functional.avg_pool2d(x, 8))
        return torch.cat([a.flatten(1), torch.relu(self.big(x)).flatten(1)], 1)


_VARIANTS = """
import json, sys
import numpy as np
import cdnn_runtime
from cdnn_runtime.kernels import sparse_conv
count = lambda d: sum(d.stats.cache_misses.values())
sess = cdnn_runtime.InferenceSession(sys.argv[1])
x = np.linspace(-1, 1, 3 * 64 * 64, dtype=np.float32).reshape(1, 3, 64, 64)
runs = []
for _ in range(2):
    y = sess(x)
    runs.append({"y": y.tolist(), "compiled": {
        k: count(getattr(sparse_conv, k)) for k in ("conv_serial", "conv_parallel")}})
print(json.dumps(runs))
"""


def test_a_cold_first_run_compiles_one_variant_per_kernel(tmp_path):
    """A small convolution asks for the serial kernel, a big one after it for the threaded
    one. With a cold cache, the session's first run compiles the variant asked for first and
    runs both layers on it (the same outputs); its second run compiles the other, so that no
    layer keeps running on the wrong one; a process that finds both cached compiles nothing."""
    torch.manual_seed(0)
    path = tmp_path / "two.cdnn"
    compress(_SmallThenBig().eval(), (torch.randn(1, 3, 64, 64),)).save(path)

    def run(cache, one_variant):
        env = {**os.environ, "CDNN_CACHE_DIR": str(tmp_path / cache),
               "CDNN_COLD_ONE_VARIANT": one_variant}
        r = subprocess.run([sys.executable, "-c", _VARIANTS, str(path)], env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    first, second = run("shared", "1")
    assert first["compiled"] == {"conv_serial": 1, "conv_parallel": 0}
    assert second["compiled"] == {"conv_serial": 1, "conv_parallel": 1}
    later, _ = run("shared", "1")  # everything cached now
    assert later["compiled"] == {"conv_serial": 0, "conv_parallel": 0}
    both, _ = run("other", "0")  # each layer on its own variant from the start
    assert both["compiled"] == {"conv_serial": 1, "conv_parallel": 1}
    for r in (first, second, later):
        np.testing.assert_allclose(r["y"], both["y"], rtol=1e-5, atol=1e-5)
