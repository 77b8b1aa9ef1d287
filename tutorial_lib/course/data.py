"""Datasets of the course: handwritten digits (bundled, no download) and CIFAR-10 (local files).

Every loader returns a :class:`Dataset` of float32 images in ``[0, 1]`` and int64 labels, in
PyTorch's ``"NCHW"`` layout (batch, channels, height, width) or TensorFlow's ``"NHWC"``
(channels last). Nothing here downloads: the digits ship with scikit-learn, and CIFAR-10 is read
from a folder that you fill yourself.

>>> d = load_digits()
>>> d.x_train.shape, d.y_test.shape
((1437, 1, 8, 8), (360,))
"""

from __future__ import annotations

import functools
import numbers
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "Dataset",
    "load_cifar10",
    "load_digits",
    "Validation",
    "validation_split",
    "write_cifar10_like",
]

LAYOUTS = ("NCHW", "NHWC")
DIGIT_SIZES = (8, 32)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_FILE = "test_batch"
_CIFAR_FOLDER_NAME = "cifar-10-batches-py"  # the folder inside the official archive


class Dataset(NamedTuple):
    """Train and test split: images ``x_*`` (float32 in [0, 1]) and labels ``y_*`` (int64)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(
            f"layout must be 'NCHW' (PyTorch: channels first) or 'NHWC' (TensorFlow/LiteRT: "
            f"channels last); got {layout!r}."
        )
    return layout


def _to_layout(x_nchw: np.ndarray, layout: str) -> np.ndarray:
    """Move the channel axis last for ``"NHWC"``; contiguous so that frameworks take it as is."""
    if layout == "NHWC":
        return np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    return x_nchw


def _copy(ds: Dataset) -> Dataset:
    # The cached arrays stay private: every caller gets its own copy to normalize in place,
    # shuffle or hand to torch.from_numpy (which warns about read-only arrays).
    return Dataset(*(a.copy() for a in ds))


def load_digits(
    size: int = 8, layout: str = "NCHW", test_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """The 1,797 handwritten digits bundled with scikit-learn, as a fixed train/test split.

    Pixels go from 0..16 to float32 0..1. ``size=8`` keeps the original 8x8 images;
    ``size=32`` upsamples them bilinearly to 32x32, the input of the course's CNN. The split is
    stratified (every digit keeps its share in both halves) and seeded, so with the defaults it
    is always the same 1,437 training and 360 test images. Results are cached; every call
    returns fresh copies that you may modify.

    >>> d = load_digits(size=32, layout="NHWC")
    >>> d.x_train.shape, d.x_train.dtype.name, d.y_train.dtype.name
    ((1437, 32, 32, 1), 'float32', 'int64')
    >>> np.bincount(d.y_test).tolist()
    [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size not in DIGIT_SIZES:
        raise ValueError(
            f"size must be 8 (the original images) or 32 (upsampled for the CNN); got {size!r}."
        )
    _check_layout(layout)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real):
        raise ValueError(f"test_fraction must be a number between 0 and 1; got {test_fraction!r}.")
    # Stratification needs at least one image of each of the 10 digits on both sides.
    n_test = int(np.ceil(1797 * test_fraction)) if 0 < test_fraction < 1 else 0
    if not 10 <= n_test <= 1797 - 10:
        raise ValueError(
            f"test_fraction must leave at least 10 images (one per digit) in each split, "
            f"e.g. 0.2; got {test_fraction!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    return _copy(_load_digits_cached(int(size), layout, float(test_fraction), int(seed)))


@functools.lru_cache(maxsize=8)
def _load_digits_cached(size: int, layout: str, test_fraction: float, seed: int) -> Dataset:
    # Imported here so that `import tutorial_lib.data` stays light.
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    if size != 8:
        from scipy.ndimage import zoom

        # order=1 is bilinear; bilinear can't overshoot, but float rounding can, so clip.
        x = np.clip(zoom(x, (1, 1, size / 8, size / 8), order=1), 0.0, 1.0).astype(np.float32)
    x = _to_layout(x, layout)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    return Dataset(x_train, y_train, x_test, y_test)


class Validation(NamedTuple):
    """A validation set carved out of a Dataset's training images (see ``validation_split``)."""

    train: Dataset  # the Dataset without those images in its training part; its test part as is
    x_val: np.ndarray
    y_val: np.ndarray


def validation_split(data: Dataset, fraction: float = 0.2, seed: int = 0) -> Validation:
    """Take a stratified, seeded ``fraction`` of ``data``'s training images as a validation set.

    Choices made while compressing a model (which sparsity per layer, how many clusters) are
    made on these images, so that the test images only ever report the result. The split
    depends on the labels and ``seed`` alone, so the same images are chosen for both layouts of
    the digits. The returned ``train`` keeps ``data``'s test images as they are.

    >>> d = load_digits()
    >>> v = validation_split(d)
    >>> v.train.x_train.shape, v.x_val.shape, np.bincount(v.y_val).tolist()
    ((1149, 1, 8, 8), (288, 1, 8, 8), [29, 29, 28, 29, 29, 29, 29, 29, 28, 29])
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a tl.data.Dataset (from load_digits or load_cifar10); "
                         f"got {type(data).__name__}.")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ValueError(f"fraction must be a number between 0 and 1, e.g. 0.2; got {fraction!r}.")
    y = np.asarray(data.y_train)
    n_classes = len(np.unique(y))
    n_val = int(np.ceil(len(y) * fraction)) if 0 < fraction < 1 else 0
    if not n_classes <= n_val <= len(y) - n_classes:
        raise ValueError(f"fraction must leave at least one image of each of the {n_classes} "
                         f"classes on both sides of the split, e.g. 0.2; got {fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    from sklearn.model_selection import train_test_split

    keep, val = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y,
                                 random_state=int(seed))
    keep, val = np.sort(keep), np.sort(val)  # the training order stays as it was
    train = data._replace(x_train=data.x_train[keep], y_train=y[keep])
    return Validation(train, data.x_train[val], y[val])


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    with path.open("rb") as f:
        # The batches were pickled by Python 2: keys and strings come back as bytes.
        # pickle runs code from the file, so only read batches that you downloaded yourself.
        batch = pickle.load(f, encoding="bytes")
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch (a pickled dict with b'data' and "
            f"b'labels'; missing {err}). Use the 'CIFAR-10 python version' archive."
        ) from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected b'data' of shape (N, 3072) and N labels; got data "
            f"{data.shape} and {len(labels)} labels."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be 0..9; got {labels.min()}..{labels.max()}.")
    # Each row holds the 1024 red values, then green, then blue, each image row by row.
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_folder(folder: str | Path) -> Path:
    """The folder that holds the batches: ``folder`` itself or its ``cifar-10-batches-py``."""
    root = Path(folder).expanduser()
    for candidate in (root, root / _CIFAR_FOLDER_NAME):
        if (candidate / _CIFAR_TEST_FILE).is_file():
            return candidate
    return root


def load_cifar10(folder: str | Path, layout: str = "NCHW") -> Dataset:
    """CIFAR-10 from the official python batches in ``folder``: 50,000 train, 10,000 test.

    The course never downloads: get ``cifar-10-python.tar.gz`` from
    https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and pass either the
    ``cifar-10-batches-py`` folder or the folder that contains it. Images become float32 in
    [0, 1] (about 740 MB for the full set), labels int64; class names are in
    :data:`CIFAR10_CLASSES`.
    """
    _check_layout(layout)
    where = _cifar_folder(folder)
    needed = (*_CIFAR_TRAIN_FILES, _CIFAR_TEST_FILE)
    missing = [name for name in needed if not (where / name).is_file()]
    if missing:
        what = "does not exist" if not where.is_dir() else f"lacks {', '.join(missing)}"
        raise ValueError(
            f"CIFAR-10 folder {where} {what}. The course does not download data: get "
            f"'cifar-10-python.tar.gz' from https://www.cs.toronto.edu/~kriz/cifar.html, "
            f"unpack it and pass the '{_CIFAR_FOLDER_NAME}' folder (it holds data_batch_1 to "
            f"data_batch_5 and test_batch)."
        )
    train = [_read_batch(where / name) for name in _CIFAR_TRAIN_FILES]
    x_test, y_test = _read_batch(where / _CIFAR_TEST_FILE)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])

    def to_float(x: np.ndarray) -> np.ndarray:
        # Reorder the uint8 bytes first and divide in place: the float copy is the big one.
        out = _to_layout(x, layout).astype(np.float32)
        out /= np.float32(255)
        return out

    return Dataset(to_float(x_train), y_train, to_float(x_test), y_test)


def write_cifar10_like(
    folder: str | Path, n_train_per_batch: int = 20, n_test: int = 20, seed: int = 0
) -> Path:
    """Write random images in the exact CIFAR-10 python format, for tests and offline demos.

    Creates ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and ``batches.meta`` in
    ``folder`` (created if needed) and returns the folder, ready for :func:`load_cifar10`.
    The images are noise: nothing can be learnt from them.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     d = load_cifar10(write_cifar10_like(tmp, n_train_per_batch=4, n_test=3))
    >>> d.x_train.shape, d.x_test.shape
    ((20, 3, 32, 32), (3, 3, 32, 32))
    """
    for name, n in (("n_train_per_batch", n_train_per_batch), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"{name} must be a positive integer; got {n!r}.")
    root = Path(folder).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = [(name, n_train_per_batch) for name in _CIFAR_TRAIN_FILES]
    files.append((_CIFAR_TEST_FILE, n_test))
    for i, (name, n) in enumerate(files):
        batch = {
            b"batch_label": f"batch {i + 1} of {len(files)} (random)".encode(),
            b"labels": rng.integers(0, 10, size=n).tolist(),  # a list, as in the original
            b"data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
            b"filenames": [f"random_{i}_{k}.png".encode() for k in range(n)],
        }
        with (root / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {
        b"num_cases_per_batch": n_train_per_batch,
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_vis": 3 * 32 * 32,
    }
    with (root / "batches.meta").open("wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root
