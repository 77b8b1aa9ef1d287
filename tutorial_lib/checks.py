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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Case", "CheckResult", "run_checks", "ClaimError", "expect",
    # lesson 01: number formats
    "check_fp32_fields", "check_fp32_value", "check_fp16_below", "check_model_bytes",
    # lesson 02: affine quantization
    "check_choose_qparams", "check_quantize", "check_dequantize", "check_sqnr_db",
    "check_symmetric_scales",
    # lesson 03: granularity and calibration
    "check_per_channel_qparams", "check_percentile_observer", "check_groupwise_fake_quantize",
    "check_pack_int4", "check_unpack_int4",
    # lesson 04: integer inference
    "check_quantize_multiplier", "check_requantize", "check_quantize_bias", "check_int8_linear",
    "check_fold_batchnorm",
    # lesson 05: fake quantization and QAT
    "check_fake_quantize_ste", "check_fake_quant_step", "check_qat_step", "check_lsq_scale_grad",
    "check_freeze_observers",
    # lesson 06: PyTorch quantization
    "check_fuse_groups", "check_calibrate", "check_state_dict_bytes", "check_keep_float",
    "check_latency_stats",
    # lesson 07: TFLite post-training
    "check_representative_dataset", "check_quantize_input", "check_dequantize_weight",
    "check_largest_scale",
    # lesson 08: QAT with tfmot
    "check_nudge", "check_fake_quant_min_max", "check_ema_range", "check_qat_recovery",
]


class ClaimError(AssertionError):
    """A conclusion a lesson draws does not hold on this run."""


def expect(holds, claim: str, evidence: str = "") -> None:
    """Assert a lesson's conclusion right where the text states it.

    Prints ``✓ claim`` when ``holds`` is true; otherwise raises ``ClaimError`` naming the claim
    and the evidence, so the notebook tests fail when a conclusion stops being true on some
    machine, not only when a digit moves.

    >>> expect(0.989 - 0.967 > 0.01, "PTQ loses more than a point at 4 bits")
    ✓ PTQ loses more than a point at 4 bits
    >>> expect(False, "QAT always wins", evidence="seed 1: 97.2% < 98.3%")
    Traceback (most recent call last):
    ...
    tutorial_lib.checks.ClaimError: the lesson claims "QAT always wins", but this run says otherwise (seed 1: 97.2% < 98.3%).
    """
    if isinstance(holds, np.ndarray):
        holds = bool(holds.all())
    if bool(holds):
        print(f"\u2713 {claim}")
        return
    detail = f" ({evidence})" if evidence else ""
    raise ClaimError(f'the lesson claims "{claim}", but this run says otherwise{detail}.')


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


# ---------------------------------------------------------------- who raised: learner or checker

class _LearnerRaised(Exception):
    """The learner's own code raised ``err``; anything else that raises is the checker's."""

    def __init__(self, err: Exception):
        super().__init__(err)
        self.err = err


def _learner(fn: Callable) -> Callable:
    """``fn`` (the learner's code) wrapped so that what it raises is told apart from the
    checker's own errors. ``NotImplementedError`` passes through: the exercise is unfinished."""
    if getattr(fn, "_learner_call", False):
        return fn

    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as err:
            raise _LearnerRaised(err) from err

    call._learner_call = True  # type: ignore[attr-defined]
    return call


def _wraps_learner(fn: Callable) -> Callable:
    """Mark a checker-side wrapper that calls the learner's code through ``_learner`` itself,
    so that ``run_checks`` blames the learner only for what those calls raise."""
    fn._wraps_learner = True  # type: ignore[attr-defined]
    return fn


# ---------------------------------------------------------------- comparing numeric answers

class _Wrong(Exception):
    """The answer has the wrong kind or shape: ``line`` names the problem in one line."""

    def __init__(self, kind: str, line: str):
        super().__init__(line)
        self.kind, self.line = kind, line


def _type_name(v: Any) -> str:
    if v is None:
        return "None"
    t = type(v)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"


def _shape_text(shape: tuple) -> str:
    return "a single number" if shape == () else str(shape)


def _numbers(v: Any) -> np.ndarray:
    """``v`` as an array of numbers; text, booleans, None and other objects are refused."""
    if isinstance(v, str | bytes):
        raise _Wrong("type", f"type: expected numbers, got text {v!r}")
    if isinstance(v, bool | np.bool_):
        raise _Wrong("type", f"type: expected a number, got the boolean {v!r}")
    try:
        arr = np.asarray(v)
    except Exception:  # e.g. a tensor that requires grad
        raise _Wrong("type", f"type: expected numbers, got {_type_name(v)}") from None
    if arr.dtype.kind not in "iuf":
        what = {"U": "text", "S": "text", "b": "booleans"}.get(arr.dtype.kind, _type_name(v))
        if arr.dtype.kind == "O" and arr.ndim:
            what = f"{_type_name(v)} holding non-numbers"
        raise _Wrong("type", f"type: expected numbers, got {what}")
    return arr


def _pairs(expected: Any, actual: Any) -> list[tuple[Any, Any]]:
    """Pair each part of the expected answer (a tuple is several parts) with the learner's."""
    if not isinstance(expected, tuple):
        return [(expected, actual)]
    if isinstance(actual, str | bytes) or not isinstance(actual, tuple | list | np.ndarray) or (
            isinstance(actual, np.ndarray) and actual.ndim == 0):
        raise _Wrong("type", f"type: expected a tuple of {len(expected)} values, "
                             f"got {_type_name(actual)}")
    if len(actual) != len(expected):
        raise _Wrong("shape", f"length: expected a tuple of {len(expected)} values, "
                              f"got {len(actual)}")
    return list(zip(expected, actual, strict=True))


def _dtype_problem(spec: Any, value: Any) -> str | None:
    """One line naming a wrong dtype (or Python type), or None when ``value`` fits ``spec``.

    ``spec`` is a numpy dtype (``np.int8``), ``np.integer`` or ``np.floating`` for any of that
    kind, or the Python types ``int`` and ``float`` for single numbers.
    """
    if spec is None:
        return None
    if spec is int:
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return None
        return f"type: expected an int, got {_type_name(value)}"
    if spec is float:
        if isinstance(value, float):  # np.float64 is a float; np.float32 and np.float16 are not
            return None
        return f"type: expected a Python float, got {_type_name(value)}"
    got = getattr(value, "dtype", None)
    if spec in (np.integer, np.floating):
        got = np.asarray(value).dtype if got is None and isinstance(value, list) else got
        if got is not None and np.issubdtype(got, spec):
            return None
        kind = "an integer" if spec is np.integer else "a floating-point"
        return f"dtype: expected {kind} dtype, got {got if got is not None else _type_name(value)}"
    if got == np.dtype(spec):
        return None
    return f"dtype: expected {np.dtype(spec)}, got {got if got is not None else _type_name(value)}"


@dataclass
class _Verdict:
    """How a numeric answer compares: ``kind`` is "ok", "type", "shape", "values" or "dtype"."""

    kind: str
    lines: list[str] = field(default_factory=list)


def _judge(expected: Any, actual: Any, rtol: float, atol: float, dtype: Any = None) -> _Verdict:
    """Compare a numeric answer with the expected one (NaN equals NaN, inf equals inf).

    Refuses non-numbers, names a wrong shape, counts NaN where a number belongs (and numbers
    where NaN belongs), gives the largest difference, and checks ``dtype`` (one spec, or a tuple
    of specs for a tuple answer; see ``_dtype_problem``).
    """
    try:
        pairs = _pairs(expected, actual)
        arrays = [(np.asarray(e, dtype=np.float64), _numbers(a)) for e, a in pairs]
    except _Wrong as wrong:
        return _Verdict(wrong.kind, [wrong.line])
    for e, a in arrays:
        if e.shape != a.shape:
            return _Verdict("shape", [f"shape: expected {_shape_text(e.shape)}, "
                                      f"got {_shape_text(a.shape)}"])
    lines: list[str] = []
    ok, worst, nan_got, nan_missed, total = True, -1.0, 0, 0, 0
    with np.errstate(invalid="ignore", over="ignore"):
        for e, a in arrays:
            a = a.astype(np.float64)
            same = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True) | (e == a)
            ok &= bool(np.all(same))
            e_nan, a_nan = np.isnan(e), np.isnan(a)
            nan_got += int(np.sum(a_nan & ~e_nan))
            nan_missed += int(np.sum(e_nan & ~a_nan))
            total += e.size
            numbers = ~e_nan & ~a_nan
            diff = np.where(e == a, 0.0, np.abs(e - a))[numbers]
            if diff.size:
                worst = max(worst, float(np.max(diff)))
    if not ok:
        if nan_got:
            lines.append(f"NaN: got NaN where a number is expected ({nan_got} of {total} values)")
        if nan_missed:
            lines.append(f"NaN: expected NaN, got a number ({nan_missed} of {total} values)")
        if worst > 0 or (worst == 0 and not lines):
            lines.append(f"max difference: {worst:.6g}")
    specs = dtype if isinstance(dtype, tuple) else (dtype,) * len(pairs)
    dtype_lines = [p for (_, a), spec in zip(pairs, specs, strict=True)
                   if (p := _dtype_problem(spec, a))]
    lines += dtype_lines
    return _Verdict("ok" if ok and not dtype_lines else "values" if not ok else "dtype", lines)


