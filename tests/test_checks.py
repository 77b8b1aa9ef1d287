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


def groupwise_fake_quantize(w, group_size, bits):
    quant_min, quant_max = tl.qrange(bits, narrow=True)
    qp = tl.groupwise.choose_qparams(w, group_size, quant_min, quant_max, symmetric=True)
    return tl.groupwise.fake_quantize(w, *qp, group_size, quant_min, quant_max)


class LastBatchPercentileObserver:
    def __init__(self, percentile):
        self.percentile = percentile

    def observe(self, x):
        self.x = np.ravel(x)

    def clipping_range(self):
        return tuple(np.percentile(self.x, [100 - self.percentile, self.percentile]))


def fake_quant_step(x, min_val, max_val, c, quant_min, quant_max):
    obs = tl.observers.MovingAverageMinMaxObserver(c, quant_min, quant_max)
    if min_val is not None:
        obs.min_val, obs.max_val = np.float32(min_val), np.float32(max_val)
    obs.observe(x)
    x_hat = tl.fake_quantize(x, *obs.calculate_qparams(), quant_min, quant_max)
    return x_hat, float(obs.min_val), float(obs.max_val)


def qat_step(w, x, y, scale, lr, update_quantized=False):
    import torch

    w = torch.tensor(w, requires_grad=True)
    w_hat = tl.qat.fake_quantize_ste(w, scale, 0, -7, 7)
    loss = ((torch.tensor(x) @ w_hat.T - torch.tensor(y)) ** 2).mean()
    loss.backward()
    start = w_hat if update_quantized else w  # the mistake: step from the quantized copy
    return (start - lr * w.grad).detach().numpy()


def lsq_scale_grad(x, scale, zero_point, quant_min, quant_max):
    import torch

    s = torch.tensor(float(scale), requires_grad=True)
    y = tl.qat.fake_quantize_lsq(torch.tensor(x), s, zero_point, quant_min, quant_max)
    return np.array([torch.autograd.grad(y[i], s, retain_graph=True)[0].item()
                     for i in range(len(x))])


def lsq_scale_grad_clamped_zero(x, scale, zero_point, quant_min, quant_max):
    v = np.asarray(x, np.float64) / scale
    q = np.round(v) + zero_point
    return np.where((q >= quant_min) & (q <= quant_max), np.round(v) - v, 0.0)


def fake_quantize_no_mask(x, scale, zero_point, quant_min, quant_max):
    import torch

    x_hat = torch.fake_quantize_per_tensor_affine(x.detach(), scale, zero_point, quant_min,
                                                  quant_max)
    return x + (x_hat - x).detach()  # gradient 1 everywhere, clamped values included


def largest_scale(rows):
    scored = [(float(np.max(r["scale"])), r["name"]) for r in rows if r["scale"] is not None]
    return max(scored)[1] if scored else None


def fake_quant_no_nudge(x, min_val, max_val, num_bits):
    """The raw range (0.0 not exact) and np.round (half to even): two mistakes at once."""
    scale = (max_val - min_val) / (2**num_bits - 1)
    return np.round((np.clip(x, min_val, max_val) - min_val) / scale) * scale + min_val


def ema_range(batch_ranges, decay, init, swapped=False):
    lo, hi = init
    for b_min, b_max in batch_ranges:
        keep = 1 - decay if swapped else decay
        lo = lo * keep + min(b_min, 0.0) * (1 - keep)
        hi = hi * keep + max(b_max, 0.0) * (1 - keep)
    return lo, hi


def qat_recovery(float_acc, ptq_acc, qat_acc):
    lost = float_acc - ptq_acc
    return math.nan if lost <= 0 else (qat_acc - ptq_acc) / lost


