"""Lesson 10's checkers pass the library's own answers and name the usual mistakes."""

import numpy as np
import pytest

from tutorial_lib import checks, gguf_blocks, weight_only


def run(capsys, checker, fn):
    result = checker(fn)
    return result, capsys.readouterr().out


# ---------------------------------------------------------------- right answers

def quantize_q4_1_library(x):
    """(d, m, q) read back from the bytes tl.gguf_blocks writes (equal to the gguf package's)."""
    x = np.asarray(x, np.float32)
    raw = gguf_blocks.quantize_q4_1(x).reshape(-1, 20)
    d = raw[:, 0:2].copy().view(np.float16).reshape(x.shape[0], -1)
    m = raw[:, 2:4].copy().view(np.float16).reshape(x.shape[0], -1)
    q = np.concatenate([raw[:, 4:] & 0x0F, raw[:, 4:] >> 4], axis=1).reshape(x.shape)
    return d, m, q.astype(np.uint8)


def w8a16_reference(x, q, scale, bias):
    return x @ (q.astype(np.float32) * scale[:, None]).T + (0 if bias is None else bias)


def gptq_step_loops(w, h_inv, j, scale):
    """One OBS step written with loops over the entries (an independent reference)."""
    w = np.array(w, dtype=np.float64)
    for r in range(w.shape[0]):
        q = scale[r] * np.round(w[r, j] / scale[r])
        e = (w[r, j] - q) / h_inv[j, j]
        for k in range(j + 1, w.shape[1]):
            w[r, k] -= e * h_inv[j, k]
        w[r, j] = q
    return w


# ---------------------------------------------------------------- wrong answers, one per checker

def q4_1_interleaved(block):  # tl.packing's nibble order, not GGUF's
    d, m = block[:4].view(np.float16).astype(np.float32)
    q = np.stack([block[4:] & 0xF, block[4:] >> 4], axis=1).ravel()
    return d * q.astype(np.float32) + m


def q4_1_scale_from_max(x):
    b = np.asarray(x, np.float32).reshape(-1, 32)
    m = b.min(1, keepdims=True)
    d = b.max(1, keepdims=True) / np.float32(15)
    q = np.trunc((b - m) * np.where(d == 0, 0, 1 / d) + 0.5).clip(0, 15)
    rows = x.shape[0]
    return d.astype(np.float16).reshape(rows, -1), m.astype(np.float16).reshape(rows, -1), \
        q.astype(np.uint8).reshape(x.shape)


def w8a16_no_bias(x, q, scale, bias):
    return x @ (q.astype(np.float32) * scale[:, None]).T


def salient_by_signed_mean(x, fraction):
    k = max(1, round(fraction * x.shape[1]))
    mask = np.zeros(x.shape[1], bool)
    mask[np.argsort(-x.mean(0))[:k]] = True
    return mask


def gptq_step_updates_quantized_columns(w, h_inv, j, scale):
    w = np.array(w, dtype=np.float64)
    q = scale * np.round(w[:, j] / scale)
    e = (w[:, j] - q) / h_inv[j, j]
    w -= np.outer(e, h_inv[j])  # every column, the quantized ones too
    w[:, j] = q
    return w


def perplexity_of_sum(z, t):
    z = z.astype(np.float64) - z.max(1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(np.exp(-lp[np.arange(len(t)), t].sum()))


# Used by tests/test_checks.py too (every checker has a reference answer and a mistake).
REFERENCES = {
    "unpack_q4_1": gguf_blocks.dequantize_q4_1,
    "quantize_q4_1": quantize_q4_1_library,
    "w8a16_forward": w8a16_reference,
    "perplexity": weight_only.perplexity_from_logits,
    "salient_channels": weight_only.salient_channels,
    "gptq_step": gptq_step_loops,
    "int4_groups": lambda w, g: __import__("tutorial_lib.checks.llm", fromlist=["x"])._int4_groups(w, g),
}
MISTAKES = {
    "unpack_q4_1": q4_1_interleaved,
    "quantize_q4_1": q4_1_scale_from_max,
    "w8a16_forward": w8a16_no_bias,
    "perplexity": perplexity_of_sum,
    "salient_channels": salient_by_signed_mean,
    "gptq_step": gptq_step_updates_quantized_columns,
    "int4_groups": lambda w, g: (lambda p, s: (((p >> 4) | (p << 4)).astype(np.uint8), s))(
        *__import__("tutorial_lib.checks.llm", fromlist=["x"])._int4_groups(w, g)),
}


@pytest.mark.parametrize("name", REFERENCES)
def test_library_answers_pass(capsys, name):
    result, out = run(capsys, getattr(checks, f"check_{name}"), REFERENCES[name])
    assert result, out
    assert out.startswith("✓")


@pytest.mark.parametrize("name", REFERENCES)
def test_unfinished_exercise_says_so(capsys, name):
    def todo(*args):
        raise NotImplementedError
    result, out = run(capsys, getattr(checks, f"check_{name}"), todo)
    assert not result and "not implemented yet" in out


def test_the_quantize_q4_1_reference_is_ggufs():
    gguf = pytest.importorskip("gguf")
    x = (np.random.default_rng(3).standard_t(4, size=(3, 64)) * 0.1).astype(np.float32)
    raw = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_1)
    assert np.array_equal(raw, gguf_blocks.quantize_q4_1(x))  # so quantize_q4_1_library reads gguf's


