"""``facediag demo``: the whole story, offline, on synthetic identities.

1. Draw a synthetic face set (training identities and disjoint held-out identities).
2. Train a "pretrained" EdgeFace-xxs from scratch with the project's contrastive trainer (HR views).
3. Reproduce the original failure: fine-tune it with the paired-only objective
   1 − cos(f(LR_i), f(HR_i)); its own training metric reads ~1.000.
4. Run the checks on both and compare them: facediag names the collapse.
5. Apply the fix (supervised contrastive over HR + 16 px views) and compare again: 16 px
   rank-1 on held-out identities goes up.
6. Write everything under ``out`` and print one summary.

Every step is seeded; every file is written atomically (the trainer's checkpoints too), so
Ctrl-C leaves complete files or none.
"""
from __future__ import annotations

from facediag.models.presets import DEFAULT_THRESHOLD

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from facediag.compare import compare
from facediag.demo.contact_sheet import contact_sheet, contact_sheet_html, png_data
from facediag.demo.faces import FaceSetSpec, generate_faces, subject_name
from facediag.io import atomic_write_bytes, atomic_write_text
from facediag.progress import progress_bar
from facediag.render import write_all
from facediag.suites import load_suite
from facediag.train.trainer import TrainConfig, train_contrastive

VLR_SIZE = 16
GALLERY_PER_SUBJECT = 3
THRESHOLD = DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Stage:
    """One training run of the story."""

    steps: int
    batch_subjects: int
    images_per_subject: int
    lr: float
    # 0.2 rather than the usual 0.1: from scratch and in a few hundred steps, it spreads the
    # embeddings (impostor mean ~0 instead of ~0.25) over more dimensions.
    temperature: float = 0.2
    warmup_steps: int = 10
    epochs: int = 1


@dataclass(frozen=True)
class Scale:
    """Everything that differs between the standard demo (the default) and ``--full``."""

    name: str
    faces: FaceSetSpec
    val_subjects: int  # training identities the trainer keeps out, to validate on
    pretrain: Stage
    broken: Stage
    fix: Stage


# Training dominates the demo's time. At the same number of images, smaller batches and more
# steps learn faster from scratch (P = 8-16 people x K = 4); with fewer steps than these the
# fix's gain shrank or vanished (benchmarks/README.md, "facediag demo").
FULL = Scale(
    "full", FaceSetSpec(1000, 12, 100, 10), val_subjects=50,
    pretrain=Stage(400, 16, 4, 2e-3),
    broken=Stage(20, 16, 4, 3e-3, warmup_steps=2),
    fix=Stage(300, 8, 4, 1e-3),
)
STANDARD = Scale(
    "standard", FaceSetSpec(240, 8, 80, 8), val_subjects=40,
    pretrain=Stage(240, 8, 4, 2e-3),
    broken=Stage(10, 16, 4, 3e-3, warmup_steps=2),
    fix=Stage(80, 8, 4, 1e-3),
)

MODELS = {  # key -> (checkpoint file, label, short label, how it was trained)
    "pretrained": ("pretrained.pt", "pretrained", "pretrained", "SupCon on HR views, from scratch"),
    "broken": ("broken_paired.pt", "paired-only fine-tune", "paired-only",
               "1 − cos(f(LR_i), f(HR_i)) from pretrained"),
    "fixed": ("fixed_contrastive.pt", "contrastive fine-tune", "contrastive",
              f"SupCon over HR + {VLR_SIZE} px views from pretrained"),
}


@dataclass
class DemoConfig:
    out: str | Path = "reports/demo"
    full: bool = False
    seed: int = 0
    device: str = "auto"
    workers: int | None = None  # face-drawing processes; None: up to 4
    progress: bool = True
    scale: Scale | None = None  # None: STANDARD, or FULL with full=True (tests pass a tiny one)

    def chosen_scale(self) -> Scale:
        return self.scale or (FULL if self.full else STANDARD)