REFERENCES = {
    "fp32_fields": lambda x: tuple(int(v) for v in tl.formats.fields(x)),
    "fp32_value": tl.formats.compose,
    "fp16_below": fp16_below,
    "model_bytes": tl.metrics.size_bytes,
    "choose_qparams": lambda *a: tuple(tl.choose_qparams(*a)),
    "quantize": tl.quantize,
    "dequantize": tl.dequantize,
    "sqnr_db": tl.metrics.sqnr_db,
    "symmetric_scale": lambda x, qmin, qmax: tl.choose_qparams(
        -np.abs(x).max(), np.abs(x).max(), qmin, qmax, symmetric=True).scale,
    "symmetric_scales": symmetric_scales,
    "quantize_multiplier": tl.integer.quantize_multiplier,
    "multiply_by_quantized_multiplier": lambda acc, m0, shift: (
        tl.integer.multiply_by_quantized_multiplier(acc, m0, shift, "double")),
    "requantize": requantize_single,
    "quantize_bias": lambda b, sx, sw: np.round(b / (sx * np.asarray(sw))).astype(np.int32),
    "int8_linear": int8_linear,
    "fold_batchnorm": lambda w, b, g, beta, m, v, eps: tl.integer.fold_batchnorm(w, b, g, beta, m, v, eps),
    "per_channel_qparams": lambda w, axis, qmin, qmax: tuple(
        tl.observers.MinMaxObserver(qmin, qmax, axis=axis).observe(w).calculate_qparams()),
    "percentile_observer": tl.observers.PercentileObserver,
    "groupwise_fake_quantize": groupwise_fake_quantize,
    "pack_int4": tl.packing.pack_int4,
    "unpack_int4": tl.packing.unpack_int4,
    "fuse_groups": lambda layers: tl.torch_bridge.fuse_groups(layers),
    "calibrate": lambda model, images, batch_size: tl.torch_bridge.calibrate(model, images,
                                                                             batch_size),
    "state_dict_bytes": lambda model: tl.torch_bridge.state_dict_bytes(model),
    "keep_float": lambda names: tl.torch_bridge.x86_quantizer(keep_float=names),
    "latency_stats": lambda t, warmup: tuple(tl.torch_bridge.summarize_times(t, warmup)),
    "fake_quantize_ste": lambda *a: tl.qat.fake_quantize_ste(*a),
    "fake_quant_step": fake_quant_step,
    "qat_step": qat_step,
    "lsq_scale_grad": lsq_scale_grad,
    "freeze_observers": lambda model: tl.qat.enable_observer(model, False),
    "representative_dataset": lambda x, n: ([x[i : i + 1].astype(np.float32)]
                                            for i in range(min(n, len(x)))),
    "quantize_input": lambda x, s, z: tl.quantize(x, s, z, rounding="half_away").astype(np.int8),
    "dequantize_weight": lambda q, s, axis: tl.dequantize(  # symmetric: zero points are 0
        q, s, np.zeros(np.shape(s), np.int64), axis=None if np.ndim(s) == 0 else axis),
    "largest_scale": largest_scale,
    "nudge": lambda *a: tl.tf_fake_quant.nudged_range(*a),
    "fake_quant_min_max": lambda *a: tl.tf_fake_quant.fake_quant_tf(*a).numpy(),
    "ema_range": ema_range,
    "qat_recovery": qat_recovery,
    "pt2e_keep_float": lambda graph, x, names: pt2e_keep_float(graph, x, names),
    "converter_settings": lambda converter, mode, data: converter_settings(converter, mode, data),
    "annotate_except": lambda model, names: annotate_except(model, names),
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
    "symmetric_scale": lambda x, qmin, qmax: float(np.abs(x).max()) / qmax,  # narrow-range formula
    "symmetric_scales": lambda w, axis: np.abs(w).max(axis=axis) / 127,
    "quantize_multiplier": lambda r: (int(math.frexp(r)[0] * 2**31), math.frexp(r)[1]),  # truncates
    "multiply_by_quantized_multiplier": lambda acc, m0, shift: (  # one rounding, not two
        tl.integer.multiply_by_quantized_multiplier(acc, m0, shift, "single")),
    "requantize": lambda acc, m0, shift, zp: (acc * m0 / 2.0 ** (31 - shift) + zp).astype(np.int8),
    "quantize_bias": lambda b, sx, sw: np.round(b / np.asarray(sw)).astype(np.int32),
    "int8_linear": lambda x, zx, w, b, m0, s, zy: requantize_single(
        (x - np.int8(zx)).astype(np.int64) @ w.T.astype(np.int64) + b, m0, s, zy),  # int8 wrap
    "fold_batchnorm": lambda w, b, g, beta, m, v, eps: (
        w * (g / (v + eps))[:, None], (b - m) * g / (v + eps) + beta),
    "per_channel_qparams": lambda w, axis, qmin, qmax: (  # reduces along axis, not over the rest
        np.ptp(w, axis=axis) / (qmax - qmin),
        qmin - np.round(np.min(w, axis=axis) / (np.ptp(w, axis=axis) / (qmax - qmin)))),
    "percentile_observer": LastBatchPercentileObserver,  # forgets every batch but the last
    "groupwise_fake_quantize": lambda w, g, bits: groupwise_fake_quantize(  # one scale per row
        w, w.shape[-1], bits),
    "pack_int4": lambda q: ((q[::2] << 4) | np.append(q, 0)[1::2][: len(q[::2])]),  # high first
    "unpack_int4": lambda p, n: np.stack([p & 0xF, p >> 4], axis=1).ravel()[:n],  # no sign
    "fuse_groups": lambda layers: [  # conv-bn-relu only: misses conv-relu and linear-relu
        [a[0], b[0], c[0]] for a, b, c in zip(layers, layers[1:], layers[2:], strict=False)
        if (a[1], b[1], c[1]) == ("Conv2d", "BatchNorm2d", "ReLU")],
    "calibrate": lambda m, x, bs: [  # train mode, gradients on, drops the last partial batch
        m(x[i : i + bs]) for i in range(0, len(x) - bs + 1, bs)] and m,
    "state_dict_bytes": lambda m: sum(p.numel() * p.element_size() for p in m.parameters()),
    "keep_float": lambda names: keep_linears_in_float(),
    "latency_stats": lambda t, w: (float(np.mean(t[w:])), float(np.std(t[w:]))),
    "fake_quantize_ste": fake_quantize_no_mask,
    "fake_quant_step": lambda x, lo, hi, c, qmin, qmax: (  # the batch's range, no moving average
        tl.fake_quantize(x, *tl.choose_qparams(x.min(), x.max(), qmin, qmax), qmin, qmax),
        float(x.min()), float(x.max())),
    "qat_step": lambda w, x, y, s, lr: qat_step(w, x, y, s, lr, update_quantized=True),
    "lsq_scale_grad": lsq_scale_grad_clamped_zero,
    "freeze_observers": lambda model: tl.qat.enable_fake_quant(model, False),  # the wrong switch
    "representative_dataset": lambda x, n: (s for s in x[:n]),  # no list, no batch, no cast
    "quantize_input": lambda x, s, z: (np.round(x / s) + z).astype(np.int8),  # ties, wraps
    "dequantize_weight": lambda q, s, axis: q * np.asarray(s),  # along the last axis
    "largest_scale": lambda rows: max(rows, key=lambda r: r["scale"])["name"],  # None, arrays
    "nudge": lambda lo, hi, bits: (lo, hi, (hi - lo) / (2**bits - 1)),  # 0.0 not exact
    "fake_quant_min_max": fake_quant_no_nudge,
    "ema_range": lambda r, decay, init: ema_range(r, decay, init, swapped=True),
    "qat_recovery": lambda f, p, q: (q - p) / p,  # divides by an accuracy
    "pt2e_keep_float": lambda graph, x, names: pt2e_keep_float(graph, x, names, calibrate=False),
    "converter_settings": lambda c, mode, data: converter_settings(c, mode, data, int8_io=False),
    "annotate_except": lambda model, names: annotate_except(model, names, whole_names=False),
}


