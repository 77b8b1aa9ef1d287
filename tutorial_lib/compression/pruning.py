"""Pruning (가지치기): set the least important weights to zero, and measure what that saves.

A pruning *mask* holds 1.0 where a weight stays and 0.0 where it is removed; the pruned weight
is ``w * mask``. The masks here are float32, as ``torch.nn.utils.prune`` keeps them (its
``weight_mask`` buffers), so that ``w * mask`` needs no cast.

- ``magnitude_mask``: unstructured, per tensor: remove the ``round(sparsity * w.size)`` weights
  of smallest ``|w|`` (``torch.nn.utils.prune.l1_unstructured``);
- ``global_masks``: one threshold over a model's weights (``prune.global_unstructured``):
  layers with many small weights lose more than others; biases are left alone;
- ``channel_mask``: structured: remove whole output channels, those of smallest L2 norm
  (``prune.ln_structured(..., n=2, dim=0)``) or of smallest ``scores``, such as the |gamma| of
  the BatchNorm that follows the layer (Network Slimming, Liu et al. 2017);
- ``m_by_n_mask``: semi-structured: in every ``n`` consecutive weights along the input axis, the
  ``m`` smallest go (2:4 is what tfmot's ``sparsity_m_by_n=(2, 4)`` and sparse GPU kernels use);
- ``choose_sparsities`` and ``choice_margins``: per-layer sparsities from a sensitivity scan,
  and how many images away from changing each choice was.

Ties between equal magnitudes are broken by position, the first in C order going first: the
course's convention. ``torch.nn.utils.prune`` picks among ties with ``torch.topk``, whose order
among equal values is unspecified, so on tied weights its mask may differ from these.

Zeros in a dense tensor save nothing by themselves: the file and the arithmetic are as large as
before. They save bytes once the file is compressed (``zipped_bytes``) or stored in a sparse
format, and time only where a kernel skips them or the pruned channels are physically removed.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

import numpy as np

from tutorial_lib.core._validate import as_finite_float32

__all__ = ["magnitude_mask", "global_masks", "channel_mask", "m_by_n_mask", "sparsity",
           "choose_sparsities", "choice_margins", "zipped_bytes"]


def _check_sparsity(sparsity) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float | np.floating | np.integer) \
            or not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must be a fraction from 0.0 to 1.0 (0.8 removes 80% of the "
                         f"weights); got {sparsity!r}.")
    return float(sparsity)


def _n_pruned(sparsity: float, n: int) -> int:
    # torch.nn.utils.prune: round(amount * n) for a fractional amount (Python's round: half to even)
    return int(round(sparsity * n))


def magnitude_mask(w, sparsity: float, axis: int | None = None) -> np.ndarray:
    """Float32 mask that removes the ``round(sparsity * w.size)`` weights of smallest ``|w|``.

    The ``weight_mask`` of ``torch.nn.utils.prune.l1_unstructured(module, "weight",
    amount=sparsity)`` wherever the magnitudes are distinct; among equal magnitudes the first in
    C order goes first (the course's convention: torch's order among ties is unspecified). With
    ``axis``, every slice along it (an output channel with ``axis=0``) loses its own
    ``round(sparsity * slice.size)`` smallest, so all channels end with the same sparsity.

    >>> magnitude_mask([[0.5, 0.4], [0.1, 0.2]], 0.5).tolist()
    [[1.0, 1.0], [0.0, 0.0]]
    >>> magnitude_mask([[0.5, 0.4], [0.1, 0.2]], 0.5, axis=0).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    w = as_finite_float32(w, "w")
    sparsity = _check_sparsity(sparsity)
    if axis is not None:
        if isinstance(axis, bool) or not isinstance(axis, int) or not -w.ndim <= axis < w.ndim:
            raise ValueError(f"axis must be None or an integer axis of w (shape {w.shape}); "
                             f"got {axis!r}.")
        moved = np.moveaxis(w, axis, 0)
        return np.moveaxis(np.stack([magnitude_mask(row, sparsity) for row in moved]), 0, axis)
    k = _n_pruned(sparsity, w.size)
    mask = np.ones(w.size, np.float32)
    mask[np.argsort(np.abs(w).ravel(), kind="stable")[:k]] = 0.0
    return mask.reshape(w.shape)


