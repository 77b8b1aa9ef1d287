"""Granularity and calibration: observers, group-wise quantization and simulated int8 inference.

References, named where they are used:
- torch.ao.quantization.MinMaxObserver / PerChannelMinMaxObserver / MovingAverageMinMaxObserver /
  MovingAveragePerChannelMinMaxObserver: qparams, bit for bit.
- NVIDIA pytorch-quantization's entropy calibration (``_compute_amax_entropy``), re-implemented
  below loop by loop as its source reads (digitize, Counter, scipy.stats.entropy).
- np.percentile, and a brute-force grid search with tl.fake_quantize and tl.metrics.mse.
- torchao.quantization.quant_primitives (choose_qparams_affine / quantize_affine with a block
  size of (1, group_size)) for group-wise quantization.
"""

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

import tutorial_lib as tl
from tutorial_lib import observers
from tutorial_lib.observers import (
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*quantiz.*deprecated:UserWarning")

RANGES = [(-128, 127), (0, 255), (-127, 127), (-8, 7), (0, 15)]
finite32 = st.floats(-1e4, 1e4, allow_nan=False, width=32)
values = st.lists(finite32, min_size=1, max_size=60)


def batches(seed=0, n=12, shape=(4, 3, 5)):
    rng = np.random.default_rng(seed)
    out = [rng.normal(0.2 * i, 1 + 0.3 * i, shape).astype(np.float32) for i in range(n)]
    out[3][0, 0, 0] = 40.0  # an outlier in one batch
    return out


def torch_observer(kind, quant_min, quant_max, symmetric, axis):
    tq = torch.ao.quantization
    dtype = torch.qint8 if quant_min < 0 else torch.quint8
    if axis is None:
        qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        cls = tq.MinMaxObserver if kind == "minmax" else tq.MovingAverageMinMaxObserver
        return cls(dtype=dtype, qscheme=qscheme, quant_min=quant_min, quant_max=quant_max)
    qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    cls = (tq.PerChannelMinMaxObserver if kind == "minmax"
           else tq.MovingAveragePerChannelMinMaxObserver)
    return cls(ch_axis=axis, dtype=dtype, qscheme=qscheme, quant_min=quant_min,
               quant_max=quant_max)


class TestMinMaxAgainstTorch:
    @pytest.mark.parametrize("kind", ["minmax", "moving_average"])
    @pytest.mark.parametrize("axis", [None, 0, 2])
    @pytest.mark.parametrize("symmetric", [False, True])
    @pytest.mark.parametrize("quant_range", RANGES)
    def test_bit_for_bit(self, kind, axis, symmetric, quant_range):
        if symmetric and quant_range[0] >= 0:
            pytest.skip("PyTorch's unsigned symmetric zero point differs by contract (test_affine)")
        ref = torch_observer(kind, *quant_range, symmetric, axis)
        cls = MinMaxObserver if kind == "minmax" else MovingAverageMinMaxObserver
        obs = cls(quant_min=quant_range[0], quant_max=quant_range[1], symmetric=symmetric,
                  axis=axis)
        for b in batches():
            ref(torch.from_numpy(b))
            assert obs.observe(b) is obs
        scale, zero_point = ref.calculate_qparams()
        got = obs.calculate_qparams()
        shape = np.shape(got.scale)
        np.testing.assert_array_equal(np.float32(got.scale), scale.numpy().reshape(shape))
        np.testing.assert_array_equal(got.zero_point, zero_point.numpy().reshape(shape))
        np.testing.assert_array_equal(obs.min_val, ref.min_val.numpy().reshape(shape))
        np.testing.assert_array_equal(obs.max_val, ref.max_val.numpy().reshape(shape))

    @settings(max_examples=100, deadline=None)
    @given(st.lists(values, min_size=1, max_size=5), st.sampled_from([0.01, 0.1, 0.5, 1.0]))
    def test_property_moving_average(self, batch_list, c):
        ref = torch.ao.quantization.MovingAverageMinMaxObserver(averaging_constant=c)
        obs = MovingAverageMinMaxObserver(c, 0, 255)
        for b in batch_list:
            x = np.array(b, np.float32)
            ref(torch.from_numpy(x))
            obs.observe(x)
        assert np.float32(obs.min_val) == ref.min_val.item()
        assert np.float32(obs.max_val) == ref.max_val.item()

    def test_moving_average_stays_inside_min_max(self):
        mm, ma = MinMaxObserver(), MovingAverageMinMaxObserver()
        for b in batches():
            mm.observe(b)
            ma.observe(b)
        lo, hi = ma.clipping_range()
        assert mm.min_val <= lo and hi <= mm.max_val

    def test_per_channel_range_is_a_copy(self):
        obs = MinMaxObserver(axis=0).observe(np.ones((2, 3)))
        lo, _ = obs.clipping_range()
        lo[0] = -5
        assert obs.clipping_range()[0].tolist() == [1.0, 1.0]


class TestPercentile:
    @settings(max_examples=200, deadline=None)
    @given(st.lists(values, min_size=1, max_size=4), st.floats(50.001, 100))
    def test_property_inside_min_max(self, batch_list, p):
        pct, mm = PercentileObserver(p), MinMaxObserver()
        for b in batch_list:
            pct.observe(b)
            mm.observe(b)
        lo, hi = pct.clipping_range()
        assert mm.min_val <= lo <= hi <= mm.max_val

    def test_equals_numpy_on_all_batches(self):
        obs = PercentileObserver(99.9)
        bs = batches()
        for b in bs:
            obs.observe(b)
        everything = np.concatenate([b.ravel() for b in bs])
        lo, hi = np.percentile(everything, [0.1, 99.9])
        assert obs.clipping_range() == (float(np.float32(lo)), float(np.float32(hi)))
        assert hi < 40.0  # the outlier is clipped

    def test_100_is_min_max(self):
        pct, mm = PercentileObserver(100), MinMaxObserver()
        for b in batches():
            pct.observe(b)
            mm.observe(b)
        assert pct.calculate_qparams() == mm.calculate_qparams()

    @pytest.mark.parametrize("axis", [0, -1])
    def test_per_channel(self, axis):
        bs = batches()
        obs = PercentileObserver(99.0, axis=axis)
        for b in bs:
            obs.observe(b)
        both = np.concatenate(bs, axis=0 if axis == -1 else 1)
        flat = np.moveaxis(both, axis, 0).reshape(both.shape[axis], -1)
        lo, hi = obs.clipping_range()
        np.testing.assert_array_equal(lo, np.percentile(flat, 1.0, axis=1).astype(np.float32))
        np.testing.assert_array_equal(hi, np.percentile(flat, 99.0, axis=1).astype(np.float32))
        assert obs.calculate_qparams().scale.shape == (both.shape[axis],)


def brute_force_mse_range(x, n_grid, quant_min, quant_max, symmetric):
    lo, hi = min(x.min(), 0.0), max(x.max(), 0.0)
    best = None
    for k in range(n_grid, 0, -1):  # widest first: ties keep the wider range
        f = k / n_grid
        qp = tl.choose_qparams(f * lo, f * hi, quant_min, quant_max, symmetric)
        err = tl.metrics.mse(x, tl.fake_quantize(x, *qp, quant_min, quant_max))
        if best is None or err < best[0]:
            best = (err, f)
    return best


class TestMSE:
    @settings(max_examples=150, deadline=None)
    @given(values, st.sampled_from(RANGES), st.booleans())
    def test_property_never_worse_than_min_max(self, v, quant_range, symmetric):
        x = np.array(v, np.float32)
        obs = MSEObserver(20, *quant_range, symmetric=symmetric).observe(x)
        mm = MinMaxObserver(*quant_range, symmetric=symmetric).observe(x)
        err_mse = tl.metrics.mse(x, tl.fake_quantize(x, *obs.calculate_qparams(), *quant_range))
        err_mm = tl.metrics.mse(x, tl.fake_quantize(x, *mm.calculate_qparams(), *quant_range))
        assert err_mse <= err_mm * (1 + 1e-6) + 1e-30
        lo, hi = obs.clipping_range()
        assert min(x.min(), 0) <= lo <= 0 <= hi <= max(x.max(), 0)

    @pytest.mark.parametrize("quant_range", [(-128, 127), (-8, 7), (0, 15)])
    @pytest.mark.parametrize("symmetric", [False, True])
    def test_equals_brute_force(self, quant_range, symmetric):
        x = np.concatenate([b.ravel() for b in batches()])
        x = np.maximum(x, 0) if quant_range[0] == 0 else x  # ReLU-like data, with zeros
        obs = MSEObserver(40, *quant_range, symmetric=symmetric).observe(x)
        err, f = brute_force_mse_range(x, 40, *quant_range, symmetric)
        fractions, errors = obs.search()
        assert fractions[np.argmin(errors)] == pytest.approx(f)
        assert errors.min() == pytest.approx(err, rel=1e-6)
        lo = min(float(x.min()), 0.0)
        assert obs.clipping_range()[0] == pytest.approx(f * lo, rel=1e-6)

    def test_clips_normal_data_at_4_bits(self):
        x = np.random.default_rng(0).normal(0, 1, 20_000)
        lo, hi = MSEObserver(quant_min=-8, quant_max=7, symmetric=True).observe(x).clipping_range()
        assert 2.2 < max(-lo, hi) < 2.8  # about 2.5 sigma (Banner et al. 2019)

    def test_all_zeros(self):
        obs = MSEObserver().observe(np.zeros(10))
        assert obs.clipping_range() == (0.0, 0.0)
        assert obs.calculate_qparams().scale == np.finfo(np.float32).eps


def nvidia_entropy_amax(calib_hist, calib_bin_edges, num_bits=8, unsigned=False, start_bin=128):
    """pytorch-quantization's _compute_amax_entropy (stride 1), step by step as its source reads."""
    bins = calib_hist[:].astype(np.float64)
    bins[0] = bins[1]
    divergences = []
    nbins = 1 << (num_bits - 1 + int(unsigned))
    new_density_counts = np.zeros(nbins, dtype=np.float64)
    for i in range(start_bin, len(bins) + 1):
        new_density_counts.fill(0)
        space = np.linspace(0, i, num=nbins + 1)
        digitized_space = np.digitize(range(i), space) - 1
        digitized_space[bins[:i] == 0] = -1
        for idx, digitized in enumerate(digitized_space):
            if digitized != -1:
                new_density_counts[digitized] += bins[idx]
        for key, val in Counter(digitized_space).items():
            if key != -1:
                new_density_counts[key] = new_density_counts[key] / val
        new_density = np.zeros(i, dtype=np.float64)
        for idx, digitized in enumerate(digitized_space):
            if digitized != -1:
                new_density[idx] = new_density_counts[digitized]
        reference_density = np.array(bins[:i])
        reference_density[-1] += np.sum(bins[i:])
        divergences.append(entropy(reference_density, new_density))
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
    return calib_bin_edges[last_argmin + start_bin]


def entropy_cases():
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.normal(0, 1, 30_000), 0)
    relu[:50] *= 6  # a long tail
    return {
        "laplace": rng.laplace(0, 1, 30_000),
        "laplace + outlier": np.concatenate([rng.laplace(0, 1, 20_000), [60.0]]),
        "relu": relu,
        "uniform": rng.uniform(-1, 1, 10_000),
        "few values": rng.normal(0, 1, 300),
    }


