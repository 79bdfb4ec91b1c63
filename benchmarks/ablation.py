"""Ablation of the centroid initialisation: K-Means++ against linear and random (Forgy).

The claim under test (Liu, Wang & Ma 2019) is that K-Means++ seeding of the per-layer weight
sharing clusters compresses better than the linear initialisation Deep Compression chose. For
LeNet-300-100 and LeNet-5 on Fashion-MNIST:
  1. train the dense network once (Adam, fixed seed; 5,000 training images held out);
  2. prune it once to Deep Compression's per-layer densities, retraining with the masks held;
  3. for each bits setting (the preset's conv 8 / fc 5 bits, and 3 and 2 bits in every layer),
     each initialisation and each clustering seed: share the pruned weights from that start,
     record the total quantization error (inertia) and test accuracy, fine-tune the centroids
     for one pass over 10,000 training images drawn by the seed (all of them with
     --fine-tune-images 0) and record test accuracy again.
Everything but the initialisation and the seed is the same across a row: the pruned model, the
bits, and (per seed) the order of the fine-tuning batches. Accuracy is measured with PyTorch on
the model holding the decoded weights; for K-Means++ at seed 0, each bits setting, the model is
also written as a .cdnn file and run by cdnn_runtime on the test set to check that it agrees.
usage: python benchmarks/ablation.py [--nets lenet-300-100,lenet-5] [--quick] [--threads N]
                                    [--fine-tune-images N] [--from-json results/ablation.json]
"""

import copy
import json
import os
import time

import numpy as np
import torch

from _common import RESULTS
from _paper_common import lenet_parser, load_data, load_json, runtime_accuracy
from cdnn import models
from cdnn import recipe as recipes
from cdnn.cluster import INITS
from cdnn.compress import encode, fine_tune, layer_kinds, prune, share
from cdnn.train import accuracy, fit, loader

SEEDS = (0, 1, 2)

#: Bits settings: None keeps the preset's bits (conv 8, fc 5); an int applies to every layer.
BIT_SETTINGS = {"preset (conv 8, fc 5)": None, "3 bits": 3, "2 bits": 2}

#: Training images seen by one centroid fine-tuning pass (None: the whole training split).
FINE_TUNE_IMAGES = 10_000

#: Epochs and learning rates of the nets this script trains and prunes when run on its own
#: (within `make paper`, reproduce.py hands over the nets it pruned).
RECIPES = {
    "lenet-300-100": {"dense_epochs": 10, "prune_steps": 3, "retrain_epochs": 1,
                      "fine_tune_epochs": 1, "lr": 1e-3, "retrain_lr": 5e-4},
    "lenet-5": {"dense_epochs": 4, "prune_steps": 3, "retrain_epochs": 1,
                "fine_tune_epochs": 1, "lr": 1e-3, "retrain_lr": 5e-4},
}


def share_settings(settings, bits, init):
    """The resolved settings with the initialisation, and the bits unless `bits` is None."""
    out = {}
    for name, s in settings.items():
        s = dict(s, init=init)
        if bits is not None:
            s["bits"] = bits
        out[name] = s
    return out


def prepare_net(name, data, quick=False, log=print):
    """Train the dense net and prune it with retraining; returns what the ablation starts from."""
    xtr, ytr, xval, yval, xte, yte = data
    r = dict(RECIPES[name])
    if quick:
        r.update(dense_epochs=1, retrain_epochs=1)
    seed = 0
    torch.manual_seed(seed)
    model = models.seeded(models.MODELS[name], seed)
    t0 = time.time()
    fit(model, loader(xtr, ytr, 128, seed), epochs=r["dense_epochs"], lr=r["lr"])
    test = (torch.from_numpy(xte), torch.from_numpy(yte))
    val = (torch.from_numpy(xval), torch.from_numpy(yval))
    dense = {"test": accuracy(model, *test), "val": accuracy(model, *val)}
    dense_s = time.time() - t0
    example = test[0][:2]
    settings = recipes.resolve(layer_kinds(model, (example,)), None, "deep-compression", name)
    calls = {"n": 0}

    def retrain(m):
        calls["n"] += 1
        fit(m, loader(xtr, ytr, 128, seed + 1 + calls["n"]), epochs=r["retrain_epochs"],
            lr=r["retrain_lr"])

    t0 = time.time()
    masks = prune(model, settings, train=retrain, steps=r["prune_steps"])
    model.eval()
    pruned = {"test": accuracy(model, *test), "val": accuracy(model, *val)}
    prune_s = time.time() - t0
    log(f"{name}: dense {r['dense_epochs']} epochs test {dense['test']:.4f} ({dense_s:.0f} s); "
        f"pruned to {_densities({k: v['density'] for k, v in settings.items()})} with "
        f"{r['prune_steps']}x{r['retrain_epochs']} epochs retraining: test {pruned['test']:.4f} "
        f"({prune_s:.0f} s)")
    return {"model": model, "masks": masks, "settings": settings, "example": example,
            "recipe": r, "dense_accuracy": dense, "pruned_accuracy": pruned,
            "seconds": {"dense": dense_s, "prune": prune_s}}


