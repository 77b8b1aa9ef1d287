"""Weight-only quantization of language models, in numpy: the ideas behind W8A16, AWQ, GPTQ and NF4.

Generating text one token at a time is limited by the bytes of the weights, so the weights go to
4 bits or fewer while activations stay in float (W4A16 on GPUs; llama.cpp's CPU path quantizes
the activations to 8 bits per block as well, see ``tl.gguf_blocks.dot_q4_1_q8_1``). One function
per idea:

- ``bits_per_weight``: what a format really costs once its scales and zero points are counted;
- ``rtn``: round-to-nearest, per output channel or per group of input channels (the baseline);
- ``nf4_levels`` and ``nf4``: QLoRA's 4-bit NormalFloat, 16 levels at quantiles of the normal
  distribution, one absmax scale per block (Dettmers et al., 2023);
- ``salient_channels``: AWQ's observation that the few input channels with the largest
  activations matter most (Lin et al., 2023);
- ``gptq``: GPTQ's error feedback, which quantizes one column at a time and moves each column's
  rounding error onto the columns not yet quantized, weighted by the inverse Hessian of the
  layer's inputs (Frantar et al., 2022);

and the scores: ``perplexity_from_logits`` and ``perplexity_interval``, a bootstrap over windows
of text that says which differences the evaluation text can resolve. The PyTorch bridge that
applies them to real models is ``tutorial_lib.llm``.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from tutorial_lib.core import groupwise
from tutorial_lib.core.affine import choose_qparams, qrange

__all__ = ["bits_per_weight", "rtn", "nf4_levels", "nf4", "salient_channels", "gptq",
           "perplexity_from_logits", "Interval", "perplexity_interval"]


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer from 2 to 8; got {bits!r}.")
    return int(bits)


def bits_per_weight(bits: int, group_size: int, scale_bits: int = 16,
                    zero_point_bits: int = 0) -> float:
    """Storage per weight: ``bits + (scale_bits + zero_point_bits) / group_size``.

    Per-channel quantization is a group as long as the row (``group_size = in_features``).

    >>> bits_per_weight(4, 32), bits_per_weight(4, 32, zero_point_bits=16)  # GGUF Q4_0, Q4_1
    (4.5, 5.0)
    >>> round(bits_per_weight(4, 128, zero_point_bits=4), 3)  # AWQ's layout: 4-bit zero points
    4.156
    """
    _check_bits(bits)
    if isinstance(group_size, bool) or not isinstance(group_size, int | np.integer) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer; got {group_size!r}.")
    return bits + (scale_bits + zero_point_bits) / group_size


def rtn(w, bits: int, group_size: int | None = None, symmetric: bool = False) -> np.ndarray:
    """Round-to-nearest fake quantization of a ``(out, in)`` weight, min-max per group.

    ``group_size=None`` gives one scale per output channel (row). Symmetric uses the narrow
    signed range ``tl.qrange(bits, narrow=True)`` (the largest ``|w|`` is not clipped, as for
    TFLite's weights), asymmetric the unsigned range ``[0, 2**bits - 1]``.

    >>> w = np.array([[0.1, -0.2, 0.4, 1.0]])
    >>> rtn(w, 2, symmetric=True).astype(float).round(3).tolist()  # narrow signed 2 bits: -1, 0, 1 times 1.0
    [[0.0, 0.0, 0.0, 1.0]]
    >>> rtn(w, 2, group_size=2).astype(float).round(3).tolist()  # one range per pair, 0 inside
    [[0.1, -0.2, 0.333, 1.0]]
    """
    bits = _check_bits(bits)
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D (out_features, in_features) weight; got shape {w.shape}.")
    quant_min, quant_max = qrange(bits, narrow=True) if symmetric else qrange(bits, signed=False)
    size = w.shape[1] if group_size is None else group_size
    qp = groupwise.choose_qparams(w, size, quant_min, quant_max, symmetric)
    return groupwise.fake_quantize(w, *qp, size, quant_min, quant_max)


def nf4_levels() -> np.ndarray:
    """QLoRA's 16 NormalFloat (NF4) levels in [-1, 1]: quantiles of the standard normal.

    Dettmers et al. (2023, arXiv:2305.14314) want each of the 16 levels to be hit equally often
    by normally distributed weights, and 0 to be exact. So the positive half takes 8 quantiles
    and the negative half 7, at evenly spaced probabilities from 0.5 up to ``p``, plus 0, and
    the whole set is divided by its largest value. ``p`` is the mean of ``1 - 1/(2*15)`` and
    ``1 - 1/(2*16)`` (0.9677), which keeps the outermost quantiles finite; this is the
    construction of bitsandbytes' ``create_normal_map``, which QLoRA ships.

    >>> levels = nf4_levels()
    >>> len(levels), float(levels[0]), float(levels[7]), float(levels[-1]), round(float(levels[8]), 4)
    (16, -1.0, 0.0, 1.0, 0.0796)
    """
    p = (1 - 1 / (2 * 15) + 1 - 1 / (2 * 16)) / 2
    ppf = NormalDist().inv_cdf
    positive = [ppf(q) for q in np.linspace(p, 0.5, 9)[:-1]]
    negative = [-ppf(q) for q in np.linspace(p, 0.5, 8)[:-1]]
    levels = np.sort(np.array(positive + [0.0] + negative))
    return (levels / levels.max()).astype(np.float32)


def nf4(w, block_size: int = 64) -> np.ndarray:
    """NF4 fake quantization: each block of ``block_size`` consecutive weights (row-major) is
    divided by its largest ``|w|`` (its absmax, the one float scale QLoRA stores per block),
    rounded to the nearest of the 16 ``nf4_levels()`` and multiplied back.

    >>> w = np.array([[0.55, -2.0, 0.04, 0.6]])  # absmax 2: w / 2 = 0.275, -1, 0.02, 0.3
    >>> (nf4(w, block_size=4) / 2).astype(float).round(4).tolist()  # the nearest levels, times 2
    [[0.2461, -1.0, 0.0, 0.3379]]
    """
    w = np.asarray(w, dtype=np.float32)
    if w.size == 0 or w.size % block_size:
        raise ValueError(f"w must hold a whole number of blocks of {block_size} weights; "
                         f"got shape {w.shape}.")
    levels = nf4_levels()
    blocks = w.reshape(-1, block_size)
    absmax = np.abs(blocks).max(axis=1, keepdims=True)
    scale = np.where(absmax == 0, np.float32(1), absmax)
    code = np.searchsorted((levels[1:] + levels[:-1]) / 2, blocks / scale)  # nearest level
    return (levels[code] * scale).reshape(w.shape)


def salient_channels(x, fraction: float = 0.01) -> np.ndarray:
    """Boolean mask of the ``max(1, round(fraction * n))`` input channels with the largest
    mean ``|x|`` over the tokens of ``x`` (shape ``(tokens, n)``): AWQ's salient channels.

    >>> x = np.array([[0.1, -3.0, 0.2, 0.5], [0.1, 2.0, -0.1, 0.4]])
    >>> salient_channels(x, 0.25).tolist(), salient_channels(x, 0.5).tolist()
    ([False, True, False, False], [False, True, False, True])
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty 2-D (tokens, channels) array; got shape {x.shape}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], e.g. 0.01 for 1%; got {fraction!r}.")
    k = max(1, round(fraction * x.shape[1]))
    order = np.argsort(-np.abs(x).mean(axis=0), kind="stable")
    mask = np.zeros(x.shape[1], dtype=bool)
    mask[order[:k]] = True
    return mask


