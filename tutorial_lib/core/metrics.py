"""How far a quantized tensor is from the original, and how many bytes it takes."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tutorial_lib.core._validate import as_finite_float32
from tutorial_lib.core.affine import choose_qparams, dequantize, qrange, quantize

__all__ = ["mse", "sqnr_db", "max_abs_error", "size_bytes", "BITS", "ErrorReport",
           "quantization_error", "Spread", "spread", "Interval", "accuracy_interval",
           "Paired", "mcnemar", "compare_accuracy"]

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


# --- What a test set of n images can resolve -------------------------------------------------------

class Interval(NamedTuple):
    """An accuracy with its confidence interval: ``correct`` of ``n`` right, ``low``-``high``."""

    accuracy: float
    low: float
    high: float
    correct: int
    n: int

    def pct(self, digits: int = 1) -> str:
        """``'97.2% (95.0-98.5)'``: the accuracy and its interval, in percent."""
        return (f"{self.accuracy:.{digits}%} ({100 * self.low:.{digits}f}-"
                f"{100 * self.high:.{digits}f})")


def _correct(x, name: str) -> np.ndarray:
    v = np.asarray(x)
    if v.dtype != np.bool_ or v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D boolean array, one entry per test image "
                         f"(True where the model is right), e.g. predictions == labels; got "
                         f"dtype {v.dtype}, shape {v.shape}.")
    return v


def accuracy_interval(correct, confidence: float = 0.95) -> Interval:
    """Accuracy with Wilson's score interval, for ``correct``, one boolean per test image.

    With p = k/n and z the normal quantile of the confidence, the interval is
    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``; unlike p ± z·sqrt(p(1-p)/n) it
    stays inside [0, 1] and keeps its width near 100% (Wilson 1927; Brown, Cai & DasGupta 2001).

    >>> r = accuracy_interval(np.array([True] * 350 + [False] * 10))
    >>> r.pct()
    '97.2% (95.0-98.5)'
    """
    v = _correct(correct, "correct")
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must lie between 0.5 and 1 (0.95 for 95%); got {confidence}.")
    n, k = int(v.size), int(v.sum())
    z = _normal_quantile(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At k = 0 and k = n the bounds are exactly 0 and 1; rounding must not move them past p.
    low = 0.0 if k == 0 else min(p, centre - half)
    high = 1.0 if k == n else max(p, centre + half)
    return Interval(p, low, high, k, n)


def _normal_quantile(q: float) -> float:
    """The standard normal's q-quantile, by bisection on erf (exact to 1e-12 is plenty here)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class Paired(NamedTuple):
    """Two models on the same images: ``only_a`` images only A gets right, ``only_b`` only B,
    and the exact McNemar p-value of the null hypothesis that both are equally accurate."""

    only_a: int
    only_b: int
    p_value: float
    n: int

    @property
    def difference(self) -> float:
        """Accuracy of A minus accuracy of B, as a fraction."""
        return (self.only_a - self.only_b) / self.n

    def significant(self, alpha: float = 0.05) -> bool:
        """True when the test set can tell the two apart at level ``alpha``."""
        return self.p_value < alpha

    def verdict(self, a: str = "A", b: str = "B", alpha: float = 0.05) -> str:
        """One line: the difference in images and points, the p-value, and what it allows."""
        images = self.only_a - self.only_b
        said = ("a real difference" if self.significant(alpha)
                else "too close for this test set to call")
        return (f"{a} - {b}: {images:+d} images ({100 * self.difference:+.2f} points; "
                f"{self.only_a} only {a} gets right, {self.only_b} only {b}), "
                f"McNemar p = {self.p_value:.3g}: {said}")


def mcnemar(correct_a, correct_b) -> Paired:
    """McNemar's exact test of two models scored on the same test images.

    Only the images where the two disagree carry information: b = right for A only, c = right
    for B only. Under "equally accurate" each of those b + c images goes either way with
    probability 1/2, so the two-sided p-value is ``min(1, 2 · P(X <= min(b, c)))`` with
    X ~ Binomial(b + c, 1/2) (McNemar 1947, exact form).

    >>> a = np.array([True] * 95 + [False] * 5)
    >>> b = np.array([True] * 90 + [False] * 10)
    >>> r = mcnemar(a, b)
    >>> (r.only_a, r.only_b, round(r.p_value, 4))
    (5, 0, 0.0625)
    """
    a, b = _correct(correct_a, "correct_a"), _correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"both models must be scored on the same images: {a.size} and {b.size} "
                         "results; pass predictions == labels for each on one test set.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    m = only_a + only_b
    tail = sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1)) / 2.0 ** m
    return Paired(only_a, only_b, min(1.0, 2 * tail), int(a.size))


def compare_accuracy(pred_a, pred_b, labels, names=("A", "B"), alpha: float = 0.05) -> Paired:
    """Print both accuracies with their intervals and McNemar's verdict; return the test.

    ``pred_a`` and ``pred_b`` are class predictions on the same test images, ``labels`` the
    truth.
    """
    labels = np.asarray(labels)
    a, b = np.asarray(pred_a) == labels, np.asarray(pred_b) == labels
    for name, c in zip(names, (a, b), strict=True):
        print(f"{name}: {accuracy_interval(c).pct()}")
    result = mcnemar(a, b)
    print(result.verdict(*names, alpha=alpha))
    return result
