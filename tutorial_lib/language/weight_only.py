"""Weight-only quantization of language models, in numpy: the ideas behind W8A16, AWQ and GPTQ.

Large language models are limited by the bytes of their weights, so the weights alone go to
4 bits or fewer while activations stay in float (W4A16). Four ideas, one function each:

- ``bits_per_weight``: what a format really costs once its scales and zero points are counted;
- ``rtn``: round-to-nearest, per output channel or per group of input channels (the baseline);
- ``salient_channels``: AWQ's observation that the few input channels with the largest
  activations matter most (Lin et al., 2023);
- ``gptq``: GPTQ's error feedback, which quantizes one column at a time and moves each column's
  rounding error onto the columns not yet quantized, weighted by the inverse Hessian of the
  layer's inputs (Frantar et al., 2022);

and ``perplexity_from_logits``, the score everything is measured with. The PyTorch bridge that
applies them to real models is ``tutorial_lib.llm``.
"""

from __future__ import annotations

import numpy as np

from tutorial_lib.core import groupwise
from tutorial_lib.core.affine import choose_qparams, qrange

__all__ = ["bits_per_weight", "rtn", "salient_channels", "gptq", "perplexity_from_logits"]


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
