"""Checkers for lesson 10's exercises (weight-only quantization of language models):
``tl.checks.check_<name>(your_function)``.

Expected values are written out by hand or computed here with plain numpy casts, never with
``tl.gguf_blocks`` or ``tl.weight_only`` (tests/test_llm_checks.py checks those with the same
cases).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tutorial_lib.checks.runner import Case, CheckResult, _fmt, _reproduces, _run_exact, run_checks

__all__ = ["check_unpack_q4_1", "check_w8a16_forward", "check_int4_groups",
           "check_salient_channels", "check_perplexity"]


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


def check_unpack_q4_1(fn: Callable[[np.ndarray], np.ndarray]) -> CheckResult:
    """``fn(block) -> 32 float32 values``: dequantize one 20-byte GGUF ``Q4_1`` block."""
    ramp = np.arange(32) % 16
    halves = np.r_[np.zeros(16, int), np.full(16, 15)]
    odd = np.array([(7 * j + 3) % 16 for j in range(32)])
    blocks = [
        (1.0, 0.0, ramp, "d = 1, m = 0: the codes themselves",
         "the first 4 bytes are two float16 numbers: np.frombuffer(block[:4].tobytes(), "
         "np.float16) gives d and m."),
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

    def interleaved(block):  # codes 2k, 2k + 1 in byte k: tl.packing's layout, not GGUF's
        d, m = block[:4].view(np.float16).astype(np.float32)
        nib = block[4:]
        q = np.stack([nib & 0xF, nib >> 4], axis=1).ravel().astype(np.float32)
        return d * q + m

    def swapped(block):
        m, d = block[:4].view(np.float16).astype(np.float32)
        nib = block[4:]
        return d * np.r_[nib & 0xF, nib >> 4].astype(np.float32) + m

    mistakes = [
        (_reproduces(interleaved), "byte j holds code j (low nibble) and code j + 16 (high "
         "nibble): take all 16 low nibbles first, then all 16 high nibbles."),
        (_reproduces(swapped), "d (the scale) comes first, then m (the minimum)."),
    ]
    return run_checks("unpack_q4_1", fn, cases, rtol=0, atol=0, arg_names=["block"],
                      mistakes=mistakes, dtype=np.float32, dtype_hint=(
        "the values are right; return float32, as GGUF's reader does (d and m become float32 "
        "before the multiply)."), hint=(
        "d, m = block[:4].view(np.float16).astype(np.float32); q = np.concatenate([block[4:] "
        "& 0xF, block[4:] >> 4]); return d * q.astype(np.float32) + m."))


# ---------------------------------------------------------------- a W8A16 linear layer

def check_w8a16_forward(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(x, q, scale, bias) -> y``: ``y = x @ (q * scale[:, None]).T + bias`` in float32,
    with int8 weights ``q`` (out, in) and one scale per output channel."""
    f32, i8 = np.float32, np.int8

    def want(x, q, scale, bias):
        w = q.astype(np.float64) * np.asarray(scale, np.float64)[:, None]
        y = np.asarray(x, np.float64) @ w.T
        return y if bias is None else y + bias

    rng = np.random.default_rng(10)
    x_r = rng.normal(size=(3, 5)).astype(f32)
    q_r = rng.integers(-128, 128, size=(4, 5)).astype(i8)
    s_r = np.array([0.01, 0.02, 0.005, 0.1], f32)
    b_r = np.array([0.5, -0.5, 0.0, 1.0], f32)
    cases = [
        Case((np.array([[1.0, 2.0]], f32), np.array([[1, -1], [2, 3]], i8),
              np.array([0.5, 0.25], f32), np.array([0.0, 1.0], f32)), np.array([[-0.5, 3.0]]),
             "one token, two output channels: y0 = 0.5*(1 - 2), y1 = 0.25*(2 + 6) + 1"),
        Case((np.array([[1.0, 1.0]], f32), np.array([[-128, -128]], i8), np.array([1.0], f32),
              None), np.array([[-256.0]]), "-128 twice: the sum leaves the int8 range",
             "convert q to float (q.astype(np.float32)) before any arithmetic: int8 sums wrap."),
        Case((np.array([[2.0, 0.0], [0.0, 3.0]], f32), np.array([[1, 0], [0, 1], [1, 1]], i8),
              np.array([1.0, 2.0, 4.0], f32), np.zeros(3, f32)),
             np.array([[2.0, 0.0, 8.0], [0.0, 6.0, 12.0]]),
             "three output channels, each with its own scale",
             "scale[i] belongs to output channel i, a row of q: multiply q by scale[:, None]."),
        Case((x_r, q_r, s_r, b_r), want(x_r, q_r, s_r, b_r), "3 tokens, 5 inputs, 4 outputs"),
        Case((x_r, q_r, s_r, None), want(x_r, q_r, s_r, None), "no bias (bias=None)",
             "a layer may have no bias: add it only when bias is not None."),
        Case((np.ones((1, 3), f32), np.array([[127, 0, -127]], i8), np.array([0.02], f32),
              np.array([0.25], f32)), np.array([[0.25]]), "+127 and -127 cancel; the bias stays"),
    ]
    mistakes = [
        (_reproduces(lambda x, q, s, b: want(x, q, np.ones_like(s), b), 1e-5, 1e-6),
         "multiply the integer weights by their scale: W = q * scale[:, None]."),
        (_reproduces(lambda x, q, s, b: want(x, q, s, None), 1e-5, 1e-6),
         "add the bias after the matrix product (when bias is not None)."),
    ]
    return run_checks("w8a16_forward", fn, cases, rtol=1e-5, atol=1e-6, mistakes=mistakes,
                      arg_names=["x", "q", "scale", "bias"], hint=(
        "w = q.astype(np.float32) * scale[:, None]; y = x @ w.T; add bias when it is not "
        "None."))


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


