"""Lesson 10's checkers pass the library's own answers and catch the usual mistakes."""

import numpy as np
import pytest

from tutorial_lib import checks, gguf_blocks, groupwise, packing, weight_only


def run(capsys, checker, fn):
    result = checker(fn)
    return result, capsys.readouterr().out


# ---------------------------------------------------------------- right answers

def int4_groups_library(w, group_size):
    qp = groupwise.choose_qparams(w, group_size, -7, 7, symmetric=True)
    scale = np.maximum(np.abs(np.asarray(w, np.float32)).reshape(-1, group_size).max(1) / 7,
                       np.finfo(np.float32).eps).reshape(qp.scale.shape)
    q = groupwise.quantize(w, scale, np.zeros(scale.shape, int), group_size, -7, 7)
    return packing.pack_int4(q), scale


def w8a16_reference(x, q, scale, bias):
    return x @ (q.astype(np.float32) * scale[:, None]).T + (0 if bias is None else bias)


def q4_1_interleaved(block):  # tl.packing's nibble order, not GGUF's
    d, m = block[:4].view(np.float16).astype(np.float32)
    q = np.stack([block[4:] & 0xF, block[4:] >> 4], axis=1).ravel()
    return d * q.astype(np.float32) + m


def w8a16_no_bias(x, q, scale, bias):
    return x @ (q.astype(np.float32) * scale[:, None]).T


def int4_full_range(w, group_size):  # codes -8..7 with scale max/8: clips the largest weight
    g = np.asarray(w, np.float32).reshape(-1, group_size)
    scale = np.maximum(np.abs(g).max(1) / 8, np.finfo(np.float32).eps)
    q = np.clip(np.round(g / scale[:, None]), -8, 7).astype(np.int32).ravel() & 0xF
    return (q[0::2] | q[1::2] << 4).astype(np.uint8), scale.reshape(w.shape[0], -1)


def salient_by_signed_mean(x, fraction):
    k = max(1, round(fraction * x.shape[1]))
    mask = np.zeros(x.shape[1], bool)
    mask[np.argsort(-x.mean(0))[:k]] = True
    return mask


