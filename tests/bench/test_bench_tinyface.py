"""bench tinyface on a miniature TinyFace test split in the released layout (tests/tinyface_tree.py:
ORL faces (AT&T) as tiny originals and as an aligned copy, small synthetic distractors, the two
.mat lists written by scipy.io.savemat), end to end through the CLI with the real EdgeFace-xxs
float weights; the protocol's figures equal an independent numpy implementation written here
from the definitions, rank by rank and mAP; hostile .mat files are one line, exit 2, nothing run."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli_helpers import one_line_exit_2
from tinyface_tree import ALIGNED, DISTRACTOR_FACES, MATCH, N_SYNTHETIC, PROBES, cell, write_lists, write_tinyface_tree

from facediag.cli import cli
from facediag.data.images import load_face, normalize
from facediag.data.tinyface import DISTRACTOR_ID, read_tinyface
from facediag.errors import DataError
from facediag.models import load_checkpoint
from facediag.render import render
from facediag.results import BenchReport, load_result

D = -100


@pytest.fixture(scope="module")
def tree(orl_root, tmp_path_factory):
    return write_tinyface_tree(tmp_path_factory.mktemp("tinyface") / "root", orl_root)


def copy_of(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / "root"))


def bench(*args, **kw):
    res = CliRunner().invoke(cli, ["bench", "tinyface", *map(str, args)], **kw)
    return res


# ------------------------------------------------------------------ the loader: lists, folders, identities

def test_the_split_as_the_release_lays_it_out(tree):
    split = read_tinyface(tree, ALIGNED)
    n_distractors = len(DISTRACTOR_FACES) + N_SYNTHETIC
    assert (len(split.probe_names), len(split.match_names), len(split.distractor_names)) == \
        (len(PROBES), len(MATCH), n_distractors)
    assert split.probe_ids.tolist() == [s for s, _ in PROBES]           # the .mat's order and ids
    ids = split.gallery_ids
    assert ids[:len(MATCH)].tolist() == [s for s, _ in MATCH] and (ids[len(MATCH):] == DISTRACTOR_ID).all()
    assert "1_99.jpg" in split.distractor_names  # named like person 1, yet nobody's mate
    assert all(p.suffix == ".png" and ALIGNED in p.parts for p in split.probe_inputs + split.gallery_inputs)
    d = split.describe()
    assert d["ignored_files"] == {"Gallery_Distractor": 1}  # Thumbs.db: not an image by the reference's suffixes
    assert d["probes_with_mate"] == len(PROBES) - 1
    raw = read_tinyface(tree)
    assert raw.aligned is None and raw.probe_inputs == raw.probe_originals


def test_lists_and_folders_that_disagree_are_refused(tree, tmp_path):
    root = copy_of(tree, tmp_path)
    testing = root / "tinyface" / "Testing_Set"
    shutil.copy(testing / "Probe" / "1_1.jpg", testing / "Probe" / "1_77.jpg")
    with pytest.raises(DataError, match=r"Probe: 1 image\(s\) that probe_img_ID_pairs.mat does not list"):
        read_tinyface(root)
    (testing / "Probe" / "1_77.jpg").unlink()
    (testing / "Gallery_Match" / "4_3.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of the 20 images in gallery_set are not in .*\(first: '4_3.jpg'\)"):
        read_tinyface(root)


def test_an_id_that_is_not_the_file_names_is_refused(tree, tmp_path):
    root = copy_of(tree, tmp_path)
    testing = root / "tinyface" / "Testing_Set"
    names = [f"{s}_{i}.jpg" for s, i in PROBES]
    ids = np.array([[float(s)] for s, _ in PROBES])
    ids[3, 0] = 7.0
    write_lists(testing, names, [f"{s}_{i}.jpg" for s, i in MATCH], probe_ids=ids)
    with pytest.raises(DataError, match=r"probe_set gives '2_2.jpg' the id 7, its file name says 2"):
        read_tinyface(root)


def test_an_incomplete_aligned_copy_and_a_path_for_its_name_are_refused(tree, tmp_path):
    root = copy_of(tree, tmp_path)
    (root / ALIGNED / "Gallery_Distractor" / "1_99.png").unlink()
    with pytest.raises(DataError, match=r"no aligned copy of 1 of the 36 Gallery_Distractor images .*'1_99.jpg'"):
        read_tinyface(root, ALIGNED)
    with pytest.raises(DataError, match="give the folder's name"):
        read_tinyface(root, "../elsewhere")
    with pytest.raises(DataError, match="no tinyface/Testing_Set folder"):
        read_tinyface(tmp_path)


# ------------------------------------------------------------------ an independent implementation

def independent(root: Path, aligned: bool, weights: Path) -> dict:
    """The protocol from its definitions, in numpy: folders listed, identity from the name, every
    distractor nobody's, raw(img) + raw(flip(img)) normalised, inner product, a full sort per probe
    (ties: non-mates first), CMC over probes with a mate, AP as the release's compute_AP loop."""
    testing = root / "tinyface" / "Testing_Set"

    def listing(sub):
        return sorted(p for p in (testing / sub).iterdir() if p.suffix in (".jpg", ".png", ".jpeg"))

    def inputs(paths, sub):
        return [root / ALIGNED / sub / (p.stem + ".png") for p in paths] if aligned else paths

    probes, match, distractors = listing("Probe"), listing("Gallery_Match"), listing("Gallery_Distractor")
    probe_ids = np.array([int(p.name.split("_")[0]) for p in probes])
    gallery_ids = np.array([int(p.name.split("_")[0]) for p in match] + [D] * len(distractors))
    model = load_checkpoint(weights).model.eval()

    def embed(paths):
        x = torch.stack([load_face(p) for p in paths])
        with torch.inference_mode():
            raw = model(normalize(x)) + model(normalize(torch.flip(x, dims=[3])))
        return (raw / raw.norm(dim=1, keepdim=True)).double().numpy()

    scores = embed(inputs(probes, "Probe")) @ embed(inputs(match, "Gallery_Match")
                                                    + inputs(distractors, "Gallery_Distractor")).T
    ranks, aps = [], []
    for p, pid in enumerate(probe_ids):
        mate = gallery_ids == pid
        if not mate.any():
            continue
        order = np.lexsort((mate, -scores[p]))
        hits = np.flatnonzero(mate[order]) + 1  # 1-based positions of the mates
        ranks.append(hits[0])
        ap, old_recall, old_precision = 0.0, 0.0, 1.0
        for n in range(1, hits[-1] + 1):
            found = int((hits <= n).sum())
            recall, precision = found / len(hits), found / n
            ap += (recall - old_recall) * (old_precision + precision) / 2
            old_recall, old_precision = recall, precision
        aps.append(ap)
    ranks = np.array(ranks)
    return {"cmc": {k: float(np.mean(ranks <= k)) for k in (1, 5, 10, 20)}, "map": float(np.mean(aps)),
            "n_mated": len(ranks), "ranks": ranks}


