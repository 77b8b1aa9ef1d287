"""Integer-only inference: int8 kernels with int32 accumulators, as TFLite's reference kernels.

A float layer ``y = w @ x + b`` becomes, with ``r = S (q - Z)`` for every tensor,

    q_y = Z_y + (S_x S_w / S_y) * sum((q_x - Z_x) * (q_w - Z_w)) + q_b,

where the sum is accumulated in int32, the bias is int32 with scale ``S_x S_w`` and zero point 0,
and the real multiplier ``M = S_x S_w / S_y`` is applied in fixed point: ``M = M0 * 2**shift``
with an int32 ``M0`` in ``[2**30, 2**31)``. Every function here reproduces the arithmetic of
TensorFlow Lite's reference kernels (``tensorflow/lite/kernels/internal/reference``) bit for bit;
``run_int8_tflite`` strings them together to execute a whole full-integer ``.tflite`` model.

Accumulation trick: int8 x int8 products summed over a layer stay far below 2**53, so a float64
matrix product (fast BLAS) gives the exact integer sum, which is then converted back to int64.

The ops ``run_int8_tflite`` executes, each bit-exact with LiteRT 2.3's reference kernel:

============================  =========================================================
op                            arithmetic
============================  =========================================================
CONV_2D, DEPTHWISE_CONV_2D    int32 sums, fixed-point ``M0 * 2**shift`` per channel,
                              double rounding (``requantize``)
FULLY_CONNECTED               int32 sums, float64 multiplier rounded half away
                              (``requantize_double``)
ADD                           both inputs rescaled in fixed point (``add``)
MEAN                          int32 sum, multiplier divided by the count (``mean``)
MAX_POOL_2D, AVERAGE_POOL_2D  integer max, integer mean rounded half away
SOFTMAX                       gemmlowp fixed point: exp, sum, reciprocal (``softmax``)
LOGISTIC                      256-entry table made in float32 (``logistic``)
QUANTIZE                      float32 in: ``round(x / S) + Z``; int8 in: fixed-point rescale
DEQUANTIZE                    ``(q - Z) * S`` in float64, stored as float32
PAD, PADV2                    filled with the zero point (PAD) or the given constant
CONCATENATION                 copy (inputs share the output's scale, as LiteRT requires)
RESHAPE, STRIDED_SLICE,       data movement only
SPLIT_V, PACK, SHAPE
CALL_ONCE, VAR_HANDLE,        state kept between calls of a streaming model
READ_VARIABLE,                (``Int8Session``)
ASSIGN_VARIABLE
============================  =========================================================

Any other op raises NotImplementedError naming it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tutorial_lib.core.affine import _int_dtype, _round_half_away

__all__ = [
    "quantize_multiplier", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "requantize", "requantize_double", "requantize_fp32",
    "activation_range",
    "fully_connected", "fully_connected_acc", "conv2d", "conv2d_acc", "depthwise_conv2d",
    "depthwise_conv2d_acc", "max_pool2d", "average_pool2d", "mean", "add",
    "Int8Session", "requantize_int8", "dequantize_op", "exp_on_negative_values", "softmax_params", "softmax", "logistic_table", "logistic",
    "fold_batchnorm", "run_int8_tflite", "TFLITE_OPS",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ---------------------------------------------------------------- fixed-point requantization

def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """Split a positive real multiplier into ``(M0, shift)`` with ``real ~= M0 * 2**(shift - 31)``.

    ``M0`` is an int32 in ``[2**30, 2**31)`` (a Q0.31 fixed-point number in [0.5, 1)); TFLite's
    ``QuantizeMultiplier``: frexp, round half away from zero, renormalize if rounding reached 1,
    flush multipliers below about 2**-31 to zero.

    >>> quantize_multiplier(0.5), quantize_multiplier(0.1)
    ((1073741824, 0), (1717986918, -3))
    """
    real_multiplier = float(real_multiplier)
    if not math.isfinite(real_multiplier) or real_multiplier < 0:
        raise ValueError(f"the multiplier must be finite and >= 0; got {real_multiplier!r}.")
    if real_multiplier == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)  # real = fraction * 2**shift, fraction in [0.5, 1)
    q_fixed = int(math.floor(fraction * 2**31 + 0.5))  # TfLiteRound: half away from zero (x > 0)
    if q_fixed == 2**31:  # rounding reached 1.0: use 0.5 and one more power of two
        q_fixed //= 2
        shift += 1
    if shift < -31:  # every bit would be shifted out: flush to zero, as TFLite does
        return 0, 0
    return q_fixed, shift


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """The high 32 bits of ``2 * a * b``, rounded to nearest (gemmlowp's SRDHM), for int32 a, b.

    >>> saturating_rounding_doubling_high_mul([1000, -1000], 2**30).tolist()
    [500, -500]
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b  # |a|, |b| < 2**31, so the product fits in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    v = ab + nudge
    # C++ integer division truncates toward zero: shift the magnitude, then restore the sign.
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """``x / 2**exponent`` rounded to nearest, ties away from zero (gemmlowp's RoundingDivideByPOT).

    >>> rounding_divide_by_pot([5, 6, -5, -6], 2).tolist()
    [1, 2, -1, -2]
    """
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, quantized_multiplier, shift,
                                     rounding: str = "double") -> np.ndarray:
    """``x * M0 * 2**(shift - 31)`` in integer arithmetic, as TFLite's MultiplyByQuantizedMultiplier.

    ``rounding="double"`` is gemmlowp's two-step version (TFLite's default build): a positive
    shift is applied to ``x`` first, then a rounding doubling high multiply, then a rounding right
    shift; each step rounds. ``rounding="single"`` computes ``(x * M0 + 2**(30 - shift)) >>
    (31 - shift)`` in 64 bits and rounds once (the TFLITE_SINGLE_ROUNDING variant). The two
    differ by one in rare cases; LiteRT 2.3's reference convolutions use double rounding (its
    FULLY_CONNECTED uses neither: see ``requantize_double``).
    ``quantized_multiplier`` and ``shift`` may be per-channel arrays (channels last).

    >>> M0, shift = quantize_multiplier(0.1)
    >>> multiply_by_quantized_multiplier([1000, 1005, -1005], M0, shift).tolist()
    [100, 101, -101]
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iu" or np.any((x < INT32_MIN) | (x > INT32_MAX)):
        raise ValueError("x must hold int32 values (an accumulator): got "
                         + (f"dtype {x.dtype}" if x.dtype.kind not in "iu" else
                            f"values up to {int(np.abs(x.astype(np.int64)).max()):,}, beyond int32")
                         + "; TFLite would have overflowed before this step.")
    x = x.astype(np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if rounding == "single":
        total = 31 - shift
        return (x * np.asarray(quantized_multiplier, dtype=np.int64) + (np.int64(1) << (total - 1))) >> total
    if rounding != "double":
        raise ValueError(f"rounding must be 'double' or 'single'; got {rounding!r}.")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = x * (np.int64(1) << left)
    if np.any((shifted < INT32_MIN) | (shifted > INT32_MAX)):
        raise ValueError("the accumulator overflows int32 after the left shift.")
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, quantized_multiplier),
                                  right)


def requantize(acc, quantized_multiplier, shift, output_zero_point: int,
               act_min: int = -128, act_max: int = 127, rounding: str = "double") -> np.ndarray:
    """int32 accumulator to int8: multiply by ``M``, add the output zero point, clamp.

    The clamp to ``[act_min, act_max]`` is also how a fused ReLU is applied: its lower end is the
    output zero point (real 0) instead of -128.
    """
    out = multiply_by_quantized_multiplier(acc, quantized_multiplier, shift, rounding)
    return np.clip(out + output_zero_point, act_min, act_max).astype(_int_dtype(act_min, act_max))


def requantize_fp32(acc, scale, output_zero_point: int, act_min: int = -128,
                    act_max: int = 127) -> np.ndarray:
    """int32 accumulator to int8 in float32: ``round(acc * scale) + zero_point``, half to even.

    This is how XNNPACK (LiteRT's default CPU delegate) requantizes its int8 convolutions and
    fully connected layers: ``scale = S_x * S_w / S_y`` in float32 instead of TFLite's 31-bit
    fixed-point multiplier, so a result can differ from the reference kernels by one step.
    """
    scaled = np.asarray(acc).astype(np.float32) * np.asarray(scale, dtype=np.float32)
    out = np.round(scaled).astype(np.int64) + output_zero_point
    return np.clip(out, act_min, act_max).astype(np.int8)


def activation_range(fused: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 clamp range of a fused activation ("NONE", "RELU", "RELU6", "RELU_N1_TO_1").

    >>> activation_range("RELU", 0.1, -20), activation_range("RELU6", 0.05, -128)
    ((-20, 127), (-128, -8))
    """
    def q(real: float) -> int:  # TFLite: zero_point + roundf(real / scale), half away from zero
        v = float(np.float32(real) / np.float32(scale))
        return zero_point + int(math.copysign(math.floor(abs(v) + 0.5), v))

    if fused == "NONE":
        return -128, 127
    if fused == "RELU":
        return max(-128, q(0.0)), 127
    if fused == "RELU6":
        return max(-128, q(0.0)), min(127, q(6.0))
    if fused == "RELU_N1_TO_1":
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise NotImplementedError(f"fused activation {fused} is not supported")


# ---------------------------------------------------------------- layers

def _int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matrix product through float64 BLAS (sums of int8 products < 2**53)."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def fully_connected(x_q, input_zero_point: int, w_q, bias_q, quantized_multiplier, shift,
                    output_zero_point: int, act_min: int = -128, act_max: int = 127,
                    rounding: str = "single") -> np.ndarray:
    """int8 fully connected layer: ``x_q`` (batch, in), ``w_q`` (out, in) with weight zero point 0.

    Rounds the requantization once, as LiteRT's reference FULLY_CONNECTED does.

    >>> fully_connected([[10, -3]], -3, [[2, 1], [0, -1]], [5, 0], *quantize_multiplier(0.5), 1).tolist()
    [[17, 1]]
    """
    acc = fully_connected_acc(x_q, input_zero_point, w_q, bias_q)
    return requantize(acc, quantized_multiplier, shift, output_zero_point, act_min, act_max,
                      rounding)