# ---- the framework exercises (06-08): the library's way, and switches for real mistakes

def pt2e_keep_float(graph, x, names, calibrate=True, by_type=False, convert=True,
                    dynamic=False):
    from torch import nn
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    quantizer = tl.torch_bridge.x86_quantizer(() if by_type else names)
    if by_type:  # every Linear, not the named layers
        quantizer.set_module_type_qconfig(nn.Linear, None)
    if dynamic:  # activation parameters computed per call, not calibrated
        quantizer = xiq.X86InductorQuantizer().set_global(
            xiq.get_default_x86_inductor_quantization_config(is_dynamic=True))
        for name in names:
            quantizer.set_module_name_qconfig(name, None)
    prepared = prepare_pt2e(graph, quantizer)
    if calibrate:
        tl.torch_bridge.calibrate(prepared, x, 32)
    return convert_pt2e(prepared) if convert else prepared


def converter_settings(converter, mode, data, int8_io=True, data_always=False, op_set_16x8=True,
                       float16_optimize=True, with_data=True):
    tf = tl.tflite_bridge.tf
    if mode == "float":
        return
    if mode != "float16" or float16_optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if (mode in ("integer_only", "16x8") and with_data) or data_always:
        converter.representative_dataset = data
    if mode == "integer_only":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if mode == "16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            if op_set_16x8 else tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def annotate_except(model, names, whole_names=True, inverted=False):
    keras_q = tl.tflite_bridge.load_tfmot().quantization.keras

    def keep(layer):
        found = layer.name in names if whole_names else any(n in layer.name for n in names)
        return found != inverted

    return tl.tflite_bridge.tf_keras.models.clone_model(
        model, clone_function=lambda layer: layer if keep(layer) else
        keras_q.quantize_annotate_layer(layer))


