"""Checkers for lesson 05's exercises (fake quantization and QAT): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tutorial_lib.checks.runner import (
    Case,
    CheckResult,
    _judge,
    _learner,
    _run_exact,
    _wraps_learner,
    run_checks,
)

__all__ = ["check_fake_quantize_ste", "check_fake_quant_step", "check_qat_step",
    "check_lsq_scale_grad", "check_freeze_observers"]


def check_fake_quantize_ste(fn: Callable[..., Any]) -> CheckResult:
    """``fn(x, scale, zero_point, quant_min, quant_max) -> x_hat``: a torch fake-quant op whose
    gradient is the straight-through estimator (1 where the rounded value is in range, else 0).

    The check runs ``fn`` on a float32 tensor that requires grad, back-propagates ones, and
    compares ``(x_hat, x.grad)``.
    """
    import torch  # only this lesson's checkers need torch

    learner = _learner(fn)

    @_wraps_learner
    def forward_and_grad(x, scale, zero_point, quant_min, quant_max):
        t = torch.tensor(x, dtype=torch.float32, requires_grad=True)
        y = learner(t, scale, zero_point, quant_min, quant_max)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"return a torch tensor, not {type(y).__name__}")
        if y.requires_grad:
            _learner(y.backward)(torch.ones_like(y))  # runs the learner's backward
        grad = t.grad.numpy() if t.grad is not None else np.full(t.shape, np.nan, np.float32)
        return y.detach().numpy(), grad

    def forward_right_and_grad(test):
        def diagnose(case, actual):
            (x_hat, grad), (want_x_hat, want_grad) = actual, case.expected
            want_grad = np.asarray(want_grad)
            return (_judge(want_x_hat, x_hat, 1e-6, 1e-7).kind == "ok"
                    and bool(test(np.asarray(grad, np.float64), want_grad)))
        return diagnose

    mistakes = [
        (forward_right_and_grad(lambda g, want: np.all(np.isnan(g))),
         "the values are right but no gradient reached x (shown as nan): the graph was cut "
         "(.detach(), .item() or numpy inside). Write a torch.autograd.Function whose backward "
         "returns grad_output times the in-range mask."),
        (forward_right_and_grad(lambda g, want: np.all(g == 0) and np.any(want != 0)),
         "the values are right but the gradient is 0 everywhere: torch.round has a zero gradient. "
         "Use the straight-through estimator: a torch.autograd.Function whose backward returns "
         "grad_output times the in-range mask (so 1 wherever the value was not clamped)."),
        (forward_right_and_grad(lambda g, want: np.all(g == 1) and np.any(want == 0)),
         "the gradient is 1 everywhere, also where the value was clamped: there the output does "
         "not move with x, so multiply grad_output by the mask quant_min <= q <= quant_max."),
    ]
    cases = [
        Case(([-1.0, 0.26, 0.74, 3.0], 0.5, 0, -2, 3),
             ([-1.0, 0.5, 0.5, 1.5], [1.0, 1.0, 1.0, 0.0]),
             "3.0 is clamped: its gradient is 0, the others pass",
             "where the value was clamped the output does not move with x: gradient 0 there."),
        Case(([0.25, 0.75, -0.25, 1.25], 0.5, 0, -8, 7), ([0.0, 1.0, 0.0, 1.0], [1.0] * 4),
             ".5 ties round to even, as torch.round",
             "torch.round rounds half to even; floor(v + 0.5) rounds 0.5 up."),
        Case(([0.0, 1.0, -0.1], 0.1, 10, 0, 255), ([0.0, 1.0, -0.1], [1.0, 1.0, 1.0]),
             "uint8 with zero point 10: 0.0 stays exact"),
        Case(([-5.0, 5.0, 0.3], 1.0, 0, -2, 1), ([-2.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
             "both ends clamped"),
        Case(([1.0, 1.4, 1.6, -2.4, -2.6], 1.0, 0, -2, 1),
             ([1.0, 1.0, 1.0, -2.0, -2.0], [1.0, 1.0, 0.0, 1.0, 0.0]),
             "the mask looks at the rounded value: 1.4 rounds to 1, inside the range",
             "compute the mask from q = round(x / scale) + zero_point, not from x / scale: "
             "1.4 rounds to 1 <= quant_max, so its gradient is 1, as in PyTorch."),
        Case(([-0.6, -0.7, 2.4, 2.5], 0.2, 3, 0, 15),
             ([-0.6, -0.6, 2.4, 2.4], [1.0, 0.0, 1.0, 1.0]),
             "uint4 with zero point 3: -3.5 rounds to -4, below the range; 12.5 to 12, inside",
             "add the zero point before clamping and before the mask: q = round(x / s) + zp."),
        Case(([0.0, 0.01, -0.01], 0.02, -128, -128, 127), ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
             "zero point at quant_min: +-0.5 steps round to the zero point, still inside"),
    ]
    return run_checks("fake_quantize_ste", forward_and_grad, cases, rtol=1e-6, atol=1e-7,
                      mistakes=mistakes,
                      arg_names=["x", "scale", "zero_point", "quant_min", "quant_max"], hint=(
        "forward: (clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * "
        "scale; backward: grad_output where quant_min <= round(x / scale) + zero_point <= "
        "quant_max, else 0 (save that mask in forward with ctx.save_for_backward)."))


def check_fake_quant_step(fn: Callable[..., tuple]) -> CheckResult:
    """``fn(x, min_val, max_val, averaging_constant, quant_min, quant_max) -> (x_hat, min, max)``:
    one forward step of a FakeQuantize with a moving-average min-max observer (asymmetric)."""
    eps = float(np.finfo(np.float32).eps)
    a = np.array
    cases = [
        Case((a([-1.0, 0.0, 2.0], np.float32), None, None, 0.5, -8, 7),
             ([-1.0, 0.0, 2.0], -1.0, 2.0), "the first batch sets the range",
             "when min_val is None (nothing observed yet) take the batch's min and max as they are."),
        Case((a([-3.0, 0.0, 6.0], np.float32), -1.0, 2.0, 0.5, -8, 7), ([-2.0, 0.0, 4.0], -2.0, 4.0),
             "a later batch moves the range halfway (c = 0.5): -3 and 6 are clamped",
             "new_min = min_val + c * (batch_min - min_val): the batch's own range is not used "
             "directly."),
        Case((a([1.0, 3.0], np.float32), None, None, 0.01, 0, 255), ([1.0, 3.0], 1.0, 3.0),
             "all positive: the qparams widen the range to include 0, the observer keeps [1, 3]",
             "widen to include 0 only for the scale and zero point (lo = min(min, 0)); return "
             "the observer's own min and max."),
        Case((a([-4.0, 0.5, 6.0], np.float32), -1.0, 1.0, 0.01, -128, 127),
             ([-1.0277647, 0.49756858, 1.0522352], -1.03, 1.05),
             "PyTorch's default c = 0.01: one extreme batch barely moves the range"),
        Case((a([0.0, 0.0], np.float32), None, None, 0.01, -8, 7), ([0.0, 0.0], 0.0, 0.0),
             "an all-zero batch: the scale is floored at eps",
             f"scale = max((hi - lo) / (quant_max - quant_min), {eps}) avoids dividing by 0."),
        Case((a([-0.5, 0.26, 1.0], np.float32), -1.0, 1.0, 0.5, 0, 3),
             ([-0.5833333, 0.0, 1.1666666], -0.75, 1.0),
             "2 bits unsigned over [-0.75, 1]: scale 1.75 / 3, zero point 1"),
    ]
    return run_checks("fake_quant_step", fn, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["x", "min_val", "max_val", "averaging_constant", "quant_min",
                                 "quant_max"], hint=(
        "1) update min/max (first batch: take them; later: move a fraction c towards the batch's); "
        "2) lo, hi = min(min, 0), max(max, 0); scale = (hi - lo) / (quant_max - quant_min); "
        "zero_point = quant_min - round(lo / scale), clamped; 3) fake-quantize x with them."))


def check_qat_step(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(w, x, y, scale, lr) -> new_w``: one SGD step of QAT on ``pred = x @ fq(w).T`` with the
    mean squared error, ``fq`` symmetric 4-bit narrow range ``[-7, 7]`` with the given scale."""
    a = np.array
    f = np.float32
    cases = [
        Case((a([[0.3, -0.2]], f), a([[1.0, 2.0]], f), a([[0.5]], f), 0.25, 0.1), a([[0.45, 0.1]]),
             "one weight row: fq(w) = [0.25, -0.25], the step updates the float w",
             "update the float (shadow) weights w, not their quantized copy fq(w): "
             "new_w = w - lr * grad."),
        Case((a([[2.0, 0.1]], f), a([[1.0, 1.0]], f), a([[1.0]], f), 0.25, 0.1), a([[2.0, -0.05]]),
             "2.0 / 0.25 = 8 is clamped to 7: that weight gets no gradient",
             "the STE passes the gradient only where round(w / scale) lies in [-7, 7]."),
        Case((a([[0.5, -0.5], [0.1, 0.9]], f), a([[1.0, 0.0], [0.5, -1.0]], f),
              a([[0.0, 1.0], [1.0, 0.0]], f), 0.1, 0.5), a([[0.40625, -0.5625], [0.40625, 0.9]]),
             "two samples, two outputs: the loss is the mean over all 4 elements",
             "loss = mean((x @ fq(w).T - y) ** 2) over every element, so grad = 2 * (pred - y) / "
             "pred.size, then @ x."),
        Case((a([[0.3, -0.2]], f), a([[1.0, 2.0]], f), a([[-0.25]], f), 0.25, 0.1), a([[0.3, -0.2]]),
             "the quantized model is already exact: zero gradient, w unchanged"),
        Case((a([[-1.0, 0.4, 0.05]], f), a([[1.0, -1.0, 2.0], [0.0, 1.0, 1.0]], f),
              a([[0.2], [0.3]], f), 0.125, 0.05), a([[-1.0, 0.32375, 0.19125]]),
             "-1.0 / 0.125 = -8 is clamped; 0.05 rounds to 0 but still learns",
             "a weight that rounds to 0 is inside the range: its gradient passes."),
    ]
    return run_checks("qat_step", fn, cases, rtol=1e-5, atol=1e-6,
                      arg_names=["w", "x", "y", "scale", "lr"], hint=(
        "w_hat = clip(round(w / scale), -7, 7) * scale; pred = x @ w_hat.T; g = 2 * (pred - y) / "
        "pred.size; grad_w_hat = g.T @ x; grad_w = grad_w_hat * (|round(w / scale)| <= 7); "
        "return w - lr * grad_w (torch autograd with your STE works too)."))


