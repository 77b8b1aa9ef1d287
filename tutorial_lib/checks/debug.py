"""Checkers for lesson 11's exercises (debugging an int8 model): ``tl.checks.check_<name>(fn)``.

The numpy exercises (``layer_sqnr``, ``culprit``, ``cle_scales``) have golden cases worked out
by hand, not with ``tl.debug`` or ``tl.equalize``, so that the library is checked by the same
cases (tests/test_checks_debug.py). The others run the learner's function on the course's real
planted CNN (PyTorch, each seed's smallest ``conv2`` channel made 300x larger, as the lesson
does) and compare what it measures with what the checker measures the same way; on a wrong
answer they rebuild the usual wrong versions to name the mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from tutorial_lib.checks.runner import (
    Case,
    CheckResult,
    _learner,
    _reproduces,
    _run_exact,
    _type_name,
    _wraps_learner,
    run_checks,
)

__all__ = ["check_layer_sqnr", "check_culprit", "check_weight_activation_split",
           "check_float_sweep", "check_cle_scales", "planted_cnn"]

INF = math.inf


def _sqnr(x, x_hat) -> float:
    x, x_hat = np.asarray(x, np.float64), np.asarray(x_hat, np.float64)
    return 10 * math.log10(np.sum(x**2) / np.sum((x - x_hat) ** 2))


def _torchao_sqnr(reference, quantized, names) -> np.ndarray:
    """torchao's ``compute_sqnr(actual, ref)``: the *quantized* tensor as the signal."""
    out = []
    for name in names:
        x = np.asarray(reference[name], np.float64)
        x_hat = np.asarray(quantized[name], np.float64)
        noise = np.sum((x - x_hat) ** 2)
        out.append(INF if noise == 0 else 10 * math.log10(np.sum(x_hat**2) / noise))
    return np.array(out)


def check_layer_sqnr(fn: Callable[[Mapping, Mapping], dict]) -> CheckResult:
    """``fn(reference, quantized) -> {name: SQNR in dB}`` for the layers both dicts hold.

    ``10 log10(sum x**2 / sum (x - x_hat)**2)`` per layer, in the reference's order; inf for
    an exact copy; a layer only one side recorded is left out. The answer is compared as the
    list of its values in the expected order, after its names are checked.
    """
    a = np.array
    cases = [
        Case(({"input": a([1.0, -1.0]), "conv1": a([2.0, 2.0])},
              {"input": a([1.0, -1.0]), "conv1": a([2.2, 1.8])}),
             {"input": INF, "conv1": 20.0},
             "an exact copy is inf dB; 10% noise is 20 dB",
             "an exact copy has no noise: return math.inf there, not a division error."),
        Case(({"conv1": a([[3.0, 4.0], [0.0, 0.0]]), "fc": a([1.0, 2.0, 2.0])},
              {"conv1": a([[3.0, 4.5], [0.0, 0.0]]), "fc": a([1.0, 2.0, 1.0])}),
             {"conv1": _sqnr([3, 4, 0, 0], [3, 4.5, 0, 0]), "fc": _sqnr([1, 2, 2], [1, 2, 1])},
             "2-D tensors: sum over every element"),
        Case(({"input": a([0.5, 0.5]), "conv1": a([1.0, -2.0]), "output": a([1.0])},
              {"conv1": a([-1.0, 2.0]), "input": a([0.5, 0.25]), "extra": a([9.0])}),
             {"input": _sqnr([0.5, 0.5], [0.5, 0.25]), "conv1": _sqnr([1, -2], [-1, 2])},
             "names only one side has are left out; the reference's order is kept; a sign "
             "flip gives a negative SQNR",
             "loop over the reference's names and keep those the quantized dict also has."),
        Case(({"fc": a([1.0, 3.0, -2.0, 0.5], np.float32)},
              {"fc": a([1.0, 3.0, -2.0, 0.75], np.float32)}),
             {"fc": _sqnr([1, 3, -2, 0.5], [1, 3, -2, 0.75])},
             "float32 tensors: compute the sums in float64 or float32, the dB agree to 1e-5"),
        Case(({"conv3": a([1.0, 2.0, 3.0, 4.0])}, {"conv3": a([0.0, 0.0, 0.0, 8.0])}),
             {"conv3": 0.0},
             "a ruined tensor (its noise as large as the float signal) is 0 dB, not 3.3 dB"),
    ]
    torchao = (lambda case, v: np.allclose(v, _torchao_sqnr(case.args[0], case.args[1],
                                                            case.args[2]), rtol=1e-5, atol=1e-6),
               "you divided by the power of the *quantized* tensor, as torchao's compute_sqnr "
               "does; the course's signal is the float reference: sum(x**2) with x = "
               "reference[name].")
    no_log = (lambda case, v: np.allclose(10 * np.log10(v), case.expected, rtol=1e-5, atol=1e-6),
              "that is the ratio itself: take 10 * log10 of it to get decibels.")
    twenty = (lambda case, v: np.allclose(v, 2 * case.expected, rtol=1e-5, atol=1e-6),
              "a ratio of powers (sums of squares) takes 10 * log10; 20 * log10 is for a ratio "
              "of amplitudes (norms, not squared).")
    learner = _learner(fn)

    @_wraps_learner
    def values(reference, quantized, expected_names):
        answer = learner(reference, quantized)
        if not isinstance(answer, Mapping):
            raise TypeError(f"expected a dict {{name: dB}}, got {_type_name(answer)}")
        if list(answer) != expected_names:
            raise ValueError(f"names: expected {expected_names} in this order, got {list(answer)}")
        return np.array([float(v) if isinstance(v, int | float | np.number) else np.nan
                         for v in answer.values()])

    wrapped = [Case((*c.args, list(c.expected)), np.array(list(c.expected.values())), c.about,
                    c.hint) for c in cases]
    return run_checks("layer_sqnr", values, wrapped, rtol=1e-5, atol=1e-6,
                      mistakes=[torchao, no_log, twenty],
                      show=lambda args: f"reference={_short(args[0])}, quantized={_short(args[1])}",
                      dtype=np.floating, hint=(
        "for each name of reference that quantized also has: x, x_hat = reference[name], "
        "quantized[name]; 10 * log10(sum(x**2) / sum((x - x_hat)**2)), inf when the noise is 0."))


