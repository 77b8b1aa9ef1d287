"""The datasets: shapes, dtypes, ranges, the fixed split, caching, and errors that teach."""

import pickle

import numpy as np
import pytest

from tutorial_lib import data


@pytest.mark.parametrize(
    ("size", "layout", "shape"),
    [(8, "NCHW", (1, 8, 8)), (8, "NHWC", (8, 8, 1)), (32, "NCHW", (1, 32, 32)),
     (32, "NHWC", (32, 32, 1))],
)
def test_digits_shapes_dtypes_and_ranges(size, layout, shape):
    d = data.load_digits(size=size, layout=layout)
    assert isinstance(d, data.Dataset)
    assert d.x_train.shape == (1437, *shape) and d.x_test.shape == (360, *shape)
    assert d.y_train.shape == (1437,) and d.y_test.shape == (360,)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    for x in (d.x_train, d.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(d.y_train)) == set(range(10))


def test_digits_split_is_stratified_and_disjoint():
    d = data.load_digits()
    # Every digit keeps (almost exactly) its share of the 1,797 images on each side.
    assert np.all(np.abs(np.bincount(d.y_test) - 36) <= 1)
    train = {x.tobytes() for x in d.x_train}
    assert sum(x.tobytes() in train for x in d.x_test) <= 5  # a few digits are exact duplicates
    assert len(d.x_train) + len(d.x_test) == 1797


def test_digits_32_is_the_8_upsampled():
    small, big = data.load_digits(8), data.load_digits(32)
    np.testing.assert_array_equal(small.y_train, big.y_train)  # same split
    # Corners of a bilinear upsampling with aligned corners are the original corner pixels.
    np.testing.assert_allclose(big.x_train[:, 0, 0, 0], small.x_train[:, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(big.x_train[:, 0, -1, -1], small.x_train[:, 0, -1, -1], atol=1e-6)
    # Interpolation moves ink around but keeps about as much of it.
    ink_small, ink_big = small.x_train.mean(axis=(1, 2, 3)), big.x_train.mean(axis=(1, 2, 3))
    assert np.abs(ink_small - ink_big).max() < 0.1


def test_digits_layouts_hold_the_same_images():
    nchw, nhwc = data.load_digits(32, "NCHW"), data.load_digits(32, "NHWC")
    np.testing.assert_array_equal(nchw.x_test.transpose(0, 2, 3, 1), nhwc.x_test)
    assert nhwc.x_test.flags["C_CONTIGUOUS"]


def test_digits_are_deterministic_and_seeded():
    a, b = data.load_digits(seed=0), data.load_digits(seed=0)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    c = data.load_digits(seed=1)
    assert not np.array_equal(a.y_test, c.y_test)
    assert data.load_digits(test_fraction=0.5).x_test.shape[0] == 899
    # numpy scalars are as good as Python numbers
    d = data.load_digits(size=np.int64(8), test_fraction=np.float32(0.2), seed=np.int32(0))
    np.testing.assert_array_equal(d.y_test, a.y_test)


def test_callers_cannot_corrupt_the_cache():
    d = data.load_digits()
    d.x_train[:] = -1.0
    d.y_test[:] = 99
    fresh = data.load_digits()
    assert fresh.x_train.min() == 0.0 and fresh.y_test.max() == 9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 16}, "size must be 8"),
        ({"size": True}, "size must be 8"),
        ({"layout": "nchw"}, "layout must be 'NCHW'"),
        ({"layout": "CHW"}, "layout must be 'NCHW'"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": 0.001}, "at least 10 images"),
        ({"test_fraction": "0.2"}, "test_fraction must be a number"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_digits_bad_input_raises_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_digits(**kwargs)


def test_cifar10_reads_the_python_batches(tmp_path):
    folder = data.write_cifar10_like(tmp_path / "cifar-10-batches-py", 7, 5, seed=3)
    d = data.load_cifar10(folder)
    assert d.x_train.shape == (35, 3, 32, 32) and d.x_test.shape == (5, 3, 32, 32)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    # Pixel values are the stored bytes / 255, in the documented order (R plane, G, B).
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(d.y_test, raw[b"labels"])
    np.testing.assert_allclose(d.x_test[1, 2, 0, 5], raw[b"data"][1, 2 * 1024 + 5] / 255)
    # NHWC holds the same images; the parent folder of cifar-10-batches-py works too.
    nhwc = data.load_cifar10(tmp_path, layout="NHWC")
    np.testing.assert_array_equal(d.x_train.transpose(0, 2, 3, 1), nhwc.x_train)


def test_cifar10_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(ValueError, match="does not exist.*cs.toronto.edu"):
        data.load_cifar10(tmp_path / "nowhere")
    folder = data.write_cifar10_like(tmp_path, 2, 2)
    (folder / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="lacks data_batch_3.*does not download"):
        data.load_cifar10(folder)
    with pytest.raises(ValueError, match="layout"):
        data.load_cifar10(folder, layout="HWC")


def test_cifar10_rejects_files_of_another_format(tmp_path):
    folder = data.write_cifar10_like(tmp_path, 2, 2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"pixels": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        data.load_cifar10(folder)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        data.load_cifar10(folder)


def test_write_cifar10_like_checks_its_counts(tmp_path):
    with pytest.raises(ValueError, match="n_test must be a positive integer"):
        data.write_cifar10_like(tmp_path, 3, 0)


def test_validation_split_is_stratified_seeded_and_leaves_the_test_images_alone():
    d = data.load_digits(size=32)
    v = data.validation_split(d, fraction=0.2, seed=0)
    assert len(v.y_val) == 288 and len(v.train.y_train) == 1437 - 288
    assert v.train.x_test is not None and np.array_equal(v.train.x_test, d.x_test)
    # Every training image lands on exactly one side, and each digit keeps its share.
    both = np.concatenate([v.train.x_train, v.x_val]).reshape(1437, -1)
    assert np.unique(both, axis=0).shape[0] == np.unique(d.x_train.reshape(1437, -1), axis=0).shape[0]
    assert np.abs(np.bincount(v.y_val) / 288 - np.bincount(d.y_train) / 1437).max() < 0.01
    # The same seed gives the same images, in either layout; another seed others.
    nhwc = data.validation_split(data.load_digits(size=32, layout="NHWC"), 0.2, seed=0)
    np.testing.assert_array_equal(nhwc.x_val, v.x_val.transpose(0, 2, 3, 1))
    assert not np.array_equal(data.validation_split(d, 0.2, seed=1).y_val, v.y_val)


@pytest.mark.parametrize("kwargs, words", [
    ({"fraction": 0.0}, "at least one image of each"),
    ({"fraction": 0.999}, "at least one image of each"),
    ({"fraction": "0.2"}, "fraction must be a number"),
    ({"seed": 1.5}, "seed must be an integer"),
])
def test_validation_split_rejects_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        data.validation_split(data.load_digits(), **kwargs)
    with pytest.raises(ValueError, match="tl.data.Dataset"):
        data.validation_split((1, 2, 3, 4))
