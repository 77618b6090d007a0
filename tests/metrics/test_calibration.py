"""Score calibration: known answers (separable scores, constant scores, a reliability worked by
hand), weights standing for sampled impostors, and a raw cosine that is no probability."""
import numpy as np
import pytest

from facediag.metrics.calibration import (cosine_as_probability, fit_calibration, labelled, reliability)


def test_reliability_by_hand():
    # bin [0, 0.1): p 0.05 twice, one genuine -> |0.5 - 0.05| * 2/4; bin [0.9, 1]: p 0.95 twice, both genuine
    r = reliability([0.05, 0.05, 0.95, 0.95], [0, 1, 1, 1])
    assert r.ece == pytest.approx(0.45 * 0.5 + 0.05 * 0.5)
    assert r.brier == pytest.approx((0.05 ** 2 + 0.95 ** 2 + 0.05 ** 2 + 0.05 ** 2) / 4)
    assert r.bin_weight[0] == 2 and r.bin_weight[9] == 2 and r.bin_observed[0] == 0.5 and r.bin_predicted[5] is None
    # p = 1.0 falls in the last bin, weights count as comparisons
    w = reliability([1.0, 0.0], [1, 0], weights=[3, 1])
    assert w.ece == 0 and w.brier == 0 and w.bin_weight[9] == 3
    assert "10 equal-width bins" in r.as_dict()["binning"]
    with pytest.raises(ValueError):
        reliability([1.2], [1])


@pytest.mark.parametrize("method", ["isotonic", "logistic"])
def test_perfectly_separable_scores_calibrate_to_certainty(method):
    g, i = np.array([0.6, 0.7, 0.8, 0.9]), np.array([-0.1, 0.0, 0.1, 0.2, 0.3])
    cal = fit_calibration(g, i, method)
    p = cal.probability(np.r_[g, i])
    y = np.r_[np.ones(4), np.zeros(5)]
    r = reliability(p, y)
    if method == "isotonic":  # a step: exactly 1 above, 0 below
        assert p.tolist() == [1.0] * 4 + [0.0] * 5 and r.ece == 0 and r.brier == 0
    else:  # a steep but finite logistic
        assert r.brier < 0.01 and (p[:4] > 0.8).all() and (p[4:] < 0.2).all()
        assert cal.as_dict()["slope"] > 10
    assert cal.prior == pytest.approx(4 / 9)


@pytest.mark.parametrize("method", ["isotonic", "logistic"])
def test_constant_scores_calibrate_to_the_prior(method):
    cal = fit_calibration(np.full(3, 0.5), np.full(7, 0.5), method)
    # at the one score seen: the share of genuine comparisons (elsewhere a logistic extrapolates)
    assert cal.probability([0.5]) == pytest.approx([0.3], abs=1e-4)
    if method == "isotonic":
        assert cal.probability([0.2, 0.9]) == pytest.approx([0.3, 0.3])
    # on the same comparisons: perfectly calibrated (ECE 0), Brier = prior * (1 - prior)
    r = reliability(cal.probability(np.full(10, 0.5)), np.r_[np.ones(3), np.zeros(7)])
    assert r.ece == pytest.approx(0, abs=1e-4) and r.brier == pytest.approx(0.21, abs=1e-4)


def test_sampled_impostors_are_weighted_to_the_full_sets_prior():
    rng = np.random.default_rng(1)
    g, i = rng.normal(0.6, 0.1, 500), rng.normal(0.1, 0.1, 5000)
    full = fit_calibration(g, i, "logistic")
    sampled = fit_calibration(g, i[::10], "logistic", impostor_weight=10)
    unweighted = fit_calibration(g, i[::10], "logistic")
    assert sampled.prior == pytest.approx(full.prior, rel=1e-9) and full.prior == pytest.approx(500 / 5500)
    grid = np.linspace(0.2, 0.5, 7)
    assert np.abs(sampled.probability(grid) - full.probability(grid)).max() < 0.05
    # without the weights the sample's prior (1/2) would inflate every probability
    assert (unweighted.probability(grid) - full.probability(grid)).max() > 0.2
    # thinned to evenly spaced quantiles, each standing for the ones it replaces
    s, y, w = labelled(g, i, impostor_weight=2, limit=1000)
    assert len(s) == 1500 and w[y == 0].sum() == pytest.approx(2 * 5000) and (w[y == 1] == 1).all()


def test_a_cosine_is_not_a_probability_and_calibration_fixes_it():
    rng = np.random.default_rng(2)
    dev_g, dev_i = rng.normal(0.55, 0.12, 400), rng.normal(0.05, 0.08, 8000)
    ev_g, ev_i = rng.normal(0.55, 0.12, 400), rng.normal(0.05, 0.08, 8000)
    y = np.r_[np.ones(400), np.zeros(8000)]
    raw = reliability(cosine_as_probability(np.r_[ev_g, ev_i]), y)
    for method in ("isotonic", "logistic"):
        cal = fit_calibration(dev_g, dev_i, method)
        fitted = reliability(cal.probability(np.r_[ev_g, ev_i]), y)
        assert fitted.ece < 0.02 < raw.ece, (method, fitted.ece, raw.ece)
        assert fitted.brier < raw.brier
    with pytest.raises(ValueError, match="unknown calibration"):
        fit_calibration(dev_g, dev_i, "platt")
    with pytest.raises(ValueError, match="NaN"):
        fit_calibration([np.nan], dev_i)
