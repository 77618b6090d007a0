"""The demo story: its pieces without training, and the whole quick story end to end (slow)."""
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rich.console import Console

from facediag.demo.faces import FaceSetSpec
from facediag.demo.story import (DemoConfig, DemoResult, ModelRow, Scale, Stage, _verdicts, run_demo,
                                 summary_markdown)


def _row(key, rank1, diagnoses=()):
    return ModelRow(key=key, label=key, training="t", checkpoint=f"{key}.pt",
                    training_metric="paired cosine" if key == "broken" else "val rank-1",
                    training_value=1.0 if key == "broken" else 0.5,
                    rank1=rank1, hr_rank1=0.6, paired=0.9, genuine=0.8, impostor=0.1, far=0.01, status="PASS",
                    diagnoses=[{"id": d, "severity": s, "summary": d} for d, s in diagnoses])


def _compare(verdict):
    return SimpleNamespace(row=lambda key: SimpleNamespace(verdict=verdict))


def test_verdicts_need_all_three():
    rows = {"pretrained": _row("pretrained", 0.5, [("hr-dsr-domain-gap", "warning")]),
            "broken": _row("broken", 0.05, [("embedding-collapse", "failure")]),
            "fixed": _row("fixed", 0.6)}
    v = _verdicts(rows, _compare("better"))
    assert v["ok"] and v["collapse_caught"] and v["pretrained_healthy"] and v["fix_gain_significant"]
    assert v["fix_rank1_gain"] == pytest.approx(0.1)

    rows["pretrained"] = _row("pretrained", 0.5, [("untrained-weights", "failure")])
    assert not _verdicts(rows, _compare("better"))["ok"]
    rows["pretrained"] = _row("pretrained", 0.7)
    v = _verdicts(rows, _compare("worse"))
    assert not v["fix_improves"] and not v["ok"]


def test_summary_markdown_is_a_table_with_verdicts(tmp_path):
    rows = {"pretrained": _row("pretrained", 0.5),
            "broken": _row("broken", 0.05, [("embedding-collapse", "failure")]),
            "fixed": _row("fixed", 0.6)}
    result = DemoResult(tmp_path, "quick", 0, rows, _verdicts(rows, _compare("better")), {}, {"total": 1.0})
    text = summary_markdown(result, FaceSetSpec(10, 2, 5, 2))
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 3 and all(line.count("|") == table[0].count("|") for line in table)
    assert "embedding-collapse" in text and "✗" not in text
    json.dumps(result.as_dict())


def test_summary_fits_an_80_column_terminal(tmp_path):
    from rich.console import Console

    from facediag.demo.story import print_summary

    rows = {"pretrained": _row("pretrained", 0.5),
            "broken": _row("broken", 0.05, [("embedding-collapse", "failure")]),
            "fixed": _row("fixed", 0.6)}
    result = DemoResult(tmp_path, "quick", 0, rows, _verdicts(rows, _compare("better")), {}, {"total": 1.0})
    console = Console(width=80, record=True)
    print_summary(result, console)
    text = console.export_text()
    assert "embedding-collapse" in text and "paired cos 1.000" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_cli_demo_help():
    from facediag.cli import cli

    out = CliRunner().invoke(cli, ["demo", "--help"])
    assert out.exit_code == 0
    for option in ("--out", "--full", "--quick", "--seed", "--device", "--workers"):
        assert option in out.output


TINY = Scale("tiny", FaceSetSpec(12, 4, 6, 4), val_subjects=4,
             pretrain=Stage(2, 4, 2, 1e-3, warmup_steps=1), broken=Stage(2, 4, 2, 1e-3, warmup_steps=1),
             fix=Stage(2, 4, 2, 1e-3, warmup_steps=1))


def test_ctrl_c_while_saving_leaves_no_half_written_checkpoint(tmp_path, monkeypatch):
    """Interrupted half-way through writing the paired-only checkpoint: the pretrained one is
    complete and loads, the broken one does not exist, and no temporary file is left."""
    import torch

    from facediag.models.checkpoint import load_checkpoint

    real_save = torch.save

    def interrupted_save(obj, f, *args, **kwargs):
        if "broken_paired" not in str(getattr(f, "name", f)):
            return real_save(obj, f, *args, **kwargs)
        if isinstance(f, (str, Path)):  # the trainer's resume state goes by path
            Path(f).write_bytes(b"half a checkpoint")
        else:
            f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    out = tmp_path / "demo"
    with pytest.raises(KeyboardInterrupt):
        run_demo(DemoConfig(out=out, scale=TINY, workers=1, progress=False, device="cpu"),
                 console=Console(file=io.StringIO()))
    ckpts = out / "checkpoints"
    assert (ckpts / "pretrained.pt").is_file() and not (ckpts / "broken_paired.pt").exists()
    assert load_checkpoint(ckpts / "pretrained.pt").variant == "edgeface_xxs"
    for path in ckpts.glob("*.pt"):  # whatever is there is whole
        torch.load(path, weights_only=True)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".partial-" in p.name]
    assert (out / "faces" / "faces.json").is_file()  # the face set is complete and will be reused


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    """`facediag demo --quick`: the verdicts hold (not exact numbers) and every file is there."""
    from facediag.cli import cli

    out = tmp_path / "demo"
    res = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(out), "--workers", "2", "--quiet",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "demo.json").read_text())
    v = summary["verdicts"]
    assert v["collapse_caught"], summary["rows"]["broken"]["diagnoses"]
    assert v["pretrained_healthy"], summary["rows"]["pretrained"]["diagnoses"]
    assert v["fix_improves"] and v["fix_rank1_gain"] > 0
    assert summary["rows"]["broken"]["training_value"] > 0.99  # the training metric said all was well
    for name in ("pretrained.pt", "broken_paired.pt", "fixed_contrastive.pt"):
        assert (out / "checkpoints" / name).is_file()
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.resume.pt"))
    for name in ("pretrained", "broken", "fixed", "compare_broken", "compare_fixed"):
        page = (out / "reports" / name / "report.html").read_text()
        assert "Sample faces" in page and "data:image/png;base64," in page
        assert (out / "reports" / name / "report.json").is_file()
    assert (out / "summary.md").read_text().count("|") > 20
    assert (out / "contact_sheet.png").is_file()
    assert "embedding-collapse" in res.output