def _equal(expected: Any, actual: Any) -> bool:
    """``actual == expected`` as one bool; comparisons that are not a plain bool are False."""
    try:
        same = actual == expected
        return isinstance(same, bool | np.bool_) and bool(same)
    except Exception:
        return False


def _reproduces(wrong: Callable, rtol: float = 0.0, atol: float = 0.0) -> Callable[[Case, Any], bool]:
    """A test for ``mistakes=``: the learner's answer equals what ``wrong(*case.args)`` gives."""
    def test(case: Case, actual: Any) -> bool:
        return _judge(wrong(*case.args), actual, rtol, atol).kind in ("ok", "dtype")
    return test


# ---------------------------------------------------------------- the runners

def run_checks(
    name: str,
    fn: Callable,
    cases: Sequence[Case],
    hint: str,
    rtol: float = 0.0,
    atol: float = 0.0,
    arg_names: Sequence[str] = (),
    describe: Callable[[Any], Any] | None = None,
    show: Callable[[tuple], str] | None = None,
    dtype: Any = None,
    mistakes: Sequence[tuple[Callable[[Case, Any], bool], str]] = (),
    dtype_hint: str = "",
) -> CheckResult:
    """Run ``fn`` on every case, print a one-line summary or the first failure, return the result.

    Answers are compared as numbers (``rtol``, ``atol``): text and other non-numbers are refused,
    a wrong shape is named, NaN is reported as NaN, and ``dtype`` (see ``_dtype_problem``) is
    checked where the exercise names one. For answers that are not numbers (lists of names,
    settings, objects) pass ``describe``, which turns the learner's answer into plain Python
    values compared with ``==``; ``show`` writes a case's input for the report.

    The hint follows what went wrong: the first ``mistakes`` entry ``(test, hint)`` whose
    ``test(case, answer)`` holds, else the case's own hint, else ``hint``; a right answer in the
    wrong dtype gets ``dtype_hint``. Only what ``fn`` itself raises is reported as raised by the
    learner's function; a checker-side wrapper marked with ``_wraps_learner`` calls the learner's
    code through ``_learner`` so that its own bookkeeping errors are not blamed on the learner.
    """
    result = CheckResult(name, 0, len(cases))
    call = fn if getattr(fn, "_wraps_learner", False) else _learner(fn)
    first_failure: list[str] | None = None
    fmt = _fmt if describe is None else repr
    for case in cases:
        details: list[str] = []
        kind = "ok"
        try:
            args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in case.args)
            actual = call(*args)
            if describe is not None:
                actual = describe(actual)
        except NotImplementedError:
            result.implemented = False
            result.lines = [f"… {name}: not implemented yet (replace the `raise NotImplementedError` "
                            "line with your code, then run this cell again)"]
            print(result)
            return result
        except _LearnerRaised as raised:  # the learner's bug: report it, no traceback
            err = raised.err
            kind, actual = "raised", f"your function raised {type(err).__name__}: {err}"
        except Exception as err:  # the checker could not use the answer: not the learner's raise
            kind = "unreadable"
            actual = f"the check could not use your answer ({type(err).__name__}: {err})"
        else:
            if describe is None:
                verdict = _judge(case.expected, actual, rtol, atol, dtype)
                kind, details = verdict.kind, verdict.lines
            elif not _equal(case.expected, actual):
                kind = "values"
        if kind == "ok":
            result.passed += 1
        elif first_failure is None:
            first_failure = _report(case, actual, kind, details, fmt, show, arg_names,
                                    _pick_hint(case, actual, kind, hint, mistakes, dtype_hint))
    exact = "exact" if rtol == 0 and atol == 0 else f"within rtol={rtol:g}"
    if first_failure is None:
        result.lines = [f"✓ {name}: {result.passed}/{result.total} {exact}"]
    else:
        result.lines = [f"✗ {name}: {result.passed}/{result.total} cases right", *first_failure]
    print(result)
    return result


def _pick_hint(case: Case, actual: Any, kind: str, hint: str,
               mistakes: Sequence[tuple[Callable[[Case, Any], bool], str]], dtype_hint: str) -> str:
    """The hint for what went wrong in this case (see ``run_checks``)."""
    if kind == "type":
        return ("return numbers (an int, a float or a numpy array of them), not text or other "
                "objects: the check compares values.")
    if kind == "dtype":
        return dtype_hint or "the values are right; convert the result to the dtype the exercise asks for."
    if kind in ("values", "shape"):
        for test, mistake_hint in mistakes:
            try:
                if test(case, actual):
                    return mistake_hint
            except Exception:  # a diagnosis that does not apply to this answer
                continue
    return case.hint or hint


def _report(case: Case, actual: Any, kind: str, details: list[str], fmt: Callable[[Any], str],
            show: Callable[[tuple], str] | None, arg_names: Sequence[str], hint: str) -> list[str]:
    """The lines describing the first wrong case."""
    shown = show(case.args) if show else ", ".join(
        f"{n}={fmt(a)}" if n else fmt(a)
        for n, a in zip(list(arg_names) + [""] * len(case.args), case.args, strict=False)
    )
    if len(shown) > 400:
        shown = shown[:396] + " ..."
    lines = [
        f"  first wrong case: {case.about}",
        f"    input:    {shown}",
        f"    expected: {fmt(case.expected)}",
        f"    actual:   {actual if kind in ('raised', 'unreadable') else fmt(actual)}",
    ]
    lines += [f"    {line}" for line in details]
    lines.append(f"  hint: {hint}")
    return lines


def _run_exact(name: str, fn: Callable, cases: Sequence[Case], hint: str,
               describe: Callable[[Any], Any] = lambda v: v, **kwargs) -> CheckResult:
    """``run_checks`` for answers compared with ``==`` (names, settings, objects)."""
    return run_checks(name, fn, cases, hint, describe=describe, **kwargs)


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


# ---------------------------------------------------------------- lesson 03: granularity and calibration

def check_per_channel_qparams(fn: Callable[..., tuple[np.ndarray, np.ndarray]]) -> CheckResult:
    """``fn(w, axis, quant_min, quant_max) -> (scales, zero_points)``: asymmetric min-max per channel."""
    eps = float(np.finfo(np.float32).eps)
    a = np.array
    w2 = a([[1.0, -2.0], [0.5, 0.25]], np.float32)
    conv = ((np.arange(16, dtype=np.float32) - 6) / 4).reshape(2, 2, 2, 2)
    cases = [
        Case((w2, 0, -128, 127), (a([3 / 255, 0.5 / 255]), a([42, -128])),
             "rows (axis 0): row 0 spans [-2, 1], row 1 [0, 0.5] once widened to include 0"),
        Case((w2, 1, -128, 127), (a([1 / 255, 2.25 / 255]), a([-128, 99])),
             "columns (axis 1)",
             "reduce over every axis except `axis`: move `axis` to the front "
             "(np.moveaxis) and flatten the rest, then take min and max of each row."),
        Case((conv, 0, -128, 127), (a([1.75 / 255, 2.25 / 255]), a([91, -128])),
             "a conv weight (out, in, kh, kw): one scale per output channel"),
        Case((conv, -1, -128, 127), (a([3.5 / 255, 3.5 / 255]), a([-19, -37])),
             "Keras layout, output channels last (axis=-1)"),
        Case((a([[0.3, -0.9, 0.6], [2.0, 1.0, 0.5]], np.float32), 0, 0, 255),
             (a([1.5 / 255, 2.0 / 255]), a([153, 0])), "uint8; an all-positive channel",
             "widen each channel's range to include 0 before computing its scale."),
        Case((a([[-1.5, 0.5], [0.2, -0.1]], np.float32), 0, -8, 7),
             (a([2.0 / 15, 0.3 / 15]), a([3, -3])),
             "4-bit: -1.5 / scale = -11.25 rounds to -11",
             "zero_point = quant_min - round(min / scale); int() would truncate differently "
             "for negative fractions."),
        Case((a([[0.0, 0.0], [1.0, -0.5]], np.float32), 0, -128, 127),
             (a([eps, 1.5 / 255]), a([-128, -43])), "a dead channel of zeros: scale floored at eps",
             "a channel with max == min would get scale 0: use np.maximum(scale, "
             "np.finfo(np.float32).eps)."),
        Case((a([[1.0, 3.0], [2.0, -6.0]], np.float32), 1, -128, 127),
             (a([2.0 / 255, 9.0 / 255]), a([-128, 42])), "columns again, one of them all positive"),
    ]
    return run_checks("per_channel_qparams", fn, cases, rtol=1e-6,
                      arg_names=["w", "axis", "quant_min", "quant_max"], hint=(
        "for each index along `axis`: min_val = min(channel min, 0), max_val = max(channel "
        "max, 0), scale = max((max_val - min_val) / (quant_max - quant_min), eps), "
        "zero_point = clip(quant_min - round(min_val / scale), quant_min, quant_max)."))


