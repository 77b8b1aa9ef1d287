"""TensorFlow's FakeQuant op rebuilt with ``tf.custom_gradient``, and its "nudged" range.

``tf.quantization.fake_quant_with_min_max_vars(x, min, max, num_bits, narrow_range)`` is the node
that TensorFlow's quantization-aware training (and the Model Optimization Toolkit) inserts. It
works on the unsigned grid ``[quant_min, quant_max] = [0 (1 if narrow_range), 2**num_bits - 1]``
and, before anything else, *nudges* the range ``[min, max]`` so that 0.0 falls exactly on a grid
point: it keeps the step ``scale = (max - min) / (quant_max - quant_min)``, rounds the zero point
``quant_min - min / scale`` (half away from zero, clamped to the grid), and shifts the range to
``[(quant_min - zp) * scale, (quant_max - zp) * scale]``. The range moves; its width stays.

PyTorch (and ``tl.choose_qparams``) instead *widen* the range to include 0 and recompute the
scale, so the two agree when ``min <= 0 <= max`` up to the rounding of the zero point, and differ
when the range lies on one side of 0: TF then slides the whole range to start at 0.

Importing this module imports TensorFlow (through ``tutorial_lib.tflite_bridge``, quietly).
"""

from __future__ import annotations

import numbers

import numpy as np

from tutorial_lib.bridges import tflite_bridge
from tutorial_lib.core._validate import as_finite_float32
from tutorial_lib.core.affine import QParams

tf = tflite_bridge.tf

__all__ = ["nudged_range", "nudged_qparams", "fake_quant_tf"]


def _grid(num_bits: int, narrow_range: bool) -> tuple[float, float]:
    if isinstance(num_bits, bool) or not isinstance(num_bits, numbers.Integral) \
            or not 2 <= num_bits <= 16:
        raise ValueError(f"num_bits must be an integer from 2 to 16 (TensorFlow's limits); "
                         f"got {num_bits!r}.")
    return float(1 if narrow_range else 0), float(2**num_bits - 1)


def nudged_range(min_val: float, max_val: float, num_bits: int = 8,
                 narrow_range: bool = False) -> tuple[float, float, float]:
    """``(nudged_min, nudged_max, scale)`` as TensorFlow's ``Nudge`` computes them, in float32.

    >>> nudged_range(-1.0, 2.0, num_bits=2)  # scale 1, zero point 1: already on the grid
    (-1.0, 2.0, 1.0)
    >>> nudged_range(-0.6, 2.4, num_bits=2)  # zero point 0.6 rounds to 1: down by 0.4
    (-1.0, 2.0, 1.0)
    >>> nudged_range(0.5, 3.5, num_bits=2)   # all positive: slides down to start at 0
    (0.0, 3.0, 1.0)
    """
    lo = float(as_finite_float32(min_val, "min_val"))
    hi = float(as_finite_float32(max_val, "max_val"))
    if not lo < hi:
        raise ValueError(f"min_val must be smaller than max_val; got {lo} and {hi}.")
    f32 = np.float32
    quant_min, quant_max = (f32(v) for v in _grid(num_bits, narrow_range))
    scale = (f32(hi) - f32(lo)) / (quant_max - quant_min)
    zero_point_from_min = quant_min - f32(lo) / scale
    if zero_point_from_min < quant_min:
        zero_point = quant_min
    elif zero_point_from_min > quant_max:
        zero_point = quant_max
    else:  # std::round: half away from zero (the value is >= 0 here)
        zero_point = f32(np.floor(zero_point_from_min + f32(0.5)))
    return (float((quant_min - zero_point) * scale), float((quant_max - zero_point) * scale),
            float(scale))


def nudged_qparams(min_val: float, max_val: float, num_bits: int = 8,
                   narrow_range: bool = False) -> QParams:
    """The nudged range as the course's ``QParams`` on the unsigned grid of ``num_bits``.

    ``tl.fake_quantize(x, *nudged_qparams(...), quant_min, quant_max)`` then equals TensorFlow's
    op except at exact ties, which TF rounds half up and ``tl`` half to even.

    >>> nudged_qparams(-0.6, 2.4, num_bits=2)
    QParams(scale=1.0, zero_point=1)
    """
    nudged_min, _, scale = nudged_range(min_val, max_val, num_bits, narrow_range)
    quant_min, _ = _grid(num_bits, narrow_range)
    return QParams(scale, int(round(quant_min - nudged_min / scale)))


def fake_quant_tf(x, min_val, max_val, num_bits: int = 8, narrow_range: bool = False):
    """``tf.quantization.fake_quant_with_min_max_vars`` rebuilt, forward and gradient.

    Forward, in float32 as TensorFlow's kernel: clamp ``x`` to the nudged range, then
    ``floor((x - nudged_min) / scale - zp + 0.5) * scale`` with ``zp = -nudged_min / scale``
    rounded: the integer ``q - zp`` times the scale, so 0.0 comes out exactly (ties round up). Backward,
    as ``fake_quant_with_min_max_vars_gradient``: the gradient passes to ``x`` where
    ``nudged_min <= x <= nudged_max`` (the STE), the gradients of the values below the range
    sum into ``min_val`` and those above into ``max_val`` (the range itself learns).

    >>> x = tf.constant([-3.0, -0.2, 0.3, 0.5, 9.0])
    >>> fake_quant_tf(x, -1.0, 2.0, num_bits=2).numpy().tolist()
    [-1.0, 0.0, 0.0, 1.0, 2.0]
    """
    quant_min, quant_max = _grid(num_bits, narrow_range)
    x = tf.convert_to_tensor(x, tf.float32)
    min_val = tf.convert_to_tensor(min_val, tf.float32)
    max_val = tf.convert_to_tensor(max_val, tf.float32)

    @tf.custom_gradient
    def op(x, min_val, max_val):
        # Nudge in TensorFlow ops (the same float32 arithmetic as nudged_range).
        scale = (max_val - min_val) / (quant_max - quant_min)
        inv_scale = (quant_max - quant_min) / (max_val - min_val)  # as TF: no 1 / scale
        zero_point_from_min = quant_min - min_val / scale
        zero_point = tf.clip_by_value(tf.floor(zero_point_from_min + 0.5), quant_min, quant_max)
        nudged_min = (quant_min - zero_point) * scale
        nudged_max = (quant_max - zero_point) * scale
        quant_zero = tf.floor(-nudged_min * inv_scale + 0.5)  # the zero point, counted from 0
        clamped = tf.clip_by_value(x, nudged_min, nudged_max)
        y = tf.floor((clamped - nudged_min) / scale - quant_zero + 0.5) * scale

        def grad(dy):
            inside = tf.cast((x >= nudged_min) & (x <= nudged_max), dy.dtype)
            below = tf.cast(x < nudged_min, dy.dtype)
            above = tf.cast(x > nudged_max, dy.dtype)
            return dy * inside, tf.reduce_sum(dy * below), tf.reduce_sum(dy * above)

        return y, grad

    return op(x, min_val, max_val)
