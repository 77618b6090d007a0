"""IJB-B / IJB-C as distributed for face-recognition evaluation (insightface's release):

    ROOT/meta/<t>_face_tid_mid.txt        image_name template_id media_id        (one line per image row)
    ROOT/meta/<t>_name_5pts_score.txt     image_name x1 y1 ... x5 y5 detector_score (the same rows, in order)
    ROOT/meta/<t>_template_pair_label.txt template_id_1 template_id_2 label(1 same, 0 different)
    ROOT/meta/<t>_1N_gallery_G1.csv, _G2.csv (IJB-B: _S1, _S2), <t>_1N_probe_mixed.csv
                                          header, then TEMPLATE_ID,SUBJECT_ID[,...]  (1:N, optional)
    ROOT/loose_crop/<image_name>

``<t>`` is the target in lower case (``ijbc``). ROOT may also be the folder that holds
``IJBC/`` (as the reference scripts are run). Every line is checked; a malformed one is a
DataError naming ``file:line``. Nothing is decoded here: :func:`read_ijb` returns the
metadata only, so a bad file is refused before any model is loaded.
"""
from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from facediag.errors import DataError

TARGETS = ("IJBC", "IJBB")
#: The 1:N galleries of each target, by the names its files use.
GALLERIES = {"IJBC": ("G1", "G2"), "IJBB": ("S1", "S2")}


@dataclass(frozen=True, eq=False)
class Gallery:
    """A 1:N gallery or probe list: one subject per template."""

    name: str                  # "G1", "G2", "probe_mixed"
    source: Path
    templates: np.ndarray      # int64 [T] unique template ids, ascending
    subjects: np.ndarray       # int64 [T] the subject of each


@dataclass(frozen=True, eq=False)
class IJBMeta:
    target: str
    root: Path                 # the folder holding meta/ and loose_crop/
    names: list[str]           # [N] image name of each row (relative to loose_crop/)
    templates: np.ndarray      # int64 [N] template id of each row
    medias: np.ndarray         # int64 [N] media id of each row
    landmarks: np.ndarray      # float64 [N, 5, 2] (x, y) in the loose crop's pixels
    scores: np.ndarray         # float64 [N] detector (faceness) score
    pair_t1: np.ndarray        # int64 [M]
    pair_t2: np.ndarray
    pair_label: np.ndarray     # bool [M]
    galleries: list[Gallery] = field(default_factory=list)
    probes: Gallery | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def crops(self) -> Path:
        return self.root / "loose_crop"

    def describe(self) -> dict:
        return {"target": self.target, "root": str(self.root), "images": len(self.names),
                "unique_images": len(set(self.names)), "templates": int(len(np.unique(self.templates))),
                "media": int(len(np.unique(np.c_[self.templates, self.medias], axis=0))),
                "pairs": int(len(self.pair_label)), "genuine_pairs": int(self.pair_label.sum()),
                "impostor_pairs": int((~self.pair_label).sum()),
                "galleries": {g.name: int(len(g.templates)) for g in self.galleries},
                "probes": None if self.probes is None else int(len(self.probes.templates)),
                "files": dict(self.sources)}


def find_root(root: str | Path, target: str) -> Path:
    """ROOT itself when it holds meta/, else ROOT/<target> (ROOT/IJBC/meta)."""
    root = Path(root)
    for candidate in (root, root / target, root / target.lower()):
        if (candidate / "meta").is_dir():
            return candidate
    raise DataError(f"{root}: no meta/ folder here or in {root / target} (expected the IJB release layout: "
                    f"meta/{target.lower()}_face_tid_mid.txt, loose_crop/)")


def meta_file(root: Path, target: str, suffix: str) -> Path:
    """meta/<t>_<suffix>, lower-case target as distributed (an upper-case name is accepted too)."""
    for stem in (target.lower(), target):
        p = root / "meta" / f"{stem}_{suffix}"
        if p.is_file():
            return p
    return root / "meta" / f"{target.lower()}_{suffix}"


