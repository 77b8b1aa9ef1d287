"""Affine (scale and zero point) quantization: the core verbs of the course.

A real value ``x`` is stored as an integer ``q`` with ``x ~= scale * (q - zero_point)``.
The names follow PyTorch and torchao (``choose_qparams``, ``quantize``, ``dequantize``,
``fake_quantize``, ``quant_min``, ``quant_max``) so that they carry over to the frameworks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tutorial_lib.core._validate import as_finite_float32, check_bits, check_quant_range

__all__ = ["QParams", "qrange", "choose_qparams", "quantize", "dequantize", "fake_quantize"]

# PyTorch's observers floor the scale at float32 machine epsilon so that a constant tensor
# (max == min) never gives scale 0 and a division by zero.
EPS = np.float32(np.finfo(np.float32).eps)


class QParams(NamedTuple):
    """Quantization parameters: ``x ~= scale * (q - zero_point)``."""

    scale: float | np.ndarray
    zero_point: int | np.ndarray


def qrange(bits: int = 8, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """Integer range ``(quant_min, quant_max)`` of a ``bits``-wide integer.

    Signed is ``[-2**(bits-1), 2**(bits-1) - 1]``, unsigned ``[0, 2**bits - 1]``; ``narrow`` drops
    the lowest code so that the range is symmetric around its middle (TFLite's int8 weights).

    >>> qrange(8), qrange(8, narrow=True), qrange(8, signed=False), qrange(4)
    ((-128, 127), (-127, 127), (0, 255), (-8, 7))
    """
    bits = check_bits(bits)
    quant_min, quant_max = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return (quant_min + 1, quant_max) if narrow else (quant_min, quant_max)


def _int_dtype(quant_min: int, quant_max: int) -> np.dtype:
    """The smallest numpy integer dtype that holds every value of the range."""
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= quant_min and quant_max <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _unwrap(a: np.ndarray, dtype) -> float | int | np.ndarray:
    """0-d arrays become Python scalars (exact: a float32 fits in a Python float)."""
    return a.item() if a.ndim == 0 else a.astype(dtype)


def choose_qparams(
    min_val, max_val, quant_min: int = -128, quant_max: int = 127, symmetric: bool = False
) -> QParams:
    """Scale and zero point that map ``[min_val, max_val]`` onto ``[quant_min, quant_max]``.

    The range is first widened to include 0, so that 0.0 is stored exactly (zero padding and
    ReLU outputs stay exact). Asymmetric: ``scale = (max - min) / (quant_max - quant_min)`` and
    ``zero_point = quant_min - round(min / scale)``. Symmetric: ``scale = max(|min|, |max|) /
    ((quant_max - quant_min) / 2)``, zero point 0 (signed) or the middle code (unsigned).
    Arithmetic is float32, as in PyTorch's ``MinMaxObserver``; scalars or 1-D arrays (one entry
    per channel) are accepted.

    >>> choose_qparams(-1.0, 3.0, 0, 255)
    QParams(scale=0.01568627543747425, zero_point=64)
    >>> choose_qparams([-1.0, -0.5], [1.0, 2.0], -127, 127, symmetric=True).scale.tolist()
    [0.007874015718698502, 0.015748031437397003]
    """
    quant_min, quant_max = check_quant_range(quant_min, quant_max)
    lo = as_finite_float32(min_val, "min_val")
    hi = as_finite_float32(max_val, "max_val")
    if lo.ndim > 1 or hi.ndim > 1 or lo.shape != hi.shape:
        raise ValueError(
            f"min_val and max_val must be scalars or 1-D arrays of the same length (one per "
            f"channel); got shapes {lo.shape} and {hi.shape}."
        )
    if np.any(lo > hi):
        raise ValueError(
            f"min_val must not exceed max_val; got min_val={lo.tolist()} and max_val={hi.tolist()}."
        )
    zero = np.float32(0)
    lo, hi = np.minimum(lo, zero), np.maximum(hi, zero)
    if symmetric:
        max_abs = np.maximum(-lo, hi)
        scale = np.maximum(max_abs / np.float32((quant_max - quant_min) / 2), EPS)
        mid = 0 if quant_min < 0 else (quant_min + quant_max + 1) // 2
        zero_point = np.full(np.shape(scale), mid, dtype=np.int64)
    else:
        with np.errstate(over="ignore"):
            scale = np.maximum((hi - lo) / np.float32(quant_max - quant_min), EPS)
        zero_point = quant_min - np.round(lo / scale).astype(np.int64)
        zero_point = np.clip(zero_point, quant_min, quant_max)
    if not np.all(np.isfinite(scale)):
        raise ValueError(
            f"the range [{lo.min():.3g}, {hi.max():.3g}] is too wide for a float32 scale (max - min "
            "overflows float32): rescale the data, or compute the range in a smaller unit.")
    return QParams(_unwrap(np.asarray(scale, np.float32), np.float32),
                   _unwrap(np.asarray(zero_point), np.int32))


def _broadcast_params(x: np.ndarray, scale, zero_point, axis: int | None):
    """Check scale and zero point and shape them to broadcast against ``x`` along ``axis``."""
    scale = as_finite_float32(scale, "scale")
    zero_point = np.asarray(zero_point)
    if zero_point.dtype.kind in "bUSO":
        raise ValueError(f"zero_point must be an integer; got {zero_point.tolist()!r} "
                         f"({zero_point.dtype.name}).")
    if not np.issubdtype(zero_point.dtype, np.integer):
        if not np.all(np.isfinite(zero_point)) or np.any(np.asarray(zero_point) % 1 != 0):
            raise ValueError(f"zero_point must be integer; got {zero_point.tolist()}.")
        zero_point = zero_point.astype(np.int64)
    if np.any(scale <= 0):
        raise ValueError(f"scale must be positive; got {scale.tolist()}.")
    with np.errstate(divide="ignore", over="ignore"):
        tiny = ~np.isfinite(np.float32(1) / scale)
    if np.any(tiny):
        raise ValueError(
            f"scale {float(scale[tiny].ravel()[0]):.3g} is so small that 1/scale overflows float32; "
            f"use a normal float32 scale, at least {np.finfo(np.float32).tiny:.3g} (choose_qparams floors it "
            f"at {EPS:.3g}).")
    if axis is None:
        if scale.ndim != 0 or zero_point.ndim != 0:
            raise ValueError(
                f"per-tensor quantization takes a scalar scale and zero_point (got shapes "
                f"{scale.shape} and {zero_point.shape}); for one per channel pass axis=."
            )
        return scale, zero_point.astype(np.int64)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for an array with {x.ndim} dimensions.")
    axis %= x.ndim
    n = x.shape[axis]
    if scale.shape != (n,) or zero_point.shape != (n,):
        raise ValueError(
            f"per-channel quantization along axis {axis} needs scale and zero_point of shape "
            f"({n},), one per channel; got {scale.shape} and {zero_point.shape}."
        )
    shape = [1] * x.ndim
    shape[axis] = n
    return scale.reshape(shape), zero_point.astype(np.int64).reshape(shape)


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (C's ``round``, TFLite's ``TfLiteRound``).

    In float64: adding 0.5 to a float32 is exact there, so 0.49999997 rounds to 0 as C's
    ``roundf`` does, where float32 arithmetic would first round the sum up to 1.0.

    >>> _round_half_away(np.float32([0.49999997, 2.5, -2.5])).tolist()
    [0.0, 3.0, -3.0]
    """
    v = np.asarray(v, dtype=np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def quantize(
    x,
    scale,
    zero_point,
    quant_min: int = -128,
    quant_max: int = 127,
    axis: int | None = None,
    rounding: str = "half_even",
) -> np.ndarray:
    """Integers ``q = clamp(round(x / scale) + zero_point, quant_min, quant_max)``.

    ``rounding="half_even"`` follows PyTorch: ``x`` times the float32 reciprocal of the scale,
    rounded half to even (``np.round``). ``rounding="half_away"`` follows TFLite's reference
    kernels: ``x / scale`` rounded half away from zero. With ``axis`` the scale and zero point
    are 1-D, one per slice along that axis (per-channel quantization). The result has the
    smallest integer dtype that holds the range, so nothing can wrap around.

    >>> quantize([-1.0, 0.0, 0.25, 0.75, 100.0], 0.5, 0).tolist()
    [-2, 0, 0, 2, 127]
    >>> quantize([0.25, 0.75], 0.5, 0, rounding="half_away").tolist()
    [1, 2]
    """
    quant_min, quant_max = check_quant_range(quant_min, quant_max)
    x = as_finite_float32(x, "x")
    scale, zero_point = _broadcast_params(x, scale, zero_point, axis)
    _check_zero_point_in_range(zero_point, quant_min, quant_max)
    if rounding == "half_even":
        # PyTorch multiplies by 1/scale (FBGEMM does so for speed): in float32 this can differ
        # from x / scale in the last bit, which decides some ties.
        with np.errstate(over="ignore"):  # overflow to inf is fine: the clamp below saturates
            q = np.round(x * (np.float32(1) / scale))
    elif rounding == "half_away":
        with np.errstate(over="ignore"):
            q = _round_half_away(x / scale)
    else:
        raise ValueError(f"rounding must be 'half_even' or 'half_away'; got {rounding!r}.")
    # Clamp while still float: a huge x / scale would overflow the integer cast and wrap.
    q = np.clip(q.astype(np.float64) + zero_point, quant_min, quant_max)
    return q.astype(_int_dtype(quant_min, quant_max))


def _check_zero_point_in_range(zero_point: np.ndarray, quant_min: int, quant_max: int) -> None:
    outside = (zero_point < quant_min) | (zero_point > quant_max)
    if np.any(outside):
        raise ValueError(
            f"zero_point {zero_point[outside].ravel()[0]} lies outside [{quant_min}, {quant_max}]: "
            "a zero point is one of the integer codes (choose_qparams clamps it into the range).")


def dequantize(q, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """Real values ``x_hat = (q - zero_point) * scale`` in float32.

    >>> dequantize([-2, 0, 127], 0.5, 0).tolist()
    [-1.0, 0.0, 63.5]
    """
    q = np.asarray(q)
    if q.size == 0:
        raise ValueError("q is empty: pass at least one value.")
    if not np.issubdtype(q.dtype, np.integer):
        raise ValueError(f"q must hold integers (the output of quantize); got dtype {q.dtype}.")
    scale, zero_point = _broadcast_params(q, scale, zero_point, axis)
    return ((q.astype(np.int64) - zero_point).astype(np.float32) * scale).astype(np.float32)


def fake_quantize(
    x,
    scale,
    zero_point,
    quant_min: int = -128,
    quant_max: int = 127,
    axis: int | None = None,
    rounding: str = "half_even",
) -> np.ndarray:
    """``dequantize(quantize(x))``: float values snapped to the quantization grid.

    >>> fake_quantize([0.3, -7.0], 0.5, 0, -4, 3).tolist()
    [0.5, -2.0]
    """
    q = quantize(x, scale, zero_point, quant_min, quant_max, axis, rounding)
    return dequantize(q, scale, zero_point, axis)
