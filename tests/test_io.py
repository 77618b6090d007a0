"""Atomic writes and the clean-up of temp files a killed write left behind."""
import os

import pytest

from facediag import io
from facediag.io import atomic_save, atomic_write_text, remove_stale_temps


def test_atomic_write_leaves_only_the_target(tmp_path):
    atomic_write_text(tmp_path / "a.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_stale_temps_of_the_target_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "ft.resume.pt"
    target.write_bytes(b"state")
    stale = [tmp_path / ".ft.resume.pt.k3x9_q2a.tmp", tmp_path / ".ft.resume.pt.a.tmp"]
    keep = [tmp_path / ".ft.resume.pt.bak.k3x9_q2a.tmp",  # the temp of another target
            tmp_path / ".ft.resume.k3x9_q2a.tmp", tmp_path / "ft.resume.pt.k3x9_q2a.tmp",
            tmp_path / ".ft.resume.pt.k3x9_q2a.tmp.old", tmp_path / ".ft.resume.pt..tmp",
            tmp_path / ".ft.resume.pt.K3X9.tmp", tmp_path / "other.tmp"]
    for p in stale + keep:
        p.write_bytes(b"x")
    linked = tmp_path / "elsewhere"
    linked.write_bytes(b"y")
    (tmp_path / ".ft.resume.pt.link0000.tmp").symlink_to(linked)
    (tmp_path / ".ft.resume.pt.dir00000.tmp").mkdir()

    assert sorted(remove_stale_temps(target)) == sorted(stale)
    assert target.read_bytes() == b"state" and all(p.exists() for p in keep)
    assert (tmp_path / ".ft.resume.pt.link0000.tmp").is_symlink() and linked.exists()
    assert (tmp_path / ".ft.resume.pt.dir00000.tmp").is_dir()
    assert remove_stale_temps(target) == []


def test_the_pattern_matches_what_atomic_save_really_writes(tmp_path, monkeypatch):
    target = tmp_path / "m.pth"
    seen = []

    def killed(tmp):
        seen.append(tmp)
        raise KeyboardInterrupt

    # Keep the temp file as a SIGKILL would (atomic_save removes it on an exception).
    monkeypatch.setattr(io.Path, "unlink", lambda self, missing_ok=False: None)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(target, killed)
    monkeypatch.undo()
    assert os.path.exists(seen[0])
    assert remove_stale_temps(target) == [tmp_path / os.path.basename(seen[0])]
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_is_nothing_to_clean(tmp_path):
    assert remove_stale_temps(tmp_path / "no" / "such" / "m.pth") == []
