"""Checkers for lesson 11's exercises (debugging an int8 model): ``tl.checks.check_<name>(fn)``.

Expected values are worked out by hand (SQNR of small arrays, drops in dB, rounding of pixels),
not with ``tl.debug``, so that the library is checked by the same cases (tests/test_checks_debug.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from tutorial_lib.checks.runner import (
    Case,
    CheckResult,
    _learner,
    _run_exact,
    _type_name,
    _wraps_learner,
    run_checks,
)

__all__ = ["check_layer_sqnr", "check_culprit", "check_int8_input", "check_keep_float_layers"]

INF = math.inf


def _sqnr(x, x_hat) -> float:
    x, x_hat = np.asarray(x, np.float64), np.asarray(x_hat, np.float64)
    return 10 * math.log10(np.sum(x**2) / np.sum((x - x_hat) ** 2))


def check_layer_sqnr(fn: Callable[[Mapping, Mapping], dict]) -> CheckResult:
    """``fn(reference, quantized) -> {name: SQNR in dB}`` for the layers both dicts hold.

    ``10 log10(sum x**2 / sum (x - x_hat)**2)`` per layer, in the reference's order; inf for
    an exact copy; a layer only one side recorded is left out. The answer is compared as the
    list of its values in the expected order, after its names are checked.
    """
    a = np.array
    cases = [
        Case(({"input": a([1.0, -1.0]), "conv1": a([2.0, 2.0])},
              {"input": a([1.0, -1.0]), "conv1": a([2.2, 1.8])}),
             {"input": INF, "conv1": 20.0},
             "an exact copy is inf dB; 10% noise is 20 dB",
             "an exact copy has no noise: return math.inf there, not a division error."),
        Case(({"conv1": a([[3.0, 4.0], [0.0, 0.0]]), "fc": a([1.0, 2.0, 2.0])},
              {"conv1": a([[3.0, 4.5], [0.0, 0.0]]), "fc": a([1.0, 2.0, 1.0])}),
             {"conv1": _sqnr([3, 4, 0, 0], [3, 4.5, 0, 0]), "fc": _sqnr([1, 2, 2], [1, 2, 1])},
             "2-D tensors: sum over every element"),
        Case(({"input": a([0.5, 0.5]), "conv1": a([1.0, -2.0]), "output": a([1.0])},
              {"conv1": a([-1.0, 2.0]), "input": a([0.5, 0.25]), "extra": a([9.0])}),
             {"input": _sqnr([0.5, 0.5], [0.5, 0.25]), "conv1": _sqnr([1, -2], [-1, 2])},
             "names only one side has are left out; the reference's order is kept; a sign "
             "flip gives a negative SQNR",
             "loop over the reference's names and keep those the quantized dict also has."),
        Case(({"fc": a([1.0, 3.0, -2.0, 0.5], np.float32)},
              {"fc": a([1.0, 3.0, -2.0, 0.75], np.float32)}),
             {"fc": _sqnr([1, 3, -2, 0.5], [1, 3, -2, 0.75])},
             "float32 tensors: compute the sums in float64 or float32, the dB agree to 1e-5"),
    ]
    learner = _learner(fn)

    @_wraps_learner
    def values(reference, quantized, expected_names):
        answer = learner(reference, quantized)
        if not isinstance(answer, Mapping):
            raise TypeError(f"expected a dict {{name: dB}}, got {_type_name(answer)}")
        if list(answer) != expected_names:
            raise ValueError(f"names: expected {expected_names} in this order, got {list(answer)}")
        return np.array([float(v) if isinstance(v, int | float | np.number) else np.nan
                         for v in answer.values()])

    wrapped = [Case((*c.args, list(c.expected)), np.array(list(c.expected.values())), c.about,
                    c.hint) for c in cases]
    return run_checks("layer_sqnr", values, wrapped, rtol=1e-5, atol=1e-6,
                      show=lambda args: f"reference={_short(args[0])}, quantized={_short(args[1])}",
                      dtype=np.floating, hint=(
        "for each name of reference that quantized also has: x, x_hat = reference[name], "
        "quantized[name]; 10 * log10(sum(x**2) / sum((x - x_hat)**2)), inf when the noise is 0."))


def _short(d: Mapping) -> str:
    return "{" + ", ".join(f"{k!r}: {np.asarray(v).tolist()}" for k, v in d.items()) + "}"


def check_culprit(fn: Callable[[Mapping], str]) -> CheckResult:
    """``fn(sqnr) -> name``: the layer whose SQNR drops most from the tensor before it.

    ``sqnr`` is ``{name: dB}`` in network order. The first tensor's drop is measured from
    48 dB (an int8 tensor's best); values above 48 dB, inf included, count as 48 dB.
    """
    cases = [
        Case(({"input": 45.0, "conv1": 38.0, "conv2": 2.0, "fc": 1.5},), "conv2",
             "a collapse in the middle: conv2 loses 36 dB"),
        Case(({"input": -3.0, "conv1": -4.0, "fc": -4.5},), "input",
             "broken from the start: the input itself is 51 dB below 48 dB (a wrong input scale)",
             "measure the first tensor's drop from 48 dB, not from nothing."),
        Case(({"input": 70.0, "conv1": 40.0, "conv2": 20.0, "fc": 18.0},), "conv2",
             "an input above 48 dB counts as 48 dB: conv1 drops 8 dB, conv2 20 dB",
             "cap every SQNR at 48 dB before taking differences."),
        Case(({"input": 45.0, "conv1": 40.0, "pool1": INF, "flatten": INF, "conv2": 35.0},),
             "conv2", "exact copies (inf, twice in a row) count as 48 dB: no NaN from inf - inf",
             "cap every SQNR at 48 dB before taking differences: inf - inf is NaN."),
        Case(({"input": 48.0, "conv1": 30.0, "conv2": 12.0, "conv3": 5.0, "fc": 4.0},), "conv1",
             "the lowest SQNR (fc) is not the culprit: it only inherits the error",
             "the culprit is where the SQNR falls most from the tensor before, not the lowest."),
        Case(({"input": 40.0, "conv1": 35.0, "conv2": 33.0, "fc": 10.0},), "fc",
             "the last layer can be the culprit too"),
    ]
    lowest = (lambda case, v: v == min(case.args[0], key=case.args[0].get),
              "the culprit is where the SQNR falls most from the tensor before, not the lowest "
              "SQNR: the layers after the culprit only inherit its error.")
    return _run_exact("culprit", fn, cases, mistakes=[lowest], describe=lambda v: v if isinstance(v, str) else (
        f"{_type_name(v)} {v!r}, not a layer name"), hint=(
        "drops: previous = 48.0; for each name: d = previous - min(sqnr[name], 48.0); "
        "previous = min(sqnr[name], 48.0); return the name with the largest d."))


def check_int8_input(fn: Callable[[np.ndarray, dict], np.ndarray]) -> CheckResult:
    """``fn(x, input_details) -> q``: float images to what an int8 LiteRT input expects.

    ``input_details`` is the dict of ``interpreter.get_input_details()[0]``; its
    ``"quantization"`` is ``(scale, zero_point)``. ``q = clip(round_half_away(x / scale) +
    zero_point, -128, 127)`` in dtype int8, the batch's shape kept.
    """
    a = np.array

    def details(scale, zero_point):
        return {"name": "serving_default_image:0", "index": 0, "shape": a([1, 2, 2, 1]),
                "dtype": np.int8, "quantization": (scale, zero_point)}

    pixels = a([[[[0.0], [0.2]], [[0.5], [1.0]]]], np.float32)
    cases = [
        Case((pixels, details(1 / 255, -128)), a([[[[-128], [-77]], [[0], [127]]]]),
             "pixels in [0, 1] with the course CNN's input parameters (scale 1/255, zero point "
             "-128)", "read scale and zero point from input_details['quantization']: "
                      "q = x / scale + zero_point, not x * 255."),
        Case((pixels, details(0.5 / 127, 0)), a([[[[0], [51]], [[127], [127]]]]),
             "another model's input parameters: values above 0.5 clamp to 127",
             "clip to [-128, 127] before casting: astype(np.int8) wraps 254 around to -2."),
        Case((a([[[[0.25], [1.25]], [[-0.25], [-1.25]]]], np.float32), details(0.5, 0)),
             a([[[[1], [3]], [[-1], [-3]]]]),
             "ties x / scale = +-0.5 and +-2.5 round away from zero, as LiteRT",
             "round half away from zero: np.sign(v) * np.floor(np.abs(v) + 0.5)."),
        Case((np.concatenate([pixels, pixels[:, ::-1]]), details(1 / 255, -128)),
             a([[[[-128], [-77]], [[0], [127]]], [[[0], [127]], [[-128], [-77]]]]),
             "a batch of two images keeps its shape (2, 2, 2, 1)"),
    ]
    return run_checks("int8_input", fn, cases, dtype=np.int8,
                      show=lambda args: f"x={args[0].tolist()}, input_details['quantization']="
                                        f"{args[1]['quantization']}",
                      mistakes=[(lambda case, q: np.array_equal(
                          np.asarray(q, np.int64),
                          np.clip(np.round(case.args[0] * 255), -128, 127)), (
                          "x * 255 ignores the zero point: the model's int8 input is "
                          "round(x / scale) + zero_point, here x * 255 - 128."))],
                      dtype_hint="the values are right; LiteRT takes only np.int8 for an int8 "
                                 "input: return q.astype(np.int8) after clipping.",
                      hint="scale, zero_point = input_details['quantization']; q = clip("
                           "round_half_away(x / scale) + zero_point, -128, 127).astype(np.int8).")


def check_keep_float_layers(fn: Callable[[Mapping, float], list]) -> CheckResult:
    """``fn(sqnr, max_drop_db) -> names``: the layers to keep in float, in network order.

    A layer is kept in float when its SQNR drops by more than ``max_drop_db`` from the tensor
    before it (the first tensor from 48 dB; values above 48 dB count as 48 dB, as in
    ``check_culprit``).
    """
    healthy = {"input": 47.0, "conv1": 36.0, "pool1": 37.0, "conv2": 31.0, "fc": 30.0}
    cases = [
        Case((healthy, 12.0), [], "a healthy int8 model: no layer loses 12 dB, nothing stays float",
             "return an empty list when no drop is larger than max_drop_db."),
        Case((healthy, 5.0), ["conv1", "conv2"], "a stricter budget: conv1 (11 dB) and conv2 "
                                                 "(6 dB) go float, in network order"),
        Case(({"input": 50.0, "conv1": 40.0, "conv2": 8.0, "pool2": INF, "conv3": 1.0}, 10.0),
             ["conv2", "conv3"], "inf counts as 48 dB: conv3 drops 47 dB after the exact pool",
             "cap every SQNR at 48 dB before taking differences."),
        Case(({"input": -2.0, "conv1": -3.0}, 10.0), ["input"],
             "a wrong input scale: no layer can fix it by staying float, but the check names it"),
        Case(({"input": 40.0, "conv1": 30.0}, 10.0), [],
             "a drop of exactly max_drop_db is allowed (more than, not at least)"),
    ]

    def describe(v):
        if isinstance(v, str) or not isinstance(v, list | tuple):
            return f"{_type_name(v)} {v!r}, not a list of layer names"
        return list(v)

    return _run_exact("keep_float_layers", fn, cases, describe=describe, hint=(
        "compute each layer's drop as in culprit (from 48 dB, values capped at 48 dB) and "
        "return [name for name in sqnr if drop[name] > max_drop_db]."))