def check_lsq_scale_grad(fn: Callable[..., np.ndarray]) -> CheckResult:
    """``fn(x, scale, zero_point, quant_min, quant_max) -> d x_hat / d scale`` per element (LSQ)."""
    a = np.array
    cases = [
        Case((a([0.2, 0.7, 5.0], np.float32), 0.5, 0, -4, 3), a([-0.4, -0.4, 3.0]),
             "inside: round(v) - v with v = x / s; clamped above: quant_max - zero_point",
             "where x_hat = (quant_max - z) * s is clamped, its derivative is quant_max - z."),
        Case((a([-3.0, -0.6, 0.0], np.float32), 0.5, 0, -4, 3), a([-4.0, 0.2, 0.0]),
             "clamped below: quant_min - zero_point; exact zero: 0"),
        Case((a([0.13, 0.35, -0.95], np.float32), 0.2, 2, 0, 7), a([0.35, 0.25, -2.0]),
             "a zero point: -4.75 rounds to -5, plus 2 is below 0, so quant_min - z = -2",
             "compare round(x / s) + zero_point with the range; the clamped derivative is "
             "quant_min - zero_point (or quant_max - zero_point), not quant_min."),
        Case((a([0.25, -0.25], np.float32), 0.5, 0, -8, 7), a([-0.5, 0.5]),
             "ties round to even: round(0.5) = 0"),
        Case((a([1.3, -1.3, 0.9], np.float32), 0.1, 0, -7, 7), a([7.0, -7.0, 7.0]),
             "everything clamped: the gradient pushes the scale to grow"),
        Case((a([0.33, -0.07], np.float32), 0.1, 0, -128, 127), a([-0.3, -0.3]),
             "8 bits, all inside",
             "inside the range d/ds [round(x/s) * s] = round(x/s) - x/s (the STE keeps round)."),
    ]
    return run_checks("lsq_scale_grad", fn, cases, rtol=1e-5, atol=1e-5,
                      arg_names=["x", "scale", "zero_point", "quant_min", "quant_max"], hint=(
        "v = x / s; q = round(v) + zero_point; inside [quant_min, quant_max]: round(v) - v; "
        "below: quant_min - zero_point; above: quant_max - zero_point."))


