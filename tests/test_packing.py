"""Sub-byte packing: exact round trips, the documented bit order, sizes and bad input.

Reference for the bit order: ONNX Runtime's Int4x2 (``(val1 & 0xF) << 4 | (val0 & 0xF)``) and
torchao's ``pack_uint4`` (MX formats), both low nibble first; the int2 order is written out by
hand below.
"""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tutorial_lib as tl
from tutorial_lib.packing import pack_int2, pack_int4, unpack_int2, unpack_int4

FORMATS = {  # name: (pack, unpack, bits)
    "int4": (pack_int4, unpack_int4, 4),
    "int2": (pack_int2, unpack_int2, 2),
}


def value_lists(bits, signed, min_size=1, max_size=101):
    lo, hi = tl.qrange(bits, signed=signed)
    return st.lists(st.integers(lo, hi), min_size=min_size, max_size=max_size)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("signed", [True, False])
class TestRoundTrip:
    @settings(max_examples=300, deadline=None)
    @given(data=st.data())
    def test_property_round_trip(self, name, signed, data):
        pack, unpack, bits = FORMATS[name]
        q = np.array(data.draw(value_lists(bits, signed)), dtype=np.int64)
        packed = pack(q, signed=signed)
        assert packed.dtype == np.uint8 and packed.ndim == 1
        assert len(packed) == -(-len(q) * bits // 8) == tl.metrics.size_bytes(len(q), bits)
        out = unpack(packed, len(q), signed=signed)
        assert out.dtype == (np.int8 if signed else np.uint8)
        np.testing.assert_array_equal(out, q)

    @pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 1001])
    def test_odd_lengths_and_all_values(self, name, signed, n):
        pack, unpack, bits = FORMATS[name]
        lo, hi = tl.qrange(bits, signed=signed)
        q = np.resize(np.arange(lo, hi + 1), n)  # every value, cycled
        packed = pack(q, signed=signed)
        np.testing.assert_array_equal(unpack(packed, n, signed=signed), q)
        per_byte = 8 // bits
        if n % per_byte:  # the padding is zero bits
            assert packed[-1] >> (bits * (n % per_byte)) == 0

    def test_any_shape_in_c_order(self, name, signed):
        pack, unpack, bits = FORMATS[name]
        lo, hi = tl.qrange(bits, signed=signed)
        q = np.random.default_rng(0).integers(lo, hi + 1, (3, 5, 7)).astype(np.int8)
        out = unpack(pack(q, signed=signed), q.size, signed=signed).reshape(q.shape)
        np.testing.assert_array_equal(out, q)


class TestBitOrder:
    def test_int4_low_nibble_first(self):
        # ONNX Runtime Int4x2: bits = ((val1 & 0xF) << 4) | (val0 & 0xF)
        pairs = [(1, 2), (-1, 0), (-8, 7), (7, -8), (0, -1), (3, -5)]
        expected = [((b & 0xF) << 4) | (a & 0xF) for a, b in pairs]
        assert pack_int4(np.array(pairs).ravel()).tolist() == expected
        assert pack_int4([1, 2]).tolist() == [0x21]
        assert pack_int4([-1]).tolist() == [0x0F]

    def test_int4_unsigned_against_torchao(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernels = pytest.importorskip("torchao.prototype.mx_formats.kernels")
        q = np.random.default_rng(0).integers(0, 16, 64).astype(np.uint8)
        ref = kernels.pack_uint4(torch.from_numpy(q)).numpy()
        np.testing.assert_array_equal(pack_int4(q, signed=False), ref)

    def test_int2_first_value_lowest(self):
        q = [1, 0, -1, -2]  # two's complement: 01, 00, 11, 10
        assert pack_int2(q).tolist() == [0b10_11_00_01]
        assert pack_int2([3, 2, 1, 0], signed=False).tolist() == [0b00_01_10_11]
        assert unpack_int2(np.array([0b11100100], np.uint8), 4, signed=False).tolist() == [0, 1, 2, 3]
        assert unpack_int2(np.array([0b11100100], np.uint8), 4).tolist() == [0, 1, -2, -1]

    def test_sign_extension(self):
        assert unpack_int4(np.array([0xF8], np.uint8), 2).tolist() == [-8, -1]
        assert unpack_int4(np.array([0xF8], np.uint8), 2, signed=False).tolist() == [8, 15]

    def test_size_is_an_eighth_of_float32(self):
        n = 1_000_000
        q = np.zeros(n, np.int8)
        assert pack_int4(q).nbytes * 8 == np.zeros(n, np.float32).nbytes
        assert pack_int2(q).nbytes * 16 == np.zeros(n, np.float32).nbytes


class TestBadInput:
    @pytest.mark.parametrize("name", FORMATS)
    def test_out_of_range_is_an_error_not_a_wrap(self, name):
        pack, _, bits = FORMATS[name]
        lo, hi = tl.qrange(bits)
        for q, signed in [([hi + 1], True), ([lo - 1], True), ([-1], False),
                          ([2**bits], False), ([0, 127], True)]:
            with pytest.raises(ValueError, match="outside the"):
                pack(q, signed=signed)

    @pytest.mark.parametrize("name", FORMATS)
    @pytest.mark.parametrize("q, message", [
        ([], "empty"),
        ([0.5, 1.0], "integers"),
        (np.array([1.0, 2.0]), "integers"),
        (["1"], "integers"),
    ])
    def test_bad_values(self, name, q, message):
        with pytest.raises(ValueError, match=message):
            FORMATS[name][0](q)

    @pytest.mark.parametrize("name", FORMATS)
    @pytest.mark.parametrize("packed, n, message", [
        (np.zeros((2, 2), np.uint8), 8, "1-D uint8"),
        (np.zeros(2, np.int8), 4, "1-D uint8"),
        (np.zeros(2, np.int64), 4, "1-D uint8"),
        (np.zeros(2, np.uint8), 0, "positive"),
        (np.zeros(2, np.uint8), 2.0, "positive"),
        (np.zeros(2, np.uint8), True, "positive"),
        (np.zeros(2, np.uint8), 100, "take"),
        (np.zeros(2, np.uint8), 1, "take"),
    ])
    def test_bad_unpack(self, name, packed, n, message):
        with pytest.raises(ValueError, match=message):
            FORMATS[name][1](packed, n)
