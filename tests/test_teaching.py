"""TEACHING.md quotes what the checkers say to the common wrong answers of each lesson; these
tests give the checkers those wrong answers and fail when the guide no longer quotes them."""

import re
from pathlib import Path

import numpy as np
import pytest

import tutorial_lib as tl

GUIDE = Path(__file__).resolve().parents[1] / "TEACHING.md"


# Learners' common mistakes, one or two per lesson, as wrong answers to the exercises.
def fp32_value_no_subnormals(sign, exponent, mantissa):
    if exponent == 255:
        m = float("inf") if mantissa == 0 else float("nan")
    else:
        m = (1 + mantissa / 2**23) * 2.0 ** (exponent - 127)
    return -m if sign else m


def model_bytes_true_division(n_params, fmt):
    bits = {"fp32": 32, "fp16": 16, "bf16": 16, "fp8_e4m3": 8, "fp8_e5m2": 8, "int8": 8, "int4": 4}[fmt]
    return n_params * bits / 8


def choose_qparams_int_truncates(min_val, max_val, quant_min, quant_max):
    min_val, max_val = min(min_val, 0.0), max(max_val, 0.0)
    scale = max((max_val - min_val) / (quant_max - quant_min), float(np.finfo(np.float32).eps))
    return scale, int(np.clip(quant_min - int(min_val / scale), quant_min, quant_max))


def quantize_no_rounding(x, scale, zero_point, quant_min, quant_max):
    return np.clip(np.asarray(x) / scale + zero_point, quant_min, quant_max).astype(np.int32)


def dequantize_wraps(q, scale, zero_point):
    return (np.asarray(q) - np.asarray(zero_point, dtype=np.asarray(q).dtype)) * np.float32(scale)


def pack_int4_high_first(q):
    v = np.asarray(q).astype(np.int32) & 0xF
    if len(v) % 2:
        v = np.append(v, 0)
    return ((v[0::2] << 4) | v[1::2]).astype(np.uint8)


def unpack_int4_no_sign(packed, n):
    packed = np.asarray(packed, np.uint8)
    return np.stack([packed & 0xF, packed >> 4], axis=1).ravel()[:n].astype(np.int8)


def requantize_float(acc, quantized_multiplier, shift, output_zero_point):
    real = quantized_multiplier * 2.0 ** (shift - 31)
    out = np.round(np.asarray(acc, np.float64) * real) + output_zero_point
    return np.clip(out, -128, 127).astype(np.int8)


def quantize_bias_weight_scale_only(b, input_scale, weight_scale):
    return np.round(np.asarray(b, np.float64) / np.asarray(weight_scale, np.float64)).astype(np.int32)


def qat_step_through_clamp(w, x, y, scale, lr):
    w_hat = np.clip(np.round(w / scale), -7, 7) * scale
    pred = x @ w_hat.T
    grad_pred = 2 * (pred - y) / pred.size
    return w - lr * (grad_pred.T @ x)


def fake_quant_step_no_average(x, min_val, max_val, averaging_constant, quant_min, quant_max):
    x = np.asarray(x, np.float32)
    min_val, max_val = float(x.min()), float(x.max())
    lo, hi = min(min_val, 0.0), max(max_val, 0.0)
    scale = max((hi - lo) / (quant_max - quant_min), float(np.finfo(np.float32).eps))
    zero_point = int(np.clip(quant_min - round(lo / scale), quant_min, quant_max))
    q = np.clip(np.round(x / scale) + zero_point, quant_min, quant_max)
    return (q - zero_point) * scale, min_val, max_val


def latency_stats_keeps_warmup(times_ms, warmup):
    kept = np.asarray(times_ms, dtype=np.float64)
    q1, median, q3 = np.percentile(kept, [25, 50, 75])
    return float(median), float(q3 - q1)


