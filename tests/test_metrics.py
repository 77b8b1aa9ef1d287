"""Error metrics and sizes."""

import math

import numpy as np
import pytest

import tutorial_lib as tl
from tutorial_lib import metrics


def test_sqnr_gains_about_6_db_per_bit():
    x = np.random.default_rng(0).uniform(-1, 1, 100_000).astype(np.float32)
    db = []
    for bits in (6, 8, 10):
        qp = tl.choose_qparams(x.min(), x.max(), *tl.qrange(bits), symmetric=True)
        db.append(metrics.sqnr_db(x, tl.fake_quantize(x, *qp, *tl.qrange(bits))))
    per_bit = np.diff(db) / 2
    assert np.all(np.abs(per_bit - 6.02) < 0.1)


def test_sqnr_edge_cases():
    assert metrics.sqnr_db([1.0, 2.0], [1.0, 2.0]) == math.inf
    with pytest.raises(ValueError, match="all zeros"):
        metrics.sqnr_db([0.0, 0.0], [0.1, 0.0])


def test_mse_and_max():
    assert metrics.mse([0.0, 0.0], [3.0, 4.0]) == 12.5
    assert metrics.max_abs_error([0.0, 0.0], [3.0, -4.0]) == 4.0


@pytest.mark.parametrize("fn", [metrics.mse, metrics.sqnr_db, metrics.max_abs_error])
def test_shape_mismatch_and_nan(fn):
    with pytest.raises(ValueError, match="same shape"):
        fn([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, np.nan], [1.0, 2.0])


def test_size_bytes():
    assert metrics.size_bytes(3, 4) == 2
    assert metrics.size_bytes(3, "int2") == 1
    with pytest.raises(ValueError, match="unknown format"):
        metrics.size_bytes(3, "int3")
    with pytest.raises(ValueError, match="positive"):
        metrics.size_bytes(3, 0)


def test_quantization_error_report():
    x = np.random.default_rng(1).normal(0, 1, 10_000).astype(np.float32)
    reports = [metrics.quantization_error(x, bits) for bits in (2, 4, 8)]
    assert [r.bits for r in reports] == [2, 4, 8]
    assert reports[0].mse > reports[1].mse > reports[2].mse
    assert all(r.clipped == 0 for r in reports)  # min-max range clips nothing
    assert reports[2].max_abs_error <= reports[2].scale / 2 * 1.0001
    clipped = metrics.quantization_error(x, 8, symmetric=True, clip=(-1.0, 1.0))
    assert abs(clipped.clipped - np.mean(np.abs(x) > 1.0)) < 0.005  # ends are +-S/2 off 1.0
    assert clipped.zero_point == 0
    with pytest.raises(ValueError, match="bits"):
        metrics.quantization_error(x, 1)
