"""A character-level GPT trained on the Python standard library, compressed, measured by
cdnn_runtime: held-out bits per character against file size (part of `make paper`).

Corpus: every `*.py` file under `sysconfig.get_paths()["stdlib"]` of the interpreter that runs
this script, except those under a `site-packages` or `dist-packages` directory and those under
a test directory (`test`, `tests`, `idle_test`: mostly data-like test cases). Files are read
as UTF-8 (undecodable bytes replaced) and split BY FILE on the SHA-256 of their path relative
to the stdlib root (first 8 hex digits as an integer, mod 10): 0 = held-out (reported only),
1 = validation (chooses the recipe), 2-9 = training. Each split's files are concatenated in
sorted path order (a window may cross from one file into the next).

Characters: id 0 = any other character, 1 = tab, 2 = newline, 3..97 = printable ASCII
32..126: 98 ids, the vocabulary of `cdnn.zoo_sequence.gpt(98, context=128)` (4 layers, width
256, 4 heads, head tied to the token embedding).

Training: random 129-character windows of the training text (the model predicts all 128 next
characters), AdamW (betas 0.9/0.95, weight decay 0.1 on matrices only, gradients clipped at
1.0), a fixed seed. Dense: linear warm-up then a cosine down to a tenth of the rate. Each
retraining call (after each pruning step, and the centroid fine-tuning) restarts at its own
rate down a cosine to 0; the fair baseline trains the dense model on for as many steps as a
pruned point received in all, with one such cosine.

Measure: bits per character = mean cross-entropy in bits over every predicted character of a
fixed set of 128-character windows (seeded offsets) of the held-out text; a compressed point's
figure is that of its .cdnn file run by cdnn_runtime.InferenceSession at a batch of windows.
The validation text's windows choose which point of the curve is kept (the smallest file within
2% of the fair baseline's validation bits per character); the held-out figures only report.

Writes paper_chargpt.json, the `## Character-level GPT on the Python standard library` section
of PAPER.md (in place of its previous version, the rest of the file untouched; reproduce.py's
rewrite keeps it), chargpt.cdnn (the kept
point) and chargpt.vocab.json (its vocabulary) into --out (benchmarks/results). With --quick
(a tiny GPT of the same context, a few files, a few steps): *-quick files, in well under a
minute.

usage: python benchmarks/paper_chargpt.py [--quick] [--threads 1] [--out DIR] [--work DIR]
                                          [--from-json PATH]
"""

import copy
import hashlib
import json
import math
import os
import sys
import sysconfig
import time

import numpy as np
import torch
import torch.nn.functional as F

from _common import RESULTS
from _paper_common import SECTION_MARK, load_json, paper_parser, write_section_report
from cdnn import recipe as recipes
from cdnn.compress import compress, layer_kinds, prune
from cdnn.zoo_sequence import GPT, gpt
from cdnn_runtime import InferenceSession

CONTEXT = 128
#: Ids 1.. in order; id 0 is every character not listed here.
CHARS = "\t\n" + "".join(chr(c) for c in range(32, 127))
VOCAB = 1 + len(CHARS)
OTHER_ID = 0
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test"}
SECTION = "## Character-level GPT on the Python standard library"
#: The target of the issue: at least this ratio against float32 within this relative rise of
#: bits per character over the fair baseline.
TARGET_RATIO, TARGET_RISE = 10.0, 0.02

#: Steps (batches of 32 windows) of each phase: about 0.5 s a step on two free cores, so that
#: the whole run fits in about an hour (see budget() and PAPER.md). Every point receives the
#: same steps after the dense training (density 1.0 retrains too, pruning nothing), which is
#: what the fair baseline receives.
FULL = {"batch": 32, "dense_steps": 1600, "warmup": 100, "lr": 2e-3, "prune_steps": 3,
        "retrain_steps": 150, "retrain_lr": 5e-4, "fine_tune_steps": 100, "fine_tune_lr": 3e-4,
        "densities": [1.0, 0.5, 0.4, 0.3], "bits": [4, 5], "val_windows": 128,
        "test_windows": 256, "eval_batch": 32}
