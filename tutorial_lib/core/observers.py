"""Observers: watch the values a tensor takes during calibration, then choose its range.

An observer is fed batch after batch with ``observe(x)`` and finally asked for
``calculate_qparams()``, which returns a :class:`tl.QParams` from the range it settled on
(``clipping_range()``). The names follow ``torch.ao.quantization``: the min-max and moving-average
observers give the same scale and zero point as PyTorch's, bit for bit. They differ only in
*which* range they pick:

- :class:`MinMaxObserver`: the smallest and largest value ever seen;
- :class:`MovingAverageMinMaxObserver`: an exponential moving average of each batch's min and max;
- :class:`PercentileObserver`: the ``p``-th and ``(100 - p)``-th percentiles, dropping outliers;
- :class:`MSEObserver`: the range, shrunk from min-max, that minimizes the fake-quantization MSE;
- :class:`EntropyObserver`: the threshold that minimizes the KL divergence between the
  histogram and its quantized version (TensorRT's calibration).

Values outside the chosen range are clamped: a narrower range trades a large error on a few
outliers for a smaller step, and so a smaller rounding error, on everything else.
"""

from __future__ import annotations

import numbers

import numpy as np

from tutorial_lib.core._validate import as_finite_float32, check_quant_range
from tutorial_lib.core.affine import QParams, choose_qparams

__all__ = [
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PercentileObserver",
    "MSEObserver",
    "EntropyObserver",
    "kl_divergence",
    "entropy_threshold",
]


def _check_axis(axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"axis must be an integer (the channel axis) or None; got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for an array with {ndim} dimensions.")
    return int(axis) % ndim


def _channels_first(x: np.ndarray, axis: int) -> np.ndarray:
    """``x`` as a 2-D array (channels, values of that channel)."""
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


class _Observer:
    """What every observer shares: the integer range, the scheme and the final qparams."""

    per_channel_ok = False

    def __init__(self, quant_min: int = -128, quant_max: int = 127, symmetric: bool = False,
                 axis: int | None = None) -> None:
        self.quant_min, self.quant_max = check_quant_range(quant_min, quant_max)
        self.symmetric = bool(symmetric)
        if axis is not None and not self.per_channel_ok:
            raise ValueError(
                f"{type(self).__name__} is per tensor only (axis=None); for one range per "
                "channel use MinMaxObserver, MovingAverageMinMaxObserver or PercentileObserver."
            )
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, numbers.Integral)):
            raise ValueError(f"axis must be an integer (the channel axis) or None; got {axis!r}.")
        self.axis = axis
        self._n_channels: int | None = None

    def _check(self, x) -> np.ndarray:
        """``x`` as finite float32; per channel, as a (channels, values) array."""
        x = as_finite_float32(x, "x")
        if self.axis is None:
            return x.ravel()
        if x.ndim == 0:
            raise ValueError("per-channel observers need an array with a channel axis, not a scalar.")
        axis = _check_axis(self.axis, x.ndim)
        if self._n_channels is not None and x.shape[axis] != self._n_channels:
            raise ValueError(
                f"this observer has seen {self._n_channels} channels along axis {self.axis}; "
                f"got {x.shape[axis]}. Use one observer per tensor."
            )
        self._n_channels = x.shape[axis]
        return _channels_first(x, axis)

    def _not_ready(self) -> ValueError:
        return ValueError(
            f"{type(self).__name__} has not observed anything yet: call observe(x) on some "
            "calibration data before calculate_qparams()."
        )

    def clipping_range(self) -> tuple:
        """The range ``(min_val, max_val)`` this observer chose; values outside it are clamped.

        With ``symmetric=True`` the quantization grid covers ``[-m, m]``, where
        ``m = max(|min_val|, |max_val|)``, as ``tl.choose_qparams`` does.
        """
        raise NotImplementedError

    def calculate_qparams(self) -> QParams:
        """Scale and zero point for :meth:`clipping_range` (``tl.choose_qparams``)."""
        min_val, max_val = self.clipping_range()
        return choose_qparams(min_val, max_val, self.quant_min, self.quant_max, self.symmetric)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(quant_min={self.quant_min}, quant_max={self.quant_max}, "
                f"symmetric={self.symmetric}, axis={self.axis})")