def read_ijb(root: str | Path, target: str) -> IJBMeta:
    """The metadata of one target, validated line by line (see the module docstring)."""
    target = str(target).upper()
    if target not in TARGETS:
        raise DataError(f"--target {target!r}: choose IJBC or IJBB")
    base = find_root(root, target)
    tid_mid_path = _required(meta_file(base, target, "face_tid_mid.txt"))
    lmk_path = _required(meta_file(base, target, "name_5pts_score.txt"))
    pair_path = _required(meta_file(base, target, "template_pair_label.txt"))
    names, templates, medias = read_tid_mid(tid_mid_path)
    landmarks, scores = read_5pts(lmk_path, names, tid_mid_path)
    t1, t2, label = read_pairs(pair_path, set(np.unique(templates).tolist()))
    crops = base / "loose_crop"
    if not crops.is_dir():
        raise DataError(f"{crops}: no loose_crop/ folder (the images the metadata names)")
    missing = [n for n in dict.fromkeys(names) if not (crops / n).is_file()]
    if missing:
        raise DataError(f"{crops}: {len(missing)} image(s) named by {tid_mid_path.name} are missing "
                        f"(first: {', '.join(repr(m[:60])[1:-1] for m in missing[:3])})")
    known = set(np.unique(templates).tolist())
    galleries, probes = [], None
    sources = {"face_tid_mid": str(tid_mid_path), "name_5pts_score": str(lmk_path),
               "template_pair_label": str(pair_path)}
    gallery_paths = [meta_file(base, target, f"1N_gallery_{g}.csv") for g in GALLERIES[target]]
    probe_path = meta_file(base, target, "1N_probe_mixed.csv")
    present = [p for p in (*gallery_paths, probe_path) if p.is_file()]
    if present and len(present) < 3:
        absent = [p.name for p in (*gallery_paths, probe_path) if not p.is_file()]
        raise DataError(f"{base / 'meta'}: 1:N needs both galleries and the mixed probes; {', '.join(absent)} missing")
    if present:
        galleries = [read_subject_list(p, name, known) for p, name in zip(gallery_paths, GALLERIES[target])]
        probes = read_subject_list(probe_path, "probe_mixed", known, one_template_per_subject=False)
        for g in galleries:
            _refuse_overlap(g, probes)
        sources.update({f"1N_{g.name}": str(g.source) for g in galleries}, **{"1N_probe_mixed": str(probe_path)})
    return IJBMeta(target, base, names, templates, medias, landmarks, scores, t1, t2, label, galleries, probes,
                   sources)


def _refuse_overlap(gallery: Gallery, probes: Gallery) -> None:
    """A probe template that is also a gallery template would be searched against itself (its own
    template ranks first with a cosine of 1): the release's probe and gallery templates are apart."""
    both = np.intersect1d(gallery.templates, probes.templates)
    if len(both):
        raise DataError(f"{probes.source.name}: {len(both)} probe template(s) are also templates of gallery "
                        f"{gallery.name} ({gallery.source.name}; "
                        f"first: {', '.join(str(t) for t in both[:3].tolist())}); "
                        "a probe would be searched against itself: the 1:N probe and gallery templates must differ")


