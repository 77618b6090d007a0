"""`facediag export`: a checkpoint as ONNX (optionally int8) or TorchScript, kept only once it
is shown to embed faces as the checkpoint does.

The export is written to a temporary file beside ``--out``, embedded with the checkpoint on a
sample of faces (the user's data, else the demo's synthetic faces), and renamed into place only
when the per-image cosine and the rank-1 decisions agree (metrics/parity.py). An int8 export is
expected to move embeddings: its figures are reported, not held to the fp32 tolerance.

A model with a model card is exported as itself: the export takes the model's own input (the
card's size, channel order, mean/std), not the engine's EdgeFace input, and the card is copied
beside it (``<out>.toml``, where models/card.py looks), so the export runs under its own preset
wherever it goes. Both sides of the verification are fed through that card.

ONNX goes through torch's TorchScript-based exporter (``dynamo=False``): the dynamo exporter of
torch 2.14 needs the separate ``onnxscript`` package, and the TorchScript one exports timm's
EdgeNeXt exactly (cosine 1.0 to 1e-6 on ORL).
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facediag.data.images import load_face, to_tensor01
from facediag.data.index import index_dataset, natural_key
from facediag.demo.faces import draw_subject, subject_name
from facediag.embed import Embedder
from facediag.errors import FacediagError
from facediag.formatting import display_name
from facediag.io import atomic_save, atomic_write_bytes
from facediag.metrics.parity import Parity, embedding_parity
from facediag.models.adapter import PresetInput, with_preset
from facediag.models.card import card_path_for
from facediag.models.checkpoint import ScriptedEmbedder, load_checkpoint
from facediag.models.edgeface import VARIANTS
from facediag.models.onnx import ONNX_FORMAT, load_onnx, require

FORMATS = ("onnx", "torchscript")
OPSET = 17  # every op EdgeNeXt uses (LayerNormalization among them) is native from 17
MIN_COSINE = 0.99999  # fp32 export vs checkpoint, per image
SAMPLE_SUBJECTS, SAMPLE_PER_SUBJECT = 20, 5  # 100 faces: a few seconds on a CPU


@dataclass
class ExportResult:
    out: Path
    format: str
    int8: bool
    opset: int | None
    sample: str                # where the faces came from
    parity: Parity
    min_cosine: float | None   # the tolerance held to (None: int8, reported only)
    kept: bool
    card: Path | None = None   # the model card written beside the export (None: no card, or not kept)

    def as_dict(self) -> dict:
        return {"out": str(self.out), "format": self.format, "int8": self.int8, "opset": self.opset,
                "sample": self.sample, "parity": self.parity.as_dict(), "min_cosine": self.min_cosine,
                "kept": self.kept, "card": None if self.card is None else str(self.card)}


def validate(fmt: str, int8: bool, min_cosine: float) -> None:
    """Options checked before any model is loaded or anything exported."""
    if fmt not in FORMATS:
        raise FacediagError(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    if int8 and fmt != "onnx":
        raise FacediagError("--int8 quantises an ONNX export (onnxruntime's dynamic quantisation): use --format onnx")
    if not 0.0 < min_cosine <= 1.0:
        raise FacediagError(f"--min-cosine must be in (0, 1], got {min_cosine}")
    if fmt == "onnx":
        require("onnx")
        require("onnxruntime")


def sample_faces(data: Path | None, subjects: int = SAMPLE_SUBJECTS, per_subject: int = SAMPLE_PER_SUBJECT):
    """([N, 3, 112, 112] pixels in [0, 1], subject per face, where they came from): the first
    HR images of the first subjects of ``data`` (natural order), else the demo's synthetic faces."""
    if data is None:
        faces, names = [], []
        for i in range(subjects):
            for img in draw_subject(0, "heldout", i, per_subject):
                faces.append(to_tensor01(np.asarray(img.convert("RGB"))))
                names.append(subject_name("heldout", i))
        return torch.stack(faces), np.array(names), f"{len(faces)} synthetic demo faces ({subjects} identities)"
    index = index_dataset(data)
    by_subject: dict[str, list] = {}
    for rec in index.hr:
        by_subject.setdefault(rec.subject, []).append(rec)
    chosen = []
    for subject in sorted(by_subject, key=natural_key)[:subjects]:
        chosen += sorted(by_subject[subject], key=lambda r: natural_key(str(r.path)))[:per_subject]
    faces, names = [], []
    for rec in chosen:
        try:
            faces.append(load_face(rec.path))
            names.append(rec.subject)
        except Exception:  # an unreadable file is simply not in the sample
            continue
    if len(faces) < 2 or len(set(names)) < 2:
        raise FacediagError(f"{data}: needs readable images of at least 2 subjects to verify an export")
    return torch.stack(faces), np.array(names), f"{len(faces)} faces of {len(set(names))} subjects from {data}"


