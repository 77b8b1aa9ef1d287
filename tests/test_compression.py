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


def test_global_masks_equal_global_unstructured_and_leave_biases_alone():
    from torch.nn.utils import prune

    weights = [RNG.normal(scale=s, size=shape).astype(np.float32)
               for s, shape in ((1.0, (16, 1, 3, 3)), (0.1, (32, 16, 3, 3)), (0.5, (10, 64)))]
    layers = [_torch_layer(w) for w in weights]
    prune.global_unstructured([(m, "weight") for m in layers], prune.L1Unstructured, amount=0.7)
    params = {}
    for i, w in enumerate(weights):  # a state dict: each weight with a bias of small values
        params[f"l{i}.weight"] = w
        params[f"l{i}.bias"] = np.full(w.shape[0], 1e-6, np.float32)
    ours = tl.pruning.global_masks(params, 0.7)
    assert list(ours) == ["l0.weight", "l1.weight", "l2.weight"]
    for mine, layer in zip(ours.values(), layers, strict=True):
        assert np.array_equal(mine, layer.weight_mask.numpy())
    per_layer = [tl.pruning.sparsity(w * m) for w, m in zip(weights, ours.values(), strict=True)]
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


def test_channel_mask_ranks_by_the_scores_it_is_given():
    w = RNG.normal(size=(8, 4, 3, 3)).astype(np.float32)
    gamma = np.array([0.9, -0.05, 0.3, 1.2, -0.6, 0.01, 0.7, 0.2], np.float32)
    mask = tl.pruning.channel_mask(w, 0.5, axis=0, scores=gamma)
    gone = np.flatnonzero(mask.reshape(8, -1).max(axis=1) == 0)
    assert gone.tolist() == [1, 2, 5, 7]  # the four smallest |gamma|: its sign does not count
    with pytest.raises(ValueError, match="one value per slice"):
        tl.pruning.channel_mask(w, 0.5, axis=0, scores=gamma[:4])


def test_choice_margins_counts_images_to_the_limit():
    scan = {"a": {0.5: 0.99, 0.7: 0.975, 0.9: 0.95}, "b": {0.5: 0.90}}
    assert tl.pruning.choose_sparsities(scan, 1.0, 0.02) == {"a": 0.5, "b": 0.0}
    # a: 1 image lost at 50% and 2.5 at 70%, limit 2 of 100: margins 1 and 0.5
    assert tl.pruning.choice_margins(scan, 1.0, 0.02, 100) == {"a": 0.5, "b": 8.0}
    with pytest.raises(ValueError, match="n_images"):
        tl.pruning.choice_margins(scan, 1.0, 0.02, 0)


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
    (lambda: tl.pruning.global_masks([np.ones((2, 2))], 0.5), "dict {name: array}"),
    (lambda: tl.pruning.global_masks({"b": np.ones(4)}, 0.5), "no tensor of 2 or more"),
    (lambda: tl.clustering.kmeans_step([1.0], [[0.0]]), "1-D"),
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


def test_kmeans_step_moves_centroids_to_their_means_and_keeps_a_zero_centroid():
    w = np.array([0.0, 0.0, 0.0, 0.05, -0.04, 0.6, 0.7, -0.5], np.float32)
    step = tl.clustering.kmeans_step(w, [-0.5, 0.0, 0.65, 3.0])
    assert step.tolist() == pytest.approx([-0.5, 0.0, 0.65, 3.0])  # 3.0 empty: it stays
    free = tl.clustering.kmeans_step(w, [-0.5, 0.0, 0.65, 3.0], preserve_zero=False)
    assert free[1] == pytest.approx(0.002)  # without the pin, the zeros' centroid drifts
    centroids, indices = tl.clustering.kmeans(w, 3, init=[-0.5, 0.0, 0.5], preserve_zero=True)
    assert centroids[1] == 0.0 and np.all(centroids[indices][w == 0] == 0)


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
    model = tb.trained_cnn(0)
    dense = tc.prune_channels(model, {"conv1": 0.25, "conv2": 0.5, "conv3": 0.5})
    small = tc.remove_zero_channels(dense)
    assert (small.conv1.out_channels, small.conv2.out_channels, small.conv3.out_channels) == \
        (12, 16, 32)
    assert small.fc1.in_features == 32 * 16
    x = torch.tensor(tl.data.load_digits(size=32).x_test[:20])
    with torch.no_grad():
        assert torch.allclose(dense(x), small(x), atol=1e-4)
    assert tb.state_dict_bytes(small) < 0.6 * tb.state_dict_bytes(dense)
    # zeroing channels takes only their kernels; cutting them out takes the next layer's inputs
    assert tc.pruned_weights(model, dense) < tc.pruned_weights(model, small)


