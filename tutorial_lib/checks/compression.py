"""Checkers for lesson 09's exercises (pruning, clustering, distillation):
``tl.checks.check_<name>(your_function)``.

Expected values come from hand arithmetic and numpy. They agree with ``torch.nn.utils.prune``
(masks, wherever magnitudes are distinct: among equal magnitudes the course removes the first in
C order, while torch's order among ties is unspecified), with tfmot's 2:4 masks and with
``tl.distill.kd_loss`` (see tests/test_compression_checks.py). Each checker also recognises the
mistakes learners make in these exercises and names the one it meets in its hint.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tutorial_lib.checks.runner import (
    Case,
    CheckResult,
    _learner,
    _reproduces,
    _wraps_learner,
    run_checks,
)

__all__ = ["check_magnitude_mask", "check_global_masks", "check_assign_clusters",
           "check_kd_loss", "check_clustered_bytes", "check_m_by_n_mask", "check_kmeans_step"]

_a = np.array


def _f32(*rows) -> np.ndarray:
    return _a(rows, dtype=np.float32) if len(rows) > 1 else _a(rows[0], dtype=np.float32)


def _prune_smallest(scores, k: int) -> np.ndarray:
    """Float32 mask with zeros on the ``k`` smallest ``scores`` (ties: first in C order)."""
    scores = np.asarray(scores, np.float64)
    mask = np.ones(scores.size, np.float32)
    mask[np.argsort(scores.ravel(), kind="stable")[:k]] = 0.0
    return mask.reshape(scores.shape)


def _at_threshold(w, s, strict: bool) -> np.ndarray:
    """The mistake: a threshold value instead of a count. ``strict=False`` prunes every weight
    at or below the k-th smallest |w|; ``strict=True`` every weight below the (k+1)-th. Without
    ties both remove k; where several weights tie at the threshold, more, or fewer."""
    a = np.abs(np.asarray(w, np.float64))
    k = int(round(s * a.size))
    if not 0 < k < a.size:
        raise ValueError("not this mistake")
    threshold = np.sort(a.ravel())[k if strict else k - 1]
    if np.sum(a == threshold) < 2:  # no tie: this mistake gives the right answer
        raise ValueError("not this mistake")
    return (a >= threshold if strict else a > threshold).astype(np.float32)


def _no_axis(wrong: Callable) -> Callable:
    """A mistake ``wrong(w, sparsity)`` that is only diagnosed on the cases without an axis."""
    def call(w, s, axis):
        if axis is not None:
            raise ValueError("not this mistake")
        return wrong(w, s)
    return call


# ---------------------------------------------------------------- exercise 1: magnitude mask

def check_magnitude_mask(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, sparsity, axis) -> mask``: float32 ones and zeros, zeros on the ``round(sparsity *
    w.size)`` weights of smallest ``|w|`` (among equal magnitudes the first in C order); with an
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
             "three of six go: 0, then 0.01, then the first of the two tied 0.25s in order: "
             "exactly three, however many weights tie at the threshold",
             "remove exactly k weights, breaking ties by position: np.argsort(np.abs(w).ravel(), "
             "kind='stable')[:k]."),
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

    def signed(w, s, axis):
        if not (np.asarray(w) < 0).any():  # with no negative weight, signed and |w| agree
            raise ValueError("not this mistake")
        if axis is not None:
            return np.moveaxis(np.stack([signed(r, s, None) if (r < 0).any() else
                                         _prune_smallest(r, int(round(s * r.size)))
                                         for r in np.moveaxis(w, axis, 0)]), 0, axis)
        return _prune_smallest(w, int(round(s * np.size(w))))

    def slice_count_from_whole(w, s, axis):
        if axis is None:
            raise ValueError("not this mistake")
        k = int(round(s * np.size(w)))
        return np.moveaxis(np.stack([_prune_smallest(np.abs(r), min(k, r.size))
                                     for r in np.moveaxis(w, axis, 0)]), 0, axis)

    mistakes = [
        (_reproduces(signed),
         "you compared the signed weights: large negative weights matter as much as positive "
         "ones. Use np.abs(w)."),
        (_reproduces(_no_axis(lambda w, s: _at_threshold(w, s, strict=False))),
         "you pruned every weight at or below the k-th smallest magnitude: where several "
         "weights tie at that threshold, that removes more than k. Remove exactly k, by "
         "position among ties (np.argsort(..., kind='stable')[:k])."),
        (_reproduces(_no_axis(lambda w, s: _at_threshold(w, s, strict=True))),
         "you pruned the weights below a threshold magnitude: where several weights tie at the "
         "threshold, that removes fewer than k. Remove exactly k, by position among ties "
         "(np.argsort(..., kind='stable')[:k])."),
        (_reproduces(_no_axis(lambda w, s: 1 - _prune_smallest(
            np.abs(w), np.size(w) - int(round(s * np.size(w)))))),
         "you removed the largest weights and kept the smallest: magnitude pruning removes the "
         "k smallest |w|."),
        (_reproduces(slice_count_from_whole),
         "each slice loses round(sparsity * slice.size) weights: you counted k from the whole "
         "tensor's size."),
    ]
    return run_checks("magnitude_mask", fn, cases, arg_names=["w", "sparsity", "axis"],
                      dtype=np.float32, mistakes=mistakes, dtype_hint=(
        "return the mask as float32 ones and zeros (mask.astype(np.float32)), as PyTorch keeps "
        "it: then w * mask needs no cast."), hint=(
        "k = round(sparsity * w.size); order = np.argsort(np.abs(w).ravel(), kind='stable'); "
        "mask = np.ones(w.size, np.float32); mask[order[:k]] = 0; return mask.reshape(w.shape). "
        "With an axis, do that for each slice of np.moveaxis(w, axis, 0), np.stack the masks and "
        "move the axis back."))


# ---------------------------------------------------------------- exercise 2: global masks

def _global(params: dict, s: float, keep=lambda name, a: a.ndim >= 2, key=np.abs,
            per_layer: bool = False) -> dict:
    """Masks for the tensors ``keep`` selects: the right answer with the defaults; the mistakes
    with another ``keep`` (biases pruned too), ``key`` (signed values) or ``per_layer``."""
    chosen = {n: np.asarray(a, np.float64) for n, a in params.items() if keep(n, np.asarray(a))}
    if per_layer:
        return {n: _prune_smallest(key(a), int(round(s * a.size))) for n, a in chosen.items()}
    flat = np.concatenate([key(a).ravel() for a in chosen.values()])
    mask = _prune_smallest(flat, int(round(s * flat.size)))
    ends = np.cumsum([a.size for a in chosen.values()])[:-1]
    return {n: m.reshape(a.shape) for (n, a), m in zip(chosen.items(), np.split(mask, ends),
                                                      strict=True)}


def _describe_masks(masks):
    """A dict of masks as ``{name: nested lists}``; anything else as a sentence saying what it is."""
    if not isinstance(masks, dict):
        return f"a {type(masks).__name__}, not a dict {{name: mask}}"
    out = {}
    for name, mask in masks.items():
        a = np.asarray(mask)
        if a.dtype != np.float32:
            return f"{name!r}: a mask of dtype {a.dtype}, not float32"
        out[name] = a.tolist()
    return out


def check_global_masks(fn: Callable[[dict, float], dict]) -> CheckResult:
    """``fn(params, sparsity) -> {name: mask}``: ``params`` is a state dict (name -> array) with
    conv and linear weights (2 or more dimensions), biases and BatchNorm vectors (1-D). One
    magnitude threshold over the weights only, as ``torch.nn.utils.prune.global_unstructured``
    over the layers' ``weight``: a float32 mask for each weight tensor and none for the rest."""
    p1 = {"conv.weight": _f32([[0.1, 0.2]]), "conv.bias": _f32([5.0]),
          "fc.weight": _f32([[3.0, 0.3], [4.0, 5.0]]), "fc.bias": _f32([0.01, -0.02])}
    p2 = {"conv1.weight": _f32([[0.5, -0.4], [0.05, 0.6]]), "bn1.weight": _f32([0.02, 1.5]),
          "bn1.bias": _f32([0.0, 0.1]), "fc.weight": _f32([[-0.01, 0.9, 0.02]])}
    p3 = {"a.weight": _f32([[0.5, 0.2]]), "b.weight": _f32([[0.2, 0.9], [0.2, 0.1]])}
    p5 = {"a.weight": _f32([[0.1, 0.2, 0.3]]), "b.weight": _f32([[0.4, 0.5]])}
    p4 = {"a.weight": _f32([[-0.8, 0.1]]), "b.weight": _f32([[0.2, -0.05]]),
          "b.bias": _f32([-0.3, 0.3]), "c.weight": _f32([[0.3, -0.9]])}
    cases = [
        Case((p1, 0.5), _global(p1, 0.5),
             "one threshold for the two weights: conv's are all small, so it loses both; the "
             "biases are not pruned and get no mask",
             "pool the weights of all layers (np.concatenate of the raveled tensors) and prune "
             "round(sparsity * total) of them; do not prune each layer by the same fraction."),
        Case((p2, 0.4), _global(p2, 0.4),
             "bn1.weight is BatchNorm's gamma, 1-D: not a weight to prune, though its name ends "
             "in 'weight'",
             "prune the tensors of 2 or more dimensions (conv kernels, linear weights); select "
             "them by a.ndim >= 2, not by name."),
        Case((p3, 0.5), _global(p3, 0.5),
             "three of six go, and three weights tie at 0.2: the first two of them in order "
             "(a's, then b's first)",
             "remove exactly k = round(sparsity * total) weights; among equal magnitudes, the "
             "first in the concatenated order goes first (np.argsort(..., kind='stable'))."),
        Case((p5, 0.0), _global(p5, 0.0), "sparsity 0: all masks are ones"),
        Case((p4, 0.5), _global(p4, 0.5), "three layers, magnitudes decide across them",
             "compare magnitudes, np.abs: -0.8 and -0.9 are among the largest weights here."),
    ]
    cases = [Case(c.args, _describe_masks(c.expected), c.about, c.hint) for c in cases]

    def described(wrong):
        return lambda case, actual: _describe_masks(wrong(*case.args)) == actual

    mistakes = [
        (lambda case, actual: isinstance(actual, str) and "float32" in actual,
         "return float32 masks (mask.astype(np.float32)), as PyTorch keeps them."),
        (lambda case, actual: isinstance(actual, str),
         "return a dict {name: mask} with one entry per weight tensor that you pruned."),
        (described(lambda p, s: _global(p, s, keep=lambda n, a: True)),
         "you pruned the biases and BatchNorm's vectors too: prune only the weights of convs "
         "and linear layers (2 or more dimensions). A bias is one number per channel and "
         "shifts the whole channel; zeroing it saves nothing and costs accuracy."),
        (described(lambda p, s: _global(p, s, keep=lambda n, a: n.endswith("weight"))),
         "you chose the tensors by name: BatchNorm's gamma is called 'bn1.weight' too. Prune "
         "the tensors of 2 or more dimensions (a.ndim >= 2)."),
        (described(lambda p, s: _global(p, s, per_layer=True)),
         "you pruned each layer by the same fraction: that is per-layer pruning. Global pruning "
         "uses one threshold for all layers together."),
        (described(lambda p, s: _global(p, s, key=lambda a: a)),
         "you compared the signed weights: large negative weights matter as much as positive "
         "ones. Use np.abs."),
        (described(lambda p, s: {**{n: np.ones(np.shape(a), np.float32) for n, a in p.items()},
                                 **_global(p, s)}),
         "return masks only for the tensors you pruned (the weights of 2 or more dimensions): "
         "you returned masks for the biases too."),
        (described(_global_threshold),
         "you pruned every weight at or below a threshold value: where weights tie at it, that "
         "removes more than k = round(sparsity * total). Remove exactly k, by position among "
         "ties (np.argsort(..., kind='stable')[:k])."),
    ]
    call = _learner(fn)

    @_wraps_learner
    def with_copies(params, sparsity):  # your function may change its input: give it a copy
        return call({n: a.copy() for n, a in params.items()}, sparsity)

    return run_checks("global_masks", with_copies, cases, arg_names=["params", "sparsity"],
                      describe=_describe_masks, mistakes=mistakes, hint=(
        "names = [n for n, a in params.items() if np.ndim(a) >= 2]; flat = np.concatenate("
        "[np.abs(params[n]).ravel() for n in names]); k = round(sparsity * flat.size); prune "
        "the k smallest (np.argsort(flat, kind='stable')[:k]); split the mask back (np.split "
        "at the cumulative sizes) and reshape each part: {name: mask}."),
        show=lambda args: f"params={ {n: a.tolist() for n, a in args[0].items()} }, "
                          f"sparsity={args[1]}")


