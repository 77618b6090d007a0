"""The chunked matching pass and the impostor stream against the all-pairs computation.

Small data: every number equals the exact all-pairs one. Summarised data (limits forced low):
counts at bin edges and kept-top TAR@FAR are exact, everything else within the stated bound.
"""
import numpy as np
import pytest

from facediag.metrics.identification import (closed_set, closed_set_from, l2_normalize, open_set, open_set_from,
                                             summarize, threshold_accuracy, threshold_for_far)
from facediag.metrics.streaming import BIN_WIDTH, ImpostorStream, bin_counts, bin_edge, bin_index
from facediag.metrics.verification import genuine_impostor_scores, verification_metrics
from facediag.protocols import matching
from facediag.protocols.matching import RANK_LIMIT, TOP_K, match


def _on_grid(x):
    """Unit vectors rounded to multiples of 2**-11: every product is a multiple of 2**-22 and every
    partial sum below 4, so each score is exact in float32 whatever the order of its sums (numpy's
    BLAS and torch's give the same bits on any CPU)."""
    return (np.round(l2_normalize(x) * 2048) / 2048).astype(np.float32)


def _data(n_templates=120, n_probes=900, dim=32, unenrolled=15, seed=0, signal=1.2):
    rng = np.random.default_rng(seed)
    templates = _on_grid(rng.normal(size=(n_templates, dim)))
    subj = rng.integers(0, n_templates + unenrolled, n_probes)
    own = np.where(subj < n_templates, subj, -1)
    base = np.where((own >= 0)[:, None], templates[np.maximum(own, 0)] * signal, 0)
    probes = _on_grid(base + rng.normal(size=(n_probes, dim)))
    names = np.array([f"s{i:04d}" for i in range(n_templates + unenrolled)])
    return probes, templates, own, names[subj], names[:n_templates]


def _reference(probes, templates, probe_subjects, template_subjects):
    scores = probes @ templates.T
    genuine, impostor = genuine_impostor_scores(probes, probe_subjects, templates, template_subjects)
    # float64, as the metrics compare: a float32 array against a float threshold compares in float32
    return scores, genuine.astype(np.float64), impostor.astype(np.float64)


def test_small_data_equals_the_all_pairs_computation():
    probes, templates, own, ps, ts = _data(n_templates=RANK_LIMIT - 5)  # every rank resolved
    scores, genuine, impostor = _reference(probes, templates, ps, ts)
    m = match(probes, templates, own, np.arange(len(probes)), thresholds=(0.35,), chunk_cells=5000)
    assert m.impostors.exact and m.impostors.n == impostor.size
    s = m.summary()
    ref = summarize(scores, ps, ts)
    np.testing.assert_array_equal(s.ranks, ref.ranks)
    np.testing.assert_array_equal(s.genuine, ref.genuine)
    np.testing.assert_array_equal(np.sort(m.impostors.scores()), np.sort(impostor.astype(np.float64)))
    cs, cs_ref = closed_set_from(s, ps), closed_set(scores, ps, ts)
    assert cs.rank_accuracy == cs_ref.rank_accuracy
    np.testing.assert_array_equal(cs.cmc, cs_ref.cmc)
    ta = threshold_accuracy(scores, ps, ts, 0.35)
    assert m.false_accepts[0.35].sum() == ta.n_false_accepts and m.impostor_count.sum() == ta.n_impostor
    osr, osr_ref = open_set_from(s, threshold=0.35), open_set(scores, ps, ts, threshold=0.35)
    assert osr.as_dict() == osr_ref.as_dict()
    v, v_ref = verification_metrics(genuine, m.impostors), verification_metrics(genuine, impostor)
    assert v.as_dict() == v_ref.as_dict() and v.score_resolution == 0
    own_score = np.where(own >= 0, scores[np.arange(len(own)), np.maximum(own, 0)], 0)
    np.testing.assert_allclose(m.impostor_sum, scores.astype(np.float64).sum(1) - own_score, atol=1e-4)


