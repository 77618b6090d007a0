"""QMUL-SurvFace's test release (Cheng, Zhu & Gong, "Surveillance Face Recognition Challenge", 2018),
as the archive lays it out:

    ROOT/Face_Identification_Test_Set/gallery/<name>            the watch list's images
    ROOT/Face_Identification_Test_Set/mated_probe/<name>        searches whose identity is on the list
    ROOT/Face_Identification_Test_Set/unmated_probe/<name>      searches whose identity is not (no list)
    ROOT/Face_Identification_Test_Set/gallery_img_ID_pairs.mat        gallery_set (cell of names), gallery_ids
    ROOT/Face_Identification_Test_Set/mated_probe_img_ID_pairs.mat    mated_probe_set, mated_probe_ids
    ROOT/Face_Verification_Test_Set/verification_images/<name>
    ROOT/Face_Verification_Test_Set/positive_pairs_names.mat     positive_pairs_names: N×2 cell of names
    ROOT/Face_Verification_Test_Set/negative_pairs_names.mat     negative_pairs_names: N×2 cell of names
    ROOT/Face_Identification_Evaluation/, Face_Verification_Evaluation/   the MATLAB evaluation code

The two identification lists sit in ``Face_Identification_Test_Set/`` in the released archive;
they are also looked for in ``Face_Identification_Evaluation/`` (where some write-ups place them).
The unmated probes have no list: every image in ``unmated_probe/`` is one (the release names some
``distractors_<n>.jpg``). ROOT may also be the folder holding ``QMUL-SurvFace/``.

Every list is read through :mod:`facediag.data.matfile` (MATLAB v5, headers checked first) and
checked here: names are plain file names present in their folder, names are unique, lengths
agree, every mated probe's identity has gallery images, and each pair list is an N×2 cell array.
Anything else is one :class:`~facediag.errors.DataError` naming the file, before a model loads.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facediag.data.index import IMAGE_SUFFIXES, natural_key
from facediag.data.matfile import integers, read_mat, strings
from facediag.errors import DataError
from facediag.formatting import clip

IDENTIFICATION_DIR = "Face_Identification_Test_Set"
EVALUATION_DIR = "Face_Identification_Evaluation"
VERIFICATION_DIR = "Face_Verification_Test_Set"
VERIFICATION_IMAGES = "verification_images"
TASKS = ("identification", "verification")
# (folder, list file, names variable, identities variable)
ID_LISTS = (("gallery", "gallery_img_ID_pairs.mat", "gallery_set", "gallery_ids"),
            ("mated_probe", "mated_probe_img_ID_pairs.mat", "mated_probe_set", "mated_probe_ids"))
PAIR_LISTS = (("positive_pairs_names.mat", "positive_pairs_names", True),
              ("negative_pairs_names.mat", "negative_pairs_names", False))
FOLDS = 10


@dataclass(frozen=True, eq=False)
class WatchList:
    """The open-set identification part: gallery and mated probes with identities, unmated probes."""

    folder: Path                    # Face_Identification_Test_Set
    gallery: list[str]              # image names in gallery/, in the list's order
    gallery_ids: np.ndarray         # int64 identity of each
    mated: list[str]                # image names in mated_probe/
    mated_ids: np.ndarray
    unmated: list[str]              # every image in unmated_probe/, in natural order
    sources: dict[str, str] = field(default_factory=dict)

    def path(self, part: str, name: str) -> Path:
        """The file of image ``name`` in ``part`` (gallery, mated_probe or unmated_probe)."""
        return self.folder / part / name

    def describe(self) -> dict:
        return {"gallery_images": len(self.gallery), "gallery_identities": int(len(np.unique(self.gallery_ids))),
                "mated_probes": len(self.mated), "mated_identities": int(len(np.unique(self.mated_ids))),
                "unmated_probes": len(self.unmated), "lists": dict(self.sources)}


@dataclass(frozen=True, eq=False)
class VerificationPairs:
    """The verification part: pairs of images of verification_images/."""

    folder: Path                    # verification_images
    names: list[str]                # distinct image names, in order of first appearance
    first: np.ndarray               # int64 [N] index into names
    second: np.ndarray
    issame: np.ndarray              # bool [N]: the positive pairs first, then the negative ones
    fold_ids: np.ndarray            # int64 [N]: fold k = the k-th tenth of each list
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"pairs": int(len(self.issame)), "positive": int(self.issame.sum()),
                "negative": int((~self.issame).sum()), "images": len(self.names), "lists": dict(self.sources)}


@dataclass(frozen=True, eq=False)
class SurvFace:
    root: Path
    identification: WatchList | None
    verification: VerificationPairs | None

    def describe(self) -> dict:
        out = {"root": str(self.root), "tasks": [t for t in TASKS if getattr(self, t) is not None]}
        if self.identification is not None:
            out["identification"] = self.identification.describe()
        if self.verification is not None:
            out["verification"] = self.verification.describe()
        return out


def find_root(root: str | Path) -> Path:
    """ROOT when it holds a test-set folder, else ROOT/QMUL-SurvFace (the archive's top folder)."""
    root = Path(root)
    for candidate in (root, root / "QMUL-SurvFace"):
        if (candidate / IDENTIFICATION_DIR).is_dir() or (candidate / VERIFICATION_DIR).is_dir():
            return candidate
    raise DataError(f"{root}: neither {IDENTIFICATION_DIR}/ nor {VERIFICATION_DIR}/ here or in "
                    f"{root / 'QMUL-SurvFace'} (expected the QMUL-SurvFace release layout)")


def read_survface(root: str | Path, tasks: tuple[str, ...] | None = None) -> SurvFace:
    """The SurvFace test lists under ``root``, checked; nothing decoded.

    Parameters
    ----------
    root : str or Path
        The release folder (or the folder holding ``QMUL-SurvFace/``).
    tasks : tuple of str, optional
        ``identification`` and/or ``verification``: each must be present. None: whichever the
        release holds (at least one).

    Returns
    -------
    SurvFace

    Raises
    ------
    DataError
        A missing folder or list, a malformed or hostile .mat, names that are not plain file
        names or are missing on disk, duplicates, lengths that disagree.
    """
    root = find_root(root)
    asked = tasks
    tasks = tuple(tasks) if tasks else TASKS
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise DataError(f"unknown SurvFace task {unknown[0]!r}: choose from {', '.join(TASKS)}")
    identification = verification = None
    if "identification" in tasks and ((root / IDENTIFICATION_DIR).is_dir() or asked):
        identification = read_watchlist(root)
    if "verification" in tasks and ((root / VERIFICATION_DIR).is_dir() or asked):
        verification = read_verification(root)
    return SurvFace(root, identification, verification)


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: no such folder ({what} of the QMUL-SurvFace release)")
    return path


def _files_in(folder: Path) -> set[str]:
    """Names of the regular files directly in ``folder`` (one directory read, not a stat per name)."""
    with os.scandir(folder) as it:
        return {e.name for e in it if e.is_file()}


def _plain(path: Path, names: list[str], key: str) -> None:
    for i, name in enumerate(names):
        if (not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name
                or len(name) > 255):
            raise DataError(f"{path}: entry {i + 1} of {key!r} ({clip(repr(name), 60)}) is not a plain file name")


def _present(path: Path, names: list[str], folder: Path, key: str) -> None:
    _plain(path, names, key)
    files = _files_in(folder)
    missing = [n for n in names if n not in files]
    if missing:
        raise DataError(f"{path}: {len(missing)} of the {len(names)} images named in {key!r} are not in {folder} "
                        f"(first: {clip(missing[0], 60)})")


def _unique(path: Path, names: list[str], key: str) -> None:
    counts = Counter(names)
    if len(counts) != len(names):
        dup = next(n for n in names if counts[n] > 1)
        raise DataError(f"{path}: {clip(dup, 60)} is listed twice in {key!r}")


def _list_file(root: Path, name: str) -> Path:
    """A list where the release keeps it (the test set), else in the evaluation folder."""
    for folder in (root / IDENTIFICATION_DIR, root / EVALUATION_DIR):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{root / IDENTIFICATION_DIR / name}: no such file (nor in {EVALUATION_DIR}/)")


def read_watchlist(root: Path) -> WatchList:
    """The identification part of a release folder (see the module docstring)."""
    folder = _folder(root / IDENTIFICATION_DIR, "the identification test set")
    parts, sources = {}, {}
    for part, file, names_key, ids_key in ID_LISTS:
        path = _list_file(root, file)
        data = read_mat(path, (names_key, ids_key))
        names = strings(path, data[names_key], names_key)
        ids = integers(path, data[ids_key], ids_key)
        if len(names) != len(ids):
            raise DataError(f"{path}: {len(names)} names in {names_key!r} but {len(ids)} identities in {ids_key!r}")
        if not names:
            raise DataError(f"{path}: {names_key!r} lists no images")
        _unique(path, names, names_key)
        _present(path, names, _folder(folder / part, f"the {part} images"), names_key)
        parts[part], sources[part] = (names, ids), str(path)
    (gallery, gallery_ids), (mated, mated_ids) = parts["gallery"], parts["mated_probe"]
    absent = np.setdiff1d(mated_ids, gallery_ids)
    if len(absent):
        raise DataError(f"{sources['mated_probe']}: {len(absent)} identities of mated probes have no gallery image "
                        f"(first: {int(absent[0])}); a mated probe's identity must be on the watch list")
    unmated_dir = _folder(folder / "unmated_probe", "the unmated probes")
    unmated = sorted((n for n in _files_in(unmated_dir) if Path(n).suffix.lower() in IMAGE_SUFFIXES),
                     key=natural_key)
    if not unmated:
        raise DataError(f"{unmated_dir}: no images (the unmated probes: every image in this folder)")
    sources["unmated_probe"] = str(unmated_dir)
    return WatchList(folder, gallery, gallery_ids, mated, mated_ids, unmated, sources)


def read_verification(root: Path) -> VerificationPairs:
    """The verification part of a release folder: positive pairs, then negative pairs."""
    folder = _folder(root / VERIFICATION_DIR, "the verification test set")
    images = _folder(folder / VERIFICATION_IMAGES, "the verification images")
    index: dict[str, int] = {}
    ends, labels, folds, sources = [], [], [], {}
    for file, key, same in PAIR_LISTS:
        path = folder / file
        array = read_mat(path, (key,))[key]
        if array.ndim != 2 or array.shape[1] != 2:
            raise DataError(f"{path}: {key!r} has shape {array.shape}, not N×2 (one pair of image names a row)")
        if array.shape[0] < FOLDS:
            raise DataError(f"{path}: {array.shape[0]} pairs in {key!r}; the {FOLDS}-fold mean accuracy needs "
                            f"at least {FOLDS}")
        first, second = strings(path, array[:, 0], key), strings(path, array[:, 1], key)
        _present(path, first + second, images, key)
        for a, b in zip(first, second):
            ends.append((index.setdefault(a, len(index)), index.setdefault(b, len(index))))
        labels += [same] * len(first)
        # fold k holds the k-th tenth of each list, so every fold has positive and negative pairs
        folds.append(np.repeat(np.arange(FOLDS), [len(b) for b in np.array_split(np.arange(len(first)), FOLDS)]))
        sources[key] = str(path)
    pairs = np.array(ends, dtype=np.int64)
    return VerificationPairs(images, list(index), pairs[:, 0], pairs[:, 1], np.array(labels, dtype=bool),
                             np.concatenate(folds), sources)


__all__ = ["FOLDS", "ID_LISTS", "PAIR_LISTS", "SurvFace", "TASKS", "VerificationPairs", "WatchList", "find_root",
           "read_survface", "read_verification", "read_watchlist"]
