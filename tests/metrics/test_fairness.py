"""Demographic differentials: the summaries against hand computations, the chunked group pass and the
per-group rates against an all-pairs numpy computation, the bootstrap's pairing. No model needed."""
import numpy as np
import pytest

from facediag.data.groups import GroupAssignment
from facediag.metrics import fairness
from facediag.metrics.identification import l2_normalize
from facediag.protocols.demographics import Settings, attribute_counts, demographic_section, differential_tests
from facediag.protocols.gallery import build_evaluation
from facediag.protocols.group_scores import HIST_BINS, group_pass

# A hand-made score set: three groups, threshold 0.5 (accept score >= 0.5).
TAU = 0.5
HAND = {
    "a": {"genuine": [0.9, 0.8, 0.7, 0.6, 0.4], "impostor": [0.6, 0.3, 0.2, 0.1, 0.0, -0.1, 0.2, 0.1, 0.3, 0.4]},
    "b": {"genuine": [0.9, 0.45, 0.7, 0.8, 0.6], "impostor": [0.55, 0.5, 0.1, 0.2, 0.0, 0.3, 0.2, 0.1, 0.3, 0.4]},
    "c": {"genuine": [0.2, 0.3, 0.9, 0.4, 0.8], "impostor": [0.9, 0.6, 0.7, 0.5, 0.0, 0.3, 0.2, 0.1, 0.3, 0.4]},
}
# By hand: FMR = 1/10, 2/10, 4/10; FNMR = 1/5, 1/5, 3/5.
# FDR(α = 0.5) = 1 − (0.5·(0.4 − 0.1) + 0.5·(0.6 − 0.2)) = 1 − 0.35 = 0.65.
# Gini(FMR) = 3/2 · 2·(0.1 + 0.3 + 0.2) / (2·9·(0.7/3)) = 3/7; Gini(FNMR) = 3/2 · 2·(0 + 0.4 + 0.4) / (2·9·(1/3)) = 0.4;
# GARBE = 0.5·3/7 + 0.5·0.4 = 0.4142857...
# max/geomean(FMR) = 0.4 / (0.1·0.2·0.4)^(1/3) = 0.4 / 0.2 = 2; max/geomean(FNMR) = 0.6 / 0.024^(1/3);
# max/min: 4 and 3.


def _hand_rates():
    fmr = np.array([np.mean(np.array(HAND[g]["impostor"]) >= TAU) for g in "abc"])
    fnmr = np.array([np.mean(np.array(HAND[g]["genuine"]) < TAU) for g in "abc"])
    return fmr, fnmr


def test_summaries_of_a_hand_made_score_set_equal_the_hand_computation():
    fmr, fnmr = _hand_rates()
    np.testing.assert_allclose(fmr, [0.1, 0.2, 0.4])
    np.testing.assert_allclose(fnmr, [0.2, 0.2, 0.6])
    assert fairness.fdr(fmr, fnmr) == pytest.approx(0.65)
    assert fairness.gini(fmr) == pytest.approx(3 / 7)
    assert fairness.gini(fnmr) == pytest.approx(0.4)
    assert fairness.garbe(fmr, fnmr) == pytest.approx(0.5 * 3 / 7 + 0.5 * 0.4)
    assert fairness.max_geomean_ratio(fmr) == pytest.approx(2.0)
    assert fairness.max_geomean_ratio(fnmr) == pytest.approx(0.6 / 0.024 ** (1 / 3))
    assert fairness.max_min_ratio(fmr) == pytest.approx(4.0)
    assert fairness.max_min_ratio(fnmr) == pytest.approx(3.0)
    # the weight moves FDR and GARBE as its definition says
    assert fairness.fdr(fmr, fnmr, weight=1.0) == pytest.approx(0.7)
    assert fairness.garbe(fmr, fnmr, weight=0.0) == pytest.approx(0.4)


