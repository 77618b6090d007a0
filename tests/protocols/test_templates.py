"""Template protocols by known answers: pooling computed by hand from a fake model whose
embedding of each crop is known; the reference's three switches; 1:1 pair scores (kept and
streamed); 1:N TPIR/FPIR on a hand-made case, including the public-script bug's case."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

from ijb_tree import TEMPLATES, write_ijb_tree  # noqa: E402

from facediag.bench.ijb import template_features  # noqa: E402
from facediag.data.ijb import Gallery, read_ijb  # noqa: E402
from facediag.embed import Embedder  # noqa: E402
from facediag.metrics.verification import verification_metrics  # noqa: E402
from facediag.protocols.templates import score_pairs, search  # noqa: E402

PEOPLE = range(1, 4)
DIM = 6


def levels(p, i):
    """The two grey levels of crop (p, i): left half, right half of the aligned face."""
    r = 10 * p + i
    return (37 * r + 11) % 200 + 20, (53 * r + 90) % 200 + 20


def split_face(p, i):
    a, b = levels(p, i)
    face = np.zeros((112, 112, 3), np.uint8)
    face[:, :56], face[:, 56:] = a, b
    return face


TABLE = torch.tensor(np.random.default_rng(0).normal(size=(256, DIM)) * np.linspace(0.5, 3, 256)[:, None])
TABLE2 = torch.tensor(np.random.default_rng(1).normal(size=(256, DIM)))


class Lookup(torch.nn.Module):
    """A fake embedder: TABLE[level at (56, 36)] + 0.5·TABLE2[level at (56, 75)], so a crop's
    embedding, and its mirror image's, are known by hand (the two columns swap under a flip)."""

    def forward(self, x):
        grey = (x[:, 0] * 0.5 + 0.5) * 255
        left, right = grey[:, 56, 36].round().long(), grey[:, 56, 75].round().long()
        return (TABLE[left] + 0.5 * TABLE2[right]).float()


def by_hand(meta, flip, norm, det, skip=()):
    """The reference's pooling written out: image -> media mean -> template sum -> unit."""
    feats = {}
    for r, name in enumerate(meta.names):
        if r in skip:
            continue
        p, i = (int(x) for x in Path(name).stem.split("_"))
        a, b = levels(p, i)
        e = (TABLE[a] + 0.5 * TABLE2[b]).numpy()
        if flip:
            e = e + (TABLE[b] + 0.5 * TABLE2[a]).numpy()
        if not norm:
            e = e / np.linalg.norm(e)
        if det:
            e = e * meta.scores[r]
        feats.setdefault(int(meta.templates[r]), {}).setdefault(int(meta.medias[r]), []).append(e)
    out = {}
    for t, media in feats.items():
        s = sum(np.mean(v, axis=0) for v in media.values())
        out[t] = s / np.linalg.norm(s)
    return out


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    return read_ijb(write_ijb_tree(tmp_path_factory.mktemp("ijb") / "IJBC", split_face, PEOPLE), "IJBC")


def pooled(meta, rows_per_chunk=1000, **switches):
    def embedder_for():
        return Embedder(Lookup(), torch.device("cpu"), fingerprint=None, batch_size=5, progress=False)

    templates, feats, unreadable, _ = template_features(embedder_for, meta, rows_per_chunk=rows_per_chunk, **switches)
    return templates, feats, unreadable


SWITCHES = {"default": {}, "no flip": {"flip": False}, "no norm": {"norm_score": False},
            "no detector score": {"detector_score": False}}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_template_features_are_the_reference_pooling_computed_by_hand(meta, name):
    sw = SWITCHES[name]
    templates, feats, unreadable = pooled(meta, **sw)
    assert not unreadable
    hand = by_hand(meta, sw.get("flip", True), sw.get("norm_score", True), sw.get("detector_score", True))
    assert templates.tolist() == sorted(hand)
    np.testing.assert_allclose(feats, np.stack([hand[t] for t in templates.tolist()]), atol=1e-5)
    if name != "default":  # every switch changes the templates (a switch that does nothing fails here)
        _, default, _ = pooled(meta)
        assert np.abs(feats - default).max() > 1e-2


def test_chunks_of_whole_media_give_the_same_templates(meta):
    _, whole, _ = pooled(meta, rows_per_chunk=1000)
    _, small, _ = pooled(meta, rows_per_chunk=2)
    np.testing.assert_allclose(small, whole, atol=1e-12)


def test_an_unreadable_crop_is_left_out_of_its_media(tmp_path):
    root = write_ijb_tree(tmp_path / "IJBC", split_face, PEOPLE)
    (root / "loose_crop" / "2_4.png").write_bytes(b"not an image")
    m = read_ijb(root, "IJBC")
    templates, feats, unreadable = pooled(m)
    bad = m.names.index("2_4.png")
    assert list(unreadable) == [bad]
    hand = by_hand(m, True, True, True, skip={bad})
    np.testing.assert_allclose(feats, np.stack([hand[t] for t in templates.tolist()]), atol=1e-5)
    # the planted failure: counting the unreadable crop in its media's mean moves template 22
    _, with_it, _ = pooled(read_ijb(write_ijb_tree(tmp_path / "ok", split_face, PEOPLE), "IJBC"))
    assert np.abs(with_it[templates.tolist().index(22)] - feats[templates.tolist().index(22)]).max() > 1e-3


