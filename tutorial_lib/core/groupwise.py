"""Group-wise quantization: one scale and zero point per group of consecutive values.

Per-channel quantization gives each row of a weight matrix its own scale. Group-wise goes
further: each row (the last axis, a Linear layer's input features, as in torchao, GPTQ and AWQ)
is cut into groups of ``group_size`` consecutive values and every group gets its own scale. A
group is just a short channel, so the functions reshape ``(..., n)`` into
``(..., n // group_size, group_size)`` and call the per-channel verbs of ``tl.affine``.

Smaller groups fit outliers better but store more scales: with float16 scales and groups of 32,
that is 16 / 32 = 0.5 extra bits per weight, so 4-bit weights take 4.5 bits.
"""

from __future__ import annotations

import numbers

import numpy as np

from tutorial_lib.core._validate import as_finite_float32
from tutorial_lib.core.affine import QParams
from tutorial_lib.core.affine import choose_qparams as _choose_qparams
from tutorial_lib.core.affine import dequantize as _dequantize
from tutorial_lib.core.affine import quantize as _quantize

__all__ = ["choose_qparams", "quantize", "dequantize", "fake_quantize"]


def _check_group_size(shape: tuple[int, ...], group_size) -> int:
    if len(shape) == 0:
        raise ValueError("group-wise quantization needs an array with at least one axis.")
    if isinstance(group_size, bool) or not isinstance(group_size, numbers.Integral) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, e.g. 32; got {group_size!r}.")
    n = shape[-1]
    if n % group_size:
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        raise ValueError(
            f"group_size={group_size} does not divide the last axis ({n} values): groups must "
            f"tile each row exactly. Choose one of {divisors}, or reshape the tensor first."
        )
    return int(group_size)


def _grouped(x: np.ndarray, group_size: int) -> np.ndarray:
    """``(..., n)`` as ``(number of groups, group_size)``: one group per row."""
    return x.reshape(-1, group_size)


def _check_params(x_shape, scale, zero_point, group_size: int):
    want = (*x_shape[:-1], x_shape[-1] // group_size)
    scale, zero_point = np.asarray(scale), np.asarray(zero_point)
    if scale.shape != want or zero_point.shape != want:
        raise ValueError(
            f"with group_size={group_size} an array of shape {tuple(x_shape)} needs scale and "
            f"zero_point of shape {want}, one per group; got {scale.shape} and "
            f"{zero_point.shape}. Use tl.groupwise.choose_qparams to get them."
        )
    return scale.ravel(), zero_point.ravel()


def choose_qparams(x, group_size: int, quant_min: int = -128, quant_max: int = 127,
                   symmetric: bool = False) -> QParams:
    """Min-max scale and zero point of each group of ``group_size`` values along the last axis.

    Returns arrays of shape ``x.shape[:-1] + (x.shape[-1] // group_size,)``.

    >>> w = np.array([[0.1, -0.2, 4.0, 1.0], [0.3, 0.3, 0.2, -0.4]])
    >>> qp = choose_qparams(w, group_size=2, quant_min=-7, quant_max=7, symmetric=True)
    >>> (qp.scale * 7).astype(float).round(4).tolist()  # the largest |w| of each group
    [[0.2, 4.0], [0.3, 0.4]]
    """
    x = as_finite_float32(x, "x")
    group_size = _check_group_size(x.shape, group_size)
    g = _grouped(x, group_size)
    scale, zero_point = _choose_qparams(g.min(axis=1), g.max(axis=1), quant_min, quant_max,
                                        symmetric)
    shape = (*x.shape[:-1], x.shape[-1] // group_size)
    return QParams(np.asarray(scale).reshape(shape), np.asarray(zero_point).reshape(shape))


def quantize(x, scale, zero_point, group_size: int, quant_min: int = -128, quant_max: int = 127,
             rounding: str = "half_even") -> np.ndarray:
    """``tl.quantize`` with one scale and zero point per group along the last axis.

    >>> quantize([[0.1, -0.2, 4.0, 1.0]], [[0.03125, 0.5]], [[0, 0]], group_size=2).tolist()
    [[3, -6, 8, 2]]
    """
    x = as_finite_float32(x, "x")
    group_size = _check_group_size(x.shape, group_size)
    scale, zero_point = _check_params(x.shape, scale, zero_point, group_size)
    q = _quantize(_grouped(x, group_size), scale, zero_point, quant_min, quant_max, axis=0,
                  rounding=rounding)
    return q.reshape(x.shape)


def dequantize(q, scale, zero_point, group_size: int) -> np.ndarray:
    """``tl.dequantize`` with one scale and zero point per group along the last axis.

    >>> dequantize([[3, -6, 8, 2]], [[0.03125, 0.5]], [[0, 0]], group_size=2).tolist()
    [[0.09375, -0.1875, 4.0, 1.0]]
    """
    q = np.asarray(q)
    group_size = _check_group_size(q.shape, group_size)
    scale, zero_point = _check_params(q.shape, scale, zero_point, group_size)
    return _dequantize(_grouped(q, group_size), scale, zero_point, axis=0).reshape(q.shape)


def fake_quantize(x, scale, zero_point, group_size: int, quant_min: int = -128,
                  quant_max: int = 127, rounding: str = "half_even") -> np.ndarray:
    """``dequantize(quantize(x))`` group by group.

    >>> x = [[0.1, -0.2, 4.0, 1.0]]
    >>> for group_size in (4, 2):  # one scale for the row, then one per pair
    ...     qp = choose_qparams(x, group_size, -7, 7, symmetric=True)
    ...     print(fake_quantize(x, *qp, group_size, -7, 7).astype(float).round(3).tolist())
    [[0.0, 0.0, 4.0, 1.143]]
    [[0.114, -0.2, 4.0, 1.143]]
    """
    q = quantize(x, scale, zero_point, group_size, quant_min, quant_max, rounding)
    return dequantize(q, scale, zero_point, group_size)
