"""facediag align: raw photos in, aligned 112×112 crops out, in the same layout.

Each HR image is decoded (large photos shrunk while decoding, data.images), its five
landmarks taken from the data when given (a manifest's lm0x..lm4y) or detected with MTCNN,
fitted to the ArcFace template and warped. In the paired layout a VLR file is the same shot at
low resolution, so it is warped with its HR twin's landmarks scaled to its size (16 px faces
are too small to detect). Outputs keep each file's path relative to SRC, as PNG.

DST also gets ``alignment.csv`` (per image: landmarks in the file's own pixels, source,
detection score, faces found, the fit's residual, rotation and scale) and ``flagged.csv``
(images with no face, several faces, or that could not be read). Resumable: an image whose
crop and CSV row exist is skipped; the CSV is rewritten atomically every batch, so a killed run
loses at most one batch of rows (their crops are then redone).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from facediag.data.detect import PHOTO_MIN_FACE, RETRY_MIN_FACE, Detector, require_extra
from facediag.data.images import SIZE, DecodeError, header_size, read_rgb
from facediag.data.index import LANDMARK_COLUMNS, Record, index_dataset
from facediag.data.landmarks import Fit, fit, rescaling, warp
from facediag.errors import FacediagError
from facediag.io import atomic_save, atomic_write_text
from facediag.outputs import check_outputs, inside, out_dir
from facediag.progress import progress_bar

CSV_NAME, FLAGGED_NAME = "alignment.csv", "flagged.csv"
COLUMNS = ("path", "subject", "role", "source", *LANDMARK_COLUMNS, "score", "faces", "residual",
           "rotation_deg", "scale")
BATCH = 32


@dataclass
class AlignSummary:
    """What an align run did: counts, the files it wrote, and the images it flagged."""

    aligned: int = 0
    skipped: int = 0  # already done by an earlier run
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (path relative to SRC, why)
    outputs: list[str] = field(default_factory=list)


def check_paths(src: Path, dst: Path) -> None:
    """Refuse, before any work, a DST that is SRC, lies inside it or holds it (never overwrite SRC)."""
    data_root = src.parent if src.is_file() else src
    check_outputs(out_dir("DST", dst, (CSV_NAME, FLAGGED_NAME)), roots=[("SRC", data_root)])
    if inside(data_root, dst):
        raise FacediagError(f"SRC {src} is inside DST {dst}: aligned crops could overwrite the originals; "
                            "choose a DST outside SRC")


def _relative(rec: Record, base: Path) -> Path:
    try:
        return rec.path.resolve().relative_to(base.resolve())
    except ValueError:
        raise FacediagError(f"{rec.path} lies outside {base}: align keeps paths relative to SRC") from None


def _read_rows(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def _csv_text(rows, columns) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _save_png(path: Path, rgb: np.ndarray) -> None:
    atomic_save(path, lambda tmp: Image.fromarray(rgb).save(tmp, format="PNG"), durable=False)


def _to_decoded(points_file: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Landmarks in a file's pixels -> in the decoded (possibly shrunk) image's pixels."""
    return (points_file.reshape(5, 2) + 0.5) * scale - 0.5


def _row(rel, rec, source, points_file, score, faces, f) -> dict:
    row = {"path": str(rel), "subject": rec.subject, "role": rec.role, "source": source,
           "score": "" if score is None else f"{score:.4f}", "faces": faces,
           "residual": f"{f.residual:.3f}", "rotation_deg": f"{f.rotation_deg:.2f}", "scale": f"{f.scale:.4f}"}
    row.update({c: f"{v:.2f}" for c, v in zip(LANDMARK_COLUMNS, np.asarray(points_file).ravel())})
    return row


def align_dataset(src: str | Path, dst: str | Path, *, layout: str = "auto", min_face_size: int = PHOTO_MIN_FACE,
                  device: str = "cpu", progress: bool = True) -> AlignSummary:
    """Align every image under ``src`` into ``dst`` (see the module docstring)."""
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    require_extra()
    check_paths(src, dst)
    index = index_dataset(src, layout)
    run = _AlignRun(index, src.parent if index.layout == "manifest" else src, dst, min_face_size, device)
    with progress_bar("aligning", len(index.records), progress) as advance:
        for s in range(0, len(index.hr), BATCH):
            run.align_hr(index.hr[s:s + BATCH], advance)
            run.save_rows()
        for rec in index.vlr:
            advance()
            run.align_vlr(rec)
        run.save_rows()
    summary = run.summary
    if index.layout == "manifest":
        _write_manifest(src, dst, index, run.out_of, summary)
    atomic_write_text(dst / FLAGGED_NAME, _csv_text([{"path": p, "reason": why} for p, why in summary.flagged],
                                                    ("path", "reason")))
    summary.outputs = [str(dst / CSV_NAME), str(dst / FLAGGED_NAME)]
    return summary


