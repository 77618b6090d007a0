"""Score files: each format written and read back gives the metrics of the scores themselves; files
built by hand to each tool's specification (bob.bio.base's score/load.py, OpenBR's bee.cpp, pyeer's
loader) read as those tools read them, with a hand-computed EER and AUC; a pair list gives no
identification; the summarised stream (more impostors than it keeps) stays within its bounds."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from facediag.errors import DataError, FacediagError
from facediag.metrics.identification import closed_set, open_set, summarize
from facediag.metrics.verification import verification_metrics
from facediag.scores import FORMATS, ScoreBlock, detect_format, open_scores, output_paths, summarise, write_scores

FARS = (0.1, 0.01)
OUT = {"bob4": "s.txt", "bob5": "s5.txt", "bob-csv": "s.csv", "openbr": "s.mtx", "pyeer": "lists"}


def synthetic(seed: int = 0, probes: int = 60, people: int = 12, strangers: int = 8):
    """Probe × template cosines: names with spaces and quotes, a few probes of nobody enrolled."""
    rng = np.random.default_rng(seed)
    templates = np.array([f"person {i}" for i in range(people)])
    subjects = np.array([templates[rng.integers(people)] for _ in range(probes - strangers)]
                        + [f"stranger {k}" for k in range(strangers)])
    scores = rng.normal(0.05, 0.2, (probes, people)).astype(np.float32)
    scores[subjects[:, None] == templates[None, :]] += np.float32(0.45)
    scores = np.clip(scores, -1, 1)
    labels = [f'dir {i}/img "{i}".png' if i % 3 == 0 else f"p{i}.png" for i in range(probes)]
    return templates, subjects, scores, labels


def blocks(subjects, scores, labels, step: int = 7):
    for a in range(0, len(scores), step):
        yield ScoreBlock(labels[a:a + step], subjects[a:a + step], scores[a:a + step])


def write(tmp_path, fmt, data, **kw):
    templates, subjects, scores, labels = data
    out = tmp_path / OUT[fmt]
    paths, n = write_scores(out, fmt, templates, len(scores), blocks(subjects, scores, labels, **kw))
    assert n == scores.size and all(p.is_file() for p in paths)
    return out


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.mark.parametrize("fmt", FORMATS)
def test_written_and_read_back_the_metrics_of_the_scores(tmp_path, data, fmt):
    templates, subjects, scores, _ = data
    same = subjects[:, None] == templates[None, :]
    ref = verification_metrics(scores[same].astype(float), scores[~same].astype(float), fars=FARS)
    out = write(tmp_path, fmt, data)
    assert detect_format(out) == fmt
    s = summarise(open_scores(out))
    v = s.verification(FARS)
    # every written score reads back as the float32 cosine itself: the metrics are identical, thresholds too
    assert (v.auc, v.eer, v.eer_threshold, v.n_genuine, v.n_impostor) == \
        (ref.auc, ref.eer, ref.eer_threshold, ref.n_genuine, ref.n_impostor)
    assert [(p.tar, p.threshold) for p in v.tar_at_far] == [(p.tar, p.threshold) for p in ref.tar_at_far]
    np.testing.assert_array_equal(v.roc_fpr, ref.roc_fpr)
    np.testing.assert_array_equal(v.roc_tpr, ref.roc_tpr)
    assert s.impostors.exact and s.scale is None
    if fmt == "pyeer":
        assert s.search is None and "name no probes" in s.no_search
        return
    m, want = s.search, summarize(scores.astype(float), subjects, templates)
    np.testing.assert_array_equal(m.mated, want.mated)
    np.testing.assert_array_equal(m.genuine, want.genuine)
    np.testing.assert_array_equal(m.ranks, want.ranks)
    np.testing.assert_array_equal(m.top_score, want.top_score)
    brute = (scores[want.mated] >= want.genuine[:, None]).sum(1)  # templates at least as close: the rank
    np.testing.assert_array_equal(m.ranks, brute)
    assert m.n_gallery == len(templates)


def test_the_formats_give_one_report(tmp_path, data):
    from facediag.bench.scores import bench_scores

    rows = {fmt: bench_scores(write(tmp_path / fmt, fmt, data), threshold=0.3).rows[0] for fmt in FORMATS}
    keys = [k for k in rows["bob4"] if k not in ("file", "format", "identification", "no_identification")]
    for fmt, row in rows.items():
        assert {k: row[k] for k in keys} == {k: rows["bob4"][k] for k in keys}, fmt
        if fmt != "pyeer":  # OpenBR's matrix names no identities: its worst searches are rows
            same = [k for k in row["identification"] if k != "worst_subjects" or fmt != "openbr"]
            assert {k: row["identification"][k] for k in same} == \
                {k: rows["bob4"]["identification"][k] for k in same}, fmt
    ident = rows["openbr"]["identification"]
    templates, subjects, scores, _ = data
    want = open_set(scores.astype(float), subjects, templates, threshold=0.3)  # the full matrix at once
    assert ident["n_nonmated"] == 8 and ident["open_set"]["threshold"] == 0.3
    assert (ident["open_set"]["tpir"], ident["open_set"]["fpir"]) == (want.dir, want.false_alarm_rate)
    assert ident["rank1"] == closed_set(scores, subjects, templates).rank_accuracy[1]
    assert rows["pyeer"]["identification"] is None and "pyeer" in rows["pyeer"]["no_identification"]


def test_what_the_writers_write(tmp_path):
    """The bytes each tool expects: bob's lines and header, OpenBR's header, magic, row-major float32
    and mask bytes, pyeer's one score a line."""
    templates, subjects = np.array(["a", "b"]), np.array(["a", "x y", "b"])
    scores = np.array([[0.5, 0.25], [0.125, -1.0], [0.75, 1.0]], dtype=np.float32)
    data = (templates, subjects, scores, ["p 1", "p2", "p3"])
    assert (tmp_path / "4" / "s.txt").parent.mkdir() is None
    text = write(tmp_path / "4", "bob4", data).read_text()
    assert text.splitlines()[:3] == ['a a "p 1" 0.5', 'b a "p 1" 0.25', 'a "x y" p2 0.125']
    assert write(tmp_path / "5", "bob5", data).read_text().splitlines()[0] == 'a a a "p 1" 0.5'
    csv_lines = write(tmp_path / "c", "bob-csv", data).read_text().splitlines()
    assert csv_lines[0] == "probe_key,probe_reference_id,probe_subject_id,bio_ref_reference_id,bio_ref_subject_id,score"
    assert csv_lines[1] == "p 1,p 1,a,a,a,0.5"
    mtx = write(tmp_path / "o", "openbr", data)
    head = b"S2\nUnknown_Target\nUnknown_Query\nMF 3 2 " + bytes([0x78, 0x56, 0x34, 0x12]) + b"\n"
    raw = mtx.read_bytes()
    assert raw.startswith(head) and np.array_equal(np.frombuffer(raw[len(head):], "<f4"), scores.ravel())
    mask = mtx.with_suffix(".mask").read_bytes()
    assert mask == head.replace(b"MF", b"MB") + bytes([0xFF, 0x7F, 0x7F, 0x7F, 0x7F, 0xFF])
    folder = write(tmp_path / "p", "pyeer", data)
    assert (folder / "genuine_scores.txt").read_text() == "0.5\n1.0\n"
    assert (folder / "impostor_scores.txt").read_text() == "0.25\n0.125\n-1.0\n0.75\n"