def export(weights: Path, out: Path, fmt: str = "onnx", *, int8: bool = False, data: Path | None = None,
           min_cosine: float = MIN_COSINE, arch: str | None = None, card=None,
           progress: bool = False) -> ExportResult:
    """Export ``weights``, verify it against the checkpoint on a face sample, keep it only on success.
    With a model card (``card``, or the one beside ``weights``) the export is the model itself, taking
    the model's own input, and the card is copied beside it as ``<out>.toml`` (only when kept)."""
    validate(fmt, int8, min_cosine)
    loaded = load_checkpoint(weights, arch=arch, card=card)
    if loaded.format == ONNX_FORMAT:
        raise FacediagError(f"{Path(weights).name}: is already ONNX; export reads a torch checkpoint")
    if loaded.variant in VARIANTS and VARIANTS[loaded.variant].quantized:
        raise FacediagError(f"{Path(weights).name}: is int8 ({loaded.variant}); export its float twin "
                            "(--int8 quantises the ONNX graph)")
    pixels, subjects, where = sample_faces(data)
    reference = Embedder(loaded.model.eval(), torch.device("cpu"), fingerprint=None, progress=progress)
    expected = _embed(reference, pixels)
    model = _bare(loaded.model)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    card_out = card_path_for(out) if loaded.card is not None else None
    kept = {}

    def write(tmp):
        kept.update(_write_and_verify(model, loaded.preset, Path(tmp), fmt, int8, pixels, subjects, expected,
                                      min_cosine, display_name(out)))
        if not kept["ok"]:
            raise _NotFaithful()
        if card_out is not None:  # the card first: the export never sits there without it
            atomic_write_bytes(card_out, Path(loaded.card).read_bytes())

    try:
        atomic_save(out, write)
    except _NotFaithful:
        pass
    return ExportResult(out=out, format=fmt, int8=int8, opset=OPSET if fmt == "onnx" else None, sample=where,
                        parity=kept["parity"], min_cosine=None if int8 else min_cosine, kept=kept["ok"],
                        card=card_out if kept["ok"] else None)


def _bare(model: nn.Module) -> nn.Module:
    """The model itself: without the card's adapter (the export takes what the model takes) and, for a
    TorchScript model run as it is, its scripted module (torch.onnx cannot trace into it through the
    wrapper that checks its output's shape)."""
    model = model.model if isinstance(model, PresetInput) else model
    return model.scripted if isinstance(model, ScriptedEmbedder) else model


class _NotFaithful(Exception):
    """The export missed the tolerance: atomic_save removes the temporary file."""


def _embed(embedder: Embedder, pixels: torch.Tensor) -> np.ndarray:
    return np.concatenate([embedder.forward(pixels[s:s + 32]) for s in range(0, len(pixels), 32)])


def _write_and_verify(model, preset, tmp: Path, fmt, int8, pixels, subjects, expected, min_cosine,
                      name: str) -> dict:
    """Export ``model`` (fed as ``preset`` says) to ``tmp`` and embed the sample through the export,
    fed the same way: {"parity": figures against ``expected``, "ok": within tolerance}."""
    example = torch.zeros(2, *preset.input_size)
    if fmt == "torchscript":
        if isinstance(model, torch.jit.ScriptModule):  # already TorchScript: saved as it is
            traced = model
        else:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", FutureWarning)  # torch's deprecation notice for jit.trace
                traced = torch.jit.trace(model, example)
        traced.save(str(tmp))
        exported = traced  # the traced module just saved: verified in memory, never reloaded as code
    else:
        _export_onnx(model, tmp, example, int8)
        exported = load_onnx(tmp, preset=preset).model
    fed = with_preset(exported, preset, name)  # the engine's EdgeFace input made the card's, as for the checkpoint
    got = _embed(Embedder(fed, torch.device("cpu"), fingerprint=None, progress=False), pixels)
    parity = embedding_parity(expected, got, subjects)
    finite = bool(np.isfinite(got).all())
    ok = finite and (int8 or (parity.cosine_min >= min_cosine and parity.rank1_changed == 0))
    return {"parity": parity, "ok": ok}


def _export_onnx(model, tmp: Path, example: torch.Tensor, int8: bool) -> None:
    target = tmp
    if int8:  # quantise a float export written beside it
        fd, name = tempfile.mkstemp(suffix=".fp32.onnx", dir=tmp.parent)
        os.close(fd)
        target = Path(name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (example,), str(target), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["embedding"],
                              dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}})
        if int8:
            # onnxruntime: the onnx extra, optional
            from onnxruntime.quantization import QuantType, quantize_dynamic

            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its root-logger advice to "consider pre-processing" is not for the user
            try:
                quantize_dynamic(str(target), str(tmp), weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
    finally:
        if int8:
            target.unlink(missing_ok=True)