def _required(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing (the IJB release's meta/ holds it)")
    return path


def _lines(path: Path):
    """(line number, fields) of every non-blank line; a file that is not UTF-8 is one error line."""
    try:
        with open(path, "rb") as fh:
            for no, raw in enumerate(fh, 1):
                try:
                    text = raw.decode("utf-8-sig" if no == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise DataError(f"{path}:{no}: not UTF-8 text") from None
                fields = text.split()
                if fields:
                    yield no, fields
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


# Ids as the release writes them: ASCII digits (int() would also take '١', '1_0' or ' 1'), within
# the int64 the reader stores them in.
_ASCII_INT = re.compile(r"[+-]?[0-9]{1,19}")
_INT64 = (-2**63, 2**63 - 1)


def _int(path: Path, no: int, value: str, what: str) -> int:
    n = int(value) if _ASCII_INT.fullmatch(value) else None
    if n is None or not _INT64[0] <= n <= _INT64[1]:
        raise DataError(f"{path}:{no}: {what} {value[:30]!r} is not a whole number (ASCII digits, within 64 bits)")
    return n


def _float(path: Path, no: int, value: str, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x):
        raise DataError(f"{path}:{no}: {what} {value[:30]!r} is not a finite number")
    return x


def _image_name(path: Path, no: int, name: str) -> str:
    p = PurePosixPath(name.replace("\\", "/"))
    if (p.is_absolute() or ".." in p.parts or not p.parts or "\0" in name
            or any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in p.parts)):
        raise DataError(f"{path}:{no}: image name {name[:60]!r} must be a path inside loose_crop/")
    return str(p)


def read_tid_mid(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """<t>_face_tid_mid.txt: (image names, template ids, media ids), one per line."""
    names, templates, medias = [], array("q"), array("q")
    for no, f in _lines(path):
        if len(f) != 3:
            raise DataError(f"{path}:{no}: {len(f)} fields, expected 3 (image_name template_id media_id)")
        names.append(_image_name(path, no, f[0]))
        templates.append(_int(path, no, f[1], "template id"))
        medias.append(_int(path, no, f[2], "media id"))
    if not names:
        raise DataError(f"{path}: no image rows")
    return names, np.frombuffer(templates, np.int64).copy(), np.frombuffer(medias, np.int64).copy()


def read_5pts(path: Path, names: list[str], tid_mid_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """<t>_name_5pts_score.txt: landmarks [N, 5, 2] and detector scores [N], row by row the same
    images as <t>_face_tid_mid.txt (the reference pairs the two files by row)."""
    values = array("d")
    rows = 0
    for no, f in _lines(path):
        if len(f) != 12:
            raise DataError(f"{path}:{no}: {len(f)} fields, expected 12 (image_name, 10 landmark coordinates, "
                            "detector score)")
        if rows >= len(names):
            raise DataError(f"{path}:{no}: more rows than the {len(names)} of {tid_mid_path.name}")
        if _image_name(path, no, f[0]) != names[rows]:
            raise DataError(f"{path}:{no}: image {f[0][:60]!r}, but row {rows + 1} of {tid_mid_path.name} is "
                            f"{names[rows][:60]!r} (the two files list the same images in the same order)")
        values.extend(_float(path, no, v, "landmark coordinate" if i < 10 else "detector score")
                      for i, v in enumerate(f[1:]))
        rows += 1
    if rows != len(names):
        raise DataError(f"{path}: {rows} rows, {tid_mid_path.name} has {len(names)} (one per image row)")
    table = np.frombuffer(values, np.float64).reshape(rows, 11)
    return table[:, :10].reshape(rows, 5, 2).copy(), table[:, 10].copy()


def read_pairs(path: Path, known: set) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """<t>_template_pair_label.txt: (t1, t2, same) with every template known to tid_mid."""
    t1, t2, label = array("q"), array("q"), array("b")
    for no, f in _lines(path):
        if len(f) != 3:
            raise DataError(f"{path}:{no}: {len(f)} fields, expected 3 (template_id_1 template_id_2 label)")
        a, b = _int(path, no, f[0], "template id"), _int(path, no, f[1], "template id")
        if f[2] not in ("0", "1"):
            raise DataError(f"{path}:{no}: label {f[2][:20]!r} is not 1 (same) or 0 (different)")
        for t in (a, b):
            if t not in known:
                raise DataError(f"{path}:{no}: template {t} has no image in the face_tid_mid file")
        t1.append(a)
        t2.append(b)
        label.append(f[2] == "1")
    if not t1:
        raise DataError(f"{path}: no template pairs")
    return (np.frombuffer(t1, np.int64).copy(), np.frombuffer(t2, np.int64).copy(),
            np.frombuffer(label, np.int8).astype(bool))


def read_subject_list(path: Path, name: str, known: set, *, one_template_per_subject: bool = True) -> Gallery:
    """A 1:N CSV: a header, then TEMPLATE_ID,SUBJECT_ID[,...] per line (one line per image is fine)."""
    subject_of: dict[int, int] = {}
    header_seen = False
    for no, f in _lines(path):
        fields = [x.strip() for x in " ".join(f).split(",")]
        if not header_seen:
            header_seen = True
            if not fields[0].lstrip("-").isdigit():
                continue  # the header line (TEMPLATE_ID,SUBJECT_ID,...)
        if len(fields) < 2:
            raise DataError(f"{path}:{no}: {len(fields)} field(s), expected TEMPLATE_ID,SUBJECT_ID[,...]")
        t, s = _int(path, no, fields[0], "template id"), _int(path, no, fields[1], "subject id")
        if t not in known:
            raise DataError(f"{path}:{no}: template {t} has no image in the face_tid_mid file")
        if subject_of.setdefault(t, s) != s:
            raise DataError(f"{path}:{no}: template {t} is listed under subjects {subject_of[t]} and {s}")
    if not subject_of:
        raise DataError(f"{path}: no templates")
    templates = np.array(sorted(subject_of), dtype=np.int64)
    subjects = np.array([subject_of[t] for t in templates.tolist()], dtype=np.int64)
    if one_template_per_subject:
        uniq, counts = np.unique(subjects, return_counts=True)
        if (counts > 1).any():
            s = int(uniq[counts > 1][0])
            raise DataError(f"{path}: subject {s} has {int(counts[counts > 1][0])} templates; a 1:N gallery "
                            "holds one template per subject")
    return Gallery(name, path, templates, subjects)


__all__ = ["GALLERIES", "Gallery", "IJBMeta", "TARGETS", "find_root", "read_ijb"]