class TestEntropy:
    @pytest.mark.parametrize("name", list(entropy_cases()))
    @pytest.mark.parametrize("bits", [8, 4])
    @pytest.mark.parametrize("symmetric", [True, False])
    def test_equals_nvidia_reference(self, name, bits, symmetric):
        x = entropy_cases()[name].astype(np.float32)
        a = np.abs(x)
        hist, edges = np.histogram(a, bins=256, range=(0.0, float(a.max())))
        unsigned = bool(x.min() >= 0 and not symmetric)
        ref = nvidia_entropy_amax(hist, edges, bits, unsigned, start_bin=64)
        obs = EntropyObserver(256, *tl.qrange(bits), symmetric=symmetric, start_bin=64).observe(x)
        lo, hi = obs.clipping_range()
        assert np.float32(max(-lo, hi)) == np.float32(ref)

    def test_full_size_histogram_against_reference(self):
        x = entropy_cases()["laplace + outlier"].astype(np.float32)
        a = np.abs(x)
        hist, edges = np.histogram(a, bins=2048, range=(0.0, float(a.max())))
        obs = EntropyObserver(symmetric=True).observe(x)
        assert np.float32(obs.clipping_range()[1]) == np.float32(nvidia_entropy_amax(hist, edges))
        assert obs.clipping_range()[1] < 30  # the outlier at 60 is clipped

    @pytest.mark.parametrize("name", list(entropy_cases()))
    def test_inside_min_max(self, name):
        x = entropy_cases()[name].astype(np.float32)
        lo, hi = EntropyObserver().observe(x).clipping_range()
        assert x.min() <= lo <= hi <= x.max()

    def test_levels(self):
        relu = entropy_cases()["relu"]
        assert EntropyObserver().observe(relu).levels() == 256
        assert EntropyObserver(symmetric=True).observe(relu).levels() == 128
        assert EntropyObserver().observe(relu - 1).levels() == 128
        assert EntropyObserver(quant_min=-8, quant_max=7).observe(relu).levels() == 16

    def test_zeros(self):
        assert EntropyObserver().observe(np.zeros(5)).clipping_range() == (0.0, 0.0)

    def test_kl_divergence(self):
        p = np.array([1.0, 2.0, 3.0])
        assert observers.kl_divergence(p, 2 * p) == 0.0
        assert observers.kl_divergence(p, np.array([1.0, 0.0, 1.0])) == np.inf
        q = np.array([3.0, 2.0, 1.0])
        assert observers.kl_divergence(p, q) == pytest.approx(entropy(p, q))


