"""BenchReport: what `facediag bench accuracy|speed` measured, and its renderers.

Rows are plain JSON-friendly dicts, so a saved bench JSON re-renders to every format
(terminal, JSON, HTML with plots, Markdown) without the models or the data.
"""
from __future__ import annotations

import datetime as _dt
import html as _html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facediag import __version__
from facediag.errors import FacediagError
from facediag.io import atomic_write_text
from facediag.report.schema import json_default
from facediag.report import format_value

SCHEMA_VERSION = 1
KINDS = ("accuracy", "speed")
FORMATS = ("json", "html", "md")


@dataclass
class BenchReport:
    kind: str  # "accuracy" | "speed"
    command: str
    checkpoints: dict[str, dict[str, Any]]  # label -> {path, sha256, variant, ...}
    settings: dict[str, Any]  # what was asked: resolutions, threshold, batch sizes, dtype, ...
    rows: list[dict[str, Any]]  # accuracy: one per (resolution, checkpoint, path); speed: one per checkpoint
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # accuracy --dsr: DSR vs bicubic
    dataset: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    facediag_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "kind": f"bench-{self.kind}",
            "facediag_version": self.facediag_version,
            "created": self.created,
            "command": self.command,
            "checkpoints": self.checkpoints,
            "dataset": self.dataset,
            "environment": self.environment,
            "settings": self.settings,
            "rows": self.rows,
            "comparisons": self.comparisons,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "BenchReport":
        kind = str(d.get("kind", "")).removeprefix("bench-")
        if d.get("schema_version") != SCHEMA_VERSION or kind not in KINDS:
            raise FacediagError(f"not a facediag bench report (kind {d.get('kind')!r}, "
                                f"schema_version {d.get('schema_version')!r})")
        return cls(kind=kind, command=d.get("command", ""), checkpoints=d.get("checkpoints", {}),
                   settings=d.get("settings", {}), rows=list(d.get("rows", [])),
                   comparisons=list(d.get("comparisons", [])), dataset=d.get("dataset"),
                   environment=d.get("environment", {}), notes=list(d.get("notes", [])),
                   created=d.get("created", ""), facediag_version=d.get("facediag_version", ""),
                   schema_version=d["schema_version"])

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=json_default, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json())

    def rows_where(self, **match) -> list[dict]:
        """Rows whose fields equal ``match``, e.g. ``rows_where(resolution=16, path="bicubic")``."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]


def load_bench_report(path: str | Path) -> BenchReport:
    try:
        return BenchReport.from_dict(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise FacediagError(f"{path}: no such report") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FacediagError(f"{path}: not a JSON report ({exc})") from None


# --------------------------------------------------------------------- tables
# Each table is (title, header, rows of cell strings, footnotes): every format draws the same cells.

def _res_label(res) -> str:
    return "HR" if res in (None, "hr") else f"{res} px"


def _rate(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def accuracy_tables(report: BenchReport) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    fars = [f"{f:g}" for f in report.settings.get("fars", [])]
    thr = report.settings.get("threshold", 0.35)
    header = (["resolution", "checkpoint", "upsampling", "rank-1 (95% CI)", f"acc@{thr:g}", f"FAR@{thr:g}"]
              + [f"TAR@FAR {f}" for f in fars] + ["EER", "genuine", "impostor", "probes"])
    cells, unsupported = [], {}
    for r in report.rows:
        tar = r.get("tar_at_far", {})
        for f in fars:
            if tar.get(f) is None and r.get("tar_unsupported", {}).get(f):
                unsupported[f] = r["tar_unsupported"][f]
        ci = (f" ({r['rank1_low']:.2f}–{r['rank1_high']:.2f})"
              if r.get("rank1_low") is not None else "")
        cells.append([_res_label(r["resolution"]), r["checkpoint"], r["upsampling"],
                      _rate(r.get("rank1")) + ci, _rate(r.get("accuracy_at_threshold")),
                      format_value(r.get("far_at_threshold"))]  # 3 significant digits: 0.0012 is not 0.001
                     + [_rate(tar.get(f)) for f in fars]
                     + [_rate(r.get("eer")), _rate(r.get("genuine_mean")), _rate(r.get("impostor_mean")),
                        format_value(r.get("n_probes"))])
    foot = [f"TAR@FAR {f}: not reported ({why})" for f, why in unsupported.items()]
    foot.append(f"acc@{thr:g}: mated probes whose best match is right and scores ≥ {thr:g}; "
                f"FAR@{thr:g}: impostor (probe, other person's template) pairs scoring ≥ {thr:g}. "
                "rank-1 CI: subject-level bootstrap.")
    tables = [("Accuracy by probe resolution", header, cells, foot)]
    if report.comparisons:
        head = ["resolution", "checkpoint", "DSR", "rank-1 DSR", "rank-1 bicubic", "Δ rank-1 (95% CI)",
                "McNemar p", "Δ acc", "Δ EER", "verdict"]
        rows = [[_res_label(c["resolution"]), c["checkpoint"], c["dsr"], _rate(c["rank1_dsr"]),
                 _rate(c["rank1_bicubic"]), f"{c['delta']:+.3f} ({c['ci_low']:+.3f}, {c['ci_high']:+.3f})",
                 f"{c['mcnemar']['p_value']:.3g}", _signed(c.get("accuracy_delta")),
                 _signed(c.get("eer_delta")), c["verdict"]] for c in report.comparisons]
        foot = ["Same probes through the DSR model and through bicubic. Δ = DSR − bicubic. "
                "Significant when McNemar's exact test (b01 = bicubic wrong, DSR right) gives p < "
                f"{report.settings.get('alpha', 0.05):g} and the paired subject-level bootstrap CI of Δ rank-1 "
                "excludes 0."]
        tables.append(("Does the DSR model help recognition? (DSR vs bicubic)", head, rows, foot))
    return tables


def _signed(value) -> str:
    return "—" if value is None else f"{value:+.3f}"


def speed_tables(report: BenchReport):
    rows = report.rows
    size_head = ["checkpoint", "variant", "params (M)", "MFLOPs / face", "paper params (M)", "paper MFLOPs",
                 "deviation"]
    size = []
    for r in rows:
        paper = r.get("paper") or {}
        size.append([r["checkpoint"], r["variant"], f"{r['parameters'] / 1e6:.2f}",
                     f"{r['flops'] / 1e6:.2f}" if r.get("flops") is not None else "—",
                     _fixed(paper.get("parameters_m")), _fixed(paper.get("mflops")),
                     f"{r['paper_deviation_pct']:+.2f} %" if paper else "—"])
    foot = [f"FLOPs: {report.settings.get('flops_method', '')}",
            "paper: the EdgeFace paper's figures; deviation: the larger of ours vs either, in %."]
    foot += list(dict.fromkeys(n for r in rows for n in r.get("notes", [])))
    out = [("Size", size_head, size, foot)]
    if any(r.get("latency_ms") for r in rows):
        batch_sizes = sorted({t["batch_size"] for r in rows for t in r.get("throughput", [])})
        head = (["checkpoint", "device", "dtype", "threads", "b1 median (ms)", "b1 p95 (ms)"]
                + [f"img/s @{b}" for b in batch_sizes] + [f"peak MiB @{max(batch_sizes)}"])
        speed = []
        for r in rows:
            by_bs = {t["batch_size"]: t for t in r.get("throughput", [])}
            lat = r.get("latency_ms") or {}
            flags = "".join(f" +{k.replace('_', '-')}" for k in ("compile", "channels_last") if r.get(k))
            top = by_bs.get(max(batch_sizes), {})
            speed.append([r["checkpoint"], r["device"], r["dtype"] + flags, format_value(r.get("threads")),
                          _num(lat.get("median")), _num(lat.get("p95"))]
                         + [_num(by_bs[b]["images_per_s"]) if b in by_bs else "—" for b in batch_sizes]
                         + [_fixed(top.get("peak_memory_mb"), 1)])
        s = report.settings
        foot = [f"latency: batch 1, {s.get('iters')} timed runs after {s.get('warmup')} warm-up runs"
                + ("; CUDA spans end with torch.cuda.synchronize" if any(r["device"].startswith("cuda") for r in rows)
                   else ""),
                f"throughput: each batch size run for at least {s.get('min_seconds')} s",
                f"memory: {s.get('memory_method', '')}"]
        out.append(("Speed", head, speed, foot))
    return out


def _fixed(value, digits: int = 2) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def _num(value) -> str:
    return "—" if value is None else format_value(float(value))


def tables(report: BenchReport):
    """(title, header, cell rows, footnotes) per table; columns empty in every row are left out."""
    out = []
    for title, header, rows, foot in (accuracy_tables(report) if report.kind == "accuracy"
                                      else speed_tables(report)):
        keep = [i for i in range(len(header)) if not rows or any(row[i] not in ("—", "n/a") for row in rows)]
        out.append((title, [header[i] for i in keep], [[row[i] for i in keep] for row in rows], foot))
    return out


def _context_lines(report: BenchReport) -> list[str]:
    lines = []
    for label, info in report.checkpoints.items():
        sha = f", sha256 {str(info['sha256'])[:12]}" if info.get("sha256") else ""
        lines.append(f"checkpoint {label}: {info.get('path') or 'random weights'} ({info.get('variant')}{sha})")
    if report.dataset:
        d = report.dataset
        counts = d.get("counts") or {}
        lines.append(f"data {d.get('root')}: {d.get('protocol', '')}; "
                     f"{counts.get('gallery_images', '?')} gallery images, {counts.get('probes', '?')} probes, "
                     f"{counts.get('gallery_subjects', '?')} subjects enrolled")
    env = report.environment
    if env:
        lines.append(", ".join(f"{k} {v}" for k, v in env.items()))
    return lines


# ------------------------------------------------------------------ terminal
def render_terminal(report: BenchReport, console) -> None:
    width = console.width
    if not console.is_terminal:  # piped: natural table width rather than 80 folded columns
        console.width = max(width, 240)
    try:
        _print_tables(report, console)
    finally:
        console.width = width


def _print_tables(report: BenchReport, console) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    for title, header, rows, foot in tables(report):
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAVY)
        for i, h in enumerate(header):
            numeric = all(row[i][:1] in "0123456789+-−—." for row in rows)
            table.add_column(escape(h), justify="right" if numeric else "left", overflow="fold")
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
        for line in foot:
            console.print(f"  [dim]{escape(line)}[/]", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for line in _context_lines(report):
        console.print(f"[dim]{escape(line)}[/]", highlight=False)


# ------------------------------------------------------------------ markdown
def _md(value) -> str:
    return _html.escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: BenchReport) -> str:
    lines = [f"# facediag bench {report.kind}", ""]
    for title, header, rows, foot in tables(report):
        lines += [f"## {_md(title)}", "", "| " + " | ".join(map(_md, header)) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(map(_md, row)) + " |" for row in rows]
        lines += [""] + [f"- {_md(x)}" for x in foot] + [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {_md(n)}" for n in report.notes] + [""]
    lines += [f"- {_md(x)}" for x in _context_lines(report)]
    lines += ["", f"<sub>facediag {_md(report.facediag_version)} · `{_md(report.command)}`</sub>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------- html
_CSS = """body{margin:0;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328}
main{max-width:1200px;margin:0 auto;padding:24px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{padding:5px 9px;border-bottom:1px solid #d0d7de;text-align:right}
th{background:#f6f8fa}td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}td{font-variant-numeric:tabular-nums}
.foot,.meta{color:#57606a;font-size:13px}.note{color:#9a6700}code{font-size:13px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:12px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px}figure img{width:100%}"""


def render_html(report: BenchReport) -> str:
    e = lambda v: _html.escape(str(v), quote=True)  # noqa: E731
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>facediag bench {e(report.kind)}</title><style>{_CSS}</style></head><body><main>",
             f"<h1>facediag bench {e(report.kind)}</h1>",
             f'<p class="meta">created {e(report.created)} · <code>{e(report.command)}</code></p>']
    for title, header, rows, foot in tables(report):
        parts.append(f"<h2>{e(title)}</h2><table><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>"
                     + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
                     + "</tbody></table>" + "".join(f'<p class="foot">{e(x)}</p>' for x in foot))
    plots = bench_plots(report)
    if plots:
        parts.append("<h2>Plots</h2><div class=\"plots\">" + "".join(
            f'<figure><img src="{uri}" alt="{e(title)}"></figure>' for title, uri in plots) + "</div>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f'<li class="note">{e(n)}</li>' for n in report.notes) + "</ul>")
    parts.append("<h2>Run</h2><ul class=\"meta\">" + "".join(f"<li>{e(x)}</li>" for x in _context_lines(report))
                 + "</ul>")
    parts.append(f'<p class="meta">facediag {e(report.facediag_version)}, bench schema {e(report.schema_version)}</p>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def bench_plots(report: BenchReport) -> list[tuple[str, str]]:
    """(title, PNG data URI) of each plot: rank-1 vs resolution, or throughput vs batch size."""
    from facediag.report.plots import Plot

    fig = _accuracy_figure(report) if report.kind == "accuracy" else _speed_figure(report)
    if fig is None:
        return []
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no stamp: byte-identical re-renders
    title = fig.axes[0].get_title()
    return [(title, Plot("bench", report.kind, title, buf.getvalue()).data_uri)]


_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _new_axes(title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.91)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.35)
    return fig, ax


def _accuracy_figure(report: BenchReport):
    res = sorted({r["resolution"] for r in report.rows if r["resolution"] != "hr"})
    has_hr = any(r["resolution"] == "hr" for r in report.rows)
    ticks = res + (["hr"] if has_hr else [])
    if len(ticks) < 2:
        return None
    fig, ax = _new_axes("rank-1 vs probe resolution")
    x_of = {t: i for i, t in enumerate(ticks)}
    for ci, label in enumerate(report.checkpoints):
        hr = report.rows_where(checkpoint=label, resolution="hr")
        for upsampling in dict.fromkeys(r["upsampling"] for r in report.rows if r["resolution"] != "hr"):
            pts = [(x_of[r["resolution"]], r["rank1"]) for r in report.rows
                   if r["checkpoint"] == label and r["upsampling"] == upsampling and r["resolution"] != "hr"]
            pts += [(x_of["hr"], r["rank1"]) for r in hr]  # HR is where every path ends
            pts = [(x, y) for x, y in sorted(pts) if y is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", color=_COLOURS[ci % len(_COLOURS)],
                        linestyle="--" if upsampling == "bicubic" and report.comparisons else "-",
                        label=f"{label} · {upsampling}" if report.comparisons else label)
    ax.set_xticks(range(len(ticks)), [_res_label(t) for t in ticks])
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("probe resolution (area-downsampled, then upsampled to 112)")
    ax.set_ylabel("rank-1 identification rate")
    ax.legend(fontsize=8)
    return fig


def _speed_figure(report: BenchReport):
    if not any(len(r.get("throughput", [])) > 1 for r in report.rows):
        return None
    fig, ax = _new_axes("throughput vs batch size")
    for ci, r in enumerate(report.rows):
        pts = [(t["batch_size"], t["images_per_s"]) for t in r.get("throughput", [])]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", color=_COLOURS[ci % len(_COLOURS)],
                    label=f"{r['checkpoint']} ({r['device']}, {r['dtype']})")
    ax.set_xscale("log", base=2)
    sizes = sorted({t["batch_size"] for r in report.rows for t in r.get("throughput", [])})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s")
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------- writing
def render(report: BenchReport, fmt: str) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "html":
        return render_html(report)
    if fmt == "md":
        return render_markdown(report)
    raise FacediagError(f"unknown bench report format {fmt!r}; choose from {', '.join(FORMATS)}")


def write_all(report: BenchReport, out_dir: str | Path) -> dict[str, Path]:
    """bench-<kind>.json, .html and .md in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    return {fmt: atomic_write_text(out_dir / f"bench-{report.kind}.{fmt}", render(report, fmt)) for fmt in FORMATS}
