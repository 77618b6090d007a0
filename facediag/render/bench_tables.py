"""The tables of bench reports, as cell strings: every format draws the same cells."""
from __future__ import annotations

from facediag.data.degradation import summary as degradation_summary
from facediag.formatting import format_value
from facediag.metrics.operating_point import provenance_text
from facediag.render.group_tables import bench_group_tables
from facediag.render.quality_tables import quality_tables
from facediag.render.text import dev_lines
from facediag.results.bench import BenchReport

# Each table is (title, header, rows of cell strings, footnotes): every format draws the same cells.


def res_label(res) -> str:
    return "HR" if res in (None, "hr") else f"{res} px"


def _rate(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def accuracy_tables(report: BenchReport) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    fars = [f"{f:g}" for f in report.settings.get("fars", [])]
    thr = report.settings["threshold"]
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
        cells.append([res_label(r["resolution"]), r["checkpoint"], r["upsampling"],
                      _rate(r.get("rank1")) + ci, _rate(r.get("accuracy_at_threshold")),
                      format_value(r.get("far_at_threshold"))]  # 3 significant digits: 0.0012 is not 0.001
                     + [_rate(tar.get(f)) for f in fars]
                     + [_rate(r.get("eer")), _rate(r.get("genuine_mean")), _rate(r.get("impostor_mean")),
                        format_value(r.get("n_probes"))])
    foot = [f"TAR@FAR {f}: not reported ({why})" for f, why in unsupported.items()]
    foot.append(f"acc@{thr:g}: mated probes whose best match is right and scores ≥ {thr:g}; "
                f"FAR@{thr:g}: impostor (probe, other person's template) pairs scoring ≥ {thr:g}. "
                "rank-1 CI: subject-level bootstrap.")
    foot += _degradation_foot(report)
    if report.settings.get("threshold_provenance"):
        foot.append(provenance_text(report.settings["threshold_provenance"], "threshold"))
    tables = [("Accuracy by probe resolution", header, cells, foot)]
    if any(r.get("operating_points") for r in report.rows):
        tables.append(operating_point_table(report))
    if report.comparisons:
        head = ["resolution", "checkpoint", "DSR", "rank-1 DSR", "rank-1 bicubic", "Δ rank-1 (95% CI)",
                "McNemar p", "Δ acc", "Δ EER", "verdict"]
        rows = [[res_label(c["resolution"]), c["checkpoint"], c["dsr"], _rate(c["rank1_dsr"]),
                 _rate(c["rank1_bicubic"]), f"{c['delta']:+.3f} ({c['ci_low']:+.3f}, {c['ci_high']:+.3f})",
                 f"{c['mcnemar']['p_value']:.3g}", _signed(c.get("accuracy_delta")),
                 _signed(c.get("eer_delta")), c["verdict"]] for c in report.comparisons]
        foot = ["Same probes through the DSR model and through bicubic. Δ = DSR − bicubic. "
                "Significant when McNemar's exact test (b01 = bicubic wrong, DSR right) gives p < "
                f"{report.settings.get('alpha', 0.05):g} and the paired subject-level bootstrap CI of Δ rank-1 "
                "excludes 0."]
        tables.append(("Does the DSR model help recognition? (DSR vs bicubic)", head, rows, foot))
    if any(r.get("native_vs_synthetic") for r in report.rows):
        tables.append(native_gap_table(report))
    return tables


def native_gap_table(report: BenchReport) -> tuple[str, list[str], list[list[str]], list[str]]:
    """The rows' ``native_vs_synthetic`` sections (bench.native_gap): rank-1 on real low-resolution
    files beside rank-1 on the same probes made from their HR images at the files' median size."""
    header = ["resolution", "checkpoint", "upsampling", "native size (median, range)", "probes", "rank-1 native",
              "rank-1 synthetic bicubic", "gap bicubic (95% CI)", "rank-1 synthetic realistic",
              "gap realistic (95% CI)"]
    cells = []
    for r in report.rows:
        g = r.get("native_vs_synthetic")
        if not g:
            continue
        span = g.get("native_size_range")
        size = f"{g['native_size_median']} px" + (f" ({span[0]}–{span[1]})" if span else "")
        cells.append([res_label(r["resolution"]), r["checkpoint"], r["upsampling"], size,
                      f"{g['n_probes']} of {g['n_paired']}", _rate(g.get("rank1_native")),
                      _rate(g.get("rank1_bicubic")), _gap(g.get("gap_bicubic")), _rate(g.get("rank1_realistic")),
                      _gap(g.get("gap_realistic"))])
    foot = ["Mated probes that have both a real low-resolution file and their own HR image, the same ones in every "
            "column (probes: those every side could read, of all such probes). native: the files as they are, "
            "brought to 112 by the row's upsampling; synthetic: each probe's own HR image (112×112, as the model "
            "sees it) degraded to the files' median shorter side (rounded half up), by area downsampling (bicubic) "
            "or by the realistic chain, then brought to 112 the same way. gap = synthetic − native rank-1 "
            "(positive: the synthetic probe overstates accuracy on real faces); 95% CI: paired subject-level "
            "bootstrap."]
    realistic = (report.settings.get("native_vs_synthetic_degradations") or {}).get("realistic")
    if realistic:
        foot.append("synthetic realistic: " + degradation_summary(realistic))
    return "Native vs synthetic low-resolution probes (the same people's HR images degraded)", header, cells, foot


def _gap(gap: dict | None) -> str:
    return "—" if not gap else f"{gap['delta']:+.3f} ({gap['ci_low']:+.3f}, {gap['ci_high']:+.3f})"


def operating_point_table(report: BenchReport) -> tuple[str, list[str], list[list[str]], list[str]]:
    """Thresholds fixed on the development set (--dev-data) per row, with their rates there and on
    the evaluation data: each threshold's provenance is its row (set, criterion, target)."""
    header = ["resolution", "checkpoint", "upsampling", "fixed on dev at", "threshold", "dev FMR", "dev FNMR",
              "eval FMR", "eval FNMR", "eval HTER"]
    rows, refused, unmeasured = [], {}, set()
    for r in report.rows:
        for p in r.get("operating_points") or []:
            at = f"FMR {p['fmr_target']:g}" if p["criterion"] == "fmr" else \
                {"eer": "EER"}.get(p["criterion"], "min HTER")
            ev = p.get("eval") or {}
            if p["threshold"] is None:
                refused[p["key"]] = p.get("reason", "")
            if p.get("eval_supported") is False:
                unmeasured.add(p["key"])
            rows.append([res_label(r["resolution"]), r["checkpoint"], r["upsampling"], at,
                         "refused" if p["threshold"] is None else f"{p['threshold']:.4f}",
                         format_value(p.get("fmr")), _rate(p.get("fnmr")), format_value(ev.get("fmr")),
                         _rate(ev.get("fnmr")), _rate(ev.get("hter"))])
    foot = ["Each threshold is fixed on the development set (--dev-data) for that checkpoint, resolution and "
            "upsampling, by its criterion (EER: FMR = FNMR; FMR t: the lowest threshold letting at most t of the "
            "development set's impostor pairs through; min HTER: the smallest (FMR + FNMR) / 2), then applied to the "
            "evaluation data: FMR over impostor (probe, other person's template) pairs, FNMR over genuine ones."]
    foot += [f"{key}: no threshold: the development set's {why}" for key, why in refused.items()]
    foot += [f"{key}: the evaluation data has too few impostor pairs to measure an FMR near its target "
             f"(fewer than 10 / FMR): eval FMR shown, not judged" for key in sorted(unmeasured)]
    return "Thresholds fixed on the development set, applied to the evaluation data", header, rows, foot


def _degradation_foot(report: BenchReport) -> list[str]:
    """The realistic degradation's ranges under the table (bicubic reports stay as they were)."""
    degradation = report.settings.get("degradation") or {}
    return [degradation_summary(degradation)] if degradation.get("mode") == "realistic" else []


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
        against = any(r.get("vs_torch") for r in rows)
        head = (["checkpoint", "runtime", "device", "dtype", "threads", "b1 median (ms)", "b1 p95 (ms)"]
                + [f"img/s @{b}" for b in batch_sizes] + [f"peak MiB @{max(batch_sizes)}"]
                + (["b1 latency × torch", f"img/s × torch @{max(batch_sizes)}"] if against else []))
        speed = []
        for r in rows:
            by_bs = {t["batch_size"]: t for t in r.get("throughput", [])}
            lat = r.get("latency_ms") or {}
            flags = "".join(f" +{k.replace('_', '-')}" for k in ("compile", "channels_last") if r.get(k))
            top = by_bs.get(max(batch_sizes), {})
            vs = r.get("vs_torch") or {}
            runtime = r.get("runtime", "torch") + (" int8" if r.get("int8") else "")
            speed.append([r["checkpoint"], runtime, r["device"], r["dtype"] + flags, format_value(r.get("threads")),
                          _num(lat.get("median")), _num(lat.get("p95"))]
                         + [_num(by_bs[b]["images_per_s"]) if b in by_bs else "—" for b in batch_sizes]
                         + [_fixed(top.get("peak_memory_mb"), 1)]
                         + ([_fixed(vs.get("latency_b1")), _fixed(vs.get("throughput"))] if against else []))
        s = report.settings
        foot = [f"latency: batch 1, {s.get('iters')} timed runs after {s.get('warmup')} warm-up runs"
                + ("; CUDA spans end with torch.cuda.synchronize" if any(r["device"].startswith("cuda") for r in rows)
                   else ""),
                f"throughput: each batch size run for at least {s.get('min_seconds')} s",
                *(["× torch: the ratio to the same network's torch fp32 row on the same device and thread "
                   "count (latency: below 1 is faster; throughput: above 1 is faster)"] if against else []),
                f"memory: {s.get('memory_method', '')}"]
        out.append(("Speed", head, speed, foot))
    return out


def _fixed(value, digits: int = 2) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def _num(value) -> str:
    return "—" if value is None else format_value(float(value))


def _pct(value, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}"


def verification_tables(report: BenchReport):
    """One table: pair sets × resolutions × checkpoints, the published figure and the difference
    beside ours; with a DSR model, a second one: DSR vs bicubic pair by pair."""
    fars = [f"{f:g}" for f in report.settings.get("fars", [])]
    low = any(r.get("resolution", "hr") != "hr" for r in report.rows)
    header = (["set", "resolution", "upsampling", "checkpoint", "variant", "accuracy % (± std)", "published %",
               "Δ pp", f"VAL@FAR={report.settings.get('val_far_target', 1e-3):g} %"]
              + [f"TAR@FAR {f}" for f in fars] + ["AUC", "EER", "XNorm", "pairs (same/diff)"])
    cells, unsupported, val_flags = [], {}, {}
    for r in report.rows:
        tar = r.get("tar_at_far", {})
        for f in fars:
            if tar.get(f) is None and r.get("tar_unsupported", {}).get(f):
                unsupported[f] = r["tar_unsupported"][f]
        val = "—" if r.get("val_at_far") is None else f"{_pct(r['val_at_far'])} ± {_pct(r.get('val_std'))}"
        if r.get("val_unsupported") and val != "—":
            val_flags.setdefault(r["val_unsupported"], None)
            val += " (not supported)"
        at_low = r.get("resolution", "hr") != "hr"
        cells.append([r["set"], res_label(r.get("resolution")) if low else "—",
                      r.get("upsampling", "—") if at_low else "—", r["checkpoint"], str(r.get("variant", "")),
                      f"{_pct(r['accuracy'])} ± {_pct(r['accuracy_std'])}", _pct(r.get("published")),
                      "—" if r.get("published_delta_pp") is None else f"{r['published_delta_pp']:+.2f}", val]
                     + [_rate(tar.get(f)) for f in fars]
                     + [_rate(r.get("auc")), _rate(r.get("eer")), _fixed(r.get("xnorm")),
                        f"{r['n_pairs']} ({r['n_genuine']}/{r['n_impostor']})"])
    d = report.dataset or {}
    foot = [f"protocol: {d.get('protocol', '')}",
            f"published: {report.settings.get('published_source', '')}, shown where the pair file's name "
            "(lfw, calfw, cplfw, cfp_fp, agedb_30) and the checkpoint's variant match, on HR pairs only; "
            "Δ = ours − published",
            "AUC, EER and TAR@FAR: over all pairs pooled (cosine of the same embeddings), not per fold; "
            "XNorm: mean raw embedding norm over every image and view the row uses."]
    foot += [f"{why}: the reference's number is shown, resting on a handful of impostor pairs" for why in val_flags]
    foot += [f"TAR@FAR {f}: not reported ({why})" for f, why in unsupported.items()]
    foot += _degradation_foot(report)
    tables = [("Verification sets (reference protocol)", header, cells, foot)]
    if report.comparisons:
        head = ["set", "resolution", "checkpoint", "DSR", "accuracy DSR", "accuracy bicubic", "Δ", "b01 / b10",
                "McNemar p", "verdict"]
        rows = [[c["set"], res_label(c["resolution"]), c["checkpoint"], c["dsr"], _rate(c["accuracy_dsr"]),
                 _rate(c["accuracy_bicubic"]), _signed(c["delta"]), f"{c['mcnemar']['b01']} / {c['mcnemar']['b10']}",
                 f"{c['mcnemar']['p_value']:.3g}", c["verdict"]] for c in report.comparisons]
        foot = ["The same pairs through the DSR model and through bicubic; each pair is right or wrong at its "
                "own test fold's threshold (learnt per path), accuracy pooled over pairs; Δ = DSR − bicubic. "
                "Significant when McNemar's exact test (b01 = bicubic wrong, DSR right) gives p < "
                f"{report.settings.get('alpha', 0.05):g}."]
        tables.append(("Does the DSR model help verification? (DSR vs bicubic)", head, rows, foot))
    return tables


def ijb_tables(report: BenchReport):
    """Two tables: 1:1 TAR@FAR with pair counts; 1:N rank-k and TPIR@FPIR per gallery."""
    st, d = report.settings, report.dataset or {}
    fars = [f"{f:g}" for f in st.get("fars", [])]
    one = [r for r in report.rows if r.get("protocol") == "1:1"]
    head = ["checkpoint", "variant"] + [f"TAR@FAR {f}" for f in fars] + ["AUC", "EER", "pairs (genuine/impostor)"]
    cells, unsupported = [], {}
    for r in one:
        tar = r.get("tar_at_far", {})
        unsupported.update({f: why for f, why in r.get("tar_unsupported", {}).items() if tar.get(f) is None})
        cells.append([r["checkpoint"], str(r.get("variant", ""))] + [_rate(tar.get(f)) for f in fars]
                     + [_rate(r.get("auc")), _rate(r.get("eer")),
                        f"{r['n_pairs']} ({r['n_genuine']}/{r['n_impostor']})"])
    foot = [f"protocol: {d.get('protocol', '')}", f"switches: {st.get('switches', '')}",
            "TAR@FAR: genuine template pairs accepted at the lowest threshold letting at most FAR of the "
            "impostor pairs pass; a FAR is reported only when impostor pairs × FAR ≥ 10."]
    foot += [f"TAR@FAR {f}: not reported ({why})" for f, why in unsupported.items()]
    if any(r.get("score_resolution") for r in one):
        foot.append("impostor scores summarised (histogram bins of 2^-15 above FAR 1e-3): thresholds there are "
                    "bin edges, TAR exact at them")
    out = [(f"{st.get('target', 'IJB')} 1:1 verification (templates)", head, cells, foot)]
    search = [r for r in report.rows if r.get("protocol") == "1:N"]
    if search:
        fpirs = [f"{f:g}" for f in st.get("fpirs", [])]
        head = (["checkpoint", "gallery", "rank-1", "rank-5", "rank-10"] + [f"TPIR@FPIR {f}" for f in fpirs]
                + ["gallery templates", "probes (mated/non-mated)"])
        rows, unsupported = [], {}
        for r in search:
            tpir = r.get("tpir_at_fpir", {})
            unsupported.update({f"{r['gallery']} FPIR {f}": why for f, why in r.get("tpir_unsupported", {}).items()})
            rows.append([r["checkpoint"], r["gallery"], _rate(r.get("rank1")), _rate(r.get("rank5")),
                         _rate(r.get("rank10"))] + [_rate(tpir.get(f)) for f in fpirs]
                        + [format_value(r.get("n_gallery")), f"{r['n_probes']} ({r['n_mated']}/{r['n_nonmated']})"])
        foot = ["rank-k: mated probes whose own template is among the k best (ties count against the probe). "
                "TPIR(t): mated probes whose own template ranks first and scores ≥ t, over all mated probes; "
                "FPIR(t): non-mated probes whose best score is ≥ t, over all non-mated probes (FNIR = 1 − TPIR); "
                "an FPIR is reported only when non-mated probes × FPIR ≥ 10."]
        foot += [f"TPIR at {k}: not reported ({why})" for k, why in unsupported.items()]
        out.append((f"{st.get('target', 'IJB')} 1:N search (mixed probes, per gallery)", head, rows, foot))
    return out


def tinyface_tables(report: BenchReport):
    """One table: each checkpoint's CMC and mAP, the published row its card names and the
    difference, then the published rows themselves, labelled with their models."""
    st, d = report.settings, report.dataset or {}
    head = ["checkpoint", "model", "rank-1 %", "rank-5 %", "rank-10 %", "rank-20 %", "mAP %", "published row",
            "published rank-1 / rank-5 %", "Δ rank-1 pp", "Δ rank-5 pp", "probes (mated)", "gallery (match + distr.)"]
    rows = []
    for r in report.rows:
        paper = r.get("published") or {}
        delta = r.get("published_delta_pp") or {}
        rows.append([r["checkpoint"], str(r.get("model", "")), _pct(r.get("rank1")), _pct(r.get("rank5")),
                     _pct(r.get("rank10")), _pct(r.get("rank20")), _pct(r.get("map")), paper.get("model", "—"),
                     f"{paper['rank1']:.2f} / {paper['rank5']:.2f}" if paper else "—",
                     _signed_pp(delta.get("rank1")), _signed_pp(delta.get("rank5")),
                     f"{r['n_probes']} ({r['n_mated']})", f"{r['n_gallery']} ({r['n_match']} + {r['n_distractors']})"])
    for p in st.get("published", []):
        rows.append(["published", p["model"], f"{p['rank1']:.2f}", f"{p['rank5']:.2f}"]
                    + ["—"] * (len(head) - 4))
    foot = [f"protocol: {d.get('protocol', '')}",
            "published: " + "; ".join(st.get("published_sources", [])) + ". Their protocol: AdaFace's aligned copy "
            "(aligned_pad_0.1_pad_high), flip test pre_norm_vector_add. A model card whose name is a published key "
            "(e.g. name = \"adaface-ir101-webface12m\") names the row its model should match; Δ = ours − that row."]
    differ = [r["checkpoint"] for r in report.rows
              if r.get("map") is not None and abs(r["map"] - (r.get("map_first_1000") or 0.0)) >= 5e-5]
    if differ:
        foot.append(f"mAP counting mates within the first 1000 positions only (the release's MATLAB script) differs "
                    f"for {', '.join(differ)}: map_first_1000 in the JSON.")
    return [(f"TinyFace closed-set identification ({d.get('probes', '?')} probes, gallery {d.get('gallery', '?')})",
             head, rows, foot)]


def _signed_pp(value) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _unsupported_foot(found: dict) -> list[str]:
    return [f"{what}: not reported ({why})" for what, why in found.items()]


def survface_tables(report: BenchReport):
    """Two tables: the open-set watch list (TPIR at FPIR at rank 20 and rank 1, the areas,
    closed-set rank-k) and verification (TAR@FAR, AUC, mean accuracy), in %."""
    st, d = report.settings, report.dataset or {}
    fpirs, ranks = [f"{f:g}" for f in st.get("fpirs", [])], st.get("ranks", [])
    out = []
    ident = report.rows_where(task="identification")
    if ident:
        head = (["checkpoint", "variant"]
                + [c for k in ranks for c in [f"TPIR{k}@FPIR {f} %" for f in fpirs] + [f"AUC rank-{k} %"]]
                + ["rank-1 %", "rank-20 %", "watch list (images)", "searches (mated/unmated)"])
        rows, unsupported = [], {}
        for r in ident:
            cells = [r["checkpoint"], str(r.get("variant", ""))]
            for k in ranks:
                w = r.get("watchlist", {}).get(f"rank{k}", {})
                tpir = w.get("tpir_at_fpir", {})
                unsupported.update({f"TPIR{k} at FPIR {f}": why for f, why in w.get("tpir_unsupported", {}).items()})
                cells += [_pct(tpir.get(f)) for f in fpirs] + [_pct(w.get("area"))]
            rows.append(cells + [_pct(r.get("rank1")), _pct(r.get("rank20")),
                                 f"{r['n_gallery']} ({r['n_gallery_images']})", f"{r['n_mated']}/{r['n_unmated']}"])
        foot = [f"protocol: {d.get('protocol', '')}",
                "TPIRk(t): mated searches whose identity is among the k best templates and scores ≥ t; FPIR(t): "
                "unmated searches whose best score is ≥ t; each TPIR at the lowest threshold whose FPIR does not "
                "exceed the target, reported only when unmated searches × FPIR ≥ 10. AUC: area under the TPIR–FPIR "
                "curve (FPIR 0 to 1, every threshold). rank-k: closed set, mated searches only."]
        out.append(("QMUL-SurvFace open-set identification (watch list)", head, rows,
                    foot + _unsupported_foot(unsupported)))
    ver = report.rows_where(task="verification")
    if ver:
        fars = [f"{f:g}" for f in st.get("fars", [])]
        head = (["checkpoint", "variant"] + [f"TAR@FAR {f} %" for f in fars]
                + ["AUC %", "mean accuracy % (± std)", "EER %", "pairs (positive/negative)"])
        rows, unsupported = [], {}
        for r in ver:
            tar = r.get("tar_at_far", {})
            unsupported.update({f"TAR@FAR {f}": why for f, why in r.get("tar_unsupported", {}).items()
                                if tar.get(f) is None})
            rows.append([r["checkpoint"], str(r.get("variant", ""))] + [_pct(tar.get(f)) for f in fars]
                        + [_pct(r.get("auc")), f"{_pct(r['accuracy'])} ± {_pct(r['accuracy_std'])}", _pct(r.get("eer")),
                           f"{r['n_pairs']} ({r['n_genuine']}/{r['n_impostor']})"])
        foot = ["TAR@FAR, AUC and EER over all pairs pooled (cosine); a FAR is reported only when negative pairs × FAR "
                "≥ 10. Mean accuracy: 10 folds, fold k = the k-th tenth of each list, each fold's threshold the best "
                "on the other nine; ± the std over folds."]
        out.append(("QMUL-SurvFace verification", head, rows, foot + _unsupported_foot(unsupported)))
    return out


def _distance(r) -> str:
    return "all" if r.get("distance") == "all" else f"{r['distance']} ({r['distance_m']:.2f} m)"


def scface_tables(report: BenchReport):
    """Camera shots against mugshots per distance (and camera); the native vs synthetic gap."""
    st, d = report.settings, report.dataset or {}
    fars = [f"{f:g}" for f in st.get("fars", [])]
    head = (["distance", "camera", "checkpoint", "median face px", "rank-1 %", "rank-5 %"]
            + [f"TAR@FAR {f} %" for f in fars] + ["AUC %", "EER %", "probes"])
    rows, refused = [], {}
    for r in report.rows_where(probes="native"):
        tar = r.get("tar_at_far", {})
        for f, why in r.get("tar_unsupported", {}).items():
            if tar.get(f) is None:
                refused.setdefault(f"TAR@FAR {f}", []).append((r.get("n_probes", 0), why))
        rows.append([_distance(r), str(r.get("camera")), r["checkpoint"], _fixed(r.get("median_size"), 1),
                     _pct(r.get("rank1")), _pct(r.get("rank5"))] + [_pct(tar.get(f)) for f in fars]
                    + [_pct(r.get("auc")), _pct(r.get("eer")), format_value(r.get("n_probes"))])
    foot = [f"protocol: {d.get('protocol', '')}",
            "median face px: the shorter side of the probe files, median over the row's probes. TAR@FAR over "
            "(probe, mugshot) pairs; a FAR is reported only when impostor pairs × FAR ≥ 10."]
    # one line per FAR: the reason of the largest row refused, and in how many rows
    unsupported = {k: f"{max(v)[1]}; in {len(v)} row(s)" for k, v in refused.items()}
    out = [("SCface: surveillance cameras against the mugshots", head, rows, foot + _unsupported_foot(unsupported))]
    if report.comparisons:
        head = ["distance", "checkpoint", "median native px", "synthetic px", "rank-1 native %", "rank-1 bicubic %",
                "rank-1 realistic %", "gap bicubic pp", "gap realistic pp"]
        rows = [[_distance(c), c["checkpoint"], _fixed(c.get("median_size"), 1), str(c["size"]),
                 _pct(c.get("native_rank1")), _pct(c.get("bicubic_rank1")), _pct(c.get("realistic_rank1")),
                 _signed_pp(None if c.get("gap_bicubic") is None else 100 * c["gap_bicubic"]),
                 _signed_pp(None if c.get("gap_realistic") is None else 100 * c["gap_realistic"])]
                for c in report.comparisons]
        foot = ["synthetic: the same people's mugshots degraded to the distance's median native face size (bicubic: "
                "area downsampling; realistic: blur, downsampling, noise, JPEG, every range in "
                "settings.degradation), brought back to 112 by bicubic and searched against the same mugshots. "
                "gap = synthetic − native rank-1: how much a synthetic-degradation figure overstates the real one. "
                "The synthetic probe is a degraded copy of the gallery image itself; a real probe is another "
                "photograph (camera, pose, light)."]
        out.append(("SCface: native against synthetic low resolution (the gap)", head, rows, foot))
    return out


def scores_tables(report: BenchReport):
    """A score file's verification (AUC, EER, TAR@FAR, d′, FMR/FNMR at a given threshold) and, where
    the file is a search of a gallery, its identification (rank-k, the open set)."""
    st = report.settings
    fars = [f"{f:g}" for f in st.get("fars", [])]
    given = st.get("threshold") is not None
    head = (["file", "format", "AUC", "EER", "EER threshold"] + [f"TAR@FAR {f}" for f in fars] + ["d′"]
            + ([f"FMR@{st['threshold']:g}", f"FNMR@{st['threshold']:g}"] if given else [])
            + ["comparisons (genuine/impostor)"])
    rows, unsupported = [], {}
    for r in report.rows:
        tar = r.get("tar_at_far", {})
        unsupported.update({f"TAR@FAR {f}": why for f, why in r.get("tar_unsupported", {}).items()})
        at = r.get("at_threshold") or {}
        rows.append([r["file"], r["format"], _rate(r.get("auc")), _rate(r.get("eer")),
                     format_value(r.get("eer_threshold"))] + [_rate(tar.get(f)) for f in fars]
                    + [_fixed(r.get("dprime"))]
                    + ([format_value(at.get("fmr")), format_value(at.get("fnmr"))] if given else [])
                    + [f"{r['n_genuine'] + r['n_impostor']} ({r['n_genuine']}/{r['n_impostor']})"])
    foot = ["A comparison is accepted when its score ≥ the threshold (OpenBR distance matrices are negated first). "
            "TAR@FAR at the lowest threshold letting at most FAR of the impostor comparisons pass, reported only when "
            "impostor comparisons × FAR ≥ 10; EER interpolated where FAR and FRR cross."]
    out = [("Verification from the score file", head, rows, foot + _unsupported_foot(unsupported))]
    searches = [r for r in report.rows if r.get("identification")]
    if searches:
        fpirs = [f"{f:g}" for f in st.get("open_set_fpirs", [])]
        head = (["file", "rank-1", "rank-5", "rank-10", "rank-20"] + [f"TPIR@FPIR {f}" for f in fpirs]
                + ["TPIR / FPIR at threshold", "searches (mated/non-mated)", "gallery entries"])
        cells, refused = [], {}
        for r in searches:
            ident = r["identification"]
            osr = ident.get("open_set") or {}
            tpir = osr.get("tpir_at_fpir", {})
            refused.update({f"TPIR@FPIR {f}": why for f, why in osr.get("tpir_unsupported", {}).items()})
            cells.append([r["file"]] + [_rate(ident.get(f"rank{k}")) for k in (1, 5, 10, 20)]
                         + [_rate(tpir.get(f)) for f in fpirs]
                         + [f"{osr['tpir']:.3f} / {osr['fpir']:.3f} @ {format_value(osr['threshold'])}" if osr else "—",
                            f"{ident['n_searches']} ({ident['n_mated']}/{ident['n_nonmated']})",
                            format_value(ident.get("n_gallery"))])
        foot = ["A search: a probe (bob's test label, an OpenBR row) against every gallery entry (bob's claimed "
                "identity or model, an OpenBR column). rank-k: mated searches whose best genuine entry is among the "
                "k best (ties count against the probe). TPIR(t): mated searches ranked first and scoring ≥ t; "
                "FPIR(t): non-mated searches whose best score is ≥ t; an FPIR is reported only when non-mated "
                "searches × FPIR ≥ 10."]
        out.append(("Identification from the score file", head, cells, foot + _unsupported_foot(refused)))
    return out


_TABLES = {"accuracy": accuracy_tables, "speed": speed_tables, "verification": verification_tables, "ijb": ijb_tables,
           "tinyface": tinyface_tables, "survface": survface_tables, "scface": scface_tables,
           "scores": scores_tables}


def tables(report: BenchReport):
    """(title, header, cell rows, footnotes) per table; columns empty in every row are left out."""
    out = []
    # any kind's rows carrying by_quality add the size-bin and EDC tables after the kind's own
    for title, header, rows, foot in [*_TABLES[report.kind](report), *quality_tables(report),
                                      *bench_group_tables(report)]:
        keep = [i for i in range(len(header)) if not rows or any(row[i] not in ("—", "n/a") for row in rows)]
        out.append((title, [header[i] for i in keep], [[row[i] for i in keep] for row in rows], foot))
    return out


def context_lines(report: BenchReport) -> list[str]:
    lines = []
    for label, info in report.checkpoints.items():
        sha = f", sha256 {str(info['sha256'])[:12]}" if info.get("sha256") else ""
        lines.append(f"checkpoint {label}: {info.get('path') or 'random weights'} ({info.get('variant')}{sha})")
    if report.dataset and report.kind == "verification":
        for s in report.dataset.get("sets", []):
            lines.append(f"pairs {s.get('source')} ({s.get('format')}): {s.get('pairs')} pairs, "
                         f"{s.get('same')} same / {s.get('different')} different, {s.get('images')} images"
                         + (f" under {s['images_root']}" if s.get("images_root") else "")
                         + (", folds from the file" if s.get("folds_from_file") else ""))
    elif report.dataset and report.kind == "ijb":
        d = report.dataset
        lines.append(f"data {d.get('root')} ({d.get('target')}): {d.get('images')} image rows, {d.get('templates')} "
                     f"templates, {d.get('pairs')} template pairs ({d.get('genuine_pairs')} genuine)"
                     + (f", 1:N galleries {', '.join(f'{k} {v}' for k, v in d['galleries'].items())}, "
                        f"{d.get('probes')} probe templates" if d.get("galleries") else ""))
    elif report.dataset and report.kind == "tinyface":
        d = report.dataset
        lines.append(f"data {d.get('root')}: {d.get('probes')} probes, {d.get('gallery_match')} Gallery_Match + "
                     f"{d.get('gallery_distractors')} Gallery_Distractor images"
                     + (f", aligned copy {d['aligned_dir']}/" if d.get("aligned_dir") else ", original images"))
    elif report.dataset and report.kind == "survface":
        d = report.dataset
        i, v = d.get("identification") or {}, d.get("verification") or {}
        lines.append(f"data {d.get('root')}: "
                     + "; ".join(([f"watch list {i.get('gallery_identities')} identities ({i.get('gallery_images')} "
                                   f"images), {i.get('mated_probes')} mated + {i.get('unmated_probes')} unmated probes"]
                                  if i else [])
                                 + ([f"{v.get('positive')} positive + {v.get('negative')} negative pairs of "
                                     f"{v.get('images')} images"] if v else [])))
    elif report.dataset and report.kind == "scface":
        d = report.dataset
        per = d.get("per_distance") or {}
        lines.append(f"data {d.get('root')}: {d.get('subjects')} mugshots, {d.get('probes')} camera shots; "
                     + ", ".join(f"distance {k} ({v['distance_m']:.2f} m): {v['probes']} probes, median face "
                                 f"{_fixed(v.get('median_size'), 1)} px" for k, v in per.items()))
    elif report.dataset and report.kind == "scores":
        d = report.dataset
        lines.append(f"scores {', '.join(d.get('files', []))} ({d.get('format_description', d.get('format'))}): "
                     f"{d.get('comparisons')} comparisons, {d.get('genuine')} genuine / {d.get('impostor')} impostor, "
                     f"scores {format_value(d.get('score_min'))} to {format_value(d.get('score_max'))}"
                     + (f", {d['ignored']} cells ignored by the mask" if d.get("ignored") else ""))
    elif report.dataset:
        d = report.dataset
        counts = d.get("counts") or {}
        lines.append(f"data {d.get('root')}: {d.get('protocol', '')}; "
                     f"{counts.get('gallery_images', '?')} gallery images, {counts.get('probes', '?')} probes, "
                     f"{counts.get('gallery_subjects', '?')} subjects enrolled")
        lines += [*dev_lines(d), *((d.get("dev") or {}).get("notes") or [])]
    env = report.environment
    if env:
        lines.append(", ".join(f"{k} {v}" for k, v in env.items()))
    return lines
