"""What the runtime benchmarks share: the results folder, the reference networks' input shapes
and their deep-compression build, and timing summaries that keep their sample count."""

import os
import time

from cdnn_runtime.timing import summarize

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SHAPES = {"lenet-300-100": (1, 28, 28), "lenet-5": (1, 28, 28), "alexnet": (3, 224, 224),
          "vgg16": (3, 224, 224)}
#: Networks of today from cdnn/zoo.py, at full size (not in the default run): name -> factory.
ZOO = {"resnet50": "resnet50", "mobilenet_v2": "mobilenet_v2"}
SHAPES.update({name: (3, 224, 224) for name in ZOO})
#: What a run times when --models is not given.
DEFAULT_MODELS = ("lenet-300-100", "lenet-5", "alexnet", "vgg16")


def log(*a):
    """Print at once (a benchmark's progress, while it runs)."""
    print(*a, flush=True)


def stats(seconds):
    """{median_ms, min_ms, max_ms, n} of durations in seconds."""
    return {**summarize(seconds), "n": len(seconds)}


def build(name):
    """The reference network `name` (seed 0) pruned and shared by the deep-compression
    preset (a zoo network: conv layers at 50% density and 8 bits, linear at 10% and 5), without
    retraining: (the dense torch model, its CompressedModel, seconds the compression took)."""
    import torch

    from cdnn import models, zoo
    from cdnn.compress import compress
    factory = getattr(zoo, ZOO[name]) if name in ZOO else models.MODELS[name]
    model = models.seeded(factory, 0).eval()
    t = time.perf_counter()
    packed = compress(model, torch.randn(2, *SHAPES[name]), model_name=name)
    return model, packed, time.perf_counter() - t