def _global_threshold(params: dict, s: float) -> dict:
    """The mistake: one threshold value (the k-th smallest |w|), every weight at or below it."""
    chosen = {n: np.abs(np.asarray(a, np.float64)) for n, a in params.items() if np.ndim(a) >= 2}
    flat = np.concatenate([a.ravel() for a in chosen.values()])
    k = int(round(s * flat.size))
    if k == 0:
        return {n: np.ones(a.shape, np.float32) for n, a in chosen.items()}
    threshold = np.sort(flat)[k - 1]
    if np.sum(flat == threshold) < 2:
        raise ValueError("not this mistake")
    return {n: (a > threshold).astype(np.float32) for n, a in chosen.items()}


# ---------------------------------------------------------------- exercise 3: assign clusters

def _assign_sorted(w, centroids, axis=None):
    """The mistake: nearest centroid by np.searchsorted, which assumes sorted centroids."""
    c = np.asarray(centroids, np.float64)
    if axis is not None or c.ndim != 1 or np.all(np.diff(c) >= 0):
        raise ValueError("not this mistake")
    w = np.asarray(w, np.float64)
    i = np.clip(np.searchsorted(c, w), 1, len(c) - 1)
    return np.where(np.abs(w - c[i - 1]) <= np.abs(c[i] - w), i - 1, i)


