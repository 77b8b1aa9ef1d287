"""PyTorch side of the course: the CNN, a deterministic training loop and accuracy.

Importing this module imports torch (``import tutorial_lib`` alone never does). Images are
NCHW float32 arrays as returned by ``tl.data.load_digits(size=32)``; labels are int64.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Iterator

import numpy as np

with warnings.catch_warnings():
    # Import-time notices from optional torch extensions are not the learner's business.
    warnings.simplefilter("ignore")
    import torch
    from torch import nn

from tutorial_lib.data import Dataset, load_digits

__all__ = ["CourseCNN", "accuracy", "predict", "to_tensor", "train", "trained_cnn"]

# Defaults chosen on the digits (1,437 training images): about 98.5% test accuracy in a few
# seconds on two CPU cores, for every seed we tried.
EPOCHS = 6
BATCH_SIZE = 64
LR = 2e-3


class CourseCNN(nn.Module):
    """The course's CNN for 1x32x32 images (NCHW), ending in 10 logits.

    Three blocks conv3x3 -> BatchNorm -> ReLU -> MaxPool2 (16, 32, 64 channels; 32 -> 16 -> 8 ->
    4 pixels), then Linear(1024, 128) -> ReLU -> Linear(128, 10). Every step is its own named
    submodule, ReLUs included, so that ``torch.ao.quantization.fuse_modules(model,
    CourseCNN.FUSE_GROUPS)`` can fold each conv+bn+relu into one layer.
    """

    FUSE_GROUPS = (
        ("conv1", "bn1", "relu1"),
        ("conv2", "bn2", "relu2"),
        ("conv3", "bn3", "relu3"),
        ("fc1", "relu4"),
    )

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
        return self.fc2(self.relu4(self.fc1(self.flatten(x))))


def to_tensor(x, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A numpy array (or anything array-like) as a torch tensor; tensors pass through."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    arr = np.ascontiguousarray(x)
    if not arr.flags.writeable:
        arr = arr.copy()  # torch.from_numpy warns about read-only arrays
    return torch.from_numpy(arr).to(dtype)


def _check_dataset(data: Dataset) -> None:
    if not all(hasattr(data, f) for f in ("x_train", "y_train")):
        raise ValueError(
            f"data must be a tl.data.Dataset (x_train, y_train, x_test, y_test), e.g. "
            f"tl.data.load_digits(size=32); got {type(data).__name__}."
        )


def _check_images(x: torch.Tensor, y: torch.Tensor | None, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a batch of NCHW images (4 dimensions); got shape {tuple(x.shape)}. "
            "Load with tl.data.load_digits(size=32, layout='NCHW')."
        )
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise ValueError(
            f"labels must be 1-D with one label per image; got {tuple(y.shape)} labels for "
            f"{len(x)} images."
        )


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels while training, then the caller's setting back."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Put ``model`` in train or eval mode, and give it back in the mode it came in."""
    before = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(before)


def train(
    model: nn.Module,
    data: Dataset,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    seed: int = 0,
) -> nn.Module:
    """Train ``model`` in place on ``data.x_train``/``data.y_train`` and return it in eval mode.

    Adam with a one-cycle schedule (the learning rate warms up to ``lr``, then decays to
    almost 0) and cross-entropy loss. The same model, data and ``seed`` give the same weights:
    the shuffling has its own seeded generator and deterministic kernels are on while training.
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be a positive learning rate such as 1e-3; got {lr!r}.")
    _check_dataset(data)
    x, y = to_tensor(data.x_train), to_tensor(data.y_train, torch.int64)
    _check_images(x, y, "data.x_train")
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(x) // batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    with _deterministic(), _mode(model, training=True):
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=shuffle)
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                loss = loss_fn(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


def predict(model: nn.Module, x, batch_size: int = 512) -> np.ndarray:
    """The model's outputs (logits) for images ``x`` as a float32 numpy array, in eval mode."""
    x = to_tensor(x)
    _check_images(x, None, "x")
    with torch.no_grad(), _mode(model, training=False):
        # Batches bound the memory; eval mode makes BatchNorm use its running statistics.
        out = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out).float().numpy()


def accuracy(model: nn.Module, x, y, batch_size: int = 512) -> float:
    """Fraction of images whose highest logit is the true label (0.0 to 1.0)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"y must hold one label per image; got shape {y.shape} for {len(x)} images."
        )
    return float(np.mean(predict(model, x, batch_size).argmax(axis=1) == y))


@functools.lru_cache(maxsize=4)
def _trained_cnn(seed: int) -> CourseCNN:
    data = load_digits(size=32, layout="NCHW")
    torch.manual_seed(seed)  # the initial weights
    return train(CourseCNN(), data, seed=seed)


def trained_cnn(seed: int = 0) -> CourseCNN:
    """The course CNN trained on the 32x32 digits (about 98% test accuracy), in eval mode.

    Training takes a few seconds the first time; later calls in the same process return a
    fresh copy of the cached model, so you may quantize or fine-tune it freely.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    return copy.deepcopy(_trained_cnn(seed))