def test_no_differential_reads_as_none_and_one_group_holding_every_error_as_the_most():
    equal = np.array([0.1, 0.1, 0.1])
    assert fairness.fdr(equal, equal) == 1.0 and fairness.garbe(equal, equal) == 0.0
    assert fairness.max_geomean_ratio(equal) == pytest.approx(1.0)
    assert fairness.gini([0.0, 0.0, 0.0]) == 0.0          # no error anywhere: no inequality
    assert fairness.gini([0.0, 0.0, 1.0]) == pytest.approx(1.0)  # the n/(n − 1) correction reaches 1
    assert fairness.gini([0.0, 1.0]) == pytest.approx(1.0)
    assert np.isnan(fairness.gini([0.3]))                  # one group: nothing to compare
    # a group too small to support a rate (NaN) is left out, never read as 0
    assert fairness.max_min_ratio([0.1, np.nan, 0.4]) == pytest.approx(4.0)
    assert fairness.fdr([0.1, np.nan, 0.4], [0.2, np.nan, 0.2]) == pytest.approx(1 - 0.5 * 0.3)
    assert np.isnan(fairness.max_geomean_ratio([np.nan, 0.4]))
    # rows are resamples: summarised at once
    rows = np.array([[0.1, 0.2, 0.4], [0.1, 0.1, 0.1]])
    np.testing.assert_allclose(fairness.max_geomean_ratio(rows), [2.0, 1.0])
    np.testing.assert_allclose(fairness.gini(rows), [3 / 7, 0.0])


def test_a_group_without_errors_gets_its_clopper_pearson_bound():
    # one-sided 95 % bound with no error in n trials: 1 − 0.05^(1/n)
    assert fairness.clopper_pearson_upper(0, 10) == pytest.approx(1 - 0.05 ** 0.1)
    assert fairness.clopper_pearson_upper(0, 2660) == pytest.approx(1 - 0.05 ** (1 / 2660))
    # with errors: the beta quantile (binomial CDF at the bound is alpha)
    from scipy.stats import binom

    ub = float(fairness.clopper_pearson_upper(3, 50))
    assert binom.cdf(3, 50, ub) == pytest.approx(0.05, abs=1e-9)
    assert fairness.clopper_pearson_upper(5, 5) == 1.0 and np.isnan(fairness.clopper_pearson_upper(0, 0))
    floored = fairness.floored_rates([0, 2], [100, 100])
    assert floored[0] == pytest.approx(1 - 0.05 ** 0.01) and floored[1] == 0.02
    # so a ratio to a group without errors is finite, never inf
    assert np.isfinite(fairness.max_min_ratio(floored))


