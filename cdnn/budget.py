"""Compress to an accuracy budget: the smallest file whose validation score, run by
cdnn_runtime, stays within `max_drop` of a fair dense baseline.

Stages, each saved atomically in a work directory so that an interrupted run resumes after
the last one finished:
  1. dense: for each level, the source model fine-tuned on the training data for as many
     epochs as that level's file receives in all (its fair baseline: the level's budget is
     that score less `max_drop`); the first level's before anything else, the others as the
     search reaches them;
  2. sensitivity: each layer of the source model pruned alone over a range of densities
     (cdnn.sensitivity);
  3. level k = 1..L: the weights kept fall along `keep` (fractions of all compressible
     weights), spread over the layers by their sensitivity curves (at an equal price per
     weight: the least sum of the layers' drops alone for the weights kept), pruned
     iteratively (from the source model, then from level k-1) with retraining; then per
     layer the fewest codebook bits whose sharing alone costs at most `bits_tolerance`
     (top-1: predictions changed), shared, centroids fine-tuned, float16 biases, written,
     and scored through cdnn_runtime.
The search stops at the first level whose file misses the budget (after one retry at one bit
more per layer); the answer is the smallest file within it. Seeded throughout.
"""

import copy
import hashlib
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from cdnn_runtime import InferenceSession
from cdnn_runtime.errors import CdnnDatasetError, CdnnError, CdnnUsageError
from cdnn_runtime.writer import write_atomic

from .budget_data import check_split
from .capture import prepare_for_capture
from .cluster import kmeans_1d
from .compress import _parameters, compress, layer_kinds
from .compress import prune as prune_layers
from .sensitivity import sensitivity

#: Densities at which each layer is pruned alone for the sensitivity curves.
SENSITIVITY_DENSITIES = (0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01)
#: Codebook bits tried per layer, most first: convolutions, and matrices (linear, embedding).
CONV_BITS = (8, 7, 6, 5, 4)
MATRIX_BITS = (6, 5, 4, 3, 2)
#: Most validation examples used to score the sensitivity and bits trials (the budget itself
#: is always checked on the whole validation split).
TRIAL_EXAMPLES = 2000


class CdnnBudgetError(CdnnError):
    """The budget cannot be met: by the dense model itself, or by any file the search made."""


@dataclass
class BudgetPlan:
    """What the search does, in epochs and fractions; the work directory records it."""
    metric: str = "top1"
    max_drop: float = 0.5  # points of top-1 accuracy, or absolute MSE increase
    min_score: float = None  # an absolute floor as well (accuracy in points, or largest MSE)
    keep: tuple = (0.3, 0.2, 0.14, 0.1, 0.075, 0.055)  # fraction of weights kept per level
    first_steps: int = 3  # pruning steps from dense to level 1; one step per level after
    retrain_epochs: int = 2
    fine_tune_epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 128
    distill: bool = False  # soft targets from the fair baseline's outputs while retraining
    # what one layer's sharing may cost (see choose_bits): top-1, predictions changed, in
    # points: max_drop; MSE: its increase, max_drop / 4
    bits_tolerance: float = None
    seed: int = 0
    budget_minutes: float = None  # start no new level after this long

    def epochs_of_level(self, k):
        """Training epochs the file of level k (1-based) received in all."""
        return (self.first_steps + k - 1) * self.retrain_epochs + self.fine_tune_epochs

    @property
    def fair_epochs(self):
        """Epochs of the most trained level (the teacher's, when distilling)."""
        return self.epochs_of_level(len(self.keep))


def fair_baseline(source_state, net, train, val, plan, epochs, work, stage):
    """The source model fine-tuned for `epochs` (one cosine, seeded): its validation score,
    kept in the work directory (dense-E.pt and dense-E.json) and taken from there on resume."""
    name = f"dense-{epochs}"
    if work.has(name + ".json"):
        stage(f"fair baseline of {epochs} epochs: done before (resumed)")
        return work.load_json(name + ".json")["score"]
    stage(f"dense fine-tune (the fair baseline of {epochs} epochs)")
    dense = copy.deepcopy(net)
    dense.load_state_dict(source_state)
    train_epochs(dense, train, plan.metric, epochs, plan, plan.seed,
                 log=lambda s: stage(f"  dense {s}"))
    score = torch_score(dense, val, plan.metric)
    work.save_torch(name + ".pt", dense.state_dict())
    work.save_json(name + ".json", {"epochs": epochs, "score": score})
    return score


