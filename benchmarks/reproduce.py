"""Deep Compression's tables reproduced with cdnn on real data (Fashion-MNIST): `make paper`.

One command, about half an hour on 2 cores:
  1. trains LeNet-300-100 and LeNet-5 on Fashion-MNIST from a fixed seed (Adam, the default loop
     cdnn.train.fit; 5,000 training images held out for validation);
  2. prunes each in steps with retraining, shares the survivors through per-layer K-Means++
     codebooks, fine-tunes the centroids and Huffman-codes the streams, at Deep Compression's
     densities and bits (the `deep-compression` preset) and at the other points of an
     accuracy-ratio curve (other densities, fewer bits, float16 biases); every file is run on
     the 10,000 test images by cdnn_runtime, not PyTorch;
  3. sets each against two dense baselines: the dense net as trained, and the same net trained
     on for as many epochs as the compressed one received in all (the fair baseline);
  4. prints per network a table in the form of Deep Compression's Tables 2 and 3;
  5. builds AlexNet and VGG-16 with seeded random weights (no ImageNet here), prunes them to
     Deep Compression's densities with its bits and reports their sizes (paper_sizes.py);
  6. runs the initialisation ablation (K-Means++, linear, random; 3 seeds) on the pruned LeNets
     (ablation.py);
  7. writes results/paper.json, results/PAPER.md and the PNG plots.
Everything is seeded: a rerun with the same threads gives the same figures.
Needs Debian's dataset-fashion-mnist.
usage: python benchmarks/reproduce.py [--nets lenet-300-100,lenet-5] [--parts lenets,sizes,ablation]
                                      [--quick] [--out DIR] [--keep DIR] [--from-json PATH]
"""

import copy
import json
import os
import time

import torch

import ablation
import paper_plots
import paper_sizes
from _common import RESULTS
from _paper_common import (
    kept_sections,
    layer_table,
    lenet_parser,
    load_data,
    load_json,
    runtime_accuracy,
)
from cdnn import models
from cdnn import recipe as recipes
from cdnn.cluster import INITS
from cdnn.compress import compress, layer_kinds, prune
from cdnn.train import accuracy, fit, loader

#: Deep Compression, Table 1 (MNIST): dense KB -> compressed KB, error before -> after.
PUBLISHED = {"lenet-300-100": {"dense_kb": 1070, "compressed_kb": 27, "ratio": 40,
                               "error": (1.64, 1.58)},
             "lenet-5": {"dense_kb": 1720, "compressed_kb": 44, "ratio": 39,
                         "error": (0.80, 0.74)}}

#: The issue's targets: (ratio, largest accuracy drop in points) against the fair baseline.
TARGETS = {"lenet-300-100": {"target": (40, 0.3), "stretch": (64, 1.0)},
           "lenet-5": {"target": (39, 0.3), "stretch": (100, 1.0)}}

#: Training recipes. Epochs: dense training; per pruning step; centroid fine-tuning. Each
#: retraining call runs Adam from `retrain_lr` down a cosine to 0 (a warm restart per call); the
#: fair baseline trains the dense model on for as many epochs with one such cosine.
RECIPES = {
    "lenet-300-100": {"dense_epochs": 10, "prune_steps": 3, "retrain_epochs": 4,
                      "fine_tune_epochs": 4, "lr": 1e-3, "retrain_lr": 1e-3,
                      "schedule": "cosine"},
    "lenet-5": {"dense_epochs": 6, "prune_steps": 3, "retrain_epochs": 2,
                "fine_tune_epochs": 2, "lr": 1e-3, "retrain_lr": 1e-3, "schedule": "cosine"},
}

#: How the recipes were chosen, as PAPER.md tells it.
RECIPE_SEARCH = ("Training recipes were chosen on 5,000 held-out training images, the test set "
                 "serving only to report; for LeNet-300-100 among a constant Adam rate of 5e-4 "
                 "or 2e-4, a cosine from 1e-3 or 2e-3, 2, 4 or 6 epochs per pruning step, "
                 "distillation from the dense model, and weight decay.")

