"""Distribution statistics against known answers."""
import numpy as np
import pytest

from facediag.metrics import (dead_dimensions, dprime, effective_rank, l2_normalize, linear_cka,
                              mean_pairwise_cosine, norm_stats, score_summary)


def test_dprime_known_value_and_degenerate_cases():
    assert dprime([1.0, 3.0], [0.0, 2.0]) == pytest.approx(1.0)    # diff 1, both variances 1
    assert dprime([1.0, 1.0], [1.0, 1.0]) == 0.0                   # collapsed: no separation
    assert dprime([1.0, 1.0], [0.0, 0.0]) == float("inf")


def test_score_summary_fields():
    s = score_summary(np.r_[np.arange(101.0), np.nan])
    assert s["n"] == 101 and s["n_nonfinite"] == 1
    assert (s["min"], s["max"], s["mean"], s["p50"], s["p5"]) == (0, 100, 50, 50, 5)


def test_effective_rank_of_rank3_and_collapsed_matrices():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(200, 3)))
    v, _ = np.linalg.qr(rng.normal(size=(64, 3)))
    assert effective_rank(u @ v.T) == pytest.approx(3.0)             # equal singular values
    assert 1.0 < effective_rank(rng.normal(size=(200, 3)) @ rng.normal(size=(3, 64))) <= 3.0
    collapsed = np.tile(l2_normalize(rng.normal(size=64)), (100, 1))
    assert effective_rank(collapsed) == pytest.approx(1.0)


def test_dead_dimensions_relative_to_spread():
    rng = np.random.default_rng(1)
    raw = 5 * rng.normal(size=(500, 32))
    raw[:, [3, 7, 11]] = 2.0 + 1e-9 * rng.normal(size=(500, 3))
    raw[0] = np.nan                                                # ignored, not a crash
    d = dead_dimensions(raw)
    assert list(d.indices) == [3, 7, 11] and d.as_dict()["n_dead"] == 3
    assert dead_dimensions(np.ones((10, 4))).n_dead == 4


def test_mean_pairwise_cosine_matches_brute_force():
    rng = np.random.default_rng(2)
    x = l2_normalize(rng.normal(size=(60, 8)))
    subjects = rng.integers(0, 7, 60).astype(str)
    cos = x @ x.T
    different = subjects[:, None] != subjects[None, :]
    assert mean_pairwise_cosine(x, subjects) == pytest.approx(cos[different].mean())
    off_diag = ~np.eye(60, dtype=bool)
    assert mean_pairwise_cosine(x) == pytest.approx(cos[off_diag].mean())


def test_collapsed_embeddings_have_impostor_cosine_one():
    x = np.tile(l2_normalize(np.arange(1.0, 9.0)), (30, 1))
    assert mean_pairwise_cosine(x, np.repeat(list("abc"), 10)) == pytest.approx(1.0)


def test_norm_stats_counts_bad_rows():
    raw = np.array([[3.0, 4.0], [0.0, 0.0], [np.nan, 1.0], [np.inf, 0.0], [6.0, 8.0]])
    s = norm_stats(raw)
    assert (s["n"], s["n_nan_rows"], s["n_inf_rows"], s["n_zero_norm"]) == (5, 1, 1, 1)
    assert (s["norm_min"], s["norm_max"], s["norm_mean"]) == (0.0, 10.0, 5.0)


def test_linear_cka_rotation_scale_and_noise():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 32))
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(400, 32))) < 0.15
    wide = rng.normal(size=(50, 512))                              # exercises the Gram form
    assert linear_cka(wide, wide @ np.linalg.qr(rng.normal(size=(512, 512)))[0]) == pytest.approx(1.0)
    assert linear_cka(x, np.ones((400, 5))) == 0.0
