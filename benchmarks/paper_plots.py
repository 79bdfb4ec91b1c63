"""Figures for the paper-style results: accuracy against compression ratio, the initialisation
ablation, and where the bytes of the AlexNet and VGG-16 files go. reproduce.py (`make paper`)
draws its figures with these functions; this script redraws them from the JSON files that
paper_sizes.py and ablation.py write when run on their own.

Each function draws one PNG with matplotlib's Agg canvas (no display, no pyplot state).
usage: python benchmarks/paper_plots.py [--sizes results/sizes.json]
                                         [--ablation results/ablation.json]
                                         [--out results]
"""

import argparse
import json
import os

import numpy as np

from _common import RESULTS

#: Deep Compression (Han et al. 2016), Table 1, MNIST: ratio and error before -> after.
DEEP_COMPRESSION = {"lenet-300-100": {"ratio": 40, "error": (1.64, 1.58)},
                    "lenet-5": {"ratio": 39, "error": (0.80, 0.74)}}
#: Soft weight-sharing (Ullrich et al. 2017), MNIST: ratio and error.
SOFT_WEIGHT_SHARING = {"lenet-300-100": {"ratio": 64, "error": 1.94},
                       "lenet-5": {"ratio": 162, "error": 0.97}}

INIT_COLORS = {"kmeans++": "#4878a8", "linear": "#e1812c", "random": "#3a923a"}
STREAM_COLORS = {"codes": "#4878a8", "gaps": "#e1812c", "other": "#8c8c8c"}


def _figure(**kwargs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _load(obj):
    if isinstance(obj, (str, os.PathLike)):
        with open(obj) as fh:
            return json.load(fh)
    return obj


def _percent(values):
    a = np.asarray(values, dtype=float)
    return a * 100 if a.size and np.nanmax(a) <= 1.0 else a


# ---- accuracy against compression ratio ----------------------------------------------------

def _ratio_ticks(lo, hi, marked):
    """Round ticks inside [lo, hi] that do not crowd the marked ratios, and the marked ones."""
    ticks = set(marked)
    for t in (1, 2, 5, 10, 20, 30, 50, 100, 200, 500, 1000):
        if lo <= t <= hi and all(abs(np.log(t / m)) > 0.15 for m in marked):
            ticks.add(t)
    return sorted(ticks)


def _ratio_axis(ax, lo, hi, refs):
    """A log compression-ratio x axis over [lo, hi], ticked at round ratios and at `refs`."""
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ticks = _ratio_ticks(lo, hi, refs)
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks], fontsize=7.5)
    ax.minorticks_off()
    ax.set_xlabel("compression ratio (dense float32 bytes / file bytes, log scale)",
                  fontsize=8.5)


