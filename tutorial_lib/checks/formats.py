"""Checkers for lesson 01's exercises (number formats): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tutorial_lib.checks.runner import Case, CheckResult, run_checks

__all__ = ["check_fp32_fields", "check_fp32_value", "check_fp16_below", "check_model_bytes"]


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
                      rtol=1e-12, dtype=float, dtype_hint=(
        "the value is right; return it as a Python float (float(v)), as the exercise asks."), hint=(
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
    return run_checks("fp16_below", fn, cases, arg_names=["x"], dtype=float, dtype_hint=(
        "the value is right; return float(h), not the np.float16 itself: arithmetic on an "
        "np.float16 keeps rounding to fp16."), hint=(
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
    return run_checks("model_bytes", fn, cases, arg_names=["n_params", "fmt"], dtype=int,
                      dtype_hint="a byte count is an int: use integer arithmetic (//), not /.", hint=(
        "bits per value: fp32 32, fp16 and bf16 16, fp8 and int8 8, int4 4; "
        "bytes = ceil(n_params * bits / 8)."))