def _qat_models() -> dict[str, Callable[[], Any]]:
    """Small prepared models for check_freeze_observers, built on demand (torch, tl.qat)."""
    import torch
    from torch import nn

    from tutorial_lib.bridges import qat

    def seq(*layers):
        torch.manual_seed(0)
        return nn.Sequential(*layers)

    def one_frozen():
        m = qat.prepare_qat(seq(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), bits=4).eval()
        m(torch.ones(2, 4))  # calibrated on something else first
        m[0].input_fake_quant.observer_enabled = False
        return m

    def nested():
        inner = qat.prepare_qat(seq(nn.Linear(4, 3)), bits=8)
        return nn.Sequential(nn.Sequential(inner), nn.Softmax(dim=1))

    return {
        "Linear(4, 3), 8 bits": lambda: qat.prepare_qat(seq(nn.Linear(4, 3)), bits=8),
        "Linear-ReLU-Linear, 4 bits": lambda: qat.prepare_qat(
            seq(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), bits=4),
        "same, one observer already frozen": one_frozen,
        "Linear(4, 3) with learnable scales (LSQ)": lambda: qat.prepare_qat(
            seq(nn.Linear(4, 3)), bits=4, learnable=True),
        "a prepared model nested in two containers": nested,
    }


def check_freeze_observers(fn: Callable[[Any], Any]) -> CheckResult:
    """``fn(model)``: switch off the observer of every ``tl.qat.FakeQuantize`` in ``model``.

    For each model the check calibrates on one batch, calls ``fn``, runs a batch ten times
    larger, and reports ``(observers still on, fake-quant nodes on, scales that moved)``.
    """
    import torch

    from tutorial_lib.bridges import qat

    builders = _qat_models()

    learner = _learner(fn)

    @_wraps_learner
    def frozen_state(description):
        model = builders[description]()
        x = torch.linspace(-1, 1, 16).reshape(4, 4)
        model.eval()
        model(x)  # calibrate
        learner(model)
        fqs = [m for m in model.modules() if isinstance(m, qat.FakeQuantize)]
        before = [fq.scale.detach().clone() for fq in fqs]
        with torch.no_grad():
            model(10 * x)
        moved = sum(not torch.equal(b, fq.scale.detach()) for b, fq in zip(before, fqs, strict=True))
        return (sum(fq.observer_enabled for fq in fqs), sum(fq.fake_quant_enabled for fq in fqs),
                moved)

    counts = {"Linear(4, 3), 8 bits": 2, "Linear-ReLU-Linear, 4 bits": 4,
              "same, one observer already frozen": 4,
              "Linear(4, 3) with learnable scales (LSQ)": 2,
              "a prepared model nested in two containers": 2}
    hints = {
        "a prepared model nested in two containers":
            "walk every submodule with model.modules() (it recurses), not model.children().",
        "Linear(4, 3) with learnable scales (LSQ)":
            "LearnableFakeQuantize is a subclass of FakeQuantize: isinstance finds it too.",
    }
    cases = [Case((d,), (0, n, 0), d, hints.get(d, "")) for d, n in counts.items()]
    return _run_exact("freeze_observers", frozen_state, cases, arg_names=["model"], hint=(
        "for m in model.modules(): if isinstance(m, tl.qat.FakeQuantize): m.observer_enabled = "
        "False. Leave fake_quant_enabled alone: the model must keep quantizing, only the ranges "
        "stop moving. The answer is (observers on, fake-quant on, scales moved)."))
