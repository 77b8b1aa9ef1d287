"""tutorial_lib: the helper library of the quantization course, imported as ``tl``.

``import tutorial_lib`` needs only numpy. Modules load on first use (``tl.formats``,
``tl.checks``, ...); the framework bridges (``tl.torch_bridge``, ``tl.tflite_bridge``) import
PyTorch or TensorFlow only when a lesson asks for them.

The modules live in folders by layer. A module imports only from its own layer and the layers
below it (``tests/test_layers.py`` enforces it), so the arrows all point down::

    checks/       the exercises' checkers (lessons 01-11)         the top: nothing imports it
       |
    measure/      speed, benchmarks, per-layer debugging
       |
    bridges/      PyTorch: torch_model, torch_quant, torch_bridge, qat, torch_compress
                  TensorFlow/LiteRT: tflite_bridge, tf_fake_quant, keras_compress
       |
    compression/  pruning, clustering, distill                  (lesson 09)
    language/     llm, gguf_blocks, weight_only, lora           (lesson 10)
       |
    course/       models, shipped, data, env, paths, viz, grade, _quiet
       |
    core/         formats, affine, observers, packing, groupwise, integer, tflite_file,
                  metrics, equalize, _validate                  (numpy, no framework)

Which module serves which lesson:

    00  data, env                      06  torch_bridge, speed
    01  formats, viz, metrics          07  tflite_bridge, integer, tflite_file, tflite_bench
    02  affine (tl.quantize, ...)      08  tflite_bridge, tf_fake_quant, integer
    03  observers, groupwise, packing  09  pruning, clustering, distill, torch_compress,
    04  integer, tflite_file, models,      keras_compress
        shipped                        10  llm, gguf_blocks, weight_only, lora, paths
    05  qat, tf_fake_quant, observers  11  models, debug, equalize, speed

A module keeps its short name: ``tl.torch_bridge``, ``import tutorial_lib.torch_bridge`` and
``python -m tutorial_lib.bench`` reach the same module as ``tutorial_lib.bridges.torch_bridge``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from tutorial_lib.core.affine import (
    QParams,
    choose_qparams,
    dequantize,
    fake_quantize,
    qrange,
    quantize,
)
from tutorial_lib.core.integer import run_int8_tflite

__version__ = "0.1.0"

LAYERS = {  # lowest first; a module may import from its own layer and the ones before it
    "core": ("formats", "affine", "observers", "packing", "groupwise", "integer", "tflite_file",
             "metrics", "equalize", "_validate"),
    "course": ("models", "shipped", "data", "env", "paths", "viz", "grade", "_quiet"),
    "compression": ("pruning", "clustering", "distill"),
    "language": ("llm", "gguf_blocks", "weight_only", "lora"),
    "bridges": ("torch_model", "torch_quant", "torch_bridge", "qat", "torch_compress",
                "tflite_bridge", "tf_fake_quant", "keras_compress"),
    "measure": ("speed", "bench", "sweep_bench", "tflite_bench", "torch_bench", "debug"),
    "checks": (),
}
# The level of each layer: layers on one level never import each other.
LEVELS = {"core": 0, "course": 1, "compression": 2, "language": 2, "bridges": 3, "measure": 4,
          "checks": 5}
# Every module's short name and its home: tl.torch_bridge is tutorial_lib.bridges.torch_bridge.
HOMES = {name: f"{layer}.{name}" for layer, names in LAYERS.items() for name in names}

__all__ = ["QParams", "choose_qparams", "dequantize", "fake_quantize", "qrange", "quantize",
           "run_int8_tflite",
           *sorted(n for n in HOMES if not n.startswith("_")), *LAYERS]


def __getattr__(name: str):
    if name in HOMES:
        return importlib.import_module(f"{__name__}.{HOMES[name]}")
    if name in LAYERS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tutorial_lib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(HOMES) | set(LAYERS))


class _ShortNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import tutorial_lib.torch_bridge`` gives the module that lives in ``bridges/``: the same
    object, never a second copy; ``python -m tutorial_lib.bench`` runs ``measure/bench.py``."""

    @staticmethod
    def home(fullname: str) -> str | None:
        parent, _, name = fullname.rpartition(".")
        return f"{__name__}.{HOMES[name]}" if parent == __name__ and name in HOMES else None

    def find_spec(self, fullname, path=None, target=None):
        home = self.home(fullname)
        if home is None:
            return None
        found = importlib.util.find_spec(home)
        return importlib.util.spec_from_loader(fullname, self, origin=found.origin)

    def create_module(self, spec):
        module = importlib.import_module(self.home(spec.name))
        spec.loader_state = module.__spec__  # put back by exec_module: the module keeps its own
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state

    def get_code(self, fullname):
        found = importlib.util.find_spec(self.home(fullname))
        return found.loader.get_code(found.name)


if not any(isinstance(f, _ShortNames) for f in sys.meta_path):
    sys.meta_path.insert(0, _ShortNames())
