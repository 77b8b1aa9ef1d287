"""tutorial_lib: the helper library of the quantization course, imported as ``tl``.

``import tutorial_lib`` needs only numpy. Submodules load on first use (``tl.formats``,
``tl.checks``, ...); the framework bridges (``tl.torch_bridge``, ``tl.tflite_bridge``) import
PyTorch or TensorFlow only when a lesson asks for them.
"""

from __future__ import annotations

import importlib

from tutorial_lib.affine import (
    QParams,
    choose_qparams,
    dequantize,
    fake_quantize,
    qrange,
    quantize,
)
from tutorial_lib.integer import run_int8_tflite

__version__ = "0.1.0"

_SUBMODULES = {
    "affine", "checks", "data", "formats", "metrics", "models", "tflite_bridge", "torch_bridge",
    "viz", "env", "integer", "tflite_file", "observers", "packing", "groupwise",
    "qat", "tf_fake_quant", "shipped", "speed",
    "pruning", "clustering", "distill", "torch_compress", "keras_compress",
    "gguf_blocks", "weight_only", "llm", "lora", "debug", "paths", "equalize",
}

__all__ = ["QParams", "choose_qparams", "dequantize", "fake_quantize", "qrange", "quantize",
           "run_int8_tflite",
           *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tutorial_lib.{name}")
    raise AttributeError(f"module 'tutorial_lib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