def fully_connected_acc(x_q, input_zero_point: int, w_q, bias_q) -> np.ndarray:
    """The int32 accumulator of a fully connected layer: ``sum((q_x - Z_x) q_w) + q_b``."""
    x = np.asarray(x_q, dtype=np.int64) - input_zero_point
    acc = _int_matmul(x, np.asarray(w_q).T)
    return acc if bias_q is None else acc + np.asarray(bias_q, dtype=np.int64)


def _out_size_and_padding(in_size: int, filter_size: int, stride: int, dilation: int,
                          padding: str) -> tuple[int, int, int]:
    """Output size and (before, after) padding, as TFLite's ComputePaddingHeightWidth."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    elif padding == "VALID":
        out = (in_size - effective + stride) // stride
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID'; got {padding!r}.")
    total = max(0, (out - 1) * stride + effective - in_size)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], dilation: tuple[int, int],
             padding: str, fill) -> np.ndarray:
    """Patches of an NHWC array: shape (N, out_h, out_w, kh, kw, C), padded with ``fill``."""
    n, h, w, c = x.shape
    out_h, top, bottom = _out_size_and_padding(h, kh, stride[0], dilation[0], padding)
    out_w, left, right = _out_size_and_padding(w, kw, stride[1], dilation[1], padding)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    eff_h, eff_w = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    win = np.lib.stride_tricks.sliding_window_view(padded, (eff_h, eff_w), axis=(1, 2))
    win = win[:, : (out_h - 1) * stride[0] + 1 : stride[0], : (out_w - 1) * stride[1] + 1 : stride[1]]
    win = win[..., :: dilation[0], :: dilation[1]]  # (N, out_h, out_w, C, kh, kw)
    return np.moveaxis(win, 3, -1)


def conv2d(x_q, input_zero_point: int, w_q, bias_q, quantized_multiplier, shift,
           output_zero_point: int, stride=(1, 1), padding: str = "SAME", dilation=(1, 1),
           act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """int8 2-D convolution, NHWC input and OHWI weights (TFLite's layout), per-channel M0/shift.

    Padding contributes nothing: padded positions hold the input zero point, i.e. real 0.
    """
    acc = conv2d_acc(x_q, input_zero_point, w_q, bias_q, stride, padding, dilation)
    return requantize(acc, quantized_multiplier, shift, output_zero_point, act_min, act_max)


def conv2d_acc(x_q, input_zero_point: int, w_q, bias_q, stride=(1, 1), padding: str = "SAME",
               dilation=(1, 1)) -> np.ndarray:
    """The int32 accumulators of a convolution, shape (N, out_h, out_w, out_channels)."""
    x = np.asarray(x_q, dtype=np.int64) - input_zero_point
    w = np.asarray(w_q)
    out_c, kh, kw, in_c = w.shape
    patches = _windows(x, kh, kw, tuple(stride), tuple(dilation), padding, 0)
    n, oh, ow = patches.shape[:3]
    acc = _int_matmul(patches.reshape(n * oh * ow, kh * kw * in_c), w.reshape(out_c, -1).T)
    if bias_q is not None:
        acc = acc + np.asarray(bias_q, dtype=np.int64)
    return acc.reshape(n, oh, ow, out_c)


def depthwise_conv2d(x_q, input_zero_point: int, w_q, bias_q, quantized_multiplier, shift,
                     output_zero_point: int, stride=(1, 1), padding: str = "SAME",
                     dilation=(1, 1), act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """int8 depthwise convolution: weights (1, kh, kw, C * depth_multiplier), NHWC input."""
    acc = depthwise_conv2d_acc(x_q, input_zero_point, w_q, bias_q, stride, padding, dilation)
    return requantize(acc, quantized_multiplier, shift, output_zero_point, act_min, act_max)


def depthwise_conv2d_acc(x_q, input_zero_point: int, w_q, bias_q, stride=(1, 1),
                         padding: str = "SAME", dilation=(1, 1)) -> np.ndarray:
    """The int32 accumulators of a depthwise convolution, shape (N, out_h, out_w, channels)."""
    x = np.asarray(x_q, dtype=np.int64) - input_zero_point
    w = np.asarray(w_q, dtype=np.int64)
    _, kh, kw, out_c = w.shape
    multiplier = out_c // x.shape[-1]
    patches = _windows(x, kh, kw, tuple(stride), tuple(dilation), padding, 0)
    # output channel oc = ic * multiplier + m reads input channel ic
    patches = np.repeat(patches, multiplier, axis=-1)
    acc = np.einsum("nhwijc,ijc->nhwc", patches, w[0])
    return acc if bias_q is None else acc + np.asarray(bias_q, dtype=np.int64)


def max_pool2d(x_q, size, stride, padding: str = "VALID", act_min: int = -128,
               act_max: int = 127) -> np.ndarray:
    """int8 max pooling (input and output share scale and zero point); padding never wins."""
    patches = _windows(np.asarray(x_q, dtype=np.int64), size[0], size[1], tuple(stride), (1, 1),
                       padding, np.iinfo(np.int64).min)
    return np.clip(patches.max(axis=(3, 4)), act_min, act_max).astype(np.int8)


def average_pool2d(x_q, size, stride, padding: str = "VALID", act_min: int = -128,
                   act_max: int = 127) -> np.ndarray:
    """int8 average pooling over the valid positions, rounded half away from zero."""
    x = np.asarray(x_q, dtype=np.int64)
    ones = np.ones(x.shape[:3] + (1,), dtype=np.int64)
    total = _windows(x, size[0], size[1], tuple(stride), (1, 1), padding, 0).sum(axis=(3, 4))
    count = _windows(ones, size[0], size[1], tuple(stride), (1, 1), padding, 0).sum(axis=(3, 4))
    half = count // 2
    # C++ division truncates toward zero; with the +-half nudge that rounds half away from zero
    avg = np.where(total > 0, (total + half) // count, -((-(total - half)) // count))
    return np.clip(avg, act_min, act_max).astype(np.int8)


def mean(x_q, axis, input_zero_point: int, input_scale: float, output_scale: float,
         output_zero_point: int, keep_dims: bool = False) -> np.ndarray:
    """int8 mean over ``axis`` (e.g. global average pooling over H and W), as LiteRT's reference.

    The raw int8 values are summed in int32, the zero points removed from the sum
    (``sum - n * Z_in``), and the result multiplied by ``M = S_in / (n * S_out)``: LiteRT takes
    the fixed-point multiplier of ``S_in / S_out`` and divides its 31-bit mantissa by ``n``
    in integers, after shifting it left by up to ``floor(log2 n)`` bits to keep its precision.
    """
    axis = tuple(int(a) % np.ndim(x_q) for a in np.atleast_1d(axis))
    x = np.asarray(x_q, dtype=np.int64)
    n = int(np.prod([x.shape[a] for a in axis]))
    total = _wrap32(x.sum(axis=axis, keepdims=keep_dims))
    m0, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    extra = min(n.bit_length() - 1, 32, 31 + shift)
    m0_over_n, shift = (m0 << extra) // n, shift - extra
    out = multiply_by_quantized_multiplier(_wrap32(total - input_zero_point * n), m0_over_n, shift)
    return np.clip(out + output_zero_point, -128, 127).astype(np.int8)


def requantize_double(acc, real_multiplier, output_zero_point: int, act_min: int = -128,
                      act_max: int = 127) -> np.ndarray:
    """int32 accumulator to int8 with a float64 multiplier, rounded half away from zero.

    LiteRT 2.3's reference FULLY_CONNECTED requantizes this way, with ``M = S_x * S_w / S_y``
    in double precision (one ``M`` per output channel), not with the fixed-point ``M0 * 2**shift``
    of its convolutions.
    """
    scaled = np.asarray(acc, dtype=np.float64) * np.asarray(real_multiplier, dtype=np.float64)
    out = _round_half_away(scaled) + output_zero_point
    return np.clip(out, act_min, act_max).astype(np.int8)


class AddParams(NamedTuple):
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int


def add_params(scale1: float, scale2: float, output_scale: float) -> AddParams:
    """Fixed-point parameters of an int8 ADD, as TFLite's add.cc prepares them (left shift 20)."""
    left_shift = 20
    twice_max = 2 * max(float(np.float32(scale1)), float(np.float32(scale2)))
    m1 = quantize_multiplier(float(np.float32(scale1)) / twice_max)
    m2 = quantize_multiplier(float(np.float32(scale2)) / twice_max)
    mo = quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(output_scale))))
    return AddParams(left_shift, *m1, *m2, *mo)


