"""Floating-point formats bit by bit: fp32, fp16, bf16 and the two fp8 formats.

A float is ``(-1)**sign * 2**(exponent - bias) * (1 + mantissa / 2**mantissa_bits)`` when the
stored exponent is neither all zeros (subnormals and zero) nor, in IEEE-style formats, all ones
(infinity and NaN). The fp8 formats follow the OCP 8-bit floating point spec (2023):
``fp8_e4m3`` is the "fn" variant (no infinity, one NaN pattern per sign, max 448), ``fp8_e5m2``
is IEEE-like (has infinity, max 57344).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import ml_dtypes
import numpy as np

__all__ = [
    "FloatFormat", "FORMATS", "get_format", "round_to", "fields", "bit_string", "compose",
    "ulp", "info", "explain",
]


class FloatFormat(NamedTuple):
    """Layout of a binary floating-point format."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    dtype: np.dtype
    ieee_specials: bool  # all-ones exponent means inf/NaN (False for fp8_e4m3: only S.1111.111 is NaN)

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("fp32", 8, 23, np.dtype(np.float32), True),
        FloatFormat("fp16", 5, 10, np.dtype(np.float16), True),
        FloatFormat("bf16", 8, 7, np.dtype(ml_dtypes.bfloat16), True),
        FloatFormat("fp8_e4m3", 4, 3, np.dtype(ml_dtypes.float8_e4m3fn), False),
        FloatFormat("fp8_e5m2", 5, 2, np.dtype(ml_dtypes.float8_e5m2), True),
    )
}

_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    """Look a format up by name (``"fp32"``, ``"fp16"``, ``"bf16"``, ``"fp8_e4m3"``, ``"fp8_e5m2"``)."""
    if isinstance(fmt, FloatFormat):
        return fmt
    try:
        return FORMATS[fmt]
    except (KeyError, TypeError):
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}.") from None


def round_to(x, fmt: str | FloatFormat) -> np.ndarray:
    """Round ``x`` to the nearest value of ``fmt`` (ties to even) and return it as float64.

    Values beyond the largest finite number become inf (or NaN in fp8_e4m3, which has no inf).

    >>> round_to([0.1, 1/3, 448.0, 460.0], "fp8_e4m3").tolist()
    [0.1015625, 0.34375, 448.0, 448.0]

    A float64 input is rounded once, straight to ``fmt`` (a detour through float32 would give 1.0 here):

    >>> round_to([1 + 2**-11 + 2**-40], "fp16").tolist()
    [1.0009765625]
    """
    return _cast(x, get_format(fmt)).astype(np.float64)


def _cast(x, f: FloatFormat) -> np.ndarray:
    """``x`` rounded once, to nearest with ties to even, and stored in ``f.dtype``.

    A float64 -> float32 -> target cast can round twice (ml_dtypes converts float64 through float32
    too): 1 + 2**-11 + 2**-40 becomes the fp16 tie 1 + 2**-11 in float32, which then goes to even,
    1.0, although the value lies above the tie. So we round in float64, where the steps are exact:
    |x| / step is a power-of-two rescaling, np.rint rounds it half to even, and the result is
    representable in the target, so the final cast changes nothing.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.asarray(x, dtype=np.float64)
        finite = np.isfinite(x)
        magnitude = np.where(finite, np.abs(x), 0.0)
        _, e = np.frexp(magnitude)  # magnitude = m * 2**e with 0.5 <= m < 1, so its binade is e - 1
        # step = 2**(binade - mantissa_bits); below the smallest normal the step stays fixed (subnormals)
        step_exp = np.maximum(e - 1, 1 - f.bias) - f.mantissa_bits
        rounded = np.ldexp(np.rint(np.ldexp(magnitude, -step_exp)), step_exp)
        # Rounding up past the largest finite value overflows: inf (NaN in fp8_e4m3, which has no inf)
        rounded = np.where(rounded > info(f).max, np.inf, rounded)
        exact = np.where(finite, np.copysign(rounded, x), x)
        return exact.astype(np.float32).astype(f.dtype)  # both casts are exact now


def fields(x, fmt: str | FloatFormat = "fp32") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored ``(sign, exponent, mantissa)`` bit fields of ``x`` rounded to ``fmt``.

    >>> [v.tolist() for v in fields([1.0, -2.5, 0.1])]
    [[0, 1, 0], [127, 128, 123], [0, 2097152, 5033165]]
    """
    f = get_format(fmt)
    raw = _cast(x, f).view(_UINT[f.bits]).astype(np.int64)
    mantissa = raw & ((1 << f.mantissa_bits) - 1)
    exponent = (raw >> f.mantissa_bits) & ((1 << f.exponent_bits) - 1)
    sign = raw >> (f.bits - 1)
    return sign, exponent, mantissa


def bit_string(x: float, fmt: str | FloatFormat = "fp32") -> str:
    """The bits of one value as ``"sign exponent mantissa"``.

    >>> bit_string(-2.5, "fp16")
    '1 10000 0100000000'
    """
    f = get_format(fmt)
    s, e, m = (int(v) for v in fields(x, f))
    return f"{s} {e:0{f.exponent_bits}b} {m:0{f.mantissa_bits}b}"


