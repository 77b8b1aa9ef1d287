"""tutorial_lib.tflite_file: INT4 tensors, packed two per byte, read as LiteRT reads them."""

import numpy as np
import pytest

import tutorial_lib as tl
from tutorial_lib.tflite_file import unpack_int4_buffer


def test_int4_low_nibble_first_and_signed():
    # byte 0x21: low nibble 1 comes first, high nibble 2 second; 0xF8: -8 then -1
    assert unpack_int4_buffer(np.array([0x21, 0xF8], np.uint8), (4,)).tolist() == [1, 2, -8, -1]
    assert unpack_int4_buffer(np.array([0x21, 0xF8], np.uint8), (4,)).dtype == np.int8


def test_int4_odd_count_drops_the_padding_nibble():
    assert unpack_int4_buffer(np.array([0x7F, 0x09], np.uint8), (3,)).tolist() == [-1, 7, -7]


def test_int4_keeps_the_shape_in_c_order():
    q = np.arange(-8, 8, dtype=np.int8).reshape(2, 2, 4)
    packed = tl.packing.pack_int4(q.ravel())
    assert np.array_equal(unpack_int4_buffer(packed, q.shape), q)


def test_int4_buffer_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="takes 2 bytes, but its buffer has 3"):
        unpack_int4_buffer(np.zeros(3, np.uint8), (2, 2))


@pytest.fixture(scope="module")
def int4_model():
    """A small conv + dense model with 4-bit QAT weights, converted: LiteRT stores them as INT4."""
    tf_side = tl.tflite_bridge
    keras = tf_side.tf_keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(8, 8, 1), name="image"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),  # 36 weights
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(3, name="fc")])  # 432 weights
    wrapped = tf_side.prepare_qat(model, weight_bits=4, activation_bits=8)
    x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
    wrapped(x, training=True)  # one step sets the weight and activation ranges
    return tf_side.convert(wrapped, "integer_only"), x


def test_int4_weights_equal_what_litert_reads(int4_model):
    content, _ = int4_model
    graph = tl.tflite_file.read(content)
    int4 = [t for t in graph.tensors if t.type_name == "INT4"]
    assert [t.shape for t in int4] == [(4, 3, 3, 1), (3, 144)]
    interpreter = tl.tflite_bridge.interpreter(content)
    for t in int4:
        assert t.data.dtype == np.int8 and t.data.shape == t.shape
        assert -8 <= t.data.min() and t.data.max() <= 7 and t.data.max() > 1
        assert np.array_equal(interpreter.get_tensor(t.index), t.data)


def test_int4_model_runs_bit_exact_in_the_numpy_executor(int4_model):
    content, x = int4_model
    q = tl.quantize(x, 1 / 255, -128, rounding="half_away").astype(np.int8)
    ours = tl.run_int8_tflite(content, q)
    reference = tl.tflite_bridge.run_tflite(content, q, reference=True)
    assert ours.dtype == np.int8 and np.array_equal(ours, reference)
