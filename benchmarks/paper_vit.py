"""A small ViT on Fashion-MNIST, pruned and shared through 4-bit codebooks, every file run by
cdnn_runtime: the ViT section of `make paper`.

  1. trains cdnn.zoo_sequence.vit_fashion() (patch 4, 4 layers, width 128, 4 heads) on 55,000
     Fashion-MNIST training images from a fixed seed (5,000 held out for validation, as the
     LeNet figures; images normalised by cdnn.datasets.normalize);
  2. for each density of DENSITIES, prunes every linear layer (attention projections, MLPs,
     head) in steps with retraining, shares the survivors through 4-bit codebooks (the patch
     convolution, 0.3% of the weights, kept dense with 8 bits), fine-tunes the centroids and
     writes the .cdnn file;
  3. runs every file on the validation and the 10,000 test images through cdnn_runtime; the
     point reported as the result is chosen on validation alone (CHOICE);
  4. sets each against the dense ViT as trained and the fair baseline (the dense ViT trained on
     for as many epochs as each compressed point received in all);
  5. writes results/paper_vit.json and the `## ViT on Fashion-MNIST` section of PAPER.md.
One thread by default (the budget in BUDGET is for one); seeded: a rerun on one thread gives
the same figures. Needs Debian's dataset-fashion-mnist.
usage: python benchmarks/paper_vit.py [--quick] [--threads N] [--out DIR] [--keep DIR]
                                      [--from-json PATH]
"""

import os
import time

import numba
import torch

from _common import RESULTS
from _paper_common import (
    SECTION_MARK,
    load_data,
    paper_parser,
    rewrite_section_from_json,
    runtime_accuracy,
    write_section_report,
)
from cdnn import models
from cdnn.capture import prepare_for_capture
from cdnn.datasets import normalize
from cdnn.zoo_sequence import vit_fashion
from reproduce import Net

TITLE = "## ViT on Fashion-MNIST"

#: Training: dense epochs (Adam from `lr` down a cosine); per pruning step `retrain_epochs`,
#: then `fine_tune_epochs` of centroid fine-tuning, each call Adam from `retrain_lr` down a
#: cosine (a warm restart per call); the fair baseline trains the dense ViT on for as many epochs.
RECIPE = {"dense_epochs": 6, "dense_schedule": "cosine", "lr": 1e-3, "prune_steps": 2,
          "retrain_epochs": 1, "fine_tune_epochs": 1, "retrain_lr": 5e-4, "schedule": "cosine"}

#: Fraction of each linear layer's weights kept; each set is pruned once, with retraining.
DENSITIES = {"linear 50%": 0.5, "linear 30%": 0.3}
#: What every point stores: 4-bit codebooks for the linear layers, the patch convolution dense
#: at 8 bits (the preset's bits for a convolution).
BITS = {"kind:linear": {"bits": 4}}
PATCH = {"patch": 1.0}

#: The point reported as the result: the smallest file whose validation accuracy (the file run
#: by cdnn_runtime) is within this many points of the fair baseline's; else the most accurate.
CHOICE = 1.0

#: How the compute was planned, as PAPER.md tells it.
BUDGET = ("The whole run was planned to fit about 70 minutes of one thread (the machine's second "
          "core serving another training): one training step (batch 128) measured 0.37-0.45 s "
          "on one thread before the run, about 3 minutes an epoch of 430 steps, so 6 dense "
          "epochs, 2 densities x (2 pruning steps x 1 epoch + 1 epoch of fine-tuning) and the "
          "fair baseline's 3 epochs: 15 epochs of training, plus the evaluations.")


class ViT(Net):
    """The ViT of the paper figures on Net's loop (reproduce.py): trained as written (with
    nn.MultiheadAttention), then held in the form cdnn captures, whose q/k/v/out projections
    are nn.Linear layers (cdnn.mha.CaptureAttention: the same function of the same values), so
    that the pruning masks are keyed as the compressor sees the layers."""

    def build(self):
        return models.seeded(vit_fashion, self.seed)

    def train_dense(self):
        scores = super().train_dense()
        self.dense = prepare_for_capture(self.dense)
        return scores

    def finish(self, pruned, bits_recipe, label):
        point, blob = super().finish(pruned, bits_recipe, label)
        point["cdnn_val_accuracy"], _ = runtime_accuracy(blob, self.data[2], self.data[3], 500)
        self.log(f"{self.name} [{label}]: cdnn_runtime validation "
                 f"{point['cdnn_val_accuracy']:.4f} (fair baseline "
                 f"{self.baseline_scores['val']:.4f})")
        return point, blob


