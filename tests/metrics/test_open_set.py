"""Open-set watch-list metrics at rank k (metrics.open_set): TPIR at FPIR targets and the area
under the TPIR–FPIR curve, on hand-made scores (known answers) and against a brute-force
implementation written here from the definitions."""
import numpy as np
import pytest

from facediag.metrics.identification import MatchSummary, open_set, summarize
from facediag.metrics.open_set import tpir_at_fpir, tpir_fpir_area, watchlist

GALLERY = ["a", "b", "c"]
# mated searches: (identity, scores against a, b, c)
MATED = [("a", [0.9, 0.1, 0.2]),    # mate first: rank 1, 0.9
         ("b", [0.5, 0.6, 0.1]),    # rank 1, 0.6
         ("c", [0.7, 0.2, 0.5]),    # a distractor identity outranks the mate: rank 2, 0.5
         ("a", [0.4, 0.4, 0.0])]    # tied with b: ties count against the probe, rank 2, 0.4
# non-mated searches (identities absent from the gallery): best scores 0.8, 0.55, 0.45, 0.3, 0.2
UNMATED = [("x", [0.8, 0.1, 0.0]), ("y", [0.2, 0.55, 0.1]), ("z", [0.1, 0.0, 0.45]),
           ("w", [0.3, 0.3, 0.3]), ("v", [0.2, 0.1, 0.0])]


def hand_made() -> MatchSummary:
    rows = MATED + UNMATED
    return summarize(np.array([s for _, s in rows]), [p for p, _ in rows], GALLERY)


def test_tpir_at_fpir_known_answers_at_rank_1_and_2():
    m = hand_made()
    # FPIR 0.2 of 5 searches: at most 1 false alarm -> threshold just above 0.55 (only 0.8 alarms)
    # FPIR 0.4: at most 2 -> just above 0.45. FPIR 0.3: floor(1.5) = 1 alarm, as 0.2.
    one = tpir_at_fpir(m, (0.2, 0.3, 0.4), rank=1, min_false_alarms=1)
    assert one["tpir_at_fpir"] == {"0.2": 0.5, "0.3": 0.5, "0.4": 0.5}      # 0.9 and 0.6 of 4 mated
    two = tpir_at_fpir(m, (0.2, 0.3, 0.4), rank=2, min_false_alarms=1)
    assert two["tpir_at_fpir"] == {"0.2": 0.5, "0.3": 0.5, "0.4": 0.75}     # + the outranked mate's 0.5
    th = two["fpir_thresholds"]
    assert th["0.3"]["fpir"] == 0.2 and th["0.3"]["false_alarms"] == 1      # the FPIR given, never above target
    assert 0.55 < th["0.2"]["threshold"] < 0.5500001 and 0.45 < th["0.4"]["threshold"] < 0.4500001
    assert two["tpir_unsupported"] == {}


def test_rank_k_counts_ties_and_outranked_mates_only_within_k():
    m = hand_made()
    at = {k: tpir_at_fpir(m, (0.8,), rank=k, min_false_alarms=1)["tpir_at_fpir"]["0.8"] for k in (1, 2, 3, 20)}
    # FPIR 0.8: at most 4 alarms -> threshold just above 0.2: every mate's score passes
    assert at == {1: 0.5, 2: 1.0, 3: 1.0, 20: 1.0}


def test_area_known_answers():
    m = hand_made()
    # rank 2: hits 0.9, 0.6, 0.5, 0.4 above 5, 4, 3, 2 of the non-mated best scores: 14 / (4 × 5)
    assert tpir_fpir_area(m, rank=2) == pytest.approx(0.7)
    assert tpir_fpir_area(m, rank=1) == pytest.approx(9 / 20)
    # a mate tied with a non-mated search's best: half a pair (the diagonal of the curve)
    tie = summarize(np.array([[0.5, 0.1], [0.5, 0.2]]), ["a", "x"], ["a", "b"])
    assert tpir_fpir_area(tie) == pytest.approx(0.5)
    # nothing identified: area 0; perfect separation: the rank-k rate
    assert tpir_fpir_area(summarize(np.array([[0.1, 0.9], [0.5, 0.2]]), ["a", "x"], ["a", "b"])) == 0.0
    assert tpir_fpir_area(summarize(np.array([[0.9, 0.1], [0.5, 0.2]]), ["a", "x"], ["a", "b"])) == 1.0


def test_unsupported_fpir_levels_are_refused_with_the_count():
    m = hand_made()   # 5 non-mated searches support no FPIR under the rule n·FPIR >= 10
    out = watchlist(m)
    assert out["n_mated"] == 4 and out["n_nonmated"] == 5 and out["n_gallery"] == 3
    for rank in ("rank20", "rank1"):
        assert out[rank]["tpir_at_fpir"] == {"0.3": None, "0.2": None, "0.1": None}
        assert out[rank]["tpir_unsupported"]["0.3"] == ("FPIR 0.3 needs >= 34 non-mated probes (n·FPIR >= 10); "
                                                        "only 5 available")
        assert out[rank]["fpir_thresholds"] == {}
        assert out[rank]["area"] is not None   # the area rests on the whole curve, not on one point
    # 40 non-mated searches: 0.3 (12 expected alarms) is supported, 0.2 (8) and 0.1 (4) are not
    rng = np.random.default_rng(3)
    scores = np.r_[rng.uniform(0.5, 1, (6, 3)), rng.uniform(0, 0.6, (40, 3))]
    big = watchlist(summarize(scores, ["a", "b", "c"] * 2 + [f"u{i}" for i in range(40)], GALLERY))
    assert big["rank1"]["tpir_at_fpir"]["0.3"] is not None
    assert set(big["rank1"]["tpir_unsupported"]) == {"0.2", "0.1"}
    assert "needs >= 50 non-mated probes" in big["rank1"]["tpir_unsupported"]["0.2"]


