"""Lesson 09's checkers (pruning, clustering, distillation): right answers pass, and the wrong
answers learners really write fail with a hint that names their mistake. ``REFERENCES`` and
``MISTAKES`` join tests/test_checks.py's."""

import math

import numpy as np
import pytest

import tutorial_lib as tl
from tutorial_lib import checks

# ---------------------------------------------------------------- wrong answers, as learners write them


def mask_signed(w, sparsity, axis=None):
    k = round(sparsity * w.size)
    mask = np.ones(w.size, np.float32)
    mask[np.argsort(w.ravel(), kind="stable")[:k]] = 0  # the most negative go first
    return mask.reshape(w.shape)


def mask_at_or_below_threshold(w, sparsity, axis=None):
    k = round(sparsity * w.size)
    if k == 0:
        return np.ones(w.shape, np.float32)
    threshold = np.sort(np.abs(w).ravel())[k - 1]
    return (np.abs(w) > threshold).astype(np.float32)


def mask_below_threshold(w, sparsity, axis=None):
    k = round(sparsity * w.size)
    if k == w.size:
        return np.zeros(w.shape, np.float32)
    threshold = np.sort(np.abs(w).ravel())[k]  # the smallest weight that stays
    return (np.abs(w) >= threshold).astype(np.float32)


def mask_int_count(w, sparsity, axis=None):
    return tl.pruning.magnitude_mask(w, int(sparsity * w.size) / w.size, axis)


def mask_ceil_count(w, sparsity, axis=None):
    return tl.pruning.magnitude_mask(w, min(1.0, math.ceil(sparsity * w.size) / w.size), axis)


def mask_largest_removed(w, sparsity, axis=None):
    k = round(sparsity * w.size)
    mask = np.ones(w.size, np.float32)
    mask[np.argsort(-np.abs(w).ravel(), kind="stable")[:k]] = 0
    return mask.reshape(w.shape)


def mask_axis_ignored(w, sparsity, axis=None):
    return tl.pruning.magnitude_mask(w, sparsity)


def mask_slice_counts_whole_tensor(w, sparsity, axis=None):
    if axis is None:
        return tl.pruning.magnitude_mask(w, sparsity)
    k = round(sparsity * w.size)
    rows = []
    for row in np.moveaxis(w, axis, 0):
        mask = np.ones(row.size, np.float32)
        mask[np.argsort(np.abs(row).ravel(), kind="stable")[:k]] = 0
        rows.append(mask.reshape(row.shape))
    return np.moveaxis(np.stack(rows), 0, axis)


def _weights_only(params):
    return {n: np.asarray(a) for n, a in params.items() if np.ndim(a) >= 2}


def global_per_layer(params, sparsity):
    return {n: tl.pruning.magnitude_mask(a, sparsity) for n, a in _weights_only(params).items()}


def _pooled(chosen, sparsity, key=np.abs):
    flat = np.concatenate([key(a).ravel() for a in chosen.values()])
    mask = np.ones(flat.size, np.float32)
    mask[np.argsort(flat, kind="stable")[:round(sparsity * flat.size)]] = 0
    out, start = {}, 0
    for n, a in chosen.items():
        out[n] = mask[start:start + a.size].reshape(a.shape)
        start += a.size
    return out


def global_prunes_biases(params, sparsity):
    return _pooled({n: np.asarray(a) for n, a in params.items()}, sparsity)


def global_by_name(params, sparsity):
    return _pooled({n: np.asarray(a) for n, a in params.items() if n.endswith("weight")},
                   sparsity)


def global_signed(params, sparsity):
    return _pooled(_weights_only(params), sparsity, key=lambda a: a)


def global_threshold(params, sparsity):
    chosen = _weights_only(params)
    flat = np.sort(np.concatenate([np.abs(a).ravel() for a in chosen.values()]))
    k = round(sparsity * flat.size)
    if k == 0:
        return {n: np.ones(a.shape, np.float32) for n, a in chosen.items()}
    return {n: (np.abs(a) > flat[k - 1]).astype(np.float32) for n, a in chosen.items()}


def global_masks_for_biases_too(params, sparsity):
    masks = tl.pruning.global_masks(params, sparsity)
    return {n: masks.get(n, np.ones(np.shape(a), np.float32)) for n, a in params.items()}


