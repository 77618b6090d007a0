"""Model cards: what a face embedder of another family expects, in a small TOML beside it.

A card is ``<model file>.toml`` (``arcface.onnx`` -> ``arcface.onnx.toml``), or the file given
with ``--card``, which wins. Its fields are ModelPreset's; every one but ``family`` may be left
out and then takes EdgeFace's value::

    name = "arcface-r18"
    family = "arcface"            # "edgeface" means EdgeFace: its checks apply
    input_size = [3, 112, 112]    # C, H, W (3 channels)
    mean = [0.5, 0.5, 0.5]        # on pixels in [0, 1]: insightface's 127.5 is 0.5
    std = [0.5, 0.5, 0.5]
    channel_order = "BGR"         # RGB or BGR
    embedding_dim = 512
    threshold = 0.3               # cosine operating point where the suite or command line sets none
    flip = true                   # bench verification adds the mirror image's embedding

Reading is strict: an unknown key, a wrong type or an impossible value is refused with one
line naming the file and the field, before any work.
"""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from facediag.errors import FacediagError
from facediag.models.presets import EDGEFACE, ModelPreset
from facediag.models.safe_load import read_toml

CARD_SUFFIX = ".toml"
CHANNEL_ORDERS = ("RGB", "BGR")
FIELDS = tuple(f.name for f in fields(ModelPreset))
_MAX_SIDE = 1024  # pixels: larger inputs are not face crops


def card_path_for(model_path) -> Path:
    """Where a model file's card goes: ``<model file>.toml``."""
    return Path(str(model_path) + CARD_SUFFIX)


def card_beside(model_path) -> Path | None:
    """The card that sits beside a model file (``<model file>.toml``), if there is one."""
    path = card_path_for(model_path)
    return path if path.is_file() else None


def resolve_card(model_path, card=None) -> tuple[ModelPreset, Path | None]:
    """(the preset the model runs with, the card it came from): ``card`` when given, else the
    card beside the model, else EdgeFace's preset and None."""
    path = Path(card) if card is not None else card_beside(model_path)
    return (read_card(path), path) if path is not None else (EDGEFACE, None)


def read_card(path) -> ModelPreset:
    """A card's ModelPreset, validated; FacediagError (one line naming the file and field) otherwise."""
    path = Path(path)
    doc = read_toml(path, "model card")
    unknown = [k for k in doc if k not in FIELDS]
    if unknown:
        raise FacediagError(f"{path}: unknown field {unknown[0]!r} (a card takes {', '.join(FIELDS)})")
    if "family" not in doc:
        raise FacediagError(f"{path}: family is missing (e.g. family = \"arcface\"; \"edgeface\" for EdgeFace)")
    values = {}
    for key, value in doc.items():
        problem = _problem(key, value)
        if problem:
            raise FacediagError(f"{path}: {key} = {_shown(value)}: {problem}")
        values[key] = tuple(value) if isinstance(value, list) else value
    values.setdefault("name", values["family"])
    return ModelPreset(**values)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _problem(key: str, value) -> str | None:
    """Why ``value`` cannot be the card's ``key``, or None."""
    if key in ("name", "family"):
        return None if isinstance(value, str) and value.strip() else "must be a non-empty string"
    if key == "input_size":
        if not (isinstance(value, list) and len(value) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            return "must be three whole numbers [channels, height, width], e.g. [3, 112, 112]"
        if value[0] != 3:
            return "facediag feeds colour faces: channels must be 3"
        if not all(8 <= v <= _MAX_SIDE for v in value[1:]):
            return f"height and width must lie between 8 and {_MAX_SIDE} pixels"
        return None
    if key in ("mean", "std"):
        if not (isinstance(value, list) and len(value) == 3 and all(_number(v) for v in value)):
            return "must be three numbers, one per channel"
        if key == "std" and min(value) <= 0:
            return "a std must be above 0"
        if max(abs(v) for v in value) > 1:
            return "applies to pixels in [0, 1]: give 255-scale values divided by 255 (127.5 -> 0.5)"
        return None
    if key == "channel_order":
        return None if value in CHANNEL_ORDERS else f"must be {' or '.join(CHANNEL_ORDERS)}"
    if key == "embedding_dim":
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else \
            "must be a whole number of at least 1"
    if key == "threshold":
        return None if _number(value) and -1 <= value <= 1 else "a cosine lies between -1 and 1"
    if key == "flip":
        return None if isinstance(value, bool) else "must be true or false"
    raise AssertionError(key)  # FIELDS and this function name the same fields


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def missing_card_note(loaded) -> str | None:
    """What to tell the user about a graph that is not EdgeFace and came without a card, or None."""
    if getattr(loaded, "card", None) or loaded.format != "onnx" or loaded.variant != "custom":
        return None
    return (f"{Path(str(loaded.path)).name}: an ONNX graph that matches no EdgeFace variant, and no model card was "
            "given: it runs with EdgeFace's preset (RGB 112×112, (x − 0.5)/0.5, threshold 0.35); put a card "
            f"beside it ({Path(str(loaded.path)).name}{CARD_SUFFIX}) or give --card if it expects otherwise")