def vit_data(quick=False):
    """load_data's split, normalised; with `quick`, 256 training and 100 validation and test
    images."""
    data = [normalize(a) if a.ndim == 4 else a for a in load_data(quick)]
    if quick:
        data = [a[:n] for a, n in zip(data, (256, 256, 100, 100, 100, 100))]
    return tuple(data)


def chosen(points, baseline_val):
    """The label of the point CHOICE picks, on validation alone."""
    ok = [p for p in points if 100 * (baseline_val - p["cdnn_val_accuracy"]) <= CHOICE + 1e-9]
    if ok:
        return max(ok, key=lambda p: p["ratio"])["label"]
    return max(points, key=lambda p: p["cdnn_val_accuracy"])["label"]


def run(data, quick=False, keep=None, log=print):
    """Dense, fair baseline and every compressed point; the report as a dict."""
    t0 = time.time()
    net = ViT("vit", data, quick, log=log, recipe=RECIPE)
    net.train_dense()
    dense_seconds = time.time() - t0
    net.fair_baseline()
    points = []
    for dlabel, density in DENSITIES.items():
        pruned = net.prune({"kind:linear": density, **PATCH})
        log(f"vit [{dlabel}]: pruned: val {pruned['scores']['val']:.4f}, test "
            f"{pruned['scores']['test']:.4f} ({pruned['seconds']:.0f} s)")
        point, blob = net.finish(pruned, BITS, f"{dlabel}, 4 bits")
        point.update(density=density, pruned_scores=pruned["scores"],
                     prune_seconds=pruned["seconds"])
        points.append(point)
        if keep:
            os.makedirs(keep, exist_ok=True)
            with open(os.path.join(keep, f"vit_linear{round(100 * density)}_4bits.cdnn"),
                      "wb") as fh:
                fh.write(blob)
    return {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "quick": quick,
            "model": "cdnn.zoo_sequence.vit_fashion()",
            "parameters": sum(p.numel() for p in net.dense.parameters()),
            "images": {"train": len(data[0]), "val": len(data[2]), "test": len(data[4])},
            "recipe": net.recipe, "extra_epochs": net.extra_epochs, "bits": BITS,
            "dense": net.dense_scores, "fair_baseline": net.baseline_scores,
            "choice_points": CHOICE, "chosen": chosen(points, net.baseline_scores["val"]),
            "points": points, "dense_seconds": dense_seconds, "seconds": time.time() - t0}


def _pct(x):
    return f"{100 * x:.2f}%"


#: The ViT's compressed layers by role, for the bytes table: (label, test on the layer name).
GROUPS = (("attention q, k, v, out projections", lambda n: ".attn." in n),
          ("MLP", lambda n: ".mlp." in n), ("head", lambda n: n == "head"),
          ("patch convolution", lambda n: n == "patch"))


