"""The demographic check on real faces (official xxs, ORL, probes at full resolution), the --groups
file's reading and matching, its hostile forms (one line, exit 2), and the reports in every format.

Planted: ORL people 21-40 with their probes (images 4-10) blurred (Gaussian, radius 3) form group B,
people 1-20 group A: the check must diagnose demographic-differential naming B. A balanced split of
clean ORL (odd/even people) must not.
"""
import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from cli_helpers import invoke, one_line_exit_2
from facediag.data.groups import assign, read_groups
from facediag.data.index import index_dataset
from facediag.data.protocol import build_protocol
from facediag.errors import DataError


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def planted(orl_root, tmp_path_factory):
    """ORL with the probes of people 21-40 blurred; the groups file A (1-20) / B (21-40)."""
    root = tmp_path_factory.mktemp("planted") / "orl"
    for d in sorted(orl_root.glob("s*")):
        if not d.is_dir():
            continue
        (root / d.name).mkdir(parents=True)
        person = int(d.name[1:])
        for f in d.glob("*.pgm"):
            img = Image.open(f)
            if person > 20 and int(f.stem) > 3:  # probes: the gallery is each person's images 1-3
                img = img.filter(ImageFilter.GaussianBlur(3))
            img.save(root / d.name / f.name)
    groups = _write(root.parent / "groups.csv",
                    "subject,group\n" + "".join(f"s{i},{'A' if i <= 20 else 'B'}\n" for i in range(1, 41)))
    return root, groups


@pytest.fixture(scope="module")
def balanced(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("groups") / "parity.csv",
                  "subject,parity\n" + "".join(f"s{i},{'odd' if i % 2 else 'even'}\n" for i in range(1, 41)))


@pytest.fixture(scope="module")
def planted_run(planted, float_weights, cache, tmp_path_factory):
    """The planted set through the command line, every format written."""
    root, groups = planted
    out = tmp_path_factory.mktemp("planted-out")
    res = invoke("run", "demographic", "-w", float_weights, "--data", root, "--vlr-size", "hr", "--groups", groups,
                 "--cache-dir", cache, "-q", "--out", out)
    return res, out


@pytest.mark.slow
def test_blurred_probes_of_one_group_are_diagnosed_naming_that_group(planted_run):
    res, out = planted_run
    assert res.exit_code == 0, res.output  # a WARN: the run goes on
    report = json.loads((out / "report.json").read_text())
    (d,) = [x for x in report["diagnoses"] if x["id"] == "demographic-differential"]
    assert "group=B has FNMR" in d["summary"] and "group=B" in d["evidence"][0]
    result = next(r for r in report["results"] if r["name"] == "demographic")
    assert result["status"] in ("WARN", "FAIL")
    m = result["metrics"]
    worst = result["data"]["worst"]["fnmr"]
    assert worst["group"] == "group=B" and worst["significant"]
    assert m["fnmr_worst_low"] <= m["fnmr_worst"] <= m["fnmr_worst_high"]
    assert f"{m['fnmr_worst']:.2%}" in d["summary"]  # the rate and its interval, named
    assert f"[{m['fnmr_worst_low']:.2%}, {m['fnmr_worst_high']:.2%}]" in d["summary"]
    # judged at the threshold reaching FMR 0.001 over all impostor pairs (no development set here)
    assert result["data"]["demographic"]["judged"] == "FMR 0.001"
    section = result["data"]["demographic"]["attributes"][0]
    at = {x["label"]: x for x in section["at"]}
    assert set(at) == {"operating", "FMR 0.001"}
    fnmr = at["FMR 0.001"]["fnmr"]
    assert fnmr["B"]["rate"] > fnmr["A"]["rate"]
    # the cross-group matrix's diagonal is each group's FMR
    assert at["FMR 0.001"]["fmr_matrix"][0][0] == pytest.approx(at["FMR 0.001"]["fmr"]["A"]["rate"])


@pytest.mark.slow
def test_every_format_shows_the_group_table_and_det_curves(planted_run):
    res, out = planted_run
    assert "Error rates per group group" in res.output and "Cross-group FMR" in res.output  # terminal
    md = (out / "report.md").read_text()
    assert "### demographic: Error rates per group group" in md and "| FMR 0.001 (0." in md
    assert "Differential summaries over group" in md
    html = (out / "report.html").read_text()
    assert "Error rates per group group" in html and 'alt="demographic: DET per demographic group"' in html
    junit = (out / "junit.xml").read_text()
    assert "Error rates per group group" in junit and "FNMR [95 %]" in junit


