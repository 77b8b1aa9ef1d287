"""tutorial_lib.qat and tutorial_lib.tf_fake_quant against the frameworks' own fake-quant ops.

References, named where they are used:
- torch.fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine: forward and gradient,
  bit for bit;
- torch._fake_quantize_learnable_per_tensor_affine / _per_channel_affine: LSQ's forward and
  gradients (to float rounding);
- torch.ao.quantization.FakeQuantize with (per-channel) MovingAverageMinMaxObserver: the module,
  step by step;
- tf.quantization.fake_quant_with_min_max_vars and its registered gradient: bit for bit;
- tl.quantize / tl.dequantize (tested against numpy in test_affine.py) for convert_qat.
"""

import numpy as np
import pytest
import torch
from torch import nn

import tutorial_lib as tl
from tutorial_lib import qat
from tutorial_lib import torch_bridge as tb


def _random_case(g, bits, signed, n=2000):
    """Values spread over the grid and well beyond it, plus exact .5 ties of the grid."""
    quant_min, quant_max = tl.qrange(bits, signed=signed)
    scale = float(torch.rand(1, generator=g) * 0.1 + 1e-3)
    zero_point = int(torch.randint(quant_min, quant_max + 1, (1,), generator=g))
    x = torch.randn(n, generator=g) * scale * (quant_max - quant_min)  # about a third clamped
    x[:100] = (torch.randint(-40, 40, (100,), generator=g).float() + 0.5) * scale
    return x, scale, zero_point, quant_min, quant_max


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_ste_equals_torch_per_tensor(bits, signed):
    g = torch.Generator().manual_seed(bits * 2 + signed)
    for _ in range(10):
        x, scale, zero_point, quant_min, quant_max = _random_case(g, bits, signed)
        grad = torch.randn(len(x), generator=g)
        ours, ref = x.clone().requires_grad_(), x.clone().requires_grad_()
        y = qat.fake_quantize_ste(ours, scale, zero_point, quant_min, quant_max)
        y_ref = torch.fake_quantize_per_tensor_affine(ref, scale, zero_point, quant_min, quant_max)
        y.backward(grad)
        y_ref.backward(grad)
        assert torch.equal(y, y_ref)
        assert torch.equal(ours.grad, ref.grad)
        clamped = ours.grad == 0
        assert 0 < clamped.float().mean() < 1  # the case does exercise both sides


def test_ste_equals_torch_per_channel():
    g = torch.Generator().manual_seed(0)
    for axis in (0, 1, -1):
        w = torch.randn(6, 5, 3, 3, generator=g)
        n = w.shape[axis]
        scale = torch.rand(n, generator=g) * 0.2 + 0.05
        zero_point = torch.randint(-3, 4, (n,), generator=g, dtype=torch.int32)
        grad = torch.randn_like(w)
        ours, ref = w.clone().requires_grad_(), w.clone().requires_grad_()
        y = qat.fake_quantize_ste(ours, scale, zero_point, -8, 7, axis=axis)
        y_ref = torch.fake_quantize_per_channel_affine(ref, scale, zero_point, axis % 4, -8, 7)
        y.backward(grad)
        y_ref.backward(grad)
        assert torch.equal(y, y_ref) and torch.equal(ours.grad, ref.grad)


def test_ste_is_a_named_autograd_function_and_equals_tl_fake_quantize():
    x = torch.linspace(-3, 3, 601, requires_grad=True)
    y = qat.fake_quantize_ste(x, 0.1, 3, -16, 15)
    assert type(y.grad_fn).__name__ == "FakeQuantizeSTEBackward"
    np.testing.assert_array_equal(y.detach().numpy(),
                                  tl.fake_quantize(x.detach().numpy(), 0.1, 3, -16, 15))


@pytest.mark.parametrize("bad, match", [
    (dict(scale=0.0), "positive"), (dict(scale=float("nan")), "positive"),
    (dict(zero_point=0.5), "integer"), (dict(quant_min=5, quant_max=5), "smaller"),
    (dict(scale=[0.1, 0.2]), "axis="), (dict(scale=[0.1, 0.2], zero_point=[0, 0], axis=0), "(3,)"),
    (dict(x=np.zeros(3)), "torch tensor"),
])
def test_ste_rejects_bad_input(bad, match):
    args = dict(x=torch.zeros(3), scale=0.1, zero_point=0, quant_min=-8, quant_max=7)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        qat.fake_quantize_ste(**args)


