"""The compression pipeline: capture, fold BatchNorm, prune, share (K-Means++), fine-tune, encode.

Each stage is usable alone (`prune`, `share`, `encode`); `compress` runs them in order.
A training hook is any callable `train(model)` that trains the model it is given for a while
with the user's own loop; cdnn holds pruning masks and weight sharing in place while it runs.
"""

import copy
import fnmatch
import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from cdnn_runtime import __version__ as runtime_version
from cdnn_runtime.constants import ENCODING_SPARSE_CODEBOOK
from cdnn_runtime.errors import CdnnRecipeError
from cdnn_runtime.reader import read
from cdnn_runtime.report import layer_report
from cdnn_runtime.writer import Writer, write_atomic

from . import recipe as recipes
from ._callable import make_callable
from .capture import capture, prepare_for_capture
from .cluster import kmeans_1d
from .prune import density_schedule, hold_masks, magnitude_mask


def _noop(*args, **kwargs):
    pass


# ---- BatchNorm folding ---------------------------------------------------------------------

def _parameters(model):
    """{name: parameter} under every name, a tied one too (torch.export names a table shared
    by an embedding and a head after the last module holding it)."""
    return dict(model.named_parameters(remove_duplicate=False))


def _module(model, name):
    return model.get_submodule(name) if name else model


def _set_module(model, name, new):
    parent, _, attr = name.rpartition(".")
    setattr(_module(model, parent), attr, new)


#: Layers a BatchNorm right after them folds into.
FOLDABLE = ("conv2d", "conv1d", "conv_transpose2d", "linear")


def _scale_outputs(w, op, groups, scale):
    """Multiply each output channel of weight `w` of a layer of `op` by `scale`, in place: dim 0
    of a conv or linear weight, dim 1 (per group) of a transposed conv's [Cin, Cout/g, kh, kw]."""
    if op == "conv_transpose2d":
        cin, cout_g = w.shape[:2]
        w.view(groups, cin // groups, cout_g, *w.shape[2:]).mul_(
            scale.reshape(groups, 1, cout_g, *([1] * (w.dim() - 2))))
    else:
        w.mul_(scale.reshape(-1, *([1] * (w.dim() - 1))))


def _output_ranks(model, example_inputs, names):
    """The rank of the output of each module in `names`, from one run on the example (in eval
    mode, which leaves BatchNorm statistics alone)."""
    ranks = {}

    def note(name):
        def hook(module, args, out):
            ranks.setdefault(name, out.dim())  # returns None: the output is kept
        return hook
    hooks = [_module(model, n).register_forward_hook(note(n)) for n in names]
    training = model.training
    try:
        model.eval()
        model(*example_inputs)
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    return ranks