def check_percentile_observer(cls: Callable[[float], Any]) -> CheckResult:
    """``cls(percentile)`` with ``observe(x)`` and ``clipping_range() -> (min_val, max_val)``."""
    a = np.array

    learner = _learner(lambda f, *args: f(*args))  # every call into the learner's class

    @_wraps_learner
    def run(batches, percentile):
        obs = learner(cls, percentile)
        for b in batches:
            learner(obs.observe, b.copy())
        return learner(obs.clipping_range)

    ramp = np.arange(101, dtype=np.float32)
    rng = np.random.default_rng(3)
    normal = [rng.normal(0, 1, (8, 50)).astype(np.float32) for _ in range(3)]
    everything = np.concatenate([b.ravel() for b in normal]).astype(np.float64)
    spiky = np.concatenate([np.linspace(0, 1, 1000), [1000.0]]).astype(np.float32)
    cases = [
        Case(((ramp,), 99.0), (1.0, 99.0), "0, 1, ..., 100: the 1st and 99th percentiles",
             "lo = np.percentile(x, 100 - p), hi = np.percentile(x, p): p is in percent."),
        Case(((ramp[:51], ramp[51:]), 99.0), (1.0, 99.0),
             "the same values in two batches: the range uses every batch",
             "keep every batch (append to a list) and take the percentiles of all of them "
             "together, not of the last batch or an average of per-batch percentiles."),
        Case(((a([0.0, 10.0], np.float32),), 75.0), (2.5, 7.5),
             "between two values percentiles interpolate linearly (np.percentile's default)"),
        Case(((a([-3.0, 5.0], np.float32), a([2.0, 9.0], np.float32)), 100.0), (-3.0, 9.0),
             "percentile 100 is the min-max range"),
        Case(((spiky,), 99.9), (float(np.percentile(spiky.astype(np.float64), 0.1)),
                                float(np.percentile(spiky.astype(np.float64), 99.9))),
             "one huge outlier is clipped: hi stays near 1, far below 1000"),
        Case((tuple(normal), 99.0), (float(np.percentile(everything, 1.0)),
                                     float(np.percentile(everything, 99.0))),
             "three 2-D batches of normal data: flatten them, keep them all",
             "a batch may have any shape: np.ravel it before you keep it."),
    ]
    return run_checks("percentile_observer", run, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["batches", "percentile"], hint=(
        "observe(x) appends np.ravel(x) to a list; clipping_range() concatenates the list and "
        "returns (np.percentile(v, 100 - p), np.percentile(v, p))."))


def check_groupwise_fake_quantize(fn: Callable[[np.ndarray, int, int], np.ndarray]) -> CheckResult:
    """``fn(w, group_size, bits) -> w_hat``: symmetric narrow-range fake quantization per group."""
    a = np.array
    # Values placed between grid points (never near a .5 tie), so float32 and float64 agree.
    row = a([[0.7, -0.32, 0.11, 0.0]], np.float32)  # one group of 4, scale 0.1 at 4 bits
    two = a([[0.7, -0.32, 0.11, 0.0, 7.0, 2.2, -0.9, 4.1]], np.float32)  # scales 0.1 and 1.0
    cases = [
        Case((row, 4, 4), a([[0.7, -0.3, 0.1, 0.0]]),
             "one group: scale = 0.7 / 7, values snap to multiples of 0.1"),
        Case((two, 4, 4), a([[0.7, -0.3, 0.1, 0.0, 7.0, 2.0, -1.0, 4.0]]),
             "two groups, scales 0.1 and 1.0: the large group does not swamp the small one",
             "one scale per group of `group_size` consecutive values along the last axis: "
             "reshape to (-1, group_size), not one scale per row."),
        Case((two, 8, 4), a([[1.0, 0.0, 0.0, 0.0, 7.0, 2.0, -1.0, 4.0]]),
             "group_size = row length: one scale for the row, small values are lost"),
        Case((two.reshape(2, 4), 2, 4), a([[0.7, -0.3, 0.11, 0.0], [7.0, 2.0, -2 * 4.1 / 7, 4.1]]),
             "two rows, groups of 2: each pair has its own scale (4.1 / 7 for the last)",
             "groups run along the last axis of each row: w.reshape(-1, group_size) keeps that "
             "order; transposing first would group values from different rows."),
        Case((a([[0.0, 0.0, 1.4, -0.6]], np.float32), 2, 4), a([[0.0, 0.0, 1.4, -0.6]]),
             "an all-zero group stays zero (scale floored at eps, no NaN)",
             "max |w| of a group of zeros is 0: floor the scale at np.finfo(np.float32).eps "
             "before dividing."),
        Case((a([[0.3, -1.7, 2.9, -0.05]], np.float32), 1, 4), a([[0.3, -1.7, 2.9, -0.05]]),
             "groups of one value: every value is its group's maximum, so it is exact"),
        Case((a([[1.27, -0.634, 0.0049, 0.5]], np.float32), 4, 8),
             a([[1.27, -0.63, 0.0, 0.5]]), "8 bits: narrow range [-127, 127], scale 0.01",
             "the narrow range of b bits is [-(2**(b-1) - 1), 2**(b-1) - 1]: 7 for 4 bits, 127 "
             "for 8 bits; dividing by 8 or 128 clips the largest value."),
        Case((a([[0.9, -0.2, -0.6, 0.3]], np.float32), 4, 2), a([[0.9, 0.0, -0.9, 0.0]]),
             "2 bits: levels -1, 0, 1 times the largest |w|"),
    ]
    return run_checks("groupwise_fake_quantize", fn, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["w", "group_size", "bits"], hint=(
        "g = w.reshape(-1, group_size); qmax = 2**(bits-1) - 1; scale = max(max|g| per row / "
        "qmax, eps); w_hat = clip(round(g / scale), -qmax, qmax) * scale, reshaped to w.shape."))


def check_pack_int4(fn: Callable[[np.ndarray], np.ndarray]) -> CheckResult:
    """``fn(q) -> uint8 array``: signed 4-bit values two per byte, low nibble first."""
    a = np.array
    cases = [
        Case((a([1, 2], np.int8),), a([0x21]), "first value in the low nibble: 0x21 = 33",
             "byte = (q[0] & 0xF) | (q[1] & 0xF) << 4: the first value goes in bits 0-3."),
        Case((a([-1, 0], np.int8),), a([0x0F]), "-1 is 1111 in 4-bit two's complement",
             "mask with & 0xF before shifting: -1 & 0xF = 15, while -1 << 4 stays negative."),
        Case((a([0, -1], np.int8),), a([0xF0]), "a negative value in the high nibble",
             "compute in a wide type (int32), mask each value with & 0xF, then cast to uint8."),
        Case((a([-8, 7], np.int8),), a([0x78]), "the two ends of the int4 range"),
        Case((a([7, -8], np.int8),), a([0x87]), "the same values, swapped"),
        Case((a([3], np.int8),), a([0x03]), "an odd count: the last byte's high nibble is 0",
             "pad an odd-length array with one 0 before pairing the values."),
        Case((a([1, 2, 3], np.int8),), a([0x21, 0x03]), "three values take two bytes"),
        Case((np.arange(-8, 8, dtype=np.int8),),
             a([0x98, 0xBA, 0xDC, 0xFE, 0x10, 0x32, 0x54, 0x76]), "every int4 value once"),
    ]
    return run_checks("pack_int4", fn, cases, arg_names=["q"], dtype=np.uint8, dtype_hint=(
        "the bytes are right; store them as bytes: .astype(np.uint8) at the end."), hint=(
        "v = q.astype(np.int32) & 0xF, padded to an even length; "
        "packed = (v[0::2] | (v[1::2] << 4)).astype(np.uint8)."))


def check_unpack_int4(fn: Callable[[np.ndarray, int], np.ndarray]) -> CheckResult:
    """``fn(packed, n) -> int array``: the ``n`` signed 4-bit values, low nibble first."""
    a = np.array
    u8 = np.uint8
    cases = [
        Case((a([0x21], u8), 2), a([1, 2]), "low nibble first: 0x21 holds 1, then 2",
             "the first value is packed & 0xF, the second (packed >> 4) & 0xF."),
        Case((a([0x0F], u8), 2), a([-1, 0]), "1111 is -1: sign-extend the nibble",
             "a nibble v >= 8 stands for v - 16 (two's complement): (v ^ 8) - 8 does it."),
        Case((a([0x78], u8), 2), a([-8, 7]), "the two ends of the int4 range"),
        Case((a([0x80], u8), 2), a([0, -8]), "1000 is -8, the most negative value"),
        Case((a([0x03], u8), 1), a([3]), "n = 1: drop the padding nibble",
             "unpack both nibbles of every byte, then keep the first n values."),
        Case((a([0x21, 0x03], u8), 3), a([1, 2, 3]), "three values from two bytes"),
        Case((a([0xFF, 0xEE], u8), 4), a([-1, -1, -2, -2]), "all negative"),
        Case((a([0x98, 0xBA, 0xDC, 0xFE, 0x10, 0x32, 0x54, 0x76], u8), 16),
             np.arange(-8, 8), "every int4 value once"),
    ]
    return run_checks("unpack_int4", fn, cases, arg_names=["packed", "n"], dtype=np.integer,
                      dtype_hint="return integers: .astype(np.int8).", hint=(
        "v = np.stack([packed & 0xF, packed >> 4], axis=1).ravel().astype(np.int8)[:n]; "
        "return (v ^ 8) - 8."))


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


