"""Significance tests: McNemar and the subject-level bootstrap."""

import numpy as np
import pytest
from scipy.stats import binomtest

from facediag.metrics import (bootstrap_ci, bootstrap_eer, bootstrap_mean, bootstrap_rank1,
                              bootstrap_tar_at_far, mcnemar_exact, paired_bootstrap_delta,
                              paired_bootstrap_rank1, verification_metrics)


def test_mcnemar_known_table_matches_scipy():
    # A right/B wrong: 3; A wrong/B right: 12; concordant: 85
    a = np.r_[np.ones(3), np.zeros(12), np.ones(50), np.zeros(35)].astype(bool)
    b = np.r_[np.zeros(3), np.ones(12), np.ones(50), np.zeros(35)].astype(bool)
    r = mcnemar_exact(a, b)
    assert (r["b01"], r["b10"], r["statistic"], r["n"]) == (12, 3, 3, 100)
    assert r["p_value"] == pytest.approx(binomtest(12, 15, 0.5).pvalue)
    assert r["p_value"] == pytest.approx(0.03515625)      # 2 * P(X <= 3), X ~ Bin(15, 1/2)


def test_mcnemar_without_discordant_pairs_is_one():
    same = np.array([True, False, True])
    assert mcnemar_exact(same, same)["p_value"] == 1.0


def _pairs(seed=0, n_subjects=40, per_subject=7):
    # probe x template layout like ORL: every probe has one genuine and S-1 impostor pairs
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_subjects), per_subject).astype(str)
    g = rng.normal(0.6, 0.15, len(subjects))
    i = rng.normal(0.1, 0.15, (len(subjects), n_subjects - 1))
    return g, i.ravel(), subjects, np.repeat(subjects, n_subjects - 1)


def test_vectorised_mean_equals_generic_bootstrap():
    rng = np.random.default_rng(1)
    values = rng.random(300)
    groups = rng.integers(0, 30, 300)
    fast = bootstrap_mean(values, groups, n_boot=200, seed=4)
    slow = bootstrap_ci(lambda idx: values[idx].mean(), groups, n_boot=200, seed=4)
    np.testing.assert_allclose(fast, slow)
    assert fast.low <= fast.point <= fast.high
    assert set(fast.as_dict()) == {"point", "low", "high"}


def test_bootstrap_rank1_interval_shrinks_with_more_subjects():
    rng = np.random.default_rng(2)
    small = bootstrap_rank1(rng.random(70) < 0.8, np.repeat(np.arange(10), 7))
    large = bootstrap_rank1(rng.random(2800) < 0.8, np.repeat(np.arange(400), 7))
    assert small.high - small.low > large.high - large.low > 0


def test_bootstrap_tar_and_eer_points_match_verification_metrics():
    g, i, gs, is_ = _pairs()
    v = verification_metrics(g, i, fars=(1e-2,))
    tar = bootstrap_tar_at_far(g, i, gs, is_, 1e-2, n_boot=200)
    eer = bootstrap_eer(g, i, gs, is_, n_boot=200)
    assert tar.point == pytest.approx(v.tar_at_far[0].tar)
    assert eer.point == pytest.approx(v.eer)
    assert tar.low <= tar.point <= tar.high and eer.low <= eer.point <= eer.high
    assert bootstrap_tar_at_far(g, i, gs, is_, 1e-4) is None     # 10,920 impostors: unsupported


def test_verification_stats_share_the_draws_of_the_single_metric_intervals():
    from facediag.metrics import bootstrap_verification_stats

    g, i, gs, is_ = _pairs()
    stats = bootstrap_verification_stats(g, i, gs, is_, fars=(1e-2, 1e-4), n_boot=200, seed=5)
    assert set(stats) == {"eer", "tar_at_far_0.01"}  # 1e-4 unsupported by 10,920 impostors
    tar = bootstrap_tar_at_far(g, i, gs, is_, 1e-2, n_boot=200, seed=5)
    eer = bootstrap_eer(g, i, gs, is_, n_boot=200, seed=5)
    assert stats["tar_at_far_0.01"][0] == tar.point and stats["eer"][0] == eer.point
    assert np.quantile(stats["eer"][1:], 0.025) == pytest.approx(eer.low)
    assert len(stats["eer"]) == 201