def _noop(*args, **kwargs):
    pass


# ---- scores: higher is better; top-1 in points, MSE negated --------------------------------

def _score_outputs(out, y, metric):
    if metric == "top1":
        return 100.0 * float((out.argmax(1) == y).mean())
    return -float(((out - y) ** 2).mean())


def display(score, metric):
    """A score as the user reads it: top-1 in percent, or the MSE."""
    return score if metric == "top1" else -score


@torch.no_grad()
def torch_outputs(model, x, batch=1000):
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i:i + batch])).numpy()
                           for i in range(0, len(x), batch)]) if len(x) else np.zeros((0,))


def torch_score(model, split, metric):
    return _score_outputs(torch_outputs(model, split.x), split.y, metric)


def runtime_score(data, split, metric, batch=1000):
    """The score of .cdnn bytes run by cdnn_runtime on a split."""
    sess = InferenceSession(data)
    out = np.concatenate([sess(split.x[i:i + batch]) for i in range(0, len(split.x), batch)])
    return _score_outputs(out, split.y, metric)


# ---- training ------------------------------------------------------------------------------

def train_epochs(model, train, metric, epochs, plan, seed, teacher=None, log=_noop):
    """Adam from plan.lr down a cosine to 0 over `epochs` passes (a seeded order); with
    `teacher` outputs, half the loss is distillation (KL at temperature 4, or MSE)."""
    if epochs <= 0:
        return
    torch.manual_seed(seed)
    x = torch.from_numpy(train.x)
    y = torch.from_numpy(train.y)
    t = None if teacher is None else torch.from_numpy(teacher)
    opt = torch.optim.Adam(model.parameters(), lr=plan.lr)
    n = len(x)
    steps_per_epoch = math.ceil(n / plan.batch_size)
    total, step = epochs * steps_per_epoch, 0
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        loss_sum = 0.0
        for i in range(0, n, plan.batch_size):
            idx = order[i:i + plan.batch_size]
            for group in opt.param_groups:
                group["lr"] = 0.5 * plan.lr * (1.0 + math.cos(math.pi * step / total))
            step += 1
            opt.zero_grad(set_to_none=True)
            out = model(x[idx])
            if metric == "top1":
                loss = F.cross_entropy(out, y[idx])
                if t is not None:
                    temp = 4.0
                    soft = F.kl_div(F.log_softmax(out / temp, 1), F.log_softmax(t[idx] / temp, 1),
                                    log_target=True, reduction="batchmean") * temp * temp
                    loss = 0.5 * loss + 0.5 * soft
            else:
                loss = F.mse_loss(out, y[idx])
                if t is not None:
                    loss = 0.5 * loss + 0.5 * F.mse_loss(out, t[idx])
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / n:.4f}")
    model.eval()


# ---- the work directory: each stage's result, written atomically ---------------------------

