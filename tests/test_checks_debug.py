"""Lesson 11's checkers: right answers pass, the mistakes learners make fail with their hint."""

import math

import numpy as np
import pytest

from tutorial_lib import checks, debug, equalize


def _cle_scales(w1, b1, w2):
    return equalize.equalize_pair(w1, b1, w2).scales


def _split(model, calibration_x, per_channel=False, fold=True, weight_bits=None,
           in_place=False):
    import tutorial_lib as tl
    tb = tl.torch_bridge
    folded = tb.fold_batchnorm(model) if fold else model
    if in_place:  # a learner who edits the planted model itself
        with tb.torch.no_grad():
            model.conv1.weight.mul_(1.0)
            model.conv1.weight[0, 0, 0, 0] += 1e-3
    inputs = tb.layer_inputs(folded, calibration_x, tb.weighted_layers(folded))
    qparams = {n: tl.choose_qparams(float(x.min()), float(x.max()), 0, 255)
               for n, x in inputs.items()}
    return {"weights only": tb.fake_quantize_model(folded, {}, per_channel=per_channel),
            "activations only": tb.fake_quantize_model(folded, qparams, quant_min=0,
                                                       quant_max=255, weight_bits=weight_bits)}


def _sweep(model, calibration_x, layers, per_channel=False, inverse=False, percent=False):
    import tutorial_lib as tl
    result = {}
    for layer in layers:
        keep = [n for n in layers if n != layer] if inverse else [layer]
        q = debug.torch_pt2e(model, calibration_x, per_channel=per_channel, keep_float=keep)
        result[layer] = tl.torch_bridge.digits_accuracy(q) * (100 if percent else 1)
    return result


def _each_named(check, wrong, capsys):
    """Every wrong answer fails, and its report carries the hint that names its mistake."""
    for hint, fn in wrong.items():
        assert not check(fn)
        out = capsys.readouterr().out
        assert hint in out, (hint, out)


def test_the_library_passes_the_numpy_checkers(capsys):
    assert checks.check_layer_sqnr(debug.layer_sqnr)
    assert checks.check_culprit(debug.culprit)
    assert checks.check_cle_scales(_cle_scales)
    out = capsys.readouterr().out
    assert "✓ layer_sqnr: 5/5" in out and "✓ culprit: 7/7 exact" in out
    assert "✓ cle_scales: 3/3" in out


def test_wrong_sqnr_answers_are_named(capsys):
    def torchao(reference, quantized):  # torchao's compute_sqnr: the quantized tensor as signal
        out = {}
        for n in reference:
            if n in quantized:
                x, x_hat = reference[n], quantized[n]
                noise = np.sum((x - x_hat) ** 2)
                out[n] = math.inf if noise == 0 else float(10 * np.log10(np.sum(x_hat**2) / noise))
        return out
    assert not checks.check_layer_sqnr(torchao)
    assert "torchao's compute_sqnr" in capsys.readouterr().out

    def twenty(reference, quantized):
        return {n: 2 * db for n, db in debug.layer_sqnr(reference, quantized).items()}
    assert not checks.check_layer_sqnr(twenty)
    assert "20 * log10 is for a ratio of amplitudes" in capsys.readouterr().out

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


def test_wrong_culprits_get_their_hint(capsys):
    assert not checks.check_culprit(lambda sqnr: min(sqnr, key=sqnr.get))
    assert "not the lowest SQNR" in capsys.readouterr().out

    def db_drop(sqnr):  # the old rule: the largest drop in dB from 48 dB
        previous, lost = 48.0, {}
        for name, db in sqnr.items():
            lost[name], previous = previous - min(db, 48.0), min(db, 48.0)
        return max(lost, key=lost.get)
    assert not checks.check_culprit(db_drop)
    assert "largest drop in dB" in capsys.readouterr().out

    def uncapped(sqnr):
        previous, added = 0.0, {}
        for name, db in sqnr.items():
            share = 0.0 if math.isinf(db) else 10 ** (-db / 10)
            added[name], previous = share - previous, share
        return max(added, key=added.get)
    assert not checks.check_culprit(uncapped)
    assert "cap each share at 1" in capsys.readouterr().out

    assert not checks.check_culprit(lambda sqnr: 3)
    assert "int 3, not a layer name" in capsys.readouterr().out