def quantize_input_half_even(x, scale, zero_point):
    q = np.round(np.asarray(x, np.float64) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def nudge_no_rounding(min_val, max_val, num_bits):
    quant_max = 2**num_bits - 1
    scale = (max_val - min_val) / quant_max
    zero_point = min(max(-min_val / scale, 0.0), quant_max)
    return -zero_point * scale, (quant_max - zero_point) * scale, scale


def magnitude_mask_signed(w, sparsity):
    k = round(sparsity * w.size)
    return (w > np.sort(w.ravel())[k - 1]).astype(np.float32) if k else np.ones_like(w)


def global_masks_per_layer(params, sparsity):
    masks = {}
    for name, w in params.items():
        if w.ndim >= 2:
            mask = np.ones(w.size, np.float32)
            mask[np.argsort(np.abs(w).ravel(), kind="stable")[:round(sparsity * w.size)]] = 0
            masks[name] = mask.reshape(w.shape)
    return masks


def kd_loss_teacher_not_softened(s, t, y, temperature, alpha):
    def log_softmax(z):
        z = np.asarray(z, np.float64)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    log_p, log_q = log_softmax(t), log_softmax(np.asarray(s) / temperature)  # t not divided by T
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
    ce = -log_softmax(s)[np.arange(len(s)), y]
    return float(np.mean(alpha * temperature**2 * kl + (1 - alpha) * ce))


def kmeans_step_moves_zero(w, centroids):
    flat = np.ravel(w).astype(np.float64)
    nearest = np.argmin(np.abs(flat[:, None] - centroids), axis=1)
    return np.array([flat[nearest == i].mean() if np.any(nearest == i) else c
                     for i, c in enumerate(centroids)])


def int4_groups_full_range(w, group_size):
    g = np.asarray(w, np.float32).reshape(-1, group_size)
    scale = np.maximum(np.abs(g).max(axis=1) / np.float32(8), np.finfo(np.float32).eps)
    q = np.clip(np.round(g / scale[:, None]), -8, 7).astype(np.int32).ravel() & 0xF
    return (q[0::2] | (q[1::2] << 4)).astype(np.uint8), scale.reshape(w.shape[0], -1)


def salient_channels_signed_mean(x, fraction):
    score = np.asarray(x).mean(axis=0)
    k = max(1, round(fraction * x.shape[1]))
    mask = np.zeros(x.shape[1], bool)
    mask[np.argsort(-score)[:k]] = True
    return mask


def ema_range_without_zero(batch_ranges, decay, init):
    low, high = init
    for batch_min, batch_max in batch_ranges:
        low -= (low - batch_min) * (1 - decay)
        high -= (high - batch_max) * (1 - decay)
    return low, high


MISTAKES = {  # lesson: [(checker, wrong answer, what the learner did)]
    "01": [("check_fp32_value", fp32_value_no_subnormals, "exponent 0 treated like the others"),
           ("check_model_bytes", model_bytes_true_division, "/ instead of //")],
    "02": [("check_quantize", quantize_no_rounding, "no rounding"),
           ("check_choose_qparams", choose_qparams_int_truncates, "int() for the zero point"),
           ("check_dequantize", dequantize_wraps, "subtract in int8")],
    "03": [("check_pack_int4", pack_int4_high_first, "high nibble first"),
           ("check_unpack_int4", unpack_int4_no_sign, "no sign extension")],
    "04": [("check_requantize", requantize_float, "float multiply and round"),
           ("check_quantize_bias", quantize_bias_weight_scale_only, "forgot input scale")],
    "05": [("check_qat_step", qat_step_through_clamp, "gradient through the clamp"),
           ("check_fake_quant_step", fake_quant_step_no_average, "no moving average")],
    "06": [("check_latency_stats", latency_stats_keeps_warmup, "keeps warm-up")],
    "07": [("check_quantize_input", quantize_input_half_even, "np.round")],
    "08": [("check_nudge", nudge_no_rounding, "zero point not rounded"),
           ("check_ema_range", ema_range_without_zero, "range without 0")],
    "09": [("check_magnitude_mask", magnitude_mask_signed, "signed weights compared"),
           ("check_global_masks", global_masks_per_layer, "each layer by the same fraction"),
           ("check_kd_loss", kd_loss_teacher_not_softened, "teacher not softened"),
           ("check_kmeans_step", kmeans_step_moves_zero, "zero centroid moves")],
    "10": [("check_int4_groups", int4_groups_full_range, "scale max/8, codes -8..7"),
           ("check_salient_channels", salient_channels_signed_mean, "mean of x, not of |x|")],
}


def _said(checker: str, wrong, capsys) -> list[str]:
    result = getattr(tl.checks, checker)(wrong)
    assert not result, f"{checker} accepted a wrong answer"
    return capsys.readouterr().out.splitlines()


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


CASES = [(lesson, checker, wrong) for lesson, items in MISTAKES.items()
         for checker, wrong, _ in items]


@pytest.mark.parametrize("lesson, checker, wrong", CASES,
                         ids=[f"{lesson}-{wrong.__name__}" for lesson, _, wrong in CASES])
def test_the_guide_quotes_what_the_checker_says(lesson, checker, wrong, capsys):
    lines = _said(checker, wrong, capsys)
    guide = _flat(GUIDE.read_text(encoding="utf-8"))
    quoted = [ln for ln in lines if ln.strip().startswith(("first wrong case:", "hint:"))]
    assert len(quoted) == 2, lines
    quoted.append(lines[0].split(":")[0] + ":")  # "✗ name:"; the count of cases may change
    for line in quoted:
        assert _flat(line.strip()) in guide, f"TEACHING.md (lesson {lesson}) should quote: {line.strip()}"