def global_as_list(params, sparsity):
    return list(tl.pruning.global_masks(params, sparsity).values())


def assign_by_rounding(w, centroids, axis=None):
    """Assumes evenly spaced centroids and rounds half to even."""
    if axis is not None:
        return tl.clustering.assign_clusters(w, centroids, axis)
    step = centroids[1] - centroids[0] if len(centroids) > 1 else 1.0
    return np.clip(np.round((w - centroids[0]) / step), 0, len(centroids) - 1).astype(np.int64)


def assign_searchsorted(w, centroids, axis=None):
    """Nearest neighbour by bisection: right only for sorted centroids."""
    if axis is not None:
        return tl.clustering.assign_clusters(w, centroids, axis)
    if len(centroids) == 1:
        return np.zeros(np.shape(w), np.int64)
    i = np.clip(np.searchsorted(centroids, w), 1, len(centroids) - 1)
    return np.where(np.abs(w - centroids[i - 1]) <= np.abs(centroids[i] - w), i - 1, i)


def assign_ties_up(w, centroids, axis=None):
    if axis is not None:
        return tl.clustering.assign_clusters(w, centroids, axis)
    best = np.zeros(np.shape(w), np.int64)
    for i in range(1, len(centroids)):  # <= moves a tie to the later centroid
        closer = np.abs(w - centroids[i]) <= np.abs(w - centroids[best])
        best = np.where(closer, i, best)
    return best


def assign_one_codebook(w, centroids, axis=None):
    return tl.clustering.assign_clusters(w, centroids if axis is None else centroids[0])


def _log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _kd_parts(s, t, y, T, teacher_T=None, student_T=None, ce_T=1.0):
    log_p = _log_softmax(np.asarray(t) / (T if teacher_T is None else teacher_T))
    log_q = _log_softmax(np.asarray(s) / (T if student_T is None else student_T))
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
    ce = -_log_softmax(np.asarray(s) / ce_T)[np.arange(len(s)), y]
    return kl, ce


def kd_without_t2(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T)
    return float(np.mean(alpha * kl + (1 - alpha) * ce))


def kd_times_t(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T)
    return float(np.mean(alpha * T * kl + (1 - alpha) * ce))


def kd_divided_by_t2(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T)
    return float(np.mean(alpha * kl / T**2 + (1 - alpha) * ce))


def kd_teacher_not_softened(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T, teacher_T=1.0)
    return float(np.mean(alpha * T**2 * kl + (1 - alpha) * ce))


def kd_student_not_softened(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T, student_T=1.0)
    return float(np.mean(alpha * T**2 * kl + (1 - alpha) * ce))


def kd_labels_at_t(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T, ce_T=T)
    return float(np.mean(alpha * T**2 * kl + (1 - alpha) * ce))


def kd_reversed(s, t, y, T, alpha):
    log_q, log_p = _log_softmax(np.asarray(t) / T), _log_softmax(np.asarray(s) / T)
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)  # KL(student || teacher)
    ce = -_log_softmax(s)[np.arange(len(s)), y]
    return float(np.mean(alpha * T**2 * kl + (1 - alpha) * ce))


def kd_alpha_swapped(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T)
    return float(np.mean((1 - alpha) * T**2 * kl + alpha * ce))


def kd_summed(s, t, y, T, alpha):
    kl, ce = _kd_parts(s, t, y, T)
    return float(np.sum(alpha * T**2 * kl + (1 - alpha) * ce))