class TestBadInput:
    @pytest.mark.parametrize("cls", [MinMaxObserver, MovingAverageMinMaxObserver,
                                     PercentileObserver, MSEObserver, EntropyObserver])
    @pytest.mark.parametrize("x, message", [([np.nan], "NaN"), ([1.0, np.inf], "NaN or infinite"),
                                            ([], "empty"), ("abc", "numbers")])
    def test_bad_data(self, cls, x, message):
        with pytest.raises(ValueError, match=message):
            cls().observe(x)

    @pytest.mark.parametrize("cls", [MinMaxObserver, MovingAverageMinMaxObserver,
                                     PercentileObserver, MSEObserver, EntropyObserver])
    def test_nothing_observed(self, cls):
        with pytest.raises(ValueError, match="observe"):
            cls().calculate_qparams()

    @pytest.mark.parametrize("p", [0, 50, 100.5, -1, True, "99", np.nan])
    def test_bad_percentile(self, p):
        with pytest.raises(ValueError, match="percentile"):
            PercentileObserver(p)

    @pytest.mark.parametrize("c", [0, -0.1, 1.5, True, "0.01"])
    def test_bad_averaging_constant(self, c):
        with pytest.raises(ValueError, match="averaging_constant"):
            MovingAverageMinMaxObserver(c)

    @pytest.mark.parametrize("make, message", [
        (lambda: MinMaxObserver(5, 5), "smaller than quant_max"),
        (lambda: MinMaxObserver(0.5, 10), "integer"),
        (lambda: MinMaxObserver(axis=1.0), "axis"),
        (lambda: MSEObserver(n_grid=0), "n_grid"),
        (lambda: EntropyObserver(bins=0), "bins"),
        (lambda: EntropyObserver(bins=100), "start_bin"),
    ])
    def test_bad_settings(self, make, message):
        with pytest.raises(ValueError, match=message):
            make()

    @pytest.mark.parametrize("cls", [MSEObserver, EntropyObserver])
    def test_per_tensor_only(self, cls):
        with pytest.raises(ValueError, match="per tensor only"):
            cls(axis=0)

    def test_channel_mismatch(self):
        obs = MinMaxObserver(axis=0).observe(np.ones((3, 2)))
        with pytest.raises(ValueError, match="seen 3 channels"):
            obs.observe(np.ones((4, 2)))
        with pytest.raises(ValueError, match="out of range"):
            MinMaxObserver(axis=2).observe(np.ones((3, 2)))
        with pytest.raises(ValueError, match="scalar"):
            MinMaxObserver(axis=0).observe(1.0)