def keep_linears_in_float():
    """Keeps every Linear in float (by type), not the named layers."""
    from torch import nn

    quantizer = tl.torch_bridge.x86_quantizer()
    quantizer.set_module_type_qconfig(nn.Linear, None)
    return quantizer


# lesson 09's references and mistakes live in tests/test_compression_checks.py,
# lesson 10's in tests/test_llm_checks.py, lesson 11's in tests/test_checks_debug.py
from tests.test_checks_debug import MISTAKES as _MISTAKES_11  # noqa: E402
from tests.test_checks_debug import REFERENCES as _REFERENCES_11  # noqa: E402
from tests.test_compression_checks import MISTAKES as _MISTAKES_09  # noqa: E402
from tests.test_compression_checks import REFERENCES as _REFERENCES_09  # noqa: E402
from tests.test_llm_checks import MISTAKES as _MISTAKES_10  # noqa: E402
from tests.test_llm_checks import REFERENCES as _REFERENCES_10  # noqa: E402

REFERENCES.update(_REFERENCES_09)
MISTAKES.update(_MISTAKES_09)
REFERENCES.update(_REFERENCES_10)
MISTAKES.update(_MISTAKES_10)
REFERENCES.update(_REFERENCES_11)
MISTAKES.update(_MISTAKES_11)


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


def test_symmetric_scale_names_each_formula_mistake(capsys):
    eps = float(np.finfo(np.float32).eps)
    for wrong, words in [
            (lambda x, qmin, qmax: float(np.abs(x).max()) / qmax, "you divided by quant_max"),
            (lambda x, qmin, qmax: float(np.abs(x).max()) / (qmax - qmin), "the whole width"),
            (lambda x, qmin, qmax: max(float(np.max(x)) / ((qmax - qmin) / 2), eps),
             "largest magnitude")]:
        assert not checks.check_symmetric_scale(wrong)
        assert words in capsys.readouterr().out.split("  hint: ", 1)[1]


def test_double_rounding_names_each_rounding_mistake(capsys):
    from tutorial_lib.checks import integer as integer_checks

    single = lambda a, m, s: tl.integer.multiply_by_quantized_multiplier(a, m, s, "single")  # noqa: E731
    for wrong, words in [
            (single, "you rounded once"),
            (integer_checks._per_element(integer_checks._requant_double_floor), "floors toward -inf"),
            (integer_checks._per_element(integer_checks._requant_double_ties_up),
             "sends negative ties up"),
            (lambda a, m, s: np.round(a * np.asarray(m, float) * 2.0 ** (np.asarray(s) - 31))
             .astype(np.int64), "a float multiply rounds only once")]:
        assert not checks.check_multiply_by_quantized_multiplier(wrong)
        assert words in capsys.readouterr().out.split("  hint: ", 1)[1]