QUICK = {**FULL, "batch": 8, "dense_steps": 6, "warmup": 2, "prune_steps": 2,
         "retrain_steps": 2, "fine_tune_steps": 2, "densities": [1.0, 0.5], "bits": [4],
         "val_windows": 8, "test_windows": 8, "eval_batch": 8, "max_files": 12}


# ---- corpus ----------------------------------------------------------------------------------

def split_of(rel):
    """'heldout', 'val' or 'train' for a path relative to the stdlib root."""
    bucket = int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16) % 10
    return {0: "heldout", 1: "val"}.get(bucket, "train")


def corpus_files(root):
    """Sorted paths (relative to root, '/'-separated) of the corpus' *.py files."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in filenames:
            if f.endswith(".py"):
                out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(out)


_TABLE = np.zeros(128, np.uint8)
for _i, _c in enumerate(CHARS):
    _TABLE[ord(_c)] = _i + 1


def encode(text):
    """Character ids (uint8) of a string: CHARS' ids, OTHER_ID for anything else."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ids = np.full(codes.shape, OTHER_ID, np.uint8)
    ascii_ = codes < 128
    ids[ascii_] = _TABLE[codes[ascii_]]
    return ids


def load_corpus(max_files=None):
    """{split: uint8 ids}, and what the corpus is (root, Python version, files, characters)."""
    root = sysconfig.get_paths()["stdlib"]
    files = corpus_files(root)
    by_split = {"train": [], "val": [], "heldout": []}
    for rel in files:
        by_split[split_of(rel)].append(rel)
    if max_files:
        by_split = {k: v[:max_files] for k, v in by_split.items()}
    ids, info = {}, {"root": root, "python": sys.version.split()[0],
                     "implementation": sys.implementation.name, "skipped_dirs": sorted(SKIP_DIRS)}
    for split, rels in by_split.items():
        parts = []
        for rel in rels:
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
                parts.append(fh.read())
        ids[split] = encode("".join(parts))
        info[split] = {"files": len(rels), "chars": int(ids[split].size),
                       "other_chars": int((ids[split] == OTHER_ID).sum())}
    return ids, info


def fixed_windows(ids, n, seed):
    """n windows of CONTEXT + 1 ids at seeded offsets (sorted): int64 [n, CONTEXT + 1]."""
    starts = np.sort(np.random.default_rng(seed).integers(0, ids.size - CONTEXT - 1, n))
    return np.stack([ids[s:s + CONTEXT + 1] for s in starts]).astype(np.int64)


# ---- training --------------------------------------------------------------------------------

def _optimizer(model, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2],
                               "weight_decay": 0.1},
                              {"params": [p for p in params if p.dim() < 2],
                               "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))


def train_steps(model, ids, steps, lr, seed, batch, warmup=0, floor=0.0, log=None):
    """`steps` AdamW steps on random windows of `ids`: warm-up over `warmup` steps, then a
    cosine from `lr` to `floor * lr`. Returns the mean loss of the last 50 steps."""
    opt = _optimizer(model, lr)
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(ids.astype(np.int64))
    offsets = torch.arange(CONTEXT + 1)
    losses = []
    model.train()
    for step in range(steps):
        if step < warmup:
            rate = lr * (step + 1) / warmup
        else:
            t = (step - warmup) / max(1, steps - warmup)
            rate = lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))
        for group in opt.param_groups:
            group["lr"] = rate
        starts = torch.randint(0, data.numel() - CONTEXT - 1, (batch,), generator=gen)
        w = data[starts[:, None] + offsets]
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % 100 == 0:
            log(f"  step {step + 1}/{steps}: loss {np.mean(losses[-100:]) / math.log(2):.3f} "
                f"bits/char")
    model.eval()
    return float(np.mean(losses[-50:])) / math.log(2) if losses else float("nan")