@pytest.mark.parametrize("criterion", ["bn_gamma", "l2", "random"])
def test_prune_channels_removes_the_channels_its_criterion_ranks_lowest(criterion):
    import torch
    from torch.nn.utils import prune

    tb, tc = tl.torch_bridge, tl.torch_compress
    model = tb.trained_cnn(1)
    pruned = tc.prune_channels(model, {"conv2": 0.25}, criterion=criterion, seed=3)
    gone = np.flatnonzero(pruned.conv2.weight.detach().flatten(1).abs().sum(dim=1).numpy() == 0)
    assert len(gone) == 8 and np.all(pruned.bn2.weight.detach().numpy()[gone] == 0)
    if criterion == "bn_gamma":
        expected = np.argsort(np.abs(model.bn2.weight.detach().numpy()), kind="stable")[:8]
    elif criterion == "l2":
        layer = torch.nn.Conv2d(16, 32, 3)
        layer.weight = torch.nn.Parameter(model.conv2.weight.detach().clone())
        prune.ln_structured(layer, "weight", amount=0.25, n=2, dim=0)
        expected = np.flatnonzero(layer.weight_mask.flatten(1).sum(dim=1).numpy() == 0)
    else:  # the same seed, the same channels
        again = tc.prune_channels(model, {"conv2": 0.25}, criterion="random", seed=3)
        expected = np.flatnonzero(again.conv2.weight.detach().flatten(1).abs().sum(dim=1).numpy()
                                  == 0)
    assert sorted(gone) == sorted(expected)
    with pytest.raises(ValueError, match="criterion must be one of"):
        tc.prune_channels(model, {"conv2": 0.25}, criterion="l1")


def test_sensitivity_scan_measures_the_images_it_is_given():
    tb, tc = tl.torch_bridge, tl.torch_compress
    split = tl.data.validation_split(tl.data.load_digits(size=32))
    model = tb.trained_cnn(0)
    scan = tc.sensitivity_scan(model, split.x_val[:64], split.y_val[:64], ["fc2"], [0.5, 0.99])
    assert set(scan) == {"fc2"} and set(scan["fc2"]) == {0.5, 0.99}
    assert scan["fc2"][0.99] < scan["fc2"][0.5] <= 1.0
    with pytest.raises(ValueError, match="one label per image"):
        tc.sensitivity_scan(model, split.x_val[:64], split.y_val[:10], ["fc2"], [0.5])


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


def _toy_pruned_run(frequency: int, steps: int = 3):
    """One Dense layer wrapped by tfmot, trained for ``steps`` batches: (step counter, zeros)."""
    kb = tl.tflite_bridge
    sparsity_api, keras = kb.load_tfmot().sparsity.keras, kb.tf_keras
    keras.utils.set_random_seed(0)
    schedule = sparsity_api.ConstantSparsity(0.5, begin_step=0, frequency=frequency)
    model = keras.Sequential([keras.layers.Input((8,)), sparsity_api.prune_low_magnitude(
        keras.layers.Dense(4), pruning_schedule=schedule)])
    model.compile("sgd", "mse")
    x = RNG.normal(size=(4 * steps, 8)).astype(np.float32)
    model.fit(x, np.zeros((len(x), 4), np.float32), batch_size=4, epochs=1, verbose=0,
              callbacks=[sparsity_api.UpdatePruningStep()])
    layer = model.layers[0]
    return int(layer.pruning_step.numpy()), tl.pruning.sparsity(layer.layer.kernel.numpy()), schedule


