"""PyTorch's quantization APIs on the course CNN: eager mode, torchao and PT2E.

Lesson 06 in library form. First the quantized engine: importing this module sets
``torch.backends.quantized.engine`` to ``tl.env.quantized_engine()`` (x86 on x86-64, qnnpack on
ARM, ``TL_QUANTIZED_ENGINE`` to force one), and every helper below follows it. Then eager mode
(``torch.ao.quantization``: dynamic, static with fusion and observers, QAT; deprecated but in
every tutorial), then PT2E with torchao's inductor quantizers, x86's or ARM's for the engine
(export, prepare, calibrate, convert, lower; QAT), then reading what a quantized model actually
holds. torchao's ``quantize_`` configs need no helper: lessons call them directly after
``load_quantization_apis()``. The models, training and measurements these functions use are in
``tutorial_lib.torch_model``; ``tl.torch_bridge`` gathers both.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from tutorial_lib.bridges.torch_model import (
    _check_images,
    _eval_mode,
    _is_graph,
    fold_batchnorm,
    to_tensor,
    train,
)
from tutorial_lib.course import env
from tutorial_lib.course._quiet import quiet_stderr
from tutorial_lib.course.data import Dataset

__all__ = ["use_course_engine", "KNOWN_WARNINGS", "load_quantization_apis", "fuse_groups",
           "calibrate", "eager_dynamic_int8", "eager_static_int8", "eager_qat_int8",
           "export_for_quantization", "x86_quantizer", "arm_quantizer", "pt2e_quantizer",
           "drop_unused_weights", "lower_to_x86", "lower", "lowering_label", "pt2e_int8", "pt2e_qat_int8",
           "quantized_summary"]


# ---- the quantized engine

def use_course_engine() -> str:
    """Set ``torch.backends.quantized.engine`` to ``tl.env.quantized_engine()``; return it.

    x86 on x86-64, qnnpack on ARM, or what ``TL_QUANTIZED_ENGINE`` names; an engine this
    PyTorch does not have raises a ``ValueError`` listing the ones it has. Called once when
    this module loads, so that eager int8 models run on the machine's own kernels.
    """
    engine = env.quantized_engine(torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = engine
    return engine


use_course_engine()


def _engine() -> str:
    return torch.backends.quantized.engine


# ---- loading the APIs quietly

# Warnings that torch 2.13 / torchao 0.18 raise on every use of APIs this course calls on purpose,
# as (label, category, message pattern). Lesson 06 shows each one once; after
# load_quantization_apis() exactly these are ignored.
KNOWN_WARNINGS = (
    ("torch.ao.quantization", DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    ("quantized tensors", UserWarning,
     r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized"),
    ("reduce_range", UserWarning,
     r"Please use quant_min and quant_max to specify the range for observers"),
    ("torch.utils._pytree", FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)
_NOTICES: dict[str, str] = {}


def load_quantization_apis() -> dict[str, str]:
    """Import ``torch.ao.quantization`` and torchao's quantization APIs, quietly; return the notices.

    torchao's CPU wheel logs "Failed to load ..." for GPU kernels it does not ship, and each call
    of the eager API warns that it is deprecated. The first call imports everything with stderr
    captured, runs the eager API once on a one-layer model to record what it warns (the first
    line of each message, returned as ``{label: text}``), and then ignores exactly the
    messages in ``KNOWN_WARNINGS``: any other warning still shows. Later calls return the same
    notices and install the filters again (a test framework may have reset them).
    """
    if not _NOTICES:
        _record_notices()
    for _, category, pattern in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    return dict(_NOTICES)


def _record_notices() -> None:
    with quiet_stderr():
        import torchao.quantization  # noqa: F401
        import torchao.quantization.pt2e  # noqa: F401
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
        import torchao.quantization.pt2e.quantizer.arm_inductor_quantizer  # noqa: F401
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    tq = torch.ao.quantization
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tq.quantize_dynamic(nn.Sequential(nn.Linear(2, 2)), {nn.Linear}, dtype=torch.qint8)
        tq.get_default_qconfig("x86").activation()  # reduce_range: the x86 default's notice
        probe = tq.QuantWrapper(nn.Sequential(nn.Linear(2, 2))).eval()
        probe.qconfig = tq.get_default_qconfig(_engine())
        tq.prepare(probe, inplace=True)
        probe(torch.ones(1, 2))
        tq.convert(probe, inplace=True)
    for w in caught:
        for label, category, pattern in KNOWN_WARNINGS:
            if issubclass(w.category, category) and re.search(pattern, str(w.message)):
                first_line = str(w.message).strip().splitlines()[0]
                text = " ".join(first_line.split()).split(" (Triggered internally")[0]
                _NOTICES.setdefault(label, text)


def _ao():
    """torchao's PT2E pieces, imported (quietly) on first use."""
    load_quantization_apis()
    from torchao.quantization.pt2e import quantize_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer

    return quantize_pt2e, x86_inductor_quantizer


