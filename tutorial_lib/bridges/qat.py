"""Quantization-aware training (QAT) in PyTorch, from scratch: FakeQuant with a straight-through
estimator, observers inside FakeQuantize modules, learnable scales (LSQ), prepare and convert.

A FakeQuant node rounds its input to the integer grid and maps it straight back to floats,
``x_hat = (clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * scale``, so
that the forward pass meets the same rounding and clamping errors as the integer model will.
Rounding has a zero derivative almost everywhere, so the backward pass pretends it is the
identity where the value was in range (gradient 1) and blocks it where it was clamped (gradient
0): the straight-through estimator (Bengio et al., 2013). The optimizer keeps updating the float
("shadow") weights; only the forward pass sees their quantized copy.

Names follow ``torch.ao.quantization`` (``FakeQuantize``, ``prepare_qat``, ``convert``,
``enable_observer``...). Importing this module imports torch; ``import tutorial_lib`` does not.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

with warnings.catch_warnings():
    # Import-time notices from optional torch extensions are not the learner's business.
    warnings.simplefilter("ignore")
    import torch
    import torch.nn.functional as F
    from torch import nn

from tutorial_lib.core._validate import check_quant_range
from tutorial_lib.core.affine import QParams, qrange
from tutorial_lib.core.observers import MovingAverageMinMaxObserver

__all__ = [
    "FakeQuantizeSTE", "fake_quantize_ste", "fake_quantize_lsq", "FakeQuantize",
    "LearnableFakeQuantize", "FakeQuantizedLayer", "prepare_qat", "calibrate", "enable_observer",
    "enable_fake_quant", "QuantizedLayer", "convert_qat", "train_qat", "strip_qat",
]


# ---------------------------------------------------------------- the fake-quant op

def _as_params(x: torch.Tensor, scale, zero_point, axis: int | None):
    """Scale (float32) and zero point (int32) as tensors shaped to broadcast against ``x``."""
    scale = torch.as_tensor(scale, dtype=torch.float32).detach()
    zero_point = torch.as_tensor(zero_point).detach()
    if zero_point.is_floating_point():
        if not torch.all(zero_point == torch.round(zero_point)):
            raise ValueError(f"zero_point must be integer; got {zero_point.tolist()}.")
    zero_point = zero_point.to(torch.int32)
    if not torch.all(torch.isfinite(scale)) or torch.any(scale <= 0):
        raise ValueError(f"scale must be positive and finite; got {scale.tolist()}.")
    if axis is None:
        if scale.numel() != 1 or zero_point.numel() != 1:
            raise ValueError(
                f"per-tensor fake quantization takes one scale and one zero_point (got "
                f"{scale.numel()} and {zero_point.numel()}); for one per channel pass axis=."
            )
        return scale.reshape(()), zero_point.reshape(())
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"axis must be an integer (the channel axis) or None; got {axis!r}.")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for a tensor with {x.ndim} dimensions.")
    n = x.shape[axis]
    if scale.shape != (n,) or zero_point.shape != (n,):
        raise ValueError(
            f"per-channel fake quantization along axis {axis} needs scale and zero_point of "
            f"shape ({n},), one per channel; got {tuple(scale.shape)} and "
            f"{tuple(zero_point.shape)}."
        )
    shape = [1] * x.ndim
    shape[axis] = n
    return scale.reshape(shape), zero_point.reshape(shape)


class FakeQuantizeSTE(torch.autograd.Function):
    """Fake quantization with the straight-through estimator, as a torch autograd function.

    Forward: ``q = round(x * (1 / scale)) + zero_point`` (half to even, the reciprocal in
    float32, as PyTorch's kernel), then ``(clamp(q, quant_min, quant_max) - zero_point) * scale``.
    Backward: the incoming gradient where ``quant_min <= q <= quant_max``, 0 where ``q`` was
    clamped. Scale and zero point get no gradient (see :func:`fake_quantize_lsq` for that).
    Call it through :func:`fake_quantize_ste`, which checks the arguments.
    """

    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max):
        q = (x * (1.0 / scale)).round_().add_(zero_point)  # float32, like PyTorch's kernel
        x_hat = q.clamp(quant_min, quant_max)
        ctx.save_for_backward(x_hat == q)  # inside the range: where clamping changed nothing
        return x_hat.sub_(zero_point).mul_(scale)  # in place: QAT calls this on every tensor

    @staticmethod
    def backward(ctx, grad_output):
        (inside,) = ctx.saved_tensors
        # The STE: rounding counts as the identity, clamping as a constant.
        return grad_output * inside, None, None, None, None


def fake_quantize_ste(x: torch.Tensor, scale, zero_point, quant_min: int, quant_max: int,
                      axis: int | None = None) -> torch.Tensor:
    """``dequantize(quantize(x))`` on a float tensor, with a straight-through gradient.

    Equal, bit for bit, to ``torch.fake_quantize_per_tensor_affine`` (``axis=None``) or
    ``torch.fake_quantize_per_channel_affine`` (``axis`` set, one scale and zero point per
    channel), forward and backward: the gradient is 1 where the rounded value lies inside
    ``[quant_min, quant_max]`` and 0 where it was clamped.

    >>> x = torch.tensor([-1.0, 0.26, 0.74, 3.0], requires_grad=True)
    >>> x_hat = fake_quantize_ste(x, 0.5, 0, -2, 3)
    >>> x_hat.tolist()
    [-1.0, 0.5, 0.5, 1.5]
    >>> x_hat.sum().backward(); x.grad.tolist()
    [1.0, 1.0, 1.0, 0.0]
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a float torch tensor; got {type(x).__name__}.")
    quant_min, quant_max = check_quant_range(quant_min, quant_max)
    scale, zero_point = _as_params(x, scale, zero_point, axis)
    return FakeQuantizeSTE.apply(x, scale.to(x.dtype), zero_point, quant_min, quant_max)


def _scale_gradient(t: torch.Tensor, factor: float) -> torch.Tensor:
    """``t`` in the forward pass; its gradient multiplied by ``factor`` in the backward pass."""
    return (t - t * factor).detach() + t * factor


def _round_ste(v: torch.Tensor) -> torch.Tensor:
    """``round(v)`` forward, identity backward: the STE written as a detach trick."""
    return v + (torch.round(v) - v).detach()


def fake_quantize_lsq(x: torch.Tensor, scale: torch.Tensor, zero_point, quant_min: int,
                      quant_max: int, axis: int | None = None,
                      grad_factor: float = 1.0) -> torch.Tensor:
    """Fake quantization whose ``scale`` learns too: LSQ (Esser et al., ICLR 2020).

    ``x_hat = (clamp(round_ste(x / s) + z, quant_min, quant_max) - z) * s``, where ``round_ste``
    rounds in the forward pass and is the identity in the backward pass. Autograd then gives
    the straight-through gradient for ``x`` and, for each element, ``d x_hat / d s`` equal to
    ``round(x / s) - x / s`` inside the range and ``quant_min - z`` or ``quant_max - z`` where
    clamped; LSQ multiplies the scale's gradient by ``grad_factor``
    (``1 / sqrt(numel * quant_max)``, with ``numel`` counting the whole batch as PyTorch's
    ``_LearnableFakeQuantize`` does; the paper counts the features of one example) so that it
    learns at the pace of the weights. Matches
    ``torch._fake_quantize_learnable_per_tensor_affine`` (and ``_per_channel_``) to float
    rounding: this divides by ``s`` where PyTorch multiplies by ``1 / s``, which can decide an
    exact tie differently. The zero point stays fixed.

    >>> s = torch.tensor(0.5, requires_grad=True)
    >>> x_hat = fake_quantize_lsq(torch.tensor([0.2, 0.7, 5.0]), s, 0, -4, 3)
    >>> x_hat.tolist()
    [0.0, 0.5, 1.5]
    >>> x_hat.sum().backward(); round(s.grad.item(), 4)  # (0 - 0.4) + (1 - 1.4) + 3
    2.2
    """
    quant_min, quant_max = check_quant_range(quant_min, quant_max)
    if not isinstance(scale, torch.Tensor):
        scale = torch.as_tensor(scale, dtype=torch.float32)
    _, zero_point = _as_params(x, scale, zero_point, axis)  # checks shapes and values
    s = _scale_gradient(scale, grad_factor)
    if axis is not None:
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        s = s.reshape(shape)
    z = zero_point.to(x.dtype)
    q = torch.clamp(_round_ste(x / s) + z, quant_min, quant_max)
    return (q - z) * s


# ---------------------------------------------------------------- the FakeQuantize module

class FakeQuantize(nn.Module):
    """A FakeQuant node with an observer inside: watch the range, then fake-quantize to it.

    Each forward pass, while ``observer_enabled``, feeds the tensor to a moving-average min-max
    observer (``tl.observers.MovingAverageMinMaxObserver``, PyTorch's default for QAT) and takes
    its new scale and zero point; then, while ``fake_quant_enabled``, returns
    :func:`fake_quantize_ste` of the tensor. With the default ``averaging_constant=0.01`` the
    outputs equal those of ``torch.ao.quantization.FakeQuantize`` with
    ``MovingAverageMinMaxObserver`` (or its per-channel twin with ``axis``), step for step.

    The observer updates in eval mode too, exactly as PyTorch's: switch it off with
    ``enable_observer(model, False)`` before you evaluate, or the test data move the ranges.

    >>> fq = FakeQuantize(*qrange(4), averaging_constant=0.5)
    >>> fq(torch.tensor([-1.0, 0.0, 2.0])).tolist()
    [-1.0, 0.0, 2.0]
    >>> fq.calculate_qparams()
    QParams(scale=0.20000000298023224, zero_point=-3)
    """

    def __init__(self, quant_min: int = -128, quant_max: int = 127, symmetric: bool = False,
                 axis: int | None = None, averaging_constant: float = 0.01) -> None:
        super().__init__()
        self.quant_min, self.quant_max = check_quant_range(quant_min, quant_max)
        self.symmetric, self.axis = bool(symmetric), axis
        self.observer = MovingAverageMinMaxObserver(averaging_constant, self.quant_min,
                                                    self.quant_max, self.symmetric, axis)
        self.observer_enabled = True
        self.fake_quant_enabled = True
        self.register_buffer("scale", torch.tensor([1.0]))
        self.register_buffer("zero_point", torch.tensor([0], dtype=torch.int32))
        self.steps = 0  # forward passes that updated the qparams

    @property
    def bits(self) -> int:
        """Width of the integer range, e.g. 8 for ``[-128, 127]`` and for ``[-127, 127]``."""
        return math.ceil(math.log2(self.quant_max - self.quant_min + 1))

    def observe(self, x: torch.Tensor) -> None:
        """Update the observer with ``x`` and store the scale and zero point it now gives."""
        self.observer.observe(x.detach().cpu().float().numpy())
        scale, zero_point = self.observer.calculate_qparams()
        self.scale = torch.as_tensor(np.atleast_1d(scale), dtype=torch.float32)
        self.zero_point = torch.as_tensor(np.atleast_1d(zero_point), dtype=torch.int32)
        self.steps += 1

    def calculate_qparams(self) -> QParams:
        """The scale and zero point in use, as ``tl.QParams`` (scalars per tensor)."""
        if self.steps == 0:
            raise ValueError(
                "this FakeQuantize has not observed anything yet: run some data through the "
                "model (training, or tl.qat.calibrate) with its observer enabled."
            )
        scale, zero_point = self.scale.numpy().copy(), self.zero_point.numpy().copy()
        if self.axis is None:
            return QParams(float(scale[0]), int(zero_point[0]))
        return QParams(scale, zero_point)

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize ``x`` with the current scale and zero point (no observing)."""
        if self.axis is None:
            return fake_quantize_ste(x, self.scale, self.zero_point, self.quant_min,
                                     self.quant_max)
        return fake_quantize_ste(x, self.scale, self.zero_point, self.quant_min, self.quant_max,
                                 axis=self.axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer_enabled:
            self.observe(x)
        if self.fake_quant_enabled:
            self.calculate_qparams()  # raises if nothing was ever observed
            return self.fake_quantize(x)
        return x

    def extra_repr(self) -> str:
        return (f"quant_min={self.quant_min}, quant_max={self.quant_max}, "
                f"symmetric={self.symmetric}, axis={self.axis}, "
                f"observer_enabled={self.observer_enabled}, "
                f"fake_quant_enabled={self.fake_quant_enabled}")


class LearnableFakeQuantize(FakeQuantize):
    """FakeQuantize whose scale is a parameter trained by gradient descent (LSQ).

    The observer sets the first scale and zero point: on the first forward pass, and on
    calibration data in eval mode while ``observer_enabled``. In training mode it never
    observes: :func:`fake_quantize_lsq` lets the loss move the scale, with LSQ's gradient factor
    ``1 / sqrt(numel * quant_max)``. The zero point stays where the observer put it.
    """

    def __init__(self, quant_min: int = -128, quant_max: int = 127, symmetric: bool = False,
                 axis: int | None = None, averaging_constant: float = 0.01) -> None:
        super().__init__(quant_min, quant_max, symmetric, axis, averaging_constant)
        del self.scale
        self.scale = nn.Parameter(torch.tensor([1.0]))

    def observe(self, x: torch.Tensor) -> None:
        self.observer.observe(x.detach().cpu().float().numpy())
        scale, zero_point = self.observer.calculate_qparams()
        with torch.no_grad():
            self.scale.data = torch.as_tensor(np.atleast_1d(scale), dtype=torch.float32)
        self.zero_point = torch.as_tensor(np.atleast_1d(zero_point), dtype=torch.int32)
        self.steps += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The observer only initializes the scale: on the very first call, and on calibration
        # data in eval mode. In training mode the gradient owns the scale.
        if self.steps == 0 or (self.observer_enabled and not self.training):
            self.observe(x)
        if not self.fake_quant_enabled:
            return x
        with torch.no_grad():
            self.scale.clamp_(min=float(np.finfo(np.float32).eps))  # a step may overshoot 0
        factor = 1.0 / math.sqrt(x.numel() / (x.shape[self.axis] if self.axis is not None else 1)
                                 * max(self.quant_max, 1))
        scale = self.scale if self.axis is not None else self.scale.reshape(())
        zero_point = self.zero_point if self.axis is not None else self.zero_point.reshape(())
        return fake_quantize_lsq(x, scale, zero_point, self.quant_min, self.quant_max,
                                 self.axis, factor)

    def calculate_qparams(self) -> QParams:
        if self.steps == 0:
            return super().calculate_qparams()
        scale, zero_point = self.scale.detach().numpy().copy(), self.zero_point.numpy().copy()
        if self.axis is None:
            return QParams(float(scale[0]), int(zero_point[0]))
        return QParams(scale, zero_point)


# ---------------------------------------------------------------- prepare and convert

class FakeQuantizedLayer(nn.Module):
    """A Conv2d or Linear whose input and weight pass through FakeQuantize nodes.

    ``forward(x) = layer(input_fake_quant(x))`` computed with ``weight_fake_quant(layer.weight)``
    in place of the weight; the bias stays float (an int32 bias costs next to nothing, lesson
    04) and so does the output (the next layer's input node quantizes it).
    """

    def __init__(self, layer: nn.Module, weight_fake_quant: FakeQuantize,
                 input_fake_quant: FakeQuantize | None) -> None:
        super().__init__()
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            raise ValueError(f"only Conv2d and Linear layers can be wrapped; got "
                             f"{type(layer).__name__}.")
        self.layer = layer
        self.weight_fake_quant = weight_fake_quant
        self.input_fake_quant = input_fake_quant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_fake_quant is not None:
            x = self.input_fake_quant(x)
        w = self.weight_fake_quant(self.layer.weight)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)


def _layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def prepare_qat(
    model: nn.Module,
    bits: int = 8,
    activation_bits: int | None = None,
    layer_bits: Mapping[str, int] | None = None,
    per_channel: bool = True,
    learnable: bool = False,
    averaging_constant: float = 0.01,
) -> nn.Module:
    """A copy of ``model`` with FakeQuant nodes on the weights and inputs of its Conv2d and
    Linear layers, ready for quantization-aware training (or, with :func:`calibrate`, PTQ).

    - weights: symmetric, narrow range ``tl.qrange(bits, narrow=True)`` (``[-127, 127]`` at 8
      bits, ``[-7, 7]`` at 4), one scale per output channel (``per_channel``);
    - inputs: asymmetric, per tensor, ``tl.qrange(activation_bits)`` (default: ``bits``).

    ``layer_bits`` overrides the width of single layers, e.g. ``{"conv1": 8, "fc2": 8}`` keeps
    the first and last layers at 8 bits. ``learnable=True`` uses :class:`LearnableFakeQuantize`
    (LSQ) everywhere. The model keeps its train/eval mode; BatchNorm layers are left alone, so
    fold them first (``tl.torch_bridge.fold_batchnorm``) to train the weights that an integer
    model stores.

    >>> qmodel = prepare_qat(nn.Sequential(nn.Linear(4, 2)), bits=4)
    >>> fq = qmodel[0].weight_fake_quant
    >>> fq.quant_min, fq.quant_max, qmodel[0].input_fake_quant.quant_min
    (-7, 7, -8)
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch nn.Module; got {type(model).__name__}.")
    names = _layer_names(model)
    if not names:
        raise ValueError("model has no Conv2d or Linear layer to prepare for QAT.")
    layer_bits = dict(layer_bits or {})
    unknown = sorted(set(layer_bits) - set(names))
    if unknown:
        raise ValueError(f"layer_bits names unknown layer(s) {unknown}; the model's Conv2d and "
                         f"Linear layers are {names}.")
    if any(isinstance(m, FakeQuantizedLayer) for m in model.modules()):
        raise ValueError("model is already prepared for QAT: prepare the float model instead.")
    qmodel = copy.deepcopy(model)
    fq_class = LearnableFakeQuantize if learnable else FakeQuantize
    for name in names:
        w_bits = layer_bits.get(name, bits)
        a_bits = layer_bits.get(name, activation_bits if activation_bits is not None else bits)
        layer = qmodel.get_submodule(name)
        weight_fq = fq_class(*qrange(w_bits, narrow=True), symmetric=True,
                             axis=0 if per_channel else None,
                             averaging_constant=averaging_constant)
        input_fq = fq_class(*qrange(a_bits), averaging_constant=averaging_constant)
        _set_submodule(qmodel, name, FakeQuantizedLayer(layer, weight_fq, input_fq))
    return qmodel


def _fake_quants(model: nn.Module) -> list[FakeQuantize]:
    fqs = [m for m in model.modules() if isinstance(m, FakeQuantize)]
    if not fqs:
        raise ValueError("model has no FakeQuantize module: prepare it with tl.qat.prepare_qat.")
    return fqs


def enable_observer(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch the observers of every FakeQuantize in ``model`` on or off (freeze the ranges).

    Frozen observers keep the scales they have: later batches, training or test, no longer
    move them. Returns ``model``.
    """
    for fq in _fake_quants(model):
        fq.observer_enabled = bool(enabled)
    return model


def enable_fake_quant(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch the fake quantization of every FakeQuantize in ``model`` on or off.

    Off, the nodes pass values through unchanged (observers may still watch them): the float
    model, for comparison. Returns ``model``.
    """
    for fq in _fake_quants(model):
        fq.fake_quant_enabled = bool(enabled)
    return model


def calibrate(model: nn.Module, x, batch_size: int = 64) -> nn.Module:
    """Run images ``x`` through ``model`` in eval mode so that its observers see real ranges.

    Post-training quantization with the QAT machinery: ``prepare_qat``, ``calibrate`` on a few
    hundred training images, ``enable_observer(model, False)``, then evaluate. Returns ``model``.
    """
    from tutorial_lib.bridges.torch_bridge import to_tensor

    _fake_quants(model)
    x = to_tensor(x)
    if len(x) == 0:
        raise ValueError("x is empty: calibrate on at least one image.")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    model.train(was_training)
    return model


class QuantizedLayer(NamedTuple):
    """One layer of a converted QAT model: integer weights, their qparams, the input's qparams.

    ``weight_q`` holds integers in ``weight_range``; ``tl.dequantize(weight_q, *weight_qparams,
    axis=0)`` (``axis=None`` per tensor) gives back exactly the weights the model trained with.
    """

    weight_q: np.ndarray
    weight_qparams: QParams
    weight_range: tuple[int, int]
    input_qparams: QParams | None
    input_range: tuple[int, int] | None
    bias: np.ndarray | None


def convert_qat(model: nn.Module) -> dict[str, QuantizedLayer]:
    """The integer weights and qparams of a QAT-trained (or calibrated) model, layer by layer.

    Uses the scale and zero point each FakeQuantize holds, i.e. the ones of the last forward
    pass: the grid the model was trained on. The quantization is ``tl.quantize``, so
    dequantizing gives the fake-quantized weights of the forward pass, bit for bit.
    """
    from tutorial_lib.core.affine import quantize

    layers = {n: m for n, m in model.named_modules() if isinstance(m, FakeQuantizedLayer)}
    if not layers:
        raise ValueError("model has no FakeQuantizedLayer: prepare it with tl.qat.prepare_qat and "
                         "train or calibrate it first.")
    out = {}
    for name, m in layers.items():
        wfq, ifq = m.weight_fake_quant, m.input_fake_quant
        w_qp = wfq.calculate_qparams()
        w = m.layer.weight.detach().numpy()
        weight_q = quantize(w, *w_qp, wfq.quant_min, wfq.quant_max, axis=wfq.axis)
        bias = None if m.layer.bias is None else m.layer.bias.detach().numpy().copy()
        out[name] = QuantizedLayer(
            weight_q, w_qp, (wfq.quant_min, wfq.quant_max),
            None if ifq is None else ifq.calculate_qparams(),
            None if ifq is None else (ifq.quant_min, ifq.quant_max), bias)
    return out


# ---------------------------------------------------------------- training

def train_qat(
    model: nn.Module,
    data,
    epochs: int = 3,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    freeze_observers_after: int | None = None,
) -> nn.Module:
    """Quantization-aware training of a prepared model, in place; returns it in eval mode.

    The recipe of ``tl.torch_bridge.train`` (Adam, one-cycle learning rate, cross-entropy,
    seeded shuffling, deterministic kernels), plus one QAT habit: after
    ``freeze_observers_after`` epochs the observers stop, so that the last epochs train the
    weights for scales that no longer move. The observers are off when this returns either
    way: the scales the model ends with are the ones to convert, and evaluating must not move
    them.
    """
    from tutorial_lib.bridges import torch_bridge as tb

    _fake_quants(model)
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    if freeze_observers_after is not None and not 0 <= freeze_observers_after <= epochs:
        raise ValueError(f"freeze_observers_after must be an epoch count from 0 to epochs "
                         f"({epochs}) or None; got {freeze_observers_after!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be a positive learning rate such as 1e-3; got {lr!r}.")
    tb._check_dataset(data)
    if any(fq.steps == 0 for fq in _fake_quants(model)):
        # LSQ parameters get their shape before Adam sees them (no randomness is used here)
        calibrate(model, tb.to_tensor(data.x_train[:batch_size]))
    tb.train(model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
             on_epoch=lambda epoch: enable_observer(
                 model, freeze_observers_after is None or epoch < freeze_observers_after))
    enable_observer(model, False)
    return model.eval()


def strip_qat(model: nn.Module) -> nn.Module:
    """A copy of a prepared model with every FakeQuantizedLayer replaced by its float layer.

    What is left are the float ("shadow") weights that QAT updated: the model without any
    FakeQuant node, e.g. to fold BatchNorm into it or to quantize it again another way.
    """
    _fake_quants(model)
    plain = copy.deepcopy(model)
    for name, m in list(plain.named_modules()):
        if isinstance(m, FakeQuantizedLayer):
            _set_submodule(plain, name, m.layer)
    return plain
