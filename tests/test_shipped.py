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
    assert {(e["framework"], e["seed"]) for e in manifest["models"]} == {
        (f, s) for f in shipped.FRAMEWORKS for s in manifest["seeds"]}
    for entry in manifest["models"]:
        content = (shipped.WEIGHTS_DIR / entry["file"]).read_bytes()
        assert len(content) == entry["bytes"]
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        weights = shipped.load_weights(entry["framework"], entry["seed"])
        floats = sum(w.size for w in weights.values() if w.dtype == np.float32)
        assert floats == entry["parameters"]
        assert 0.95 <= entry["test_accuracy"] <= 1.0


def test_the_weights_are_those_of_the_course_cnn():
    from tutorial_lib import models

    torch_floats = shipped.model_entry("torch", 0)["parameters"]
    # PyTorch's state dict adds BatchNorm's running statistics (2 per channel) to the
    # trainable parameters, and so does Keras (moving mean and variance).
    bn_stats = 2 * (16 + 32 + 64)
    assert torch_floats == models.count_params("trainable") + bn_stats
    assert shipped.model_entry("keras", 0)["parameters"] == torch_floats


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
    # A damaged copy of the weights is refused, not loaded.
    for path in shipped.WEIGHTS_DIR.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    name = shipped.file_name("torch", 0)
    damaged = bytearray((tmp_path / name).read_bytes())
    damaged[-100] ^= 1
    (tmp_path / name).write_bytes(bytes(damaged))
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    shipped._read.cache_clear()
    try:
        with pytest.raises(ValueError, match="does not match the manifest"):
            shipped.load_weights("torch", 0)
    finally:
        monkeypatch.undo()
        shipped._read.cache_clear()


def test_manifest_names_what_trained_the_models():
    manifest = json.loads((shipped.WEIGHTS_DIR / "manifest.json").read_text())
    for key in ("date", "cpu", "torch", "tensorflow"):
        assert manifest["trained_on"][key]
