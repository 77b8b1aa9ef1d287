"""Checkers for the exercises: ``tl.checks.check_<name>(your_function)``.

Each checker calls the learner's function on fixed golden cases (boundaries, a clipped value,
exact zero, .5 ties, per-channel shapes), prints one line when all pass, and otherwise the
first wrong case: its input, the expected and actual values, the largest difference and a hint.
It never lets a traceback reach the learner; an exercise that still raises
``NotImplementedError`` is reported as not implemented yet, and the notebook runs on.

Expected values come from numpy casts and hand arithmetic, not from ``tutorial_lib``, so
the library's own functions are checked by the same cases (see tests/test_checks.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Case", "CheckResult", "run_checks",
    "check_fp32_fields", "check_fp32_value", "check_fp16_below", "check_model_bytes",
    "check_choose_qparams", "check_quantize", "check_dequantize", "check_sqnr_db",
    "check_symmetric_scales",
    "check_quantize_multiplier", "check_requantize", "check_quantize_bias", "check_int8_linear",
    "check_fold_batchnorm",
]


@dataclass(frozen=True)
class Case:
    """One golden case: the arguments, the expected answer and what the case is about."""

    args: tuple
    expected: Any
    about: str
    hint: str = ""


@dataclass
class CheckResult:
    """Outcome of a check. Truthy when every case passed; prints nothing more in Jupyter."""

    name: str
    passed: int
    total: int
    implemented: bool = True
    lines: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.implemented and self.passed == self.total

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def _ipython_display_(self) -> None:
        # The report is printed by the checker; showing the object again would repeat it.
        pass


def _fmt(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return np.array2string(v, precision=8, separator=", ", threshold=20)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return repr(v)


def _as_values(v: Any) -> list[np.ndarray]:
    """Flatten an answer (number, array or tuple of them) into a list of float64 arrays."""
    parts = v if isinstance(v, tuple | list) and not _is_number_list(v) else (v,)
    return [np.asarray(p, dtype=np.float64) for p in parts]


def _is_number_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, int | float) for x in v)


def _compare(expected: Any, actual: Any, rtol: float, atol: float) -> tuple[bool, float]:
    """Whether ``actual`` matches ``expected`` (NaN equals NaN), and the largest difference."""
    try:
        exp, act = _as_values(expected), _as_values(actual)
    except (TypeError, ValueError):
        return False, math.nan
    if len(exp) != len(act) or any(e.shape != a.shape for e, a in zip(exp, act, strict=True)):
        return False, math.nan
    ok, worst = True, 0.0
    for e, a in zip(exp, act, strict=True):
        same = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
        same |= (e == a)  # inf == inf
        ok &= bool(np.all(same))
        finite = np.isfinite(e) & np.isfinite(a)
        if np.any(finite):
            worst = max(worst, float(np.max(np.abs(e[finite] - a[finite]))))
    return ok, worst


def run_checks(
    name: str,
    fn: Callable,
    cases: Sequence[Case],
    hint: str,
    rtol: float = 0.0,
    atol: float = 0.0,
    arg_names: Sequence[str] = (),
) -> CheckResult:
    """Run ``fn`` on every case, print a one-line summary or the first failure, return the result."""
    result = CheckResult(name, 0, len(cases))
    first_failure: list[str] | None = None
    for case in cases:
        shown = ", ".join(
            f"{n}={_fmt(a)}" if n else _fmt(a)
            for n, a in zip(list(arg_names) + [""] * len(case.args), case.args, strict=False)
        )
        try:
            args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in case.args)
            actual = fn(*args)
        except NotImplementedError:
            result.implemented = False
            result.lines = [f"… {name}: not implemented yet (replace the `raise NotImplementedError` "
                            "line with your code, then run this cell again)"]
            print(result)
            return result
        except Exception as err:  # the learner's bug: report it, no traceback
            ok, diff, actual = False, math.nan, f"raised {type(err).__name__}: {err}"
        else:
            ok, diff = _compare(case.expected, actual, rtol, atol)
        if ok:
            result.passed += 1
        elif first_failure is None:
            first_failure = [
                f"  first wrong case: {case.about}",
                f"    input:    {shown}",
                f"    expected: {_fmt(case.expected)}",
                f"    actual:   {actual if isinstance(actual, str) else _fmt(actual)}",
            ]
            if not math.isnan(diff):
                first_failure.append(f"    max difference: {diff:.6g}")
            first_failure.append(f"  hint: {case.hint or hint}")
    exact = "exact" if rtol == 0 and atol == 0 else f"within rtol={rtol:g}"
    if first_failure is None:
        result.lines = [f"✓ {name}: {result.passed}/{result.total} {exact}"]
    else:
        result.lines = [f"✗ {name}: {result.passed}/{result.total} cases right", *first_failure]
    print(result)
    return result


# ---------------------------------------------------------------- lesson 01: number formats

def _f32(x: float) -> float:
    return float(np.float32(x))


def check_fp32_fields(fn: Callable[[float], tuple[int, int, int]]) -> CheckResult:
    """``fn(x) -> (sign, exponent, mantissa)``: the stored bit fields of ``float32(x)``."""
    cases = [
        Case((1.0,), (0, 127, 0), "one: exponent equals the bias"),
        Case((-2.5,), (1, 128, 2**21), "a negative number: sign bit 1"),
        Case((0.1,), (0, 123, 5033165), "0.1 is not exact in binary"),
        Case((0.0,), (0, 0, 0), "zero: all fields zero"),
        Case((-0.0,), (1, 0, 0), "negative zero has the sign bit set",
             "-0.0 == 0.0 in comparisons, but its sign bit is 1: read the bits, not the value."),
        Case((1e-45,), (0, 0, 1), "the smallest subnormal: exponent field 0"),
        Case((math.inf,), (0, 255, 0), "infinity: exponent all ones, mantissa 0"),
        Case((3.4028234663852886e38,), (0, 254, 2**23 - 1), "the largest finite float32"),
    ]
    return run_checks("fp32_fields", fn, cases, arg_names=["x"], hint=(
        "view the 32 bits as an unsigned integer (np.float32(x).view(np.uint32)), then shift and "
        "mask: sign = bits >> 31, exponent = (bits >> 23) & 0xFF, mantissa = bits & 0x7FFFFF."))


def check_fp32_value(fn: Callable[[int, int, int], float]) -> CheckResult:
    """``fn(sign, exponent, mantissa) -> float``: the value that fp32 bit fields encode."""
    cases = [
        Case((0, 127, 0), 1.0, "one"),
        Case((1, 128, 2**21), -2.5, "negative: (-1)**sign"),
        Case((0, 123, 5033165), _f32(0.1), "the float32 nearest to 0.1"),
        Case((0, 0, 0), 0.0, "zero"),
        Case((0, 0, 1), _f32(1e-45), "a subnormal: no implicit 1, exponent 1 - 127",
             "when the exponent field is 0 the value is (mantissa / 2**23) * 2**(1 - 127)."),
        Case((0, 0, 2**22), 2.0**-127, "a larger subnormal"),
        Case((0, 254, 2**23 - 1), 3.4028234663852886e38, "the largest finite float32"),
        Case((1, 255, 0), -math.inf, "exponent all ones, mantissa 0: infinity"),
    ]
    return run_checks("fp32_value", fn, cases, arg_names=["sign", "exponent", "mantissa"],
                      rtol=1e-12, hint=(
        "normal numbers: (-1)**sign * 2**(exponent - 127) * (1 + mantissa / 2**23); "
        "exponent 0 means subnormal, exponent 255 means inf (mantissa 0) or NaN."))


def check_fp16_below(fn: Callable[[float], float]) -> CheckResult:
    """``fn(x) -> float``: the largest fp16 value that is <= x (x finite)."""
    cases = [
        Case((1.0,), 1.0, "a value fp16 holds exactly is its own answer"),
        Case((0.1,), 0.0999755859375, "0.1 lies between two fp16 values"),
        Case((-0.1,), -0.10003662109375, "negative: 'below' means more negative",
             "for a negative x, rounding toward zero goes up, not down."),
        Case((1000.3,), 1000.0, "near 1000 fp16 values are 0.5 apart"),
        Case((2049.0,), 2048.0, "above 2048 fp16 values are 2 apart: odd integers are lost"),
        Case((65519.0,), 65504.0, "just under the overflow threshold"),
        Case((1e6,), 65504.0, "beyond the range: the largest finite fp16",
             "65504 is the largest finite fp16; a cast of 1e6 gives inf, which is not <= 1e6."),
        Case((1e-7,), 5.960464477539063e-08, "a tiny value: the smallest subnormal is below it"),
    ]
    return run_checks("fp16_below", fn, cases, arg_names=["x"], hint=(
        "cast to np.float16 (round to nearest), and if the result is above x step down one value "
        "with np.nextafter(h, np.float16(-np.inf))."))


def check_model_bytes(fn: Callable[[int, str], int]) -> CheckResult:
    """``fn(n_params, fmt) -> int``: bytes to store the parameters, int4 packed two per byte."""
    cases = [
        Case((1000, "fp32"), 4000, "float32: 4 bytes each"),
        Case((1000, "fp16"), 2000, "float16: 2 bytes each"),
        Case((1000, "bf16"), 2000, "bfloat16: 2 bytes each"),
        Case((1000, "fp8_e4m3"), 1000, "fp8: 1 byte each"),
        Case((1000, "int8"), 1000, "int8: 1 byte each"),
        Case((1001, "int4"), 501, "int4, odd count: the last byte is half full",
             "round up: an odd number of 4-bit values still needs a whole last byte."),
        Case((3_504_872, "fp32"), 14_019_488, "MobileNetV2's 3,504,872 parameters in float32"),
        Case((0, "int4"), 0, "no parameters, no bytes"),
    ]
    return run_checks("model_bytes", fn, cases, arg_names=["n_params", "fmt"], hint=(
        "bits per value: fp32 32, fp16 and bf16 16, fp8 and int8 8, int4 4; "
        "bytes = ceil(n_params * bits / 8)."))


# ---------------------------------------------------------------- lesson 02: affine quantization

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
    return run_checks("choose_qparams", fn, cases, rtol=1e-6,
                      arg_names=["min_val", "max_val", "quant_min", "quant_max"], hint=(
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
    return run_checks("quantize", fn, cases,
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
    return run_checks("dequantize", fn, cases, rtol=1e-6, atol=1e-7,
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


def check_symmetric_scales(fn: Callable[[np.ndarray, int], np.ndarray]) -> CheckResult:
    """``fn(w, axis) -> scales``: symmetric int8 narrow-range scale per slice along ``axis``."""
    eps = float(np.finfo(np.float32).eps)
    w2 = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    conv = np.arange(-8, 8, dtype=np.float32).reshape(2, 2, 2, 2) / 4
    cases = [
        Case((w2, 0), np.array([2 / 127, 0.5 / 127]), "rows (axis 0): largest |w| per row"),
        Case((w2, 1), np.array([1 / 127, 2 / 127]), "columns (axis 1)",
             "reduce over every axis except `axis`: np.max(np.abs(w), axis=other_axes)."),
        Case((conv, 0), np.array([2 / 127, 1.75 / 127]), "a conv weight, output channels first"),
        Case((conv, -1), np.array([2 / 127, 1.75 / 127]), "Keras layout, output channels last"),
        Case((np.zeros((2, 3), np.float32), 0), np.array([eps, eps]),
             "all-zero channels: scale floored at eps"),
        Case((np.array([[-3.0, 1.0]], np.float32), 0), np.array([3 / 127]),
             "a negative value can be the largest in magnitude"),
    ]
    return run_checks("symmetric_scales", fn, cases, rtol=1e-6, arg_names=["w", "axis"], hint=(
        "scale = max(|w| over the channel) / 127 (int8 narrow range [-127, 127]), floored at "
        "np.finfo(np.float32).eps; one scale per index along `axis`."))


# ---------------------------------------------------------------- lesson 04: integer inference

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


def check_requantize(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(acc, M0, shift, output_zero_point) -> int8``: single-rounding requantization, clamped."""
    m01, s01 = 1717986918, -3  # 0.1
    m3, s3 = 1610612736, -2  # 0.1875
    cases = []
    for accs, m0, shift, zp, about in [
        ([1000, -1000, 0], m01, s01, 0, "M = 0.1, zero point 0"),
        ([1000, -1000, 0], m01, s01, 5, "the zero point is added after the multiply"),
        ([10, 11, -11], m3, s3, 0, "M = 0.1875: 1.875 and 2.0625 round to 2"),
        ([5000, -5000], m01, s01, 0, "500 must clamp to 127, -500 to -128"),
        ([1200, 1300], m01, s01, 10, "120 + 10 clamps at 127"),
    ]:
        expected = np.array([min(127, max(-128, _requant_single(a, m0, shift) + zp)) for a in accs])
        hint = ("clamp to [-128, 127] after adding the zero point, then cast to int8."
                if "clamp" in about else "")
        cases.append(Case((np.array(accs, np.int32), m0, shift, zp), expected, about, hint))
    return run_checks("requantize", fn, cases,
                      arg_names=["acc", "quantized_multiplier", "shift", "output_zero_point"], hint=(
        "in int64: (acc * M0 + 2**(30 - shift)) >> (31 - shift), then + output_zero_point, clamp."))


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
    return run_checks("quantize_bias", fn, cases,
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
    ]
    for x, zx, w, b, (m0, shift), zy, about in specs:
        expected = np.array([[min(127, max(-128, _requant_single(
            sum(wi * (xi - zx) for xi, wi in zip(row, wrow, strict=True)) + bj, m0, shift) + zy))
            for wrow, bj in zip(w, b, strict=True)] for row in x])
        cases.append(Case((np.array(x, np.int8), zx, np.array(w, np.int8), np.array(b, np.int32),
                           m0, shift, zy), expected, about,
                          "subtract the input zero point in int32 before multiplying: int8 "
                          "arithmetic wraps." if "zero point -128" in about else ""))
    return run_checks("int8_linear", fn, cases, arg_names=[
        "x_q", "x_zero_point", "w_q", "bias_q", "quantized_multiplier", "shift", "y_zero_point"],
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