class TestGroupwise:
    @pytest.mark.parametrize("symmetric", [False, True])
    @pytest.mark.parametrize("quant_range", RANGES)
    def test_against_torchao(self, symmetric, quant_range):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qprim = pytest.importorskip("torchao.quantization.quant_primitives")
        w = np.random.default_rng(0).normal(0, 1, (8, 64)).astype(np.float32)
        w[2, :16] += 3.0  # one group with an offset
        w[5, 16:32] = 0.0  # an all-zero group
        mapping = qprim.MappingType.SYMMETRIC if symmetric else qprim.MappingType.ASYMMETRIC
        dtype = torch.int8 if quant_range[0] < 0 else torch.uint8
        scale, zero_point = qprim.choose_qparams_affine(
            torch.from_numpy(w), mapping, (1, 16), dtype, *quant_range,
            eps=torch.finfo(torch.float32).eps, scale_dtype=torch.float32,
            zero_point_dtype=torch.int32)
        q_ref = qprim.quantize_affine(torch.from_numpy(w), (1, 16), scale, zero_point, dtype,
                                      *quant_range)
        qp = tl.groupwise.choose_qparams(w, 16, *quant_range, symmetric=symmetric)
        np.testing.assert_array_equal(qp.scale, scale.numpy())
        np.testing.assert_array_equal(qp.zero_point, zero_point.numpy())
        np.testing.assert_array_equal(tl.groupwise.quantize(w, *qp, 16, *quant_range), q_ref.numpy())

    def test_whole_row_is_per_channel(self):
        w = np.random.default_rng(1).normal(0, 1, (6, 12)).astype(np.float32)
        qp = tl.groupwise.choose_qparams(w, 12, -7, 7, symmetric=True)
        pc = MinMaxObserver(-7, 7, symmetric=True, axis=0).observe(w).calculate_qparams()
        np.testing.assert_array_equal(qp.scale[:, 0], pc.scale)
        np.testing.assert_array_equal(tl.groupwise.fake_quantize(w, *qp, 12, -7, 7),
                                      tl.fake_quantize(w, *pc, -7, 7, axis=0))

    @settings(max_examples=100, deadline=None)
    @given(st.lists(finite32, min_size=12, max_size=12), st.sampled_from([1, 2, 3, 4, 6, 12]),
           st.sampled_from(RANGES))
    def test_property_error_bound_and_shapes(self, v, group_size, quant_range):
        x = np.array(v, np.float32).reshape(1, 12)
        qp = tl.groupwise.choose_qparams(x, group_size, *quant_range)
        assert qp.scale.shape == (1, 12 // group_size)
        q = tl.groupwise.quantize(x, *qp, group_size, *quant_range)
        assert q.shape == x.shape and q.min() >= quant_range[0] and q.max() <= quant_range[1]
        x_hat = tl.groupwise.dequantize(q, *qp, group_size)
        step = np.repeat(qp.scale, group_size, axis=-1)
        assert np.all(np.abs(x - x_hat) <= step / 2 * (1 + 1e-5) + 1e-6 * np.abs(x))

    def test_smaller_groups_fit_better(self):
        w = np.random.default_rng(2).standard_t(3, (16, 128)).astype(np.float32)
        errors = []
        for g in (128, 32, 8):
            qp = tl.groupwise.choose_qparams(w, g, -7, 7, symmetric=True)
            errors.append(tl.metrics.mse(w, tl.groupwise.fake_quantize(w, *qp, g, -7, 7)))
        assert errors[0] > errors[1] > errors[2]

    @pytest.mark.parametrize("call, message", [
        (lambda: tl.groupwise.choose_qparams(np.ones((2, 10)), 3), "does not divide"),
        (lambda: tl.groupwise.choose_qparams(np.ones((2, 10)), 0), "positive integer"),
        (lambda: tl.groupwise.choose_qparams(np.ones((2, 10)), 2.0), "positive integer"),
        (lambda: tl.groupwise.choose_qparams(np.float32(1.0), 1), "at least one axis"),
        (lambda: tl.groupwise.choose_qparams([[np.nan, 1.0]], 2), "NaN"),
        (lambda: tl.groupwise.quantize(np.ones((2, 4)), np.ones((2, 1)), np.zeros((2, 1)), 2),
         "shape \\(2, 2\\)"),
        (lambda: tl.groupwise.dequantize(np.ones((2, 4), np.int8), np.ones(4), np.zeros(4), 2),
         "one per group"),
        (lambda: tl.groupwise.dequantize(np.ones((2, 4)), np.ones((2, 2)), np.zeros((2, 2)), 2),
         "integers"),
    ])
    def test_bad_input(self, call, message):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.fixture(scope="module")
def model_and_images():
    torch.manual_seed(0)
    model = tl.torch_bridge.CourseCNN().eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.2, 3.0)
            bn.weight.uniform_(0.2, 4.0)
            bn.bias.uniform_(-0.5, 0.5)
    x = np.random.default_rng(0).uniform(0, 1, (16, 1, 32, 32)).astype(np.float32)
    return model, x


