"""--distractors are people in no gallery: a distractor folder that holds enrolled people (the gallery
folder itself, an enrolled person's other photos, the same id zero-padded or in another case) is
refused in one line (exit 2), as subject-overlap reads such ids as one person."""
import shutil

import pytest
from helpers import face_like, write_folders_dataset
from PIL import Image

from facediag.data.index import index_dataset
from facediag.data.protocol import build_protocol
from facediag.errors import DataError


@pytest.fixture
def enrolled(tmp_path):
    return write_folders_dataset(tmp_path / "enrolled", subjects=4, images=5)


def _proto(enrolled, distractors):
    return build_protocol(index_dataset(enrolled), distractor_index=index_dataset(distractors), gallery_per_subject=3)


def test_the_gallery_folder_itself_as_distractors_is_refused(enrolled):
    with pytest.raises(DataError, match=r"4 of 4 distractor subject\(s\) are enrolled in the gallery "
                                        r"\(first: p1, p2, p3\); a distractor must be someone in no gallery"):
        _proto(enrolled, enrolled)


def test_an_enrolled_persons_other_photos_are_refused(enrolled, tmp_path):
    other = tmp_path / "other"
    write_folders_dataset(other, subjects=1, images=0)  # p1's folder, then new photos of p1
    for i in range(3):
        Image.fromarray(face_like(9000 + i)).save(other / "p1" / f"new{i}.png")
    (other / "P01").mkdir()  # the same id, zero-padded and in capitals: one person to subject-overlap
    Image.fromarray(face_like(9100)).save(other / "P01" / "x.png")
    (other / "stranger").mkdir()
    Image.fromarray(face_like(9200)).save(other / "stranger" / "y.png")
    with pytest.raises(DataError, match=r"2 of 3 distractor subject\(s\) are enrolled .*first: P01 \(enrolled as "
                                        r"p1\), p1\)"):
        _proto(enrolled, other)
    shutil.rmtree(other / "p1")
    shutil.rmtree(other / "P01")
    proto = _proto(enrolled, other)  # people in no gallery: accepted
    assert [p.subject for p in proto.probes][-1] == "distractor:stranger"


def test_cli_refuses_enrolled_distractors_in_one_line(enrolled, tmp_path):
    from click.testing import CliRunner

    from helpers import CARD, traced_tiny_net

    from facediag.cli import cli

    card = tmp_path / "tiny-card.toml"
    card.write_text(CARD)
    res = CliRunner().invoke(cli, ["run", "subject-overlap", "-w", str(traced_tiny_net(tmp_path / "tiny.pt")),
                                   "--card", str(card), "--data", str(enrolled), "--distractors", str(enrolled),
                                   "--device", "cpu", "--cache-dir", str(tmp_path / "cache")])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "are enrolled in the gallery" in lines[0], res.output