def perplexity_of_sum(z, t):
    z = z.astype(np.float64) - z.max(1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(np.exp(-lp[np.arange(len(t)), t].sum()))


# Used by tests/test_checks.py too (every checker has a reference answer and a mistake).
REFERENCES = {
    "unpack_q4_1": gguf_blocks.dequantize_q4_1,
    "w8a16_forward": w8a16_reference,
    "int4_groups": int4_groups_library,
    "salient_channels": weight_only.salient_channels,
    "perplexity": weight_only.perplexity_from_logits,
}
MISTAKES = {
    "unpack_q4_1": q4_1_interleaved,
    "w8a16_forward": w8a16_no_bias,
    "int4_groups": int4_full_range,
    "salient_channels": salient_by_signed_mean,
    "perplexity": perplexity_of_sum,
}


@pytest.mark.parametrize("checker, fn", [
    (checks.check_unpack_q4_1, gguf_blocks.dequantize_q4_1),
    (checks.check_w8a16_forward,
     lambda x, q, s, b: x @ (q.astype(np.float32) * s[:, None]).T + (0 if b is None else b)),
    (checks.check_int4_groups, int4_groups_library),
    (checks.check_salient_channels, weight_only.salient_channels),
    (checks.check_perplexity, weight_only.perplexity_from_logits),
])
def test_library_answers_pass(capsys, checker, fn):
    result, out = run(capsys, checker, fn)
    assert result, out
    assert out.startswith("✓")


@pytest.mark.parametrize("checker", [
    checks.check_unpack_q4_1, checks.check_w8a16_forward, checks.check_int4_groups,
    checks.check_salient_channels, checks.check_perplexity])
def test_unfinished_exercise_says_so(capsys, checker):
    def todo(*args):
        raise NotImplementedError
    result, out = run(capsys, checker, todo)
    assert not result and "not implemented yet" in out


# ---------------------------------------------------------------- wrong answers

def test_q4_1_interleaved_nibbles_get_the_layout_hint(capsys):
    def interleaved(block):
        d, m = block[:4].view(np.float16).astype(np.float32)
        q = np.stack([block[4:] & 0xF, block[4:] >> 4], axis=1).ravel()
        return d * q.astype(np.float32) + m
    result, out = run(capsys, checks.check_unpack_q4_1, interleaved)
    assert not result and "code j + 16" in out


def test_q4_1_float64_answer_is_a_dtype_problem(capsys):
    result, out = run(capsys, checks.check_unpack_q4_1,
                      lambda b: gguf_blocks.dequantize_q4_1(b).astype(np.float64))
    assert not result and "float32" in out


def test_w8a16_without_scale_or_bias_fails(capsys):
    no_scale = lambda x, q, s, b: x @ q.astype(np.float32).T + (0 if b is None else b)  # noqa: E731
    result, out = run(capsys, checks.check_w8a16_forward, no_scale)
    assert not result and "scale" in out
    no_bias = lambda x, q, s, b: x @ (q.astype(np.float32) * s[:, None]).T  # noqa: E731
    result, out = run(capsys, checks.check_w8a16_forward, no_bias)
    assert not result and "bias" in out


def test_w8a16_int8_arithmetic_wraps_and_fails(capsys):
    def wraps(x, q, s, b):
        acc = (q * x.astype(np.int8)).sum(axis=1, dtype=np.int8)  # int8 accumulator
        return (acc[None, :].astype(np.float32) * s) + (0 if b is None else b)
    result, out = run(capsys, checks.check_w8a16_forward, wraps)
    assert not result


def test_int4_full_range_and_high_nibble_first_fail(capsys):
    def full_range(w, group_size):
        g = np.asarray(w, np.float32).reshape(-1, group_size)
        scale = np.maximum(np.abs(g).max(1) / 8, np.finfo(np.float32).eps)
        q = np.clip(np.round(g / scale[:, None]), -8, 7).astype(np.int32).ravel() & 0xF
        return (q[0::2] | q[1::2] << 4).astype(np.uint8), scale.reshape(w.shape[0], -1)
    result, out = run(capsys, checks.check_int4_groups, full_range)
    assert not result and "narrow range" in out

    def high_first(w, group_size):
        packed, scale = int4_groups_library(w, group_size)
        return ((packed >> 4) | (packed << 4)).astype(np.uint8), scale
    result, out = run(capsys, checks.check_int4_groups, high_first)
    assert not result and "LOW nibble" in out


def test_salient_by_signed_mean_or_max_fails(capsys):
    def signed(x, fraction):
        k = max(1, round(fraction * x.shape[1]))
        mask = np.zeros(x.shape[1], bool)
        mask[np.argsort(-x.mean(0))[:k]] = True
        return mask
    result, out = run(capsys, checks.check_salient_channels, signed)
    assert not result and "np.abs" in out

    def by_max(x, fraction):
        k = max(1, round(fraction * x.shape[1]))
        mask = np.zeros(x.shape[1], bool)
        mask[np.argsort(-np.abs(x).max(0))[:k]] = True
        return mask
    result, out = run(capsys, checks.check_salient_channels, by_max)
    assert not result and "maximum" in out

    result, out = run(capsys, checks.check_salient_channels,
                      lambda x, f: weight_only.salient_channels(x, f).astype(int))
    assert not result and "boolean mask" in out


def test_perplexity_sum_and_overflow_fail(capsys):
    def summed(z, t):
        z = z.astype(np.float64) - z.max(1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(np.exp(-lp[np.arange(len(t)), t].sum()))
    result, out = run(capsys, checks.check_perplexity, summed)
    assert not result and "mean over the tokens" in out

    def naive(z, t):
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        return float(np.exp(-np.log(p[np.arange(len(t)), t]).mean()))
    with np.errstate(all="ignore"):
        result, out = run(capsys, checks.check_perplexity, naive)
    assert not result and "maximum" in out


@pytest.mark.parametrize("name", MISTAKES)
def test_each_mistake_fails(capsys, name):
    result, out = run(capsys, getattr(checks, f"check_{name}"), MISTAKES[name])
    assert not result and "hint:" in out
