"""How far a quantized tensor is from the original, and how many bytes it takes."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tutorial_lib._validate import as_finite_float32
from tutorial_lib.affine import choose_qparams, dequantize, qrange, quantize

__all__ = ["mse", "sqnr_db", "max_abs_error", "size_bytes", "BITS", "ErrorReport",
           "quantization_error", "Spread", "spread"]

# Bits per stored value of the formats the course compares.
BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "fp8_e4m3": 8, "fp8_e5m2": 8,
        "int8": 8, "int4": 4, "int2": 2}


def _pair(x, x_hat) -> tuple[np.ndarray, np.ndarray]:
    x = as_finite_float32(x, "x").astype(np.float64)
    x_hat = as_finite_float32(x_hat, "x_hat").astype(np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape; got {x.shape} and {x_hat.shape}.")
    return x, x_hat


def mse(x, x_hat) -> float:
    """Mean squared error ``mean((x - x_hat)**2)``.

    >>> mse([1.0, 2.0], [1.0, 2.5])
    0.125
    """
    x, x_hat = _pair(x, x_hat)
    return float(np.mean((x - x_hat) ** 2))


def max_abs_error(x, x_hat) -> float:
    """Largest ``|x - x_hat|``; for values inside the range it is at most ``scale / 2``.

    >>> max_abs_error([1.0, 2.0], [1.25, 2.0])
    0.25
    """
    x, x_hat = _pair(x, x_hat)
    return float(np.max(np.abs(x - x_hat)))


def sqnr_db(x, x_hat) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum x**2 / sum (x - x_hat)**2)`` in dB.

    Each extra bit of a uniform quantizer adds about 6.02 dB. Exact reconstruction gives inf.

    >>> round(sqnr_db([1.0, -1.0], [1.1, -0.9]), 2)
    20.0
    """
    x, x_hat = _pair(x, x_hat)
    noise = float(np.sum((x - x_hat) ** 2))
    signal = float(np.sum(x**2))
    if noise == 0:
        return math.inf
    if signal == 0:
        raise ValueError("x is all zeros: SQNR is undefined; use mse or max_abs_error instead.")
    return 10 * math.log10(signal / noise)


def size_bytes(n_values: int, fmt: str | int) -> int:
    """Bytes to store ``n_values`` numbers of a format (``"int4"``) or a bit width, packed.

    >>> size_bytes(1000, "fp32"), size_bytes(1000, "int8"), size_bytes(1001, "int4")
    (4000, 1000, 501)
    """
    if isinstance(fmt, str):
        if fmt not in BITS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(BITS)} or a bit width.")
        bits = BITS[fmt]
    else:
        bits = int(fmt)
        if bits < 1:
            raise ValueError(f"a bit width must be positive; got {fmt!r}.")
    if int(n_values) < 0:
        raise ValueError(f"n_values must be >= 0; got {n_values!r}.")
    return -(-int(n_values) * bits // 8)  # ceil: a half-filled byte still takes a byte


class ErrorReport(NamedTuple):
    """What quantizing a tensor with given settings costs."""

    bits: int
    symmetric: bool
    scale: float
    zero_point: int
    mse: float
    sqnr_db: float
    max_abs_error: float
    clipped: float  # fraction of values that clamping moved by more than half a step


def quantization_error(x, bits: int = 8, symmetric: bool = False,
                       clip: tuple[float, float] | None = None) -> ErrorReport:
    """Quantize ``x`` per tensor (signed ``bits``, range from min/max or ``clip``) and measure it.

    This is the logic behind lesson 02's explorer widget.

    >>> r = quantization_error([-1.0, 0.0, 0.5, 1.0], bits=2, symmetric=True)
    >>> r.scale, r.zero_point, r.max_abs_error
    (0.6666666865348816, 0, 0.3333333730697632)
    """
    x = as_finite_float32(x, "x")
    lo, hi = (float(x.min()), float(x.max())) if clip is None else clip
    quant_min, quant_max = qrange(bits)
    qp = choose_qparams(lo, hi, quant_min, quant_max, symmetric=symmetric)
    x_hat = dequantize(quantize(x, *qp, quant_min, quant_max), *qp)
    # Rounding moves a value by at most scale/2; anything moved further was clamped.
    clipped = float(np.mean(np.abs(x - x_hat) > qp.scale / 2 * (1 + 1e-6)))
    return ErrorReport(int(bits), bool(symmetric), float(qp.scale), int(qp.zero_point), mse(x, x_hat),
                       sqnr_db(x, x_hat), max_abs_error(x, x_hat), clipped)


class Spread(NamedTuple):
    """A result over several seeds: mean, lowest, highest, and how many runs."""

    mean: float
    low: float
    high: float
    runs: int

    def pct(self, digits: int = 1) -> str:
        """As percentages: ``'98.3% (97.2-98.9)'``, the range over the runs in brackets."""
        return f"{self.mean:.{digits}%} ({100 * self.low:.{digits}f}-{100 * self.high:.{digits}f})"


def spread(values) -> Spread:
    """Mean and range of one result over several seeds (or draws).

    >>> spread([0.972, 0.981, 0.986]).pct()
    '98.0% (97.2-98.6)'
    """
    v = np.asarray(list(values), dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must be a non-empty list of finite numbers; got {values!r}.")
    return Spread(float(v.mean()), float(v.min()), float(v.max()), int(v.size))