class _AlignRun:
    """One align run's state: the CSV rows (an earlier run's included), the images already done,
    each aligned HR file's landmarks (for its VLR twins) and the summary."""

    def __init__(self, index, base: Path, dst: Path, min_face_size: int, device: str):
        self.base, self.dst = base, dst
        self.min_face_size, self.device = min_face_size, device
        self.rows = _read_rows(dst / CSV_NAME)
        self.summary = AlignSummary()
        self.summary.flagged += [(p, why) for p, why in index.problems]
        rel_of = {str(rec.path): _relative(rec, base) for rec in index.records}
        self.out_of = {p: dst / rel.with_suffix(".png") for p, rel in rel_of.items()}
        self.done = {p for p, o in self.out_of.items() if o.is_file() and str(rel_of[p]) in self.rows}
        self.hr_points: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}  # file name -> (points, decoded size)
        self.detector = None  # started at the first image that needs it

    def save_rows(self) -> None:
        atomic_write_text(self.dst / CSV_NAME,
                          _csv_text(sorted(self.rows.values(), key=lambda r: r["path"]), COLUMNS))

    def flag(self, rel, why: str) -> None:
        self.summary.flagged.append((str(rel), why))

    def align_hr(self, records: list[Record], advance) -> None:
        """A batch of HR images: decoded, landmarks given, earlier or detected (in one batch), warped."""
        batch = self.decode(records, advance)
        need = [i for i, (rec, *_) in enumerate(batch) if rec.landmarks is None and str(rec.path) not in self.done]
        if need and self.detector is None:
            self.detector = Detector(min_face_size=self.min_face_size, device=self.device,
                                     retry_min_face=RETRY_MIN_FACE)
        found = dict(zip(need, self.detector.detect([batch[i][2] for i in need]))) if need else {}
        for i, (rec, rel, rgb, scale) in enumerate(batch):
            advance()
            if str(rec.path) in self.done:
                self.reuse_hr(rec, rel, rgb, scale)
                continue
            landmarks = self.hr_landmarks(rec, rel, scale, found.get(i))
            if landmarks is None:
                continue
            pts, score, faces, source = landmarks
            try:
                f = fit(pts)
            except ValueError as exc:
                self.flag(rel, str(exc))
                continue
            _save_png(self.out_of[str(rec.path)], warp(rgb, f))
            self.hr_points[rec.path.name] = (pts, rgb.shape[:2])
            self.rows[str(rel)] = _row(rel, rec, source, (pts + 0.5) / scale - 0.5, score, faces, f)
            self.summary.aligned += 1

    def decode(self, records: list[Record], advance) -> list[tuple[Record, Path, np.ndarray, np.ndarray]]:
        """(record, path relative to SRC, pixels, decoded size / file size) of each readable image;
        an unreadable one is flagged (and counted as done on the bar)."""
        batch = []
        for rec in records:
            rel = _relative(rec, self.base)
            try:
                rgb = read_rgb(rec.path)
            except (DecodeError, OSError) as exc:
                self.flag(rel, f"unreadable: {exc}")
                advance()
                continue
            size = header_size(rec.path)
            scale = np.array([rgb.shape[1] / size[0], rgb.shape[0] / size[1]]) if size else np.ones(2)
            batch.append((rec, rel, rgb, scale))
        return batch

    def reuse_hr(self, rec: Record, rel: Path, rgb: np.ndarray, scale: np.ndarray) -> None:
        """An HR image an earlier run aligned: its landmarks (from the CSV) for its VLR twins."""
        prior = self.rows.get(str(rel))
        if prior is not None and prior.get(LANDMARK_COLUMNS[0]):
            pts = _to_decoded(np.array([float(prior[c]) for c in LANDMARK_COLUMNS]), scale)
            self.hr_points[rec.path.name] = (pts, rgb.shape[:2])
        self.summary.skipped += 1

    def hr_landmarks(self, rec: Record, rel: Path, scale: np.ndarray, det):
        """(points in decoded pixels, score, faces, source) from the data or the detector; None
        when no face was found (flagged)."""
        if rec.landmarks is not None:
            return _to_decoded(np.asarray(rec.landmarks), scale), None, 1, "given"
        if not det.found:
            self.flag(rel, "no face found")
            return None
        if det.faces > 1:
            self.flag(rel, f"{det.faces} faces: the largest (most central of similar size) was aligned")
        return det.points, det.score, det.faces, "mtcnn"

    def align_vlr(self, rec: Record) -> None:
        """The same shot at low resolution: its HR twin's landmarks, scaled."""
        rel = _relative(rec, self.base)
        if str(rec.path) in self.done:
            self.summary.skipped += 1
            return
        twin = self.hr_points.get(rec.path.name)
        if twin is None:
            self.flag(rel, "VLR file without an aligned HR twin: not aligned")
            return
        try:
            rgb = read_rgb(rec.path)
        except (DecodeError, OSError) as exc:
            self.flag(rel, f"unreadable: {exc}")
            return
        pts, (h, w) = twin
        size = rgb.shape[1]
        pts_v = (pts + 0.5) * np.array([size / w, rgb.shape[0] / h]) - 0.5  # pixel centres, not corners
        # fitted on the 112 scale (VLR -> 112 -> template), warped at the VLR file's own size
        to_112 = rescaling(SIZE / size)
        f = fit((np.c_[pts_v, np.ones(5)] @ to_112.T)[:, :2])
        f = Fit(f.matrix @ to_112, f.residual, f.rotation_deg, f.scale)
        _save_png(self.out_of[str(rec.path)], warp(rgb, f, size=size))
        self.rows[str(rel)] = _row(rel, rec, "hr-twin", pts_v, None, 1, f)
        self.summary.aligned += 1


def _write_manifest(src: Path, dst: Path, index, out_of, summary) -> None:
    """The manifest of the aligned crops: the same subjects and roles, paths to the PNGs, no
    landmark columns (the crops are aligned now); images not aligned are left out (flagged)."""
    rows = [{"path": str(out_of[str(r.path)].relative_to(dst)), "subject": r.subject, "role": r.role,
             "capture": r.capture} for r in index.records if out_of[str(r.path)].is_file()]
    atomic_write_text(dst / src.name, _csv_text(rows, ("path", "subject", "role", "capture")))
    summary.outputs.append(str(dst / src.name))