def _bits(logits, targets):
    """Mean cross-entropy in bits of float logits [n, t, vocab] against ids [n, t]."""
    z = logits.astype(np.float64)
    z -= z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    return -picked.sum() / math.log(2), picked.size


def bpc_torch(model, windows, batch):
    total, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            w = windows[i:i + batch]
            s, k = _bits(model(torch.from_numpy(w[:, :-1])).numpy(), w[:, 1:])
            total, n = total + s, n + k
    return total / n


def bpc_runtime(blob, windows, batch):
    """Bits per character of .cdnn bytes run by cdnn_runtime at `batch` windows a call, on as
    many threads as torch has (numba's OpenMP layer shares torch's thread count: restored)."""
    threads = torch.get_num_threads()
    sess = InferenceSession(blob, num_threads=threads)
    name = sess.get_inputs()[0].name
    total, n = 0.0, 0
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        s, k = _bits(sess.run(None, {name: np.ascontiguousarray(w[:, :-1])})[0], w[:, 1:])
        total, n = total + s, n + k
    torch.set_num_threads(threads)
    return total / n


# ---- sizes -----------------------------------------------------------------------------------

def int8_bytes(model, example):
    """What a per-tensor int8 file would take: 1 byte for each weight of the layers cdnn
    compresses (the tied token table and head once) plus a float32 scale per such tensor, and
    float32 for every other parameter (biases, LayerNorm, the position table)."""
    quantized = {id(model.get_parameter(f"{name}.weight"))
                 for name in layer_kinds(model, (example,))}
    params = dict(model.named_parameters())  # a tied table once
    quant = [p for p in params.values() if id(p) in quantized]
    q = sum(p.numel() for p in quant)
    total = sum(p.numel() for p in params.values())
    return q + 4 * len(quant) + 4 * (total - q)


# ---- the run ---------------------------------------------------------------------------------

def budget(r, step_s):
    """Training steps of the whole run and their estimated seconds at `step_s` a step."""
    extra = r["prune_steps"] * r["retrain_steps"] + r["fine_tune_steps"]
    steps = (r["dense_steps"] + extra
             + len(r["densities"]) * r["prune_steps"] * r["retrain_steps"]
             + len(r["densities"]) * len(r["bits"]) * r["fine_tune_steps"])
    return {"steps": steps, "extra_steps": extra, "step_s": step_s,
            "estimate_min": steps * step_s / 60}


class Stash:
    """With a work folder, what each phase made (the dense model, the fair baseline's figures,
    each point's figures and file), so that a rerun with the same folder resumes where an
    interrupted one stopped; without one, nothing is kept."""

    def __init__(self, folder):
        self.folder = folder
        if folder:
            os.makedirs(folder, exist_ok=True)

    def _path(self, name):
        return os.path.join(self.folder, name) if self.folder else None

    def get(self, name):
        path = self._path(name + ".json")
        if path is None or not os.path.exists(path):
            return None
        blob = None
        if os.path.exists(self._path(name + ".cdnn")):
            with open(self._path(name + ".cdnn"), "rb") as fh:
                blob = fh.read()
        return load_json(path), blob

    def put(self, name, value, blob=None):
        if self.folder is None:
            return
        if blob is not None:
            with open(self._path(name + ".cdnn"), "wb") as fh:
                fh.write(blob)
        with open(self._path(name + ".json"), "w") as fh:  # last: it marks the phase done
            json.dump(value, fh, indent=1)


