"""metrics.retrieval: closed-set CMC and mAP with distractors, streamed over gallery chunks.

Known answers on hand-made scores (ties, distractors outranking the mate, probes whose identity
is absent, the MATLAB release's 1000-position cut), and agreement with a transcription of the
TinyFace release's compute_AP loop over a full sort on random scores, for every chunk width."""
import numpy as np
import pytest
import torch

from facediag.metrics.retrieval import Retrieval, retrieve, retrieve_scores

D = -100  # a distractor: nobody's identity


def release_ap(good: np.ndarray, index: np.ndarray) -> float:
    """The TinyFace release's compute_AP (Python version), transcribed loop for loop."""
    ngood = len(good)
    old_recall, old_precision, ap, intersect, j, good_now = 0.0, 1.0, 0.0, 0, 0, 0
    for n in range(len(index)):
        flag = index[n] in good
        if flag:
            good_now += 1
            intersect += 1
        recall = intersect / ngood
        precision = intersect / (j + 1)
        ap += (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        j += 1
        if good_now == ngood:
            break
    return ap


def brute(scores, probe_ids, gallery_ids):
    """(rank of the best mate or 0, AP or NaN) per probe from a full sort; ties against the probe:
    among equal scores the non-mates come first."""
    ranks, aps = [], []
    for p, pid in enumerate(probe_ids):
        good = np.flatnonzero(gallery_ids == pid)
        if not len(good):
            ranks.append(0)
            aps.append(np.nan)
            continue
        is_mate = gallery_ids == pid
        order = np.lexsort((is_mate, -scores[p]))  # by score descending, then non-mates first
        ranks.append(int(np.flatnonzero(is_mate[order])[0]) + 1)
        aps.append(release_ap(set(good.tolist()), order))
    return np.array(ranks), np.array(aps)


def test_one_mate_first_is_rank_1_and_ap_1():
    r = retrieve_scores([[0.9, 0.1, 0.5]], [7], [7, D, D])
    assert r.ranks.tolist() == [1] and r.cmc() == {1: 1.0, 5: 1.0, 10: 1.0, 20: 1.0}
    assert r.mean_ap() == 1.0 and r.genuine.tolist() == [pytest.approx(0.9)]


def test_distractors_outranking_the_mate():
    # two distractors above the only mate: position 3, AP = (P(2) + P(3)) / 2 = (0 + 1/3) / 2
    r = retrieve_scores([[0.2, 0.7, 0.6, 0.1]], [3], [3, D, D, D])
    assert r.ranks.tolist() == [3]
    assert r.cmc((1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 1.0}
    assert r.mean_ap() == pytest.approx(1 / 6)


def test_two_mates_at_positions_1_and_3():
    # AP = 1/2 [(1 + 1)/2 + (1/2 + 2/3)/2] = 19/24
    r = retrieve_scores([[0.9, 0.8, 0.5, 0.1]], [4], [4, D, 4, D])
    assert r.positions.tolist() == [[1, 3]]
    assert r.mean_ap() == pytest.approx(19 / 24)
    assert r.mate_scores[0].tolist() == pytest.approx([0.9, 0.5])


def test_ties_count_against_the_probe():
    # a distractor tied with the mate is ranked before it; two tied mates take positions 1 and 2
    r = retrieve_scores([[0.5, 0.5, 0.1]], [1], [1, D, 9])
    assert r.ranks.tolist() == [2] and r.mean_ap() == pytest.approx((0 + 1 / 2) / 2)  # (P(1) + P(2)) / 2
    tied_mates = retrieve_scores([[0.5, 0.5, 0.5]], [1], [1, 1, D])
    assert tied_mates.positions.tolist() == [[2, 3]]  # the tied distractor is before both
    both = retrieve_scores([[0.5, 0.5, 0.1]], [1], [1, 1, D])
    assert both.positions.tolist() == [[1, 2]] and both.mean_ap() == 1.0
    # a collapsed model (every score equal) is never right: every distractor outranks the mate
    flat = retrieve_scores(np.zeros((3, 10)), [0, 1, 2], [0, 1, 2] + [D] * 7)
    assert flat.cmc((1, 5, 10)) == {1: 0.0, 5: 0.0, 10: 1.0}


def test_probes_whose_identity_is_absent_are_left_out():
    scores = [[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 0.9]]
    r = retrieve_scores(scores, [1, 5, 2], [1, D, 2])  # identity 5 has no gallery image
    assert r.mated.tolist() == [True, False, True] and r.ranks.tolist() == [1, 0, 1]
    assert r.cmc() == {1: 1.0, 5: 1.0, 10: 1.0, 20: 1.0}  # over the two mated probes only
    assert np.isnan(r.average_precision()[1]) and r.mean_ap() == 1.0 and np.isnan(r.genuine[1])
    none = retrieve_scores([[0.5, 0.2]], [8], [D, D])
    assert none.cmc((1,)) == {1: None} and none.mean_ap() is None


def test_a_distractor_is_nobodys_mate_whatever_its_number():
    # gallery ids below 0 are distractors; a probe cannot claim one
    r = retrieve_scores([[0.9, 0.5]], [0], [D, 0])
    assert r.ranks.tolist() == [2]
    with pytest.raises(ValueError, match="probe identities must be >= 0"):
        retrieve_scores([[0.9, 0.5]], [D], [D, 0])


def test_the_matlab_release_counts_mates_within_1000_positions():
    # mates at positions 1 and 1002 (1000 distractors between them)
    scores = np.concatenate([[1.0], np.linspace(0.9, 0.5, 1000), [0.1], [0.05]])[None, :]
    ids = np.array([6] + [D] * 1000 + [6, D])
    r = retrieve_scores(scores, [6], ids)
    assert r.positions.tolist() == [[1, 1002]]
    assert r.mean_ap() == pytest.approx(0.5 * (1 + (1 / 1001 + 2 / 1002) / 2))
    assert r.mean_ap(first=1000) == pytest.approx(0.5)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, None])
