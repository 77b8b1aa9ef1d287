"""TensorFlow side of the course: the CNN in Keras 2 (``tf_keras``), training and accuracy.

Import this module before anything else that touches TensorFlow or Keras. It makes
TensorFlow use the legacy Keras 2 (``tf_keras``, which the TFLite converter and the Model
Optimization Toolkit's quantization-aware training support) instead of Keras 3, and it keeps
TensorFlow's start-up log lines (CUDA probing on a machine without GPU, CPU feature notices)
out of the notebook. If Keras 3 is already loaded, the import fails with advice instead of
letting the two Keras versions mix later with obscure errors.

Images are NHWC float32 arrays as returned by ``tl.data.load_digits(size=32, layout="NHWC")``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

import numpy as np

from tutorial_lib.data import Dataset, load_digits

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


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send everything written to stderr (file descriptor 2) to a temporary file.

    TensorFlow's shared libraries log a few lines while they load (e.g. "Could not find cuda
    drivers", the oneDNN notice), before TF_CPP_MIN_LOG_LEVEL is read, straight to file
    descriptor 2, where no Python setting can reach them. If the block fails, the captured text
    is replayed so that real errors are not lost.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        # No usable stderr (e.g. a closed descriptor): nothing to silence.
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


with _quiet_stderr():
    import tensorflow as tf
    import tf_keras

# TensorFlow's Python logger would otherwise print deprecation notes ("WARNING:tensorflow:...").
tf.get_logger().setLevel("ERROR")

__all__ = ["accuracy_keras", "course_cnn_keras", "train_keras", "trained_cnn_keras", "MODES",
           "convert", "interpreter", "run_tflite"]

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


@functools.lru_cache(maxsize=4)
def _trained_weights(seed: int) -> tuple[np.ndarray, ...]:
    data = load_digits(size=32, layout="NHWC")
    tf_keras.utils.set_random_seed(seed)  # the initial weights
    model = train_keras(course_cnn_keras(), data, seed=seed)
    return tuple(model.get_weights())


def trained_cnn_keras(seed: int = 0) -> tf_keras.Model:
    """The Keras course CNN trained on the 32x32 digits (about 98% test accuracy).

    Training takes several seconds the first time; later calls in the same process build a
    new model with the cached weights, so you may quantize or fine-tune it freely. The model
    is not compiled: call ``train_keras`` or ``model.compile`` to train it further.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    model = course_cnn_keras()
    model.set_weights(list(_trained_weights(seed)))
    return model


# ---------------------------------------------------------------- conversion and LiteRT

MODES = ("float", "dynamic_range", "full_integer", "integer_only", "float16")


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
    one at a time, as the converter expects.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode in ("full_integer", "integer_only"):
        if representative_data is None or len(representative_data) == 0:
            raise ValueError(f"mode {mode!r} needs representative_data: a few hundred typical "
                             "inputs, e.g. data.x_train[:100].")
        samples = np.asarray(representative_data, dtype=np.float32)[:num_samples]
        converter.representative_dataset = lambda: ([s[None]] for s in samples)
    if mode == "integer_only":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with _quiet_stderr():  # the MLIR converter logs to file descriptor 2
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
    from tutorial_lib.affine import dequantize, quantize

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
