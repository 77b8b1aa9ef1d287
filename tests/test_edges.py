"""The core verbs at the edges: nothing wraps around, bad input gets a ValueError that says why.

Property tests over extreme float32 values (near the largest float32, subnormals, ties) for
every verb, and one test per bad input that used to slip through.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tutorial_lib as tl
from tutorial_lib import integer

F32_MAX = float(np.finfo(np.float32).max)
floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
scales = st.floats(min_value=float(np.finfo(np.float32).tiny), max_value=float(np.float32(1e30)), width=32)
ranges = st.sampled_from([(-128, 127), (-127, 127), (0, 255), (-8, 7), (-32768, 32767)])


@settings(max_examples=300, deadline=None)
@given(st.lists(floats32, min_size=1, max_size=8), scales, ranges,
       st.sampled_from(["half_even", "half_away"]))
def test_quantize_clamps_and_never_wraps(xs, scale, qrange, rounding):
    quant_min, quant_max = qrange
    x = np.array(xs, dtype=np.float32)
    q = tl.quantize(x, scale, 0 if quant_min < 0 else quant_min, quant_min, quant_max,
                    rounding=rounding).astype(np.int64)
    assert np.all((q >= quant_min) & (q <= quant_max))
    # Direction is kept: a value far above the range saturates at the top, never at the bottom.
    big = np.abs(x.astype(np.float64)) / scale > 2 * (quant_max - quant_min)
    assert np.all(q[big & (x > 0)] == quant_max)
    assert np.all(q[big & (x < 0)] == quant_min)


def _exact_half_away(x: float, scale: float) -> int:
    v = Fraction(float(np.float32(x) / np.float32(scale)))  # TFLite divides in float32
    n = abs(v)
    r = int(n + Fraction(1, 2)) if n.denominator != 1 else int(n)
    return r if v >= 0 else -r


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=-200, max_value=200, width=32), st.floats(min_value=float(np.float32(1e-3)), max_value=10, width=32))
def test_half_away_rounds_like_tflite_in_exact_arithmetic(x, scale):
    q = tl.quantize([x], scale, 0, -(2**15), 2**15 - 1, rounding="half_away")
    assert int(q[0]) == max(-(2**15), min(2**15 - 1, _exact_half_away(x, scale)))


def test_half_away_edge_values():
    assert tl.quantize(np.float32([0.49999997]), 1.0, 0, rounding="half_away").tolist() == [0]
    assert tl.quantize(np.float32([-0.5, 0.5, 1.5, 2.5]), 1.0, 0,
                       rounding="half_away").tolist() == [-1, 1, 2, 3]


@pytest.mark.parametrize("x", [1e20, 3e38, -3e38, F32_MAX])
def test_huge_values_saturate(x):
    q = int(tl.quantize([x], 1e-3, 0)[0])
    assert q == (127 if x > 0 else -128)


@settings(max_examples=200, deadline=None)
@given(floats32, floats32)
def test_choose_qparams_gives_a_usable_scale_or_a_clear_error(a, b):
    lo, hi = min(a, b), max(a, b)
    try:
        scale, zero_point = tl.choose_qparams(lo, hi)
    except ValueError as err:
        assert "too wide for a float32 scale" in str(err)
        assert hi - lo > F32_MAX / 2  # only ranges that overflow float32 are refused
        return
    assert np.isfinite(scale) and scale > 0 and -128 <= zero_point <= 127
    q = tl.quantize([lo, hi, 0.0], scale, zero_point)  # and quantize accepts what it returns
    assert q.tolist()[2] == zero_point


BAD_INPUTS = [
    (lambda: tl.choose_qparams(-3e38, 3e38), "too wide for a float32 scale"),
    (lambda: tl.quantize([1.0], 1e-45, 0), "1/scale overflows float32"),
    (lambda: tl.quantize([True, False], 0.1, 0), "is boolean"),
    (lambda: tl.quantize(np.array([True]), 0.1, 0), "is boolean"),
    (lambda: tl.quantize(["1.5"], 0.1, 0), "holds text"),
    (lambda: tl.quantize("1.5", 0.1, 0), "holds text"),
    (lambda: tl.quantize([1.0], "0.1", 0), "holds text"),
    (lambda: tl.quantize([1.0], 0.1, True), "zero_point must be an integer"),
    (lambda: tl.quantize([1.0], 0.1, "3"), "zero_point must be an integer"),
    (lambda: tl.quantize([1.0], 0.1, 200), "outside \\[-128, 127\\]"),
    (lambda: tl.quantize([1.0], 0.1, -1, 0, 255), "outside \\[0, 255\\]"),
    (lambda: tl.fake_quantize([1.0], 0.1, 128), "outside"),
    (lambda: tl.quantize(np.float64([1e39]), 0.1, 0), "beyond float32's range"),
    (lambda: tl.choose_qparams(np.float64(-1e39), 1.0), "beyond float32's range"),
    (lambda: integer.multiply_by_quantized_multiplier([2**40], 2**30, 0, rounding="single"),
     "beyond int32"),
    (lambda: integer.multiply_by_quantized_multiplier([2**31], 2**30, 0), "beyond int32"),
    (lambda: integer.multiply_by_quantized_multiplier([1.5], 2**30, 0), "dtype float64"),
]


@pytest.mark.parametrize("call, message", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_inputs_get_a_value_error_that_says_why(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_requantize_keeps_the_range_it_is_given():
    out = integer.requantize([300, -5], 2**30, 1, 0, 0, 255)
    assert out.dtype == np.uint8 and out.tolist() == [255, 0]  # not 300 wrapped through int8
    out = integer.requantize([300], 2**30, 1, 0, -32768, 32767)
    assert out.dtype == np.int16 and out.tolist() == [300]
    assert integer.requantize([300], 2**30, 1, 0).dtype == np.int8