def gptq(w, h, bits: int, damp: float = 0.01, block: int = 128,
         act_order: bool = False) -> np.ndarray:
    """GPTQ's column-by-column quantization of a ``(out, in)`` weight with error feedback.

    ``h`` is ``X^T X`` of the layer's calibration inputs ``X`` (tokens, in). Each output row
    keeps the asymmetric min-max scale of round-to-nearest; column ``j`` is rounded, and its
    error, divided by the ``j``-th diagonal entry of the upper Cholesky factor ``U`` of
    ``H^-1``, is subtracted from the later columns times that row of ``U`` (Frantar et al.,
    2022, Algorithm 1). Row ``j`` of ``U`` divided by ``U[j, j]`` is row ``j`` of the inverse
    Hessian of the columns not yet quantized, so this equals the Optimal Brain Quantization
    update with an explicit inverse (tests/test_llm.py checks it). ``damp`` adds that fraction
    of the mean diagonal to ``H`` so that it can be inverted. The paper's lazy batch update,
    which gives the same result faster: the error is fed at once to the columns inside a
    ``block``, and to the columns after it once per block, in one matrix product.
    ``act_order=True`` quantizes the columns in order of decreasing ``H[j, j]`` (the inputs with
    the most energy first), as the reference code's ``--act-order``.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 16)) * np.linspace(0.2, 3, 16)
    >>> w = rng.normal(size=(8, 16))
    >>> err = lambda w_hat: float(np.mean((x @ (w_hat - w).T) ** 2))
    >>> err(gptq(w, x.T @ x, 3)) < err(rtn(w, 3))
    True
    """
    bits = _check_bits(bits)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive integer (columns per lazy update); got {block!r}.")
    w = np.array(w, dtype=np.float64)
    h = np.array(h, dtype=np.float64)
    if w.ndim != 2 or h.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"w must be (out, in) and h (in, in); got {w.shape} and {h.shape}.")
    if act_order:  # the same algorithm on permuted columns; the row scales do not change
        perm = np.argsort(-np.diag(h), kind="stable")
        w_hat = gptq(w[:, perm], h[np.ix_(perm, perm)], bits, damp, block)
        return w_hat[:, np.argsort(perm)]
    quant_min, quant_max = 0, 2**bits - 1
    scale, zero_point = choose_qparams(w.min(axis=1), w.max(axis=1), quant_min, quant_max)
    dead = np.diag(h) == 0  # inputs that are always 0: their weights do not matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * np.mean(np.diag(h)) * np.eye(len(h))
    # The reference code goes cholesky -> cholesky_inverse -> cholesky(upper) and never forms
    # inv(H): a triangular solve is more accurate when H is ill-conditioned (few tokens, damped
    # diagonal). inv() is the same matrix on well-damped H, and shorter to read.
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper triangular, H^-1 = U^T U
    w_hat = np.zeros_like(w)
    for start in range(0, w.shape[1], block):
        end = min(start + block, w.shape[1])
        errors = np.zeros((w.shape[0], end - start))
        for j in range(start, end):
            code = np.clip(np.round(w[:, j] / scale) + zero_point, quant_min, quant_max)
            w_hat[:, j] = (code - zero_point) * scale  # round to nearest on the row's grid
            errors[:, j - start] = (w[:, j] - w_hat[:, j]) / u[j, j]
            w[:, j + 1:end] -= np.outer(errors[:, j - start], u[j, j + 1:end])  # inside the block
        w[:, end:] -= errors @ u[start:end, end:]  # the columns after the block, at once
    return w_hat.astype(np.float32)