def _arm():
    load_quantization_apis()
    from torchao.quantization.pt2e.quantizer import arm_inductor_quantizer

    return arm_inductor_quantizer



# ---- eager mode (torch.ao.quantization)

_FUSIONS = (("Conv2d", "BatchNorm2d", "ReLU"), ("Conv2d", "BatchNorm2d"), ("Conv2d", "ReLU"),
            ("Linear", "ReLU"))


def fuse_groups(model) -> list[list[str]]:
    """The runs of layers that ``fuse_modules`` can merge: conv-bn-relu, conv-bn, conv-relu, linear-relu.

    ``model`` is a module (its leaf modules are read in definition order, which must be the order
    ``forward`` calls them) or a list of ``(name, type name)`` pairs. At each layer the longest
    pattern that starts there wins; a layer joins at most one group.

    >>> fuse_groups([("conv", "Conv2d"), ("bn", "BatchNorm2d"), ("act", "ReLU"),
    ...              ("pool", "MaxPool2d"), ("fc", "Linear"), ("out", "Linear")])
    [['conv', 'bn', 'act']]
    """
    if isinstance(model, nn.Module):
        layers = [(name, type(m).__name__) for name, m in model.named_modules()
                  if name and not list(m.children())]
    else:
        layers = [(str(name), str(kind)) for name, kind in model]
    groups, i = [], 0
    while i < len(layers):
        kinds = tuple(kind for _, kind in layers[i : i + 3])
        match = next((p for p in _FUSIONS if kinds[: len(p)] == p), None)
        if match:
            groups.append([name for name, _ in layers[i : i + len(match)]])
            i += len(match)
        else:
            i += 1
    return groups


def calibrate(model: nn.Module, x, batch_size: int = 64) -> nn.Module:
    """Run ``model`` over images ``x`` in batches, in eval mode without gradients; return it.

    This is all calibration is: the observers that ``prepare`` (or ``prepare_pt2e``) inserted
    record the range of every activation they see. Eval mode matters: in train mode BatchNorm
    would use batch statistics and update its running averages with the calibration images.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    x = to_tensor(x)
    _check_images(x, None, "x")
    with torch.no_grad(), _eval_mode(model):
        for start in range(0, len(x), batch_size):
            model(x[start : start + batch_size])
    return model


def eager_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy with every ``nn.Linear`` dynamically quantized: int8 weights, activations at run time."""
    load_quantization_apis()
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear},
                                                  dtype=torch.qint8)


def _backend(backend: str | None) -> str:
    """The qconfig's backend: the engine's by default; another one would not run on it."""
    if backend is None:
        return _engine()
    if backend != _engine():
        raise ValueError(
            f"backend {backend!r} differs from torch.backends.quantized.engine = "
            f"{_engine()!r}; set the engine first or leave backend out to use it.")
    return backend