DC = models.DEEP_COMPRESSION_DENSITY


def _scaled(name, factor):
    """Deep Compression's densities of `name` times `factor` (at most 1)."""
    return {layer: round(min(1.0, d * factor), 4) for layer, d in DC[name].items()}


#: The densities of the curve: Deep Compression's, and scaled versions of them. Each set is
#: pruned once (with retraining); every bits setting below then starts from that pruned net.
DENSITY_SETS = {
    "lenet-300-100": {"DC": None, "DC x2": _scaled("lenet-300-100", 2.0),
                      "DC x0.5": _scaled("lenet-300-100", 0.5)},
    "lenet-5": {"DC": None, "DC x0.5": _scaled("lenet-5", 0.5)},
}

#: Bits settings of the curve, as recipe entries; "preset" is the deep-compression preset's
#: (conv 8, fc 5 bits, float32 biases).
BIT_SETS = {
    "lenet-300-100": {"preset": {},
                      "fc 4 bits, f16 bias": {"kind:linear": {"bits": 4, "bias": "float16"}},
                      "fc 3 bits, f16 bias": {"kind:linear": {"bits": 3, "bias": "float16"}}},
    "lenet-5": {"preset": {},
                "conv 6, fc 4 bits, f16 bias": {
                    "kind:conv2d": {"bits": 6, "bias": "float16"},
                    "kind:linear": {"bits": 4, "bias": "float16"}},
                "conv 6, fc 3 bits, f16 bias": {
                    "kind:conv2d": {"bits": 6, "bias": "float16"},
                    "kind:linear": {"bits": 3, "bias": "float16"}}},
}

#: The ablation fine-tunes the centroids once over this many training images, Adam at this rate.
ABLATION_FINE_TUNE = {"images": 10_000, "lr": 5e-4}
ABLATION_BITS = {"preset (conv 8, fc 5)": None, "3 bits": 3}


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


# ---- the LeNets --------------------------------------------------------------------------------

