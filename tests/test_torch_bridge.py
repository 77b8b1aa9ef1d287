"""tutorial_lib.torch_bridge, lesson 06 part: measurements on tiny models, and every quantization
method of the lesson on the course CNN, against float32 and against independent references."""

import copy
import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import tutorial_lib as tl
from tutorial_lib import env, torch_bench
from tutorial_lib import torch_bridge as tb
from tutorial_lib._quiet import quiet_stderr


def tiny_cnn(seed=0):
    """Conv-BN-ReLU, pool, Linear-ReLU, Linear on 1x8x8 images: the course CNN's layer kinds."""
    torch.manual_seed(seed)
    model = nn.Sequential()
    for name, layer in [("conv", nn.Conv2d(1, 4, 3, padding=1)), ("bn", nn.BatchNorm2d(4)),
                        ("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
                        ("fc1", nn.Linear(64, 16)), ("relu2", nn.ReLU()), ("fc2", nn.Linear(16, 3))]:
        model.add_module(name, layer)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture
def on_engine(monkeypatch):
    """``on_engine("qnnpack")``: the bridge switched to that engine for one test, then back."""
    before = torch.backends.quantized.engine

    def use(name):
        monkeypatch.setenv(env.ENGINE_VARIABLE, name)
        return tb.use_course_engine()

    yield use
    torch.backends.quantized.engine = before


# ---- the quantized engine

def test_importing_the_bridge_sets_the_engine_of_the_machine_or_the_variable():
    code = "import torch, tutorial_lib.torch_bridge; print(torch.backends.quantized.engine)"
    for variable, expected in (("", env.quantized_engine(override="")), ("qnnpack", "qnnpack")):
        environment = {**os.environ, env.ENGINE_VARIABLE: variable}
        out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                             text=True, check=True).stdout
        assert out.strip().splitlines()[-1] == expected


def test_use_course_engine_rejects_an_engine_torch_lacks(on_engine):
    assert on_engine("qnnpack") == torch.backends.quantized.engine == "qnnpack"
    with pytest.raises(ValueError, match=r"supports the quantized engines \[.*'qnnpack'"):
        on_engine("fpga")


def test_pt2e_quantizer_follows_the_engine(on_engine):
    on_engine("x86")
    assert type(tb.pt2e_quantizer()).__name__ == "X86InductorQuantizer"
    on_engine("qnnpack")
    quantizer = tb.pt2e_quantizer(keep_float=["fc2"])
    assert type(quantizer).__name__ == "ArmInductorQuantizer"
    assert quantizer.module_name_qconfig == {"fc2": None}
    config = quantizer.global_config
    assert (config.input_activation.dtype, config.input_activation.quant_min) == (torch.int8, -128)
    assert config.weight.qscheme == torch.per_channel_symmetric  # the course's choice, as x86
    assert tb.arm_quantizer(per_channel=False).global_config.weight.qscheme == \
        torch.per_tensor_symmetric  # ARM's own default
    assert tb.arm_quantizer(is_qat=True).global_config.is_qat
    assert tb.x86_quantizer(per_channel=False).global_config.weight.qscheme == \
        torch.per_tensor_symmetric
    assert tb.x86_quantizer().global_config.input_activation.dtype == torch.uint8


def test_arm_and_x86_pt2e_compute_the_same_model(on_engine):
    model = tiny_cnn()
    x = torch.randn(32, 1, 8, 8)
    on_engine("x86")
    x86 = tb.pt2e_int8(model, x)
    on_engine("qnnpack")
    arm = tb.pt2e_int8(model, x)
    assert tb.lower(arm, x) is arm  # no lowering on ARM outside torch.compile
    with pytest.raises(ValueError, match="int8"):
        tb.lower_to_x86(arm, x)  # x86's int8 kernels take uint8 activations
    assert tb.state_dict_bytes(arm) == tb.state_dict_bytes(x86)
    reference = tb.logits(x86, x)
    step = np.abs(reference).max() / 127
    assert np.abs(tb.logits(arm, x) - reference).max() < 2 * step
    rows = tb.quantized_summary(arm, x[:2])
    assert [r["weight"] for r in rows] == ["int8", "int8", "int8"]


