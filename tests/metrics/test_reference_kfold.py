"""The reference 10-fold protocol on hand-made distances whose answers are worked out by hand."""
import numpy as np
import pytest

from facediag.metrics.kfold import (ACCURACY_THRESHOLDS, VAL_THRESHOLDS, consecutive_folds, reference_kfold,
                                    threshold_at_far)


def _alternating(n_pairs=20, genuine=0.5, impostor=2.0):
    issame = np.arange(n_pairs) % 2 == 0          # every fold of 2 pairs: one same, one different
    return np.where(issame, genuine, impostor), issame


def test_grid_is_the_references():
    assert len(ACCURACY_THRESHOLDS) == 400
    assert ACCURACY_THRESHOLDS[0] == 0 and ACCURACY_THRESHOLDS[-1] == pytest.approx(3.99)
    assert len(VAL_THRESHOLDS) == 4000


def test_folds_are_consecutive_blocks_first_ones_longer():
    ids = consecutive_folds(23, 10)
    assert ids.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + sum(([k] * 2 for k in range(3, 10)), [])
    with pytest.raises(ValueError):
        consecutive_folds(9, 10)


def test_perfectly_separable_is_one_with_zero_std():
    dist, issame = _alternating()
    r = reference_kfold(dist, issame)
    assert r.accuracy_mean == 1.0 and r.accuracy_std == 0.0
    # The first grid threshold above every genuine distance (0.5 < t): 0.51, in every fold.
    assert np.allclose(r.fold_thresholds, 0.51)
    assert (r.n_genuine, r.n_impostor, r.folds) == (10, 10, 10)


def test_first_best_threshold_and_population_std():
    # Pair 4 (fold 2) is a genuine at 0.5; every other genuine at 0.3, impostors at 1.0.
    # Fold 2 trains without it: every t in (0.3, 1.0] is perfect there, the FIRST is 0.31,
    # which rejects its own 0.5 genuine: 1 of 2 right. The other folds train with it: 0.51.
    # A midpoint rule (0.65) or the last best (1.0) would get fold 2 right.
    dist, issame = _alternating(genuine=0.3, impostor=1.0)
    dist[4] = 0.5
    r = reference_kfold(dist, issame)
    expected = np.ones(10)
    expected[2] = 0.5
    assert r.fold_accuracies.tolist() == expected.tolist()
    assert r.fold_thresholds[2] == pytest.approx(0.31)
    assert np.allclose(np.delete(r.fold_thresholds, 2), 0.51)
    assert r.accuracy_mean == pytest.approx(0.95)
    # ddof=0 as np.std in the reference: sqrt((9 * 0.05² + 0.45²) / 10) = 0.15 (ddof=1 would be 0.158).
    assert r.accuracy_std == pytest.approx(0.15)


def test_consecutive_not_shuffled():
    # The odd genuine moved to pair 18 lands in fold 9: the fold that drops to 0.5 follows it.
    dist, issame = _alternating(genuine=0.3, impostor=1.0)
    dist[18] = 0.5
    r = reference_kfold(dist, issame)
    assert np.flatnonzero(r.fold_accuracies < 1).tolist() == [9]


def test_best_threshold_at_the_grids_lower_edge():
    # Only impostors: threshold 0 accepts nothing, all right; the first best is the grid's first.
    rng = np.random.default_rng(0)
    r = reference_kfold(rng.uniform(0, 4, 30), np.zeros(30, bool))
    assert r.fold_thresholds.tolist() == [0.0] * 10 and r.accuracy_mean == 1.0


def test_distance_equal_to_threshold_is_not_accepted():
    # d < t, strictly: genuines exactly at 0.5 need t = 0.51, not 0.50.
    dist, issame = _alternating(genuine=ACCURACY_THRESHOLDS[50], impostor=2.0)
    assert np.allclose(reference_kfold(dist, issame).fold_thresholds, ACCURACY_THRESHOLDS[51])


def test_own_folds_from_the_file():
    dist, issame = _alternating(genuine=0.3, impostor=1.0)
    dist[4] = 0.5
    folds = np.repeat([7, 3], 10)  # two named folds, labels in any order
    r = reference_kfold(dist, issame, fold_ids=folds)
    assert r.folds == 2
    # fold "3" (pairs 10-19) trains on pairs 0-9, which hold the 0.5 genuine -> 0.51: all right.
    # fold "7" (pairs 0-9) trains without it -> 0.31: its 0.5 genuine rejected, 9 of 10 right.
    assert r.fold_accuracies.tolist() == [1.0, 0.9]


