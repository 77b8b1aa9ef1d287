"""The course's networks on paper: their layers, parameter counts, and where to get real ones.

Two networks, each defined twice with the same layers and names: the **course CNN** in PyTorch
(``tl.torch_bridge.CourseCNN``, NCHW input) and Keras (``tl.tflite_bridge.course_cnn_keras``,
NHWC input), and the larger **course ResNet** of lesson 11 (``tl.torch_bridge.CourseResNet``,
``tl.tflite_bridge.course_resnet_keras``). This module describes both without importing either
framework, so that a lesson can count their parameters, multiply-adds and bytes per number
format before any framework is loaded.

>>> count_params()
156234
>>> [count_params(kind) * 4 for kind in ("trainable", "folded")]  # float32 bytes
[624040, 623144]
>>> count_params(model="course_resnet"), count_macs("course_resnet")
(174850, 27354048)
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CNN_LAYERS", "INPUT_SHAPE", "LAYER_SPECS", "LayerSpec", "MODELS", "RESNET_LAYERS",
           "RESNET_SPECS", "count_macs", "count_params", "keyword_spotter"]

INPUT_SHAPE = (1, 32, 32)
"""Channels, height, width of one input image (a 32x32 grey digit)."""


class LayerSpec(NamedTuple):
    """One layer: its name in both frameworks, its kind, and its input/output channels.

    ``kind`` is ``"conv3x3"``, ``"conv1x1"``, ``"batchnorm"``, ``"relu"``, ``"maxpool2"``,
    ``"add"``, ``"avgpool"`` (global average pooling), ``"flatten"`` or ``"dense"``;
    ``c_in``/``c_out`` are channels (convolutions) or features (dense layers). ``stride`` is a
    convolution's step (2 halves height and width), ``bias`` whether it adds a bias (not
    before a BatchNorm, whose beta does the same), and ``inputs`` names the layers it reads
    when that is not simply the layer before: a shortcut's input, or the two tensors an
    ``"add"`` sums.
    """

    name: str
    kind: str
    c_in: int
    c_out: int
    stride: int = 1
    bias: bool = True
    inputs: tuple[str, ...] = ()


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

def _resnet_block(i: int, c_in: int, c_out: int) -> tuple[LayerSpec, ...]:
    """Two 3x3 convs and a shortcut, summed, then ReLU; a stride-2 block projects its shortcut."""
    stride = 1 if c_in == c_out else 2
    before = "stem_relu" if i == 1 else f"b{i - 1}_relu2"
    p = f"b{i}_"
    main = (
        LayerSpec(p + "conv1", "conv3x3", c_in, c_out, stride, bias=False),
        LayerSpec(p + "bn1", "batchnorm", c_out, c_out),
        LayerSpec(p + "relu1", "relu", c_out, c_out),
        LayerSpec(p + "conv2", "conv3x3", c_out, c_out, bias=False),
        LayerSpec(p + "bn2", "batchnorm", c_out, c_out),
    )
    shortcut = before
    if stride != 1:
        shortcut = p + "proj_bn"
        main += (LayerSpec(p + "proj", "conv1x1", c_in, c_out, stride, False, (before,)),
                 LayerSpec(p + "proj_bn", "batchnorm", c_out, c_out))
    return main + (LayerSpec(p + "add", "add", c_out, c_out, inputs=(p + "bn2", shortcut)),
                   LayerSpec(p + "relu2", "relu", c_out, c_out))


RESNET_WIDTHS = (24, 48, 96)
"""Channels of the course ResNet's three stages, at 32x32, 16x16 and 8x8 pixels."""

RESNET_SPECS: tuple[LayerSpec, ...] = (
    LayerSpec("stem_conv", "conv3x3", 1, 24, bias=False),
    LayerSpec("stem_bn", "batchnorm", 24, 24),
    LayerSpec("stem_relu", "relu", 24, 24),
    *_resnet_block(1, 24, 24),
    *_resnet_block(2, 24, 48),
    *_resnet_block(3, 48, 96),
    LayerSpec("pool", "avgpool", 96, 96),
    LayerSpec("flatten", "flatten", 96, 96),
    LayerSpec("fc", "dense", 96, 10),
)
"""The course ResNet's layers in order: a stem, three residual blocks (the second and third
halve the image with stride 2 and project their shortcut with a 1x1 conv), global average
pooling and one dense layer. Convolutions before a BatchNorm have no bias."""

MODELS = ("course_cnn", "course_resnet")
_SPECS = {"course_cnn": LAYER_SPECS, "course_resnet": RESNET_SPECS}
_KINDS = ("all", "trainable", "folded")


def _specs(model: str) -> tuple[LayerSpec, ...]:
    if model not in _SPECS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}.")
    return _SPECS[model]


def _layer_params(spec: LayerSpec, kind: str) -> int:
    """Numbers stored by one layer; ``kind`` as in :func:`count_params`."""
    bias = spec.c_out if spec.bias else 0
    if spec.kind in ("conv3x3", "conv1x1"):
        k = 3 if spec.kind == "conv3x3" else 1
        if kind == "folded" and not spec.bias:
            bias = spec.c_out  # folding a BatchNorm into a bias-free conv gives it a bias
        return k * k * spec.c_in * spec.c_out + bias  # kernels + biases
    if spec.kind == "dense":
        return spec.c_in * spec.c_out + bias  # weight matrix + biases
    if spec.kind == "batchnorm":
        # gamma and beta are learnt; the running mean and variance are measured statistics.
        # Folding rewrites the conv before it and leaves nothing of the BatchNorm behind.
        return {"all": 4, "trainable": 2, "folded": 0}[kind] * spec.c_out
    return 0  # relu, add, pooling and flatten have no parameters