class MinMaxObserver(_Observer):
    """The range ``[min, max]`` of everything observed, per tensor or per channel (``axis``).

    Equal, bit for bit, to ``torch.ao.quantization.MinMaxObserver`` (``axis=None``) and
    ``PerChannelMinMaxObserver`` (``ch_axis=axis``) with the same range and scheme.

    >>> obs = MinMaxObserver(0, 255)
    >>> obs.observe([0.5, 2.0]).observe([-1.0, 1.0]).clipping_range()
    (-1.0, 2.0)
    >>> obs.calculate_qparams()
    QParams(scale=0.0117647061124444, zero_point=85)
    >>> w = [[0.5, -1.0], [0.25, 0.125]]  # two output channels
    >>> MinMaxObserver(-127, 127, symmetric=True, axis=0).observe(w).calculate_qparams().scale.tolist()
    [0.007874015718698502, 0.0019685039296746254]
    """

    per_channel_ok = True

    def __init__(self, quant_min: int = -128, quant_max: int = 127, symmetric: bool = False,
                 axis: int | None = None) -> None:
        super().__init__(quant_min, quant_max, symmetric, axis)
        self.min_val = self.max_val = None

    def _batch_min_max(self, x) -> tuple[np.ndarray, np.ndarray]:
        x = self._check(x)
        if self.axis is None:
            return x.min(), x.max()
        return x.min(axis=1), x.max(axis=1)

    def observe(self, x) -> MinMaxObserver:
        """Widen the running range to include the values of ``x``; returns the observer."""
        lo, hi = self._batch_min_max(x)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val, self.max_val = np.minimum(self.min_val, lo), np.maximum(self.max_val, hi)
        return self

    def clipping_range(self) -> tuple:
        if self.min_val is None:
            raise self._not_ready()
        if self.axis is None:
            return float(self.min_val), float(self.max_val)
        return self.min_val.copy(), self.max_val.copy()


class MovingAverageMinMaxObserver(MinMaxObserver):
    """An exponential moving average of each batch's min and max.

    The first batch sets the range; each later batch moves it a fraction ``c`` of the way:
    ``min_val += c * (batch_min - min_val)``, likewise ``max_val``, in float32 as
    ``torch.ao.quantization.MovingAverageMinMaxObserver`` (default ``c = 0.01``) and its
    per-channel twin. One extreme batch moves the range only a little, so the result sits
    inside the min-max range; with few batches it stays close to the first one.

    >>> obs = MovingAverageMinMaxObserver(averaging_constant=0.5)
    >>> obs.observe([0.0, 1.0]).observe([0.0, 3.0]).clipping_range()
    (0.0, 2.0)
    """

    def __init__(self, averaging_constant: float = 0.01, quant_min: int = -128,
                 quant_max: int = 127, symmetric: bool = False, axis: int | None = None) -> None:
        if (isinstance(averaging_constant, bool)
                or not isinstance(averaging_constant, numbers.Real)
                or not 0 < averaging_constant <= 1):
            raise ValueError(
                f"averaging_constant must be a number in (0, 1], e.g. 0.01 as PyTorch; got "
                f"{averaging_constant!r}."
            )
        super().__init__(quant_min, quant_max, symmetric, axis)
        self.averaging_constant = float(averaging_constant)

    def observe(self, x) -> MovingAverageMinMaxObserver:
        """Move the range towards this batch's min and max; returns the observer."""
        lo, hi = self._batch_min_max(x)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            # float32 throughout, as PyTorch's float32 buffers with a float32 scalar
            c = np.float32(self.averaging_constant)
            self.min_val = (self.min_val + c * (lo - self.min_val)).astype(np.float32)
            self.max_val = (self.max_val + c * (hi - self.max_val)).astype(np.float32)
        return self

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", averaging_constant={self.averaging_constant})"


