"""Checkers for lesson 04's exercises (integer inference): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tutorial_lib.checks.runner import Case, CheckResult, _reproduces, run_checks

__all__ = ["check_quantize_multiplier", "check_requantize", "check_quantize_bias",
    "check_int8_linear", "check_fold_batchnorm", "check_multiply_by_quantized_multiplier"]


def _requant_single(acc: int, m0: int, shift: int) -> int:
    """(acc * M0 + 2**(30 - shift)) >> (31 - shift) with Python's exact integers."""
    return (acc * m0 + (1 << (30 - shift))) >> (31 - shift)


def check_quantize_multiplier(fn: Callable[[float], tuple[int, int]]) -> CheckResult:
    """``fn(real) -> (M0, shift)`` with ``real ~= M0 * 2**(shift - 31)``, M0 in [2**30, 2**31)."""
    cases = [
        Case((0.5,), (1073741824, 0), "0.5 = 0.5 * 2**0"),
        Case((0.25,), (1073741824, -1), "0.25 = 0.5 * 2**-1"),
        Case((0.75,), (1610612736, 0), "0.75 = 0.75 * 2**0"),
        Case((1.0,), (1073741824, 1), "1.0 = 0.5 * 2**1: frexp's fraction is in [0.5, 1)"),
        Case((0.1,), (1717986918, -3), "0.1 = 0.8 * 2**-3; 0.8 * 2**31 rounds to 1717986918"),
        Case((1 - 1e-9,), (2147483646, 0), "just below 1"),
        Case((2 - 1e-11,), (1073741824, 2), "rounding reaches 2**31: renormalize",
             "if round(fraction * 2**31) == 2**31, halve it and add one to the shift."),
        Case((0.0,), (0, 0), "zero", "a zero multiplier is (0, 0): frexp(0) has no exponent."),
    ]
    return run_checks("quantize_multiplier", fn, cases, arg_names=["real"], hint=(
        "fraction, shift = math.frexp(real); M0 = round(fraction * 2**31) (half away from zero)."))


def _requant_double(acc: int, m0: int, shift: int) -> int:
    """gemmlowp's two roundings (a rounding doubling high multiply, then a rounding right shift),
    written out with Python's exact integers: the answer of a learner who rounds twice."""
    product = acc * (1 << max(shift, 0)) * m0
    nudged = product + ((1 << 30) if product >= 0 else 1 - (1 << 30))
    high = abs(nudged) // (1 << 31) * (1 if nudged >= 0 else -1)  # C division truncates
    right = max(-shift, 0)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def _clamp8(v: int) -> int:
    return min(127, max(-128, v))


def _linear_accs(x, zx, w, b) -> list[list[int]]:
    """sum_k w[j][k] * (x[i][k] - zx) + b[j] for every sample i and output j, exactly."""
    return [[sum(wi * (xi - zx) for xi, wi in zip(row, wrow, strict=True)) + bj
             for wrow, bj in zip(w, b, strict=True)] for row in x]


_SINGLE_ROUNDING = "(acc * M0 + 2**(30 - shift)) >> (31 - shift) in int64"


def _requant_mistakes(accs: Callable[..., np.ndarray], m0_shift_zp: Callable[..., tuple]):
    """Wrong requantizations to recognize, for ``mistakes=``: double rounding, float rounding.

    ``accs(*args)`` gives a case's exact accumulators and ``m0_shift_zp(*args)`` its
    (M0, shift, output zero point)."""
    def answer(rounding):
        def wrong(*args):
            m0, shift, zp = m0_shift_zp(*args)
            return np.vectorize(lambda a: _clamp8(rounding(int(a), m0, shift) + zp))(accs(*args))
        return _reproduces(wrong)

    def half_even(a, m0, shift):
        return int(np.round(a * m0 * 2.0 ** (shift - 31)))

    def half_away(a, m0, shift):
        v = a * m0 * 2.0 ** (shift - 31)
        return int(math.copysign(math.floor(abs(v) + 0.5), v))

    return [
        (answer(_requant_double), "you round twice (a rounding high multiply, then a rounding "
         "shift, as TFLite's default build does): the exercise asks for ONE rounding, "
         f"{_SINGLE_ROUNDING}."),
        (answer(half_even), "np.round rounds .5 ties to even; the integer formula adds "
         "2**(30 - shift) before the shift, so a tie rounds up (toward +inf): -1.5 -> -1, 2.5 -> 3. "
         f"Compute {_SINGLE_ROUNDING}."),
        (answer(half_away), "rounding half away from zero turns -1.5 into -2; the integer formula "
         f"rounds ties up (toward +inf): -1.5 -> -1. Compute {_SINGLE_ROUNDING}."),
    ]


