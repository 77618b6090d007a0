"""`facediag scores` on real data (ORL people 1-10, AT&T / ORL faces; the EdgeFace-xxs float
weights): the bob 4-column file it writes, read by an independent computation (the lines split by
claimed_id == real_id, scikit-learn's roc_curve, the EER where FAR and FRR cross), gives the EER
run-all's verification check reports on the same data, and `facediag bench scores` on the file gives
the same EER and rank-1; pyeer's own ROC (pyeer.eer_stats) on its genuine/impostor lists agrees:
the same AUC, and facediag's EER inside pyeer's EER interval. A file of scores scrambled between
genuine and impostor must not pass."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pyeer.eer_stats import calculate_roc, calculate_roc_auc, get_eer_values
from sklearn.metrics import roc_curve

from cli_helpers import invoke, one_line_exit_2
from helpers import copy_orl_subset


@pytest.fixture(scope="module")
def orl10(orl_root, tmp_path_factory):
    return copy_orl_subset(orl_root, tmp_path_factory.mktemp("orl10") / "orl")


def bob4_split(path):
    """(genuine, impostor) of a bob 4-column file, as bob.bio.base's split_four_column splits it."""
    genuine, impostor = [], []
    for line in path.read_text().splitlines():
        claimed, real, _, score = line.split(" ")
        (genuine if claimed == real else impostor).append(float(score))
    return np.array(genuine), np.array(impostor)


def sklearn_eer(genuine, impostor) -> float:
    """The EER where the ROC (scikit-learn) crosses FAR = FRR, linear between its two points."""
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(genuine)), np.zeros(len(impostor))], np.r_[genuine, impostor])
    gap = fpr - (1 - tpr)  # FAR - FRR: from -1 (accept nothing) to +1 (accept all)
    i = int(np.argmax(gap >= 0))
    w = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def pyeer_list(path):
    """A pyeer score list as pyeer's geteerinf reads it: the last space-separated field of each line."""
    return np.array([float(line.strip().split(" ")[-1]) for line in open(path)])


@pytest.fixture(scope="module")
def written(orl10, float_weights, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("scores")
    common = ["-w", float_weights, "--data", orl10, "--cache-dir", cache, "-q"]
    for fmt, name in (("bob4", "orl.txt"), ("pyeer", "pyeer")):
        res = invoke("scores", *common, "--format", fmt, "--out", out / name)
        assert res.exit_code == 0, res.output
        assert "700 comparisons (70 probes × 10 templates; 70 genuine, 630 impostor)" in res.output, res.output
    res = invoke("run", "verification", "identification", *common, "--out", out / "run")
    assert res.exit_code == 0, res.output
    return out


def test_bob4_file_gives_run_alls_eer(written):
    report = json.loads((written / "run" / "report.json").read_text())
    metrics = {r["name"]: r["metrics"] for r in report["results"]}
    genuine, impostor = bob4_split(written / "orl.txt")
    ver = metrics["verification"]
    assert (len(genuine), len(impostor)) == (ver["n_genuine"], ver["n_impostor"])
    eer = sklearn_eer(genuine, impostor)
    assert eer == pytest.approx(metrics["verification"]["eer"], abs=5e-5)  # the report rounds to 4 digits
    res = invoke("bench", "scores", written / "orl.txt", "--json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["rows"][0]
    assert row["format"] == "bob4" and row["eer"] == pytest.approx(eer, abs=1e-12)
    assert row["auc"] == pytest.approx(metrics["verification"]["auc"], abs=5e-5)
    assert row["identification"]["rank1"] == pytest.approx(metrics["identification"]["rank1"], abs=5e-5)
    assert row["identification"]["n_mated"] == 70 and row["identification"]["n_gallery"] == 10


def test_pyeer_agrees_on_the_same_scores(written):
    genuine, impostor = pyeer_list(written / "pyeer" / "genuine_scores.txt"), \
        pyeer_list(written / "pyeer" / "impostor_scores.txt")
    g4, i4 = bob4_split(written / "orl.txt")
    np.testing.assert_array_equal(np.sort(genuine), np.sort(g4))  # the same comparisons in both formats
    np.testing.assert_array_equal(np.sort(impostor), np.sort(i4))
    _, fmr, fnmr = calculate_roc(genuine, impostor)
    _, eer_low, eer_high, _ = get_eer_values(fmr, fnmr)  # pyeer: the FAR/FRR interval at the crossing
    res = invoke("bench", "scores", written / "pyeer", "--json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["rows"][0]
    assert row["auc"] == pytest.approx(calculate_roc_auc(fmr, fnmr), abs=1e-12)
    assert eer_low - 1e-12 <= row["eer"] <= eer_high + 1e-12
    assert row["eer"] == pytest.approx(sklearn_eer(g4, i4), abs=1e-12)


def test_scrambled_scores_do_not_pass(written, tmp_path):
    """A planted fault: the same lines with each score moved to another line (seeded): the
    independent EER and facediag's agree, and both say the scores no longer separate anyone."""
    lines = (written / "orl.txt").read_text().splitlines()
    scores = [ln.rsplit(" ", 1)[1] for ln in lines]
    np.random.default_rng(0).shuffle(scores)
    path = tmp_path / "scrambled.txt"
    path.write_text("".join(f"{ln.rsplit(' ', 1)[0]} {s}\n" for ln, s in zip(lines, scores)))
    res = invoke("bench", "scores", path, "--json")
    row = json.loads(res.stdout)["rows"][0]
    assert row["eer"] == pytest.approx(sklearn_eer(*bob4_split(path)), abs=1e-12)
    assert row["eer"] > 0.3 and row["identification"]["rank1"] < 0.4


def test_scores_refuses_before_any_work(orl10, float_weights, tmp_path):
    one_line_exit_2(invoke("scores", "-w", float_weights, "--data", orl10, "--format", "openbr", "--out",
                           tmp_path / "s.bin"), "a .mtx file")
    one_line_exit_2(invoke("scores", "-w", float_weights, "--data", orl10, "--format", "bob4", "--out",
                           orl10 / "s.txt"), "--out")  # never into the data
    one_line_exit_2(invoke("scores", "-w", float_weights, "--data", orl10, "--format", "bob4", "--out",
                           float_weights), "--out")  # never over an input