def test_a_raise_shows_the_learners_own_line(capsys):
    def dequantize(q, scale, zero_point):
        q = np.asarray(q)
        return (q - zero_point) * scale[3]  # the bug

    assert not checks.check_dequantize(dequantize)
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if "your line:" in row)
    assert line.strip().startswith("your line: return (q - zero_point) * scale[3]  # the bug")
    assert "of dequantize)" in line and "raised inside" not in line and "Traceback" not in out


def test_a_raise_deeper_down_names_the_library_and_the_learners_call(capsys):
    def dequantize(q, scale, zero_point):
        return np.reshape(q, (7, 3)) * scale

    assert not checks.check_dequantize(dequantize)
    out = capsys.readouterr().out
    assert "your line: return np.reshape(q, (7, 3)) * scale" in out
    assert "of dequantize), raised inside numpy\n" in out
    assert len(out.splitlines()) <= 8  # the usual report plus one line, no traceback


def test_a_raise_in_a_notebook_cell_shows_the_cells_line(capsys):
    import linecache

    # IPython compiles each cell under a file name of its own and puts its source in linecache
    filename = "/tmp/ipykernel_4242/1234567.py"
    source = "def quantize(x, scale, zero_point, quant_min, quant_max):\n    q = x / scale\n    return q.astype(np.int8)[9]\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"np": np}
    exec(compile(source, filename, "exec"), namespace)
    try:
        assert not checks.check_quantize(namespace["quantize"])
    finally:
        del linecache.cache[filename]
    out = capsys.readouterr().out
    assert "your function raised IndexError" in out
    assert "your line: return q.astype(np.int8)[9]   (line 3 of quantize)\n" in out


def test_a_raise_with_no_line_of_the_learners_shows_none(capsys):
    assert not checks.check_dequantize(np.reshape)  # not the learner's code at all
    out = capsys.readouterr().out
    assert "your function raised" in out and "your line" not in out


def test_wrong_shape_is_a_failure(capsys):
    assert not checks.check_quantize(lambda x, *a: np.zeros(1, np.int8))
    capsys.readouterr()


# ---- right values in the wrong dtype (the exercise names the dtype)

def _requantize_int64(acc, m0, shift, zp):
    return requantize_single(acc, m0, shift, zp).astype(np.int64)


WRONG_DTYPES = {
    "quantize": (lambda *a: tl.quantize(*a).astype(np.float64),
                 "dtype: expected an integer dtype, got float64"),
    "pack_int4": (lambda q: tl.packing.pack_int4(q).astype(np.int32),
                  "dtype: expected uint8, got int32"),
    "requantize": (_requantize_int64, "dtype: expected int8, got int64"),
    "int8_linear": (lambda *a: int8_linear(*a).astype(np.int64), "dtype: expected int8, got int64"),
    "quantize_bias": (lambda b, sx, sw: np.round(b / (sx * np.asarray(sw))),
                      "dtype: expected int32, got float64"),
    "quantize_input": (lambda x, s, z: tl.quantize(x, s, z, rounding="half_away").astype(np.int32),
                       "dtype: expected int8, got int32"),
    "dequantize_weight": (lambda q, s, axis: REFERENCES["dequantize_weight"](q, s, axis)
                          .astype(np.float64), "dtype: expected float32, got float64"),
    "unpack_int4": (lambda p, n: tl.packing.unpack_int4(p, n).astype(np.float32),
                    "dtype: expected an integer dtype, got float32"),
    "choose_qparams": (lambda *a: (tl.choose_qparams(*a).scale,
                                   float(tl.choose_qparams(*a).zero_point)),
                       "type: expected an int, got float"),
    "model_bytes": (lambda n, fmt: float(tl.metrics.size_bytes(n, fmt)),
                    "type: expected an int, got float"),
    "fp16_below": (lambda x: np.float16(fp16_below(x)),
                   "type: expected a Python float, got numpy.float16"),
}


@pytest.mark.parametrize("name", WRONG_DTYPES)
def test_wrong_dtype_is_named(name, capsys):
    wrong, line = WRONG_DTYPES[name]
    result = checker(name)(wrong)
    out = capsys.readouterr().out
    assert not result and out.startswith(f"✗ {name}: ") and "Traceback" not in out
    assert f"\n    {line}\n" in out, out
    assert "max difference" not in out  # the values themselves are right


# ---- single rounding, as the exercises ask, against double rounding

