"""bench ijb end to end: the real EdgeFace-xxs float weights on a miniature IJB-C built from ORL
(20 people, 3 templates each of 2–4 crops in 1–2 media, every crop a known rotation/scale of the
face; AT&T / ORL faces), through the CLI; every format renders and reads back."""
import json

import pytest
from click.testing import CliRunner

pytest.importorskip("skimage")

from ijb_tree import orl_aligned, write_ijb_tree

from cli_helpers import invoke, one_line_exit_2
from helpers import CARD, face_like, traced_tiny_net

from facediag.cli import cli  # noqa: E402
from facediag.render import render  # noqa: E402
from facediag.results import BenchReport, load_result  # noqa: E402


@pytest.fixture(scope="module")
def run(float_weights, orl_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("ijb")
    root = write_ijb_tree(d / "IJBC", lambda p, i: orl_aligned(orl_root, p, i), people=range(1, 21))
    out = d / "out"
    res = CliRunner().invoke(cli, ["bench", "ijb", "-w", str(float_weights), "--root", str(root), "--target", "IJBC",
                                   "--cache-dir", str(d / "cache"), "--quiet", "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.stdout), out


@pytest.mark.slow
def test_one_to_one_tar_well_above_chance_with_pair_counts(run):
    report, _ = run
    one = [r for r in report["rows"] if r["protocol"] == "1:1"]
    assert len(one) == 1
    r = one[0]
    assert (r["n_genuine"], r["n_impostor"]) == (60, 1770 - 60) and r["n_unreadable"] == 0
    # chance: TAR = FAR. The aligned ORL templates separate people far better than that.
    assert r["tar_at_far"]["0.1"] > 0.8 and r["tar_at_far"]["0.01"] > 0.5
    assert r["auc"] > 0.95
    # 1710 impostor pairs support FAR 1e-2 (17 ≥ 10), not 1e-3: said so, with the count
    assert r["tar_at_far"]["0.001"] is None and "needs >= 10000" in r["tar_unsupported"]["0.001"]
    st = report["settings"]
    assert (st["flip"], st["norm_score"], st["detector_score"]) == (True, True, True)
    assert "N1" in st["switches"] and "D1" in st["switches"] and "F1" in st["switches"]


@pytest.mark.slow
def test_one_to_n_per_gallery(run):
    report, _ = run
    search = {r["gallery"]: r for r in report["rows"] if r["protocol"] == "1:N"}
    assert sorted(search) == ["G1", "G2"]
    for r in search.values():
        assert (r["n_gallery"], r["n_mated"], r["n_nonmated"]) == (10, 20, 20)
        assert r["rank1"] > 0.8 and r["rank10"] >= r["rank5"] >= r["rank1"]
        # 20 non-mated probes support neither FPIR (10 needs 100, 1e-2 needs 1000): refused with the reason
        assert r["tpir_at_fpir"] == {"0.01": None, "0.1": None}
        assert "needs >= 100 non-mated probes" in r["tpir_unsupported"]["0.1"]


@pytest.mark.slow
def test_every_format_renders_and_reads_back(run):
    report, out = run
    assert sorted(p.name for p in out.iterdir()) == ["bench-ijb.html", "bench-ijb.json", "bench-ijb.junit.xml",
                                                   "bench-ijb.md"]
    back = load_result(out / "bench-ijb.json", BenchReport)
    assert back.kind == "ijb" and back.rows == report["rows"]
    md = render(back, "md")
    assert "IJBC 1:1 verification" in md and "| TAR@FAR 0.01 |" in md and "IJBC 1:N search" in md
    # unsupported operating points: their columns are left out, the footnotes say why
    assert "TAR@FAR 1e-06: not reported (FAR 1e-06 needs" in md and "10000000 impostor pairs" in md
    assert "TPIR at G1 FPIR 0.1: not reported (FPIR 0.1 needs" in md and "100 non-mated probes" in md
    assert "norm score on (N1" in md and "TPIR(t): mated probes whose own template ranks first" in md
    res = CliRunner().invoke(cli, ["render", str(out / "bench-ijb.json"), "--format", "html", "-o",
                                   str(out.parent / "again.html")])
    assert res.exit_code == 0, res.output


# ------------------------------------------ a non-EdgeFace model with its card (no assets needed)
def _synthetic_face(p, i):
    return face_like(100 * p + i)


@pytest.mark.slow
def test_a_carded_torchscript_model_runs_through_bench_ijb(tmp_path):
    """tiny_net is no EdgeFace and takes 96 px BGR faces (EdgeFace's 112 px do not fit its linear layer):
    it loads only with its card and runs only when fed as the card says."""
    root = write_ijb_tree(tmp_path / "IJBC", _synthetic_face, people=range(1, 5))
    model, card = traced_tiny_net(tmp_path / "tiny.pt"), tmp_path / "tiny-card.toml"
    card.write_text(CARD)
    common = ("bench", "ijb", "-w", model, "--root", root, "--device", "cpu", "--cache-dir", tmp_path / "cache",
              "--quiet", "--json")
    res = invoke(*common, "--card", card)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["checkpoints"]["tiny"]["card"] == str(card)
    assert report["checkpoints"]["tiny"]["preset"]["input_size"] == [3, 96, 96]
    one = next(r for r in report["rows"] if r["protocol"] == "1:1")
    assert one["n_unreadable"] == 0 and (one["n_genuine"], one["n_impostor"]) == (12, 66 - 12)
    one_line_exit_2(invoke(*common), "match no EdgeFace variant")  # without its card it is refused
    one_line_exit_2(invoke(*common, "--card", card, "--card", card), "2 --card for 1 --weights")
    # a card is an input: reports written over it are refused
    one_line_exit_2(invoke(*common, "--card", root.parent / "out" / "bench-ijb.json", "--out", root.parent / "out"),
                    "would overwrite the input card")
