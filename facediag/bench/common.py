"""What the accuracy, verification and IJB benches do alike: read the resolutions asked for, name, load
and describe their checkpoints, say what they ran on."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from facediag.errors import FacediagError
from facediag.models.checkpoint import load_checkpoint
from facediag.models.loaded import LoadedModel


def checkpoint_labels(checkpoints: Sequence, labels: Sequence[str] | None) -> list[str]:
    """One table label per checkpoint: ``labels`` as given (distinct, one each), else each file's stem."""
    if labels is not None:
        if len(labels) != len(checkpoints) or len(set(labels)) != len(labels):
            raise FacediagError("give one distinct label per checkpoint")
        return list(labels)
    names = [Path(str(getattr(c, "path", c) or f"model{i}")).stem for i, c in enumerate(checkpoints)]
    # Two files with the same name from different folders still need two table rows.
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def parse_resolutions(text: str | Sequence) -> tuple[int | None, ...]:
    """"12,16,hr" -> (12, 16, None): low resolutions ascending, HR last, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    sizes: set[int] = set()
    hr = False
    for item in items:
        token = str(item).strip().lower() if item is not None else "hr"
        if token in ("hr", "none", "full"):
            hr = True
            continue
        try:
            size = int(token)
        except ValueError:
            raise FacediagError(f"resolution {item!r} is neither a size in pixels nor 'hr'") from None
        if not 4 <= size <= 112:
            raise FacediagError(f"resolution {size}: must be between 4 and 112 pixels (or 'hr')")
        sizes.add(size)
    if not sizes and not hr:
        raise FacediagError("no resolutions given (e.g. 12,16,24,32,hr)")
    return tuple(sorted(sizes)) + ((None,) if hr else ())


def card_per_checkpoint(checkpoints: Sequence, cards: Sequence | None) -> list:
    """``cards`` as one entry per checkpoint (None: the card beside it); FacediagError on a wrong count."""
    cards = list(cards) if cards else [None] * len(checkpoints)
    if len(cards) != len(checkpoints):
        raise FacediagError(f"{len(cards)} --card for {len(checkpoints)} --weights: give one per checkpoint or none")
    return cards


def load_models(checkpoints: Sequence, arch: str | None, cards: Sequence | None = None) -> list:
    """Each checkpoint as a loaded model: a path is loaded (with its card: ``cards``, one per
    checkpoint, None for the card beside it); a LoadedModel, or an object with its fields, is
    taken as it is, whoever loaded or wrapped it."""
    return [c if is_loaded(c) else load_checkpoint(c, arch=arch, card=card)
            for c, card in zip(checkpoints, card_per_checkpoint(checkpoints, cards))]


def is_loaded(checkpoint) -> bool:
    """A model already loaded (a LoadedModel, or an object with its fields), not a path."""
    return isinstance(checkpoint, LoadedModel) or hasattr(checkpoint, "model")  # a path has no model


def environment(device: torch.device) -> dict[str, Any]:
    """The software and device a bench ran on, as its report states them."""
    env = {"torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