def perplexity_from_logits(logits, targets) -> float:
    """``exp`` of the mean negative log-likelihood of ``targets`` under ``softmax(logits)``.

    ``logits`` is ``(tokens, vocabulary)``, ``targets`` the next token at each position. The
    log-softmax subtracts each row's maximum first, so large logits do not overflow.

    >>> perplexity_from_logits(np.zeros((3, 4)), [0, 1, 2])  # uniform over 4 words
    4.0
    >>> round(perplexity_from_logits([[1000.0, 0.0]], [0]), 6)
    1.0
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets)
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (tokens, vocabulary) and targets (tokens,); got "
                         f"{logits.shape} and {targets.shape}.")
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0 or \
            targets.max() >= logits.shape[1]:
        raise ValueError("targets must be token ids: integers from 0 to vocabulary - 1.")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    nll = -log_probs[np.arange(len(targets)), targets]
    return float(np.exp(nll.mean()))


class Interval(NamedTuple):
    """A value and its ``level`` bootstrap interval ``[low, high]``."""

    value: float
    low: float
    high: float


def perplexity_interval(nll, reference=None, level: float = 0.95, n_boot: int = 2000,
                        seed: int = 0) -> Interval:
    """Perplexity ``exp(mean(nll))`` with a percentile bootstrap interval over windows of text.

    ``nll`` is ``(windows, tokens)``: the negative log-likelihood of every scored token, the
    text cut into windows of equal length. Neighbouring tokens are not independent (a hard
    passage is hard for many tokens in a row), so whole windows are resampled, ``n_boot``
    times, with replacement, and the interval is the middle ``level`` of the resampled
    perplexities. With ``reference`` (the same windows scored by another model) the value is
    the perplexity ratio ``exp(mean(nll) - mean(reference))``, resampled with the same windows
    for both (a paired bootstrap): what is common to both models cancels, so the ratio's
    interval is far narrower than either perplexity's. A ratio interval that excludes 1 is a
    difference this text resolves; one that contains 1 is not.

    >>> nll = np.log([[2.0, 2.0], [4.0, 4.0], [8.0, 8.0]])
    >>> ppl = perplexity_interval(nll)
    >>> round(ppl.value, 6), ppl.low < ppl.value < ppl.high
    (4.0, True)
    >>> [round(v, 6) for v in perplexity_interval(nll + np.log(1.5), reference=nll)]
    [1.5, 1.5, 1.5]
    """
    nll = np.asarray(nll, dtype=np.float64)
    if nll.ndim != 2 or nll.shape[0] < 2 or nll.shape[1] < 1:
        raise ValueError(f"nll must be (windows, tokens) with at least 2 windows; got shape {nll.shape}.")
    if not np.all(np.isfinite(nll)):
        raise ValueError("nll holds NaN or inf.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}.")
    per_window = nll.mean(axis=1)
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != nll.shape:
            raise ValueError(f"reference must score the same windows: shape {nll.shape}; got "
                             f"{reference.shape}.")
        per_window = per_window - reference.mean(axis=1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_window), size=(n_boot, len(per_window)))
    boot = np.exp(per_window[draws].mean(axis=1))
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    value = float(np.exp(per_window.mean()))
    return Interval(value, float(min(low, value)), float(max(high, value)))
