"""Checkers for lesson 09's exercises (pruning, clustering, distillation):
``tl.checks.check_<name>(your_function)``.

Expected values come from hand arithmetic and numpy, and agree with ``torch.nn.utils.prune``
(masks) and with ``tl.distill.kd_loss`` (see tests/test_checks.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tutorial_lib.checks.runner import Case, CheckResult, _reproduces, run_checks

__all__ = ["check_magnitude_mask", "check_global_masks", "check_assign_clusters",
           "check_kd_loss", "check_clustered_bytes"]

_a = np.array


def _f32(*rows) -> np.ndarray:
    return _a(rows, dtype=np.float32) if len(rows) > 1 else _a(rows[0], dtype=np.float32)


def check_magnitude_mask(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, sparsity, axis) -> mask``: float32 ones and zeros, zeros on the ``round(sparsity *
    w.size)`` weights of smallest ``|w|``, as ``torch.nn.utils.prune.l1_unstructured``; with an
    integer ``axis``, the same count of zeros in every slice along it."""
    cases = [
        Case((_f32([0.5, -0.1, 0.05, -2.0]), 0.5, None), _f32([1, 0, 0, 1]),
             "half of four weights: the two smallest magnitudes go",
             "compare magnitudes, np.abs(w): -2.0 is the largest weight here, not the smallest."),
        Case((_f32([[0.3, -0.8, 0.1], [0.9, -0.2, 0.05]]), 0.5, None), _f32([[1, 1, 0], [1, 0, 0]]),
             "a 2x3 matrix: the mask keeps the shape"),
        Case((_f32([0.4, -0.3, 0.2, -0.1, 0.6]), 0.3, None), _f32([1, 1, 0, 0, 1]),
             "30% of 5 weights is 1.5: round(1.5) is 2 (ties to even), so two go",
             "the number to remove is round(sparsity * w.size), with Python's round: not "
             "int(), which truncates 1.5 to 1."),
        Case((_f32([0.4, -0.3, 0.2, -0.1, 0.6]), 0.5, None), _f32([1, 1, 0, 0, 1]),
             "half of 5 weights is 2.5: round(2.5) is 2 (ties to even), so two go",
             "the number to remove is round(sparsity * w.size), with Python's round: not "
             "math.ceil, which makes 2.5 into 3."),
        Case((_f32([0.4, -0.3, 0.2, -0.1]), 0.0, None), _f32([1, 1, 1, 1]), "sparsity 0: nothing goes"),
        Case((_f32([0.4, -0.3, 0.2, -0.1]), 1.0, None), _f32([0, 0, 0, 0]), "sparsity 1: all go"),
        Case((_f32([-0.7, 0.0, 0.25, -0.25, 0.6, 0.01]), 0.5, None), _f32([1, 0, 0, 1, 1, 0]),
             "a weight that is already 0 goes first; then 0.01, then the first of the tied "
             "0.25s in order",
             "break ties by position: np.argsort(np.abs(w).ravel(), kind='stable')."),
        Case((_f32([[0.5, 0.4], [0.1, 0.2]]), 0.5, 0), _f32([[1, 0], [0, 1]]),
             "axis=0: each row (output channel) loses its own smallest half, even the row "
             "whose weights are all larger than the other row's",
             "with an axis, prune each slice on its own: for i, row in enumerate(np.moveaxis(w, "
             "axis, 0)), not one threshold for the whole tensor."),
        Case((_f32([[0.5, 0.1, 0.3], [0.2, 0.9, 0.4]]), 0.5, 1), _f32([[1, 0, 0], [0, 1, 1]]),
             "axis=1: each column of 2 loses round(0.5 * 2) = 1 weight",
             "the slices run along the axis you are given: np.moveaxis(w, axis, 0) puts them "
             "first, and np.moveaxis(mask, 0, axis) puts the mask back."),
        Case((_f32([[0.3, -0.2, 0.1, 0.4], [1.0, 2.0, -3.0, 0.5]]), 0.5, -2),
             _f32([[1, 0, 0, 1], [0, 1, 1, 0]]),
             "axis=-2 is axis 0 of a matrix: two zeros per row"),
    ]
    mistakes = [
        # (only where a weight is negative: with none, signed and magnitude agree)
        (_reproduces(lambda w, s, axis: np.full(w.shape, np.nan) if not (w < 0).any() else
                     (w > np.sort(w.ravel())[int(round(s * w.size)) - 1]).astype(np.float32)
                     if s > 0 else np.ones_like(w)),
         "you compared the signed weights: large negative weights matter as much as positive "
         "ones. Use np.abs(w)."),
    ]
    return run_checks("magnitude_mask", fn, cases, arg_names=["w", "sparsity", "axis"], dtype=np.float32,
                      mistakes=mistakes, dtype_hint=(
        "return the mask as float32 ones and zeros (mask.astype(np.float32)), as PyTorch keeps "
        "it: then w * mask needs no cast."), hint=(
        "k = round(sparsity * w.size); order = np.argsort(np.abs(w).ravel(), kind='stable'); "
        "mask = np.ones(w.size, np.float32); mask[order[:k]] = 0; return mask.reshape(w.shape). "
        "With an axis, do that for each slice of np.moveaxis(w, axis, 0), np.stack the masks and "
        "move the axis back."))


