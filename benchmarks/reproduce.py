"""Reproduce Deep Compression's tables with cdnn on real data (Fashion-MNIST) and report honestly.

For LeNet-300-100 and LeNet-5:
  1. train a dense network from a fixed seed (Adam, the default loop cdnn.train.fit);
  2. compress it with the deep-compression preset: iterative magnitude pruning with retraining,
     K-Means++ weight sharing with centroid fine-tuning, Huffman coding;
  3. measure the .cdnn file's test accuracy with cdnn_runtime (not PyTorch), next to a dense
     baseline trained for as many epochs in all as the compressed model received;
  4. print and save a per-layer table in the form of Deep Compression's Tables 2 and 3.
The recipe (epochs, learning rates, steps) was fixed before looking at test accuracy; 5,000
training images are held out as a validation set, and the test set is used only to report.
Needs Debian's dataset-fashion-mnist.
usage: python benchmarks/reproduce.py [--nets lenet-300-100,lenet-5] [--quick]
"""

import argparse
import json
import os
import time
from functools import partial

import numpy as np
import torch

from cdnn import models
from cdnn.compress import compress
from cdnn.datasets import fashion_mnist
from cdnn.train import accuracy, fit, loader
from cdnn_runtime import InferenceSession

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

#: Deep Compression, Table 1 (MNIST): dense KB -> compressed KB, error before -> after.
PUBLISHED = {"lenet-300-100": {"dense_kb": 1070, "compressed_kb": 27, "ratio": 40,
                               "error": (1.64, 1.58)},
             "lenet-5": {"dense_kb": 1720, "compressed_kb": 44, "ratio": 39,
                         "error": (0.80, 0.74)}}

#: Training recipes. Epochs: dense training; per pruning step; centroid fine-tuning. Each
#: retraining call runs Adam from `retrain_lr` down a cosine to 0 (a warm restart per call); the
#: fair baseline trains the dense model on for as many epochs with one such cosine. Chosen on
#: the 5,000 held-out training images (validation), among constant 5e-4 / 2e-4, cosine 1e-3 /
#: 2e-3, 2 / 4 / 6 epochs per step, distillation from the dense model and weight decay.
RECIPES = {
    "lenet-300-100": {"dense_epochs": 10, "prune_steps": 3, "retrain_epochs": 4,
                      "fine_tune_epochs": 4, "lr": 1e-3, "retrain_lr": 1e-3,
                      "schedule": "cosine"},
    "lenet-5": {"dense_epochs": 6, "prune_steps": 3, "retrain_epochs": 1,
                "fine_tune_epochs": 1, "lr": 1e-3, "retrain_lr": 1e-3, "schedule": "cosine"},
}


