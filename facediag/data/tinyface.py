"""The TinyFace test split (Cheng et al., ACCV 2018) as AdaFace's evaluation reads it.

Layout under ROOT (what the release unpacks to, and AdaFace's ``validation_lq`` expects)::

    ROOT/tinyface/Testing_Set/Probe/                  3,728 probe images  <id>_<n>.jpg
    ROOT/tinyface/Testing_Set/Gallery_Match/          4,443 gallery images of the probes' people
    ROOT/tinyface/Testing_Set/Gallery_Distractor/     153,428 distractors (nobody's mate)
    ROOT/tinyface/Testing_Set/gallery_match_img_ID_pairs.mat   gallery_set (names), gallery_ids
    ROOT/tinyface/Testing_Set/probe_img_ID_pairs.mat           probe_set (names), probe_ids
    ROOT/aligned_pad_0.1_pad_high/{Probe,Gallery_Match,Gallery_Distractor}/   optional aligned copy

The two reference scripts list the images differently: AdaFace's ``tinyface_helper.py`` walks
the three folders (files ending .jpg, .png or .jpeg) and takes the identity from the file name
up to the first ``_`` (it loads the .mat files but never uses their lists); the release's own
evaluation takes probes and matched gallery in the .mat files' order with their ids. Both are
read here and must agree: the .mat names are exactly the folder's image files and each .mat id
is the name's identity, else one DataError saying where they differ (they would then be two
protocols). The order is the .mat files'; distractors (no .mat) are the folder's image files
in sorted order. An aligned copy holds, per folder, one file of each original's stem (any of
the three suffixes); it is what is embedded, and the originals give each probe's native size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facediag.data.matfile import integers, read_mat, strings
from facediag.errors import DataError

TESTING_SET = ("tinyface", "Testing_Set")
PROBE, MATCH, DISTRACTOR = "Probe", "Gallery_Match", "Gallery_Distractor"
SUBSETS = (PROBE, MATCH, DISTRACTOR)
GALLERY_MAT, GALLERY_KEYS = "gallery_match_img_ID_pairs.mat", ("gallery_set", "gallery_ids")
PROBE_MAT, PROBE_KEYS = "probe_img_ID_pairs.mat", ("probe_set", "probe_ids")
# The reference's get_all_files keeps these suffixes, as written (".JPG" is not among them).
SUFFIXES = (".jpg", ".png", ".jpeg")
DISTRACTOR_ID = -100      # the release's and AdaFace's label for a distractor: nobody's identity
DEFAULT_ALIGNED = "aligned_pad_0.1_pad_high"


@dataclass(frozen=True, eq=False)
class TinyFaceSplit:
    """The protocol's images: probes, then the gallery (matched images, then distractors)."""

    root: Path
    aligned: Path | None            # ROOT/<aligned dir>, or None: the original images are embedded
    probe_names: list[str]          # relative to Probe/, in probe_img_ID_pairs.mat's order
    probe_ids: np.ndarray           # int64 [P]
    match_names: list[str]          # relative to Gallery_Match/, in gallery_match_img_ID_pairs.mat's order
    match_ids: np.ndarray           # int64 [M]
    distractor_names: list[str]     # relative to Gallery_Distractor/, sorted
    probe_inputs: list[Path]        # the file embedded for each probe (aligned copy or original)
    gallery_inputs: list[Path]      # ... for each gallery image: matched, then distractors
    ignored: dict[str, int]         # per folder, files that are not images by the reference's suffixes

    @property
    def testing(self) -> Path:
        return self.root.joinpath(*TESTING_SET)

    @property
    def probe_originals(self) -> list[Path]:
        return [self.testing / PROBE / n for n in self.probe_names]

    @property
    def gallery_ids(self) -> np.ndarray:
        """int64 [G]: each gallery image's identity; DISTRACTOR_ID for the distractors."""
        return np.concatenate([self.match_ids, np.full(len(self.distractor_names), DISTRACTOR_ID, np.int64)])

    def describe(self) -> dict:
        return {"root": str(self.root), "aligned_dir": self.aligned.name if self.aligned else None,
                "probes": len(self.probe_names), "gallery_match": len(self.match_names),
                "gallery_distractors": len(self.distractor_names),
                "gallery": len(self.match_names) + len(self.distractor_names),
                "probe_identities": int(len(np.unique(self.probe_ids))),
                "gallery_identities": int(len(np.unique(self.match_ids))),
                "probes_with_mate": int(np.isin(self.probe_ids, self.match_ids).sum()),
                "ignored_files": {k: v for k, v in self.ignored.items() if v},
                "listing": "the .mat lists (their order and ids), checked equal to the folders' image files "
                           "and to the identities in the file names; distractors: Gallery_Distractor's image "
                           "files, sorted"}


def identity(name: str) -> int | None:
    """A TinyFace file's identity: its stem up to the first ``_``, as a whole number (None if not one)."""
    head = Path(name).stem.split("_", 1)[0]
    return int(head) if head.isdigit() else None


def _images(folder: Path) -> tuple[list[str], int]:
    """Image files under ``folder`` (recursive, as the reference's os.walk) as sorted relative
    POSIX names, and how many other files were passed over."""
    names, other = [], 0
    for dirpath, _, files in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        for f in files:
            if os.path.splitext(f)[1] in SUFFIXES:
                names.append((rel / f).as_posix())
            else:
                other += 1
    return sorted(names), other


def _listed(path: Path, keys: tuple[str, str]) -> tuple[list[str], np.ndarray]:
    """(names, ids) of one .mat list, validated."""
    arrays = read_mat(path, keys)
    names = strings(path, arrays[keys[0]], keys[0])
    ids = integers(path, arrays[keys[1]], keys[1])
    if len(names) != len(ids):
        raise DataError(f"{path}: {keys[0]} lists {len(names)} images but {keys[1]} has {len(ids)} ids")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: {keys[0]} lists {dup!r} more than once")
    return names, ids


