"""`facediag inspect`: describe a loaded checkpoint as a JSON-friendly dict and a table.

Nothing here runs the model: everything shown is what loading read from the file
(``load_checkpoint`` runs no model either, TorchScript included; an ONNX graph is parsed and
validated, never given to a runtime)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from facediag.models.card import missing_card_note
from facediag.models.loaded import preset_of


def inspect_dict(loaded) -> dict[str, Any]:
    head = loaded.head
    meta = dict(loaded.meta or {})
    info = {
        "path": str(loaded.path),
        "variant": loaded.variant,
        "format": loaded.format,
        "parameters": int(loaded.parameters),
        "matched_fraction": float(loaded.matched_fraction),
        "missing_keys": list(loaded.missing_keys),
        "unexpected_keys": list(loaded.unexpected_keys),
        "key_prefix": loaded.key_prefix,
        "head": None if head is None else {"classes": int(head.shape[0]), "dim": int(head.shape[1])},
        "label_map_size": None if loaded.label_map is None else len(loaded.label_map),
        "sha256": loaded.sha256,
        "meta": {k: _plain(v) for k, v in meta.items()},
        "card": getattr(loaded, "card", None),
    }
    if info["card"]:  # the preset the model runs with, when a card says it is not EdgeFace's
        info["preset"] = preset_of(loaded).as_dict()
    note = missing_card_note(loaded)
    if note:
        info["note"] = note
    if hasattr(loaded, "inputs"):  # an ONNX graph: what it takes and returns, read from the graph
        info.update(inputs=_io(loaded.inputs), outputs=_io(loaded.outputs), opset=loaded.opset,
                    int8=bool(loaded.int8))
    return info


def _io(values) -> list[dict]:
    return [{"name": v["name"], "shape": list(v["shape"]), "dtype": v["dtype"]} for v in values]


def _plain(value):
    """Training dicts carry configs and metrics of any type: keep what JSON can hold."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return repr(value)


def render_inspect(info: dict[str, Any], console: Console) -> None:
    # Paths, keys and values come from the file: plain Text, never parsed as Rich markup
    # (a config string "[/x]" would otherwise raise, "[red]..." restyle the table).
    table = Table(title=Text(str(info["path"]), style="bold"), show_header=False,
                  title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    head = info["head"]
    rows = [
        ("variant", info["variant"]),
        ("format", info["format"]),
        ("parameters", f"{info['parameters']:,}"),
        ("loaded", f"{info['matched_fraction']:.0%} of parameters (strict)"),
        ("head", "none" if head is None else f"{head['classes']} classes × {head['dim']}"),
        ("label map", "none" if info["label_map_size"] is None else f"{info['label_map_size']} subjects"),
        ("sha256", info["sha256"]),
    ]
    for kind in ("inputs", "outputs"):
        for v in info.get(kind, []):
            shape = "×".join(str(d) for d in v["shape"])
            rows.append((kind[:-1], f"{v['name']}: {v['dtype']} [{shape}]"))
    if "opset" in info:
        rows.append(("opset", str(info["opset"])))
    if info.get("card"):
        preset = info["preset"]
        rows.append(("card", f"{info['card']}: {preset['name']} ({preset['family']}), "
                             f"{preset['channel_order']} {'×'.join(map(str, preset['input_size']))}, "
                             f"mean {list(preset['mean'])} std {list(preset['std'])}, "
                             f"{preset['embedding_dim']}-d, threshold {preset['threshold']:g}"))
    if info.get("note"):
        rows.append(("note", info["note"]))
    for key, value in info["meta"].items():
        rows.append((key, str(value)[:200]))
    for k, v in rows:
        table.add_row(Text(str(k)), Text(str(v)))
    console.print(table)
