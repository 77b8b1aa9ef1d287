"""The ``torch`` benchmark suite: ``python -m tutorial_lib.bench torch [--repeats N]``.

Quantizes the course CNN (trained on the 32x32 digits) with every method of lesson 06 and
measures them side by side in one run: accuracy on the test split, size of the saved state dict,
and latency at batch 1 and 32 with one CPU thread, all models taking turns (see
``tl.torch_bridge.compare_latency``), so that speed-ups are ratios taken at the same moments.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tutorial_lib import torch_bridge as tb
from tutorial_lib.data import load_digits

TITLE = "PyTorch int8 on the course CNN (32x32 digits, one CPU thread)"
CALIBRATION_IMAGES = 256
THREADS = 1


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
    models = {
        "fp32": model,
        "dynamic (eager)": tb.eager_dynamic_int8(model),
        "static (eager)": tb.eager_static_int8(model, calibration),
        "QAT (eager)": tb.eager_qat_int8(model, data),
        "int8 weight-only (torchao)": torchao(Int8WeightOnlyConfig()),
        "int8 dynamic (torchao)": torchao(Int8DynamicActivationInt8WeightConfig()),
        "PT2E static (x86, lowered)": tb.lower_to_x86(pt2e, example),
        "PT2E QAT (x86, lowered)": tb.lower_to_x86(pt2e_qat, example),
    }
    stored = {"PT2E static (x86, lowered)": pt2e, "PT2E QAT (x86, lowered)": pt2e_qat}
    return models, stored


def run(repeats: int) -> tuple[list[dict], str]:
    """Build every variant, then measure them all in one table (the first row is the baseline)."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(THREADS)  # also makes training and QAT independent of the core count
    try:
        data = load_digits(size=32, layout="NCHW")
        models, stored = quantize_all(tb.trained_cnn(), data)
        rows = tb.compare(models, data, stored=stored, repeats=repeats, threads=THREADS)
    finally:
        torch.set_num_threads(threads_before)
    note = (f"Latency: median over {repeats} timed runs after 3 warm-up runs, models taking "
            f"turns, torch {torch.__version__}, {THREADS} thread; speed-ups are relative to fp32 "
            f"in the same run. Size: bytes of the saved state dict (PT2E: the converted graph "
            f"without its unused float weights). Calibration: {CALIBRATION_IMAGES} training "
            "images; QAT: two epochs of fine-tuning, observers and BatchNorm statistics frozen "
            "after the first.")
    return rows, note
