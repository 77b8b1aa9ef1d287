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


# --- what a test set can resolve: against scipy's implementations ----------------------------------

@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (350, 360), (359, 360), (360, 360),
                                      (180, 360)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_accuracy_interval_is_wilsons_as_scipy_computes_it(k, n, confidence):
    from scipy.stats import binomtest

    r = metrics.accuracy_interval(np.arange(n) < k, confidence=confidence)
    ref = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert (r.correct, r.n) == (k, n)
    assert r.low == pytest.approx(ref.low, abs=1e-9) and r.high == pytest.approx(ref.high, abs=1e-9)
    assert 0 <= r.low <= r.accuracy <= r.high <= 1


@pytest.mark.parametrize("seed", range(6))
def test_mcnemar_is_the_exact_binomial_test_on_the_disagreements(seed):
    from scipy.stats import binomtest

    rng = np.random.default_rng(seed)
    a, b = rng.random(360) < 0.95, rng.random(360) < 0.9 + 0.01 * seed
    r = metrics.mcnemar(a, b)
    assert (r.only_a, r.only_b) == (int(np.sum(a & ~b)), int(np.sum(~a & b)))
    assert r.p_value == pytest.approx(binomtest(r.only_a, r.only_a + r.only_b, 0.5).pvalue)
    assert r.difference == pytest.approx(a.mean() - b.mean())


def test_one_image_apart_is_never_significant_and_identical_models_give_p_1():
    a = np.ones(360, dtype=bool)
    b = a.copy()
    b[0] = False
    assert metrics.mcnemar(a, b).p_value == 1.0 and not metrics.mcnemar(a, b).significant()
    assert metrics.mcnemar(a, a) == metrics.Paired(0, 0, 1.0, 360)
    b[:8] = False  # 8 images apart, all one way: p = 2 / 2**8
    assert metrics.mcnemar(a, b).p_value == pytest.approx(2 / 256)
    assert metrics.mcnemar(a, b).significant()
    assert "a real difference" in metrics.mcnemar(a, b).verdict("fp32", "int8")


def test_compare_accuracy_prints_both_intervals_and_the_verdict(capsys):
    labels = np.arange(360) % 10
    pred_a, pred_b = labels.copy(), labels.copy()
    pred_b[:3] = (pred_b[:3] + 1) % 10
    r = metrics.compare_accuracy(pred_a, pred_b, labels, names=("float", "int8"))
    out = capsys.readouterr().out
    assert "float: 100.0%" in out and "int8: 99.2%" in out and "too close" in out
    assert (r.only_a, r.only_b) == (3, 0)


@pytest.mark.parametrize("bad", [np.array([1, 0, 1]), np.array([]), np.ones((2, 2), bool),
                                 np.array(["yes"])])
def test_statistics_reject_what_is_not_one_boolean_per_image(bad):
    with pytest.raises(ValueError, match="boolean"):
        metrics.accuracy_interval(bad)
    with pytest.raises(ValueError, match="boolean"):
        metrics.mcnemar(bad, bad)


def test_mcnemar_needs_the_same_images():
    with pytest.raises(ValueError, match="same images"):
        metrics.mcnemar(np.ones(5, bool), np.ones(6, bool))