def global_masks(params: Mapping[str, np.ndarray], sparsity: float) -> dict[str, np.ndarray]:
    """Masks for a model's weights with one magnitude threshold: ``round(sparsity * total)`` go.

    ``params`` maps names to arrays, as a state dict does. Only the tensors of 2 or more
    dimensions are pruned (conv kernels, linear weights); biases and BatchNorm's vectors are
    1-D, few, and each shifts a whole channel, so they are left alone and get no mask. As
    ``torch.nn.utils.prune.global_unstructured(..., pruning_method=prune.L1Unstructured)`` over
    the layers' weights: the smallest weights of all tensors together are removed, so each
    tensor ends with its own sparsity (ties: the first in the dict's order, then C order).

    >>> masks = global_masks({"a.weight": [[0.1, 0.2]], "a.bias": [9.0],
    ...                       "b.weight": [[3.0, 0.3], [4.0, 5.0]]}, 0.5)
    >>> {name: m.tolist() for name, m in masks.items()}
    {'a.weight': [[0.0, 0.0]], 'b.weight': [[1.0, 0.0], [1.0, 1.0]]}
    """
    if not isinstance(params, Mapping):
        raise ValueError("params must be a dict {name: array}, as a state dict is (e.g. "
                         "{n: t.numpy() for n, t in model.state_dict().items()}).")
    arrays = {n: as_finite_float32(a, f"params[{n!r}]") for n, a in params.items()}
    arrays = {n: a for n, a in arrays.items() if a.ndim >= 2}
    if not arrays:
        raise ValueError("params holds no tensor of 2 or more dimensions: nothing to prune "
                         "(biases and BatchNorm vectors are left alone).")
    flat = magnitude_mask(np.concatenate([a.ravel() for a in arrays.values()]), sparsity)
    ends = np.cumsum([a.size for a in arrays.values()])[:-1]
    return {n: m.reshape(a.shape) for (n, a), m in zip(arrays.items(), np.split(flat, ends),
                                                      strict=True)}


def channel_mask(w, sparsity: float, axis: int = 0, scores=None) -> np.ndarray:
    """Mask that removes the ``round(sparsity * w.shape[axis])`` slices of lowest score.

    By default a slice's score is its L2 norm: with ``axis=0``, PyTorch's output channel, that
    is ``prune.ln_structured(module, "weight", amount=sparsity, n=2, dim=0)``; Keras kernels
    keep output channels last (``axis=-1``). ``scores`` (one per slice) replaces the norm: after
    a BatchNorm, which divides the channel by its standard deviation whatever the kernel's
    scale, the BatchNorm's ``|gamma|`` says more about the channel than its kernel does.

    >>> channel_mask([[3.0, 4.0], [0.1, 0.1], [1.0, 0.0]], 1 / 3).tolist()
    [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    >>> channel_mask([[3.0, 4.0], [0.1, 0.1], [1.0, 0.0]], 1 / 3, scores=[0.2, 0.9, 0.5]).tolist()
    [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    """
    w = as_finite_float32(w, "w")
    if isinstance(axis, bool) or not isinstance(axis, int) or not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis must be an integer axis of w (shape {w.shape}); got {axis!r}.")
    if scores is None:
        moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).astype(np.float64)
        scores = np.sqrt(np.sum(moved**2, axis=1))
    else:
        scores = as_finite_float32(scores, "scores")
        if scores.shape != (w.shape[axis],):
            raise ValueError(f"scores must hold one value per slice along axis {axis}: shape "
                             f"({w.shape[axis]},); got {scores.shape}.")
        scores = np.abs(scores)  # a score ranks by size: |gamma|, not gamma
    keep = magnitude_mask(scores, sparsity)
    shape = [1] * w.ndim
    shape[axis] = w.shape[axis]
    return np.broadcast_to(keep.reshape(shape), w.shape).astype(np.float32)


