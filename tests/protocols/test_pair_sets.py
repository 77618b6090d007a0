"""Pair sets: .bin written here and read back identically, hostile .bin refused with nothing
run, LFW pairs.txt and CSV parsing on small hand-written files."""
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from facediag.cli import cli
from facediag.data.images import load_face
from facediag.errors import DataError
from facediag.protocols.pairs import load_pair_set, read_bin, set_name

import hostile_pickles as hp


def orl_on_canvas(path: Path, fmt: str = "PNG") -> bytes:
    """An ORL face padded to the 112×112 canvas (as facediag pads it) and encoded."""
    im = Image.open(path).convert("L")
    canvas = Image.new("L", (112, 112))
    canvas.paste(im, ((112 - im.width) // 2, 0))
    buf = io.BytesIO()
    canvas.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def orl_pairs(orl_root):
    """Ten pairs of ORL files, alternately same and different person."""
    pairs = []
    for k in range(10):
        s = k + 1
        if k % 2 == 0:
            pairs.append((orl_root / f"s{s}/1.pgm", orl_root / f"s{s}/2.pgm", True))
        else:
            pairs.append((orl_root / f"s{s}/3.pgm", orl_root / f"s{s + 1}/4.pgm", False))
    return pairs


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_bin_of_png_bytes_reads_back_identically(orl_pairs, tmp_path, protocol):
    bins = [orl_on_canvas(p) for a, b, _ in orl_pairs for p in (a, b)]
    issame = [same for *_, same in orl_pairs]
    path = tmp_path / "CFP-FP.bin"
    path.write_bytes(pickle.dumps((bins, issame), protocol=protocol))
    ps = read_bin(path)
    assert ps.name == "cfp_fp" and ps.kind == "bin" and ps.n_pairs == 10
    assert ps.issame.tolist() == issame
    assert ps.first.tolist() == list(range(0, 20, 2)) and ps.second.tolist() == list(range(1, 20, 2))
    # Pixels: exactly what facediag's loader makes of the original ORL file (padded, not stretched).
    for img, (a, b, _) in zip(ps.images[0::2], orl_pairs):
        assert torch.equal(img.load(), load_face(a))
    assert len({img.key for img in ps.images}) == 20


def test_bin_of_numpy_uint8_arrays_and_bool_array(orl_pairs, tmp_path):
    encoded = [orl_on_canvas(p, "JPEG") for a, b, _ in orl_pairs for p in (a, b)]
    bins = [np.frombuffer(e, dtype=np.uint8) for e in encoded]          # as cv2.imencode leaves them
    issame = np.array([same for *_, same in orl_pairs])
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(pickle.dumps((bins, issame), protocol=pickle.HIGHEST_PROTOCOL))
    ps = read_bin(path)
    assert ps.issame.tolist() == issame.tolist()
    want = torch.from_numpy(np.asarray(Image.open(io.BytesIO(encoded[3])).convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(ps.images[3].load(), want.float() / 255)


def test_bin_shape_errors(tmp_path):
    path = tmp_path / "x.bin"
    for obj, needle in [(([b"a"], [True]), "1 images for 1 pairs"), ((["a", "b"], [True]), "not encoded image"),
                        (([b"a", b"b"], [2]), "not a boolean"), ({"a": 1}, "expected (images, issame)"),
                        (([np.zeros((4, 4), np.uint8)] * 2, [True]), "not encoded image bytes")]:
        path.write_bytes(pickle.dumps(obj))
        with pytest.raises(DataError, match=None) as e:
            read_bin(path)
        assert needle in str(e.value), str(e.value)


class _Reduce:
    """A real ``__reduce__`` gadget as pickle.dumps writes it (STACK_GLOBAL, protocol 5)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_bins(marker: Path) -> dict[str, bytes]:
    wrap = lambda fragment: hp.pickle_bytes(hp.tup(hp.list_of(fragment, hp.s("x")), hp.list_of(hp.NEWTRUE)))  # noqa: E731
    out = {name: wrap(gadget) for name, gadget in hp.gadgets(marker).items()}
    out["a numpy gadget (not an array rebuilder)"] = wrap(hp.call(
        hp.g("numpy.testing._private.utils.runstring"), hp.s(f"open({str(marker)!r}, 'w').close()"), hp.EMPTY_DICT))
    out["__reduce__ to os.system"] = pickle.dumps(([_Reduce(marker), b"x"], [True]), protocol=5)
    out["a class instance"] = wrap(hp.obj("__main__.Config", hp.dict_of(x=hp.i(1))))
    out["persistent id"] = hp.pickle_bytes(hp.s("0") + b"Q")
    return out


@pytest.mark.parametrize("name", sorted(_hostile_bins(Path("/m"))))
def test_hostile_bin_refused_exit_2_and_nothing_runs(name, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "lfw.bin"
    path.write_bytes(_hostile_bins(marker)[name])
    with pytest.raises(DataError, match="refused"):
        read_bin(path)
    # The command refuses it before any model is loaded (the weights file need not even exist).
    res = CliRunner().invoke(cli, ["bench", "verification", "-w", str(tmp_path / "none.pt"), "--pairs", str(path)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "refused" in lines[0], res.stderr
    assert not marker.exists()


def test_set_names():
    assert [set_name(p) for p in ("lfw.bin", "AgeDB-30.bin", "cfp_fp.bin", "my pairs.csv")] == \
        ["lfw", "agedb_30", "cfp_fp", "my_pairs"]


# ------------------------------------------------------------------------------ pairs.txt
def _lfw_named_copy(orl_root: Path, dest: Path, people=range(1, 5)) -> Path:
    """ORL people as LFW names them: ROOT/s1/s1_0001.png ..."""
    for s in people:
        (dest / f"s{s}").mkdir(parents=True)
        for n in range(1, 11):
            Image.open(orl_root / f"s{s}/{n}.pgm").save(dest / f"s{s}/s{s}_{n:04d}.png")
    return dest


PAIRS_TXT = """2\t2
s1\t1\t2
s2\t3\t4
s1\t5\ts3\t6
s2\t7\ts4\t8
s3\t1\t9
s4\t2\t10
s1\t1\ts2\t1
s3\t2\ts4\t2
"""


@pytest.mark.parametrize("naming", ["lfw", "orl"])
def test_pairs_txt_parses(orl_root, tmp_path, naming):
    root = _lfw_named_copy(orl_root, tmp_path / "img") if naming == "lfw" else orl_root
    path = tmp_path / "pairs.txt"
    path.write_text(PAIRS_TXT)
    ps = load_pair_set(path, root)
    assert ps.kind == "pairs.txt" and ps.n_pairs == 8
    assert ps.issame.tolist() == [True, True, False, False] * 2
    assert ps.fold_ids.tolist() == [0] * 4 + [1] * 4
    names = [(ps.images[a].name, ps.images[b].name) for a, b in zip(ps.first, ps.second)]
    suffix = (lambda s, n: f"s{s}/s{s}_{n:04d}.png") if naming == "lfw" else (lambda s, n: f"s{s}/{n}.pgm")
    assert names[0] == (suffix(1, 1), suffix(1, 2))
    assert names[2] == (suffix(1, 5), suffix(3, 6))
    assert names[6] == (suffix(1, 1), suffix(2, 1))
    assert ps.images[ps.first[0]] is ps.images[ps.first[6]]  # s1 image 1 listed once


@pytest.mark.parametrize("text,needle", [
    ("2\t3\ns1\t1\t2\n", "the header says 2 folds of 2 × 3 pairs"),
    ("s1\t1\t2\ts3\t4\n", "line 1 has 5 fields"),
    ("s1\t1\t99\n", "1 image(s) not found"),
    ("../s1\t1\t2\n", "not a person's name"),
    ("3\ns1\t1\t2\n", "the header says 3 pairs"),
])
def test_pairs_txt_errors(orl_root, tmp_path, text, needle):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DataError) as e:
        load_pair_set(path, orl_root)
    assert needle in str(e.value), str(e.value)


def test_pairs_txt_needs_images_root(tmp_path):
    (tmp_path / "pairs.txt").write_text("s1 1 2\n")
    with pytest.raises(DataError, match="needs --images"):
        load_pair_set(tmp_path / "pairs.txt")


# ------------------------------------------------------------------------------ CSV
def test_csv_parses_with_folds_and_header(orl_root, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("path1,path2,same,fold\ns1/1.pgm,s1/2.pgm,1,0\ns1/3.pgm,s2/1.pgm,false,0\n"
                    "s3/1.pgm,s3/2.pgm,same,1\ns3/3.pgm,s4/1.pgm,different,1\n")
    ps = load_pair_set(path, orl_root)
    assert ps.kind == "csv" and ps.issame.tolist() == [True, False, True, False]
    assert ps.fold_ids.tolist() == [0, 0, 1, 1]
    assert ps.images[ps.second[1]].name == "s2/1.pgm"
    # Without a header, without folds, paths relative to the CSV's own folder.
    (tmp_path / "a.png").write_bytes(orl_on_canvas(orl_root / "s1/1.pgm"))
    (tmp_path / "b.png").write_bytes(orl_on_canvas(orl_root / "s1/2.pgm"))
    plain = tmp_path / "plain.csv"
    plain.write_text("a.png,b.png,1\nb.png,a.png,0\n")
    ps = load_pair_set(plain)
    assert ps.fold_ids is None and ps.issame.tolist() == [True, False] and len(ps.images) == 2


@pytest.mark.parametrize("text,needle", [
    ("s1/1.pgm,s1/2.pgm,1\ns1/1.pgm,s1/3.pgm,maybe\n", "line 2: same is 'maybe'"),
    ("a,b,c\ns1/1.pgm,s1/2.pgm,1\n", "the header must be path1,path2,same"),
    ("s1/1.pgm,../../x.pgm,1\n", "is outside"),
    ("s1/1.pgm,s1/2.pgm,1,0\ns1/1.pgm,s1/3.pgm,1\n", "a fold on every line or on none"),
    ("s1/1.pgm,s1/nope.pgm,1\n", "1 image(s) not found"),
])
def test_csv_errors(orl_root, tmp_path, text, needle):
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    with pytest.raises(DataError) as e:
        load_pair_set(path, orl_root)
    assert needle in str(e.value), str(e.value)