def _densities(d):
    return ", ".join(f"{k} {v:.0%}" for k, v in d.items())


def ablate_net(name, prep, data, *, bit_settings=BIT_SETTINGS, inits=INITS, seeds=SEEDS,
               fine_tune_images=FINE_TUNE_IMAGES, log=print):
    """Every (bits setting, init, seed) run on the pruned net of `prepare_net`."""
    xtr, ytr, xval, yval, xte, yte = data
    test = (torch.from_numpy(xte), torch.from_numpy(yte))
    r = prep["recipe"]
    runs, checks = [], []
    subsets = {}
    for seed in seeds:
        if fine_tune_images and fine_tune_images < len(xtr):
            idx = np.sort(np.random.default_rng(seed).choice(len(xtr), fine_tune_images,
                                                             replace=False))
            subsets[seed] = (xtr[idx], ytr[idx])
        else:
            subsets[seed] = (xtr, ytr)
    for label, bits in bit_settings.items():
        for init in inits:
            for seed in seeds:
                t0 = time.time()
                model = copy.deepcopy(prep["model"])
                s = share_settings(prep["settings"], bits, init)
                layers = share(model, prep["masks"], s, seed=seed)
                inertia = {k: v.inertia for k, v in layers.items()}
                used = {k: int(v.codebook.size) for k, v in layers.items()}
                negative = {k: int((v.codebook < 0).sum()) for k, v in layers.items()}
                before = accuracy(model, *test)

                def train(m, seed=seed):
                    fit(m, loader(*subsets[seed], 128, 1000 + seed),
                        epochs=r["fine_tune_epochs"], lr=r["retrain_lr"])

                fine_tune(model, layers, train)
                after = accuracy(model, *test)
                run = {"bits": label, "init": init, "seed": seed,
                       "inertia": float(sum(inertia.values())), "inertia_by_layer": inertia,
                       "centroids_used": used, "negative_centroids": negative,
                       "accuracy_before": before,
                       "accuracy_after": after, "seconds": time.time() - t0}
                if init == inits[0] and seed == seeds[0]:
                    blob = encode(model, (prep["example"],), layers, s,
                                  metadata={"source_model": name, "ablation": run["bits"]})
                    rt_acc, preds = runtime_accuracy(blob, xte, yte)
                    with torch.no_grad():
                        ref = np.concatenate([model(test[0][i:i + 1000]).argmax(1).numpy()
                                              for i in range(0, len(xte), 1000)])
                    check = {"bits": label, "init": init, "seed": seed, "file_bytes": len(blob),
                             "torch_accuracy": after, "runtime_accuracy": rt_acc,
                             "predictions_differing": int((preds != ref).sum()),
                             "images": int(len(xte))}
                    checks.append(check)
                    log(f"  runtime check {label}: torch {after:.4f}, cdnn_runtime {rt_acc:.4f}, "
                        f"{check['predictions_differing']} of {len(xte)} predictions differ")
                runs.append(run)
                log(f"  {label:>22} {init:>8} seed {seed}: inertia {run['inertia']:.5g} "
                    f"acc {before:.4f} -> {after:.4f} ({run['seconds']:.0f} s)")
    return {"runs": runs, "runtime_checks": checks, "summary": summarize(runs),
            "fine_tune_images": int(len(subsets[seeds[0]][0]))}


def _stats(values):
    a = np.asarray(values, dtype=float)
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    if std <= 1e-9 * abs(float(a.mean())):
        std = 0.0
    return {"mean": float(a.mean()), "std": std, "n": int(a.size)}


def one_sided(run):
    """Layers whose 4-centroid codebook has 1 or 3 centroids below zero (not 2)."""
    return [k for k, used in run["centroids_used"].items()
            if used == 4 and run["negative_centroids"][k] != 2]


def summarize(runs):
    """{bits label: {init: {metric: mean/std/n}}} over the seeds."""
    out = {}
    for run in runs:
        out.setdefault(run["bits"], {}).setdefault(run["init"], []).append(run)
    return {b: {i: {m: _stats([x[m] for x in rs])
                    for m in ("inertia", "accuracy_before", "accuracy_after")}
                for i, rs in by_init.items()} for b, by_init in out.items()}


def run(nets=("lenet-300-100", "lenet-5"), quick=False, log=print, **kwargs):
    """The whole ablation; keyword arguments go to ablate_net."""
    data = load_data(quick)
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "quick": quick,
              "train_images": int(len(data[0])), "test_images": int(len(data[4])),
              "inits": list(kwargs.get("inits", INITS)), "seeds": list(kwargs.get("seeds", SEEDS)),
              "nets": {}}
    t0 = time.time()
    for name in nets:
        prep = prepare_net(name, data, quick, log)
        res = ablate_net(name, prep, data, log=log, **kwargs)
        res.update({"recipe": prep["recipe"], "dense_accuracy": prep["dense_accuracy"],
                    "pruned_accuracy": prep["pruned_accuracy"],
                    "densities": {k: v["density"] for k, v in prep["settings"].items()},
                    "preset_bits": {k: v["bits"] for k, v in prep["settings"].items()},
                    "seconds": dict(prep["seconds"], total=time.time() - t0)})
        report["nets"][name] = res
    report["seconds"] = time.time() - t0
    return report


