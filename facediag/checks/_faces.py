"""Face strips: what a check shows as pictures (thumbnails it asked the Session for), in the
one shape the HTML renderer draws: data["faces"] = [{"title", "note", "rows": [{"label",
"tiles": [{"uri", "caption"}]}]}]."""
from __future__ import annotations

from typing import Any, Sequence


def tile(uri: str | None, caption: str) -> dict[str, Any]:
    return {"uri": uri, "caption": caption}


def strip(title: str, note: str, rows: Sequence[tuple[str, Sequence[dict]]]) -> dict[str, Any]:
    return {"title": title, "note": note, "rows": [{"label": label, "tiles": list(tiles)} for label, tiles in rows]}