def run(quick=False, seed=0, log=print, work=None):
    r = dict(QUICK if quick else FULL)
    stash = Stash(work)
    t_all = time.time()
    ids, corpus = load_corpus(r.get("max_files"))
    log(f"corpus: Python {corpus['python']} stdlib, " + ", ".join(
        f"{k} {corpus[k]['files']} files / {corpus[k]['chars']:,} chars"
        for k in ("train", "val", "heldout")))
    val = fixed_windows(ids["val"], r["val_windows"], seed + 1)
    test = fixed_windows(ids["heldout"], r["test_windows"], seed + 2)
    example = torch.from_numpy(test[:1, :-1].copy())
    torch.manual_seed(seed)
    model = GPT(VOCAB, CONTEXT, 32, 2, 2) if quick else gpt(VOCAB, CONTEXT)
    n_params = sum(p.numel() for p in model.parameters())

    def fit(m, steps, lr, s, **kw):
        return train_steps(m, ids["train"], steps, lr, s, r["batch"], **kw)

    kept_dense = stash.get("dense")
    if kept_dense:
        dense = kept_dense[0]
        model.load_state_dict(torch.load(os.path.join(work, "dense.pt"), weights_only=True))
        model.eval()
    else:
        t0 = time.time()
        fit(model, r["dense_steps"], r["lr"], seed, warmup=r["warmup"], floor=0.1, log=log)
        dense = {"val": bpc_torch(model, val, r["eval_batch"]),
                 "heldout": bpc_torch(model, test, r["eval_batch"]),
                 "seconds": time.time() - t0}
        if work:
            torch.save(model.state_dict(), os.path.join(work, "dense.pt"))
        stash.put("dense", dense)
    step_s = dense["seconds"] / r["dense_steps"]
    plan = budget(r, step_s)
    log(f"dense, {r['dense_steps']} steps ({step_s:.2f} s a step): held-out "
        f"{dense['heldout']:.4f}, validation {dense['val']:.4f} bits/char; whole run "
        f"~{plan['estimate_min']:.0f} min of training")

    baseline = (stash.get("baseline") or [None])[0]
    if baseline is None:
        t0 = time.time()
        base = copy.deepcopy(model)
        fit(base, plan["extra_steps"], r["retrain_lr"], seed + 1)
        baseline = {"val": bpc_torch(base, val, r["eval_batch"]),
                    "heldout": bpc_torch(base, test, r["eval_batch"]),
                    "steps": plan["extra_steps"], "seconds": time.time() - t0}
        stash.put("baseline", baseline)
        del base
    log(f"fair baseline, dense + {plan['extra_steps']} steps: held-out "
        f"{baseline['heldout']:.4f}, validation {baseline['val']:.4f}")

    points, blobs = [], []
    for density in r["densities"]:
        done = {bits: stash.get(f"point_d{density}_b{bits}") for bits in r["bits"]}
        if all(done.values()):
            for point, blob in done.values():
                points.append(point)
                blobs.append(blob)
            continue
        t0 = time.time()
        pruned = copy.deepcopy(model)
        recipe = {k: {"density": density} for k in ("kind:linear", "kind:embedding")}
        calls = {"n": 0}

        def retrain(m):
            calls["n"] += 1
            fit(m, r["retrain_steps"], r["retrain_lr"], seed + 10 + calls["n"])

        settings = recipes.resolve(layer_kinds(pruned, (example,)), recipe)
        if density < 1:
            masks = prune(pruned, settings, train=retrain, steps=r["prune_steps"])
        else:  # nothing to prune: the same steps of plain training, in one cosine
            fit(pruned, r["prune_steps"] * r["retrain_steps"], r["retrain_lr"], seed + 11)
            calls["n"] += 1
            masks = prune(pruned, settings)
        pruned.eval()
        prune_s = time.time() - t0
        pruned_val = bpc_torch(pruned, val, r["eval_batch"])
        log(f"density {density}: pruned ({calls['n']} retraining calls, {prune_s:.0f} s): "
            f"validation {pruned_val:.4f}")
        for bits in r["bits"]:
            if done[bits]:
                points.append(done[bits][0])
                blobs.append(done[bits][1])
                continue
            t0 = time.time()
            rec = {k: {"density": density, "bits": bits, "bias": "float16"}
                   for k in ("kind:linear", "kind:embedding")}

            def fine_tune(m):
                fit(m, r["fine_tune_steps"], r["fine_tune_lr"], seed + 100)

            packed = compress(copy.deepcopy(pruned), example, rec, train=fine_tune,
                              masks=masks, prune_steps=r["prune_steps"],
                              model_name="chargpt", input_names=["ids"])
            blob = packed.to_bytes()
            point = {"density": density, "bits": bits, "recipe": rec,
                     "file_bytes": packed.nbytes, "ratio": packed.ratio,
                     "val": bpc_runtime(blob, val, r["eval_batch"]),
                     "heldout": bpc_runtime(blob, test, r["eval_batch"]),
                     "pruned_val_torch": pruned_val,
                     "steps": r["prune_steps"] * r["retrain_steps"] + r["fine_tune_steps"],
                     "prune_seconds": prune_s, "seconds": time.time() - t0}
            point["rise_vs_baseline"] = point["heldout"] / baseline["heldout"] - 1
            point["rise_vs_dense"] = point["heldout"] / dense["heldout"] - 1
            log(f"  density {density}, {bits} bits: {packed.nbytes:,} B = {packed.ratio:.1f}x;"
                f" cdnn_runtime held-out {point['heldout']:.4f} "
                f"({100 * point['rise_vs_baseline']:+.2f}% vs fair baseline), validation "
                f"{point['val']:.4f} ({point['seconds']:.0f} s)")
            points.append(point)
            blobs.append(blob)
            stash.put(f"point_d{density}_b{bits}", point, blob)
    kept = choose(points, baseline)
    float32_bytes = 4 * n_params
    report = {"date": time.strftime("%Y-%m-%d"), "quick": quick, "seed": seed,
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "corpus": corpus, "vocab": {"size": VOCAB, "other_id": OTHER_ID, "chars": CHARS},
              "model": {"context": CONTEXT, "params": n_params,
                        "call": f"cdnn.zoo_sequence.{'GPT(' if quick else 'gpt('}{VOCAB}, "
                                f"{CONTEXT}{', 32, 2, 2)' if quick else ')'}",
                        "shape": "2 layers, width 32, 2 heads" if quick else
                        "4 layers, width 256, 4 heads, tied head"},
              "recipe": r, "budget": plan, "windows": {"val": len(val), "heldout": len(test)},
              "sizes": {"float32_bytes": float32_bytes,
                        "int8_bytes": int8_bytes(model, example)},
              "dense": dense, "fair_baseline": baseline, "points": points, "kept": kept,
              "target": target(points, kept, baseline)}
    report["seconds"] = time.time() - t_all
    report["resumed"] = bool(kept_dense)
    return report, blobs[kept] if kept is not None else None


