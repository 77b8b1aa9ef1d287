"""The course CNN in PyTorch: build it, train it, run it and measure it.

Importing this module imports torch (``import tutorial_lib`` alone never does). Images are
NCHW float32 arrays as returned by ``tl.data.load_digits(size=32)``; labels are int64.

Read top to bottom: the CNN and its shipped weights, training and accuracy; simulated integer
inference (BatchNorm folding, fake-quantized weights and inputs); then measuring any model of
lesson 06, float or quantized, eager or exported: size on disk, costs per layer, outputs,
accuracy and latency, and one table for all of them. PyTorch's own quantization APIs are in
``tutorial_lib.torch_quant``; ``tl.torch_bridge`` gathers both.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

with warnings.catch_warnings():
    # Import-time notices from optional torch extensions are not the learner's business.
    warnings.simplefilter("ignore")
    import torch
    from torch import nn

from tutorial_lib.course import shipped
from tutorial_lib.course.data import Dataset, load_digits

__all__ = ["CourseCNN", "CourseResNet", "accuracy", "predict", "to_tensor", "train", "trained_cnn",
           "trained_resnet", "torch_cnn",
           "fold_batchnorm", "weighted_layers", "layer_inputs", "fake_quantize_model",
           "state_dict_bytes", "layer_costs", "logits", "digits_accuracy", "agreement", "Latency",
           "summarize_times", "compare_latency", "latency", "compare", "format_table"]

# Defaults chosen on the digits (1,437 training images): about 98.5% test accuracy in a few
# seconds on two CPU cores, for every seed we tried.
EPOCHS = 6
BATCH_SIZE = 64
LR = 2e-3


class CourseCNN(nn.Module):
    """The course's CNN for 1x32x32 images (NCHW), ending in 10 logits.

    Three blocks conv3x3 -> BatchNorm -> ReLU -> MaxPool2 (16, 32, 64 channels; 32 -> 16 -> 8 ->
    4 pixels), then Linear(1024, 128) -> ReLU -> Linear(128, 10). Every step is its own named
    submodule, ReLUs included, so that ``torch.ao.quantization.fuse_modules(model,
    CourseCNN.FUSE_GROUPS)`` can fold each conv+bn+relu into one layer.
    """

    FUSE_GROUPS = (
        ("conv1", "bn1", "relu1"),
        ("conv2", "bn2", "relu2"),
        ("conv3", "bn3", "relu3"),
        ("fc1", "relu4"),
    )

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
        return self.fc2(self.relu4(self.fc1(self.flatten(x))))


class Add(nn.Module):
    """``a + b`` as a named module, so that a residual add has a name in every framework."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class CourseResNet(nn.Module):
    """Lesson 11's larger network: a small ResNet for 1x32x32 images (NCHW), 10 logits.

    A stem (conv3x3 -> BatchNorm -> ReLU, 24 channels), three residual blocks at 32x32, 16x16
    and 8x8 pixels (24, 48, 96 channels), global average pooling and ``fc``. Each block is
    conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus a shortcut, summed by ``b<i>_add``, then ReLU;
    the second and third blocks halve the image with stride 2 and project their shortcut with a
    1x1 conv and BN. Layers and names are those of ``tl.models.RESNET_SPECS``, all direct
    submodules (``b2_conv1``, not ``b2.conv1``), as in the Keras twin
    ``tl.tflite_bridge.course_resnet_keras``. Convolutions before a BatchNorm have no bias.
    """

    FUSE_GROUPS = (
        ("stem_conv", "stem_bn", "stem_relu"),
        ("b1_conv1", "b1_bn1", "b1_relu1"), ("b1_conv2", "b1_bn2"),
        ("b2_conv1", "b2_bn1", "b2_relu1"), ("b2_conv2", "b2_bn2"), ("b2_proj", "b2_proj_bn"),
        ("b3_conv1", "b3_bn1", "b3_relu1"), ("b3_conv2", "b3_bn2"), ("b3_proj", "b3_proj_bn"),
    )

    def __init__(self) -> None:
        super().__init__()
        from tutorial_lib.course.models import RESNET_SPECS

        for spec in RESNET_SPECS:  # one module per line of the description, in its order
            self.add_module(spec.name, self._layer(spec))

    @staticmethod
    def _layer(spec) -> nn.Module:
        if spec.kind in ("conv3x3", "conv1x1"):
            k = 3 if spec.kind == "conv3x3" else 1
            return nn.Conv2d(spec.c_in, spec.c_out, k, stride=spec.stride, padding=k // 2,
                             bias=spec.bias)
        if spec.kind == "batchnorm":
            return nn.BatchNorm2d(spec.c_out)
        if spec.kind == "dense":
            return nn.Linear(spec.c_in, spec.c_out)
        return {"relu": nn.ReLU, "add": Add, "flatten": nn.Flatten,
                "avgpool": lambda: nn.AdaptiveAvgPool2d(1)}[spec.kind]()

    def _block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        def layer(name: str) -> nn.Module:
            return getattr(self, f"b{i}_{name}")

        y = layer("relu1")(layer("bn1")(layer("conv1")(x)))
        y = layer("bn2")(layer("conv2")(y))
        shortcut = layer("proj_bn")(layer("proj")(x)) if hasattr(self, f"b{i}_proj") else x
        return layer("relu2")(layer("add")(y, shortcut))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_relu(self.stem_bn(self.stem_conv(x)))
        for i in (1, 2, 3):
            x = self._block(i, x)
        return self.fc(self.flatten(self.pool(x)))


