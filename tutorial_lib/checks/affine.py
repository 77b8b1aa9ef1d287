"""Checkers for lesson 02's exercises (affine quantization): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tutorial_lib.checks.runner import Case, CheckResult, _reproduces, run_checks

__all__ = ["check_choose_qparams", "check_quantize", "check_dequantize", "check_sqnr_db",
    "check_symmetric_scale"]


def check_choose_qparams(fn: Callable[[float, float, int, int], tuple[float, int]]) -> CheckResult:
    """``fn(min_val, max_val, quant_min, quant_max) -> (scale, zero_point)``, asymmetric."""
    eps = float(np.finfo(np.float32).eps)
    cases = [
        Case((-1.0, 3.0, 0, 255), (4 / 255, 64), "uint8; -1/scale = -63.75 must round to -64",
             "zero_point = quant_min - round(min_val / scale); int() truncates -63.75 to -63."),
        Case((0.0, 1.0, -128, 127), (1 / 255, -128), "int8, range starting at 0"),
        Case((2.0, 5.0, 0, 255), (5 / 255, 0), "all positive: the range is widened to include 0",
             "first set min_val = min(min_val, 0) and max_val = max(max_val, 0), so 0.0 is exact."),
        Case((-4.0, -1.0, -128, 127), (4 / 255, 127), "all negative: widened to [-4, 0]"),
        Case((-6.0, 2.0, -128, 127), (8 / 255, 63), "int8, -6/scale = -191.25"),
        Case((-1.5, 6.0, 0, 15), (0.5, 3), "uint4"),
        Case((0.0, 0.0, -128, 127), (eps, -128), "a constant zero tensor: scale floored at eps",
             "max - min = 0 would give scale 0 and a division by zero: use max(scale, "
             "np.finfo(np.float32).eps)."),
    ]
    return run_checks("choose_qparams", fn, cases, rtol=1e-6, dtype=(None, int), dtype_hint=(
        "the zero point is stored as an integer: return int(zero_point) (np.round returns a "
        "float)."), arg_names=["min_val", "max_val", "quant_min", "quant_max"], hint=(
        "scale = (max_val - min_val) / (quant_max - quant_min) after widening the range to "
        "include 0; zero_point = quant_min - round(min_val / scale), clamped to the range."))


def check_quantize(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(x, scale, zero_point, quant_min, quant_max) -> q``, round half to even, clamped."""
    a = np.array
    cases = [
        Case((a([0.0, 0.5, -0.5, 1.0], np.float32), 0.5, 0, -128, 127), a([0, 1, -1, 2]),
             "plain values on the grid"),
        Case((a([0.25, 0.75, -0.25, 1.25], np.float32), 0.5, 0, -128, 127), a([0, 2, 0, 2]),
             ".5 ties round to even, as np.round and PyTorch do",
             "use np.round (half to even): astype(int) cuts 1.5 down to 1, floor(x + 0.5) rounds "
             "0.5 up to 1."),
        Case((a([0.29, -0.29], np.float32), 0.1, 0, -128, 127), a([3, -3]),
             "2.9 must round to 3, not truncate to 2",
             "round before casting: astype(int) and int() cut toward zero."),
        Case((a([0.0, 1.0], np.float32), 0.1, 10, 0, 255), a([10, 20]),
             "the zero point shifts every value; 0.0 maps exactly to it"),
        Case((a([1.0, 2.0], np.float32), 0.01, 0, -128, 127), a([100, 127]),
             "200 must clamp to 127, not wrap to -56",
             "clamp with np.clip(q, quant_min, quant_max) before any cast to int8."),
        Case((a([-1000.0, 1000.0], np.float32), 0.5, 0, -128, 127), a([-128, 127]),
             "both ends clamped"),
        Case((a([-1.0, 0.3, 1.0], np.float32), 0.125, 0, -8, 7), a([-8, 2, 7]),
             "4-bit signed range [-8, 7]"),
        Case((a([-1.0, 2.54], np.float32), 0.02, 128, 0, 255), a([78, 255]),
             "uint8 with zero point 128"),
    ]
    def wrong(rounding, clamp=True, zero_point=True):
        def answer(x, scale, zp, quant_min, quant_max):
            q = rounding(x.astype(np.float64) / scale) + (zp if zero_point else 0)
            return np.clip(q, quant_min, quant_max) if clamp else (q.astype(np.int64) + 128) % 256 - 128
        return _reproduces(answer)

    half_up = lambda v: np.floor(v + 0.5)  # noqa: E731
    mistakes = [
        (wrong(np.trunc), "round before casting: astype(int) and int() cut toward zero, so 2.9 "
                          "becomes 2; use np.round(x / scale)."),
        (wrong(half_up), "floor(v + 0.5) rounds every .5 up; np.round rounds .5 ties to even "
                         "(0.5 -> 0, 1.5 -> 2, -0.5 -> 0), as PyTorch does."),
        (wrong(np.round, clamp=False), "the value wrapped around instead of saturating: "
                                       "np.clip(q, quant_min, quant_max) before any cast to int8."),
        (wrong(np.round, zero_point=False), "add zero_point after rounding: "
                                            "q = round(x / scale) + zero_point."),
    ]
    return run_checks("quantize", fn, cases, dtype=np.integer, mistakes=mistakes, dtype_hint=(
        "the values are right, but q must be integers: finish with "
        ".astype(np.int32) (np.round and np.clip keep floats)."),
                      arg_names=["x", "scale", "zero_point", "quant_min", "quant_max"], hint=(
        "q = clip(round(x / scale) + zero_point, quant_min, quant_max), rounding with np.round."))


