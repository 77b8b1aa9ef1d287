"""Integer-only inference against TFLite: fixed-point helpers and whole models, bit for bit.

References:
- TFLite's QuantizeMultiplier golden values (tensorflow/lite/kernels/internal/
  quantization_util_test.cc).
- gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, as exact rational
  arithmetic (round half up, and round half away from zero).
- LiteRT 2.3 run with OpResolverType.BUILTIN_REF on three small models converted here.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tutorial_lib as tl
from tutorial_lib import integer

int32s = st.integers(-(2**31), 2**31 - 1)


@pytest.mark.parametrize("real, expected", [
    (0.0, (0, 0)), (0.125, (1073741824, -2)), (0.25, (1073741824, -1)),
    (0.5, (1073741824, 0)), (0.75, (1610612736, 0)), (1 - 1e-9, (2147483646, 0)),
    (1.0, (1073741824, 1)), (2.0, (1073741824, 2)), (4.0, (1073741824, 3)),
    (2 - 1e-11, (1073741824, 2)),  # rounding reaches 2**31: renormalized
    (math.ldexp(1.0, -31), (1073741824, -30)), (math.ldexp(1.0, -32), (1073741824, -31)),
    (math.ldexp(1.0, -33), (0, 0)), (math.ldexp(1.0, -34), (0, 0)),  # flushed to zero
])
def test_quantize_multiplier_golden(real, expected):
    assert integer.quantize_multiplier(real) == expected


@settings(max_examples=500, deadline=None)
@given(st.floats(1e-9, 1e3, allow_nan=False))
def test_quantize_multiplier_is_nearest(real):
    m0, shift = integer.quantize_multiplier(real)
    assert 2**30 <= m0 < 2**31
    assert abs(Fraction(real) - Fraction(m0) * Fraction(2) ** (shift - 31)) <= Fraction(2) ** (shift - 32)


def test_quantize_multiplier_bad_input():
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite and >= 0"):
            integer.quantize_multiplier(bad)


@settings(max_examples=500, deadline=None)
@given(int32s, int32s)
def test_srdhm_rounds_half_up(a, b):
    got = int(integer.saturating_rounding_doubling_high_mul(a, b))
    if a == b == -(2**31):
        assert got == 2**31 - 1  # the one product that does not fit: saturated
    else:
        assert got == math.floor(Fraction(a * b, 2**31) + Fraction(1, 2))


@settings(max_examples=500, deadline=None)
@given(int32s, st.integers(0, 31))
def test_rounding_divide_by_pot_rounds_half_away(x, exponent):
    exact = Fraction(x, 2**exponent)
    expected = math.floor(abs(exact) + Fraction(1, 2)) * (1 if x >= 0 else -1)
    assert int(integer.rounding_divide_by_pot(x, exponent)) == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**24), 2**24), st.floats(1e-6, 0.99))
def test_single_and_double_rounding_agree_within_one(x, real):
    m0, shift = integer.quantize_multiplier(real)
    double = int(integer.multiply_by_quantized_multiplier(x, m0, shift, "double"))
    single = int(integer.multiply_by_quantized_multiplier(x, m0, shift, "single"))
    assert abs(double - single) <= 1
    assert abs(single - x * real) <= 0.5 + abs(x) * 2**-30


def test_fold_batchnorm_matches_float_layers():
    rng = np.random.default_rng(0)
    w, b, x = rng.normal(size=(4, 6)), rng.normal(size=4), rng.normal(size=(10, 6))
    gamma, beta, mean = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    var = rng.uniform(0.5, 2, size=4)
    y_bn = ((x @ w.T + b) - mean) / np.sqrt(var + 1e-5) * gamma + beta
    w_f, b_f = integer.fold_batchnorm(w, b, gamma, beta, mean, var)
    np.testing.assert_allclose(x @ w_f.T + b_f, y_bn, rtol=1e-12)


def test_activation_range():
    assert integer.activation_range("NONE", 0.1, 3) == (-128, 127)
    assert integer.activation_range("RELU", 0.1, 3) == (3, 127)
    assert integer.activation_range("RELU6", 0.1, -128) == (-128, -68)
    with pytest.raises(NotImplementedError, match="TANH"):
        integer.activation_range("TANH", 0.1, 0)


# ---------------------------------------------------------------- whole models vs LiteRT

tb = pytest.importorskip("tutorial_lib.tflite_bridge")
K = tb.tf_keras


def _convert(model, input_shape, seed):
    rep = np.random.default_rng(seed).normal(0, 1, (64, *input_shape)).astype(np.float32)
    return tb.convert(model, "integer_only", rep)


@pytest.fixture(scope="module")
def models():
    K.utils.set_random_seed(0)
    L = K.layers
    mlp = K.Sequential([L.InputLayer(input_shape=(64,)), L.Dense(48, activation="relu"),
                        L.Dense(10)])
    cnn = K.Sequential([
        L.InputLayer(input_shape=(16, 16, 3)),
        L.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        L.AveragePooling2D(2, padding="same"),
        L.Conv2D(8, 1, padding="valid", dilation_rate=1),
        L.MaxPooling2D(3, strides=1, padding="same"),
        L.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu6"),
        L.Flatten(),
        L.Dense(5),
    ])
    inp = K.Input((8, 8, 4))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = L.Conv2D(4, 3, padding="same")(a)
    res = L.ReLU()(L.Add()([a, b]))
    out = L.Dense(3)(L.Flatten()(res))
    residual = K.Model(inp, out)
    conv = K.Sequential([
        L.InputLayer(input_shape=(12, 12, 8)),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(16, 3, padding="same"),
        L.Flatten(),
        L.Dense(10),
    ])
    gap = K.Sequential([
        L.InputLayer(input_shape=(6, 6, 8)),
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.GlobalAveragePooling2D(),
        L.Dense(4),
    ])
    return {"mlp": (_convert(mlp, (64,), 1), (64,)),
            "global_average_pool": (_convert(gap, (6, 6, 8), 7), (6, 6, 8)),
            "conv_maxpool": (_convert(conv, (12, 12, 8), 6), (12, 12, 8)),
            "cnn_depthwise_pool": (_convert(cnn, (16, 16, 3), 2), (16, 16, 3)),
            "residual_add": (_convert(residual, (8, 8, 4), 3), (8, 8, 4))}


@pytest.mark.parametrize("name", ["mlp", "cnn_depthwise_pool", "residual_add",
                                  "global_average_pool"])
def test_run_int8_tflite_is_bit_exact(models, name):
    content, shape = models[name]
    rng = np.random.default_rng(4)
    x_q = rng.integers(-128, 128, (300, *shape)).astype(np.int8)
    ref_interp = tb.interpreter(content, reference=True, keep_intermediates=True)
    expected = tb.run_tflite(ref_interp, x_q)
    got, every = integer.run_int8_tflite(content, x_q, return_all=True)
    assert got.dtype == np.int8 and got.shape == expected.shape
    assert np.count_nonzero(got != expected) == 0, name
    # every intermediate tensor too, so a mismatch points at the op that made it
    for index, value in every.items():
        if value.dtype == np.int8 and value.shape[0] == len(x_q):
            np.testing.assert_array_equal(value, ref_interp.get_tensor(index), err_msg=str(index))


def test_models_cover_the_ops(models):
    from tutorial_lib import tflite_file
    seen = set()
    for content, _ in models.values():
        seen |= {op.name for op in tflite_file.read(content).operators}
    assert {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
            "ADD", "RESHAPE", "MEAN"} <= seen


def test_unsupported_op_is_named():
    K.utils.set_random_seed(0)
    model = K.Sequential([K.layers.InputLayer(input_shape=(8,)), K.layers.Dense(4),
                          K.layers.Activation("tanh")])
    content = _convert(model, (8,), 5)
    with pytest.raises(NotImplementedError, match="TANH"):
        integer.run_int8_tflite(content, np.zeros((1, 8), np.int8))


def test_float_model_is_refused():
    model = K.Sequential([K.layers.InputLayer(input_shape=(8,)), K.layers.Dense(4)])
    content = tb.convert(model, "float")
    with pytest.raises(ValueError, match="not a full-integer model"):
        integer.run_int8_tflite(content, np.zeros((1, 8), np.int8))
    with pytest.raises(ValueError, match="not a .tflite"):
        integer.run_int8_tflite(b"not a model", np.zeros((1, 8), np.int8))


def test_float_input_data_is_refused(models):
    content, shape = models["mlp"]
    with pytest.raises(ValueError, match="takes int8 input"):
        integer.run_int8_tflite(content, np.zeros((1, *shape), np.float32))


@pytest.mark.parametrize("name", ["mlp", "conv_maxpool"])
def test_xnnpack_requantization_is_reproduced(models, name):
    # XNNPACK requantizes conv and FC in float32 (scale S_x S_w / S_y, round half to even);
    # max pooling and reshape are exact in both. (Its int8 average pooling and add use their
    # own arithmetic, which the course does not emulate.)
    content, shape = models[name]
    x_q = np.random.default_rng(6).integers(-128, 128, (300, *shape)).astype(np.int8)
    expected = tb.run_tflite(content, x_q)  # default resolver: XNNPACK delegate
    reference = tb.run_tflite(content, x_q, reference=True)
    got = integer.run_int8_tflite(content, x_q, requantization="xnnpack")
    np.testing.assert_array_equal(got, expected)
    if name == "conv_maxpool":
        assert np.count_nonzero(reference != expected) > 0  # the difference is real


def test_half_away_quantize_matches_tflite_quantize_op():
    # A float-input model starts with TFLite's QUANTIZE op: round(x / scale) half away from zero.
    K.utils.set_random_seed(0)
    model = K.Sequential([K.layers.InputLayer(input_shape=(1000,)), K.layers.Dense(2)])
    content = tb.convert(model, "full_integer",
                         np.random.default_rng(8).normal(0, 1, (16, 1000)).astype(np.float32))
    it = tb.interpreter(content, reference=True, keep_intermediates=True)
    quantize_op = next(op for op in it._get_ops_details() if op["op_name"] == "QUANTIZE")
    out_index = int(quantize_op["outputs"][0])
    detail = next(d for d in it.get_tensor_details() if d["index"] == out_index)
    scale, zero_point = detail["quantization"]
    rng = np.random.default_rng(9)
    ties = (rng.integers(-120, 120, 500) + 0.5).astype(np.float32) * np.float32(scale)
    x = np.concatenate([ties, rng.normal(0, 2, 500).astype(np.float32)])[None]
    tb.run_tflite(it, x)
    expected = it.get_tensor(out_index)
    got = tl.quantize(x, scale, zero_point, rounding="half_away")
    np.testing.assert_array_equal(got, expected)
    assert np.any(got != tl.quantize(x, scale, zero_point, rounding="half_even"))  # ties matter
