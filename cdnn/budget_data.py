"""The data of `cdnn compress --train-data/--val-data`: read, and checked against the model
before any training.

A split is an .npz file holding arrays `x` (inputs, batch first) and `y` (targets); or a
directory of .npy shards, `x*.npy` each paired with the `y*.npy` of the same suffix
(`x_000.npy` with `y_000.npy`), concatenated in name order; or what a data hook returns
(`--data-hook pkg.mod:fn`, called as `fn("train")` and `fn("val")`, returning `(x, y)`
arrays). `export_fashion_mnist` writes Fashion-MNIST in the .npz form.
"""

import glob
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from cdnn_runtime.errors import CdnnDatasetError, CdnnUsageError

from .sources import import_object

#: The task of each --metric: top-1 wants integer class labels, mse targets shaped like outputs.
METRICS = ("top1", "mse")


@dataclass
class Split:
    """One split of the data: inputs `x`, targets `y`, and where they came from."""
    x: np.ndarray
    y: np.ndarray
    source: str

    def __len__(self):
        return len(self.x)


def _as_input(a):
    """Inputs as the model takes them: floats as float32, integers as int64 ids."""
    return np.ascontiguousarray(a, dtype=np.int64 if a.dtype.kind in "iub" else np.float32)


def _npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x", "y") if k not in data.files]
            if missing:
                raise CdnnDatasetError(f"{path}: no array named {missing[0]!r} (the .npz holds "
                                       f"{', '.join(data.files) or 'nothing'}; expected x and y)")
            return data["x"], data["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CdnnDatasetError(f"{path}: cannot read as an .npz with x and y ({exc})") from None


def _npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CdnnDatasetError(f"{path}: cannot read as a .npy array ({exc})") from None


def _shards(folder):
    xs = sorted(glob.glob(os.path.join(folder, "x*.npy")))
    if not xs:
        raise CdnnDatasetError(f"{folder}: no x*.npy shards (a data folder pairs x_NAME.npy "
                               "with y_NAME.npy)")
    pairs = []
    for xp in xs:
        yp = os.path.join(folder, "y" + os.path.basename(xp)[1:])
        if not os.path.exists(yp):
            raise CdnnDatasetError(f"{xp}: its targets {os.path.basename(yp)} are missing")
        pairs.append((_npy(xp), _npy(yp), xp))
    for x, y, xp in pairs:
        if len(x) != len(y):
            raise CdnnDatasetError(f"{xp}: {len(x)} inputs but {len(y)} targets in its y shard")
        if x.shape[1:] != pairs[0][0].shape[1:]:
            raise CdnnDatasetError(f"{xp}: inputs shaped {list(x.shape[1:])}, the first shard's "
                                   f"{list(pairs[0][0].shape[1:])}")
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def load_split(path, what):
    """The split `what` ("train" or "val") from an .npz file or a folder of .npy shards."""
    try:
        if os.path.isdir(path):
            x, y = _shards(path)
        elif os.path.exists(path):
            x, y = _npz(path)
        else:
            raise CdnnDatasetError(f"{path}: no such file or folder")
    except CdnnDatasetError as exc:
        raise CdnnDatasetError(f"--{what}-data: {exc}") from None
    return Split(_as_input(np.asarray(x)), np.asarray(y), f"{what} data {path}")


def hook_splits(spec):
    """(train, val) from a data hook `pkg.mod:fn`, called as fn("train") and fn("val")."""
    fn = import_object(spec, "--data-hook", "function")
    attr = spec.partition(":")[2]
    out = []
    for what in ("train", "val"):
        got = fn(what)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise CdnnDatasetError(f"--data-hook {spec}: {attr}({what!r}) returned "
                                   f"{type(got).__name__}, not an (x, y) pair")
        x, y = (np.asarray(a.detach().cpu() if hasattr(a, "detach") else a) for a in got)
        out.append(Split(_as_input(x), y, f"{what} data from {spec}"))
    return tuple(out)


def check_split(split, example_shape, outputs_shape, metric):
    """Refuse a split that the model cannot train or be scored on, naming what is wrong:
    empty, x and y of different lengths, inputs not shaped like the model's, labels out of the
    outputs' range (top1) or targets not shaped like the outputs (mse). Returns the split with
    targets as int64 labels (top1) or float32 (mse)."""
    where = split.source
    if len(split.x) == 0:
        raise CdnnDatasetError(f"{where}: the split is empty (no examples)")
    if split.x.ndim == 0 or len(split.y) != len(split.x):
        raise CdnnDatasetError(f"{where}: x holds {len(split.x)} examples but y {len(split.y)}")
    if list(split.x.shape[1:]) != list(example_shape[1:]):
        raise CdnnDatasetError(f"{where}: inputs shaped {list(split.x.shape[1:])} per example, "
                               f"the model takes {list(example_shape[1:])}")
    if metric == "top1":
        if split.y.ndim != 1 or split.y.dtype.kind not in "iu":
            raise CdnnDatasetError(f"{where}: top-1 needs integer class labels y[N], got "
                                   f"{split.y.dtype} {list(split.y.shape)}")
        classes = outputs_shape[1] if len(outputs_shape) == 2 else None
        if classes is None:
            raise CdnnDatasetError(f"{where}: top-1 needs outputs [N, classes], the model "
                                   f"gives {list(outputs_shape)}")
        low, high = int(split.y.min()), int(split.y.max())
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise CdnnDatasetError(f"{where}: label {bad} is out of range for the model's "
                                   f"{classes} outputs (0..{classes - 1})")
        return Split(split.x, split.y.astype(np.int64), where)
    if list(split.y.shape[1:]) != list(outputs_shape[1:]):
        raise CdnnDatasetError(f"{where}: targets shaped {list(split.y.shape[1:])} per "
                               f"example, the model outputs {list(outputs_shape[1:])}")
    y = split.y.astype(np.float32)
    if not np.isfinite(y).all() or not np.isfinite(split.x.astype(np.float32)).all():
        raise CdnnDatasetError(f"{where}: holds NaN or infinity")
    return Split(split.x, y, where)


def export_fashion_mnist(out_dir, val=5000, seed=0, root=None):
    """Write Fashion-MNIST as train.npz, val.npz (`val` training images held out, a seeded
    permutation: the split of `make paper`) and test.npz, each with x float32 [N, 1, 28, 28]
    in [0, 1] and y int64; returns {name: path}."""
    from .datasets import fashion_mnist
    xtr, ytr = fashion_mnist(root, split="train")
    xte, yte = fashion_mnist(root, split="test")
    if not 0 < val < len(xtr):
        raise CdnnUsageError(f"--val must be between 1 and {len(xtr) - 1}, got {val}")
    perm = np.random.default_rng(seed).permutation(len(xtr))
    held, kept = perm[:val], perm[val:]
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, x, y in (("train", xtr[kept], ytr[kept]), ("val", xtr[held], ytr[held]),
                       ("test", xte, yte)):
        path = os.path.join(out_dir, f"{name}.npz")
        tmp = path + ".tmp.npz"
        np.savez(tmp, x=x, y=y)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
        paths[name] = path
    return paths
