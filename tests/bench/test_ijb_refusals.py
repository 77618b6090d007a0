"""bench ijb refuses what it cannot score honestly (one line, exit 2): every crop dropped (unreadable,
landmarks outside the image or all at one point), with how many and why."""

import pytest

pytest.importorskip("skimage")

from ijb_tree import write_ijb_tree

from cli_helpers import invoke, one_line_exit_2
from helpers import CARD, face_like, traced_tiny_net


def _face(p, i):
    return face_like(100 * p + i)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    card = d / "tiny-card.toml"
    card.write_text(CARD)
    return traced_tiny_net(d / "tiny.pt"), card


@pytest.fixture
def tree(tmp_path):
    return write_ijb_tree(tmp_path / "IJBC", _face, people=range(1, 3))


def _bench(model, root, tmp_path):
    weights, card = model
    return invoke("bench", "ijb", "-w", weights, "--card", card, "--root", root, "--device", "cpu",
                  "--cache-dir", tmp_path / "cache", "--quiet", "--json")


def _rewrite_landmarks(root, how):
    pts = root / "meta" / "ijbc_name_5pts_score.txt"
    lines = []
    for line in pts.read_text().splitlines():
        f = line.split()
        lines.append(" ".join([f[0], *how(f[1:11]), f[11]]))
    pts.write_text("\n".join(lines) + "\n")


def test_every_crop_unreadable_is_refused_with_the_count_and_reason(model, tree, tmp_path):
    for crop in (tree / "loose_crop").iterdir():
        crop.write_bytes(b"not an image")
    line = one_line_exit_2(_bench(model, tree, tmp_path), "no template pair can be scored", "18 of 18 crops dropped")
    assert "18 × " in line and "cannot identify image file" in line, line


@pytest.mark.parametrize("how, why", [
    (lambda xy: [str(float(v) + 5000) for v in xy], "none of the five landmarks lies inside the image"),
    (lambda xy: ["1e300"] * 10, "none of the five landmarks lies inside the image"),
    (lambda xy: ["-7.5"] * 10, "none of the five landmarks lies inside the image"),
    (lambda xy: ["50"] * 10, "the five landmarks do not define a similarity transform"),
], ids=["shifted-outside", "extreme", "negative-point", "one-point"])
def test_every_crop_with_unusable_landmarks_is_refused(model, tree, tmp_path, how, why):
    _rewrite_landmarks(tree, how)
    line = one_line_exit_2(_bench(model, tree, tmp_path), "no template pair can be scored", "18 of 18 crops dropped")
    assert f"18 × {why}" in line, line


def test_some_crops_dropped_still_runs(model, tree, tmp_path):
    (tree / "loose_crop" / "1_1.png").write_bytes(b"not an image")
    res = _bench(model, tree, tmp_path)
    assert res.exit_code == 0, res.output


def _rewrite_scores(root, score_of):
    pts = root / "meta" / "ijbc_name_5pts_score.txt"
    lines = [line.split() for line in pts.read_text().splitlines()]
    pts.write_text("".join(" ".join([*f[:11], score_of(i)]) + "\n" for i, f in enumerate(lines)))


@pytest.mark.parametrize("score_of, count", [(lambda i: "0", 18), (lambda i: "0.9" if i % 2 else "-0.9", 9)],
                         ids=["all-zero", "mixed-sign"])
def test_non_positive_detector_scores_are_refused_naming_the_fix(model, tree, tmp_path, score_of, count):
    """Weighting by a zero or negative detector score makes templates meaningless (AUC 0.5 or 0.12 where
    proper scores give 1.0): refused before any model loads, naming --no-detector-score."""
    _rewrite_scores(tree, score_of)
    one_line_exit_2(invoke("bench", "ijb", "-w", tmp_path / "none.pt", "--root", tree),
                    f"{count} of 18 detector scores are zero or negative", "in row 1,", "--no-detector-score")
    res = invoke("bench", "ijb", "-w", model[0], "--card", model[1], "--root", tree, "--device", "cpu",
                 "--cache-dir", tmp_path / "cache", "--quiet", "--json", "--no-detector-score")
    assert res.exit_code == 0, res.output


def test_the_report_lists_dropped_crops_without_another_crops_path(model, tree, tmp_path):
    """Crops of one content are decoded once: the reason listed for each names no other crop's file."""
    import json

    for name in ("1_1.png", "2_1.png"):  # same bytes, same landmarks (image 1 of each person)
        (tree / "loose_crop" / name).write_bytes(b"not an image")
    res = _bench(model, tree, tmp_path)
    assert res.exit_code == 0, res.output
    one = next(r for r in json.loads(res.stdout)["rows"] if r["protocol"] == "1:1")
    assert one["n_unreadable"] == 2 and len(one["unreadable"]) == 2
    for line in one["unreadable"]:
        name = line.split(":", 1)[0]
        assert str(tree) not in line and "<crop>" in line and name in ("1_1.png", "2_1.png"), line