def add(x1_q, zero_point1: int, scale1: float, x2_q, zero_point2: int, scale2: float,
        output_scale: float, output_zero_point: int, act_min: int = -128,
        act_max: int = 127) -> np.ndarray:
    """int8 elementwise add of two tensors with different scales (TFLite's reference Add).

    Both inputs are shifted left by 20 bits, rescaled to a common scale (twice the larger input
    scale) in fixed point, summed, then rescaled to the output.
    """
    p = add_params(scale1, scale2, output_scale)
    a = (np.asarray(x1_q, dtype=np.int64) - zero_point1) << p.left_shift
    b = (np.asarray(x2_q, dtype=np.int64) - zero_point2) << p.left_shift
    a = multiply_by_quantized_multiplier(a, p.input1_multiplier, p.input1_shift)
    b = multiply_by_quantized_multiplier(b, p.input2_multiplier, p.input2_shift)
    out = multiply_by_quantized_multiplier(a + b, p.output_multiplier, p.output_shift)
    return np.clip(out + output_zero_point, act_min, act_max).astype(np.int8)


# ---------------------------------------------------------------- quantize, dequantize, rescale

def requantize_int8(q, input_scale: float, input_zero_point: int, output_scale: float,
                    output_zero_point: int, output_dtype=np.int8) -> np.ndarray:
    """Integers to integers with another scale and zero point (TFLite's QUANTIZE op on integer
    input: int8 to int8, or int8 to uint8 at a model's output).

    ``M = S_in / S_out`` as a fixed-point multiplier, applied to ``q - Z_in``; the result is
    clamped to ``output_dtype``'s range.
    """
    m0, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    info = np.iinfo(output_dtype)
    return requantize(np.asarray(q, dtype=np.int64) - input_zero_point, m0, shift,
                      output_zero_point, info.min, info.max)