def compose(sign: int, exponent: int, mantissa: int, fmt: str | FloatFormat = "fp32") -> float:
    """The value that the bit fields encode, computed from the formula (not by a cast).

    >>> compose(0, 127, 0), compose(1, 128, 2**21), compose(0, 0, 1)
    (1.0, -2.5, 1.401298464324817e-45)
    """
    f = get_format(fmt)
    for name, v, width in (("sign", sign, 1), ("exponent", exponent, f.exponent_bits),
                           ("mantissa", mantissa, f.mantissa_bits)):
        if not 0 <= int(v) < 2**width:
            raise ValueError(f"{name}={v} does not fit in {width} bit(s) of {f.name}.")
    sign, exponent, mantissa = int(sign), int(exponent), int(mantissa)
    top = 2**f.exponent_bits - 1
    if f.ieee_specials and exponent == top:
        return math.copysign(math.inf, -sign or 1) if mantissa == 0 else math.nan
    if not f.ieee_specials and exponent == top and mantissa == 2**f.mantissa_bits - 1:
        return math.nan
    if exponent == 0:  # subnormal: no implicit leading 1, exponent fixed at 1 - bias
        magnitude = math.ldexp(mantissa, 1 - f.bias - f.mantissa_bits)
    else:
        magnitude = math.ldexp(2**f.mantissa_bits + mantissa, exponent - f.bias - f.mantissa_bits)
    return -magnitude if sign else magnitude


def ulp(x, fmt: str | FloatFormat = "fp32") -> np.ndarray:
    """Unit in the last place: ``fmt``'s spacing ``2**(floor(log2|x|) - mantissa_bits)`` where ``|x|`` lies.

    The binade is that of ``|x|`` itself (not of ``x`` rounded), so for a value between two
    neighbours the ulp is the gap between them, and for a value of the format it is the gap to the
    next value up. At a power of two the gap below is half of it. NaN for inf and NaN.

    >>> ulp([1.0, 1000.0, 0.0], "fp16").tolist()
    [0.0009765625, 0.5, 5.960464477539063e-08]
    >>> ulp([1000.0, 1024.0], "fp8_e5m2").tolist()  # 1000 lies between 896 and 1024
    [128.0, 256.0]
    """
    f = get_format(fmt)
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    _, e = np.frexp(np.where(finite, np.abs(x), 0.0))  # |x| = m * 2**e, 0.5 <= m < 1: binade e - 1
    # Subnormals and 0 share the gap of the smallest normals: the binade never goes below 1 - bias.
    binade = np.where(x == 0, 1 - f.bias, np.maximum(e - 1, 1 - f.bias))
    gap = np.ldexp(1.0, binade - f.mantissa_bits)
    return np.where(finite, gap, np.nan)


class FormatInfo(NamedTuple):
    """Range and precision of a format."""

    name: str
    bits: int
    max: float
    min_normal: float
    min_subnormal: float
    eps: float  # gap between 1.0 and the next value


def info(fmt: str | FloatFormat) -> FormatInfo:
    """Largest finite value, smallest normal and subnormal, and epsilon, from the bit layout.

    >>> info("fp16")
    FormatInfo(name='fp16', bits=16, max=65504.0, min_normal=6.103515625e-05, min_subnormal=5.960464477539063e-08, eps=0.0009765625)
    """
    f = get_format(fmt)
    top = 2**f.exponent_bits - 1
    if f.ieee_specials:
        largest = compose(0, top - 1, 2**f.mantissa_bits - 1, f)
    else:  # S.1111.111 is NaN, so the largest finite value has mantissa 110
        largest = compose(0, top, 2**f.mantissa_bits - 2, f)
    return FormatInfo(f.name, f.bits, largest, compose(0, 1, 0, f), compose(0, 0, 1, f),
                      math.ldexp(1.0, -f.mantissa_bits))


def explain(x: float, fmt: str | FloatFormat = "fp32") -> str:
    """A few lines that take ``x`` apart in ``fmt``: bits, fields, stored value and error.

    This is the logic behind lesson 01's bit explorer widget.

    >>> print(explain(0.1, "bf16"))
    bf16  0.1 -> 0 01111011 1001101
      sign 0 (+), exponent 123 - bias 127 = -4, mantissa 77/128
      stored 0.10009765625 (error 9.766e-05, ulp 0.0004883)
    """
    f = get_format(fmt)
    s, e, m = (int(v) for v in fields(x, f))
    stored = compose(s, e, m, f)
    head = f"{f.name}  {x:g} -> {bit_string(x, f)}"
    if not math.isfinite(stored):
        return f"{head}\n  {'NaN' if math.isnan(stored) else 'inf'}: {x:g} is out of range for {f.name}"
    kind = "subnormal: 0." if e == 0 else ""
    exp = 1 - f.bias if e == 0 else e - f.bias
    return (
        f"{head}\n  sign {s} ({'-' if s else '+'}), exponent {e} - bias {f.bias} = {exp}, "
        f"{kind}mantissa {m}/{2**f.mantissa_bits}\n"
        f"  stored {stored:.12g} (error {abs(stored - x):.4g}, ulp {float(ulp(x, f)):.4g})"
    )