def test_lsq_equals_torch_learnable():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(500, generator=g) * 2
        grad = torch.randn(500, generator=g)
        s_ours, s_ref = torch.tensor([0.3], requires_grad=True), torch.tensor([0.3], requires_grad=True)
        x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
        y = qat.fake_quantize_lsq(x_ours, s_ours.reshape(()), 2, -8, 7, grad_factor=0.5)
        y_ref = torch._fake_quantize_learnable_per_tensor_affine(
            x_ref, s_ref, torch.tensor([2.0]), -8, 7, 0.5)
        y.backward(grad)
        y_ref.backward(grad)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(s_ours.grad, s_ref.grad, rtol=1e-5, atol=1e-5)
    # per channel
    w = torch.randn(4, 10, generator=g)
    s_ours = torch.tensor([0.1, 0.2, 0.3, 0.4], requires_grad=True)
    s_ref = s_ours.detach().clone().requires_grad_()
    y = qat.fake_quantize_lsq(w, s_ours, torch.zeros(4, dtype=torch.int32), -7, 7, axis=0)
    y_ref = torch._fake_quantize_learnable_per_channel_affine(w, s_ref, torch.zeros(4), 0, -7, 7,
                                                              1.0)
    y.sum().backward()
    y_ref.sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(s_ours.grad, s_ref.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_fake_quantize_module_equals_torch_ao(per_channel):
    from torch.ao import quantization as tq

    g = torch.Generator().manual_seed(2)
    if per_channel:
        ours = qat.FakeQuantize(-7, 7, symmetric=True, axis=0)
        ref = tq.FakeQuantize(tq.MovingAveragePerChannelMinMaxObserver, quant_min=-7, quant_max=7,
                              dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)
        shape = (4, 3, 3, 3)
    else:
        ours = qat.FakeQuantize(-8, 7)
        ref = tq.FakeQuantize(tq.MovingAverageMinMaxObserver, quant_min=-8, quant_max=7,
                              dtype=torch.qint8, qscheme=torch.per_tensor_affine)
        shape = (8, 16)
    for step in range(6):
        x = torch.randn(shape, generator=g) * (1 + step) + step * 0.3
        assert torch.equal(ours(x), ref(x)), step
        assert torch.equal(ours.scale, ref.scale) and torch.equal(ours.zero_point.int(),
                                                                   ref.zero_point.int())
    # frozen: the qparams stay, the output still snaps to the grid
    ours.observer_enabled = False
    ref.disable_observer()
    x = torch.randn(shape, generator=g) * 10
    assert torch.equal(ours(x), ref(x))


def test_fake_quantize_switches_and_errors():
    fq = qat.FakeQuantize(-8, 7)
    with pytest.raises(ValueError, match="not observed"):
        fq.calculate_qparams()
    fq.observer_enabled = False
    with pytest.raises(ValueError, match="not observed"):
        fq(torch.ones(3))
    fq.observer_enabled = True
    x = torch.tensor([-1.0, 0.05, 2.0])
    fq.fake_quant_enabled = False
    assert torch.equal(fq(x), x)  # observes, passes through
    assert fq.steps == 1
    fq.fake_quant_enabled = True
    qp = fq.calculate_qparams()
    fq.observer_enabled = False
    fq(x * 100)
    assert fq.calculate_qparams() == qp and fq.bits == 4


class _TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.relu(self.conv(x))))


def test_prepare_wraps_weights_and_inputs():
    model = _TinyCNN()
    prepared = qat.prepare_qat(model, bits=4, layer_bits={"fc": 8})
    assert isinstance(model.conv, nn.Conv2d)  # the original is untouched
    conv, fc = prepared.conv, prepared.fc
    assert isinstance(conv, qat.FakeQuantizedLayer) and isinstance(fc, qat.FakeQuantizedLayer)
    assert (conv.weight_fake_quant.quant_min, conv.weight_fake_quant.quant_max) == (-7, 7)
    assert (conv.input_fake_quant.quant_min, conv.input_fake_quant.quant_max) == (-8, 7)
    assert (fc.weight_fake_quant.quant_min, fc.input_fake_quant.quant_max) == (-127, 127)
    assert conv.weight_fake_quant.axis == 0 and conv.input_fake_quant.axis is None
    with pytest.raises(ValueError, match="unknown layer"):
        qat.prepare_qat(model, layer_bits={"fc9": 8})
    with pytest.raises(ValueError, match="already prepared"):
        qat.prepare_qat(prepared)
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        qat.prepare_qat(nn.ReLU())


