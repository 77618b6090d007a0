"""IJB metadata: the reader on a miniature release, malformed lines refused as file:line (exit 2,
one line, before any model is loaded), and the alignment undoing a known similarity transform."""
import numpy as np
import pytest
from click.testing import CliRunner

from facediag.cli import cli
from facediag.errors import DataError

pytest.importorskip("skimage")

from ijb_tree import ARCFACE_TEMPLATE, TEMPLATES, known_transform, loose_crop, write_ijb_tree  # noqa: E402

from facediag.data.ijb import read_ijb  # noqa: E402
from facediag.data.landmarks import align_to_template  # noqa: E402


def _face(p, i):
    rng = np.random.default_rng(100 * p + i)
    from PIL import Image

    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((112, 112), Image.BICUBIC))


@pytest.fixture
def tree(tmp_path):
    return write_ijb_tree(tmp_path / "IJBC", _face, people=range(1, 5))


def test_reader_gives_rows_landmarks_scores_pairs_and_galleries(tree):
    meta = read_ijb(tree.parent, "ijbc")  # the folder holding IJBC/ works too, target in any case
    assert meta.root == tree and meta.target == "IJBC"
    n_rows = 4 * sum(len(v) for v in TEMPLATES.values())
    assert len(meta.names) == n_rows == len(meta.templates) == len(meta.scores)
    assert meta.names[0] == "1_1.png" and meta.templates[0] == 11 and meta.medias[0] == 110
    np.testing.assert_allclose(meta.landmarks[0], known_transform(1)(ARCFACE_TEMPLATE), atol=1e-4)
    np.testing.assert_allclose(meta.scores[:2], [0.55, 0.60])
    n_t = 4 * len(TEMPLATES)
    assert len(meta.pair_label) == n_t * (n_t - 1) // 2 and meta.pair_label.sum() == 4 * 3
    assert [g.name for g in meta.galleries] == ["G1", "G2"]
    assert meta.galleries[0].templates.tolist() == [11, 21] and meta.galleries[1].subjects.tolist() == [3, 4]
    assert meta.probes.templates.tolist() == [12, 13, 22, 23, 32, 33, 42, 43]


def test_ijbb_reads_its_s1_s2_galleries(tmp_path):
    root = write_ijb_tree(tmp_path / "IJBB", _face, people=range(1, 3), target="IJBB")
    assert [g.name for g in read_ijb(root, "IJBB").galleries] == ["S1", "S2"]


def test_one_to_n_files_are_optional(tmp_path):
    root = write_ijb_tree(tmp_path / "r", _face, people=range(1, 3), one_to_n=False)
    meta = read_ijb(root, "IJBC")
    assert meta.galleries == [] and meta.probes is None


def _edit(path, line_no, new):
    lines = path.read_text().splitlines()
    lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n")


MALFORMED = {
    "tid_mid fields": ("ijbc_face_tid_mid.txt", 3, "1_3.png 11", r"ijbc_face_tid_mid.txt:3: 2 fields, expected 3"),
    "tid_mid template": ("ijbc_face_tid_mid.txt", 2, "1_2.png eleven 110", r":2: template id 'eleven' is not a whole"),
    "tid_mid escape": ("ijbc_face_tid_mid.txt", 1, "../x.png 11 110", r":1: image name '../x.png' must be a path"),
    "5pts fields": ("ijbc_name_5pts_score.txt", 4, "1_4.png 1 2 3",
                    r"ijbc_name_5pts_score.txt:4: 4 fields, expected 12"),
    "5pts nan": ("ijbc_name_5pts_score.txt", 2, "1_2.png " + "1 " * 9 + "nan 0.5", r":2: landmark coordinate 'nan'"),
    "5pts order": ("ijbc_name_5pts_score.txt", 1, "1_2.png " + "1 " * 10 + "0.5", r":1: image '1_2.png', but row 1"),
    "5pts score": ("ijbc_name_5pts_score.txt", 5, "1_5.png " + "1 " * 10 + "high", r":5: detector score 'high'"),
    "pair label": ("ijbc_template_pair_label.txt", 7, "11 12 2", r"ijbc_template_pair_label.txt:7: label '2'"),
    "pair unknown": ("ijbc_template_pair_label.txt", 2, "11 999 0", r":2: template 999 has no image"),
    "gallery subject": ("ijbc_1N_gallery_G1.csv", 2, "11,x,1_1.png", r"ijbc_1N_gallery_G1.csv:2: subject id 'x'"),
    "probe unknown": ("ijbc_1N_probe_mixed.csv", 3, "77,1", r"ijbc_1N_probe_mixed.csv:3: template 77 has no image"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_line_is_named_by_file_and_line(tree, case):
    name, line_no, new, message = MALFORMED[case]
    _edit(tree / "meta" / name, line_no, new)
    with pytest.raises(DataError, match=message):
        read_ijb(tree, "IJBC")


def test_missing_crop_and_row_count_mismatch(tree):
    (tree / "loose_crop" / "2_3.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) named by ijbc_face_tid_mid.txt are missing \(first: 2_3.png"):
        read_ijb(tree, "IJBC")
    pts = tree / "meta" / "ijbc_name_5pts_score.txt"
    pts.write_text("\n".join(pts.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"35 rows, ijbc_face_tid_mid.txt has 36"):
        read_ijb(tree, "IJBC")


def test_cli_refuses_malformed_metadata_exit_2_one_line_before_loading_a_model(tree, tmp_path):
    _edit(tree / "meta" / "ijbc_template_pair_label.txt", 5, "11 12")
    res = CliRunner().invoke(cli, ["bench", "ijb", "-w", str(tmp_path / "none.pt"), "--root", str(tree),
                                   "--target", "IJBC"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ijbc_template_pair_label.txt:5: 2 fields" in lines[0]
    res = CliRunner().invoke(cli, ["bench", "ijb", "-w", str(tmp_path / "none.pt"), "--root", str(tmp_path / "no")])
    assert res.exit_code == 2 and "no meta/ folder" in res.stderr


def test_alignment_undoes_the_known_transform_and_wrong_landmarks_do_not(orl_root):
    from ijb_tree import orl_aligned

    for i in (1, 4, 8):
        face = orl_aligned(orl_root, 5, i)
        crop, lmk = loose_crop(face, i)
        inner = (slice(8, -8), slice(8, -8))
        err = np.abs(align_to_template(crop, lmk)[inner].astype(float) - face[inner]).mean()
        assert err < 4.0, err  # two bilinear resamplings of a face
        # the planted failure: the template points as if the crop were already aligned
        wrong = np.abs(align_to_template(crop, ARCFACE_TEMPLATE)[inner].astype(float) - face[inner]).mean()
        assert wrong > 5 * err, (wrong, err)


def test_a_probe_template_that_is_also_a_gallery_template_is_refused(tree, tmp_path):
    """Template 11 enrols person 1 in G1; probing with it would search it against itself (rank 1, cosine 1)."""
    probes = tree / "meta" / "ijbc_1N_probe_mixed.csv"
    probes.write_text(probes.read_text() + "11,1\n21,2\n")
    with pytest.raises(DataError, match=r"ijbc_1N_probe_mixed.csv: 2 probe template\(s\) are also templates of "
                                        r"gallery G1 \(ijbc_1N_gallery_G1.csv; first: 11, 21\)"):
        read_ijb(tree, "IJBC")
    res = CliRunner().invoke(cli, ["bench", "ijb", "-w", str(tmp_path / "none.pt"), "--root", str(tree)])
    assert res.exit_code == 2 and "searched against itself" in res.stderr, res.output
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