def dequantize_op(q, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's DEQUANTIZE: ``(q - Z) * S`` as float32."""
    return ((np.asarray(q, dtype=np.int64) - zero_point).astype(np.float64)
            * float(np.float32(scale))).astype(np.float32)


def _quantize_op(x, in_t, out_t) -> np.ndarray:
    from tutorial_lib.core.affine import quantize

    if x.dtype == np.float32:  # TFLite's reference: round(x / S) half away from zero, + Z
        return quantize(x, np.float32(out_t.scale), int(out_t.zero_point), rounding="half_away")
    return requantize_int8(x, in_t.scale, int(in_t.zero_point), out_t.scale, int(out_t.zero_point),
                           out_t.dtype)


# ---------------------------------------------------------------- softmax and logistic
#
# int8 SOFTMAX in LiteRT's reference kernel never leaves the integers: it follows gemmlowp's
# fixed-point functions. A fixed-point number here is an int32 ``raw`` standing for
# ``raw / 2**(31 - integer_bits)``: with 5 integer bits (Q5.26) it spans [-32, 32); with 0
# (Q0.31) it spans [-1, 1). Products of two Q0.31 numbers are ``saturating_rounding_doubling_
# high_mul`` (SRDHM) above; adds wrap around as int32 adds do in C.
#
# int8 LOGISTIC instead uses a table of 256 float32 results made once when the model is loaded.
# (C's expf is evaluated as float64 exp rounded to float32, its correctly rounded value.)


def _wrap32(x) -> np.ndarray:
    """Wrap int64 values to int32, as a C int32 addition overflows."""
    return ((np.asarray(x, dtype=np.int64) + 2**31) & 0xFFFFFFFF) - 2**31


def _saturating_shift_left(x, exponent: int) -> np.ndarray:
    """``x * 2**exponent`` saturated to int32 (gemmlowp's SaturatingRoundingMultiplyByPOT)."""
    x = np.asarray(x, dtype=np.int64)
    limit = (1 << (31 - exponent)) - 1
    return np.where(x > limit, INT32_MAX, np.where(x < -limit, INT32_MIN, x << exponent))


def _exp_on_interval_between_negative_one_quarter_and_0(a) -> np.ndarray:
    """exp(a) for a Q0.31 ``a`` in [-1/4, 0): a Taylor polynomial around -1/8."""
    exp_minus_one_eighth = 1895147668   # exp(-1/8) in Q0.31
    one_third = 715827883               # 1/3 in Q0.31
    x = _wrap32(np.asarray(a, dtype=np.int64) + (1 << 28))  # a + 1/8
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4_over_4 = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x2, x2), 2)
    # x + x^2/2 + x^3/6 + x^4/24 = x + (((x^4/4 + x^3) / 3) + x^2) / 2
    poly = rounding_divide_by_pot(_wrap32(saturating_rounding_doubling_high_mul(
        _wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return _wrap32(exp_minus_one_eighth
                   + saturating_rounding_doubling_high_mul(exp_minus_one_eighth, _wrap32(x + poly)))


# exp(-2**k) in Q0.31, for the bits of the part of the input beyond the last quarter
_EXP_OF_MINUS_POWERS_OF_TWO = {-2: 1672461947, -1: 1302514674, 0: 790015084, 1: 290630308,
                               2: 39332535, 3: 720401, 4: 242}


def exp_on_negative_values(a, integer_bits: int = 5) -> np.ndarray:
    """exp(a) in Q0.31 for a Q(integer_bits) ``a <= 0`` (gemmlowp's exp_on_negative_values).

    Write ``a = r - m`` with ``r`` in [-1/4, 0) and ``m`` a sum of powers of two: exp(r) comes
    from a polynomial, and each power of two present in ``m`` multiplies the result by a
    constant exp(-2**k).

    >>> round(float(exp_on_negative_values(np.int64(-1 << 26)) / 2**31), 5)  # exp(-1)
    0.36788
    """
    fraction_bits = 31 - integer_bits
    a = np.asarray(a, dtype=np.int64)
    one_quarter = 1 << (fraction_bits - 2)
    a_mod_quarter_minus_one_quarter = _wrap32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0(
        _saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = _wrap32(a_mod_quarter_minus_one_quarter - a)
    for k, exp_minus_2k in _EXP_OF_MINUS_POWERS_OF_TWO.items():
        if integer_bits > k:
            bit_set = (remainder & (1 << (fraction_bits + k))) != 0
            result = np.where(bit_set, saturating_rounding_doubling_high_mul(result, exp_minus_2k),
                              result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + x) in Q0.31 for a Q0.31 ``x`` in [0, 1): three Newton-Raphson steps."""
    total = np.asarray(a, dtype=np.int64) + INT32_MAX
    half_denominator = np.where(total >= 0, (total + 1) >> 1, -((-(total - 1)) >> 1))  # (1+x)/2
    # 48/17 - 32/17 * d: the initial estimate of 1/d, in Q2.29
    x = _wrap32(1515870810 + saturating_rounding_doubling_high_mul(half_denominator, -1010580540))
    for _ in range(3):
        one_minus_half_denominator_times_x = _wrap32(
            (1 << 29) - saturating_rounding_doubling_high_mul(half_denominator, x))
        x = _wrap32(x + _saturating_shift_left(
            saturating_rounding_doubling_high_mul(x, one_minus_half_denominator_times_x), 2))
    return _saturating_shift_left(x, 1)  # Q2.29 * 1/2 read as Q0.31


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """(multiplier, left shift, diff_min) as LiteRT's Prepare computes them for int8 SOFTMAX.

    The difference ``q - max`` is rescaled to Q5.26 by ``beta * S_in * 2**26`` (a multiplier
    above one); differences below ``diff_min`` would fall beyond -32 and count as exp = 0.
    """
    real = min(float(beta) * float(np.float32(input_scale)) * (1 << 26), 2.0**31 - 1)
    if not real > 1.0:
        raise ValueError(f"beta * input_scale must be above 2**-26 for int8 softmax; got {real / 2**26!r}.")
    multiplier, shift = quantize_multiplier(real)
    diff_min = -math.floor(31 * (1 << 26) / (1 << shift))
    return multiplier, shift, diff_min


def softmax(x_q, input_scale: float, beta: float = 1.0, output_scale: float = 1 / 256,
            output_zero_point: int = -128) -> np.ndarray:
    """int8 softmax over the last axis in integer arithmetic, as LiteRT's reference SOFTMAX.

    Per row: ``d = q - max(row)`` (so every exponent is <= 0), rescaled to Q5.26;
    ``e = exp(d)`` in Q0.31 by ``exp_on_negative_values``; the sum of the ``e`` in Q12.19;
    its reciprocal by Newton-Raphson; and ``e * (1 / sum)`` shifted to 8 bits, minus 128. The
    output must have LiteRT's fixed parameters: scale 1/256 and zero point -128.
    """
    if abs(float(output_scale) - 1 / 256) > 0.001 / 256 or int(output_zero_point) != -128:
        raise ValueError(f"int8 softmax outputs have scale 1/256 and zero point -128 (LiteRT "
                         f"refuses others); got {output_scale} and {output_zero_point}.")
    multiplier, shift, diff_min = softmax_params(input_scale, beta)
    q = np.asarray(x_q, dtype=np.int64)
    diff = q - q.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    scaled = saturating_rounding_doubling_high_mul(_wrap32(diff << shift), multiplier)  # Q5.26
    e = exp_on_negative_values(scaled, integer_bits=5)                                   # Q0.31
    total = _wrap32(np.where(used, rounding_divide_by_pot(e, 12), 0).sum(axis=-1, keepdims=True))
    # 1 / total: normalize total to [1, 2) as 1 + x, invert, and remember the shift
    headroom = np.vectorize(lambda v: 32 - int(v).bit_length())(total)
    reciprocal = _one_over_one_plus_x_for_x_in_0_1(_wrap32(((total << headroom) & 0xFFFFFFFF) - 2**31))
    exponent = (12 - headroom) + 31 - 8
    out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, e), exponent) - 128
    return np.where(used, np.clip(out, -128, 127), -128).astype(np.int8)


def _expf(v) -> np.ndarray:
    with np.errstate(over="ignore"):  # expf overflows to inf too, and 1 / (1 + inf) is 0
        return np.exp(np.asarray(v, dtype=np.float64)).astype(np.float32)


def logistic_table(input_scale: float, input_zero_point: int, output_scale: float,
                   output_zero_point: int) -> np.ndarray:
    """``table[q + 128]``: the int8 sigmoid of every int8 input, as LiteRT's Prepare makes it.

    Dequantize in float32, ``1 / (1 + expf(-x))``, times ``1 / S_out``, rounded half away from
    zero, plus ``Z_out``, clamped.
    """
    q = np.arange(-128, 128)
    x = (np.float32(input_scale) * (q - input_zero_point).astype(np.float32)).astype(np.float32)
    sig = (np.float32(1) / (np.float32(1) + _expf(-x))).astype(np.float32)
    scaled = (sig * (np.float32(1) / np.float32(output_scale))).astype(np.float32)
    return np.clip(_round_half_away(scaled) + output_zero_point, -128, 127).astype(np.int8)


def logistic(x_q, input_scale: float, input_zero_point: int, output_scale: float,
             output_zero_point: int) -> np.ndarray:
    """int8 sigmoid by table lookup, as LiteRT's reference LOGISTIC."""
    table = logistic_table(input_scale, input_zero_point, output_scale, output_zero_point)
    return table[np.asarray(x_q, dtype=np.int64) + 128]


# ---------------------------------------------------------------- BatchNorm folding

def fold_batchnorm(w, b, gamma, beta, mean, var, eps: float = 1e-5, axis: int = 0):
    """Fold BatchNorm into the preceding conv/linear: ``w' = w * g``, ``b' = (b - mean) * g + beta``.

    ``g = gamma / sqrt(var + eps)`` per output channel, which lies on ``axis`` of ``w``.

    >>> w, b = fold_batchnorm(np.ones((2, 3)), np.zeros(2), [1.0, 2.0], [0.0, 1.0], [0.0, 0.5], [1.0, 4.0], eps=0.0)
    >>> w.tolist(), b.tolist()
    ([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [0.0, 0.5])
    """
    w = np.asarray(w, dtype=np.float64)
    g = np.asarray(gamma, dtype=np.float64) / np.sqrt(np.asarray(var, dtype=np.float64) + eps)
    shape = [1] * w.ndim
    shape[axis] = -1
    b = np.zeros_like(g) if b is None else np.asarray(b, dtype=np.float64)
    return w * g.reshape(shape), (b - np.asarray(mean, dtype=np.float64)) * g + np.asarray(beta)


# ---------------------------------------------------------------- a whole .tflite model

TFLITE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D",
              "AVERAGE_POOL_2D", "MEAN", "ADD", "RESHAPE", "QUANTIZE", "DEQUANTIZE", "PAD",
              "PADV2", "CONCATENATION", "STRIDED_SLICE", "SPLIT_V", "PACK", "SHAPE", "SOFTMAX",
              "LOGISTIC", "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def run_int8_tflite(model_content: bytes, x, return_all: bool = False,
                    requantization: str = "reference"):
    """Execute a full-integer .tflite model in numpy integer arithmetic.

    ``x`` has the model's own input type: int8, or float32 when the graph starts with a QUANTIZE
    op (``tl.tflite_bridge.convert(..., "full_integer")``); the result has the model's own output
    type (int8, or float32 after a final DEQUANTIZE). A model with several inputs takes a list.
    Bit-exact with LiteRT run with ``OpResolverType.BUILTIN_REF``. Supported ops are listed in
    ``TFLITE_OPS``; any other op raises NotImplementedError naming it, before anything runs.
    With ``return_all=True`` it also returns every tensor of the main graph by index, for
    debugging. ``requantization="xnnpack"`` requantizes convolutions and fully connected layers
    in float32 as XNNPACK does (``requantize_fp32``), to reproduce LiteRT's default CPU results.

    A streaming model (one that keeps state in resource variables between calls) starts from
    its initial state here; to feed it frame after frame, use ``Int8Session``.
    """
    return Int8Session(model_content, requantization)(x, return_all=return_all)


class Int8Session:
    """One loaded model and its state between calls, for streaming models.

    Streaming keyword spotters keep the last few frames of each layer in resource variables:
    VAR_HANDLE names a variable, READ_VARIABLE and ASSIGN_VARIABLE read and write it, and
    CALL_ONCE runs an initialisation subgraph (zeros, usually) on the first call only. The state
    lives in ``self.variables`` (name -> array), so two sessions never share it; ``reset()``
    starts over. Each call is bit-exact with one ``invoke()`` of LiteRT's reference kernels.
    """

    def __init__(self, model_content: bytes, requantization: str = "reference") -> None:
        if requantization not in ("reference", "xnnpack"):
            raise ValueError(
                f"requantization must be 'reference' or 'xnnpack'; got {requantization!r}.")
        from tutorial_lib.core import tflite_file

        self.graphs = tflite_file.read_all(model_content)
        for graph in self.graphs:
            for op in graph.operators:
                if op.name not in TFLITE_OPS:
                    raise NotImplementedError(
                        f"{op.name} is not implemented in tl.run_int8_tflite "
                        f"(supported: {', '.join(TFLITE_OPS)}).")
            _check_full_integer(graph)
        self.fp32_requantization = requantization == "xnnpack"
        self.variables: dict[str, np.ndarray] = {}
        self.initialized: set[int] = set()

    def reset(self) -> None:
        """Forget the state: the next call starts from the model's initial values."""
        self.variables.clear()
        self.initialized.clear()

    def __call__(self, x, return_all: bool = False):
        graph = self.graphs[0]
        xs = [x] if len(graph.inputs) == 1 else list(x)
        if len(xs) != len(graph.inputs):
            raise ValueError(f"this model has {len(graph.inputs)} inputs: pass a list of "
                             f"{len(graph.inputs)} arrays; got {len(xs)}.")
        inputs = [_check_input(np.asarray(x), graph.tensors[i].dtype)
                  for i, x in zip(graph.inputs, xs, strict=True)]
        values = self._run_graph(0, inputs)
        out = values[graph.outputs[0]]
        return (out, values) if return_all else out

    def _run_graph(self, index: int, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        graph = self.graphs[index]
        values: dict[int, np.ndarray] = {i: t.data for i, t in enumerate(graph.tensors)
                                         if t.data is not None}
        values.update(zip(graph.inputs, inputs, strict=True))
        for op in graph.operators:
            outputs = self._run_state_op(op, values) if op.name in _STATE_OPS else \
                _run_op(graph, op, values, self.fp32_requantization)
            for i, value in zip(op.outputs, outputs, strict=True):
                values[i] = value
        return values

    def _run_state_op(self, op, values) -> tuple:
        if op.name == "CALL_ONCE":
            subgraph = op.options["init_subgraph_index"]
            if subgraph not in self.initialized:
                self.initialized.add(subgraph)
                self._run_graph(subgraph, [])
            return ()
        if op.name == "VAR_HANDLE":  # the handle is the variable's name
            return (np.array(op.options.get("shared_name", ""), dtype=object),)
        name = str(values[op.inputs[0]])
        if op.name == "ASSIGN_VARIABLE":
            self.variables[name] = np.array(values[op.inputs[1]], copy=True)
            return ()
        if name not in self.variables:  # READ_VARIABLE
            raise ValueError(f"variable {name!r} is read before anything assigned it.")
        return (self.variables[name].copy(),)


_STATE_OPS = ("CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def _check_input(x: np.ndarray, expected) -> np.ndarray:
    if expected == np.int8 and x.dtype != np.int8:
        raise ValueError(f"this model takes int8 input: quantize x with the input's scale and "
                         f"zero point first; got {x.dtype}.")
    if expected == np.float32:
        if x.dtype.kind != "f":
            raise ValueError(f"this model takes float32 input (its first op quantizes it); got "
                             f"{x.dtype}.")
        return x.astype(np.float32)
    return x


_DATA_MOVEMENT = ("RESHAPE", "STRIDED_SLICE", "SPLIT_V", "PACK", "SHAPE")


def _check_full_integer(graph) -> None:
    """Refuse models that compute in float. Only QUANTIZE reads float and DEQUANTIZE writes it;
    ops that only move data (the converter sometimes leaves a SPLIT_V in float between a
    DEQUANTIZE and a QUANTIZE) may carry float values unchanged."""
    for op in graph.operators:
        if op.name in ("QUANTIZE", "DEQUANTIZE", *_DATA_MOVEMENT):
            continue
        for i in op.inputs[:1]:
            if i >= 0 and graph.tensors[i].dtype == np.float32:
                raise ValueError(
                    f"{op.name} computes in float32: this is not a full-integer model, so its "
                    "layers are not int8. Convert with full integer quantization "
                    "(tl.tflite_bridge.convert(model, 'integer_only' or 'full_integer', data)).")


def _requant_params(graph, op):
    """Per-channel (M0, shift) for a convolution, computed as TFLite's Prepare does."""
    x, w, y = (graph.tensors[i] for i in op.inputs[:2] + op.outputs[:1])
    w_scales = np.atleast_1d(w.scale)
    # PopulateConvolutionQuantizationParams: double arithmetic per channel
    real = [float(np.float32(x.scale)) * float(s) / float(np.float32(y.scale))
            for s in w_scales.astype(np.float32)]
    m0, shift = zip(*(quantize_multiplier(r) for r in real), strict=True)
    return np.array(m0, dtype=np.int64), np.array(shift, dtype=np.int64)


def _accumulate(graph, op, values) -> np.ndarray:
    """The int32 accumulator of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op."""
    t = graph.tensors
    opts = op.options
    x = values[op.inputs[0]]
    w = values[op.inputs[1]]
    bias = values[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    zero_point = int(t[op.inputs[0]].zero_point)
    if op.name == "FULLY_CONNECTED":
        acc = fully_connected_acc(x.reshape(-1, w.shape[1]), zero_point, w, bias)
        return acc.reshape((*x.shape[:-1], -1)) if opts.get("keep_num_dims") else acc
    kernel = conv2d_acc if op.name == "CONV_2D" else depthwise_conv2d_acc
    return kernel(x, zero_point, w, bias, opts["stride"], opts["padding"], opts["dilation"])


def _run_op(graph, op, values, fp32_requantization: bool = False) -> tuple:
    """The output tensors of one op, as a tuple (most ops have one)."""
    t = graph.tensors
    opts = op.options
    out = t[op.outputs[0]]
    x = values[op.inputs[0]] if op.inputs else None
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D",
                   "AVERAGE_POOL_2D", "ADD", "CONCATENATION"):
        act = activation_range(opts.get("fused_activation", "NONE"), float(out.scale),
                               int(out.zero_point))
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        acc = _accumulate(graph, op, values)
        if fp32_requantization:
            w = t[op.inputs[1]]
            scale = (np.float32(t[op.inputs[0]].scale) * np.atleast_1d(w.scale).astype(np.float32)
                     / np.float32(out.scale)).astype(np.float32)
            return (requantize_fp32(acc, scale, int(out.zero_point), *act),)
        if op.name == "FULLY_CONNECTED":  # LiteRT 2.3's reference: float64 multiplier
            w_scales = np.atleast_1d(t[op.inputs[1]].scale).astype(np.float32).astype(np.float64)
            real = float(np.float32(t[op.inputs[0]].scale)) * w_scales / float(np.float32(out.scale))
            return (requantize_double(acc, real, int(out.zero_point), *act),)
        m0, shift = _requant_params(graph, op)
        return (requantize(acc, m0, shift, int(out.zero_point), *act),)
    if op.name == "MAX_POOL_2D":
        return (max_pool2d(x, opts["filter"], opts["stride"], opts["padding"], *act),)
    if op.name == "AVERAGE_POOL_2D":
        return (average_pool2d(x, opts["filter"], opts["stride"], opts["padding"], *act),)
    if op.name == "ADD":
        a, b = (t[i] for i in op.inputs[:2])
        return (add(x, int(a.zero_point), float(a.scale), values[op.inputs[1]], int(b.zero_point),
                    float(b.scale), float(out.scale), int(out.zero_point), *act),)
    if op.name == "MEAN":
        a = t[op.inputs[0]]
        return (mean(x, values[op.inputs[1]], int(a.zero_point), float(a.scale),
                     float(out.scale), int(out.zero_point), bool(opts.get("keep_dims", False))),)
    if op.name == "RESHAPE":
        # the file stores shapes for batch 1; keep the batch of the data we run
        return (x.reshape((x.shape[0], *out.shape[1:])),)
    if op.name == "QUANTIZE":
        return (_quantize_op(x, t[op.inputs[0]], out),)
    if op.name == "DEQUANTIZE":
        return (dequantize_op(x, float(t[op.inputs[0]].scale), int(t[op.inputs[0]].zero_point)),)
    if op.name in ("PAD", "PADV2"):
        pads = np.asarray(values[op.inputs[1]], dtype=np.int64)
        fill = (values[op.inputs[2]].ravel()[0] if op.name == "PADV2" and len(op.inputs) > 2
                else out.zero_point)  # int8 PAD fills with the zero point: real 0
        return (np.pad(x, pads, constant_values=fill).astype(x.dtype),)
    if op.name == "CONCATENATION":
        for i in op.inputs:  # LiteRT refuses int8 inputs on another scale: so do we
            if (float(t[i].scale), int(t[i].zero_point)) != (float(out.scale), int(out.zero_point)):
                raise ValueError(
                    f"CONCATENATION input {t[i].name!r} has scale {t[i].scale} and zero point "
                    f"{t[i].zero_point}, the output {out.scale} and {out.zero_point}: int8 "
                    "concatenation needs them equal (LiteRT's Prepare refuses the model too).")
        joined = np.concatenate([values[i] for i in op.inputs], axis=opts["axis"])
        return (np.clip(joined, *act).astype(joined.dtype),)
    if op.name == "STRIDED_SLICE":
        return (_strided_slice(x, *(np.asarray(values[i]) for i in op.inputs[1:4]), opts),)
    if op.name == "SPLIT_V":
        sizes = np.asarray(values[op.inputs[1]], dtype=np.int64).copy()
        axis = int(np.asarray(values[op.inputs[2]]).ravel()[0]) % x.ndim
        if np.any(sizes < 0):  # one size may be -1: the rest of the axis
            sizes[sizes < 0] = x.shape[axis] - sizes[sizes >= 0].sum()
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))
    if op.name == "PACK":
        return (np.stack([values[i] for i in op.inputs], axis=opts["axis"]),)
    if op.name == "SOFTMAX":
        a = t[op.inputs[0]]
        return (softmax(x, float(a.scale), float(opts.get("beta", 1.0)), float(out.scale),
                        int(out.zero_point)),)
    if op.name == "LOGISTIC":
        a = t[op.inputs[0]]
        return (logistic(x, float(a.scale), int(a.zero_point), float(out.scale),
                         int(out.zero_point)),)
    if op.name == "SHAPE":
        return (np.array(x.shape, dtype=out.dtype),)
    raise NotImplementedError(
        f"{op.name} is not implemented in tl.run_int8_tflite (supported: {', '.join(TFLITE_OPS)})")


def _strided_slice(x, begin, end, strides, opts) -> np.ndarray:
    """TFLite's STRIDED_SLICE for the common masks (begin, end and shrink-axis)."""
    if opts.get("ellipsis_mask") or opts.get("new_axis_mask") or opts.get("offset"):
        raise NotImplementedError("STRIDED_SLICE with an ellipsis, new-axis or offset mask is not "
                                  "implemented in tl.run_int8_tflite.")
    index = []
    for axis in range(x.ndim):
        if axis >= len(begin):
            index.append(slice(None))
            continue
        b = None if opts.get("begin_mask", 0) >> axis & 1 else int(begin[axis])
        e = None if opts.get("end_mask", 0) >> axis & 1 else int(end[axis])
        if opts.get("shrink_axis_mask", 0) >> axis & 1:
            index.append(int(begin[axis]))
        else:
            index.append(slice(b, e, int(strides[axis])))
    return x[tuple(index)]