@dataclass
class ModelRow:
    """One line of the summary: a model, what its training said, what facediag says."""

    key: str
    label: str
    training: str
    checkpoint: str
    training_metric: str           # what the training run reported as its headline metric
    training_value: float | None
    rank1: float | None            # held-out identities, probes at VLR_SIZE px through DSR
    hr_rank1: float | None
    paired: float | None
    genuine: float | None
    impostor: float | None
    far: float | None              # false-accept rate at THRESHOLD
    status: str
    diagnoses: list[dict] = field(default_factory=list)  # {"id", "severity", "summary"}

    @property
    def failures(self) -> list[str]:
        return [d["id"] for d in self.diagnoses if d["severity"] == "failure"]


@dataclass
class DemoResult:
    out: Path
    scale: str
    seed: int
    rows: dict[str, ModelRow]
    verdicts: dict[str, Any]
    files: dict[str, str]
    seconds: dict[str, float]

    @property
    def ok(self) -> bool:
        return bool(self.verdicts["ok"])

    def as_dict(self) -> dict:
        return {"kind": "demo", "scale": self.scale, "seed": self.seed, "out": str(self.out),
                "verdicts": self.verdicts, "rows": {k: asdict(r) for k, r in self.rows.items()},
                "files": self.files, "seconds": self.seconds}


# ------------------------------------------------------------------------------ story
def run_demo(cfg: DemoConfig = DemoConfig(), console: Console | None = None) -> DemoResult:
    """Run the six steps; return the summary (also written to ``out/summary.md`` and ``demo.json``)."""
    return _Story(cfg, console or Console()).run()