def choose(points, baseline):
    """The kept point, chosen on validation: the smallest file within TARGET_RISE of the fair
    baseline's validation bits per character; else the lowest validation figure."""
    ok = [i for i, p in enumerate(points) if p["val"] <= (1 + TARGET_RISE) * baseline["val"]]
    if ok:
        return min(ok, key=lambda i: points[i]["file_bytes"])
    return min(range(len(points)), key=lambda i: points[i]["val"]) if points else None


def target(points, kept, baseline):
    """The target judged on the held-out text for the point validation kept; and, for the
    record, the held-out best: the largest ratio within TARGET_RISE."""
    limit = (1 + TARGET_RISE) * baseline["heldout"]
    within = [p for p in points if p["heldout"] <= limit]
    best = max(within, key=lambda p: p["ratio"]) if within else None
    k = points[kept] if kept is not None else None
    return {"ratio": TARGET_RATIO, "max_rise": TARGET_RISE, "limit_bpc": limit,
            "met": bool(k and k["ratio"] >= TARGET_RATIO and k["heldout"] <= limit),
            "heldout_best": None if best is None else
            {"density": best["density"], "bits": best["bits"], "ratio": best["ratio"],
             "heldout": best["heldout"]}}


# ---- report ----------------------------------------------------------------------------------

