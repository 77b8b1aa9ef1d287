"""Pruning, clustering and distillation in Keras with tfmot, and what survives in a .tflite file.

The TensorFlow Model Optimization Toolkit (tfmot 0.8) works on Keras 2 models (``tf_keras``) only;
this module imports TensorFlow through ``tl.tflite_bridge``, which selects Keras 2. What it adds
to tfmot's calls:

- ``pruning_schedule`` picks the schedule's ``frequency`` from the run's length: tfmot asks the
  schedule at steps 1, 2, ... of training (never at step 0), and its default frequency of 100
  steps never fires in a fine-tune of 46 steps, which leaves the model dense;
- ``fit_pruned``, ``fit_m_by_n``, ``fit_clustered`` and ``fit_collaborative`` fine-tune with the
  callbacks and schemes tfmot needs, and strip the wrappers;
- ``convert_sparse`` converts with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``, which stores
  pruned weights in LiteRT's sparse format;
- ``fit_distilled`` trains a student on ``tl.distill.kd_loss`` (its Keras twin, ``kd_loss_keras``);
- ``int8_kernels`` reads the int8 weights back from a converted file, to count zeros and values.
"""

from __future__ import annotations

import numpy as np

from tutorial_lib.bridges import tflite_bridge as kb
from tutorial_lib.course.data import Dataset

tf, tf_keras = kb.tf, kb.tf_keras

__all__ = ["pruning_schedule", "schedule_steps", "fit_pruned", "fit_m_by_n", "fit_clustered",
           "fit_collaborative", "SCHEMES", "convert_sparse", "xnnpack_refusal", "student_cnn_keras",
           "kd_loss_keras",
           "fit_distilled", "int8_kernels", "int8_scales", "kernel_values"]


def _steps_per_epoch(data: Dataset, batch_size: int) -> int:
    return -(-len(data.x_train) // batch_size)


def pruning_schedule(sparsity: float, total_steps: int, frequency: int | None = None):
    """tfmot's ``PolynomialDecay`` from 0 to ``sparsity`` over the first half of the run.

    ``frequency`` (steps between mask updates) defaults to an eighth of the ramp, rounded down
    (at least 1), so the mask is updated every few batches up to the end of the ramp: 8 times
    or more, 11 in a run of 46 steps (2, 4, ..., 22); tfmot's own default, 100, suits runs of
    thousands of steps.
    """
    if not 0 < sparsity < 1:
        raise ValueError(f"sparsity must be a fraction between 0 and 1; got {sparsity!r}.")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 2:
        raise ValueError(f"total_steps must be an integer >= 2; got {total_steps!r}.")
    end = total_steps // 2
    frequency = max(1, end // 8) if frequency is None else frequency
    return kb.load_tfmot().sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=float(sparsity), begin_step=0, end_step=end,
        frequency=frequency)


def schedule_steps(schedule, total_steps: int) -> list[tuple[int, float]]:
    """The steps at which tfmot updates the masks in a run of ``total_steps``, with the sparsity.

    tfmot's wrapper (``PruneLowMagnitude.call`` in ``pruning_wrapper.py``) adds 1 to its step
    counter before it asks the schedule, and ``UpdatePruningStep.on_train_begin`` starts that
    counter at 0: the schedule is asked at steps 1 to ``total_steps``, never at step 0. A step
    whose ``(should_prune, sparsity)`` is False leaves the mask as it is (all ones at first).
    """
    out = []
    for step in range(1, total_steps + 1):
        should, value = schedule(tf.constant(step, tf.int64))
        if bool(should):
            out.append((step, round(float(value), 4)))
    return out


def _copy(model):
    """A copy with its own layers and weights: tfmot wraps the layers it is given, and
    training the wrapped model would otherwise change the caller's model too."""
    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _compile_fit(model, x, y, loss, epochs: int, lr: float, seed: int, batch_size: int,
                 callbacks=()):
    tf_keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model.compile(optimizer=tf_keras.optimizers.Adam(lr), loss=loss)
    with kb._quiet_stderr():
        model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                  callbacks=list(callbacks))
    return model