def test_prepared_model_with_fake_quant_off_is_the_float_model():
    model = _TinyCNN().eval()
    x = torch.rand(16, 1, 8, 8)
    prepared = qat.enable_fake_quant(qat.prepare_qat(model, bits=2), False)
    assert torch.equal(prepared(x), model(x))


def test_forward_equals_fake_quantized_layers_by_hand():
    model = _TinyCNN().eval()
    x = torch.rand(16, 1, 8, 8)
    prepared = qat.calibrate(qat.prepare_qat(model, bits=4), x)
    qat.enable_observer(prepared, False)
    layers = qat.convert_qat(prepared)
    # by hand, with tl.fake_quantize in numpy
    h = x.numpy()
    for name in ("conv", "fc"):
        q = layers[name]
        h = tl.fake_quantize(h, *q.input_qparams, *q.input_range)
        w_hat = tl.dequantize(q.weight_q, *q.weight_qparams, axis=0)
        layer = getattr(model, name)
        with torch.no_grad():
            if name == "conv":
                h = model.relu(nn.functional.conv2d(torch.from_numpy(h), torch.from_numpy(w_hat),
                                                    layer.bias, padding=1)).flatten(1).numpy()
            else:
                h = nn.functional.linear(torch.from_numpy(h), torch.from_numpy(w_hat),
                                         layer.bias).numpy()
    with torch.no_grad():
        np.testing.assert_allclose(prepared(x).numpy(), h, rtol=1e-5, atol=1e-5)


def test_convert_gives_integer_weights_on_the_trained_grid():
    model = _TinyCNN().eval()
    prepared = qat.calibrate(qat.prepare_qat(model, bits=3), torch.rand(8, 1, 8, 8))
    layers = qat.convert_qat(prepared)
    for name, q in layers.items():
        lo, hi = q.weight_range
        assert (lo, hi) == (-3, 3)
        assert q.weight_q.min() >= lo and q.weight_q.max() <= hi
        assert np.issubdtype(q.weight_q.dtype, np.integer)
        fq = prepared.get_submodule(name).weight_fake_quant
        w_hat = fq.fake_quantize(prepared.get_submodule(name).layer.weight).detach().numpy()
        np.testing.assert_array_equal(tl.dequantize(q.weight_q, *q.weight_qparams, axis=0), w_hat)
    with pytest.raises(ValueError, match="prepare_qat"):
        qat.convert_qat(model)


def test_observers_frozen_keep_scales_through_training_and_eval():
    data = tl.data.load_digits(size=8)
    prepared = qat.prepare_qat(_TinyCNN(), bits=4)
    qat.train_qat(prepared, data, epochs=1, freeze_observers_after=0)
    scales = [fq.scale.clone() for fq in prepared.modules() if isinstance(fq, qat.FakeQuantize)]
    assert all(not fq.observer_enabled for fq in prepared.modules()
               if isinstance(fq, qat.FakeQuantize))
    tb.accuracy(prepared, data.x_test * 5, data.y_test)  # evaluating must not move the ranges
    after = [fq.scale for fq in prepared.modules() if isinstance(fq, qat.FakeQuantize)]
    assert all(torch.equal(a, b) for a, b in zip(scales, after, strict=True))


def test_lsq_scales_learn():
    data = tl.data.load_digits(size=8)
    prepared = qat.prepare_qat(_TinyCNN(), bits=3, learnable=True)
    qat.calibrate(prepared, data.x_train[:64])
    before = prepared.fc.input_fake_quant.scale.detach().clone()
    qat.train_qat(prepared, data, epochs=1)
    assert isinstance(prepared.fc.input_fake_quant.scale, nn.Parameter)
    assert not torch.equal(prepared.fc.input_fake_quant.scale.detach(), before)


