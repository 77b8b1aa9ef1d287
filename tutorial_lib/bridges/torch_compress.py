"""Pruning in PyTorch: ``torch.nn.utils.prune`` on the course CNN, and channels really removed.

The masks come from ``torch.nn.utils.prune`` (tested against the numpy masks of
``tl.pruning``). Two facts the lesson measures:

- a pruned weight is still stored and multiplied: ``prune`` keeps the dense tensor and a mask;
  ``make_permanent`` writes the zeros into the weight and drops the mask;
- removing whole output channels (structured pruning) gives a model that is really smaller and
  faster, but only once the channels are cut out: ``remove_zero_channels`` builds that smaller
  CNN, with the same outputs.

Which channels to remove: every conv of the course CNN is followed by a BatchNorm, which divides
the conv's output by its standard deviation, so the kernel's own size (the L2 norm that
``prune.ln_structured`` ranks by) cancels out; what is left of a channel after BatchNorm has
standard deviation ``|gamma|``. ``prune_channels`` ranks by that by default (Network Slimming,
Liu et al. 2017).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from tutorial_lib.course._quiet import quiet_stderr

with quiet_stderr():
    import torch
    from torch import nn
    from torch.nn.utils import prune

from tutorial_lib.bridges import torch_bridge
from tutorial_lib.compression.pruning import channel_mask
from tutorial_lib.course.data import Dataset

__all__ = ["prune_magnitude", "prune_global", "prune_channels", "CRITERIA", "masks",
           "make_permanent", "remove_zero_channels", "sensitivity_scan", "finetune_pruned",
           "weight_sparsity", "pruned_weights"]

_CONVS = ("conv1", "conv2", "conv3")


def _layers(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    found = dict(model.named_modules())
    missing = [n for n in names if n not in found or not hasattr(found[n], "weight")]
    if missing:
        raise ValueError(f"the model has no weighted layers {missing}; its layers with weights "
                         f"are {torch_bridge.weighted_layers(model)}.")
    return {n: found[n] for n in names}


def prune_magnitude(model: nn.Module, sparsities: Mapping[str, float]) -> nn.Module:
    """A copy of ``model`` with ``prune.l1_unstructured`` on each named layer's weight.

    ``sparsities`` maps a layer name to the fraction of its weights to remove. The copy keeps
    PyTorch's re-parametrisation (``weight_orig`` and a ``weight_mask`` buffer), so training it
    keeps the pruned weights at zero; ``make_permanent`` ends that.
    """
    model = copy.deepcopy(model)
    for name, layer in _layers(model, list(sparsities)).items():
        prune.l1_unstructured(layer, "weight", amount=float(sparsities[name]))
    return model


def prune_global(model: nn.Module, layers: Sequence[str], sparsity: float) -> nn.Module:
    """A copy with ``prune.global_unstructured`` over the named layers: one threshold for all."""
    model = copy.deepcopy(model)
    params = [(layer, "weight") for layer in _layers(model, layers).values()]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    return model


CRITERIA = ("bn_gamma", "l2", "random")


def prune_channels(model: nn.Module, sparsities: Mapping[str, float], criterion: str = "bn_gamma",
                   seed: int = 0) -> nn.Module:
    """A copy of the course CNN with whole output channels of its convolutions removed.

    Each named conv loses ``round(sparsity * channels)`` output channels, those of lowest score:

    - ``"bn_gamma"``: the ``|gamma|`` of the BatchNorm after the conv (the spread of the
      channel's output; ``prune.custom_from_mask`` with ``tl.pruning.channel_mask(...,
      scores=gamma)``);
    - ``"l2"``: the L2 norm of the channel's kernel (``prune.ln_structured(n=2, dim=0)``);
    - ``"random"``: random scores drawn with ``seed``, the baseline any criterion must beat.

    The masks are made permanent, and the pruned channels' bias and their BatchNorm's weight and
    bias are zeroed too, so that the channel's output is exactly 0 after BatchNorm and ReLU, as
    if the channel were gone. (With only the weight zeroed, the channel would still send a
    constant, its bias through BatchNorm, to the next layer.)
    """
    bad = [n for n in sparsities if n not in _CONVS]
    if bad:
        raise ValueError(f"prune_channels works on the course CNN's convolutions {_CONVS}; got "
                         f"{bad}.")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}.")
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(model)
    for name in sparsities:
        conv, bn = getattr(model, name), getattr(model, "bn" + name[-1])
        amount = float(sparsities[name])
        if criterion == "l2":
            prune.ln_structured(conv, "weight", amount=amount, n=2, dim=0)
        else:
            scores = (bn.weight.detach().numpy() if criterion == "bn_gamma"
                      else rng.random(conv.out_channels))
            mask = channel_mask(conv.weight.detach().numpy(), amount, axis=0, scores=scores)
            prune.custom_from_mask(conv, "weight", torch.from_numpy(mask))
        prune.remove(conv, "weight")
        gone = conv.weight.detach().flatten(1).abs().sum(dim=1) == 0
        with torch.no_grad():
            for t in (conv.bias, bn.weight, bn.bias):
                t[gone] = 0.0
    return model.eval()


def masks(model: nn.Module) -> dict[str, np.ndarray]:
    """The ``weight_mask`` of every pruned layer, as float32 numpy arrays."""
    return {name: m.weight_mask.detach().numpy().copy() for name, m in model.named_modules()
            if hasattr(m, "weight_mask")}


def make_permanent(model: nn.Module) -> nn.Module:
    """Write each mask into its weight and remove the re-parametrisation (in place)."""
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
    return model


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def pruned_weights(dense: nn.Module, pruned: nn.Module) -> int:
    """How many of ``dense``'s conv and linear weights ``pruned`` no longer has: its zeros and
    the weights of removed channels alike (divide by the dense count for the share)."""
    return (sum(w.numel() for w in _weights(dense))
            - sum(int((w != 0).sum()) for w in _weights(pruned)))


def weight_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zeros in the weight of each Conv2d and Linear layer."""
    return {name: float((m.weight == 0).float().mean()) for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d | nn.Linear)}


