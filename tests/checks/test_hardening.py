"""Hardening of the run path: HR probes are never compared with themselves, NaN weights are
named as such, unreadable files show in every format with counts that agree, and a report of
the wrong shape is one line."""
import json

import pytest
import torch
from rich.console import Console

from facediag.checks.base import Status
from facediag.errors import FacediagError
from facediag.render import render, render_terminal
from facediag.results import load_result
from helpers import copy_orl_subset


def test_full_resolution_probes_are_not_paired_with_themselves(run, float_weights, orl_root, tmp_path):
    """--vlr-size hr with no VLR files: a probe's 'DSR output' is its own HR image. Paired
    similarity would be 1.000 by construction and read as memorisation (the healthy model got
    exit 1); now it is not measured, and collapse is still judged on genuine vs impostor."""
    data = copy_orl_subset(orl_root, tmp_path / "orl10")
    rep = run(float_weights, data, vlr_size=None, checks=["pair-gap", "identification"])
    gap = rep.result("pair-gap")
    assert gap.status == Status.PASS, gap.summary
    assert gap.metrics["paired_mean"] is None and gap.metrics["n_paired"] == 0
    assert gap.metrics["collapsed"] is False and gap.metrics["genuine_mean"] > 0.3
    assert "not measured" in gap.summary
    assert [d.id for d in rep.diagnoses] == []


def test_nan_weights_are_named_not_called_unreadable_images(run, float_weights, orl_root, tmp_path):
    from facediag.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(float_weights)
    with torch.no_grad():
        next(p for p in loaded.model.parameters() if p.ndim == 4).fill_(float("nan"))
    loaded.sha256 = None  # no longer the file's weights: its cached embeddings must not be served
    data = copy_orl_subset(orl_root, tmp_path / "orl5", range(1, 6))
    rep = run(data=data, model=loaded, checks=["weights-integrity", "identification"])
    wi, ident = rep.result("weights-integrity"), rep.result("identification")
    assert wi.status == Status.FAIL and "the model returns NaN" in wi.summary
    assert ident.status == Status.ERROR and "returns NaN" in ident.summary
    assert "could be read" not in ident.summary


def test_unreadable_files_show_in_every_format_and_counts_agree(run, float_weights, orl_root, tmp_path):
    data = copy_orl_subset(orl_root, tmp_path / "orl5", range(1, 6))
    broken = [data / "s1" / "9.pgm", data / "s2" / "10.pgm", data / "s3" / "8.pgm"]
    for p in broken:
        p.write_bytes(b"P5\n92 112\n255\n" + b"\0" * 100)  # a truncated PGM
    rep = run(float_weights, data, checks=["identification"])
    problems = rep.dataset["problems"]
    assert {p["path"] for p in problems} == {str(p) for p in broken}
    assert rep.dataset["counts"]["problems"] == len(problems) == 3
    console = Console(record=True, width=200)
    render_terminal(rep, console)
    outputs = {"terminal": console.export_text(), **{fmt: render(rep, fmt) for fmt in ("md", "junit", "html")}}
    for fmt, text in outputs.items():
        assert "3 file(s) could not be used" in text, fmt
        assert "9.pgm" in text, fmt