def eager_static_int8(model: nn.Module, calibration_x, backend: str | None = None,
                      batch_size: int = 64) -> nn.Module:
    """Eager static int8: wrap in Quant/DeQuantStub, fuse, set the qconfig, prepare, calibrate, convert.

    Works on a copy. ``backend`` names the qconfig and kernels ("x86", "fbgemm", "qnnpack",
    "onednn"); it must be the engine that runs the model, ``torch.backends.quantized.engine``,
    which is the default. x86's qconfig keeps activations to 7 bits with per-channel weights,
    qnnpack's uses all 8 bits with one scale per weight tensor.
    """
    load_quantization_apis()
    tq = torch.ao.quantization
    backend = _backend(backend)
    wrapped = tq.QuantWrapper(copy.deepcopy(model)).eval()
    tq.fuse_modules(wrapped, fuse_groups(wrapped), inplace=True)
    wrapped.qconfig = tq.get_default_qconfig(backend)
    tq.prepare(wrapped, inplace=True)
    calibrate(wrapped, calibration_x, batch_size)
    return tq.convert(wrapped, inplace=True)


def _check_freeze_after(freeze_after: int | None) -> None:
    if freeze_after is not None and (isinstance(freeze_after, bool)
                                     or not isinstance(freeze_after, int) or freeze_after < 1):
        raise ValueError(f"freeze_after must be a number of epochs (1 or more) or None; "
                         f"got {freeze_after!r}.")


def eager_qat_int8(model: nn.Module, data: Dataset, epochs: int = 2, lr: float = 1e-4,
                   backend: str | None = None, seed: int = 0,
                   freeze_after: int | None = 1) -> nn.Module:
    """Eager QAT: wrap, fuse for training, fake-quantize, fine-tune with ``train``, convert (a copy).

    ``backend`` as in ``eager_static_int8``: the engine's qconfig by default.

    After ``freeze_after`` epochs the observers stop (``disable_observer``) and BatchNorm keeps
    its running statistics (``freeze_bn_stats``), as PyTorch's QAT recipe does: the last epochs
    train the weights for the scales and statistics that ``convert`` bakes in. ``None``, or a
    count of ``epochs`` or more, never freezes.
    """
    _check_freeze_after(freeze_after)
    load_quantization_apis()
    tq = torch.ao.quantization
    backend = _backend(backend)
    wrapped = tq.QuantWrapper(copy.deepcopy(model)).train()
    tq.fuse_modules_qat(wrapped, fuse_groups(wrapped), inplace=True)
    wrapped.qconfig = tq.get_default_qat_qconfig(backend)
    tq.prepare_qat(wrapped, inplace=True)

    def freeze(epoch: int) -> None:
        if epoch == freeze_after:
            wrapped.apply(tq.disable_observer)
            wrapped.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)

    train(wrapped, data, epochs=epochs, lr=lr, seed=seed, on_epoch=freeze)
    return tq.convert(wrapped.eval(), inplace=True)


# ---- PT2E (torchao.quantization.pt2e)

def export_for_quantization(model: nn.Module, example_x, training: bool = False) -> nn.Module:
    """``torch.export`` a copy of ``model`` with a dynamic batch size; return the graph module.

    PT2E quantizes this ATen-level graph, not the Python module. ``training=True`` captures
    BatchNorm and dropout in training form, as ``prepare_qat_pt2e`` needs.
    """
    x = to_tensor(example_x)
    _check_images(x, None, "example_x")
    if len(x) < 2:
        raise ValueError("example_x needs at least 2 images so that the batch size is captured "
                         "as a variable, e.g. data.x_train[:32].")
    copied = copy.deepcopy(model).train(training)
    batch = torch.export.Dim("batch")
    return torch.export.export(copied, (x,), dynamic_shapes=({0: batch},)).module()


def x86_quantizer(keep_float: Sequence[str] = (), is_qat: bool = False,
                  per_channel: bool = True):
    """An ``X86InductorQuantizer`` with the default int8 config, except layers kept in float.

    The default: uint8 activations calibrated with a histogram, int8 weights per channel.
    ``keep_float`` names modules of the original model (e.g. ``["fc2"]``) that stay float32:
    PT2E inserts the dequantize before them and needs no change to the model.
    ``per_channel=False`` swaps in one symmetric scale per weight tensor (ARM's default).
    """
    _, xiq = _ao()
    aiq = _arm()
    config = xiq.get_default_x86_inductor_quantization_config(is_qat=is_qat)
    if not per_channel:
        config = dataclasses.replace(config, weight=aiq.get_default_arm_inductor_quantization_config(
            is_qat=is_qat).weight)
    return _with_float_layers(xiq.X86InductorQuantizer(), config, keep_float)


