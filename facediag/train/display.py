"""The console's epoch table: one Rich row per epoch as it ends (header once), flags under it."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from facediag.train.history import fmt, severe


class EpochTable:
    """Sized for an 80-column terminal; the JSON history has every number. Rows are printed
    as separate tables with fixed widths, so they line up without holding the whole table."""

    def __init__(self, console: Console, seen: bool, threshold: float):
        self.console, self.seen = console, seen
        thr = f"{threshold:g}"
        self.cols = [("ep", 3), ("train\nloss", 6), ("train\npaired", 6), ("val\nrank-1", 6)]
        if seen:
            self.cols.append(("seen\nrank-1", 6))
        self.cols += [(f"acc\n@{thr}", 6), (f"FAR\n@{thr}", 6), ("val\ngenu.", 6),
                      ("val\nimpos.", 6), ("val\npaired", 6), ("s", 4), ("", 5)]

    def _table(self, header: bool) -> Table:
        t = Table(box=None, show_header=header, header_style="bold", pad_edge=False,
                  padding=(0, 1, 0, 0))
        for name, width in self.cols:
            t.add_column(name, width=width, justify="right", no_wrap=True)
        return t

    def header(self):
        self.console.print(self._table(True))

    def row(self, r: dict):
        t = self._table(False)
        cells = [str(r["epoch"]), fmt(r.get("train_loss")), fmt(r.get("train_paired_cos")),
                 fmt(r.get("val_rank1"))]
        if self.seen:
            cells.append(fmt(r.get("seen_rank1")))
        cells += [fmt(r.get("val_accuracy_at_threshold")), fmt(r.get("val_far_at_threshold")),
                  fmt(r.get("val_genuine_mean")), fmt(r.get("val_impostor_mean")),
                  fmt(r.get("val_paired_mean")),
                  f"{(r.get('seconds') or 0) + (r.get('val_seconds') or 0):.0f}",
                  "best" if r.get("best") else ("start" if r["epoch"] == 0 else "")]
        style = "red" if severe(r) else ("bold green" if r.get("best") else None)
        t.add_row(*cells, style=style)
        self.console.print(t)
        for flag in r.get("flags") or []:
            color = "bold red" if severe(r) else "yellow"
            self.console.print(f"    [{color}]{flag}[/]", highlight=False)
