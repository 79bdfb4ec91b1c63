"""Train the LeNet-5 that `cdnn demo` compresses, and cut the small data files it ships with.

Needs Debian's dataset-fashion-mnist. Writes, under cdnn/assets/:
  lenet5_fashion.pt      state_dict of LeNet-5 (Caffe variant) trained on Fashion-MNIST
  fashion_demo.npz       a seeded sample: 6,000 training and 500 test images (uint8) + labels
Rerun: python benchmarks/make_demo_model.py [--epochs 10]
"""

import argparse
import json
import os
import time

import numpy as np
import torch

from cdnn import models
from cdnn.datasets import fashion_mnist
from cdnn.train import accuracy, fit, loader

ASSETS = os.path.join(os.path.dirname(__file__), os.pardir, "cdnn", "assets")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    xtr, ytr = fashion_mnist(split="train")
    xte, yte = fashion_mnist(split="test")
    model = models.seeded(models.lenet_5, args.seed)
    t0 = time.time()
    fit(model, loader(xtr, ytr, 128, args.seed), epochs=args.epochs, lr=1e-3, log=print)
    acc = accuracy(model, torch.as_tensor(xte), torch.as_tensor(yte))
    print(f"test accuracy {acc:.4f} after {args.epochs} epochs, {time.time() - t0:.0f} s")
    os.makedirs(ASSETS, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, os.path.join(ASSETS, "lenet5_fashion.pt"))
    rng = np.random.default_rng(args.seed)
    tr = np.sort(rng.choice(len(xtr), 6000, replace=False))
    te = np.sort(rng.choice(len(xte), 500, replace=False))
    to_u8 = lambda x: np.round(x[:, 0] * 255).astype(np.uint8)  # noqa: E731
    np.savez_compressed(os.path.join(ASSETS, "fashion_demo.npz"),
                        train_images=to_u8(xtr[tr]), train_labels=ytr[tr].astype(np.uint8),
                        test_images=to_u8(xte[te]), test_labels=yte[te].astype(np.uint8))
    with open(os.path.join(ASSETS, "lenet5_fashion.json"), "w") as fh:
        json.dump({"model": "lenet-5", "dataset": "Fashion-MNIST", "epochs": args.epochs,
                   "optimizer": "Adam lr 1e-3 batch 128", "seed": args.seed,
                   "test_accuracy_10000": acc, "torch": torch.__version__}, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
