"""LoRA: low-rank adapters trained on a frozen, possibly quantized, base model (lesson 10).

LoRA (Hu et al., 2021, arXiv:2106.09685) leaves a pretrained weight ``W`` frozen and learns a
low-rank correction: the layer computes ``W x + (alpha / r) * B A x`` with ``A`` (r, in) drawn at
random and ``B`` (out, r) starting at zero, so training starts from the base model exactly and
only ``r * (in + out)`` numbers per layer are trained. QLoRA (Dettmers et al., 2023,
arXiv:2305.14314) does the same on a base whose weights are stored in 4 bits.

On a CPU a full backward pass through a 30-layer model is too slow for a lesson, so
:class:`TopLayers` trains adapters on the last ``k`` decoder layers only: the hidden state that
enters layer ``n - k`` is computed once, without gradients, and every training step runs the
``k`` layers, the final norm and the output layer from it. Works with Llama-style models of
``transformers`` (``model.model.layers``, ``model.model.norm``, ``model.model.rotary_emb``,
``model.lm_head``), such as SmolLM2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from tutorial_lib.language import llm  # noqa: F401  (quiet torch and transformers imports, offline)
from tutorial_lib.language.llm import linear_layers, torch

nn = torch.nn

__all__ = ["LoRALinear", "add_lora", "remove_lora", "TopLayers", "finetune"]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / rank) * B @ A``.

    ``A`` is Gaussian with variance ``1 / in_features`` (drawn from ``seed``), ``B`` is zero, so
    the layer's output equals the base layer's until ``B`` is trained.

    >>> base = nn.Linear(6, 4)
    >>> layer = LoRALinear(base, rank=2, alpha=4.0, seed=0)
    >>> x = torch.randn(3, 6)
    >>> torch.equal(layer(x), base(x)), layer.trainable()
    (True, 20)
    """

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, seed: int = 0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ValueError(f"LoRA wraps an nn.Linear; got {type(base).__name__}.")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(
                base.in_features, base.out_features):
            raise ValueError(f"rank must be an integer from 1 to min(in, out) = "
                             f"{min(base.in_features, base.out_features)}; got {rank!r}.")
        self.base = base.requires_grad_(False)
        generator = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(rank, base.in_features, generator=generator)
                              / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.T @ self.b.T) * self.scale

    def delta(self) -> torch.Tensor:
        """The update the adapter adds to the base weight, ``(alpha / rank) * B @ A``."""
        return (self.b @ self.a).detach() * self.scale

    def trainable(self) -> int:
        """How many numbers the adapter trains: ``rank * (in + out)``."""
        return self.a.numel() + self.b.numel()


def add_lora(model: nn.Module, names: Iterable[str], rank: int = 8, alpha: float = 16.0,
             seed: int = 0) -> list[nn.Parameter]:
    """Wrap the linear layers ``names`` of ``model`` in :class:`LoRALinear`, in place.

    Every other parameter is frozen. Layer ``i`` of ``names`` draws its ``A`` from ``seed + i``.
    Returns the adapters' parameters, for the optimizer; :func:`remove_lora` undoes it.
    """
    names = list(names)
    found = linear_layers(model, skip=())
    missing = [n for n in names if n not in found]
    if missing or not names:
        raise ValueError(f"add_lora needs names of nn.Linear layers of the model; not found: "
                         f"{missing or 'no names given'}. See tl.llm.linear_layers(model).")
    model.requires_grad_(False)
    params: list[nn.Parameter] = []
    for i, name in enumerate(names):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        adapter = LoRALinear(getattr(parent, child), rank, alpha, seed + i)
        setattr(parent, child, adapter)
        params += [adapter.a, adapter.b]
    return params


def remove_lora(model: nn.Module) -> nn.Module:
    """Put back the base layer of every :class:`LoRALinear` in ``model``, in place."""
    wrapped = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).base)
    return model