def test_the_gptq_step_repeated_is_the_obs_loop():
    # column by column, with H^-1 eliminated after each, the step is the naive GPTQ loop
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 6)) * np.linspace(0.5, 2, 6)
    w = rng.normal(size=(3, 6))
    scale = np.array([0.3, 0.2, 0.25])
    h_inv = np.linalg.inv(x.T @ x)
    stepped, h_left = w.copy(), h_inv.copy()
    for j in range(6):
        stepped = gptq_step_loops(stepped, h_left, j, scale)
        h_left = h_left - np.outer(h_left[:, j], h_left[j]) / h_left[j, j]
    u = np.linalg.cholesky(h_inv).T  # the Cholesky form, as tl.weight_only.gptq runs it
    cholesky, rest = np.zeros_like(w), w.copy()
    for j in range(6):
        cholesky[:, j] = scale * np.round(rest[:, j] / scale)
        rest[:, j + 1:] -= np.outer((rest[:, j] - cholesky[:, j]) / u[j, j], u[j, j + 1:])
    assert np.allclose(stepped, cholesky, atol=1e-9)


# ---------------------------------------------------------------- each wrong answer, its hint

def unpack(**wrong):
    from tutorial_lib.checks.llm import _unpacked
    return lambda block: _unpacked(block, **wrong)


def q4_1(**wrong):
    from tutorial_lib.checks.llm import _q4_1_reference
    return lambda x: _q4_1_reference(x, **wrong)


def salient(**wrong):
    from tutorial_lib.checks.llm import _salient
    return lambda x, fraction: _salient(x, fraction, **wrong)


def gptq(**wrong):
    from tutorial_lib.checks.llm import _gptq_step
    return lambda w, h_inv, j, scale: _gptq_step(w, h_inv, j, scale, **wrong)


def w8a16(scale_axis=0, transpose=True, with_scale=True):
    def fn(x, q, scale, bias):
        s = scale[:, None] if scale_axis == 0 else scale[None, :]
        w = q.astype(np.float32) * (s if with_scale else 1)
        y = x @ (w.T if transpose else w)
        return y if bias is None else y + bias
    return fn


def w8a16_int8_accumulator(x, q, s, b):
    acc = (q * x.astype(np.int8)).sum(axis=1, dtype=np.int8)  # int8 arithmetic wraps
    return (acc[None, :].astype(np.float32) * s) + (0 if b is None else b)


def perplexity_mean_nll(z, t):
    z = z.astype(np.float64) - z.max(1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-lp[np.arange(len(t)), t].mean())


def perplexity_naive_softmax(z, t):  # overflows at logits of 1000
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return float(np.exp(-np.log(p[np.arange(len(t)), t]).mean()))


def perplexity_softmax_then_log(z, t):  # stable softmax, but log(0) in float32
    p = np.exp(z - z.max(1, keepdims=True))
    p = p / p.sum(1, keepdims=True)
    return float(np.exp(-np.log(p[np.arange(len(t)), t]).mean()))