def _short(d: Mapping) -> str:
    return "{" + ", ".join(f"{k!r}: {np.asarray(v).tolist()}" for k, v in d.items()) + "}"




def _share(db) -> float:
    return min(10 ** (-db / 10), 1.0) if db != INF else 0.0


def check_culprit(fn: Callable[[Mapping], str]) -> CheckResult:
    """``fn(sqnr) -> name``: the layer that adds the most noise to the tensor before it.

    ``sqnr`` is ``{name: dB}`` in network order. A tensor's share of noise is
    ``min(10**(-SQNR/10), 1)`` (inf dB: 0); each layer adds its share minus the share of the
    tensor before it (the first: minus 0); the culprit adds the most.
    """
    cases = [
        Case(({"input": 45.0, "conv1": 38.0, "conv2": 2.0, "fc": 1.5},), "conv2",
             "a collapse in the middle: conv2's share jumps from 1.6e-4 to 0.63"),
        Case(({"stem": 35.3, "b1_conv1": 31.8, "b1_conv2": 30.6},), "b1_conv1",
             "a healthy ResNet: the stem's whole error is 3.0e-4, b1_conv1 adds 3.7e-4 more",
             "add noise as powers, not as dB: a drop in dB is a ratio, and the first layer, "
             "starting from almost no noise, always looks worst in dB."),
        Case(({"input": -3.0, "conv1": -4.0, "fc": -4.5},), "input",
             "broken from the start (a wrong input scale): the input's share is already 1"),
        Case(({"input": 0.5, "conv1": 6.0, "pool1": 6.0, "fc": -8.0},), "input",
             "shares are capped at 1: fc's -8 dB (6.3) is a wreck growing, not new damage",
             "cap each share at 1 (0 dB) before taking differences: min(10**(-db/10), 1)."),
        Case(({"input": 50.0, "conv1": 30.0, "pool1": INF, "flatten": INF, "conv2": 28.0},),
             "conv2", "exact copies (inf) have share 0; conv2 adds 1.6e-3 after them"),
        Case(({"input": 48.0, "conv1": 30.0, "conv2": 12.0, "conv3": 5.0, "fc": 4.0},), "conv3",
             "the lowest SQNR (fc) is not the culprit, and neither is the largest dB drop "
             "(conv1, conv2: 18 dB each): conv3 adds 0.25 of noise"),
        Case(({"input": 40.0, "conv1": 35.0, "conv2": 33.0, "fc": 10.0},), "fc",
             "the last layer can be the culprit too"),
    ]

    def db_drop(sqnr):  # the rule this lesson replaced: drops in dB from 48 dB
        previous, lost = 48.0, {}
        for name, db in sqnr.items():
            lost[name] = previous - min(db, 48.0)
            previous = min(db, 48.0)
        return max(lost, key=lost.get)

    def uncapped(sqnr):
        previous, added = 0.0, {}
        for name, db in sqnr.items():
            share = 10 ** (-db / 10) if db != INF else 0.0
            added[name], previous = share - previous, share
        return max(added, key=added.get)

    mistakes = [
        (lambda case, v: v == uncapped(case.args[0]) != case.expected,
         "cap each share at 1 (0 dB) before taking differences: past 0 dB a tensor is ruined "
         "already, and growing further is no new damage."),
        (lambda case, v: v == db_drop(case.args[0]) and case.expected != db_drop(case.args[0]),
         "that is the largest drop in dB; dB drops are ratios of noise, so they favour the "
         "first layers. Compare shares of noise, 10**(-db/10), and take differences."),
        (lambda case, v: v == min(case.args[0], key=case.args[0].get),
         "the culprit is where the noise grows most, not the lowest SQNR: the layers after the "
         "culprit only inherit its error."),
    ]
    return _run_exact("culprit", fn, cases, mistakes=mistakes,
                      describe=lambda v: v if isinstance(v, str) else (
                          f"{_type_name(v)} {v!r}, not a layer name"), hint=(
        "previous = 0; for each name: share = min(10**(-db/10), 1) (0 for inf); added[name] = "
        "share - previous; previous = share; return the name with the largest added."))