def test_eager_helpers_use_the_engines_qconfig(on_engine):
    model = tiny_cnn()
    x = torch.randn(64, 1, 8, 8)
    on_engine("qnnpack")
    int8 = tb.eager_static_int8(model, x)
    conv = {r["layer"]: r for r in tb.quantized_summary(int8, x[:2])}["module.conv"]
    assert (conv["weight"], conv["input"]) == ("qint8", "quint8")  # one scale per tensor
    assert int8.quant.scale.item() < 1.5 * float(x.max() - x.min()) / 255  # all 8 bits
    assert tb.agreement(model, int8, x) >= 0.9
    with pytest.raises(ValueError, match="engine"):
        tb.eager_static_int8(model, x, backend="x86")
    on_engine("x86")
    assert tb.eager_static_int8(model, x).quant.scale.item() > \
        int8.quant.scale.item() * 1.5  # 7 bits


def test_keep_float_check_accepts_the_arm_quantizer(capsys):
    from torchao.quantization.pt2e.quantizer import arm_inductor_quantizer as aiq

    def arm_default(names):
        quantizer = aiq.ArmInductorQuantizer()
        quantizer.set_global(aiq.get_default_arm_inductor_quantization_config())
        for name in names:
            quantizer.set_module_name_qconfig(name, None)
        return quantizer

    for fn in (arm_default, lambda names: tb.arm_quantizer(keep_float=names)):
        assert tl.checks.check_keep_float(fn)
    assert "✓ keep_float: 5/5 exact" in capsys.readouterr().out


# ---- quiet imports and known warnings

def test_quiet_stderr_drops_fd_python_and_logging_output(capfd):
    import logging

    with quiet_stderr():
        os.write(2, b"from C\n")
        print("from Python", file=__import__("sys").stderr)
        logging.getLogger("tutorial_lib.test").warning("from a logger")
        warnings.warn("a warning", UserWarning, stacklevel=1)
    assert capfd.readouterr().err == ""


def test_quiet_stderr_replays_output_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError), quiet_stderr():
        os.write(2, b"context for the error\n")
        raise RuntimeError("boom")
    assert "context for the error" in capfd.readouterr().err