def m_by_n_mask(w, m: int = 2, n: int = 4, axis: int = -1) -> np.ndarray:
    """Mask with ``m`` zeros in every ``n`` consecutive weights along ``axis`` (2:4 by default).

    In each group the ``m`` weights of smallest ``|w|`` go. tfmot's ``sparsity_m_by_n=(2, 4)``
    groups a Keras kernel along its input channels (``axis=-2`` for a conv's HWIO kernel,
    ``axis=0`` for a Dense kernel), which is the last axis of the kernel in the .tflite file.

    >>> m_by_n_mask([0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]).tolist()
    [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    """
    w = as_finite_float32(w, "w")
    for name, v in (("m", m), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    if m >= n:
        raise ValueError(f"m ({m}) zeros out of n ({n}) must leave something: need m < n.")
    if isinstance(axis, bool) or not isinstance(axis, int) or not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis must be an integer axis of w (shape {w.shape}); got {axis!r}.")
    if w.shape[axis] % n:
        raise ValueError(f"w has {w.shape[axis]} values along axis {axis}, not a multiple of "
                         f"n={n}: {m}:{n} groups would not fit. Prune this layer another way.")
    moved = np.moveaxis(w, axis, -1)
    groups = np.abs(moved).reshape(-1, n)
    order = np.argsort(groups, axis=1, kind="stable")[:, :m]  # the m smallest of each group
    mask = np.ones_like(groups, dtype=np.float32)
    np.put_along_axis(mask, order, 0.0, axis=1)
    return np.moveaxis(mask.reshape(moved.shape), -1, axis)


def sparsity(w) -> float:
    """Fraction of exact zeros in ``w``.

    >>> sparsity([[0.0, 1.0], [0.0, -2.0]])
    0.5
    """
    w = as_finite_float32(w, "w")
    return float(np.mean(w == 0))


def choose_sparsities(scan: Mapping[str, Mapping[float, float]], base_accuracy: float,
                      max_drop: float) -> dict[str, float]:
    """From a sensitivity scan, each layer's largest sparsity that costs at most ``max_drop``.

    ``scan[layer][sparsity]`` is the accuracy with only that layer pruned to that sparsity
    (no fine-tuning). Sparsities are tried from the smallest up, and the scan of a layer stops at
    the first one that loses more than ``max_drop``; a layer that cannot be pruned at all gets
    0.0.

    >>> choose_sparsities({"conv1": {0.5: 0.98, 0.7: 0.9}, "fc1": {0.5: 0.99, 0.9: 0.985}},
    ...                   base_accuracy=0.99, max_drop=0.01)
    {'conv1': 0.5, 'fc1': 0.9}
    """
    if not 0 <= max_drop < 1:
        raise ValueError(f"max_drop must be an accuracy fraction such as 0.005; got {max_drop!r}.")
    chosen = {}
    for layer, results in scan.items():
        best = 0.0
        for s in sorted(results):
            if base_accuracy - results[s] > max_drop + 1e-12:
                break
            best = float(s)
        chosen[layer] = best
    return chosen


def choice_margins(scan: Mapping[str, Mapping[float, float]], base_accuracy: float,
                   max_drop: float, n_images: int) -> dict[str, float]:
    """How many images each layer's ``choose_sparsities`` choice is away from changing.

    The choice of a layer rests on every scanned sparsity up to the chosen one (each lost at
    most ``max_drop``) and on the next one (which lost more). For each of those, the distance
    in images between what it lost and the limit ``max_drop * n_images``; the margin is the
    smallest. A margin above 1 means that one image changing class (as a float kernel of another
    CPU may make it) cannot change the choice.

    >>> choice_margins({"fc1": {0.5: 0.99, 0.9: 0.97}}, 1.0, 0.02, n_images=100)
    {'fc1': 1.0}
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) or n_images < 1:
        raise ValueError(f"n_images must be the number of images the scan was measured on; got "
                         f"{n_images!r}.")
    chosen = choose_sparsities(scan, base_accuracy, max_drop)
    limit = max_drop * n_images
    margins = {}
    for layer, results in scan.items():
        ordered = sorted(results)
        relevant = [s for s in ordered if s <= chosen[layer]] + \
            [s for s in ordered if s > chosen[layer]][:1]
        lost = [(base_accuracy - results[s]) * n_images for s in relevant]
        margins[layer] = round(min(abs(v - limit) for v in lost), 6)
    return margins


def zipped_bytes(content: bytes, name: str = "model") -> int:
    """Size of ``content`` inside a zip archive (deflate, level 9), as TFMOT's guides measure.

    The archive's date is fixed, so the same bytes always give the same size. Runs of zeros and
    repeated values compress; a dense float tensor of distinct values hardly does.

    >>> zipped_bytes(bytes(10_000)) < 200 < zipped_bytes(np.random.default_rng(0).bytes(10_000))
    True
    """
    if not isinstance(content, bytes | bytearray | memoryview):
        raise ValueError(f"content must be bytes (a .tflite model, a saved state dict); got "
                         f"{type(content).__name__}.")
    buffer = io.BytesIO()
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, bytes(content), compresslevel=9)
    return buffer.tell()