def remove_zero_channels(model: nn.Module) -> nn.Module:
    """A smaller course CNN without the conv output channels whose weights are all zero.

    Each such channel leaves its conv, its BatchNorm, and the input side of the next layer
    (the next conv, or the 16 columns per channel of ``fc1`` after flattening 64x4x4). The
    outputs are the same as the dense model's when the channels output exactly 0 (as
    ``prune_channels`` makes them).
    """
    if not isinstance(model, torch_bridge.CourseCNN):
        raise ValueError("remove_zero_channels rebuilds the course CNN (tb.CourseCNN); got "
                         f"{type(model).__name__}.")
    model = copy.deepcopy(model).eval()
    make_permanent(model)
    keep_in = torch.arange(model.conv1.in_channels)
    spatial = model.fc1.in_features // model.conv3.out_channels  # 4 x 4 positions per channel
    for i, name in enumerate(_CONVS):
        conv, bn = getattr(model, name), getattr(model, f"bn{i + 1}")
        w = conv.weight.detach()[:, keep_in]
        keep = torch.nonzero(w.flatten(1).abs().sum(dim=1) != 0).flatten()
        new = nn.Conv2d(len(keep_in), len(keep), conv.kernel_size, conv.stride, conv.padding)
        new_bn = nn.BatchNorm2d(len(keep), eps=bn.eps, momentum=bn.momentum)
        with torch.no_grad():
            new.weight.copy_(w[keep])
            new.bias.copy_(conv.bias[keep])
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(new_bn, attr).copy_(getattr(bn, attr)[keep])
        setattr(model, name, new)
        setattr(model, f"bn{i + 1}", new_bn)
        keep_in = keep
    columns = (keep_in[:, None] * spatial + torch.arange(spatial)).flatten()
    fc1 = nn.Linear(len(columns), model.fc1.out_features)
    with torch.no_grad():
        fc1.weight.copy_(model.fc1.weight[:, columns])
        fc1.bias.copy_(model.fc1.bias)
    model.fc1 = fc1
    return model.eval()


def sensitivity_scan(model: nn.Module, x, y, layers: Sequence[str],
                     sparsities: Sequence[float]) -> dict[str, dict[float, float]]:
    """Accuracy on images ``x`` (labels ``y``) with one layer at a time pruned by magnitude.

    Returns ``{layer: {sparsity: accuracy}}``, the input of ``tl.pruning.choose_sparsities``.
    Pass validation images, not the test set: the sparsities chosen from the scan are then
    reported on test images that played no part in choosing them.
    """
    if len(x) != len(y):
        raise ValueError(f"need one label per image: {len(x)} images, {len(y)} labels. Pass the "
                         "validation images and labels, e.g. from tl.data.validation_split.")
    scan: dict[str, dict[float, float]] = {}
    for name in layers:
        scan[name] = {}
        for s in sparsities:
            pruned = prune_magnitude(model, {name: s})
            scan[name][float(s)] = torch_bridge.accuracy(pruned, x, y)
    return scan


def finetune_pruned(model: nn.Module, data: Dataset, epochs: int = 1, lr: float = 5e-4,
                    seed: int = 0) -> nn.Module:
    """Fine-tune a pruned model in place (masks kept by ``prune``'s hooks), then make the zeros
    permanent; return it.

    Pruned weights get zero gradient through the mask, so they stay zero; the others adapt.
    (A model with masks cannot be deep-copied: its ``weight`` is computed from ``weight_orig``.
    Prune a fresh copy for each run instead.)
    """
    if not any(hasattr(m, "weight_mask") for m in model.modules()):
        raise ValueError("the model has no pruning masks: prune it first (prune_magnitude or "
                         "prune_global), or fine-tune it with tb.train.")
    torch_bridge.train(model, data, epochs=epochs, lr=lr, seed=seed)
    return make_permanent(model).eval()
