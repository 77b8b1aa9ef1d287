"""Checkers for lesson 10's exercises (weight-only quantization of language models):
``tl.checks.check_<name>(your_function)``.

Expected values are written out by hand or computed here with plain numpy casts, never with
``tl.gguf_blocks`` or ``tl.weight_only`` (tests/test_llm_checks.py checks those with the same
cases). Each checker also recognises the mistakes learners make in these exercises (the nibble
order of a ``Q4_1`` block, its scale taken from the maximum instead of the range, one scale per
row instead of per block, updating columns GPTQ has already quantized, ``exp`` of the summed
log-likelihood, ...) and names the one it meets in its hint.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tutorial_lib.checks.runner import Case, CheckResult, _fmt, _reproduces, _run_exact, run_checks

__all__ = ["check_unpack_q4_1", "check_quantize_q4_1", "check_w8a16_forward", "check_perplexity",
           "check_salient_channels", "check_gptq_step", "check_int4_groups"]

_f32, _f64 = np.float32, np.float64


# ---------------------------------------------------------------- a GGUF Q4_1 block

def _q4_1_block(d: float, m: float, codes) -> np.ndarray:
    """20 bytes: float16 d and m, then code j in the low nibble and code j + 16 in the high
    nibble of byte j (llama.cpp's layout)."""
    codes = np.asarray(codes, np.uint8)
    head = np.array([d, m], np.float16).view(np.uint8)
    return np.concatenate([head, codes[:16] | (codes[16:] << 4)]).astype(np.uint8)


def _q4_1_values(d: float, m: float, codes) -> np.ndarray:
    d16, m16 = np.float32(np.float16(d)), np.float32(np.float16(m))
    return (d16 * np.asarray(codes, np.float32) + m16).astype(np.float32)


def _unpacked(block, low_first=True, interleave=False, offset=0, swap=False, with_m=True,
              half=False, big_endian=False):
    """Ways to read a Q4_1 block, right (the defaults) and wrong."""
    block = np.asarray(block, np.uint8)
    head = block[:4].view(">f2" if big_endian else "<f2")
    d, m = (head[::-1] if swap else head)
    nib = block[4:]
    low, high = nib & 0x0F, nib >> 4
    if interleave:
        q = np.stack([low, high], axis=1).ravel()
    else:
        q = np.concatenate([low, high] if low_first else [high, low])
    q = q.astype(np.int32) - offset
    if half:  # float16 arithmetic, converted at the end
        return (np.float16(d) * q.astype(np.float16) + (np.float16(m) if with_m else 0)).astype(_f32)
    return (np.float32(d) * q.astype(_f32) + (np.float32(m) if with_m else _f32(0))).astype(_f32)


def check_unpack_q4_1(fn: Callable[[np.ndarray], np.ndarray]) -> CheckResult:
    """``fn(block) -> 32 float32 values``: dequantize one 20-byte GGUF ``Q4_1`` block."""
    ramp = np.arange(32) % 16
    halves = np.r_[np.zeros(16, int), np.full(16, 15)]
    odd = np.array([(7 * j + 3) % 16 for j in range(32)])
    blocks = [
        (1.0, 0.5, ramp, "d = 1, m = 0.5: the codes plus one half",
         "the first 4 bytes are two float16 numbers: block[:4].view(np.float16) gives d and m."),
        (0.5, -1.0, ramp, "d = 0.5 and a negative minimum", "x = d * q + m: m is added, not "
         "multiplied."),
        (0.25, 2.0, halves, "codes 0-15 in the low nibbles, 16-31 in the high nibbles",
         "byte j holds code j in its low nibble and code j + 16 in its high nibble, not codes "
         "2j and 2j + 1."),
        (0.0123, -0.087, odd, "real-looking float16 parameters"),
        (0.0, 0.75, odd, "d = 0: a constant block, every value equals m"),
        (2.0**-20, -2.0**-18, np.full(32, 15), "subnormal float16 d: every code 15",
         "convert the float16 numbers to float32 with .astype(np.float32); do not rebuild "
         "them from their bits by hand."),
        (3.5, -28.0, odd[::-1].copy(), "large values: the product fits float32 exactly"),
    ]
    cases = [Case((_q4_1_block(d, m, q),), _q4_1_values(d, m, q), about, *hint)
             for d, m, q, about, *hint in blocks]

    mistakes = [
        (_reproduces(lambda b: _unpacked(b, swap=True)),
         "the block starts with d (the scale), then m (the minimum): you swapped them."),
        (_reproduces(lambda b: _unpacked(b, low_first=False)),
         "the LOW nibble of byte j is code j and the high nibble code j + 16: you read the high "
         "nibbles first."),
        (_reproduces(lambda b: _unpacked(b, interleave=True)),
         "byte j holds code j (low nibble) and code j + 16 (high nibble), not codes 2j and "
         "2j + 1 as lesson 03's pack_int4: take all 16 low nibbles first, then all 16 high nibbles."),
        (_reproduces(lambda b: _unpacked(b, offset=8)),
         "Q4_1's codes are unsigned, 0..15, and m is the offset: subtracting 8 is Q4_0's rule."),
        (_reproduces(lambda b: _unpacked(b, with_m=False)),
         "you left out the minimum: every value is d * q + m."),
        (_reproduces(lambda b: _unpacked(b, big_endian=True)),
         "GGUF stores float16 little-endian: view the bytes as np.float16 (or '<f2'), not '>f2'."),
        (_reproduces(lambda b: _unpacked(b, half=True)),
         "you multiplied in float16, which rounds every product to 11 bits: convert d and m to "
         "float32 first."),
    ]
    return run_checks("unpack_q4_1", fn, cases, rtol=0, atol=0, arg_names=["block"],
                      mistakes=mistakes, dtype=np.float32, dtype_hint=(
        "the values are right; return float32, as GGUF's reader does (d and m become float32 "
        "before the multiply)."), hint=(
        "d, m = block[:4].view(np.float16).astype(np.float32); q = np.concatenate([block[4:] "
        "& 0xF, block[4:] >> 4]); return d * q.astype(np.float32) + m."))


def _q4_1_reference(x, per_row=False, scale_from_max=False, swap=False, half_even=False,
                    widen=False, d16_codes=False, levels=15):
    """(d, m, q) as llama.cpp's quantize_row_q4_1_ref writes them (the defaults), and wrong
    variants: one block per row, d from the maximum, min and max swapped, np.round, the range
    widened to 0, codes from the float16 d and m, 16 steps instead of 15."""
    x = np.asarray(x, _f32)
    size = x.shape[1] if per_row else 32
    blocks = x.reshape(-1, size)
    lo, hi = blocks.min(1, keepdims=True), blocks.max(1, keepdims=True)
    if widen:
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    if swap:
        lo, hi = hi, lo
    d = (np.abs(hi) if scale_from_max else hi - lo) / _f32(levels)
    if d16_codes:
        d, lo = d.astype(np.float16).astype(_f32), lo.astype(np.float16).astype(_f32)
    with np.errstate(divide="ignore"):
        inv_d = np.where(d == 0, _f32(0), _f32(1) / d)
    v = (blocks - lo) * inv_d
    q = (np.round(v) if half_even else np.trunc(v + _f32(0.5))).clip(0, 15).astype(np.uint8)
    rows = x.shape[0]
    return (d.astype(np.float16).reshape(rows, -1), lo.astype(np.float16).reshape(rows, -1),
            q.reshape(x.shape))


def check_quantize_q4_1(fn: Callable[[np.ndarray], tuple]) -> CheckResult:
    """``fn(x) -> (d, m, q)``: llama.cpp's ``Q4_1`` rule per block of 32 values of each row of
    ``x``: ``m = min``, ``d = (max - min) / 15``, ``q = trunc((x - m) * (1 / d) + 0.5)`` clipped
    to 0..15, with float32 ``d`` and ``m``; ``d`` and ``m`` returned as float16 of shape
    ``(rows, cols // 32)``, ``q`` as uint8 of ``x``'s shape."""
    k = np.r_[np.arange(16), np.arange(15, -1, -1)]
    grid = (-0.5 + 0.25 * k).astype(_f32)[None, :]               # on its own grid: d 0.25, m -0.5
    ties = np.r_[0.0, 15.0, 2.5, 7.5, 0.5, np.arange(27) % 15].astype(_f32)[None, :]
    positive = np.linspace(1.0, 4.0, 32, dtype=_f32)[None, :]    # all above 0: m = 1, not 0
    two = np.stack([np.r_[np.linspace(-1, 1, 32), np.linspace(0, 8, 32)],
                    np.r_[np.linspace(-0.1, 0.05, 32), np.full(32, -2.0)]]).astype(_f32)
    rows = (np.random.default_rng(3).standard_t(4, size=(4, 64)) * 0.05).astype(_f32)
    cases = [
        Case((grid,), _q4_1_reference(grid),
             "a block on its own grid (d = 0.25, m = -0.5): the codes come back exactly",
             "per block of 32: m = min, d = (max - min) / 15, q = trunc((x - m) * (1 / d) + 0.5)."),
        Case((ties,), _q4_1_reference(ties),
             "d = 1, m = 0: 2.5, 7.5 and 0.5 are half steps, rounded up",
             "llama.cpp rounds half up, q = trunc(v + 0.5); np.round rounds 2.5 to 2."),
        Case((positive,), _q4_1_reference(positive),
             "every value above 0: m is the minimum 1.0 itself",
             "Q4_1 does not widen the range to contain 0: m = min of the block, whatever its sign."),
        Case((two,), _q4_1_reference(two),
             "2 rows of 2 blocks, one of them constant (d = 0, codes 0)",
             "one d and one m per block of 32 consecutive values of a row; a constant block has "
             "d = 0 and codes 0."),
        Case((rows,), _q4_1_reference(rows), "4 rows of 64 t-distributed weights (one code moves "
             "if the float16 d and m are used to compute it)"),
    ]
    mistakes = [
        (_reproduces(lambda x: _q4_1_reference(x, scale_from_max=True)),
         "d spans the block's range: (max - min) / 15, not max / 15."),
        (_reproduces(lambda x: _q4_1_reference(x, swap=True)),
         "you swapped the minimum and the maximum: m is the block's minimum and d = (max - min) "
         "/ 15 is positive, so the codes run from 0 at the minimum to 15 at the maximum."),
        (_reproduces(lambda x: _q4_1_reference(x, per_row=True)),
         "one d and m per block of 32 values, not one per row: reshape each row into blocks "
         "of 32 first (x.reshape(-1, 32))."),
        (_reproduces(lambda x: _q4_1_reference(x, half_even=True)),
         "llama.cpp rounds half up, trunc(v + 0.5); np.round rounds halves to even."),
        (_reproduces(lambda x: _q4_1_reference(x, widen=True)),
         "Q4_1 does not widen the range to contain 0 (lesson 02's integer zero point does): m is "
         "the block's minimum itself."),
        (_reproduces(lambda x: _q4_1_reference(x, levels=16)),
         "16 levels are 15 steps: d = (max - min) / 15."),
        (_reproduces(lambda x: _q4_1_reference(x, d16_codes=True)),
         "compute the codes with the float32 d and m; only the d and m you return are float16."),
    ]
    return run_checks("quantize_q4_1", fn, cases, rtol=0, atol=0, arg_names=["x"],
                      mistakes=mistakes, dtype=(np.float16, np.float16, np.uint8), dtype_hint=(
        "the values are right; return d and m as np.float16 and the codes as np.uint8."), hint=(
        "b = x.reshape(-1, 32); m = b.min(1, keepdims=True); d = (b.max(1, keepdims=True) - m) / "
        "15; inv = np.where(d == 0, 0, 1 / d); q = np.trunc((b - m) * inv + 0.5).clip(0, 15); "
        "return d.astype(np.float16).reshape(rows, -1), m.astype(np.float16).reshape(rows, -1), "
        "q.astype(np.uint8).reshape(x.shape)."))


# ---------------------------------------------------------------- a W8A16 linear layer

def check_w8a16_forward(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(x, q, scale, bias) -> y``: ``y = x @ (q * scale[:, None]).T + bias`` in float32,
    with int8 weights ``q`` (out, in) and one scale per output channel."""
    i8 = np.int8

    def want(x, q, scale, bias, scale_axis=0, transpose=True, with_scale=True, with_bias=True):
        s = np.asarray(scale, _f64)
        w = q.astype(_f64) * ((s[:, None] if scale_axis == 0 else s[None, :]) if with_scale else 1)
        y = np.asarray(x, _f64) @ (w.T if transpose else w)
        return y if bias is None or not with_bias else y + bias

    rng = np.random.default_rng(10)
    x_r = rng.normal(size=(3, 5)).astype(_f32)
    q_r = rng.integers(-128, 128, size=(4, 5)).astype(i8)
    s_r = np.array([0.01, 0.02, 0.005, 0.1], _f32)
    b_r = np.array([0.5, -0.5, 0.0, 1.0], _f32)
    x_sq = np.array([[1.0, 2.0], [-1.0, 0.5]], _f32)
    q_sq = np.array([[3, -1], [2, 5]], i8)
    s_sq = np.array([0.5, 0.1], _f32)
    cases = [
        Case((np.array([[1.0, 2.0]], _f32), np.array([[1, -1], [2, 3]], i8),
              np.array([0.5, 0.25], _f32), np.array([0.0, 1.0], _f32)), np.array([[-0.5, 3.0]]),
             "one token, two output channels: y0 = 0.5*(1 - 2), y1 = 0.25*(2 + 6) + 1",
             "W = q * scale[:, None] (one scale per output channel, a row of q); y = x @ W.T + bias."),
        Case((np.array([[1.0, 1.0]], _f32), np.array([[-128, -128]], i8), np.array([1.0], _f32),
              None), np.array([[-256.0]]), "-128 twice: the sum leaves the int8 range",
             "convert q to float (q.astype(np.float32)) before any arithmetic: int8 sums wrap."),
        Case((x_sq, q_sq, s_sq, np.zeros(2, _f32)), want(x_sq, q_sq, s_sq, None),
             "a square layer (2 in, 2 out), where W and W.T have the same shape"),
        Case((np.array([[2.0, 0.0], [0.0, 3.0]], _f32), np.array([[1, 0], [0, 1], [1, 1]], i8),
              np.array([1.0, 2.0, 4.0], _f32), np.zeros(3, _f32)),
             np.array([[2.0, 0.0, 8.0], [0.0, 6.0, 12.0]]),
             "three output channels, each with its own scale",
             "scale[i] belongs to output channel i, a row of q: multiply q by scale[:, None]."),
        Case((x_r, q_r, s_r, b_r), want(x_r, q_r, s_r, b_r), "3 tokens, 5 inputs, 4 outputs"),
        Case((x_r, q_r, s_r, None), want(x_r, q_r, s_r, None), "no bias (bias=None)",
             "a layer may have no bias: add it only when bias is not None."),
        Case((np.ones((1, 3), _f32), np.array([[127, 0, -127]], i8), np.array([0.02], _f32),
              np.array([0.25], _f32)), np.array([[0.25]]), "+127 and -127 cancel; the bias stays"),
    ]
    mistakes = [
        (_reproduces(lambda x, q, s, b: want(x, q, s, b, with_scale=False), 1e-5, 1e-6),
         "multiply the integer weights by their scale: W = q * scale[:, None]."),
        (_reproduces(lambda x, q, s, b: want(x, q, s, b, scale_axis=1), 1e-5, 1e-6),
         "the scale belongs to an OUTPUT channel, a row of q: q * scale[:, None], not "
         "q * scale[None, :] (which scales the input columns)."),
        (_reproduces(lambda x, q, s, b: want(x, q, s, b, transpose=False), 1e-5, 1e-6),
         "W has shape (out, in) like torch's Linear: y = x @ W.T, not x @ W."),
        (_reproduces(lambda x, q, s, b: want(x, q, s, b, with_bias=False), 1e-5, 1e-6),
         "add the bias after the matrix product (when bias is not None)."),
    ]
    return run_checks("w8a16_forward", fn, cases, rtol=1e-5, atol=1e-6, mistakes=mistakes,
                      arg_names=["x", "q", "scale", "bias"], hint=(
        "w = q.astype(np.float32) * scale[:, None]; y = x @ w.T; add bias when it is not "
        "None."))


# ---------------------------------------------------------------- perplexity

def _log_softmax(z):
    z = np.asarray(z, _f64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def check_perplexity(fn: Callable[[np.ndarray, np.ndarray], float]) -> CheckResult:
    """``fn(logits, targets) -> float``: ``exp(mean(-log softmax(logits)[t, targets[t]]))``."""

    def want(logits, targets):
        return float(np.exp(-_log_softmax(logits)[np.arange(len(targets)), targets].mean()))

    def nll(logits, targets):
        return -_log_softmax(logits)[np.arange(len(targets)), targets]

    def softmax_then_log(logits, targets):  # in the logits' own float32: small p become 0
        z = np.asarray(logits)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p = p / p.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            return float(np.exp(-np.log(p[np.arange(len(targets)), targets]).mean()))

    rng = np.random.default_rng(7)
    z_r = rng.normal(size=(6, 10)).astype(_f32) * 3
    t_r = rng.integers(0, 10, size=6)
    tiny = np.array([[0.0, -120.0], [0.0, 0.0]], _f32)
    cases = [
        Case((np.zeros((3, 4), _f32), np.array([0, 1, 2])), 4.0,
             "uniform over 4 words: perplexity 4",
             "perplexity = exp(mean negative log-probability of the right token)."),
        Case((np.array([[0.0, np.log(3.0)]], _f32), np.array([1])), 4 / 3,
             "one token with probability 3/4: perplexity 4/3"),
        Case((np.array([[1000.0, 0.0], [0.0, 1000.0]], _f32), np.array([0, 1])), 1.0,
             "logits of 1000: exp overflows unless the row maximum is subtracted first",
             "subtract each row's maximum before np.exp (log-softmax), or use a logsumexp."),
        Case((np.array([[0.0, 0.0], [0.0, np.log(3.0)]], _f32), np.array([0, 1])),
             float(np.exp(-(np.log(0.5) + np.log(0.75)) / 2)),
             "two tokens: the MEAN of the negative log-probabilities, then exp",
             "average the negative log-probabilities over the tokens before exp."),
        Case((tiny, np.array([1, 0])), want(tiny, np.array([1, 0])),
             "a target the model gives probability e^-120: too small for float32, not for its log",
             "compute log p as z - max - log(sum(exp(z - max))): a probability of e^-120 "
             "underflows to 0 in float32 before its log is taken."),
        Case((z_r, t_r), want(z_r, t_r), "6 tokens, a vocabulary of 10"),
    ]
    mistakes = [
        (_reproduces(lambda z, t: want(z, t) ** len(t), 1e-5),
         "take the mean over the tokens, not the sum, before exp."),
        (_reproduces(lambda z, t: float(nll(z, t).mean()), 1e-5),
         "you returned the mean negative log-likelihood (the cross-entropy); perplexity is exp "
         "of it."),
        (_reproduces(lambda z, t: float(np.exp(-_log_softmax(z).mean())), 1e-5),
         "average the log-probability of the TARGET token of each row, "
         "log_p[np.arange(len(targets)), targets], not of the whole vocabulary."),
        (_reproduces(softmax_then_log, 1e-5),
         "you took the log of a probability that underflowed to 0 in float32: compute the "
         "log-softmax directly, z - max - log(sum(exp(z - max))), in float64."),
    ]
    return run_checks("perplexity", fn, cases, rtol=1e-5, mistakes=mistakes,
                      arg_names=["logits", "targets"], hint=(
        "z = logits - logits.max(axis=1, keepdims=True); log_p = z - log(sum(exp(z), axis=1)); "
        "return float(np.exp(-log_p[np.arange(len(targets)), targets].mean()))."))


# ---------------------------------------------------------------- AWQ's salient channels

def _salient(x, fraction, score="mean_abs", k_rule="round", largest=True, axis=0):
    x = np.asarray(x, _f64)
    value = {"mean_abs": np.abs(x).mean(axis), "mean": x.mean(axis),
             "max_abs": np.abs(x).max(axis)}[score]
    n = value.shape[0]
    raw = fraction * n
    k = {"round": max(1, round(raw)), "floor": max(1, int(raw)), "ceil": max(1, int(np.ceil(raw))),
         "half_up": max(1, int(raw + 0.5)), "no_floor": round(raw)}[k_rule]
    order = np.argsort(-value if largest else value, kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return mask


def check_salient_channels(fn: Callable[[np.ndarray, float], np.ndarray]) -> CheckResult:
    """``fn(x, fraction) -> bool mask``: the ``max(1, round(fraction * n))`` input channels
    with the largest mean ``|x|`` over the tokens (rows) of ``x``."""
    f = _f32
    spike = np.array([[0.1, 3.0, 1.0], [0.1, 0.0, 1.0], [0.1, 0.0, 1.0], [0.1, 0.0, 1.0]], f)
    wide = np.tile(np.arange(200, dtype=f) % 7, (2, 1))
    wide[:, 150] = 50.0
    wide[:, 3] = -40.0
    steps13 = np.tile(np.arange(1, 14, dtype=f), (3, 1))        # channel j has mean |x| = j + 1
    steps12 = np.tile(np.arange(1, 13, dtype=f), (2, 1))
    steps10 = np.tile(np.arange(1, 11, dtype=f), (4, 1))
    cases = [
        Case((np.array([[0.5, -4.0, 1.0, 0.2], [0.3, -3.0, 1.2, 0.1]], f), 0.25),
             _salient(np.array([[0.5, -4.0, 1.0, 0.2], [0.3, -3.0, 1.2, 0.1]]), 0.25),
             "a large NEGATIVE channel is salient",
             "salience is about magnitude: average np.abs(x) over the tokens."),
        Case((spike, 1 / 3), np.array([False, False, True]),
             "one spike of 3 (mean 0.75) vs a channel at 1.0 on every token: the steady one wins",
             "average |x| over the tokens (axis 0), do not take the maximum."),
        Case((np.array([[1.0, 2.0, 3.0, 4.0]], f), 0.5), np.array([False, False, True, True]),
             "half of 4 channels: the 2 largest"),
        Case((steps13, 0.2), _salient(steps13, 0.2),
             "13 channels, fraction 0.2: 2.6 rounds to 3 channels",
             "k = max(1, round(fraction * n)): round, do not truncate with int()."),
        Case((steps12, 0.2), _salient(steps12, 0.2),
             "12 channels, fraction 0.2: 2.4 rounds to 2 channels",
             "k = max(1, round(fraction * n)): round, do not round up."),
        Case((steps10, 0.25), _salient(steps10, 0.25),
             "10 channels, fraction 0.25: Python's round(2.5) is 2",
             "k = max(1, round(fraction * n)) with Python's round, which takes halves to even."),
        Case((wide, 0.01), np.isin(np.arange(200), [3, 150]),
             "1% of 200 channels is 2: channel 150 (50) and channel 3 (|-40|)",
             "k = max(1, round(fraction * n)) channels, ranked by mean |x|."),
        Case((np.array([[3.0, 1.0, 2.0]], f), 0.01), np.array([True, False, False]),
             "1% of 3 channels rounds to 0: keep at least one",
             "keep at least one channel: k = max(1, round(fraction * n))."),
        Case((np.array([[0.0, -1.0], [0.0, 1.0]], f), 0.5), np.array([False, True]),
             "values that cancel in the mean of x but not of |x|",
             "average np.abs(x), not x: +1 and -1 average to 0 but both are large."),
    ]

    def describe(mask):
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.ndim != 1:
            return f"not a 1-D boolean mask (dtype {mask.dtype}, shape {mask.shape})"
        return tuple(int(i) for i in np.flatnonzero(mask))

    def made_by(**wrong):
        return lambda case, actual: describe(_salient(*case.args, **wrong)) == actual

    mistakes = [
        (lambda case, actual: isinstance(actual, str) and actual.startswith("not a 1-D boolean"),
         "return a boolean mask of shape (channels,), True for the salient channels: not their "
         "indices, not 0/1 integers."),
        (made_by(score="mean"), "salience is about magnitude: average np.abs(x), not x, over "
         "the tokens."),
        (made_by(score="max_abs"), "average |x| over the tokens (axis 0); the maximum picks "
         "channels that spike once."),
        (made_by(k_rule="floor"), "k = max(1, round(fraction * n)): int() truncates 2.6 to 2; "
         "round it."),
        (made_by(k_rule="half_up"), "k = max(1, round(fraction * n)) with Python's round: "
         "int(x + 0.5) takes 2.5 to 3, round takes it to 2."),
        (made_by(k_rule="ceil"), "k = max(1, round(fraction * n)): you rounded up (2.4 to 3)."),
        (made_by(k_rule="no_floor"), "keep at least one channel: k = max(1, round(fraction * n))."),
        (made_by(largest=False), "you picked the SMALLEST channels: sort by -score (or take the "
         "end of np.argsort(score))."),
    ]
    for i, case in enumerate(cases):
        cases[i] = Case(case.args, describe(case.expected), case.about, case.hint)
    return _run_exact("salient_channels", fn, cases, describe=describe, mistakes=mistakes,
                      show=lambda args: f"x={_fmt(args[0])}, fraction={args[1]!r}", hint=(
        "score = np.abs(x).mean(axis=0); k = max(1, round(fraction * x.shape[1])); mask = "
        "np.zeros(x.shape[1], bool); mask[np.argsort(-score)[:k]] = True. The answer lists "
        "the indices of the channels marked True."))


# ---------------------------------------------------------------- one GPTQ column step

def _gptq_step(w, h_inv, j, scale, columns="after", sign=-1, divide=True, replace=True,
               quantize_rest=False):
    """One step of the OBS update (the defaults) and wrong variants."""
    w = np.array(w, _f64)
    h_inv = np.asarray(h_inv, _f64)
    scale = np.asarray(scale, _f64)
    quantized = scale * np.round(w[:, j] / scale)
    e = (w[:, j] - quantized) / (h_inv[j, j] if divide else 1.0)
    others = np.arange(w.shape[1])
    others = others[others > j] if columns == "after" else others[others != j]
    w[:, others] += sign * np.outer(e, h_inv[j, others])
    if replace:
        w[:, j] = quantized
    if quantize_rest:
        w[:, j + 1:] = scale[:, None] * np.round(w[:, j + 1:] / scale[:, None])
    return w


def check_gptq_step(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, h_inv, j, scale) -> w_new``: quantize column ``j`` of ``w`` to
    ``scale * round(w[:, j] / scale)`` and move every LATER column ``k`` by
    ``-e * h_inv[j, k]`` with ``e = (w[:, j] - quantized) / h_inv[j, j]``; the columns before
    ``j`` (already quantized) do not change."""
    h2 = np.array([[1.0, 0.5], [0.5, 1.0]])
    rng = np.random.default_rng(23)
    x = rng.normal(size=(12, 5)) * np.array([2.0, 0.5, 1.5, 1.0, 3.0])
    x[:, 1] += 0.8 * x[:, 0]
    x[:, 3] += 0.6 * x[:, 2]
    h5_inv = np.linalg.inv(x.T @ x + 0.1 * np.eye(5))
    w5 = np.array([[0.25, -0.5, 0.31, 0.12, -0.07], [0.0, 0.5, -0.44, 0.27, 0.18]])
    scale5 = np.array([0.25, 0.1])
    w_big = rng.normal(size=(4, 8)) * 0.1
    x_big = rng.normal(size=(30, 8))
    h_big_inv = np.linalg.inv(x_big.T @ x_big)
    scale_big = np.full(4, 0.05)
    cases = [
        Case((np.array([[0.30, 0.10]]), np.linalg.inv(h2), 0, np.array([0.25])),
             np.array([[0.25, 0.125]]),
             "two inputs with H = [[1, 0.5], [0.5, 1]]: w0 rounds 0.30 -> 0.25 and w1 moves up by "
             "0.05 * b / c = 0.025",
             "e = (w[:, j] - q) / h_inv[j, j]; w[:, k] -= e * h_inv[j, k] for k > j; w[:, j] = q."),
        Case((w5, h5_inv, 2, scale5), _gptq_step(w5, h5_inv, 2, scale5),
             "column 2 of 5: columns 0 and 1 are already quantized and stay as they are",
             "only the columns after j move; the columns before j are already quantized."),
        Case((w5, np.diag(np.diag(h5_inv)), 1, scale5), _gptq_step(w5, np.diag(np.diag(h5_inv)),
                                                                     1, scale5),
             "a diagonal H^-1: nothing to compensate, only column 1 is rounded"),
        Case((w5, h5_inv, 4, scale5), _gptq_step(w5, h5_inv, 4, scale5),
             "the last column: no column is left to move"),
        Case((np.array([[0.5, 0.2, -0.3]]), np.linalg.inv(np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2],
                                                                     [0.1, 0.2, 1.5]])), 0,
              np.array([0.25])), np.array([[0.5, 0.2, -0.3]]),
             "w[:, j] already on the grid: the error is 0 and nothing moves"),
        Case((w_big, h_big_inv, 3, scale_big), _gptq_step(w_big, h_big_inv, 3, scale_big),
             "4 rows, 8 columns, column 3"),
    ]
    mistakes = [
        (_reproduces(lambda w, h, j, s: _gptq_step(w, h, j, s, columns="all"), 1e-9, 1e-12),
         "you moved the columns before j too: they are already quantized and must not change; "
         "only w[:, j + 1:] receives the update."),
        (_reproduces(lambda w, h, j, s: _gptq_step(w, h, j, s, sign=1), 1e-9, 1e-12),
         "the later columns move by MINUS e * h_inv[j, k]: subtract the update."),
        (_reproduces(lambda w, h, j, s: _gptq_step(w, h, j, s, divide=False), 1e-9, 1e-12),
         "divide the rounding error by h_inv[j, j]: e = (w[:, j] - q) / h_inv[j, j]."),
        (_reproduces(lambda w, h, j, s: _gptq_step(w, h, j, s, replace=False), 1e-9, 1e-12),
         "column j itself becomes its quantized value, scale * round(w[:, j] / scale)."),
        (_reproduces(lambda w, h, j, s: _gptq_step(w, h, j, s, quantize_rest=True), 1e-9, 1e-12),
         "quantize only column j: the later columns move by the update and are rounded at their "
         "own turn."),
    ]
    return run_checks("gptq_step", fn, cases, rtol=1e-9, atol=1e-12, mistakes=mistakes,
                      arg_names=["w", "h_inv", "j", "scale"], dtype=np.floating, hint=(
        "w = w.copy(); q = scale * np.round(w[:, j] / scale); e = (w[:, j] - q) / h_inv[j, j]; "
        "w[:, j + 1:] -= np.outer(e, h_inv[j, j + 1:]); w[:, j] = q; return w."))


