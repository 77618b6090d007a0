"""Pixels for the checks that need pixels rather than embeddings: leakage fingerprints and a
bounded sample to score with altered inputs. Model-independent; the Session caches them per run."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from facediag.data.images import DecodeError, downsample, fit_canvas, load_face, load_lowres
from facediag.data.index import Record, file_digest
from facediag.errors import FacediagError


def fingerprints(records: Sequence[Record]) -> dict[str, Any]:
    """Per readable image: path, file digest, a 32×32 grey thumbnail (zero mean, unit norm) and
    the 112×112 grey canvas. Leakage needs pixels: a 1-px shift scores like another photo of the
    person in embedding space, not in pixel space."""
    paths, digests, thumbs, greys = [], [], [], []
    for rec in records:
        try:
            img = load_face(rec.path) if rec.role == "hr" else fit_canvas(load_lowres(rec.path))
        except (DecodeError, OSError):
            continue
        grey = img.mean(dim=0)
        t = downsample(grey[None], 32).flatten().double().numpy()
        t = t - t.mean()
        thumbs.append(t / max(np.linalg.norm(t), 1e-12))
        greys.append(grey.numpy())
        paths.append(str(rec.path))
        digests.append(file_digest(rec.path))
    return {"paths": paths, "digests": digests, "thumbs": np.array(thumbs).reshape(len(thumbs), 32 * 32),
            "greys": np.array(greys, dtype=np.float32).reshape(len(greys), 112, 112)}


def sample(gallery: Sequence[Record], max_subjects: int = 24, per_subject: int = 3) -> tuple[torch.Tensor, np.ndarray]:
    """Preprocessed pixels ([0,1]) of a few images of each of a few subjects, and their subjects:
    the only decoding outside the embedding engine, bounded by max_subjects × per_subject."""
    taken: dict[str, int] = {}
    pixels, subjects = [], []
    for rec in gallery:
        n = taken.get(rec.subject, 0)
        if n >= per_subject or (n == 0 and len(taken) >= max_subjects):
            continue
        try:
            pixels.append(load_face(rec.path))
        except (DecodeError, OSError):
            continue
        taken[rec.subject] = n + 1
        subjects.append(rec.subject)
    if not pixels:
        raise FacediagError("no readable gallery image")
    return torch.stack(pixels), np.asarray(subjects, dtype=str)


def thumbnail_uri(img01: torch.Tensor, size: int = 56, quality: int = 80) -> str:
    """A small JPEG of a [3, H, W] image in [0, 1] as a data URI, for reports that show faces
    (a few kilobytes each, embedded so the page needs nothing beside it)."""
    import base64
    import io

    from PIL import Image

    arr = (img01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    pil = Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
