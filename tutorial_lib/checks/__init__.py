"""Checkers for the exercises: ``tl.checks.check_<name>(your_function)``.

Each checker calls the learner's function on fixed golden cases (boundaries, a clipped value,
exact zero, .5 ties, per-channel shapes), prints one line when all pass, and otherwise the
first wrong case: its input, the expected and actual values, the largest difference and a hint.
It never lets a traceback reach the learner; an exercise that still raises
``NotImplementedError`` is reported as not implemented yet, and the notebook runs on.

Expected values come from numpy casts and hand arithmetic, not from ``tutorial_lib``, so
the library's own functions are checked by the same cases (see tests/test_checks.py).

The package reads in lesson order: ``runner`` (cases, the runners, ``expect``), then one module
per topic: ``formats`` (01), ``affine`` (02), ``calibration`` (03), ``integer`` (04), ``qat``
(05), ``pytorch`` (06), ``tflite`` (07), ``tfmot`` (08), ``compression`` (09), ``llm`` (10)
and ``debug`` (11).
"""

from tutorial_lib.checks.affine import (
    check_choose_qparams,
    check_dequantize,
    check_quantize,
    check_sqnr_db,
    check_symmetric_scale,
)
from tutorial_lib.checks.calibration import (
    check_groupwise_fake_quantize,
    check_pack_int4,
    check_per_channel_qparams,
    check_percentile_observer,
    check_symmetric_scales,
    check_unpack_int4,
)
from tutorial_lib.checks.compression import (
    check_assign_clusters,
    check_clustered_bytes,
    check_global_masks,
    check_kd_loss,
    check_kmeans_step,
    check_m_by_n_mask,
    check_magnitude_mask,
)
from tutorial_lib.checks.debug import (
    check_cle_scales,
    check_culprit,
    check_float_sweep,
    check_layer_sqnr,
    check_weight_activation_split,
)
from tutorial_lib.checks.formats import (
    check_fp16_below,
    check_fp32_fields,
    check_fp32_value,
    check_model_bytes,
)
from tutorial_lib.checks.integer import (
    check_fold_batchnorm,
    check_int8_linear,
    check_multiply_by_quantized_multiplier,
    check_quantize_bias,
    check_quantize_multiplier,
    check_requantize,
)
from tutorial_lib.checks.llm import (
    check_gptq_step,
    check_int4_groups,
    check_perplexity,
    check_quantize_q4_1,
    check_salient_channels,
    check_unpack_q4_1,
    check_w8a16_forward,
)
from tutorial_lib.checks.pytorch import (
    check_calibrate,
    check_fuse_groups,
    check_keep_float,
    check_latency_stats,
    check_pt2e_keep_float,
    check_state_dict_bytes,
)
from tutorial_lib.checks.qat import (
    check_fake_quant_step,
    check_fake_quantize_ste,
    check_freeze_observers,
    check_lsq_scale_grad,
    check_qat_step,
)
from tutorial_lib.checks.runner import Case, CheckResult, ClaimError, expect, run_checks
from tutorial_lib.checks.tflite import (
    check_converter_settings,
    check_dequantize_weight,
    check_largest_scale,
    check_quantize_input,
    check_representative_dataset,
)
from tutorial_lib.checks.tfmot import (
    check_annotate_except,
    check_ema_range,
    check_fake_quant_min_max,
    check_nudge,
    check_qat_recovery,
)

__all__ = [
    "Case", "CheckResult", "run_checks", "ClaimError", "expect",
    # lesson 01: number formats
    "check_fp32_fields", "check_fp32_value", "check_fp16_below", "check_model_bytes",
    # lesson 02: affine quantization
    "check_choose_qparams", "check_quantize", "check_dequantize", "check_sqnr_db",
    "check_symmetric_scale",
    # lesson 03: granularity and calibration
    "check_per_channel_qparams", "check_percentile_observer", "check_groupwise_fake_quantize",
    "check_pack_int4", "check_unpack_int4", "check_symmetric_scales",
    # lesson 04: integer inference
    "check_quantize_multiplier", "check_requantize", "check_quantize_bias", "check_int8_linear",
    "check_fold_batchnorm", "check_multiply_by_quantized_multiplier",
    # lesson 05: fake quantization and QAT
    "check_fake_quantize_ste", "check_fake_quant_step", "check_qat_step", "check_lsq_scale_grad",
    "check_freeze_observers",
    # lesson 06: PyTorch quantization
    "check_fuse_groups", "check_calibrate", "check_state_dict_bytes", "check_keep_float",
    "check_latency_stats", "check_pt2e_keep_float",
    # lesson 07: TFLite post-training
    "check_representative_dataset", "check_quantize_input", "check_dequantize_weight",
    "check_largest_scale", "check_converter_settings",
    # lesson 08: QAT with tfmot
    "check_nudge", "check_fake_quant_min_max", "check_ema_range", "check_qat_recovery",
    "check_annotate_except",
    # lesson 09: pruning, clustering, distillation
    "check_magnitude_mask", "check_global_masks", "check_assign_clusters", "check_kd_loss",
    "check_clustered_bytes", "check_m_by_n_mask", "check_kmeans_step",
    # lesson 10: weight-only quantization of language models
    "check_unpack_q4_1", "check_quantize_q4_1", "check_w8a16_forward", "check_perplexity",
    "check_salient_channels", "check_gptq_step", "check_int4_groups",
    # lesson 11: debugging an int8 model
    "check_layer_sqnr", "check_culprit", "check_weight_activation_split", "check_float_sweep",
    "check_cle_scales",
]