def arm_quantizer(keep_float: Sequence[str] = (), is_qat: bool = False,
                  per_channel: bool = True):
    """torchao's ``ArmInductorQuantizer``, the ARM counterpart of ``x86_quantizer``.

    Its default config quantizes activations to int8 (x86's oneDNN kernels take uint8 only)
    with the same histogram observer, and weights per tensor. The course gives it per-channel
    weights, x86's weight spec, unless ``per_channel=False``: inductor's int8 lowering in
    torch 2.13 packs only per-channel weights (its patterns match ``dequantize_per_channel``),
    and per-channel keeps the two engines' models comparable. ``keep_float`` as in
    ``x86_quantizer``.
    """
    _, xiq = _ao()
    aiq = _arm()
    config = aiq.get_default_arm_inductor_quantization_config(is_qat=is_qat)
    if per_channel:
        config = dataclasses.replace(config, weight=xiq.get_default_x86_inductor_quantization_config(
            is_qat=is_qat).weight)
    return _with_float_layers(aiq.ArmInductorQuantizer(), config, keep_float)


def pt2e_quantizer(keep_float: Sequence[str] = (), is_qat: bool = False,
                   per_channel: bool = True):
    """The PT2E quantizer for the quantized engine: ``arm_quantizer`` on qnnpack, else x86's."""
    make = arm_quantizer if _engine() == "qnnpack" else x86_quantizer
    return make(keep_float, is_qat=is_qat, per_channel=per_channel)


def _with_float_layers(quantizer, config, keep_float: Sequence[str]):
    if isinstance(keep_float, str):
        raise ValueError(f"keep_float must be a list of layer names, e.g. [{keep_float!r}].")
    quantizer.set_global(config)
    for name in keep_float:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


def drop_unused_weights(graph_module: nn.Module) -> nn.Module:
    """Delete the parameters and buffers the graph no longer reads; return the same module.

    ``convert_pt2e`` stores each int8 weight as a new constant but leaves the float weight it
    came from on the module, so the state dict holds both.
    """
    if not _is_graph(graph_module):
        raise ValueError(f"expected a GraphModule from convert_pt2e; got {type(graph_module).__name__}.")
    used = {n.target for n in graph_module.graph.nodes if n.op == "get_attr"}
    for name, _ in [*graph_module.named_parameters(), *graph_module.named_buffers()]:
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(graph_module.get_submodule(owner), attr)
    return graph_module


def lower_to_x86(converted: nn.Module, example_x) -> nn.Module:
    """Replace each dequantize -> float op -> quantize pattern by a oneDNN int8 kernel.

    The steps of torchao's ``lower_pt2e_quantized_to_x86`` (export, decompose, inductor's
    freezing passes, constant folding), with two changes that this CNN needs in torchao 0.18:
    the batch dimension stays dynamic, and each ``view`` becomes ``reshape``, because the int8
    convolutions return channels-last tensors that Flatten's ``view`` cannot reshape. No code is
    compiled, so it takes seconds; ``torch.compile`` with inductor would also fuse the
    remaining element-wise ops. Only for graphs from ``x86_quantizer``: oneDNN's x86 kernels
    take uint8 activations, not the int8 of ``arm_quantizer``.
    """
    from torch._inductor.constant_folding import constant_fold
    from torch._inductor.fx_passes.freezing_patterns import freezing_passes

    x = to_tensor(example_x)
    _check_images(x, None, "example_x")
    if any(n.op == "call_function" and "quantize_per_tensor" in str(n.target)
           and torch.int8 in n.args for n in converted.graph.nodes):
        raise ValueError(
            "this graph quantizes activations to int8 (ArmInductorQuantizer); the x86 kernels "
            "that lower_to_x86 targets take uint8: quantize with x86_quantizer, or run this "
            "graph as it is (tl.torch_bridge.lower does that on the qnnpack engine).")
    decompositions = {op: fn for op, fn in torch.export.default_decompositions().items()
                      if torch._export.utils._is_cia_op(op)}  # as torchao: only CIA ops
    batch = torch.export.Dim("batch")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pytree's LeafSpec notice, twice per export
        lowered = torch.export.export(converted, (x,), dynamic_shapes=({0: batch},), strict=True
                                      ).run_decompositions(decompositions).module()
        graph = lowered.graph
        for node in list(graph.nodes):
            if node.target == torch.ops.aten.t.default:  # the patterns expect permute
                with graph.inserting_before(node):
                    permute = graph.call_function(torch.ops.aten.permute.default,
                                                  (node.args[0], [1, 0]))
                node.replace_all_uses_with(permute)
                graph.erase_node(node)
        lowered.recompile()
        freezing_passes(lowered, (x,))
        constant_fold(lowered)
        for node in lowered.graph.nodes:
            if node.target == torch.ops.aten.view.default:
                node.target = torch.ops.aten.reshape.default
        lowered.recompile()
    return lowered