@torch.no_grad()
def fold_batchnorm(model, example_inputs, captured=None):
    """Fold each BatchNorm that directly follows a conv2d, conv1d, conv_transpose2d or linear
    (a linear whose output is [N, C], so that BatchNorm1d's channels are its features) into that
    layer's weight and bias, and replace the BatchNorm module by Identity. Works on the model
    given; `captured` is the model's capture when the caller already has it."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    cap = captured if captured is not None else capture(model, example_inputs)
    producers = {n["outputs"][0]: n for n in cap.nodes}
    uses = {}
    for n in cap.nodes:
        for v in n["inputs"]:
            uses[v] = uses.get(v, 0) + 1
    bn_modules = {}
    for n in cap.nodes:
        if n["op"] == "batch_norm":
            mod = n["params"]["mean"].rpartition(".")[0]
            bn_modules[mod] = bn_modules.get(mod, 0) + 1
    pairs = []
    for n in cap.nodes:
        if n["op"] != "batch_norm":
            continue
        src = producers.get(n["inputs"][0])
        bn_name = n["params"]["mean"].rpartition(".")[0]
        if src is None or src["op"] not in FOLDABLE or uses[n["inputs"][0]] != 1 \
                or bn_modules[bn_name] != 1:
            continue
        if isinstance(_module(model, bn_name), nn.modules.batchnorm._BatchNorm):
            pairs.append((src, bn_name))
    linears = [src["params"]["weight"].rpartition(".")[0] for src, _ in pairs
               if src["op"] == "linear"]
    ranks = _output_ranks(model, example_inputs, linears) if linears else {}
    folded = 0
    for src, bn_name in pairs:
        name = src["params"]["weight"].rpartition(".")[0]
        if src["op"] == "linear" and ranks.get(name) != 2:
            continue  # BatchNorm1d over [N, L, C] normalises L, not the features
        bn, layer = _module(model, bn_name), _module(model, name)
        scale = (bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)) / \
            torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)) - \
            bn.running_mean * scale
        _scale_outputs(layer.weight, src["op"], src["attrs"].get("groups", 1), scale)
        if layer.bias is None:
            layer.bias = nn.Parameter(shift.clone())
        else:
            layer.bias.mul_(scale).add_(shift)
        _set_module(model, bn_name, nn.Identity())
        folded += 1
    return folded


# ---- stages --------------------------------------------------------------------------------

def layer_kinds(model, example_inputs):
    """{module name: kind} for every weight cdnn compresses; the kind is the graph op of the
    layer: "linear", "conv2d", "conv1d", "conv_transpose2d" or "embedding" (recipe.KINDS)."""
    cap = capture(model, example_inputs)
    return {w.rpartition(".")[0]: kind for w, kind in cap.weights.items()}


def prune(model, settings, *, train=None, steps=3, progress=_noop):
    """Magnitude-prune each layer to its density (or quality threshold); with a training hook,
    in `steps` steps, retraining with the masks held after each. Returns the masks."""
    params = _parameters(model)
    schedules = {}
    for name, s in settings.items():
        if s.get("quality") is not None:
            schedules[name] = [("quality", s["quality"])] * (steps if train else 1)
        else:
            d = float(s["density"])
            sched = density_schedule(d, steps) if train and d < 1 else [d]
            schedules[name] = [("density", x) for x in sched]
    n_steps = max(len(v) for v in schedules.values()) if schedules else 0
    masks = {}
    for step in range(n_steps):
        for name, sched in schedules.items():
            kind, value = sched[min(step, len(sched) - 1)]
            w = params[f"{name}.weight"]
            masks[f"{name}.weight"] = magnitude_mask(w, **{kind: value})
            progress("prune", name, step)
        holder = hold_masks(model, masks)
        if train is not None:
            model.train()
            train(model)
            model.eval()
        holder.remove()
    return masks


class _Shared(nn.Module):
    """Parametrization: the weight is the codebook gathered at the surviving positions."""

    def __init__(self, shape, positions, labels, centroids):
        super().__init__()
        self.shape = tuple(shape)
        self.numel = int(np.prod(shape))
        self.register_buffer("positions", torch.as_tensor(positions, dtype=torch.long))
        self.register_buffer("labels", torch.as_tensor(labels.astype(np.int64)))
        self.centroids = nn.Parameter(torch.as_tensor(centroids, dtype=torch.float32).clone())

    def forward(self, original):
        flat = torch.zeros(self.numel, dtype=self.centroids.dtype, device=self.centroids.device)
        flat = flat.index_put((self.positions,), self.centroids[self.labels])
        return flat.view(self.shape)


@dataclass
class SharedLayer:
    """One layer after weight sharing: where the weights survive, their codes, the codebook."""
    shape: tuple
    positions: np.ndarray  # flat indices of surviving weights, ascending
    codes: np.ndarray  # uint8 per surviving weight
    codebook: np.ndarray  # float32[k], ascending
    inertia: float
    codebook_before_fine_tune: np.ndarray = field(default=None, repr=False)
    bits: int = None  # the bits the codebook was clustered for
    bits_note: str = None  # why they are below the preset's, when they are


def share(model, masks, settings, *, seed=0, progress=_noop, lower_bits=()):
    """Cluster each layer's surviving weights into 2**bits shared centroids (1-D K-Means).

    Layers named in `lower_bits` (bits from a preset, not the user's recipe) may get fewer
    bits, see `_fitted_bits`; their SharedLayer says so in `bits_note`."""
    params = _parameters(model)
    layers = {}
    for name, s in settings.items():
        w = params[f"{name}.weight"].detach().cpu()
        mask = masks[f"{name}.weight"].cpu().reshape(-1) & (w.reshape(-1) != 0)
        positions = torch.nonzero(mask).reshape(-1).numpy()
        values = w.reshape(-1)[mask].numpy().astype(np.float32)
        bits, note = s["bits"], None
        if values.size:
            res = kmeans_1d(values, 2 ** bits, init=s["init"], seed=seed)
            if name in lower_bits:
                res, bits, note = _fitted_bits(values, res, bits, s["init"], seed)
            codebook, codes, inertia = res.centroids, res.labels, res.inertia
        else:
            codebook, codes, inertia = np.zeros(1, np.float32), np.zeros(0, np.uint8), 0.0
        layers[name] = SharedLayer(tuple(w.shape), positions, codes.astype(np.uint8),
                                   codebook.astype(np.float32), float(inertia),
                                   codebook.astype(np.float32).copy(), bits, note)
        progress("share", name, 0)
    _write_shared(model, layers)
    return layers


def _fitted_bits(values, res, bits, init, seed):
    """(k-means result, bits, note or None) for a layer whose preset asks for `bits`: one bit
    less while the codebook (4 bytes a centroid) would take more bytes than the bit-packed
    codes indexing it, so that a small layer's codebook never outweighs its codes; the note
    says why. (A layer with fewer distinct values than 2**bits already gets that many
    centroids from kmeans_1d.)"""
    n, full, k_full = values.size, bits, res.n_clusters
    while bits > 1 and 4 * res.n_clusters > n * bits / 8:
        bits -= 1
        res = kmeans_1d(values, 2 ** bits, init=init, seed=seed)
    if bits == full:
        return res, bits, None
    return res, bits, (f"bits {full} -> {bits}: a {k_full}-entry codebook ({4 * k_full:,} "
                       f"bytes) outweighed the codes of its {n:,} weights")


def _explicit_bits(kinds, recipe):
    """Names of the layers whose bits the user's recipe names (for the layer, a pattern
    matching it, or its kind), as opposed to bits from the preset."""
    entries = recipes.load_recipe(recipe)
    return {name for name, kind in kinds.items()
            if any("bits" in v for k, v in entries.items()
                   if v and (k == name or k == f"kind:{kind}"
                             or (not k.startswith("kind:") and fnmatch.fnmatchcase(name, k))))}


@torch.no_grad()
def _write_shared(model, layers):
    params = _parameters(model)
    for name, layer in layers.items():
        w = params[f"{name}.weight"]
        flat = torch.zeros(w.numel(), dtype=w.dtype)
        flat[torch.as_tensor(layer.positions, dtype=torch.long)] = torch.as_tensor(
            layer.codebook[layer.codes], dtype=w.dtype)
        w.copy_(flat.view_as(w))


def fine_tune(model, layers, train):
    """Train the centroids with the user's loop: each centroid's gradient is the sum of the
    gradients of the weights that share it; pruned weights stay zero, shared stay shared."""
    for name, layer in layers.items():
        mod = _module(model, name)
        parametrize.register_parametrization(
            mod, "weight", _Shared(layer.shape, layer.positions, layer.codes, layer.codebook),
            unsafe=True)
    try:
        model.train()
        train(model)
        model.eval()
    finally:
        for name, layer in layers.items():
            mod = _module(model, name)
            p = mod.parametrizations.weight[0]
            layer.codebook = p.centroids.detach().cpu().numpy().astype(np.float32).copy()
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
        _write_shared(model, layers)
    return layers


@torch.no_grad()
def half_biases(model, settings):
    """Round the biases of layers whose recipe says `bias: float16` to float16 values."""
    for name, s in settings.items():
        bias = getattr(_module(model, name), "bias", None)
        if s.get("bias") == "float16" and bias is not None:
            bias.copy_(bias.half().float())


def encode(model, example_inputs, layers, settings, *, metadata=None, coding="auto",
           input_names=None, output_names=None, dynamic_dims=None):
    """Write the model as .cdnn bytes: shared layers as sparse_codebook, the rest raw."""
    cap = capture(model, example_inputs, input_names=input_names, output_names=output_names,
                  dynamic_dims=dynamic_dims)
    w = Writer(metadata=metadata)
    for tname, array in cap.params.items():
        name = tname.rpartition(".")[0]
        if tname in cap.weights and name in layers:
            layer = layers[name]
            rows = layer.shape[0]
            n_cols = int(np.prod(layer.shape[1:]))
            row_of = layer.positions // n_cols
            row_ptr = np.zeros(rows + 1, np.int64)
            np.cumsum(np.bincount(row_of, minlength=rows), out=row_ptr[1:])
            w.add_sparse_codebook(tname, layer.shape, row_ptr, layer.positions % n_cols,
                                  layer.codes, layer.codebook,
                                  gap_bits=settings[name].get("gap_bits"), coding=coding)
        elif tname.endswith(".bias") and settings.get(name, {}).get("bias") == "float16":
            w.add_raw(tname, array.astype(np.float16))
        else:
            w.add_raw(tname, array.astype(np.float32))
    w.set_graph(cap.graph)
    return w.to_bytes()


# ---- the whole pipeline --------------------------------------------------------------------

def weights_sha256(model):
    """SHA-256 over the model's parameters and buffers, by sorted name (float32 bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().float().numpy().tobytes() if t.is_floating_point()
                 else t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def compress(model, example_inputs, recipe=None, *, preset="deep-compression", train=None,
             evaluate=None, prune_steps=3, seed=0, model_name=None, coding="auto",
             input_names=None, output_names=None, masks=None, dynamic_dims=None,
             progress=_noop):
    """Compress a PyTorch model into a .cdnn file held in memory (a CompressedModel).

    `recipe` maps layer names, patterns or kinds to settings (see cdnn.recipe); `train` is an
    optional hook `train(model)` called after each pruning step and after clustering;
    `evaluate(model) -> float` is measured on the dense, pruned and final models.
    `masks` ({"fc1.weight": bool tensor, ...}, as returned by `prune`) says the model is already
    pruned: the pruning stage is skipped and only the weights the masks keep are stored, so one
    pruned model can be shared and fine-tuned at several bit widths.
    `dynamic_dims` ({"ids": {1: "seq"}}, or {1: ("seq", 512)} with a maximum) declares input
    dims besides the batch free in the file (see cdnn.capture.capture).
    """
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    source_sha = weights_sha256(model)
    dense_params = sum(p.numel() for p in model.parameters())
    work = prepare_for_capture(model)
    # fails here, before any work, on an unknown op or a dim that cannot be free
    cap = capture(work, example_inputs, input_names=input_names, dynamic_dims=dynamic_dims)
    kinds = {w.rpartition(".")[0]: kind for w, kind in cap.weights.items()}
    settings = recipes.resolve(kinds, recipe, preset, model_name)
    folded = fold_batchnorm(work, example_inputs, captured=cap)
    scores = {}
    if evaluate is not None:
        scores["dense"] = float(evaluate(work))
    if masks is None:
        masks = prune(work, settings, train=train, steps=prune_steps, progress=progress)
    else:
        masks = _check_masks(work, settings, masks)
    if evaluate is not None:
        scores["pruned"] = float(evaluate(work))
    lower_bits = set(settings) - _explicit_bits(kinds, recipe)
    layers = share(work, masks, settings, seed=seed, progress=progress, lower_bits=lower_bits)
    if evaluate is not None:
        scores["shared"] = float(evaluate(work))
    if train is not None:
        fine_tune(work, layers, train)
    half_biases(work, settings)  # the torch model keeps exactly the stored values
    if train is not None and evaluate is not None:
        scores["fine_tuned"] = float(evaluate(work))
    metadata = {
        "producer": "cdnn", "producer_version": runtime_version,
        "source_model": model_name or type(model).__name__, "source_sha256": source_sha,
        "recipe": {"preset": preset, "seed": seed, "prune_steps": prune_steps if train else 0,
                   "retrained": train is not None, "batchnorm_folded": folded,
                   "layers": {name: _used_settings(s, layers.get(name))
                              for name, s in settings.items()}},
        "extra": {f"score_{k}": v for k, v in scores.items()},
    }
    data = encode(work, example_inputs, layers, settings, metadata=metadata, coding=coding,
                  input_names=input_names, output_names=output_names,
                  dynamic_dims=dynamic_dims)
    return CompressedModel(data, work, layers, settings, dense_params, scores)