def check_dequantize(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(q, scale, zero_point) -> x_hat``: ``(q - zero_point) * scale`` as floats."""
    a = np.array
    cases = [
        Case((a([0, 1, -1]), 0.5, 0), a([0.0, 0.5, -0.5]), "zero point 0"),
        Case((a([10, 20]), 0.1, 10), a([0.0, 1.0]), "the zero point maps back to 0.0"),
        Case((a([-128, 127]), 1 / 255, -128), a([0.0, 1.0]), "int8 covering [0, 1]"),
        Case((a([-128, 127], np.int8), 0.5, 10), a([-69.0, 58.5]),
             "int8 input: q - zero_point must not overflow int8",
             "in int8 arithmetic -128 - 10 wraps to 118: cast q to int32 before subtracting."),
        Case((a([0, 255], np.uint8), 0.02, 128), a([-2.56, 2.54]),
             "uint8 input: 0 - 128 must not wrap to 128",
             "in uint8 arithmetic 0 - 128 wraps to 128: cast q to int32 before subtracting."),
    ]
    return run_checks("dequantize", fn, cases, rtol=1e-6, atol=1e-7, dtype=np.floating,
                      dtype_hint="return floats: multiply by the scale after subtracting.",
                      arg_names=["q", "scale", "zero_point"], hint=(
        "x_hat = (q.astype(np.int32) - zero_point) * scale."))


def check_sqnr_db(fn: Callable[[np.ndarray, np.ndarray], float]) -> CheckResult:
    """``fn(x, x_hat) -> float``: signal-to-quantization-noise ratio in dB."""
    a = np.array
    ramp = np.linspace(-1, 1, 101)
    ramp_hat = np.round(ramp * 8) / 8
    ramp_db = 10 * math.log10(np.sum(ramp**2) / np.sum((ramp - ramp_hat) ** 2))
    cases = [
        Case((a([1.0, -1.0]), a([1.1, -0.9])), 20.0, "noise power 1% of signal power: 20 dB"),
        Case((a([3.0, 4.0]), a([3.0, 4.3])), 10 * math.log10(25 / 0.09), "one error of 0.3"),
        Case((a([2.0, 2.0]), a([1.0, 1.0])), 10 * math.log10(8 / 2), "a power ratio takes 10 log10",
             "x**2 is already a power: 10 * log10 of the ratio (20 * log10 is for amplitudes)."),
        Case((ramp, ramp_hat), ramp_db, "a ramp rounded to steps of 1/8"),
        Case((a([1.0, 2.0]), a([1.0, 2.0])), math.inf, "no error: infinite SQNR",
             "when the noise is exactly 0 return math.inf (avoid the division by zero)."),
    ]
    return run_checks("sqnr_db", fn, cases, rtol=1e-6, arg_names=["x", "x_hat"], hint=(
        "SQNR = 10 * log10(sum(x**2) / sum((x - x_hat)**2))."))


def check_symmetric_scale(fn: Callable[[np.ndarray, int, int], float]) -> CheckResult:
    """``fn(x, quant_min, quant_max) -> scale``: ``max|x| / ((quant_max - quant_min) / 2)``."""
    eps = float(np.finfo(np.float32).eps)
    x = np.array([-0.5, 0.1, 2.0], np.float32)  # m = 2
    cases = [
        Case((x, -128, 127), 2 / 127.5, "int8, full range [-128, 127]: m / 127.5, as PyTorch"),
        Case((x, -127, 127), 2 / 127, "int8, narrow range [-127, 127]: m / 127, TFLite's weights"),
        Case((x, -8, 7), 2 / 7.5, "4 bits, full range [-8, 7]: m / 7.5"),
        Case((x, -7, 7), 2 / 7, "4 bits, narrow range [-7, 7]: m / 7"),
        Case((np.array([-3.0, 1.0], np.float32), -128, 127), 3 / 127.5,
             "the largest magnitude is a negative value: m = 3",
             "m is the largest |x|, so take np.abs(x).max(), not x.max()."),
        Case((np.zeros(3, np.float32), -128, 127), eps, "all zeros: scale floored at eps",
             "m = 0 would give scale 0: use max(scale, np.finfo(np.float32).eps)."),
        Case((x, 0, 255), 2 / 127.5, "unsigned [0, 255]: the same width as int8, so m / 127.5"),
    ]

    def largest(x):
        return float(np.max(np.abs(x)))

    mistakes = [
        (_reproduces(lambda x, qmin, qmax: largest(x) / qmax, rtol=1e-6),
         "you divided by quant_max: that is right only on a narrow range, where quant_max = "
         "(quant_max - quant_min) / 2. Divide by half the width of the integer range."),
        (_reproduces(lambda x, qmin, qmax: largest(x) / (qmax - qmin), rtol=1e-6),
         "you divided by the whole width: the range [-m, m] is 2m wide, so "
         "scale = 2m / (quant_max - quant_min) = m / ((quant_max - quant_min) / 2)."),
        (_reproduces(lambda x, qmin, qmax: float(np.max(x)) / ((qmax - qmin) / 2), rtol=1e-6),
         "m is the largest magnitude, max(|x|): a negative value can be the largest."),
    ]
    return run_checks("symmetric_scale", fn, cases, rtol=1e-6,
                      arg_names=["x", "quant_min", "quant_max"], mistakes=mistakes, hint=(
                          "scale = max(|x|) / ((quant_max - quant_min) / 2), floored at "
                          "np.finfo(np.float32).eps."))