def lower(converted: nn.Module, example_x) -> nn.Module:
    """The converted PT2E graph in the fastest form the engine gets without compiling.

    x86: ``lower_to_x86``, oneDNN's int8 kernels. qnnpack (ARM): the graph unchanged. torch 2.13
    has no ARM counterpart of torchao's ``lower_pt2e_quantized_to_x86``; on ARM the int8 kernels
    come from ``torch.compile`` (inductor, with oneDNN on Arm Compute Library where PyTorch is
    built with it), which the course has not tried on ARM hardware. The reference graph
    computes the same numbers, in float arithmetic.
    """
    if _engine() == "qnnpack":
        return converted
    return lower_to_x86(converted, example_x)


def lowering_label() -> str:
    """What ``lower`` makes of a PT2E graph on this engine, for the rows of a table."""
    return "ARM, reference graph" if _engine() == "qnnpack" else "x86, lowered"


def _allow_eval(graph_module: nn.Module) -> nn.Module:
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    return allow_exported_model_train_eval(graph_module)


def pt2e_int8(model: nn.Module, calibration_x, keep_float: Sequence[str] = (),
              batch_size: int = 64, per_channel: bool = True) -> nn.Module:
    """PT2E static int8: export, ``prepare_pt2e``, calibrate, ``convert_pt2e``, tidy up.

    The engine's quantizer (``pt2e_quantizer``: x86's, or ARM's on qnnpack), with per-channel
    weights unless ``per_channel=False``. Returns the converted reference graph
    (quantize/dequantize around float ops) without the float weights it no longer reads;
    ``lower`` turns it into int8 kernels where the engine can.
    """
    quantize_pt2e, _ = _ao()
    graph = export_for_quantization(model, to_tensor(calibration_x)[:batch_size])
    prepared = quantize_pt2e.prepare_pt2e(graph, pt2e_quantizer(keep_float,
                                                                per_channel=per_channel))
    calibrate(prepared, calibration_x, batch_size)
    return drop_unused_weights(quantize_pt2e.convert_pt2e(prepared))


def pt2e_qat_int8(model: nn.Module, data: Dataset, epochs: int = 2, lr: float = 1e-4,
                  seed: int = 0, freeze_after: int | None = 1) -> nn.Module:
    """PT2E QAT: fold BatchNorm, export for training, ``prepare_qat_pt2e``, fine-tune, convert.

    With the engine's quantizer in its QAT config (``pt2e_quantizer(is_qat=True)``).

    BatchNorm is folded first (``fold_batchnorm``): with BatchNorm in the graph, ``convert_pt2e``
    traces dozens of conv-bn pattern variants to fold it, which costs far more time than the
    fine-tune itself on this small model. Its statistics are therefore frozen from the start;
    the observers stop after ``freeze_after`` epochs (torchao's ``disable_observer``: the graph
    holds torchao's fake-quantize modules, which ``torch.ao.quantization``'s does not know).
    ``None``, or a count of ``epochs`` or more, never freezes.
    """
    _check_freeze_after(freeze_after)
    quantize_pt2e, _ = _ao()
    from torchao.quantization.pt2e import disable_observer

    graph = export_for_quantization(fold_batchnorm(model), to_tensor(data.x_train[:32]),
                                    training=True)
    prepared = _allow_eval(quantize_pt2e.prepare_qat_pt2e(graph, pt2e_quantizer(is_qat=True)))

    def freeze(epoch: int) -> None:
        if epoch == freeze_after:
            prepared.apply(disable_observer)

    train(prepared, data, epochs=epochs, lr=lr, seed=seed, on_epoch=freeze)
    return drop_unused_weights(quantize_pt2e.convert_pt2e(prepared))