def _loop_reference(dist, issame, folds=10):
    """The protocol written as loops over folds and thresholds (the slow way it is described)."""
    blocks = np.array_split(np.arange(len(dist)), folds)
    accs = []
    for test in blocks:
        train = np.setdiff1d(np.arange(len(dist)), test)
        train_acc = [np.mean((dist[train] < t) == issame[train]) for t in ACCURACY_THRESHOLDS]
        t = ACCURACY_THRESHOLDS[int(np.argmax(train_acc))]
        accs.append(np.mean((dist[test] < t) == issame[test]))
    return np.array(accs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_loop_form_on_noisy_scores(seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(157) < 0.5
    dist = np.clip(np.where(issame, rng.normal(1.0, 0.35, 157), rng.normal(1.6, 0.35, 157)), 0, 4)
    r = reference_kfold(dist, issame)
    assert np.allclose(r.fold_accuracies, _loop_reference(dist, issame))
    assert 0.5 < r.accuracy_mean < 1.0


def test_threshold_at_far_by_hand():
    thr = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    # Last threshold with FAR <= 1e-3 is 2.0 (FAR 0.0005), next 3.0 (FAR 0.002): 2 + 0.0005/0.0015.
    assert threshold_at_far(np.array([0, 0, 0.0005, 0.002, 0.01]), thr, 1e-3) == pytest.approx(2 + 1 / 3)
    # Repeated FAR values: the last threshold of the plateau, not the first (1.0 would be wrong).
    assert threshold_at_far(np.array([0, 0, 0, 0.01, 0.02]), thr, 1e-3) == pytest.approx(2.1)
    # Exactly reached: the last threshold at that FAR.
    assert threshold_at_far(np.array([0, 0.001, 0.001, 0.002, 0.5]), thr, 1e-3) == 2.0
    # Never reached: 0.0, as the reference.
    assert threshold_at_far(np.array([0, 0, 0, 0, 0.0001]), thr, 1e-3) == 0.0


def test_val_at_far_per_fold():
    # Two folds named by the set. Fold A: 5 genuines at 0.2, 5 impostors at 1.0; fold B: the
    # same genuines, impostors at 3.0. Testing A, the threshold comes from B's FAR curve (0 up to
    # t = 3.0, then 1): just above 3.0, so A's impostors at 1.0 are all accepted (FAR 1). Testing
    # B, it comes from A's (just above 1.0): B's impostors at 3.0 are rejected (FAR 0).
    issame = np.tile(np.r_[np.ones(5, bool), np.zeros(5, bool)], 2)
    dist = np.where(issame, 0.2, np.repeat([1.0, 3.0], 10))
    r = reference_kfold(dist, issame, fold_ids=np.repeat([0, 1], 10))
    assert r.fold_val.tolist() == [1.0, 1.0] and r.fold_far.tolist() == [1.0, 0.0]
    assert (r.val_mean, r.val_std, r.far_mean) == (1.0, 0.0, 0.5)


def test_each_pairs_decision_is_its_test_folds_threshold():
    rng = np.random.default_rng(3)
    issame = rng.random(203) < 0.5
    dist = np.clip(np.where(issame, rng.normal(1.0, 0.4, 203), rng.normal(1.6, 0.4, 203)), 0, 4)
    r = reference_kfold(dist, issame)
    folds = consecutive_folds(203)
    # By hand: pair i is right when (d_i < its fold's threshold) agrees with same/different.
    assert r.pair_correct.tolist() == ((dist < r.fold_thresholds[folds]) == issame).tolist()
    for k in range(10):
        assert r.pair_correct[folds == k].mean() == pytest.approx(r.fold_accuracies[k])


def test_val_at_far_flagged_under_the_one_far_support_rule():
    # 300 pairs, 150 impostors: each training split holds 135, and FAR 1e-3 needs 10 / 1e-3 =
    # 10,000 (the rule of threshold_for_far): the number is kept, and flagged.
    issame = np.tile([True, False], 150)
    dist = np.where(issame, 0.5, 1.5)
    r = reference_kfold(dist, issame)
    assert r.val_unsupported == "VAL@FAR 0.001 not supported by 135 impostors per split (n·FAR ≥ 10 needs ≥ 10000)"
    assert np.isfinite(r.val_mean)
    # 12,000 impostors: 10,800 per training split support it; 1e-4 they do not.
    issame = np.arange(13000) % 13 == 0  # every fold: 100 genuine, 1,200 impostor pairs
    dist = np.where(issame, 0.5, 1.5)
    assert reference_kfold(dist, issame).val_unsupported == ""
    assert "10800 impostors per split" in reference_kfold(dist, issame, far_target=1e-4).val_unsupported