def kd_naive_softmax(s, t, y, temperature, alpha):
    """No max subtraction: exp(1000) overflows and the loss becomes NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        def softmax(z):
            e = np.exp(np.asarray(z, np.float64))
            return e / e.sum(axis=1, keepdims=True)
        p, q = softmax(t / temperature), softmax(s / temperature)
        kl = (p * np.log(p / q)).sum(axis=1)
        ce = -np.log(softmax(s)[np.arange(len(s)), y])
        return float(np.mean(alpha * temperature**2 * kl + (1 - alpha) * ce))


def bytes_floor(n, k, bits):
    return n * max(1, math.ceil(math.log2(k))) // 8 + k * bits // 8


def bytes_without_codebook(n, k, bits):
    return -(-n * max(1, math.ceil(math.log2(k))) // 8)


def m_by_n_signed(w, m, n, axis):
    groups = np.moveaxis(w, axis, -1).reshape(-1, n)
    mask = np.ones_like(groups, np.float32)
    np.put_along_axis(mask, np.argsort(groups, axis=1, kind="stable")[:, :m], 0.0, axis=1)
    return np.moveaxis(mask.reshape(np.moveaxis(w, axis, -1).shape), -1, axis)


def m_by_n_keeps_smallest(w, m, n, axis):
    return 1 - tl.pruning.m_by_n_mask(w, n - m, n, axis)


def m_by_n_last_axis(w, m, n, axis):
    groups = np.abs(w).reshape(-1, n)  # the axis is never moved
    mask = np.ones_like(groups, np.float32)
    np.put_along_axis(mask, np.argsort(groups, axis=1, kind="stable")[:, :m], 0.0, axis=1)
    return mask.reshape(w.shape)


def m_by_n_one_threshold(w, m, n, axis):
    return tl.pruning.magnitude_mask(w, m / n)


def kmeans_step_nan(w, centroids):
    flat = np.ravel(w)
    nearest = np.argmin(np.abs(flat[:, None] - centroids), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        new = [0.0 if c == 0 else (flat[nearest == i].sum() / np.sum(nearest == i))
               for i, c in enumerate(centroids)]
    return np.array(new)


def kmeans_step_empty_to_zero(w, centroids):
    flat = np.ravel(w).astype(np.float64)
    nearest = np.argmin(np.abs(flat[:, None] - centroids), axis=1)
    sums = np.bincount(nearest, weights=flat, minlength=len(centroids))
    counts = np.bincount(nearest, minlength=len(centroids))
    return np.where(np.asarray(centroids) == 0, 0.0, sums / np.maximum(counts, 1))


def kmeans_step_no_zero_cluster(w, centroids):
    return tl.clustering.kmeans_step(w, centroids, preserve_zero=False)


def kmeans_step_ties_up(w, centroids):
    flat = np.ravel(w).astype(np.float64)
    nearest = assign_ties_up(flat, np.asarray(centroids, np.float64))
    new = np.array(centroids, np.float64)
    for i, c in enumerate(centroids):
        if c != 0 and np.any(nearest == i):
            new[i] = flat[nearest == i].mean()
    return new


def kmeans_step_sorted(w, centroids):
    return np.sort(tl.clustering.kmeans_step(w, centroids))


REFERENCES = {
    "magnitude_mask": tl.pruning.magnitude_mask,
    "global_masks": tl.pruning.global_masks,
    "assign_clusters": tl.clustering.assign_clusters,
    "kd_loss": tl.distill.kd_loss,
    "clustered_bytes": tl.clustering.packed_bytes,
    "m_by_n_mask": tl.pruning.m_by_n_mask,
    "kmeans_step": tl.clustering.kmeans_step,
}

MISTAKES = {
    "magnitude_mask": mask_signed,
    "global_masks": global_per_layer,
    "assign_clusters": assign_by_rounding,
    "kd_loss": kd_without_t2,
    "clustered_bytes": bytes_floor,
    "m_by_n_mask": m_by_n_last_axis,
    "kmeans_step": kmeans_step_no_zero_cluster,
}

# Each wrong answer, and words of the hint that must name its mistake.
WRONG_ANSWERS = [
    ("magnitude_mask", mask_signed, "you compared the signed weights"),
    ("magnitude_mask", mask_at_or_below_threshold, "at or below the k-th smallest magnitude"),
    ("magnitude_mask", mask_below_threshold, "below a threshold magnitude"),
    ("magnitude_mask", mask_int_count, "not int(), which truncates"),
    ("magnitude_mask", mask_ceil_count, "not math.ceil"),
    ("magnitude_mask", mask_largest_removed, "you removed the largest weights"),
    ("magnitude_mask", mask_axis_ignored, "prune each slice on its own"),
    ("magnitude_mask", mask_slice_counts_whole_tensor, "you counted k from the whole tensor"),
    ("global_masks", global_per_layer, "that is per-layer pruning"),
    ("global_masks", global_prunes_biases, "you pruned the biases"),
    ("global_masks", global_by_name, "you chose the tensors by name"),
    ("global_masks", global_signed, "you compared the signed weights"),
    ("global_masks", global_threshold, "at or below a threshold value"),
    ("global_masks", global_masks_for_biases_too, "masks for the biases"),
    ("global_masks", global_as_list, "return a dict {name: mask}"),
    ("assign_clusters", assign_by_rounding, "you rounded (w - c[0]) / step"),
    ("assign_clusters", assign_searchsorted, "you assumed sorted centroids"),
    ("assign_clusters", assign_ties_up, "yours went to the higher one"),
    ("assign_clusters", assign_one_codebook, "its own codebook"),
    ("kd_loss", kd_without_t2, "multiply the KL part by T**2"),
    ("kd_loss", kd_times_t, "not by T"),
    ("kd_loss", kd_divided_by_t2, "you divided the KL part by T**2"),
    ("kd_loss", kd_teacher_not_softened, "soften the teacher too"),
    ("kd_loss", kd_student_not_softened, "the student's side of the KL"),
    ("kd_loss", kd_labels_at_t, "plain softmax(s), at T = 1"),
    ("kd_loss", kd_reversed, "you computed KL(q || p)"),
    ("kd_loss", kd_alpha_swapped, "the other way round"),
    ("kd_loss", kd_summed, "average over the batch"),
    ("kd_loss", kd_naive_softmax, "subtract each row's maximum"),
    ("clustered_bytes", bytes_floor, "round the index bits up to whole bytes"),
    ("clustered_bytes", lambda n, k, bits: -(-n * max(1, int(math.log2(k))) // 8) + -(-k * bits // 8),
     "int(log2(17)) = 4"),
    ("clustered_bytes", bytes_without_codebook, "add the codebook"),
    ("m_by_n_mask", m_by_n_signed, "you compared the signed weights"),
    ("m_by_n_mask", m_by_n_keeps_smallest, "you kept the m smallest"),
    ("m_by_n_mask", m_by_n_last_axis, "you grouped along the last axis"),
    ("m_by_n_mask", m_by_n_one_threshold, "one threshold"),
    ("kmeans_step", kmeans_step_nan, "the mean of an empty selection is NaN"),
    ("kmeans_step", kmeans_step_empty_to_zero, "yours fell to 0"),
    ("kmeans_step", kmeans_step_no_zero_cluster, "k-means without the zero cluster"),
    ("kmeans_step", kmeans_step_ties_up, "yours went to the higher one"),
    ("kmeans_step", kmeans_step_sorted, "keep the centroids in the order"),
]


@pytest.mark.parametrize("name, wrong, words", WRONG_ANSWERS,
                         ids=[f"{n}-{w.__name__}" for n, w, _ in WRONG_ANSWERS])
def test_hint_names_the_mistake(name, wrong, words, capsys):
    assert not getattr(checks, f"check_{name}")(wrong)
    out = capsys.readouterr().out
    assert "Traceback" not in out
    hint = next(line for line in out.splitlines() if line.startswith("  hint: "))
    assert words in hint, out


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_references_pass(name, capsys):
    assert getattr(checks, f"check_{name}")(REFERENCES[name]), capsys.readouterr().out


@pytest.mark.parametrize("name", ["magnitude_mask", "kd_loss", "m_by_n_mask"])
def test_framework_twins_pass(name, capsys):
    """The checkers' expected values agree with the frameworks' own functions."""
    if name == "magnitude_mask":
        import torch
        from torch.nn.utils import prune

        def fn(w, s, axis=None):
            if axis is not None:  # torch prunes a tensor: one call per slice
                return np.moveaxis(np.stack([fn(row, s) for row in np.moveaxis(w, axis, 0)]),
                                   0, axis)
            layer = torch.nn.Linear(1, 1, bias=False)
            layer.weight = torch.nn.Parameter(torch.tensor(np.atleast_2d(w)))
            prune.l1_unstructured(layer, "weight", amount=float(s))
            return layer.weight_mask.numpy().reshape(np.shape(w))
    elif name == "kd_loss":
        def fn(s, t, y, temperature, alpha):
            loss = tl.keras_compress.kd_loss_keras(temperature, alpha)
            packed = np.concatenate([np.asarray(y, np.float32)[:, None], t], axis=1)
            return float(np.mean(loss(packed, np.asarray(s, np.float32)).numpy()))
    else:
        kb = tl.tflite_bridge
        kb.load_tfmot()  # imports tfmot quietly first
        from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils

        def fn(w, m, n, axis):  # tfmot groups the last axis of a (rows, channels_in) matrix
            moved = np.moveaxis(w, axis, -1)
            rows = kb.tf.constant(moved.reshape(-1, moved.shape[-1]))
            mask = pruning_utils.generate_m_by_n_mask(rows, (m, n)).numpy()
            return np.moveaxis(mask.reshape(moved.shape), -1, axis).astype(np.float32)
    result = getattr(checks, f"check_{name}")(fn)
    out = capsys.readouterr().out
    if name == "kd_loss":
        assert result, out
    else:
        # frameworks break ties between equal magnitudes their own way (torch.topk, tf.math.
        # top_k); the course's cases with tied weights are the only ones allowed to differ
        assert result or "tie" in out.split("first wrong case:")[1].splitlines()[0], out


@pytest.mark.parametrize("name, wrong, line", [
    ("magnitude_mask", lambda w, s, axis: tl.pruning.magnitude_mask(w, s, axis).astype(np.float64),
     "dtype: expected float32, got float64"),
    ("assign_clusters", lambda w, c, axis: tl.clustering.assign_clusters(w, c, axis).astype(
        np.float32),
     "dtype: expected an integer dtype, got float32"),
    ("kd_loss", lambda *a: np.float32(tl.distill.kd_loss(*a)),
     "type: expected a Python float, got numpy.float32"),
    ("clustered_bytes", lambda *a: float(tl.clustering.packed_bytes(*a)),
     "type: expected an int, got float"),
    ("m_by_n_mask", lambda *a: tl.pruning.m_by_n_mask(*a) > 0, "type: expected numbers, got booleans"),
    ("kmeans_step", lambda *a: tl.clustering.kmeans_step(*a).astype(np.int64),
     "dtype: expected a floating-point dtype, got int64"),
])
def test_wrong_dtype_is_named(name, wrong, line, capsys):
    assert not getattr(checks, f"check_{name}")(wrong)
    out = capsys.readouterr().out
    assert f"\n    {line}\n" in out, out
    assert "Traceback" not in out


def test_global_masks_of_another_dtype_are_named(capsys):
    assert not checks.check_global_masks(
        lambda p, s: {n: m > 0 for n, m in tl.pruning.global_masks(p, s).items()})
    out = capsys.readouterr().out
    assert "a mask of dtype bool, not float32" in out and "return float32 masks" in out


def test_boolean_mask_is_refused_with_advice(capsys):
    assert not checks.check_magnitude_mask(lambda w, s, axis: tl.pruning.magnitude_mask(w, s, axis)
                                           > 0)
    out = capsys.readouterr().out
    assert "got booleans" in out and "Traceback" not in out


def test_overflowing_softmax_is_reported_as_nan(capsys):
    assert not checks.check_kd_loss(kd_naive_softmax)
    out = capsys.readouterr().out
    assert "logits of 1000" in out
    assert "NaN: got NaN where a number is expected" in out


def test_wrong_shape_is_named(capsys):
    assert not checks.check_magnitude_mask(
        lambda w, s, axis: tl.pruning.magnitude_mask(w, s, axis).ravel())
    out = capsys.readouterr().out
    assert "shape: expected (2, 3), got (6,)" in out


def test_the_learners_changes_to_the_input_do_not_leak_into_later_cases(capsys):
    def destructive(params, sparsity):
        masks = tl.pruning.global_masks(params, sparsity)
        for a in params.values():
            a[...] = 0  # the learner's code scribbles on its input
        return masks

    assert checks.check_global_masks(destructive), capsys.readouterr().out


def test_unfinished_exercise_is_not_a_failure(capsys):
    def todo(*args):
        raise NotImplementedError

    for name in ("kd_loss", "m_by_n_mask", "kmeans_step", "global_masks"):
        result = getattr(checks, f"check_{name}")(todo)
        assert not result and not result.implemented
        assert "not implemented yet" in capsys.readouterr().out