def plot_accuracy_vs_ratio(points, published, out_png, *, extra=None, title=None,
                           curve_label="cdnn, this data set"):
    """Accuracy against compression ratio, one panel per network.

    `points` is a list of (ratio, accuracy, label) for one network, or {network: list}; they
    are drawn as one curve. `extra` (same form) are single points drawn apart from the curve,
    e.g. a differently trained recipe; `curve_label` names the curve in the legend.
    Accuracies may be fractions or percentages.
    `published` is, for one network or by network, a mapping with Deep Compression's "ratio"
    (optionally its MNIST "error" pair, and "soft_ratio" for soft weight-sharing; the known
    ratios of the LeNets are used otherwise), e.g. reproduce.PUBLISHED. Published ratios are
    drawn as vertical lines and a marker on the ratio axis only: their accuracies are on MNIST
    and cannot be set against accuracies measured on another data set.
    """
    if not isinstance(points, dict):
        points = {"": points}
        extra = {"": extra or []}
    extra = extra or {}
    if not published or "ratio" in published:
        published = {name: published for name in points}
    names = list(points)
    fig = _figure(figsize=(5.8 * len(names), 5.2), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        pts = sorted(points[name], key=lambda p: p[0])
        more = list(extra.get(name, []))
        pub = dict(published.get(name) or {})
        known = DEEP_COMPRESSION.get(name, {})
        dc_ratio = pub.get("ratio", known.get("ratio"))
        dc_error = pub.get("error", known.get("error"))
        soft = pub.get("soft_ratio", SOFT_WEIGHT_SHARING.get(name, {}).get("ratio"))
        ratios = np.array([p[0] for p in pts], dtype=float)
        accs = _percent([p[1] for p in pts])
        ax.plot(ratios, accs, "-o", color="#4878a8", lw=1.5, ms=6, zorder=3,
                label=curve_label)
        for r, a, (_, _, label) in zip(ratios, accs, pts):
            ax.annotate(f"{label}\n{r:.1f}x", (r, a), textcoords="offset points",
                        xytext=(6, 4), fontsize=7.5)
        all_acc = list(accs)
        all_ratio = list(ratios)
        for r, a, label in more:
            a = float(_percent([a])[0])
            ax.plot([r], [a], "*", ms=12, color="#dd8452", zorder=4, mec="black", mew=0.5,
                    label=f"cdnn, this data set: {label}")
            ax.annotate(f"{label}\n{r:.1f}x", (r, a), textcoords="offset points",
                        xytext=(7, -14), fontsize=7.5)
            all_acc.append(a)
            all_ratio.append(r)
        refs = [r for r in (dc_ratio, soft) if r]
        span_r = [*all_ratio, *refs] or [10, 100]
        lo, hi = min(span_r) / 1.4, max(span_r) * 1.4
        _ratio_axis(ax, lo, hi, refs)
        if all_acc:
            amin, amax = min(all_acc), max(all_acc)
            span = max(amax - amin, 1.0)
            ax.set_ylim(amin - 0.3 * span, amax + 0.3 * span)
        trans = ax.get_xaxis_transform()
        if dc_ratio:
            text = f"Deep Compression (MNIST): {dc_ratio}x"
            if dc_error:
                text += f", error {dc_error[0]}% -> {dc_error[1]}%"
            ax.axvline(dc_ratio, color="#c44e52", ls="--", lw=1.2, label=text)
            ax.plot([dc_ratio], [0], marker="^", ms=10, color="#c44e52", transform=trans,
                    clip_on=False, zorder=5)
            ax.text(dc_ratio, 0.985, f" DC {dc_ratio}x", transform=trans, fontsize=7.5,
                    color="#c44e52", ha="left", va="top")
        if soft:
            label = f"soft weight-sharing (MNIST): {soft}x"
            err = SOFT_WEIGHT_SHARING.get(name, {}).get("error")
            if err and "soft_ratio" not in pub:
                label += f", error {err}%"
            ax.axvline(soft, color="#8172b3", ls=":", lw=1.4, label=label)
            ax.text(soft, 0.985, f" SWS {soft}x", transform=trans, fontsize=7.5,
                    color="#8172b3", ha="left", va="top")
        ax.set_ylabel("test accuracy (%), this data set", fontsize=8.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(name or "", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=1,
                  frameon=False)
    fig.suptitle(title or "Accuracy against compression ratio. Published results are on MNIST: "
                 "only their ratios are drawn (vertical lines); their accuracies are not "
                 "comparable", fontsize=9.5)
    fig.savefig(out_png, dpi=120)
    return out_png


SET_COLORS = ("#4878a8", "#dd8452", "#55a868", "#c44e52", "#8172b3")


def _short_bits(label):
    """'fc 4 bits, f16 bias' -> 'fc4 f16'; 'preset' stays."""
    out = label.replace(" bits", "").replace(", f16 bias", " f16").replace("conv ", "conv")
    return out.replace("fc ", "fc").replace(", ", "/")


def plot_lenet_curves(lenets, out_png):
    """Accuracy against ratio for each LeNet of reproduce.py: one line per density set through
    its bits settings, the dense and fair baselines, the target band (0.3 points below the fair
    baseline), and the published ratios (MNIST: ratios only)."""
    lenets = _load(lenets)
    names = list(lenets)
    fig = _figure(figsize=(6.2 * len(names), 5.6), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        res = lenets[name]
        sets = list(dict.fromkeys(p["densities"] for p in res["points"]))
        ratios, accs = [], []
        for color, dset in zip(SET_COLORS, sets):
            pts = sorted((p for p in res["points"] if p["densities"] == dset),
                         key=lambda p: p["ratio"])
            r = [p["ratio"] for p in pts]
            a = [100 * p["cdnn_test_accuracy"] for p in pts]
            ax.plot(r, a, "-o", color=color, ms=6, lw=1.4, label=f"densities {dset}")
            for i, (p, x, y) in enumerate(zip(pts, r, a)):
                ax.annotate(f"{_short_bits(p['bits'])}", (x, y), textcoords="offset points",
                            xytext=(4, 5 if i % 2 == 0 else -12), fontsize=7, color=color)
            ratios += r
            accs += a
        fair = 100 * res["fair_baseline"]["test"]
        dense = 100 * res["dense"]["test"]
        ax.axhline(fair, color="#333333", lw=1.1,
                   label=f"fair baseline (dense + {res['extra_epochs']} epochs): {fair:.2f}%")
        ax.axhspan(fair - 0.3, fair, color="#55a868", alpha=0.12,
                   label="within 0.3 points of the fair baseline")
        ax.axhline(dense, color="#333333", lw=1.0, ls="--",
                   label=f"dense as trained: {dense:.2f}%")
        accs += [fair, dense]
        trans = ax.get_xaxis_transform()
        refs = []
        for ratio, text, color, style in (
                (DEEP_COMPRESSION.get(name, {}).get("ratio"), "Deep Compression", "#c44e52",
                 "--"),
                (SOFT_WEIGHT_SHARING.get(name, {}).get("ratio"), "soft weight-sharing",
                 "#8172b3", ":")):
            if ratio:
                refs.append(ratio)
                ax.axvline(ratio, color=color, ls=style, lw=1.2,
                           label=f"{text} (MNIST): {ratio}x")
                ax.text(ratio, 0.985, f" {ratio}x", transform=trans, fontsize=7.5,
                        color=color, ha="left", va="top")
        lo, hi = min(ratios + refs) / 1.25, max(ratios + refs) * 1.25
        _ratio_axis(ax, lo, hi, refs)
        span = max(max(accs) - min(accs), 1.0)
        ax.set_ylim(min(accs) - 0.15 * span, max(accs) + 0.15 * span)
        ax.set_ylabel("test accuracy (%), Fashion-MNIST, run by cdnn_runtime", fontsize=8.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2,
                  frameon=False)
    fig.suptitle("Accuracy against compression ratio (published ratios, on MNIST, as lines)",
                 fontsize=9.5)
    fig.savefig(out_png, dpi=120)
    return out_png


def ablation_points(ablation, dense_bytes):
    """{network: [(ratio, accuracy, label)]} from the cdnn_runtime checks of an ablation run
    (K-Means++, one seed, each bits setting): file size and accuracy of the written file."""
    out = {}
    for name, res in _load(ablation)["nets"].items():
        out[name] = [(dense_bytes[name] / c["file_bytes"], c["runtime_accuracy"],
                      c["bits"].split(" (")[0]) for c in res["runtime_checks"]]
    return out


# ---- ablation --------------------------------------------------------------------------------

def plot_ablation(ablation_json, out_png):
    """Per network and bits setting: accuracy before and after centroid fine-tuning, and the
    quantization error (inertia), for each initialisation; bars are means, whiskers the
    standard deviation over seeds."""
    rep = _load(ablation_json)
    nets = list(rep["nets"])
    bit_labels = list(rep["nets"][nets[0]]["summary"])
    fig = _figure(figsize=(4.3 * len(bit_labels), 3.3 * 2 * len(nets)), layout="constrained")
    axes = fig.subplots(2 * len(nets), len(bit_labels), squeeze=False)
    for n, name in enumerate(nets):
        summary = rep["nets"][name]["summary"]
        for b, bits in enumerate(bit_labels):
            by_init = summary[bits]
            inits = list(by_init)
            x = np.arange(len(inits))
            ax = axes[2 * n, b]
            w = 0.38
            tops, bottoms = [], []
            for off, key, hatch, lab in ((-w / 2, "accuracy_before", "//", "before fine-tuning"),
                                         (w / 2, "accuracy_after", None, "after fine-tuning")):
                m = np.array([by_init[i][key]["mean"] for i in inits]) * 100
                s = np.array([by_init[i][key]["std"] for i in inits]) * 100
                ax.bar(x + off, m, w, yerr=s, capsize=3, hatch=hatch, label=lab,
                       color=[INIT_COLORS.get(i, "#777777") for i in inits],
                       alpha=0.55 if hatch else 0.95, edgecolor="black", lw=0.5)
                tops.append((m + s).max())
                bottoms.append((m - s).min())
            span = max(max(tops) - min(bottoms), 0.5)
            ax.set_ylim(min(bottoms) - 0.25 * span, max(tops) + 0.15 * span)
            ax.set_xticks(x, inits, fontsize=8)
            ax.set_ylabel("test accuracy (%)\n(axis not from 0)", fontsize=8)
            ax.tick_params(axis="y", labelsize=7.5)
            ax.set_title(f"{name}, {bits}: accuracy", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            ax = axes[2 * n + 1, b]
            m = np.array([by_init[i]["inertia"]["mean"] for i in inits])
            s = np.array([by_init[i]["inertia"]["std"] for i in inits])
            ax.bar(x, m, 0.6, yerr=s, capsize=3, edgecolor="black", lw=0.5,
                   color=[INIT_COLORS.get(i, "#777777") for i in inits])
            for xi, mi, si in zip(x, m, s):
                ax.text(xi, mi + si, f"{mi:.3g}", ha="center", va="bottom", fontsize=7)
            ax.set_ylim(0, float((m + s).max()) * 1.15 or 1)
            ax.set_xticks(x, inits, fontsize=8)
            ax.set_ylabel("inertia (sum of squared errors)", fontsize=8)
            ax.tick_params(axis="y", labelsize=7.5)
            ax.set_title(f"{name}, {bits}: quantization error", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(fc="#bbbbbb", ec="black", hatch="//", alpha=0.55,
                              label="accuracy before fine-tuning"),
                        Patch(fc="#bbbbbb", ec="black", label="accuracy after fine-tuning")],
               loc="outside lower center", ncols=2, fontsize=8.5, frameon=False)
    n_seeds = len(rep.get("seeds", []))
    fig.suptitle(f"Centroid initialisation, Fashion-MNIST: mean ± std over {n_seeds} seeds"
                 f"{' (QUICK smoke run)' if rep.get('quick') else ''}", fontsize=10)
    fig.savefig(out_png, dpi=110)
    return out_png


# ---- sizes -----------------------------------------------------------------------------------

def plot_sizes(sizes_json, out_png):
    """Stacked bars of the bytes of each layer by stream (codes; gaps; codebook, row counts and
    bias) for AlexNet and VGG-16 as measured by paper_sizes.py (synthetic weights)."""
    rep = _load(sizes_json)
    nets = rep["nets"]
    fig = _figure(figsize=(12, 3.9 * len(nets)), layout="constrained")
    axes = fig.subplots(len(nets), 1, squeeze=False)[:, 0]
    for ax, (name, res) in zip(axes, nets.items()):
        rows = res["layers"]
        labels = [r.get("name", r["layer"]) for r in rows]
        x = np.arange(len(rows))
        parts = {
            "codes": np.array([r["stream_bytes"]["codes"] for r in rows], float),
            "gaps": np.array([r["stream_bytes"]["gaps"] for r in rows], float),
            "other": np.array([r["stream_bytes"]["codebook"] + r["stream_bytes"]["row_counts"] +
                               r["stream_bytes"]["bias"] for r in rows], float),
        }
        names = {"codes": "codes (Huffman or fixed width)",
                 "gaps": "relative-index gaps", "other": "codebook + row counts + bias"}
        bottom = np.zeros(len(rows))
        for key, h in parts.items():
            ax.bar(x, h / 1e6, 0.7, bottom=bottom / 1e6, label=names[key],
                   color=STREAM_COLORS[key], edgecolor="black", lw=0.3)
            bottom += h
        for xi, tot, r in zip(x, bottom, rows):
            ax.text(xi, tot / 1e6, f"{tot / 1e6:.2f} MB\n{r['bits_per_nnz']:.1f} b/nz",
                    ha="center", va="bottom", fontsize=6.5)
        ax.set_ylim(0, bottom.max() / 1e6 * 1.22)
        ax.set_xticks(x, [f"{lab}\n{r['density']:.0%}" for lab, r in zip(labels, rows)],
                      fontsize=7.5)
        ax.set_ylabel("MB in the file", fontsize=8.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        t, pub = res["total"], res["published"]
        ax.set_title(f"{name}, SYNTHETIC (seeded random) weights: {t['dense_bytes'] / 1e6:.0f} MB "
                     f"-> {t['file_bytes'] / 1e6:.2f} MB = {t['ratio']:.1f}x, "
                     f"{t['bits_per_nnz']:.2f} bits per nonzero.  Deep Compression (trained): "
                     f"{pub['dense_mb']} MB -> {pub['compressed_mb']} MB = {pub['ratio']}x",
                     fontsize=9)
        ax.legend(fontsize=7.5, loc="upper left")
    fig.suptitle("Bytes per layer by stream (x labels: layer and fraction of weights kept)",
                 fontsize=10)
    fig.savefig(out_png, dpi=110)
    return out_png


CURVE_LABEL = ("cdnn, this data set: ablation.py's pruned net, K-Means++ seed 0, one "
               "fine-tuning pass;\nbits per layer as labelled; file run by cdnn_runtime")


def _dense_bytes():
    from cdnn import models
    return {n: 4 * sum(p.numel() for p in models.MODELS[n]().parameters())
            for n in ("lenet-300-100", "lenet-5")}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=os.path.join(RESULTS, "sizes.json"))
    ap.add_argument("--ablation", default=os.path.join(RESULTS, "ablation.json"))
    ap.add_argument("--out", default=RESULTS, help="folder for the PNG files")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    done = []
    if os.path.exists(args.sizes):
        done.append(plot_sizes(args.sizes, os.path.join(args.out, "sizes.png")))
    if os.path.exists(args.ablation):
        done.append(plot_ablation(args.ablation, os.path.join(args.out, "ablation.png")))
        points = ablation_points(args.ablation, _dense_bytes())
        done.append(plot_accuracy_vs_ratio(points, DEEP_COMPRESSION,
                                           os.path.join(args.out, "ablation_ratio.png"),
                                           curve_label=CURVE_LABEL))
    for path in done:
        print(path)


if __name__ == "__main__":
    main()
