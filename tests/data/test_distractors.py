"""Open set with distractors: ORL people 31–40 probe a gallery of people 1–30 (--distractors).

TPIR and FPIR are checked against a computation from the run's own embeddings written out here
(full score matrix, numpy), and the distractors must not read as an id mismatch in subject-overlap."""
import json

import numpy as np
import pytest

from helpers import copy_orl_subset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def roots(orl_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("watchlist")
    return copy_orl_subset(orl_root, base / "enrolled", range(1, 31)), copy_orl_subset(orl_root, base / "distractors",
                                                                                       range(31, 41))


def test_distractors_give_tpir_against_fpir_as_defined(float_weights, roots, tmp_path):
    import facediag
    from facediag.session import Session, SessionConfig

    enrolled, distractors = roots
    opts = dict(vlr_size=None, progress=False, cache_dir=tmp_path)
    report = facediag.run_all(float_weights, enrolled, checks=["subject-overlap", "identification"],
                              distractors=distractors, **opts)
    res = {r["name"]: r for r in json.loads(report.to_json())["results"]}
    ident, overlap = res["identification"]["metrics"], res["subject-overlap"]["metrics"]
    assert ident["open_set_nonmated_probes"] == overlap["distractor_probes"] == 100
    assert overlap["open_set_share"] == 0 and res["subject-overlap"]["status"] == "PASS"

    ev = Session(SessionConfig(weights=float_weights, data=enrolled, distractors=distractors, **opts)).evaluation()
    scores = ev.probe_emb.astype(np.float64) @ ev.templates.astype(np.float64).T
    mated = np.isin(ev.probe_subjects, ev.template_subjects)
    assert (~mated).sum() == 100 and all(s.startswith("distractor:") for s in ev.probe_subjects[~mated])
    t = ident["threshold"]
    fpir = (scores[~mated].max(axis=1) >= t).mean()
    cols = np.searchsorted(ev.template_subjects, ev.probe_subjects[mated])
    own = scores[mated][np.arange(mated.sum()), cols]
    first = (scores[mated] >= own[:, None]).sum(axis=1) == 1
    tpir = (first & (own >= t)).mean()
    assert ident["open_set_false_alarm_rate"] == pytest.approx(fpir, abs=1e-4)
    assert ident["open_set_dir"] == pytest.approx(tpir, abs=1e-4)
    # TPIR at FPIR 0.1: the threshold lets at most 10 of the 100 distractors through.
    best = np.sort(scores[~mated].max(axis=1))[::-1]
    t10 = np.nextafter(best[10], np.inf)
    assert ident["tpir_at_fpir_0.1"] == pytest.approx((first & (own >= t10)).mean(), abs=1e-4)
    assert ident["fnir_at_fpir_0.1"] == pytest.approx(1 - ident["tpir_at_fpir_0.1"], abs=1e-4)
    assert ident["tpir_at_fpir_0.01"] is None  # 100 non-mated probes cannot support FPIR 0.01
    text = " ".join(f["message"] for f in res["identification"]["findings"])
    assert "TPIR = mated probes" in text and "FPIR 0.01 not supported by 100" in text
    curve = res["identification"]["data"]["open_set"]
    assert len(curve["tpir"]) == len(curve["fpir"]) == len(curve["fnir"]) == len(curve["thresholds"])
    from facediag.render.plots import result_plots

    assert "1:N DET (open set)" in [p.title.split(": ", 1)[1] for p in result_plots(report.result("identification"))]

    # bench accuracy takes --distractors too and reports the same rates (embeddings from the cache).
    from facediag.bench import bench_accuracy

    row = json.loads(bench_accuracy([float_weights], enrolled, resolutions="hr", distractors=distractors, n_boot=20,
                                    progress=False, cache_dir=tmp_path).to_json())["rows"][0]
    assert row["n_nonmated"] == 100
    assert row["tpir"] == pytest.approx(ident["open_set_dir"], abs=1e-4)
    assert row["fpir"] == pytest.approx(ident["open_set_false_alarm_rate"], abs=1e-4)