def _ce():
    return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _fit_wrapped(model, data: Dataset, wrap, epochs: int, lr: float, seed: int,
                 batch_size: int):
    sparsity_api = kb.load_tfmot().sparsity.keras
    with kb._quiet_stderr():
        wrapped = tf_keras.models.clone_model(_copy(model), clone_function=wrap)
    _compile_fit(wrapped, data.x_train, data.y_train, _ce(), epochs, lr, seed, batch_size,
                 [sparsity_api.UpdatePruningStep()])
    return sparsity_api.strip_pruning(wrapped)


def _prunable(layer) -> bool:
    return isinstance(layer, tf_keras.layers.Conv2D | tf_keras.layers.Dense)


def fit_pruned(model, data: Dataset, sparsity: float = 0.8, epochs: int = 2, lr: float = 1e-3,
               seed: int = 0, frequency: int | None = None, batch_size: int = 64):
    """Prune ``model`` (a copy) to ``sparsity`` while fine-tuning; return the stripped model.

    Every Conv2D and Dense layer is wrapped with ``prune_low_magnitude`` and the schedule of
    ``pruning_schedule``: the sparsity ramps up over the first half of the run.
    """
    prune = kb.load_tfmot().sparsity.keras.prune_low_magnitude
    total = epochs * _steps_per_epoch(data, batch_size)
    schedule = pruning_schedule(sparsity, total, frequency)
    return _fit_wrapped(model, data, lambda layer: prune(layer, pruning_schedule=schedule)
                        if _prunable(layer) else layer, epochs, lr, seed, batch_size)


def fit_m_by_n(model, data: Dataset, m_by_n: tuple[int, int] = (2, 4), epochs: int = 2,
               lr: float = 1e-3, seed: int = 0, batch_size: int = 64):
    """Prune ``model`` (a copy) to ``m`` zeros in every ``n`` input channels, then fine-tune.

    tfmot's ``sparsity_m_by_n`` takes no schedule into account: ``Pruning.
    conditional_mask_update`` (``pruning_impl.py``) updates an m-by-n mask only at step 1, from
    the weights as they are then, and keeps it for the rest of the run (one shot, no ramp). The
    layers whose input channels do not come in groups of ``n`` (the first conv, with one input
    channel) are left unwrapped and dense: the course's choice. (tfmot 0.8.1 itself leaves such
    a layer dense without a word, though its docstring says that it raises.)
    """
    if (not isinstance(m_by_n, tuple) or len(m_by_n) != 2
            or not all(isinstance(v, int) and v > 0 for v in m_by_n) or m_by_n[0] >= m_by_n[1]):
        raise ValueError(f"m_by_n must be a tuple (m, n) of positive integers with m < n, such "
                         f"as (2, 4); got {m_by_n!r}.")
    prune = kb.load_tfmot().sparsity.keras.prune_low_magnitude

    def wrap(layer):
        if not _prunable(layer) or layer.get_weights()[0].shape[-2] % m_by_n[1]:
            return layer
        return prune(layer, sparsity_m_by_n=m_by_n)

    return _fit_wrapped(model, data, wrap, epochs, lr, seed, batch_size)


def fit_clustered(model, data: Dataset, clusters: int = 16, epochs: int = 1, lr: float = 1e-4,
                  seed: int = 0, preserve_sparsity: bool = False, batch_size: int = 64):
    """Cluster every weight tensor of ``model`` (a copy) to ``clusters`` values, fine-tune the
    centroids, and return the stripped model.

    ``cluster_weights`` with ``CentroidInitialization.LINEAR`` (``tl.clustering.
    linear_centroids``); ``preserve_sparsity=True`` keeps a pruned model's zeros (a centroid
    fixed at 0), the first half of PCQAT.
    """
    clustering = kb.load_tfmot().clustering.keras
    with kb._quiet_stderr():
        wrapped = clustering.cluster_weights(
            _copy(model), number_of_clusters=clusters,
            cluster_centroids_init=clustering.CentroidInitialization.LINEAR,
            preserve_sparsity=preserve_sparsity)
    _compile_fit(wrapped, data.x_train, data.y_train, _ce(), epochs, lr, seed, batch_size)
    return clustering.strip_clustering(wrapped)