def test_a_failed_write_leaves_nothing(tmp_path, data):
    templates, subjects, scores, labels = data

    def failing():
        yield from blocks(subjects[:14], scores[:14], labels[:14])
        raise RuntimeError("the model failed on block 3")

    for fmt in FORMATS:
        with pytest.raises(RuntimeError):
            write_scores(tmp_path / OUT[fmt], fmt, templates, len(scores), failing())
    assert not any(p.is_file() for p in tmp_path.rglob("*")), list(tmp_path.rglob("*"))


def test_output_paths_and_refusals(tmp_path):
    assert output_paths(tmp_path / "a.mtx", "openbr") == [tmp_path / "a.mtx", tmp_path / "a.mask"]
    assert output_paths(tmp_path / "d", "pyeer") == [tmp_path / "d" / "genuine_scores.txt",
                                                     tmp_path / "d" / "impostor_scores.txt"]
    with pytest.raises(FacediagError, match="a .mtx file"):
        output_paths(tmp_path / "a.bin", "openbr")
    with pytest.raises(FacediagError, match="unknown score format"):
        output_paths(tmp_path / "a.txt", "bob6")
    with pytest.raises(DataError, match="line break"):
        write_scores(tmp_path / "a.txt", "bob4", np.array(["a\nb"]), 1,
                     iter([ScoreBlock(["p"], np.array(["a"]), np.zeros((1, 1), np.float32))]))