# ---------------------------------------------------------------- AWQ's salient channels

def check_salient_channels(fn: Callable[[np.ndarray, float], np.ndarray]) -> CheckResult:
    """``fn(x, fraction) -> bool mask``: the ``max(1, round(fraction * n))`` input channels
    with the largest mean ``|x|`` over the tokens (rows) of ``x``."""
    f = np.float32
    spike = np.array([[0.1, 3.0, 1.0], [0.1, 0.0, 1.0], [0.1, 0.0, 1.0], [0.1, 0.0, 1.0]], f)
    wide = np.tile(np.arange(200, dtype=f) % 7, (2, 1))
    wide[:, 150] = 50.0
    wide[:, 3] = -40.0
    cases = [
        Case((np.array([[0.5, -4.0, 1.0, 0.2], [0.3, -3.0, 1.2, 0.1]], f), 0.25),
             np.array([False, True, False, False]), "a large NEGATIVE channel is salient",
             "salience is about magnitude: average np.abs(x) over the tokens."),
        Case((spike, 1 / 3), np.array([False, False, True]),
             "one spike of 3 (mean 0.75) vs a channel at 1.0 on every token: the steady one wins",
             "average |x| over the tokens (axis 0), do not take the maximum."),
        Case((np.array([[1.0, 2.0, 3.0, 4.0]], f), 0.5), np.array([False, False, True, True]),
             "half of 4 channels: the 2 largest"),
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

    for i, case in enumerate(cases):
        cases[i] = Case(case.args, describe(case.expected), case.about, case.hint)
    return _run_exact("salient_channels", fn, cases, describe=describe,
                      show=lambda args: f"x={_fmt(args[0])}, fraction={args[1]!r}", hint=(
        "score = np.abs(x).mean(axis=0); k = max(1, round(fraction * x.shape[1])); mask = "
        "np.zeros(x.shape[1], bool); mask[np.argsort(-score)[:k]] = True. The answer lists "
        "the indices of the channels marked True."))


# ---------------------------------------------------------------- perplexity

def check_perplexity(fn: Callable[[np.ndarray, np.ndarray], float]) -> CheckResult:
    """``fn(logits, targets) -> float``: ``exp(mean(-log softmax(logits)[t, targets[t]]))``."""
    f = np.float32

    def want(logits, targets):
        z = np.asarray(logits, np.float64)
        z = z - z.max(axis=1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(np.exp(-lp[np.arange(len(targets)), targets].mean()))

    rng = np.random.default_rng(7)
    z_r = rng.normal(size=(6, 10)).astype(f) * 3
    t_r = rng.integers(0, 10, size=6)
    cases = [
        Case((np.zeros((3, 4), f), np.array([0, 1, 2])), 4.0,
             "uniform over 4 words: perplexity 4",
             "perplexity = exp(mean negative log-probability of the right token)."),
        Case((np.array([[0.0, np.log(3.0)]], f), np.array([1])), 4 / 3,
             "one token with probability 3/4: perplexity 4/3"),
        Case((np.array([[1000.0, 0.0], [0.0, 1000.0]], f), np.array([0, 1])), 1.0,
             "logits of 1000: exp overflows unless the row maximum is subtracted first",
             "subtract each row's maximum before np.exp (log-softmax), or use a logsumexp."),
        Case((np.array([[0.0, 0.0], [0.0, np.log(3.0)]], f), np.array([0, 1])),
             float(np.exp(-(np.log(0.5) + np.log(0.75)) / 2)),
             "two tokens: the MEAN of the negative log-probabilities, then exp",
             "average the negative log-probabilities over the tokens before exp."),
        Case((z_r, t_r), want(z_r, t_r), "6 tokens, a vocabulary of 10"),
    ]
    mistakes = [
        (_reproduces(lambda z, t: want(z, t) ** len(t), 1e-5),
         "take the mean over the tokens, not the sum, before exp."),
    ]
    return run_checks("perplexity", fn, cases, rtol=1e-5, mistakes=mistakes,
                      arg_names=["logits", "targets"], hint=(
        "z = logits - logits.max(axis=1, keepdims=True); log_p = z - log(sum(exp(z), axis=1)); "
        "return float(np.exp(-log_p[np.arange(len(targets)), targets].mean()))."))
