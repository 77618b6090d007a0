"""Demographic differentials as tables, for every format: per-group rates, their summaries and the
cross-group FMR matrix.

A demographic section (protocols.demographics.demographic_section) is what the demographic
check's ``data["demographic"]`` holds, and what a bench accuracy row run with ``--groups``
carries as ``row["demographic"]``. The tables here are (title, header, rows of cell strings,
footnotes), as bench_tables draws them; run reports draw them under the check. No matplotlib, no rich.
"""
from __future__ import annotations

from facediag.formatting import format_value

Table = tuple[str, list[str], list[list[str]], list[str]]


def result_tables(result) -> list[Table]:
    """The tables a check result's data holds (none for a check without a demographic section)."""
    section = result.data.get("demographic") if isinstance(result.data, dict) else None
    return group_tables(section) if isinstance(section, dict) else []


def table_lines(table: Table) -> list[str]:
    """A table as plain lines (JUnit's system-out): the title, then each row as ``header cell; ...``."""
    title, header, rows, foot = table
    return [title, *("  " + "; ".join(f"{h} {c}" if h else c for h, c in zip(header, row)) for row in rows),
            *(f"  ({x})" for x in foot)]


def group_tables(section: dict, label: str | None = None) -> list[Table]:
    """Per attribute: the groups' rates at each threshold, the summaries, the cross-group FMR matrix.

    Parameters
    ----------
    section : dict
        A demographic section; malformed parts draw nothing.
    label : str, optional
        What the section belongs to (a bench row), put before each title.

    Returns
    -------
    list of (title, header, rows, footnotes)
    """
    out: list[Table] = []
    lead = f"{label} · " if label else ""
    alpha = section.get("alpha", 0.05)
    for attribute in section.get("attributes") or []:
        try:
            out += _attribute_tables(attribute, section, lead, alpha)
        except (KeyError, TypeError, ValueError, IndexError):  # a hand-edited report: draw what is sound
            continue
    return out


def _attribute_tables(a: dict, section: dict, lead: str, alpha: float) -> list[Table]:
    name = a["attribute"]
    counts = {g["group"]: g for g in a["groups"]}
    det = a.get("det") or {}
    level = f"{100 * (1 - alpha):g} %"
    head = ["threshold", name, "subjects", f"FNMR [{level}]", f"FMR [{level}]", "EER"]
    rows = []
    for at in a["at"]:
        for group, c in counts.items():
            rows.append([_threshold(at), group, format_value(c["subjects"]), _rate(at["fnmr"][group], c, "genuine"),
                         _rate(at["fmr"][group], c, "impostor"), _pct((det.get(group) or {}).get("eer"))])
    provenance = [f"{at['label']} {at['threshold']:.4f}: {_provenance(at)}" for at in a["at"]]
    foot = ["FNMR: the group's genuine pairs (probe vs its own template) below the threshold; FMR: impostor pairs "
            "with both sides in the group at or above it; EER from the group's own DET curve",
            f"a group without errors: 0, with its one-sided {level} Clopper–Pearson upper bound",
            *provenance]
    out: list[Table] = [(f"{lead}Error rates per {name} group", head, rows, foot)]
    s_head = ["threshold", "FNMR max/min", "FNMR max/geomean", "FMR max/min", "FMR max/geomean", "FDR", "GARBE",
              "worst FNMR", "worst FMR"]
    s_rows = []
    for at in a["at"]:
        s = at["summary"]
        s_rows.append([_threshold(at), _ratio(s, "fnmr_max_min"), _ratio(s, "fnmr_max_geomean"),
                       _ratio(s, "fmr_max_min"), _ratio(s, "fmr_max_geomean"), _with_ci(s, "fdr"),
                       _with_ci(s, "garbe"), _worst(s.get("fnmr_worst")), _worst(s.get("fmr_worst"))])
    s_foot = [f"judged at: {section.get('judged', '?')}",
              "ratios read a group without errors at its upper bound (so they are lower bounds, never infinite); "
              "FDR 1 and GARBE 0: no differential",
              "worst: the group with the highest rate against the other groups pooled; * its lead lies beyond the "
              "bootstrap interval of the difference (a differential, not noise)",
              section.get("method", "")]
    out.append((f"{lead}Differential summaries over {name}", s_head, s_rows, [f for f in s_foot if f]))
    judged = next((at for at in a["at"] if at["label"] == section.get("judged")), a["at"][0])
    groups = list(counts)
    matrix = judged.get("fmr_matrix") or []
    pairs = judged.get("fmr_matrix_pairs") or []
    m_rows = [[f"probe {g}"] + [_matrix_cell(matrix, pairs, i, j) for j in range(len(groups))]
              for i, g in enumerate(groups)]
    out.append((f"{lead}Cross-group FMR over {name} at {_threshold(judged)}", ["", *(f"template {g}" for g in groups)],
                m_rows, ["each cell: impostor pairs (probe of the row's group, template of the column's) at or above "
                         "the threshold; the diagonal is each group's FMR"]))
    if a is section["attributes"][0]:  # what matching the groups file to the data found, once
        out[0][3].extend(section.get("notes") or [])
    return out