# ------------------------------------------------------------------------ files made by hand
# Three probes against alice, bob and carol: p1 is alice, p2 bob, p3 dave (enrolled nowhere).
#   p1: alice .9 (genuine), bob .5, carol .1;  p2: alice .2, bob .4 (genuine), carol .3;
#   p3: alice .35, bob .6, carol .05.
# Genuine {.9, .4}, impostors {.5, .1, .2, .3, .35, .6, .05}. Accepting score >= t, from the top:
# t=.9: FAR 0, FRR 1/2; t=.6: 1/7, 1/2; t=.5: 2/7, 1/2; t=.4: 2/7, 0. FAR - FRR goes from -3/14 to
# 2/7 between t=.5 and t=.4, where FAR stays 2/7: EER = 2/7, its threshold .4.
# AUC: .9 beats all 7 impostors, .4 beats 5 of them: 12/14. Ranks: p1 1 (.9 highest), p2 1 (.4 > .3,
# .2); p3 is a non-mated search whose best score is .6.
HAND = [("alice", "alice", "p1", .9), ("bob", "alice", "p1", .5), ("carol", "alice", "p1", .1),
        ("alice", "bob", "p2", .2), ("bob", "bob", "p2", .4), ("carol", "bob", "p2", .3),
        ("alice", "dave", "p3", .35), ("bob", "dave", "p3", .6), ("carol", "dave", "p3", .05)]
MATRIX = [[.9, .5, .1], [.2, .4, .3], [.35, .6, .05]]
MASK = [[0xFF, 0x7F, 0x7F], [0x7F, 0xFF, 0x7F], [0x7F, 0x7F, 0x7F]]


def bee(path, kind: str, rows, order: str = "<", first: bytes = b"S2", magic=0x12345678):
    """A BEE matrix as openbr/core/bee.cpp writes it: four header lines, then row-major data."""
    body = np.asarray(rows, dtype=f"{order}f4" if kind == "F" else np.uint8).tobytes()
    n, m = np.shape(rows)
    path.write_bytes(first + b"\nt.xml\nq.xml\n" + f"M{kind} {n} {m} ".encode() + struct.pack(f"{order}i", magic)
                     + b"\n" + body)
    return path


def hand_files(tmp_path):
    files = {}
    bob4 = tmp_path / "hand4.txt"
    bob4.write_text("# bob's older loader skipped comments\n\n" + "".join(f"{c} {r} {t} {s}\n" for c, r, t, s in HAND))
    files["bob4"] = (bob4, {})
    bob5 = tmp_path / "hand5.txt"
    bob5.write_text("".join(f"{c} model_{c} {r} {t} {s}\n" for c, r, t, s in HAND))
    files["bob5"] = (bob5, {})
    csv = tmp_path / "hand.csv"  # the columns bob's CSVScoreWriter writes, in another order, and one more
    csv.write_text("probe_key,bio_ref_subject_id,probe_subject_id,probe_attack_type,score\n"
                   + "".join(f"{t},{c},{r},,{s}\n" for c, r, t, s in HAND))
    files["bob-csv"] = (csv, {})
    bee(tmp_path / "hand.mask", "B", MASK)
    files["openbr"] = (bee(tmp_path / "hand.mtx", "F", MATRIX), {})
    bee(tmp_path / "dist.mask", "B", MASK, order=">")
    files["openbr-distance-big-endian"] = (bee(tmp_path / "dist.mtx", "F", -np.array(MATRIX), order=">",
                                               first=b"D2"), {})
    gen, imp = tmp_path / "gen.txt", tmp_path / "imp.txt"
    gen.write_text("0.9\np2 0.4\n")  # pyeer reads the last space-separated field
    imp.write_text("".join(f"{s}\n" for c, r, t, s in HAND if c != r))
    files["pyeer"] = (gen, {"impostors": imp})
    return files


def test_files_made_by_hand_read_as_their_tools_read_them(tmp_path):
    for name, (path, kw) in hand_files(tmp_path).items():
        s = summarise(open_scores(path, **kw))
        v = s.verification((0.1,))
        assert (len(s.genuine), s.impostors.n) == (2, 7), name
        assert v.eer == pytest.approx(2 / 7) and v.auc == pytest.approx(12 / 14), name
        assert v.eer_threshold == pytest.approx(0.4), name
        if name == "pyeer":
            continue
        m = s.search
        assert m is not None, (name, s.no_search)
        assert m.mated.tolist() == [True, True, False] and m.ranks.tolist() == [1, 1], name
        assert m.top_score[2] == pytest.approx(0.6) and m.n_gallery == 3, name


def test_openbr_ignored_cells_and_nan(tmp_path):
    """0x00 cells are left out, and so are NaN scores (counted), as OpenBR's evaluation does."""
    mask = [row[:] for row in MASK]
    mask[2][2] = 0x00
    matrix = [row[:] for row in MATRIX]
    matrix[2][0] = float("nan")
    bee(tmp_path / "m.mask", "B", mask)
    s = summarise(open_scores(bee(tmp_path / "m.mtx", "F", matrix)))
    assert (s.ignored, s.nan, s.impostors.n, len(s.genuine)) == (1, 1, 5, 2)
    assert s.search.top_score[2] == pytest.approx(0.6)


