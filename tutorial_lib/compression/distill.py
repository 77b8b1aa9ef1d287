"""Knowledge distillation (지식 증류): a small student learns from a large teacher's outputs.

The teacher's logits, softened by a temperature ``T``, say more than a label: which wrong
digits look like the right one. The student is trained on a mix of two losses (Hinton, Vinyals
and Dean, 2015, "Distilling the Knowledge in a Neural Network"):

    loss = alpha * T**2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(y, softmax(s))

The gradient of ``T**2 * KL`` with respect to the student's logits is ``T * (q - p)``, with
``q`` and ``p`` the student's and teacher's softened probabilities; for large ``T`` that tends
to ``(s - t) / C`` for ``C`` classes (logits of zero mean), whatever ``T`` is, while without
``T**2`` it shrinks as ``1 / T**2``. Hinton et al. write the soft term as the cross-entropy
``-sum p log q``; it differs from the KL divergence by the teacher's entropy, a constant for
the student, so both give the same gradients. ``alpha = 0`` is ordinary training on labels.
Everything here is numpy, in float64; the Keras version, ``tl.keras_compress.kd_loss_keras``,
is tested against ``kd_loss``.
"""

from __future__ import annotations

import numpy as np

from tutorial_lib.core._validate import as_finite_float32

__all__ = ["softmax", "log_softmax", "kd_loss"]


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float | np.number) \
            or not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number (1 is plain softmax, 2 to 8 "
                         f"are usual for distillation); got {temperature!r}.")
    return float(temperature)


def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``log(softmax(logits / T))`` along the last axis, in float64, without overflow.

    >>> log_softmax([0.0, 0.0]).round(4).tolist()
    [-0.6931, -0.6931]
    """
    z = as_finite_float32(logits, "logits").astype(np.float64) / _check_temperature(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / T)`` along the last axis (float64): higher ``T``, softer probabilities.

    >>> softmax([2.0, 0.0]).round(3).tolist(), softmax([2.0, 0.0], temperature=4).round(3).tolist()
    ([0.881, 0.119], [0.622, 0.378])
    """
    return np.exp(log_softmax(logits, temperature))


def kd_loss(student_logits, teacher_logits, labels, temperature: float = 4.0,
            alpha: float = 0.9) -> float:
    """Mean distillation loss over a batch (see the module's docstring for the formula).

    ``student_logits`` and ``teacher_logits`` are ``(batch, classes)``, ``labels`` the
    ``(batch,)`` true classes.

    >>> round(kd_loss([[1.0, 0.0]], [[1.0, 0.0]], [0], temperature=2.0, alpha=0.5), 4)
    0.1566
    >>> round(kd_loss([[1.0, 0.0]], [[3.0, 0.0]], [0], temperature=1.0, alpha=1.0), 4)
    0.1698
    """
    s = as_finite_float32(student_logits, "student_logits")
    t = as_finite_float32(teacher_logits, "teacher_logits")
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"student_logits and teacher_logits must both be (batch, classes); got "
                         f"{s.shape} and {t.shape}.")
    y = np.asarray(labels)
    if y.shape != (len(s),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 \
            or y.max() >= s.shape[1]:
        raise ValueError(f"labels must be {len(s)} integer classes from 0 to {s.shape[1] - 1}; "
                         f"got {y.dtype} of shape {y.shape}.")
    if isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a weight from 0.0 (labels only) to 1.0 (teacher only); "
                         f"got {alpha!r}.")
    temperature = _check_temperature(temperature)
    p_teacher = softmax(t, temperature)
    kl = np.sum(p_teacher * (log_softmax(t, temperature) - log_softmax(s, temperature)), axis=1)
    ce = -log_softmax(s)[np.arange(len(s)), y]
    return float(np.mean(alpha * temperature**2 * kl + (1 - alpha) * ce))