class _Story:
    def __init__(self, cfg: DemoConfig, console: Console):
        self.cfg, self.c = cfg, console
        self.scale = cfg.chosen_scale()
        self.out = Path(cfg.out).expanduser()
        self.ckpt_dir = self.out / "checkpoints"
        self.report_dir = self.out / "reports"
        self.seconds: dict[str, float] = {}
        self.files: dict[str, str] = {}

    def step(self, n: int, title: str):
        self.c.rule(f"[bold]{n}/6[/] {title}", align="left")

    def timed(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 1)

    def run(self) -> DemoResult:
        t0 = time.perf_counter()
        s = self.scale
        self.c.print(f"[bold]facediag demo[/] ({s.name} scale, seed {self.cfg.seed}) -> {self.out}",
                     highlight=False)

        self.step(1, "Synthetic identities")
        faces = self.timed("faces", self.make_faces)
        sheet = self.timed("contact_sheet", self.make_sheet, faces)

        self.step(2, "Train a 'pretrained' EdgeFace-xxs from scratch (SupCon, HR views)")
        pre = self.timed("pretrain", self.train, "pretrained", faces, s.pretrain, weights=None,
                         objective="supcon", views="hr")

        self.step(3, "Reproduce the failure: fine-tune with the paired-only objective")
        broken = self.timed("broken", self.train, "broken", faces, s.broken, weights=pre.out_path,
                            objective="paired", views="hr+lr")
        paired_metric = broken.history[-1].get("train_paired_cos")
        self.c.print(f"The paired-only run's own training metric: paired cosine "
                     f"[bold]{_f(paired_metric)}[/] — by that number, training went perfectly.",
                     highlight=False)

        self.step(4, "What facediag says: run-all on both, and compare")
        cmp_broken = self.timed("compare_broken", self.compare, pre.out_path, broken.out_path, faces,
                                "compare_broken", sheet, sides=("pretrained", "broken"))
        self.say_diagnoses("pretrained", cmp_broken.a)
        self.say_diagnoses("paired-only", cmp_broken.b)

        self.step(5, f"The fix: contrastive fine-tune over HR + {VLR_SIZE} px views")
        fixed = self.timed("fix", self.train, "fixed", faces, s.fix, weights=pre.out_path,
                           objective="supcon", views="hr+lr")
        cmp_fixed = self.timed("compare_fixed", self.compare, pre.out_path, fixed.out_path, faces,
                               "compare_fixed", sheet, sides=(None, "fixed"))
        self.say_diagnoses("contrastive", cmp_fixed.b)

        self.step(6, "Summary")
        trained = {"pretrained": pre, "broken": broken, "fixed": fixed}
        reports = {"pretrained": cmp_broken.a, "broken": cmp_broken.b, "fixed": cmp_fixed.b}
        rows = {k: _row(k, trained[k], reports[k]) for k in MODELS}
        verdicts = _verdicts(rows, cmp_fixed)
        self.seconds["total"] = round(time.perf_counter() - t0, 1)
        result = DemoResult(self.out, s.name, self.cfg.seed, rows, verdicts, self.files, self.seconds)
        self.files["summary"] = str(atomic_write_text(self.out / "summary.md", summary_markdown(result, faces.spec)))
        self.files["demo_json"] = str(self.out / "demo.json")
        atomic_write_text(self.out / "demo.json", json.dumps(result.as_dict(), indent=2, default=str))
        print_summary(result, self.c)
        return result

    # ------------------------------------------------------------------ steps
    def make_faces(self):
        spec = replace(self.scale.faces, seed=self.cfg.seed)
        with progress_bar("drawing faces", spec.total_images, self.cfg.progress) as advance:
            faces = generate_faces(self.out / "faces", spec, workers=self.cfg.workers, progress=advance)
        how = "reused" if faces.reused else f"drawn in {faces.seconds:.1f} s"
        self.c.print(f"{spec.train_subjects} training identities × {spec.train_images} images, "
                     f"{spec.heldout_subjects} held-out identities × {spec.heldout_images} "
                     f"({spec.total_images} PNGs, {how}) -> {faces.root}", highlight=False)
        self.files["faces"] = str(faces.root)
        return faces

    def make_sheet(self, faces) -> str:
        img = contact_sheet(faces.heldout, subjects=8, images=2, vlr_size=VLR_SIZE)
        data = png_data(img)
        self.files["contact_sheet"] = str(atomic_write_bytes(self.out / "contact_sheet.png", data))
        return contact_sheet_html(data, f"Held-out synthetic identities: two pictures each at 112 px (top) and as "
                                        f"the pipeline sees them, area-downsampled to {VLR_SIZE} px and "
                                        f"bicubic-upsampled back (bottom).")

    def train(self, key: str, faces, stage: Stage, *, weights, objective: str, views: str):

        spec = faces.spec
        n_val = self.scale.val_subjects
        # The last training identities validate the trainer (checkpoint choice); the held-out
        # identities are never seen by any training run, only by run-all and compare.
        val = [subject_name("train", i) for i in range(spec.train_subjects - n_val, spec.train_subjects)]
        cfg = TrainConfig(
            data=faces.train, out=self.ckpt_dir / MODELS[key][0], weights=weights, arch="edgeface_xxs",
            val_subjects=val, gallery_per_subject=GALLERY_PER_SUBJECT, vlr_size=VLR_SIZE,
            views=views, objective=objective, batch_subjects=stage.batch_subjects,
            images_per_subject=stage.images_per_subject, temperature=stage.temperature, lr=stage.lr,
            weight_decay=0.05, warmup_steps=stage.warmup_steps, epochs=stage.epochs,
            steps_per_epoch=stage.steps // stage.epochs, threshold=THRESHOLD, seed=self.cfg.seed,
            device=self.cfg.device, hflip=True, progress=self.cfg.progress)
        result = train_contrastive(cfg, console=self.c)
        # The resume state only serves `train-contrastive --resume`; the demo always starts over.
        result.resume_path.unlink(missing_ok=True)
        self.files[f"checkpoint_{key}"] = str(result.out_path)
        return result

    def session_options(self, faces) -> dict:
        # A cache of the demo's own: both compares run the pretrained model on the same
        # held-out faces, and the second reads its embeddings instead of computing them again.
        return dict(train_root=faces.train, layout="folders", gallery_per_subject=GALLERY_PER_SUBJECT,
                    vlr_size=VLR_SIZE, device=self.cfg.device, cache_dir=self.out / "embedding-cache",
                    progress=self.cfg.progress)

    def compare(self, weights_a, weights_b, faces, name: str, sheet: str, sides: tuple):
        """compare(A, B) on the held-out identities. Its two run reports are run-all's (same
        suite, same Session), written as the run reports of ``sides`` (None: not again)."""

        # The demo's faces are drawn, not photographed: a face detector finds no real landmarks on
        # them, so the alignment check (meant for photos) would only report that. Every other check runs.
        default = load_suite("default")
        suite = default.only([n for n in default.checks if n != "alignment"])
        report = compare(weights_a, weights_b, data=faces.heldout, seed=self.cfg.seed, suite=suite,
                         command=f"facediag compare {weights_a} {weights_b} --data {faces.heldout}",
                         **self.session_options(faces))

        paths = write_all(report, self.report_dir / name, extra_sections=[("Sample faces", sheet)])
        self.files[name] = str(paths["html"])
        for key, side in zip(sides, (report.a, report.b)):
            if key is not None:
                self.write_run_report(key, side, sheet)
        rank1 = report.row("identification.rank1")
        self.c.print(f"{report.summary()}", highlight=False)
        if rank1 is not None:
            self.c.print(f"  held-out {VLR_SIZE} px rank-1: {rank1.a:.3f} -> {rank1.b:.3f}", highlight=False)
        return report

    def say_diagnoses(self, label: str, report) -> None:
        """What facediag concluded about one model, as the terminal report leads with it."""
        if not report.diagnoses:
            self.c.print(f"  facediag on {label}: [green]no diagnosis[/] (checks: {_check_line(report)})",
                         highlight=False)
        for d in report.diagnoses:
            colour = "red" if d.severity == "failure" else "yellow"
            self.c.print(f"  facediag on {label}: [bold {colour}]{d.id}[/] — {d.summary}", highlight=False)
            for line in d.evidence[:3]:
                self.c.print(f"      {line}", highlight=False)

    def write_run_report(self, key: str, report, sheet: str) -> None:

        folder = self.report_dir / key
        write_all(report, folder, extra_sections=[("Sample faces", sheet)])
        self.files[f"report_{key}"] = str(folder / "report.html")