class Net:
    """One LeNet (or, through `build` and `recipe`, another net): its data, recipe, trained
    dense model and the hooks the compressor calls."""

    def __init__(self, name, data, quick=False, seed=0, log=print, recipe=None):
        self.name, self.data, self.seed, self.log = name, data, seed, log
        r = dict(recipe or RECIPES[name])
        if quick:
            r.update(dense_epochs=1, retrain_epochs=1, fine_tune_epochs=1, prune_steps=2)
        self.recipe = r
        xtr, ytr, xval, yval, xte, yte = data
        self.val = (torch.from_numpy(xval), torch.from_numpy(yval))
        self.test = (torch.from_numpy(xte), torch.from_numpy(yte))
        self.example = self.test[0][:2]
        self.extra_epochs = r["prune_steps"] * r["retrain_epochs"] + r["fine_tune_epochs"]

    def _fit(self, model, epochs, lr, seed, schedule=None):
        xtr, ytr = self.data[:2]
        fit(model, loader(xtr, ytr, 128, seed), epochs=epochs, lr=lr, schedule=schedule)

    def scores(self, model):
        return {"val": accuracy(model, *self.val), "test": accuracy(model, *self.test)}

    def build(self):
        return models.seeded(models.MODELS[self.name], self.seed)

    def train_dense(self):
        r = self.recipe
        torch.manual_seed(self.seed)
        model = self.build()
        t0 = time.time()
        self._fit(model, r["dense_epochs"], r["lr"], self.seed, r.get("dense_schedule"))
        model.eval()
        self.dense = model
        self.dense_scores = self.scores(model)
        self.log(f"{self.name}: dense, {r['dense_epochs']} epochs: test "
                 f"{self.dense_scores['test']:.4f}, val {self.dense_scores['val']:.4f} "
                 f"({time.time() - t0:.0f} s)")
        return self.dense_scores

    def fair_baseline(self):
        """The dense net trained on for as many epochs as every compressed point received."""
        r = self.recipe
        t0 = time.time()
        model = copy.deepcopy(self.dense)
        self._fit(model, self.extra_epochs, r["retrain_lr"], self.seed + 1, r["schedule"])
        model.eval()
        self.baseline_scores = self.scores(model)
        self.log(f"{self.name}: fair baseline, dense + {self.extra_epochs} epochs: test "
                 f"{self.baseline_scores['test']:.4f}, val {self.baseline_scores['val']:.4f} "
                 f"({time.time() - t0:.0f} s)")
        return self.baseline_scores

    def settings(self, recipe):
        kinds = layer_kinds(self.dense, (self.example,))
        return recipes.resolve(kinds, recipe, "deep-compression", self.name)

    def prune(self, densities):
        """Prune a copy of the dense net to `densities` (None: the preset's) with retraining."""
        r = self.recipe
        recipe = {k: {"density": d} for k, d in (densities or {}).items()}
        model = copy.deepcopy(self.dense)
        calls = {"n": 0}

        def retrain(m):
            calls["n"] += 1
            self._fit(m, r["retrain_epochs"], r["retrain_lr"], self.seed + 10 + calls["n"],
                      r["schedule"])

        t0 = time.time()
        settings = self.settings(recipe)
        masks = prune(model, settings, train=retrain, steps=r["prune_steps"])
        model.eval()
        return {"model": model, "masks": masks, "settings": settings, "recipe": recipe,
                "scores": self.scores(model), "seconds": time.time() - t0}

    def finish(self, pruned, bits_recipe, label):
        """Share, fine-tune and encode a copy of a pruned net; run the file on the test set."""
        r = self.recipe
        recipe = copy.deepcopy(pruned["recipe"])
        for key, value in bits_recipe.items():
            recipe.setdefault(key, {}).update(value)

        def fine_tune(m):
            self._fit(m, r["fine_tune_epochs"], r["retrain_lr"], self.seed + 100, r["schedule"])

        t0 = time.time()
        packed = compress(copy.deepcopy(pruned["model"]), self.example, recipe,
                          preset="deep-compression", train=fine_tune,
                          evaluate=lambda m: accuracy(m, *self.val), masks=pruned["masks"],
                          prune_steps=r["prune_steps"], model_name=self.name)
        seconds = time.time() - t0
        blob = packed.to_bytes()
        cdnn_acc, _ = runtime_accuracy(blob, self.data[4], self.data[5], batch=500)
        rows = layer_table(packed.file)
        weights = sum(x["weights"] for x in rows)
        total = {"weights": weights,
                 "density": sum(x["density"] * x["weights"] for x in rows) / weights,
                 "file_bytes": packed.nbytes, "dense_bytes": packed.dense_bytes,
                 "ratio": packed.ratio}
        point = {"label": label, "recipe": recipe, "file_bytes": packed.nbytes,
                 "ratio": packed.ratio, "cdnn_test_accuracy": cdnn_acc,
                 "validation_scores": packed.scores,
                 "drop_vs_dense": 100 * (self.dense_scores["test"] - cdnn_acc),
                 "drop_vs_baseline": 100 * (self.baseline_scores["test"] - cdnn_acc),
                 "layers": rows, "total": total, "seconds": seconds}
        self.log(f"{self.name} [{label}]: {packed.nbytes:,} B = {packed.ratio:.1f}x, "
                 f"cdnn_runtime test {cdnn_acc:.4f} (fair baseline "
                 f"{self.baseline_scores['test']:.4f}); validation {packed.scores} "
                 f"({seconds:.0f} s)")
        return point, blob


def targets_met(name, points, baseline_test):
    """For each target (ratio, points): met or not, and the best ratio within the drop."""
    out = {}
    for key, (ratio, drop) in TARGETS[name].items():
        ok = [p for p in points if 100 * (baseline_test - p["cdnn_test_accuracy"]) <= drop + 1e-9]
        best = max(ok, key=lambda p: p["ratio"]) if ok else None
        out[key] = {"ratio": ratio, "max_drop_points": drop,
                    "met": bool(best and best["ratio"] >= ratio),
                    "best_within_drop": None if best is None else
                    {"label": best["label"], "ratio": best["ratio"],
                     "accuracy": best["cdnn_test_accuracy"]}}
    return out