class WorkDir:
    """Stage results under one folder: JSON and torch files, each written atomically."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)

    def file(self, name):
        return os.path.join(self.path, name)

    def has(self, name):
        return os.path.exists(self.file(name))

    def save_json(self, name, obj):
        write_atomic(self.file(name), (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())

    def load_json(self, name):
        with open(self.file(name)) as fh:
            return json.load(fh)

    def save_torch(self, name, obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        write_atomic(self.file(name), buf.getvalue())

    def load_torch(self, name):
        return torch.load(self.file(name), map_location="cpu", weights_only=True)

    def save_bytes(self, name, data):
        write_atomic(self.file(name), data)

    def load_bytes(self, name):
        with open(self.file(name), "rb") as fh:
            return fh.read()


def data_fingerprint(split):
    h = hashlib.sha256()
    for a in (split.x, split.y):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _check_work_dir(work, record):
    """The run recorded in the work directory must be this one, else resuming would mix two."""
    if work.has("plan.json"):
        old = work.load_json("plan.json")
        differ = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if differ:
            raise CdnnUsageError(f"work directory {work.path} holds another run (it differs in "
                                 f"{', '.join(differ)}); remove it or pass another --work-dir")
    else:
        work.save_json("plan.json", record)


# ---- choosing densities and bits -----------------------------------------------------------

def _drop_curve(curve, baseline):
    """[(density, drop alone)] from density 1 down, drops made non-decreasing as density falls."""
    points = [(1.0, 0.0)] + sorted(((d, baseline - s) for d, s in curve), reverse=True)
    out, worst = [], 0.0
    for d, drop in points:
        worst = max(worst, drop)
        out.append((d, worst))
    return out


def _drop_at(curve, density):
    for (d0, s0), (d1, s1) in zip(curve, curve[1:]):
        if d1 <= density <= d0:
            frac = (math.log(d0) - math.log(density)) / (math.log(d0) - math.log(d1))
            return s0 + frac * (s1 - s0)
    return curve[-1][1]


#: Densities a layer may get, log-spaced from 1 down to the lowest of its sensitivity curve.
GRID_POINTS = 161


def spread_density(curves, sizes, keep):
    """Per layer a density such that sum(size x density) is about keep x sum(size) and the sum
    of the layers' drops alone (on their sensitivity curves) is least: every layer stands where
    one weight more would save the same drop (a price per weight, found by bisection), so a
    small layer, whose every weight counts and costs few bytes, stays denser than a large one.
    Returns ({layer: density}, price: points of drop per 1,000 weights)."""
    total = sum(sizes.values())
    target = keep * total
    grids = {n: [(float(d), _drop_at(c, d))
                 for d in np.exp(np.linspace(0.0, math.log(c[-1][0]), GRID_POINTS))]
             for n, c in curves.items()}

    def pick(price):
        return {n: min(g, key=lambda p: p[1] + price * sizes[n] * p[0] / 1000.0)[0]
                for n, g in grids.items()}

    def weights(densities):
        return sum(sizes[n] * d for n, d in densities.items())

    def kept(price):
        return weights(pick(price))

    lowest = {n: g[-1][0] for n, g in grids.items()}
    if weights(lowest) >= target:
        return {n: round(d, 5) for n, d in lowest.items()}, math.inf
    at_zero = pick(1e-12)  # the sparsest each layer goes at no drop alone
    # flat curves: their shape at no drop, scaled up to `keep`
    if weights(at_zero) <= target:
        lo, hi = 1.0, 1.0 / min(at_zero.values())
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if sum(sizes[n] * min(1.0, d * mid) for n, d in at_zero.items()) < target:
                lo = mid
            else:
                hi = mid
        return {n: round(min(1.0, d * hi), 5) for n, d in at_zero.items()}, 0.0
    lo, hi = 1e-12, 1.0
    for _ in range(200):
        if kept(hi) <= target:
            break
        lo, hi = hi, 2.0 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if kept(mid) > target:
            lo = mid
        else:
            hi = mid
    # the curves are piecewise linear, so the choice jumps from knot to knot as the price
    # crosses one: the layers that jump are set between their two choices to meet `keep`
    dense_side, sparse_side = pick(lo), pick(hi)
    k_dense, k_sparse = weights(dense_side), weights(sparse_side)
    t = 0.0 if k_dense <= k_sparse else (target - k_sparse) / (k_dense - k_sparse)
    return {n: round(sparse_side[n] + t * (dense_side[n] - sparse_side[n]), 5)
            for n in grids}, hi


@torch.no_grad()
def choose_bits(model, masks, kinds, trial, metric, tolerance, seed):
    """Per layer the fewest codebook bits whose sharing (that layer alone, k-means, no
    fine-tuning) stays within `tolerance`, with each candidate's cost, the reason in the report.
    The cost, for top-1: the share of the trial examples whose predicted class the sharing
    changes, in points (an upper bound of the accuracy it can cost, and far steadier than the
    accuracy difference, where gains cancel losses and one example moves it by 1/n); for MSE:
    the score's drop."""
    params = _parameters(model)
    base_out = torch_outputs(model, trial.x)
    base = _score_outputs(base_out, trial.y, metric)
    base_pred = base_out.argmax(1) if metric == "top1" else None

    def cost():
        out = torch_outputs(model, trial.x)
        if metric == "top1":
            return 100.0 * float((out.argmax(1) != base_pred).mean())
        return base - _score_outputs(out, trial.y, metric)
    out = {}
    for name, kind in kinds.items():
        w = params[f"{name}.weight"]
        saved = w.detach().clone()
        mask = masks[f"{name}.weight"].reshape(-1) & (saved.reshape(-1) != 0)
        values = saved.reshape(-1)[mask].numpy().astype(np.float32)
        candidates = CONV_BITS if kind.startswith("conv") else MATRIX_BITS
        tried, chosen = [], candidates[0]
        for bits in candidates:
            if values.size == 0:
                break
            res = kmeans_1d(values, 2 ** bits, init="kmeans++", seed=seed)
            flat = saved.reshape(-1).clone()
            flat[mask] = torch.from_numpy(res.centroids[res.labels].astype(np.float32))
            w.copy_(flat.view_as(w))
            c = cost()
            w.copy_(saved)
            tried.append([bits, round(c, 5)])
            if c > tolerance:
                break
            chosen = bits
        out[name] = {"bits": chosen, "tried": tried, "tolerance": tolerance,
                     "cost": "predictions changed (points)" if metric == "top1"
                     else "MSE increase"}
    return out


