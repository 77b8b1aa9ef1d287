"""Checkers for lesson 06's exercises (PyTorch quantization): ``tl.checks.check_<name>(your_function)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tutorial_lib.checks.runner import (
    Case,
    CheckResult,
    _learner,
    _LearnerRaised,
    _run_exact,
    _type_name,
    _wraps_learner,
    run_checks,
)

__all__ = ["check_fuse_groups", "check_calibrate", "check_state_dict_bytes", "check_keep_float",
    "check_latency_stats", "check_pt2e_keep_float"]


def check_fuse_groups(fn: Callable[[list[tuple[str, str]]], list[list[str]]]) -> CheckResult:
    """``fn(layers) -> groups``: runs of (name, type) layers that eager ``fuse_modules`` merges.

    Patterns, longest first at each layer: Conv2d-BatchNorm2d-ReLU, Conv2d-BatchNorm2d,
    Conv2d-ReLU, Linear-ReLU; each layer joins at most one group.
    """
    course = [("conv1", "Conv2d"), ("bn1", "BatchNorm2d"), ("relu1", "ReLU"), ("pool1", "MaxPool2d"),
              ("conv2", "Conv2d"), ("bn2", "BatchNorm2d"), ("relu2", "ReLU"), ("pool2", "MaxPool2d"),
              ("conv3", "Conv2d"), ("bn3", "BatchNorm2d"), ("relu3", "ReLU"), ("pool3", "MaxPool2d"),
              ("flatten", "Flatten"), ("fc1", "Linear"), ("relu4", "ReLU"), ("fc2", "Linear")]
    cases = [
        Case((course,), [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"],
                         ["conv3", "bn3", "relu3"], ["fc1", "relu4"]], "the course CNN",
             "do not forget Linear followed by ReLU (fc1, relu4)."),
        Case(([("c", "Conv2d"), ("r", "ReLU")],), [["c", "r"]], "conv-relu without BatchNorm"),
        Case(([("c", "Conv2d"), ("b", "BatchNorm2d"), ("p", "MaxPool2d")],), [["c", "b"]],
             "conv-bn with no ReLU after it"),
        Case(([("c1", "Conv2d"), ("c2", "Conv2d"), ("b2", "BatchNorm2d"), ("r2", "ReLU")],),
             [["c2", "b2", "r2"]], "two convs in a row: the BatchNorm belongs to the second",
             "a group is a run of consecutive layers: c1 is followed by a conv, so it stays alone."),
        Case(([("p", "MaxPool2d"), ("r", "ReLU"), ("fc", "Linear")],), [],
             "a ReLU after pooling fuses with nothing"),
        Case(([("fc1", "Linear"), ("act", "ReLU"), ("fc2", "Linear")],), [["fc1", "act"]],
             "linear-relu, then a lone linear"),
        Case(([],), [], "no layers, no groups"),
    ]
    return _run_exact("fuse_groups", fn, cases, arg_names=["layers"],
                      describe=lambda g: [list(group) for group in g], hint=(
        "walk the list with an index; at each layer try conv-bn-relu, conv-bn, conv-relu, "
        "linear-relu (longest first) on the next types; on a match, record the names and skip past."))


def check_calibrate(fn: Callable) -> CheckResult:
    """``fn(model, images, batch_size) -> model``: every image once, in order, in eval mode, no grad."""
    import torch
    from torch import nn

    class Recorder(nn.Module):  # logs what calibration shows it, as an observer would
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(1)  # present so that train/eval mode matters
            self.calls: list[tuple[int, bool, bool]] = []
            self.seen: list[float] = []

        def forward(self, x):
            self.calls.append((len(x), self.training, torch.is_grad_enabled()))
            self.seen += x[:, 0, 0, 0].tolist()
            return x.flatten(1).sum(1)

    def describe(model):
        if not isinstance(model, Recorder):
            return f"returned {type(model).__name__}, not the model"
        return {"batches": [c[0] for c in model.calls],
                "eval mode": all(not c[1] for c in model.calls),
                "no gradients": all(not c[2] for c in model.calls),
                "images in order": model.seen == list(range(len(model.seen)))}

    def images(n):
        return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).clone()

    def expected(*batches):
        return {"batches": list(batches), "eval mode": True, "no gradients": True,
                "images in order": True}

    def model(train=True):
        return Recorder().train(train)

    cases = [
        Case((model(), images(10), 4), expected(4, 4, 2), "10 images in batches of 4",
             "the last batch may be smaller: range(0, len(images), batch_size) reaches it."),
        Case((model(), images(8), 4), expected(4, 4), "8 images in batches of 4"),
        Case((model(), images(3), 8), expected(3), "fewer images than one batch"),
        Case((model(), images(5), 1), expected(1, 1, 1, 1, 1), "batches of one image"),
        Case((model(train=False), images(6), 6), expected(6), "a model already in eval mode"),
    ]
    def show(args):
        model, x, batch_size = args
        return (f"model in {'train' if model.training else 'eval'} mode, "
                f"images of shape {tuple(x.shape)}, batch_size={batch_size}")

    return _run_exact("calibrate", fn, cases, describe=describe, show=show, hint=(
        "model.eval(); then under torch.no_grad(), call model(images[i:i + batch_size]) for i in "
        "range(0, len(images), batch_size); return the model."))


def check_state_dict_bytes(fn: Callable) -> CheckResult:
    """``fn(model) -> int``: the bytes ``torch.save(model.state_dict(), f)`` writes (torch 2.13)."""
    import torch
    from torch import nn

    torch.manual_seed(0)  # the values do not change the size, only the shapes do
    # Expected sizes: torch.save into io.BytesIO with torch 2.13.0, run by hand.
    cases = [
        Case((nn.Linear(4, 3),), 1893, "Linear(4, 3): 15 floats, and the file around them",
             "60 bytes of numbers, 1893 on disk: the file also stores names, shapes and records."),
        Case((nn.Linear(256, 10),), 12069, "Linear(256, 10)"),
        Case((nn.Linear(4, 3, bias=False),), 1641, "no bias: one tensor fewer"),
        Case((nn.Conv2d(1, 16, 3),), 2469, "Conv2d(1, 16, 3)"),
        Case((nn.BatchNorm2d(16),), 2713, "BatchNorm2d: buffers are saved too",
             "running_mean, running_var and num_batches_tracked are buffers, not parameters; "
             "the state dict holds both."),
        Case((nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)),), 2525,
             "a small Sequential"),
        Case((nn.ReLU(),), 1325, "no tensors at all: still a file"),
    ]
    return _run_exact("state_dict_bytes", fn, cases, arg_names=["model"],
                      describe=lambda v: v if isinstance(v, int) else f"{v!r} (not an int)", hint=(
        "buffer = io.BytesIO(); torch.save(model.state_dict(), buffer); return buffer.tell() "
        "(or len(buffer.getvalue()))."))


_INDUCTOR_QUANTIZERS = "X86InductorQuantizer or ArmInductorQuantizer"


def check_keep_float(fn: Callable) -> CheckResult:
    """``fn(names) -> X86InductorQuantizer``: default int8 everywhere except the named modules.

    ARM's ``ArmInductorQuantizer`` with its own default config (or per-channel weights, as
    ``tl.torch_bridge.arm_quantizer`` gives it) passes too: it is the same exercise on the
    qnnpack engine.
    """
    import torch

    def describe(quantizer):
        kind_name = type(quantizer).__name__
        config = getattr(quantizer, "global_config", None)
        weights = (config.weight.dtype, config.weight.qscheme) if config is not None else None
        if config is None:
            kind = "none"
        elif getattr(config, "is_qat", True) or config.input_activation.is_dynamic:
            kind = "not the default static config"
        elif weights == (torch.int8, torch.per_channel_symmetric) or (
                kind_name == "ArmInductorQuantizer"
                and weights == (torch.int8, torch.per_tensor_symmetric)):
            kind = "int8 static, the default weights"
        else:
            kind = "not the default static config"
        names = getattr(quantizer, "module_name_qconfig", {})
        return {"quantizer": _INDUCTOR_QUANTIZERS if kind_name in _INDUCTOR_QUANTIZERS.split(" or ")
                else kind_name, "global": kind,
                "kept in float": sorted(n for n, c in names.items() if c is None),
                "other settings": len([c for c in names.values() if c is not None])
                + len(getattr(quantizer, "operator_type_qconfig", {}))}

    def expected(*names):
        return {"quantizer": _INDUCTOR_QUANTIZERS, "global": "int8 static, the default weights",
                "kept in float": sorted(names), "other settings": 0}

    cases = [
        Case((["fc2"],), expected("fc2"), "keep the last layer in float"),
        Case((["conv1", "fc2"],), expected("conv1", "fc2"), "first and last layer in float",
             "call set_module_name_qconfig(name, None) once per name."),
        Case(([],), expected(), "nothing kept in float: only the global config",
             "set_global(get_default_x86_inductor_quantization_config()) comes first, always."),
        Case((["conv3"],), expected("conv3"), "a middle layer"),
        Case((["fc1"],), expected("fc1"), "one of two Linear layers",
             "set_module_type_qconfig(nn.Linear, None) would keep every Linear in float; "
             "name the module instead."),
    ]
    return _run_exact("keep_float", fn, cases, arg_names=["names"], describe=describe, hint=(
        "quantizer = X86InductorQuantizer(); quantizer.set_global("
        "get_default_x86_inductor_quantization_config()); then for each name "
        "quantizer.set_module_name_qconfig(name, None). (ArmInductorQuantizer with "
        "get_default_arm_inductor_quantization_config() is the same on ARM.)"))


def check_latency_stats(fn: Callable[[Sequence[float], int], tuple[float, float]]) -> CheckResult:
    """``fn(times_ms, warmup) -> (median, spread)``: drop warm-up runs, median and p75 - p25."""
    cases = [
        Case(([50.0, 2.0, 1.0, 3.0, 9.0, 2.0], 1), (2.0, 1.0),
             "a slow first run and one outlier", "drop the first `warmup` timings before anything."),
        Case(([10.0, 10.0, 10.0, 10.0], 0), (10.0, 0.0), "all equal: no spread"),
        Case(([100.0, 1.0, 2.0, 3.0, 4.0], 1), (2.5, 1.5),
             "even count: median between the middle two; quartiles interpolate",
             "np.percentile(kept, [25, 50, 75]) interpolates linearly between sorted values."),
        Case(([5.0, 4.0, 3.0, 2.0, 1.0], 2), (2.0, 1.0), "two warm-up runs"),
        Case(([1.0, 1.0, 1.0, 1.0, 1000.0], 0), (1.0, 0.0),
             "one hiccup of the machine must not move the answer",
             "the mean (200.8 here) follows the outlier; the median does not."),
        Case(([9.0, 3.0], 1), (3.0, 0.0), "one timing left"),
        Case(([7.0, 1.0, 8.0, 2.0, 6.0, 3.0], 0), (4.5, 4.5), "unsorted input"),
    ]
    return run_checks("latency_stats", fn, cases, rtol=1e-9, atol=1e-12,
                      arg_names=["times_ms", "warmup"], hint=(
        "kept = np.asarray(times_ms)[warmup:]; q1, median, q3 = np.percentile(kept, [25, 50, 75]); "
        "return median, q3 - q1."))


def check_pt2e_keep_float(fn: Callable) -> CheckResult:
    """``fn(graph, calibration_x, keep_float) -> converted``: PT2E static int8, named layers in float.

    ``graph`` is the course CNN (trained, shipped weights) exported with
    ``tl.torch_bridge.export_for_quantization``; ``fn`` prepares it with an x86 quantizer whose
    global config is the default static one and whose modules named in ``keep_float`` get
    ``None``, calibrates it on ``calibration_x`` and converts it. The check reads the produced
    graph: which conv/linear layers store int8 weights and which float32
    (``tl.torch_bridge.quantized_summary``), whether the activations are quantized with
    calibrated (static) parameters, and the accuracy on the digits' test split, which must stay
    within one point of the float model's.
    """
    import warnings

    import torch

    from tutorial_lib.bridges import torch_bridge as tb
    from tutorial_lib.course.data import load_digits

    tb.load_quantization_apis()
    data = load_digits(size=32, layout="NCHW")
    model = tb.trained_cnn()
    float_accuracy = tb.digits_accuracy(model, data)
    calibration_x = torch.from_numpy(data.x_train[:64])
    learner = _learner(fn)

    @_wraps_learner
    def quantize(graph, x, keep_float):
        with warnings.catch_warnings():
            # What torchao says about the layers next to a float one, and about observers that
            # saw no data (the accuracy line reports that mistake), is not the learner's output.
            warnings.filterwarnings("ignore", message=r"The input of \w+ is not quantized")
            warnings.filterwarnings("ignore", message=r"must run observer before")
            try:
                return learner(graph, x, list(keep_float))
            except NotImplementedError as err:
                if not str(err) or "your code here" in str(err):
                    raise  # the exercise's own placeholder: not written yet
                # torch's own, e.g. "Calling eval() is not supported yet." from an exported
                # graph: the learner's code raised it; its first line says enough
                first = next(line.strip() for line in str(err).splitlines() if line.strip())
                raise _LearnerRaised(NotImplementedError(first)) from err

    def describe(converted):
        if not isinstance(converted, torch.fx.GraphModule):
            return f"returned {_type_name(converted)}, not the converted graph"
        targets = {str(n.target) for n in converted.graph.nodes if n.op == "call_function"}
        if any("choose_qparams" in t for t in targets):
            activations = "dynamic (parameters computed per call)"
        elif any("quantize_per_tensor" in t for t in targets):
            activations = "static (calibrated)"
        else:
            activations = "not quantized"
        try:
            rows = tb.quantized_summary(converted)
            accuracy = tb.digits_accuracy(converted, data)
        except Exception as err:  # e.g. a graph exported again with a fixed batch size
            return f"the graph does not run on the test images ({type(err).__name__}: {err})"
        return {"int8 weights": [r["layer"] for r in rows if r["weight"] == "int8"],
                "float weights": [r["layer"] for r in rows if r["weight"] == "float32"],
                "activations": activations,
                "accuracy": "within 1 point of float" if float_accuracy - accuracy <= 0.01
                else f"{accuracy:.1%}, float {float_accuracy:.1%}"}

    layers = tb.weighted_layers(model)

    def expected(*kept):
        return {"int8 weights": [n for n in layers if n not in kept],
                "float weights": [n for n in layers if n in kept],
                "activations": "static (calibrated)", "accuracy": "within 1 point of float"}

    def case(kept, about, hint=""):
        graph = tb.export_for_quantization(model, calibration_x[:32])
        return Case((graph, calibration_x, kept), expected(*kept), about, hint)

    cases = [
        case(["fc2"], "keep the classifier fc2 in float"),
        case(["fc1"], "fc1 in float, fc2 int8: name the module, not its type"),
        case(["conv1", "fc2"], "the first and the last layer in float"),
        case([], "nothing kept in float: every layer int8",
             "the global config comes first: quantizer.set_global("
             "get_default_x86_inductor_quantization_config())."),
    ]

    def kept_wrong(test):
        def diagnose(case, actual):
            return isinstance(actual, dict) and test(case.expected, actual)
        return diagnose

    mistakes = [
        (kept_wrong(lambda e, a: a["activations"] == "not quantized" and not a["int8 weights"]),
         "the graph is only prepared: return convert_pt2e(prepared), which turns the observers "
         "into quantize/dequantize pairs with int8 weights."),
        (kept_wrong(lambda e, a: a["activations"].startswith("dynamic")),
         "use the static default, get_default_x86_inductor_quantization_config() (is_dynamic is "
         "False): calibration fixes the activation parameters."),
        (kept_wrong(lambda e, a: set(a["float weights"]) > set(e["float weights"])
                    and {"fc1", "fc2"} <= set(a["float weights"])),
         "set_module_type_qconfig(nn.Linear, None) keeps every Linear in float; keep only the "
         "named modules with set_module_name_qconfig(name, None)."),
        (kept_wrong(lambda e, a: a["float weights"] != e["float weights"]),
         "for each name in keep_float call quantizer.set_module_name_qconfig(name, None) before "
         "prepare_pt2e; every other layer follows the global config."),
        (kept_wrong(lambda e, a: a["accuracy"] != e["accuracy"]),
         "calibrate between prepare_pt2e and convert_pt2e: run the prepared graph on "
         "calibration_x under torch.no_grad(); observers that saw no data keep default ranges."),
    ]

    def show(args):
        _, x, kept = args
        return (f"graph of the trained course CNN, calibration_x of shape {tuple(x.shape)}, "
                f"keep_float={kept!r}")

    return _run_exact("pt2e_keep_float", quantize, cases, describe=describe, show=show,
                      mistakes=mistakes, hint=(
        "prepared = allow_exported_model_train_eval(prepare_pt2e(graph, keep_float(names))) (an "
        "exported graph refuses .eval() without it); calibrate(prepared, calibration_x, 32); "
        "return convert_pt2e(prepared)."))
