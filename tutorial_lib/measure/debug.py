"""Finding the layer that breaks an int8 model: compare it with its float twin, tensor by tensor.

Run the float model and the quantized model on the same images, keep what every layer puts
out, and measure the quantized copy against the float one with the signal-to-quantization-noise
ratio (SQNR, ``10 log10(sum x**2 / sum (x - x_hat)**2)``, the float tensor as the signal: the
course's one definition; torchao's numeric debugger takes the *quantized* tensor as the signal,
so ``torch_layer_sqnr`` recomputes it). The error grows a little from layer to layer; the layer
at fault is where it jumps: where the share of noise in the tensor, ``10**(-SQNR/10)``, grows
most from the tensor before (``noise_added``, ``culprit``).

The core is numpy (``layer_sqnr``, ``noise_added``, ``culprit``); the bridges below it import
their framework only when called: ``litert_activations`` reads every tensor of a LiteRT model,
``litert_convert`` converts with the settings that fix a broken layer (per-tensor or
per-channel weights, 16-bit activations, layers kept in float), ``litert_layer_stats`` reads
TensorFlow's ``QuantizationDebugger`` layer statistics (each layer's own error), ``torch_pt2e`` and
``torch_layer_sqnr`` do the same for PyTorch's PT2E, and ``plant_outlier_channel`` breaks a
trained model on purpose without changing what it computes in float; ``equalize_outlier`` undoes it
with cross-layer equalization.

>>> ref = {"input": np.array([1.0, -1.0]), "conv1": np.array([2.0, 2.0])}
>>> got = {"input": np.array([1.0, -1.0]), "conv1": np.array([2.2, 1.8])}
>>> {name: round(db, 1) for name, db in layer_sqnr(ref, got).items()}
{'input': inf, 'conv1': 20.0}
>>> culprit({"input": 45.0, "conv1": 38.0, "conv2": 2.0, "fc": 1.5})
'conv2'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from tutorial_lib.core.metrics import sqnr_db

__all__ = ["layer_sqnr", "noise_added", "culprit", "layer_label", "litert_activations",
           "litert_layer_inputs",
           "litert_convert", "litert_layer_stats", "plant_outlier_channel", "planted_course_cnn",
           "equalize_outlier",
           "torch_pt2e", "torch_layer_sqnr"]

# ---------------------------------------------------------------- numpy core

def layer_sqnr(reference: Mapping[str, np.ndarray],
               quantized: Mapping[str, np.ndarray]) -> dict[str, float]:
    """SQNR in dB of every tensor of ``quantized`` against the same-named tensor of ``reference``.

    Both are ``{layer name: float array}`` (quantized tensors already dequantized), e.g. from
    ``litert_activations`` for a float and an int8 model. The result keeps ``reference``'s
    order (the network's) and skips names that only one side has; inf means an exact copy, and
    a reference of zeros with a non-zero quantized twin is -inf (all noise, no signal).

    >>> layer_sqnr({"a": np.ones(4), "b": np.ones(2)}, {"a": np.full(4, 1.5)})
    {'a': 6.0206}
    """
    for name, side in (("reference", reference), ("quantized", quantized)):
        if not isinstance(side, Mapping):
            raise ValueError(f"{name} must be a dict {{layer name: array}}; got "
                             f"{type(side).__name__}.")
    common = [name for name in reference if name in quantized]
    if not common:
        raise ValueError(
            f"reference and quantized share no layer names (reference: {list(reference)[:5]}, "
            f"quantized: {list(quantized)[:5]}): record the same layers in both runs.")
    result = {}
    for name in common:
        x = np.asarray(reference[name], dtype=np.float64)
        x_hat = np.asarray(quantized[name], dtype=np.float64)
        if x.shape != x_hat.shape:
            raise ValueError(f"layer {name!r}: reference has shape {x.shape}, quantized "
                             f"{x_hat.shape}; run both models on the same images.")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(x_hat))):
            raise ValueError(f"layer {name!r} holds NaN or inf: a model produced them; check "
                             "its input and its weights before comparing.")
        if np.any(x):
            result[name] = round(sqnr_db(x, x_hat), 6)
        else:  # no signal: perfect only if the quantized tensor is zero too
            result[name] = math.inf if not np.any(x_hat) else -math.inf
    return result


def noise_added(sqnr: Mapping[str, float],
                inputs: Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
    """How much each tensor adds to the share of noise, ``min(10**(-SQNR/10), 1)``, of the one before.

    Independent noises add in power, not in dB: a drop in dB is a *ratio* of noises, so it
    makes the first layer, which starts from almost no noise, look worst on any healthy model.
    The share is capped at 1 (0 dB): a tensor whose noise is as large as its signal carries
    nothing a zero tensor would not, so growing further is no new damage. The first tensor is
    measured from no noise; an exact copy (inf dB) has share 0. ``inputs`` (``{layer: [the
    layers it reads]}``, e.g. ``litert_layer_inputs``) measures a layer against its own inputs
    (the largest of their shares) instead of the tensor listed before it.

    >>> noise_added({"input": 40.0, "conv1": 30.0, "pool1": float("inf"), "conv2": -3.0})
    {'input': 0.0001, 'conv1': 0.0009, 'pool1': -0.001, 'conv2': 1.0}
    """
    if not isinstance(sqnr, Mapping) or not sqnr:
        raise ValueError("sqnr must be a non-empty dict {layer name: SQNR in dB}, in network "
                         "order, e.g. from layer_sqnr.")
    values = np.array([float(v) for v in sqnr.values()])
    if np.any(np.isnan(values)):
        bad = [name for name, v in sqnr.items() if math.isnan(float(v))]
        raise ValueError(f"SQNR is NaN for {bad}: compute it from finite tensors.")
    with np.errstate(over="ignore"):
        share = np.minimum(10.0 ** (-values / 10), 1.0)  # inf dB -> 0, -inf dB -> 1
    before = np.concatenate([[0.0], share[:-1]])
    if inputs is not None:
        index = {name: i for i, name in enumerate(sqnr)}
        for i, name in enumerate(sqnr):
            known = [share[index[n]] for n in inputs.get(name, ()) if n in index]
            if known:
                before[i] = max(known)
    return {name: round(float(d), 9) for name, d in zip(sqnr, share - before, strict=True)}


def culprit(sqnr: Mapping[str, float], inputs: Mapping[str, Sequence[str]] | None = None) -> str:
    """The layer that adds the most noise to the tensor before it, or to its ``inputs``
    (see ``noise_added``).

    >>> culprit({"input": -3.0, "conv1": -4.0, "fc": -4.5})  # broken from the very start
    'input'
    >>> culprit({"stem": 35.3, "conv1": 31.8})  # 3e-4 of noise, then 3.7e-4 more: conv1
    'conv1'
    """
    added = noise_added(sqnr, inputs)
    return max(added, key=added.get)


# ---------------------------------------------------------------- LiteRT bridge

def layer_label(tensor_name: str) -> str:
    """A short layer name for a LiteRT tensor: the Keras layer that made it.

    The converter names a tensor after the TensorFlow ops fused into it, ``;``-separated, each
    ``model/layer/op``; the last one names the layer.

    >>> layer_label("course_cnn/relu2/Relu;course_cnn/bn2/FusedBatchNormV3;course_cnn/conv2/Conv2D1")
    'conv2'
    >>> layer_label("course_cnn/pool1/MaxPool")
    'pool1'
    """
    parts = tensor_name.split(";")[-1].split("/")
    return parts[1] if len(parts) >= 3 else tensor_name


def _litert_names(graph) -> dict[int, str]:
    """{tensor index: layer label} for the graph's input and every operator's output."""
    names = {graph.inputs[0]: "input"}
    for op in graph.operators:
        out = op.outputs[0]
        if op.name == "QUANTIZE" and op.inputs[0] in graph.inputs:
            names[out] = "input"
        elif out in graph.outputs:
            names[out] = "output"
        else:
            names[out] = layer_label(graph.tensors[out].name)
    return names


def litert_layer_inputs(model_content: bytes) -> dict[str, list[str]]:
    """{layer: the layers whose tensors it reads} of a LiteRT model, labelled as
    ``litert_activations`` labels them: in a ResNet, a shortcut's 1x1 convolution reads the
    block's input and an add reads two layers, not the tensor listed before them.
    """
    from tutorial_lib.core.tflite_file import read

    graph = read(model_content)
    names = _litert_names(graph)
    inputs: dict[str, list[str]] = {}
    for op in graph.operators:
        label = names[op.outputs[0]]
        read_from = [names[i] for i in op.inputs if i in names and names[i] != label]
        if read_from and label not in inputs:
            inputs[label] = list(dict.fromkeys(read_from))
    return inputs


def litert_activations(model_content: bytes, x) -> dict[str, np.ndarray]:
    """Every activation of a LiteRT model on ``x``, dequantized to float32, keyed by layer.

    ``"input"`` is what the first layer sees (for an int8 model: the quantized input, read
    back with the file's scale and zero point), ``"output"`` the model's output, the rest
    ``layer_label``'s names in operator order. Float ``x`` is quantized for an int8 input as
    ``tl.tflite_bridge.run_tflite`` does; int8 ``x`` is fed as it is, right or wrong.
    The optimized kernels run without the XNNPACK delegate, whose fused layers keep no
    intermediate tensors.
    """
    from tutorial_lib.bridges import tflite_bridge as kb
    from tutorial_lib.core.affine import dequantize
    from tutorial_lib.core.tflite_file import read

    graph = read(model_content)
    with kb._quiet_stderr():
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        it = Interpreter(model_content=model_content, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
    kb.run_tflite(it, x)
    names = _litert_names(graph)
    result: dict[str, np.ndarray] = {}
    for index, label in names.items():
        tensor = graph.tensors[index]
        value = it.get_tensor(index)
        if tensor.scale is not None and np.issubdtype(value.dtype, np.integer):
            value = dequantize(value, tensor.scale, tensor.zero_point)
        result[label] = np.asarray(value, dtype=np.float32)  # a later tensor of a layer wins
    return result


def _litert_converter(model, samples: np.ndarray, per_channel: bool, int16_activations: bool):
    """A full-integer TFLiteConverter for a Keras model (float input and output)."""
    from tutorial_lib.bridges import tflite_bridge as kb

    tf = kb.tf
    converter = kb._keras_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in samples)
    if not per_channel:
        converter._experimental_disable_per_channel = True
    if int16_activations:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter


def _calibration(calibration, name: str = "calibration") -> np.ndarray:
    samples = np.asarray(calibration, dtype=np.float32)
    if samples.ndim != 4 or len(samples) == 0:
        raise ValueError(f"{name} must be a batch of NHWC images; got shape {samples.shape}.")
    return samples


def _quantization_debugger(model, samples: np.ndarray, per_channel: bool = True,
                           int16_activations: bool = False, debug_x=None, denylisted=()):
    """TensorFlow's ``QuantizationDebugger`` for a Keras model, made without a word on stderr.

    The debugger runs its models in ``tf.lite.Interpreter``, which warns that LiteRT replaces
    it (TF 2.21 still ships it); the converter reports its settings on file descriptor 2.
    Neither is a result, so both stay out of the notebook.
    """
    import warnings

    from tutorial_lib.bridges import tflite_bridge as kb

    tf = kb.tf
    debug_x = samples[:1] if debug_x is None else _calibration(debug_x, "x")
    with kb._quiet_stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(denylisted) or None)
        return tf.lite.experimental.QuantizationDebugger(
            converter=_litert_converter(model, samples, per_channel, int16_activations),
            debug_dataset=lambda: ([s[None]] for s in debug_x), debug_options=options)


def _check_layers(model, names: Sequence[str], what: str = "keep_float") -> None:
    if isinstance(names, str):
        raise ValueError(f"{what} must be a list of layer names, e.g. [{names!r}].")
    layers = [layer.name for layer in model.layers]
    unknown = [name for name in names if name not in layers]
    if unknown:
        raise ValueError(f"{what} names layers the model does not have: {unknown}; its "
                         f"layers are {layers}.")


def litert_convert(model, calibration, per_channel: bool = True, int16_activations: bool = False,
                   keep_float: Sequence[str] = ()) -> bytes:
    """Full-integer conversion of a Keras model with the settings that fix a broken layer.

    - ``per_channel=False``: one scale per weight tensor (the converter's private
      ``_experimental_disable_per_channel`` switch), as a per-tensor-only accelerator needs.
    - ``int16_activations=True``: the 16x8 mode, int16 activations and int8 weights.
    - ``keep_float``: Keras layer names whose operators stay float32, through the
      ``QuantizationDebugger``'s ``denylisted_nodes`` (TensorFlow's selective quantization);
      with int8 activations only: combined with ``int16_activations`` it raises ValueError.

    The input and output stay float32; ``calibration`` is the representative data (N, ...).
    """
    from tutorial_lib.bridges import tflite_bridge as kb

    samples = _calibration(calibration)
    _check_layers(model, keep_float)
    if keep_float and int16_activations:
        # the QuantizationDebugger's selective quantization returns int8 activations for 16x8
        raise ValueError("keep_float works with int8 activations only (with "
                         "int16_activations=True the converter silently returns an int8 model); "
                         "choose one fix: int16_activations=True, or keep_float=[...].")
    if not keep_float:
        return kb.run_converter(_litert_converter(model, samples, per_channel, int16_activations))
    float_model = kb.convert(model, "float")
    nodes = [t["name"] for t in kb.tensor_table(float_model, constants=False)
             if layer_label(t["name"]) in keep_float]
    debugger = _quantization_debugger(model, samples, per_channel, int16_activations,
                                      denylisted=nodes)
    with kb._quiet_stderr():
        return debugger.get_nondebug_quantized_model()


def litert_layer_stats(model, calibration, x, per_channel: bool = True,
                       int16_activations: bool = False) -> dict[str, dict[str, float]]:
    """LiteRT's own per-layer error: ``QuantizationDebugger``'s layer statistics, by layer.

    The debugger converts ``model`` as ``litert_convert`` does, then runs every quantized
    operator on ``x`` next to a float copy of it fed the *same* (dequantized) input, so each
    row is the error that layer adds by itself, not the error it inherits. Returns
    ``{layer: {"op", "scale", "rmse/scale", "max_abs_error"}}`` in operator order; ``rmse/scale``
    is the root-mean-square error in steps of the output's scale: about 0.29 (a uniform
    rounding error of half a step) for a healthy layer, far more for a broken one. The model's
    last layer is ``"output"``, as in ``litert_activations``. Int8 activations only:
    ``int16_activations=True`` raises ValueError.
    """
    import csv
    import io

    from tutorial_lib.bridges import tflite_bridge as kb

    if int16_activations:
        # mlir_quantize, which the debugger calls, defaults to int8 (TF's debugger README:
        # "only supported for full integer (int8) quantization")
        raise ValueError("litert_layer_stats works with int8 activations only: with "
                         "int16_activations=True TensorFlow's QuantizationDebugger silently "
                         "reports an int8 model. Compare 16x8 with litert_activations instead.")
    samples = _calibration(calibration)
    debugger = _quantization_debugger(model, samples, per_channel, int16_activations,
                                      debug_x=x)
    with kb._quiet_stderr():
        debugger.run()
    text = io.StringIO()
    debugger.layer_statistics_dump(text)
    result: dict[str, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(text.getvalue())):
        # Activations are named "model/layer/op"; only the graph's output carries the
        # signature's name ("StatefulPartitionedCall:0").
        name = row["tensor_name"]
        label = layer_label(name) if "/" in name else "output"
        scale = float(row["scale"])
        result[label] = {"op": row["op_name"], "scale": scale,
                         "rmse/scale": math.sqrt(float(row["mean_squared_error"])) / scale,
                         "max_abs_error": float(row["max_abs_error"])}
    return result


# ---------------------------------------------------------------- breaking a model on purpose

def plant_outlier_channel(model, layer: str, next_layer: str, channel: int, factor: float):
    """Make one output channel of ``layer`` ``factor`` times larger without changing the model.

    The BatchNorm after ``layer`` (``bn<k>`` for ``conv<k>``) scales the channel up by
    ``factor`` and ``next_layer``'s weights on that input channel scale it back down; ReLU and
    max pooling commute with a positive scale, so the float model computes the same function
    (up to rounding). Folded into the convolution, that channel's weights and activations are
    ``factor`` times larger than their neighbours': an outlier channel, as trained networks
    sometimes grow. Works in place on the course CNN in Keras or PyTorch; returns the model.
    """
    if not factor > 0:
        raise ValueError(f"factor must be positive (ReLU commutes with positive scales only); "
                         f"got {factor!r}.")
    bn = layer.replace("conv", "bn")
    if hasattr(model, "get_layer"):  # Keras: kernels are HWIO
        gamma, beta, mean, var = model.get_layer(bn).get_weights()
        if not 0 <= channel < len(gamma):
            raise ValueError(f"channel must be in 0..{len(gamma) - 1}; got {channel}.")
        gamma[channel] *= factor
        beta[channel] *= factor
        model.get_layer(bn).set_weights([gamma, beta, mean, var])
        kernel, bias = model.get_layer(next_layer).get_weights()
        kernel[:, :, channel, :] /= factor
        model.get_layer(next_layer).set_weights([kernel, bias])
        return model
    import torch  # PyTorch: weights are OIHW

    modules = dict(model.named_modules())
    if not 0 <= channel < modules[bn].num_features:
        raise ValueError(f"channel must be in 0..{modules[bn].num_features - 1}; got {channel}.")
    with torch.no_grad():
        modules[bn].weight[channel] *= factor
        modules[bn].bias[channel] *= factor
        modules[next_layer].weight[:, channel] /= factor
    return model


def planted_course_cnn(seed: int = 0, factor: float = 300.0, calibration_images: int = 100):
    """Lesson 11's broken model: the course CNN of ``seed`` (PyTorch) with an outlier channel.

    The planted channel is ``conv2``'s output channel with the smallest maximum over the first
    ``calibration_images`` training images (the input of ``conv3``), made ``factor`` times
    larger by ``plant_outlier_channel``. Returns ``(model, channel)``.
    """
    from tutorial_lib.bridges import torch_bridge as tb
    from tutorial_lib.course import data

    calibration = data.load_digits(size=32, layout="NCHW").x_train[:calibration_images]
    model = tb.trained_cnn(seed)
    channel = int(tb.layer_inputs(model, calibration, ["conv3"])["conv3"]
                  .max(axis=(0, 2, 3)).argmin())
    return plant_outlier_channel(model, "conv2", "conv3", channel, factor), channel


def equalize_outlier(model, layer: str, next_layer: str, scales=None):
    """Cross-layer equalization of ``layer`` (BatchNorm folded) with ``next_layer``, in place.

    ``tl.equalize.equalize_pair`` computes ``s = sqrt(r1 / r2)`` per channel from the folded
    ``layer``'s output-channel ranges ``r1`` and ``next_layer``'s input-channel ranges ``r2``;
    the scales go in through the BatchNorm (``bn<k>`` for ``conv<k>``): its gamma and beta are
    divided by ``s`` and ``next_layer``'s weights on that input channel multiplied by ``s``.
    ReLU and max pooling commute with positive scales, so the float model computes the same
    function; folded, both layers' channel ranges become ``sqrt(r1 · r2)``: the undo of
    ``plant_outlier_channel`` (Nagel et al. 2019). Keras or PyTorch; returns the scales.
    ``scales``: a function ``(folded_w1, folded_b1, w2) -> s`` (PyTorch layouts, OIHW) used
    instead of ``equalize_pair``'s, e.g. a learner's; its answer must be one positive finite
    number per channel.
    """
    from tutorial_lib.core.equalize import equalize_pair

    bn = layer.replace("conv", "bn")
    if hasattr(model, "get_layer"):  # Keras: kernels are HWIO
        conv_weights = model.get_layer(layer).get_weights()
        w1 = np.transpose(conv_weights[0], (3, 2, 0, 1))
        b1 = conv_weights[1] if len(conv_weights) > 1 else np.zeros(w1.shape[0], np.float32)
        gamma, beta, mean, var = model.get_layer(bn).get_weights()
        eps = model.get_layer(bn).epsilon
        kernel, *rest = model.get_layer(next_layer).get_weights()
        w2 = np.transpose(kernel, (3, 2, 0, 1))
    else:  # PyTorch: weights are OIHW
        modules = dict(model.named_modules())
        conv, norm = modules[layer], modules[bn]
        w1 = conv.weight.detach().cpu().numpy()
        b1 = (conv.bias.detach().cpu().numpy() if conv.bias is not None
              else np.zeros(w1.shape[0], np.float32))
        gamma, beta = norm.weight.detach().cpu().numpy(), norm.bias.detach().cpu().numpy()
        mean, var = norm.running_mean.cpu().numpy(), norm.running_var.cpu().numpy()
        eps = norm.eps
        w2 = modules[next_layer].weight.detach().cpu().numpy()
    if w2.ndim != 4 or w2.shape[1] != len(gamma):
        raise ValueError(f"{next_layer} must be a convolution fed by {bn}'s {len(gamma)} "
                         f"channels; got weights of shape {tuple(w2.shape)} (OIHW).")
    factor = gamma / np.sqrt(var + eps)  # BatchNorm folded into the convolution
    folded_w1 = w1 * factor.reshape(-1, 1, 1, 1)
    folded_b1 = (b1 - mean) * factor + beta
    if scales is None:
        scales = equalize_pair(folded_w1, folded_b1, w2).scales.astype(np.float64)
    else:
        scales = np.asarray(scales(folded_w1, folded_b1, w2), dtype=np.float64)
        if scales.shape != gamma.shape or not np.all(np.isfinite(scales) & (scales > 0)):
            raise ValueError(f"scales must give {len(gamma)} positive finite numbers, one per "
                             f"channel of {layer}; got shape {scales.shape}.")
    if hasattr(model, "get_layer"):
        model.get_layer(bn).set_weights([(gamma / scales).astype(gamma.dtype),
                                         (beta / scales).astype(beta.dtype), mean, var])
        kernel = kernel * scales.reshape(1, 1, -1, 1).astype(kernel.dtype)
        model.get_layer(next_layer).set_weights([kernel, *rest])
        return scales
    import torch

    with torch.no_grad():
        s = torch.as_tensor(scales, dtype=norm.weight.dtype)
        norm.weight.div_(s)
        norm.bias.div_(s)
        modules[next_layer].weight.mul_(s.reshape(1, -1, 1, 1))
    return scales


# ---------------------------------------------------------------- PyTorch bridge

def torch_pt2e(model, calibration_x, per_channel: bool = True, keep_float: Sequence[str] = ()):
    """PT2E static int8 with the engine's quantizer; ``per_channel=False``: one scale per weight.

    ``tl.torch_bridge.pt2e_int8``: x86's quantizer, or ARM's on the qnnpack engine, both
    calibrating activations with a histogram; per-channel weights by default, one symmetric
    min-max scale per weight tensor with ``per_channel=False``. Returns the converted
    reference graph.
    """
    import warnings

    from tutorial_lib.bridges import torch_bridge as tb

    with warnings.catch_warnings():
        # A layer kept in float leaves the pooling after it unquantized, and the quantizer
        # says so once per pooling layer; that is the intended result, not a problem.
        warnings.filterwarnings("ignore", message="The input of maxpool2d is not quantized")
        return tb.pt2e_int8(model, calibration_x, keep_float=keep_float, per_channel=per_channel)


def torch_layer_sqnr(model, calibration_x, x, per_channel: bool = True) -> dict[str, float]:
    """Per-layer SQNR of PT2E int8 against float with torchao's numeric debugger.

    Both graphs get an output logger on every node (``prepare_for_propagation_comparison``),
    run on ``x``, and ``compare_results`` pairs the nodes that come from the same float node.
    Nodes are named by the module that made them (``conv2``); the last node of a module wins.
    The SQNR is the course's, the float tensor as the signal (``tl.metrics.sqnr_db(ref,
    actual)``), not torchao's ``.sqnr``, whose signal is the quantized tensor
    (``compute_sqnr(actual, ref)``): for a ruined tensor that one stays near 0 dB.
    """
    import torch
    from torchao.quantization.pt2e import (
        compare_results,
        extract_results_from_loggers,
        prepare_for_propagation_comparison,
    )

    from tutorial_lib.bridges import torch_bridge as tb

    quantize_pt2e, _ = tb._ao()
    # Folded first, so that each float conv node computes what its int8 twin does.
    graph = tb.export_for_quantization(tb.fold_batchnorm(model), tb.to_tensor(calibration_x)[:64])
    reference = prepare_for_propagation_comparison(graph)  # before prepare_pt2e changes it
    prepared = quantize_pt2e.prepare_pt2e(graph, tb.pt2e_quantizer(per_channel=per_channel))
    tb.calibrate(prepared, calibration_x)
    converted = quantize_pt2e.convert_pt2e(prepared)
    actual = prepare_for_propagation_comparison(converted)
    images = tb.to_tensor(x)
    with torch.no_grad():
        reference(images)
        actual(images)
    summary = compare_results(extract_results_from_loggers(reference),
                              extract_results_from_loggers(actual))
    result: dict[str, float] = {}
    for node in summary.values():
        label = node.ref_module_stack.rsplit(".", 1)[-1].strip("'\"]") or node.ref_node_name
        pair = node.results[0]
        result[label] = round(sqnr_db(pair.ref.numpy(), pair.actual.numpy()), 6)
    return result