# ---- the search ----------------------------------------------------------------------------

@dataclass
class BudgetResult:
    """What the search found: the chosen file's bytes, its point, every point, the report."""
    data: bytes
    report: dict
    points: list = field(default_factory=list)


def _trial_split(split, seed):
    if len(split) <= TRIAL_EXAMPLES:
        return split
    idx = np.sort(np.random.default_rng(seed).permutation(len(split))[:TRIAL_EXAMPLES])
    return type(split)(split.x[idx], split.y[idx], split.source + f" ({TRIAL_EXAMPLES} examples)")


def check_inputs(model, train, val, metric, example_shape=None):
    """The data checked against the model, before any training: (train, val, example, kinds,
    outputs shape). `example_shape` is the model's declared input shape, when known."""
    if metric not in ("top1", "mse"):
        raise CdnnUsageError(f"--metric must be top1 or mse, got {metric!r}")
    if len(train) == 0:
        raise CdnnDatasetError(f"{train.source}: the split is empty (no examples)")
    shape = list(example_shape) if example_shape else list(train.x.shape)
    work = prepare_for_capture(model)
    if list(train.x.shape[1:]) != shape[1:]:
        raise CdnnDatasetError(f"{train.source}: inputs shaped {list(train.x.shape[1:])} per "
                               f"example, the model takes {shape[1:]}")
    example = torch.from_numpy(train.x[:2])
    try:
        with torch.no_grad():
            out = work(example)
    except Exception as exc:  # the model's own error on inputs it cannot take
        raise CdnnDatasetError(f"{train.source}: inputs shaped {list(train.x.shape[1:])} do "
                               f"not fit the model ({type(exc).__name__}: {exc})") from None
    if not isinstance(out, torch.Tensor):
        raise CdnnUsageError("compressing to a budget needs a model with one output tensor")
    outputs = list(out.shape)
    train = check_split(train, shape, outputs, metric)
    val = check_split(val, shape, outputs, metric)
    kinds = layer_kinds(work, (example,))
    return train, val, example, kinds, outputs


