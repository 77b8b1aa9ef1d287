"""Pruning, clustering and distillation in Keras with tfmot, and what survives in a .tflite file.

The TensorFlow Model Optimization Toolkit (tfmot 0.8) works on Keras 2 models (``tf_keras``) only;
this module imports TensorFlow through ``tl.tflite_bridge``, which selects Keras 2. What it adds
to tfmot's calls:

- ``pruning_schedule`` picks the schedule's ``frequency`` from the run's length: tfmot's default
  (prune every 100 steps) fires only at step 0 in a fine-tune of 46 steps, where the schedule's
  sparsity is still 0, which leaves the model dense;
- ``fit_pruned``, ``fit_clustered`` and ``fit_collaborative`` fine-tune with the callbacks and
  schemes tfmot needs, and strip the wrappers;
- ``fit_distilled`` trains a student on ``tl.distill.kd_loss`` (its Keras twin, ``kd_loss_keras``);
- ``int8_kernels`` reads the int8 weights back from a converted file, to count zeros and values.
"""

from __future__ import annotations

import numpy as np

from tutorial_lib import tflite_bridge as kb
from tutorial_lib.data import Dataset

tf, tf_keras = kb.tf, kb.tf_keras

__all__ = ["pruning_schedule", "schedule_steps", "fit_pruned", "fit_clustered",
           "fit_collaborative", "SCHEMES", "student_cnn_keras", "kd_loss_keras", "fit_distilled",
           "int8_kernels", "kernel_values"]


def _steps_per_epoch(data: Dataset, batch_size: int) -> int:
    return -(-len(data.x_train) // batch_size)


def pruning_schedule(sparsity: float, total_steps: int, frequency: int | None = None):
    """tfmot's ``PolynomialDecay`` from 0 to ``sparsity`` over the first half of the run.

    ``frequency`` (steps between mask updates) defaults to an eighth of the ramp, rounded down
    (at least 1), so the mask is updated every few batches up to the end of the ramp: 9 times
    or more, 12 in a run of 46 steps (0, 2, ..., 22); tfmot's own default, 100, suits runs of
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
    """The steps at which ``schedule`` updates the masks, with the sparsity it sets then.

    tfmot's ``UpdatePruningStep`` counts steps from 0; a step whose ``(should_prune,
    sparsity)`` is False leaves the mask as it is (all ones at the start).
    """
    out = []
    for step in range(total_steps):
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


def fit_pruned(model, data: Dataset, sparsity: float = 0.8, epochs: int = 2, lr: float = 1e-3,
               seed: int = 0, m_by_n: tuple[int, int] | None = None, frequency: int | None = None,
               batch_size: int = 64):
    """Prune ``model`` (a copy) to ``sparsity`` while fine-tuning; return the stripped model.

    Every Conv2D and Dense layer is wrapped with ``prune_low_magnitude`` and the schedule of
    ``pruning_schedule``. With ``m_by_n=(2, 4)`` the layers whose input channels come in
    groups of 4 are pruned 2:4 instead (tfmot's ``sparsity_m_by_n``); the others (the first
    conv, with one input channel) stay dense.
    """
    tfmot = kb.load_tfmot()
    sparsity_api = tfmot.sparsity.keras
    total = epochs * _steps_per_epoch(data, batch_size)
    schedule = pruning_schedule(sparsity, total, frequency)

    def wrap(layer):
        if not isinstance(layer, tf_keras.layers.Conv2D | tf_keras.layers.Dense):
            return layer
        if m_by_n is None:
            return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)
        kernel_in = layer.get_weights()[0].shape[-2]
        if kernel_in % m_by_n[1]:
            return layer
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule,
                                                sparsity_m_by_n=tuple(m_by_n))

    with kb._quiet_stderr():
        wrapped = tf_keras.models.clone_model(_copy(model), clone_function=wrap)
    _compile_fit(wrapped, data.x_train, data.y_train, _ce(), epochs, lr, seed, batch_size,
                 [sparsity_api.UpdatePruningStep()])
    return sparsity_api.strip_pruning(wrapped)


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


def student_cnn_keras(channels: tuple[int, int] = (4, 8)):
    """A small student for the 32x32 digits: two conv+ReLU+pool blocks and one Dense layer.

    conv3x3 (4) -> maxpool 4 -> conv3x3 (8) -> maxpool 2 -> flatten (128) -> Dense(10):
    1,626 parameters, about 1% of the course CNN's.
    """
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


def int8_kernels(model_content: bytes) -> dict[str, np.ndarray]:
    """The int8 weight tensors (rank 2 or more) of a .tflite file, read from its bytes.

    Keys are short layer names (``conv1``, ``fc1``, ...) where the tensor's name contains
    ``/<layer>/``; TFLite keeps kernels output-channel first: OHWI for convs, (out, in) for
    fully connected layers.
    """
    from tutorial_lib.tflite_file import read

    found = {}
    for t in read(model_content).tensors:
        if t.data is None or t.dtype is not np.int8 or t.data.ndim < 2:
            continue
        parts = [p for p in t.name.replace(";", "/").split("/") if p]
        short = next((p.removeprefix("quant_") for p in parts
                      if p.removeprefix("quant_").startswith(("conv", "fc"))), t.name)
        found[short] = t.data
    return found


def kernel_values(model) -> dict[str, np.ndarray]:
    """The kernels of a Keras model's Conv2D and Dense layers, by layer name."""
    return {layer.name: layer.get_weights()[0] for layer in model.layers
            if isinstance(layer, tf_keras.layers.Conv2D | tf_keras.layers.Dense)}