# ---------------------------------------------------------------- lesson 05: fake quantization and QAT

def check_fake_quantize_ste(fn: Callable[..., Any]) -> CheckResult:
    """``fn(x, scale, zero_point, quant_min, quant_max) -> x_hat``: a torch fake-quant op whose
    gradient is the straight-through estimator (1 where the rounded value is in range, else 0).

    The check runs ``fn`` on a float32 tensor that requires grad, back-propagates ones, and
    compares ``(x_hat, x.grad)``.
    """
    import torch  # only this lesson's checkers need torch

    learner = _learner(fn)

    @_wraps_learner
    def forward_and_grad(x, scale, zero_point, quant_min, quant_max):
        t = torch.tensor(x, dtype=torch.float32, requires_grad=True)
        y = learner(t, scale, zero_point, quant_min, quant_max)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"return a torch tensor, not {type(y).__name__}")
        if y.requires_grad:
            _learner(y.backward)(torch.ones_like(y))  # runs the learner's backward
        grad = t.grad.numpy() if t.grad is not None else np.full(t.shape, np.nan, np.float32)
        return y.detach().numpy(), grad

    def forward_right_and_grad(test):
        def diagnose(case, actual):
            (x_hat, grad), (want_x_hat, want_grad) = actual, case.expected
            want_grad = np.asarray(want_grad)
            return (_judge(want_x_hat, x_hat, 1e-6, 1e-7).kind == "ok"
                    and bool(test(np.asarray(grad, np.float64), want_grad)))
        return diagnose

    mistakes = [
        (forward_right_and_grad(lambda g, want: np.all(np.isnan(g))),
         "the values are right but no gradient reached x (shown as nan): the graph was cut "
         "(.detach(), .item() or numpy inside). Write a torch.autograd.Function whose backward "
         "returns grad_output times the in-range mask."),
        (forward_right_and_grad(lambda g, want: np.all(g == 0) and np.any(want != 0)),
         "the values are right but the gradient is 0 everywhere: torch.round has a zero gradient. "
         "Use the straight-through estimator: a torch.autograd.Function whose backward returns "
         "grad_output times the in-range mask (so 1 wherever the value was not clamped)."),
        (forward_right_and_grad(lambda g, want: np.all(g == 1) and np.any(want == 0)),
         "the gradient is 1 everywhere, also where the value was clamped: there the output does "
         "not move with x, so multiply grad_output by the mask quant_min <= q <= quant_max."),
    ]
    cases = [
        Case(([-1.0, 0.26, 0.74, 3.0], 0.5, 0, -2, 3),
             ([-1.0, 0.5, 0.5, 1.5], [1.0, 1.0, 1.0, 0.0]),
             "3.0 is clamped: its gradient is 0, the others pass",
             "where the value was clamped the output does not move with x: gradient 0 there."),
        Case(([0.25, 0.75, -0.25, 1.25], 0.5, 0, -8, 7), ([0.0, 1.0, 0.0, 1.0], [1.0] * 4),
             ".5 ties round to even, as torch.round",
             "torch.round rounds half to even; floor(v + 0.5) rounds 0.5 up."),
        Case(([0.0, 1.0, -0.1], 0.1, 10, 0, 255), ([0.0, 1.0, -0.1], [1.0, 1.0, 1.0]),
             "uint8 with zero point 10: 0.0 stays exact"),
        Case(([-5.0, 5.0, 0.3], 1.0, 0, -2, 1), ([-2.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
             "both ends clamped"),
        Case(([1.0, 1.4, 1.6, -2.4, -2.6], 1.0, 0, -2, 1),
             ([1.0, 1.0, 1.0, -2.0, -2.0], [1.0, 1.0, 0.0, 1.0, 0.0]),
             "the mask looks at the rounded value: 1.4 rounds to 1, inside the range",
             "compute the mask from q = round(x / scale) + zero_point, not from x / scale: "
             "1.4 rounds to 1 <= quant_max, so its gradient is 1, as in PyTorch."),
        Case(([-0.6, -0.7, 2.4, 2.5], 0.2, 3, 0, 15),
             ([-0.6, -0.6, 2.4, 2.4], [1.0, 0.0, 1.0, 1.0]),
             "uint4 with zero point 3: -3.5 rounds to -4, below the range; 12.5 to 12, inside",
             "add the zero point before clamping and before the mask: q = round(x / s) + zp."),
        Case(([0.0, 0.01, -0.01], 0.02, -128, -128, 127), ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
             "zero point at quant_min: +-0.5 steps round to the zero point, still inside"),
    ]
    return run_checks("fake_quantize_ste", forward_and_grad, cases, rtol=1e-6, atol=1e-7,
                      mistakes=mistakes,
                      arg_names=["x", "scale", "zero_point", "quant_min", "quant_max"], hint=(
        "forward: (clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * "
        "scale; backward: grad_output where quant_min <= round(x / scale) + zero_point <= "
        "quant_max, else 0 (save that mask in forward with ctx.save_for_backward)."))


def check_fake_quant_step(fn: Callable[..., tuple]) -> CheckResult:
    """``fn(x, min_val, max_val, averaging_constant, quant_min, quant_max) -> (x_hat, min, max)``:
    one forward step of a FakeQuantize with a moving-average min-max observer (asymmetric)."""
    eps = float(np.finfo(np.float32).eps)
    a = np.array
    cases = [
        Case((a([-1.0, 0.0, 2.0], np.float32), None, None, 0.5, -8, 7),
             ([-1.0, 0.0, 2.0], -1.0, 2.0), "the first batch sets the range",
             "when min_val is None (nothing observed yet) take the batch's min and max as they are."),
        Case((a([-3.0, 0.0, 6.0], np.float32), -1.0, 2.0, 0.5, -8, 7), ([-2.0, 0.0, 4.0], -2.0, 4.0),
             "a later batch moves the range halfway (c = 0.5): -3 and 6 are clamped",
             "new_min = min_val + c * (batch_min - min_val): the batch's own range is not used "
             "directly."),
        Case((a([1.0, 3.0], np.float32), None, None, 0.01, 0, 255), ([1.0, 3.0], 1.0, 3.0),
             "all positive: the qparams widen the range to include 0, the observer keeps [1, 3]",
             "widen to include 0 only for the scale and zero point (lo = min(min, 0)); return "
             "the observer's own min and max."),
        Case((a([-4.0, 0.5, 6.0], np.float32), -1.0, 1.0, 0.01, -128, 127),
             ([-1.0277647, 0.49756858, 1.0522352], -1.03, 1.05),
             "PyTorch's default c = 0.01: one extreme batch barely moves the range"),
        Case((a([0.0, 0.0], np.float32), None, None, 0.01, -8, 7), ([0.0, 0.0], 0.0, 0.0),
             "an all-zero batch: the scale is floored at eps",
             f"scale = max((hi - lo) / (quant_max - quant_min), {eps}) avoids dividing by 0."),
        Case((a([-0.5, 0.26, 1.0], np.float32), -1.0, 1.0, 0.5, 0, 3),
             ([-0.5833333, 0.0, 1.1666666], -0.75, 1.0),
             "2 bits unsigned over [-0.75, 1]: scale 1.75 / 3, zero point 1"),
    ]
    return run_checks("fake_quant_step", fn, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["x", "min_val", "max_val", "averaging_constant", "quant_min",
                                 "quant_max"], hint=(
        "1) update min/max (first batch: take them; later: move a fraction c towards the batch's); "
        "2) lo, hi = min(min, 0), max(max, 0); scale = (hi - lo) / (quant_max - quant_min); "
        "zero_point = quant_min - round(lo / scale), clamped; 3) fake-quantize x with them."))


def check_qat_step(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, x, y, scale, lr) -> new_w``: one SGD step of QAT on ``pred = x @ fq(w).T`` with the
    mean squared error, ``fq`` symmetric 4-bit narrow range ``[-7, 7]`` with the given scale."""
    a = np.array
    f = np.float32
    cases = [
        Case((a([[0.3, -0.2]], f), a([[1.0, 2.0]], f), a([[0.5]], f), 0.25, 0.1), a([[0.45, 0.1]]),
             "one weight row: fq(w) = [0.25, -0.25], the step updates the float w",
             "update the float (shadow) weights w, not their quantized copy fq(w): "
             "new_w = w - lr * grad."),
        Case((a([[2.0, 0.1]], f), a([[1.0, 1.0]], f), a([[1.0]], f), 0.25, 0.1), a([[2.0, -0.05]]),
             "2.0 / 0.25 = 8 is clamped to 7: that weight gets no gradient",
             "the STE passes the gradient only where round(w / scale) lies in [-7, 7]."),
        Case((a([[0.5, -0.5], [0.1, 0.9]], f), a([[1.0, 0.0], [0.5, -1.0]], f),
              a([[0.0, 1.0], [1.0, 0.0]], f), 0.1, 0.5), a([[0.40625, -0.5625], [0.40625, 0.9]]),
             "two samples, two outputs: the loss is the mean over all 4 elements",
             "loss = mean((x @ fq(w).T - y) ** 2) over every element, so grad = 2 * (pred - y) / "
             "pred.size, then @ x."),
        Case((a([[0.3, -0.2]], f), a([[1.0, 2.0]], f), a([[-0.25]], f), 0.25, 0.1), a([[0.3, -0.2]]),
             "the quantized model is already exact: zero gradient, w unchanged"),
        Case((a([[-1.0, 0.4, 0.05]], f), a([[1.0, -1.0, 2.0], [0.0, 1.0, 1.0]], f),
              a([[0.2], [0.3]], f), 0.125, 0.05), a([[-1.0, 0.32375, 0.19125]]),
             "-1.0 / 0.125 = -8 is clamped; 0.05 rounds to 0 but still learns",
             "a weight that rounds to 0 is inside the range: its gradient passes."),
    ]
    return run_checks("qat_step", fn, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["w", "x", "y", "scale", "lr"], hint=(
        "w_hat = clip(round(w / scale), -7, 7) * scale; pred = x @ w_hat.T; g = 2 * (pred - y) / "
        "pred.size; grad_w_hat = g.T @ x; grad_w = grad_w_hat * (|round(w / scale)| <= 7); "
        "return w - lr * grad_w (torch autograd with your STE works too)."))


def check_lsq_scale_grad(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(x, scale, zero_point, quant_min, quant_max) -> d x_hat / d scale`` per element (LSQ)."""
    a = np.array
    cases = [
        Case((a([0.2, 0.7, 5.0], np.float32), 0.5, 0, -4, 3), a([-0.4, -0.4, 3.0]),
             "inside: round(v) - v with v = x / s; clamped above: quant_max - zero_point",
             "where x_hat = (quant_max - z) * s is clamped, its derivative is quant_max - z."),
        Case((a([-3.0, -0.6, 0.0], np.float32), 0.5, 0, -4, 3), a([-4.0, 0.2, 0.0]),
             "clamped below: quant_min - zero_point; exact zero: 0"),
        Case((a([0.13, 0.35, -0.95], np.float32), 0.2, 2, 0, 7), a([0.35, 0.25, -2.0]),
             "a zero point: -4.75 rounds to -5, plus 2 is below 0, so quant_min - z = -2",
             "compare round(x / s) + zero_point with the range; the clamped derivative is "
             "quant_min - zero_point (or quant_max - zero_point), not quant_min."),
        Case((a([0.25, -0.25], np.float32), 0.5, 0, -8, 7), a([-0.5, 0.5]),
             "ties round to even: round(0.5) = 0"),
        Case((a([1.3, -1.3, 0.9], np.float32), 0.1, 0, -7, 7), a([7.0, -7.0, 7.0]),
             "everything clamped: the gradient pushes the scale to grow"),
        Case((a([0.33, -0.07], np.float32), 0.1, 0, -128, 127), a([-0.3, -0.3]),
             "8 bits, all inside",
             "inside the range d/ds [round(x/s) * s] = round(x/s) - x/s (the STE keeps round)."),
    ]
    return run_checks("lsq_scale_grad", fn, cases, rtol=1e-5, atol=1e-5,
                      arg_names=["x", "scale", "zero_point", "quant_min", "quant_max"], hint=(
        "v = x / s; q = round(v) + zero_point; inside [quant_min, quant_max]: round(v) - v; "
        "below: quant_min - zero_point; above: quant_max - zero_point."))


def _qat_models() -> dict[str, Callable[[], Any]]:
    """Small prepared models for check_freeze_observers, built on demand (torch, tl.qat)."""
    import torch
    from torch import nn

    from tutorial_lib import qat

    def seq(*layers):
        torch.manual_seed(0)
        return nn.Sequential(*layers)

    def one_frozen():
        m = qat.prepare_qat(seq(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), bits=4).eval()
        m(torch.ones(2, 4))  # calibrated on something else first
        m[0].input_fake_quant.observer_enabled = False
        return m

    def nested():
        inner = qat.prepare_qat(seq(nn.Linear(4, 3)), bits=8)
        return nn.Sequential(nn.Sequential(inner), nn.Softmax(dim=1))

    return {
        "Linear(4, 3), 8 bits": lambda: qat.prepare_qat(seq(nn.Linear(4, 3)), bits=8),
        "Linear-ReLU-Linear, 4 bits": lambda: qat.prepare_qat(
            seq(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), bits=4),
        "same, one observer already frozen": one_frozen,
        "Linear(4, 3) with learnable scales (LSQ)": lambda: qat.prepare_qat(
            seq(nn.Linear(4, 3)), bits=4, learnable=True),
        "a prepared model nested in two containers": nested,
    }


def check_freeze_observers(fn: Callable[[Any], Any]) -> CheckResult:
    """``fn(model)``: switch off the observer of every ``tl.qat.FakeQuantize`` in ``model``.

    For each model the check calibrates on one batch, calls ``fn``, runs a batch ten times
    larger, and reports ``(observers still on, fake-quant nodes on, scales that moved)``.
    """
    import torch

    from tutorial_lib import qat

    builders = _qat_models()

    learner = _learner(fn)

    @_wraps_learner
    def frozen_state(description):
        model = builders[description]()
        x = torch.linspace(-1, 1, 16).reshape(4, 4)
        model.eval()
        model(x)  # calibrate
        learner(model)
        fqs = [m for m in model.modules() if isinstance(m, qat.FakeQuantize)]
        before = [fq.scale.detach().clone() for fq in fqs]
        with torch.no_grad():
            model(10 * x)
        moved = sum(not torch.equal(b, fq.scale.detach()) for b, fq in zip(before, fqs, strict=True))
        return (sum(fq.observer_enabled for fq in fqs), sum(fq.fake_quant_enabled for fq in fqs),
                moved)

    counts = {"Linear(4, 3), 8 bits": 2, "Linear-ReLU-Linear, 4 bits": 4,
              "same, one observer already frozen": 4,
              "Linear(4, 3) with learnable scales (LSQ)": 2,
              "a prepared model nested in two containers": 2}
    hints = {
        "a prepared model nested in two containers":
            "walk every submodule with model.modules() (it recurses), not model.children().",
        "Linear(4, 3) with learnable scales (LSQ)":
            "LearnableFakeQuantize is a subclass of FakeQuantize: isinstance finds it too.",
    }
    cases = [Case((d,), (0, n, 0), d, hints.get(d, "")) for d, n in counts.items()]
    return _run_exact("freeze_observers", frozen_state, cases, arg_names=["model"], hint=(
        "for m in model.modules(): if isinstance(m, tl.qat.FakeQuantize): m.observer_enabled = "
        "False. Leave fake_quant_enabled alone: the model must keep quantizing, only the ranges "
        "stop moving. The answer is (observers on, fake-quant on, scales moved)."))


# ---------------------------------------------------------------- lesson 06: PyTorch quantization

def check_fuse_groups(fn: Callable[[list[tuple[str, str]]], list[list[str]]]) -> CheckResult:
    """``fn(layers) -> groups``: runs of (name, type) layers that eager ``fuse_modules`` merges.

    Patterns, longest first at each layer: Conv2d-BatchNorm2d-ReLU, Conv2d-BatchNorm2d,
    Conv2d-ReLU, Linear-ReLU; each layer joins at most one group.
    """
    course = [("conv1", "Conv2d"), ("bn1", "BatchNorm2d"), ("relu1", "ReLU"), ("pool1", "MaxPool2d"),
              ("conv2", "Conv2d"), ("bn2", "BatchNorm2d"), ("relu2", "ReLU"), ("pool2", "MaxPool2d"),
              ("conv3", "Conv2d"), ("bn3", "BatchNorm2d"), ("relu3", "ReLU"), ("pool3", "MaxPool2d"),
              ("flatten", "Flatten"), ("fc1", "Linear"), ("relu4", "ReLU"), ("fc2", "Linear")]
    cases = [
        Case((course,), [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"],
                         ["conv3", "bn3", "relu3"], ["fc1", "relu4"]], "the course CNN",
             "do not forget Linear followed by ReLU (fc1, relu4)."),
        Case(([("c", "Conv2d"), ("r", "ReLU")],), [["c", "r"]], "conv-relu without BatchNorm"),
        Case(([("c", "Conv2d"), ("b", "BatchNorm2d"), ("p", "MaxPool2d")],), [["c", "b"]],
             "conv-bn with no ReLU after it"),
        Case(([("c1", "Conv2d"), ("c2", "Conv2d"), ("b2", "BatchNorm2d"), ("r2", "ReLU")],),
             [["c2", "b2", "r2"]], "two convs in a row: the BatchNorm belongs to the second",
             "a group is a run of consecutive layers: c1 is followed by a conv, so it stays alone."),
        Case(([("p", "MaxPool2d"), ("r", "ReLU"), ("fc", "Linear")],), [],
             "a ReLU after pooling fuses with nothing"),
        Case(([("fc1", "Linear"), ("act", "ReLU"), ("fc2", "Linear")],), [["fc1", "act"]],
             "linear-relu, then a lone linear"),
        Case(([],), [], "no layers, no groups"),
    ]
    return _run_exact("fuse_groups", fn, cases, arg_names=["layers"],
                      describe=lambda g: [list(group) for group in g], hint=(
        "walk the list with an index; at each layer try conv-bn-relu, conv-bn, conv-relu, "
        "linear-relu (longest first) on the next types; on a match, record the names and skip past."))


def check_calibrate(fn: Callable) -> CheckResult:
    """``fn(model, images, batch_size) -> model``: every image once, in order, in eval mode, no grad."""
    import torch
    from torch import nn

    class Recorder(nn.Module):  # logs what calibration shows it, as an observer would
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(1)  # present so that train/eval mode matters
            self.calls: list[tuple[int, bool, bool]] = []
            self.seen: list[float] = []

        def forward(self, x):
            self.calls.append((len(x), self.training, torch.is_grad_enabled()))
            self.seen += x[:, 0, 0, 0].tolist()
            return x.flatten(1).sum(1)

    def describe(model):
        if not isinstance(model, Recorder):
            return f"returned {type(model).__name__}, not the model"
        return {"batches": [c[0] for c in model.calls],
                "eval mode": all(not c[1] for c in model.calls),
                "no gradients": all(not c[2] for c in model.calls),
                "images in order": model.seen == list(range(len(model.seen)))}

    def images(n):
        return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).clone()

    def expected(*batches):
        return {"batches": list(batches), "eval mode": True, "no gradients": True,
                "images in order": True}

    def model(train=True):
        return Recorder().train(train)

    cases = [
        Case((model(), images(10), 4), expected(4, 4, 2), "10 images in batches of 4",
             "the last batch may be smaller: range(0, len(images), batch_size) reaches it."),
        Case((model(), images(8), 4), expected(4, 4), "8 images in batches of 4"),
        Case((model(), images(3), 8), expected(3), "fewer images than one batch"),
        Case((model(), images(5), 1), expected(1, 1, 1, 1, 1), "batches of one image"),
        Case((model(train=False), images(6), 6), expected(6), "a model already in eval mode"),
    ]
    def show(args):
        model, x, batch_size = args
        return (f"model in {'train' if model.training else 'eval'} mode, "
                f"images of shape {tuple(x.shape)}, batch_size={batch_size}")

    return _run_exact("calibrate", fn, cases, describe=describe, show=show, hint=(
        "model.eval(); then under torch.no_grad(), call model(images[i:i + batch_size]) for i in "
        "range(0, len(images), batch_size); return the model."))


def check_state_dict_bytes(fn: Callable) -> CheckResult:
    """``fn(model) -> int``: the bytes ``torch.save(model.state_dict(), f)`` writes (torch 2.13)."""
    import torch
    from torch import nn

    torch.manual_seed(0)  # the values do not change the size, only the shapes do
    # Expected sizes: torch.save into io.BytesIO with torch 2.13.0, run by hand.
    cases = [
        Case((nn.Linear(4, 3),), 1893, "Linear(4, 3): 15 floats, and the file around them",
             "60 bytes of numbers, 1893 on disk: the file also stores names, shapes and records."),
        Case((nn.Linear(256, 10),), 12069, "Linear(256, 10)"),
        Case((nn.Linear(4, 3, bias=False),), 1641, "no bias: one tensor fewer"),
        Case((nn.Conv2d(1, 16, 3),), 2469, "Conv2d(1, 16, 3)"),
        Case((nn.BatchNorm2d(16),), 2713, "BatchNorm2d: buffers are saved too",
             "running_mean, running_var and num_batches_tracked are buffers, not parameters; "
             "the state dict holds both."),
        Case((nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)),), 2525,
             "a small Sequential"),
        Case((nn.ReLU(),), 1325, "no tensors at all: still a file"),
    ]
    return _run_exact("state_dict_bytes", fn, cases, arg_names=["model"],
                      describe=lambda v: v if isinstance(v, int) else f"{v!r} (not an int)", hint=(
        "buffer = io.BytesIO(); torch.save(model.state_dict(), buffer); return buffer.tell() "
        "(or len(buffer.getvalue()))."))