def run_lenet(name, data, quick=False, keep=None, log=print):
    """Dense, fair baseline, and every point of the curve for one LeNet."""
    t0 = time.time()
    net = Net(name, data, quick, log=log)
    net.train_dense()
    net.fair_baseline()
    points, pruned_dc = [], None
    for dlabel, densities in DENSITY_SETS[name].items():
        pruned = net.prune(densities)
        log(f"{name} [{dlabel}]: pruned with {net.recipe['prune_steps']} x "
            f"{net.recipe['retrain_epochs']} epochs retraining: val "
            f"{pruned['scores']['val']:.4f}, test {pruned['scores']['test']:.4f} "
            f"({pruned['seconds']:.0f} s)")
        if densities is None:
            pruned_dc = pruned
        for blabel, bits in BIT_SETS[name].items():
            label = f"{dlabel}, {blabel}"
            point, blob = net.finish(pruned, bits, label)
            point.update(densities=dlabel, bits=blabel,
                         pruned_scores=pruned["scores"], prune_seconds=pruned["seconds"])
            points.append(point)
            if densities is None and not bits:
                # the deep-compression preset itself: kept as the published example file
                os.makedirs(os.path.join(RESULTS, "models"), exist_ok=True)
                path = os.path.join(RESULTS, "models", f"{name}-fashion.cdnn")
                if not quick:
                    with open(path, "wb") as fh:
                        fh.write(blob)
            if keep:
                os.makedirs(keep, exist_ok=True)
                slug = label.replace(", ", "_").replace(" ", "-")
                with open(os.path.join(keep, f"{name}_{slug}.cdnn"), "wb") as fh:
                    fh.write(blob)
    main = next(p for p in points if p["densities"] == "DC" and p["bits"] == "preset")
    res = {"recipe": net.recipe, "extra_epochs": net.extra_epochs,
           "dense": net.dense_scores, "fair_baseline": net.baseline_scores,
           "main": main["label"], "points": points,
           "targets": targets_met(name, points, net.baseline_scores["test"]),
           "published": PUBLISHED[name], "seconds": time.time() - t0}
    return res, net, pruned_dc


def ablation_prep(net, pruned):
    """What ablation.ablate_net starts from: the net pruned to the preset's densities."""
    r = dict(net.recipe, fine_tune_epochs=1, retrain_lr=ABLATION_FINE_TUNE["lr"])
    return {"model": copy.deepcopy(pruned["model"]), "masks": pruned["masks"],
            "settings": pruned["settings"], "example": net.example, "recipe": r,
            "dense_accuracy": net.dense_scores, "pruned_accuracy": pruned["scores"]}


# ---- report ------------------------------------------------------------------------------------

def _pct(x):
    return f"{100 * x:.2f}%"


def _below(drop):
    return f"{drop:.2f} points below" if drop >= 0 else f"{-drop:.2f} points above"


def _best(t, if_none, template):
    """A target's best point within its accuracy drop, through `template` (fields drop, label,
    ratio, accuracy), or `if_none`."""
    best = t["best_within_drop"]
    if best is None:
        return if_none
    return template.format(drop=t["max_drop_points"], label=best["label"], ratio=best["ratio"],
                           accuracy=_pct(best["accuracy"]))