def layer_groups(point):
    """Markdown rows: a point's compressed layers by group (weights, kept, bits per stored
    entry, bytes), and the rest of the file."""
    out = ["| layers | weights | kept | code bits | index bits | bytes | ratio |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for label, member in GROUPS:
        rows = [r for r in point["layers"] if member(r["layer"])]
        weights = sum(r["weights"] for r in rows)
        kept = sum(r["density"] * r["weights"] for r in rows)
        entries = [r["density"] * r["weights"] + r["fillers"] for r in rows]
        bits = {k: sum(r[k] * e for r, e in zip(rows, entries)) / sum(entries)
                for k in ("weight_bits_pqh", "index_bits_pqh")}
        nbytes = sum(r["bytes"] for r in rows)
        out.append(f"| {label} ({len(rows)}) | {weights:,} | {kept / weights:.1%} | "
                   f"{bits['weight_bits_pqh']:.2f} | {bits['index_bits_pqh']:.2f} | "
                   f"{nbytes:,} | {4 * weights / nbytes:.1f}x |")
    rest = point["file_bytes"] - sum(r["bytes"] for r in point["layers"])
    out.append(f"| biases, LayerNorms, class token, position table, graph, header | | | | | "
               f"{rest:,} | |")
    return out


def _overrun(report):
    """A sentence when the run took well over its budget (the cores shared with other jobs)."""
    minutes = report["seconds"] / 60
    if minutes <= 75 or report["quick"]:
        return ""
    return (f" It took {minutes:.0f} minutes: both cores were shared with other jobs during "
            f"the run, so the process had less than its one thread's worth of a core.")


def markdown(report):
    """The ViT section of PAPER.md."""
    r, q = report["recipe"], ", QUICK smoke run" if report["quick"] else ""
    main = next(p for p in report["points"] if p["label"] == report["chosen"])
    base, dense = report["fair_baseline"], report["dense"]
    out = [TITLE, SECTION_MARK.format(script="paper_vit.py"), "",
           f"Produced by `benchmarks/paper_vit.py` (`make paper`) on {report['date']} in "
           f"{report['seconds'] / 60:.1f} minutes on {report['threads']} thread(s){q}. "
           f"`cdnn.zoo_sequence.vit_fashion()`: patch 4, 4 layers, width 128, 4 heads, "
           f"{report['parameters']:,} parameters; {report['images']['train']:,} training "
           f"images, {report['images']['val']:,} held out for validation, "
           f"{report['images']['test']:,} test images, normalised. Training: dense "
           f"{r['dense_epochs']} epochs, Adam from {r['lr']:g} down a cosine, batch 128; "
           f"compression: every linear layer (attention projections, MLPs, head) pruned by "
           f"magnitude in {r['prune_steps']} steps x {r['retrain_epochs']} epoch(s) of "
           f"retraining, shared through 4-bit codebooks (K-Means++), then "
           f"{r['fine_tune_epochs']} epoch(s) of centroid fine-tuning; each call Adam from "
           f"{r['retrain_lr']:g} down a cosine: {report['extra_epochs']} epochs more in all, "
           f"which the **fair baseline** (the dense ViT trained on as long, the same way) "
           f"received too. The patch convolution (2,048 weights) is kept dense at 8 bits; "
           f"the class token, position table, LayerNorms and biases are stored as float32. "
           f"Sizes: float32 bytes of every parameter against the bytes of the `.cdnn` file on "
           f"disk. Every accuracy of a compressed model is its file's, run by cdnn_runtime. "
           f"The densities are those the task suggested, not searched; the point reported as "
           f"the result was chosen on the validation split alone (the smallest file within "
           f"{report['choice_points']:g} point of the fair baseline's validation accuracy), "
           f"the test set serving only to report. {BUDGET}{_overrun(report)}", "",
           "| model | bytes | ratio | test accuracy | below fair baseline | validation |",
           "|---|---:|---:|---:|---:|---:|",
           f"| dense, as trained | {4 * report['parameters']:,} | 1.0x | {_pct(dense['test'])} "
           f"| {100 * (base['test'] - dense['test']):+.2f} | {_pct(dense['val'])} |",
           f"| dense, fair baseline (+{report['extra_epochs']} epochs) | "
           f"{4 * report['parameters']:,} | 1.0x | {_pct(base['test'])} | | "
           f"{_pct(base['val'])} |"]
    for p in report["points"]:
        name = f"**{p['label']}** (chosen)" if p is main else p["label"]
        out.append(f"| {name} | {p['file_bytes']:,} | {p['ratio']:.1f}x | "
                   f"{_pct(p['cdnn_test_accuracy'])} | {p['drop_vs_baseline']:+.2f} | "
                   f"{_pct(p['cdnn_val_accuracy'])} |")
    out += ["", "Drops in points, positive = worse. The compressed points' validation in "
            "PyTorch along the way (pruned, shared, fine-tuned): " +
            "; ".join(f"{p['label']}: " + ", ".join(f"{100 * p['validation_scores'][k]:.2f}"
                                                      for k in ("pruned", "shared",
                                                                "fine_tuned"))
                      for p in report["points"]) + ".", "",
            f"Result: the chosen file, {main['file_bytes']:,} bytes ({main['ratio']:.1f}x "
            f"smaller than float32), classifies {_pct(main['cdnn_test_accuracy'])} of the test "
            f"images run by cdnn_runtime: {main['drop_vs_baseline']:.2f} points below the "
            f"fair baseline ({_pct(base['test'])}), {main['drop_vs_dense']:.2f} points below "
            f"the dense ViT as trained ({_pct(dense['test'])}). Where its bytes go (weights "
            f"and index streams as Deep Compression's tables count them, bits per stored "
            f"entry after Huffman coding where it pays):", "", *layer_groups(main), ""]
    return "\n".join(out)


def main():
    ap = paper_parser(__doc__, quick_help="smoke run: 256 images, 1 epoch a call; writes "
                      "*-quick files", threads_help="torch and numba threads (default: 1)",
                      from_json_help="rewrite the PAPER.md section from a saved "
                      "paper_vit.json, beside it", threads=1)
    ap.add_argument("--out", default=RESULTS, help="folder for paper_vit.json and PAPER.md")
    ap.add_argument("--keep", metavar="DIR", help="keep every written .cdnn file in DIR")
    args = ap.parse_args()
    if args.from_json:
        rewrite_section_from_json(args.from_json, markdown)
        return
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))  # torch's too
    report = run(vit_data(args.quick), args.quick, args.keep)
    write_section_report(report, args.out, "paper_vit", markdown(report))


if __name__ == "__main__":
    main()