def markdown(rep):
    r, c, s = rep["recipe"], rep["corpus"], rep["sizes"]
    d, b, t = rep["dense"], rep["fair_baseline"], rep["target"]
    k = rep["points"][rep["kept"]]
    q = " QUICK smoke run," if rep["quick"] else ""
    out = [SECTION, SECTION_MARK.format(script="paper_chargpt.py"), "",
           f"Produced by `benchmarks/paper_chargpt.py` ({rep['date']},{q} torch "
           f"{rep['torch']}, {rep['threads']} thread(s), {rep['seconds'] / 60:.1f} minutes"
           f"{' for its last part, resumed from a work folder' if rep.get('resumed') else ''}"
           "). Corpus: the `*.py` files of the standard library of Python "
           f"{c['python']} ({c['implementation']}), `site-packages` and test directories "
           f"({', '.join(c['skipped_dirs'])}) left out, split by file on the SHA-256 of the "
           f"relative path: training {c['train']['files']} files ({c['train']['chars']:,} "
           f"characters), validation {c['val']['files']} ({c['val']['chars']:,}), held-out "
           f"{c['heldout']['files']} ({c['heldout']['chars']:,}). Vocabulary: {VOCAB} ids "
           "(tab, newline, printable ASCII, and one id for every other character: "
           f"{c['heldout']['other_chars']:,} held-out characters). Model: "
           f"`{rep['model'].get('call', 'gpt')}` ({rep['model']['shape']}, "
           f"{rep['model']['params']:,} parameters).", "",
           f"Training: batches of {r['batch']} random 129-character windows, AdamW (0.9/0.95, "
           f"weight decay 0.1 on matrices), gradients clipped at 1. Dense: "
           f"{r['dense_steps']} steps, {r['warmup']} of warm-up to {r['lr']:g} then a cosine "
           f"to a tenth. Compression: each density pruned once in {r['prune_steps']} steps "
           f"with {r['retrain_steps']} retraining steps after each (AdamW from "
           f"{r['retrain_lr']:g} down a cosine), then per bits setting k-means++ codebooks "
           f"for every linear layer and the tied token table/head, {r['fine_tune_steps']} "
           f"steps of centroid fine-tuning (from {r['fine_tune_lr']:g}), float16 biases; the "
           f"position table is folded into the graph as a float32 constant. **Fair "
           f"baseline**: the dense model trained on for {b['steps']} steps, what every point "
           "received in all (density 1.0 prunes nothing: its retraining steps are plain "
           "training, in one cosine).", "",
           f"Budget: {rep['budget']['steps']:,} training steps in all, "
           f"{rep['budget']['step_s']:.2f} s a step measured on the dense run. The steps were "
           "set so that the whole run, evaluation included, stays near an hour on the two "
           "cores of an otherwise idle machine; the dense model is still learning at its "
           "last step, so longer training would lower every figure.", "",
           f"Bits per character: mean cross-entropy in bits over all {CONTEXT} predicted "
           f"characters of {rep['windows']['heldout']} fixed held-out windows "
           f"({rep['windows']['val']} validation windows for the choice); every compressed "
           "figure is its `.cdnn` file run by `cdnn_runtime.InferenceSession` at a batch of "
           "windows. Sizes: float32 = 4 bytes a parameter "
           f"({s['float32_bytes']:,} B); int8 = 1 byte for each weight of the layers cdnn "
           "compresses (the tied table once) plus a float32 scale per tensor and float32 for "
           f"everything else ({s['int8_bytes']:,} B; weights only, no file format around "
           "them); the `.cdnn` figure is the whole file on disk.", "",
           f"Dense as trained: held-out **{d['heldout']:.4f}** bits/char (validation "
           f"{d['val']:.4f}); fair baseline **{b['heldout']:.4f}** (validation "
           f"{b['val']:.4f}).", "",
           "| density | bits | file bytes | vs float32 | vs int8 | held-out bits/char "
           "(cdnn_runtime) | vs fair baseline | vs dense as trained | validation |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, p in enumerate(rep["points"]):
        mark = " (kept)" if i == rep["kept"] else ""
        out.append(f"| {p['density']:.1f} | {p['bits']}{mark} | {p['file_bytes']:,} | "
                   f"{s['float32_bytes'] / p['file_bytes']:.1f}x | "
                   f"{s['int8_bytes'] / p['file_bytes']:.1f}x | {p['heldout']:.4f} | "
                   f"{100 * p['rise_vs_baseline']:+.2f}% | {100 * p['rise_vs_dense']:+.2f}% | "
                   f"{p['val']:.4f} |")
    hb = t["heldout_best"]
    best = ("no point is within it on the held-out text" if hb is None else
            f"on the held-out text alone the largest ratio within it is density "
            f"{hb['density']}, {hb['bits']} bits, {hb['ratio']:.1f}x")
    out += ["", f"Kept (chosen on validation: the smallest file within "
            f"{100 * TARGET_RISE:.0f}% of the fair baseline's validation figure): density "
            f"{k['density']}, {k['bits']} bits, {k['file_bytes']:,} B, "
            f"{k['ratio']:.1f}x smaller than float32, held-out {k['heldout']:.4f} bits/char. "
            f"Target, at least {TARGET_RATIO:.0f}x smaller than float32 within "
            f"{100 * TARGET_RISE:.0f}% of the fair baseline's held-out bits per character "
            f"(at most {t['limit_bpc']:.4f}): **{'met' if t['met'] else 'not met'}** "
            f"({best}).", ""]
    return "\n".join(out)


def write_outputs(rep, out, blob=None, with_json=True):
    """paper_chargpt.json (unless rewriting from it), the PAPER.md section and, when given, the
    kept file with its vocabulary, into `out`."""
    suffix = "-quick" if rep["quick"] else ""
    write_section_report(rep, out, "paper_chargpt" if with_json else None, markdown(rep))
    if blob is not None:
        with open(os.path.join(out, f"chargpt{suffix}.cdnn"), "wb") as fh:
            fh.write(blob)
        with open(os.path.join(out, f"chargpt{suffix}.vocab.json"), "w") as fh:
            json.dump({"chars": CHARS, "first_id": 1, "other_id": OTHER_ID, "vocab": VOCAB,
                       "context": CONTEXT, "input": "ids", "pad": "\n"}, fh, indent=1)


def main():
    ap = paper_parser(__doc__, quick_help="smoke run: a tiny GPT, a few files and steps; "
                      "writes *-quick files", threads_help="torch threads (default 1)",
                      from_json_help="rewrite the PAPER.md section from a saved "
                      "paper_chargpt.json, beside it", threads=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=RESULTS, help="folder for the json, PAPER.md, the file")
    ap.add_argument("--work", metavar="DIR",
                    help="keep each phase's results (the dense model, every point) in DIR and "
                         "resume from them: a rerun after an interruption skips what is done")
    args = ap.parse_args()
    if args.from_json:
        write_outputs(load_json(args.from_json),
                      os.path.dirname(os.path.abspath(args.from_json)), with_json=False)
        return
    torch.set_num_threads(args.threads)
    rep, blob = run(args.quick, args.seed, log=lambda *a: print(*a, flush=True),
                    work=args.work)
    if blob is not None and len(blob) > 2_500_000:
        blob = None  # too large to keep in the repository
    write_outputs(rep, args.out, blob)


if __name__ == "__main__":
    main()