def _pm(s, scale=1.0, fmt=".2f"):
    return f"{s['mean'] * scale:{fmt}} ± {s['std'] * scale:{fmt}}"


def markdown(report):
    seeds = report["seeds"]
    out = [f"# Centroid initialisation ablation on Fashion-MNIST ({report['date']}"
           f"{', QUICK smoke run' if report['quick'] else ''})", "",
           f"Mean ± standard deviation over clustering seeds {', '.join(map(str, seeds))} (the "
           f"seed also orders the fine-tuning batches, identically for every init). One dense "
           f"network per net, pruned once; test accuracy on {report['test_images']:,} images. "
           f"Linear initialisation is deterministic, so its spread before fine-tuning is zero "
           f"and after it comes from the batch order only. Inertia is the sum over layers of "
           f"the squared differences between each surviving weight and its centroid, before "
           f"fine-tuning. Bold: the best mean in each column of a bits setting.", ""]
    for name, res in report["nets"].items():
        r = res["recipe"]
        out += [f"## {name}", "",
                f"Dense ({r['dense_epochs']} epochs, Adam {r['lr']:g}): "
                f"{res['dense_accuracy']['test']:.2%}; pruned to "
                f"{_densities(res['densities'])} with "
                f"{r['prune_steps']} x {r['retrain_epochs']} epoch(s) of retraining: "
                f"{res['pruned_accuracy']['test']:.2%}. Fine-tuning: "
                f"{r['fine_tune_epochs']} pass (Adam {r['retrain_lr']:g}, batch 128) over "
                f"{res['fine_tune_images']:,} training images drawn by the seed, centroids and "
                f"biases trained.", "",
                "| bits | init | inertia | accuracy before fine-tuning (%) | "
                "accuracy after fine-tuning (%) |", "|---|---|---:|---:|---:|"]
        for bits, by_init in res["summary"].items():
            best = {m: max(by_init, key=lambda i: sign * by_init[i][m]["mean"])
                    for m, sign in (("inertia", -1), ("accuracy_before", 1),
                                    ("accuracy_after", 1))}

            def cell(init, m, scale=1.0, fmt=".2f"):
                text = _pm(by_init[init][m], scale, fmt)
                return f"**{text}**" if best[m] == init else text

            for init in by_init:
                out.append(f"| {bits} | {init} | {cell(init, 'inertia', fmt='.4g')} | "
                           f"{cell(init, 'accuracy_before', 100)} | "
                           f"{cell(init, 'accuracy_after', 100)} |")
        out.append("")
        two_bit = [x for x in res["runs"] if set(x["centroids_used"].values()) <= {4}]
        if two_bit:
            counts = {}
            for x in two_bit:
                c = counts.setdefault(x["init"], {"runs": 0})
                c["runs"] += 1
                for layer in x["centroids_used"]:
                    c[layer] = c.get(layer, 0) + (layer in one_sided(x))
            out.append("- 2 bits, runs whose 4 centroids are split one-sidedly (1 or 3 below "
                       "zero; the surviving weights form a negative and a positive tail), by "
                       "layer: " + "; ".join(
                           f"{i} " + ", ".join(f"{k} {v}/{c['runs']}" for k, v in c.items()
                                               if k != "runs") for i, c in counts.items())
                       + ".")
        for c in res["runtime_checks"]:
            out.append(f"- cdnn_runtime check ({c['bits']}, {c['init']}, seed {c['seed']}, "
                       f"{c['file_bytes']:,} B file): PyTorch {c['torch_accuracy']:.2%}, "
                       f"cdnn_runtime {c['runtime_accuracy']:.2%}; "
                       f"{c['predictions_differing']} of {c['images']:,} predictions differ.")
        out.append("")
    return "\n".join(out)


def main():
    ap = lenet_parser(__doc__, quick_help="smoke run: 1 epoch, 2,000 images",
                      threads_help="torch threads (default: torch's)",
                      from_json_help="rebuild the summary and the Markdown table of a saved run")
    ap.add_argument("--fine-tune-images", type=int, default=FINE_TUNE_IMAGES,
                    help="training images per fine-tuning pass (0: all)")
    args = ap.parse_args()
    if args.from_json:
        report = load_json(args.from_json)
        for res in report["nets"].values():
            res["summary"] = summarize(res["runs"])
        with open(args.from_json, "w") as fh:
            json.dump(report, fh, indent=1)
        md = markdown(report)
        with open(os.path.splitext(args.from_json)[0] + ".md", "w") as fh:
            fh.write(md + "\n")
        print(md)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(tuple(args.nets.split(",")), args.quick,
                 fine_tune_images=args.fine_tune_images or None)
    md = markdown(report)
    os.makedirs(RESULTS, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    with open(os.path.join(RESULTS, f"ablation{suffix}.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    with open(os.path.join(RESULTS, f"ablation{suffix}.md"), "w") as fh:
        fh.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
