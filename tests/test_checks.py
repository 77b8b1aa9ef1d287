"""The exercise checkers: the library's answers pass, the classic mistakes fail with a report."""

import math

import numpy as np
import pytest

import tutorial_lib as tl
from tutorial_lib import checks


def fp16_below(x):
    h = np.float16(np.clip(x, -65504, 65504))
    if float(h) > x:
        h = np.nextafter(h, np.float16(-np.inf))
    return float(h)


def symmetric_scales(w, axis):
    w = np.moveaxis(np.asarray(w), axis, 0).reshape(np.shape(w)[axis], -1)
    m = np.abs(w).max(axis=1)
    return tl.choose_qparams(-m, m, -127, 127, symmetric=True).scale


def requantize_single(acc, m0, shift, zero_point):
    out = tl.integer.multiply_by_quantized_multiplier(acc, m0, shift, "single") + zero_point
    return np.clip(out, -128, 127).astype(np.int8)


def int8_linear(x_q, x_zero_point, w_q, bias_q, m0, shift, y_zero_point):
    return tl.integer.fully_connected(x_q, x_zero_point, w_q, bias_q, m0, shift, y_zero_point)


REFERENCES = {
    "fp32_fields": lambda x: tuple(int(v) for v in tl.formats.fields(x)),
    "fp32_value": tl.formats.compose,
    "fp16_below": fp16_below,
    "model_bytes": tl.metrics.size_bytes,
    "choose_qparams": lambda *a: tuple(tl.choose_qparams(*a)),
    "quantize": tl.quantize,
    "dequantize": tl.dequantize,
    "sqnr_db": tl.metrics.sqnr_db,
    "symmetric_scales": symmetric_scales,
    "quantize_multiplier": tl.integer.quantize_multiplier,
    "requantize": requantize_single,
    "quantize_bias": lambda b, sx, sw: np.round(b / (sx * np.asarray(sw))).astype(np.int32),
    "int8_linear": int8_linear,
    "fold_batchnorm": lambda w, b, g, beta, m, v, eps: tl.integer.fold_batchnorm(w, b, g, beta, m, v, eps),
}

# The seed's bugs and other classic mistakes, each of which a checker must catch.
MISTAKES = {
    "fp32_fields": lambda x: (0 if x >= 0 else 1, 0, 0),
    "fp32_value": lambda s, e, m: (-1) ** s * 2.0 ** (e - 127) * (1 + m / 2**23),  # no subnormals
    "fp16_below": lambda x: float(np.float16(x)),  # nearest, not below
    "model_bytes": lambda n, fmt: n * tl.metrics.BITS[fmt] // 8,  # floor, not ceil
    "choose_qparams": lambda lo, hi, qmin, qmax: (
        (hi - lo) / (qmax - qmin), int(qmin - lo / ((hi - lo) / (qmax - qmin)))),
    "quantize": lambda x, s, z, qmin, qmax: (x / s + z).astype(np.int8),
    "dequantize": lambda q, s, z: (q - z) * s,
    "sqnr_db": lambda x, x_hat: 20 * math.log10(np.sum(x**2) / np.sum((x - x_hat) ** 2)),
    "symmetric_scales": lambda w, axis: np.abs(w).max(axis=axis) / 127,
    "quantize_multiplier": lambda r: (int(math.frexp(r)[0] * 2**31), math.frexp(r)[1]),  # truncates
    "requantize": lambda acc, m0, shift, zp: (acc * m0 / 2.0 ** (31 - shift) + zp).astype(np.int8),
    "quantize_bias": lambda b, sx, sw: np.round(b / np.asarray(sw)).astype(np.int32),
    "int8_linear": lambda x, zx, w, b, m0, s, zy: requantize_single(
        (x - np.int8(zx)).astype(np.int64) @ w.T.astype(np.int64) + b, m0, s, zy),  # int8 wrap
    "fold_batchnorm": lambda w, b, g, beta, m, v, eps: (
        w * (g / (v + eps))[:, None], (b - m) * g / (v + eps) + beta),
}


def checker(name):
    return getattr(checks, f"check_{name}")


@pytest.mark.parametrize("name", REFERENCES)
def test_reference_passes(name, capsys):
    result = checker(name)(REFERENCES[name])
    out = capsys.readouterr().out
    assert result and out.startswith(f"✓ {name}: ") and out.count("\n") == 1


@pytest.mark.parametrize("name", MISTAKES)
def test_mistake_fails_with_report(name, capsys):
    result = checker(name)(MISTAKES[name])
    out = capsys.readouterr().out
    assert not result
    assert out.startswith(f"✗ {name}: ")
    for part in ("first wrong case", "input:", "expected:", "actual:", "hint:"):
        assert part in out
    assert "Traceback" not in out


def test_every_checker_is_tested():
    names = {n[len("check_"):] for n in checks.__all__ if n.startswith("check_")}
    assert names == set(REFERENCES) == set(MISTAKES)


def test_not_implemented(capsys):
    def todo(*args):
        raise NotImplementedError("write me")

    result = checks.check_quantize(todo)
    assert not result and not result.implemented
    assert "not implemented yet" in capsys.readouterr().out


def test_exception_is_reported_not_raised(capsys):
    result = checks.check_dequantize(lambda q, s, z: 1 / 0)
    out = capsys.readouterr().out
    assert not result and "raised ZeroDivisionError" in out and "Traceback" not in out


def test_wrong_shape_is_a_failure(capsys):
    assert not checks.check_quantize(lambda x, *a: np.zeros(1, np.int8))
    capsys.readouterr()