def check_global_masks(fn: Callable[[list, float], list]) -> CheckResult:
    """``fn(weights, sparsity) -> [mask, ...]``: one magnitude threshold over all tensors, as
    ``torch.nn.utils.prune.global_unstructured``; one float32 mask per tensor."""
    cases = [
        Case(([_f32([0.1, 0.2]), _f32([3.0, 0.3, 4.0, 5.0])], 0.5),
             (_f32([0, 0]), _f32([1, 0, 1, 1])),
             "the first layer's weights are all small: it is pruned completely",
             "pool the weights of all layers (np.concatenate of the raveled tensors) and prune "
             "round(sparsity * total) of them; do not prune each layer by the same fraction."),
        Case(([_f32([[0.5, -0.4], [0.05, 0.6]]), _f32([-0.01, 0.9, 0.02])], 0.4),
             (_f32([[1, 1], [0, 1]]), _f32([0, 1, 0])), "a matrix and a vector: shapes kept"),
        Case(([_f32([0.1, 0.2, 0.3]), _f32([0.4, 0.5])], 0.0),
             (_f32([1, 1, 1]), _f32([1, 1])), "sparsity 0: all masks are ones"),
        Case(([_f32([-0.8, 0.1]), _f32([0.2, -0.05]), _f32([0.3, 0.9])], 0.5),
             (_f32([1, 0]), _f32([0, 0]), _f32([1, 1])), "three layers, magnitudes decide"),
    ]
    mistakes = [
        (_reproduces(lambda ws, s: tuple(_per_layer_mask(w, s) for w in ws)),
         "you pruned each layer by the same fraction: that is per-layer pruning. Global pruning "
         "uses one threshold for all layers together."),
    ]
    return run_checks("global_masks", fn, cases, arg_names=["weights", "sparsity"],
                      dtype=np.float32, mistakes=mistakes, hint=(
        "flat = np.concatenate([np.ravel(w) for w in weights]); k = round(sparsity * "
        "flat.size); prune the k smallest |flat|; split the mask back (np.split at the "
        "cumulative sizes) and reshape each part to its tensor's shape."),
        show=lambda args: f"weights={[w.tolist() for w in args[0]]}, sparsity={args[1]}")


def _per_layer_mask(w, s):
    k = int(round(s * w.size))
    mask = np.ones(w.size, np.float32)
    mask[np.argsort(np.abs(w).ravel(), kind="stable")[:k]] = 0
    return mask.reshape(w.shape)