def test_load_quantization_apis_records_notices_then_silences_them():
    notices = tb.load_quantization_apis()
    assert notices["torch.ao.quantization"].startswith("torch.ao.quantization is deprecated")
    assert set(notices) <= {label for label, _, _ in tb.KNOWN_WARNINGS}
    with warnings.catch_warnings(record=True) as caught:
        tb.load_quantization_apis()  # installs the filters again inside this test's own filters
        tb.eager_dynamic_int8(nn.Sequential(nn.Linear(2, 2)))
        warnings.warn("unrelated", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["unrelated"]  # other warnings still show


# ---- size, costs, accuracy helpers

@pytest.mark.parametrize("model", [nn.Linear(4, 3), nn.BatchNorm2d(16), nn.ReLU()])
def test_state_dict_bytes_is_the_file_size(model, tmp_path):
    # torch.save names the zip records after the file ("archive" for an in-memory buffer)
    path = tmp_path / "archive.pt"
    torch.save(model.state_dict(), path)
    assert tb.state_dict_bytes(model) == os.path.getsize(path)


def test_state_dict_bytes_of_a_lowered_graph_asks_for_the_converted_model(on_engine):
    on_engine("x86")
    model = tiny_cnn()
    x = torch.randn(8, 1, 8, 8)
    lowered = tb.lower_to_x86(tb.pt2e_int8(model, x, batch_size=8), x)
    with pytest.raises(ValueError, match="before lowering"):
        tb.state_dict_bytes(lowered)


def test_layer_costs_by_hand():
    rows = tb.layer_costs(tiny_cnn(), (1, 8, 8))
    assert [(r["layer"], r["params"], r["macs"]) for r in rows] == [
        ("conv", 4 * 9 + 4, 4 * 8 * 8 * 9),  # 256 outputs, 9 products each
        ("fc1", 64 * 16 + 16, 64 * 16),
        ("fc2", 16 * 3 + 3, 16 * 3),
    ]


def test_logits_and_agreement_on_plain_and_exported_models():
    model = tiny_cnn()
    x = torch.randn(10, 1, 8, 8)
    exported = tb.export_for_quantization(model, x)
    np.testing.assert_allclose(tb.logits(exported, x), model(x).detach().numpy(), atol=1e-5)
    assert tb.agreement(model, exported, x) == 1.0
    model.train()
    tb.logits(model, x)
    assert model.training  # the mode comes back


def test_format_table_aligns_columns():
    text = tb.format_table([{"method": "fp32", "ms": 1.5}, {"method": "int8", "ms": 10.25}])
    assert text.splitlines() == ["method     ms", "fp32      1.5", "int8    10.25"]
    with pytest.raises(ValueError):
        tb.format_table([])


# ---- latency

def test_summarize_times_against_numpy():
    rng = np.random.default_rng(3)
    for n, warmup in [(7, 0), (20, 3), (2, 1)]:
        times = rng.exponential(2.0, n)
        kept = times[warmup:]
        result = tb.summarize_times(times.tolist(), warmup)
        assert result.median_ms == pytest.approx(np.median(kept))
        assert result.spread_ms == pytest.approx(np.subtract(*np.percentile(kept, [75, 25])))


@pytest.mark.parametrize("times, warmup", [([1.0, 2.0], 2), ([[1.0, 2.0]], 0), ([1.0], -1),
                                           ([1.0, 2.0], True)])
def test_summarize_times_rejects_bad_input(times, warmup):
    with pytest.raises(ValueError):
        tb.summarize_times(times, warmup)


def test_compare_latency_restores_threads_and_measures_each_model():
    before = torch.get_num_threads()
    models = {"small": nn.Flatten(), "large": nn.Sequential(nn.Flatten(), nn.Linear(64, 512))}
    result = tb.compare_latency(models, torch.randn(4, 1, 8, 8), repeats=5, warmup=1, threads=1)
    assert list(result) == ["small", "large"]
    assert all(r.median_ms > 0 and r.spread_ms >= 0 for r in result.values())
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        tb.latency(nn.Flatten(), torch.randn(1, 1, 8, 8), repeats=0)
    with pytest.raises(ValueError):
        tb.latency(nn.Flatten(), torch.randn(8, 8))  # not NCHW


# ---- eager mode and PT2E pieces on a tiny model

def test_fuse_groups_matches_the_course_cnn_and_fuse_modules():
    assert tb.fuse_groups(tb.CourseCNN()) == [list(g) for g in tb.CourseCNN.FUSE_GROUPS]
    model = tiny_cnn()
    assert tb.fuse_groups(model) == [["conv", "bn", "relu"], ["fc1", "relu2"]]
    fused = torch.ao.quantization.fuse_modules(model, tb.fuse_groups(model))
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(fused(x), model(x), rtol=1e-5, atol=1e-5)  # folding is exact


def test_calibrate_sees_every_image_once_in_eval_mode_without_gradients():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append((x[:, 0, 0, 0].tolist(), self.training, torch.is_grad_enabled()))
            return x

    spy = Spy().train()
    x = torch.arange(7.0).reshape(7, 1, 1, 1).expand(7, 1, 2, 2)
    assert tb.calibrate(spy, x, batch_size=3) is spy
    assert [s[0] for s in seen] == [[0, 1, 2], [3, 4, 5], [6]]
    assert not any(s[1] or s[2] for s in seen)
    assert spy.training
    with pytest.raises(ValueError):
        tb.calibrate(spy, x, batch_size=0)


def test_eager_static_stores_int8_weights_and_follows_float(on_engine):
    on_engine("x86")
    model = tiny_cnn()
    x = torch.randn(64, 1, 8, 8)
    int8 = tb.eager_static_int8(model, x)
    summary = {r["layer"]: r for r in tb.quantized_summary(int8, x[:2])}
    assert summary["module.conv"]["weight"] == "qint8, per channel"
    assert summary["module.conv"]["input"] == "quint8"
    assert summary["dequant"]["output"] == "float32"
    # (no size check here: on a model this small the file's records outweigh the weights)
    assert tb.agreement(model, int8, x) >= 0.9
    with pytest.raises(ValueError, match="engine"):
        tb.eager_static_int8(model, x, backend="qnnpack")


def test_x86_quantizer_keeps_named_layers_in_float(on_engine):
    on_engine("x86")
    quantizer = tb.x86_quantizer(keep_float=["fc2"])
    assert quantizer.module_name_qconfig == {"fc2": None}
    assert not quantizer.global_config.is_qat
    assert tb.x86_quantizer(is_qat=True).global_config.is_qat
    with pytest.raises(ValueError):
        tb.x86_quantizer(keep_float="fc2")
    model = tiny_cnn()
    x = torch.randn(32, 1, 8, 8)
    rows = tb.quantized_summary(tb.pt2e_int8(model, x, keep_float=["fc2"]), x[:2])
    assert [(r["layer"], r["weight"]) for r in rows] == [
        ("conv", "int8"), ("fc1", "int8"), ("fc2", "float32")]


def test_pt2e_drops_float_weights_and_lowering_keeps_the_numbers():
    model = tiny_cnn()
    x = torch.randn(32, 1, 8, 8)
    quantize_pt2e, _ = tb._ao()
    prepared = quantize_pt2e.prepare_pt2e(tb.export_for_quantization(model, x), tb.x86_quantizer())
    tb.calibrate(prepared, x)
    converted = quantize_pt2e.convert_pt2e(prepared)
    before = tb.state_dict_bytes(converted)
    reference = tb.logits(converted, x)
    tb.drop_unused_weights(converted)
    kept = converted.state_dict()
    assert not [k for k in kept if k.endswith(".weight")]  # the float copies are gone
    assert sorted(str(v.dtype) for v in kept.values()).count("torch.int8") == 3
    assert tb.state_dict_bytes(converted) < before
    np.testing.assert_array_equal(tb.logits(converted, x), reference)
    lowered = tb.lower_to_x86(converted, x)
    assert {r["runs as"] for r in tb.quantized_summary(lowered, x[:2])} == {
        "onednn.qconv_pointwise", "onednn.qlinear_pointwise"}
    step = np.abs(reference).max() / 127
    # Without VNNI, oneDNN's AVX2 int8 kernels add pairs of u8 x s8 products in 16 bits
    # (vpmaddubsw), which saturates with PT2E's full-range uint8 activations (eager x86 keeps
    # them to 7 bits for this reason): there some logits move by several steps (up to 9.5 here).
    vnni = any(tl.env.int8_features()[name] for name in ("AVX-512 VNNI", "AVX-VNNI"))
    for n in (1, 7, 32):  # the batch size stays free
        lowered_logits = tb.logits(lowered, x[:n])
        assert np.abs(lowered_logits - reference[:n]).max() < (2 if vnni else 16) * step
        assert np.mean(lowered_logits.argmax(1) == reference[:n].argmax(1)) >= 0.9
    with pytest.raises(ValueError):
        tb.drop_unused_weights(model)
    with pytest.raises(ValueError, match="at least 2"):
        tb.export_for_quantization(model, x[:1])


def tiny_data(seed=0):
    """64 training images of 1x8x8 with 3 classes, for the tiny CNN."""
    rng = np.random.default_rng(seed)
    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 3, 64)
    return tl.data.Dataset(x, y, x[:8], y[:8])