class _KeepsValues(_Observer):
    """An observer that needs the values themselves (percentiles, MSE, histograms).

    It keeps a float32 copy of everything observed: about 4 MB per million values, fine for a
    calibration set of a few thousand images; production tools keep a histogram instead.
    """

    def __init__(self, quant_min: int = -128, quant_max: int = 127, symmetric: bool = False,
                 axis: int | None = None) -> None:
        super().__init__(quant_min, quant_max, symmetric, axis)
        self._values: list[np.ndarray] = []

    def observe(self, x):
        """Keep the values of ``x`` for :meth:`calculate_qparams`; returns the observer."""
        self._values.append(self._check(x).copy())
        return self

    def values(self) -> np.ndarray:
        """Everything observed so far: 1-D, or (channels, values) per channel."""
        if not self._values:
            raise self._not_ready()
        if len(self._values) > 1:  # concatenate once, keep the result
            self._values = [np.concatenate(self._values, axis=-1)]
        return self._values[0]


class PercentileObserver(_KeepsValues):
    """The range from the ``(100 - p)``-th to the ``p``-th percentile of everything observed.

    The ``(100 - p)`` % smallest and largest values are treated as outliers and will be clamped.
    Percentiles interpolate linearly between values, as ``np.percentile``; ``percentile=100``
    gives the min-max range. Per channel with ``axis``.

    >>> x = np.arange(101.0)  # 0, 1, ..., 100
    >>> PercentileObserver(99.0).observe(x).clipping_range()
    (1.0, 99.0)
    """

    per_channel_ok = True

    def __init__(self, percentile: float = 99.99, quant_min: int = -128, quant_max: int = 127,
                 symmetric: bool = False, axis: int | None = None) -> None:
        if (isinstance(percentile, bool) or not isinstance(percentile, numbers.Real)
                or not 50 < percentile <= 100):
            raise ValueError(
                f"percentile must be a number in (50, 100], such as 99.9 or 99.99 (100 keeps the "
                f"min-max range); got {percentile!r}."
            )
        super().__init__(quant_min, quant_max, symmetric, axis)
        self.percentile = float(percentile)

    def clipping_range(self) -> tuple:
        x = self.values()
        lo, hi = np.percentile(x, [100 - self.percentile, self.percentile], axis=-1)
        lo, hi = lo.astype(np.float32), hi.astype(np.float32)
        if self.axis is None:
            return float(lo), float(hi)
        return lo, hi

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.percentile:g}, " + super().__repr__().split("(", 1)[1]


def _fake_quant_sse(x: np.ndarray, min_val: float, max_val: float, quant_min: int,
                    quant_max: int, symmetric: bool, buf: np.ndarray) -> float:
    """Sum of squared errors of ``tl.fake_quantize(x)`` with the qparams of the range.

    Same float32 arithmetic as ``tl.fake_quantize``, written in place to stay fast:
    ``clip(round(x / S) + Z, qmin, qmax) - Z`` equals ``clip(round(x / S), qmin - Z, qmax - Z)``.
    """
    scale, zero_point = choose_qparams(min_val, max_val, quant_min, quant_max, symmetric)
    np.multiply(x, np.float32(1) / np.float32(scale), out=buf)
    np.round(buf, out=buf)
    np.clip(buf, quant_min - zero_point, quant_max - zero_point, out=buf)
    np.multiply(buf, np.float32(scale), out=buf)
    np.subtract(x, buf, out=buf)
    np.square(buf, out=buf)
    return float(buf.sum(dtype=np.float64))


class MSEObserver(_KeepsValues):
    """The clipping range with the smallest fake-quantization MSE on the observed values.

    A grid search: the min-max range (widened to include 0) is shrunk towards 0 by each fraction
    ``k / n_grid``, ``k = 1 .. n_grid``; every candidate quantizes all observed values and the
    one with the lowest mean squared error wins (ties go to the wider range). The full range is
    a candidate, so on the data it saw this observer is never worse than min-max. For normal
    data at 4 bits it clips near 2.5 standard deviations, the value Banner et al. (2019) derive.

    >>> x = np.random.default_rng(0).normal(0, 1, 10_000)  # min -3.9, max 3.5
    >>> obs = MSEObserver(quant_min=-8, quant_max=7, symmetric=True).observe(x)
    >>> [round(v, 2) for v in obs.clipping_range()]
    [-2.46, 2.19]

    With ``symmetric=True`` the grid covers ``[-m, m]``, ``m = max(|min_val|, |max_val|)``.
    """

    def __init__(self, n_grid: int = 100, quant_min: int = -128, quant_max: int = 127,
                 symmetric: bool = False, axis: None = None) -> None:
        if isinstance(n_grid, bool) or not isinstance(n_grid, numbers.Integral) or n_grid < 1:
            raise ValueError(f"n_grid must be a positive integer, e.g. 100; got {n_grid!r}.")
        super().__init__(quant_min, quant_max, symmetric, axis)
        self.n_grid = int(n_grid)

    def search(self) -> tuple[np.ndarray, np.ndarray]:
        """The fractions tried and the MSE of each, for plotting the search."""
        x = self.values()
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        fractions = np.arange(1, self.n_grid + 1) / self.n_grid
        # 0.0 is always stored exactly, so the zeros (half of a ReLU output) cost no error
        nonzero = x[x != 0]
        buf = np.empty_like(nonzero)
        errors = np.array([
            _fake_quant_sse(nonzero, f * lo, f * hi, self.quant_min, self.quant_max,
                            self.symmetric, buf)
            for f in fractions
        ]) / x.size
        return fractions, errors

    def clipping_range(self) -> tuple:
        x = self.values()
        fractions, errors = self.search()
        best = len(errors) - 1 - int(np.argmin(errors[::-1]))  # ties: the widest range
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        f = fractions[best]
        return float(np.float32(f * lo)), float(np.float32(f * hi))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """``sum p log(p / q)`` over ``p > 0`` after normalizing both; inf where q is 0 and p is not.

    >>> round(kl_divergence(np.array([1.0, 1.0]), np.array([1.0, 3.0])), 4)
    0.1438
    """
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    if np.any(q[mask] == 0):
        return float("inf")
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def entropy_threshold(hist: np.ndarray, levels: int = 128, start_bin: int = 128) -> int:
    """How many histogram bins to keep: the count ``i`` with the smallest KL divergence.

    For each ``i`` from ``start_bin`` to ``len(hist)`` (TensorRT's calibration, Migacz 2017):
    the reference ``P`` is the first ``i`` bins with every count beyond them added to bin
    ``i - 1`` (what clamping does); the candidate ``Q`` merges those ``i`` bins into ``levels``
    chunks and spreads each chunk's count evenly over its non-empty bins (what quantizing to
    ``levels`` values keeps). Returns the ``i`` minimizing ``KL(P || Q)`` (the largest on ties).

    Bin 0 first takes the count of bin 1, as in NVIDIA's pytorch-quantization: after a ReLU,
    bin 0 holds a spike of exact zeros, which quantization stores exactly, but which would
    otherwise dominate the divergence and push the threshold down to ``start_bin``.

    >>> hist = np.array([8, 4, 2, 1, 0, 0, 0, 1])  # a tail and one far outlier
    >>> entropy_threshold(hist, levels=2, start_bin=2)
    4
    """
    hist = np.array(hist, dtype=np.float64)
    n = len(hist)
    if hist.ndim != 1 or not 1 <= start_bin <= n or levels < 1:
        raise ValueError(
            f"need a 1-D histogram, 1 <= start_bin <= len(hist) and levels >= 1; got "
            f"start_bin={start_bin}, levels={levels} for {n} bins."
        )
    if n > 1:
        hist[0] = hist[1]
    total = hist.sum()
    if total == 0:
        return n
    # All candidates at once. With P and Q unnormalized, KL = (sum P log P - sum P log Q) / |P|
    # - log |P| + log |Q|, and Q is constant on each chunk: sums over chunks, not bins.
    i = np.arange(start_bin, n + 1)
    cum = np.concatenate([[0.0], np.cumsum(hist)])
    cum_nonzero = np.concatenate([[0.0], np.cumsum(hist > 0)])
    cum_hlogh = np.concatenate([[0.0], np.cumsum(_xlogx(hist))])
    # chunk c holds bins [ceil(c i / L), ceil((c + 1) i / L)), i.e. bin b is in chunk b L // i
    edges = -(-np.arange(levels + 1)[None, :] * i[:, None] // levels)
    counts = np.diff(cum[edges], axis=1)
    used = np.diff(cum_nonzero[edges], axis=1)
    per_bin = np.divide(counts, used, out=np.ones_like(counts), where=used > 0)
    outliers = total - cum[i]  # clamped into the last kept bin
    last = hist[i - 1]
    p_log_p = cum_hlogh[i - 1] + _xlogx(last + outliers)
    last_chunk = per_bin[np.arange(len(i)), (i - 1) * levels // i]
    p_log_q = np.sum(counts * np.log(per_bin), axis=1) + outliers * np.log(last_chunk)
    with np.errstate(divide="ignore"):
        kl = (p_log_p - p_log_q) / total - np.log(total) + np.log(cum[i])
    kl[(last == 0) & (outliers > 0)] = np.inf  # P has mass where Q has none
    return int(i[len(i) - 1 - np.argmin(kl[::-1])])


def _xlogx(v: np.ndarray) -> np.ndarray:
    """``v log v`` with ``0 log 0 = 0``."""
    return np.where(v > 0, v * np.log(np.where(v > 0, v, 1.0)), 0.0)


class EntropyObserver(_KeepsValues):
    """The clipping threshold that minimizes the KL divergence, as TensorRT's int8 calibration.

    Follows S. Migacz, "8-bit Inference with TensorRT" (GTC 2017): a ``bins``-bin histogram
    (2048) of ``|x|`` from 0 to ``max |x|``, candidate thresholds from ``start_bin`` (128) bins
    up, and the one whose quantized distribution loses the least information wins
    (:func:`entropy_threshold`). Details follow NVIDIA's open-source pytorch-quantization:
    ``levels``, the number of integer values that cover ``[0, T]``, is 128 for int8 when the
    data take both signs or the scheme is symmetric (TensorRT's case) and 256 for one-sided
    data such as ReLU outputs with an asymmetric range; ``T`` is the upper edge of the last
    kept bin (the slides use its middle). The range is ``[max(min, -T), min(max, T)]``.

    >>> x = np.concatenate([np.random.default_rng(0).laplace(0, 1, 100_000), [80.0]])
    >>> [round(v, 2) for v in EntropyObserver(symmetric=True).observe(x).clipping_range()]
    [-10.27, 10.27]

    The outlier at 80 and the most negative values (down to -11.9) are clipped.
    """

    def __init__(self, bins: int = 2048, quant_min: int = -128, quant_max: int = 127,
                 symmetric: bool = False, start_bin: int = 128, axis: None = None) -> None:
        super().__init__(quant_min, quant_max, symmetric, axis)
        for name, v in (("bins", bins), ("start_bin", start_bin)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}.")
        if start_bin > bins:
            raise ValueError(
                f"start_bin ({start_bin}) must not exceed bins ({bins}); TensorRT uses 2048 bins "
                "and starts at 128."
            )
        self.bins, self.start_bin = int(bins), int(start_bin)

    def levels(self) -> int:
        """Integer values available for ``[0, T]``: all for one-sided data, else half."""
        x = self.values()
        n_levels = self.quant_max - self.quant_min + 1
        one_sided = float(x.min()) >= 0 and not self.symmetric
        return n_levels if one_sided else n_levels // 2

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Counts and bin edges of ``|x|`` over ``[0, max |x|]``."""
        a = np.abs(self.values())
        return np.histogram(a, bins=self.bins, range=(0.0, float(a.max()) or 1.0))

    def clipping_range(self) -> tuple:
        x = self.values()
        lo, hi = float(x.min()), float(x.max())
        if max(-lo, hi) == 0:
            return 0.0, 0.0
        hist, edges = self.histogram()
        t = float(np.float32(edges[entropy_threshold(hist, self.levels(), self.start_bin)]))
        return max(lo, -t), min(hi, t)