def _agree(mat: Path, key: str, folder: Path, names: list[str], ids: np.ndarray) -> int:
    """The .mat list against its folder and the file names' identities; the files passed over."""
    on_disk, other = _images(folder)
    listed, present = set(names), set(on_disk)
    missing = [n for n in names if n not in present]
    extra = [n for n in on_disk if n not in listed]
    if missing:
        raise DataError(f"{mat.name}: {len(missing)} of the {len(names)} images in {key} are not in {folder} "
                        f"(first: {missing[0]!r}); the release's .mat list and its folder must hold the same images")
    if extra:
        raise DataError(f"{folder}: {len(extra)} image(s) that {mat.name} does not list (first: {extra[0]!r}); "
                        "AdaFace's script (folder listing) and the release's (the .mat list) would then run "
                        "different protocols")
    for n, i in zip(names, ids.tolist()):
        own = identity(n)
        if own is None:
            raise DataError(f"{folder / n}: the file name does not start with an identity (<id>_<n>.jpg)")
        if own != i:
            raise DataError(f"{mat.name}: {key} gives {n!r} the id {i}, its file name says {own}")
    return other


def _aligned_inputs(aligned: Path, subset: str, names: list[str]) -> list[Path]:
    """The aligned file of each original of ``subset``, found by stem in the same folder."""
    folder = aligned / subset
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (the aligned copy holds {', '.join(SUBSETS)})")
    by_stem: dict[str, str] = {}
    for name in _images(folder)[0]:
        stem = name.rsplit(".", 1)[0]
        if stem in by_stem:
            raise DataError(f"{folder}: two aligned files of one image ({by_stem[stem]!r}, {name!r})")
        by_stem[stem] = name
    out, missing = [], []
    for n in names:
        found = by_stem.get(n.rsplit(".", 1)[0])
        if found is None:
            missing.append(n)
        else:
            out.append(folder / found)
    if missing:
        raise DataError(f"{folder}: no aligned copy of {len(missing)} of the {len(names)} {subset} images "
                        f"(first: {missing[0]!r}; the copy keeps each file's stem)")
    return out


def read_tinyface(root: str | Path, aligned_dir: str | None = None) -> TinyFaceSplit:
    """The TinyFace test split under ``root``, every list checked before any image is read.

    Parameters
    ----------
    root : str or Path
        The folder holding ``tinyface/Testing_Set`` (and the aligned copy, if any).
    aligned_dir : str or None
        A pre-aligned copy under ``root`` (AdaFace's is ``aligned_pad_0.1_pad_high``) whose
        files are embedded instead of the originals; None embeds the originals.

    Returns
    -------
    TinyFaceSplit

    Raises
    ------
    DataError
        A missing folder or .mat file, a malformed or hostile .mat (facediag.data.matfile), or
        .mat lists that disagree with the folders or with the identities in the file names.
    """
    root = Path(root)
    testing = root.joinpath(*TESTING_SET)
    if not testing.is_dir():
        raise DataError(f"{root}: no {'/'.join(TESTING_SET)} folder (the TinyFace release unpacked here holds "
                        f"{'/'.join(TESTING_SET)}/{{{','.join(SUBSETS)}}})")
    for sub in SUBSETS:
        if not (testing / sub).is_dir():
            raise DataError(f"{testing / sub}: no such folder")
    match_names, match_ids = _listed(testing / GALLERY_MAT, GALLERY_KEYS)
    probe_names, probe_ids = _listed(testing / PROBE_MAT, PROBE_KEYS)
    ignored = {PROBE: _agree(testing / PROBE_MAT, PROBE_KEYS[0], testing / PROBE, probe_names, probe_ids),
               MATCH: _agree(testing / GALLERY_MAT, GALLERY_KEYS[0], testing / MATCH, match_names, match_ids)}
    distractor_names, ignored[DISTRACTOR] = _images(testing / DISTRACTOR)
    if not probe_names:
        raise DataError(f"{testing / PROBE_MAT}: lists no probe")
    aligned = None
    if aligned_dir is not None:
        if Path(aligned_dir).name != aligned_dir or aligned_dir in ("", ".", ".."):
            raise DataError(f"--aligned-dir {aligned_dir!r}: give the folder's name under {root}, not a path")
        aligned = root / aligned_dir
        if not aligned.is_dir():
            raise DataError(f"{aligned}: no such folder (the aligned copy, e.g. {DEFAULT_ALIGNED}/)")
        probe_inputs = _aligned_inputs(aligned, PROBE, probe_names)
        gallery_inputs = (_aligned_inputs(aligned, MATCH, match_names)
                          + _aligned_inputs(aligned, DISTRACTOR, distractor_names))
    else:
        probe_inputs = [testing / PROBE / n for n in probe_names]
        gallery_inputs = ([testing / MATCH / n for n in match_names]
                          + [testing / DISTRACTOR / n for n in distractor_names])
    return TinyFaceSplit(root=root, aligned=aligned, probe_names=probe_names, probe_ids=probe_ids,
                         match_names=match_names, match_ids=match_ids, distractor_names=distractor_names,
                         probe_inputs=probe_inputs, gallery_inputs=gallery_inputs, ignored=ignored)


__all__ = ["DEFAULT_ALIGNED", "DISTRACTOR_ID", "GALLERY_MAT", "PROBE_MAT", "SUBSETS", "TinyFaceSplit", "identity",
           "read_tinyface"]