@pytest.fixture(scope="module")
def runs(tree, float_weights, tmp_path_factory):
    """The CLI on the aligned copy (reports written) and on the originals, one shared cache."""
    d = tmp_path_factory.mktemp("runs")
    out = {}
    for name, extra in (("aligned", ["--aligned-dir", ALIGNED, "--out", d / "out"]), ("originals", [])):
        res = bench("-w", float_weights, "--root", tree, "--cache-dir", d / "cache", "--quiet", "--json", *extra)
        assert res.exit_code == 0, res.output + res.stderr
        out[name] = json.loads(res.stdout)
    out["dir"] = d
    return out


@pytest.mark.slow
@pytest.mark.parametrize("which", ["aligned", "originals"])
def test_the_protocol_equals_an_independent_implementation(runs, tree, float_weights, which):
    row = runs[which]["rows"][0]
    ref = independent(tree, which == "aligned", float_weights)
    for k in (1, 5, 10, 20):
        assert row[f"rank{k}"] == ref["cmc"][k], (k, row[f"rank{k}"], ref["cmc"][k])
    assert row["map"] == pytest.approx(ref["map"], abs=1e-12)
    assert (row["n_probes"], row["n_mated"], row["n_unmated"]) == (len(PROBES), ref["n_mated"], 1)
    assert (row["n_gallery"], row["n_match"], row["n_distractors"]) == (len(MATCH) + 36, len(MATCH), 36)
    # not a trivially easy miniature: some probe is beaten by a distractor or another person
    assert row["rank1"] < 1.0 or which == "aligned"
    assert (ref["ranks"] > 1).any() or which == "aligned"


