"""Cross-layer equalization: move a per-channel scale from one layer into the next.

For two layers with a ReLU (or nothing) between them, ``y = W2 · relu(W1 x + b1)``, a positive
scale s_i per channel i of the first layer's output commutes with the ReLU:
``relu(s · z) = s · relu(z)``. So dividing output channel i of W1 (and b1) by s_i and
multiplying input channel i of W2 by s_i gives the same function. Nagel et al. (2019,
"Data-Free Quantization Through Weight Equalization and Bias Correction", arXiv:1906.04721)
choose ``s_i = sqrt(r1_i / r2_i)``, with r1_i the range of output channel i of W1 and r2_i the
range of input channel i of W2, which makes both ranges ``sqrt(r1_i · r2_i)``: one channel no
longer dominates a per-tensor scale. PyTorch implements the same rule in
``torch.ao.quantization._equalize.cross_layer_equalization`` (range = max - min of the
channel); the tests check these functions against it.

BatchNorm must be folded into the convolution first: the scale passes through a folded layer's
weights and bias, not through a BatchNorm with its own statistics.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["channel_range", "Equalized", "equalize_pair", "equalize_chain"]


def _float(w, name: str) -> np.ndarray:
    a = np.asarray(w)
    if a.dtype.kind != "f" or a.ndim < 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a non-empty array of finite floats; got dtype "
                         f"{a.dtype}, shape {a.shape}.")
    return a


def channel_range(w, axis: int) -> np.ndarray:
    """``max - min`` of each channel along ``axis``, over every other axis.

    >>> channel_range(np.array([[1.0, -2.0], [0.5, 0.25]], dtype=np.float32), axis=0).tolist()
    [3.0, 0.25]
    """
    w = _float(w, "w")
    others = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    return w.max(axis=others) - w.min(axis=others)


class Equalized(NamedTuple):
    """Two equalized layers, and the scales that moved between them (one per channel)."""

    w1: np.ndarray
    b1: np.ndarray | None
    w2: np.ndarray
    scales: np.ndarray


def _along(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = v.size
    return v.reshape(shape)


def equalize_pair(w1, b1, w2, output_axis: int = 0, input_axis: int = 1) -> Equalized:
    """Equalize output channel i of ``w1`` (and ``b1``) with input channel i of ``w2``.

    ``s = sqrt(r1 / r2)`` (with r2 nudged by 1e-9, as PyTorch does, so an all-zero input channel
    cannot divide by zero); returns ``w1 / s``, ``b1 / s`` and ``w2 · s``. Weights in PyTorch's
    layouts: conv ``(out, in, kh, kw)``, dense ``(out, in)``.

    >>> w1 = np.array([[4.0, -4.0], [0.5, -0.5]], dtype=np.float32)  # output ranges 8 and 1
    >>> w2 = np.array([[0.5, 2.0], [-0.5, -2.0]], dtype=np.float32)  # input ranges 1 and 4
    >>> e = equalize_pair(w1, None, w2)
    >>> [round(float(s), 4) for s in e.scales], [round(float(r), 4) for r in channel_range(e.w1, 0)]
    ([2.8284, 0.5], [2.8284, 2.0])
    >>> [round(float(r), 4) for r in channel_range(e.w2, 1)]
    [2.8284, 2.0]
    """
    w1, w2 = _float(w1, "w1"), _float(w2, "w2")
    if w1.shape[output_axis] != w2.shape[input_axis]:
        raise ValueError(f"w1 has {w1.shape[output_axis]} output channels (axis {output_axis}) "
                         f"but w2 has {w2.shape[input_axis]} input channels (axis {input_axis}); "
                         "pass two adjacent layers, the second fed by the first.")
    r1 = channel_range(w1, output_axis)
    r2 = channel_range(w2, input_axis) + w2.dtype.type(1e-9)
    if np.any(r1 == 0):
        raise ValueError("an output channel of w1 is constant (range 0), so it cannot be scaled; "
                         "remove dead channels before equalizing.")
    scales = np.sqrt(r1 / r2).astype(w1.dtype)
    inverse = np.reciprocal(scales)
    new_b1 = None
    if b1 is not None:
        b1 = _float(b1, "b1")
        if b1.shape != (w1.shape[output_axis],):
            raise ValueError(f"b1 must have one value per output channel of w1, shape "
                             f"({w1.shape[output_axis]},); got {b1.shape}.")
        new_b1 = b1 * inverse
    return Equalized(w1 * _along(inverse, w1.ndim, output_axis), new_b1,
                     w2 * _along(scales, w2.ndim, input_axis), scales)


def equalize_chain(layers, threshold: float = 1e-4, max_rounds: int = 1000):
    """Equalize every adjacent pair of a chain of layers, round after round, until the weights
    stop moving: as PyTorch's ``equalize``, until the summed Frobenius norms of each weight's
    change since it was last copied (just before its last pair) fall below ``threshold``.

    ``layers`` is a list of ``(w, b)`` in PyTorch's layouts, each fed by the one before through a
    ReLU (or directly). Returns the new list and the number of rounds.

    >>> w = [np.array([[4.0, -4.0], [0.5, -0.5]], np.float32), np.eye(2, dtype=np.float32)]
    >>> out, rounds = equalize_chain([(w[0], None), (w[1], None)])
    >>> [[round(float(r), 3) for r in channel_range(out[0][0], 0)], rounds]
    [[2.828, 1.0], 2]
    """
    layers = [(_float(w, f"layers[{i}] weight"),
               None if b is None else _float(b, f"layers[{i}] bias"))
              for i, (w, b) in enumerate(layers)]
    if len(layers) < 2:
        raise ValueError("equalize_chain needs at least two layers, each fed by the one before.")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive (1e-4 is PyTorch's); got {threshold}.")
    for rounds in range(1, max_rounds + 1):
        previous = [None] * len(layers)
        for i in range(len(layers) - 1):
            (w1, b1), (w2, b2) = layers[i], layers[i + 1]
            previous[i], previous[i + 1] = w1, w2
            e = equalize_pair(w1, b1, w2)
            layers[i], layers[i + 1] = (e.w1, e.b1), (e.w2, b2)
        moved = sum(float(np.linalg.norm((w - old).ravel()))
                    for (w, _), old in zip(layers, previous, strict=True))
        if moved < threshold:
            return layers, rounds
    raise ValueError(f"equalization did not settle in {max_rounds} rounds (threshold "
                     f"{threshold}); raise max_rounds or the threshold.")
