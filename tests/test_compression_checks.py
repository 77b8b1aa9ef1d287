"""Lesson 09's checkers (pruning, clustering, distillation): right answers pass, real mistakes
fail with a report that names them. ``REFERENCES`` and ``MISTAKES`` join tests/test_checks.py's."""

import math

import numpy as np
import pytest

import tutorial_lib as tl
from tutorial_lib import checks


def _per_layer_masks(weights, sparsity):
    return [tl.pruning.magnitude_mask(w, sparsity) for w in weights]


def _kd_without_t2(s, t, y, temperature, alpha):
    soft = tl.distill.kd_loss(s, t, y, temperature, 1.0) / temperature**2
    return alpha * soft + (1 - alpha) * tl.distill.kd_loss(s, t, y, temperature, 0.0)


def _kd_naive_softmax(s, t, y, temperature, alpha):
    """No max subtraction: exp(1000) overflows and the loss becomes NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        def softmax(z):
            e = np.exp(np.asarray(z, np.float64))
            return e / e.sum(axis=1, keepdims=True)
        p, q = softmax(t / temperature), softmax(s / temperature)
        kl = (p * np.log(p / q)).sum(axis=1)
        ce = -np.log(softmax(s)[np.arange(len(s)), y])
        return float(np.mean(alpha * temperature**2 * kl + (1 - alpha) * ce))


def _assign_by_rounding(w, centroids, axis=None):
    """Assumes evenly spaced centroids and rounds half to even."""
    if axis is not None:
        return tl.clustering.assign_clusters(w, centroids, axis)
    step = centroids[1] - centroids[0] if len(centroids) > 1 else 1.0
    return np.clip(np.round((w - centroids[0]) / step), 0, len(centroids) - 1).astype(np.int64)


REFERENCES = {
    "magnitude_mask": tl.pruning.magnitude_mask,
    "global_masks": tl.pruning.global_masks,
    "assign_clusters": tl.clustering.assign_clusters,
    "kd_loss": tl.distill.kd_loss,
    "clustered_bytes": tl.clustering.packed_bytes,
}

MISTAKES = {
    # the signed weights, not their magnitudes
    "magnitude_mask": lambda w, s, axis: tl.pruning.magnitude_mask(np.maximum(w, 0) + 1e-3 * (w < 0),
                                                                   s, axis),
    "global_masks": _per_layer_masks,  # per-layer pruning, not one threshold
    "assign_clusters": _assign_by_rounding,
    "kd_loss": _kd_without_t2,
    "clustered_bytes": lambda n, k, bits: -(-n * math.ceil(math.log2(k)) // 8) + k * bits // 8,
}


@pytest.mark.parametrize("name", ["magnitude_mask", "kd_loss"])
def test_framework_twins_pass(name, capsys):
    """The checkers' expected values agree with the frameworks' own functions."""
    if name == "magnitude_mask":
        import torch
        from torch.nn.utils import prune

        def torch_mask(w, s, axis=None):
            if axis is not None:  # torch prunes a tensor: one call per slice
                return np.moveaxis(np.stack([torch_mask(row, s) for row in np.moveaxis(w, axis, 0)]),
                                   0, axis)
            layer = torch.nn.Linear(1, 1, bias=False)
            layer.weight = torch.nn.Parameter(torch.tensor(np.atleast_2d(w)))
            prune.l1_unstructured(layer, "weight", amount=float(s))
            return layer.weight_mask.numpy().reshape(np.shape(w))

        fn = torch_mask
    elif name == "kd_loss":
        def fn(s, t, y, temperature, alpha):
            loss = tl.keras_compress.kd_loss_keras(temperature, alpha)
            packed = np.concatenate([np.asarray(y, np.float32)[:, None], t], axis=1)
            return float(np.mean(loss(packed, np.asarray(s, np.float32)).numpy()))
    result = getattr(checks, f"check_{name}")(fn)
    out = capsys.readouterr().out
    if name == "magnitude_mask":
        # torch breaks ties between equal magnitudes its own way; the course's case with tied
        # weights is the only one allowed to differ
        assert result or "tied" in out, out
    else:
        assert result, out


@pytest.mark.parametrize("name, wrong, line", [
    ("magnitude_mask", lambda w, s, axis: tl.pruning.magnitude_mask(w, s, axis).astype(np.float64),
     "dtype: expected float32, got float64"),
    ("global_masks", lambda ws, s: [m.astype(np.int64) for m in tl.pruning.global_masks(ws, s)],
     "dtype: expected float32, got int64"),
    ("assign_clusters", lambda w, c, axis: tl.clustering.assign_clusters(w, c, axis).astype(
        np.float32),
     "dtype: expected an integer dtype, got float32"),
    ("kd_loss", lambda *a: np.float32(tl.distill.kd_loss(*a)),
     "type: expected a Python float, got numpy.float32"),
    ("clustered_bytes", lambda *a: float(tl.clustering.packed_bytes(*a)),
     "type: expected an int, got float"),
])
def test_wrong_dtype_is_named(name, wrong, line, capsys):
    assert not getattr(checks, f"check_{name}")(wrong)
    out = capsys.readouterr().out
    assert f"\n    {line}\n" in out, out
    assert "max difference" not in out and "Traceback" not in out


def test_boolean_mask_is_refused_with_advice(capsys):
    assert not checks.check_magnitude_mask(lambda w, s, axis: tl.pruning.magnitude_mask(w, s, axis)
                                           > 0)
    out = capsys.readouterr().out
    assert "got booleans" in out and "Traceback" not in out


def test_overflowing_softmax_is_reported_as_nan(capsys):
    assert not checks.check_kd_loss(_kd_naive_softmax)
    out = capsys.readouterr().out
    assert "logits of 1000" in out
    assert "NaN: got NaN where a number is expected" in out
    assert "subtract each row's maximum" in out


def test_wrong_shape_is_named(capsys):
    assert not checks.check_magnitude_mask(
        lambda w, s, axis: tl.pruning.magnitude_mask(w, s, axis).ravel())
    out = capsys.readouterr().out
    assert "shape: expected (2, 3), got (6,)" in out


def test_missing_mask_in_the_list_is_named(capsys):
    assert not checks.check_global_masks(lambda ws, s: tl.pruning.global_masks(ws, s)[:-1])
    out = capsys.readouterr().out
    assert "length: expected a tuple of 2 values, got 1" in out


@pytest.mark.parametrize("name, wrong, words", [
    ("global_masks", _per_layer_masks, "per-layer pruning"),
    ("kd_loss", _kd_without_t2, "multiply the KL part by T**2"),
    ("assign_clusters", _assign_by_rounding, "np.argmin returns the first of equal distances"),
    ("clustered_bytes", lambda n, k, bits: n * max(1, math.ceil(math.log2(k))) // 8 + k * bits // 8,
     "round the index bits up to whole bytes"),
    ("magnitude_mask", lambda w, s, axis: tl.pruning.magnitude_mask(
        w, min(1.0, math.ceil(s * w.size) / w.size), axis), "not math.ceil"),
    ("magnitude_mask", lambda w, s, axis: tl.pruning.magnitude_mask(w, s),
     "prune each slice on its own"),
    ("assign_clusters", lambda w, c, axis: tl.clustering.assign_clusters(w, c if axis is None
                                                                          else c[0]),
     "give each slice of np.moveaxis(w, axis, 0) its own codebook"),
])
def test_hint_names_the_mistake(name, wrong, words, capsys):
    assert not getattr(checks, f"check_{name}")(wrong)
    out = capsys.readouterr().out
    assert words in out, out


def test_unfinished_exercise_is_not_a_failure(capsys):
    def todo(*args):
        raise NotImplementedError

    result = checks.check_kd_loss(todo)
    assert not result and not result.implemented
    assert "not implemented yet" in capsys.readouterr().out
