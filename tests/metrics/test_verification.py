"""Verification metrics against known answers."""
import numpy as np
import pytest
from scipy.stats import norm

from facediag.metrics import genuine_impostor_scores, kfold_pair_accuracy, verification_metrics


def test_genuine_impostor_split_counts_and_subjects():
    probes = np.eye(3)
    templates = np.eye(3)[:2]
    g, i, gs, is_ = genuine_impostor_scores(probes, ["a", "b", "x"], templates, ["a", "b"],
                                            with_subjects=True)
    np.testing.assert_array_equal(g, [1.0, 1.0])
    assert len(i) == 4 and np.all(i == 0)               # (a,b), (b,a), (x,a), (x,b)
    assert list(gs) == ["a", "b"] and list(is_) == ["a", "b", "x", "x"]


def test_perfectly_separated_scores():
    r = verification_metrics(np.linspace(0.6, 1, 500), np.linspace(-0.5, 0.4, 5000), fars=(1e-2,))
    assert r.auc == 1.0 and r.eer == 0.0
    assert r.tar_at_far[0].tar == 1.0
    assert 0.4 < r.eer_threshold <= 0.6


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(0)
    r = verification_metrics(rng.normal(size=20000), rng.normal(size=20000))
    assert r.auc == pytest.approx(0.5, abs=0.01)
    assert r.eer == pytest.approx(0.5, abs=0.01)


def test_gaussian_scores_match_closed_form():
    rng = np.random.default_rng(1)
    r = verification_metrics(rng.normal(1, 1, 40000), rng.normal(0, 1, 40000), fars=(0.1,))
    assert r.auc == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.005)
    assert r.eer == pytest.approx(norm.cdf(-0.5), abs=0.005)
    # threshold at FAR 0.1 is the 90th impostor percentile; TAR = P(N(1,1) >= it)
    assert r.tar_at_far[0].tar == pytest.approx(norm.sf(norm.ppf(0.9) - 1), abs=0.01)


def test_tar_at_far_matches_brute_force_threshold_search():
    rng = np.random.default_rng(2)
    g, i = rng.normal(1, 1, 300).round(2), rng.normal(0, 1, 3000).round(2)   # with ties
    p = verification_metrics(g, i, fars=(0.01,)).tar_at_far[0]
    candidates = np.unique(np.r_[g, i, np.inf])
    fars = (i[None, :] >= candidates[:, None]).mean(axis=1)
    best = candidates[fars <= 0.01].min()
    assert p.tar == (g >= best).mean()
    assert p.achieved_far == (i >= best).mean() <= 0.01


def test_unsupported_far_is_refused_not_reported():
    rng = np.random.default_rng(3)
    r = verification_metrics(rng.normal(1, 1, 100), rng.normal(0, 1, 1000))
    by_far = {p.far: p for p in r.tar_at_far}
    assert by_far[1e-2].supported and by_far[1e-2].tar is not None
    for far in (1e-3, 1e-4):
        assert not by_far[far].supported and by_far[far].tar is None
        assert by_far[far].n_impostor == 1000 and by_far[far].n_genuine == 100
    d = r.as_dict()
    assert d["tar_at_far_0.0001_supported"] is False and "tar_at_far_0.0001" not in d
    assert all(v is None or isinstance(v, (int, float)) for v in d.values())
    assert all(type(v) in (int, float, bool) for v in d.values())


def test_roc_and_det_are_downsampled_and_consistent():
    rng = np.random.default_rng(4)
    r = verification_metrics(rng.normal(1, 1, 5000), rng.normal(0, 1, 50000))
    assert len(r.roc_fpr) <= 2000
    assert np.all(np.diff(r.roc_fpr) >= 0) and np.all(np.diff(r.roc_tpr) >= 0)
    assert r.roc_fpr[0] == 0 and r.roc_fpr[-1] == 1
    np.testing.assert_allclose(r.det_fnr, 1 - r.roc_tpr)
    assert (r.roc_fpr[r.roc_fpr > 0] < 1e-3).sum() >= 20    # low-FAR end keeps detail


def test_kfold_separated_and_reports_std_and_sem():
    r = kfold_pair_accuracy(np.linspace(0.6, 1, 100), np.linspace(-1, 0.5, 1000))
    assert r.mean == 1.0 and r.std == 0.0 and r.sem == 0.0
    assert r.n_genuine == r.n_impostor == 100          # balanced like LFW's 50/50 lists
    assert 0.5 <= r.fold_thresholds.min() and r.fold_thresholds.max() <= 0.6


def test_kfold_overlapping_matches_bayes_accuracy():
    rng = np.random.default_rng(5)
    r = kfold_pair_accuracy(rng.normal(1, 1, 3000), rng.normal(0, 1, 3000))
    assert r.mean == pytest.approx(norm.cdf(0.5), abs=0.02)
    assert r.sem == pytest.approx(r.std / np.sqrt(10))
    assert r.std == pytest.approx(np.std(r.fold_accuracies, ddof=1))
    assert {"accuracy_mean", "accuracy_std", "accuracy_sem"} <= set(r.as_dict())