def _assign_upper(w, centroids, axis=None):
    """The mistake: ties halfway between two centroids go to the higher index."""
    c = np.asarray(centroids, np.float64)
    if axis is not None or c.ndim != 1:
        raise ValueError("not this mistake")
    distance = np.abs(np.asarray(w, np.float64)[..., None] - c)[..., ::-1]
    return len(c) - 1 - np.argmin(distance, axis=-1)


def _assign_rounding(w, centroids, axis=None):
    """The mistake: assumes evenly spaced centroids and rounds (half to even)."""
    c = np.asarray(centroids, np.float64)
    if axis is not None or c.ndim != 1 or len(c) < 2:
        raise ValueError("not this mistake")
    step = c[1] - c[0]
    return np.clip(np.round((np.asarray(w, np.float64) - c[0]) / step), 0, len(c) - 1)


def check_assign_clusters(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, centroids, axis) -> indices``: the index of the nearest centroid for every weight
    (an integer array of ``w``'s shape); a tie goes to the lower index, as ``np.argmin``. The
    centroids may come in any order. With an integer ``axis``, ``centroids[i]`` is the codebook
    of slice ``i`` along it."""
    cases = [
        Case((_f32([-0.9, 0.4, 2.6]), _f32([-1.0, 0.0, 1.0, 2.0, 3.0]), None), _a([0, 1, 4]),
             "five evenly spaced centroids (tfmot's LINEAR start)",
             "measure the distance |w - c| to every centroid: w[..., None] - centroids."),
        Case((_f32([[0.5, -0.5], [1.5, 2.9]]), _f32([-1.0, 0.0, 1.0, 2.0, 3.0]), None),
             _a([[1, 0], [2, 4]]),
             "ties halfway between two centroids go to the lower index",
             "np.argmin returns the first of equal distances: keep that rule."),
        Case((_f32([0.1, 0.35, 0.9]), _f32([0.0, 0.3, 1.0]), None), _a([0, 1, 2]),
             "centroids that are not evenly spaced (after k-means)",
             "look for the nearest centroid; do not assume an even step between them."),
        Case((_f32([0.05, 0.8, -0.6, 0.3]), _f32([0.9, -0.5, 0.0, 0.4]), None), _a([2, 0, 1, 3]),
             "centroids in no order (as k-means++ picks them): the index is the centroid's "
             "position in the list you are given",
             "compare each weight with every centroid; do not sort the centroids or assume "
             "that they are sorted."),
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
    mistakes = [
        (_reproduces(_assign_rounding),
         "you rounded (w - c[0]) / step, which assumes evenly spaced centroids and breaks ties "
         "to even: compare each weight with every centroid and take np.argmin."),
        (_reproduces(_assign_sorted),
         "you assumed sorted centroids (np.searchsorted): k-means++ and tfmot keep them in any "
         "order. Compare each weight with every centroid and take np.argmin."),
        (_reproduces(_assign_upper),
         "a weight halfway between two centroids goes to the lower index (np.argmin returns "
         "the first of equal distances); yours went to the higher one."),
    ]
    return run_checks("assign_clusters", fn, cases, arg_names=["w", "centroids", "axis"],
                      dtype=np.integer, mistakes=mistakes, dtype_hint=(
        "indices are integers: np.argmin already returns int64; do not turn them into floats."),
        hint="without an axis: np.argmin(np.abs(w[..., None] - centroids), axis=-1); with one, "
        "the same for each slice of np.moveaxis(w, axis, 0) and its codebook, stacked and "
        "moved back.")


# ---------------------------------------------------------------- exercise 4: distillation loss

def _log_softmax(z) -> np.ndarray:
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _kd(s, t, y, temperature, alpha, factor: str = "T**2", teacher_t: bool = True,
        student_t: bool = True, ce_t: bool = False, reverse: bool = False,
        swap_alpha: bool = False, reduce: str = "mean") -> float:
    """The distillation loss; the keyword arguments, away from their defaults, are mistakes."""
    T = float(temperature)
    log_p = _log_softmax(np.asarray(t, np.float64) / (T if teacher_t else 1.0))
    log_q = _log_softmax(np.asarray(s, np.float64) / (T if student_t else 1.0))
    if reverse:
        log_p, log_q = log_q, log_p
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=1)
    ce = -_log_softmax(np.asarray(s, np.float64) / (T if ce_t else 1.0))[np.arange(len(s)), y]
    weight = {"T**2": T**2, "T": T, "1": 1.0, "1/T**2": 1 / T**2}[factor]
    soft, hard = (1 - alpha, alpha) if swap_alpha else (alpha, 1 - alpha)
    per_image = soft * weight * kl + hard * ce
    return float(per_image.sum() if reduce == "sum" else per_image.mean())


def _kd_mistake(**flags) -> Callable[[Case, object], bool]:
    return _reproduces(lambda s, t, y, T, alpha: _kd(s, t, y, T, alpha, **flags), rtol=1e-6)


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
             "write the loss term by term: p = softmax(t / T), q = softmax(s / T), KL = sum p * "
             "(log p - log q) per image, CE with softmax(s) at T = 1; then alpha * T**2 * KL + "
             "(1 - alpha) * CE, averaged over the batch."),
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
        (_kd_mistake(factor="1"), "multiply the KL part by T**2: without it the soft term's "
         "gradients shrink as 1/T**2 and the labels dominate."),
        (_kd_mistake(factor="T"), "the KL part is multiplied by T**2, not by T: the soft "
         "term's gradients shrink as 1/T**2, so T**2 is what keeps them the same size."),
        (_kd_mistake(factor="1/T**2"), "you divided the KL part by T**2: multiply by it."),
        (_kd_mistake(teacher_t=False), "soften the teacher too: p = softmax(t / T). Without "
         "the temperature the teacher's targets are almost one-hot and carry little more than "
         "the label."),
        (_kd_mistake(student_t=False), "the student's side of the KL is at temperature T as "
         "well: q = softmax(s / T), the same softening as the teacher's."),
        (_kd_mistake(ce_t=True), "the label part uses the student's plain softmax(s), at "
         "T = 1, not softmax(s / T)."),
        (_kd_mistake(reverse=True), "you computed KL(q || p): the teacher's p weighs the "
         "terms, KL(p || q) = sum p * (log p - log q)."),
        (_kd_mistake(swap_alpha=True), "alpha weighs the teacher's term and 1 - alpha the "
         "labels'; yours are the other way round."),
        (_kd_mistake(reduce="sum"), "average over the batch (np.mean over the images), do not "
         "sum: the loss must not grow with the batch size."),
    ]
    return run_checks("kd_loss", fn, cases, rtol=1e-5, atol=1e-9, dtype=float,
                      arg_names=["student_logits", "teacher_logits", "labels", "temperature",
                                 "alpha"], mistakes=mistakes, dtype_hint=(
        "return a Python float (float(...)), one number for the whole batch."), hint=(
        "log_p = log_softmax(t / T); log_q = log_softmax(s / T); kl = sum(exp(log_p) * "
        "(log_p - log_q), axis=1); ce = -log_softmax(s)[range(n), labels]; "
        "return float(mean(alpha * T**2 * kl + (1 - alpha) * ce))."))


# ---------------------------------------------------------------- exercise 5: clustered bytes

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
        (_reproduces(lambda n, k, b: -(-n * bits(k) // 8)),
         "add the codebook: clusters * codebook_bits bits, rounded up to bytes."),
    ]
    return run_checks("clustered_bytes", fn, cases, dtype=int, mistakes=mistakes,
                      arg_names=["n_weights", "clusters", "codebook_bits"], dtype_hint=(
        "a byte count is an int: use integer arithmetic (-(-bits // 8)) or int(math.ceil(...))."),
        hint=("bits = max(1, math.ceil(math.log2(clusters))); return -(-n_weights * bits // 8) "
              "+ -(-clusters * codebook_bits // 8)."))


# ---------------------------------------------------------------- exercise 6: m:n masks

def _m_by_n(w, m, n, axis, key=np.abs, keep_smallest: bool = False) -> np.ndarray:
    """The 2:4-style mask; ``key`` (signed values) and ``keep_smallest`` give two mistakes."""
    moved = np.moveaxis(np.asarray(w, np.float64), axis, -1)
    groups = key(moved).reshape(-1, n)
    order = np.argsort(groups, axis=1, kind="stable")
    mask = np.zeros_like(groups, dtype=np.float32) if keep_smallest else \
        np.ones_like(groups, dtype=np.float32)
    np.put_along_axis(mask, order[:, :m], 1.0 if keep_smallest else 0.0, axis=1)
    return np.moveaxis(mask.reshape(moved.shape), -1, axis)


def _last_axis(w, m, n, axis):
    """The mistake: groups along the last axis, whatever ``axis`` says."""
    if np.ndim(w) < 2 or axis % np.ndim(w) == np.ndim(w) - 1:
        raise ValueError("not this mistake")
    return _m_by_n(w, m, n, -1)


def check_m_by_n_mask(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, m, n, axis) -> mask``: float32, with zeros on the ``m`` smallest ``|w|`` of every
    group of ``n`` consecutive weights along ``axis`` (the first in order among ties), as
    tfmot's ``sparsity_m_by_n`` groups a kernel along its input channels."""
    dense_kernel = _f32([[0.1, 0.5], [0.4, -0.1], [-0.3, 0.2], [0.2, 0.3]])  # Keras (in, out)
    square = _f32([[0.9, 0.1, 0.8, 0.2], [0.05, 0.7, 0.06, 0.6],
                   [0.5, 0.04, 0.3, 0.03], [0.02, 0.4, 0.01, 0.35]])
    conv = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 8, 2) * _f32([1, -1] * 8).reshape(
        1, 1, 8, 2) % 5  # HWIO, 8 input channels
    cases = [
        Case((_f32([0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]), 2, 4, -1),
             _m_by_n(_f32([0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]), 2, 4, -1),
             "two groups of 4: in each, the 2 smallest magnitudes go",
             "compare magnitudes, np.abs(w): -0.9 and -3.0 are large weights."),
        Case((dense_kernel, 2, 4, 0), _m_by_n(dense_kernel, 2, 4, 0),
             "a Keras Dense kernel (in, out): the groups run down each column, along the input "
             "axis 0",
             "group along the axis you are given: np.moveaxis(w, axis, -1), then reshape(-1, n)."),
        Case((square, 2, 4, 0), _m_by_n(square, 2, 4, 0),
             "a 4x4 kernel grouped along axis 0: columns, not rows",
             "group along the axis you are given: move it last (np.moveaxis(w, axis, -1)) "
             "before reshape(-1, n), and move the mask back."),
        Case((conv, 2, 4, -2), _m_by_n(conv, 2, 4, -2),
             "a conv kernel in Keras' HWIO layout, grouped along its input channels (axis=-2)"),
        Case((_f32([0.2, 0.2, 0.2, 0.9]), 2, 4, -1), _f32([0, 0, 1, 1]),
             "three weights tie: the first two in order go",
             "among equal magnitudes the first in order goes first: np.argsort(..., "
             "kind='stable')."),
        Case((_f32([0.6, 0.1, 0.5, 0.3, 0.2, 0.9, 0.8, 0.7]), 1, 4, -1), _f32([1, 0, 1, 1, 0, 1, 1, 1]),
             "1:4: one zero per group of 4"),
        Case((_f32([0.6, 0.1, 0.5, 0.3, 0.2, 0.9, 0.8, 0.7]), 4, 8, -1), _f32([1, 0, 0, 0, 0, 1, 1, 1]),
             "4:8: one group of 8 loses its 4 smallest"),
    ]
    mistakes = [
        (_reproduces(lambda w, m, n, axis: _m_by_n(w, m, n, axis, key=lambda a: a)),
         "you compared the signed weights: large negative weights matter as much as positive "
         "ones. Use np.abs(w)."),
        (_reproduces(lambda w, m, n, axis: _m_by_n(w, m, n, axis, keep_smallest=True)),
         "you kept the m smallest of each group and removed the others: remove the m smallest "
         "|w| and keep the n - m largest."),
        (_reproduces(_last_axis),
         "you grouped along the last axis: group along the axis you are given (np.moveaxis(w, "
         "axis, -1) first, and move the mask back)."),
        (_reproduces(lambda w, m, n, axis: _prune_smallest(np.abs(w), int(round(m / n * np.size(w))))),
         "you pruned m/n of the whole tensor with one threshold: every group of n must lose "
         "exactly its own m smallest, whatever the other groups hold."),
    ]
    return run_checks("m_by_n_mask", fn, cases, arg_names=["w", "m", "n", "axis"],
                      dtype=np.float32, mistakes=mistakes, dtype_hint=(
        "return the mask as float32 ones and zeros (mask.astype(np.float32))."), hint=(
        "moved = np.moveaxis(w, axis, -1); groups = np.abs(moved).reshape(-1, n); order = "
        "np.argsort(groups, axis=1, kind='stable'); mask = np.ones_like(groups, np.float32); "
        "np.put_along_axis(mask, order[:, :m], 0.0, axis=1); return "
        "np.moveaxis(mask.reshape(moved.shape), -1, axis)."))