def compress_to_budget(model, train, val, plan, *, model_name=None, work_dir,
                       example_shape=None, progress=None, log=None):
    """Search for the smallest file within the budget; returns a BudgetResult (its report
    says the fair baseline, every point explored, and per layer the density and bits chosen
    and why). Raises CdnnBudgetError when no file is within the budget."""
    log = log or _noop
    progress = progress or _noop
    stage = getattr(progress, "stage", log)
    t_start = time.perf_counter()
    if plan.max_drop is None or plan.max_drop < 0:
        raise CdnnUsageError(f"--max-drop must be >= 0, got {plan.max_drop!r}")
    if not plan.keep or any(not 0 < k <= 1 for k in plan.keep):
        raise CdnnUsageError(f"--keep fractions must be in (0, 1], got {list(plan.keep)}")
    train, val, example, kinds, outputs = check_inputs(model, train, val, plan.metric,
                                                       example_shape)
    work = WorkDir(work_dir)
    recorded = {k: v for k, v in asdict(plan).items() if k != "budget_minutes"}
    _check_work_dir(work, {"plan": json.loads(json.dumps(recorded)),
                           "model": model_name or type(model).__name__,
                           "train": data_fingerprint(train), "val": data_fingerprint(val)})
    trial = _trial_split(val, plan.seed)
    net = prepare_for_capture(model)
    source_val = torch_score(net, val, plan.metric)
    source_state = copy.deepcopy(net.state_dict())
    floor_min = None if plan.min_score is None else (
        plan.min_score if plan.metric == "top1" else -plan.min_score)
    baselines = {}

    def budget_of(k):
        """(fair baseline score, floor) of level k: the source trained as long, less max_drop."""
        epochs = plan.epochs_of_level(k)
        if epochs not in baselines:
            baselines[epochs] = fair_baseline(source_state, net, train, val, plan, epochs, work,
                                              stage)
        base = baselines[epochs]
        floor = base - plan.max_drop if floor_min is None else max(base - plan.max_drop,
                                                                    floor_min)
        stage(f"level {k}: fair baseline ({epochs} epochs) validation "
              f"{display(base, plan.metric):.4f} (source model "
              f"{display(source_val, plan.metric):.4f}); budget: at least "
              f"{display(floor, plan.metric):.4f}" if plan.metric == "top1" else
              f"level {k}: fair baseline ({epochs} epochs) validation MSE {-base:.6g}; "
              f"budget: at most {-floor:.6g}")
        return base, floor

    # 1. the fair baseline of the first level (the others as the search reaches them)
    baseline, floor = budget_of(1)
    if floor_min is not None and baseline < floor_min:
        raise CdnnBudgetError(
            f"the dense model itself misses the budget: after its "
            f"{plan.epochs_of_level(1)}-epoch fine-tune it scores "
            f"{display(baseline, plan.metric):.4f} on the validation data, the budget asks "
            f"for {plan.min_score:g}")
    teacher = None
    if plan.distill:
        baselines[plan.fair_epochs] = fair_baseline(source_state, net, train, val, plan,
                                                    plan.fair_epochs, work, stage)
        teacher_net = copy.deepcopy(net)
        teacher_net.load_state_dict(work.load_torch(f"dense-{plan.fair_epochs}.pt"))
        teacher = torch_outputs(teacher_net, train.x)
        del teacher_net

    # 2. sensitivity
    if work.has("sensitivity.json"):
        stage("sensitivity: done before (resumed)")
        sens = work.load_json("sensitivity.json")
    else:
        stage(f"sensitivity: {len(kinds)} layers x {len(SENSITIVITY_DENSITIES)} densities")
        s = sensitivity(net, lambda m: torch_score(m, trial, plan.metric), (example,),
                        SENSITIVITY_DENSITIES)
        sens = {"baseline": s.baseline, "curves": {k: [list(p) for p in v]
                                                   for k, v in s.curves.items()}}
        work.save_json("sensitivity.json", sens)
    curves = {n: _drop_curve(c, sens["baseline"]) for n, c in sens["curves"].items()}
    params = _parameters(net)
    sizes = {n: params[f"{n}.weight"].numel() for n in kinds}
    dense_bytes = 4 * sum(p.numel() for p in net.parameters())
    bits_tolerance = plan.bits_tolerance if plan.bits_tolerance is not None \
        else plan.max_drop if plan.metric == "top1" else plan.max_drop / 4

    # 3. the levels
    points = []
    masks = previous = None
    for k, keep in enumerate(plan.keep, start=1):
        if plan.budget_minutes is not None and \
                time.perf_counter() - t_start > 60 * plan.budget_minutes:
            stage(f"level {k}: not started, {plan.budget_minutes:g} minutes spent")
            break
        baseline, floor = budget_of(k)
        densities, tol = spread_density(curves, sizes, keep)
        if previous:  # pruning goes on from the level before: no layer grows back
            densities = {n: min(d, previous[n]) for n, d in densities.items()}
        previous = densities
        pruned_name = f"level-{k}-pruned.pt"
        if work.has(pruned_name):
            saved = work.load_torch(pruned_name)
            net.load_state_dict(saved["state"])
            masks = saved["masks"]
            stage(f"level {k}: pruned before (resumed)")
        else:
            steps = plan.first_steps if k == 1 else 1
            stage(f"level {k}: keep {keep:.1%} of the weights; prune in {steps} step(s) x "
                  f"{plan.retrain_epochs} epoch(s) retraining")
            calls = {"n": 0}

            def retrain(m, k=k, calls=calls):
                calls["n"] += 1
                train_epochs(m, train, plan.metric, plan.retrain_epochs, plan,
                             plan.seed + 100 * k + calls["n"], teacher,
                             log=lambda s: stage(f"  retrain {s}"))
            masks = prune_layers(net, {n: {"density": d} for n, d in densities.items()},
                                 train=retrain, steps=steps, progress=progress)
            work.save_torch(pruned_name, {"state": net.state_dict(), "masks": masks})
        pruned_score = display(torch_score(net, val, plan.metric), plan.metric)
        stage(f"level {k}: pruned, validation {pruned_score:.4f} (torch, before sharing)")
        point_name = f"level-{k}.json"
        if work.has(point_name):
            point = work.load_json(point_name)
            stage(f"level {k}: file made before (resumed): {point['file_bytes']:,} bytes")
        else:
            bits = choose_bits(net, masks, kinds, trial, plan.metric, bits_tolerance, plan.seed)
            point = _finish(net, masks, kinds, densities, bits, k, keep, tol, curves, example,
                            train, val, plan, teacher, model_name, dense_bytes, floor, work,
                            stage, progress)
            point["pruned_validation"] = pruned_score
            point["fair_baseline"] = {"epochs": plan.epochs_of_level(k),
                                      "validation": display(baseline, plan.metric),
                                      "budget": display(floor, plan.metric)}
            if not point["within_budget"]:
                more = {n: {**b, "bits": min(b["bits"] + 1, b["tried"][0][0] if b["tried"]
                                             else b["bits"])} for n, b in bits.items()}
                stage(f"level {k}: outside the budget; again with one bit more per layer")
                retry = _finish(net, masks, kinds, densities, more, k, keep, tol, curves,
                                example, train, val, plan, teacher, model_name, dense_bytes,
                                floor, work, stage, progress, tag="+1 bit")
                retry["fair_baseline"] = point["fair_baseline"]
                point["retry"] = retry
            work.save_json(point_name, point)
        points.append(point)
        if not point["within_budget"] and not point.get("retry", {}).get("within_budget"):
            stage(f"level {k}: outside the budget: the search stops here")
            break
    flat = [p for pt in points for p in (pt, pt.get("retry")) if p]
    ok = [p for p in flat if p["within_budget"]]
    chosen = min(ok, key=lambda p: p["file_bytes"]) if ok else None
    shown = chosen or (flat[-1] if flat else None)  # whose fair baseline the report heads with
    fair = (shown or {}).get("fair_baseline") or {
        "epochs": plan.epochs_of_level(1), "validation": display(baseline, plan.metric),
        "budget": display(floor, plan.metric)}
    report = {"metric": plan.metric, "max_drop": plan.max_drop, "min_score": plan.min_score,
              "source_validation": display(source_val, plan.metric),
              "fair_baseline_validation": fair["validation"],
              "fair_baseline_epochs": fair["epochs"],
              "budget_validation": fair["budget"],
              "fair_baselines": {str(e): display(v, plan.metric)
                                 for e, v in sorted(baselines.items())},
              "plan": json.loads(json.dumps(asdict(plan))),
              "dense_bytes": dense_bytes, "sensitivity": sens, "points": [
                  {k: v for k, v in p.items() if k != "retry"} for p in flat],
              "seconds": round(time.perf_counter() - t_start, 1)}
    if not ok:
        work.save_json("report.json", report)
        best = max(flat, key=lambda p: p["validation_score"]) if flat else None
        raise CdnnBudgetError(
            "no file within the budget: " + (
                f"the best explored scores {best['validation_score']:.4f} on the validation "
                f"data ({best['file_bytes']:,} bytes), its level's budget asks for "
                f"{best.get('fair_baseline', fair)['budget']:.4f}; allow a larger --max-drop or "
                f"more "
                f"epochs" if best else "no level was explored"))
    report["chosen"] = {k: v for k, v in chosen.items() if k != "retry"}
    data = work.load_bytes(chosen["file"])
    work.save_json("report.json", report)
    return BudgetResult(data, report, flat)