def test_weighted_bootstrap_equals_recomputing_on_resampled_rows():
    g, i, gs, is_ = _pairs(seed=3, n_subjects=15, per_subject=5)
    scores, is_gen, groups = np.r_[g, i], np.r_[np.ones(len(g), bool), np.zeros(len(i), bool)], np.r_[gs, is_]

    def metric(idx, which):
        v = verification_metrics(scores[idx][is_gen[idx]], scores[idx][~is_gen[idx]],
                                 fars=(0.1,), min_false_accepts=1)
        return v.tar_at_far[0].tar if which == "tar" else v.eer

    slow_tar = bootstrap_ci(lambda idx: metric(idx, "tar"), groups, n_boot=30, seed=7)
    slow_eer = bootstrap_ci(lambda idx: metric(idx, "eer"), groups, n_boot=30, seed=7)
    np.testing.assert_allclose(bootstrap_tar_at_far(g, i, gs, is_, 0.1, n_boot=30, seed=7),
                               slow_tar)
    np.testing.assert_allclose(bootstrap_eer(g, i, gs, is_, n_boot=30, seed=7), slow_eer)


def test_paired_rank1_verdicts():
    rng = np.random.default_rng(5)
    subjects = np.repeat(np.arange(50), 6)
    a = rng.random(300) < 0.6
    b = a | (rng.random(300) < 0.5)          # B fixes about half of A's errors, breaks none
    better = paired_bootstrap_rank1(a, b, subjects)
    assert better.verdict == "better" and better.low > 0
    assert better.delta == pytest.approx(b.mean() - a.mean())
    assert paired_bootstrap_rank1(b, a, subjects).verdict == "worse"
    same = paired_bootstrap_rank1(a, a, subjects)
    assert same.verdict == "no significant change" and same.delta == 0.0
    assert same.as_dict()["significant"] is False


def test_paired_generic_delta_lower_is_better():
    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(40), 5)
    err_a, err_b = rng.random(200) * 0.5 + 0.3, rng.random(200) * 0.5
    r = paired_bootstrap_delta(lambda idx: err_a[idx].mean(), lambda idx: err_b[idx].mean(),
                               groups, n_boot=300, higher_is_better=False)
    assert r.delta < 0 and r.verdict == "better"


# --- the AUC gain of one input convention over another, on the same pairs -----------------------

def _sample_pairs(seed=0, subjects=12, per_subject=3):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(subjects), per_subject)
    iu = np.triu_indices(len(labels), k=1)
    return rng, labels[iu[0]], labels[iu[1]], labels[iu[0]] == labels[iu[1]]


def test_weighted_auc_equals_sklearn_with_sample_weights_and_ties():
    from sklearn.metrics import roc_auc_score

    from facediag.metrics.significance import _weighted_auc

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 400).astype(float)  # many ties
    same = rng.random(400) < 0.25
    weights = rng.integers(0, 4, (5, 400)).astype(float)
    expected = [roc_auc_score(same, scores, sample_weight=w) for w in weights]
    assert _weighted_auc(scores, same, weights) == pytest.approx(expected, abs=1e-12)


def test_auc_gain_point_is_the_difference_and_identical_inputs_give_a_zero_interval():
    from sklearn.metrics import roc_auc_score

    from facediag.metrics.significance import paired_auc_gain

    rng, si, sj, same = _sample_pairs()
    a = rng.normal(size=same.size) + same
    b = a + rng.normal(0, 0.3, same.size)
    gain = paired_auc_gain(a, b, same, si, sj)
    assert gain.point == pytest.approx(roc_auc_score(same, b) - roc_auc_score(same, a))
    assert gain.low <= gain.point <= gain.high
    assert paired_auc_gain(a, a, same, si, sj) == (0.0, 0.0, 0.0)


def test_auc_gain_lower_bound_separates_a_real_gain_from_noise():
    from facediag.metrics.significance import paired_auc_gain

    rng, si, sj, same = _sample_pairs(seed=1)
    a = rng.normal(size=same.size) + 0.5 * same
    better = a + 1.5 * same  # the same noise, much more separation
    noisy = a + rng.normal(0, 0.5, same.size)  # no more separation, other noise
    assert paired_auc_gain(a, better, same, si, sj).low > 0
    assert paired_auc_gain(a, noisy, same, si, sj).low < 0 < paired_auc_gain(a, noisy, same, si, sj).high


def test_auc_gain_resamples_whole_subjects():
    from facediag.metrics.significance import paired_auc_gain

    rng, si, sj, same = _sample_pairs(seed=2)
    a = rng.normal(size=same.size) + same
    b = a.copy()
    b[(si == 0) & same] += 5.0  # only subject 0 gains: its genuine pairs rise far above the rest
    gain = paired_auc_gain(a, b, same, si, sj, seed=3)
    assert paired_auc_gain(a, b, same, si, sj, seed=3) == gain  # seeded
    # A third of the draws ((11/12)^12) leave subject 0 out and gain nothing: the interval reaches
    # down to 0. Drawing pairs instead would rarely leave out all three of its genuine pairs.
    assert gain.point > 0 and gain.low == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError):
        paired_auc_gain(a, b, np.ones_like(same), si, sj)
