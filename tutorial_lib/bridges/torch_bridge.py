"""PyTorch side of the course, in one namespace: ``tl.torch_bridge.<name>``.

The code lives in two modules, each read top to bottom on its own:

- ``tutorial_lib.torch_model``: the course CNN and ResNet, their training and shipped weights,
  simulated integer inference (BatchNorm folding, fake quantization), and measuring any model (size on
  disk, accuracy, latency, one table for all);
- ``tutorial_lib.torch_quant``: PyTorch's quantization APIs (eager mode, torchao's PT2E with the
  x86 quantizer, or ARM's on the qnnpack engine) and reading what a quantized model holds.

This module imports both, and with them torch (``import tutorial_lib`` alone never does); on
import it sets PyTorch's quantized engine for this machine (``tl.env.quantized_engine``).
"""

from __future__ import annotations

import torch  # noqa: F401  (tl.torch_bridge.torch, as lessons and tl.models use it)
from torch import nn  # noqa: F401

from tutorial_lib.bridges.torch_model import (  # noqa: F401  (re-exported; tl.qat uses _check_dataset)
    BATCH_SIZE,
    EPOCHS,
    LR,
    CourseCNN,
    CourseResNet,
    Latency,
    _check_dataset,
    _check_images,
    _eval_mode,
    _is_graph,
    _mode,
    accuracy,
    agreement,
    compare,
    compare_latency,
    digits_accuracy,
    fake_quantize_model,
    fold_batchnorm,
    format_table,
    latency,
    layer_costs,
    layer_inputs,
    logits,
    predict,
    state_dict_bytes,
    summarize_times,
    to_tensor,
    torch_cnn,
    train,
    trained_cnn,
    trained_resnet,
    weighted_layers,
)
from tutorial_lib.bridges.torch_quant import (  # noqa: F401  (re-exported; the tests use _ao, _allow_eval)
    KNOWN_WARNINGS,
    _allow_eval,
    _ao,
    arm_quantizer,
    calibrate,
    drop_unused_weights,
    eager_dynamic_int8,
    eager_qat_int8,
    eager_static_int8,
    export_for_quantization,
    fuse_groups,
    load_quantization_apis,
    lower,
    lower_to_x86,
    lowering_label,
    pt2e_int8,
    pt2e_qat_int8,
    pt2e_quantizer,
    quantized_summary,
    use_course_engine,
    x86_quantizer,
)

__all__ = [  # the names of torch_model, then those of torch_quant
    "CourseCNN", "CourseResNet", "accuracy", "predict", "to_tensor", "train", "trained_cnn",
    "trained_resnet", "torch_cnn", "fold_batchnorm",
    "weighted_layers", "layer_inputs", "fake_quantize_model", "state_dict_bytes", "layer_costs",
    "logits", "digits_accuracy", "agreement", "Latency", "summarize_times", "compare_latency",
    "latency", "compare", "format_table", "use_course_engine", "KNOWN_WARNINGS",
    "load_quantization_apis", "fuse_groups", "calibrate", "eager_dynamic_int8",
    "eager_static_int8", "eager_qat_int8", "export_for_quantization", "x86_quantizer",
    "arm_quantizer", "pt2e_quantizer", "drop_unused_weights", "lower_to_x86", "lower",
    "lowering_label", "pt2e_int8", "pt2e_qat_int8", "quantized_summary",
]