# ---------------------------------------------------------------- the real planted model

CALIBRATION = 100  # the lesson's calibration images: the first 100 training images


def planted_cnn(seed: int = 0):
    """``tl.debug.planted_course_cnn(seed)``: the lesson's broken PyTorch CNN and its channel."""
    from tutorial_lib.measure import debug

    return debug.planted_course_cnn(seed)


def _digits():
    from tutorial_lib.course import data as tl_data

    nchw = tl_data.load_digits(size=32, layout="NCHW")
    return nchw, nchw.x_train[:CALIBRATION]


def _split_reference(model, calibration, fold=True, per_channel=False, act_weights=None,
                     signed=False):
    """The split as the exercise asks (fold, per-tensor weights, uint8 min-max activations),
    or one of the usual wrong versions."""
    from tutorial_lib.bridges import torch_bridge as tb
    from tutorial_lib.core.affine import choose_qparams

    base = tb.fold_batchnorm(model) if fold else model
    weights = tb.fake_quantize_model(base, {}, per_channel=per_channel)
    layers = tb.weighted_layers(base)
    inputs = tb.layer_inputs(base, calibration, layers)
    quant_min, quant_max = (-128, 127) if signed else (0, 255)
    qparams = {name: choose_qparams(float(x.min()), float(x.max()), quant_min, quant_max,
                                    symmetric=signed) for name, x in inputs.items()}
    # act_weights=8: fake_quantize_model's defaults, what a learner gets by leaving them out
    acts = tb.fake_quantize_model(base, qparams, quant_min=quant_min, quant_max=quant_max,
                                  weight_bits=act_weights)
    return weights, acts