@pytest.mark.slow
def test_a_balanced_split_of_clean_orl_is_not_diagnosed(orl_root, balanced, float_weights, cache):
    import facediag

    report = facediag.run_all(float_weights, orl_root, checks=["demographic"], groups=balanced, vlr_size=None,
                              progress=False, cache_dir=cache)
    result = report.result("demographic")
    assert result.status.value == "PASS", result.summary
    assert not report.diagnoses
    assert not result.metrics["fnmr_differential_significant"]
    assert result.metrics["groups"] == 2 and result.metrics["groups_too_small"] == 0
    assert 0.9 < result.metrics["fdr"] <= 1.0


@pytest.mark.slow
def test_bench_accuracy_with_groups_carries_the_section_and_its_tables(orl_root, balanced, float_weights, cache,
                                                                       tmp_path):
    out = tmp_path / "bench"
    res = invoke("bench", "accuracy", "-w", float_weights, "--data", orl_root, "--resolutions", "hr", "--groups",
                 balanced, "--n-boot", "200", "--cache-dir", cache, "-q", "--out", out)
    assert res.exit_code == 0, res.output
    row = json.loads((out / "bench-accuracy.json").read_text())["rows"][0]
    assert {g["group"] for g in row["demographic"]["attributes"][0]["groups"]} == {"odd", "even"}
    md = (out / "bench-accuracy.md").read_text()
    assert "HR · none (HR) · edgeface_xxs_fp32_dequantized · Error rates per parity group" in md
    assert "DET per demographic group" in (out / "bench-accuracy.html").read_text()


def test_without_groups_the_check_skips_and_says_why(orl_root, float_weights, cache):
    import facediag

    report = facediag.run_all(float_weights, orl_root, checks=["demographic"], progress=False, cache_dir=cache)
    result = report.result("demographic")
    assert result.status.value == "SKIP" and "--groups" in result.summary


# ------------------------------------------------------------------------- the file and its matching
def _protocol(orl_root):
    return build_protocol(index_dataset(orl_root, progress=False), gallery_per_subject=3, vlr_size=None)


def test_unknown_subjects_are_said_and_a_file_naming_nobody_is_refused(orl_root, tmp_path):
    proto = _protocol(orl_root)
    groups = read_groups(_write(tmp_path / "g.csv", "subject,sex\n" + "".join(f"s{i},{'FM'[i % 2]}\n"
                                                                            for i in range(1, 36))
                                + "x1,F\nx2,M\n"))
    a = assign(groups, proto, [orl_root])
    assert any("2 subject(s) of g.csv are not in the data: x1, x2" in n for n in a.notes)
    assert any("5 subject(s) of the data are not in g.csv" in n and "s36" in n for n in a.notes)
    values = dict(zip(proto.probe_subjects, a.probe_values[0]))
    assert values["s1"] == "M" and values["s2"] == "F" and values["s40"] == ""
    nobody = read_groups(_write(tmp_path / "n.csv", "subject,sex\n1,F\n2,M\n"))
    with pytest.raises(DataError, match="names none of the data's 40 subjects"):
        assign(nobody, proto, [orl_root])


def test_an_image_row_overrides_its_subjects_group(orl_root, tmp_path):
    proto = _protocol(orl_root)
    groups = read_groups(_write(tmp_path / "g.csv", "subject,image,age\ns1,,young\ns1,s1/4.pgm,old\n"
                                f"s2,{orl_root / 's2' / '1.pgm'},old\ns2,,young\n"))
    a = assign(groups, proto, [orl_root])
    paths = [str(p.source.path) for p in proto.probes]
    by_path = dict(zip(paths, a.probe_values[0]))
    assert by_path[str(orl_root / "s1" / "4.pgm")] == "old" and by_path[str(orl_root / "s1" / "5.pgm")] == "young"
    # s2's gallery images disagree (one old): its template is in no age group, and that is said
    assert a.subject_values[0]["s2"] == "" and a.subject_values[0]["s1"] == "young"
    assert any("gallery images are in different groups" in n and "s2" in n for n in a.notes)


def test_a_manifest_with_attribute_columns_serves_as_the_groups_file(tmp_path):
    path = _write(tmp_path / "manifest.csv", "path,subject,role,capture,sex\na/1.png,p1,hr,c1,F\na/2.png,p1,hr,c2,F\n")
    groups = read_groups(path)
    assert groups.attributes == ("sex",) and set(groups.images) == {"a/1.png", "a/2.png"}