def _used_settings(settings, layer):
    """A layer's settings as the file was made: with the bits used, and why, where they are
    below the preset's."""
    if layer is None or layer.bits_note is None:
        return settings
    return {**settings, "bits": layer.bits, "bits_note": layer.bits_note}


def _check_masks(model, settings, masks):
    """The given masks, one per compressed layer, each shaped like its weight."""
    params = _parameters(model)
    out = {}
    for name in settings:
        key = f"{name}.weight"
        if key not in masks:
            raise CdnnRecipeError(f"masks: no mask for {key!r} (masks are keyed by weight name, "
                                  f"as prune() returns them)")
        m = torch.as_tensor(masks[key]).to(torch.bool)
        if tuple(m.shape) != tuple(params[key].shape):
            raise CdnnRecipeError(f"masks: the mask for {key!r} has shape {tuple(m.shape)}, "
                                  f"the weight {tuple(params[key].shape)}")
        out[key] = m
    return out


class CompressedModel:
    """A compressed model: the .cdnn bytes, and the torch model with the same weights."""

    def __init__(self, data, model, layers, settings, dense_params, scores):
        self.file = read(data)  # the bytes as the runtime will see them
        self._data, self._model = data, model  # kept private: to_bytes(), reference_model()
        self.layers = layers  # {module name: SharedLayer}
        self.settings = settings
        self.dense_params = dense_params
        self.scores = scores

    def to_bytes(self):
        return self._data

    def save(self, path, *, overwrite=True):
        write_atomic(path, self._data, overwrite=overwrite)
        return len(self._data)

    @property
    def nbytes(self):
        return len(self._data)

    @property
    def dense_bytes(self):
        """Bytes of the source model's parameters as float32."""
        return 4 * self.dense_params

    @property
    def ratio(self):
        return self.dense_bytes / self.nbytes

    def reference_model(self):
        """A torch module whose weights are exactly the decompressed ones (for checking)."""
        return copy.deepcopy(self._model)

    def report(self):
        """Per layer: shape, density, bits, bytes by stream, ratio; and totals."""
        rep = size_report(self.file, self.dense_bytes, self.nbytes)
        for r in rep["layers"]:
            layer = self.layers.get(r["layer"])
            if layer is not None and layer.bits_note is not None:
                r["bits_note"] = layer.bits_note
        return rep

    def format_report(self):
        return format_report(self.report())


