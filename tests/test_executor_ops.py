"""Every op of tl.run_int8_tflite against LiteRT's reference kernels, on models built here.

Converted Keras models cover what the converter emits (SOFTMAX, LOGISTIC, PAD, CONCATENATION,
STRIDED_SLICE, SPLIT_V, PACK, QUANTIZE and DEQUANTIZE at float inputs and outputs); one-op
models written by hand (tests/tflite_builder.py) reach the parameters the converter never
picks: requantizing QUANTIZE, PADV2, large MEAN windows, many softmax scales, large FC sums.
Every comparison counts differing elements and expects 0. Nothing is downloaded.
"""

import numpy as np
import pytest

from tutorial_lib import integer, tflite_file

tb = pytest.importorskip("tutorial_lib.tflite_bridge")
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

from tests.tflite_builder import T, single_op_model  # noqa: E402

K = tb.tf_keras
L = K.layers


def _reference(content: bytes, *xs) -> np.ndarray:
    it = tb.interpreter(content, reference=True)
    for detail, x in zip(it.get_input_details(), xs, strict=True):
        it.resize_tensor_input(detail["index"], x.shape)
    it.allocate_tensors()
    for detail, x in zip(it.get_input_details(), xs, strict=True):
        it.set_tensor(detail["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _convert(model, shape, seed, mode="integer_only"):
    rep = np.random.default_rng(seed).normal(0, 1, (64, *shape)).astype(np.float32)
    return tb.convert(model, mode, rep)


@pytest.fixture(scope="module")
def converted():
    K.utils.set_random_seed(0)
    inp = K.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = L.Conv2D(4, 1)(inp)
    c = L.Concatenate()([a, b])
    sliced = L.Lambda(lambda t: t[:, 1:7, ::2, :])(c)
    parts = L.Lambda(lambda t: tb.tf.split(t, [2, 3, 3], axis=-1))(sliced)
    stacked = L.Lambda(lambda ts: tb.tf.stack([ts[0], ts[1][..., :2]], axis=1))(parts)
    movement = K.Model(inp, L.Dense(5)(L.Flatten()(stacked)))
    padded = K.Sequential([L.InputLayer(input_shape=(9, 9, 4)), L.ZeroPadding2D(((1, 2), (0, 1))),
                           L.MaxPooling2D(2), L.Flatten(), L.Dense(6)])
    classifier = K.Sequential([L.InputLayer(input_shape=(16,)), L.Dense(12, activation="relu"),
                               L.Dense(6), L.Softmax()])
    gate = K.Sequential([L.InputLayer(input_shape=(16,)), L.Dense(12, activation="sigmoid"),
                         L.Dense(3)])
    return {"movement": (_convert(movement, (8, 8, 3), 1), (8, 8, 3)),
            "pad": (_convert(padded, (9, 9, 4), 2), (9, 9, 4)),
            "softmax_float_io": (_convert(classifier, (16,), 3, "full_integer"), (16,)),
            "softmax_int8": (_convert(classifier, (16,), 3), (16,)),
            "logistic": (_convert(gate, (16,), 4), (16,))}


@pytest.mark.parametrize("name", ["movement", "pad", "softmax_float_io", "softmax_int8", "logistic"])
def test_converted_models_are_bit_exact(converted, name):
    content, shape = converted[name]
    graph = tflite_file.read(content)
    rng = np.random.default_rng(5)
    if graph.tensors[graph.inputs[0]].dtype == np.float32:
        x = rng.normal(0, 1.5, (300, *shape)).astype(np.float32)
    else:
        x = rng.integers(-128, 128, (300, *shape)).astype(np.int8)
    expected = tb.run_tflite(content, x, reference=True)
    got = integer.run_int8_tflite(content, x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.count_nonzero(got != expected) == 0


def test_converted_models_cover_the_new_ops(converted):
    seen = {op.name for content, _ in converted.values() for op in tflite_file.read(content).operators}
    assert {"SOFTMAX", "LOGISTIC", "PAD", "CONCATENATION", "STRIDED_SLICE", "SPLIT_V", "PACK",
            "QUANTIZE", "DEQUANTIZE"} <= seen


def test_split_v_with_every_output():
    options = schema.SplitVOptionsT()
    options.numSplits = 3
    sizes, axis = np.array([2, 3, -1], np.int32), np.array(1, np.int32)
    x = np.random.default_rng(6).integers(-128, 128, (5, 9, 2)).astype(np.int8)
    content = single_op_model(
        "SPLIT_V", [T(x.shape, np.int8, 0.1, 1), T((3,), np.int32, data=sizes),
                    T((), np.int32, data=axis)],
        [T((5, 2, 2), np.int8, 0.1, 1), T((5, 3, 2), np.int8, 0.1, 1),
         T((5, 4, 2), np.int8, 0.1, 1)], options, "SplitVOptions")
    it = tb.interpreter(content, reference=True)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    _, every = integer.run_int8_tflite(content, x, return_all=True)
    for detail in it.get_output_details():
        np.testing.assert_array_equal(every[detail["index"]], it.get_tensor(detail["index"]))


def test_float_io_returns_float(converted):
    content, shape = converted["softmax_float_io"]
    probabilities = integer.run_int8_tflite(content, np.full((3, *shape), 0.5, np.float32))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=0.03)
    with pytest.raises(ValueError, match="takes float32 input"):
        integer.run_int8_tflite(content, np.zeros((1, *shape), np.int8))


@pytest.mark.parametrize("scale", [0.01, 0.02, 0.07, 0.15, 0.5, 2.0])
def test_softmax_scales(scale):
    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    x = np.random.default_rng(int(scale * 100)).integers(-128, 128, (2000, 10)).astype(np.int8)
    content = single_op_model("SOFTMAX", [T(x.shape, np.int8, scale, -5)],
                              [T(x.shape, np.int8, 1 / 256, -128)], options, "SoftmaxOptions")
    assert np.count_nonzero(integer.run_int8_tflite(content, x) != _reference(content, x)) == 0


@pytest.mark.parametrize("scale, zero_point", [(0.01, 0), (0.03, 7), (0.1, -40), (0.4, 100)])
def test_logistic_every_input_value(scale, zero_point):
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    content = single_op_model("LOGISTIC", [T(x.shape, np.int8, scale, zero_point)],
                              [T(x.shape, np.int8, 1 / 256, -128)])
    np.testing.assert_array_equal(integer.run_int8_tflite(content, x), _reference(content, x))


@pytest.mark.parametrize("scales", [(0.037, 5, 0.011, -20), (0.01, -3, 0.05, 60), (0.2, 0, 0.2, 1)])
def test_quantize_requantizes_int8(scales):
    s_in, z_in, s_out, z_out = scales
    x = np.random.default_rng(1).integers(-128, 128, (4, 500)).astype(np.int8)
    content = single_op_model("QUANTIZE", [T(x.shape, np.int8, s_in, z_in)],
                              [T(x.shape, np.int8, s_out, z_out)])
    assert np.count_nonzero(integer.run_int8_tflite(content, x) != _reference(content, x)) == 0


def test_dequantize():
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    content = single_op_model("DEQUANTIZE", [T(x.shape, np.int8, 0.0123456, -7)],
                              [T(x.shape, np.float32)])
    np.testing.assert_array_equal(integer.run_int8_tflite(content, x), _reference(content, x))


@pytest.mark.parametrize("shape, keep_dims", [((2, 32, 32, 8), False), ((2, 24, 24, 16), True),
                                              ((3, 7, 5, 4), False)])
def test_mean_large_windows(shape, keep_dims):
    options = schema.ReducerOptionsT()
    options.keepDims = keep_dims
    out_shape = (shape[0], 1, 1, shape[3]) if keep_dims else (shape[0], shape[3])
    axes = np.array([1, 2], np.int32)
    content = single_op_model("MEAN", [T(shape, np.int8, 0.05, -3), T((2,), np.int32, data=axes)],
                              [T(out_shape, np.int8, 0.013, 4)], options, "ReducerOptions")
    x = np.random.default_rng(2).integers(-128, 128, shape).astype(np.int8)
    assert np.count_nonzero(integer.run_int8_tflite(content, x) != _reference(content, x)) == 0


@pytest.mark.parametrize("per_channel", [False, True])
def test_fully_connected_with_large_sums(per_channel):
    # M = 0.5 * 0.25 / 1 = 1/8: many sums land on or near a tie, where roundings part ways
    rng = np.random.default_rng(3)
    w = rng.integers(-3, 4, (64, 40)).astype(np.int8)
    bias = rng.integers(-50, 50, 64).astype(np.int32)
    w_tensor = T(w.shape, np.int8, np.full(64, 0.25, np.float32) if per_channel else 0.25, 0,
                 data=w)
    content = single_op_model(
        "FULLY_CONNECTED",
        [T((400, 40), np.int8, 0.5, 3), w_tensor, T((64,), np.int32, 0.125, 0, data=bias)],
        [T((400, 64), np.int8, 1.0, -2)])
    x = rng.integers(-20, 20, (400, 40)).astype(np.int8)
    expected = _reference(content, x)
    assert np.count_nonzero(integer.run_int8_tflite(content, x) != expected) == 0
    # the test has teeth: the convolutions' fixed-point requantization differs here
    acc = integer.fully_connected_acc(x, 3, w, bias)
    m0, shift = integer.quantize_multiplier(0.125)
    assert np.count_nonzero(integer.requantize(acc, m0, shift, -2) != expected) > 0
    assert np.size(tflite_file.read(content).tensors[1].scale) == (64 if per_channel else 1)


def test_padv2_fills_with_its_constant():
    pads = np.array([[0, 0], [1, 2], [2, 0]], np.int32)
    content = single_op_model(
        "PADV2", [T((3, 4, 5), np.int8, 0.1, 2), T((3, 2), np.int32, data=pads),
                  T((1,), np.int8, 0.1, 2, data=np.array([-9], np.int8))],
        [T((3, 7, 7), np.int8, 0.1, 2)])
    x = np.random.default_rng(4).integers(-128, 128, (3, 4, 5)).astype(np.int8)
    np.testing.assert_array_equal(integer.run_int8_tflite(content, x), _reference(content, x))


def test_concatenation_on_another_scale_is_refused_as_litert_does():
    options = schema.ConcatenationOptionsT()
    options.axis = 1
    content = single_op_model("CONCATENATION", [T((4, 3), np.int8, 0.05, 3),
                                                T((4, 2), np.int8, 0.02, -7)],
                              [T((4, 5), np.int8, 0.04, 1)], options, "ConcatenationOptions")
    with pytest.raises(RuntimeError, match="scale"):
        _reference(content, np.zeros((4, 3), np.int8), np.zeros((4, 2), np.int8))
    with pytest.raises(ValueError, match="needs them equal"):
        integer.run_int8_tflite(content, [np.zeros((4, 3), np.int8), np.zeros((4, 2), np.int8)])


def test_every_unsupported_op_is_named_before_running():
    content = single_op_model("TANH", [T((1, 4), np.int8, 0.1, 0)], [T((1, 4), np.int8, 1 / 128, 0)])
    with pytest.raises(NotImplementedError, match="TANH is not implemented"):
        integer.run_int8_tflite(content, np.zeros((1, 4), np.int8))


def test_op_table_in_the_docs_lists_every_op():
    for op in integer.TFLITE_OPS:
        assert op in integer.__doc__, op


def test_a_real_streaming_keyword_spotter_frame_by_frame():
    # microWakeWord's int8 "Alexa" model (tutorial_lib/third_party/microwakeword): resource
    # variables, CALL_ONCE, CONCATENATION, STRIDED_SLICE, depthwise convs, LOGISTIC, uint8 out.
    from tutorial_lib import models

    content = models.keyword_spotter()
    graph = tflite_file.read(content)
    assert {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "LOGISTIC"} <= {
        op.name for op in graph.operators}
    it = tb.interpreter(content, reference=True, keep_intermediates=True)
    detail = it.get_input_details()[0]
    session = integer.Int8Session(content)
    rng = np.random.default_rng(0)
    frames = [rng.integers(-128, 128, detail["shape"]).astype(np.int8) for _ in range(12)]
    frames += [np.clip(np.cumsum(rng.integers(-20, 21, detail["shape"]), axis=-1), -128, 127)
               .astype(np.int8) for _ in range(12)]
    compared = 0
    for frame in frames:
        it.set_tensor(detail["index"], frame)
        it.invoke()
        _, values = session(frame, return_all=True)
        for op in graph.operators:
            for i in op.outputs:
                if isinstance(values.get(i), np.ndarray) and values[i].dtype != object:
                    np.testing.assert_array_equal(values[i], it.get_tensor(i), err_msg=op.name)
                    compared += values[i].size
    assert compared > 200_000
    # The state matters: the last frame alone, from a fresh state, gives other activations.
    _, fresh = integer.Int8Session(content)(frames[-1], return_all=True)
    assert any(np.any(fresh[i] != values[i]) for op in graph.operators for i in op.outputs
               if isinstance(values.get(i), np.ndarray) and values[i].dtype != object)
    session.reset()
    assert session.variables == {}
    # run_int8_tflite runs one call from the initial state
    np.testing.assert_array_equal(integer.run_int8_tflite(content, frames[-1]),
                                  integer.Int8Session(content)(frames[-1]))
