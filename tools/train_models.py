"""Train the course CNNs once and ship their weights in ``tutorial_lib/weights`` (maintainers only).

Lessons load these files (``tb.trained_cnn(seed)``, ``kb.trained_cnn_keras(seed)``) instead of
training at lesson time, so that every learner quantizes the same model on any CPU. Run it when
the CNN, its training recipe or the data change, then re-execute the notebooks:

    python tools/train_models.py            # all frameworks and seeds, rewrites the manifest
    python tools/train_models.py --check    # train seed 0 again and compare with the manifest

The manifest records, per model: file, bytes, sha256, seed, epochs and test accuracy, plus the
library versions and the processor that trained them. Training is deterministic on one machine;
on another processor the float kernels round differently, so a retrained model matches the
shipped one in accuracy (``--check`` allows ``TOLERANCE``), not bit for bit.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tutorial_lib import env, shipped  # noqa: E402
from tutorial_lib.data import load_digits  # noqa: E402

SEEDS = (0, 1, 2)
TOLERANCE = 0.015  # a retrained model's test accuracy may differ by this much (5 of 360 images)


def train_torch(seed: int) -> tuple[dict[str, np.ndarray], float]:
    from tutorial_lib import torch_bridge as tb

    tb.torch.set_num_threads(1)
    data = load_digits(size=32, layout="NCHW")
    tb.torch.manual_seed(seed)  # the initial weights
    model = tb.train(tb.CourseCNN(), data, seed=seed)
    weights = {name: value.numpy().copy() for name, value in model.state_dict().items()}
    return weights, tb.accuracy(model, data.x_test, data.y_test)


def train_keras(seed: int) -> tuple[dict[str, np.ndarray], float]:
    from tutorial_lib import tflite_bridge as kb

    data = load_digits(size=32, layout="NHWC")
    kb.tf_keras.utils.set_random_seed(seed)  # the initial weights
    model = kb.train_keras(kb.course_cnn_keras(), data, seed=seed)
    weights = dict(zip(kb.keras_weight_names(model), model.get_weights(), strict=True))
    return weights, kb.accuracy_keras(model, data.x_test, data.y_test)


TRAINERS = {"torch": train_torch, "keras": train_keras}


def npz_bytes(weights: dict[str, np.ndarray]) -> bytes:
    """The weights as an uncompressed .npz, in a fixed order."""
    buffer = io.BytesIO()
    np.savez(buffer, **dict(sorted(weights.items())))
    return buffer.getvalue()


def write_all() -> None:
    shipped.WEIGHTS_DIR.mkdir(exist_ok=True)
    models = []
    for framework, trainer in TRAINERS.items():
        for seed in SEEDS:
            weights, acc = trainer(seed)
            content = npz_bytes(weights)
            name = shipped.file_name(framework, seed)
            (shipped.WEIGHTS_DIR / name).write_bytes(content)
            models.append({"framework": framework, "seed": seed, "file": name,
                           "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                           "parameters": int(sum(w.size for w in weights.values()
                                                 if w.dtype == np.float32)),
                           "test_accuracy": round(acc, 6)})
            print(f"{framework:5s} seed {seed}: test accuracy {acc:.2%}, {len(content):,} bytes",
                  flush=True)
    manifest = {
        "about": "The course CNN trained on scikit-learn's digits at 32x32 (1,437 training and "
                 "360 test images), written by tools/train_models.py.",
        "seeds": list(SEEDS),
        "trained_on": {"date": datetime.date.today().isoformat(), **env.machine(),
                       **{k: v for k, v in env.versions().items()
                          if k in ("python", "numpy", "torch", "tensorflow", "tf-keras")}},
        "models": models,
    }
    (shipped.WEIGHTS_DIR / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def check(framework: str, seed: int = 0) -> tuple[float, float]:
    """Retrain one model; return (shipped accuracy, retrained accuracy)."""
    expected = shipped.model_entry(framework, seed)["test_accuracy"]
    _, acc = TRAINERS[framework](seed)
    return expected, acc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="retrain seed 0 of each framework and compare with the manifest")
    args = parser.parse_args(argv)
    if not args.check:
        write_all()
        return 0
    failed = False
    for framework in TRAINERS:
        expected, acc = check(framework)
        ok = abs(acc - expected) <= TOLERANCE
        failed |= not ok
        print(f"{framework}: shipped {expected:.2%}, retrained {acc:.2%}: "
              f"{'ok' if ok else 'differs by more than ' + format(TOLERANCE, '.1%')}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