def lenet_markdown(name, res):
    r = res["recipe"]
    main = next(p for p in res["points"] if p["label"] == res["main"])
    table = markdown_table(name, main["layers"], main["total"], res["published"])
    out = ["The `deep-compression` preset (Deep Compression's densities and bits), in the form "
           "of its Tables 2 and 3:", "", *table.splitlines()[2:], "",
           f"Training: dense {r['dense_epochs']} epochs (Adam {r['lr']:g}, batch 128); "
           f"compression: {r['prune_steps']} pruning steps x {r['retrain_epochs']} epoch(s) of "
           f"retraining, then {r['fine_tune_epochs']} epoch(s) of centroid fine-tuning, each call "
           f"Adam from {r['retrain_lr']:g} down a cosine: {res['extra_epochs']} epochs more in "
           f"all. Test accuracy: dense as trained {_pct(res['dense']['test'])}; "
           f"**fair baseline** (the dense net trained the same {res['extra_epochs']} epochs "
           f"more) **{_pct(res['fair_baseline']['test'])}**; the file above, run by "
           f"cdnn_runtime, **{_pct(main['cdnn_test_accuracy'])}** "
           f"({_below(main['drop_vs_baseline'])} the fair baseline, "
           f"{_below(main['drop_vs_dense'])} the dense net as trained).", "",
           "Every point of the curve (each density set pruned once, with the retraining above; "
           "each bits setting shared and fine-tuned from that pruned net; accuracy of the "
           "written file run by cdnn_runtime on the test set; drops in points, positive = "
           "worse):", "",
           "| densities | bits | file bytes | ratio | test accuracy | below fair baseline | "
           "below dense as trained | validation: pruned, shared, fine-tuned |",
           "|---|---|---:|---:|---:|---:|---:|---|"]
    for p in res["points"]:
        v = p["validation_scores"]
        out.append(f"| {p['densities']} | {p['bits']} | {p['file_bytes']:,} | "
                   f"{p['ratio']:.1f}x | {_pct(p['cdnn_test_accuracy'])} | "
                   f"{p['drop_vs_baseline']:+.2f} | {p['drop_vs_dense']:+.2f} | "
                   f"{100 * v['pruned']:.2f}, {100 * v['shared']:.2f}, "
                   f"{100 * v['fine_tuned']:.2f} |")
    out.append("")
    dens = "; ".join(f"{k}: " + (", ".join(f"{layer} {d:.1%}" for layer, d in v.items())
                                 if v else "Deep Compression's")
                     for k, v in DENSITY_SETS[name].items())
    out += [f"Density sets: {dens}.", ""]
    for key, t in res["targets"].items():
        got = _best(t, "none of the points",
                    "the best point within {drop} points is {label}, {ratio:.1f}x at {accuracy}")
        out.append(f"- {key}: at least {t['ratio']}x within {t['max_drop_points']} points of "
                   f"the fair baseline: **{'met' if t['met'] else 'not met'}** ({got}).")
    out.append("")
    return "\n".join(out)


def entropy_check(sizes):
    """Per network, over every code and gap stream (Huffman or fixed width, as the writer chose):
    payload bits against the sum of the streams' order-0 entropies, and the table bytes."""
    out = {}
    for name, res in sizes.items():
        streams = [s for r in res["layers"] for s in r["streams"].values()]
        payload = sum(s["payload_bits"] for s in streams)
        entropy = sum(s["entropy_bits"] for s in streams)
        over = [f"{r['name']} {k}" for r in res["layers"] for k, s in r["streams"].items()
                if s["excess"] > 0.02]
        out[name] = {"payload_bytes": payload / 8, "entropy_bytes": entropy / 8,
                     "table_bytes": sum(s["table_bytes"] for s in streams),
                     "excess": payload / entropy - 1, "streams": len(streams),
                     "streams_over_2pct": over,
                     "worst_stream": max(s["excess"] for s in streams)}
    return out