def _finish(net, masks, kinds, densities, bits, k, keep, tol, curves, example, train, val,
            plan, teacher, model_name, dense_bytes, floor, work, stage, progress, tag=""):
    """Share (bits chosen), fine-tune the centroids, float16 biases, write and score through
    cdnn_runtime: one point of the curve, its file kept in the work directory."""
    recipe = {n: {"density": densities[n], "bits": bits[n]["bits"], "bias": "float16"}
              for n in kinds}
    stage(f"level {k}{' ' + tag if tag else ''}: share ("
          + ", ".join(f"{n} {b['bits']}" for n, b in bits.items()) + " bits), fine-tune "
          f"{plan.fine_tune_epochs} epoch(s)")

    def fine_tune(m):
        train_epochs(m, train, plan.metric, plan.fine_tune_epochs, plan,
                     plan.seed + 100 * k + 50, teacher, log=lambda s: stage(f"  fine-tune {s}"))
    packed = compress(copy.deepcopy(net), example, recipe, preset="deep-compression",
                      train=fine_tune if plan.fine_tune_epochs > 0 else None, masks=masks,
                      seed=plan.seed, model_name=model_name, prune_steps=1, progress=progress)
    data = packed.to_bytes()
    score = runtime_score(data, val, plan.metric)
    name = f"level-{k}{'-retry' if tag else ''}.cdnn"
    work.save_bytes(name, data)
    layers = {}
    for n in kinds:
        c = curves[n]
        layers[n] = {"density": densities[n], "weights": None,
                     "density_why": {"drop_alone_at_density": round(_drop_at(c, densities[n]), 5),
                                     "level_price_per_1000_weights": round(tol, 5),
                                     "curve": [[d, round(s, 5)] for d, s in c]},
                     "bits": bits[n]["bits"],
                     "bits_why": {k: bits[n][k] for k in ("tried", "tolerance", "cost")}}
    for r in packed.report()["layers"]:
        if r["layer"] in layers:
            layers[r["layer"]].update(weights=r["weights"], nnz=r["nnz"],
                                      layer_bytes=r["bytes"]["total"])
    point = {"level": k, "keep": keep, "tag": tag or None, "file": name,
             "file_bytes": len(data), "ratio": dense_bytes / len(data),
             "validation_score": display(score, plan.metric),
             "within_budget": score >= floor - 1e-9,
             "epochs": plan.epochs_of_level(k), "layers": layers}
    stage(f"level {k}{' ' + tag if tag else ''}: {len(data):,} bytes = "
          f"{point['ratio']:.1f}x, validation through cdnn_runtime "
          f"{point['validation_score']:.4f} ({'within' if point['within_budget'] else 'outside'}"
          " the budget)")
    return point