@pytest.mark.parametrize("content", [
    "[1, 2]", '{"schema_version": 1, "kind": "run", "results": [{"name": "x"}]}',
    '{"schema_version": 1, "kind": "run", "results": 5}', '{"schema_version": 1, "kind": "nope"}',
    '{"schema_version": 1, "kind": "compare", "a": 3}', "[" * 100_000 + "]" * 100_000, "not json",
])
def test_a_report_of_the_wrong_shape_is_one_line(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(FacediagError) as err:
        load_result(path)
    assert "\n" not in str(err.value)


def test_render_cli_refuses_a_bad_report_in_one_line(tmp_path):
    from click.testing import CliRunner

    from facediag.cli import cli

    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": 1, "kind": "run", "results": [{"status": "PASS"}]}))
    res = CliRunner().invoke(cli, ["render", str(path), "--format", "md"])
    assert res.exit_code == 2 and len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1


def test_disjoint_gallery_and_probe_subjects_fail_with_the_reason(run, float_weights, orl_root, tmp_path):
    """Gallery of people 1-3, probes of people 4-6: pair-gap raised TypeError (ERROR); now every
    check that needs mated probes FAILs saying why, and the diagnosis names the mismatch."""
    gallery = copy_orl_subset(orl_root, tmp_path / "g", range(1, 4))
    probes = copy_orl_subset(orl_root, tmp_path / "p", range(4, 7))
    rep = run(float_weights, None, gallery_root=gallery, probe_root=probes,
              checks=["subject-overlap", "pair-gap", "identification"])
    statuses = {r.name: r.status for r in rep.results}
    assert Status.ERROR not in statuses.values(), [(r.name, r.summary) for r in rep.results]
    assert statuses["pair-gap"] == Status.FAIL and "is enrolled in the gallery" in rep.result("pair-gap").summary
    assert "gallery-probe-mismatch" in [d.id for d in rep.diagnoses]


def test_the_html_report_shows_the_faces(run, float_weights, orl_root, tmp_path):
    """Worst genuine matches and top impostor pairs as thumbnails of what the model saw, and
    leaked pairs side by side, embedded in the page (no external link); Markdown links nothing."""
    from helpers import leaky_copy

    data = leaky_copy(orl_root, tmp_path / "leaky")
    rep = run(float_weights, data, checks=["subject-overlap", "identification"])
    strips = {s["title"]: s for r in rep.results for s in r.data.get("faces", [])}
    assert {"Worst genuine matches", "Highest-scoring impostor pairs", "Leaked pairs"} <= set(strips)
    worst = strips["Worst genuine matches"]["rows"][0]["tiles"]
    assert len(worst) == 3 and all(t["uri"].startswith("data:image/jpeg;base64,") for t in worst)
    html = render(rep, "html")
    assert html.count('<figure class="face">') >= 3 + 2 + 2 and "beat it" in html
    assert "http://" not in html.split("<footer")[0] and "https://" not in html.split("<footer")[0]
    md = render(rep, "md")
    assert "data:image" not in md and "http" not in md
    _screenshot_faces(html, tmp_path)


def _screenshot_faces(html, tmp_path):
    """Where headless Chromium is installed: the strips render as pictures (the page of only the
    first strip, screenshotted, is far from blank)."""
    import shutil
    import subprocess

    if not shutil.which("chromium", path="/usr/bin"):
        return
    head = html[:html.index("<main>") + len("<main>")]
    start = html.index('<div class="faces">')
    page = tmp_path / "faces.html"
    page.write_text(head + html[start:html.index("</div></div>", start)] + "</div></div></main></body></html>")
    shot = tmp_path / "faces.png"
    subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=600,400",
                    page.as_uri()], capture_output=True, timeout=120, check=False)
    from PIL import Image

    import numpy as np

    dark = (np.asarray(Image.open(shot).convert("L")) < 100).mean()
    assert dark > 0.02, dark  # faces (ORL's black borders): measured 0.099; a blank page 0.0005


def test_the_seed_layout_says_in_every_format_which_split_enrolled(run, float_weights, orl_root, tmp_path):
    """dataset/train + dataset/val as one root: gallery from train/, probes from val/, said in
    one line in every format, with the warning that a gallery the model trained on is optimistic."""
    import shutil

    for s in range(1, 6):
        for split, images in (("train", (1, 2, 3)), ("val", (4, 5))):
            (tmp_path / "dataset" / split / f"s{s}").mkdir(parents=True)
            for i in images:
                shutil.copy(orl_root / f"s{s}" / f"{i}.pgm", tmp_path / "dataset" / split / f"s{s}")
    rep = run(float_weights, tmp_path / "dataset", checks=["identification"])
    assert rep.result("identification").status != Status.ERROR
    console = Console(record=True, width=250)
    render_terminal(rep, console)
    for text in (console.export_text(), render(rep, "md"), render(rep, "junit"), render(rep, "html")):
        assert "gallery from train/, probes from val/" in text
        assert "people it has seen" in text