SCHEMES = ("prune", "cluster", "prune_cluster")


def fit_collaborative(model, data: Dataset, scheme: str, epochs: int = 1, lr: float = 1e-4,
                      seed: int = 0, batch_size: int = 64):
    """Quantization-aware training that keeps a pruned or clustered model's structure.

    ``scheme``: "prune" is PQAT (``Default8BitPrunePreserveQuantizeScheme``), "cluster" CQAT and
    "prune_cluster" PCQAT (``Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False /
    True)``), all from ``tfmot.experimental.combine``, passed to ``quantize_apply``. Returns the
    trained QAT model; convert it with ``tl.tflite_bridge.convert(model, "integer_only")``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}.")
    tfmot = kb.load_tfmot()
    combine = tfmot.experimental.combine
    chosen = (combine.Default8BitPrunePreserveQuantizeScheme() if scheme == "prune" else
              combine.Default8BitClusterPreserveQuantizeScheme(
                  preserve_sparsity=scheme == "prune_cluster"))
    keras_q = tfmot.quantization.keras
    with kb._quiet_stderr():
        qat = keras_q.quantize_apply(keras_q.quantize_annotate_model(_copy(model)), chosen)
    return _compile_fit(qat, data.x_train, data.y_train, _ce(), epochs, lr, seed, batch_size)


def convert_sparse(model, mode: str = "float", representative_data=None) -> bytes:
    """Convert like ``tl.tflite_bridge.convert``, adding ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``.

    With that flag the converter stores weight tensors with enough zeros in LiteRT's sparse
    format (the values that are not zero, and their indices) instead of dense. ``mode`` is
    ``"float"`` or ``"integer_only"`` (int8 weights and activations, int8 input and output,
    calibrated on ``representative_data``).
    """
    if mode not in ("float", "integer_only"):
        raise ValueError(f"mode must be 'float' or 'integer_only'; got {mode!r}.")
    converter = kb._keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if mode == "integer_only":
        if representative_data is None or len(representative_data) == 0:
            raise ValueError("mode 'integer_only' needs representative_data: a few hundred "
                             "typical inputs, e.g. data.x_train[:100].")
        samples = np.asarray(representative_data, dtype=np.float32)[:100]
        converter.optimizations.insert(0, tf.lite.Optimize.DEFAULT)
        converter.representative_dataset = lambda: ([s[None]] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return kb.run_converter(converter)


def xnnpack_refusal(model_content: bytes) -> str | None:
    """None if LiteRT's default interpreter (with the XNNPACK delegate) accepts the file, else
    the first words of the error it raises, the delegate's log kept out of the notebook."""
    with kb._quiet_stderr():
        try:
            kb.interpreter(model_content)
        except RuntimeError as err:
            return str(err).split(" node")[0].split("Node")[0].strip()
    return None