@pytest.mark.parametrize("text, needles", [
    ("subject,sex\ns1,F\ns2,M,extra\n", ["line 3 has 3 field(s), the header has 2"]),
    ("subject,sex\n,F\n", ["line 2: empty subject"]),
    ("subject,sex\ns1,F\ns1,M\n", ["line 3: subject 's1' is sex='M' here and 'F' on line 2"]),
    ("name,sex\ns1,F\n", ["line 1: the header has no subject column"]),
    ("subject,image\ns1,a.png\n", ["line 1: no attribute column"]),
    ("subject,sex,Sex\ns1,F,F\n", ["line 1: column 'Sex' appears twice"]),
    ("subject,sex\ns1,\"F\n", ["not valid CSV"]),
    ("subject,id\n" + "".join(f"s{i},{i}\n" for i in range(70)), ["attribute 'id' takes 70 values"]),
    ("", ["the groups file is empty"]),
])
def test_a_malformed_groups_file_is_one_line_exit_2(tmp_path, orl_root, float_weights, text, needles):
    path = _write(tmp_path / "groups.csv", text)
    one_line_exit_2(invoke("run", "demographic", "-w", float_weights, "--data", orl_root, "--groups", path, "-q"),
                    str(path), *needles)


def test_groups_files_that_cannot_be_read_or_match_nobody_are_one_line_exit_2(tmp_path, orl_root, float_weights):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("subject,sex\nJosé,F\n".encode("latin-1"))
    one_line_exit_2(invoke("run", "demographic", "-w", float_weights, "--data", orl_root, "--groups", latin, "-q"),
                    "line 2 is not UTF-8")
    one_line_exit_2(invoke("run", "demographic", "-w", float_weights, "--data", orl_root, "--groups",
                           tmp_path / "missing.csv", "-q"), "no such groups file")
    nobody = _write(tmp_path / "nobody.csv", "subject,sex\n1,F\n2,M\n")
    one_line_exit_2(invoke("run", "demographic", "-w", float_weights, "--data", orl_root, "--groups", nobody, "-q"),
                    "names none of the data's 40 subjects")


def test_too_small_a_group_is_said_so(orl_root, float_weights, cache, tmp_path):
    import facediag

    path = _write(tmp_path / "g.csv", "subject,site\n" + "".join(
        f"s{i},{'north' if i <= 19 else 'south' if i <= 38 else 'east'}\n" for i in range(1, 41)))
    report = facediag.run_all(float_weights, orl_root, checks=["demographic"], groups=path, vlr_size=16,
                              progress=False, cache_dir=cache)
    result = report.result("demographic")
    assert result.metrics["groups_too_small"] == 1
    assert any("site=east too small to support a rate" in f.message for f in result.findings)
    at = result.data["demographic"]["attributes"][0]["at"][0]
    assert at["fnmr"]["east"]["rate"] is None and at["fnmr"]["north"]["rate"] is not None
    from facediag.render.group_tables import result_tables

    rates = result_tables(result)[0]
    east = [row for row in rates[2] if row[1] == "east"]
    assert east and all("too small to support a rate" in row[3] for row in east)
    assert np.isfinite(result.metrics["fdr"])  # the two groups that support rates are still compared


@pytest.mark.slow
def test_compare_says_whether_the_differential_grew_or_shrank(planted, float_weights, dequantized_weights, cache,
                                                              tmp_path):
    root, groups = planted
    suite = _write(tmp_path / "suite.toml", "[checks.demographic]\n")
    out = tmp_path / "cmp"
    res = invoke("compare", float_weights, dequantized_weights, "--data", root, "--vlr-size", "hr", "--groups", groups,
                 "--suite", suite, "--n-boot", "300", "--cache-dir", cache, "-q", "--out", out)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    rows = {m["key"]: m for m in report["metrics"]}
    for key in ("demographic.fdr", "demographic.garbe", "demographic.fnmr_max_geomean"):
        row = rows[key]
        assert row["verdict"] is not None and row["delta_ci"][0] <= row["delta"] <= row["delta_ci"][1], row
    assert rows["demographic.fdr"]["higher_is_better"] and not rows["demographic.garbe"]["higher_is_better"]
    notes = [n for n in report["shift"]["notes"] if n.startswith("demographic ")]
    assert notes[0].startswith("demographic FDR: ")
    assert all(n.endswith(("the differential shrank", "the differential grew", "no significant change")) for n in notes)
    md = (out / "report.md").read_text()
    assert "| demographic.fdr |" in md and notes[0] in md.replace("\\[", "[").replace("\\]", "]")