def _check_line(report) -> str:
    """'7 pass, 1 warn, 1 skip': how the checks came out."""
    counts = Counter(r.status.value.lower() for r in report.results)
    return ", ".join(f"{n} {s}" for s, n in counts.items())


# ---------------------------------------------------------------------------- summary
def _row(key: str, trained, report) -> ModelRow:
    _, label, _, how = MODELS[key]
    last = trained.history[-1] if trained.history else {}
    if key == "broken":  # the number the original failure was judged by
        metric, value = "paired cosine", last.get("train_paired_cos")
    else:  # the trainer's own choice: rank-1 on its validation identities
        metric, value = "val rank-1", (trained.best_metrics or last).get("val_rank1")
    m = report.metric
    return ModelRow(
        key=key, label=label, training=how, checkpoint=str(trained.out_path), training_metric=metric,
        training_value=value,
        rank1=m("identification", "rank1"), hr_rank1=m("pair-gap", "hr_rank1"),
        paired=m("pair-gap", "paired_mean"), genuine=m("pair-gap", "genuine_mean"),
        impostor=m("pair-gap", "impostor_mean"), far=m("identification", "far_at_threshold"),
        status=report.status.value,
        diagnoses=[{"id": d.id, "severity": d.severity.value, "summary": d.summary} for d in report.diagnoses])


def _verdicts(rows: dict[str, ModelRow], cmp_fixed) -> dict[str, Any]:
    pre, broken, fixed = rows["pretrained"], rows["broken"], rows["fixed"]
    gain = None if fixed.rank1 is None or pre.rank1 is None else fixed.rank1 - pre.rank1
    row = cmp_fixed.row("identification.rank1")
    v = {
        "collapse_caught": "embedding-collapse" in [d["id"] for d in broken.diagnoses],
        "pretrained_healthy": not pre.failures,
        "fix_rank1_gain": None if gain is None else round(gain, 4),
        "fix_gain_significant": bool(row is not None and row.verdict == "better"),
    }
    v["fix_improves"] = gain is not None and gain > 0
    v["ok"] = v["collapse_caught"] and v["pretrained_healthy"] and v["fix_improves"]
    return v