def test_wrong_cle_scales_get_their_hint(capsys):
    def ranges(w, axis):
        others = tuple(i for i in range(w.ndim) if i != axis)
        return w.max(axis=others) - w.min(axis=others)
    wrong = {
        "upside down": lambda w1, b1, w2: np.sqrt(ranges(w2, 1) / ranges(w1, 0)),
        "square root splits": lambda w1, b1, w2: ranges(w1, 0) / ranges(w2, 1),
        "not max |w|": lambda w1, b1, w2: np.sqrt(
            np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
            / np.abs(np.moveaxis(w2, 1, 0)).reshape(w2.shape[1], -1).max(axis=1)),
        "*input* channel": lambda w1, b1, w2: np.sqrt(ranges(w1, 0) / (ranges(w2, 0) + 1e-9)),
    }
    _each_named(checks.check_cle_scales, wrong, capsys)
    # one range for the whole tensor: no named mistake, the general hint
    assert not checks.check_cle_scales(lambda w1, b1, w2: np.full(
        w1.shape[0], np.sqrt(np.ptp(w1) / np.ptp(w2))))
    assert "hint: r1 = max - min" in capsys.readouterr().out


def test_split_checker_on_the_real_model(capsys):
    pytest.importorskip("torchao")
    assert checks.check_weight_activation_split(_split)
    assert "✓ weight_activation_split: 3/3 exact" in capsys.readouterr().out
    wrong = {
        "bn2's gamma: fold first": lambda m, c: _split(m, c, fold=False),
        "per-channel weight scales": lambda m, c: _split(m, c, per_channel=True),
        "keep the weights float (weight_bits=None)": lambda m, c: _split(m, c, weight_bits=8),
        "work on a copy": lambda m, c: _split(m, c, in_place=True),
        "the two are swapped": lambda m, c: dict(zip(("activations only", "weights only"),
                                                     _split(m, c).values(), strict=True)),
    }
    _each_named(checks.check_weight_activation_split, wrong, capsys)
    assert not checks.check_weight_activation_split(lambda m, c: [m, m])
    assert "return {" in capsys.readouterr().out


def test_sweep_checker_on_the_real_model(capsys):
    pytest.importorskip("torchao")
    assert checks.check_float_sweep(_sweep)
    assert "✓ float_sweep: 1/1 exact" in capsys.readouterr().out
    wrong = {
        "keeps every layer *but* one": lambda m, c, ls: _sweep(m, c, ls, inverse=True),
        "per-channel int8 models": lambda m, c, ls: _sweep(m, c, ls, per_channel=True),
        "not percent": lambda m, c, ls: _sweep(m, c, ls, percent=True),
        "in that order": lambda m, c, ls: dict(reversed(_sweep(m, c, ls).items())),
    }
    _each_named(checks.check_float_sweep, wrong, capsys)


def test_equalize_outlier_takes_a_learners_scales():
    pytest.importorskip("torchao")
    model, _ = checks.debug.planted_cnn(0)
    ours = debug.equalize_outlier(model, "conv2", "conv3", scales=_cle_scales)
    assert np.max(ours) > 100  # the planted channel's scale
    with pytest.raises(ValueError, match="positive finite"):
        debug.equalize_outlier(model, "conv2", "conv3", scales=lambda w1, b1, w2: -np.ones(32))


def test_unfinished_exercises_say_so(capsys):
    def todo(*args):
        raise NotImplementedError
    for check in (checks.check_layer_sqnr, checks.check_culprit, checks.check_cle_scales,
                  checks.check_weight_activation_split, checks.check_float_sweep):
        assert not check(todo)
    assert capsys.readouterr().out.count("not implemented yet") == 5


# For tests/test_checks.py: one right and one wrong answer per checker.
REFERENCES = {"layer_sqnr": debug.layer_sqnr, "culprit": debug.culprit, "cle_scales": _cle_scales,
              "weight_activation_split": _split, "float_sweep": _sweep}
MISTAKES = {"layer_sqnr": lambda r, q: {n: 0.0 for n in r if n in q},
            "culprit": lambda sqnr: min(sqnr, key=sqnr.get),
            "cle_scales": lambda w1, b1, w2: np.ones(w1.shape[0]),
            "weight_activation_split": lambda m, c: _split(m, c, fold=False),
            "float_sweep": lambda m, c, ls: _sweep(m, c, ls, per_channel=True)}