def size_report(f, dense_bytes, file_bytes):
    """Where the bytes of a read .cdnn file go, per sparse layer and in total."""
    rows = []
    for t in f.tensors:
        if t.encoding != ENCODING_SPARSE_CODEBOOK:
            continue
        r = layer_report(f, t)
        rows.append({**{k: r[k] for k in ("layer", "shape", "weights", "nnz", "density",
                                          "codebook_size", "gap_bits", "fillers", "bytes",
                                          "dense_bytes", "ratio")},
                     "codes_coding": r["coding"]["codes"], "gaps_coding": r["coding"]["gaps"],
                     "bits_per_nnz": r["bits_per_nnz"]["total"]})
    counted = sum(r["bytes"]["total"] for r in rows)
    return {"layers": rows, "file_bytes": file_bytes, "dense_bytes": dense_bytes,
            "other_bytes": file_bytes - counted, "ratio": dense_bytes / file_bytes}


def format_report(rep):
    out = io.StringIO()
    out.write(f"{'layer':<16}{'shape':>20}{'density':>9}{'K':>5}{'codes':>9}{'gaps':>9}"
              f"{'rows':>7}{'bias':>7}{'bits/nz':>8}{'ratio':>8}\n")
    for r in rep["layers"]:
        b = r["bytes"]
        out.write(f"{r['layer']:<16}{'x'.join(map(str, r['shape'])):>20}{r['density']:>9.1%}"
                  f"{r['codebook_size']:>5}{b['codes']:>9}{b['gaps']:>9}{b['row_counts']:>7}"
                  f"{b['bias']:>7}{r['bits_per_nnz']:>8.2f}{r['ratio']:>7.1f}x\n")
    for r in rep["layers"]:
        if r.get("bits_note"):
            out.write(f"{r['layer']}: {r['bits_note']}\n")
    out.write(f"other tensors, graph, header: {rep['other_bytes']} bytes\n")
    out.write(f"total: {rep['dense_bytes']:,} dense float32 bytes -> {rep['file_bytes']:,} bytes "
              f"on disk = {rep['ratio']:.1f}x\n")
    return out.getvalue()


make_callable(__name__)