def check_weight_activation_split(fn: Callable) -> CheckResult:
    """``fn(model, calibration_x) -> {"weights only": model, "activations only": model}``.

    Run on the planted CNN of seeds 0-2. ``"weights only"``: BatchNorm folded, every weight
    fake-quantized to int8 with one symmetric scale per tensor, activations float.
    ``"activations only"``: BatchNorm folded, weights float, the input of every weighted layer
    fake-quantized to uint8 with min-max parameters from ``calibration_x``. Both models' logits
    on the test images must equal those of the checker's models (to 1e-3 of their largest);
    the report shows the test accuracies. The input model must come back unchanged.
    """
    import copy

    from tutorial_lib.bridges import torch_bridge as tb

    nchw, calibration = _digits()
    learner = _learner(fn)
    keys = ("weights only", "activations only")
    state: dict = {}
    cache: dict = {}

    def logits(models):
        return {k: tb.logits(models[k], nchw.x_test) for k in keys}

    def accuracy(z):
        return round(float(np.mean(z.argmax(axis=1) == nchw.y_test)), 4)

    def reference(seed, **kw):
        key = (seed, tuple(sorted(kw.items())))
        if key not in cache:
            model, _ = planted_cnn(seed)
            cache[key] = logits(dict(zip(keys, _split_reference(model, calibration, **kw),
                                         strict=True)))
        return cache[key]

    def same(a, b):
        return a.shape == b.shape and float(np.max(np.abs(a - b))) <= 1e-3 * max(
            1.0, float(np.max(np.abs(b))))

    @_wraps_learner
    def run(seed):
        model, _ = planted_cnn(seed)
        before = copy.deepcopy(model.state_dict())
        answer = learner(model, calibration)
        if not isinstance(answer, Mapping) or set(answer) != set(keys):
            got = list(answer) if isinstance(answer, Mapping) else ""
            raise TypeError('return {"weights only": model, "activations only": model}; got '
                            f"{_type_name(answer)} {got}")
        if any(not np.array_equal(before[k].numpy(), v.numpy())
               for k, v in model.state_dict().items()):
            return "changed the model passed in"
        outs = logits(answer)
        state["outs"] = outs
        ref = reference(seed)
        return {k: accuracy(outs[k]) if same(outs[k], ref[k])
                else f"{accuracy(outs[k])} (not the checker's model)" for k in keys}

    cases = [Case((seed,), _Lazy(lambda seed=seed: {k: accuracy(z) for k, z in
                                                    reference(seed).items()}),
                  f"the planted CNN of seed {seed}") for seed in (0, 1, 2)]

    def variant(**kw):
        def test(case, v):
            wrong = reference(case.args[0], **kw)
            differ = [k for k in keys if isinstance(v[k], str)]
            return bool(differ) and all(same(state["outs"][k], wrong[k]) for k in differ)
        return test

    def swapped(case, v):
        ref = reference(case.args[0])
        return (same(state["outs"]["weights only"], ref["activations only"])
                and same(state["outs"]["activations only"], ref["weights only"]))

    mistakes = [
        (lambda case, v: v == "changed the model passed in",
         "work on a copy: tb.fold_batchnorm(model) returns one; the planted model must stay as "
         "it is for the next step."),
        (swapped, "the two are swapped: 'weights only' keeps activations float."),
        (variant(fold=False),
         "BatchNorm is not folded: an int8 model stores folded weights (w * gamma / "
         "sqrt(var + eps)), and the planted outlier is in bn2's gamma: fold first, "
         "tb.fold_batchnorm(model)."),
        (variant(per_channel=True),
         "those are per-channel weight scales; the target here has one scale per tensor "
         "(per_channel=False)."),
        (variant(act_weights=8),
         "'activations only' must keep the weights float (weight_bits=None); yours quantizes "
         "both, which is the full int8 model."),
        (variant(signed=True),
         "symmetric int8 spends half its levels on negative values that a ReLU output never "
         "has: use asymmetric min-max parameters, uint8 [0, 255], as PT2E's x86 quantizer."),
    ]
    return _run_exact("weight_activation_split", run, cases, mistakes=mistakes, hint=(
        "folded = tb.fold_batchnorm(model); weights only: tb.fake_quantize_model(folded, {}, "
        "per_channel=False); activations only: inputs = tb.layer_inputs(folded, calibration_x, "
        "tb.weighted_layers(folded)), qparams = {name: tl.choose_qparams(x.min(), x.max(), 0, "
        "255)}, tb.fake_quantize_model(folded, qparams, quant_min=0, quant_max=255, "
        "weight_bits=None)."))


class _Lazy:
    """An expected value computed on first comparison (the checker's own measurement)."""

    def __init__(self, make: Callable):
        self._make, self._value = make, None

    def value(self):
        if self._value is None:
            self._value = self._make()
        return self._value

    def __eq__(self, other):
        return self.value() == other

    def __getitem__(self, key):
        return self.value()[key]

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return repr(self.value())