# ---------------------------------------------------------------- exercise 7: a k-means step

def _kmeans_step(w, centroids, empty: str = "keep", pin_zero: bool = True,
                 upper_ties: bool = False) -> np.ndarray:
    """One Lloyd step; ``empty``, ``pin_zero`` and ``upper_ties`` away from their defaults are
    mistakes."""
    flat = np.asarray(w, np.float64).ravel()
    c = np.asarray(centroids, np.float64)
    distance = np.abs(flat[:, None] - c)
    nearest = (len(c) - 1 - np.argmin(distance[:, ::-1], axis=1)) if upper_ties else \
        np.argmin(distance, axis=1)
    out = c.copy()
    for i in range(len(c)):
        chosen = flat[nearest == i]
        if pin_zero and c[i] == 0.0:
            continue
        if chosen.size:
            out[i] = chosen.mean()
        elif empty != "keep":
            out[i] = {"nan": np.nan, "zero": 0.0}[empty]
    return out


def check_kmeans_step(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> CheckResult:
    """``fn(w, centroids) -> new_centroids``: one k-means step. Every weight goes to its nearest
    centroid (the lower index on a tie); each centroid moves to the mean of its weights; a
    centroid no weight chose keeps its value, and a centroid at exactly 0.0 stays there (it
    holds a pruned tensor's zeros, as tfmot's ``preserve_sparsity`` keeps them)."""
    pruned = _f32([0.0, 0.0, 0.0, 0.05, -0.04, 0.6, 0.7, -0.5])
    cases = [
        Case((_f32([0.1, 0.2, 0.3, 0.8, 1.0]), _f32([0.25, 0.75])),
             _kmeans_step(_f32([0.1, 0.2, 0.3, 0.8, 1.0]), _f32([0.25, 0.75])),
             "two clusters: each centroid moves to the mean of the weights nearest to it",
             "assign first (np.argmin of |w - c| for each weight), then move centroid i to "
             "w[nearest == i].mean()."),
        Case((_f32([0.1, 0.2, 0.9]), _f32([0.15, 0.5, 5.0])),
             _kmeans_step(_f32([0.1, 0.2, 0.9]), _f32([0.15, 0.5, 5.0])),
             "no weight is nearest to 5.0: that centroid keeps its value",
             "a centroid with no weights keeps its value: the mean of nothing is NaN."),
        Case((_f32([0.5, 0.25, 1.0]), _f32([0.25, 0.75])),
             _kmeans_step(_f32([0.5, 0.25, 1.0]), _f32([0.25, 0.75])),
             "0.5 is halfway between the centroids: it joins the lower index",
             "on a tie take the lower index, as np.argmin does."),
        Case((pruned, _f32([-0.5, 0.0, 0.65])), _kmeans_step(pruned, _f32([-0.5, 0.0, 0.65])),
             "a pruned tensor: the zero centroid holds the zeros (and 0.05 and -0.04, which are "
             "nearest to it) and stays at exactly 0",
             "a centroid at exactly 0.0 stays at 0.0: it holds the pruned weights."),
        Case((_f32([0.05, 0.25, 0.8, 1.2]), _f32([0.9, 0.1])),
             _kmeans_step(_f32([0.05, 0.25, 0.8, 1.2]), _f32([0.9, 0.1])),
             "centroids in no order: the answer keeps their order",
             "keep the centroids in the order you were given them; do not sort them."),
        Case((_f32([[0.1, 0.3], [0.7, 0.9]]), _f32([0.0, 1.0])),
             _kmeans_step(_f32([[0.1, 0.3], [0.7, 0.9]]), _f32([0.0, 1.0])),
             "a 2-D tensor: all its weights, flattened; the centroid at 0 stays, though 0.1 and "
             "0.3 are nearest to it"),
    ]
    mistakes = [
        (_reproduces(lambda w, c: _kmeans_step(w, c, empty="nan"), rtol=1e-6),
         "a centroid with no weights keeps its value: the mean of an empty selection is NaN."),
        (_reproduces(lambda w, c: _kmeans_step(w, c, empty="zero"), rtol=1e-6),
         "a centroid with no weights keeps its value; yours fell to 0 (a sum of 0 over a count "
         "of 0, or of 1)."),
        (_reproduces(lambda w, c: _kmeans_step(w, c, pin_zero=False), rtol=1e-6),
         "this is k-means without the zero cluster: the centroid at 0.0 moved to the mean of "
         "its weights, so the pruned zeros would become small non-zero values. Keep a centroid "
         "that is exactly 0.0 at 0.0."),
        (_reproduces(lambda w, c: _kmeans_step(w, c, upper_ties=True), rtol=1e-6),
         "a weight halfway between two centroids goes to the lower index (np.argmin); yours "
         "went to the higher one."),
        (_reproduces(lambda w, c: np.sort(_kmeans_step(w, c)), rtol=1e-6),
         "keep the centroids in the order you were given them: the indices of the weights "
         "point into that order."),
    ]
    return run_checks("kmeans_step", fn, cases, rtol=1e-6, atol=1e-9,
                      arg_names=["w", "centroids"], dtype=np.floating, mistakes=mistakes,
                      dtype_hint="return the centroids as floats (np.float64 or np.float32).",
                      hint=(
        "flat = np.ravel(w); nearest = np.argmin(np.abs(flat[:, None] - centroids), axis=1); "
        "new = np.array(centroids, np.float64); for each i with centroids[i] != 0 and "
        "np.any(nearest == i): new[i] = flat[nearest == i].mean(); return new."))