def check_requantize(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(acc, M0, shift, output_zero_point) -> int8``: single-rounding requantization, clamped."""
    m01, s01 = 1717986918, -3  # 0.1
    m3, s3 = 1610612736, -2  # 0.1875
    half = 1 << 30  # M0 of 0.5 * 2**shift
    cases = []
    for accs, m0, shift, zp, about in [
        ([1000, -1000, 0], m01, s01, 0, "M = 0.1, zero point 0"),
        ([1000, -1000, 0], m01, s01, 5, "the zero point is added after the multiply"),
        ([10, 11, -11], m3, s3, 0, "M = 0.1875: 1.875 and 2.0625 round to 2"),
        ([5000, -5000], m01, s01, 0, "500 must clamp to 127, -500 to -128"),
        ([1200, 1300], m01, s01, 10, "120 + 10 clamps at 127"),
        ([1, -3, 5, -5], half, 0, 0, "M = 0.5: ties 0.5, -1.5, 2.5, -2.5 round up (toward +inf)"),
        ([3, -4, 11, -12], half, -2, 0,
         "M = 0.125: 0.375, -0.5, 1.375, -1.5 with ONE rounding give 0, 0, 1, -1"),
    ]:
        expected = np.array([_clamp8(_requant_single(a, m0, shift) + zp) for a in accs])
        hint = ("clamp to [-128, 127] after adding the zero point, then cast to int8."
                if "clamp" in about else "")
        cases.append(Case((np.array(accs, np.int32), m0, shift, zp), expected, about, hint))
    mistakes = _requant_mistakes(lambda acc, *_: np.asarray(acc, np.int64).tolist(),
                                 lambda acc, m0, shift, zp: (m0, shift, zp))
    return run_checks("requantize", fn, cases, dtype=np.int8, mistakes=mistakes, dtype_hint=(
        "the values are right; return np.int8 as the exercise asks: np.clip(...).astype(np.int8) "
        "(int64 arithmetic keeps int64)."),
                      arg_names=["acc", "quantized_multiplier", "shift", "output_zero_point"], hint=(
        f"{_SINGLE_ROUNDING}, then + output_zero_point, clamp to [-128, 127], cast to int8."))


def check_quantize_bias(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(b, input_scale, weight_scale) -> int32 bias``: ``round(b / (S_x * S_w))``."""
    a = np.array
    cases = [
        Case((a([0.5, -0.25]), 0.01, a([0.1, 0.05])), a([500, -500]), "per-channel weight scales"),
        Case((a([0.3]), 0.02, a([0.1])), a([150]), "bias scale is S_x * S_w, not S_w alone",
             "the accumulator counts units of S_x * S_w: divide by that product."),
        Case((a([1.0, 2.0]), 0.5, 0.25), a([8, 16]), "one weight scale for all channels"),
        Case((a([0.0, 1e-6]), 0.1, a([0.1, 0.1])), a([0, 0]), "zero and a tiny bias"),
        Case((a([123.456]), 1e-3, a([1e-3])), a([123456000]), "a large bias still fits in int32",
             "int32 holds +-2.1e9: store the bias as int32, not int8."),
        Case((a([-0.0371]), 0.01, a([0.1])), a([-37]), "negative values round to nearest"),
    ]
    return run_checks("quantize_bias", fn, cases, dtype=np.int32, dtype_hint=(
        "the values are right; the bias is stored as int32: finish with .astype(np.int32) "
        "(np.round keeps floats)."),
                      arg_names=["b", "input_scale", "weight_scale"], hint=(
        "q_b = np.round(b / (input_scale * weight_scale)).astype(np.int32)."))


def check_int8_linear(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(x_q, x_zero_point, w_q, bias_q, M0, shift, y_zero_point) -> int8`` (batch, out)."""
    rng = np.random.default_rng(44)
    cases = []
    specs = [
        ([[10, -3]], -3, [[2, 1], [0, -1]], [5, 0], (1073741824, 0), 1, "a 2x2 layer, M = 0.5"),
        ([[-128, -128, -128]], -128, [[127, 127, 127]], [0], (1073741824, 0), 0,
         "inputs at their zero point are real 0"),
        (rng.integers(-128, 128, (3, 16)).tolist(), 7, rng.integers(-127, 128, (4, 16)).tolist(),
         rng.integers(-500, 500, 4).tolist(), (1717986918, -8), -20, "random 3x16 to 4"),
        (rng.integers(-128, 128, (2, 32)).tolist(), -128, rng.integers(-127, 128, (5, 32)).tolist(),
         [0] * 5, (1610612736, -6), 0, "asymmetric input with zero point -128",
         ),
        ([[1], [-3], [5], [-5]], 0, [[1]], [0], (1 << 30, 0), 0,
         "accumulators 1, -3, 5, -5 times M = 0.5 are ties: they round up (toward +inf)"),
        ([[0, 1], [-3, -3], [4, 5], [-7, -7]], -1, [[1, 1]], [0], (1 << 30, -2), 0,
         "accumulators 3, -4, 11, -12 times M = 0.125: ONE rounding gives 0, 0, 1, -1"),
    ]
    for x, zx, w, b, (m0, shift), zy, about in specs:
        expected = np.array([[_clamp8(_requant_single(acc, m0, shift) + zy) for acc in row]
                             for row in _linear_accs(x, zx, w, b)])
        cases.append(Case((np.array(x, np.int8), zx, np.array(w, np.int8), np.array(b, np.int32),
                           m0, shift, zy), expected, about,
                          "subtract the input zero point in int32 before multiplying: int8 "
                          "arithmetic wraps." if "zero point -128" in about else ""))
    mistakes = _requant_mistakes(
        lambda x, zx, w, b, *_: np.array(_linear_accs(x.tolist(), zx, w.tolist(), b.tolist())),
        lambda x, zx, w, b, m0, shift, zy: (m0, shift, zy))
    return run_checks("int8_linear", fn, cases, dtype=np.int8, mistakes=mistakes, dtype_hint=(
        "the values are right; return np.int8 as the exercise asks: np.clip(...).astype(np.int8)."),
        arg_names=["x_q", "x_zero_point", "w_q", "bias_q", "quantized_multiplier", "shift",
                   "y_zero_point"],
        hint="acc = (x_q - Z_x) @ w_q.T + bias_q in int64, then requantize as in the exercise above.")


def check_fold_batchnorm(fn: Callable[..., tuple[np.ndarray, np.ndarray]]) -> CheckResult:
    """``fn(w, b, gamma, beta, mean, var, eps) -> (w_folded, b_folded)``, channels on axis 0."""
    a = np.array
    w = np.arange(6, dtype=np.float64).reshape(2, 3)
    cases = [
        Case((w, a([0.0, 0.0]), a([1.0, 1.0]), a([0.0, 0.0]), a([0.0, 0.0]), a([1.0, 1.0]), 0.0),
             (w, a([0.0, 0.0])), "identity BatchNorm changes nothing"),
        Case((w, a([1.0, -1.0]), a([2.0, 0.5]), a([0.0, 0.0]), a([0.0, 0.0]), a([1.0, 1.0]), 0.0),
             (w * a([[2.0], [0.5]]), a([2.0, -0.5])), "gamma scales weights and bias per channel"),
        Case((w, a([0.0, 0.0]), a([1.0, 1.0]), a([3.0, -1.0]), a([1.0, 2.0]), a([1.0, 1.0]), 0.0),
             (w, a([2.0, -3.0])), "the mean is subtracted before beta is added",
             "b_folded = (b - mean) * g + beta, with g = gamma / sqrt(var + eps)."),
        Case((w, a([0.0, 0.0]), a([1.0, 1.0]), a([0.0, 0.0]), a([0.0, 0.0]), a([4.0, 0.25]), 0.0),
             (w * a([[0.5], [2.0]]), a([0.0, 0.0])), "divide by the standard deviation, not the variance",
             "g = gamma / sqrt(var + eps): take the square root of the variance."),
        Case((w, a([0.0, 0.0]), a([1.0, 1.0]), a([0.0, 0.0]), a([0.0, 0.0]), a([0.0, 0.0]), 1.0),
             (w, a([0.0, 0.0])), "eps goes under the square root"),
    ]
    return run_checks("fold_batchnorm", fn, cases, rtol=1e-9, atol=1e-12,
                      arg_names=["w", "b", "gamma", "beta", "mean", "var", "eps"], hint=(
        "g = gamma / sqrt(var + eps) per output channel; w_folded = w * g[:, None]; "
        "b_folded = (b - mean) * g + beta."))


def _per_element(rule: Callable[[int, int, int], int]) -> Callable[..., np.ndarray]:
    """``rule(acc, M0, shift)`` applied to every accumulator, M0 and shift per channel (last axis)."""
    def apply(acc, quantized_multiplier, shift):
        acc = np.asarray(acc, np.int64)
        m0 = np.broadcast_to(np.asarray(quantized_multiplier, np.int64), acc.shape)
        sh = np.broadcast_to(np.asarray(shift, np.int64), acc.shape)
        return np.array([rule(int(a), int(m), int(s)) for a, m, s in
                         zip(acc.ravel(), m0.ravel(), sh.ravel(), strict=True)],
                        np.int64).reshape(acc.shape)
    return apply


def _requant_double_floor(acc: int, m0: int, shift: int) -> int:
    """Two roundings, but the high multiply floors (Python's >>) instead of truncating (C's /)."""
    product = acc * (1 << max(shift, 0)) * m0
    high = (product + ((1 << 30) if product >= 0 else 1 - (1 << 30))) >> 31
    right = max(-shift, 0)
    mask = (1 << right) - 1
    return (high >> right) + (1 if (high & mask) > (mask >> 1) + (1 if high < 0 else 0) else 0)


def _requant_double_ties_up(acc: int, m0: int, shift: int) -> int:
    """Two roundings, but the rounding shift sends negative ties up, not away from zero."""
    high = _requant_double(acc * (1 << max(shift, 0)), m0, 0)
    right = max(-shift, 0)
    return (high + ((1 << right) >> 1)) >> right


def check_multiply_by_quantized_multiplier(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(acc, M0, shift) -> integers``: ``acc * M0 * 2**(shift - 31)`` rounded twice, as
    LiteRT's reference convolutions do (gemmlowp's rounding doubling high multiply, then its
    rounding divide by a power of two)."""
    half = 1 << 30  # M0 of 0.5 * 2**shift
    expect = _per_element(_requant_double)
    rows = [
        ([1000, -1000, 0], half, 0, "M = 0.5, no ties", ""),
        ([1, -1, 3, -3], half, 0,
         "M = 0.5: the high multiply rounds its ties up (toward +inf): 0.5, -0.5, 1.5, -1.5 "
         "give 1, 0, 2, -1",
         "SaturatingRoundingDoublingHighMul adds 2**30 to a positive product and 1 - 2**30 to a "
         "negative one, then divides by 2**31 truncating toward zero."),
        ([5, -5, 6, -6, 7], half, -1,
         "M = 0.25, two roundings: 5 -> 2.5 -> 3, then 3 / 2 = 1.5 -> 2 (the exact 1.25 would "
         "give 1)", ""),
        ([-2, -6, 2, 6], half, -1,
         "M = 0.25: -2 gives -1 after the high multiply, and -1 / 2 = -0.5 is a tie of the "
         "shift, rounded away from zero to -1",
         "RoundingDivideByPOT rounds ties away from zero: its threshold is one higher for a "
         "negative x."),
        ([-3, 3, 100], 1518500250, 2, "a positive shift: the accumulator is shifted left first",
         "for shift > 0 multiply acc by 2**shift before the high multiply; only a negative shift "
         "becomes the right shift at the end."),
        ([123456, -98765, 7], 1431655765, -9, "M = 1/1536: a longer right shift", ""),
        ([[10, 20], [-30, 40]], np.array([half, 1717986918]), np.array([-1, -3]),
         "one M0 and shift per output channel (the last axis)", ""),
    ]
    cases = [Case((np.array(acc, np.int32), m0, shift),
                  expect(acc, m0, shift), about, hint) for acc, m0, shift, about, hint in rows]
    mistakes = [
        (_reproduces(_per_element(lambda a, m, s: _requant_single(a, m, s))),
         "you rounded once, with one 64-bit shift: that is the TFLITE_SINGLE_ROUNDING build. "
         "LiteRT's reference kernels round twice: the high multiply rounds, then the shift."),
        (_reproduces(_per_element(lambda a, m, s: int(np.round(a * m * 2.0 ** (s - 31))))),
         "a float multiply rounds only once, and np.round sends ties to even; compute in "
         "integers: the rounding high multiply, then the rounding shift."),
        (_reproduces(_per_element(_requant_double_floor)),
         "Python's >> floors toward -inf, C's division truncates toward zero: for a negative "
         "nudged product, shift its magnitude and restore the sign."),
        (_reproduces(_per_element(_requant_double_ties_up)),
         "your rounding shift sends negative ties up; RoundingDivideByPOT rounds them away from "
         "zero: threshold = (mask >> 1) + (1 if x < 0 else 0)."),
    ]
    return run_checks("multiply_by_quantized_multiplier", fn, cases, dtype=np.integer,
                      mistakes=mistakes, arg_names=["acc", "quantized_multiplier", "shift"],
                      hint=("shift acc left by max(shift, 0); high = SRDHM(acc, M0), the high 32 "
                            "bits of 2 * acc * M0, rounded; then RoundingDivideByPOT(high, "
                            "max(-shift, 0)), ties away from zero."))
