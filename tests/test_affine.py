"""The core verbs against their contracts and, bit for bit, against PyTorch.

References, named where they are used:
- torch.ao.quantization.MinMaxObserver: qparams (float32 arithmetic, eps floor).
- torch.fake_quantize_per_tensor_affine: round(x * (1/scale)) + zero_point, half to even.
- torch.quantize_per_channel: the same formula per channel.
- torch.quantize_per_tensor: FBGEMM computes round(fma(x, 1/scale, zero_point)), one rounding
  after adding the zero point; it can differ from the formula above only on (near) ties.
- TFLite reference kernels (AffineQuantize): round(x / scale) half away from zero.
"""


import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tutorial_lib as tl

pytestmark = pytest.mark.filterwarnings("ignore:.*quantiz.*deprecated:UserWarning")

finite32 = st.floats(-1e6, 1e6, allow_nan=False, width=32)


def torch_minmax_qparams(x: np.ndarray, quant_min, quant_max, symmetric=False, per_channel=False):
    if per_channel:
        qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        obs = torch.ao.quantization.PerChannelMinMaxObserver(
            ch_axis=0, dtype=torch.qint8 if quant_min < 0 else torch.quint8, qscheme=qscheme,
            quant_min=quant_min, quant_max=quant_max)
    else:
        qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        obs = torch.ao.quantization.MinMaxObserver(
            dtype=torch.qint8 if quant_min < 0 else torch.quint8, qscheme=qscheme,
            quant_min=quant_min, quant_max=quant_max)
    obs(torch.from_numpy(x))
    scale, zero_point = obs.calculate_qparams()
    return scale.numpy(), zero_point.numpy()


EDGE_INPUTS = {
    "random": np.random.default_rng(0).normal(0, 3, 1000),
    "constant": np.full(10, 2.5),
    "zeros": np.zeros(10),
    "all negative": -np.abs(np.random.default_rng(1).normal(0, 1, 100)) - 0.5,
    "all positive": np.abs(np.random.default_rng(2).normal(0, 1, 100)) + 0.5,
    "tiny range": np.random.default_rng(3).uniform(-1e-6, 1e-6, 100),
    "huge range": np.random.default_rng(4).uniform(-3e4, 1e5, 100),
    "subnormal": np.array([0.0, 1e-40, -1e-41]),
}
RANGES = [(-128, 127), (0, 255), (-127, 127), (-8, 7), (0, 15)]


class TestQrange:
    def test_contract(self):
        assert tl.qrange() == (-128, 127)
        assert tl.qrange(8, narrow=True) == (-127, 127)
        assert tl.qrange(8, signed=False) == (0, 255)
        assert tl.qrange(4) == (-8, 7)
        assert tl.qrange(2) == (-2, 1)
        assert tl.qrange(16, signed=False) == (0, 65535)

    @pytest.mark.parametrize("bits", [0, 1, 17, 3.5, True, "8"])
    def test_bad_bits(self, bits):
        with pytest.raises(ValueError, match="bits"):
            tl.qrange(bits)


