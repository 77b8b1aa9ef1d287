"""The course's trained networks, shipped inside the package so that every learner quantizes the same model.

Training is deterministic on one machine, but PyTorch's and TensorFlow's float kernels round
differently on different instruction sets (AVX-512, AVX2, ARM NEON), so a CNN trained at lesson
time would have slightly different weights, ranges and accuracies on every laptop. Instead, the
maintainer tool ``tools/train_models.py`` trains each model once and writes its weights here as
``.npz`` files with a ``manifest.json`` (model, framework, seed, versions, accuracy, size and
sha256 of each file). Two networks ship (``MODELS``): the course CNN and lesson 11's course
ResNet. This module reads them with numpy alone; ``tl.torch_bridge.trained_cnn(seed)``,
``tl.tflite_bridge.trained_cnn_keras(seed)``, ``tl.torch_bridge.trained_resnet(seed)`` and
``tl.tflite_bridge.trained_resnet_keras(seed)`` turn them into models.

>>> manifest()["seeds"]
[0, 1, 2]
>>> sorted(load_weights("torch", 0))[:3]
['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean']
>>> file_name("keras", 2, "course_resnet")
'course_resnet_keras_seed2.npz'
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from tutorial_lib.course import models

__all__ = ["FRAMEWORKS", "MODELS", "WEIGHTS_DIR", "file_name", "load_weights", "manifest",
           "model_entry"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
FRAMEWORKS = ("torch", "keras")
MODELS = models.MODELS  # ("course_cnn", "course_resnet")
_LOADERS = {"course_cnn": ("tb.CourseCNN()", "kb.course_cnn_keras()"),
            "course_resnet": ("tb.CourseResNet()", "kb.course_resnet_keras()")}


def file_name(framework: str, seed: int, model: str = "course_cnn") -> str:
    """The weight file of one shipped model, e.g. ``course_cnn_torch_seed0.npz``."""
    return f"{model}_{framework}_seed{seed}.npz"


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    """The manifest written by ``tools/train_models.py`` (a fresh dict is not needed: read only)."""
    path = WEIGHTS_DIR / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the course's trained models are not installed. Reinstall the "
            "course (make env), or make them with `python tools/train_models.py`."
        )
    return json.loads(path.read_text())


def model_entry(framework: str, seed: int, model: str = "course_cnn") -> dict:
    """The manifest's record of one model: model, file, sha256, bytes, seed, test accuracy."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}; got {framework!r}.")
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    for entry in manifest()["models"]:
        if (entry["model"], entry["framework"], entry["seed"]) == (model, framework, seed):
            return entry
    torch_model, keras_model = _LOADERS[model]
    what = "CNN" if model == "course_cnn" else "ResNet"
    raise ValueError(
        f"the course ships the trained {what} for seeds {manifest()['seeds']}, not seed {seed}. "
        f"Pick one of those, or train your own: tb.train({torch_model}, data, seed={seed}) "
        f"(PyTorch) or kb.train_keras({keras_model}, data, seed={seed}) (Keras)."
    )


@functools.lru_cache(maxsize=16)
def _read(framework: str, seed: int, model: str) -> dict[str, np.ndarray]:
    entry = model_entry(framework, seed, model)
    path = WEIGHTS_DIR / entry["file"]
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(
            f"{path.name} does not match the manifest (sha256 {digest[:12]}..., expected "
            f"{entry['sha256'][:12]}...): the file was changed or damaged. Restore it with "
            "`git checkout tutorial_lib/weights`."
        )
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


def load_weights(framework: str, seed: int = 0, model: str = "course_cnn") -> dict[str, np.ndarray]:
    """The shipped weights of one model as ``{name: array}``, checked against the manifest.

    ``model`` is one of ``MODELS``. PyTorch names are the state-dict keys (``conv1.weight``,
    ``bn1.running_mean``, ...); Keras names are ``NN:layer/variable`` in ``model.weights``
    order. Each call returns new arrays.
    """
    return {name: value.copy() for name, value in _read(framework, seed, model).items()}