def requantize_double(acc, m0, shift, zero_point):
    out = tl.integer.multiply_by_quantized_multiplier(acc, m0, shift, "double") + zero_point
    return np.clip(out, -128, 127).astype(np.int8)


def int8_linear_double(x_q, x_zero_point, w_q, bias_q, m0, shift, y_zero_point):
    return tl.integer.fully_connected(x_q, x_zero_point, w_q, bias_q, m0, shift, y_zero_point,
                                      rounding="double")


def requantize_round_half_even(acc, m0, shift, zero_point):
    out = np.round(acc * (m0 * 2.0 ** (shift - 31))) + zero_point
    return np.clip(out, -128, 127).astype(np.int8)


@pytest.mark.parametrize("name, wrong, words", [
    ("requantize", requantize_double, "you round twice"),
    ("int8_linear", int8_linear_double, "you round twice"),
    ("requantize", requantize_round_half_even, "np.round rounds .5 ties to even"),
])
def test_double_or_float_rounding_fails(name, wrong, words, capsys):
    assert not checker(name)(wrong)
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {name}: ") and f"hint: {words}" in out, out
    assert checker(name)(REFERENCES[name])  # single rounding passes
    assert capsys.readouterr().out.startswith(f"✓ {name}: ")


def test_tie_cases_separate_single_from_double_rounding():
    acc = np.array([3, -4, 11, -12], np.int32)
    single = tl.integer.multiply_by_quantized_multiplier(acc, 2**30, -2, rounding="single")
    double = tl.integer.multiply_by_quantized_multiplier(acc, 2**30, -2, rounding="double")
    assert single.tolist() == [0, 0, 1, -1] and double.tolist() == [1, -1, 2, -2]
    ties = tl.integer.multiply_by_quantized_multiplier(np.array([1, -3], np.int32), 2**30, 0,
                                                       rounding="single")
    assert ties.tolist() == [1, -1]
    # the checker's own double rounding, written by hand, agrees with the library's
    for m0, shift in [(2**30, -2), (1610612736, -6), (1717986918, -3), (2**30, 1)]:
        accs = np.arange(-300, 301, 7, dtype=np.int32)
        assert [checks.integer._requant_double(int(a), m0, shift) for a in accs] == \
            tl.integer.multiply_by_quantized_multiplier(accs, m0, shift, rounding="double").tolist()


# ---- non-numbers, NaN, shapes, and who raised

def test_numeric_string_is_refused(capsys):
    assert not checks.check_qat_recovery(lambda f, p, q: "0.5")  # passed before: "0.5" == 0.5
    out = capsys.readouterr().out
    assert "    type: expected numbers, got text '0.5'\n" in out
    assert "hint: return numbers" in out


@pytest.mark.parametrize("answer, line", [(None, "type: expected numbers, got None"),
                                          (True, "type: expected a number, got the boolean True")])
def test_other_non_numbers_are_refused(answer, line, capsys):
    assert not checks.check_qat_recovery(lambda f, p, q: answer)
    assert f"    {line}\n" in capsys.readouterr().out


def test_all_nan_is_reported_as_nan(capsys):
    assert not checks.check_qat_recovery(lambda f, p, q: math.nan)
    out = capsys.readouterr().out
    assert "    NaN: got NaN where a number is expected (1 of 1 values)\n" in out
    assert "max difference" not in out


def test_missing_nan_is_reported(capsys):
    assert not checks.check_qat_recovery(lambda f, p, q: (q - p) / (f - p) if f != p else 0.0)
    out = capsys.readouterr().out
    assert "    NaN: expected NaN, got a number (1 of 1 values)\n" in out


def test_partly_nan_tuple_keeps_the_difference(capsys):
    assert not checks.check_ema_range(lambda r, decay, init: (math.nan, init[1]))
    out = capsys.readouterr().out
    assert "NaN: got NaN where a number is expected (1 of 2 values)" in out
    assert "max difference: 0.002" in out


def test_wrong_shape_is_named(capsys):
    assert not checks.check_int8_linear(lambda *a: int8_linear(*a).T)
    out = capsys.readouterr().out
    assert "    shape: expected (1, 2), got (2, 1)\n" in out and "max difference" not in out


