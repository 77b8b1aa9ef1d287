"""LoRA adapters and the top-layers trainer of lesson 10, on a tiny random Llama (no download)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests.test_llm import tiny_llama  # noqa: E402
from tutorial_lib import llm, lora  # noqa: E402


def test_lora_starts_as_the_base_and_its_update_is_low_rank():
    model = tiny_llama()
    ids = torch.arange(12)[None]
    with torch.no_grad():
        before = model(ids).logits
    top = lora.TopLayers(model, 1)
    names = top.linear_names()
    assert names == [f"model.layers.1.{n}" for n in (
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    sizes = {n: (m.in_features, m.out_features) for n, m in model.named_modules() if n in names}
    params = lora.add_lora(model, names, rank=2, seed=3)
    assert sum(p.numel() for p in params) == sum(2 * (i + o) for i, o in sizes.values())
    adapters = [m for m in model.modules() if isinstance(m, lora.LoRALinear)]
    assert len(adapters) == 7 and sum(a.trainable() for a in adapters) == sum(p.numel() for p in params)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained == [f"{n}.{ab}" for n in names for ab in "ab"]  # the base is frozen
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)  # B = 0
        adapters[0].b.normal_()
        assert torch.linalg.matrix_rank(adapters[0].delta()) == 2
    lora.remove_lora(model)
    assert not any(isinstance(m, lora.LoRALinear) for m in model.modules())
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)


def test_top_layers_equal_the_full_model():
    model = tiny_llama()
    ids = torch.randint(0, 50, (1, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(ids).logits[0]
    for k in (1, 2):
        top = lora.TopLayers(model, k)
        with torch.no_grad():
            got = top.logits(top.hidden(ids))
            assert torch.allclose(got, want, atol=1e-5)
            assert torch.allclose(top.logits(top.hidden(ids), torch.tensor([3, 7])), want[[3, 7]],
                                  atol=1e-5)


def test_top_layers_score_windows_as_the_full_model_does():
    model = tiny_llama()
    ids = torch.randint(0, 50, (5, 16), generator=torch.Generator().manual_seed(2))
    top = lora.TopLayers(model, 2)
    h = top.hidden(ids)
    assert h.shape == (5, 16, 32)
    want = llm.window_nll(model, ids, batch=2)
    assert want.shape == (5, 15)
    assert np.allclose(top.window_nll(h, ids, batch=3), want, atol=1e-5)
    assert np.allclose(top.window_nll(h[:1], ids[:1]), want[:1], atol=1e-5)  # one window
    assert top.perplexity(h, ids) == pytest.approx(llm.perplexity(model, ids), rel=1e-5)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only wait for each other
    yield
    torch.set_num_threads(threads)


def test_finetune_lowers_the_training_loss_and_is_seeded(one_thread):
    def run(seed):
        model = tiny_llama()
        with torch.no_grad():
            model.lm_head.weight *= 50  # logits of a random model's normed states are tiny
        ids = torch.arange(50).repeat(3)[None]  # a text the model can learn: 0, 1, ..., 49, 0, ...
        top = lora.TopLayers(model, 1)
        params = lora.add_lora(model, top.linear_names(), rank=4, seed=seed)
        h = top.hidden(ids)
        before = top.perplexity(h, ids)
        losses = lora.finetune(top, h, ids, params, steps=30, lr=5e-2, seed=seed, window=32,
                               positions=16)
        return before, top.perplexity(h, ids), losses
    before, after, losses = run(0)
    assert after < 0.1 * before and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert run(0)[2] == losses and run(1)[2] != losses


@pytest.mark.parametrize("call, match", [
    (lambda m: lora.TopLayers(m, 3), "k must be an integer from 1 to 2"),
    (lambda m: lora.TopLayers(torch.nn.Linear(2, 2), 1), "Llama-style"),
    (lambda m: lora.add_lora(m, ["model.layers.0.mlp"]), "not found"),
    (lambda m: lora.LoRALinear(m.model.layers[0].mlp.down_proj, rank=0), "rank must be"),
    (lambda m: lora.finetune(lora.TopLayers(m, 1), torch.zeros(1, 10, 32), torch.zeros(1, 10,
                             dtype=torch.long), [], steps=1, lr=1e-3), "longer than window"),
])
def test_bad_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(tiny_llama())
