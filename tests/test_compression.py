"""Pruning, clustering and distillation: the numpy core against PyTorch and tfmot."""

import numpy as np
import pytest

import tutorial_lib as tl

RNG = np.random.default_rng(9)


# ---------------------------------------------------------------- pruning vs torch.nn.utils.prune

def _torch_layer(w):
    import torch

    layer = torch.nn.Conv2d(1, 1, 1) if w.ndim == 4 else torch.nn.Linear(1, 1)
    layer.weight = torch.nn.Parameter(torch.tensor(w))
    return layer


@pytest.mark.parametrize("shape, sparsity", [((16, 1, 3, 3), 0.5), ((10, 128), 0.8),
                                             ((32, 16, 3, 3), 0.95), ((7, 5), 0.3)])
def test_magnitude_mask_equals_l1_unstructured(shape, sparsity):
    from torch.nn.utils import prune

    w = RNG.normal(size=shape).astype(np.float32)
    layer = _torch_layer(w)
    prune.l1_unstructured(layer, "weight", amount=sparsity)
    assert np.array_equal(tl.pruning.magnitude_mask(w, sparsity), layer.weight_mask.numpy())


def test_global_masks_equal_global_unstructured():
    from torch.nn.utils import prune

    weights = [RNG.normal(scale=s, size=shape).astype(np.float32)
               for s, shape in ((1.0, (16, 1, 3, 3)), (0.1, (32, 16, 3, 3)), (0.5, (10, 64)))]
    layers = [_torch_layer(w) for w in weights]
    prune.global_unstructured([(m, "weight") for m in layers], prune.L1Unstructured, amount=0.7)
    ours = tl.pruning.global_masks(weights, 0.7)
    for mine, layer in zip(ours, layers, strict=True):
        assert np.array_equal(mine, layer.weight_mask.numpy())
    per_layer = [tl.pruning.sparsity(w * m) for w, m in zip(weights, ours, strict=True)]
    assert per_layer[1] > 0.75 > 0.3 > per_layer[0]  # the layer of small weights loses the most


@pytest.mark.parametrize("axis, dim", [(0, 0), (1, 1)])
def test_channel_mask_equals_ln_structured(axis, dim):
    from torch.nn.utils import prune

    w = RNG.normal(size=(32, 16, 3, 3)).astype(np.float32)
    layer = _torch_layer(w)
    prune.ln_structured(layer, "weight", amount=0.25, n=2, dim=dim)
    mask = tl.pruning.channel_mask(w, 0.25, axis=axis)
    assert np.array_equal(mask, layer.weight_mask.numpy())
    assert tl.pruning.sparsity(mask) == 0.25


def test_m_by_n_mask_equals_tfmot():
    kb = tl.tflite_bridge
    kb.load_tfmot()  # imports tfmot quietly first
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils

    kernel = RNG.normal(size=(3, 3, 16, 8)).astype(np.float32)  # Keras HWIO
    theirs = pruning_utils.m_by_n_sparsity_mask_prepare(
        pruning_utils.generate_m_by_n_mask(pruning_utils.weights_rearrange(kb.tf.constant(kernel)),
                                           (2, 4)), kb.tf.TensorShape(kernel.shape)).numpy()
    assert np.array_equal(tl.pruning.m_by_n_mask(kernel, 2, 4, axis=-2), theirs)


def test_zeros_compress_and_the_size_is_reproducible():
    dense = RNG.normal(size=10_000).astype(np.float32)
    pruned = dense * tl.pruning.magnitude_mask(dense, 0.8)
    assert tl.pruning.zipped_bytes(pruned.tobytes()) < 0.45 * tl.pruning.zipped_bytes(dense.tobytes())
    assert tl.pruning.zipped_bytes(b"abc" * 100) == tl.pruning.zipped_bytes(b"abc" * 100)


def test_choose_sparsities_stops_at_the_first_big_drop():
    scan = {"a": {0.5: 0.99, 0.7: 0.95, 0.9: 0.99}, "b": {0.5: 0.90}}
    assert tl.pruning.choose_sparsities(scan, 0.99, 0.01) == {"a": 0.5, "b": 0.0}