SWEEP_LAYERS = ("conv1", "conv2", "conv3", "fc1", "fc2")


def _sweep_one(model, calibration, layer, nchw, per_channel=False, inverse=False):
    from tutorial_lib.bridges import torch_bridge as tb
    from tutorial_lib.measure import debug

    keep = [n for n in SWEEP_LAYERS if n != layer] if inverse else [layer]
    return round(float(tb.digits_accuracy(
        debug.torch_pt2e(model, calibration, per_channel=per_channel, keep_float=keep), nchw)), 4)


def check_float_sweep(fn: Callable) -> CheckResult:
    """``fn(model, calibration_x, layers) -> {layer: accuracy}``: one layer at a time in float.

    For each name of ``layers``, in order: PT2E int8 of ``model`` with per-tensor weights
    (``tl.debug.torch_pt2e(model, calibration_x, per_channel=False, keep_float=[layer])``), all
    other layers int8, and its test accuracy as a fraction (``tb.digits_accuracy``). Run on
    seed 0's planted CNN with every weighted layer; the checker measures the same models.
    """
    nchw, calibration = _digits()
    learner = _learner(fn)
    cache: dict = {}

    def expected():
        if "sweep" not in cache:
            model, _ = planted_cnn(0)
            cache["sweep"] = [(n, _sweep_one(model, calibration, n, nchw)) for n in SWEEP_LAYERS]
        return cache["sweep"]

    @_wraps_learner
    def run(seed):
        model, _ = planted_cnn(seed)
        answer = learner(model, calibration, list(SWEEP_LAYERS))
        if not isinstance(answer, Mapping):
            raise TypeError(f"expected a dict {{layer: accuracy}}, got {_type_name(answer)}")
        return [(k, round(float(v), 4) if isinstance(v, int | float | np.number) else v)
                for k, v in answer.items()]  # a list: the order counts

    def first_wrong(case, v):
        right = dict(case.expected.value())
        return next(n for n in SWEEP_LAYERS if dict(v).get(n) != right[n])

    def variant(**kw):
        def test(case, v):
            layer = first_wrong(case, v)
            model, _ = planted_cnn(0)
            return dict(v)[layer] == _sweep_one(model, calibration, layer, nchw, **kw)
        return test

    mistakes = [
        (lambda case, v: [k for k, _ in v] != list(SWEEP_LAYERS),
         "one entry per layer of `layers`, in that order: {layer: accuracy}."),
        (lambda case, v: all(abs(x / 100 - y) < 1e-3 for (_, x), (_, y)
                             in zip(v, case.expected.value(), strict=True)),
         "accuracies as fractions (0.989), as tb.digits_accuracy returns them, not percent."),
        (variant(inverse=True),
         "that keeps every layer *but* one in float; the sweep keeps one layer in float at a "
         "time: keep_float=[layer]."),
        (variant(per_channel=True),
         "those are per-channel int8 models; the target has per-tensor weights: "
         "per_channel=False."),
        (lambda case, v: all(0 <= x <= 1 for _, x in v) and len({x for _, x in v}) == 1,
         "every layer gives the same number: is keep_float passed to the conversion inside the "
         "loop?"),
    ]
    cases = [Case((0,), _Lazy(expected), "seed 0's planted CNN, every weighted layer")]
    return _run_exact("float_sweep", run, cases, mistakes=mistakes, hint=(
        "for layer in layers: q = tl.debug.torch_pt2e(model, calibration_x, per_channel=False, "
        "keep_float=[layer]); result[layer] = tb.digits_accuracy(q, data)."))