def to_tensor(x, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A numpy array (or anything array-like) as a torch tensor; tensors pass through."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    arr = np.ascontiguousarray(x)
    if not arr.flags.writeable:
        arr = arr.copy()  # torch.from_numpy warns about read-only arrays
    return torch.from_numpy(arr).to(dtype)


def _check_dataset(data: Dataset) -> None:
    if not all(hasattr(data, f) for f in ("x_train", "y_train")):
        raise ValueError(
            f"data must be a tl.data.Dataset (x_train, y_train, x_test, y_test), e.g. "
            f"tl.data.load_digits(size=32); got {type(data).__name__}."
        )


def _check_images(x: torch.Tensor, y: torch.Tensor | None, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a batch of NCHW images (4 dimensions); got shape {tuple(x.shape)}. "
            "Load with tl.data.load_digits(size=32, layout='NCHW')."
        )
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise ValueError(
            f"labels must be 1-D with one label per image; got {tuple(y.shape)} labels for "
            f"{len(x)} images."
        )


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels while training, then the caller's setting back."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Put ``model`` in train or eval mode, and give it back in the mode it came in."""
    before = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(before)


def train(
    model: nn.Module,
    data: Dataset,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    seed: int = 0,
    on_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``data.x_train``/``data.y_train`` and return it in eval mode.

    Adam with a one-cycle schedule (the learning rate warms up to ``lr``, then decays to
    almost 0) and cross-entropy loss. The same model, data and ``seed`` give the same weights:
    the shuffling has its own seeded generator and deterministic kernels are on while training.
    ``on_epoch(epoch)``, if given, runs at the start of every epoch (QAT uses it to freeze
    observers).
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be a positive learning rate such as 1e-3; got {lr!r}.")
    _check_dataset(data)
    x, y = to_tensor(data.x_train), to_tensor(data.y_train, torch.int64)
    _check_images(x, y, "data.x_train")
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(x) // batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    with _deterministic(), _mode(model, training=True):
        for epoch in range(epochs):
            if on_epoch is not None:
                on_epoch(epoch)
            order = torch.randperm(len(x), generator=shuffle)
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                loss = loss_fn(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


def predict(model: nn.Module, x, batch_size: int = 512) -> np.ndarray:
    """The model's outputs (logits) for images ``x`` as a float32 numpy array, in eval mode."""
    x = to_tensor(x)
    _check_images(x, None, "x")
    with torch.no_grad(), _mode(model, training=False):
        # Batches bound the memory; eval mode makes BatchNorm use its running statistics.
        out = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out).float().numpy()


def accuracy(model: nn.Module, x, y, batch_size: int = 512) -> float:
    """Fraction of images whose highest logit is the true label (0.0 to 1.0)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"y must hold one label per image; got shape {y.shape} for {len(x)} images."
        )
    return float(np.mean(predict(model, x, batch_size).argmax(axis=1) == y))


def trained_cnn(seed: int = 0) -> CourseCNN:
    """The course CNN trained on the 32x32 digits (about 99% test accuracy), in eval mode.

    The weights ship with the course (``tl.shipped``; seeds 0, 1 and 2, each trained once by
    ``tools/train_models.py``), so every learner gets the same model on any CPU and nothing is
    trained here. Each call returns a new model: quantize or fine-tune it freely.
    """
    return _shipped_model(CourseCNN(), "course_cnn", seed)


def torch_cnn(trained: bool = True, seed: int = 0) -> CourseCNN:
    """The course CNN: the shipped trained model (eval mode) or freshly initialized, after
    ``torch.manual_seed(seed)``, so that the same seed gives the same initial weights."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}.")
    if trained:
        return trained_cnn(seed)
    torch.manual_seed(seed)
    return CourseCNN()


def trained_resnet(seed: int = 0) -> CourseResNet:
    """Lesson 11's course ResNet trained on the 32x32 digits, in eval mode.

    Shipped like ``trained_cnn`` (seeds 0, 1 and 2, trained once by ``tools/train_models.py``
    with the same recipe); each call returns a new model.
    """
    return _shipped_model(CourseResNet(), "course_resnet", seed)


def _shipped_model(model: nn.Module, name: str, seed: int) -> nn.Module:
    state = {key: torch.from_numpy(value) for key, value in
             shipped.load_weights("torch", seed, name).items()}
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------- simulated integer inference

def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each BatchNorm folded into the conv before it, as int8 models do.

    For every ``(conv, bn, ...)`` group of ``model.FUSE_GROUPS`` the conv gets
    ``w' = w * gamma / sqrt(var + eps)`` per output channel and ``b' = (b - mean) * gamma /
    sqrt(var + eps) + beta``, and the BatchNorm becomes ``nn.Identity``. The outputs stay equal
    up to float rounding (lesson 04 derives the formula); per-channel weight ranges now differ
    as much as the BatchNorm scales do, which is what an integer model has to store.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    groups = getattr(model, "FUSE_GROUPS", None)
    if groups is None:
        raise ValueError(
            f"fold_batchnorm needs a model with FUSE_GROUPS (e.g. tl.torch_bridge.CourseCNN); "
            f"got {type(model).__name__}."
        )
    folded = copy.deepcopy(model).eval()
    for group in groups:
        if len(group) < 2:
            continue
        conv, bn = getattr(folded, group[0]), getattr(folded, group[1])
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(folded, group[0], fuse_conv_bn_eval(conv, bn))
            setattr(folded, group[1], nn.Identity())
    return folded


def weighted_layers(model: nn.Module) -> list[str]:
    """Names of the ``Conv2d`` and ``Linear`` layers of ``model``, in definition order.

    These are the layers an int8 model runs in integer arithmetic: their weights and their
    inputs are quantized.
    """
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _get_layers(model: nn.Module, names) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(
            f"model has no layer(s) {missing}; choose from weighted_layers(model) = "
            f"{weighted_layers(model)}."
        )
    return {n: modules[n] for n in names}


def layer_inputs(model: nn.Module, x, layers, batch_size: int = 512) -> dict[str, np.ndarray]:
    """What each named layer receives when ``model`` runs on images ``x``, as float32 arrays.

    These are the activations a calibration observes: the first axis is the image, so
    ``inputs["fc1"][:10]`` is what ``fc1`` saw for the first ten images.
    """
    modules = _get_layers(model, list(layers))
    seen: dict[str, list[np.ndarray]] = {name: [] for name in modules}

    def record(name):
        def hook(module, args):
            seen[name].append(args[0].detach().numpy().copy())
        return hook

    handles = [m.register_forward_pre_hook(record(name)) for name, m in modules.items()]
    try:
        predict(model, x, batch_size)
    finally:
        for h in handles:
            h.remove()
    return {name: np.concatenate(v) for name, v in seen.items()}


def fake_quantize_model(
    model: nn.Module,
    activation_qparams,
    quant_min: int = -128,
    quant_max: int = 127,
    weight_bits: int | None = 8,
    per_channel: bool = True,
) -> nn.Module:
    """A copy of ``model`` that simulates integer inference with fake quantization.

    - Weights of every ``Conv2d``/``Linear`` are fake-quantized symmetrically in the narrow
      range ``[-(2**(weight_bits-1) - 1), 2**(weight_bits-1) - 1]`` (TFLite's int8 weights), one
      scale per output channel (``per_channel=True``) or one for the tensor. ``weight_bits=None``
      keeps them float. Biases stay float: an int32 bias loses next to nothing (lesson 04).
    - The input of each layer named in ``activation_qparams`` (a mapping ``name -> (scale,
      zero_point)``, e.g. from an observer's ``calculate_qparams()``) is fake-quantized to
      ``[quant_min, quant_max]`` by ``torch.fake_quantize_per_tensor_affine``, which equals
      ``tl.fake_quantize``.

    The logits stay float: only their argmax matters here.
    """
    from tutorial_lib.core.affine import fake_quantize, qrange
    from tutorial_lib.core.observers import MinMaxObserver

    quant_min, quant_max = int(quant_min), int(quant_max)
    qmodel = copy.deepcopy(model).eval()
    if weight_bits is not None:
        w_min, w_max = qrange(weight_bits, narrow=True)
        for name in weighted_layers(qmodel):
            weight = _get_layers(qmodel, [name])[name].weight
            w = weight.detach().numpy()
            axis = 0 if per_channel else None
            obs = MinMaxObserver(w_min, w_max, symmetric=True, axis=axis).observe(w)
            w_hat = fake_quantize(w, *obs.calculate_qparams(), w_min, w_max, axis=axis)
            with torch.no_grad():
                weight.copy_(torch.from_numpy(w_hat))
    modules = _get_layers(qmodel, list(activation_qparams))
    for name, module in modules.items():
        scale, zero_point = activation_qparams[name]
        scale, zero_point = float(np.float32(scale)), int(zero_point)

        def hook(mod, args, scale=scale, zero_point=zero_point):
            x = torch.fake_quantize_per_tensor_affine(args[0], scale, zero_point, quant_min,
                                                      quant_max)
            return (x, *args[1:])

        module.register_forward_pre_hook(hook)
    return qmodel



# ---------------------------------------------------------------- measuring a model
def state_dict_bytes(model: nn.Module) -> int:
    """Bytes that ``torch.save(model.state_dict(), f)`` writes: the model's size on disk.

    Counts everything the file holds: the tensors (int8 weights, float biases, per-channel scales
    and zero points) and the zip/pickle records around them. The records are named after the
    file (here "archive", as for any in-memory buffer), so a file ``archive.pt`` has exactly
    this size and other names differ by a few bytes.

    >>> state_dict_bytes(nn.Linear(256, 256)) > (256 * 256 + 256) * 4
    True
    """
    buffer = io.BytesIO()
    try:
        torch.save(model.state_dict(), buffer)
    except (NotImplementedError, RuntimeError) as err:
        raise ValueError(
            f"this model's state dict cannot be saved ({err}); a graph lowered to oneDNN kernels "
            "holds packed weights: measure the converted model before lowering instead."
        ) from err
    return buffer.tell()


def layer_costs(model: nn.Module, image_shape: Sequence[int] = (1, 32, 32)) -> list[dict]:
    """Parameters and multiply-accumulates (MACs) of each Conv2d/Linear layer, for one image.

    A conv's MACs are (output elements) x (input channels / groups) x (kernel area); a linear
    layer's are in_features x out_features. Where the weights are and where the work is are
    different places in a CNN, which decides what dynamic quantization can speed up.

    >>> [(r["layer"], r["params"], r["macs"]) for r in layer_costs(nn.Sequential(nn.Linear(4, 3)), (4,))]
    [('0', 15, 12)]
    """
    rows: list[dict] = []

    def record(name):
        def hook(module, args, out):
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels // module.groups * module.weight[0, 0].numel()
                macs = out[0].numel() * per_output
            else:
                macs = module.in_features * module.out_features
            params = sum(p.numel() for p in module.parameters())
            rows.append({"layer": name, "type": type(module).__name__, "params": params,
                         "macs": macs})
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
               if type(m) in (nn.Conv2d, nn.Linear)]
    try:
        with torch.no_grad(), _mode(model, training=False):
            model(torch.zeros(1, *image_shape))
    finally:
        for h in handles:
            h.remove()
    return rows