# ---- the report ----------------------------------------------------------------------------

def format_report(report):
    """The chosen file's layers (density and bits, and why) and the explored curve, as text."""
    m = report["metric"]
    lines = [f"fair baseline: the source fine-tuned {report['fair_baseline_epochs']} epochs, "
             f"validation {report['fair_baseline_validation']:.4f} ({m}); source as given "
             f"{report['source_validation']:.4f}; budget {report['budget_validation']:.4f}",
             "explored (level, weights kept, bytes, ratio, validation through cdnn_runtime; "
             "each level against the source trained as long):"]
    for p in report["points"]:
        fb = p.get("fair_baseline")
        against = f", fair baseline {fb['validation']:.4f}" if fb else ""
        lines.append(f"  {p['level']}{' ' + p['tag'] if p['tag'] else '':<7} {p['keep']:>6.1%} "
                     f"{p['file_bytes']:>10,} {p['ratio']:>7.1f}x {p['validation_score']:>9.4f}"
                     f"  {'within' if p['within_budget'] else 'outside'} ({p['epochs']} epochs"
                     f"{against})")
    c = report.get("chosen")
    if c:
        lines.append(f"chosen: level {c['level']}{' ' + c['tag'] if c['tag'] else ''}, "
                     f"{c['file_bytes']:,} bytes = {c['ratio']:.1f}x, validation "
                     f"{c['validation_score']:.4f} after {c['epochs']} epochs of training")
        lines.append(f"{'layer':<20}{'density':>9}{'bits':>6}  why")
        for n, r in c["layers"].items():
            tried = ", ".join(f"{b}: {d:.3f}" for b, d in r["bits_why"]["tried"])
            price = r["density_why"]["level_price_per_1000_weights"]
            lines.append(f"{n:<20}{r['density']:>9.2%}{r['bits']:>6}  pruned alone to this "
                         f"density the score drops {r['density_why']['drop_alone_at_density']:.3f}"
                         f" (the level's price: {price:.3f} per 1,000 weights); "
                         f"bits tried ({r['bits_why'].get('cost', 'drop')}): {tried}")
    return "\n".join(lines) + "\n"


