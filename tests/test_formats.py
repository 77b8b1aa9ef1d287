"""Float formats: fields, reconstruction and ranges against numpy and ml_dtypes casts."""

import math
import struct

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tutorial_lib import formats

FMTS = list(formats.FORMATS)


@pytest.mark.parametrize("fmt", FMTS)
def test_compose_inverts_fields_for_every_bit_pattern(fmt):
    f = formats.get_format(fmt)
    if f.bits > 16:
        pytest.skip("fp32 is covered by the property test")
    patterns = np.arange(2**f.bits, dtype=np.uint16 if f.bits == 16 else np.uint8)
    with np.errstate(invalid="ignore"):
        values = patterns.view(f.dtype).astype(np.float64)
    s, e, m = formats.fields(values, f)
    for v, si, ei, mi in zip(values, s, e, m, strict=True):
        got = formats.compose(si, ei, mi, f)
        assert (math.isnan(got) and math.isnan(v)) or got == v


@given(st.floats(width=32, allow_nan=False))
def test_fp32_fields_match_struct(x):
    bits = struct.unpack(">I", struct.pack(">f", x))[0]
    s, e, m = (int(v) for v in formats.fields(x, "fp32"))
    assert (s, e, m) == (bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF)
    assert formats.compose(s, e, m) == x


@pytest.mark.parametrize("fmt, dtype", [("fp32", np.float32), ("fp16", np.float16),
                                        ("bf16", ml_dtypes.bfloat16),
                                        ("fp8_e4m3", ml_dtypes.float8_e4m3fn),
                                        ("fp8_e5m2", ml_dtypes.float8_e5m2)])
def test_info_matches_finfo(fmt, dtype):
    ref = ml_dtypes.finfo(dtype)
    got = formats.info(fmt)
    assert got.max == float(ref.max)
    assert got.min_normal == float(ref.smallest_normal)
    assert got.min_subnormal == float(ref.smallest_subnormal)
    assert got.eps == float(ref.eps)


def test_known_ranges():
    assert formats.info("fp8_e4m3").max == 448.0
    assert formats.info("fp8_e5m2").max == 57344.0
    assert formats.info("bf16").max == pytest.approx(3.3895e38, rel=1e-4)


@pytest.mark.parametrize("fmt", FMTS)
def test_ulp_is_the_gap_to_the_next_value(fmt):
    f = formats.get_format(fmt)
    for x in (1.0, 3.0, 0.1, 10.0, formats.info(f).min_subnormal):
        stored = np.asarray(x, np.float32).astype(f.dtype)
        nxt = np.nextafter(stored.astype(np.float64), np.inf)  # not in the format: use bits
        raw = stored.view(np.uint32 if f.bits == 32 else np.uint16 if f.bits == 16 else np.uint8)
        up = (raw + 1).view(f.dtype).astype(np.float64)
        assert formats.ulp(x, f) == up - stored.astype(np.float64), (fmt, x, nxt)


def test_overflow_rounding():
    assert formats.round_to([70000.0], "fp16")[0] == math.inf
    assert math.isnan(formats.round_to([500.0], "fp8_e4m3")[0])  # no inf in e4m3fn
    assert formats.round_to([460.0], "fp8_e4m3")[0] == 448.0
    assert formats.round_to([1e-8], "fp16")[0] == 0.0  # underflow


def test_explain_mentions_fields_and_error():
    text = formats.explain(0.1, "fp16")
    assert "0 01011 1001100110" in text and "error" in text
    assert "out of range" in formats.explain(1e6, "fp16")
    assert "subnormal" in formats.explain(1e-6, "fp16")


@pytest.mark.parametrize("bad", [("fp64",), ("int8",), (3,)])
def test_unknown_format(bad):
    with pytest.raises(ValueError, match="unknown format"):
        formats.get_format(*bad)


def test_compose_rejects_fields_that_do_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        formats.compose(0, 300, 0, "fp32")
    with pytest.raises(ValueError, match="does not fit"):
        formats.compose(2, 0, 0, "fp16")


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2"])
def test_float64_input_is_rounded_once(fmt):
    # 1 + half an ulp + a little: above the tie, so it rounds up. Through float32 the little is lost,
    # the value becomes the tie itself and goes to even, 1.0: the old answer, rounded twice.
    f = formats.get_format(fmt)
    half_ulp = 2.0 ** -(f.mantissa_bits + 1)
    x = 1 + half_ulp + 2.0**-40
    twice = float(np.float32(x).astype(f.dtype).astype(np.float64))
    assert twice == 1.0
    assert formats.round_to([x], fmt)[0] == 1 + 2 * half_ulp
    assert formats.fields(x, fmt)[2] == 1  # mantissa 0...01


def _nearest_even(x: float, fmt: str) -> float:
    """Independent reference: nearest finite value (or the overflow) by exact fractions, ties to even."""
    from fractions import Fraction

    f = formats.get_format(fmt)
    patterns = np.arange(2 ** (f.bits - 1)).astype(np.uint16 if f.bits == 16 else np.uint8)
    with np.errstate(invalid="ignore"):
        values = patterns.view(f.dtype).astype(np.float64)
    values = values[np.isfinite(values)]
    # One step past the largest value stands for overflow; its pattern is odd in e4m3fn, even otherwise.
    grid = [*values.tolist(), values[-1] + (values[-1] - values[-2])]
    i = int(np.searchsorted(grid, abs(x)))
    if i == 0:
        r = 0.0
    elif i == len(grid):
        r = math.inf
    else:
        lo, hi = Fraction(grid[i - 1]), Fraction(grid[i])
        below, above = Fraction(abs(x)) - lo, hi - Fraction(abs(x))
        r = grid[i - 1] if below < above or (below == above and (i - 1) % 2 == 0) else grid[i]
    if r > values[-1]:
        r = math.inf if f.ieee_specials else math.nan
    return math.copysign(r, x)


@pytest.mark.parametrize("fmt", ["bf16", "fp8_e4m3", "fp8_e5m2"])
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e5, max_value=1e5))
def test_round_to_matches_exact_reference(fmt, x):
    got, want = formats.round_to([x], fmt)[0], _nearest_even(x, fmt)
    assert got == want or (math.isnan(got) and math.isnan(want))


@given(st.floats(allow_nan=False, width=64))
def test_round_to_fp16_matches_numpy_direct_cast(x):
    with np.errstate(over="ignore"):
        assert formats.round_to([x], "fp16")[0] == float(np.float16(x))  # numpy rounds float64 once


@pytest.mark.parametrize("fmt", ["fp16", "fp8_e4m3", "fp8_e5m2"])
def test_ulp_between_neighbours_is_their_gap(fmt):
    f = formats.get_format(fmt)
    patterns = np.arange(2 ** (f.bits - 1)).astype(np.uint16 if f.bits == 16 else np.uint8)
    with np.errstate(invalid="ignore"):
        values = patterns.view(f.dtype).astype(np.float64)
    values = values[np.isfinite(values)]
    inside = values[:-1] + 0.75 * np.diff(values)  # strictly between two neighbours
    assert np.array_equal(formats.ulp(inside, fmt), np.diff(values))
    assert formats.ulp(1000.0, "fp8_e5m2") == 128.0  # between 896 and 1024, though it rounds to 1024