def test_without_mated_or_non_mated_searches_nothing_is_reported():
    only_mated = summarize(np.array([[0.9, 0.1]]), ["a"], ["a", "b"])
    out = tpir_at_fpir(only_mated, (0.1,))
    assert out["tpir_at_fpir"] == {"0.1": None} and out["tpir_unsupported"] == {"0.1": "no non-mated probes"}
    assert tpir_fpir_area(only_mated) is None
    only_unmated = summarize(np.array([[0.9, 0.1]]), ["x"], ["a", "b"])
    assert tpir_at_fpir(only_unmated, (0.1,))["tpir_unsupported"] == {"0.1": "no mated probes"}


def test_a_rank_beyond_the_resolved_ranks_is_refused():
    m = MatchSummary(np.array([True, False, False]), np.array([0.5]), np.array([3]), np.array([0.5, 0.4, 0.3]),
                     100, rank_limit=10)
    with pytest.raises(ValueError, match="rank 20 goes beyond the 10 resolved"):
        tpir_at_fpir(m, (0.5,), rank=20, min_false_alarms=1)
    assert tpir_at_fpir(m, (0.5,), rank=5, min_false_alarms=1)["tpir_at_fpir"]["0.5"] == 1.0


def test_open_set_dir_at_rank_k_is_the_same_figure():
    """The generalised open_set (metrics.identification) gives the same TPIR at rank k."""
    rows = MATED + UNMATED
    scores, subjects = np.array([s for _, s in rows]), [p for p, _ in rows]
    m = hand_made()
    for k in (1, 2):
        r = open_set(scores, subjects, GALLERY, threshold=0.45, fars=(0.4,), rank=k)
        # hits at rank k scoring >= 0.45: rank 1 -> 0.9, 0.6; rank 2 -> also 0.5
        assert r.dir == {1: 0.5, 2: 0.75}[k]
        # its dir_at_false_alarm follows the default support rule (5 non-mated searches: refused)
        assert r.dir_at_false_alarm[0.4] is None
        assert tpir_at_fpir(m, (0.4,), rank=k, min_false_alarms=1)["tpir_at_fpir"]["0.4"] == {1: 0.5, 2: 0.75}[k]


# ---------------------------------------------------------------- against a brute-force implementation
def brute(scores: np.ndarray, probes: list, gallery: list, rank: int, fpir: float):
    """TPIR at rank k at the target FPIR, and the area, straight from the definitions: loops over
    searches; the threshold = the lowest one whose FPIR does not exceed the target; the area by the
    trapezoid rule over every distinct score as a threshold."""
    hits, alarms, n_mated = [], [], 0
    for row, who in zip(scores, probes):
        if who in gallery:
            n_mated += 1
            g = row[gallery.index(who)]
            if sum(1 for s in row if s >= g) <= rank:     # ties against the probe
                hits.append(g)
        else:
            alarms.append(max(row))
    hits, alarms = np.array(hits), np.array(alarms)
    threshold = next(t for t in (np.nextafter(v, np.inf) for v in np.unique(alarms))
                     if np.mean(alarms >= t) <= fpir)
    tpir = np.sum(hits >= threshold) / n_mated
    ts = np.unique(np.r_[hits, alarms])[::-1]
    xs = [0.0] + [np.mean(alarms >= t) for t in ts]
    ys = [0.0] + [np.sum(hits >= t) / n_mated for t in ts]
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))
    return tpir, area


@pytest.mark.parametrize("seed", range(6))
def test_equals_a_brute_force_implementation_with_ties(seed):
    rng = np.random.default_rng(seed)
    gallery = [f"g{i}" for i in range(12)]
    probes = [gallery[i] for i in rng.integers(0, 12, 30)] + [f"u{i}" for i in range(40)]
    scores = np.round(rng.uniform(-0.2, 1.0, (70, 12)), 1)   # one decimal: many ties
    mated = np.array([p in gallery for p in probes])
    scores[mated, [gallery.index(p) for p in np.array(probes)[mated]]] += 0.2  # mates a little higher
    scores = np.round(scores, 1)
    m = summarize(scores, probes, gallery)
    for rank in (1, 3, 20):
        out = tpir_at_fpir(m, (0.3, 0.2, 0.1), rank=rank, min_false_alarms=1)
        for f in (0.3, 0.2, 0.1):
            tpir, area = brute(scores, probes, gallery, rank, f)
            assert out["tpir_at_fpir"][f"{f:g}"] == pytest.approx(tpir, abs=1e-12)
        assert tpir_fpir_area(m, rank=rank) == pytest.approx(area, abs=1e-12)
