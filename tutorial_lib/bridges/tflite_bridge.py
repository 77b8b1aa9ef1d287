"""TensorFlow side of the course: the CNN and ResNet in Keras 2 (``tf_keras``), training, LiteRT.

Import this module before anything else that touches TensorFlow or Keras. It makes
TensorFlow use the legacy Keras 2 (``tf_keras``, which the TFLite converter and the Model
Optimization Toolkit's quantization-aware training support) instead of Keras 3, and it keeps
TensorFlow's start-up log lines (CUDA probing on a machine without GPU, CPU feature notices)
out of the notebook. If Keras 3 is already loaded, the import fails with advice instead of
letting the two Keras versions mix later with obscure errors.

Images are NHWC float32 arrays as returned by ``tl.data.load_digits(size=32, layout="NHWC")``.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time

import numpy as np

from tutorial_lib.course import shipped
from tutorial_lib.course._quiet import quiet_stderr
from tutorial_lib.course.data import Dataset

_LEGACY_VALUES = ("1", "true", "True")


def _refuse_keras3() -> None:
    """Raise if Keras 3 was loaded before legacy Keras was requested: the choice is now fixed."""
    keras = sys.modules.get("keras")
    version = str(getattr(keras, "__version__", ""))
    if version.startswith("3") and os.environ.get("TF_USE_LEGACY_KERAS") not in _LEGACY_VALUES:
        raise ImportError(
            f"Keras {version} (Keras 3) is already loaded in this Python process, so TensorFlow's "
            "tf.keras would be Keras 3 while the course's TensorFlow tools (TFLite converter, "
            "tensorflow_model_optimization) need Keras 2 (tf_keras). Restart the kernel and run "
            "`import tutorial_lib.tflite_bridge` (or `tl.tflite_bridge`) before importing "
            "tensorflow or keras."
        )


_refuse_keras3()

# Must happen before TensorFlow is imported: tf.keras picks its Keras on first use.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# 3 = only fatal C++ messages. setdefault: whoever sets it explicitly wants to see more.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF_ENABLE_ONEDNN_OPTS stays as it is: with oneDNN on, training here is about 25% faster;
# only its start-up notice is unwanted, and _quiet_stderr below swallows it.


# TensorFlow's shared libraries log a few lines while they load (e.g. "Could not find cuda
# drivers", the oneDNN notice) straight to file descriptor 2, before TF_CPP_MIN_LOG_LEVEL is
# read; quiet_stderr catches those too and replays them only if the import fails.
_quiet_stderr = quiet_stderr


with _quiet_stderr():
    import tensorflow as tf
    import tf_keras

# TensorFlow's Python logger would otherwise print deprecation notes ("WARNING:tensorflow:...").
tf.get_logger().setLevel("ERROR")

__all__ = ["accuracy_keras", "course_cnn_keras", "course_resnet_keras", "train_keras",
           "trained_cnn_keras", "trained_resnet_keras", "keras_weight_names", "MODES",
           "convert", "run_converter", "interpreter", "run_tflite", "size_on_disk",
           "compare_latency", "latency_ms", "accuracy_tflite", "tensor_table", "mobilenet_v2",
           "load_tfmot", "prepare_qat", "keras_cnn"]

# Same recipe as the PyTorch side (tutorial_lib.torch_bridge): Adam, warm-up then decay.
EPOCHS = 6
BATCH_SIZE = 64
LR = 2e-3


def course_cnn_keras(num_classes: int = 10) -> tf_keras.Model:
    """The course CNN in Keras for 32x32x1 images (NHWC), ending in ``num_classes`` logits.

    Same layers and parameter count as ``tl.torch_bridge.CourseCNN``: three blocks Conv2D 3x3
    ("same" padding) -> BatchNormalization -> ReLU -> MaxPooling 2x2, then Flatten,
    Dense(128, relu) and Dense(num_classes). BatchNormalization uses PyTorch's settings
    (``momentum=0.9`` is PyTorch's 0.1, ``epsilon=1e-5``): Keras' default momentum of 0.99
    updates the running statistics too slowly for a short training, and the model then does
    much worse in inference mode than in training.
    """
    layers = tf_keras.layers
    blocks = []
    for i, channels in enumerate((16, 32, 64), start=1):
        blocks += [
            layers.Conv2D(channels, 3, padding="same", name=f"conv{i}"),
            layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i}"),
            layers.ReLU(name=f"relu{i}"),
            layers.MaxPooling2D(2, name=f"pool{i}"),
        ]
    return tf_keras.Sequential(
        [
            layers.InputLayer(input_shape=(32, 32, 1), name="image"),
            *blocks,
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="fc1"),
            layers.Dense(num_classes, name="fc2"),
        ],
        name="course_cnn",
    )


def course_resnet_keras() -> tf_keras.Model:
    """Lesson 11's course ResNet in Keras for 32x32x1 images (NHWC), ending in 10 logits.

    The layers and names of ``tl.models.RESNET_SPECS`` and of ``tl.torch_bridge.CourseResNet``,
    built with the functional API (a residual add reads two layers). Same parameter count; one
    difference in what a layer computes: a stride-2 convolution with ``padding="same"`` pads
    only the bottom and right of an even-sized image, PyTorch's ``padding=1`` all four sides.
    Each framework trains its own weights, so that changes nothing here. BatchNormalization
    uses PyTorch's settings, as in ``course_cnn_keras``.
    """
    from tutorial_lib.course.models import RESNET_SPECS

    image = tf_keras.layers.Input(shape=(32, 32, 1), name="image")
    out: dict[str, object] = {}
    x = image
    for spec in RESNET_SPECS:
        if spec.kind == "add":
            x = [out[name] for name in spec.inputs]
        elif spec.inputs:  # a shortcut reads an earlier layer
            x = out[spec.inputs[0]]
        x = out[spec.name] = _keras_layer(spec)(x)
    return tf_keras.Model(image, x, name="course_resnet")


def _keras_layer(spec) -> tf_keras.layers.Layer:
    layers = tf_keras.layers
    if spec.kind in ("conv3x3", "conv1x1"):
        return layers.Conv2D(spec.c_out, 3 if spec.kind == "conv3x3" else 1, strides=spec.stride,
                             padding="same", use_bias=spec.bias, name=spec.name)
    if spec.kind == "batchnorm":
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=spec.name)
    if spec.kind == "dense":
        return layers.Dense(spec.c_out, name=spec.name)
    if spec.kind == "avgpool":
        return layers.GlobalAveragePooling2D(keepdims=True, name=spec.name)
    return {"relu": layers.ReLU, "add": layers.Add, "flatten": layers.Flatten}[spec.kind](
        name=spec.name)


def _check_images(x: np.ndarray, y: np.ndarray | None, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a batch of NHWC images (4 dimensions); got shape {x.shape}. "
            "Load with tl.data.load_digits(size=32, layout='NHWC')."
        )
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise ValueError(
            f"labels must be 1-D with one label per image; got shape {y.shape} for "
            f"{len(x)} images."
        )


def train_keras(
    model: tf_keras.Model,
    data: Dataset,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    seed: int = 0,
) -> tf_keras.Model:
    """Compile and train ``model`` in place on ``data.x_train``/``data.y_train``; return it.

    Adam whose learning rate warms up to ``lr`` over the first epoch, then follows a cosine
    decay; cross-entropy on the logits. Deterministic: the seed fixes Python's, numpy's and
    TensorFlow's random generators, and TensorFlow's op determinism is switched on (for the
    rest of the session: it cannot be switched off through the public API).
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be a positive learning rate such as 1e-3; got {lr!r}.")
    if not all(hasattr(data, f) for f in ("x_train", "y_train")):
        raise ValueError(
            f"data must be a tl.data.Dataset (x_train, y_train, x_test, y_test), e.g. "
            f"tl.data.load_digits(size=32, layout='NHWC'); got {type(data).__name__}."
        )
    x = np.asarray(data.x_train, dtype=np.float32)
    y = np.asarray(data.y_train, dtype=np.int64)
    _check_images(x, y, "data.x_train")
    tf_keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    steps_per_epoch = -(-len(x) // batch_size)
    total = epochs * steps_per_epoch
    warmup = min(steps_per_epoch, total // 2)
    schedule = tf_keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 25,
        decay_steps=total - warmup,
        warmup_target=lr,
        warmup_steps=warmup,
        alpha=1e-3,
    )
    model.compile(
        optimizer=tf_keras.optimizers.Adam(schedule),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def accuracy_keras(model: tf_keras.Model, x, y, batch_size: int = 512) -> float:
    """Fraction of images whose highest logit is the true label (0.0 to 1.0), inference mode."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    _check_images(x, y, "x")
    # Calling the model directly (training=False) avoids building a predict loop for a
    # few hundred images, and BatchNormalization uses its moving statistics.
    logits = [model(x[i : i + batch_size], training=False).numpy()
              for i in range(0, len(x), batch_size)]
    return float(np.mean(np.concatenate(logits).argmax(axis=1) == y))


def keras_weight_names(model: tf_keras.Model) -> list[str]:
    """Names under which the course stores a Keras model's weights: ``NN:layer/variable``."""
    return [f"{i:02d}:{w.name.split(':')[0]}" for i, w in enumerate(model.weights)]


def trained_cnn_keras(seed: int = 0) -> tf_keras.Model:
    """The Keras course CNN trained on the 32x32 digits (about 99% test accuracy).

    The weights ship with the course (``tl.shipped``; seeds 0, 1 and 2, each trained once by
    ``tools/train_models.py``), so every learner gets the same model on any CPU and nothing is
    trained here. Each call builds a new model: quantize or fine-tune it freely. The model is
    not compiled: call ``train_keras`` or ``model.compile`` to train it further.
    """
    return _shipped_keras(course_cnn_keras(), "course_cnn", seed)


def keras_cnn(trained: bool = True, seed: int = 0) -> tf_keras.Model:
    """The Keras course CNN: the shipped trained model or freshly initialized.

    An untrained model is initialized after ``tf_keras.utils.set_random_seed(seed)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    if trained:
        return trained_cnn_keras(seed)
    tf_keras.utils.set_random_seed(seed)
    return course_cnn_keras()


def trained_resnet_keras(seed: int = 0) -> tf_keras.Model:
    """Lesson 11's course ResNet in Keras, trained on the 32x32 digits.

    Shipped like ``trained_cnn_keras`` (seeds 0, 1 and 2, trained once by
    ``tools/train_models.py`` with the same recipe); each call builds a new, uncompiled model.
    """
    return _shipped_keras(course_resnet_keras(), "course_resnet", seed)


def _shipped_keras(model: tf_keras.Model, name: str, seed: int) -> tf_keras.Model:
    weights = shipped.load_weights("keras", seed, name)
    model.set_weights([weights[key] for key in keras_weight_names(model)])
    return model


# ---------------------------------------------------------------- conversion and LiteRT

MODES = ("float", "dynamic_range", "full_integer", "integer_only", "float16")


def _is_qat(model: tf_keras.Model) -> bool:
    """Whether tfmot wrapped the model for quantization-aware training (it has learned ranges)."""
    return any(type(layer).__module__.startswith("tensorflow_model_optimization")
               for layer in getattr(model, "layers", ()))


def _keras_converter(model: tf_keras.Model):
    """A TFLiteConverter for a Keras model that does not save the model as a SavedModel first.

    ``TFLiteConverter.from_keras_model`` first writes the whole Keras model to a temporary
    SavedModel, tracing every layer's call for it; for MobileNetV2 that is most of a minute,
    against a few seconds for the conversion proper. Tracing only the inference call, into a
    concrete function held by a ``tf.Module`` with the model's variables, gives the same .tflite
    file: same tensors, operators, signature and size; one byte of the conversion metadata
    records the different source API. Models without defined inputs (subclassed, never built)
    go the slow way.
    """
    if not getattr(model, "inputs", None):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=name)
             for t, name in zip(model.inputs, model.input_names, strict=True)]

    def serve(*inputs):
        outputs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        return dict(zip(model.output_names, outputs, strict=True))

    module = tf.Module()
    module.model_variables = list(model.variables)  # not the Keras model: saving it is the slow part
    module.serve = tf.function(serve, input_signature=specs)
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [module.serve.get_concrete_function()], module)


def convert(model: tf_keras.Model, mode: str = "float", representative_data=None,
            num_samples: int = 100) -> bytes:
    """Convert a Keras model to a .tflite flatbuffer with one of TFLite's post-training modes.

    - ``float``: no quantization.
    - ``dynamic_range``: int8 weights; activations stay float (quantized on the fly).
    - ``full_integer``: int8 weights and activations, calibrated on ``representative_data``;
      the model's input and output stay float32 (a QUANTIZE and a DEQUANTIZE op at the ends).
    - ``integer_only``: as full_integer, int8 input and output, and only int8 builtin ops.
    - ``float16``: float16 weights, computed in float32 on the CPU.

    ``representative_data`` is an array of inputs (N, ...); the first ``num_samples`` are fed
    one at a time, as the converter expects. A quantization-aware model (from ``prepare_qat``)
    carries its own ranges and needs none.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    converter = _keras_converter(model)
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    has_data = representative_data is not None and len(representative_data) > 0
    if mode in ("full_integer", "integer_only") and not has_data and not _is_qat(model):
        raise ValueError(f"mode {mode!r} needs representative_data: a few hundred typical "
                         "inputs, e.g. data.x_train[:100].")
    if mode in ("full_integer", "integer_only") and has_data:
        samples = np.asarray(representative_data, dtype=np.float32)[:num_samples]
        converter.representative_dataset = lambda: ([s[None]] for s in samples)
    if mode == "integer_only":
        if has_data:  # without data TF 2.21 refuses INT8-only ops even for a QAT model
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return run_converter(converter)


def run_converter(converter) -> bytes:
    """``converter.convert()``, with the converter's log lines kept out of the notebook.

    The MLIR converter reports its settings and statistics on file descriptor 2 and warns
    through Python; neither is a result. On failure the captured text is shown with the error.
    """
    with _quiet_stderr():
        return converter.convert()


def interpreter(model_content: bytes, reference: bool = False, num_threads: int = 1,
                keep_intermediates: bool = False):
    """A LiteRT interpreter for the model, allocated and ready.

    ``reference=True`` selects TFLite's reference kernels (``OpResolverType.BUILTIN_REF``), the
    ones ``tl.run_int8_tflite`` matches bit for bit; the default uses the optimized kernels and
    the XNNPACK delegate. ``keep_intermediates=True`` keeps every tensor readable after a run.
    """
    with _quiet_stderr():  # "Created TensorFlow Lite XNNPACK delegate" goes to stderr
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
        it = Interpreter(model_content=model_content, num_threads=num_threads,
                         experimental_op_resolver_type=resolver,
                         experimental_preserve_all_tensors=keep_intermediates)
        it.allocate_tensors()
    return it


def run_tflite(model_content: bytes | object, x, reference: bool = False,
               dequantize_output: bool = False) -> np.ndarray:
    """Run a model on a whole batch ``x`` and return its output.

    If the model's input is int8 and ``x`` is float, ``x`` is quantized with the input tensor's
    own scale and zero point (rounding half away from zero, as TFLite does); int8 ``x`` is fed
    as it is. With ``dequantize_output=True`` an int8 output is turned back into float32.
    ``model_content`` may also be an interpreter from ``interpreter()``, to reuse it.
    """
    from tutorial_lib.core.affine import dequantize, quantize

    it = model_content if hasattr(model_content, "invoke") else interpreter(model_content, reference)
    inp = it.get_input_details()[0]
    x = np.asarray(x)
    if inp["dtype"] == np.int8 and x.dtype != np.int8:
        scale, zero_point = inp["quantization"]
        x = quantize(x, scale, zero_point, rounding="half_away")
    elif inp["dtype"] != np.int8:
        x = x.astype(inp["dtype"])
    if tuple(inp["shape"]) != x.shape:
        it.resize_tensor_input(inp["index"], x.shape)
        it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    out_detail = it.get_output_details()[0]
    y = it.get_tensor(out_detail["index"])
    if dequantize_output and y.dtype == np.int8:
        scale, zero_point = out_detail["quantization"]
        y = dequantize(y, scale, zero_point)
    return y


# ---------------------------------------------------------------- measuring LiteRT models

def size_on_disk(model_content: bytes) -> int:
    """Bytes the model takes as a ``.tflite`` file: written out, then measured, as an app ships it.

    A .tflite file is the converter's FlatBuffer byte for byte, so this always equals
    ``len(model_content)``; writing it makes the point that nothing is compressed or added.
    """
    if not isinstance(model_content, bytes | bytearray) or bytes(model_content[4:8]) != b"TFL3":
        raise ValueError("model_content must be the bytes of a .tflite model, as convert() returns.")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.tflite")
        with open(path, "wb") as f:
            f.write(model_content)
        return os.path.getsize(path)


def compare_latency(models: dict[str, bytes], x=None, num_threads: int = 1, warmup: int = 10,
                    repeats: int = 50) -> dict[str, float]:
    """Median time in milliseconds of one ``invoke()`` at batch 1 for each model, taking turns.

    Each model gets its own interpreter with ``num_threads`` threads (1 by default, so that a
    busy machine and the number of cores matter less) and LiteRT's default kernels (XNNPACK).
    The input is set once and only ``invoke()`` is timed: ``x`` of shape ``(1, ...)``, float
    (quantized for an int8 input), or by default zeros of each model's input shape, which cost
    the same as real data for these dense kernels. Every round invokes every model once, so a
    slow moment on a shared machine slows all of them alike; the first ``warmup`` rounds are
    not kept, and the median ignores the outliers. Compare the results as ratios.
    """
    for name, v, low in (("num_threads", num_threads, 1), ("warmup", warmup, 0),
                         ("repeats", repeats, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {v!r}.")
    if x is not None and (np.ndim(x) == 0 or np.shape(x)[0] != 1):
        raise ValueError(f"latency is measured at batch 1: x must have shape (1, ...); got "
                         f"{np.shape(x)}. Pass one sample, e.g. data.x_test[:1].")
    interpreters = {}
    for name, model_content in models.items():
        it = interpreter(model_content, num_threads=num_threads)
        inp = it.get_input_details()[0]
        run_tflite(it, np.zeros(inp["shape"], np.float32) if x is None else x)  # sets the input
        interpreters[name] = it
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(warmup + repeats):
        for name, it in interpreters.items():
            start = time.perf_counter()
            it.invoke()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t[warmup:]) * 1e3) for name, t in times.items()}


def latency_ms(model_content: bytes, x=None, num_threads: int = 1, warmup: int = 10,
               repeats: int = 50) -> float:
    """Median milliseconds of one ``invoke()`` at batch 1 (see ``compare_latency``)."""
    return compare_latency({"model": model_content}, x, num_threads, warmup, repeats)["model"]


def accuracy_tflite(model_content: bytes, x, y) -> float:
    """Fraction of samples whose highest output is the true label, run through LiteRT.

    The whole batch goes through one interpreter (resized to ``len(x)``); an int8 input gets
    float ``x`` quantized with the file's own scale and zero point, as an app must do.
    """
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need one label per sample: x has {len(x)} samples, y has shape "
                         f"{y.shape}.")
    return float(np.mean(run_tflite(model_content, x).argmax(axis=1) == y))


def tensor_table(model_content: bytes, constants: bool = True) -> list[dict]:
    """One row per tensor of the file: what it is, its dtype, shape, scale and zero point.

    ``kind`` is "input", "output", "constant" (weights, biases, shapes) or "activation".
    ``scale`` and ``zero_point`` are None for a tensor without quantization, numbers for a
    per-tensor one and arrays (one per channel along ``quantized_dimension``) for a
    per-channel one. ``constants=False`` leaves out the constants. Read with
    ``tl.tflite_file.read``, so the numbers are the file's, not the converter's report.
    """
    from tutorial_lib.core.tflite_file import read

    graph = read(model_content)
    rows = []
    for t in graph.tensors:
        if t.index in graph.inputs:
            kind = "input"
        elif t.index in graph.outputs:
            kind = "output"
        elif t.data is not None:
            kind = "constant"
        else:
            kind = "activation"
        if kind == "constant" and not constants:
            continue
        rows.append({"index": t.index, "name": t.name, "kind": kind,
                     "dtype": np.dtype(t.dtype).name if t.dtype is not None else "other",
                     "shape": t.shape, "scale": t.scale, "zero_point": t.zero_point,
                     "quantized_dimension": t.quantized_dimension if t.scale is not None else None})
    return rows


def mobilenet_v2(seed: int = 0) -> tf_keras.Model:
    """Keras' MobileNetV2 (224x224x3 in, 1000 classes) with random weights, for size and speed.

    ``weights=None``: nothing is downloaded, and a file's size and latency do not depend on the
    values of the weights, with one exception this function removes. A fresh BatchNormalization
    has mean 0, variance 1, gamma 1 and beta 0, so every bias the converter folds out of it is
    all zeros, and the converter stores identical constant buffers once: the float file comes
    out about 60 KB smaller than with trained weights. Here each BatchNormalization gets random
    statistics and parameters instead, so that, as in a trained model, no two biases are equal.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    tf_keras.utils.set_random_seed(seed)
    model = tf_keras.applications.MobileNetV2(weights=None)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),  # gamma, beta
                               rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)])  # mean, var
    return model


# ---------------------------------------------------------------- quantization-aware training

@functools.cache
def load_tfmot():
    """``tensorflow_model_optimization``, imported quietly (after legacy Keras was selected).

    The Model Optimization Toolkit's Keras API works on Keras 2 models only (``tf_keras``);
    with Keras 3 it fails. This module made sure TensorFlow uses Keras 2 before loading.
    """
    with _quiet_stderr():
        import tensorflow_model_optimization as tfmot
    return tfmot


def prepare_qat(model: tf_keras.Model, keep_float=(), weight_bits: int = 8,
                activation_bits: int = 8) -> tf_keras.Model:
    """A copy of ``model`` ready for quantization-aware training with tfmot.

    With the defaults this is ``tfmot.quantization.keras.quantize_model(model)``: fake
    quantization on the input, every weight and every activation, 8 bits, with tfmot's scheme:
    symmetric weights, one scale per output channel for Conv2D and DepthwiseConv2D but one per
    tensor for Dense, asymmetric activations, BatchNorm kept with its conv.
    ``keep_float`` names layers to leave in float: every other layer is wrapped with
    ``quantize_annotate_layer`` and the annotated model goes through ``quantize_apply``.
    Other bit widths (2 to 8) use tfmot's experimental n-bit scheme, with the same granularity
    (Dense per tensor). The converter stores weights trained at 4 bits or fewer as INT4 tensors,
    two per byte, next to int8 activations (lesson 08 runs a 2-bit model in LiteRT).

    The returned model is not compiled; its activation ranges start at tfmot's defaults
    (the input's at [0, 0]), so it predicts nonsense until it has trained on some data.
    """
    for name, bits in (("weight_bits", weight_bits), ("activation_bits", activation_bits)):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
            raise ValueError(f"{name} must be an integer from 2 to 8; got {bits!r}.")
    keep_float = [keep_float] if isinstance(keep_float, str) else list(keep_float)
    names = [layer.name for layer in model.layers]
    unknown = [n for n in keep_float if n not in names]
    if unknown:
        raise ValueError(f"keep_float names layers the model does not have: {unknown}; "
                         f"its layers are {names}.")
    # tfmot quantizes BatchNormalization only together with the convolution before it.
    bn_alone = [b.name for a, b in zip(model.layers[:-1], model.layers[1:], strict=True)
                if isinstance(b, tf_keras.layers.BatchNormalization)
                and (a.name in keep_float) != (b.name in keep_float)]
    if bn_alone:
        raise ValueError(f"BatchNormalization layers {bn_alone} would be split from the layer "
                         "before them: tfmot quantizes a BatchNormalization only with its "
                         "convolution. Keep both in float, or neither.")
    keras_q = load_tfmot().quantization.keras
    with _quiet_stderr():
        if not keep_float and weight_bits == activation_bits == 8:
            return keras_q.quantize_model(model)

        def annotate(layer):
            return layer if layer.name in keep_float else keras_q.quantize_annotate_layer(layer)

        annotated = tf_keras.models.clone_model(model, clone_function=annotate)
        if weight_bits == activation_bits == 8:
            return keras_q.quantize_apply(annotated)
        n_bit = keras_q.experimental.default_n_bit.DefaultNBitQuantizeScheme(
            num_bits_weight=weight_bits, num_bits_activation=activation_bits)
        return keras_q.quantize_apply(annotated, scheme=n_bit)