def _shapes(specs: tuple[LayerSpec, ...]) -> dict[str, tuple[int, ...]]:
    """Output shape (C, H, W), or (features,) once flattened, of every layer."""
    shapes: dict[str, tuple[int, ...]] = {}
    shape: tuple[int, ...] = INPUT_SHAPE
    for spec in specs:
        if spec.inputs:
            shape = shapes[spec.inputs[0]]
        if spec.kind in ("flatten", "dense") or len(shape) == 1:
            shape = (spec.c_out,)
        elif spec.kind == "avgpool":
            shape = (spec.c_out, 1, 1)
        else:
            _, h, w = shape
            step = 2 if spec.kind == "maxpool2" else spec.stride
            shape = (spec.c_out, h // step, w // step)
        shapes[spec.name] = shape
    return shapes


def _describe(specs: tuple[LayerSpec, ...]) -> tuple[str, ...]:
    lines = []
    shapes = _shapes(specs)
    width = max(len(spec.name) for spec in specs) + 1
    for spec in specs:
        stride = ", stride 2" if spec.stride == 2 else ""
        what = {
            "conv3x3": f"Conv 3x3, {spec.c_in} -> {spec.c_out} channels{stride or ', padding 1'}",
            "conv1x1": f"Conv 1x1, {spec.c_in} -> {spec.c_out}{stride}",
            "batchnorm": f"BatchNorm, {spec.c_out} channels",
            "relu": "ReLU",
            "maxpool2": "MaxPool 2x2",
            "add": " + ".join(spec.inputs),
            "avgpool": "global average pooling",
            "flatten": "Flatten",
            "dense": f"Linear/Dense, {spec.c_in} -> {spec.c_out}",
        }[spec.kind]
        if spec.kind == "conv1x1" and spec.inputs:
            what += f", of {spec.inputs[0]}"
        out = "x".join(map(str, shapes[spec.name]))
        lines.append(f"{spec.name:<{width}}{what:<42}out {out:<9}"
                     f"{_layer_params(spec, 'all'):>7,} params")
    return tuple(lines)


CNN_LAYERS: tuple[str, ...] = _describe(LAYER_SPECS)
"""One readable line per layer: name, operation, output shape (C x H x W) and parameters.

Parameters are counted as in ``count_params("all")``: BatchNorm's 4 numbers per channel
included.

Print them with ``print(*tl.models.CNN_LAYERS, sep="\\n")``.
"""

RESNET_LAYERS: tuple[str, ...] = _describe(RESNET_SPECS)
"""The same table for the course ResNet (``print(*tl.models.RESNET_LAYERS, sep="\\n")``)."""


def count_params(kind: str = "all", model: str = "course_cnn") -> int:
    """Number of stored parameters of a course network, computed from the layer shapes.

    - ``"all"`` (default): weights, biases, BatchNorm's gamma and beta *and* its running mean
      and variance. This is what Keras' ``model.count_params()`` reports and what a saved
      float model holds; in PyTorch it is the parameters plus the ``running_mean`` and
      ``running_var`` buffers (not the ``num_batches_tracked`` counters).
    - ``"trainable"``: only what the optimizer updates; PyTorch's
      ``sum(p.numel() for p in model.parameters())``.
    - ``"folded"``: after folding each BatchNorm into the conv before it, as converters do
      for inference: only conv and dense weights and biases remain (a conv without bias
      gains one from its BatchNorm).

    ``model`` is ``"course_cnn"`` (default) or ``"course_resnet"``.

    >>> [count_params(kind) for kind in ("all", "trainable", "folded")]
    [156234, 156010, 155786]
    >>> [count_params(kind, "course_resnet") for kind in ("all", "trainable", "folded")]
    [174850, 173842, 173338]
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}.")
    return sum(_layer_params(spec, kind) for spec in _specs(model))


def count_macs(model: str = "course_cnn") -> int:
    """Multiply-adds of one 32x32 image through a course network (convolutions and dense layers).

    A k x k convolution costs ``k * k * c_in * c_out`` per output pixel, a dense layer
    ``c_in * c_out``; BatchNorm, ReLU, pooling and the residual adds cost next to nothing.

    >>> count_macs(), count_macs("course_resnet")
    (2639104, 27354048)
    """
    shapes = _shapes(_specs(model))
    total = 0
    for spec in _specs(model):
        if spec.kind in ("conv3x3", "conv1x1"):
            k = 3 if spec.kind == "conv3x3" else 1
            _, h, w = shapes[spec.name]
            total += h * w * k * k * spec.c_in * spec.c_out
        elif spec.kind == "dense":
            total += spec.c_in * spec.c_out
    return total


def keyword_spotter() -> bytes:
    """microWakeWord's streaming int8 "Alexa" spotter as ``.tflite`` bytes (Apache-2.0).

    A real TinyML model from the field, shipped with its license and provenance in
    ``tutorial_lib/third_party/microwakeword``. Run it frame by frame with
    ``tl.integer.Int8Session``.

    >>> keyword_spotter()[4:8]
    b'TFL3'
    """
    from pathlib import Path

    spotter = Path(__file__).resolve().parents[1] / "third_party" / "microwakeword" / "alexa.tflite"
    return spotter.read_bytes()