def test_strip_qat_gives_back_the_float_layers():
    prepared = qat.prepare_qat(_TinyCNN(), bits=4)
    plain = qat.strip_qat(prepared)
    assert isinstance(plain.conv, nn.Conv2d) and isinstance(prepared.conv, qat.FakeQuantizedLayer)


def test_four_bit_qat_recovers_at_least_half_of_what_ptq_loses():
    """The course target, on the course CNN (BatchNorm folded), 4-bit weights and activations."""
    data = tl.data.load_digits(size=32)
    folded = tb.fold_batchnorm(tb.trained_cnn())
    float_acc = tb.accuracy(folded, data.x_test, data.y_test)
    ptq = qat.prepare_qat(folded, bits=4, per_channel=False)
    qat.enable_observer(qat.calibrate(ptq, data.x_train[:512]), False)
    ptq_acc = tb.accuracy(ptq, data.x_test, data.y_test)
    trained = qat.prepare_qat(folded, bits=4, per_channel=False)
    qat.calibrate(trained, data.x_train[:512])
    qat_acc = tb.accuracy(qat.train_qat(trained, data, epochs=1, lr=1e-3), data.x_test,
                          data.y_test)
    assert float_acc - ptq_acc >= 0.01, "4-bit PTQ should lose accuracy here, or the test is moot"
    assert qat_acc - ptq_acc >= 0.5 * (float_acc - ptq_acc)


# ---------------------------------------------------------------- TensorFlow

@pytest.fixture(scope="module")
def tfq():
    return pytest.importorskip("tutorial_lib.tf_fake_quant")


@pytest.mark.parametrize("bits, narrow", [(2, False), (3, True), (4, False), (8, False),
                                          (8, True)])
def test_tf_fake_quant_equals_tensorflow(tfq, bits, narrow):
    tf = tfq.tf
    rng = np.random.default_rng(bits + narrow)
    weights = tf.range(1000, dtype=tf.float32) / 1000
    for _ in range(10):
        lo = float(rng.uniform(-3, 1))
        hi = lo + float(rng.uniform(0.1, 4))
        x = tf.constant(rng.normal(0, 2, 1000).astype(np.float32))
        mn, mx = tf.Variable(lo), tf.Variable(hi)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            ours = tfq.fake_quant_tf(x, mn, mx, bits, narrow)
            ref = tf.quantization.fake_quant_with_min_max_vars(x, mn, mx, num_bits=bits,
                                                               narrow_range=narrow)
            loss_ours, loss_ref = tf.reduce_sum(ours * weights), tf.reduce_sum(ref * weights)
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())
        for a, b in zip(tape.gradient(loss_ours, [x, mn, mx]), tape.gradient(loss_ref, [x, mn, mx]),
                        strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_nudged_range_and_qparams(tfq):
    tf = tfq.tf
    # all positive: TF slides the range down to start at 0 and keeps the step
    nudged_min, nudged_max, scale = tfq.nudged_range(0.5, 3.5, num_bits=2)
    assert (nudged_min, nudged_max, scale) == (0.0, 3.0, 1.0)
    out = tf.quantization.fake_quant_with_min_max_vars(tf.constant([0.0, 3.4, 3.6]), 0.5, 3.5,
                                                       num_bits=2).numpy()
    assert out.tolist() == [0.0, 3.0, 3.0]
    # away from ties, tl.fake_quantize with the nudged qparams equals TensorFlow's op
    x = np.random.default_rng(0).normal(0, 1, 1000).astype(np.float32)
    qp = tfq.nudged_qparams(-1.1, 2.3, num_bits=4)
    ref = tf.quantization.fake_quant_with_min_max_vars(x, -1.1, 2.3, num_bits=4).numpy()
    np.testing.assert_allclose(tl.fake_quantize(x, *qp, 0, 15), ref, atol=1e-6)
    with pytest.raises(ValueError, match="smaller"):
        tfq.nudged_range(1.0, 1.0)
    with pytest.raises(ValueError, match="num_bits"):
        tfq.nudged_range(-1.0, 1.0, num_bits=1)