def _is_graph(model: nn.Module) -> bool:
    # Exported models (torch.export(...).module()) are GraphModules; they refuse .train()/.eval().
    return isinstance(model, torch.fx.GraphModule)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    if _is_graph(model):
        yield  # an exported graph was captured in the mode it runs in
    else:
        with _mode(model, training=False):
            yield


def logits(model: nn.Module, x, batch_size: int = 512) -> np.ndarray:
    """Outputs of any model of this lesson (eager, quantized, exported graph) as float32 numpy."""
    x = to_tensor(x)
    _check_images(x, None, "x")
    with torch.no_grad(), _eval_mode(model):
        out = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out).float().numpy()


def digits_accuracy(model: nn.Module, data: Dataset | None = None) -> float:
    """Accuracy (0.0 to 1.0) on the test split of the 32x32 digits (or of ``data``)."""
    data = load_digits(size=32, layout="NCHW") if data is None else data
    return float(np.mean(logits(model, data.x_test).argmax(axis=1) == data.y_test))


def agreement(model_a: nn.Module, model_b: nn.Module, x) -> float:
    """Fraction of images on which two models predict the same class."""
    return float(np.mean(logits(model_a, x).argmax(axis=1) == logits(model_b, x).argmax(axis=1)))


class Latency(NamedTuple):
    """Median and spread (interquartile range, p75 - p25) of repeated timings, in milliseconds."""

    median_ms: float
    spread_ms: float


