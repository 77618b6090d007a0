"""bench verification end to end: the real EdgeFace-xxs float weights on 300 ORL pairs (half
same person), the same pairs as .bin, pairs.txt and CSV. ORL is not LFW: a file named lfw.bin
gets the published LFW figure beside ours, and the number is NOT expected to match it."""
import io
import pickle
import random

import pytest
from PIL import Image

from facediag.bench.verification import PUBLISHED, bench_verification
from facediag.render import write_all
from facediag.results import BenchReport, load_result


def _orl_pairs(n=300, seed=0):
    rng = random.Random(seed)
    pairs = []
    for k in range(n):
        s = rng.randint(1, 40)
        if k % 2 == 0:
            a, b = rng.sample(range(1, 11), 2)
            pairs.append((s, a, s, b))
        else:
            t = rng.choice([x for x in range(1, 41) if x != s])
            pairs.append((s, rng.randint(1, 10), t, rng.randint(1, 10)))
    return pairs


def _png_on_canvas(path):
    im = Image.open(path).convert("L")
    canvas = Image.new("L", (112, 112))
    canvas.paste(im, ((112 - im.width) // 2, 0))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def report(float_weights, orl_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("ver")
    pairs = _orl_pairs()
    issame = [s == t for s, _, t, _ in pairs]
    bins = [_png_on_canvas(orl_root / f"s{s}/{n}.pgm") for s, a, t, b in pairs for s, n in ((s, a), (t, b))]
    blob = pickle.dumps((bins, issame), protocol=pickle.HIGHEST_PROTOCOL)
    (d / "orl_pairs.bin").write_bytes(blob)
    (d / "lfw.bin").write_bytes(blob)
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
    html = paths["html"].read_text()
    assert "Verification sets (reference protocol)" in html
    back = load_result(paths["json"], BenchReport)
    assert back.kind == "verification" and back.rows == report.rows
