"""Cross-layer equalization against PyTorch's own (torch.ao.quantization._equalize)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tutorial_lib import equalize as eq

torch = pytest.importorskip("torch")
from torch.ao.quantization import _equalize as torch_eq  # noqa: E402


def _conv(c_in, c_out, seed):
    torch.manual_seed(seed)
    return torch.nn.Conv2d(c_in, c_out, 3)


@pytest.mark.parametrize("seed", range(4))
def test_one_pair_matches_pytorch(seed):
    a, b = _conv(3, 8, seed), _conv(8, 5, seed + 10)
    with torch.no_grad():
        a.weight[2] *= 50  # one loud output channel
    mine = eq.equalize_pair(a.weight.detach().numpy(), a.bias.detach().numpy(),
                            b.weight.detach().numpy())
    torch_eq.cross_layer_equalization(a, b)
    np.testing.assert_allclose(mine.w1, a.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(mine.b1, a.bias.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(mine.w2, b.weight.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_a_chain_matches_pytorchs_equalize_and_keeps_the_function(seed):
    model = torch.nn.Sequential(_conv(3, 6, seed), torch.nn.ReLU(), _conv(6, 7, seed + 1),
                                torch.nn.ReLU(), _conv(7, 4, seed + 2))
    with torch.no_grad():
        model[0].weight[1] *= 30
        model[2].weight[:, 1] /= 30  # an outlier channel planted without changing the function
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(seed))
    before = model(x).detach()
    layers = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy())
              for m in (model[0], model[2], model[4])]
    reference = torch_eq.equalize(copy.deepcopy(model), [["0", "2"], ["2", "4"]], inplace=False)
    mine, rounds = eq.equalize_chain(layers)
    for (w, b), m in zip(mine, (reference[0], reference[2], reference[4]), strict=True):
        np.testing.assert_allclose(w, m.weight.detach().numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b, m.bias.detach().numpy(), rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        for (w, b), m in zip(mine, (model[0], model[2], model[4]), strict=True):
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)
    # the planted channel no longer dominates: every output range of layer 0 within 10x
    r = eq.channel_range(mine[0][0], 0)
    assert r.max() / r.min() < 10 and rounds >= 2


def test_dense_layers_and_bad_input():
    w1 = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    w2 = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    e = eq.equalize_pair(w1, None, w2)
    x = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    np.testing.assert_allclose(e.w2 @ np.maximum(e.w1 @ x, 0), w2 @ np.maximum(w1 @ x, 0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="output channels"):
        eq.equalize_pair(w1, None, w2.T)
    with pytest.raises(ValueError, match="finite floats"):
        eq.equalize_pair(np.array([[1, 2]]), None, w2)
    with pytest.raises(ValueError, match="one value per output channel"):
        eq.equalize_pair(w1, np.zeros(3, np.float32), w2)
    with pytest.raises(ValueError, match="constant"):
        eq.equalize_pair(np.zeros((4, 3), np.float32), None, w2)
    with pytest.raises(ValueError, match="at least two"):
        eq.equalize_chain([(w1, None)])