class TestSimulatedInference:
    def test_fold_batchnorm_keeps_outputs(self, model_and_images):
        model, x = model_and_images
        folded = tl.torch_bridge.fold_batchnorm(model)
        assert isinstance(folded.bn2, torch.nn.Identity) and isinstance(model.bn2, torch.nn.BatchNorm2d)
        np.testing.assert_allclose(tl.torch_bridge.predict(folded, x),
                                   tl.torch_bridge.predict(model, x), rtol=1e-4, atol=1e-5)

    def test_layer_inputs(self, model_and_images):
        model, x = model_and_images
        layers = tl.torch_bridge.weighted_layers(model)
        assert layers == ["conv1", "conv2", "conv3", "fc1", "fc2"]
        inputs = tl.torch_bridge.layer_inputs(model, x, layers, batch_size=5)
        np.testing.assert_array_equal(inputs["conv1"], x)
        assert inputs["conv2"].shape == (16, 16, 16, 16) and inputs["fc1"].shape == (16, 1024)
        assert inputs["fc2"].min() >= 0  # after a ReLU
        assert not model.conv1._forward_pre_hooks  # the hooks are gone

    def test_fake_quantize_model_equals_numpy(self, model_and_images):
        model, x = model_and_images
        folded = tl.torch_bridge.fold_batchnorm(model)
        inputs = tl.torch_bridge.layer_inputs(folded, x, ["fc1", "fc2"])
        qparams = {n: MinMaxObserver().observe(v).calculate_qparams() for n, v in inputs.items()}
        qmodel = tl.torch_bridge.fake_quantize_model(folded, qparams, weight_bits=4)
        # weights: symmetric, narrow 4-bit range, per output channel
        w = folded.fc2.weight.detach().numpy()
        qp = MinMaxObserver(-7, 7, symmetric=True, axis=0).observe(w).calculate_qparams()
        np.testing.assert_array_equal(qmodel.fc2.weight.detach().numpy(),
                                      tl.fake_quantize(w, *qp, -7, 7, axis=0))
        assert len(np.unique(qmodel.conv2.weight.detach().numpy()[0])) <= 15
        # the input of fc2, recomputed by hand from the fake-quantized model up to fc1
        seen = tl.torch_bridge.layer_inputs(qmodel, x, ["fc2"])["fc2"]
        fc1_in = tl.torch_bridge.layer_inputs(qmodel, x, ["fc1"])["fc1"]  # already fake-quantized
        w1, b1 = (p.detach().numpy() for p in (qmodel.fc1.weight, qmodel.fc1.bias))
        by_hand = tl.fake_quantize(np.maximum(fc1_in @ w1.T + b1, 0), *qparams["fc2"])
        np.testing.assert_allclose(tl.fake_quantize(seen, *qparams["fc2"]), by_hand, atol=1e-5)
        assert np.all(np.isin(np.round(seen / qparams["fc2"].scale), np.arange(-128, 128) -
                              qparams["fc2"].zero_point))
        assert model.fc2.weight.grad is None and not folded.fc2._forward_pre_hooks

    def test_per_tensor_and_float_weights(self, model_and_images):
        model, x = model_and_images
        same = tl.torch_bridge.fake_quantize_model(model, {}, weight_bits=None)
        np.testing.assert_array_equal(tl.torch_bridge.predict(same, x),
                                      tl.torch_bridge.predict(model, x))
        pt = tl.torch_bridge.fake_quantize_model(model, {}, weight_bits=8, per_channel=False)
        w = pt.conv2.weight.detach().numpy()
        assert len(np.unique(np.round(w / np.abs(w).max() * 127))) <= 255

    def test_unknown_layer(self, model_and_images):
        model, _ = model_and_images
        with pytest.raises(ValueError, match="no layer"):
            tl.torch_bridge.fake_quantize_model(model, {"conv9": (0.1, 0)})
        with pytest.raises(ValueError, match="FUSE_GROUPS"):
            tl.torch_bridge.fold_batchnorm(torch.nn.Linear(2, 2))


class TestPictures:
    @pytest.fixture(autouse=True)
    def agg(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        yield
        plt.close("all")

    def test_clipping_ranges(self):
        x = np.random.default_rng(0).normal(0, 1, 1000)
        ax = tl.viz.plot_clipping_ranges(x, {"min-max": (-3.0, 3.0), "MSE": (0.0, 2.0)})
        assert len(ax.lines) == 3  # both ends of min-max, the upper end of MSE
        assert "MSE: [0, 2]" in [t.get_text() for t in ax.get_legend().get_texts()]

    def test_grouped_bars(self):
        ax = tl.viz.plot_grouped_bars({"a": [1.0, np.nan], "b": [2.0, 3.0]}, ["x", "y"], "dB")
        assert len(ax.patches) == 4
        with pytest.raises(ValueError, match="2 groups"):
            tl.viz.plot_grouped_bars({"a": [1.0]}, ["x", "y"], "dB")

    def test_metric_vs_samples(self):
        r = {"min-max": np.array([[1.0, 2.0], [3.0, 4.0]])}
        ax = tl.viz.plot_metric_vs_samples([1, 10], r, "dB")
        np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.5, 3.5])
