"""The shipped models: files that match their manifest, clear errors, no training at load time."""

import hashlib
import json
import time

import numpy as np
import pytest

from tutorial_lib import shipped


def test_every_file_matches_the_manifest():
    manifest = shipped.manifest()
    listed = {entry["file"] for entry in manifest["models"]}
    on_disk = {p.name for p in shipped.WEIGHTS_DIR.glob("*.npz")}
    assert listed == on_disk
    assert [(e["model"], e["framework"], e["seed"]) for e in manifest["models"]] == [
        (m, f, s) for m in shipped.MODELS for f in shipped.FRAMEWORKS for s in manifest["seeds"]]
    for entry in manifest["models"]:
        assert entry["file"] == shipped.file_name(entry["framework"], entry["seed"], entry["model"])
        content = (shipped.WEIGHTS_DIR / entry["file"]).read_bytes()
        assert len(content) == entry["bytes"] < 1_000_000
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        weights = shipped.load_weights(entry["framework"], entry["seed"], entry["model"])
        floats = sum(w.size for w in weights.values() if w.dtype == np.float32)
        assert floats == entry["parameters"]
        assert 0.95 <= entry["test_accuracy"] <= 1.0


def test_the_course_cnn_files_are_unchanged():
    # The course CNN's files are what every lesson's stored outputs were computed with.
    assert {e["file"]: e["sha256"][:12] for e in shipped.manifest()["models"]
            if e["model"] == "course_cnn"} == {
        "course_cnn_torch_seed0.npz": "7a51771c0651", "course_cnn_torch_seed1.npz": "ae86a747f12b",
        "course_cnn_torch_seed2.npz": "ac5194d89349", "course_cnn_keras_seed0.npz": "fbb288bedb94",
        "course_cnn_keras_seed1.npz": "1497df66b983", "course_cnn_keras_seed2.npz": "a7333fddeed6"}
    assert shipped.model_entry("torch", 0) is shipped.model_entry("torch", 0, "course_cnn")


@pytest.mark.parametrize("model", ["course_cnn", "course_resnet"])
def test_the_weights_are_those_of_the_described_network(model):
    from tutorial_lib import models

    # PyTorch's state dict adds BatchNorm's running statistics (2 per channel) to the
    # trainable parameters, and so does Keras (moving mean and variance): count_params("all").
    for framework in shipped.FRAMEWORKS:
        for seed in shipped.manifest()["seeds"]:
            entry = shipped.model_entry(framework, seed, model)
            assert entry["parameters"] == models.count_params("all", model)


def test_loading_is_fast_and_needs_no_training():
    pytest.importorskip("torch")
    from tutorial_lib import torch_bridge as tb

    start = time.perf_counter()
    model = tb.trained_cnn(1)
    assert time.perf_counter() - start < 3
    np.testing.assert_array_equal(model.conv1.weight.detach().numpy(),
                                  shipped.load_weights("torch", 1)["conv1.weight"])


def test_bad_seeds_and_damaged_files_get_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="ships the trained CNN for seeds"):
        shipped.load_weights("torch", 7)
    with pytest.raises(ValueError, match="seed must be an integer"):
        shipped.load_weights("keras", None)
    with pytest.raises(ValueError, match="framework must be one of"):
        shipped.load_weights("jax", 0)
    with pytest.raises(ValueError, match="ships the trained ResNet for seeds.*CourseResNet"):
        shipped.load_weights("torch", 3, "course_resnet")
    with pytest.raises(ValueError, match="model must be one of"):
        shipped.load_weights("torch", 0, "resnet50")
    # A damaged copy of the weights is refused, not loaded.
    for path in shipped.WEIGHTS_DIR.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    for framework, model in (("torch", "course_cnn"), ("keras", "course_resnet")):
        name = shipped.file_name(framework, 0, model)
        damaged = bytearray((tmp_path / name).read_bytes())
        damaged[-100] ^= 1
        (tmp_path / name).write_bytes(bytes(damaged))
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    shipped._read.cache_clear()
    try:
        with pytest.raises(ValueError, match="does not match the manifest"):
            shipped.load_weights("torch", 0)
        with pytest.raises(ValueError, match="course_resnet_keras_seed0.npz does not match"):
            shipped.load_weights("keras", 0, "course_resnet")
    finally:
        monkeypatch.undo()
        shipped._read.cache_clear()


def test_manifest_names_what_trained_the_models():
    manifest = json.loads((shipped.WEIGHTS_DIR / "manifest.json").read_text())
    assert list(manifest["trained_on"]) == list(shipped.MODELS)
    for model in shipped.MODELS:
        for key in ("date", "cpu", "torch", "tensorflow"):
            assert manifest["trained_on"][model][key]
