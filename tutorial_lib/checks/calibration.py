"""Checkers for lesson 03's exercises (granularity and calibration): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tutorial_lib.checks.runner import Case, CheckResult, _learner, _wraps_learner, run_checks

__all__ = ["check_per_channel_qparams", "check_percentile_observer",
    "check_groupwise_fake_quantize", "check_pack_int4", "check_unpack_int4",
    "check_symmetric_scales"]


def check_per_channel_qparams(fn: Callable[..., tuple[np.ndarray, np.ndarray]]) -> CheckResult:
    """``fn(w, axis, quant_min, quant_max) -> (scales, zero_points)``: asymmetric min-max per channel."""
    eps = float(np.finfo(np.float32).eps)
    a = np.array
    w2 = a([[1.0, -2.0], [0.5, 0.25]], np.float32)
    conv = ((np.arange(16, dtype=np.float32) - 6) / 4).reshape(2, 2, 2, 2)
    cases = [
        Case((w2, 0, -128, 127), (a([3 / 255, 0.5 / 255]), a([42, -128])),
             "rows (axis 0): row 0 spans [-2, 1], row 1 [0, 0.5] once widened to include 0"),
        Case((w2, 1, -128, 127), (a([1 / 255, 2.25 / 255]), a([-128, 99])),
             "columns (axis 1)",
             "reduce over every axis except `axis`: move `axis` to the front "
             "(np.moveaxis) and flatten the rest, then take min and max of each row."),
        Case((conv, 0, -128, 127), (a([1.75 / 255, 2.25 / 255]), a([91, -128])),
             "a conv weight (out, in, kh, kw): one scale per output channel"),
        Case((conv, -1, -128, 127), (a([3.5 / 255, 3.5 / 255]), a([-19, -37])),
             "Keras layout, output channels last (axis=-1)"),
        Case((a([[0.3, -0.9, 0.6], [2.0, 1.0, 0.5]], np.float32), 0, 0, 255),
             (a([1.5 / 255, 2.0 / 255]), a([153, 0])), "uint8; an all-positive channel",
             "widen each channel's range to include 0 before computing its scale."),
        Case((a([[-1.5, 0.5], [0.2, -0.1]], np.float32), 0, -8, 7),
             (a([2.0 / 15, 0.3 / 15]), a([3, -3])),
             "4-bit: -1.5 / scale = -11.25 rounds to -11",
             "zero_point = quant_min - round(min / scale); int() would truncate differently "
             "for negative fractions."),
        Case((a([[0.0, 0.0], [1.0, -0.5]], np.float32), 0, -128, 127),
             (a([eps, 1.5 / 255]), a([-128, -43])), "a dead channel of zeros: scale floored at eps",
             "a channel with max == min would get scale 0: use np.maximum(scale, "
             "np.finfo(np.float32).eps)."),
        Case((a([[1.0, 3.0], [2.0, -6.0]], np.float32), 1, -128, 127),
             (a([2.0 / 255, 9.0 / 255]), a([-128, 42])), "columns again, one of them all positive"),
    ]
    return run_checks("per_channel_qparams", fn, cases, rtol=1e-6,
                      arg_names=["w", "axis", "quant_min", "quant_max"], hint=(
        "for each index along `axis`: min_val = min(channel min, 0), max_val = max(channel "
        "max, 0), scale = max((max_val - min_val) / (quant_max - quant_min), eps), "
        "zero_point = clip(quant_min - round(min_val / scale), quant_min, quant_max)."))


def check_percentile_observer(cls: Callable[[float], Any]) -> CheckResult:
    """``cls(percentile)`` with ``observe(x)`` and ``clipping_range() -> (min_val, max_val)``."""
    a = np.array

    learner = _learner(lambda f, *args: f(*args))  # every call into the learner's class

    @_wraps_learner
    def run(batches, percentile):
        obs = learner(cls, percentile)
        for b in batches:
            learner(obs.observe, b.copy())
        return learner(obs.clipping_range)

    ramp = np.arange(101, dtype=np.float32)
    rng = np.random.default_rng(3)
    normal = [rng.normal(0, 1, (8, 50)).astype(np.float32) for _ in range(3)]
    everything = np.concatenate([b.ravel() for b in normal]).astype(np.float64)
    spiky = np.concatenate([np.linspace(0, 1, 1000), [1000.0]]).astype(np.float32)
    cases = [
        Case(((ramp,), 99.0), (1.0, 99.0), "0, 1, ..., 100: the 1st and 99th percentiles",
             "lo = np.percentile(x, 100 - p), hi = np.percentile(x, p): p is in percent."),
        Case(((ramp[:51], ramp[51:]), 99.0), (1.0, 99.0),
             "the same values in two batches: the range uses every batch",
             "keep every batch (append to a list) and take the percentiles of all of them "
             "together, not of the last batch or an average of per-batch percentiles."),
        Case(((a([0.0, 10.0], np.float32),), 75.0), (2.5, 7.5),
             "between two values percentiles interpolate linearly (np.percentile's default)"),
        Case(((a([-3.0, 5.0], np.float32), a([2.0, 9.0], np.float32)), 100.0), (-3.0, 9.0),
             "percentile 100 is the min-max range"),
        Case(((spiky,), 99.9), (float(np.percentile(spiky.astype(np.float64), 0.1)),
                                float(np.percentile(spiky.astype(np.float64), 99.9))),
             "one huge outlier is clipped: hi stays near 1, far below 1000"),
        Case((tuple(normal), 99.0), (float(np.percentile(everything, 1.0)),
                                     float(np.percentile(everything, 99.0))),
             "three 2-D batches of normal data: flatten them, keep them all",
             "a batch may have any shape: np.ravel it before you keep it."),
    ]
    return run_checks("percentile_observer", run, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["batches", "percentile"], hint=(
        "observe(x) appends np.ravel(x) to a list; clipping_range() concatenates the list and "
        "returns (np.percentile(v, 100 - p), np.percentile(v, p))."))


def check_groupwise_fake_quantize(fn: Callable[[np.ndarray, int, int], np.ndarray]) -> CheckResult:
    """``fn(w, group_size, bits) -> w_hat``: symmetric narrow-range fake quantization per group."""
    a = np.array
    # Values placed between grid points (never near a .5 tie), so float32 and float64 agree.
    row = a([[0.7, -0.32, 0.11, 0.0]], np.float32)  # one group of 4, scale 0.1 at 4 bits
    two = a([[0.7, -0.32, 0.11, 0.0, 7.0, 2.2, -0.9, 4.1]], np.float32)  # scales 0.1 and 1.0
    cases = [
        Case((row, 4, 4), a([[0.7, -0.3, 0.1, 0.0]]),
             "one group: scale = 0.7 / 7, values snap to multiples of 0.1"),
        Case((two, 4, 4), a([[0.7, -0.3, 0.1, 0.0, 7.0, 2.0, -1.0, 4.0]]),
             "two groups, scales 0.1 and 1.0: the large group does not swamp the small one",
             "one scale per group of `group_size` consecutive values along the last axis: "
             "reshape to (-1, group_size), not one scale per row."),
        Case((two, 8, 4), a([[1.0, 0.0, 0.0, 0.0, 7.0, 2.0, -1.0, 4.0]]),
             "group_size = row length: one scale for the row, small values are lost"),
        Case((two.reshape(2, 4), 2, 4), a([[0.7, -0.3, 0.11, 0.0], [7.0, 2.0, -2 * 4.1 / 7, 4.1]]),
             "two rows, groups of 2: each pair has its own scale (4.1 / 7 for the last)",
             "groups run along the last axis of each row: w.reshape(-1, group_size) keeps that "
             "order; transposing first would group values from different rows."),
        Case((a([[0.0, 0.0, 1.4, -0.6]], np.float32), 2, 4), a([[0.0, 0.0, 1.4, -0.6]]),
             "an all-zero group stays zero (scale floored at eps, no NaN)",
             "max |w| of a group of zeros is 0: floor the scale at np.finfo(np.float32).eps "
             "before dividing."),
        Case((a([[0.3, -1.7, 2.9, -0.05]], np.float32), 1, 4), a([[0.3, -1.7, 2.9, -0.05]]),
             "groups of one value: every value is its group's maximum, so it is exact"),
        Case((a([[1.27, -0.634, 0.0049, 0.5]], np.float32), 4, 8),
             a([[1.27, -0.63, 0.0, 0.5]]), "8 bits: narrow range [-127, 127], scale 0.01",
             "the narrow range of b bits is [-(2**(b-1) - 1), 2**(b-1) - 1]: 7 for 4 bits, 127 "
             "for 8 bits; dividing by 8 or 128 clips the largest value."),
        Case((a([[0.9, -0.2, -0.6, 0.3]], np.float32), 4, 2), a([[0.9, 0.0, -0.9, 0.0]]),
             "2 bits: levels -1, 0, 1 times the largest |w|"),
    ]
    return run_checks("groupwise_fake_quantize", fn, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["w", "group_size", "bits"], hint=(
        "g = w.reshape(-1, group_size); qmax = 2**(bits-1) - 1; scale = max(max|g| per row / "
        "qmax, eps); w_hat = clip(round(g / scale), -qmax, qmax) * scale, reshaped to w.shape."))


def check_pack_int4(fn: Callable[[np.ndarray], np.ndarray]) -> CheckResult:
    """``fn(q) -> uint8 array``: signed 4-bit values two per byte, low nibble first."""
    a = np.array
    cases = [
        Case((a([1, 2], np.int8),), a([0x21]), "first value in the low nibble: 0x21 = 33",
             "byte = (q[0] & 0xF) | (q[1] & 0xF) << 4: the first value goes in bits 0-3."),
        Case((a([-1, 0], np.int8),), a([0x0F]), "-1 is 1111 in 4-bit two's complement",
             "mask with & 0xF before shifting: -1 & 0xF = 15, while -1 << 4 stays negative."),
        Case((a([0, -1], np.int8),), a([0xF0]), "a negative value in the high nibble",
             "compute in a wide type (int32), mask each value with & 0xF, then cast to uint8."),
        Case((a([-8, 7], np.int8),), a([0x78]), "the two ends of the int4 range"),
        Case((a([7, -8], np.int8),), a([0x87]), "the same values, swapped"),
        Case((a([3], np.int8),), a([0x03]), "an odd count: the last byte's high nibble is 0",
             "pad an odd-length array with one 0 before pairing the values."),
        Case((a([1, 2, 3], np.int8),), a([0x21, 0x03]), "three values take two bytes"),
        Case((np.arange(-8, 8, dtype=np.int8),),
             a([0x98, 0xBA, 0xDC, 0xFE, 0x10, 0x32, 0x54, 0x76]), "every int4 value once"),
    ]
    return run_checks("pack_int4", fn, cases, arg_names=["q"], dtype=np.uint8, dtype_hint=(
        "the bytes are right; store them as bytes: .astype(np.uint8) at the end."), hint=(
        "v = q.astype(np.int32) & 0xF, padded to an even length; "
        "packed = (v[0::2] | (v[1::2] << 4)).astype(np.uint8)."))


def check_unpack_int4(fn: Callable[[np.ndarray, int], np.ndarray]) -> CheckResult:
    """``fn(packed, n) -> int array``: the ``n`` signed 4-bit values, low nibble first."""
    a = np.array
    u8 = np.uint8
    cases = [
        Case((a([0x21], u8), 2), a([1, 2]), "low nibble first: 0x21 holds 1, then 2",
             "the first value is packed & 0xF, the second (packed >> 4) & 0xF."),
        Case((a([0x0F], u8), 2), a([-1, 0]), "1111 is -1: sign-extend the nibble",
             "a nibble v >= 8 stands for v - 16 (two's complement): (v ^ 8) - 8 does it."),
        Case((a([0x78], u8), 2), a([-8, 7]), "the two ends of the int4 range"),
        Case((a([0x80], u8), 2), a([0, -8]), "1000 is -8, the most negative value"),
        Case((a([0x03], u8), 1), a([3]), "n = 1: drop the padding nibble",
             "unpack both nibbles of every byte, then keep the first n values."),
        Case((a([0x21, 0x03], u8), 3), a([1, 2, 3]), "three values from two bytes"),
        Case((a([0xFF, 0xEE], u8), 4), a([-1, -1, -2, -2]), "all negative"),
        Case((a([0x98, 0xBA, 0xDC, 0xFE, 0x10, 0x32, 0x54, 0x76], u8), 16),
             np.arange(-8, 8), "every int4 value once"),
    ]
    return run_checks("unpack_int4", fn, cases, arg_names=["packed", "n"], dtype=np.integer,
                      dtype_hint="return integers: .astype(np.int8).", hint=(
        "v = np.stack([packed & 0xF, packed >> 4], axis=1).ravel().astype(np.int8)[:n]; "
        "return (v ^ 8) - 8."))


def check_symmetric_scales(fn: Callable[[np.ndarray, int], np.ndarray]) -> CheckResult:
    """``fn(w, axis) -> scales``: symmetric int8 narrow-range scale per slice along ``axis``."""
    eps = float(np.finfo(np.float32).eps)
    w2 = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    conv = np.arange(-8, 8, dtype=np.float32).reshape(2, 2, 2, 2) / 4
    cases = [
        Case((w2, 0), np.array([2 / 127, 0.5 / 127]), "rows (axis 0): largest |w| per row"),
        Case((w2, 1), np.array([1 / 127, 2 / 127]), "columns (axis 1)",
             "reduce over every axis except `axis`: np.max(np.abs(w), axis=other_axes)."),
        Case((conv, 0), np.array([2 / 127, 1.75 / 127]), "a conv weight, output channels first"),
        Case((conv, -1), np.array([2 / 127, 1.75 / 127]), "Keras layout, output channels last"),
        Case((np.zeros((2, 3), np.float32), 0), np.array([eps, eps]),
             "all-zero channels: scale floored at eps"),
        Case((np.array([[-3.0, 1.0]], np.float32), 0), np.array([3 / 127]),
             "a negative value can be the largest in magnitude"),
    ]
    return run_checks("symmetric_scales", fn, cases, rtol=1e-6, arg_names=["w", "axis"], hint=(
        "scale = max(|w| over the channel) / 127 (int8 narrow range [-127, 127]), floored at "
        "np.finfo(np.float32).eps; one scale per index along `axis`."))