class TestChooseQParamsAgainstTorch:
    @pytest.mark.parametrize("name", EDGE_INPUTS)
    @pytest.mark.parametrize("quant_range", RANGES)
    @pytest.mark.parametrize("symmetric", [False, True])
    def test_minmax_observer(self, name, quant_range, symmetric):
        x = EDGE_INPUTS[name].astype(np.float32)
        quant_min, quant_max = quant_range
        ref_scale, ref_zp = torch_minmax_qparams(x, quant_min, quant_max, symmetric)
        got = tl.choose_qparams(x.min(), x.max(), quant_min, quant_max, symmetric=symmetric)
        assert np.float32(got.scale) == ref_scale.item()  # bit for bit
        if symmetric and quant_min >= 0:
            # PyTorch uses (quant_min + quant_max) // 2 for a customized unsigned range and 128
            # for the default one; the course's contract is (quant_min + quant_max + 1) // 2.
            assert got.zero_point == (quant_min + quant_max + 1) // 2
        else:
            assert got.zero_point == ref_zp.item()

    @pytest.mark.parametrize("symmetric", [False, True])
    def test_per_channel_observer(self, symmetric):
        w = np.random.default_rng(5).normal(0, 1, (16, 3, 3, 3)).astype(np.float32)
        w[3] = 0.0  # a dead channel
        w[4] = np.abs(w[4])  # all positive
        ref_scale, ref_zp = torch_minmax_qparams(w, -128, 127, symmetric, per_channel=True)
        flat = w.reshape(16, -1)
        got = tl.choose_qparams(flat.min(1), flat.max(1), -128, 127, symmetric=symmetric)
        np.testing.assert_array_equal(got.scale, ref_scale)
        np.testing.assert_array_equal(got.zero_point, ref_zp)

    @settings(max_examples=300, deadline=None)
    @given(finite32, finite32, st.sampled_from(RANGES), st.booleans())
    def test_property_minmax_observer(self, a, b, quant_range, symmetric):
        lo, hi = min(a, b), max(a, b)
        x = np.array([lo, hi], np.float32)
        ref_scale, ref_zp = torch_minmax_qparams(x, *quant_range, symmetric)
        got = tl.choose_qparams(lo, hi, *quant_range, symmetric=symmetric)
        assert np.float32(got.scale) == ref_scale.item()
        if not (symmetric and quant_range[0] >= 0):
            assert got.zero_point == ref_zp.item()


class TestChooseQParamsContract:
    def test_zero_is_exact(self):
        for lo, hi in [(-1.0, 3.0), (0.2, 5.0), (-7.0, -0.1), (-0.3, 0.7)]:
            qp = tl.choose_qparams(lo, hi, 0, 255)
            assert tl.fake_quantize(0.0, *qp, 0, 255) == 0.0

    def test_range_is_covered(self):
        qp = tl.choose_qparams(-1.0, 3.0, -128, 127)
        q = tl.quantize([-1.0, 3.0], *qp)
        assert q.tolist() == [-128, 127]

    def test_eps_floor(self):
        assert tl.choose_qparams(0.0, 0.0).scale == np.finfo(np.float32).eps

    def test_returns_python_scalars_for_scalars(self):
        qp = tl.choose_qparams(-1.0, 1.0)
        assert type(qp.scale) is float and type(qp.zero_point) is int
        assert isinstance(qp, tl.QParams) and qp._fields == ("scale", "zero_point")

    def test_unsigned_symmetric_zero_point(self):
        assert tl.choose_qparams(-1.0, 1.0, 0, 255, symmetric=True).zero_point == 128
        assert tl.choose_qparams(-1.0, 1.0, 0, 15, symmetric=True).zero_point == 8

    @pytest.mark.parametrize(
        "args, message",
        [
            ((np.nan, 1.0), "NaN"),
            ((-np.inf, 1.0), "NaN or infinite"),
            ((2.0, 1.0), "must not exceed"),
            (([0.0, 1.0], [1.0]), "same length"),
            ((np.zeros((2, 2)), np.ones((2, 2))), "1-D"),
            (([], []), "empty"),
            ((-1.0, 1.0, 5, 5), "smaller than quant_max"),
            ((-1.0, 1.0, 10, -10), "smaller than quant_max"),
            ((-1.0, 1.0, 0.5, 10), "integer"),
        ],
    )
    def test_bad_input(self, args, message):
        with pytest.raises(ValueError, match=message):
            tl.choose_qparams(*args)


