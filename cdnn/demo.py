"""`cdnn demo`: compress the bundled LeNet-5 (trained on Fashion-MNIST), run it with
cdnn_runtime, and print size, accuracy and batch-1 latency next to the dense model."""

import os
import time
from functools import partial

import numpy as np
import torch

from cdnn_runtime.timing import summarize, time_calls

from . import models
from .compress import compress
from .train import accuracy, fit, loader

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
REPEATS = 200  # timed batch-1 runs per runtime


def _assets():
    state = torch.load(os.path.join(ASSETS, "lenet5_fashion.pt"), map_location="cpu",
                       weights_only=True)
    model = models.lenet_5()
    model.load_state_dict(state)
    data = np.load(os.path.join(ASSETS, "fashion_demo.npz"))
    as_float = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return (model.eval(), as_float(data["train_images"]), data["train_labels"].astype(np.int64),
            as_float(data["test_images"]), data["test_labels"].astype(np.int64))


def _latency(fn, x, repeats=REPEATS):
    """'median ms (min-max)' of `repeats` calls fn(x) after 10 untimed ones."""
    s = summarize(time_calls(fn, x, repeats=repeats, warmup=10))
    return f"{s['median_ms']:.3f} ms ({s['min_ms']:.3f}-{s['max_ms']:.3f})"


def _runtime_accuracy(sess, x, y):
    correct = 0
    for i in range(0, len(x), 250):
        correct += int((sess(x[i:i + 250]).argmax(1) == y[i:i + 250]).sum())
    return correct / len(x)


def _signature(sess):
    """'inputs x [N, 1, 28, 28] -> outputs output [N, 10]' of a session (N: the free batch)."""
    def args(nodes):
        return ", ".join(f"{a.name} [{', '.join('N' if d is None else str(d) for d in a.shape)}]"
                         for a in nodes)
    return f"inputs {args(sess.get_inputs())} -> outputs {args(sess.get_outputs())}"


def run_demo(full=False, out="demo.cdnn", log=print):
    from cdnn_runtime import InferenceSession

    t_start = time.perf_counter()
    model, xtr, ytr, xte, yte = _assets()
    test_name = f"{len(xte)} bundled Fashion-MNIST test images"
    if full:
        from .datasets import fashion_mnist
        xte, yte = fashion_mnist(split="test")
        test_name = f"the full Fashion-MNIST test set ({len(xte)} images)"
    xte_t, yte_t = torch.from_numpy(xte), torch.from_numpy(yte)
    dense_acc = accuracy(model, xte_t, yte_t)
    log("Compressing LeNet-5 with the deep-compression preset (prune in 3 steps, retraining "
        f"on {len(xtr)} bundled training images; K-Means++ codebooks, fine-tuned; Huffman)...")
    train = partial(fit, loader=loader(xtr, ytr, 64, seed=0), epochs=1, lr=5e-4)
    packed = compress(model, xte_t[:2], preset="deep-compression", train=train,
                      model_name="lenet-5")
    packed.save(out)
    log(packed.format_report())
    t0 = time.perf_counter()
    sess = InferenceSession(out)
    load_ms = (time.perf_counter() - t0) * 1e3
    log(f"\n{out}: {_signature(sess)}")
    cdnn_acc = _runtime_accuracy(sess, xte, yte)
    x1 = xte[:1].copy()
    with torch.inference_mode():
        torch_lat = _latency(model, torch.from_numpy(x1))
    cdnn_lat = _latency(sess, x1)
    rows = [
        ("", "dense PyTorch", "cdnn_runtime"),
        ("size", f"{packed.dense_bytes:,} B (float32)", f"{packed.nbytes:,} B on disk"),
        ("ratio", "1x", f"{packed.ratio:.1f}x"),
        ("accuracy", f"{dense_acc:.2%}", f"{cdnn_acc:.2%}"),
        ("batch-1 latency", torch_lat, cdnn_lat),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    log("")
    for r in rows:
        log(f"  {r[0]:<{w0}}   {r[1]:<{w1}}   {r[2]}")
    log(f"\naccuracy on {test_name}; latency: median (min-max) of {REPEATS} runs, "
        f"{torch.get_num_threads()} torch threads; session load {load_ms:.0f} ms; "
        f"wrote {out}; demo took {time.perf_counter() - t_start:.0f} s")
    return 0