def test_a_pair_list_is_no_search(tmp_path):
    """Each probe compared with a few entries (LFW-style pairs): verification only, and why."""
    path = tmp_path / "pairs.txt"
    path.write_text("a a p1 0.9\nb a p1 0.3\na b p2 0.1\nb b p2 0.8\nc c p3 0.7\n")
    s = summarise(open_scores(path))
    assert s.search is None and "'p1' is compared with 2 of the 3" in s.no_search
    # one entry twice and another never: the same count, but not every entry
    path.write_text("a a p1 0.9\nb a p1 0.3\na b p2 0.1\na b p2 0.8\n")
    s = summarise(open_scores(path))
    assert s.search is None and "'p2'" in s.no_search


def test_summarised_impostors_within_their_bounds(tmp_path):
    """More impostors than kept: a second pass summarises them (histogram, top, sample); the
    scores here lie outside [-1, 1] (a distance-like scale), read on a map and mapped back."""
    templates, subjects, scores, labels = synthetic(seed=3, probes=80, people=15)
    wide = (scores * 7 + 3).astype(np.float32)
    out = write(tmp_path, "bob4", (templates, subjects, wide, labels))
    exact = summarise(open_scores(out))
    kept = summarise(open_scores(out), exact_limit=200, top_limit=40, sample_size=100)
    assert exact.impostors.exact and not kept.impostors.exact and kept.scale is not None
    e, k = exact.verification(FARS), kept.verification(FARS)
    assert abs(k.eer - e.eer) <= k.eer_error_bound + 1e-12
    assert abs(k.auc - e.auc) <= k.auc_error_bound + 1e-12
    assert abs(k.eer_threshold - e.eer_threshold) <= 2 * k.score_resolution
    assert k.score_resolution == pytest.approx(2 ** -15 * kept.scale[1])
    tar = {p.far: p for p in e.tar_at_far}
    for p in k.tar_at_far:  # FAR 0.1: its threshold is a bin edge at most one bin stricter
        assert p.supported == tar[p.far].supported
        if p.supported:
            assert tar[p.far].threshold - 1e-9 <= p.threshold <= tar[p.far].threshold + k.score_resolution + 1e-9
    np.testing.assert_array_equal(kept.search.ranks, exact.search.ranks)
    assert kept.impostor_moments() == pytest.approx(exact.impostor_moments())
    assert len(kept.impostors.top) == 40  # the highest kept exactly, on the file's scale once mapped back
    assert kept.to_file_scale(kept.impostors.top) == pytest.approx(exact.impostors.top[:40], abs=1e-12)


def test_a_file_needs_both_kinds(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("a a p1 0.9\nb b p2 0.8\n")
    with pytest.raises(DataError, match="2 genuine and 0 impostor"):
        summarise(open_scores(path))


def test_pyeer_agrees_on_the_hand_made_and_written_lists(tmp_path, data):
    """pyeer's own ROC (pyeer.eer_stats) on the lists: the same AUC; facediag's EER (interpolated
    where FAR and FRR cross) inside pyeer's EER interval (the FAR/FRR pair at its crossing)."""
    from pyeer.eer_stats import calculate_roc, calculate_roc_auc, get_eer_values

    folder = write(tmp_path, "pyeer", data)
    read = [np.array([float(ln.strip().split(" ")[-1]) for ln in open(folder / name)])  # pyeer's reading
            for name in ("genuine_scores.txt", "impostor_scores.txt")]
    hand = (np.array([.9, .4]), np.array([s for c, r, t, s in HAND if c != r]))
    for genuine, impostor in (read, hand):
        _, fmr, fnmr = calculate_roc(genuine, impostor)
        _, low, high, _ = get_eer_values(fmr, fnmr)
        v = verification_metrics(genuine, impostor)
        assert v.auc == pytest.approx(calculate_roc_auc(fmr, fnmr), abs=1e-12)
        assert low - 1e-12 <= v.eer <= high + 1e-12
    v = summarise(open_scores(folder)).verification(FARS)
    assert v.auc == pytest.approx(calculate_roc_auc(*calculate_roc(*read)[1:]), abs=1e-12)


def test_the_report_renders_in_every_format(tmp_path, data):
    from facediag.bench.scores import bench_scores
    from facediag.render import render, write_all
    from facediag.results import BenchReport, load_result

    report = bench_scores(write(tmp_path, "bob-csv", data), fars=(0.1, 0.01, 1e-4))
    paths = write_all(report, tmp_path / "out")
    back = load_result(paths["json"], expect=BenchReport)
    assert back.as_dict() == report.as_dict() and back.kind == "scores"
    md = render(back, "md")
    assert "Verification from the score file" in md and "Identification from the score file" in md
    assert "TAR@FAR 0.0001: not reported" in md and "bob.bio.base CSV" in md
    assert render(back, "html").count("data:image/png;base64,") == 1  # the DET curve
    assert "facediag.bench.scores" in render(back, "junit")
