"""Identification metrics against hand-computed answers."""
import numpy as np
import pytest

from facediag.metrics import (build_templates, closed_set, l2_normalize, open_set,
                              similarity_matrix, threshold_accuracy, threshold_for_far)


def _clustered(n_subjects=20, per_subject=6, dim=32, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(n_subjects, dim)))
    labels = np.repeat(np.arange(n_subjects), per_subject)
    emb = l2_normalize(centres[labels] + noise * rng.normal(size=(len(labels), dim)))
    return emb.astype(np.float32), np.array([f"id{i:03d}" for i in labels])


def test_l2_normalize_unit_rows_and_zero_row_stays_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = l2_normalize(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_templates_are_renormalised_means_in_sorted_order_and_order_independent():
    emb, subj = _clustered()
    names, templates = build_templates(emb, subj)
    assert list(names) == sorted(set(subj))
    for name, t in zip(names, templates):
        mean = emb[subj == name].mean(axis=0)
        np.testing.assert_allclose(t, mean / np.linalg.norm(mean), atol=1e-6)
    perm = np.random.default_rng(1).permutation(len(emb))
    names2, templates2 = build_templates(emb[perm], subj[perm])
    assert list(names2) == list(names)
    np.testing.assert_allclose(templates2, templates, atol=1e-6)


def test_closed_set_hand_computed_ranks_and_cmc():
    tsub = np.array(["a", "b", "c"])
    scores = np.array([[0.9, 0.1, 0.2],    # a: rank 1
                       [0.5, 0.4, 0.1],    # b: rank 2
                       [0.6, 0.7, 0.3],    # c: rank 3
                       [0.9, 0.9, 0.9]])   # x: not in gallery -> left out
    r = closed_set(scores, ["a", "b", "c", "x"], tsub, ranks=(1, 2, 10))
    assert r.n_probes_used == 3 and r.n_probes_total == 4 and r.n_gallery == 3
    assert list(r.ranks) == [1, 2, 3]
    np.testing.assert_allclose(r.cmc, [1 / 3, 2 / 3, 1.0])
    assert r.rank_accuracy == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 10: 1.0}
    assert list(r.correct_rank1) == [True, False, False]
    assert list(r.probe_index) == [0, 1, 2]
    assert r.as_dict()["rank1"] == pytest.approx(1 / 3)
    assert [w[0] for w in r.worst_subjects] == ["b", "c"]


def test_planted_rank_error_moves_rank1_by_exactly_one_over_n():
    emb, subj = _clustered(noise=0.05)
    gallery = np.tile(np.arange(6) < 2, 20)
    names, templates = build_templates(emb[gallery], subj[gallery])
    scores = similarity_matrix(emb[~gallery], templates)
    probes = subj[~gallery]
    base = closed_set(scores, probes, names)
    assert base.rank_accuracy[1] == 1.0
    planted = scores.copy()
    own = np.flatnonzero(names == probes[7])[0]
    planted[7, (own + 1) % len(names)] = planted[7, own] + 0.1
    hurt = closed_set(planted, probes, names)
    assert base.rank_accuracy[1] - hurt.rank_accuracy[1] == pytest.approx(1 / len(probes))
    assert hurt.ranks[7] == 2 and hurt.worst_subjects[0][0] == probes[7]


def test_ties_count_against_the_probe_so_collapse_cannot_look_perfect():
    scores = np.ones((4, 4))
    r = closed_set(scores, list("abcd"), list("abcd"))
    assert r.rank_accuracy[1] == 0.0
    assert r.cmc[-1] == 1.0


def test_threshold_accuracy_counts():
    tsub = ["a", "b"]
    scores = np.array([[0.5, 0.1],    # a: correct, accepted
                       [0.3, 0.2],    # b: wrong top-1 (a), own 0.2 < 0.35
                       [0.4, 0.36]])  # z: non-mated; both are impostor pairs >= 0.35
    r = threshold_accuracy(scores, ["a", "b", "z"], tsub, threshold=0.35)
    assert (r.n_genuine, r.n_correct_accepted, r.n_genuine_accepted) == (2, 1, 1)
    assert r.accuracy == 0.5 and r.genuine_accept_rate == 0.5
    # impostor pairs: (a,b)=0.1, (b,a)=0.3, (z,a)=0.4, (z,b)=0.36
    assert (r.n_impostor, r.n_false_accepts) == (4, 2)
    assert r.false_accept_rate == 0.5
    assert set(r.as_dict()) >= {"accuracy", "false_accept_rate", "n_impostor"}


def test_threshold_for_far_support_rule_and_exact_rate():
    imp = np.arange(1000) / 1000.0                    # 0.000 .. 0.999
    ok = threshold_for_far(imp, 1e-2)
    assert ok.supported and ok.n_false_accepts == 10 and ok.achieved_far == 0.01
    assert (imp >= ok.threshold).sum() == 10 and (imp >= 0.989).sum() == 11
    refused = threshold_for_far(imp, 1e-3)           # 1000 * 1e-3 = 1 expected false accept
    assert not refused.supported and refused.threshold is None
    assert "10000" in refused.reason
    assert "threshold" not in refused.as_dict()


def test_threshold_for_far_never_splits_ties():
    imp = np.r_[np.zeros(990), np.full(20, 0.9)]     # 20 tied at the top, 1010 in all
    t = threshold_for_far(imp, 1e-2)                 # floor(10.1) = 10 may pass; 20 tied cannot
    assert t.n_false_accepts == 0 and t.threshold > 0.9


def test_open_set_all_nonmated_above_threshold_reads_as_all_false_alarms():
    tsub = ["a", "b"]
    scores = np.array([[0.9, 0.1],   # a: found
                       [0.2, 0.3],   # b: correct top-1 but below 0.35: not detected
                       [0.8, 0.1],   # x non-mated, best 0.8 >= 0.35: false alarm
                       [0.1, 0.5]])  # y non-mated, best 0.5: false alarm
    r = open_set(scores, ["a", "b", "x", "y"], tsub, threshold=0.35)
    assert r.false_alarm_rate == 1.0 and r.correct_rejection_rate == 0.0
    assert r.dir == 0.5 and r.n_detected_identified == 1 and r.n_false_alarms == 2
    assert (r.n_mated, r.n_nonmated) == (2, 2)
    i = np.argmin(abs(r.curve_thresholds - 0.85))
    assert r.curve_dir[i] == 0.5 and r.curve_false_alarm_rate[i] == 0.0
    assert r.dir_at_false_alarm == {0.01: None, 0.1: None}   # 2 non-mated probes support nothing


def test_open_set_dir_at_false_alarm_target():
    rng = np.random.default_rng(0)
    n = 200
    # mated probes: own template (column 0) 0.9, other 0.0; non-mated: best score uniform.
    mated = np.c_[np.full(n, 0.9), np.zeros(n)]
    nonmated = np.c_[rng.uniform(0, 1, n), np.zeros(n)]
    r = open_set(np.r_[mated, nonmated], ["a"] * n + ["x"] * n, ["a", "b"], threshold=0.35, fars=(0.1,))
    expected = 1.0 if np.sort(nonmated[:, 0])[::-1][20] < 0.9 else 0.0
    assert r.dir_at_false_alarm[0.1] == expected
    assert "dir_at_false_alarm_0.1" in r.as_dict()


def test_open_set_needs_nonmated_probes():
    with pytest.raises(ValueError, match="non-mated"):
        open_set(np.eye(2), ["a", "b"], ["a", "b"], threshold=0.35)
