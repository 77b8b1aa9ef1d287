"""TFLite conversion, the LiteRT runner and the measuring helpers, on a tiny model.

References are independent of the helpers under test: Keras' own forward pass for what the
converted models compute, ``TFLiteConverter.from_keras_model`` for the faster converter route,
the file's raw parameters read with ``tl.tflite_file`` and hand-written rounding for the int8
input, and ``len(bytes)`` for the file size. The Keras-3 guard is tested in test_models.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tutorial_lib as tl

tb = pytest.importorskip("tutorial_lib.tflite_bridge")
K = tb.tf_keras
REPO = Path(__file__).resolve().parents[1]


def tiny_model():
    K.utils.set_random_seed(0)
    L = K.layers
    return K.Sequential([
        L.InputLayer(input_shape=(8, 8, 1), name="image"),
        L.Conv2D(8, 3, padding="same", name="conv"),
        L.BatchNormalization(name="bn"),
        L.ReLU(name="relu"),
        L.MaxPooling2D(2, name="pool"),
        L.Flatten(name="flatten"),
        L.Dense(16, activation="relu", name="hidden"),  # 128 x 16 weights: over 1024
        L.Dense(3, name="dense"),
    ], name="tiny")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (96, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    y[::3] = 2
    return tl.data.Dataset(x[:64], y[:64], x[64:], y[64:])


@pytest.fixture(scope="module")
def model(data):
    return tb.train_keras(tiny_model(), data, epochs=2)


@pytest.fixture(scope="module")
def converted(model, data):
    return {mode: tb.convert(model, mode, data.x_train) for mode in tb.MODES}


# ---------------------------------------------------------------- conversion

def test_fast_route_gives_the_converters_file(model, data):
    """Tracing the call instead of saving a SavedModel: the same file but one metadata byte."""
    for mode in ("float", "integer_only"):
        ours = tb.convert(model, mode, data.x_train)
        converter = tb.tf.lite.TFLiteConverter.from_keras_model(model)
        if mode == "integer_only":
            samples = data.x_train[:100]
            converter.optimizations = [tb.tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda s=samples: ([x[None]] for x in s)
            converter.target_spec.supported_ops = [tb.tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tb.tf.int8
        reference = tb.run_converter(converter)
        assert len(ours) == len(reference)
        differing = np.flatnonzero(np.frombuffer(ours, np.uint8) != np.frombuffer(reference, np.uint8))
        assert len(differing) <= 1, mode


@pytest.mark.parametrize("mode, input_dtype, weight_dtype", [
    ("float", "float32", "float32"), ("dynamic_range", "float32", "int8"),
    ("full_integer", "float32", "int8"), ("integer_only", "int8", "int8"),
    ("float16", "float32", "float16")])
def test_every_mode_stores_what_it_says(converted, mode, input_dtype, weight_dtype):
    rows = tb.tensor_table(converted[mode])
    inputs = [r for r in rows if r["kind"] == "input"]
    outputs = [r for r in rows if r["kind"] == "output"]
    assert [r["dtype"] for r in inputs] == [input_dtype]
    assert [r["dtype"] for r in outputs] == [input_dtype]
    conv_weight = [r for r in rows if r["kind"] == "constant" and len(r["shape"]) == 4]
    hidden_weight = [r for r in rows if r["kind"] == "constant" and r["shape"] == (16, 128)]
    assert [r["dtype"] for r in hidden_weight] == [weight_dtype]
    # Dynamic range leaves weight tensors under 1024 elements in float: the conv has 72.
    conv_dtype = "float32" if mode == "dynamic_range" else weight_dtype
    assert [r["dtype"] for r in conv_weight] == [conv_dtype]
    if conv_dtype == "int8":  # per output channel, symmetric (zero point 0)
        scale, zero_point = conv_weight[0]["scale"], conv_weight[0]["zero_point"]
        assert scale.shape == (8,) and np.all(scale > 0) and np.all(zero_point == 0)
        assert conv_weight[0]["quantized_dimension"] == 0
    activations = [r for r in rows if r["kind"] == "activation"]
    quantized = [r for r in activations if r["scale"] is not None]
    assert bool(quantized) == (mode in ("full_integer", "integer_only"))


def test_every_mode_computes_the_keras_model(model, data, converted):
    expected = model(data.x_test, training=False).numpy()
    span = float(expected.max() - expected.min())
    tolerance = {"float": 1e-5, "float16": 1e-2, "dynamic_range": 0.05, "full_integer": 0.05,
                 "integer_only": 0.05}
    for mode, content in converted.items():
        out = tb.run_tflite(content, data.x_test, dequantize_output=True)
        assert out.dtype == np.float32 and out.shape == expected.shape
        assert np.abs(out - expected).max() <= tolerance[mode] * span, mode


def test_runner_quantizes_float_input_with_the_files_parameters(converted, data):
    content = converted["integer_only"]
    graph = tl.tflite_file.read(content)
    inp = graph.tensors[graph.inputs[0]]
    x = data.x_test
    v = x / np.float32(inp.scale)
    by_hand = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + inp.zero_point, -128, 127)
    by_hand = by_hand.astype(np.int8)  # TFLite rounds half away from zero
    float_in = tb.run_tflite(content, x)
    int_in = tb.run_tflite(content, by_hand)
    assert float_in.dtype == np.int8
    np.testing.assert_array_equal(float_in, int_in)
    # The classic bug: float data cast to int8 is not the same input at all.
    wrong = tb.run_tflite(content, x.astype(np.int8))
    assert not np.array_equal(wrong, int_in)


def test_representative_data_is_required_and_qat_needs_none(model):
    for mode in ("full_integer", "integer_only"):
        with pytest.raises(ValueError, match="needs representative_data"):
            tb.convert(model, mode)
    with pytest.raises(ValueError, match="mode must be one of"):
        tb.convert(model, "int4")


# ---------------------------------------------------------------- measuring

def test_size_on_disk_is_the_flatbuffer(converted):
    for content in converted.values():
        assert tb.size_on_disk(content) == len(content)
    with pytest.raises(ValueError, match="bytes of a .tflite model"):
        tb.size_on_disk(b"not a model at all")


def test_accuracy_tflite(converted, model, data):
    keras_pred = model(data.x_test, training=False).numpy().argmax(axis=1)
    assert tb.accuracy_tflite(converted["float"], data.x_test, data.y_test) == pytest.approx(
        np.mean(keras_pred == data.y_test))
    assert tb.accuracy_tflite(converted["float"], data.x_test, keras_pred) == 1.0
    with pytest.raises(ValueError, match="one label per sample"):
        tb.accuracy_tflite(converted["float"], data.x_test, data.y_test[:3])


def test_compare_latency(converted, data):
    result = tb.compare_latency(converted, repeats=3, warmup=1)
    assert list(result) == list(converted)
    assert all(isinstance(v, float) and v > 0 for v in result.values())
    assert tb.latency_ms(converted["integer_only"], data.x_test[:1], repeats=2) > 0
    with pytest.raises(ValueError, match="batch 1"):
        tb.latency_ms(converted["float"], data.x_test[:2])
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        tb.latency_ms(converted["float"], repeats=0)


def test_tensor_table_matches_the_file(converted):
    content = converted["full_integer"]
    rows = tb.tensor_table(content)
    graph = tl.tflite_file.read(content)
    assert [r["index"] for r in rows] == list(range(len(graph.tensors)))
    for row, t in zip(rows, graph.tensors, strict=True):
        assert row["name"] == t.name and row["shape"] == t.shape
        assert (row["kind"] == "constant") == (t.data is not None and t.index not in graph.inputs)
    no_constants = tb.tensor_table(content, constants=False)
    assert [r for r in rows if r["kind"] != "constant"] == no_constants


# ---------------------------------------------------------------- quantization-aware training

@pytest.fixture(scope="module")
def qat_model(model, data):
    qat = tb.prepare_qat(model)
    return tb.train_keras(qat, data, epochs=1, lr=1e-4)


def test_prepare_qat_wraps_every_layer(qat_model):
    kinds = [type(layer).__name__ for layer in qat_model.layers]
    assert kinds[0] == "QuantizeLayer"
    assert set(kinds[1:]) == {"QuantizeWrapperV2"}


def test_qat_model_converts_without_representative_data(qat_model, data):
    expected = qat_model(data.x_test, training=False).numpy()
    for mode, input_dtype in (("full_integer", "float32"), ("integer_only", "int8")):
        content = tb.convert(qat_model, mode)
        rows = tb.tensor_table(content)
        assert rows[[r["kind"] for r in rows].index("input")]["dtype"] == input_dtype
        ops = {op.name for op in tl.tflite_file.read(content).operators}
        assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
        weights = [r for r in rows if r["kind"] == "constant" and len(r["shape"]) >= 2]
        assert {r["dtype"] for r in weights} == {"int8"}
        out = tb.run_tflite(content, data.x_test, dequantize_output=True)
        output_scale = [r for r in rows if r["kind"] == "output"][0]["scale"] or 0.05
        assert np.abs(out - expected).max() <= 3 * output_scale + 1e-6


def test_keep_float_leaves_a_layer_unwrapped(model, data, qat_model):
    qat = tb.prepare_qat(model, keep_float=["dense"])
    assert type(qat.get_layer("dense")).__name__ == "Dense"
    tb.train_keras(qat, data, epochs=1, lr=1e-4)

    def dense_dtypes(content):
        rows = tb.tensor_table(content)
        return [r["dtype"] for r in rows if r["kind"] == "constant" and r["shape"] == (3, 16)]

    # Without representative data the converter keeps the float layer float, the rest int8.
    assert dense_dtypes(tb.convert(qat, "dynamic_range")) == ["float32"]
    assert dense_dtypes(tb.convert(qat_model, "dynamic_range")) == ["int8"]


def test_prepare_qat_low_bits(model):
    qat = tb.prepare_qat(model, weight_bits=4, activation_bits=8)
    assert qat(np.zeros((1, 8, 8, 1), np.float32)).shape == (1, 3)


def test_prepare_qat_bad_input(model):
    with pytest.raises(ValueError, match="does not have"):
        tb.prepare_qat(model, keep_float=["fc9"])
    with pytest.raises(ValueError, match="BatchNormalization"):
        tb.prepare_qat(model, keep_float=["conv"])
    with pytest.raises(ValueError, match="weight_bits must be an integer from 2 to 8"):
        tb.prepare_qat(model, weight_bits=16)


def test_tfmot_loads_quietly():
    """A fresh kernel: bridge, tfmot, QAT wrapping and a conversion write nothing to stderr."""
    code = (
        "import numpy as np\n"
        "import tutorial_lib.tflite_bridge as tb\n"
        "tfmot = tb.load_tfmot()\n"
        "L = tb.tf_keras.layers\n"
        "m = tb.tf_keras.Sequential([L.InputLayer(input_shape=(4,)), L.Dense(2)])\n"
        "q = tb.prepare_qat(m)\n"
        "q(np.ones((1, 4), np.float32), training=True)\n"
        "print(len(tb.convert(q, 'integer_only')) > 0, tfmot.__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.split() == ["True", "tensorflow_model_optimization"]


def test_mobilenet_v2_has_trained_looking_batchnorm():
    model = tb.mobilenet_v2(seed=0)
    assert model.count_params() == 3_538_984  # Keras' MobileNetV2, 1000 classes
    bns = [layer for layer in model.layers if isinstance(layer, K.layers.BatchNormalization)]
    gamma, beta, mean, var = bns[0].get_weights()
    assert np.all(var > 0) and len(np.unique(beta)) == len(beta)  # no longer the fresh 0 and 1
    folded = np.concatenate([b.get_weights()[1] - b.get_weights()[2] * b.get_weights()[0]
                             / np.sqrt(b.get_weights()[3] + b.epsilon) for b in bns])
    assert np.count_nonzero(folded == 0) == 0
    again = tb.mobilenet_v2(seed=0)
    for a, b in zip(model.get_weights()[:6], again.get_weights()[:6], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="seed must be an integer"):
        tb.mobilenet_v2(seed="0")
