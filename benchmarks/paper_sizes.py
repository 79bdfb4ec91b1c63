"""File sizes of AlexNet and VGG-16 compressed with Deep Compression's recipe, on synthetic weights.

Each network is built from a fixed seed (no ImageNet weights here), pruned in one shot to Deep
Compression's per-layer densities, its weights shared per layer (conv 8 bits, fc 5 bits,
K-Means++) and Huffman coded, with no retraining. The file is written to disk and its size is
set against Deep Compression's published sizes (AlexNet 240 MB -> 6.9 MB, 35x; VGG-16
552 MB -> 11.3 MB, 49x), per layer in the form of its Tables 4 and 5, with the bits each stream
takes per entry next to that stream's order-0 entropy.

Random weights are not trained weights: the sizes measure the format and the coder on this
recipe, not what a trained network would compress to (see the notes written with the table).
usage: python benchmarks/paper_sizes.py [--nets alexnet,vgg16] [--keep DIR]
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from _common import RESULTS
from _paper_common import layer_table
from cdnn import models
from cdnn.compress import compress

#: Deep Compression (Han et al., ICLR 2016), Table 1: dense MB -> compressed MB, ratio.
PUBLISHED = {"alexnet": {"dense_mb": 240, "compressed_mb": 6.9, "ratio": 35,
                         "nonzeros_m": 6.7},
             "vgg16": {"dense_mb": 552, "compressed_mb": 11.3, "ratio": 49,
                       "nonzeros_m": 10.3}}

#: Conventional layer names of the reference nets, by module name.
LAYER_NAMES = {
    "alexnet": {"features.0": "conv1", "features.3": "conv2", "features.6": "conv3",
                "features.8": "conv4", "features.10": "conv5", "classifier.1": "fc6",
                "classifier.4": "fc7", "classifier.6": "fc8"},
    "vgg16": {"features.0": "conv1_1", "features.2": "conv1_2", "features.5": "conv2_1",
              "features.7": "conv2_2", "features.10": "conv3_1", "features.12": "conv3_2",
              "features.14": "conv3_3", "features.17": "conv4_1", "features.19": "conv4_2",
              "features.21": "conv4_3", "features.24": "conv5_1", "features.26": "conv5_2",
              "features.28": "conv5_3", "classifier.0": "fc6", "classifier.3": "fc7",
              "classifier.6": "fc8"},
}

MB = 1e6


def iid_gap_bits(density):
    """Entropy per nonzero of the gaps when each position survives independently: H(d) / d."""
    d = float(density)
    if not 0 < d < 1:
        return 0.0
    return float(-(d * np.log2(d) + (1 - d) * np.log2(1 - d)) / d)


def _layer_rows(packed, name):
    """layer_table's columns, with each layer's bytes by stream and bits per nonzero."""
    rows = layer_table(packed.file)
    report = {r["layer"]: r for r in packed.report()["layers"]}
    for r in rows:
        rep = report[r["layer"]]
        b = rep["bytes"]
        _, gaps, codes = packed.file.entries(f"{r['layer']}.weight")
        nnz, entries = rep["nnz"], max(len(codes), 1)
        r["name"] = LAYER_NAMES.get(name, {}).get(r["layer"], r["layer"])
        r["nnz"] = nnz
        r["entries"] = int(len(codes))
        r["gap_bits"] = rep["gap_bits"]
        r["codebook_size"] = rep["codebook_size"]
        r["stream_bytes"] = {"codes": b["codes"], "gaps": b["gaps"],
                             "row_counts": b["row_counts"], "codebook": b["codebook"],
                             "bias": b["bias"]}
        r["codes_bits_per_nnz"] = 8 * b["codes"] / max(nnz, 1)
        r["gaps_bits_per_nnz"] = 8 * (b["gaps"] + b["row_counts"]) / max(nnz, 1)
        r["bits_per_nnz"] = rep["bits_per_nnz"]
        # order-0 entropy bound of both streams, per nonzero (fillers are paid for too)
        r["entropy_bits_per_nnz"] = (r["weight_entropy"] + r["index_entropy"]) * entries / max(
            nnz, 1)
        r["code_usage"] = {"used": int(np.unique(codes).size),
                           "max_share": float(np.bincount(codes).max() / entries)}
        r["mean_gap"] = float(gaps.mean()) if len(gaps) else 0.0
        r["iid_gap_bits_per_nnz"] = iid_gap_bits(r["density"])
    return rows


def compress_net(name, seed=0, directory=None, check_runtime=True, log=print):
    """Compress one seeded reference net with the deep-compression preset; measure the file."""
    t0 = time.time()
    model = models.seeded(models.MODELS[name], seed).eval()
    example = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    packed = compress(model, example, preset="deep-compression", model_name=name)
    seconds = time.time() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(directory or tmp, f"{name}-synthetic.cdnn")
        packed.save(path)
        on_disk = os.path.getsize(path)
        runtime_check = None
        if check_runtime:
            from cdnn_runtime import InferenceSession
            x = example[:1].numpy()
            with torch.no_grad():
                ref = packed.reference_model()(example[:1]).numpy()
            out = InferenceSession(path)(x)
            runtime_check = {"max_abs_diff": float(np.abs(out - ref).max()),
                             "max_abs_logit": float(np.abs(ref).max()),
                             "same_top1": bool(out.argmax() == ref.argmax())}
    assert on_disk == packed.nbytes
    rows = _layer_rows(packed, name)
    weights = sum(r["weights"] for r in rows)
    nnz = sum(r["nnz"] for r in rows)
    streams = {k: sum(r["stream_bytes"][k] for r in rows)
               for k in ("codes", "gaps", "row_counts", "codebook", "bias")}
    pq_bytes = sum((r["entries"] * (r["weight_bits_pq"] + r["index_bits_pq"]) + 7) // 8 + 4 *
                   r["codebook_size"] for r in rows)
    entropy_bytes = sum(r["entropy_bits_per_nnz"] * r["nnz"] for r in rows) / 8
    total = {
        "weights": weights, "nnz": nnz, "density": nnz / weights,
        "dense_bytes": packed.dense_bytes, "file_bytes": on_disk, "ratio": packed.ratio,
        "stream_bytes": streams,
        "other_bytes": on_disk - sum(streams.values()),
        "bits_per_nnz": 8 * (streams["codes"] + streams["gaps"] + streams["row_counts"]) / nnz,
        "codes_bits_per_nnz": 8 * streams["codes"] / nnz,
        "gaps_bits_per_nnz": 8 * (streams["gaps"] + streams["row_counts"]) / nnz,
        "entropy_bits_per_nnz": 8 * entropy_bytes / nnz,
        "pq_sparse_bytes": pq_bytes,
    }
    log(f"{name}: {packed.dense_bytes / MB:.1f} MB dense -> {on_disk / MB:.2f} MB on disk = "
        f"{packed.ratio:.1f}x ({seconds:.0f} s); Deep Compression: "
        f"{PUBLISHED[name]['compressed_mb']} MB, {PUBLISHED[name]['ratio']}x")
    return {"seed": seed, "layers": rows, "total": total, "published": PUBLISHED[name],
            "runtime_check": runtime_check, "seconds": seconds,
            "settings": packed.settings}


def alexnet_vgg_sizes(nets=("alexnet", "vgg16"), seed=0, directory=None, check_runtime=True,
                      log=print):
    """{net: per-layer rows, totals and the published figures} for the synthetic-weight nets."""
    return {name: compress_net(name, seed, directory, check_runtime, log) for name in nets}


def markdown(results):
    out = ["# AlexNet and VGG-16 with Deep Compression's recipe: SYNTHETIC weights", "",
           "Seeded random initialisation (torchvision's layouts and init; no ImageNet weights "
           "here), pruned in one shot to Deep Compression's per-layer densities, conv 8 bits, "
           "fc 5 bits (K-Means++), Huffman where it pays, no retraining. Sizes are of the "
           "`.cdnn` file on disk, every byte counted (codebooks, row counts, biases, graph, "
           "header). No accuracy can be given: the weights are not trained.", ""]
    for name, res in results.items():
        t, pub = res["total"], res["published"]
        out += [f"## {name} (synthetic weights, seed {res['seed']})", "",
                "| layer | #weights | kept | K | weight bits (P+Q) | weight bits/entry (H) | "
                "weight entropy | gap bits (P+Q) | gap bits/entry (H) | gap entropy | "
                "gap entropy/nonzero if i.i.d. | mean gap | bits/nonzero (H) | "
                "entropy bound/nonzero | ratio (P+Q+H) |",
                "|---|" + "---:|" * 14]
        for r in res["layers"]:
            out.append(
                f"| {r['name']} | {r['weights']:,} | {r['density']:.1%} | {r['codebook_size']} | "
                f"{r['weight_bits_pq']} | {r['weight_bits_pqh']:.2f} | "
                f"{r['weight_entropy']:.2f} | "
                f"{r['index_bits_pq']} | {r['index_bits_pqh']:.2f} | {r['index_entropy']:.2f} | "
                f"{r['iid_gap_bits_per_nnz']:.2f} | {r['mean_gap']:.1f} | "
                f"{r['bits_per_nnz']:.2f} | "
                f"{r['entropy_bits_per_nnz']:.2f} | {r['ratio_pqh']:.1f}x |")
        out.append(f"| **total** | {t['weights']:,} | {t['density']:.1%} | | | "
                   f"{t['codes_bits_per_nnz']:.2f}/nz | | | "
                   f"{t['gaps_bits_per_nnz']:.2f}/nz | | | | "
                   f"{t['bits_per_nnz']:.2f} | {t['entropy_bits_per_nnz']:.2f} | "
                   f"**{t['ratio']:.1f}x** |")
        out += ["",
                f"- file on disk: **{t['file_bytes'] / MB:.2f} MB** from "
                f"{t['dense_bytes'] / MB:.1f} MB "
                f"of float32 parameters = **{t['ratio']:.1f}x**; Deep Compression (trained "
                f"ImageNet weights, same densities and bits): {pub['compressed_mb']} MB from "
                f"{pub['dense_mb']} MB = {pub['ratio']}x.",
                f"- bits per nonzero: {t['bits_per_nnz']:.2f} here ({t['nnz'] / 1e6:.2f} M "
                f"nonzeros), against an order-0 entropy of {t['entropy_bits_per_nnz']:.2f} for "
                f"these code and gap streams; Deep Compression's file comes to about "
                f"{8 * pub['compressed_mb'] / pub['nonzeros_m']:.1f} bits per nonzero "
                f"({pub['nonzeros_m']} M nonzeros, everything included).",
                f"- bytes by stream: codes {t['stream_bytes']['codes'] / MB:.2f} MB, gaps "
                f"{t['stream_bytes']['gaps'] / MB:.2f} MB, row counts "
                f"{t['stream_bytes']['row_counts'] / MB:.3f} MB, codebooks "
                f"{t['stream_bytes']['codebook'] / 1e3:.1f} KB, biases "
                f"{t['stream_bytes']['bias'] / 1e3:.1f} KB, graph/header/other "
                f"{t['other_bytes'] / 1e3:.1f} KB.",
                f"- without Huffman (fixed-width codes, and gaps at the widths this file "
                f"uses, with codebooks): {t['pq_sparse_bytes'] / MB:.2f} MB for the sparse "
                f"layers.",
                ]
        rc = res.get("runtime_check")
        if rc:
            out.append(f"- cdnn_runtime on the written file, one random input: largest logit "
                       f"difference from the PyTorch model with the same weights "
                       f"{rc['max_abs_diff']:.2g} (largest logit {rc['max_abs_logit']:.2g}), "
                       f"same top-1: {rc['same_top1']}.")
        out.append("")
    out += ["## What random weights imply", "",
            "- Codes. AlexNet here has PyTorch's default initialisation, uniform on "
            "[-1/sqrt(fan_in), 1/sqrt(fan_in)]: the weights that survive pruning are uniform on "
            "two intervals, and 1-D k-means on a uniform density ends with cells of equal width "
            "and equal count, so every centroid takes the same share of the codes (entropy "
            "7.97-7.99 of 8 bits, 4.99 of 5) and Huffman coding has nothing to save on them. "
            "VGG-16 has torchvision's Gaussian initialisation: its surviving weights are the two "
            "tails of a Gaussian, denser near the pruning threshold, and the codes fall about "
            "0.4 bit below log2 K. Trained weights are peaked and uneven; that skew is what "
            "Deep Compression's Huffman stage exploited.",
            "- Gaps. Magnitude pruning of independent random weights keeps each position "
            "independently, so the gaps are geometric and their entropy per nonzero is "
            "H(d)/d for density d (the i.i.d. column); the measured gap entropy matches it. "
            "Trained layers prune in structured ways (dead input pixels or features, weak rows "
            "and filters), which leaves less to say about where the nonzeros are.",
            "- So the distance from Deep Compression's sizes is a property of these weights, "
            "not of the container: the file is within about 0.1 bit per nonzero of the order-0 "
            "entropy of its own streams, and graph, header, biases and codebooks add well under "
            "1%; random weights simply carry more bits per nonzero than the trained ones Deep "
            "Compression stored. What trained ImageNet weights would give cannot be measured "
            "here, and nothing here says anything about accuracy.",
            "- K counts the filler code where a layer needs one (a gap too long for its gap "
            "width is bridged by a zero-valued filler entry). The layouts are torchvision's "
            "(AlexNet's one-GPU variant, 61.1 M parameters; Caffe's two-group AlexNet that Deep "
            "Compression used has 61.0 M), so the dense sizes differ slightly from the "
            "published ones.", ""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="alexnet,vgg16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", metavar="DIR", help="keep the written .cdnn files in DIR")
    ap.add_argument("--no-runtime-check", action="store_true",
                    help="skip running the written files with cdnn_runtime")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    results = alexnet_vgg_sizes(tuple(args.nets.split(",")), args.seed, args.keep,
                                not args.no_runtime_check)
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "synthetic_weights": True, "nets": results}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "sizes.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    md = markdown(results)
    with open(os.path.join(RESULTS, "sizes.md"), "w") as fh:
        fh.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
