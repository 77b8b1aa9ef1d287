"""Checkers for lesson 07's exercises (TFLite post-training): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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

__all__ = ["check_representative_dataset", "check_quantize_input", "check_dequantize_weight",
    "check_largest_scale", "check_converter_settings"]


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


# What each LiteRT mode leaves in the file (the checked model's conv and dense layers).
_MODE_TYPES = {
    "float": ("float32", "float32", "float32", "float32", "float32"),
    "dynamic_range": ("float32", "float32", "int8", "float32", "float32"),
    "integer_only": ("int8", "int8", "int8", "int32", "int8"),
    "float16": ("float32", "float32", "float16", "float16", "float32"),
    "16x8": ("float32", "float32", "int8", "int64", "int16"),
}


def _file_types(model_content: bytes) -> dict:
    """The dtypes a .tflite file stores: input, output, and the conv/dense layers' weights,
    biases and activations (a float16 constant is read behind the DEQUANTIZE that expands it)."""
    from tutorial_lib.core.tflite_file import read

    graph = read(model_content)
    made_by = {out: op for op in graph.operators for out in op.outputs}

    def stored(index):
        op = made_by.get(index)
        if op is not None and op.name == "DEQUANTIZE" and graph.tensors[op.inputs[0]].data is not None:
            index = op.inputs[0]
        return graph.tensors[index]

    def name(tensors):
        found = sorted({np.dtype(t.dtype).name if t.dtype is not None else "other" for t in tensors})
        return " and ".join(found) if found else "none"

    layers = [op for op in graph.operators if op.name in ("CONV_2D", "FULLY_CONNECTED")]
    return {"input": name(graph.tensors[i] for i in graph.inputs),
            "output": name(graph.tensors[i] for i in graph.outputs),
            "weights": name(stored(op.inputs[1]) for op in layers),
            "biases": name(stored(op.inputs[2]) for op in layers if len(op.inputs) > 2
                           and op.inputs[2] >= 0),
            "activations": name(graph.tensors[i] for op in layers
                                for i in (op.inputs[0], op.outputs[0]))}


def check_converter_settings(fn: Callable) -> CheckResult:
    """``fn(converter, mode, representative_dataset)``: set a TFLiteConverter up for ``mode``.

    Modes: "float" (no settings), "dynamic_range" (int8 weights, float activations),
    "integer_only" (int8 weights and activations, int8 input and output), "float16" (float16
    weights) and "16x8" (int8 weights, int16 activations, float input and output). ``fn``
    changes the converter in place; the check converts a small Keras model (a convolution and a
    dense layer, both with over 1,024 weights so that dynamic range quantizes them) and reads the
    dtypes the file stores: input, output, weights, biases and the layers' activations.
    """
    from tutorial_lib.bridges import tflite_bridge as tf_side

    keras = tf_side.tf_keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(8, 8, 8), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv"),  # 1,152 weights
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(4, bias_initializer="glorot_uniform", name="dense")])  # 4,096 weights
    samples = np.random.default_rng(0).uniform(0, 1, (16, 1, 8, 8, 8)).astype(np.float32)

    def representative_dataset():
        for sample in samples:
            yield [sample]

    learner = _learner(fn)

    @_wraps_learner
    def convert(converter, mode, data):
        learner(converter, mode, data)
        try:
            return tf_side.run_converter(converter)
        except Exception as err:  # the settings are the learner's; the converter says what is wrong
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return f"conversion failed: {type(err).__name__}: {first[:200]}"

    def describe(content):
        if isinstance(content, str):
            return content
        return _file_types(content)

    keys = ("input", "output", "weights", "biases", "activations")

    def case(mode, about, hint=""):
        return Case((tf_side._keras_converter(model), mode, representative_dataset),
                    dict(zip(keys, _MODE_TYPES[mode], strict=True)), about, hint)

    cases = [
        case("float", "float: the converter's defaults, nothing quantized",
             "for mode 'float' change nothing: Optimize.DEFAULT alone already quantizes weights."),
        case("dynamic_range", "dynamic range: int8 weights, float activations"),
        case("integer_only", "full integer with int8 input and output"),
        case("float16", "float16 weights"),
        case("16x8", "16x8: int16 activations, int8 weights, int64 biases"),
    ]

    def differs(key, mode=None):
        def diagnose(case, actual):
            return (isinstance(actual, dict) and actual[key] != case.expected[key]
                    and (mode is None or case.args[1] == mode))
        return diagnose

    def failed(case, actual):
        return isinstance(actual, str) and actual.startswith("conversion failed")

    mistakes = [
        (failed, "the integer modes need calibration data: converter.representative_dataset = "
                 "representative_dataset, with optimizations = [tf.lite.Optimize.DEFAULT]."),
        (differs("activations", "dynamic_range"),
         "dynamic range gets no representative_dataset: with data the converter calibrates the "
         "activations too and the model becomes full integer."),
        (differs("activations", "16x8"),
         "16x8 is an op set: converter.target_spec.supported_ops = [tf.lite.OpsSet."
         "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8], with the calibration data."),
        (differs("input"), "only integer_only changes the model's input and output: "
                           "converter.inference_input_type = tf.int8 and inference_output_type = "
                           "tf.int8; the other modes keep float32 at the ends."),
        (differs("output"), "set converter.inference_output_type = tf.int8 as well as the input's."),
        (differs("weights", "float16"),
         "float16 needs both optimizations = [tf.lite.Optimize.DEFAULT] and "
         "target_spec.supported_types = [tf.float16]."),
        (differs("activations", "integer_only"),
         "integer_only needs the calibration data (representative_dataset) and "
         "target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]."),
        (differs("weights", "float"), "for mode 'float' change nothing: Optimize.DEFAULT alone "
                                      "already stores int8 weights (dynamic range)."),
        (differs("weights"), "every mode but 'float' starts with converter.optimizations = "
                             "[tf.lite.Optimize.DEFAULT]."),
    ]

    def show(args):
        return (f"a converter for a small Keras model (conv 3x3, 16 filters; dense 1024 -> 4), "
                f"mode={args[1]!r}, 16 calibration samples")

    return _run_exact("converter_settings", convert, cases, describe=describe, show=show,
                      mistakes=mistakes, hint=(
        "every mode but 'float': optimizations = [tf.lite.Optimize.DEFAULT]; float16: "
        "supported_types = [tf.float16]; integer_only and 16x8: representative_dataset, and the "
        "op set (TFLITE_BUILTINS_INT8, or the 16x8 one); integer_only: int8 input and output."))
