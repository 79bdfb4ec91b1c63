"""What the runtime benchmarks share: the results folder, the reference networks' input shapes
and their deep-compression build, and timing summaries that keep their sample count."""

import json
import os
import time

import numpy as np

from cdnn_runtime.timing import summarize

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SHAPES = {"lenet-300-100": (1, 28, 28), "lenet-5": (1, 28, 28), "alexnet": (3, 224, 224),
          "vgg16": (3, 224, 224)}
#: Networks of today from cdnn/zoo.py, at full size (not in the default run): name -> factory.
ZOO = {"resnet50": "resnet50", "mobilenet_v2": "mobilenet_v2"}
SHAPES.update({name: (3, 224, 224) for name in ZOO})
#: The GPT-2-shaped decoder (cdnn.zoo_sequence.gpt: 4 layers, width 256, 4 heads, tied head)
#: over 128 token ids, at the compression of the paper's character-level GPT file when it is
#: there (its recipe, read from the file's metadata, on seeded random weights), else GPT_RECIPE.
SEQUENCE = {"gpt": {"context": 128, "vocab": 98}}
SHAPES.update({name: (m["context"],) for name, m in SEQUENCE.items()})
CHARGPT = os.path.join(RESULTS, "chargpt.cdnn")
GPT_RECIPE = {f"kind:{k}": {"density": 0.3, "bits": 4, "bias": "float16"}
              for k in ("linear", "embedding")}
#: What a run times when --models is not given.
DEFAULT_MODELS = ("lenet-300-100", "lenet-5", "alexnet", "vgg16")
#: What `make latency` times: the four reference networks, the two zoo CNNs with targets of their
#: own, and the GPT-shaped decoder.
LATENCY_MODELS = DEFAULT_MODELS + ("resnet50", "mobilenet_v2", "gpt")


def log(*a):
    """Print at once (a benchmark's progress, while it runs)."""
    print(*a, flush=True)


def stats(seconds):
    """{median_ms, min_ms, max_ms, n} of durations in seconds."""
    return {**summarize(seconds), "n": len(seconds)}


def example_input(name, batch, seed=1):
    """A seeded input of `name` at `batch`: token ids (int64) for a sequence model, else
    standard normal float32."""
    rng = np.random.default_rng(seed)
    if name in SEQUENCE:
        return rng.integers(0, SEQUENCE[name]["vocab"], (batch,) + SHAPES[name], dtype=np.int64)
    return rng.standard_normal((batch,) + SHAPES[name]).astype(np.float32)


def gpt_recipe(path=CHARGPT):
    """(recipe, where it came from): the per-layer density and bits of the paper's GPT file
    (its metadata), or GPT_RECIPE when the file is not there."""
    if not os.path.exists(path):
        return GPT_RECIPE, "density 0.3 and 4-bit codebooks for every layer (no chargpt.cdnn)"
    from cdnn_runtime import read
    layers = read(path).metadata["recipe"]["layers"]
    keys = ("density", "bits", "bias")
    where = os.path.relpath(path, os.path.dirname(os.path.dirname(RESULTS)))
    return ({name: {k: s[k] for k in keys if k in s} for name, s in layers.items()},
            f"the per-layer recipe of {where}: "
            + json.dumps(sorted({(s.get("density"), s.get("bits")) for s in layers.values()})))


def build(name):
    """The reference network `name` (seed 0) pruned and shared by the deep-compression
    preset (a zoo network: conv layers at 50% density and 8 bits, linear at 10% and 5; the GPT:
    gpt_recipe()), without retraining: (the dense torch model, its CompressedModel, seconds the
    compression took)."""
    import torch

    from cdnn import models, zoo, zoo_sequence
    from cdnn.compress import compress
    if name in SEQUENCE:
        m = SEQUENCE[name]
        model = models.seeded(zoo_sequence.gpt, 0, m["vocab"], m["context"]).eval()
        example, (recipe, _) = torch.from_numpy(example_input(name, 1)), gpt_recipe()
    else:
        factory = getattr(zoo, ZOO[name]) if name in ZOO else models.MODELS[name]
        model = models.seeded(factory, 0).eval()
        example, recipe = torch.randn(2, *SHAPES[name]), None
    t = time.perf_counter()
    packed = compress(model, example, recipe, model_name=name)
    return model, packed, time.perf_counter() - t
