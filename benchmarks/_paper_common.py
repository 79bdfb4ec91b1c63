"""What the scripts of `make paper` share (reproduce.py, paper_sizes.py, ablation.py): the
Fashion-MNIST split, accuracy of a file run by cdnn_runtime, the per-layer stream accounting
in the form of Deep Compression's tables, and the LeNet scripts' common options."""

import argparse
import json
import os

import numpy as np

from cdnn.datasets import fashion_mnist
from cdnn_runtime import InferenceSession
from cdnn_runtime.report import entropy_bits

LENETS = "lenet-300-100,lenet-5"


def load_data(quick=False):
    """(x_train, y_train, x_val, y_val, x_test, y_test): Fashion-MNIST with 5,000 training
    images held out for validation (seeded); 2,000 of each with `quick`."""
    xtr, ytr = fashion_mnist(split="train")
    xte, yte = fashion_mnist(split="test")
    perm = np.random.default_rng(0).permutation(len(xtr))
    val, tr = perm[:5000], perm[5000:]
    data = [xtr[tr], ytr[tr], xtr[val], ytr[val], xte, yte]
    if quick:
        data = [a[:2000] for a in data]
    return tuple(data)


def runtime_accuracy(data, x, y, batch=1000):
    """Top-1 accuracy of .cdnn bytes run by cdnn_runtime, and its predictions."""
    sess = InferenceSession(data)
    preds = np.concatenate([sess(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((preds == y).mean()), preds


def stream_check(desc, key, section_bytes, symbols):
    """How close a coded stream comes to its order-0 entropy: payload bits over entropy bits,
    and the bytes spent beside the payload (code-length table, chunk index)."""
    s = desc[key]
    count = int(s["count"])
    if s["coding"] == "huffman":
        payload = int(s["payload_bits"])
    else:
        payload = count * int(s["bits"])  # a packed stream always records its width
    h = entropy_bits(symbols)
    return {"coding": s["coding"], "count": count, "payload_bits": payload,
            "entropy_bits": h * count, "table_bytes": section_bytes - (payload + 7) // 8,
            "excess": payload / (h * count) - 1 if h * count > 0 else 0.0}


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
            "layer": layer, "weights": numel,
            "density": d["nnz"] / numel, "fillers": d["entries"] - d["nnz"],
            "weight_bits_pq": weight_bits, "weight_bits_pqh": 8 * sizes["codes"] / entries,
            "weight_entropy": entropy_bits(codes),
            "index_bits_pq": d["gap_bits"], "index_bits_pqh": 8 * sizes["gaps"] / entries,
            "index_entropy": entropy_bits(gaps),
            "ratio_pq": 4 * numel / pq, "ratio_pqh": 4 * numel / pqh, "bytes": pqh,
            "streams": {"codes": stream_check(d, "codes", sizes["codes"], codes),
                        "gaps": stream_check(d, "gaps", sizes["gaps"], gaps)},
        })
    return rows


def paper_parser(doc, *, quick_help, threads_help, from_json_help, threads=None):
    """The options every paper script takes: --quick, --threads, --from-json."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--threads", type=int, default=threads, help=threads_help)
    ap.add_argument("--from-json", metavar="PATH", help=from_json_help)
    return ap


def lenet_parser(doc, *, quick_help, threads_help, from_json_help):
    """The options both LeNet scripts take: paper_parser's and --nets."""
    ap = paper_parser(doc, quick_help=quick_help, threads_help=threads_help,
                      from_json_help=from_json_help)
    ap.add_argument("--nets", default=LENETS)
    return ap


def load_json(path):
    with open(path) as fh:
        return json.load(fh)


#: The line under the heading of a PAPER.md section that a script other than reproduce.py
#: writes (reproduce.py rewrites PAPER.md and keeps such sections).
SECTION_MARK = "<!-- section written by benchmarks/{script} -->"


def _sections(text):
    """Markdown split before each `## ` heading: [(heading line or None, block)]."""
    lines = text.splitlines(keepends=True)
    cuts = [0] + [i for i, line in enumerate(lines) if i and line.startswith("## ")]
    out = []
    for a, b in zip(cuts, cuts[1:] + [len(lines)]):
        if a < b:
            head = lines[a].rstrip("\n") if lines[a].startswith("## ") else None
            out.append((head, "".join(lines[a:b])))
    return out


def write_section(path, section):
    """Put `section` (markdown, its `## ` heading first) into the file at `path`: in place of
    the section with the same heading, or at the end."""
    try:
        with open(path) as fh:
            old = fh.read()
    except FileNotFoundError:
        old = ""
    head = section.splitlines()[0]
    block = section.rstrip("\n") + "\n\n"
    heads, parts = map(list, zip(*_sections(old))) if old else ([], [])
    if head in heads:
        parts[heads.index(head)] = block
    else:
        parts.append(("" if not old or old.endswith("\n\n") else "\n") + block)
    with open(path, "w") as fh:
        fh.write("".join(parts).rstrip("\n") + "\n")


def kept_sections(path, text):
    """The sections of the markdown at `path` that another script wrote (SECTION_MARK under
    their heading) and `text` lacks, to append to `text` when rewriting that file."""
    try:
        with open(path) as fh:
            old = fh.read()
    except FileNotFoundError:
        return ""
    have = {h for h, _ in _sections(text)}
    mark = SECTION_MARK.split("{")[0]
    keep = [b for h, b in _sections(old)
            if h and h not in have and b.splitlines()[1:2] and
            b.splitlines()[1].startswith(mark)]
    return "".join("\n" + b.rstrip("\n") + "\n" for b in keep)


def rewrite_section_from_json(path, markdown):
    """The PAPER.md section beside a saved report `path`, rewritten by `markdown(report)`."""
    report = load_json(path)
    write_section_report(report, os.path.dirname(os.path.abspath(path)), None, markdown(report))


def write_section_report(report, out, name, section):
    """`name`.json (None: not written) and `section` in PAPER.md, in `out`; "-quick" files for a
    quick report."""
    suffix = "-quick" if report["quick"] else ""
    os.makedirs(out, exist_ok=True)
    if name:
        with open(os.path.join(out, f"{name}{suffix}.json"), "w") as fh:
            json.dump(report, fh, indent=1)
    write_section(os.path.join(out, f"PAPER{suffix}.md"), section)
    print(section)