def check_keep_float(fn: Callable) -> CheckResult:
    """``fn(names) -> X86InductorQuantizer``: default int8 everywhere except the named modules."""
    import torch

    def describe(quantizer):
        config = getattr(quantizer, "global_config", None)
        if config is None:
            kind = "none"
        elif getattr(config, "is_qat", True) or config.input_activation.is_dynamic:
            kind = "not the default static config"
        elif (config.weight.dtype, config.weight.qscheme) != (torch.int8,
                                                             torch.per_channel_symmetric):
            kind = "not the default static config"
        else:
            kind = "int8 static, per-channel weights"
        names = getattr(quantizer, "module_name_qconfig", {})
        return {"quantizer": type(quantizer).__name__, "global": kind,
                "kept in float": sorted(n for n, c in names.items() if c is None),
                "other settings": len([c for c in names.values() if c is not None])
                + len(getattr(quantizer, "operator_type_qconfig", {}))}

    def expected(*names):
        return {"quantizer": "X86InductorQuantizer", "global": "int8 static, per-channel weights",
                "kept in float": sorted(names), "other settings": 0}

    cases = [
        Case((["fc2"],), expected("fc2"), "keep the last layer in float"),
        Case((["conv1", "fc2"],), expected("conv1", "fc2"), "first and last layer in float",
             "call set_module_name_qconfig(name, None) once per name."),
        Case(([],), expected(), "nothing kept in float: only the global config",
             "set_global(get_default_x86_inductor_quantization_config()) comes first, always."),
        Case((["conv3"],), expected("conv3"), "a middle layer"),
        Case((["fc1"],), expected("fc1"), "one of two Linear layers",
             "set_module_type_qconfig(nn.Linear, None) would keep every Linear in float; "
             "name the module instead."),
    ]
    return _run_exact("keep_float", fn, cases, arg_names=["names"], describe=describe, hint=(
        "quantizer = X86InductorQuantizer(); quantizer.set_global("
        "get_default_x86_inductor_quantization_config()); then for each name "
        "quantizer.set_module_name_qconfig(name, None)."))


