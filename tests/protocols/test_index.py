"""--index: faiss's flat index answers as the exact torch pass does; the approximate ones (IVF,
HNSW) have their recall against exact search measured and reported, and a planted poor index
shows in it and in the ranks; verification numbers never change with the index; a missing extra
is one line, exit 2, before any work."""
import importlib.util
import json

import numpy as np
import pytest

from facediag.errors import FacediagError
from facediag.metrics.identification import closed_set_from, l2_normalize
from facediag.protocols import index as index_mod
from facediag.protocols.index import Candidates, exact_top, recall, recall_sample
from facediag.protocols.matching import RANK_LIMIT, match, with_candidates

needs_faiss = pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss-cpu is not installed")


def _gallery(n_templates: int, n_probes: int, dim: int = 64, clusters: int = 40, seed: int = 0):
    """Clustered templates (people who look alike come in groups), probes near their own template,
    one in ten of an unenrolled person."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    templates = l2_normalize(centres[rng.integers(0, clusters, n_templates)]
                             + 0.5 * rng.standard_normal((n_templates, dim)).astype(np.float32))
    own = rng.integers(0, n_templates, n_probes)
    own[rng.random(n_probes) < 0.1] = -1
    near = np.where(own[:, None] >= 0, templates[np.maximum(own, 0)], templates[rng.integers(0, n_templates, n_probes)])
    probes = l2_normalize((near + 0.1 * rng.standard_normal((n_probes, dim))).astype(np.float32))
    return probes, templates, own


def _cmc(mt, n_probes):
    return closed_set_from(mt.summary(), np.zeros(n_probes, str)).cmc


@needs_faiss
@pytest.mark.parametrize("n_templates", [30, 2000])  # the whole gallery in the answer; the top RANK_LIMIT + 1
def test_faiss_flat_equals_exact(n_templates):
    probes, templates, own = _gallery(n_templates, 500)
    ids = np.arange(len(probes))
    exact = match(probes, templates, own, ids, thresholds=(0.5,))
    flat = match(probes, templates, own, ids, thresholds=(0.5,), index="faiss")
    assert exact.index is None and flat.index == {"index": "faiss", "params": {}}
    assert (exact.ranks > 1).any() and (exact.ranks == 1).any() and (~exact.mated).any()  # a real test
    np.testing.assert_array_equal(flat.ranks, exact.ranks)
    np.testing.assert_allclose(flat.top_score, exact.top_score, atol=1e-5)
    np.testing.assert_array_equal(flat.rival, exact.rival)
    np.testing.assert_allclose(flat.rival_score, exact.rival_score, atol=1e-5)
    np.testing.assert_array_equal(_cmc(flat, len(probes)), _cmc(exact, len(probes)))
    # the verification side is the exact pass's, whatever the index
    np.testing.assert_array_equal(flat.genuine, exact.genuine)
    np.testing.assert_array_equal(flat.false_accepts[0.5], exact.false_accepts[0.5])
    np.testing.assert_array_equal(flat.impostors.top, exact.impostors.top)


@needs_faiss
@pytest.mark.parametrize("kind", ["faiss-ivf", "faiss-hnsw"])
def test_approximate_index_reports_its_recall(kind):
    probes, templates, own = _gallery(4000, 1500)
    mt = match(probes, templates, own, np.arange(len(probes)), index=kind)
    info = mt.index
    assert info["index"] == kind and info["recall_probes"] == index_mod.RECALL_PROBES
    expected = {"faiss-ivf": {"nlist", "nprobe", "trained_on"}, "faiss-hnsw": {"M", "efConstruction", "efSearch"}}
    assert set(info["params"]) == expected[kind]
    assert info["index_recall_at_1"] >= 0.95 and info["index_recall_at_10"] >= 0.9
    exact = match(probes, templates, own, np.arange(len(probes)))
    assert np.mean(mt.ranks == exact.ranks) >= 0.95


@needs_faiss
def test_a_poor_index_shows_in_its_recall_and_its_ranks(monkeypatch):
    """Planted: an IVF scanning one cell of many on unclustered data misses most best templates."""
    monkeypatch.setattr(index_mod, "IVF_NPROBE", 1)
    probes, templates, own = _gallery(4000, 400, clusters=4000, seed=1)
    mt = match(probes, templates, own, np.arange(len(probes)), index="faiss-ivf")
    assert mt.index["params"]["nprobe"] == 1 and mt.index["index_recall_at_10"] < 0.6
    exact = match(probes, templates, own, np.arange(len(probes)))
    # the recall is what it says: the index's top 10 against an independent exact top 10
    truth = exact_top(probes, templates, 10)
    assert recall_sample(400).tolist() == list(range(400))
    assert (exact.ranks[exact.mated] == 1).mean() > 0.9
    missed = mt.mated & (mt.ranks == RANK_LIMIT + 1)
    assert missed.sum() > 0.2 * mt.mated.sum()   # own templates the index never returned rank "beyond"
    assert (mt.ranks[exact.mated] == 1).mean() < (exact.ranks[exact.mated] == 1).mean()
    import faiss

    nlist = mt.index["params"]["nlist"]
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(64), 64, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(templates)
    ivf.add(templates)
    ivf.nprobe = 1
    found = ivf.search(probes, 10)[1]
    hits = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert mt.index["index_recall_at_10"] == pytest.approx(hits, abs=0.02)


def test_ranks_from_candidates_known_answer():
    """Four probes, gallery of 100: found at place 2; found with a tie (counts against); missed by
    the index (beyond); unenrolled (0). Genuine scores and the verification side stay the pass's."""
    rng = np.random.default_rng(0)
    templates = l2_normalize(rng.standard_normal((100, 8)).astype(np.float32))
    own = np.array([5, 6, 7, -1])
    probes = l2_normalize(templates[[5, 6, 7, 8]] + 0.01)
    mt = match(probes, templates, own, np.arange(4))
    g = mt.genuine
    ids = np.full((4, RANK_LIMIT + 1), -1)
    scores = np.full((4, RANK_LIMIT + 1), -np.inf, np.float32)
    ids[:, :3] = [[9, 5, 10], [11, 6, 12], [13, 14, 15], [16, 17, 18]]
    scores[:, :3] = [[g[0] + .1, g[0], g[0] - .1], [g[1], g[1], g[1] - .1], [.9, .8, .7], [.6, .5, .4]]
    out = with_candidates(mt, Candidates(ids, scores, "faiss-test"))
    assert out.ranks.tolist() == [2, 2, RANK_LIMIT + 1, 0]
    assert out.rival.tolist() == [9, 11, 13, 16]
    np.testing.assert_allclose(out.top_score, scores[:, 0])
    np.testing.assert_array_equal(out.genuine, mt.genuine)
    assert out.index == {"index": "faiss-test", "params": {}}