def test_pair_scores_are_template_cosines(meta):
    templates, feats, _ = pooled(meta)
    hand = by_hand(meta, True, True, True)
    pairs = score_pairs(feats, templates, meta.pair_t1, meta.pair_t2, meta.pair_label)
    cos = np.array([hand[a] @ hand[b] for a, b in zip(meta.pair_t1.tolist(), meta.pair_t2.tolist())])
    np.testing.assert_allclose(np.sort(pairs.genuine), np.sort(cos[meta.pair_label]), atol=1e-6)
    np.testing.assert_allclose(np.sort(pairs.impostors.scores()), np.sort(cos[~meta.pair_label]), atol=1e-6)
    assert pairs.n_dropped == 0 and len(pairs.genuine) == len(PEOPLE) * math.comb(len(TEMPLATES), 2)


def test_streamed_impostors_give_the_kept_tar_at_far():
    rng = np.random.default_rng(3)
    n_t, n_p = 3000, 40000
    feats = rng.normal(size=(n_t, 16))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    t1, t2 = rng.integers(0, n_t, n_p), rng.integers(0, n_t, n_p)
    label = rng.random(n_p) < 0.05
    feats[t2[label]] = feats[t1[label]] * 0.8 + 0.2 * feats[t2[label]]  # genuine pairs alike
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    ids = np.arange(n_t)
    kept = score_pairs(feats, ids, t1, t2, label, chunk=7000)
    streamed = score_pairs(feats, ids, t1, t2, label, chunk=7000, exact_limit=1000, sample_size=500)
    assert kept.impostors.exact and not streamed.impostors.exact
    fars = (1e-3, 1e-2, 1e-1, 0.6)
    a, b = (verification_metrics(p.genuine, p.impostors, fars=fars).tar_at_far for p in (kept, streamed))
    for x, y in zip(a[:3], b[:3]):  # within the kept top: exact
        assert x.supported and x.tar == y.tar and x.threshold == y.threshold
    assert abs(a[3].threshold - b[3].threshold) <= 2 ** -15 and abs(a[3].tar - b[3].tar) < 0.01  # a bin edge


# ----------------------------------------------------------------------------- 1:N
def _scored(rows, gallery_ids):
    """Features whose cosines are exactly ``rows`` [P, S]: the gallery is the unit basis, each
    probe its score row plus the rest of its unit length in a dimension no template uses."""
    rows = np.asarray(rows, float)
    s = rows.shape[1]
    g = np.eye(s, s + 1)
    p = np.c_[rows, np.sqrt(1 - (rows ** 2).sum(axis=1))]
    return np.r_[g, p], np.r_[gallery_ids, 1000 + np.arange(len(rows))]


def _hand_case():
    """10 gallery subjects; 10 mated probes: 5 found (0.8, rival 0.5), 2 above the threshold but
    second to a rival (0.6 vs 0.65), 3 first but below it (0.5); 100 non-mated probes whose best
    scores are 0.100, 0.105, …, 0.595 (FPIR 0.1: the 11th highest, 0.545, is the last rejected)."""
    rows, subjects = [], []
    for i in range(10):
        r = np.zeros(10)
        g, rival = (0.8, 0.5) if i < 5 else (0.6, 0.65) if i < 7 else (0.5, 0.0)
        r[i], r[(i + 1) % 10] = g, rival
        rows.append(r)
        subjects.append(i)
    for j in range(100):
        r = np.zeros(10)
        r[j % 10] = 0.1 + 0.005 * j
        rows.append(r)
        subjects.append(500 + j)
    return np.array(rows), np.array(subjects)


def _public_script_bug(rows, subjects, far):
    """What a public IJB 1:N script computed: the threshold from impostor PAIRS (the
    ceil(P·FAR)-th highest non-own score over all probes), TPIR without the rank-1 condition."""
    mated = subjects < 10
    own = np.where(mated, subjects, -1)
    impostor = [rows[i, j] for i in range(len(rows)) for j in range(10) if j != own[i]]
    th = sorted(impostor, reverse=True)[math.ceil(len(rows) * far) - 1]
    return float(np.mean(rows[mated, own[mated]] > th))


def test_tpir_at_fpir_on_a_hand_made_case_and_not_the_public_script_bug():
    rows, subjects = _hand_case()
    feats, templates = _scored(rows, np.arange(10))
    gallery = Gallery("G1", Path("g1.csv"), np.arange(10), np.arange(10))
    probes = Gallery("probe_mixed", Path("p.csv"), 1000 + np.arange(len(rows)), subjects)
    order = np.argsort(templates)
    r = search(feats[order], templates[order], gallery, probes)
    assert (r["n_mated"], r["n_nonmated"], r["n_gallery"]) == (10, 100, 10)
    assert r["rank1"] == pytest.approx(0.8) and r["rank5"] == 1.0
    assert r["tpir_at_fpir"]["0.1"] == pytest.approx(0.5)
    th = r["fpir_thresholds"]["0.1"]
    assert th["threshold"] == pytest.approx(0.545) and th["threshold"] > 0.545 and th["false_alarms"] == 10
    assert r["tpir_at_fpir"]["0.01"] is None and "needs >= 1000 non-mated probes" in r["tpir_unsupported"]["0.01"]
    # the case tells the two definitions apart: the public script's would read 0.7 here
    assert _public_script_bug(rows, subjects, 0.1) == pytest.approx(0.7)


def test_search_on_the_tree_mated_and_non_mated_per_gallery(meta):
    templates, feats, _ = pooled(meta)
    g1, g2 = meta.galleries
    r = search(feats, templates, g1, meta.probes)
    # G1 holds person 1 of PEOPLE 1..3: its 2 probe templates are mated, the 4 others are not
    assert (r["n_gallery"], r["n_mated"], r["n_nonmated"]) == (1, 2, 4)
    assert r["rank1"] == 1.0  # one template in the gallery: every mated probe finds it first
