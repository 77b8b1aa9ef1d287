"""Where int8 pays: float and int8 latency side by side as the model grows, on this CPU.

An int8 kernel does four times less memory traffic and, on a CPU with the right instructions,
up to four times more multiply-adds per cycle than a float32 one; it also pays fixed costs
that float does not (quantizing the input, requantizing each output, reordering weights and
activations into the layout the kernel wants). On a small model the fixed costs win; on a
large one the multiply-adds do. This module measures where the crossover lies:

- ``scaled_cnn`` / ``scaled_cnn_keras``: the course CNN with every layer ``width`` times wider,
  so that the multiply-adds per image (``cnn_macs``) grow about as ``width**2``;
- ``interleaved`` times several models at several batch sizes in the same rounds (every round
  calls every model at every batch once), so that a slow moment on a shared machine slows all
  of them alike, and ``Timing`` keeps the median with the interquartile range;
- ``crossover`` finds the smallest model where int8 wins;
- ``torch_sweep`` and ``litert_sweep`` run the whole comparison for one framework.

The numpy parts below need no framework; PyTorch and TensorFlow load inside the functions that
use them. ``tl.env.int8_features()`` says which int8 instructions this CPU has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from tutorial_lib.course.models import LAYER_SPECS, LayerSpec

__all__ = ["BATCHES", "WIDTHS", "Timing", "cnn_macs", "crossover", "interleaved", "summarize",
           "scaled_specs", "scaled_cnn", "scaled_cnn_keras", "torch_sweep", "litert_sweep",
           "sweep_table"]

WIDTHS = (1, 2, 4, 8)
"""Channel multipliers of the sweep: about 2.6, 10, 40 and 161 million multiply-adds per image."""

BATCHES = (1, 8, 32)


def scaled_specs(width: int) -> tuple[LayerSpec, ...]:
    """The course CNN's layers (``tl.models.LAYER_SPECS``) with every hidden width times ``width``.

    The input (1 channel) and the output (10 classes) keep their size.

    >>> [(s.name, s.c_in, s.c_out) for s in scaled_specs(2) if s.kind in ("conv3x3", "dense")]
    [('conv1', 1, 32), ('conv2', 32, 64), ('conv3', 64, 128), ('fc1', 2048, 256), ('fc2', 256, 10)]
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer (1 is the course CNN); got {width!r}.")
    first, last = LAYER_SPECS[0].name, LAYER_SPECS[-1].name

    def scale(spec: LayerSpec) -> LayerSpec:
        c_in = spec.c_in if spec.name == first else spec.c_in * width
        c_out = spec.c_out if spec.name == last else spec.c_out * width
        return spec._replace(c_in=c_in, c_out=c_out)

    return tuple(scale(spec) for spec in LAYER_SPECS)


def cnn_macs(width: int = 1) -> int:
    """Multiply-adds of one 32x32 image through the course CNN at ``width`` (convs and dense layers).

    A 3x3 convolution costs ``9 * c_in * c_out`` per output pixel; the three blocks run at 32x32,
    16x16 and 8x8 pixels.

    >>> cnn_macs(1), cnn_macs(2), cnn_macs(8)
    (2639104, 10258944, 160573440)
    """
    pixels = {"conv1": 32 * 32, "conv2": 16 * 16, "conv3": 8 * 8}
    total = 0
    for spec in scaled_specs(width):
        if spec.kind == "conv3x3":
            total += pixels[spec.name] * 9 * spec.c_in * spec.c_out
        elif spec.kind == "dense":
            total += spec.c_in * spec.c_out
    return total


class Timing(NamedTuple):
    """Median and interquartile range (p25, p75) of repeated timings, in milliseconds."""

    median: float
    p25: float
    p75: float

    @property
    def iqr(self) -> float:
        return self.p75 - self.p25


def summarize(times_ms: Sequence[float]) -> Timing:
    """Median and quartiles of timings in milliseconds.

    >>> summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    Timing(median=3.0, p25=2.0, p75=4.0)
    """
    t = np.asarray(times_ms, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"need a non-empty 1-D list of finite timings; got shape {t.shape}.")
    p25, median, p75 = np.percentile(t, [25, 50, 75])
    return Timing(float(median), float(p25), float(p75))