def test_wrong_tuple_length_is_named(capsys):
    assert not checks.check_choose_qparams(lambda *a: (*tl.choose_qparams(*a), 0))
    assert "    length: expected a tuple of 2 values, got 3\n" in capsys.readouterr().out


def test_checker_errors_are_not_blamed_on_the_function(capsys):
    # returns numpy where a tensor is needed: the checker cannot use it, the function did not raise
    assert not checks.check_fake_quantize_ste(lambda x, *a: x.detach().numpy())
    out = capsys.readouterr().out
    assert "the check could not use your answer (TypeError" in out
    assert "your function raised" not in out and "Traceback" not in out


def test_what_the_learner_code_raises_is_blamed_on_it(capsys):
    import torch

    class BrokenBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return torch.round(x)

        @staticmethod
        def backward(ctx, grad_output):
            raise RuntimeError("oops in backward")

    assert not checks.check_fake_quantize_ste(lambda x, *a: BrokenBackward.apply(x))
    assert "your function raised RuntimeError: oops in backward" in capsys.readouterr().out

    def broken_generator(x, n):
        yield [x[:1].astype(np.float32)]
        raise ValueError("oops in the generator")

    assert not checks.check_representative_dataset(broken_generator)
    assert "your function raised ValueError: oops in the generator" in capsys.readouterr().out


def test_exact_check_of_an_array_answer_does_not_crash(capsys):
    assert not checks.check_largest_scale(lambda rows: np.array([r["name"] for r in rows]))
    out = capsys.readouterr().out
    assert out.startswith("✗ largest_scale: ") and "Traceback" not in out


# ---- hints follow what went wrong

def fake_quantize_plain_round(x, scale, zero_point, quant_min, quant_max):
    import torch

    q = torch.clamp(torch.round(x / scale) + zero_point, quant_min, quant_max)
    return (q - zero_point) * scale


def fake_quantize_detached(x, scale, zero_point, quant_min, quant_max):
    return fake_quantize_plain_round(x.detach(), scale, zero_point, quant_min, quant_max)


@pytest.mark.parametrize("name, wrong, words", [
    ("fake_quantize_ste", fake_quantize_plain_round, "torch.round has a zero gradient"),
    ("fake_quantize_ste", fake_quantize_detached, "no gradient reached x"),
    ("fake_quantize_ste", fake_quantize_no_mask, "also where the value was clamped"),
    ("quantize", lambda x, s, z, qmin, qmax: np.clip(np.trunc(x / s) + z, qmin, qmax).astype(int),
     "round before casting"),
    ("quantize", lambda x, s, z, qmin, qmax: np.clip(np.floor(x / s + 0.5) + z, qmin, qmax)
     .astype(int), "floor(v + 0.5) rounds every .5 up"),
    ("quantize", lambda x, s, z, qmin, qmax: (np.round(x / s) + z).astype(np.int8)
     if qmin < 0 else np.clip(np.round(x / s) + z, qmin, qmax).astype(int), "wrapped around"),
])
def test_hint_names_the_mistake(name, wrong, words, capsys):
    assert not checker(name)(wrong)
    out = capsys.readouterr().out
    hint = out.split("  hint: ", 1)[1]
    assert hint.count("\n") == 1 and words in hint, out


# ---- the framework exercises: more wrong answers a learner writes, each caught and named

def _tf():
    return tl.tflite_bridge.tf


