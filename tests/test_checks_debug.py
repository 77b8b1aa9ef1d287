"""Lesson 11's checkers: right answers pass, wrong ones fail with a clear report."""

import math

import numpy as np

from tutorial_lib import checks, debug


def _int8_input(x, details):
    scale, zero_point = details["quantization"]
    v = np.asarray(x, np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def _keep_float(sqnr, max_drop_db):
    lost = debug.drops(sqnr)
    return [name for name in sqnr if lost[name] > max_drop_db]


def test_the_library_passes_every_checker(capsys):
    assert checks.check_layer_sqnr(debug.layer_sqnr)
    assert checks.check_culprit(debug.culprit)
    assert checks.check_int8_input(_int8_input)
    assert checks.check_keep_float_layers(_keep_float)
    out = capsys.readouterr().out
    assert "✓ layer_sqnr: 4/4" in out and "✓ culprit: 6/6" in out and "✓ keep_float_layers: 5/5 exact" in out


def test_wrong_sqnr_answers_are_named(capsys):
    def no_log(reference, quantized):  # a ratio, not decibels
        return {n: float(np.sum(reference[n] ** 2) / max(np.sum((reference[n] - quantized[n]) ** 2),
                                                         1e-30)) for n in reference if n in quantized}
    assert not checks.check_layer_sqnr(no_log)
    assert "max difference" in capsys.readouterr().out

    def every_name(reference, quantized):
        return {**{n: 0.0 for n in reference}, "extra": 0.0}
    assert not checks.check_layer_sqnr(every_name)
    assert "names: expected" in capsys.readouterr().out

    def nan_for_copies(reference, quantized):
        with np.errstate(divide="ignore", invalid="ignore"):
            return {n: float(10 * np.log10(np.sum(reference[n] ** 2) / np.sum(
                (reference[n] - quantized[n]) ** 2)) * (0 if np.array_equal(reference[n], quantized[n]) else 1))
                for n in reference if n in quantized}
    assert not checks.check_layer_sqnr(nan_for_copies)
    assert "NaN: got NaN where a number is expected" in capsys.readouterr().out


def test_wrong_culprits_get_the_hint(capsys):
    def lowest(sqnr):
        return min(sqnr, key=sqnr.get)
    assert not checks.check_culprit(lowest)
    assert "not the lowest" in capsys.readouterr().out

    def uncapped(sqnr):
        names, values = list(sqnr), [48.0, *sqnr.values()]
        return names[int(np.argmax(-np.diff(values)))]
    assert not checks.check_culprit(uncapped)
    out = capsys.readouterr().out
    assert "✗ culprit" in out and "expected: 'conv2'" in out

    assert not checks.check_culprit(lambda sqnr: 3)
    assert "int 3, not a layer name" in capsys.readouterr().out


def test_wrong_int8_inputs(capsys):
    def times_255(x, details):
        return np.clip(np.round(x * 255), -128, 127).astype(np.int8)
    assert not checks.check_int8_input(times_255)
    assert "ignores the zero point" in capsys.readouterr().out

    def as_int64(x, details):
        return _int8_input(x, details).astype(np.int64)
    assert not checks.check_int8_input(as_int64)
    assert "dtype: expected int8, got int64" in capsys.readouterr().out

    def wraps(x, details):
        scale, zero_point = details["quantization"]
        return (np.round(x / scale) + zero_point).astype(np.int64).astype(np.int8)
    assert not checks.check_int8_input(wraps)
    assert "first wrong case" in capsys.readouterr().out

    def flat(x, details):
        return _int8_input(x, details).ravel()
    assert not checks.check_int8_input(flat)
    assert "shape: expected" in capsys.readouterr().out


def test_wrong_keep_float_lists(capsys):
    assert not checks.check_keep_float_layers(lambda sqnr, budget: [debug.culprit(sqnr)])
    assert "first wrong case" in capsys.readouterr().out
    assert not checks.check_keep_float_layers(lambda sqnr, budget: "conv2")
    assert "not a list of layer names" in capsys.readouterr().out

    def at_least(sqnr, budget):
        lost = debug.drops(sqnr)
        return [n for n in sqnr if lost[n] >= budget]
    assert not checks.check_keep_float_layers(at_least)
    assert "more than, not at least" in capsys.readouterr().out


def test_unfinished_exercises_say_so(capsys):
    def todo(*args):
        raise NotImplementedError
    for check in (checks.check_layer_sqnr, checks.check_culprit, checks.check_int8_input,
                  checks.check_keep_float_layers):
        assert not check(todo)
    assert capsys.readouterr().out.count("not implemented yet") == 4
    assert math.isinf(debug.layer_sqnr({"a": np.ones(2)}, {"a": np.ones(2)})["a"])


def _times_255(x, details):
    return np.clip(np.round(x * 255), -128, 127).astype(np.int8)


# For tests/test_checks.py: one right and one wrong answer per checker.
REFERENCES = {"layer_sqnr": debug.layer_sqnr, "culprit": debug.culprit,
              "int8_input": _int8_input, "keep_float_layers": _keep_float}
MISTAKES = {"layer_sqnr": lambda r, q: {n: 0.0 for n in r if n in q},
            "culprit": lambda sqnr: min(sqnr, key=sqnr.get),
            "int8_input": _times_255,
            "keep_float_layers": lambda sqnr, budget: [debug.culprit(sqnr)]}