def test_eager_qat_freezes_observers_and_batchnorm_like_the_pytorch_calls():
    model, data = tiny_cnn(), tiny_data()
    tq = torch.ao.quantization
    tb.load_quantization_apis()
    reference = tq.QuantWrapper(copy.deepcopy(model)).train()
    tq.fuse_modules_qat(reference, tb.fuse_groups(reference), inplace=True)
    reference.qconfig = tq.get_default_qat_qconfig(torch.backends.quantized.engine)
    tq.prepare_qat(reference, inplace=True)
    states = []

    def freeze(epoch):
        if epoch == 1:
            reference.apply(tq.disable_observer)
            reference.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
        conv = reference.module.conv
        states.append((bool(conv.weight_fake_quant.observer_enabled), conv.freeze_bn))

    tb.train(reference, data, epochs=2, lr=1e-3, on_epoch=freeze)
    assert states == [(True, False), (False, True)]
    expected = tb.logits(tq.convert(reference.eval()), data.x_train)
    frozen = tb.eager_qat_int8(model, data, epochs=2, lr=1e-3, freeze_after=1)
    np.testing.assert_array_equal(tb.logits(frozen, data.x_train), expected)
    never = tb.eager_qat_int8(model, data, epochs=2, lr=1e-3, freeze_after=None)
    assert not np.array_equal(tb.logits(never, data.x_train), expected)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="freeze_after"):
            tb.eager_qat_int8(model, data, freeze_after=bad)


def test_pt2e_qat_stops_torchaos_observers_after_freeze_after_epochs():
    from torchao.quantization.pt2e import FakeQuantizeBase, disable_observer

    model, data = tiny_cnn(), tiny_data()
    model.FUSE_GROUPS = (("conv", "bn", "relu"),)  # what fold_batchnorm folds
    quantize_pt2e, _ = tb._ao()
    graph = tb.export_for_quantization(tb.fold_batchnorm(model), data.x_train[:32], training=True)
    prepared = tb._allow_eval(quantize_pt2e.prepare_qat_pt2e(graph, tb.x86_quantizer(is_qat=True)))
    fake_quants = [m for m in prepared.modules() if isinstance(m, FakeQuantizeBase)]
    assert fake_quants
    # torch.ao's disable_observer would skip these: they are torchao's own classes
    assert not any(isinstance(m, torch.ao.quantization.FakeQuantizeBase) for m in fake_quants)
    tb.train(prepared, data, epochs=2, lr=1e-3,
             on_epoch=lambda epoch: epoch == 1 and prepared.apply(disable_observer))
    assert not any(bool(m.observer_enabled) for m in fake_quants)
    expected = tb.logits(tb.drop_unused_weights(quantize_pt2e.convert_pt2e(prepared)), data.x_train)
    frozen = tb.pt2e_qat_int8(model, data, epochs=2, lr=1e-3, freeze_after=1)
    np.testing.assert_array_equal(tb.logits(frozen, data.x_train), expected)
    with pytest.raises(ValueError, match="freeze_after"):
        tb.pt2e_qat_int8(model, data, freeze_after=0)