def sizes_markdown(sizes):
    text = paper_sizes.markdown(sizes)
    lines = text.splitlines()[2:]  # drop its title: PAPER.md has its own
    check = entropy_check(sizes)
    out = ["Huffman coding against the order-0 entropy. Per network, over all its code and gap "
           "streams: the bytes of the coded payloads against the sum of the streams' order-0 "
           "entropies, with the code-length tables and chunk indexes counted apart:", "",
           "| network | streams | payload | order-0 entropy | excess | tables and indexes | "
           "streams more than 2% over |", "|---|---:|---:|---:|---:|---:|---|"]
    for name, c in check.items():
        out.append(f"| {name} | {c['streams']} | {c['payload_bytes'] / 1e6:.3f} MB | "
                   f"{c['entropy_bytes'] / 1e6:.3f} MB | {100 * c['excess']:.2f}% | "
                   f"{c['table_bytes']:,} B | {len(c['streams_over_2pct'])}: "
                   f"{', '.join(c['streams_over_2pct']) or '-'} |")
    out += ["", "A Huffman code spends a whole number of bits on each symbol, at least one, so "
            "a stream whose symbols carry little information loses most: the gaps of a dense "
            "layer (AlexNet's conv1 keeps 84% of its weights, so nearly every gap is 0) carry "
            "well under a bit each. Such streams are small; per stream:", "",
            "| network | layer | stream | coding | symbols | payload / entropy | table bytes |",
            "|---|---|---|---|---:|---:|---:|"]
    for name, res in sizes.items():
        for r in res["layers"]:
            for key, s in r["streams"].items():
                out.append(f"| {name} | {r['name']} | {key} | {s['coding']} | {s['count']:,} | "
                           f"{1 + s['excess']:.4f} | {s['table_bytes']:,} |")
    out.append("")
    return "\n".join(lines + [""] + out)


def markdown(report, suffix=""):
    q = ", QUICK smoke run" if report["quick"] else ""
    out = [f"# cdnn against Deep Compression's tables ({report['date']}, "
           f"{report['threads']} threads{q})", "",
           "Produced by `make paper` (`benchmarks/reproduce.py`) in "
           f"{report['seconds'] / 60:.1f} minutes. Fashion-MNIST, because MNIST cannot be "
           "downloaded here: the same shape and harder, so the published accuracies (MNIST) "
           "cannot be set beside ours; only the ratios can. Ratios are the bytes of the dense "
           "float32 weights and biases over the bytes of the `.cdnn` file on disk, everything "
           "counted. Accuracy is that of the file run by cdnn_runtime on the "
           f"{report.get('test_images', 10000):,} test images. {RECIPE_SEARCH}", ""]
    lenets = report.get("lenets", {})
    if lenets:
        out += ["## Summary", "",
                "| network | target | result |", "|---|---|---|"]
        for name, res in lenets.items():
            for key, t in res["targets"].items():
                got = _best(t, "no point within the drop",
                            "best within {drop} points: {ratio:.1f}x ({label})")
                out.append(f"| {name} | {key}: {t['ratio']}x within {t['max_drop_points']} "
                           f"points of the fair baseline | {'met' if t['met'] else 'not met'}; "
                           f"{got} |")
        if "sizes" in report:
            for name, c in entropy_check(report["sizes"]).items():
                out.append(f"| {name} (synthetic weights) | coded streams within 2% of their "
                           f"order-0 entropy, tables apart | "
                           f"{'met' if c['excess'] <= 0.02 else 'not met'}: "
                           f"{100 * c['excess']:.2f}% over in all ({c['table_bytes']:,} B of "
                           f"tables); {len(c['streams_over_2pct'])} of {c['streams']} streams "
                           f"more than 2% over, the largest {100 * c['worst_stream']:.1f}% |")
        out += ["", f"![accuracy against ratio](accuracy_vs_ratio{suffix}.png)", ""]
        for name, res in lenets.items():
            out += [f"## {name}", "", lenet_markdown(name, res)]
    if "sizes" in report:
        out += ["## AlexNet and VGG-16: SYNTHETIC weights", "",
                sizes_markdown(report["sizes"]), f"![bytes per layer](sizes{suffix}.png)", ""]
    if "ablation" in report:
        text = ["#" + line if line.startswith("## ") else line
                for line in ablation.markdown(report["ablation"]).splitlines()[2:]]
        out += ["## Centroid initialisation: K-Means++ against linear and random", "",
                "Each LeNet starts from its net pruned above to Deep Compression's densities "
                "(the `DC` rows); the ablation's fine-tuning is a short pass of its own, "
                "described below.", "", *text, "", f"![ablation](ablation{suffix}.png)", ""]
    return "\n".join(out)