def test_stratified_draws_keep_each_group_and_row_zero_is_the_data():
    strata = np.array([0, 0, 0, 1, 1, -1])
    d = fairness.stratified_draws(strata, 200, seed=1)
    assert d.shape == (201, 6)
    np.testing.assert_array_equal(d[0], [1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(d[1:, :3].sum(1), 3)
    np.testing.assert_array_equal(d[1:, 3:5].sum(1), 2)
    assert (d[:, 5] == 0).all()
    np.testing.assert_array_equal(d, fairness.stratified_draws(strata, 200, seed=1))  # the same seed: paired


def test_det_from_a_histogram_matches_the_counts_at_bin_edges():
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(0.6, 0.1, 300), rng.normal(0.1, 0.1, 3000)
    counts = np.histogram(np.clip(impostor, -1, 1 - 1e-9), bins=HIST_BINS, range=(-1, 1))[0]
    det = fairness.det_from_histogram(genuine, counts, max_points=50)
    assert len(det["fmr"]) <= 50 and det["fmr"] == sorted(det["fmr"])
    assert det["fnmr"] == sorted(det["fnmr"], reverse=True)
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.r_[np.ones(300), np.zeros(3000)], np.r_[genuine, impostor])
    i = np.argmin(np.abs(fpr - (1 - tpr)))
    assert det["eer"] == pytest.approx(fpr[i], abs=0.01)


# ------------------------------------------------------------------------- the pass and the protocol
def _on_grid(x):
    """Unit vectors on a 2**-11 grid: every score exact in float32 in any order of summation."""
    return (np.round(l2_normalize(x) * 2048) / 2048).astype(np.float32)


def _setup(seed=0, n_subjects=24, per=5, dim=16, signal=1.0, worse=None):
    """A synthetic gallery/probe split: subjects s00.., groups g0/g1/g2 by subject; ``worse`` lowers one
    group's genuine scores (noisier probes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_subjects, dim))
    names = np.array([f"s{i:02d}" for i in range(n_subjects)])
    group_of = {n: f"g{i % 3}" for i, n in enumerate(names)}
    gallery = _on_grid(centres.repeat(2, 0) * signal + 0.3 * rng.normal(size=(2 * n_subjects, dim)))
    noise = np.ones(n_subjects)
    if worse is not None:
        noise[[i for i, n in enumerate(names) if group_of[n] == worse]] = 3.0
    probes = _on_grid(centres.repeat(per, 0) * signal + noise.repeat(per)[:, None] * rng.normal(size=(n_subjects * per,
                                                                                                     dim)))
    ev = build_evaluation(gallery, names.repeat(2), probes, names.repeat(per), thresholds=(0.3,))
    groups = ("g0", "g1", "g2")
    assignment = GroupAssignment(("band",), (groups,), (np.array([group_of[s] for s in names.repeat(per)], object),),
                                 ({n: group_of[n] for n in names},), ())
    return ev, assignment, group_of


def _brute(ev, group_of, t):
    """Per-group FMR (both sides in the group) and FNMR from the whole score matrix."""
    scores = ev.probe_emb.astype(np.float64) @ ev.templates.astype(np.float64).T
    pg = np.array([group_of[s] for s in ev.probe_subjects])
    tg = np.array([group_of[s] for s in ev.template_subjects])
    same = ev.probe_subjects[:, None] == ev.template_subjects[None, :]
    out = {}
    for g in ("g0", "g1", "g2"):
        within = (pg[:, None] == g) & (tg[None, :] == g) & ~same
        gen = scores[(pg[:, None] == g) & same]
        out[g] = ((scores[within] >= t).sum(), within.sum(), (gen < t).sum(), gen.size)
    matrix = {(a, b): ((scores[(pg[:, None] == a) & (tg[None, :] == b) & ~same] >= t).sum(),
                       ((pg[:, None] == a) & (tg[None, :] == b) & ~same).sum()) for a in "g0 g1 g2".split()
              for b in "g0 g1 g2".split()}
    return out, matrix


@pytest.mark.parametrize("chunk_cells", [7, 100, 1 << 20])
def test_group_pass_equals_the_all_pairs_counts(chunk_cells):
    rng = np.random.default_rng(3)
    templates, probes = _on_grid(rng.normal(size=(30, 8))), _on_grid(rng.normal(size=(70, 8)))
    own = rng.integers(-1, 30, 70)
    pcols = np.stack([rng.integers(-1, 3, 70), rng.integers(3, 5, 70)], 1)
    tcols = np.stack([rng.integers(-1, 3, 30), rng.integers(3, 5, 30)], 1)
    thresholds = (-0.1, 0.2, 0.5)
    out = group_pass(probes, templates, own, pcols, tcols, 5, thresholds, chunk_cells=chunk_cells)
    scores = probes.astype(np.float64) @ templates.astype(np.float64).T
    np.testing.assert_array_equal(out.genuine[own >= 0], scores[own >= 0, own[own >= 0]])
    assert np.isnan(out.genuine[own < 0]).all()
    for i, t in enumerate(thresholds):
        ge = scores >= t
        ge[np.arange(70)[own >= 0], own[own >= 0]] = False  # the genuine pair is no impostor
        for k in range(5):
            in_k = (tcols == k).any(1)
            np.testing.assert_array_equal(out.accepts[i, :, k], ge[:, in_k].sum(1))
    for k in range(5):  # within-group histograms hold exactly the within-group impostor pairs
        a = 0 if k < 3 else 1
        within = (pcols[:, a, None] == k) & (tcols[None, :, a] == k)
        within[np.arange(70)[own >= 0], own[own >= 0]] = False
        expected = np.histogram(scores[within], bins=HIST_BINS, range=(-1, 1))[0]
        np.testing.assert_array_equal(out.histograms[k], expected)


def test_per_group_rates_and_matrix_equal_the_all_pairs_computation():
    ev, assignment, group_of = _setup()
    thresholds = (0.2, 0.35)
    (c,) = attribute_counts(ev, assignment, thresholds)
    for i, t in enumerate(thresholds):
        brute, matrix = _brute(ev, group_of, t)
        for j, g in enumerate(c.groups):
            fa, imp, fr, gen = brute[g]
            counted = (c.fa[i, :, j].sum(), c.imp[:, j].sum(), c.fr[i, :, j].sum(), c.gen[:, j].sum())
            assert counted == (fa, imp, fr, gen)
        for a, ga in enumerate(c.groups):
            for b, gb in enumerate(c.groups):
                assert (c.matrix_fa[i, a, b], c.matrix_imp[a, b]) == matrix[ga, gb]
    labels = [{"label": "t", "threshold": 0.35, "set": "evaluation", "criterion": "test"}]
    section = demographic_section(ev, assignment, labels, Settings(n_boot=200, min_subjects=3, min_pairs=10), "t")
    (a,) = section["attributes"]
    at = a["at"][0]
    brute, _ = _brute(ev, group_of, 0.35)
    fnmr = np.array([brute[g][2] / brute[g][3] for g in ("g0", "g1", "g2")])
    fmr = np.array([brute[g][0] / brute[g][1] for g in ("g0", "g1", "g2")])
    for j, g in enumerate(("g0", "g1", "g2")):
        assert at["fnmr"][g]["rate"] == pytest.approx(fnmr[j]) and at["fmr"][g]["rate"] == pytest.approx(fmr[j])
    assert at["summary"]["fdr"] == pytest.approx(float(fairness.fdr(fmr, fnmr)))
    assert at["summary"]["garbe"] == pytest.approx(float(fairness.garbe(fmr, fnmr)))
    low, high = at["summary"]["fdr_ci"]
    assert low <= high


def test_a_group_too_small_is_said_so_not_reported_as_zero():
    ev, assignment, _ = _setup()
    labels = [{"label": "t", "threshold": 0.35, "set": "evaluation", "criterion": "test"}]
    section = demographic_section(ev, assignment, labels, Settings(n_boot=50, min_subjects=9), "t")
    (a,) = section["attributes"]
    assert not any(g["fnmr_supported"] for g in a["groups"])  # 8 subjects per group, 9 asked
    assert all(v["rate"] is None for v in a["at"][0]["fnmr"].values())
    assert a["at"][0]["summary"]["fdr"] is None
    assert any("too small to support a rate" in n for n in section["notes"])


def test_a_planted_differential_is_significant_and_a_clean_split_is_not():
    labels = [{"label": "t", "threshold": 0.35, "set": "evaluation", "criterion": "test"}]
    settings = Settings(n_boot=400, min_subjects=3, min_pairs=10)
    ev, assignment, _ = _setup(worse="g1", n_subjects=30)
    s = demographic_section(ev, assignment, labels, settings, "t")["attributes"][0]["at"][0]["summary"]
    assert s["fnmr_worst"]["group"] == "g1" and s["fnmr_worst"]["significant"]
    ev, assignment, _ = _setup(n_subjects=30)
    s = demographic_section(ev, assignment, labels, settings, "t")["attributes"][0]["at"][0]["summary"]
    assert not s["fnmr_worst"]["significant"]


def test_the_paired_difference_says_a_differential_grew():
    ev_a, assignment, _ = _setup(n_subjects=30)
    ev_b, _, _ = _setup(n_subjects=30, worse="g1")  # the same subjects and probes, g1's probes degraded
    settings = Settings(n_boot=400, min_subjects=3, min_pairs=10)
    tests = differential_tests(ev_a, ev_b, assignment, 0.35, 0.35, settings)
    fdr, ratio = tests["demographic.fdr"], tests["demographic.fnmr_max_geomean"]
    assert fdr.delta.high < 0 and fdr.b.point < fdr.a.point  # FDR fell: the differential grew
    assert ratio.delta.low > 0
    same = differential_tests(ev_a, ev_a, assignment, 0.35, 0.35, settings)
    assert all(t.delta.point == 0 and t.delta.low == 0 == t.delta.high for t in same.values())
