"""A contact sheet: sample faces at full resolution and as the low-resolution pipeline sees them.

The low-resolution row is made exactly as the evaluation makes its probes: area-downsampled
to ``vlr_size`` pixels, then brought back to 112 px by the default (bicubic) DSR stage.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from facediag.data.images import SIZE, downsample, load_face
from facediag.data.index import index_dataset
from facediag.models.dsr import BicubicDSR

_PAD = 4
_LABEL_W = 96


def _to_image(x) -> Image.Image:
    return Image.fromarray((x.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def contact_sheet(root: str | Path, *, subjects: int = 8, images: int = 2, vlr_size: int = 16) -> Image.Image:
    """Grid: one column per subject (the first ``subjects`` in folder order); for each of
    its first ``images`` pictures a full-resolution row, then the same pictures at
    ``vlr_size`` px through bicubic DSR."""
    index = index_dataset(root, layout="folders")
    by_subject: dict[str, list] = {}
    for rec in index.hr:
        by_subject.setdefault(rec.subject, []).append(rec)
    chosen = [s for s in index.subjects if by_subject.get(s)][:subjects]
    rows = max(len(by_subject[s]) for s in chosen) if chosen else 0
    rows = min(rows, images)

    cell = SIZE + _PAD
    sheet = Image.new("RGB", (_LABEL_W + cell * len(chosen) + _PAD, cell * 2 * rows + _PAD + 18), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    dsr = BicubicDSR()
    for col, subject in enumerate(chosen):
        recs = by_subject[subject][:rows]
        hr = torch.stack([load_face(r.path) for r in recs])
        lr = dsr(downsample(hr, vlr_size))
        x = _LABEL_W + col * cell
        draw.text((x, 2), subject, fill="black", font=font)
        for row in range(len(recs)):
            sheet.paste(_to_image(hr[row]), (x, 18 + row * cell))
            sheet.paste(_to_image(lr[row]), (x, 18 + (rows + row) * cell))
    for block, label in enumerate(("HR 112 px", f"{vlr_size} px, bicubic")):
        draw.text((_PAD, 18 + block * rows * cell + SIZE // 2), label, fill="black", font=font)
    return sheet


def png_data(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def contact_sheet_html(png: bytes, caption: str) -> str:
    """An HTML figure embedding the PNG as a data URI (the reports stay self-contained)."""
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="{uri}" alt="{html.escape(caption, quote=True)}" style="width:auto;max-width:100%">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