def runtime_accuracy(path, x, y):
    sess = InferenceSession(path)
    correct = 0
    for i in range(0, len(x), 500):
        correct += int((sess(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum())
    return correct / len(x)


def entropy_bits(values):
    if values.size == 0:
        return 0.0
    p = np.bincount(values.astype(np.int64)) / values.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def layer_table(f):
    """Deep Compression Table 2/3 columns, measured on the written file."""
    rows = []
    for t in f.tensors:
        if t.encoding != "sparse_codebook":
            continue
        d = t.desc
        numel = d["rows"] * d["cols"]
        sizes = {k: f.sections[d[k]["section"]][1] for k in ("row_counts", "gaps", "codes")}
        codebook_bytes = 4 * d["codebook"]["size"]
        _, gaps, codes = f.entries(t.name)
        entries = max(d["entries"], 1)
        layer = t.name.rpartition(".")[0]
        weight_bits = f.metadata["recipe"]["layers"][layer]["bits"]
        pq = (d["entries"] * (weight_bits + d["gap_bits"]) + 7) // 8 + codebook_bytes
        pqh = sizes["codes"] + sizes["gaps"] + sizes["row_counts"] + codebook_bytes
        rows.append({
            "layer": t.name.rpartition(".")[0], "weights": numel,
            "density": d["nnz"] / numel, "fillers": d["entries"] - d["nnz"],
            "weight_bits_pq": weight_bits, "weight_bits_pqh": 8 * sizes["codes"] / entries,
            "weight_entropy": entropy_bits(codes),
            "index_bits_pq": d["gap_bits"], "index_bits_pqh": 8 * sizes["gaps"] / entries,
            "index_entropy": entropy_bits(gaps),
            "ratio_pq": 4 * numel / pq, "ratio_pqh": 4 * numel / pqh, "bytes": pqh,
        })
    return rows


def markdown_table(name, rows, total, published):
    out = [f"### {name}", "",
           "| layer | #weights | weights kept | weight bits (P+Q) | weight bits (P+Q+H) | "
           "weight entropy | index bits (P+Q) | index bits (P+Q+H) | index entropy | "
           "ratio (P+Q) | ratio (P+Q+H) |", "|---|" + "---:|" * 10]
    for r in rows:
        out.append(f"| {r['layer']} | {r['weights']:,} | {r['density']:.1%} | "
                   f"{r['weight_bits_pq']} | {r['weight_bits_pqh']:.2f} | "
                   f"{r['weight_entropy']:.2f} | {r['index_bits_pq']} | "
                   f"{r['index_bits_pqh']:.2f} | {r['index_entropy']:.2f} | "
                   f"{r['ratio_pq']:.1f}x | {r['ratio_pqh']:.1f}x |")
    out.append(f"| **total (file on disk)** | {total['weights']:,} | {total['density']:.1%} | "
               "| | | | | | | "
               f"**{total['ratio']:.1f}x** ({total['file_bytes']:,} B) |")
    out.append(f"| Deep Compression (MNIST) | | | | | | | | | | {published['ratio']}x "
               f"({published['compressed_kb']} KB) |")
    return "\n".join(out)


def run_net(name, data, quick, log):
    xtr, ytr, xval, yval, xte, yte = data
    r = dict(RECIPES[name])
    if quick:
        r.update(dense_epochs=1, retrain_epochs=1, fine_tune_epochs=1, prune_steps=2)
    seed = 0
    torch.manual_seed(seed)
    tr_loader = loader(xtr, ytr, 128, seed)
    model = models.seeded(models.MODELS[name], seed)
    t0 = time.time()
    fit(model, tr_loader, epochs=r["dense_epochs"], lr=r["lr"])
    dense_s = time.time() - t0
    xte_t, yte_t = torch.from_numpy(xte), torch.from_numpy(yte)
    dense_acc = accuracy(model, xte_t, yte_t)
    dense_val = accuracy(model, torch.from_numpy(xval), torch.from_numpy(yval))
    log(f"{name}: dense {r['dense_epochs']} epochs: test {dense_acc:.4f} val {dense_val:.4f} "
        f"({dense_s:.0f} s)")
    extra_epochs = r["prune_steps"] * r["retrain_epochs"] + r["fine_tune_epochs"]
    # the fair baseline: the same dense model trained on for as many extra epochs
    baseline = models.seeded(models.MODELS[name], seed)
    baseline.load_state_dict(model.state_dict())
    fit(baseline, loader(xtr, ytr, 128, seed + 1), epochs=extra_epochs, lr=r["retrain_lr"],
        schedule=r["schedule"])
    baseline_acc = accuracy(baseline, xte_t, yte_t)
    epochs_seen = {"n": 0}

    def retrain(m, epochs):
        epochs_seen["n"] += epochs
        fit(m, loader(xtr, ytr, 128, seed + 2 + epochs_seen["n"]), epochs=epochs,
            lr=r["retrain_lr"], schedule=r["schedule"])

    calls = {"n": 0}

    def train(m):
        calls["n"] += 1
        last = calls["n"] > r["prune_steps"]
        retrain(m, r["fine_tune_epochs"] if last else r["retrain_epochs"])

    val_acc = lambda m: accuracy(m, torch.from_numpy(xval), torch.from_numpy(yval))  # noqa
    t0 = time.time()
    packed = compress(model, xte_t[:2], preset="deep-compression", train=train,
                      evaluate=val_acc, prune_steps=r["prune_steps"], model_name=name)
    compress_s = time.time() - t0
    os.makedirs(os.path.join(RESULTS, "models"), exist_ok=True)
    path = os.path.join(RESULTS, "models", f"{name}-fashion.cdnn")
    packed.save(path)
    cdnn_acc = runtime_accuracy(path, xte, yte)
    rows = layer_table(packed.file)
    total = {"weights": sum(x["weights"] for x in rows),
             "density": sum(x["density"] * x["weights"] for x in rows) / sum(
                 x["weights"] for x in rows),
             "file_bytes": packed.nbytes, "dense_bytes": packed.dense_bytes,
             "ratio": packed.ratio}
    log(f"{name}: compressed {packed.nbytes:,} B = {packed.ratio:.1f}x; test accuracy "
        f"dense {dense_acc:.4f}, dense +{extra_epochs} epochs {baseline_acc:.4f}, cdnn_runtime "
        f"{cdnn_acc:.4f} ({compress_s:.0f} s); validation along the way {packed.scores}")
    return {"recipe": r, "extra_epochs": extra_epochs, "epochs_seen_in_compression":
            epochs_seen["n"], "dense_test_accuracy": dense_acc,
            "baseline_test_accuracy": baseline_acc, "cdnn_test_accuracy": cdnn_acc,
            "validation_scores": packed.scores, "layers": rows, "total": total,
            "published": PUBLISHED[name], "seconds": {"dense": dense_s, "compress": compress_s}}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="lenet-300-100,lenet-5")
    ap.add_argument("--quick", action="store_true", help="1-epoch smoke run")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    xtr, ytr = fashion_mnist(split="train")
    xte, yte = fashion_mnist(split="test")
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(xtr))
    val, tr = perm[:5000], perm[5000:]
    data = (xtr[tr], ytr[tr], xtr[val], ytr[val], xte, yte)
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "quick": args.quick, "nets": {}}
    md = [f"# cdnn on Fashion-MNIST ({report['date']}, {report['threads']} threads"
          f"{', QUICK smoke run' if args.quick else ''})", ""]
    for name in args.nets.split(","):
        res = run_net(name, data, args.quick, print)
        report["nets"][name] = res
        md.append(markdown_table(name, res["layers"], res["total"], res["published"]))
        md.append("")
        md.append(f"Test accuracy (10,000 images): dense {res['dense_test_accuracy']:.2%} "
                  f"after {res['recipe']['dense_epochs']} epochs; dense trained "
                  f"{res['extra_epochs']} epochs more (the fair baseline) "
                  f"{res['baseline_test_accuracy']:.2%}; compressed, run by cdnn_runtime, "
                  f"{res['cdnn_test_accuracy']:.2%}.")
        md.append("")
    os.makedirs(RESULTS, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    with open(os.path.join(RESULTS, f"lenets{suffix}.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    with open(os.path.join(RESULTS, f"LENETS{suffix}.md"), "w") as fh:
        fh.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