def check_latency_stats(fn: Callable[[Sequence[float], int], tuple[float, float]]) -> CheckResult:
    """``fn(times_ms, warmup) -> (median, spread)``: drop warm-up runs, median and p75 - p25."""
    cases = [
        Case(([50.0, 2.0, 1.0, 3.0, 9.0, 2.0], 1), (2.0, 1.0),
             "a slow first run and one outlier", "drop the first `warmup` timings before anything."),
        Case(([10.0, 10.0, 10.0, 10.0], 0), (10.0, 0.0), "all equal: no spread"),
        Case(([100.0, 1.0, 2.0, 3.0, 4.0], 1), (2.5, 1.5),
             "even count: median between the middle two; quartiles interpolate",
             "np.percentile(kept, [25, 50, 75]) interpolates linearly between sorted values."),
        Case(([5.0, 4.0, 3.0, 2.0, 1.0], 2), (2.0, 1.0), "two warm-up runs"),
        Case(([1.0, 1.0, 1.0, 1.0, 1000.0], 0), (1.0, 0.0),
             "one hiccup of the machine must not move the answer",
             "the mean (200.8 here) follows the outlier; the median does not."),
        Case(([9.0, 3.0], 1), (3.0, 0.0), "one timing left"),
        Case(([7.0, 1.0, 8.0, 2.0, 6.0, 3.0], 0), (4.5, 4.5), "unsorted input"),
    ]
    return run_checks("latency_stats", fn, cases, rtol=1e-9, atol=1e-12,
                      arg_names=["times_ms", "warmup"], hint=(
        "kept = np.asarray(times_ms)[warmup:]; q1, median, q3 = np.percentile(kept, [25, 50, 75]); "
        "return median, q3 - q1."))


# ---------------------------------------------------------------- lesson 07: TFLite post-training

