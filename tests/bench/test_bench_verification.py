"""bench verification end to end: the real EdgeFace-xxs float weights on 300 ORL pairs (half
same person), the same pairs as .bin, pairs.txt and CSV. ORL is not LFW: a file named lfw.bin
gets the published LFW figure beside ours, and the number is NOT expected to match it."""
import pytest

from facediag.bench.verification import PUBLISHED, bench_verification
from facediag.render import write_all
from facediag.results import BenchReport, load_result
from helpers import orl_pairs, write_orl_bin


@pytest.fixture(scope="module")
def report(float_weights, orl_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("ver")
    pairs = orl_pairs()
    write_orl_bin(orl_root, d / "orl_pairs.bin", pairs)
    (d / "lfw.bin").write_bytes((d / "orl_pairs.bin").read_bytes())
    (d / "orl_txt.txt").write_text("".join(f"s{s}\t{a}\t{b}\n" if s == t else f"s{s}\t{a}\ts{t}\t{b}\n"
                                             for s, a, t, b in pairs))
    (d / "orl_csv.csv").write_text("path1,path2,same\n" + "".join(
        f"s{s}/{a}.pgm,s{t}/{b}.pgm,{int(s == t)}\n" for s, a, t, b in pairs))
    files = [d / "orl_pairs.bin", d / "lfw.bin", d / "orl_txt.txt", d / "orl_csv.csv"]
    rep = bench_verification([float_weights], files, images_root=orl_root, cache_dir=d / "cache", progress=False)
    rep.out_dir = d
    return rep


def test_accuracy_well_above_chance_and_the_same_from_every_format(report):
    assert [r["set"] for r in report.rows] == ["orl_pairs", "lfw", "orl_txt", "orl_csv"]
    first = report.rows[0]
    assert first["n_pairs"] == 300 and (first["n_genuine"], first["n_impostor"]) == (150, 150)
    assert 0.85 < first["accuracy"] <= 1.0 and first["accuracy_std"] > 0
    assert 0.9 < first["auc"] <= 1.0 and 1.0 < first["xnorm"] < 20
    # 135 impostors per training split cannot support FAR 1e-3: the number is kept and flagged.
    assert first["val_unsupported"].startswith("VAL@FAR 0.001 not supported by 135 impostors per split")
    assert report.settings["flip"] is True  # the EdgeFace preset's published protocol: flip-sum
    # .bin, pairs.txt and CSV of the same pairs: the same pixels, so the same folds and numbers.
    for r in report.rows[1:]:
        assert r["fold_accuracies"] == first["fold_accuracies"], r["set"]
        assert r["fold_thresholds"] == first["fold_thresholds"]
        assert r["accuracy"] == first["accuracy"] and r["auc"] == pytest.approx(first["auc"])


def test_published_figure_only_where_the_set_name_matches(report):
    by_name = {}
    for r in report.rows:
        by_name.setdefault(r["set"], r)
    assert "published" not in by_name["orl_pairs"] and "published_delta_pp" not in by_name["orl_pairs"]
    lfw = by_name["lfw"]
    assert lfw["variant"] == "edgeface_xxs"
    assert lfw["published"] == pytest.approx(PUBLISHED["edgeface_xxs"]["lfw"] / 100)
    # ORL pairs under the name lfw: the difference is shown, and is not expected to be small.
    assert lfw["published_delta_pp"] == pytest.approx(lfw["accuracy"] * 100 - 99.57)


def test_each_image_embedded_once_per_view(report):
    # 300 pairs over at most 400 ORL faces: the two .bin files share every encoded image and the
    # pairs.txt and CSV every file, so at most 2 × 400 images × 2 views reach the model.
    batches = report.settings["model_forward_batches"]
    (calls,) = batches.values()
    assert calls <= -(-2 * 400 * 2 // 64) + 4  # four sets, each with a last partial batch


def test_renders_in_every_format_and_reads_back(report):
    paths = write_all(report, report.out_dir / "out")
    md = paths["md"].read_text()
    assert "10-fold, consecutive folds" in md and "± is the std over folds" in md and "flip on" in md
    assert "99.57" in md  # the published LFW figure beside ours
    assert "(not supported)" in md and "not supported by 135 impostors per split" in md
    html = paths["html"].read_text()
    assert "Verification sets (reference protocol)" in html
    back = load_result(paths["json"], BenchReport)
    assert back.kind == "verification" and back.rows == report.rows