def test_every_chunk_width_agrees_with_a_full_sort(chunk):
    rng = np.random.default_rng(chunk or 0)
    n_p, n_g = 40, 150
    gallery_ids = rng.integers(0, 25, n_g)
    gallery_ids[100:] = D
    probe_ids = rng.integers(0, 30, n_p)                 # some identities absent from the gallery
    scores = np.round(rng.uniform(-1, 1, (n_p, n_g)), 2)  # rounded: many exact ties
    r = retrieve_scores(scores, probe_ids, gallery_ids, chunk=chunk)
    ranks, aps = brute(scores.astype(np.float32), probe_ids, gallery_ids)
    assert r.ranks.tolist() == ranks.tolist()
    np.testing.assert_allclose(r.average_precision(), aps, rtol=0, atol=1e-12)
    assert r.mated.sum() < n_p  # the case of absent identities is really exercised


def test_retrieve_from_features_equals_the_score_matrix_at_any_chunk_size():
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((230, 32)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    probe_rows, gallery_rows = np.arange(30), np.arange(30, 230)[::-1]  # any rows, any order
    probe_ids = rng.integers(0, 40, 30)
    gallery_ids = np.where(np.arange(200) < 120, rng.integers(0, 40, 200), D)
    full = feats[probe_rows] @ feats[gallery_rows].T
    ranks, aps = brute(full, probe_ids, gallery_ids)
    for cells in (30, 30 * 17, 1 << 23):  # one column at a time, odd chunks, one chunk
        r = retrieve(feats, probe_rows, probe_ids, gallery_rows, gallery_ids, chunk_cells=cells)
        assert isinstance(r, Retrieval) and r.n_gallery == 200
        assert r.ranks.tolist() == ranks.tolist()
        np.testing.assert_allclose(r.average_precision(), aps, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="float32"):
        retrieve(feats.astype(np.float64), probe_rows, probe_ids, gallery_rows, gallery_ids)


def test_the_pass_holds_one_chunk_of_scores(monkeypatch):
    """Never the whole probe × gallery matrix: every product is at most chunk_cells scores."""
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((500, 16)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    widths = []
    real = torch.matmul

    def spy(a, b, *args, **kw):
        widths.append(a.shape[0] * b.shape[1])
        return real(a, b, *args, **kw)
    monkeypatch.setattr(torch, "matmul", spy)
    retrieve(feats, np.arange(50), rng.integers(0, 9, 50), np.arange(50, 500), rng.integers(-1, 9, 450),
             chunk_cells=50 * 40)
    assert widths and max(widths) <= 50 * 40 < 50 * 450


def test_non_finite_scores_are_refused():
    with pytest.raises(ValueError, match="finite"):
        retrieve_scores([[np.nan, 0.1]], [1], [1, D])
    with pytest.raises(ValueError, match="do not match"):
        retrieve_scores([[0.1, 0.2]], [1, 2], [1, D])