def _f(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _says(row: ModelRow) -> str:
    if not row.diagnoses:
        return "no diagnosis: healthy"
    return ", ".join(f"{d['id']} ({d['severity']})" for d in row.diagnoses)


def summary_markdown(result: DemoResult, spec: FaceSetSpec) -> str:
    """The README-ready table and the verdicts, as Markdown."""
    r, v = result.rows, result.verdicts
    command = "facediag demo" + (" --full" if result.scale == "full" else "") + \
        (f" --seed {result.seed}" if result.seed else "")
    lines = [
        f"`{command}` — synthetic identities (seed {result.seed}): {spec.train_subjects} training × "
        f"{spec.train_images} images, {spec.heldout_subjects} disjoint held-out × {spec.heldout_images}. "
        f"Evaluated on the held-out identities only: gallery = first {GALLERY_PER_SUBJECT} HR images per person, "
        f"probes = the rest, area-downsampled to {VLR_SIZE} px and bicubic-upsampled (the DSR stage); "
        f"chance rank-1 {1 / spec.heldout_subjects:.1%}; accept at cosine ≥ {THRESHOLD}.",
        "",
        f"| model | trained with | its training metric | rank-1 @ {VLR_SIZE} px | rank-1 HR | paired | genuine "
        f"| impostor | FAR @ {THRESHOLD} | facediag says |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r.values():
        lines.append(f"| {row.label} | {row.training} | {row.training_metric} {_f(row.training_value)} "
                     f"| {_f(row.rank1)} | {_f(row.hr_rank1)} | {_f(row.paired)} | {_f(row.genuine)} "
                     f"| {_f(row.impostor)} | {_f(row.far)} | {_says(row)} |")
    gain = v["fix_rank1_gain"]
    lines += [
        "",
        f"- paired-only fine-tune: training reported paired cosine {_f(r['broken'].training_value)}; "
        f"facediag: {'**embedding-collapse** ✓' if v['collapse_caught'] else 'collapse NOT diagnosed ✗'}",
        "- pretrained: " + ("no failure diagnosis ✓" if v["pretrained_healthy"]
                            else "failure diagnosed ✗ " + ", ".join(r["pretrained"].failures)),
        f"- contrastive fix: held-out {VLR_SIZE} px rank-1 {_f(r['pretrained'].rank1)} → {_f(r['fixed'].rank1)} "
        f"({'+' if (gain or 0) >= 0 else ''}{_f(gain)}{', significant' if v['fix_gain_significant'] else ''}) "
        f"{'✓' if v['fix_improves'] else '✗'}",
        "",
    ]
    return "\n".join(lines)


def print_summary(result: DemoResult, console: Console) -> None:
    """One Rich table (fits 80 columns; summary.md has every column) and three verdict lines."""
    v, r = result.verdicts, result.rows
    table = Table(title=f"facediag demo: held-out identities, probes at {VLR_SIZE} px", title_justify="left",
                  box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("model", no_wrap=True)
    table.add_column("training said", no_wrap=True)
    for name in ("rank-1", "impostor", f"FAR@{THRESHOLD}"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("facediag says", overflow="fold")
    for row in r.values():
        said = f"{'paired cos' if row.key == 'broken' else row.training_metric} {_f(row.training_value)}"
        says = ", ".join(d["id"] for d in row.diagnoses) or "healthy"
        table.add_row(MODELS[row.key][2], said, _f(row.rank1), _f(row.impostor), _f(row.far), says,
                      style="red" if row.failures else None)
    console.print(table)
    mark = {True: "[green]✓[/]", False: "[red]✗[/]"}
    console.print(f"{mark[v['collapse_caught']]} paired-only: training said paired cosine "
                  f"{_f(r['broken'].training_value)}; facediag diagnoses embedding-collapse", highlight=False)
    console.print(f"{mark[v['pretrained_healthy']]} pretrained: no failure diagnosis", highlight=False)
    gain = v["fix_rank1_gain"]
    console.print(f"{mark[v['fix_improves']]} contrastive fix: {VLR_SIZE} px rank-1 {_f(r['pretrained'].rank1)} → "
                  f"{_f(r['fixed'].rank1)} ({'+' if (gain or 0) >= 0 else ''}{_f(gain)}, "
                  f"{'significant' if v['fix_gain_significant'] else 'not significant'})", highlight=False)
    console.print(f"reports: {result.out / 'reports'}  summary: {result.out / 'summary.md'}  "
                  f"({result.seconds.get('total', 0):.0f} s)", highlight=False)