class TopLayers:
    """The last ``k`` decoder layers of a Llama-style causal LM, run from a cached hidden state.

    ``hidden(ids)`` runs the whole model once without gradients and keeps the hidden state that
    enters layer ``n - k``; ``logits(h)`` runs the last ``k`` layers, the final norm and the
    output layer from it, with gradients, equal to the full model's logits.
    """

    def __init__(self, model: nn.Module, k: int):
        layers = getattr(getattr(model, "model", None), "layers", None)
        if layers is None or not hasattr(model, "lm_head"):
            raise ValueError("TopLayers needs a Llama-style causal LM (model.model.layers and "
                             "model.lm_head), such as tl.llm.load_smollm2()'s model.")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(layers):
            raise ValueError(f"k must be an integer from 1 to {len(layers)} (the model's "
                             f"layers); got {k!r}.")
        self.model, self.k, self.first = model, k, len(layers) - k

    def linear_names(self) -> list[str]:
        """The names of the linear layers inside the last ``k`` decoder layers."""
        prefix = [f"model.layers.{i}." for i in range(self.first, self.first + self.k)]
        return [n for n in linear_layers(self.model) if n.startswith(tuple(prefix))]

    @torch.no_grad()
    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """The hidden state (windows, tokens, hidden) entering layer ``n - k`` when the model
        reads ``ids`` (windows, tokens); one text is one window."""
        return self.model(ids, output_hidden_states=True).hidden_states[self.first]

    def logits(self, h: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the last ``k`` layers from ``h`` (windows, tokens, hidden): (tokens,
        vocabulary) for one window, (windows, tokens, vocabulary) for several; only the
        positions ``positions`` when given (the output layer is the costly part)."""
        inner = self.model.model
        pos = torch.arange(h.shape[1])[None]
        rotary = inner.rotary_emb(h, position_ids=pos)
        for layer in inner.layers[self.first:]:
            h = layer(h, attention_mask=None, position_embeddings=rotary, position_ids=pos)
        h = inner.norm(h)
        out = self.model.lm_head(h if positions is None else h[:, positions])
        return out[0] if out.shape[0] == 1 else out

    @torch.no_grad()
    def window_nll(self, h: torch.Tensor, ids: torch.Tensor, batch: int = 4) -> np.ndarray:
        """Next-token negative log-likelihoods (windows, tokens - 1) of ``ids`` (windows, tokens)
        from their cached hidden state ``h``, as ``tl.llm.window_nll`` gives for the full model."""
        out = []
        for i in range(0, ids.shape[0], batch):
            logits = self.logits(h[i:i + batch])
            logits = logits[None] if logits.ndim == 2 else logits  # one window: (tokens, vocab)
            targets = ids[i:i + batch, 1:]
            nll = nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                              targets.reshape(-1), reduction="none")
            out.append(nll.reshape(targets.shape).double())
        return torch.cat(out).numpy()

    @torch.no_grad()
    def perplexity(self, h: torch.Tensor, ids: torch.Tensor) -> float:
        """Perplexity of ``ids`` (windows, tokens) from their cached hidden state ``h``."""
        return float(np.exp(self.window_nll(h, ids).mean()))


def finetune(top: TopLayers, h: torch.Tensor, ids: torch.Tensor, params: Sequence[nn.Parameter],
             steps: int, lr: float, seed: int = 0, window: int = 128, positions: int = 64) -> list[float]:
    """Train ``params`` with AdamW for ``steps`` steps of next-token loss on the text ``ids``.

    Each step takes a random ``window`` of tokens (from their cached hidden state ``h``) and
    scores ``positions`` of its next-token predictions, drawn at random; ``seed`` fixes both
    draws. Returns the training loss of every step.
    """
    if h.shape[1] != ids.shape[1] or ids.shape[1] <= window + 1:
        raise ValueError(f"h and ids must cover the same text, longer than window + 1 = "
                         f"{window + 1} tokens; got {h.shape[1]} and {ids.shape[1]}.")
    if not 1 <= positions <= window:
        raise ValueError(f"positions must be from 1 to window = {window}; got {positions}.")
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        start = int(rng.integers(0, ids.shape[1] - window - 1))
        keep = torch.from_numpy(np.sort(rng.permutation(window)[:positions]))
        targets = ids[0, start + 1:start + window + 1][keep]
        loss = nn.functional.cross_entropy(top.logits(h[:, start:start + window], keep), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