def check_representative_dataset(fn: Callable[[np.ndarray, int], Any]) -> CheckResult:
    """``fn(x, num_samples)``: yields ``[sample]`` lists, each one float32 array of batch 1.

    The report describes what ``fn`` yields: how many items, whether each is a list holding
    one array, whether that array has a batch dimension of 1 and dtype float32, and the sum of
    all values (to catch wrong or reordered samples).
    """
    learner = _learner(fn)

    @_wraps_learner
    def samples(x, num_samples):
        items = learner(x, num_samples)
        if isinstance(items, Iterable) and not isinstance(items, str | bytes | dict):
            items = _learner(list)(items)  # a generator runs the learner's code as it is read
        return items

    def describe(items):
        if not isinstance(items, list):
            return f"{_type_name(items)}, not a generator of samples"
        one_array = all(isinstance(i, list | tuple) and len(i) == 1 for i in items)
        arrays = [np.asarray(i[0]) for i in items] if one_array else []
        return {"items": len(items), "each a list of one array": one_array,
                "batch of 1": one_array and all(a.ndim >= 1 and a.shape[0] == 1 for a in arrays),
                "float32": one_array and all(a.dtype == np.float32 for a in arrays),
                "sum": round(float(sum(a.sum(dtype=np.float64) for a in arrays)), 6)}

    def expected(n, total):
        return {"items": n, "each a list of one array": True, "batch of 1": True,
                "float32": True, "sum": total}

    images = np.arange(5 * 2 * 2 * 1, dtype=np.float64).reshape(5, 2, 2, 1) / 10
    vectors = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.uint8)
    cases = [
        Case((images, 3), expected(3, 6.6), "the first 3 of 5 images (sums 0.6 + 2.2 + 3.8)",
             "yield [x[i:i + 1].astype(np.float32)]: a list holding one array of batch 1."),
        Case((images, 10), expected(5, 19.0), "asking for more samples than there are: all 5",
             "stop at len(x): range(min(num_samples, len(x)))."),
        Case((images, 1), expected(1, 0.6), "a single sample"),
        Case((vectors, 2), expected(2, 10.0), "uint8 vectors must become float32",
             "the converter feeds each array to a float32 input: cast with .astype(np.float32)."),
        Case((images, 0), expected(0, 0.0), "no samples: yield nothing"),
    ]
    return _run_exact("representative_dataset", samples, cases, arg_names=["x", "num_samples"],
                      describe=describe, show=lambda a: f"x of shape {a[0].shape} "
                      f"({a[0].dtype}), num_samples={a[1]}", hint=(
        "a generator: for i in range(min(num_samples, len(x))): "
        "yield [x[i:i + 1].astype(np.float32)]."))


def check_quantize_input(fn: Callable[[np.ndarray, float, int], np.ndarray]) -> CheckResult:
    """``fn(x, scale, zero_point) -> q``: float input to an int8 input tensor, as TFLite does.

    ``q = clamp(round(x / scale) + zero_point, -128, 127)`` rounding half away from zero, in
    dtype int8.
    """
    a = np.array

    cases = [
        Case((a([0.0, 0.2, 1.0], np.float32), 1 / 255, -128), a([-128, -77, 127]),
             "pixels in [0, 1] with the course CNN's input parameters"),
        Case((a([0.25, 1.25, -0.25, -1.25], np.float32), 0.5, 0), a([1, 3, -1, -3]),
             "ties x / scale = +-0.5 and +-2.5 round away from zero",
             "TFLite rounds half away from zero: np.sign(v) * np.floor(np.abs(v) + 0.5); "
             "np.round would give 0 and 2."),
        Case((a([-1.0, 0.0, 1.0], np.float32), 0.02, 10), a([-40, 10, 60]),
             "a positive zero point; 0.0 maps exactly to it"),
        Case((a([2.0, -3.0], np.float32), 1 / 255, -128), a([127, -128]),
             "out of range: clamp, never wrap",
             "clip to [-128, 127] before casting: astype(np.int8) wraps 382 around to 126."),
        Case((a([0.4], np.float32), 1 / 255, -128), a([-26]),
             "the dtype must be int8: LiteRT refuses anything else for an int8 input",
             "return q.astype(np.int8) after clipping."),
        Case((a([[0.1, 0.9], [0.4, 0.6]], np.float32), 0.1, -5), a([[-4, 4], [-1, 1]]),
             "a 2-D batch keeps its shape"),
    ]
    return run_checks("quantize_input", fn, cases, arg_names=["x", "scale", "zero_point"],
                      dtype=np.int8, dtype_hint=(
        "the values are right; LiteRT's int8 input takes np.int8 only: return "
        "q.astype(np.int8) after clipping."), hint=(
        "q = clip(round_half_away(x / scale) + zero_point, -128, 127), then .astype(np.int8)."))


def check_dequantize_weight(fn: Callable[[np.ndarray, Any, int], np.ndarray]) -> CheckResult:
    """``fn(q, scale, quantized_dimension) -> w``: a symmetric int8 weight read from a file.

    ``w = q * scale``, with one scale per index along ``quantized_dimension`` (zero points are 0
    for TFLite weights); a single number is a per-tensor scale.
    """
    a = np.array
    conv3 = np.arange(-13, 14, dtype=np.int8).reshape(3, 1, 3, 3)  # OHWI, 3 output channels
    conv3_expected = conv3.astype(np.float64) * a([0.5, 0.25, 0.125]).reshape(3, 1, 1, 1)
    depthwise = np.arange(12, dtype=np.int8).reshape(1, 2, 2, 3)  # 1HWC, channels last
    depthwise_expected = depthwise.astype(np.float64) * a([1.0, 0.5, 0.25])
    cases = [
        Case((a([[1, -2, 3], [127, -127, 0]], np.int8), a([0.5, 0.01]), 0),
             a([[0.5, -1.0, 1.5], [1.27, -1.27, 0.0]]), "FULLY_CONNECTED: (out, in), axis 0",
             "reshape the scales so they line up with quantized_dimension, e.g. "
             "np.expand_dims over the other axes."),
        Case((conv3, a([0.5, 0.25, 0.125]), 0), conv3_expected,
             "CONV_2D (O, H, W, I) with as many inputs as outputs: broadcasting along the last "
             "axis gives the wrong answer silently",
             "q * scale multiplies along the LAST axis; move the scales to axis "
             "quantized_dimension: scale.reshape([-1 if i == axis else 1 for i in range(q.ndim)])."),
        Case((depthwise, a([1.0, 0.5, 0.25]), 3), depthwise_expected,
             "DEPTHWISE_CONV_2D (1, H, W, C): channels on axis 3"),
        Case((a([-128, 0, 127], np.int8), 0.5, 0), a([-64.0, 0.0, 63.5]),
             "one scale for the whole tensor",
             "a plain number is a per-tensor scale: multiply directly."),
        Case((a([[100, -100], [50, 25]], np.int8), a([0.02, 0.04]), 1),
             a([[2.0, -4.0], [1.0, 1.0]]), "channels on axis 1"),
    ]
    return run_checks("dequantize_weight", fn, cases, rtol=1e-6, atol=1e-7, dtype=np.float32,
                      dtype_hint=("the values are right; return float32 as the exercise asks "
                                  "(the file stores float32 scales): np.asarray(q, np.float32) * "
                                  "np.asarray(scale, np.float32)."),
                      arg_names=["q", "scale", "quantized_dimension"], hint=(
        "w = q.astype(np.float32) * scale, with a per-channel scale reshaped to broadcast along "
        "quantized_dimension."))


def check_largest_scale(fn: Callable[[list[dict]], Any]) -> CheckResult:
    """``fn(rows) -> name``: the tensor with the largest scale in a ``tensor_table``-like list.

    Rows are dicts with at least "name" and "scale": None (not quantized), a number, or an
    array (one per channel: its largest entry counts). Return None when nothing is quantized.
    """
    a = np.array
    course = [{"name": "input", "scale": 0.0039}, {"name": "conv1/weights", "scale": a([0.01, 0.02])},
              {"name": "conv1", "scale": 0.0309}, {"name": "fc1", "scale": 0.053},
              {"name": "logits", "scale": 0.115}]
    cases = [
        Case((course,), "logits", "the course CNN's full-integer tensors: logits span most"),
        Case(([{"name": "x", "scale": None}, {"name": "w", "scale": 0.5},
               {"name": "y", "scale": 0.25}],), "w", "float tensors have no scale: skip them",
             "leave out rows whose scale is None (comparing None with a number raises)."),
        Case(([{"name": "w1", "scale": a([0.1, 0.9, 0.2])}, {"name": "y", "scale": 0.5}],), "w1",
             "a per-channel weight: its largest channel counts",
             "for an array of scales use its largest entry (np.max), not the first or the mean."),
        Case(([{"name": "w1", "scale": a([0.6, 0.1])}, {"name": "y", "scale": 0.5}],), "w1",
             "per channel again: the mean (0.35) would lose"),
        Case(([{"name": "a", "scale": None}, {"name": "b", "scale": None}],), None,
             "nothing is quantized: None", "return None when no row has a scale."),
        Case(([{"name": "only", "scale": 1e-6}],), "only", "a single tiny scale still wins"),
    ]
    return _run_exact("largest_scale", fn, cases, arg_names=["rows"], hint=(
        "keep rows with a scale, take float(np.max(row['scale'])) for each, and return the name "
        "of the largest (or None)."))


# ---------------------------------------------------------------- lesson 08: QAT with tfmot

