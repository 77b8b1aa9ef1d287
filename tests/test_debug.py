"""tl.debug: per-layer SQNR, noise added and culprits (numpy), and the LiteRT bridge on the course CNN."""

import math

import numpy as np
import pytest

from tutorial_lib import debug


def test_layer_sqnr_matches_the_formula_and_keeps_order():
    rng = np.random.default_rng(0)
    x = {name: rng.normal(size=(3, 4)) for name in ("input", "conv1", "fc")}
    noise = {name: v + 0.01 * rng.normal(size=v.shape) for name, v in x.items()}
    got = debug.layer_sqnr(x, {"fc": noise["fc"], "conv1": noise["conv1"]})
    assert list(got) == ["conv1", "fc"]
    for name, db in got.items():
        ratio = np.sum(x[name] ** 2) / np.sum((x[name] - noise[name]) ** 2)
        assert db == pytest.approx(10 * np.log10(ratio), abs=1e-5)
    assert debug.layer_sqnr({"a": np.zeros(3)}, {"a": np.zeros(3)}) == {"a": math.inf}
    # a dead float layer whose int8 twin is not zero is all noise, not a perfect copy
    assert debug.layer_sqnr({"a": np.zeros(3)}, {"a": np.ones(3)}) == {"a": -math.inf}


