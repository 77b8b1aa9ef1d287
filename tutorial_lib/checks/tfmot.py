"""Checkers for lesson 08's exercises (QAT with tfmot): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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

__all__ = ["check_nudge", "check_fake_quant_min_max", "check_ema_range", "check_qat_recovery",
    "check_annotate_except"]


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


def check_annotate_except(fn: Callable) -> CheckResult:
    """``fn(model, keep_float) -> annotated``: a clone of a Keras model with every layer annotated
    for QAT (``quantize_annotate_layer``) except those named in ``keep_float``.

    The check builds a small tf_keras model (conv1 -> bn1 -> relu1 -> flatten -> fc -> fc_out),
    reads which layers of what ``fn`` returns are wrapped in ``QuantizeAnnotate`` and which are
    left as they were, and makes sure ``quantize_apply`` accepts the result. A
    BatchNormalization goes with its convolution: the cases keep both or neither.
    """
    import warnings

    from tutorial_lib.bridges import tflite_bridge as tf_side
    from tutorial_lib.course._quiet import quiet_stderr

    keras = tf_side.tf_keras
    keras_q = tf_side.load_tfmot().quantization.keras
    learner = _learner(fn)

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([
            keras.layers.InputLayer(input_shape=(8, 8, 1), name="image"),
            keras.layers.Conv2D(4, 3, name="conv1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.ReLU(name="relu1"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(8, activation="relu", name="fc"),
            keras.layers.Dense(3, name="fc_out")], name="small_cnn")

    names = [layer.name for layer in build().layers]

    @_wraps_learner
    def annotate(model, keep_float):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return learner(model, list(keep_float))

    def describe(annotated):
        if not isinstance(annotated, keras.Model):
            return f"returned {_type_name(annotated)}, not a Keras model"
        kinds = {type(layer).__name__ for layer in annotated.layers}
        if "QuantizeWrapperV2" in kinds:
            return "a model already quantize_apply'd: return the annotated clone"
        if "QuantizeAnnotate" not in kinds:
            return "a model with no annotated layer"
        try:
            with quiet_stderr():
                keras_q.quantize_apply(annotated)
        except Exception as err:  # tfmot refuses the annotation (e.g. a BatchNorm alone)
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return f"quantize_apply failed: {type(err).__name__}: {first[:160]}"
        return {"annotated": [layer.layer.name for layer in annotated.layers
                              if type(layer).__name__ == "QuantizeAnnotate"],
                "left as they are": [layer.name for layer in annotated.layers
                                     if type(layer).__name__ != "QuantizeAnnotate"]}

    def case(kept, about, hint=""):
        return Case((build(), kept), {"annotated": [n for n in names if n not in kept],
                                      "left as they are": [n for n in names if n in kept]},
                    about, hint)

    cases = [
        case(["fc_out"], "keep the last layer in float"),
        case(["fc"], "keep 'fc' only: 'fc_out' starts with that name but is another layer",
             "compare whole names (layer.name in keep_float), not prefixes or substrings."),
        case([], "keep nothing: every layer annotated"),
        case(["conv1", "bn1"], "a convolution with its BatchNorm in float"),
        case(["fc", "fc_out"], "both dense layers in float"),
    ]

    def diagnose(test):
        def check(case, actual):
            return isinstance(actual, dict) and test(case, actual)
        return check

    def kept(case):
        return case.args[1]

    def says(start):
        return lambda case, actual: isinstance(actual, str) and actual.startswith(start)

    mistakes = [
        (says("a model already"), "return the annotated clone: quantize_apply comes after, and "
                                  "the check calls it itself."),
        (says("a model with no annotated layer"),
         "wrap each layer to quantize with quantize_annotate_layer(layer) in the clone_function "
         "of tf_keras.models.clone_model; the model itself is not changed."),
        (says("quantize_apply failed"), "leave every layer named in keep_float as it is (a "
                                        "BatchNorm stays float together with its convolution)."),
        (diagnose(lambda c, a: not a["left as they are"] and kept(c)),
         "every layer was annotated: return the layer itself (not annotated) when its name is in "
         "keep_float."),
        (diagnose(lambda c, a: a["annotated"] == [n for n in names if n in kept(c)]),
         "the test is the wrong way round: annotate the layers NOT in keep_float."),
        (diagnose(lambda c, a: set(a["left as they are"]) > set(kept(c))),
         "compare whole names (layer.name in keep_float): a substring test also keeps 'fc_out' "
         "when you keep 'fc'."),
    ]

    def show(args):
        return f"a Keras model with layers {names}, keep_float={args[1]!r}"

    return _run_exact("annotate_except", annotate, cases, describe=describe, show=show,
                      mistakes=mistakes, hint=(
        "def clone_function(layer): return layer if layer.name in keep_float else "
        "quantize_annotate_layer(layer); return tf_keras.models.clone_model(model, "
        "clone_function=clone_function)."))
