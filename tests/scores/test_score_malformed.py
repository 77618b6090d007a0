"""A malformed score file, in each format, is one line naming the file and the line (OpenBR's binary
matrix: the header line, or the row and column), exit 2, through `facediag bench scores`; and the
command's own refusals (an option of another format, an output over an input)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from cli_helpers import invoke, one_line_exit_2

GOOD4 = "a a p1 0.9\nb a p1 0.3\na b p2 0.2\nb b p2 0.8\n"


def bee(path, kind, rows, *, first=b"S2", size_line=None, magic=struct.pack("<i", 0x12345678), body=None):
    """A BEE matrix (openbr/core/bee.cpp's layout), with parts replaced to break it."""
    rows = np.asarray(rows)
    n, m = rows.shape
    data = rows.astype("<f4" if kind == "F" else np.uint8).tobytes() if body is None else body
    head = size_line if size_line is not None else f"M{kind} {n} {m} ".encode()
    path.write_bytes(first + b"\nt.xml\nq.xml\n" + head + magic + b"\n" + data)
    return path


TEXT_CASES = [  # (file name, --format or None, content, what the line must say)
    ("fields.txt", None, "a a p1 0.9\nb a p1 0.3\nb a 0.4\n", "line 3 has 3 field(s); a bob 4-column"),
    ("word.txt", None, "a a p1 0.9\nb a p1 high\n", "line 2: score 'high' is not a number"),
    ("nan.txt", None, "a a p1 0.9\n# note\nb a p1 nan\n", "line 3: score 'nan' is not a finite number"),
    ("quote.txt", None, 'a a p1 0.9\nb a "p 1 0.3\n', "line 2"),
    ("five.txt", "bob5", "a m a p1 0.9\nb m a p1\n", "line 2 has 4 field(s); a bob 5-column"),
    ("latin1.txt", None, b"a a p1 0.9\nb a caf\xe9 0.3\n", "line 2 is not UTF-8"),
    ("nul.txt", None, b"a a p1 0.9\nb a p\x001 0.3\n", "line 2 holds a NUL byte"),
    ("long.txt", None, b"a a p1 0.9\n" + b"x" * 70000 + b"\n", "line 2 is longer than 64 KiB"),
    ("noheader.csv", None, "probe_key,probe_subject_id,score\np1,a,0.9\n",
     "line 1: the header has no bio_ref_subject_id"),
    ("width.csv", None, "probe_key,probe_subject_id,bio_ref_subject_id,score\np1,a,a,0.9\np1,a,b\n",
     "line 3 has 3 field(s), the header 4"),
    ("score.csv", None, "probe_key,probe_subject_id,bio_ref_subject_id,score\n\np1,a,a,0.9\np1,a,b,x\n",
     "line 4: score 'x' is not a number"),
    ("empty.csv", None, "", "empty: no header"),
    ("one.txt", None, "0.9\n0.8\n", "give --format pyeer with --impostors"),
]


@pytest.mark.parametrize("name,fmt,content,needle", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_malformed_text_files(tmp_path, name, fmt, content, needle):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    args = ["bench", "scores", path] + (["--format", fmt] if fmt else [])
    line = one_line_exit_2(invoke(*args), needle)
    assert str(path) in line


def test_malformed_pyeer_lists(tmp_path):
    gen, imp = tmp_path / "gen.txt", tmp_path / "imp.txt"
    gen.write_text("0.9\n0.8\n")
    imp.write_text("0.1\n\n0.2\n")  # pyeer's float('') fails on an empty line: so does this reader, by name
    one_line_exit_2(invoke("bench", "scores", gen, "--impostors", imp), f"{imp}: line 2 is empty")
    imp.write_text("0.1\nx y z\n")
    one_line_exit_2(invoke("bench", "scores", gen, "--impostors", imp, "--format", "pyeer"),
                    f"{imp}: line 2: score 'z' is not a number")
    one_line_exit_2(invoke("bench", "scores", gen, "--format", "pyeer"), "give the impostor list with --impostors")
    one_line_exit_2(invoke("bench", "scores", tmp_path / "missing", "--format", "pyeer"), "no such score file")


def test_malformed_openbr_matrices(tmp_path):
    scores, mask = [[0.9, 0.1], [0.2, 0.8]], [[0xFF, 0x7F], [0x7F, 0xFF]]
    bee(tmp_path / "m.mask", "B", mask)
    cases = [  # (name, how the matrix is broken, what the line must say)
        ("first", {"first": b"X2"}, "line 1 is b'X2\\n', not S2"),
        ("magic", {"magic": b"\x00\x00\x00\x01"}, "line 4: the magic number is 0x00000001"),
        ("size", {"size_line": b"MF two 2 "}, "line 4 is not 'MF rows cols'"),
        ("short", {"body": b"\0" * 12}, "12 bytes follow the header; its 2×2 float32 matrix is 16"),
        ("inf", {"rows": [[0.9, np.inf], [0.2, 0.8]]}, "row 0, column 1: the score is inf"),
    ]
    for name, broken, needle in cases:
        bee(tmp_path / f"{name}.mask", "B", mask)
        path = bee(tmp_path / f"{name}.mtx", "F", broken.pop("rows", scores), **broken)
        line = one_line_exit_2(invoke("bench", "scores", path), needle)
        assert str(path) in line
    good = bee(tmp_path / "m.mtx", "F", scores)
    bee(tmp_path / "m.mask", "B", [[0xFF, 0x7F], [0x10, 0xFF]])
    one_line_exit_2(invoke("bench", "scores", good), f"{tmp_path / 'm.mask'}: row 1, column 0: byte 0x10 is neither")
    bee(tmp_path / "m.mask", "B", [[0xFF, 0x7F, 0x7F]])
    one_line_exit_2(invoke("bench", "scores", good), "a 1×3 mask for the 2×2 matrix")
    bee(tmp_path / "m.mask", "B", mask, first=b"D2")
    one_line_exit_2(invoke("bench", "scores", good), "line 1 is b'D2\\n', not S2 (similarity): not an OpenBR mask")
    (tmp_path / "m.mask").unlink()
    one_line_exit_2(invoke("bench", "scores", good), "no such OpenBR mask (give it with --mask)")


def test_refusals(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(GOOD4)
    one_line_exit_2(invoke("bench", "scores", path, "--format", "bob4", "--mask", tmp_path / "x.mask"),
                    "--mask is OpenBR's mask")
    one_line_exit_2(invoke("bench", "scores", path, "--format", "bob4", "--impostors", path), "--impostors is pyeer's")
    one_line_exit_2(invoke("bench", "scores", path, "--fars", "0.1,2"), "FAR targets between 0 and 1")
    one_line_exit_2(invoke("bench", "scores", path, "--out", path), "--out")  # the report folder is the input file
    res = invoke("bench", "scores", path, "--json")
    assert res.exit_code == 0, res.output