FRAMEWORK_MISTAKES = [
    ("pt2e_keep_float", lambda g, x, n: pt2e_keep_float(g, x, n, convert=False),
     "the graph is only prepared", "'int8 weights': []"),
    ("pt2e_keep_float", lambda g, x, n: pt2e_keep_float(g, x, n, by_type=True),
     "set_module_type_qconfig(nn.Linear, None) keeps every Linear", "'float weights': ['fc1', 'fc2']"),
    ("pt2e_keep_float", lambda g, x, n: pt2e_keep_float(g, x, []),
     "for each name in keep_float", "'float weights': []"),
    ("pt2e_keep_float", lambda g, x, n: pt2e_keep_float(g, x, n, dynamic=True),
     "use the static default", "'activations': 'dynamic"),
    ("pt2e_keep_float", lambda g, x, n: pt2e_keep_float(g, x, n, calibrate=False),
     "calibrate between prepare_pt2e and convert_pt2e", "'accuracy': '10.0%"),
    ("pt2e_keep_float", lambda g, x, n: g, "the graph is only prepared", "'activations': 'not quantized'"),
    ("converter_settings", lambda c, m, d: converter_settings(c, m, d, data_always=True),
     "dynamic range gets no representative_dataset", "'activations': 'int8'"),
    ("converter_settings", lambda c, m, d: converter_settings(c, m, d, op_set_16x8=False),
     "16x8 is an op set", "'biases': 'int32'"),
    ("converter_settings", lambda c, m, d: converter_settings(c, m, d, float16_optimize=False),
     "float16 needs both", "'weights': 'float32'"),
    ("converter_settings", lambda c, m, d: converter_settings(c, m, d, with_data=False),
     "the integer modes need calibration data", "conversion failed"),
    ("converter_settings", lambda c, m, d: setattr(c, "optimizations", [_tf().lite.Optimize.DEFAULT])
     if m == "float" else converter_settings(c, m, d), "for mode 'float' change nothing",
     "'weights': 'int8'"),
    ("converter_settings", lambda c, m, d: converter_settings(c, m, d) or (
        setattr(c, "inference_input_type", _tf().int16) if m == "16x8" else None),
     "only integer_only changes the model's input and output", "'input': 'int16'"),
    ("annotate_except", lambda m, n: annotate_except(m, n, inverted=True),
     "the wrong way round", "'annotated': ['fc_out']"),
    ("annotate_except", lambda m, n: tl.tflite_bridge.load_tfmot().quantization.keras
     .quantize_annotate_model(m), "every layer was annotated", "'left as they are': []"),
    ("annotate_except", lambda m, n: tl.tflite_bridge.load_tfmot().quantization.keras
     .quantize_apply(annotate_except(m, n)), "return the annotated clone", "already quantize_apply"),
    ("annotate_except", lambda m, n: m, "wrap each layer to quantize", "no annotated layer"),
    ("annotate_except", lambda m, n: annotate_except(m, n[:1]),
     "leave every layer named in keep_float", "quantize_apply failed"),
]


@pytest.mark.parametrize("name, wrong, hint, actual", FRAMEWORK_MISTAKES)
def test_framework_mistake_is_caught_and_named(name, wrong, hint, actual, capsys):
    assert not checker(name)(wrong)
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {name}: ") and "Traceback" not in out, out
    actual_line = next(line for line in out.splitlines() if line.startswith("    actual:"))
    assert actual in actual_line, out
    assert hint in out.split("  hint: ", 1)[1], out


@pytest.mark.parametrize("name", ["pt2e_keep_float", "converter_settings", "annotate_except"])
def test_framework_exercise_not_implemented(name, capsys):
    def todo(*args):
        raise NotImplementedError

    result = checker(name)(todo)
    assert not result and not result.implemented
    assert "not implemented yet" in capsys.readouterr().out


def test_torch_not_implemented_is_not_an_unfinished_exercise(capsys):
    def calibrate_in_eval_mode(graph, x, names):
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        prepared = prepare_pt2e(graph, tl.torch_bridge.x86_quantizer(names))
        prepared.eval()  # an exported graph refuses: NotImplementedError from torch

    result = checks.check_pt2e_keep_float(calibrate_in_eval_mode)
    out = capsys.readouterr().out
    assert result.implemented and not result and "not implemented yet" not in out
    assert "your function raised NotImplementedError: Calling train() or eval() is not " \
        "supported for exported models.\n" in out
    assert "allow_exported_model_train_eval" in out.split("  hint: ", 1)[1]


def test_framework_checker_names_what_the_learner_returned(capsys):
    assert not checks.check_pt2e_keep_float(lambda g, x, n: "done")
    assert "actual:   'returned str, not the converted graph'" in capsys.readouterr().out
    assert not checks.check_annotate_except(lambda m, n: None)
    assert "actual:   'returned None, not a Keras model'" in capsys.readouterr().out