# TEMPORARY (until the exercise notebook moves to quantize_q4_1)
# ---------------------------------------------------------------- int4 groups, packed

def _int4_groups(w, group_size):
    w = np.asarray(w, np.float32)
    g = w.reshape(-1, group_size)
    scale = np.maximum(np.abs(g).max(axis=1) / np.float32(7), np.finfo(np.float32).eps)
    q = np.clip(np.round(g / scale[:, None]), -7, 7).astype(np.int32).ravel()
    nib = q & 0xF
    packed = (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)
    return packed, scale.reshape(w.shape[0], -1).astype(np.float32)


def check_int4_groups(fn: Callable[..., tuple[np.ndarray, np.ndarray]]) -> CheckResult:
    """``fn(w, group_size) -> (packed, scale)``: symmetric int4 per group along the rows of
    ``w``, codes in [-7, 7], packed two per byte (low nibble first, in C order)."""
    f32 = np.float32
    rng = np.random.default_rng(4)
    w_r = rng.normal(size=(3, 16)).astype(f32)
    cases = [
        Case((np.array([[7.0, -3.5, 2.5, 1.0]], f32), 4),
             (np.array([0xC7, 0x12], np.uint8), np.array([[1.0]])),
             "scale 1: -3.5 rounds to -4 (half to even), 2.5 to 2",
             "round with np.round (half to even); -4 is 0b1100 in the low nibble of byte 0."),
        Case((np.array([[1.0, 0.0, 0.0, -14.0]], f32), 2),
             (np.array([0x07, 0x90], np.uint8), np.array([[1 / 7, 2.0]])),
             "two groups, each with its own scale max|w| / 7",
             "one scale per group of group_size consecutive values along each row."),
        Case((np.array([[0.0, 0.0, 0.5, 2.0], [3.0, 8.0, 0.0, 0.0]], f32), 2),
             (np.array([0x00, 0x72, 0x73, 0x00], np.uint8),
              np.array([[np.finfo(f32).eps, 2 / 7], [8 / 7, np.finfo(f32).eps]])),
             "all-zero groups: scale floored at float32 eps, codes 0",
             "a group of zeros has max|w| = 0: floor the scale at np.finfo(np.float32).eps."),
        Case((np.array([[-7.0, -1.0]], f32), 2), (np.array([0xF9], np.uint8), np.array([[1.0]])),
             "negative codes in two's complement: -7 is 1001, -1 is 1111",
             "mask each code with & 0xF before packing (in int32)."),
        Case((w_r, 8), _int4_groups(w_r, 8), "3 rows of 16 values, groups of 8"),
        Case((w_r, 16), _int4_groups(w_r, 16), "one group per row"),
    ]

    def full_range(w, group_size):  # scale max/8 with codes -8..7: clips the largest weight
        g = np.asarray(w, f32).reshape(-1, group_size)
        scale = np.maximum(np.abs(g).max(axis=1) / f32(8), np.finfo(f32).eps)
        q = np.clip(np.round(g / scale[:, None]), -8, 7).astype(np.int32).ravel() & 0xF
        return (q[0::2] | (q[1::2] << 4)).astype(np.uint8), scale.reshape(w.shape[0], -1)

    def high_first(w, group_size):
        packed, scale = _int4_groups(w, group_size)
        return ((packed >> 4) | (packed << 4)).astype(np.uint8), scale

    mistakes = [
        (_reproduces(full_range, 1e-6), "the scale is max|w| / 7 and codes stay in [-7, 7] "
         "(narrow range), so the largest weight is not clipped."),
        (_reproduces(high_first, 1e-6), "the first value of each pair goes in the LOW nibble: "
         "packed = nib[0::2] | (nib[1::2] << 4)."),
    ]
    return run_checks("int4_groups", fn, cases, rtol=1e-6, mistakes=mistakes,
                      arg_names=["w", "group_size"], dtype=(np.uint8, np.floating), hint=(
        "g = w.reshape(-1, group_size); scale = max(max|g| / 7, eps) per group; q = clip("
        "round(g / scale), -7, 7); nib = q.ravel().astype(np.int32) & 0xF; packed = (nib[0::2] "
        "| nib[1::2] << 4).astype(np.uint8); return packed, scale.reshape(w.shape[0], -1)."))