def interleaved(runners: Mapping[str, Mapping[int, Callable[[], object]]], repeats: int = 30,
                warmup: int = 3) -> dict[str, dict[int, Timing]]:
    """Time ``runners[name][batch]()`` for every model and batch in the same rounds.

    Each of the ``warmup + repeats`` rounds calls every runner once, in a fixed order; the
    warm-up rounds are not kept. Returns ``{name: {batch: Timing}}`` in milliseconds.

    >>> t = interleaved({"sleep": {1: lambda: time.sleep(0.001)}}, repeats=5, warmup=1)
    >>> 0.9 < t["sleep"][1].median < 50
    True
    """
    for name, v, low in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {v!r}.")
    times = {name: {b: [] for b in per_batch} for name, per_batch in runners.items()}
    for round_ in range(warmup + repeats):
        for name, per_batch in runners.items():
            for batch, run in per_batch.items():
                start = time.perf_counter()
                run()
                if round_ >= warmup:
                    times[name][batch].append((time.perf_counter() - start) * 1e3)
    return {name: {b: summarize(t) for b, t in per_batch.items()}
            for name, per_batch in times.items()}


def crossover(macs: Sequence[int], speedups: Sequence[float]) -> int | None:
    """The smallest model (in multiply-adds) from which int8 is faster for every larger model too.

    ``None`` when int8 does not win even on the largest model.

    >>> crossover([2, 10, 40, 160], [0.8, 1.3, 0.9, 2.5]), crossover([2, 10], [0.5, 0.9])
    (160, None)
    >>> crossover([2, 10, 40], [1.1, 1.5, 3.0])
    2
    """
    if len(macs) != len(speedups) or not len(macs):
        raise ValueError(f"need one speed-up per model; got {len(macs)} sizes and "
                         f"{len(speedups)} speed-ups.")
    order = np.argsort(macs)
    found = None
    for i in order[::-1]:
        if speedups[i] <= 1.0:
            break
        found = int(macs[i])
    return found


# ---- PyTorch


def scaled_cnn(width: int = 1, seed: int = 0):
    """A ``tl.torch_bridge.CourseCNN`` with every hidden layer ``width`` times wider (random weights).

    Speed does not depend on the weights' values, so the sweep needs no training. The layer
    names and order are the course CNN's, so fusing, folding and every quantization API of
    lesson 06 work on it unchanged. BatchNorm gets random statistics, so that folding it
    changes the weights as it does in a trained model.
    """
    import torch
    from torch import nn

    from tutorial_lib.bridges import torch_bridge as tb

    specs = {s.name: s for s in scaled_specs(width)}
    torch.manual_seed(seed)
    model = tb.CourseCNN()
    for name, spec in specs.items():
        if spec.kind == "conv3x3":
            setattr(model, name, nn.Conv2d(spec.c_in, spec.c_out, kernel_size=3, padding=1))
        elif spec.kind == "batchnorm":
            bn = nn.BatchNorm2d(spec.c_out)
            with torch.no_grad():
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
            setattr(model, name, bn)
        elif spec.kind == "dense":
            setattr(model, name, nn.Linear(spec.c_in, spec.c_out))
    return model.eval()


def _compiled(model, x, batches):
    """``torch.compile`` with inductor and freezing, compiled for each batch size; seconds spent."""
    import torch
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    compiled = torch.compile(model, dynamic=False)
    start = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            compiled(x[:b])
    return compiled, time.perf_counter() - start


def torch_variants(width: int, calibration, compile_: bool = False) -> tuple[dict, dict]:
    """Every PyTorch variant of the course CNN at ``width``: ``({name: model}, {name: seconds})``.

    The float baselines: eager as written (BatchNorm a separate op), eager with BatchNorm
    folded into the convolutions (the best eager float32, and what every int8 model starts
    from), and, with ``compile_``, the folded model under ``torch.compile`` (inductor with
    freezing). The int8 models: eager static int8 (the engine's kernels, fbgemm/oneDNN on x86,
    QNNPACK on ARM; conv+bn+relu fused), PT2E through ``tl.torch_bridge.lower`` (on x86,
    inductor's pattern passes without compiling; on qnnpack the reference graph, named so), and,
    with ``compile_``, PT2E under ``torch.compile``, the documented path.
    The second dict holds the seconds each compiled model took to compile.
    """
    import torch

    from tutorial_lib.bridges import torch_bridge as tb

    model = scaled_cnn(width)
    folded = tb.fold_batchnorm(model)
    x = calibration[:max(BATCHES)]
    models = {"fp32 eager": model, "fp32 eager, BN folded": folded}
    compile_seconds = {}
    if compile_:
        models["fp32 compiled"], compile_seconds["fp32 compiled"] = _compiled(folded, x, BATCHES)
    models["int8 static (eager)"] = tb.eager_static_int8(model, calibration)
    pt2e = tb.pt2e_int8(model, calibration)
    lowered = tb.lower(pt2e, x)  # on qnnpack: the graph itself, and its row says so
    models["int8 PT2E (reference graph)" if lowered is pt2e
           else "int8 PT2E (lowered, not compiled)"] = lowered
    if compile_:
        with torch.no_grad():
            pt2e_graph = tb.pt2e_int8(model, calibration)
        models["int8 PT2E (compiled)"], compile_seconds["int8 PT2E (compiled)"] = _compiled(
            pt2e_graph, x, BATCHES)
    return models, compile_seconds


