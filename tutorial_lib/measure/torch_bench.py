"""The ``torch`` benchmark suite: ``python -m tutorial_lib.bench torch [--repeats N]``.

Quantizes the course CNN (trained on the 32x32 digits) with every method of lesson 06 and
measures them side by side in one run: accuracy on the test split, size of the saved state dict,
and latency at batch 1 and 32 with one CPU thread. Every model runs at both batch sizes in each
round (``tl.speed.interleaved``), so that speed-ups are ratios taken at the same moments.

The baseline is the best eager float32: BatchNorm folded into the convolutions, which every int8
model gets too (eager int8 fuses conv+bn+relu). The model as written stays as a row, so that the
table shows what folding alone buys. Compiled models (``torch.compile``, inductor with freezing)
are compared with the compiled float32 as well, in the "vs best fp32" columns.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tutorial_lib.bridges import torch_bridge as tb
from tutorial_lib.course.data import load_digits
from tutorial_lib.measure import speed

TITLE = "PyTorch int8 on the course CNN (32x32 digits, one CPU thread)"
CALIBRATION_IMAGES = 256
THREADS = 1
BATCHES = (1, 32)
BASELINE = "fp32, BN folded"


def compiled(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, float]:
    """``model`` under ``torch.compile`` (inductor, freezing), compiled for each batch size."""
    return speed._compiled(model, x, BATCHES)


def quantize_all(model: nn.Module, data) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """fp32 and every method of lesson 06, as ``(models to run, models whose file is measured)``."""
    tb.load_quantization_apis()
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        quantize_,
    )

    calibration = data.x_train[:CALIBRATION_IMAGES]
    example = data.x_test[:32]

    def torchao(config):
        quantized = copy.deepcopy(model)
        quantize_(quantized, config)
        return quantized

    pt2e = tb.pt2e_int8(model, calibration)
    pt2e_qat = tb.pt2e_qat_int8(model, data)
    static, qat = pt2e_names()
    models = {
        "fp32": model,
        "fp32, BN folded": tb.fold_batchnorm(model),
        "dynamic (eager)": tb.eager_dynamic_int8(model),
        "static (eager)": tb.eager_static_int8(model, calibration),
        "QAT (eager)": tb.eager_qat_int8(model, data),
        "int8 weight-only (torchao)": torchao(Int8WeightOnlyConfig()),
        "int8 dynamic (torchao)": torchao(Int8DynamicActivationInt8WeightConfig()),
        static: tb.lower(pt2e, example),
        qat: tb.lower(pt2e_qat, example),
    }
    stored = {static: pt2e, qat: pt2e_qat,
              "PT2E static (compiled)": pt2e, "PT2E QAT (compiled)": pt2e_qat}
    return models, stored


def pt2e_names() -> tuple[str, str]:
    """The rows of the PT2E static and QAT models, as ``tl.torch_bridge.lower`` runs them on
    this engine: "PT2E static (x86, lowered)" on x86, "... (ARM, reference graph)" on qnnpack."""
    label = tb.lowering_label()
    return f"PT2E static ({label})", f"PT2E QAT ({label})"


def compiled_sources() -> dict[str, str]:
    """Compiled name: the model of ``quantize_all`` it compiles."""
    static, qat = pt2e_names()
    return {"fp32, BN folded (compiled)": "fp32, BN folded",
            "int8 dynamic (torchao, compiled)": "int8 dynamic (torchao)",
            "PT2E static (compiled)": static, "PT2E QAT (compiled)": qat}


def compile_all(models: dict, stored: dict, x: torch.Tensor) -> dict[str, float]:
    """Add the compiled twins of ``compiled_sources()`` to ``models`` (PT2E: the converted graph,
    not the lowered one); return the seconds each took to compile."""
    seconds = {}
    for name, source in compiled_sources().items():
        models[name], seconds[name] = compiled(stored.get(name, models[source]), x)
        stored.setdefault(name, models[source])
    return seconds


def run(repeats: int) -> tuple[list[dict], str]:
    """Build every variant, then measure them all in one table (the first row is the baseline)."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(THREADS)  # also makes training and QAT independent of the core count
    try:
        data = load_digits(size=32, layout="NCHW")
        models, measured = quantize_all(tb.trained_cnn(), data)
        seconds = compile_all(models, measured, torch.from_numpy(data.x_test[:max(BATCHES)]))
        order = [BASELINE, "fp32", *[n for n in models if n not in (BASELINE, "fp32")]]
        models = {n: models[n] for n in order}
        inputs = {b: torch.from_numpy(data.x_test[:b]) for b in BATCHES}
        runners = {name: {b: (lambda m=m, x=x: m(x)) for b, x in inputs.items()}
                   for name, m in models.items()}
        with torch.no_grad():
            timings = speed.interleaved(runners, repeats=repeats)
        rows = []
        base_bytes = tb.state_dict_bytes(models[BASELINE])
        best_fp32 = {b: min(t[b].median for n, t in timings.items() if n.startswith("fp32"))
                     for b in BATCHES}
        for name in models:
            twin = measured.get(name, models[name])
            size = tb.state_dict_bytes(twin)
            row = {"method": name, "accuracy %": f"{100 * tb.digits_accuracy(twin, data):.1f}",
                   "size MB": f"{size / 1e6:.3f}", "x smaller": f"{base_bytes / size:.2f}"}
            for b in BATCHES:
                t = timings[name][b]
                row[f"batch {b} ms (IQR)"] = f"{t.median:.3f} ({t.iqr:.3f})"
                row[f"x b{b}"] = f"{timings[BASELINE][b].median / t.median:.2f}"
                row[f"x b{b} vs best fp32"] = f"{best_fp32[b] / t.median:.2f}"
            row["compile s"] = f"{seconds[name]:.1f}" if name in seconds else ""
            rows.append(row)
    finally:
        torch.set_num_threads(threads_before)
    note = (f"Latency: median and interquartile range over {repeats} timed rounds after 3 "
            f"warm-up rounds; in every round each model runs at batch 1 and at batch 32. torch "
            f"{torch.__version__}, {THREADS} thread. 'x b1', 'x b32': speed-up over the "
            f"baseline, '{BASELINE}'; 'vs best fp32': over the fastest float32 row at that batch, "
            f"compiled included. Compiled: torch.compile with inductor and freezing, one "
            f"compilation per batch size, seconds in 'compile s'. 'x86, lowered': tl.torch_bridge.lower_to_x86, the course's "
            f"stand-in for torchao's lowering, which runs inductor's pattern passes without "
            f"compiling (and leans on private inductor functions); 'ARM, reference graph' (the "
            f"qnnpack engine): the converted graph as it is, with no lowering outside "
            f"torch.compile; the documented path is the compiled row. Quantized engine: "
            f"{torch.backends.quantized.engine}. Size: bytes of the saved state dict (PT2E and compiled rows: of the "
            f"converted graph without its unused float weights); a state dict and a .tflite file "
            f"hold different things, so compare sizes within a table. Calibration: "
            f"{CALIBRATION_IMAGES} training images; QAT: two epochs of fine-tuning, observers and "
            f"BatchNorm statistics frozen after the first.")
    return rows, note