class TestQuantizeAgainstTorch:
    @pytest.mark.parametrize("scale", [0.0213, 0.1, 1 / 3, 0.00214854861, 0.7, 1e-4])
    @pytest.mark.parametrize("zero_point", [0, 3, -7])
    def test_fake_quantize_per_tensor(self, scale, zero_point):
        x = np.random.default_rng(0).normal(0, 3, 200_000).astype(np.float32)
        scale = float(np.float32(scale))
        ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, zero_point, -128, 127)
        np.testing.assert_array_equal(tl.fake_quantize(x, scale, zero_point), ref.numpy())

    def test_ties_half_to_even(self):
        # Exact .5 ties (scale 0.5 is a power of two, so x / scale is exact).
        x = np.arange(-20, 21, dtype=np.float32) * 0.25
        for zero_point in (0, 1, -3):
            ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), 0.5, zero_point, -128, 127)
            np.testing.assert_array_equal(tl.fake_quantize(x, 0.5, zero_point), ref.numpy())
        assert tl.quantize([0.25, 0.75, 1.25, -0.25, -0.75], 0.5, 0).tolist() == [0, 2, 2, 0, -2]

    @pytest.mark.parametrize("quant_range, dtype", [((-128, 127), torch.qint8), ((0, 255), torch.quint8)])
    def test_quantize_per_tensor(self, quant_range, dtype):
        x = np.random.default_rng(1).normal(0, 3, 200_000).astype(np.float32)
        for scale in (0.0213, 0.1, 1 / 3, 0.05):
            scale = float(np.float32(scale))
            zero_point = 0 if dtype == torch.qint8 else 128
            ref = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point, dtype).int_repr()
            got = tl.quantize(x, scale, zero_point, *quant_range)
            assert got.dtype == (np.int8 if dtype == torch.qint8 else np.uint8)
            differ = got != ref.numpy()
            # Equal everywhere except where x * (1/scale) sits within float32 rounding of a tie.
            t = x[differ].astype(np.float64) / scale
            assert np.all(np.abs(np.abs(t - np.floor(t)) - 0.5) < 1e-4)
            assert differ.sum() <= 10

    def test_quantize_per_tensor_odd_zero_point_tie(self):
        # Documented difference: FBGEMM rounds x/scale + zero_point once, so a tie next to an odd
        # zero point goes to the even *sum*; the course's formula rounds before adding.
        ref = torch.quantize_per_tensor(torch.tensor([0.25]), 0.5, 1, torch.qint8).int_repr()
        assert ref.item() == 2
        assert tl.quantize([0.25], 0.5, 1).tolist() == [1]
        assert torch.fake_quantize_per_tensor_affine(torch.tensor([0.25]), 0.5, 1, -128, 127).item() == 0.0

    @pytest.mark.parametrize("axis", [0, 1, -1])
    def test_quantize_per_channel(self, axis):
        w = np.random.default_rng(2).normal(0, 1, (4, 6, 5)).astype(np.float32)
        n = w.shape[axis]
        rng = np.random.default_rng(3)
        scales = rng.uniform(0.005, 0.05, n).astype(np.float32)
        zero_points = rng.integers(-10, 10, n)
        ref = torch.quantize_per_channel(torch.from_numpy(w), torch.from_numpy(scales).double(),
                                         torch.from_numpy(zero_points), axis % 3, torch.qint8)
        got = tl.quantize(w, scales, zero_points, axis=axis)
        np.testing.assert_array_equal(got, ref.int_repr().numpy())
        np.testing.assert_array_equal(tl.dequantize(got, scales, zero_points, axis=axis),
                                      ref.dequantize().numpy())

    def test_dequantize_per_tensor(self):
        x = np.random.default_rng(4).normal(0, 3, 10_000).astype(np.float32)
        ref = torch.quantize_per_tensor(torch.from_numpy(x), 0.0375, 5, torch.qint8)
        q = ref.int_repr().numpy()
        np.testing.assert_array_equal(tl.dequantize(q, 0.0375, 5), ref.dequantize().numpy())

    @settings(max_examples=200, deadline=None)
    @given(st.lists(finite32, min_size=1, max_size=50), st.sampled_from(RANGES))
    def test_property_fake_quantize(self, values, quant_range):
        x = np.array(values, np.float32)
        qp = tl.choose_qparams(x.min(), x.max(), *quant_range)
        ref = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), qp.scale, qp.zero_point,
                                                    *quant_range)
        np.testing.assert_array_equal(tl.fake_quantize(x, *qp, *quant_range), ref.numpy())


