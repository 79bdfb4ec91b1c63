"""Fashion-MNIST from IDX files (as Debian's ``dataset-fashion-mnist`` installs them).

Headers are checked against the file size before any data is read, so a truncated or
mislabelled file fails with a clear :class:`CdnnDatasetError`.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np

from cdnn_runtime.errors import CdnnDatasetError, CdnnDatasetMissingError

__all__ = [
    "CdnnDatasetError",
    "CdnnDatasetMissingError",
    "DEFAULT_FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ENV",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "fashion_mnist",
    "normalize",
    "read_idx",
]

#: Where Debian's dataset-fashion-mnist package puts the files.
DEFAULT_FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist/"
#: Environment variable naming another folder holding the same files.
FASHION_MNIST_ENV = "CDNN_FASHION_MNIST"
#: Mean and standard deviation of the training images' pixels, scaled to [0, 1].
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    # Chunked, so a header declaring absurd sizes fails on the short read, not on allocation.
    parts = []
    got = 0
    while got < n:
        chunk = f.read(min(n - got, 1 << 26))
        if not chunk:
            raise CdnnDatasetError(f"{path}: truncated {what} (expected {n} bytes, found {got})")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzipped if its name ends in .gz) into a native-endian array."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = _read_exact(f, 4, path, "IDX header")
            if head[0] != 0 or head[1] != 0:
                raise CdnnDatasetError(f"{path}: not an IDX file (magic {head.hex()} does not "
                                       "start 0000)")
            code, ndim = head[2], head[3]
            if code not in _IDX_DTYPES:
                raise CdnnDatasetError(f"{path}: unknown IDX data type 0x{code:02x}")
            if ndim == 0:
                raise CdnnDatasetError(f"{path}: IDX file declares 0 dimensions")
            raw_dims = _read_exact(f, 4 * ndim, path, "IDX dimensions")
            dims = tuple(int(d) for d in np.frombuffer(raw_dims, ">u4"))
            dtype = _IDX_DTYPES[code]
            size = math.prod(dims) * dtype.itemsize
            if not path.name.endswith(".gz"):
                actual = path.stat().st_size
                if actual != 4 + 4 * ndim + size:
                    raise CdnnDatasetError(
                        f"{path}: header declares {dims} of {dtype.name} "
                        f"({4 + 4 * ndim + size} bytes), file has {actual} bytes"
                    )
            body = _read_exact(f, size, path, "IDX data")
            if f.read(1):
                raise CdnnDatasetError(f"{path}: data continues past the {dims} the header "
                                       "declares")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise CdnnDatasetMissingError(f"{path}: no such file") from None
        raise CdnnDatasetError(f"{path}: cannot read: {exc}") from None
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _root(root) -> Path:
    if root is None:
        root = os.environ.get(FASHION_MNIST_ENV) or DEFAULT_FASHION_MNIST_ROOT
    return Path(root)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        p = root / name
        if p.is_file():
            return p
    raise CdnnDatasetMissingError(
        f"Fashion-MNIST file {stem}[.gz] not found in {root}. Install it with"
        " `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, files in"
        f" {DEFAULT_FASHION_MNIST_ROOT}),"
        f" or point root= or ${FASHION_MNIST_ENV} at a folder holding the four IDX files."
    )


def fashion_mnist(root=None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images float32 [N, 1, 28, 28] in [0, 1] and labels int64 [N] of one split.

    ``root`` defaults to ``$CDNN_FASHION_MNIST`` or else Debian's install folder;
    ``split`` is "train" (60,000) or "test" (10,000).
    """
    if split not in _FILES:
        raise CdnnDatasetError(f"split must be 'train' or 'test', got {split!r}")
    folder = _root(root)
    img_stem, lab_stem = _FILES[split]
    img_path, lab_path = _find(folder, img_stem), _find(folder, lab_stem)
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CdnnDatasetError(f"{img_path}: expected uint8 images [N, 28, 28], got "
                               f"{images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise CdnnDatasetError(f"{lab_path}: expected uint8 labels [N], got {labels.dtype} "
                               f"{labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise CdnnDatasetError(f"{img_path} holds {images.shape[0]} images but {lab_path} "
                               f"{labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise CdnnDatasetError(f"{lab_path}: label {int(labels.max())} outside 0..9")
    x = images.astype(np.float32)[:, None, :, :]
    x /= 255.0
    return x, labels.astype(np.int64)


def normalize(images: np.ndarray) -> np.ndarray:
    """Standardize [0, 1] Fashion-MNIST images with the training set's mean and std."""
    centred = np.asarray(images, np.float32) - np.float32(FASHION_MNIST_MEAN)
    return centred / np.float32(FASHION_MNIST_STD)