# ---- every method of lesson 06 on the course CNN

@pytest.fixture(scope="module")
def course():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = tl.data.load_digits(size=32)
        model = tb.trained_cnn()
        models, stored = torch_bench.quantize_all(model, data)
    finally:
        torch.set_num_threads(threads)
    return data, models, stored


def test_every_method_predicts_like_float(course):
    data, models, _ = course
    fp32 = models["fp32"]
    base = tb.digits_accuracy(fp32, data)
    assert base > 0.95
    for name, model in models.items():
        assert tb.agreement(fp32, model, data.x_test) >= 0.97, name
        assert tb.digits_accuracy(model, data) >= base - 0.01, name


def test_int8_sizes_and_what_the_models_hold(course):
    data, models, stored = course
    rows = {r["method"]: r for r in tb.compare(models, data, stored=stored, timings=False)}
    assert rows["fp32"]["x smaller"] == 1.0
    for name in ("static (eager)", "QAT (eager)", torch_bench.pt2e_names()[0]):
        assert 3.5 < rows[name]["x smaller"] < 4.0, name  # int8 weights plus the file's records
    for name in ("dynamic (eager)", "int8 weight-only (torchao)", "int8 dynamic (torchao)"):
        assert 2.4 < rows[name]["x smaller"] < 2.9, name  # only the Linear layers shrink
    dynamic = {r["layer"]: r for r in tb.quantized_summary(models["dynamic (eager)"])}
    assert dynamic["conv2"]["weight"] == "float32"  # quantize_dynamic leaves convolutions alone
    assert dynamic["fc1"]["runs as"] == "quantized.dynamic.Linear"
    assert (dynamic["fc1"]["weight"], dynamic["fc1"]["input"]) == ("qint8", "float32")
    torchao = tb.quantized_summary(models["int8 dynamic (torchao)"])
    assert [r["runs as"] for r in torchao if r["layer"] == "fc1"] == [
        "Linear (int8 activations on the fly)"]


def test_benchmark_rows_have_the_seed_table_shape(course):
    data, models, stored = course
    small = {k: models[k] for k in ("fp32", "static (eager)")}
    rows = tb.compare(small, data, repeats=2)
    assert list(rows[0]) == ["method", "accuracy %", "size MB", "x smaller", "batch 1 ms",
                             "speed-up b1", "batch 32 ms", "speed-up b32"]
    assert rows[0]["speed-up b32"] == 1.0
    assert torch_bench.TITLE and callable(torch_bench.run)
    with_spread = tb.compare(small, data, repeats=2, batch_sizes=(1,), spread=True)
    assert list(with_spread[0])[4:] == ["batch 1 ms", "IQR b1", "speed-up b1"]
    assert all(r["IQR b1"] >= 0 for r in with_spread)


def test_state_dict_bytes_counts_buffers():
    bn = nn.BatchNorm2d(16)
    buffer = io.BytesIO()
    torch.save({"weight": bn.weight.detach()}, buffer)
    assert tb.state_dict_bytes(bn) > buffer.tell()


# ---- the bridge gathers two modules: the model side and the quantization APIs

def test_bridge_reexports_both_modules_unchanged():
    from tutorial_lib import torch_model, torch_quant

    assert not set(torch_model.__all__) & set(torch_quant.__all__)
    assert tb.__all__ == [*torch_model.__all__, *torch_quant.__all__]
    for module in (torch_model, torch_quant):
        for name in module.__all__:
            assert getattr(tb, name) is getattr(module, name), name


def test_model_module_does_not_import_the_quantization_apis():
    import subprocess
    import sys

    code = ("import sys, tutorial_lib.torch_model; "
            "print('tutorial_lib.torch_quant' in sys.modules, 'torchao' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
