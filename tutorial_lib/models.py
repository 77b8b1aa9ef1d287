"""The course CNN on paper: its layers, its parameter count, and where to get a real one.

The same network exists twice, in PyTorch (``tl.torch_bridge.CourseCNN``, NCHW input) and in
Keras (``tl.tflite_bridge.course_cnn_keras``, NHWC input). This module describes it without
importing either framework, so that a lesson can count its parameters and bytes per number
format before any framework is loaded.

>>> count_params()
156234
>>> [count_params(kind) * 4 for kind in ("trainable", "folded")]  # float32 bytes
[624040, 623144]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # for type hints only: the frameworks load inside the functions below
    import tf_keras
    import torch

__all__ = ["CNN_LAYERS", "INPUT_SHAPE", "LAYER_SPECS", "LayerSpec", "count_params",
           "keras_cnn", "torch_cnn", "keyword_spotter"]

INPUT_SHAPE = (1, 32, 32)
"""Channels, height, width of one input image (a 32x32 grey digit)."""


class LayerSpec(NamedTuple):
    """One layer: its name in both frameworks, its kind, and its input/output channels.

    ``kind`` is ``"conv3x3"``, ``"batchnorm"``, ``"relu"``, ``"maxpool2"``, ``"flatten"`` or
    ``"dense"``; ``c_in``/``c_out`` are channels (convolutions) or features (dense layers).
    """

    name: str
    kind: str
    c_in: int
    c_out: int


def _block(i: int, c_in: int, c_out: int) -> tuple[LayerSpec, ...]:
    return (
        LayerSpec(f"conv{i}", "conv3x3", c_in, c_out),
        LayerSpec(f"bn{i}", "batchnorm", c_out, c_out),
        LayerSpec(f"relu{i}", "relu", c_out, c_out),
        LayerSpec(f"pool{i}", "maxpool2", c_out, c_out),
    )


LAYER_SPECS: tuple[LayerSpec, ...] = (
    *_block(1, 1, 16),
    *_block(2, 16, 32),
    *_block(3, 32, 64),
    LayerSpec("flatten", "flatten", 64, 64 * 4 * 4),
    LayerSpec("fc1", "dense", 64 * 4 * 4, 128),
    LayerSpec("relu4", "relu", 128, 128),
    LayerSpec("fc2", "dense", 128, 10),
)
"""The layers in order. Keras fuses ``relu4`` into ``fc1`` (``Dense(128, activation="relu")``)."""

_KINDS = ("all", "trainable", "folded")


def _layer_params(spec: LayerSpec, kind: str) -> int:
    """Numbers stored by one layer; ``kind`` as in :func:`count_params`."""
    if spec.kind == "conv3x3":
        return 3 * 3 * spec.c_in * spec.c_out + spec.c_out  # kernels + biases
    if spec.kind == "dense":
        return spec.c_in * spec.c_out + spec.c_out  # weight matrix + biases
    if spec.kind == "batchnorm":
        # gamma and beta are learnt; the running mean and variance are measured statistics.
        # Folding rewrites the conv before it and leaves nothing of the BatchNorm behind.
        return {"all": 4, "trainable": 2, "folded": 0}[kind] * spec.c_out
    return 0  # relu, pooling and flatten have no parameters


def _shape_after(spec: LayerSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape (C, H, W), or (features,) once flattened, of one layer."""
    if spec.kind in ("flatten", "dense") or len(shape) == 1:
        return (spec.c_out,)
    _, h, w = shape
    if spec.kind == "maxpool2":
        return (spec.c_out, h // 2, w // 2)
    return (spec.c_out, h, w)


def _describe() -> tuple[str, ...]:
    lines = []
    shape: tuple[int, ...] = INPUT_SHAPE
    for spec in LAYER_SPECS:
        shape = _shape_after(spec, shape)
        what = {
            "conv3x3": f"Conv 3x3, {spec.c_in} -> {spec.c_out} channels, padding 1",
            "batchnorm": f"BatchNorm, {spec.c_out} channels",
            "relu": "ReLU",
            "maxpool2": "MaxPool 2x2",
            "flatten": "Flatten",
            "dense": f"Linear/Dense, {spec.c_in} -> {spec.c_out}",
        }[spec.kind]
        out = "x".join(map(str, shape))
        lines.append(f"{spec.name:<8}{what:<42}out {out:<9}{_layer_params(spec, 'all'):>7,} params")
    return tuple(lines)


CNN_LAYERS: tuple[str, ...] = _describe()
"""One readable line per layer: name, operation, output shape (C x H x W) and parameters.

Parameters are counted as in ``count_params("all")``: BatchNorm's 4 numbers per channel
included.

Print them with ``print(*tl.models.CNN_LAYERS, sep="\\n")``.
"""


def count_params(kind: str = "all") -> int:
    """Number of stored parameters of the course CNN, computed from the layer shapes.

    - ``"all"`` (default): weights, biases, BatchNorm's gamma and beta *and* its running mean
      and variance. This is what Keras' ``model.count_params()`` reports and what a saved
      float model holds; in PyTorch it is the parameters plus the ``running_mean`` and
      ``running_var`` buffers (not the ``num_batches_tracked`` counters).
    - ``"trainable"``: only what the optimizer updates; PyTorch's
      ``sum(p.numel() for p in model.parameters())``.
    - ``"folded"``: after folding each BatchNorm into the conv before it, as converters do
      for inference: only conv and dense weights and biases remain.

    >>> [count_params(kind) for kind in ("all", "trainable", "folded")]
    [156234, 156010, 155786]
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}.")
    return sum(_layer_params(spec, kind) for spec in LAYER_SPECS)


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}.")


def torch_cnn(trained: bool = True, seed: int = 0) -> torch.nn.Module:
    """The PyTorch course CNN: the shipped trained model (eval mode) or freshly initialized.

    Imports torch on first call. An untrained model is initialized after
    ``torch.manual_seed(seed)``, so the same seed gives the same initial weights.
    """
    _check_seed(seed)
    from tutorial_lib import torch_bridge

    if trained:
        return torch_bridge.trained_cnn(seed)
    torch_bridge.torch.manual_seed(seed)
    return torch_bridge.CourseCNN()


def keras_cnn(trained: bool = True, seed: int = 0) -> tf_keras.Model:
    """The Keras course CNN: the shipped trained model or freshly initialized.

    Imports TensorFlow on first call; in a notebook, call it (or import
    ``tutorial_lib.tflite_bridge``) before importing tensorflow or keras yourself. An untrained
    model is initialized after ``tf_keras.utils.set_random_seed(seed)``.
    """
    _check_seed(seed)
    from tutorial_lib import tflite_bridge

    if trained:
        return tflite_bridge.trained_cnn_keras(seed)
    tflite_bridge.tf_keras.utils.set_random_seed(seed)
    return tflite_bridge.course_cnn_keras()


def keyword_spotter() -> bytes:
    """microWakeWord's streaming int8 "Alexa" spotter as ``.tflite`` bytes (Apache-2.0).

    A real TinyML model from the field, shipped with its license and provenance in
    ``tutorial_lib/third_party/microwakeword``. Run it frame by frame with
    ``tl.integer.Int8Session``.

    >>> keyword_spotter()[4:8]
    b'TFL3'
    """
    from pathlib import Path

    return (Path(__file__).parent / "third_party" / "microwakeword" / "alexa.tflite").read_bytes()