def perplexity_whole_vocabulary(z, t):
    z = z.astype(np.float64) - z.max(1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(np.exp(-lp.mean()))


WRONG = [  # (checker, wrong answer, words the hint must use)
    ("unpack_q4_1", unpack(swap=True), "you swapped them"),
    ("unpack_q4_1", unpack(low_first=False), "you read the high nibbles first"),
    ("unpack_q4_1", unpack(interleave=True), "not codes 2j and 2j + 1"),
    ("unpack_q4_1", unpack(offset=8), "Q4_0's rule"),
    ("unpack_q4_1", unpack(with_m=False), "you left out the minimum"),
    ("unpack_q4_1", unpack(big_endian=True), "little-endian"),
    ("unpack_q4_1", unpack(half=True), "you multiplied in float16"),
    ("unpack_q4_1", lambda b: gguf_blocks.dequantize_q4_1(b).astype(np.float64), "return float32"),
    ("quantize_q4_1", q4_1(scale_from_max=True), "not max / 15"),
    ("quantize_q4_1", q4_1(swap=True), "you swapped the minimum and the maximum"),
    ("quantize_q4_1", q4_1(per_row=True), "not one per row"),
    ("quantize_q4_1", q4_1(half_even=True), "np.round rounds halves to even"),
    ("quantize_q4_1", q4_1(widen=True), "does not widen the range"),
    ("quantize_q4_1", q4_1(levels=16), "16 levels are 15 steps"),
    ("quantize_q4_1", q4_1(d16_codes=True), "compute the codes with the float32 d and m"),
    ("quantize_q4_1", lambda x: tuple(a.astype(np.float32) for a in quantize_q4_1_library(x)),
     "return d and m as np.float16"),
    ("w8a16_forward", w8a16(with_scale=False), "multiply the integer weights by their scale"),
    ("w8a16_forward", w8a16(scale_axis=1), "not q * scale[None, :]"),
    ("w8a16_forward", w8a16(transpose=False), "y = x @ W.T, not x @ W"),
    ("w8a16_forward", w8a16_no_bias, "add the bias"),
    ("w8a16_forward", w8a16_int8_accumulator, "int8 sums wrap"),
    ("perplexity", perplexity_of_sum, "the mean over the tokens, not the sum"),
    ("perplexity", perplexity_mean_nll, "perplexity is exp of it"),
    ("perplexity", perplexity_naive_softmax, "subtract each row's maximum"),
    ("perplexity", perplexity_softmax_then_log, "underflowed to 0 in float32"),
    ("perplexity", perplexity_whole_vocabulary, "of the TARGET token"),
    ("salient_channels", salient(score="mean"), "not x"),
    ("salient_channels", salient(score="max_abs"), "the maximum picks channels that spike once"),
    ("salient_channels", salient(k_rule="floor"), "int() truncates 2.6 to 2"),
    ("salient_channels", salient(k_rule="ceil"), "you rounded up"),
    ("salient_channels", salient(k_rule="half_up"), "int(x + 0.5) takes 2.5 to 3"),
    ("salient_channels", salient(k_rule="no_floor"), "keep at least one channel"),
    ("salient_channels", salient(largest=False), "you picked the SMALLEST channels"),
    ("salient_channels", lambda x, f: weight_only.salient_channels(x, f).astype(int),
     "return a boolean mask"),
    ("gptq_step", gptq(columns="all"), "you moved the columns before j too"),
    ("gptq_step", gptq_step_updates_quantized_columns, "you moved the columns before j too"),
    ("gptq_step", gptq(sign=1), "subtract the update"),
    ("gptq_step", gptq(divide=False), "divide the rounding error by h_inv[j, j]"),
    ("gptq_step", gptq(replace=False), "column j itself becomes its quantized value"),
    ("gptq_step", gptq(quantize_rest=True), "quantize only column j"),
]


@pytest.mark.parametrize("name, wrong, words", WRONG,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_each_wrong_answer_fails_with_the_hint_that_names_it(capsys, name, wrong, words):
    with np.errstate(all="ignore"):
        result, out = run(capsys, getattr(checks, f"check_{name}"), wrong)
    assert not result, f"check_{name} accepted a wrong answer"
    hint = next(line for line in out.splitlines() if line.startswith("  hint:"))
    assert words in hint, out
    assert "Traceback" not in out


def test_gptq_step_must_not_change_the_quantized_columns_even_slightly(capsys):
    def nudges(w, h_inv, j, scale):
        out = gptq_step_loops(w, h_inv, j, scale)
        out[:, :j] += 1e-6
        return out
    result, out = run(capsys, checks.check_gptq_step, nudges)
    assert not result and "column 2 of 5" in out


@pytest.mark.parametrize("name", MISTAKES)
def test_each_mistake_fails(capsys, name):
    with np.errstate(all="ignore"):
        result, out = run(capsys, getattr(checks, f"check_{name}"), MISTAKES[name])
    assert not result and "hint:" in out