def student_cnn_keras(channels: tuple[int, int] = (4, 8), seed: int | None = None):
    """A small student for the 32x32 digits: two conv+ReLU+pool blocks and one Dense layer.

    conv3x3 (4) -> maxpool 4 -> conv3x3 (8) -> maxpool 2 -> flatten (128) -> Dense(10):
    1,626 parameters, about 1% of the course CNN's. ``seed`` fixes the initial weights
    (``tf_keras.utils.set_random_seed`` before the layers are built): without it they depend on
    whatever drew random numbers before, so a student would change with the cells above it.
    """
    if seed is not None:
        tf_keras.utils.set_random_seed(seed)
    layers = tf_keras.layers
    return tf_keras.Sequential([
        layers.Input((32, 32, 1), name="image"),
        layers.Conv2D(channels[0], 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(4, name="pool1"),
        layers.Conv2D(channels[1], 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Flatten(name="flatten"),
        layers.Dense(10, name="fc"),
    ], name="student")


def kd_loss_keras(temperature: float = 4.0, alpha: float = 0.9):
    """``tl.distill.kd_loss`` as a Keras loss on ``y_true = [label, teacher logits...]``.

    Keras passes a loss only ``y_true`` and ``y_pred``; the teacher's logits travel in
    ``y_true`` after the label (``fit_distilled`` packs them).
    """
    if not temperature > 0 or not 0 <= alpha <= 1:
        raise ValueError(f"need temperature > 0 and 0 <= alpha <= 1; got {temperature!r}, "
                         f"{alpha!r}.")
    t2 = float(temperature) ** 2

    def loss(y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int32)
        teacher = y_true[:, 1:]
        log_p = tf.nn.log_softmax(teacher / temperature)
        log_q = tf.nn.log_softmax(y_pred / temperature)
        kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=1)
        ce = tf_keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        return alpha * t2 * kl + (1 - alpha) * ce

    return loss


def fit_distilled(student, x, y, teacher_logits, temperature: float = 4.0, alpha: float = 0.9,
                  epochs: int = 60, lr: float = 3e-3, seed: int = 0, batch_size: int = 64):
    """Train ``student`` in place on images ``x`` with ``kd_loss_keras``; ``alpha=0`` is labels only.

    ``teacher_logits`` are the teacher's outputs on ``x`` (computed once, outside the loop).
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    teacher_logits = np.asarray(teacher_logits, np.float32)
    if teacher_logits.shape != (len(x), 10) or y.shape != (len(x),):
        raise ValueError(f"need one label and 10 teacher logits per image: {len(x)} images, "
                         f"labels {y.shape}, teacher logits {teacher_logits.shape}.")
    packed = np.concatenate([y[:, None].astype(np.float32), teacher_logits], axis=1)
    return _compile_fit(student, x, packed, kd_loss_keras(temperature, alpha), epochs, lr, seed,
                        batch_size)


def _int8_weights(model_content: bytes):
    """(short layer name, tensor) for the int8 weight tensors (rank 2 or more) of a .tflite file."""
    from tutorial_lib.core.tflite_file import read

    for t in read(model_content).tensors:
        if t.data is None or t.dtype is not np.int8 or t.data.ndim < 2:
            continue
        parts = [p for p in t.name.replace(";", "/").split("/") if p]
        short = next((p.removeprefix("quant_") for p in parts
                      if p.removeprefix("quant_").startswith(("conv", "fc"))), t.name)
        yield short, t


def int8_kernels(model_content: bytes) -> dict[str, np.ndarray]:
    """The int8 weight tensors (rank 2 or more) of a .tflite file, read from its bytes.

    Keys are short layer names (``conv1``, ``fc1``, ...) where the tensor's name contains
    ``/<layer>/``; TFLite keeps kernels output-channel first: OHWI for convs, (out, in) for
    fully connected layers.
    """
    return {name: t.data for name, t in _int8_weights(model_content)}


def int8_scales(model_content: bytes) -> dict[str, float | np.ndarray]:
    """The scales of the same tensors as ``int8_kernels``: one per output channel (an array) or
    one for the tensor (a float), as the converter chose."""
    return {name: t.scale for name, t in _int8_weights(model_content)}


def kernel_values(model) -> dict[str, np.ndarray]:
    """The kernels of a Keras model's Conv2D and Dense layers, by layer name."""
    return {layer.name: layer.get_weights()[0] for layer in model.layers
            if isinstance(layer, tf_keras.layers.Conv2D | tf_keras.layers.Dense)}