@pytest.mark.slow
def test_aligned_faces_beat_the_tiny_originals_and_the_report_says_which_ran(runs):
    aligned, originals = runs["aligned"], runs["originals"]
    assert aligned["rows"][0]["rank1"] > originals["rows"][0]["rank1"]
    assert "aligned_pad_0.1_pad_high/ embedded" in aligned["dataset"]["protocol"]
    assert "bicubic" in originals["dataset"]["protocol"]
    assert any("not comparable" in n and "#172" in n for n in originals["notes"])
    assert not any("#172" in n for n in aligned["notes"])
    st = aligned["settings"]
    assert st["flip"] is True and st["fusion"] == "pre_norm_vector_add" and st["ranks"] == [1, 5, 10, 20]
    assert [p["model"] for p in st["published"]] == ["AdaFace IR101 WebFace12M", "AdaFace IR101 WebFace4M",
                                                     "AdaFace IR101 MS1MV2", "CurricularFace IR101 MS1MV2"]
    assert [(p["rank1"], p["rank5"]) for p in st["published"]] == [(72.29, 74.97), (72.02, 74.52),
                                                                   (68.21, 71.54), (63.68, 67.65)]
    assert "published" not in aligned["rows"][0]  # EdgeFace's card names no published row


@pytest.mark.slow
def test_each_probe_carries_size_blur_norm_and_the_quality_section(runs):
    q = runs["aligned"]["rows"][0]["by_quality"]
    assert q["n"] == len(PROBES) - 1 and q["threshold"] == 0.35  # the mated probes; EdgeFace's threshold
    # the planted widths 12, 16, 20, 28, 40, 56 (cycled over the 20 mated probes): bins <16, 16–24, ...
    assert [b["n"] for b in q["size_bins"]] == [4, 7, 3, 3, 3]
    assert set(q["edc"]) == {"size", "blur", "norm"} and q["edc"]["size"]["rank1_error"]["n"] == len(PROBES) - 1


@pytest.mark.slow
def test_every_format_renders_and_reads_back(runs):
    out = runs["dir"] / "out"
    assert sorted(p.name for p in out.iterdir()) == ["bench-tinyface.html", "bench-tinyface.json",
                                                     "bench-tinyface.junit.xml", "bench-tinyface.md"]
    back = load_result(out / "bench-tinyface.json", BenchReport)
    assert back.kind == "tinyface" and back.rows == runs["aligned"]["rows"]
    md = render(back, "md")
    assert "TinyFace closed-set identification (21 probes, gallery 56)" in md
    assert "| published | AdaFace IR101 WebFace12M | 72.29 | 74.97 |" in md
    assert "Accuracy by native face size" in md and "Error versus discard" in md
    html = render(back, "html")
    assert "CurricularFace IR101 MS1MV2" in html and "pre_norm_vector_add" in html