def test_chunk_size_does_not_change_anything():
    probes, templates, own, _, _ = _data(seed=1)
    # Blocks of 16 probes vs one block. The float32 products may differ in the last bit between
    # block shapes (BLAS kernels), so scores agree to float32 precision and decisions exactly.
    a = match(probes, templates, own, np.arange(len(probes)), thresholds=(0.3,), chunk_cells=16 * len(templates))
    b = match(probes, templates, own, np.arange(len(probes)), thresholds=(0.3,))
    for field in ("genuine", "top_score", "rival_score"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=1e-6)
    for field in ("ranks", "rival", "impostor_count"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(a.false_accepts[0.3], b.false_accepts[0.3])


@pytest.mark.parametrize("seed, n_templates", [(0, 120), (3, 120), (5, 40)])  # 40: every template in the top-k
def test_summarised_impostors_are_exact_where_stated_and_within_the_bound_elsewhere(seed, n_templates):
    probes, templates, own, ps, ts = _data(seed=seed, n_templates=n_templates, n_probes=900 * 120 // n_templates)
    scores, genuine, impostor = _reference(probes, templates, ps, ts)
    m = match(probes, templates, own, np.arange(len(probes)), thresholds=(0.35,), chunk_cells=7000,
              exact_limit=20_000, top_limit=3_000)
    imp = m.impostors
    assert not imp.exact and imp.n == impostor.size and len(imp.top) == 3_000
    # The histogram counts exactly at its edges, the kept top is the true top.
    ref_bins = np.bincount(bin_index(impostor), minlength=len(imp.histogram))
    np.testing.assert_array_equal(imp.histogram, ref_bins)
    np.testing.assert_array_equal(imp.top, np.sort(impostor.astype(np.float64))[::-1][:3_000])
    for edge in bin_edge([20000, 40000, 45000]):
        assert imp.count_at_least(edge) == int((impostor >= edge).sum())
    assert m.false_accepts[0.35].sum() == int(((scores >= 0.35) & (ps[:, None] != ts[None, :])).sum())
    assert imp.mean == pytest.approx(float(impostor.astype(np.float64).mean()), abs=1e-9)
    assert imp.var == pytest.approx(float(impostor.astype(np.float64).var()), rel=1e-6)
    v, v_ref = verification_metrics(genuine, imp), verification_metrics(genuine, impostor)
    assert v.score_resolution == BIN_WIDTH
    assert abs(v.auc - v_ref.auc) <= v.auc_error_bound + 1e-12
    assert abs(v.eer - v_ref.eer) <= v.eer_error_bound + 1e-12
    for p, p_ref in zip(v.tar_at_far, v_ref.tar_at_far):
        assert p.supported == p_ref.supported
        if not p.supported:
            continue
        k = int(np.floor(p.far * imp.n))
        if k < len(imp.top):  # the (k+1)-th highest score is kept: exactly the all-pairs answer
            assert (p.tar, p.threshold, p.achieved_far) == (p_ref.tar, p_ref.threshold, p_ref.achieved_far)
        else:  # a histogram edge: never above the target FAR, at most one bin stricter
            assert p.achieved_far <= p.far and p_ref.threshold <= p.threshold <= p_ref.threshold + BIN_WIDTH
            in_bin = ((genuine >= p_ref.threshold) & (genuine < p.threshold)).mean()
            assert p_ref.tar - in_bin - 1e-12 <= p.tar <= p_ref.tar
    ft = threshold_for_far(imp, 0.001)
    assert ft.n_false_accepts == int((impostor >= ft.threshold).sum())


def test_ranks_beyond_the_limit_are_marked_and_the_cmc_stops_there():
    probes, templates, own, ps, ts = _data(n_templates=400, n_probes=600, signal=0.15, seed=2)
    scores = probes @ templates.T
    ref = summarize(scores, ps, ts)
    s = match(probes, templates, own, np.arange(len(probes))).summary()
    beyond = ref.ranks > RANK_LIMIT
    assert beyond.any() and (~beyond).any()
    np.testing.assert_array_equal(s.ranks[~beyond], ref.ranks[~beyond])
    assert (s.ranks[beyond] == RANK_LIMIT + 1).all()
    cs, cs_ref = closed_set_from(s, ps), closed_set(scores, ps, ts)
    np.testing.assert_allclose(cs.cmc, cs_ref.cmc[:RANK_LIMIT])
    with pytest.raises(ValueError, match="beyond"):
        closed_set_from(s, ps, ranks=(1, 100))


# Strong signal: a sixth of the probes rank below TOP_K (their rows counted one by one); weak: three
# quarters (the whole tile counted). Every pair kept, or summarised (the top-k alone decides less).
@pytest.mark.parametrize("signal, share", [(3.0, (0.1, 0.3)), (1.2, (0.6, 0.9))])
@pytest.mark.parametrize("exact_limit", [None, 20_000])
def test_ranks_equal_brute_force_however_many_rows_need_a_full_count(signal, share, exact_limit):
    probes, templates, own, ps, ts = _data(n_templates=300, n_probes=400, signal=signal, seed=7)
    ref = summarize(probes @ templates.T, ps, ts)
    assert share[0] < (ref.ranks > TOP_K).mean() < share[1] and (ref.ranks == 1).any()
    m = match(probes, templates, own, np.arange(len(probes)), exact_limit=exact_limit, top_limit=2_000)
    assert m.impostors.exact == (exact_limit is None)
    np.testing.assert_array_equal(m.summary().ranks, np.minimum(ref.ranks, RANK_LIMIT + 1))


# Scores on a coarse grid tie often. Every pair kept, one block; summarised in tiles of 19 templates.
@pytest.mark.parametrize("opts", [{}, dict(chunk_cells=5_000, exact_limit=2_000, top_limit=500, sample_size=500)])
def test_the_rival_among_tied_scores_is_the_lowest_template_column(opts):
    rng = np.random.default_rng(2)
    templates = (rng.integers(-3, 4, (600, 4)) / 8).astype(np.float32)
    probes = (rng.integers(-3, 4, (300, 4)) / 8).astype(np.float32)
    own = rng.integers(-1, len(templates), len(probes))
    m = match(probes, templates, own, np.arange(len(probes)), **opts)
    scores = probes.astype(np.float64) @ templates.astype(np.float64).T
    scores[np.arange(len(own))[own >= 0], own[own >= 0]] = -np.inf
    tied = scores == scores.max(1, keepdims=True)
    few = tied.sum(1) < TOP_K  # more ties than the kept top: any of them
    assert few.mean() > 0.5 and (tied.sum(1) > 1)[few].mean() > 0.3  # ties the rival must break
    np.testing.assert_array_equal(m.rival_score, scores.max(1))
    np.testing.assert_array_equal(m.rival[few], tied.argmax(1)[few])


def test_the_pair_sample_is_the_same_for_two_models_on_the_same_probes():
    probes, templates, own, _, _ = _data(seed=4)
    other = _on_grid(probes + 0.3 * np.random.default_rng(9).normal(size=probes.shape))
    ids = np.arange(1000, 1000 + len(probes))
    a = match(probes, templates, own, ids, exact_limit=10_000).impostors
    b = match(other, templates, own, ids, exact_limit=10_000).impostors
    assert len(a.sample) > 5_000
    np.testing.assert_array_equal(a.sample_probe, b.sample_probe)
    assert not np.array_equal(a.sample, b.sample)  # the same pairs, scored by two models
    # no genuine pair slips into the sample: no sampled score is its own probe's genuine score
    genuine = match(probes, templates, own, ids).genuine
    assert not (a.sample == genuine[a.sample_probe - 1000]).any()


def _dyadic_data(n_templates, n_probes, dim=16, seed=6):
    """Embeddings on a grid of 2**-12 with |x| <= 900/4096: every score (a multiple of 2**-24 below
    2**24 of them) is exact in float32, whatever the order of the sums, so any block shape gives
    the same bits."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(-900, 901, (n_templates, dim))
    own = rng.integers(-1, n_templates, n_probes)
    probes = np.clip(np.rint(0.7 * templates[np.maximum(own, 0)] * (own >= 0)[:, None]
                             + rng.normal(0, 400, (n_probes, dim))), -900, 900)
    return (probes / 4096).astype(np.float32), (templates / 4096).astype(np.float32), own


# Blocks of 256 probes x tiles of 100 templates (wider than the top-k), of 19 (narrower); 1 x 1.
@pytest.mark.parametrize("chunk_cells, n_probes", [(30_000, 300), (5_000, 300), (1, 12)])
def test_template_tiles_change_nothing_in_a_summarised_pass(chunk_cells, n_probes):
    # Many templates, impostors summarised: blocks of probes x tiles of templates against one block,
    # on scores exact in float32 (so every result must be the same, bit for bit).
    probes, templates, own = _dyadic_data(600, n_probes)
    thresholds = (0.05, 0.1)
    opts = dict(thresholds=thresholds, exact_limit=2_000, top_limit=1_500, sample_size=5_000)
    ids = np.arange(7, 7 + len(probes))
    a = match(probes, templates, own, ids, chunk_cells=chunk_cells, **opts)
    b = match(probes, templates, own, ids, chunk_cells=len(probes) * len(templates), **opts)
    assert not a.impostors.exact and len(a.impostors.sample) > 1_000
    assert (a.ranks > 1).any() and (a.ranks == 1).any() and (a.ranks == RANK_LIMIT + 1).any()
    for field in ("genuine", "ranks", "top_score", "rival", "rival_score", "impostor_count"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_allclose(a.impostor_sum, b.impostor_sum, rtol=1e-6)  # p·Σt: per block, not per tile
    for t in thresholds:
        assert a.false_accepts[t].any()
        np.testing.assert_array_equal(a.false_accepts[t], b.false_accepts[t])
    ia, ib = a.impostors, b.impostors
    assert ia.n == ib.n
    for field in ("histogram", "top", "sample", "sample_probe"):
        np.testing.assert_array_equal(getattr(ia, field), getattr(ib, field))
    top_pairs = [np.lexsort((i.top_template, i.top_probe, -i.top)) for i in (ia, ib)]  # the same pairs
    for field in ("top_probe", "top_template"):
        np.testing.assert_array_equal(getattr(ia, field)[top_pairs[0]], getattr(ib, field)[top_pairs[1]])
    assert ia.total == pytest.approx(ib.total, rel=1e-6) and ia.total_sq == pytest.approx(ib.total_sq, rel=1e-6)


@pytest.mark.parametrize("chunk_cells, hist_cells", [(30_000, None), (1 << 22, None), (1 << 22, 7_001)])
def test_false_accepts_and_histogram_equal_brute_force_when_rows_need_a_full_count(chunk_cells, hist_cells,
                                                                                  monkeypatch):
    # Thresholds from below most scores (every row's 51st best is above: counted over the row) to
    # above almost all (counted from the top-k); a summarised pass, so the histogram is binned too.
    # hist_cells: a tile binned in many slices, the last one short.
    if hist_cells:
        monkeypatch.setattr(matching, "HIST_CELLS", hist_cells)
    probes, templates, own = _dyadic_data(600, 300)
    thresholds = (-0.2, 0.0, 0.05, 0.3)
    m = match(probes, templates, own, np.arange(len(probes)), thresholds=thresholds, chunk_cells=chunk_cells,
              exact_limit=2_000, top_limit=1_500, sample_size=5_000)
    scores = probes.astype(np.float64) @ templates.astype(np.float64).T  # exact: dyadic values
    impostor = np.ones(scores.shape, bool)
    impostor[np.arange(len(own))[own >= 0], own[own >= 0]] = False
    kth = np.sort(scores, 1)[:, -(RANK_LIMIT + 1)]
    for t in thresholds:
        expected = ((scores >= t) & impostor).sum(1)
        np.testing.assert_array_equal(m.false_accepts[t], expected)
    assert (kth >= -0.2).all() and (kth < 0.3).all()  # both ways of counting were taken
    np.testing.assert_array_equal(m.impostors.histogram, np.bincount(bin_index(scores[impostor]), minlength=1 << 16))


def _feed(stream, chunks):
    """Each chunk of (scores, probe ids, template ids) to the stream as the matching pass feeds it:
    every pair when exact, else moments, histogram, a sample (every other pair) and top candidates."""
    for s, p, t in chunks:
        if stream.exact:
            stream.add_exact(s, p, t)
            continue
        stream.add_moments(len(s), float(s.sum()), float(np.dot(s, s)))
        stream.add_histogram(bin_counts(s))
        stream.add_sample(s[::2], p[::2], t[::2])
        above = s > stream.floor
        stream.offer_top(s[above], p[above], t[above])


def _summaries_equal(a, b):
    assert (a.n, a.total, a.total_sq, a.sample_fraction) == (b.n, b.total, b.total_sq, b.sample_fraction)
    for field in ("histogram", "top", "top_probe", "top_template", "sample", "sample_probe"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("exact_limit", [None, 100])  # every pair kept; summarised (a top of 50 kept)
def test_the_stream_result_changes_nothing_and_sees_later_additions(exact_limit):
    rng = np.random.default_rng(7)
    chunks = [(np.round(rng.uniform(-1, 1, 120), 3), rng.integers(0, 40, 120), rng.integers(0, 30, 120))
              for _ in range(4)]
    n = sum(len(c[0]) for c in chunks)
    stream = ImpostorStream(n, top_limit=50, exact_limit=exact_limit, sample_size=60)
    _feed(stream, chunks[:2])
    first, again = stream.result(), stream.result()
    _summaries_equal(first, again)
    kept = first.histogram.copy()
    _feed(stream, chunks[2:])
    later = stream.result()
    np.testing.assert_array_equal(first.histogram, kept)  # a result is not the stream's running state
    whole = ImpostorStream(n, top_limit=50, exact_limit=exact_limit, sample_size=60)
    _feed(whole, chunks)
    _summaries_equal(later, whole.result())
    assert later.n == n and later.exact == (exact_limit is None)
    every = np.concatenate([c[0] for c in chunks])
    np.testing.assert_array_equal(later.histogram, bin_counts(every))
    np.testing.assert_array_equal(later.top[:50], np.sort(every)[::-1][:50])
