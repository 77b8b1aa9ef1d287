"""The ``tflite`` benchmark suite: ``python -m tutorial_lib.bench tflite [--repeats N]``.

Converts the course CNN (trained on the 32x32 digits) with each of TFLite's post-training modes
and MobileNetV2 (random weights, ``tl.tflite_bridge.mobilenet_v2``: size and speed do not depend
on their values) with the same modes, then measures them side by side in one run: accuracy through LiteRT (the
course CNN only), size of the .tflite file, and latency at batch 1 with one thread, the models
of each network taking turns (``tl.tflite_bridge.compare_latency``), so that speed-ups are
ratios taken at the same moments. Sizes are checked against the course's targets: int8 within
3% of 4x smaller than float, float16 within 3% of 2x.
"""

from __future__ import annotations

import numpy as np

from tutorial_lib import tflite_bridge as tb
from tutorial_lib.data import load_digits

TITLE = "LiteRT post-training quantization (course CNN on 32x32 digits; MobileNetV2), one thread"
CALIBRATION_IMAGES = 100  # course CNN: training images fed to the converter
MOBILENET_CALIBRATION = 8  # MobileNetV2: random images; its weights are random too
THREADS = 1
SEED_001_FLOAT_BYTES = 13_989_548  # seed 001: MobileNetV2 float .tflite, TF of 2021
TARGET_RATIO = {"dynamic_range": 4.0, "full_integer": 4.0, "integer_only": 4.0, "float16": 2.0}
SEED_001 = {"float": f"{SEED_001_FLOAT_BYTES:,} B", "dynamic_range": "1/4",
            "full_integer": "1/4", "integer_only": "1/4", "float16": "1/2"}
TOLERANCE = 0.03


def size_target(mode: str, ratio: float) -> str:
    """Whether ``ratio`` (float bytes / bytes) is within 3% of the mode's ideal 4x or 2x.

    >>> size_target("full_integer", 3.9), size_target("float16", 1.9), size_target("float", 1.0)
    ('4x ±3%: met', '2x ±3%: missed', '')
    """
    if mode not in TARGET_RATIO:
        return ""
    ideal = TARGET_RATIO[mode]
    met = abs(ratio / ideal - 1) <= TOLERANCE
    return f"{ideal:g}x ±{TOLERANCE:.0%}: {'met' if met else 'missed'}"


def _rows(network: str, models: dict[str, bytes], repeats: int,
          accuracy: dict[str, float] | None = None) -> list[dict]:
    latency = tb.compare_latency(models, num_threads=THREADS, repeats=repeats)
    float_bytes, float_ms = len(models["float"]), latency["float"]
    rows = []
    for mode, content in models.items():
        ratio = float_bytes / len(content)
        rows.append({
            "model": network, "mode": mode,
            "accuracy %": f"{100 * accuracy[mode]:.1f}" if accuracy else "(random weights)",
            "bytes": f"{len(content):,}", "x smaller": f"{ratio:.2f}",
            "size target": size_target(mode, ratio),
            "seed 001": SEED_001[mode] if network == "MobileNetV2" else "",
            "batch 1 ms": f"{latency[mode]:.3f}", "speed-up": f"{float_ms / latency[mode]:.2f}",
        })
    return rows


def run(repeats: int) -> tuple[list[dict], str]:
    """Convert both networks in every mode, then measure them (float is each one's baseline)."""
    data = load_digits(size=32, layout="NHWC")
    cnn = tb.trained_cnn_keras()
    cnn_models = {mode: tb.convert(cnn, mode, data.x_train[:CALIBRATION_IMAGES])
                  for mode in tb.MODES}
    accuracy = {mode: tb.accuracy_tflite(content, data.x_test, data.y_test)
                for mode, content in cnn_models.items()}
    rows = _rows("course CNN", cnn_models, repeats, accuracy)
    del cnn_models

    mobilenet = tb.mobilenet_v2()
    images = np.random.default_rng(0).uniform(-1, 1, (MOBILENET_CALIBRATION, 224, 224, 3))
    mobilenet_models = {mode: tb.convert(mobilenet, mode, images.astype(np.float32))
                        for mode in tb.MODES}
    rows += _rows("MobileNetV2", mobilenet_models, max(1, repeats // 5))
    note = (f"Latency: median of one invoke() at batch 1 with {THREADS} thread and LiteRT's "
            f"default kernels (XNNPACK), models of each network taking turns, after 10 warm-up "
            f"rounds; {repeats} timed runs for the course CNN, {max(1, repeats // 5)} for "
            f"MobileNetV2. Speed-ups and 'x smaller' are relative to the float model of the same "
            f"network. Accuracy: the course CNN's 360 test images through LiteRT (Keras float: "
            f"{100 * tb.accuracy_keras(cnn, data.x_test, data.y_test):.1f}%). Calibration: "
            f"{CALIBRATION_IMAGES} training images (course CNN), {MOBILENET_CALIBRATION} random "
            f"images (MobileNetV2: weights=None, BatchNorm given random statistics, see "
            f"tl.tflite_bridge.mobilenet_v2). 'seed 001': the float size and the ratios the "
            f"study note reports for MobileNetV2.")
    return rows, note
