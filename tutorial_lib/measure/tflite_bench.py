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

from tutorial_lib.bridges import tflite_bridge as tb
from tutorial_lib.course.data import load_digits
from tutorial_lib.measure import speed

TITLE = "LiteRT post-training quantization (course CNN on 32x32 digits; MobileNetV2), one thread"
CALIBRATION_IMAGES = 100  # course CNN: training images fed to the converter
MOBILENET_CALIBRATION = 8  # MobileNetV2: random images; its weights are random too
THREADS = 1
BATCHES = (1, 32)
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
    runners = {mode: {b: speed._litert_runner(content, b, THREADS) for b in BATCHES}
               for mode, content in models.items()}
    timings = speed.interleaved(runners, repeats=repeats, warmup=3)
    float_bytes = len(models["float"])
    rows = []
    for mode, content in models.items():
        ratio = float_bytes / len(content)
        row = {
            "model": network, "mode": mode,
            "accuracy %": f"{100 * accuracy[mode]:.1f}" if accuracy else "(random weights)",
            "bytes": f"{len(content):,}", "x smaller": f"{ratio:.2f}",
            "size target": size_target(mode, ratio),
            "seed 001": SEED_001[mode] if network == "MobileNetV2" else "",
        }
        for b in BATCHES:
            t = timings[mode][b]
            row[f"batch {b} ms (IQR)"] = f"{t.median:.3f} ({t.iqr:.3f})"
            row[f"x b{b}"] = f"{timings['float'][b].median / t.median:.2f}"
        rows.append(row)
    return rows


def delegation(models: dict[str, bytes], repeats: int) -> list[dict]:
    """Each file with LiteRT's default kernels (XNNPACK) and without: ms at batch 1 and partitions.

    A model that XNNPACK takes whole shows one DELEGATE node; each op XNNPACK cannot run cuts the
    graph, and the pieces between such ops become separate DELEGATE nodes.
    """
    with tb._quiet_stderr():
        from ai_edge_litert.interpreter import OpResolverType

    runners, partitions = {}, {}
    for mode, content in models.items():
        for kernels, resolver in (("XNNPACK", OpResolverType.AUTO),
                                  ("built-in", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)):
            with tb._quiet_stderr():
                from ai_edge_litert.interpreter import Interpreter

                it = Interpreter(model_content=content, num_threads=THREADS,
                                    experimental_op_resolver_type=resolver)
                it.allocate_tensors()
            runners[(mode, kernels)] = {1: it.invoke}
            if kernels == "XNNPACK":
                partitions[mode] = sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())
    timings = speed.interleaved(runners, repeats=repeats, warmup=3)
    return [{"mode": mode, "XNNPACK partitions": partitions[mode],
             "XNNPACK ms": f"{timings[(mode, 'XNNPACK')][1].median:.2f}",
             "built-in kernels ms": f"{timings[(mode, 'built-in')][1].median:.2f}"}
            for mode in models]


def run(repeats: int) -> tuple[list[dict], str, str]:
    """Convert both networks in every mode, then measure them (float is each one's baseline).

    Also explains MobileNetV2's dynamic-range mode: per kind of layer (``tl.speed.layer_profile``)
    and whole, with and without XNNPACK (``delegation``).
    """
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
    rows += _rows("MobileNetV2", mobilenet_models, repeats)
    profile_modes = ("float", "dynamic_range", "full_integer")
    whole = delegation({m: mobilenet_models[m] for m in profile_modes}, repeats)
    layers = speed.layer_profile(mobilenet, profile_modes, repeats=repeats, threads=THREADS)
    for row in layers:
        for mode in profile_modes:
            row[mode] = f"{row[mode]:.2f}"
    extra = (
        "### MobileNetV2: where the time goes (batch 1, one thread)\n\n"
        "Whole model, with LiteRT's default kernels (XNNPACK) and with the built-in kernels "
        "only; 'partitions' counts the DELEGATE nodes XNNPACK took over:\n\n"
        f"{markdown_table(whole)}\n\n"
        "Each convolution and dense layer alone (a one-layer model of the same configuration "
        "and input shape, default kernels), summed per kind of layer, ms:\n\n"
        f"{markdown_table(layers)}\n")
    note = (f"Latency: median and interquartile range of one invoke() with {THREADS} thread and "
            f"LiteRT's default kernels (XNNPACK), {repeats} timed rounds after 3 warm-up rounds; "
            f"in every round each model of a network runs at batch 1 and at batch 32 (one "
            f"interpreter per batch size, zeros as input). 'x b1', 'x b32' and 'x smaller' are "
            f"relative to the float model of the same network. Accuracy: the course CNN's 360 "
            f"test images through LiteRT (Keras float: "
            f"{100 * tb.accuracy_keras(cnn, data.x_test, data.y_test):.1f}%). Calibration: "
            f"{CALIBRATION_IMAGES} training images (course CNN), {MOBILENET_CALIBRATION} random "
            f"images (MobileNetV2: weights=None, BatchNorm given random statistics, see "
            f"tl.tflite_bridge.mobilenet_v2). 'seed 001': the float size and the ratios the "
            f"study note reports for MobileNetV2.")
    return rows, note, extra


def markdown_table(rows: list[dict]) -> str:
    from tutorial_lib.measure.bench import markdown_table as table

    return table(rows)