# ---- what a model holds

def _dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _weight_description(module: nn.Module) -> str:
    weight = getattr(module, "weight", None)
    if callable(weight) and not isinstance(weight, torch.Tensor):
        weight = weight()  # quantized modules unpack their weight on request
    if weight is None:
        return "-"
    qdata = getattr(weight, "qdata", None)
    if qdata is not None:  # a torchao tensor subclass: int8 data plus scales
        return f"{_dtype_name(qdata)} in {type(weight).__name__}"
    if weight.is_quantized and weight.qscheme() in (torch.per_channel_affine,
                                                   torch.per_channel_symmetric):
        return f"{_dtype_name(weight)}, per channel"
    return _dtype_name(weight)


def _module_kind(module: nn.Module) -> str:
    """Class name, prefixed by its torch.ao.nn family: "quantized.dynamic.Linear" is not "Linear"."""
    kind = type(module).__name__
    path = type(module).__module__
    if path.startswith("torch.ao.nn."):
        kind = path.removeprefix("torch.ao.nn.").split(".modules")[0] + "." + kind
    if getattr(getattr(module, "weight", None), "act_quant_kwargs", None) is not None:
        kind += " (int8 activations on the fly)"  # torchao's dynamic activation quantization
    return kind


def _module_summary(model: nn.Module, x: torch.Tensor) -> list[dict]:
    rows: list[dict] = []

    def record(name):
        def hook(module, args, out):
            rows.append({"layer": name, "runs as": _module_kind(module),
                         "weight": _weight_description(module),
                         "input": _dtype_name(args[0]), "output": _dtype_name(out)})
        return hook

    chosen = [(name, m) for name, m in model.named_modules()
              if hasattr(m, "weight") or type(m).__name__ in ("Quantize", "DeQuantize")]
    handles = [m.register_forward_hook(record(name)) for name, m in chosen]
    try:
        with torch.no_grad(), _eval_mode(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return rows


def _graph_summary(model: nn.Module, x: torch.Tensor) -> list[dict]:
    values: dict = {}

    class Recorder(torch.fx.Interpreter):  # remembers every node's output
        def run_node(self, node):
            values[node] = super().run_node(node)
            return values[node]

    with torch.no_grad():
        Recorder(model).run(x)

    def source(node):  # the stored tensor behind a weight argument (through dequantize)
        while node.op == "call_function" and node.args:
            node = node.args[0]
        return values.get(node)

    rows = []
    for node in model.graph.nodes:
        name = str(node.target)
        if node.op != "call_function" or not re.search(r"conv|linear", name):
            continue
        layer = next((a.target.rpartition(".")[0] for a in node.args  # from "conv1.bias"
                      if isinstance(a, torch.fx.Node) and a.op == "get_attr" and "." in a.target),
                     node.name)
        weight = source(node.args[1] if "aten" in name else node.args[3])
        rows.append({"layer": layer, "runs as": name.removesuffix(".default"),
                     "weight": _dtype_name(weight) if isinstance(weight, torch.Tensor) else "-",
                     "input": _dtype_name(values[node.args[0]]),
                     "output": _dtype_name(values[node])})
    return rows


def quantized_summary(model: nn.Module, x=None) -> list[dict]:
    """What a (converted) model actually runs: one row per conv/linear layer and quant stub.

    Columns: the layer, the module or graph op that runs it, the stored weight dtype, and the
    dtypes of the tensors going in and out, recorded while the model runs on ``x`` (default:
    one zero image). In an exported graph the weight is the tensor behind the op's weight
    argument, followed back through any dequantize.
    """
    x = torch.zeros(1, 1, 32, 32) if x is None else to_tensor(x)
    return _graph_summary(model, x) if _is_graph(model) else _module_summary(model, x)