def test_tfmot_asks_the_schedule_from_step_1_as_schedule_steps_says():
    kc = tl.keras_compress
    # frequency 100 would fire at step 0 if tfmot asked there: it does not, so nothing is pruned
    steps, zeros, schedule = _toy_pruned_run(frequency=100)
    assert (steps, zeros) == (3, 0.0) and kc.schedule_steps(schedule, 3) == []
    steps, zeros, schedule = _toy_pruned_run(frequency=1)
    assert (steps, zeros) == (3, 0.5) and [s for s, _ in kc.schedule_steps(schedule, 3)] == [1, 2, 3]
    assert kc.schedule_steps(kc.pruning_schedule(0.8, 46, frequency=100), 46) == []
    fitted = kc.schedule_steps(kc.pruning_schedule(0.8, 46), 46)
    assert [s for s, _ in fitted] == list(range(2, 23, 2))
    assert fitted[-1][1] == pytest.approx(0.8, abs=1e-3)


def test_fit_pruned_reaches_its_sparsity_and_leaves_the_input_model_alone():
    kb, kc = tl.tflite_bridge, tl.keras_compress
    data = tl.data.load_digits(size=32, layout="NHWC")
    small = data._replace(x_train=data.x_train[:256], y_train=data.y_train[:256])
    base = kb.trained_cnn_keras(0)
    before = kc.kernel_values(base)["fc1"].copy()
    pruned = kc.fit_pruned(base, small, sparsity=0.8, epochs=2)
    assert np.array_equal(kc.kernel_values(base)["fc1"], before)
    for name, kernel in kc.kernel_values(pruned).items():
        assert tl.pruning.sparsity(kernel) == pytest.approx(0.8, abs=0.01), name
    # LiteRT's sparse format stores the pruned model in fewer bytes, with the same outputs
    dense_file = kb.convert(pruned, "integer_only", small.x_train[:20])
    sparse_file = kc.convert_sparse(pruned, "integer_only", small.x_train[:20])
    assert len(sparse_file) < 0.8 * len(dense_file)
    x = data.x_test[:50]
    assert np.array_equal(kb.run_tflite(dense_file, x, reference=True),
                          kb.run_tflite(sparse_file, x, reference=True))
    with pytest.raises(ValueError, match="representative_data"):
        kc.convert_sparse(pruned, "integer_only")


def test_fit_m_by_n_fixes_its_mask_at_step_1_and_skips_layers_without_groups():
    kb, kc = tl.tflite_bridge, tl.keras_compress
    data = tl.data.load_digits(size=32, layout="NHWC")
    small = data._replace(x_train=data.x_train[:256], y_train=data.y_train[:256])
    base = kb.trained_cnn_keras(0)
    two_four = kc.fit_m_by_n(base, small, (2, 4), epochs=1)
    kernels = kc.kernel_values(two_four)
    assert tl.pruning.sparsity(kernels["conv1"]) == 0  # one input channel: left dense
    # the mask is the 2:4 mask of the weights before training (tfmot fixes it at step 1)
    start = kc.kernel_values(base)["conv2"]
    assert np.array_equal(kernels["conv2"] == 0,
                          tl.pruning.m_by_n_mask(start, 2, 4, axis=-2) == 0)
    with pytest.raises(ValueError, match="m < n"):
        kc.fit_m_by_n(base, small, (4, 4))


def test_collaborative_training_keeps_zeros_and_clusters():
    kb, kc = tl.tflite_bridge, tl.keras_compress
    data = tl.data.load_digits(size=32, layout="NHWC")
    small = data._replace(x_train=data.x_train[:128], y_train=data.y_train[:128])
    pruned = kc.fit_pruned(kb.trained_cnn_keras(0), small, sparsity=0.7, epochs=2)
    both = kc.fit_clustered(pruned, small, clusters=8, preserve_sparsity=True)
    content = kb.convert(kc.fit_collaborative(both, small, "prune_cluster"), "integer_only")
    for name, q in kc.int8_kernels(content).items():
        assert np.mean(q == 0) >= 0.69, name
        assert tl.clustering.unique_per_channel(q, 0).max() <= 8, name
    with pytest.raises(ValueError, match="scheme must be one of"):
        kc.fit_collaborative(both, small, "quantize")