def plots(report, out, suffix=""):
    done = []
    if "sizes" in report:
        done.append(paper_plots.plot_sizes({"nets": report["sizes"]},
                                           os.path.join(out, f"sizes{suffix}.png")))
    if "ablation" in report:
        done.append(paper_plots.plot_ablation(report["ablation"],
                                              os.path.join(out, f"ablation{suffix}.png")))
    if report.get("lenets"):
        done.append(paper_plots.plot_lenet_curves(
            report["lenets"], os.path.join(out, f"accuracy_vs_ratio{suffix}.png")))
    return done


def write_outputs(report, out, with_json=True):
    """PAPER.md, the plots and (unless rewriting from it) paper.json into `out`."""
    suffix = "-quick" if report["quick"] else ""
    os.makedirs(out, exist_ok=True)
    md = markdown(report, suffix)
    if with_json:
        with open(os.path.join(out, f"paper{suffix}.json"), "w") as fh:
            json.dump(report, fh, indent=1)
    path = os.path.join(out, f"PAPER{suffix}.md")
    kept = kept_sections(path, md)  # the sections other scripts wrote (paper_vit.py, ...)
    with open(path, "w") as fh:
        fh.write(md + "\n" + kept)
    print(md)
    for path in plots(report, out, suffix):
        print(path)


def main():
    ap = lenet_parser(__doc__, quick_help="smoke run: 1 epoch, 2,000 images; writes *-quick files",
                      threads_help="torch threads (default: cores)",
                      from_json_help="rewrite PAPER.md and the plots from a saved paper.json, "
                                     "beside it")
    ap.add_argument("--parts", default="lenets,sizes,ablation",
                    help="any of lenets, sizes, ablation (the ablation needs lenets)")
    ap.add_argument("--out", default=RESULTS, help="folder for paper.json, PAPER.md, PNGs")
    ap.add_argument("--keep", metavar="DIR", help="keep every written .cdnn file in DIR")
    args = ap.parse_args()
    if args.from_json:
        report = load_json(args.from_json)
        write_outputs(report, os.path.dirname(os.path.abspath(args.from_json)), with_json=False)
        return
    parts = set(args.parts.split(","))
    unknown = parts - {"lenets", "sizes", "ablation"}
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    t0 = time.time()
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "quick": args.quick}
    if "lenets" in parts:
        data = load_data(args.quick)
        report["test_images"] = int(len(data[4]))
        report["lenets"] = {}
        pruned = {}
        for name in args.nets.split(","):
            res, net, pruned[name] = run_lenet(name, data, args.quick, args.keep)
            report["lenets"][name] = res
            if "ablation" in parts:
                t1 = time.time()
                images = ABLATION_FINE_TUNE["images"] if not args.quick else 500
                prep = ablation_prep(net, pruned[name])
                res_ab = ablation.ablate_net(name, prep, data, bit_settings=ABLATION_BITS,
                                             fine_tune_images=images)
                res_ab.update({"recipe": prep["recipe"],
                               "dense_accuracy": net.dense_scores,
                               "pruned_accuracy": pruned[name]["scores"],
                               "densities": {k: v["density"]
                                             for k, v in pruned[name]["settings"].items()},
                               "preset_bits": {k: v["bits"]
                                               for k, v in pruned[name]["settings"].items()},
                               "seconds": time.time() - t1})
                ab = report.setdefault("ablation", {
                    "date": report["date"], "quick": args.quick, "test_images": len(data[4]),
                    "inits": list(INITS), "seeds": list(ablation.SEEDS), "nets": {}})
                ab["nets"][name] = res_ab
    if "sizes" in parts:
        report["sizes"] = paper_sizes.alexnet_vgg_sizes(check_runtime=True)
    report["seconds"] = time.time() - t0
    write_outputs(report, args.out)


if __name__ == "__main__":
    main()