@pytest.mark.slow
def test_a_card_names_the_published_row_and_the_difference_is_shown(tree, float_weights, runs, tmp_path, decodes):
    from facediag.bench.tinyface import bench_tinyface

    card = tmp_path / "card.toml"
    card.write_text('name = "adaface-ir101-webface12m"\nfamily = "edgeface"\n')  # EdgeFace's input: cache hits
    rep = bench_tinyface([float_weights], tree, aligned_dir=ALIGNED, cards=[card], cache_dir=runs["dir"] / "cache",
                         progress=False)
    row = rep.rows[0]
    assert row["rank1"] == runs["aligned"]["rows"][0]["rank1"]
    assert row["published"]["model"] == "AdaFace IR101 WebFace12M" and row["published"]["rank1"] == 72.29
    assert row["published_delta_pp"]["rank1"] == pytest.approx(row["rank1"] * 100 - 72.29)
    assert row["published_delta_pp"]["rank5"] == pytest.approx(row["rank5"] * 100 - 74.97)
    delta = f"{row['published_delta_pp']['rank1']:+.2f}"
    assert f"| AdaFace IR101 WebFace12M | 72.29 / 74.97 | {delta} |" in render(rep, "md")
    # the card keeps EdgeFace's input, so every embedding came from the cache: no aligned face decoded
    assert not [p for p in decodes if ALIGNED in p]


@pytest.mark.slow
def test_unreadable_files_are_left_out_and_said(tree, float_weights, runs, tmp_path):
    from facediag.bench.tinyface import bench_tinyface

    root = copy_of(tree, tmp_path)
    (root / ALIGNED / "Gallery_Distractor" / "1021_1.png").write_bytes(b"not an image")
    (root / "tinyface" / "Testing_Set" / "Probe" / "3_1.jpg").write_bytes(b"not an image")  # the original only
    rep = bench_tinyface([float_weights], root, aligned_dir=ALIGNED, cache_dir=runs["dir"] / "cache", progress=False)
    row = rep.rows[0]
    assert row["n_unreadable"] == 1 and row["n_gallery"] == len(MATCH) + 35 and row["n_probes"] == len(PROBES)
    assert row["unreadable"][0].startswith(f"{ALIGNED}/Gallery_Distractor/1021_1.png: ")
    assert row["by_quality"]["probes_left_out"] == 1 and row["by_quality"]["n"] == len(PROBES) - 2
    assert any("1 image(s) unreadable" in n for n in rep.notes)


# ------------------------------------------------------------------ hostile .mat: one line, exit 2, nothing run

def _v73(path):
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64 HDF5 schema 1.00 .".ljust(512) + b"\x89HDF\r\n\x1a\n")


def _wrong_keys(path):
    from scipy.io import savemat
    savemat(path, {"probes": cell(["1_1.jpg"]), "probe_ids": np.array([[1.0]])})


def _dicts(path):
    from scipy.io import savemat
    objects = np.empty((1, 1), dtype=object)
    objects[0, 0] = {"name": "1_1.jpg"}
    savemat(path, {"probe_set": objects, "probe_ids": np.array([[1.0]])})


def _huge(path):
    import struct

    from scipy.io import savemat
    savemat(path, {"probe_set": cell(["1_1.jpg"]), "probe_ids": np.zeros((3, 7))})
    path.write_bytes(path.read_bytes().replace(struct.pack("<ii", 3, 7), struct.pack("<ii", 99_999, 99_999)))


def _garbage(path):
    path.write_bytes(bytes(range(256)) * 4)


@pytest.mark.parametrize("spoil, needle", [(_v73, "v7.3 (HDF5)"), (_wrong_keys, "no variable 'probe_set'"),
                                           (_dicts, "not a file name"), (_huge, "declares 99999×99999 elements"),
                                           (_garbage, "not a readable MATLAB v5 file")],
                         ids=["v7.3", "wrong-keys", "object-array-of-dicts", "huge-size", "garbage"])
def test_a_hostile_mat_is_one_line_exit_2_and_nothing_runs(tree, float_weights, tmp_path, monkeypatch, spoil, needle):
    import facediag.embed

    def no_forward(*a, **k):
        raise AssertionError("an image was embedded")
    monkeypatch.setattr(facediag.embed.Embedder, "forward", no_forward)
    root = copy_of(tree, tmp_path)
    spoil(root / "tinyface" / "Testing_Set" / "probe_img_ID_pairs.mat")
    res = bench("-w", float_weights, "--root", root, "--aligned-dir", ALIGNED, "--cache-dir", tmp_path / "cache",
                "--quiet")
    one_line_exit_2(res, "probe_img_ID_pairs.mat", needle)
    assert not (tmp_path / "cache").exists()