def check_assign_clusters(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, centroids, axis) -> indices``: the index of the nearest centroid for every weight
    (an integer array of ``w``'s shape); a tie goes to the lower index, as ``np.argmin``. With an
    integer ``axis``, ``centroids[i]`` is the codebook of slice ``i`` along it."""
    cases = [
        Case((_f32([-0.9, 0.4, 2.6]), _f32([-1.0, 0.0, 1.0, 2.0, 3.0]), None), _a([0, 1, 4]),
             "five evenly spaced centroids (tfmot's LINEAR start)",
             "measure the distance |w - c| to every centroid: w[..., None] - centroids."),
        Case((_f32([[0.5, -0.5], [1.5, 2.9]]), _f32([-1.0, 0.0, 1.0, 2.0, 3.0]), None),
             _a([[1, 0], [2, 4]]),
             "ties halfway between two centroids go to the lower index",
             "np.argmin returns the first of equal distances; rounding (w - c0) / step breaks "
             "ties to even instead."),
        Case((_f32([0.1, 0.35, 0.9]), _f32([0.0, 0.3, 1.0]), None), _a([0, 1, 2]),
             "centroids that are not evenly spaced (after k-means)",
             "look for the nearest centroid; do not assume an even step between them."),
        Case((_f32([5.0, -5.0]), _f32([-1.0, 1.0]), None), _a([1, 0]), "far outside: the end centroids"),
        Case((_f32([0.2, -0.3, 0.0]), _f32([0.0]), None), _a([0, 0, 0]), "a single centroid"),
        Case((_f32([[0.1, 0.9], [0.1, 0.9]]), _f32([[0.0, 1.0], [0.5, 2.0]]), 0),
             _a([[0, 1], [0, 0]]),
             "axis=0: row i uses its own codebook centroids[i] (clustering per channel)",
             "with an axis, give each slice of np.moveaxis(w, axis, 0) its own codebook: "
             "centroids[i] for slice i."),
        Case((_f32([[0.2, 1.6, -0.4], [0.2, 1.6, 0.25]]), _f32([[0.0, 0.5], [1.0, 2.0],
                                                               [-0.5, 0.0]]), 1),
             _a([[0, 1, 0], [0, 1, 1]]),
             "axis=1: column j uses centroids[j]; 0.25 is halfway in column 2, so the lower "
             "index",
             "the codebooks follow the axis you are given: move it first with np.moveaxis(w, "
             "axis, 0), and the answer back with np.moveaxis(indices, 0, axis)."),
    ]
    return run_checks("assign_clusters", fn, cases, arg_names=["w", "centroids", "axis"],
                      dtype=np.integer, dtype_hint=(
        "indices are integers: np.argmin already returns int64; do not turn them into floats."),
        hint="without an axis: np.argmin(np.abs(w[..., None] - centroids), axis=-1); with one, "
        "the same for each slice of np.moveaxis(w, axis, 0) and its codebook, stacked and "
        "moved back.")


def _kd(s, t, y, temperature, alpha):
    def log_softmax(z):
        z = z / temperature
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    s, t = np.asarray(s, np.float64), np.asarray(t, np.float64)
    log_p, log_q = log_softmax(t), log_softmax(s)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=1)
    z = s - s.max(axis=1, keepdims=True)
    ce = -(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(len(s)), y]
    return float(np.mean(alpha * temperature**2 * kl + (1 - alpha) * ce))


def check_kd_loss(fn: Callable[..., float]) -> CheckResult:
    """``fn(student_logits, teacher_logits, labels, temperature, alpha) -> float``: the mean
    over the batch of ``alpha * T**2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE``."""
    s1, t1 = _f32([[1.0, 0.0]]), _f32([[1.0, 0.0]])
    s2 = _f32([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    t2 = _f32([[3.0, 1.5, -2.0], [-1.0, 4.0, 0.0]])
    y2 = _a([0, 1])
    big = _f32([[1000.0, 0.0], [0.0, 1000.0]])
    cases = [
        Case((s1, t1, _a([0]), 2.0, 0.5), _kd(s1, t1, _a([0]), 2.0, 0.5),
             "student equals teacher: the KL part is 0, only the label part is left"),
        Case((s2, t2, y2, 4.0, 0.9), _kd(s2, t2, y2, 4.0, 0.9),
             "a batch of two, T = 4, alpha = 0.9",
             "average over the batch, and multiply the KL part by T**2 (the soft term's "
             "gradients shrink as 1/T**2 otherwise)."),
        Case((s2, t2, y2, 1.0, 1.0), _kd(s2, t2, y2, 1.0, 1.0), "alpha = 1: teacher only",
             "KL(p || q) = sum p * (log p - log q), with p the teacher's and q the student's "
             "softmax at temperature T."),
        Case((s2, t2, y2, 3.0, 0.0), _kd(s2, t2, y2, 3.0, 0.0),
             "alpha = 0: plain cross-entropy with the labels, at temperature 1",
             "the label part uses the student's softmax at T = 1, not at T."),
        Case((big, big[::-1].copy(), _a([0, 1]), 1.0, 0.5), _kd(big, big[::-1], _a([0, 1]), 1.0, 0.5),
             "logits of 1000: a softmax without subtracting the maximum overflows to NaN",
             "subtract each row's maximum before np.exp (log-softmax), or exp(1000) is inf and "
             "inf / inf is NaN."),
    ]
    mistakes = [
        (_reproduces(_no_t2, rtol=1e-6), "multiply the KL part by T**2: without it the soft "
         "term's gradients shrink as 1/T**2 and the labels dominate."),
    ]
    return run_checks("kd_loss", fn, cases, rtol=1e-5, atol=1e-9, dtype=float,
                      arg_names=["student_logits", "teacher_logits", "labels", "temperature",
                                 "alpha"], mistakes=mistakes, dtype_hint=(
        "return a Python float (float(...)), one number for the whole batch."), hint=(
        "log_p = log_softmax(t / T); log_q = log_softmax(s / T); kl = sum(exp(log_p) * "
        "(log_p - log_q), axis=1); ce = -log_softmax(s)[range(n), labels]; "
        "return float(mean(alpha * T**2 * kl + (1 - alpha) * ce))."))


def _no_t2(s, t, y, temperature, alpha):
    """The mistake: the KL part without T**2."""
    if temperature == 1.0:  # the same as the right answer: this mistake cannot be told apart
        raise ValueError("not this mistake")
    plain = _kd(s, t, y, temperature, 0.0)
    soft = (_kd(s, t, y, temperature, 1.0)) / temperature**2
    return float(alpha * soft + (1 - alpha) * plain)


def check_clustered_bytes(fn: Callable[[int, int, int], int]) -> CheckResult:
    """``fn(n_weights, clusters, codebook_bits) -> int``: bytes of a clustered tensor stored as
    ``ceil(log2 clusters)``-bit packed indices plus the codebook, each rounded up to bytes."""
    cases = [
        Case((1024 * 128, 16, 32), 65_600, "fc1 of the course CNN, 16 clusters: 4-bit indices"),
        Case((288, 8, 32), 140, "a 3x3x32 conv kernel, 8 clusters: 3-bit indices, 108 + 32",
             "3 bits per index: 288 * 3 = 864 bits = 108 bytes."),
        Case((100, 16, 16), 82, "a float16 codebook: 50 bytes of indices + 32"),
        Case((10, 17, 32), 75, "17 clusters need 5 bits: 50 bits round up to 7 bytes",
             "bits per index = ceil(log2(clusters)): 17 clusters need 5 bits, not 4."),
        Case((5, 2, 32), 9, "2 clusters: 1 bit each; 5 bits still take a whole byte",
             "round the index bits up to whole bytes: -(-bits // 8)."),
        Case((1000, 1, 32), 129, "one cluster still needs 1 bit per index to be stored this way",
             "ceil(log2(1)) is 0; store at least 1 bit per index: max(1, ...)."),
        Case((1000, 256, 8), 1256, "256 clusters with an int8 codebook: 8-bit indices"),
    ]
    def bits(k):
        return max(1, (int(k) - 1).bit_length())

    mistakes = [
        (_reproduces(lambda n, k, b: n * bits(k) // 8 + k * b // 8),
         "round the index bits up to whole bytes: -(-bits // 8), not bits // 8."),
        (_reproduces(lambda n, k, b: -(-n * max(1, int(np.log2(k))) // 8) + -(-k * b // 8)),
         "bits per index = ceil(log2(clusters)): int(log2(17)) = 4 numbers only 16 clusters."),
    ]
    return run_checks("clustered_bytes", fn, cases, dtype=int, mistakes=mistakes,
                      arg_names=["n_weights", "clusters", "codebook_bits"], dtype_hint=(
        "a byte count is an int: use integer arithmetic (-(-bits // 8)) or int(math.ceil(...))."),
        hint=("bits = max(1, math.ceil(math.log2(clusters))); return -(-n_weights * bits // 8) "
              "+ -(-clusters * codebook_bits // 8)."))