class TestQuantizeContract:
    def test_half_away_ties(self):
        x = [0.25, 0.75, -0.25, -0.75, 1.25]
        assert tl.quantize(x, 0.5, 0, rounding="half_away").tolist() == [1, 2, -1, -2, 3]
        assert tl.quantize(x, 0.5, 0, rounding="half_even").tolist() == [0, 2, 0, -2, 2]

    def test_half_away_divides_like_tflite(self):
        # TFLite's reference AffineQuantize computes round(x / scale), not x * (1 / scale).
        x = np.random.default_rng(6).normal(0, 3, 100_000).astype(np.float32)
        scale = np.float32(0.0213)
        v = x / scale
        expected = np.clip(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)), -128, 127)
        np.testing.assert_array_equal(tl.quantize(x, scale, 0, rounding="half_away"), expected)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(finite32, min_size=1, max_size=50), st.sampled_from(RANGES), st.booleans())
    def test_property_error_bound(self, values, quant_range, symmetric):
        x = np.array(values, np.float32)
        qp = tl.choose_qparams(x.min(), x.max(), *quant_range, symmetric=symmetric)
        q = tl.quantize(x, *qp, *quant_range)
        assert q.min() >= quant_range[0] and q.max() <= quant_range[1]
        x_hat = tl.dequantize(q, *qp)
        # Inside the range the error is at most half a step (plus float32 rounding).
        assert np.all(np.abs(x - x_hat) <= qp.scale / 2 * (1 + 1e-5) + 1e-6 * np.abs(x))

    def test_no_wrap_around(self):
        q = tl.quantize([1000.0, -1000.0], 0.01, 0)
        assert q.dtype == np.int8 and q.tolist() == [127, -128]
        assert tl.quantize([70000.0], 1.0, 0, 0, 65535).dtype == np.uint16
        assert tl.quantize([1.0], 1.0, 0, -(2**20), 2**20).dtype == np.int32

    def test_dtype_by_range(self):
        assert tl.quantize([1.0], 0.1, 0, *tl.qrange(4)).dtype == np.int8
        assert tl.quantize([1.0], 0.1, 0, *tl.qrange(8, signed=False)).dtype == np.uint8
        assert tl.quantize([1.0], 0.1, 0, *tl.qrange(16)).dtype == np.int16

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            (dict(x=[np.nan], scale=0.1, zero_point=0), "NaN"),
            (dict(x=[np.inf], scale=0.1, zero_point=0), "NaN or infinite"),
            (dict(x=[], scale=0.1, zero_point=0), "empty"),
            (dict(x=[1.0], scale=0.0, zero_point=0), "positive"),
            (dict(x=[1.0], scale=-1.0, zero_point=0), "positive"),
            (dict(x=[1.0], scale=np.nan, zero_point=0), "NaN"),
            (dict(x=[1.0], scale=0.1, zero_point=0.5), "integer"),
            (dict(x=[1.0], scale=0.1, zero_point=0, quant_min=0, quant_max=0), "smaller"),
            (dict(x=np.ones((2, 3)), scale=[0.1, 0.2], zero_point=[0, 0]), "axis="),
            (dict(x=np.ones((2, 3)), scale=[0.1, 0.2], zero_point=[0, 0], axis=1), "shape \\(3,\\)"),
            (dict(x=np.ones((2, 3)), scale=[0.1, 0.2], zero_point=[0], axis=0), "one per channel"),
            (dict(x=np.ones((2, 3)), scale=[0.1, 0.2], zero_point=[0, 0], axis=2), "out of range"),
            (dict(x=[1.0], scale=0.1, zero_point=0, rounding="up"), "rounding"),
        ],
    )
    def test_bad_input(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            tl.quantize(**kwargs)

    def test_dequantize_bad_input(self):
        with pytest.raises(ValueError, match="integers"):
            tl.dequantize([0.5], 0.1, 0)
        with pytest.raises(ValueError, match="empty"):
            tl.dequantize(np.array([], np.int8), 0.1, 0)

    def test_dequantize_no_overflow(self):
        q = np.array([-128, 127], np.int8)
        assert tl.dequantize(q, 0.5, 10).tolist() == [-69.0, 58.5]
        assert tl.dequantize(np.array([0, 255], np.uint8), 1.0, 128).tolist() == [-128.0, 127.0]
