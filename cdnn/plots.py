"""Figures of a .cdnn file: weight histograms with their codebooks, and where the bytes go.

Needs matplotlib (`pip install 'cdnn[plot]'`), imported on first use; never imports torch,
so `cdnn inspect --plot` works wherever the runtime does.
"""

import math

import numpy as np

from cdnn_runtime.errors import PlotUnavailableError

PLOT_EXTRA = "pip install 'cdnn[plot]'"

#: Parts of the stacked bar chart: report key -> label.
PARTS = (("codes", "codes"), ("gaps", "gaps"), ("row_counts", "row counts"),
         ("codebook", "codebook"), ("bias", "bias"))


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(f"plotting needs matplotlib: {PLOT_EXTRA}") from None
    return Figure


def inspect_figure(f, report, *, columns=3):
    """A matplotlib Figure for a read file `f` and its `inspect_report`.

    One panel per sparse layer: the histogram of its stored weight values (codebook[codes],
    fillers left out) with the codebook's centroids as vertical lines; below them, a stacked
    bar per layer of its bytes by stream, and one bar for the header and other tensors.
    """
    Figure = _figure_class()
    layers = report["layers"]
    n = len(layers)
    n_cols = max(1, min(columns, n))
    n_rows = math.ceil(n / n_cols) if n else 0
    fig = Figure(figsize=(4.2 * n_cols + 0.6, 2.8 * n_rows + 3.4), layout="constrained")
    grid = fig.add_gridspec(n_rows + 1, n_cols, height_ratios=[1] * n_rows + [1.25])
    for i, r in enumerate(layers):
        ax = fig.add_subplot(grid[i // n_cols, i % n_cols])
        _histogram(ax, f, r)
    _bytes_bars(fig.add_subplot(grid[n_rows, :]), report)
    return fig


def _histogram(ax, f, r):
    s = f.sparse(r["tensor"])
    values = s.values()
    codebook = s.codebook
    filler = f.tensor(r["tensor"]).desc["filler_code"]
    if filler is not None:
        codebook = np.delete(codebook, filler)
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        span = (hi - lo) or 1.0
        bins = np.linspace(lo - 0.02 * span, hi + 0.02 * span, 161)
        ax.hist(values, bins=bins, color="#4878a8")
    many = codebook.size > 64
    ax.vlines(codebook, 0, 1, transform=ax.get_xaxis_transform(), colors="#c44e52",
              linewidth=0.4 if many else 0.8, alpha=0.45 if many else 0.8,
              label=f"{codebook.size} centroids")
    ax.set_title(f"{r['layer']} ({r['op'] or 'weight'}): {r['nnz']:,} nonzeros, "
                 f"K={r['codebook_size']}", fontsize=9)
    ax.set_xlabel("stored weight value", fontsize=8)
    ax.set_ylabel("weights", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper right")


def _bytes_bars(ax, report):
    layers = report["layers"]
    names = [r["layer"] for r in layers] + ["header/other"]
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for key, label in PARTS:
        h = np.array([r["bytes"][key] for r in layers] + [0], dtype=float) / 1024
        ax.bar(x, h, bottom=bottom, label=label)
        bottom += h
    other = np.zeros(len(names))
    other[-1] = report["totals"]["other"] / 1024
    ax.bar(x, other, bottom=bottom, label="header, graph, other tensors", color="#999999")
    top = bottom + other
    for xi, h in zip(x, top):  # each bar's total above it
        ax.annotate(f"{h:,.1f}", (xi, h), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)
    # stacked bars pin the autoscale to their tops (sticky edges): leave room for the labels
    ax.set_ylim(0, max(float(top.max()), 1e-3) * 1.15)
    ax.set_xticks(x, names, rotation=45 if len(names) > 8 else 0, ha="right"
                  if len(names) > 8 else "center", fontsize=8)
    ax.set_ylabel("KiB", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(f"where the {report['file_bytes']:,} bytes of the file go (dense float32: "
                 f"{report['dense_float32_bytes']:,} bytes, ratio {report['ratio']:.1f}x)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))  # beside the bars


def save_inspect_figure(f, report, path, *, dpi=110):
    """Draw `inspect_figure` and write it to `path` (format from the extension)."""
    fig = inspect_figure(f, report)
    fig.savefig(path, dpi=dpi)
    return path
