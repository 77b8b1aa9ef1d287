"""The checkers' machinery: golden cases, the runners that report the first wrong case, and
``expect``, which asserts a lesson's conclusion where the text states it.

Every ``check_<name>`` in the topic modules of this package is a list of ``Case``s handed to
``run_checks`` (numeric answers) or ``_run_exact`` (names, settings, objects).
"""

from __future__ import annotations

import sysconfig
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Case", "CheckResult", "run_checks", "ClaimError", "expect"]

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
    tutorial_lib.checks.runner.ClaimError: the lesson claims "QAT always wins", but this run says otherwise (seed 1: 97.2% < 98.3%).
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


# Code that is not the learner's: this library, the standard library and installed packages.
_LIBRARY = Path(__file__).resolve().parents[1]
_INSTALLED = tuple(sorted(  # the deepest first: a venv's site-packages lies inside its stdlib folder
    {Path(p).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")
     if (p := sysconfig.get_paths().get(key))}, key=lambda path: -len(path.parts)))


def _where(filename: str) -> str | None:
    """Which library a source file belongs to ("numpy", "the standard library", "tutorial_lib"),
    or None for the learner's own code (a notebook cell, a script, a test)."""
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return None
    if path.is_relative_to(_LIBRARY):
        return "tutorial_lib"
    for root in _INSTALLED:
        if path.is_relative_to(root):
            parts = path.relative_to(root).parts
            if root.name in ("site-packages", "dist-packages") and len(parts) > 1:
                return parts[0].split(".")[0]
            return "the standard library"
    return None


def _learner_line(err: BaseException) -> str | None:
    """One line naming the learner's own line that raised ``err``: the last frame of the
    traceback in the learner's code, with its source, and the library the error came from if it
    was raised deeper down. None when no frame of the traceback is the learner's."""
    tb = err.__traceback__ or getattr(err.__cause__, "__traceback__", None)
    frames = traceback.extract_tb(tb) if tb is not None else []
    own = [i for i, f in enumerate(frames) if _where(f.filename) is None]
    if not own:
        return None
    frame = frames[own[-1]]
    source = (frame.line or "").strip()
    line = f"your line: {source}" if source else "your line:"
    line += f"   (line {frame.lineno} of {frame.name})"
    if own[-1] < len(frames) - 1:  # raised further down, in code the learner called
        line += f", raised inside {_where(frames[-1].filename)}"
    return line


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
        except _LearnerRaised as raised:  # the learner's bug: report it and their line, no traceback
            err = raised.err
            kind, actual = "raised", f"your function raised {type(err).__name__}: {err}"
            details = [line] if (line := _learner_line(err)) else []
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