def _threshold(at: dict) -> str:
    return f"{at['label']} ({at['threshold']:.3f})"


def _provenance(at: dict) -> str:
    parts = [str(at.get("criterion", "")), f"set: {at.get('set', '?')}"]
    return ", ".join(p for p in parts if p)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _rate(entry: dict, counts: dict, kind: str) -> str:
    """A group's rate with its interval and counts; too small or bounded said so."""
    errors, trials = entry.get("errors", 0), entry.get("trials", 0)
    if not entry.get("supported"):
        return f"too small to support a rate ({format_value(counts['subjects'])} subjects, {trials:,} {kind} pairs)"
    if entry.get("rate") is None:
        return "—"
    if entry.get("upper_bound") is not None:
        return f"0 of {trials:,} (≤ {_pct(entry['upper_bound'])})"
    ci = f" [{_pct(entry['low'])}, {_pct(entry['high'])}]" if entry.get("low") is not None else ""
    return f"{_pct(entry['rate'])}{ci} ({errors:,}/{trials:,})"


def _ratio(s: dict, key: str) -> str:
    v = s.get(key)
    if v is None:
        return "—"
    ci = s.get(f"{key}_ci") or [None, None]
    inner = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] is not None else ""
    return ("inf" if v == float("inf") else f"{v:.2f}") + inner


def _with_ci(s: dict, key: str) -> str:
    v = s.get(key)
    if v is None:
        return "—"
    ci = s.get(f"{key}_ci") or [None, None]
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else "")


def _worst(w: dict | None) -> str:
    if not w:
        return "—"
    return f"{w['group']}{'*' if w.get('significant') else ''} ({_pct(w['rate'])} vs {_pct(w['rest'])})"


def _matrix_cell(matrix, pairs, i: int, j: int) -> str:
    try:
        v, n = matrix[i][j], pairs[i][j]
    except (IndexError, TypeError):
        return "—"
    return "—" if v is None else f"{_pct(v)} ({n:,})"


def det_curves(section: dict):
    """(label, FMR, FNMR) of each group's DET curve in a section (points a log axis can show)."""
    for a in section.get("attributes") or []:
        for group, curve in (a.get("det") or {}).items() if isinstance(a, dict) else ():
            try:
                pts = [(x, y) for x, y in zip(curve["fmr"], curve["fnmr"]) if x > 0 and y > 0]
            except (KeyError, TypeError):
                continue
            if len(pts) >= 2:
                eer = curve.get("eer")
                label = f"{a['attribute']}={group}" + (f" (EER {_pct(eer)})" if eer is not None else "")
                yield label, [x for x, _ in pts], [y for _, y in pts]


def bench_group_rows(report) -> list[tuple[str, dict]]:
    """(label, demographic section) of each bench row that carries one."""
    out = []
    for r in report.rows:
        if isinstance(r.get("demographic"), dict):
            res = r.get("resolution")
            where = "HR" if res == "hr" else f"{res} px" if res is not None else None
            label = " · ".join(str(x) for x in (where, r.get("upsampling"), r.get("checkpoint")) if x is not None)
            out.append((label, r["demographic"]))
    return out


def bench_group_tables(report) -> list[Table]:
    """The group tables of every bench row that carries a demographic section, labelled by the row."""
    out: list[Table] = []
    for label, section in bench_group_rows(report):
        out += group_tables(section, label=label or None)
    return out