def test_recall_known_answer():
    exact = np.array([[1, 2] + list(range(10, 18)), [3, 4] + list(range(20, 28))])
    found = np.array([[2, 1] + list(range(10, 18)), [3, 9] + list(range(30, 38))])
    assert recall(found, exact) == {1: 0.5, 10: 0.55}  # (0 + 1) / 2; (10 + 1) / 20
    assert recall(found[:, :1], exact[:, :1]) == {1: 0.5}  # a gallery under 10: no recall@10


def test_missing_extra_is_one_line_exit_2_before_work(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from facediag.cli import cli
    from facediag.session import Session, SessionConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "faiss" else real(name, *a))
    weights = tmp_path / "missing.pt"  # never opened: the option is refused first
    for cmd in (["run-all", "-w", weights], ["compare", weights, weights], ["bench", "accuracy", "-w", weights]):
        res = CliRunner().invoke(cli, [str(a) for a in (*cmd, "--data", tmp_path, "--index", "faiss-hnsw")])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, (cmd, res.output)
        assert lines[0].startswith("error: ") and "pip install 'facediag[faiss]'" in lines[0]
    with pytest.raises(FacediagError, match="faiss-cpu"):
        Session(SessionConfig(data=tmp_path, index="faiss"))
    with pytest.raises(FacediagError, match="choose one of"):
        Session(SessionConfig(data=tmp_path, index="annoy"))


@needs_faiss
@pytest.mark.slow
def test_run_all_on_orl_with_indexes(float_weights, orl_root, tmp_path):
    """Real faces, real model: faiss answers as exact; HNSW's recall is in the report with its
    parameters and a note; the verification check does not move."""
    import facediag

    checks = ["identification", "verification"]

    def metrics(index):
        report = facediag.run_all(float_weights, orl_root, checks=checks, vlr_size=16, progress=False,
                                  cache_dir=tmp_path, index=index)
        doc = json.loads(report.to_json())
        assert (doc["dataset"].get("index") == index) == (index != "exact")
        return {r["name"]: r for r in doc["results"]}

    exact, flat, hnsw = metrics("exact"), metrics("faiss"), metrics("faiss-hnsw")
    assert flat["identification"]["metrics"] == exact["identification"]["metrics"]
    assert flat["identification"]["data"]["cmc"] == exact["identification"]["data"]["cmc"]
    m = hnsw["identification"]["metrics"]
    assert "index_recall_at_1" not in exact["identification"]["metrics"]
    assert m["index_recall_at_1"] >= 0.95 and m["index_recall_at_10"] >= 0.95
    notes = " ".join(f["message"] for f in hnsw["identification"]["findings"])
    assert "faiss-hnsw (M=32, efConstruction=80, efSearch=128)" in notes and "recall against exact" in notes
    for r in (flat, hnsw):
        assert r["verification"]["metrics"] == exact["verification"]["metrics"]

    from facediag.bench import bench_accuracy

    bench = bench_accuracy([float_weights], orl_root, resolutions="16", n_boot=100, progress=False,
                           cache_dir=tmp_path, index="faiss-hnsw")  # the same embeddings: cached above
    row = bench.rows[0]
    assert row["rank1"] == pytest.approx(m["rank1"], abs=1e-4) and row["index_recall_at_1"] == m["index_recall_at_1"]
    assert any("--index faiss-hnsw" in n for n in bench.notes)


@pytest.mark.parametrize("chunk_cells", [1 << 22, 20_000, 3_000, 51])
def test_exact_top_in_tiles_equals_a_full_sort(chunk_cells):
    # Blocks of probes against tiles of templates (as with a million templates), top-k merged.
    rng = np.random.default_rng(0)
    templates = rng.standard_normal((3000, 64)).astype(np.float32)
    probes = rng.standard_normal((700, 64)).astype(np.float32)
    expected = np.argsort(-(probes @ templates.T), 1, kind="stable")[:, :51]
    np.testing.assert_array_equal(exact_top(probes, templates, 51, chunk_cells=chunk_cells), expected)
