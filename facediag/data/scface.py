"""SCface (Grgic, Delac & Grgic, "SCface — surveillance cameras face database", 2011): 130 people,
a high-resolution frontal mugshot each, and shots from five visible-light surveillance cameras
at three distances.

Files are found by name anywhere under ROOT (the release spreads them over several folders):

    {id}_frontal.{ext}          the mugshot: the gallery, one per person
    {id}_cam{c}_{d}.{ext}       camera c (1–5) at distance d: 1 = 4.20 m, 2 = 2.60 m, 3 = 1.00 m: the probes

``id`` is a number (``001`` and ``1`` are one person). The infrared shots (cam6–cam8) and the
rotation mugshots (``{id}_L1`` …) do not match and are not used. The release holds some files in
more than one folder: copies with the same bytes count once; copies that differ (the original
and the cropped mugshot) are refused in one line naming both, and ``mugshots`` / ``surveillance``
then say which folder to read. Probes are used as they are: crop the faces first (the release's
surveillance frames show more than the face), e.g. from its eye coordinates or with
``facediag align``; the face size the reports give is the shorter side of each probe file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facediag.data.index import IMAGE_SUFFIXES, file_digest, natural_key
from facediag.errors import DataError
from facediag.formatting import clip

DISTANCES_M = {1: 4.20, 2: 2.60, 3: 1.00}
CAMERAS = (1, 2, 3, 4, 5)
MAX_ENTRIES = 500_000   # files and folders looked at under ROOT: far beyond SCface (about 4,200 images)
_MUGSHOT = re.compile(r"^(\d+)_frontal$", re.IGNORECASE)
_PROBE = re.compile(r"^(\d+)_cam([1-5])_([1-3])$", re.IGNORECASE)


@dataclass(frozen=True)
class Probe:
    subject: str
    camera: int
    distance: int
    path: Path


@dataclass(frozen=True, eq=False)
class SCface:
    root: Path
    mugshots: dict[str, Path]      # subject -> mugshot file, in natural order of subject
    probes: list[Probe]            # ordered by distance, camera, subject
    left_out: list[Probe]          # probes whose subject has no mugshot
    merged_copies: int             # identical copies of a file found in several folders, counted once

    def at(self, distance: int | None = None, camera: int | None = None) -> list[int]:
        """Indices into ``probes`` at a distance and/or camera (None: any)."""
        return [i for i, p in enumerate(self.probes)
                if (distance is None or p.distance == distance) and (camera is None or p.camera == camera)]

    def describe(self) -> dict:
        per = {str(d): {"distance_m": m, "probes": len(self.at(d))} for d, m in DISTANCES_M.items()}
        return {"root": str(self.root), "subjects": len(self.mugshots), "probes": len(self.probes),
                "per_distance": per, "probes_without_mugshot": len(self.left_out),
                "merged_copies": self.merged_copies}


def _subject(token: str) -> str:
    return str(int(token))


def _walk(folder: Path):
    """Every image file under ``folder`` (links to folders not followed), bounded."""
    seen = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        seen += len(dirnames) + len(filenames)
        if seen > MAX_ENTRIES:
            raise DataError(f"{folder}: more than {MAX_ENTRIES:,} files and folders below it; SCface holds a few "
                            "thousand: point --root at the SCface folder")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                yield p


def _one_per_key(found: dict, what: str, flag: str) -> tuple[dict, int]:
    """One file per key: identical copies merged (counted), differing ones refused."""
    out, merged = {}, 0
    for key, paths in found.items():
        paths = sorted(paths, key=lambda p: natural_key(str(p)))
        if len(paths) > 1:
            digests = {file_digest(p) for p in paths}
            if len(digests) > 1:
                raise DataError(f"{what} {key} has {len(paths)} different files ({clip(str(paths[0]), 70)}, "
                                f"{clip(str(paths[1]), 70)}): give {flag} FOLDER to say which folder to read")
            merged += len(paths) - 1
        out[key] = paths[0]
    return out, merged


def find_scface(root: str | Path, *, mugshots: str | Path | None = None,
                surveillance: str | Path | None = None) -> SCface:
    """The SCface mugshots and camera shots under ``root``; nothing decoded.

    Parameters
    ----------
    root : str or Path
        The SCface folder: mugshots and camera shots are found anywhere below it.
    mugshots, surveillance : str or Path, optional
        Read the mugshots (the camera shots) only from this folder (and below) instead of ROOT.

    Returns
    -------
    SCface

    Raises
    ------
    DataError
        No such folder, no mugshot or no camera shot, or two different files for one mugshot or
        one (person, camera, distance).
    """
    root = Path(root)
    folders = {"root": root, "--mugshots": mugshots, "--surveillance": surveillance}
    for flag, folder in folders.items():
        if folder is not None and not Path(folder).is_dir():
            raise DataError(f"{folder}: no such folder ({'--root' if flag == 'root' else flag})")
    shots: dict[str, list[Path]] = {}
    camera: dict[tuple[str, int, int], list[Path]] = {}
    for path in _walk(Path(mugshots) if mugshots is not None else root):
        m = _MUGSHOT.match(path.stem)
        if m:
            shots.setdefault(_subject(m.group(1)), []).append(path)
    for path in _walk(Path(surveillance) if surveillance is not None else root):
        m = _PROBE.match(path.stem)
        if m:
            camera.setdefault((_subject(m.group(1)), int(m.group(2)), int(m.group(3))), []).append(path)
    if not shots:
        raise DataError(f"{mugshots or root}: no mugshot named {{id}}_frontal.<image extension> below it")
    if not camera:
        raise DataError(f"{surveillance or root}: no camera shot named {{id}}_cam{{1-5}}_{{1,2,3}}.<image extension> "
                        "below it")
    gallery, merged_g = _one_per_key(shots, "mugshot of person", "--mugshots")
    probes_by_key, merged_p = _one_per_key(camera, "camera shot (person, camera, distance)", "--surveillance")
    gallery = dict(sorted(gallery.items(), key=lambda kv: natural_key(kv[0])))
    ordered = sorted(probes_by_key.items(), key=lambda kv: (kv[0][2], kv[0][1], natural_key(kv[0][0])))
    probes = [Probe(s, c, d, p) for (s, c, d), p in ordered]
    kept = [p for p in probes if p.subject in gallery]
    left_out = [p for p in probes if p.subject not in gallery]
    if not kept:
        raise DataError(f"{root}: none of the {len(probes)} camera shots is of a person with a mugshot")
    return SCface(root, gallery, kept, left_out, merged_g + merged_p)


def median_sizes(sizes: np.ndarray, distances: np.ndarray) -> dict[int, float]:
    """The median native face size (px) of the probes at each distance present."""
    return {d: float(np.median(sizes[distances == d])) for d in DISTANCES_M if (distances == d).any()}


__all__ = ["CAMERAS", "DISTANCES_M", "Probe", "SCface", "find_scface", "median_sizes"]