def summarize_times(times_ms, warmup: int = 0) -> Latency:
    """Drop the first ``warmup`` timings, then take the median and the interquartile range.

    The first runs pay for one-off work (allocations, weight packing, caches) and the rest
    has outliers when other programs run: the median ignores both, the mean does not.

    >>> summarize_times([50.0, 2.0, 1.0, 3.0, 9.0, 2.0], warmup=1)
    Latency(median_ms=2.0, spread_ms=1.0)
    """
    times = np.asarray(times_ms, dtype=np.float64)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer; got {warmup!r}.")
    if times.ndim != 1 or len(times) <= warmup:
        raise ValueError(
            f"need a 1-D list of timings longer than warmup={warmup}; got shape {times.shape}.")
    kept = times[warmup:]
    q1, median, q3 = np.percentile(kept, [25, 50, 75])
    return Latency(float(median), float(q3 - q1))


def compare_latency(models: Mapping[str, nn.Module], x, repeats: int = 30, warmup: int = 3,
                    threads: int = 1) -> dict[str, Latency]:
    """Time each model on the same batch ``x``, taking turns, with ``threads`` CPU threads.

    Each round calls every model once, so a slow moment on a shared machine slows all of them
    alike and the ratios stay fair. ``warmup`` rounds are run but not kept. The number of
    threads is set for the measurement and restored afterwards.
    """
    for name, v in (("repeats", repeats), ("threads", threads)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    x = to_tensor(x)
    _check_images(x, None, "x")
    times: dict[str, list[float]] = {name: [] for name in models}
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            for model in models.values():
                stack.enter_context(_eval_mode(model))
            for _ in range(warmup + repeats):
                for name, model in models.items():
                    start = time.perf_counter()
                    model(x)
                    times[name].append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(threads_before)
    return {name: summarize_times(t, warmup) for name, t in times.items()}


def latency(model: nn.Module, x, repeats: int = 30, warmup: int = 3, threads: int = 1) -> Latency:
    """Median and spread of ``model(x)`` in milliseconds (see ``compare_latency``)."""
    return compare_latency({"model": model}, x, repeats, warmup, threads)["model"]


# ---------------------------------------------------------------- one table for all methods

def compare(models: Mapping[str, nn.Module], data: Dataset | None = None,
            stored: Mapping[str, nn.Module] | None = None, timings: bool = True,
            repeats: int = 30, batch_sizes: Sequence[int] = (1, 32), threads: int = 1,
            spread: bool = False) -> list[dict]:
    """Accuracy, size and (optionally) latency of each model, as rows for a table.

    The first model is the baseline for "x smaller" and the speed-ups. ``stored`` maps a name
    to the model whose state dict is its file (a lowered graph cannot be saved; its converted
    graph can). Latencies come from ``compare_latency``, all models taking turns, on the first
    images of the test split; ``spread=True`` adds each median's interquartile range ("IQR b1"),
    the noise a speed-up has to be read against.
    """
    data = load_digits(size=32, layout="NCHW") if data is None else data
    stored = dict(stored or {})
    names = list(models)
    sizes = {n: state_dict_bytes(stored.get(n, models[n])) for n in names}
    rows = [{"method": n, "accuracy %": round(100 * digits_accuracy(models[n], data), 1),
             "size MB": round(sizes[n] / 1e6, 3),
             "x smaller": round(sizes[names[0]] / sizes[n], 2)} for n in names]
    if timings:
        for b in batch_sizes:
            result = compare_latency(models, data.x_test[:b], repeats=repeats, threads=threads)
            base = result[names[0]].median_ms
            for row, n in zip(rows, names, strict=True):
                row[f"batch {b} ms"] = round(result[n].median_ms, 3)
                if spread:
                    row[f"IQR b{b}"] = round(result[n].spread_ms, 3)
                row[f"speed-up b{b}"] = round(base / result[n].median_ms, 2)
    return rows


def format_table(rows: Sequence[Mapping]) -> str:
    """Rows of dicts with the same keys as an aligned plain-text table (first column left)."""
    if not rows:
        raise ValueError("no rows to format")
    keys = list(rows[0])
    cells = [[str(k) for k in keys]] + [[str(r[k]) for k in keys] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(line, widths, strict=True)))
             for line in cells]
    return "\n".join(lines)