def check_cle_scales(fn: Callable) -> CheckResult:
    """``fn(w1, b1, w2) -> s``: one cross-layer equalization scale per channel.

    ``w1`` is the first layer's (BatchNorm-folded) weight, output channels on axis 0; ``w2`` the
    next layer's, input channels on axis 1 (PyTorch's layouts); ``b1`` the first layer's bias
    (it moves with the scale but does not set it). ``s = sqrt(r1 / r2)`` with ``r1`` the range
    ``max - min`` of each output channel of ``w1`` and ``r2`` of each input channel of ``w2``,
    as ``torch.ao.quantization._equalize`` does. Dividing channel i of ``w1`` by ``s_i`` and
    multiplying input channel i of ``w2`` by it leaves both with range ``sqrt(r1 * r2)``.
    """
    a = np.array
    dense1 = a([[4.0, -4.0], [0.5, -0.5]], np.float32)  # output ranges 8 and 1
    dense2 = a([[0.5, 2.0], [-0.5, -2.0]], np.float32)  # input ranges 1 and 4
    conv1 = np.zeros((3, 2, 1, 1), np.float32)
    conv1[:, :, 0, 0] = [[1.0, -1.0], [300.0, 0.0], [0.0, 0.5]]  # ranges 2, 300, 0.5
    conv2 = np.zeros((2, 3, 3, 3), np.float32)
    conv2[0, 0, 1, 1], conv2[1, 0, 0, 0] = 1.0, -1.0  # channel 0: range 2
    conv2[0, 1, 2, 2] = 0.03  # channel 1: range 0.03 (the planted input channel, 1/100)
    conv2[1, 2, 0, 1], conv2[0, 2, 1, 0] = 2.0, 0.0  # channel 2: range 2
    positive1 = a([[3.0, 1.0], [2.0, 1.5]], np.float32)  # max - min 2 and 0.5, max |w| 3, 2
    cases = [
        Case((dense1, None, dense2), a([8 ** 0.5, 0.5]),
             "two dense layers: s = sqrt(8 / 1), sqrt(1 / 4)"),
        Case((conv1, a([0.1, 30.0, 0.0], np.float32), conv2), a([1.0, 100.0, 0.5]),
             "a planted outlier: output channel 1 of w1 is 300 wide, input channel 1 of w2 0.03; "
             "s = 100 brings both to 3"),
        Case((positive1, a([1.0, -1.0], np.float32), a([[1.0, 1.0], [0.0, 0.5]], np.float32)),
             a([2 ** 0.5, 1.0]),
             "weights of one sign: the range is max - min, not max |w|",
             "range = max - min of each channel (as torch.ao.quantization._equalize), not "
             "max |w|."),
    ]

    def ranges(w, axis):
        others = tuple(i for i in range(w.ndim) if i != axis)
        return w.max(axis=others) - w.min(axis=others)

    def wrong(kind):
        def f(w1, b1, w2):
            r1, r2 = ranges(w1, 0), ranges(w2, 1)
            if kind == "inverse":
                return np.sqrt(r2 / r1)
            if kind == "no sqrt":
                return r1 / r2
            if kind == "abs":
                others1 = tuple(range(1, w1.ndim))
                others2 = tuple(i for i in range(w2.ndim) if i != 1)
                return np.sqrt(np.abs(w1).max(axis=others1) / np.abs(w2).max(axis=others2))
            if kind == "w2 output axis":
                return np.sqrt(r1 / ranges(w2, 0))
            raise AssertionError(kind)
        return f

    mistakes = [
        (_reproduces(wrong("inverse"), rtol=1e-5), "the ratio is upside down: s = sqrt(r1 / r2), "
         "so that w1 / s shrinks a wide channel and w2 * s widens its narrow input channel."),
        (_reproduces(wrong("no sqrt"), rtol=1e-5), "r1 / r2 moves the whole imbalance into w2; "
         "the square root splits it evenly, both ranges becoming sqrt(r1 * r2)."),
        (_reproduces(wrong("abs"), rtol=1e-5), "range = max - min of each channel (as "
         "torch.ao.quantization._equalize), not max |w|."),
        (_reproduces(wrong("w2 output axis"), rtol=1e-5),
         "w2's channel i is its *input* channel: axis 1 of (out, in, kh, kw), the one fed by "
         "w1's output channel i; take its range over every other axis."),
    ]
    return run_checks("cle_scales", fn, cases, rtol=1e-5, atol=1e-7, mistakes=mistakes,
                      show=lambda args: f"w1 shape {args[0].shape}, w2 shape {args[2].shape}, "
                                        f"w1={args[0].reshape(args[0].shape[0], -1).tolist()}",
                      hint="r1 = max - min of w1 over every axis but 0; r2 = max - min of w2 over "
                           "every axis but 1; s = np.sqrt(r1 / r2).")