def torch_sweep(widths: Sequence[int] = WIDTHS, batches: Sequence[int] = BATCHES,
                repeats: int = 30, compile_widths: Sequence[int] = (), threads: int = 1,
                calibration_images: int = 64) -> list[dict]:
    """Latency of every ``torch_variants`` model at each width and batch, one row per model.

    All variants of one width are timed in the same interleaved rounds, every batch size in
    each round, with ``threads`` CPU threads. Rows hold the width, multiply-adds per image,
    the variant, its compile time (if compiled) and ``{batch: Timing}``.
    """
    import torch

    from tutorial_lib.course.data import load_digits

    x = torch.from_numpy(load_digits(size=32, layout="NCHW").x_train[:max(calibration_images,
                                                                          max(batches))])
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for width in widths:
            models, compile_seconds = torch_variants(width, x[:calibration_images],
                                                     compile_=width in compile_widths)
            inputs = {b: x[:b].contiguous() for b in batches}
            runners = {name: {b: (lambda m=m, xb=xb: m(xb)) for b, xb in inputs.items()}
                       for name, m in models.items()}
            with torch.no_grad():
                timings = interleaved(runners, repeats=repeats)
            for name, per_batch in timings.items():
                rows.append({"framework": "PyTorch", "width": width, "macs": cnn_macs(width),
                             "variant": name, "compile s": compile_seconds.get(name),
                             "timings": per_batch})
    finally:
        torch.set_num_threads(threads_before)
    return rows


# ---- LiteRT


def scaled_cnn_keras(width: int = 1, seed: int = 0):
    """The Keras course CNN (``tl.tflite_bridge.course_cnn_keras``) ``width`` times wider, random weights."""
    from tutorial_lib.bridges import tflite_bridge as tfb

    tf_keras = tfb.tf_keras  # the Keras 2 that tfmot and the converter expect
    tf_keras.utils.set_random_seed(seed)
    s = {spec.name: spec for spec in scaled_specs(width)}
    layers = [tf_keras.layers.InputLayer(input_shape=(32, 32, 1))]
    for i in (1, 2, 3):
        layers += [tf_keras.layers.Conv2D(s[f"conv{i}"].c_out, 3, padding="same", name=f"conv{i}"),
                   tf_keras.layers.BatchNormalization(name=f"bn{i}"),
                   tf_keras.layers.ReLU(name=f"relu{i}"),
                   tf_keras.layers.MaxPooling2D(2, name=f"pool{i}")]
    layers += [tf_keras.layers.Flatten(name="flatten"),
               tf_keras.layers.Dense(s["fc1"].c_out, activation="relu", name="fc1"),
               tf_keras.layers.Dense(10, name="fc2")]
    return tf_keras.Sequential(layers)


def _litert_runner(model_content: bytes, batch: int, threads: int):
    from tutorial_lib.bridges import tflite_bridge as tfb

    it = tfb.interpreter(model_content, num_threads=threads)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    return it.invoke


def litert_sweep(widths: Sequence[int] = WIDTHS, batches: Sequence[int] = BATCHES,
                 repeats: int = 30, modes: Sequence[str] = ("float", "full_integer"),
                 threads: int = 1, calibration_images: int = 32) -> list[dict]:
    """Latency of the LiteRT conversions of ``scaled_cnn_keras`` at each width and batch.

    Each mode (``tl.tflite_bridge.MODES``) runs on its own interpreter with LiteRT's default
    kernels (XNNPACK where it applies) and ``threads`` threads; one interpreter per batch size,
    all timed in the same interleaved rounds (only ``invoke()`` is timed).
    """
    from tutorial_lib.bridges import tflite_bridge as tfb
    from tutorial_lib.course.data import load_digits

    calibration = load_digits(size=32, layout="NHWC").x_train[:calibration_images]
    rows = []
    for width in widths:
        keras_model = scaled_cnn_keras(width)
        files = {mode: tfb.convert(keras_model, mode, calibration) for mode in modes}
        runners = {mode: {b: _litert_runner(content, b, threads) for b in batches}
                   for mode, content in files.items()}
        timings = interleaved(runners, repeats=repeats)
        for mode, per_batch in timings.items():
            rows.append({"framework": "LiteRT", "width": width, "macs": cnn_macs(width),
                         "variant": mode, "bytes": len(files[mode]), "timings": per_batch})
    return rows


