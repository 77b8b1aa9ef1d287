"""Train the course's networks once and ship their weights in ``tutorial_lib/weights`` (maintainers only).

Lessons load these files (``tb.trained_cnn(seed)``, ``kb.trained_cnn_keras(seed)``, and for
lesson 11 ``tb.trained_resnet(seed)``, ``kb.trained_resnet_keras(seed)``) instead of training at
lesson time, so that every learner quantizes the same model on any CPU. Run it for the network
whose layers, training recipe or data changed, then re-execute the notebooks:

    python tools/train_models.py --model course_resnet   # both frameworks, all seeds
    python tools/train_models.py                          # every network (all files change)
    python tools/train_models.py --check                  # retrain seed 0 of each, compare

Training one network rewrites its files and its entries of the manifest and keeps the others'
as they are. The manifest records, per file: network, framework, seed, bytes, sha256, parameters
and test accuracy, and per network the library versions and the processor that trained it.
Training is deterministic on one machine; on another processor the float kernels round
differently, so a retrained model matches the shipped one in accuracy (``--check`` allows
``TOLERANCE``), not bit for bit.
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


ABOUT = {
    "course_cnn": "The course CNN (tl.models.LAYER_SPECS)",
    "course_resnet": "Lesson 11's course ResNet (tl.models.RESNET_SPECS)",
}


def train_torch(seed: int, model: str = "course_cnn") -> tuple[dict[str, np.ndarray], float]:
    from tutorial_lib import torch_bridge as tb

    tb.torch.set_num_threads(1)
    data = load_digits(size=32, layout="NCHW")
    tb.torch.manual_seed(seed)  # the initial weights
    net = {"course_cnn": tb.CourseCNN, "course_resnet": tb.CourseResNet}[model]()
    net = tb.train(net, data, seed=seed)
    weights = {name: value.numpy().copy() for name, value in net.state_dict().items()}
    return weights, tb.accuracy(net, data.x_test, data.y_test)


def train_keras(seed: int, model: str = "course_cnn") -> tuple[dict[str, np.ndarray], float]:
    from tutorial_lib import tflite_bridge as kb

    data = load_digits(size=32, layout="NHWC")
    kb.tf_keras.utils.set_random_seed(seed)  # the initial weights
    net = {"course_cnn": kb.course_cnn_keras, "course_resnet": kb.course_resnet_keras}[model]()
    net = kb.train_keras(net, data, seed=seed)
    weights = dict(zip(kb.keras_weight_names(net), net.get_weights(), strict=True))
    return weights, kb.accuracy_keras(net, data.x_test, data.y_test)


TRAINERS = {"torch": train_torch, "keras": train_keras}


def npz_bytes(weights: dict[str, np.ndarray]) -> bytes:
    """The weights as an uncompressed .npz, in a fixed order."""
    buffer = io.BytesIO()
    np.savez(buffer, **dict(sorted(weights.items())))
    return buffer.getvalue()


def write(model: str) -> None:
    """Train ``model`` in both frameworks for every seed; write its files and manifest entries."""
    shipped.WEIGHTS_DIR.mkdir(exist_ok=True)
    path = shipped.WEIGHTS_DIR / "manifest.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    entries = [e for e in old.get("models", []) if e["model"] != model]
    for framework, trainer in TRAINERS.items():
        for seed in SEEDS:
            weights, acc = trainer(seed, model)
            content = npz_bytes(weights)
            name = shipped.file_name(framework, seed, model)
            (shipped.WEIGHTS_DIR / name).write_bytes(content)
            entries.append({"model": model, "framework": framework, "seed": seed, "file": name,
                            "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                            "parameters": int(sum(w.size for w in weights.values()
                                                  if w.dtype == np.float32)),
                            "test_accuracy": round(acc, 6)})
            print(f"{model} {framework:5s} seed {seed}: test accuracy {acc:.2%}, "
                  f"{len(content):,} bytes", flush=True)
    order = {name: i for i, name in enumerate(shipped.MODELS)}
    entries.sort(key=lambda e: (order[e["model"]], e["framework"] != "torch", e["seed"]))
    trained_on = {**old.get("trained_on", {}),
                  model: {"date": datetime.date.today().isoformat(), **env.machine(),
                          **{k: v for k, v in env.versions().items()
                             if k in ("python", "numpy", "torch", "tensorflow", "tf-keras")}}}
    manifest = {
        "about": "The course's networks trained on scikit-learn's digits at 32x32 (1,437 "
                 "training and 360 test images), written by tools/train_models.py: "
                 + "; ".join(f"{name}: {ABOUT[name]}" for name in shipped.MODELS) + ".",
        "seeds": list(SEEDS),
        "trained_on": {name: trained_on[name] for name in shipped.MODELS if name in trained_on},
        "models": entries,
    }
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def check(framework: str, seed: int = 0, model: str = "course_cnn") -> tuple[float, float]:
    """Retrain one model; return (shipped accuracy, retrained accuracy)."""
    expected = shipped.model_entry(framework, seed, model)["test_accuracy"]
    _, acc = TRAINERS[framework](seed, model)
    return expected, acc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="retrain seed 0 in each framework and compare with the manifest")
    parser.add_argument("--model", choices=shipped.MODELS, action="append",
                        help="the network to train or check (repeat for several; default: all)")
    args = parser.parse_args(argv)
    models = args.model or list(shipped.MODELS)
    if not args.check:
        for model in models:
            write(model)
        return 0
    failed = False
    for model in models:
        for framework in TRAINERS:
            expected, acc = check(framework, 0, model)
            ok = abs(acc - expected) <= TOLERANCE
            failed |= not ok
            print(f"{model} {framework}: shipped {expected:.2%}, retrained {acc:.2%}: "
                  f"{'ok' if ok else 'differs by more than ' + format(TOLERANCE, '.1%')}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