def curve_json(report):
    """The accuracy-against-size curve the search explored."""
    return {"metric": report["metric"], "fair_baseline": report["fair_baseline_validation"],
            "budget": report["budget_validation"], "dense_bytes": report["dense_bytes"],
            "points": [{k: p[k] for k in ("level", "tag", "keep", "file_bytes", "ratio",
                                          "validation_score", "within_budget", "epochs")}
                       for p in report["points"]],
            "chosen": (report.get("chosen") or {}).get("file")}


def save_curve_png(report, path):
    """The explored curve as a PNG (matplotlib, as cdnn's other figures)."""
    from .plots import _figure_class
    Figure = _figure_class()
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    pts = report["points"]
    for ok, colour, label in ((True, "#4878a8", "within budget"),
                              (False, "#c44e52", "outside budget")):
        sel = [p for p in pts if p["within_budget"] == ok]
        ax.scatter([p["ratio"] for p in sel], [p["validation_score"] for p in sel], c=colour,
                   label=label, zorder=3)
    ax.axhline(report["fair_baseline_validation"], color="#555555", linestyle="--",
               label="fair baseline")
    ax.axhline(report["budget_validation"], color="#c44e52", linestyle=":", label="budget")
    c = report.get("chosen")
    if c:
        ax.annotate(f"chosen {c['ratio']:.1f}x", (c["ratio"], c["validation_score"]),
                    xytext=(6, -12), textcoords="offset points", fontsize=8)
    ax.set_xlabel("compression ratio (dense float32 bytes / file bytes)")
    ax.set_ylabel(("top-1 accuracy, %" if report["metric"] == "top1" else "MSE")
                  + " (validation, cdnn_runtime)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def write_report_files(report, stem):
    """stem.budget.json (the report with the curve) and, with matplotlib, stem.budget.png;
    returns the paths written."""
    out = {**report, "curve": curve_json(report)}
    paths = [stem + ".budget.json"]
    write_atomic(paths[0], (json.dumps(out, indent=1, sort_keys=True) + "\n").encode())
    try:
        paths.append(save_curve_png(report, stem + ".budget.png"))
    except ImportError:
        pass
    return paths