# ---- tables


def speedups(rows: Sequence[dict], baseline: str, variant: str, batch: int) -> list[tuple[int, float]]:
    """``[(macs, baseline median / variant median)]`` per width, for one batch size."""
    by_key = {(r["width"], r["variant"]): r for r in rows}
    out = []
    for width in sorted({r["width"] for r in rows}):
        base, other = by_key.get((width, baseline)), by_key.get((width, variant))
        if base and other and batch in base["timings"] and batch in other["timings"]:
            out.append((base["macs"],
                        base["timings"][batch].median / other["timings"][batch].median))
    return out


def sweep_table(rows: Sequence[dict], baseline: str) -> list[dict]:
    """One readable row per model: median ms (IQR) at each batch and the speed-up over ``baseline``."""
    by_key = {(r["width"], r["variant"]): r for r in rows}
    table = []
    for r in rows:
        base = by_key[(r["width"], baseline)]
        row = {"width": f"{r['width']}x", "M MACs": f"{r['macs'] / 1e6:.1f}", "variant": r["variant"]}
        for b, t in r["timings"].items():
            row[f"batch {b} ms (IQR)"] = f"{t.median:.3f} ({t.iqr:.3f})"
            row[f"x{b}"] = f"{base['timings'][b].median / t.median:.2f}"
        if r.get("compile s") is not None:
            row["compile s"] = f"{r['compile s']:.1f}"
        table.append(row)
    keys = list(dict.fromkeys(k for row in table for k in row))
    return [{k: row.get(k, "") for k in keys} for row in table]


# ---- LiteRT: where MobileNetV2's time goes, per kind of layer

_OP_KINDS = {"Conv2D": "convolution", "DepthwiseConv2D": "depthwise convolution",
             "Dense": "dense"}


def _layer_kind(layer) -> str | None:
    kind = _OP_KINDS.get(type(layer).__name__)
    if kind == "convolution":
        kind = "1x1 convolution" if tuple(layer.kernel_size) == (1, 1) else "3x3 convolution"
    return kind


def layer_profile(keras_model, modes: Sequence[str] = ("float", "dynamic_range", "full_integer"),
                  repeats: int = 30, threads: int = 1) -> list[dict]:
    """Time each convolution and dense layer of ``keras_model`` alone, in each LiteRT mode.

    LiteRT's Python interpreter has no per-op profiler, so every weighted layer is rebuilt as a
    one-layer model with its own configuration and input shape (random weights), converted in
    each mode, and timed at batch 1 with the modes taking turns (layers with the same
    configuration are timed once and counted as often as they occur). Returns one row per kind
    of layer: how many there are and the summed median milliseconds per mode. Element-wise ops
    (additions, ReLU6, pooling) are not counted: they cost little next to these.
    """
    from tutorial_lib.bridges import tflite_bridge as tfb

    tf_keras = tfb.tf_keras
    rng = np.random.default_rng(0)
    groups: dict[tuple, dict] = {}
    for layer in keras_model.layers:
        kind = _layer_kind(layer)
        if kind is None:
            continue
        config = layer.get_config()
        config.pop("name", None)
        key = (type(layer).__name__, tuple(layer.input.shape[1:]), repr(sorted(config.items())))
        groups.setdefault(key, {"kind": kind, "count": 0, "layer": layer})["count"] += 1
    totals: dict[str, dict] = {}
    for (_, shape, _), group in groups.items():
        layer = group["layer"]
        single = tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=shape),
                                      type(layer).from_config(layer.get_config())])
        x = rng.uniform(-1, 1, (4, *shape)).astype(np.float32)
        runners = {mode: {1: _litert_runner(tfb.convert(single, mode, x), 1, threads)}
                   for mode in modes}
        timing = interleaved(runners, repeats=repeats)
        row = totals.setdefault(group["kind"], {"layer kind": group["kind"], "layers": 0,
                                                **{mode: 0.0 for mode in modes}})
        row["layers"] += group["count"]
        for mode in modes:
            row[mode] += group["count"] * timing[mode][1].median
    return list(totals.values())