def test_layer_sqnr_refuses_bad_input():
    with pytest.raises(ValueError, match="share no layer names"):
        debug.layer_sqnr({"a": np.ones(2)}, {"b": np.ones(2)})
    with pytest.raises(ValueError, match="shape"):
        debug.layer_sqnr({"a": np.ones(2)}, {"a": np.ones(3)})
    with pytest.raises(ValueError, match="NaN or inf"):
        debug.layer_sqnr({"a": np.ones(2)}, {"a": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match="must be a dict"):
        debug.layer_sqnr([np.ones(2)], {"a": np.ones(2)})


def test_noise_added_and_culprit():
    sqnr = {"input": 50.0, "conv1": 30.0, "pool1": math.inf, "conv2": 20.0}
    added = debug.noise_added(sqnr)
    assert added == pytest.approx({"input": 1e-5, "conv1": 1e-3 - 1e-5, "pool1": -1e-3,
                                   "conv2": 1e-2})
    assert debug.culprit(sqnr) == "conv2"
    assert debug.culprit({"input": -5.0, "conv1": -6.0}) == "input"
    # the review's ResNet numbers: a dB drop from 48 dB blames the stem (12.7 dB against
    # 3.5 dB), but conv1 adds more noise (3.7e-4) than the stem's whole error (2.95e-4)
    assert debug.culprit({"stem": 35.3, "b1_conv1": 31.8}) == "b1_conv1"
    # shares are capped at 1 (0 dB): a wreck growing further is no new damage
    assert debug.culprit({"input": 0.5, "conv1": 4.0, "fc": -10.0}) == "input"
    assert debug.noise_added({"a": -math.inf}) == {"a": 1.0}
    with pytest.raises(ValueError, match="NaN"):
        debug.culprit({"a": float("nan")})
    with pytest.raises(ValueError, match="non-empty"):
        debug.culprit({})


def test_torch_layer_sqnr_uses_the_float_tensor_as_signal():
    """torchao's QuantizationComparisonResult.sqnr divides by the quantized tensor's power."""
    pytest.importorskip("torchao")
    import torch
    from torchao.quantization.pt2e._numeric_debugger import QuantizationComparisonResult

    from tutorial_lib.metrics import sqnr_db
    ref = torch.tensor([1.0, 2.0, 3.0, 4.0])
    actual = torch.tensor([0.0, 0.0, 0.0, 8.0])  # a ruined tensor
    theirs = float(QuantizationComparisonResult(actual=actual, ref=ref).sqnr)
    ours = sqnr_db(ref.numpy(), actual.numpy())
    assert theirs == pytest.approx(10 * math.log10(64 / 30), abs=1e-4)  # signal: actual
    assert ours == pytest.approx(10 * math.log10(30 / 30), abs=1e-6)  # signal: ref
    assert theirs > ours + 3


def test_layer_label():
    assert debug.layer_label("m/relu1/Relu;m/bn1/FusedBatchNormV3;m/conv1/Conv2D1") == "conv1"
    assert debug.layer_label("tfl.quantize") == "tfl.quantize"


def test_litert_activations_find_a_planted_outlier():
    pytest.importorskip("ai_edge_litert")
    import tutorial_lib as tl
    kb = tl.tflite_bridge
    data = tl.data.load_digits(size=32, layout="NHWC")
    model = kb.trained_cnn_keras(0)
    with pytest.raises(ValueError, match="positive"):
        debug.plant_outlier_channel(model, "conv2", "conv3", 0, -1.0)
    float_before = kb.convert(model, "float")
    debug.plant_outlier_channel(model, "conv2", "conv3", 21, 300.0)
    x = data.x_test[:64]
    float_after = kb.convert(model, "float")
    np.testing.assert_allclose(kb.run_tflite(float_after, x), kb.run_tflite(float_before, x),
                               atol=1e-3)
    ref = debug.litert_activations(float_after, x)
    assert list(ref)[:3] == ["input", "conv1", "pool1"] and list(ref)[-1] == "output"
    broken = debug.litert_convert(model, data.x_train[:50], per_channel=False)
    sqnr = debug.layer_sqnr(ref, debug.litert_activations(broken, x))
    assert sqnr["input"] > 40 and sqnr["conv1"] > 25
    assert debug.culprit(sqnr) == "conv3"  # where the 31 squeezed channels come out
    with pytest.raises(ValueError, match="does not have"):
        debug.litert_convert(model, x, keep_float=["conv9"])


def test_keep_float_and_16x8_fix_the_planted_outlier_in_litert():
    pytest.importorskip("ai_edge_litert")
    import tutorial_lib as tl
    kb = tl.tflite_bridge
    data = tl.data.load_digits(size=32, layout="NHWC")
    model = debug.plant_outlier_channel(kb.trained_cnn_keras(0), "conv2", "conv3", 21, 300.0)
    calibration, x, y = data.x_train[:50], data.x_test[:120], data.y_test[:120]
    broken = kb.accuracy_tflite(debug.litert_convert(model, calibration, per_channel=False), x, y)
    kept = debug.litert_convert(model, calibration, per_channel=False,
                                keep_float=["conv2", "pool2", "conv3"])
    sixteen = debug.litert_convert(model, calibration, int16_activations=True)
    assert broken < 0.5
    assert kb.accuracy_tflite(kept, x, y) > 0.95 and kb.accuracy_tflite(sixteen, x, y) > 0.95
    kinds = {t["dtype"] for t in kb.tensor_table(sixteen, constants=False)}
    assert "int16" in kinds
    float_ops = [t for t in kb.tensor_table(kept, constants=False)
                 if debug.layer_label(t["name"]) == "conv3" and t["dtype"] == "float32"]
    assert float_ops, "conv3 should run in float32"
    with pytest.raises(ValueError, match="choose one fix"):
        debug.litert_convert(model, calibration, int16_activations=True, keep_float=["conv3"])
    with pytest.raises(ValueError, match="int8 activations only"):
        debug.litert_layer_stats(model, calibration, calibration[:4], int16_activations=True)


def test_litert_layer_stats_point_at_the_planted_layer_quietly(capfd):
    pytest.importorskip("ai_edge_litert")
    import warnings

    import tutorial_lib as tl
    kb = tl.tflite_bridge
    data = tl.data.load_digits(size=32, layout="NHWC")
    model = debug.plant_outlier_channel(kb.trained_cnn_keras(0), "conv2", "conv3", 21, 300.0)
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the deprecated tf.lite.Interpreter's notice is silenced
        stats = debug.litert_layer_stats(model, data.x_train[:50], data.x_test[:40],
                                         per_channel=False)
    assert capfd.readouterr().err == ""
    assert list(stats)[:2] == ["conv1", "pool1"] and list(stats)[-1] == "output"
    ratio = {name: row["rmse/scale"] for name, row in stats.items()}
    assert max(ratio, key=ratio.get) == "conv3" and ratio["conv3"] > 3
    assert all(r < 1 for name, r in ratio.items() if name != "conv3")
    assert stats["conv3"]["op"] == "CONV_2D" and stats["conv3"]["scale"] > 0
    with pytest.raises(ValueError, match="NHWC images"):
        debug.litert_layer_stats(model, data.x_train[:50], data.x_test[0])


def test_torch_per_tensor_pt2e_breaks_and_the_numeric_debugger_finds_conv3():
    pytest.importorskip("torchao")
    import tutorial_lib as tl
    tb = tl.torch_bridge
    data = tl.data.load_digits(size=32, layout="NCHW")
    model = debug.plant_outlier_channel(tb.trained_cnn(0), "conv2", "conv3", 6, 300.0)
    calibration = data.x_train[:64]
    per_tensor = tb.digits_accuracy(debug.torch_pt2e(model, calibration, per_channel=False), data)
    per_channel = tb.digits_accuracy(debug.torch_pt2e(model, calibration), data)
    assert per_tensor < per_channel - 0.3
    sqnr = debug.torch_layer_sqnr(model, calibration, data.x_test[:64], per_channel=False)
    assert list(sqnr)[:3] == ["conv1", "relu1", "pool1"]
    assert debug.culprit(sqnr) == "conv3"


def test_equalize_outlier_keeps_the_function_and_fixes_per_tensor_int8_in_litert():
    pytest.importorskip("ai_edge_litert")
    import tutorial_lib as tl
    kb = tl.tflite_bridge
    data = tl.data.load_digits(size=32, layout="NHWC")
    model = debug.plant_outlier_channel(kb.trained_cnn_keras(0), "conv2", "conv3", 21, 300.0)
    calibration, x, y = data.x_train[:50], data.x_test, data.y_test
    before = model.predict(x[:64], verbose=0)
    float_accuracy = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    scales = debug.equalize_outlier(model, "conv2", "conv3")
    after = model.predict(x[:64], verbose=0)
    assert np.abs(after - before).max() <= 1e-4 * np.abs(before).max()
    assert scales.shape == (32,) and np.all(scales > 0) and scales.argmax() == 21
    equalized = debug.litert_convert(model, calibration, per_channel=False)
    assert kb.accuracy_tflite(equalized, x, y) >= float_accuracy - 0.005
    conv_kinds = {t["dtype"] for t in kb.tensor_table(equalized, constants=False)
                  if debug.layer_label(t["name"]).startswith("conv")}
    assert conv_kinds == {"int8"}


def test_equalize_outlier_fixes_per_tensor_pt2e():
    pytest.importorskip("torchao")
    import torch

    import tutorial_lib as tl
    tb = tl.torch_bridge
    data = tl.data.load_digits(size=32, layout="NCHW")
    model = debug.plant_outlier_channel(tb.trained_cnn(0).eval(), "conv2", "conv3", 6, 300.0)
    x = torch.as_tensor(data.x_test[:64])
    with torch.no_grad():
        before = model(x)
    float_accuracy = tb.digits_accuracy(model, data)
    debug.equalize_outlier(model, "conv2", "conv3")
    with torch.no_grad():
        after = model(x)
    assert float((after - before).abs().max()) <= 1e-4 * float(before.abs().max())
    calibration = data.x_train[:64]
    per_tensor = tb.digits_accuracy(debug.torch_pt2e(model, calibration, per_channel=False), data)
    assert per_tensor >= float_accuracy - 0.005
    with pytest.raises(ValueError, match="convolution fed by"):
        debug.equalize_outlier(model, "conv3", "fc1")


def test_noise_added_against_a_layers_own_inputs():
    sqnr = {"input": 50.0, "conv": 30.0, "branch": 40.0, "proj": 29.0, "add": 28.0}
    reads = {"conv": ["input"], "branch": ["input"], "proj": ["conv"], "add": ["branch", "proj"]}
    added = debug.noise_added(sqnr, reads)
    # proj reads conv (1e-3), not branch (1e-4), the tensor listed before it
    assert added["proj"] == pytest.approx(10 ** -2.9 - 1e-3, abs=1e-8)
    assert added["add"] == pytest.approx(10 ** -2.8 - 10 ** -2.9, abs=1e-8)  # against its noisier input
    assert debug.culprit(sqnr, reads) == "conv"
    assert debug.culprit(sqnr) == "proj"  # in list order, proj seems to add the most


def test_litert_layer_inputs_follow_the_graph():
    pytest.importorskip("ai_edge_litert")
    import tutorial_lib as tl
    kb = tl.tflite_bridge
    content = kb.convert(kb.course_resnet_keras(), "float")
    reads = debug.litert_layer_inputs(content)
    assert reads["stem_conv"] == ["input"]
    assert reads["b2_proj"] == ["b1_add"]
    assert sorted(reads["b3_add"]) == ["b3_conv2", "b3_proj"]
