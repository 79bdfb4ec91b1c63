"""The model and images of the scale-out tests and benchmark: the bundled LeNet-5 (trained on
Fashion-MNIST) compressed without retraining, its dense twin, and Fashion-MNIST-sized images
from the bundled sample."""

import os

import numpy as np

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cdnn",
                      "assets")


def dense_lenet5():
    """The bundled LeNet-5 as a torch module in eval mode (the dense peer)."""
    import torch

    from cdnn import models
    model = models.lenet_5()
    model.load_state_dict(torch.load(os.path.join(ASSETS, "lenet5_fashion.pt"),
                                     map_location="cpu", weights_only=True))
    return model.eval()


def compressed_lenet5(path):
    """Write the bundled LeNet-5, pruned and shared by the deep-compression preset without
    retraining, to `path`; returns the file's size in bytes."""
    import torch

    from cdnn.compress import compress
    packed = compress(dense_lenet5(), torch.zeros(2, 1, 28, 28), preset="deep-compression",
                      model_name="lenet-5")
    return packed.save(path)


def fashion_images(count, start=0):
    """Images `start` to `start + count` as float32 [count, 1, 28, 28] in [0, 1], of the
    bundled sample's 6,500 images, then the same mirrored left to right, repeated as needed."""
    data = np.load(os.path.join(ASSETS, "fashion_demo.npz"))
    base = np.concatenate([data["train_images"], data["test_images"]])
    base = np.concatenate([base, base[:, :, ::-1]])
    images = base[np.arange(start, start + count) % len(base)]
    return (images.astype(np.float32) / 255.0)[:, None]
