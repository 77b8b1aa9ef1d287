"""The course CNN in both frameworks: same architecture, shipped weights, real training, quiet TF.

The shipped models load from ``tutorial_lib/weights``; the training tests train seed 0 for real
(a few seconds each) and compare it with the manifest within ``tools/train_models.TOLERANCE``.
Subprocesses check what a fresh notebook kernel would see: imports and stderr.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tutorial_lib import data, models, shipped

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import train_models  # noqa: E402

MIN_ACCURACY = 0.95


def run_fresh_python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter as a fresh kernel would: no TensorFlow settings.

    Importing the bridge in this process set TF_USE_LEGACY_KERAS and TF_CPP_MIN_LOG_LEVEL,
    which the child would otherwise inherit.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def digits_nchw():
    return data.load_digits(size=32, layout="NCHW")


@pytest.fixture(scope="module")
def digits_nhwc():
    return data.load_digits(size=32, layout="NHWC")


@pytest.fixture(scope="module")
def tb():
    pytest.importorskip("torch")
    from tutorial_lib import torch_bridge

    return torch_bridge


@pytest.fixture(scope="module")
def kb():
    # Not pytest.importorskip("tf_keras"): importing it would load TensorFlow, and with it
    # Keras 3, before the bridge could ask for Keras 2.
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf_keras is not installed")
    from tutorial_lib import tflite_bridge

    return tflite_bridge


# --- numpy only ---------------------------------------------------------------------------

def test_import_tutorial_lib_loads_no_framework():
    code = (
        "import sys, tutorial_lib as tl\n"
        "tl.data.load_digits(); tl.models.count_params(); tl.models.CNN_LAYERS\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'tf_keras') if m in sys.modules))"
    )
    result = run_fresh_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_layer_table_and_counts():
    assert len(models.CNN_LAYERS) == len(models.LAYER_SPECS) == 16
    assert models.CNN_LAYERS[0].startswith("conv1") and "16x32x32" in models.CNN_LAYERS[0]
    assert "1024" in models.CNN_LAYERS[12]
    counts = [models.count_params(k) for k in ("all", "trainable", "folded")]
    # BatchNorm has 16 + 32 + 64 = 112 channels; each has gamma, beta, mean and variance.
    assert counts == [155786 + 4 * 112, 155786 + 2 * 112, 155786]
    with pytest.raises(ValueError, match="kind must be one of"):
        models.count_params("bytes")


# --- PyTorch ------------------------------------------------------------------------------

def test_torch_cnn_shapes_and_names(tb):
    with pytest.raises(ValueError, match="seed must be an integer"):
        tb.torch_cnn(seed="0")
    model = tb.torch_cnn(trained=False)
    assert isinstance(model, tb.CourseCNN)
    out = model(tb.torch.zeros(2, 1, 32, 32))
    assert tuple(out.shape) == (2, 10)
    # Same layers, same names, same order as the description in tutorial_lib.models.
    assert [name for name, _ in model.named_children()] == [s.name for s in models.LAYER_SPECS]


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch.ao.quantization's deprecation note
def test_torch_param_count_matches_the_description(tb):
    model = tb.CourseCNN()
    trainable = sum(p.numel() for p in model.parameters())
    bn_stats = sum(b.numel() for name, b in model.named_buffers() if "running_" in name)
    assert trainable == models.count_params("trainable")
    assert trainable + bn_stats == models.count_params("all")
    fused = tb.torch.ao.quantization.fuse_modules(model.eval(), [list(g) for g in model.FUSE_GROUPS])
    assert sum(p.numel() for p in fused.parameters()) == models.count_params("folded")


def test_torch_shipped_model_is_the_manifests(tb, digits_nchw):
    for seed in shipped.manifest()["seeds"]:
        model = tb.trained_cnn(seed)
        assert not model.training
        acc = tb.accuracy(model, digits_nchw.x_test, digits_nchw.y_test)
        assert acc >= MIN_ACCURACY
        # Float inference of fixed weights gives the same predictions on any CPU.
        assert acc == pytest.approx(shipped.model_entry("torch", seed)["test_accuracy"], abs=1e-6)
    # Callers get new models: breaking one does not break the next.
    with tb.torch.no_grad():
        model.fc2.weight.zero_()
    assert tb.accuracy(tb.trained_cnn(seed), digits_nchw.x_test, digits_nchw.y_test) == acc


def assert_training_is_deterministic(tb, network, data, seed):
    """Two one-epoch runs from the same seed give the same weights."""
    trained = []
    for _ in range(2):
        tb.torch.manual_seed(seed)
        trained.append(tb.train(network(), data, epochs=1, seed=seed).state_dict())
    for name, value in trained[0].items():
        assert tb.torch.equal(value, trained[1][name]), name


def test_torch_training_is_deterministic_and_matches_the_shipped_model(tb, digits_nchw):
    assert_training_is_deterministic(tb, tb.CourseCNN, digits_nchw, seed=0)
    assert not tb.torch.are_deterministic_algorithms_enabled()  # the caller's setting is back
    # The maintainer tool still trains a model as good as the shipped one (not bit for bit:
    # another CPU rounds differently).
    expected, acc = train_models.check("torch", seed=0)
    assert abs(acc - expected) <= train_models.TOLERANCE


def test_torch_bad_input(tb, digits_nchw):
    model = tb.CourseCNN()
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        tb.train(model, digits_nchw, epochs=0)
    with pytest.raises(ValueError, match="lr must be a positive"):
        tb.train(model, digits_nchw, lr=-1.0)
    with pytest.raises(ValueError, match="data must be a tl.data.Dataset"):
        tb.train(model, (digits_nchw.x_train, digits_nchw.y_train))
    with pytest.raises(ValueError, match="NCHW images"):
        tb.train(model, data.Dataset(digits_nchw.x_train[:, 0], *digits_nchw[1:]))
    with pytest.raises(ValueError, match="NCHW images"):
        tb.accuracy(model, digits_nchw.x_test[0], digits_nchw.y_test[:1])
    with pytest.raises(ValueError, match="one label per image"):
        tb.accuracy(model, digits_nchw.x_test, digits_nchw.y_test[:5])


# --- TensorFlow / Keras -------------------------------------------------------------------

def test_keras3_loaded_first_is_refused_with_advice():
    code = (
        "import keras\n"
        "assert keras.__version__.startswith('3'), keras.__version__\n"
        "try:\n"
        "    import tutorial_lib.tflite_bridge\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    result = run_fresh_python(code)
    assert result.returncode == 0, result.stderr
    assert "Keras 3" in result.stdout and "Restart the kernel" in result.stdout
    assert "import tutorial_lib.tflite_bridge" in result.stdout


def test_tensorflow_import_and_training_write_nothing_to_stderr():
    code = (
        "import tutorial_lib.tflite_bridge as kb\n"
        "from tutorial_lib import data\n"
        "d = data.load_digits(size=32, layout='NHWC')\n"
        "d = data.Dataset(d.x_train[:256], d.y_train[:256], d.x_test, d.y_test)\n"
        "model = kb.train_keras(kb.course_cnn_keras(), d, epochs=1)\n"
        "print(kb.accuracy_keras(model, d.x_test, d.y_test))\n"
        "print(type(kb.tf.keras.layers.Dense(1)).__module__)\n"
    )
    result = run_fresh_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # tf.keras is routed to Keras 2 (tf_keras), which the TFLite tools expect.
    assert result.stdout.splitlines()[-1].startswith("tf_keras")


def test_keras_cnn_shapes_names_and_params(kb):
    model = kb.keras_cnn(trained=False)
    assert model.input_shape == (None, 32, 32, 1)
    assert model(np.zeros((2, 32, 32, 1), np.float32)).shape == (2, 10)
    # Keras fuses relu4 into fc1 (Dense(128, activation="relu")); everything else matches.
    names = [s.name for s in models.LAYER_SPECS if s.name != "relu4"]
    assert [layer.name for layer in model.layers] == names
    assert model.count_params() == models.count_params("all")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == models.count_params("trainable")


def test_keras_shipped_model_is_the_manifests(kb, digits_nhwc):
    for seed in shipped.manifest()["seeds"]:
        model = kb.trained_cnn_keras(seed)
        acc = kb.accuracy_keras(model, digits_nhwc.x_test, digits_nhwc.y_test)
        assert acc >= MIN_ACCURACY
        assert acc == pytest.approx(shipped.model_entry("keras", seed)["test_accuracy"], abs=1e-6)
    model.get_layer("fc2").set_weights([np.zeros((128, 10), np.float32), np.zeros(10, np.float32)])
    assert kb.accuracy_keras(kb.trained_cnn_keras(seed), digits_nhwc.x_test, digits_nhwc.y_test) == acc


def test_keras_training_matches_the_shipped_model(kb):
    expected, acc = train_models.check("keras", seed=0)
    assert abs(acc - expected) <= train_models.TOLERANCE


def test_keras_bad_input(kb, digits_nhwc):
    model = kb.course_cnn_keras()
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        kb.train_keras(model, digits_nhwc, batch_size=0)
    with pytest.raises(ValueError, match="data must be a tl.data.Dataset"):
        kb.train_keras(model, (digits_nhwc.x_train, digits_nhwc.y_train))
    with pytest.raises(ValueError, match="NHWC images"):
        kb.accuracy_keras(model, digits_nhwc.x_test[0], digits_nhwc.y_test[:1])
    with pytest.raises(ValueError, match="seed must be an integer"):
        kb.trained_cnn_keras(seed=None)


# --- the course ResNet (lesson 11) ----------------------------------------------------------

def test_resnet_description():
    assert len(models.RESNET_LAYERS) == len(models.RESNET_SPECS)
    assert models.RESNET_LAYERS[0].startswith("stem_conv") and "24x32x32" in models.RESNET_LAYERS[0]
    counts = [models.count_params(k, "course_resnet") for k in ("all", "trainable", "folded")]
    # 24 + 2 * 24 + 3 * 48 + 3 * 96 = 504 BatchNorm channels: each stores 4 numbers, 2 of them
    # trained; folding removes them and gives each bias-free conv a bias (504 numbers in all).
    bn_channels = sum(s.c_out for s in models.RESNET_SPECS if s.kind == "batchnorm")
    assert bn_channels == 504
    assert counts[0] - counts[1] == 2 * bn_channels
    assert counts[1] - counts[2] == 2 * bn_channels - bn_channels
    assert models.count_params("all", "course_resnet") > models.count_params("all")
    assert 10e6 < models.count_macs("course_resnet") < 40e6
    with pytest.raises(ValueError, match="model must be one of"):
        models.count_params("all", "resnet18")
    with pytest.raises(ValueError, match="model must be one of"):
        models.count_macs("vgg")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torch_resnet_matches_the_description_and_the_manifest(tb, digits_nchw):
    model = tb.CourseResNet()
    assert [name for name, _ in model.named_children()] == [s.name for s in models.RESNET_SPECS]
    assert tuple(model(tb.torch.zeros(2, 1, 32, 32)).shape) == (2, 10)
    trainable = sum(p.numel() for p in model.parameters())
    bn_stats = sum(b.numel() for name, b in model.named_buffers() if "running_" in name)
    assert trainable == models.count_params("trainable", "course_resnet")
    assert trainable + bn_stats == models.count_params("all", "course_resnet")
    folded = tb.fold_batchnorm(model)
    assert sum(p.numel() for p in folded.parameters()) == models.count_params("folded", "course_resnet")
    np.testing.assert_allclose(tb.logits(folded, digits_nchw.x_test[:8]),
                               tb.logits(model, digits_nchw.x_test[:8]), atol=1e-4)
    for seed in shipped.manifest()["seeds"]:
        model = tb.trained_resnet(seed)
        assert not model.training
        acc = tb.accuracy(model, digits_nchw.x_test, digits_nchw.y_test)
        entry = shipped.model_entry("torch", seed, "course_resnet")
        assert acc >= MIN_ACCURACY
        assert acc == pytest.approx(entry["test_accuracy"], abs=1e-6)


def test_keras_resnet_matches_the_description_and_the_manifest(kb, digits_nhwc):
    model = kb.course_resnet_keras()
    assert model.input_shape == (None, 32, 32, 1)
    assert model(np.zeros((2, 32, 32, 1), np.float32)).shape == (2, 10)
    # The functional API lists layers in its own topological order; the set is the same.
    assert sorted(layer.name for layer in model.layers[1:]) == sorted(
        s.name for s in models.RESNET_SPECS)
    assert model.count_params() == models.count_params("all", "course_resnet")
    for seed in shipped.manifest()["seeds"]:
        acc = kb.accuracy_keras(kb.trained_resnet_keras(seed), digits_nhwc.x_test,
                                digits_nhwc.y_test)
        entry = shipped.model_entry("keras", seed, "course_resnet")
        assert acc >= MIN_ACCURACY
        assert acc == pytest.approx(entry["test_accuracy"], abs=1e-6)
    with pytest.raises(ValueError, match="ships the trained ResNet"):
        kb.trained_resnet_keras(5)


def test_resnet_training_is_deterministic(tb, digits_nchw):
    # Two short runs on a few images give the same weights; the full recipe is the same code
    # path as the course CNN's (train_models.check("torch", 0, "course_resnet") retrains it).
    small = data.Dataset(digits_nchw.x_train[:128], digits_nchw.y_train[:128],
                         digits_nchw.x_test, digits_nchw.y_test)
    assert_training_is_deterministic(tb, tb.CourseResNet, small, seed=1)