def check_nudge(fn: Callable[[float, float, int], tuple[float, float, float]]) -> CheckResult:
    """``fn(min_val, max_val, num_bits) -> (nudged_min, nudged_max, scale)``, as TF's FakeQuant.

    ``scale = (max - min) / (2**num_bits - 1)``; the zero point ``-min / scale`` is rounded
    half away from zero and clamped to ``[0, 2**num_bits - 1]``, and the range is moved so that
    0.0 falls exactly on a level. Expected values are TensorFlow 2.21's
    ``tf.quantization.fake_quant_with_min_max_vars`` (computed in float32).
    """
    cases = [
        Case((-6.0, 6.0, 8), (-6.023529529571533, 5.976470470428467, 0.0470588244497776),
             "tfmot's initial range [-6, 6]: the zero point 127.5 rounds up to 128"),
        Case((0.0, 1.0, 8), (0.0, 1.0, 0.003921568859368563), "images in [0, 1]: nothing moves"),
        Case((-5.8635073, 6.0417705, 8), (-5.882607460021973, 6.022669315338135,
                                          0.04668736085295677),
             "a range after a short QAT fine-tune: zero point 125.59 rounds to 126",
             "round the zero point (-min / scale), do not truncate it."),
        Case((-0.1, 1.0, 8), (-0.09921568632125854, 1.0007842779159546, 0.004313725512474775),
             "zero point 23.18 rounds down to 23: the range slides up"),
        Case((-1.25, 6.25, 4), (-1.5, 6.0, 0.5), "4 bits, zero point exactly 2.5: away from zero",
             "TF rounds half away from zero (std::round): 2.5 becomes 3; np.round gives 2."),
        Case((0.2, 1.0, 8), (0.0, 0.800000011920929, 0.0031372548546642065),
             "a range without 0: the zero point clamps to 0 and the range slides down to 0",
             "clamp the zero point to [0, 2**num_bits - 1] before computing the nudged range."),
        Case((-2.0, -0.5, 8), (-1.5, 0.0, 0.0058823530562222),
             "all negative: the zero point clamps to 255"),
    ]
    return run_checks("nudge", fn, cases, rtol=1e-6, atol=1e-7,
                      arg_names=["min_val", "max_val", "num_bits"], hint=(
        "scale = (max_val - min_val) / (2**num_bits - 1); zero_point = clamp(round_half_away("
        "-min_val / scale), 0, 2**num_bits - 1); nudged_min = -zero_point * scale; "
        "nudged_max = (2**num_bits - 1 - zero_point) * scale."))


def check_fake_quant_min_max(fn: Callable[[np.ndarray, float, float, int], np.ndarray]) -> CheckResult:
    """``fn(x, min_val, max_val, num_bits) -> x_hat``: TF's FakeQuantWithMinMaxVars forward.

    Nudge the range (as ``check_nudge``), clamp ``x`` to it, then ``x_hat = floor((x -
    nudged_min) / scale + 0.5) * scale + nudged_min``. Expected values are TensorFlow 2.21's.
    """
    a = np.array
    cases = [
        Case((a([0.0, 0.31, 1.0, -0.2, 1.3], np.float32), 0.0, 1.0, 8),
             a([0.0, 0.30980393290519714, 1.0, 0.0, 1.0]), "[0, 1] with 255 steps; clamped ends",
             "clamp x to the nudged range before rounding."),
        Case((a([0.0, 1.0, -1.0, 2.9, 3.5, -1.5], np.float32), -1.0, 3.0, 8),
             a([0.0, 1.003921627998352, -1.003921627998352, 2.901960849761963,
                2.9960784912109375, -1.003921627998352]),
             "a range that needs nudging: 0.0 stays exact",
             "nudge first: with the raw range, 0.0 would come back as a small nonzero number."),
        Case((a([0.0, 1.0, -1.0, 0.4, 0.1], np.float32), -1.0, 3.0, 4),
             a([0.0, 1.0666667222976685, -1.0666667222976685, 0.5333333611488342, 0.0]),
             "4 bits: 15 steps of 0.267"),
        Case((a([0.25, 1.25, 0.75], np.float32), 0.0, 1.5, 2), a([0.5, 1.5, 1.0]),
             "2 bits, steps of 0.5: ties at 0.5 and 2.5 steps round up",
             "TF adds 0.5 and floors (half up); np.round rounds 0.5 and 2.5 to even."),
        Case((a([-5.0, 0.0, 0.1, 5.99, 7.0], np.float32), -6.0, 6.0, 8),
             a([-4.9882354736328125, 0.0, 0.0941176488995552, 5.976470470428467,
                5.976470470428467]), "tfmot's initial range: the top is 5.976, not 6"),
        Case((a([0.6, 0.05, 1.0], np.float32), 0.2, 1.0, 8),
             a([0.5992156863212585, 0.050196077674627304, 0.800000011920929]),
             "a range without 0 slides to [0, 0.8]"),
    ]
    return run_checks("fake_quant_min_max", fn, cases, rtol=1e-6, atol=1e-7,
                      arg_names=["x", "min_val", "max_val", "num_bits"], hint=(
        "nudge the range, clip x to [nudged_min, nudged_max], then "
        "np.floor((x - nudged_min) / scale + 0.5) * scale + nudged_min."))


def check_ema_range(fn: Callable[[Sequence[tuple[float, float]], float, tuple[float, float]],
                                 tuple[float, float]]) -> CheckResult:
    """``fn(batch_ranges, decay, init) -> (min, max)``: tfmot's MovingAverageQuantizer.

    Start from ``init``; for each batch's ``(batch_min, batch_max)`` first widen it to include
    0, then move each end: ``v = v - (v - target) * (1 - decay)``.
    """
    p23 = 0.999**23
    cases = [
        Case(([(0.0, 4.0)], 0.999, (-6.0, 6.0)), (-5.994, 5.998),
             "one step of tfmot's default decay from [-6, 6]",
             "each step moves only (1 - decay) = 0.1% of the way: v - (v - target) * (1 - decay)."),
        Case(([(0.0, 4.0)] * 23, 0.999, (-6.0, 6.0)), (-6 * p23, 4 + 2 * p23),
             "23 steps (one epoch of the course's digits): barely moved"),
        Case(([(0.5, 2.0)], 0.5, (-1.0, 1.0)), (-0.5, 1.5),
             "an all-positive batch: the min moves towards 0, not 0.5",
             "widen each batch range to include 0: min(batch_min, 0), max(batch_max, 0)."),
        Case(([(-3.0, -1.0)], 0.5, (0.0, 0.0)), (-1.5, 0.0), "an all-negative batch"),
        Case(([(0.0, 1.0), (0.0, 3.0), (0.0, 2.0)], 0.9, (-6.0, 6.0)), (-4.374, 4.925),
             "three batches, decay 0.9"),
        Case(([(-1.0, 2.0), (-0.5, 4.0)], 0.0, (-6.0, 6.0)), (-0.5, 4.0),
             "decay 0: the last batch's range"),
        Case(([], 0.999, (-6.0, 6.0)), (-6.0, 6.0), "no batches: the initial range"),
    ]
    return run_checks("ema_range", fn, cases, rtol=1e-9, atol=1e-12,
                      arg_names=["batch_ranges", "decay", "init"], hint=(
        "lo, hi = init; for each (bmin, bmax): lo -= (lo - min(bmin, 0)) * (1 - decay); "
        "hi -= (hi - max(bmax, 0)) * (1 - decay)."))


def check_qat_recovery(fn: Callable[[float, float, float], float]) -> CheckResult:
    """``fn(float_acc, ptq_acc, qat_acc) -> fraction``: how much of PTQ's loss QAT wins back.

    ``(qat_acc - ptq_acc) / (float_acc - ptq_acc)``: 1 means all of it, 0 none; NaN when PTQ
    lost nothing (there is nothing to recover).
    """
    cases = [
        Case((0.9, 0.8, 0.85), 0.5, "half of the 10 points come back"),
        Case((98.6, 61.7, 98.1), (98.1 - 61.7) / (98.6 - 61.7), "percentages work the same"),
        Case((0.9, 0.8, 0.8), 0.0, "QAT no better than PTQ"),
        Case((0.9, 0.8, 0.92), 1.2, "QAT beats the float model: above 1"),
        Case((0.9, 0.8, 0.75), -0.5, "QAT worse than PTQ: negative",
             "divide by the PTQ loss (float_acc - ptq_acc), not by an accuracy."),
        Case((0.9, 0.9, 0.89), math.nan, "PTQ lost nothing: NaN",
             "when float_acc - ptq_acc <= 0 there is nothing to recover: return math.nan."),
        Case((0.9, 0.95, 0.9), math.nan, "PTQ better than float: NaN too"),
    ]
    return run_checks("qat_recovery", fn, cases, rtol=1e-9,
                      arg_names=["float_acc", "ptq_acc", "qat_acc"], hint=(
        "lost = float_acc - ptq_acc; return math.nan if lost <= 0 else "
        "(qat_acc - ptq_acc) / lost."))