@pytest.mark.parametrize("call, words", [
    (lambda: tl.pruning.magnitude_mask([1.0, 2.0], 1.5), "sparsity must be a fraction"),
    (lambda: tl.pruning.magnitude_mask([1.0, np.nan], 0.5), "NaN"),
    (lambda: tl.pruning.global_masks(np.ones(4), 0.5), "list of arrays"),
    (lambda: tl.pruning.channel_mask(np.ones((2, 2)), 0.5, axis=2), "axis"),
    (lambda: tl.pruning.m_by_n_mask(np.ones(6), 2, 4), "not a multiple"),
    (lambda: tl.pruning.m_by_n_mask(np.ones(8), 4, 4), "m < n"),
    (lambda: tl.pruning.zipped_bytes("text"), "must be bytes"),
    (lambda: tl.clustering.kmeans([1.0, 2.0], 0), "positive integer"),
    (lambda: tl.clustering.assign_clusters([1.0], [[0.0, 1.0]]), "1-D"),
    (lambda: tl.clustering.packed_bytes(-1, 4), "n_weights"),
    (lambda: tl.distill.kd_loss([[1.0, 0.0]], [[1.0, 0.0]], [2]), "labels"),
    (lambda: tl.distill.kd_loss([[1.0, 0.0]], [[1.0, 0.0]], [0], temperature=0), "temperature"),
    (lambda: tl.distill.kd_loss([[1.0, 0.0]], [[1.0]], [0]), "(batch, classes)"),
])
def test_bad_input_is_a_value_error(call, words):
    with pytest.raises(ValueError, match=None) as err:
        call()
    assert words in str(err.value)


# ---------------------------------------------------------------- clustering vs tfmot

def test_linear_start_and_assignment_equal_tfmot():
    kb = tl.tflite_bridge
    clustering = kb.load_tfmot().clustering.keras
    dense = kb.tf_keras.Sequential([kb.tf_keras.layers.Input((24,)),
                                    kb.tf_keras.layers.Dense(16, name="fc")])
    kernel = RNG.normal(size=(24, 16)).astype(np.float32)
    dense.layers[0].set_weights([kernel, np.zeros(16, np.float32)])
    wrapped = clustering.cluster_weights(
        dense, number_of_clusters=8,
        cluster_centroids_init=clustering.CentroidInitialization.LINEAR)
    layer = wrapped.layers[0]
    centroids = layer.cluster_centroids["kernel"].numpy()
    indices = layer.pulling_indices["kernel"].numpy()
    assert np.allclose(tl.clustering.linear_centroids(kernel, 8), centroids, rtol=1e-6, atol=1e-7)
    assert np.array_equal(tl.clustering.assign_clusters(kernel, centroids), indices)


def test_kmeans_lowers_the_error_of_the_linear_start():
    w = RNG.normal(size=4096).astype(np.float32)
    start = tl.clustering.linear_centroids(w, 16)
    linear_error = np.mean((w - start[tl.clustering.assign_clusters(w, start)]) ** 2)
    centroids, indices = tl.clustering.kmeans(w, 16)
    assert np.mean((w - centroids[indices]) ** 2) < 0.7 * linear_error
    assert np.unique(tl.clustering.cluster(w, 16)).size <= 16


def test_unique_per_channel_and_packed_bytes():
    assert tl.clustering.unique_per_channel(np.array([[1, 2, 2], [0, 0, 0]]), 0).tolist() == [2, 1]
    assert tl.clustering.packed_bytes(1000, 16) == 500 + 64
    assert tl.clustering.bits_per_index(256) == 8


# ---------------------------------------------------------------- distillation vs the frameworks

def _logits():
    s = RNG.normal(scale=3, size=(6, 10)).astype(np.float32)
    t = RNG.normal(scale=3, size=(6, 10)).astype(np.float32)
    return s, t, RNG.integers(0, 10, size=6)


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (4.0, 0.9), (2.0, 0.0), (8.0, 1.0)])
def test_kd_loss_equals_torch(temperature, alpha):
    import torch
    import torch.nn.functional as F

    s, t, y = _logits()
    st, tt = torch.tensor(s), torch.tensor(t)
    kl = F.kl_div(F.log_softmax(st / temperature, 1), F.log_softmax(tt / temperature, 1),
                  reduction="batchmean", log_target=True)
    ce = F.cross_entropy(st, torch.tensor(y))
    expected = alpha * temperature**2 * kl + (1 - alpha) * ce
    assert tl.distill.kd_loss(s, t, y, temperature, alpha) == pytest.approx(float(expected),
                                                                           rel=1e-5)


def test_kd_loss_keras_equals_numpy():
    s, t, y = _logits()
    loss = tl.keras_compress.kd_loss_keras(4.0, 0.9)
    packed = np.concatenate([y[:, None].astype(np.float32), t], axis=1)
    value = float(np.mean(loss(packed, s).numpy()))
    assert value == pytest.approx(tl.distill.kd_loss(s, t, y, 4.0, 0.9), rel=1e-5)


def test_temperature_softens():
    sharp, soft = tl.distill.softmax([4.0, 0.0, -2.0]), tl.distill.softmax([4.0, 0.0, -2.0], 4.0)
    assert sharp.max() > soft.max() and np.isclose(soft.sum(), 1.0)


# ---------------------------------------------------------------- the bridges

def test_channels_removed_give_the_same_outputs_smaller_and_cheaper():
    import torch

    tb, tc = tl.torch_bridge, tl.torch_compress
    dense = tc.prune_channels(tb.trained_cnn(0), {"conv1": 0.25, "conv2": 0.5, "conv3": 0.5})
    small = tc.remove_zero_channels(dense)
    assert (small.conv1.out_channels, small.conv2.out_channels, small.conv3.out_channels) == \
        (12, 16, 32)
    assert small.fc1.in_features == 32 * 16
    x = torch.tensor(tl.data.load_digits(size=32).x_test[:20])
    with torch.no_grad():
        assert torch.allclose(dense(x), small(x), atol=1e-4)
    assert tb.state_dict_bytes(small) < 0.6 * tb.state_dict_bytes(dense)


def test_finetune_keeps_the_zeros():
    tb, tc = tl.torch_bridge, tl.torch_compress
    data = tl.data.load_digits(size=32)
    small = data._replace(x_train=data.x_train[:128], y_train=data.y_train[:128])
    pruned = tc.prune_magnitude(tb.trained_cnn(0), {"conv2": 0.6, "fc1": 0.9})
    tuned = tc.finetune_pruned(pruned, small, epochs=1, lr=1e-3)
    sparsity = tc.weight_sparsity(tuned)
    assert sparsity["conv2"] == pytest.approx(0.6, abs=1e-3)
    assert sparsity["fc1"] == pytest.approx(0.9, abs=1e-3)
    assert not any(hasattr(m, "weight_mask") for m in tuned.modules())
    with pytest.raises(ValueError, match="no pruning masks"):
        tc.finetune_pruned(tb.trained_cnn(0), small)


def test_default_frequency_never_prunes_a_short_run():
    kc = tl.keras_compress
    assert kc.schedule_steps(kc.pruning_schedule(0.8, 46, frequency=100), 46) == [(0, 0.0)]
    steps = kc.schedule_steps(kc.pruning_schedule(0.8, 46), 46)
    assert len(steps) >= 8 and steps[-1][1] == pytest.approx(0.8, abs=1e-3)


def test_fit_pruned_reaches_its_sparsity_and_leaves_the_input_model_alone():
    kb, kc = tl.tflite_bridge, tl.keras_compress
    data = tl.data.load_digits(size=32, layout="NHWC")
    small = data._replace(x_train=data.x_train[:256], y_train=data.y_train[:256])
    base = kb.trained_cnn_keras(0)
    before = kc.kernel_values(base)["fc1"].copy()
    pruned = kc.fit_pruned(base, small, sparsity=0.6, epochs=2)
    assert np.array_equal(kc.kernel_values(base)["fc1"], before)
    for name, kernel in kc.kernel_values(pruned).items():
        assert tl.pruning.sparsity(kernel) == pytest.approx(0.6, abs=0.01), name
    two_four = kc.fit_pruned(base, small, sparsity=0.5, epochs=1, m_by_n=(2, 4))
    kernels = kc.kernel_values(two_four)
    assert tl.pruning.sparsity(kernels["conv1"]) == 0  # one input channel: left dense
    groups = np.moveaxis(kernels["conv2"], -2, -1).reshape(-1, 4)
    assert np.all((groups == 0).sum(axis=1) >= 2)
