"""Native against synthetic low-resolution probes of the same people (bench accuracy).

Benchmarks make low-resolution probes by degrading HR images; deployment meets real small faces.
Where the data has both for the same probes (a paired root: each probe's HR image and its real
VLR file), bench accuracy measures the gap on its first low resolution, per checkpoint and
upsampling path: rank-1 on the native files (that row's probes read from real files), beside
rank-1 on the same probes made from their own HR images degraded to the native files' median
size, by area downsampling ("bicubic") and by the realistic chain
(:mod:`facediag.data.degradation`), brought back to 112 the way bench accuracy brings every
synthetic probe (bicubic, or the DSR model on its path).

Only mated probes with both an HR image and a VLR file count, the same ones on each side. The
synthetic probes come from Sessions with ``probes_from_hr`` (real VLR files ignored), whose cache
keys are those of any synthetic run at that size: a warm cache, or the in-run memo of the HR
pixels, serves them.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from facediag.data.degradation import MODES
from facediag.data.degradation import describe as describe_degradation
from facediag.bench.native_quality import native_size
from facediag.errors import DataError
from facediag.metrics.significance import paired_bootstrap_rank1

# The sizes a synthetic probe can be made at: bench accuracy's resolutions (4 to 112 px).
SIZE_RANGE = (4, 112)
SECTION = "native_vs_synthetic"  # the key of a row's section


def paired_rows(protocol) -> list[int]:
    """Rows of the protocol's mated probes that have both their own HR image and a real VLR file."""
    enrolled = set(protocol.gallery_subjects)
    return [i for i, p in enumerate(protocol.probes)
            if p.hr is not None and p.vlr is not None and p.subject in enrolled]


def median_size(sizes: Sequence[int]) -> int:
    """The median of native sizes in whole pixels (a median between two sizes rounded half up)."""
    return int(np.floor(np.median(np.asarray(sizes, dtype=np.float64)) + 0.5))


def native_sizes(protocol, rows: Sequence[int]) -> dict[int, int]:
    """Each probe's VLR file's shorter side in px, from its header (as native_quality measures it);
    a file whose header cannot be read is left out (its probe fails to decode in the rows too)."""
    out = {}
    for i in rows:
        try:
            out[i] = native_size(protocol.probes[i].vlr.path)
        except DataError:
            continue
    return out


def native_vs_synthetic(native: Mapping[str, Any], make: Callable[..., Any], paths: Mapping[str, tuple],
                        names: Sequence[str], *, n_boot: int, seed: int,
                        alpha: float = 0.05) -> tuple[dict[tuple[str, str], dict], list[str]]:
    """The native-vs-synthetic section of each (path, checkpoint) row of one resolution.

    Every rank must call this (under torchrun the synthetic Sessions' ``prepare`` is a collective);
    only rank 0 gets the sections.

    Parameters
    ----------
    native : mapping of str to Session
        The resolution's Session per upsampling path ("bicubic", "dsr"): its probes with a VLR
        file are read from it.
    make : callable
        ``make(size, dsr, dsr_weights, **config_overrides)`` -> a Session over the same models
        and Embedders (bench accuracy's ``_Sessions.make``).
    paths : mapping of str to (dsr spec, weights)
        The upsampling paths, as bench accuracy runs them.
    names : sequence of str
        The checkpoints' labels (the Sessions' roles).
    n_boot, seed, alpha
        The paired subject-level bootstrap of each gap.

    Returns
    -------
    (dict, list of str)
        ``{(path, checkpoint): section}`` (empty when no mated probe has both an HR image and a
        VLR file, and on ranks other than 0) and the notes for the report.
    """
    first = native["bicubic"]
    protocol = first.protocol
    sizes = native_sizes(protocol, paired_rows(protocol))
    if not sizes:
        return {}, []
    size = median_size(list(sizes.values()))
    if not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
        return {}, [f"native vs synthetic probes not measured: the real VLR files' median shorter side, {size} px, "
                    f"is outside the sizes a synthetic probe is made at ({SIZE_RANGE[0]}–{SIZE_RANGE[1]} px)"]
    synthetic = {}
    for path, (spec, weights) in paths.items():
        for mode in MODES:
            # the comparison needs the probes alone: no development set, distractors or groups to embed
            sess = make(size, spec, weights, degrade=mode, probes_from_hr=True, dev_data=None,
                        dev_gallery_root=None, dev_probe_root=None, distractors=None, groups=None)
            sess.prepare(names)  # under torchrun: every rank its shard, in the same order
            synthetic[path, mode] = sess
    if not first.dist.main:
        return {}, []
    sections = {}
    keys = {path_key(protocol, i): s for i, s in sizes.items()}
    for path in paths:
        for label in names:
            sides = {"native": (native[path].evaluation(label), native[path].protocol.probes),
                     **{mode: (synthetic[path, mode].evaluation(label), synthetic[path, mode].protocol.probes)
                        for mode in MODES}}
            section = _section(sides, keys, size, n_boot=n_boot, seed=seed, alpha=alpha)
            section["synthetic"] = (f"each probe's own HR image degraded to {size}×{size} px, then brought back "
                                    f"to 112 by {'the DSR model' if path == 'dsr' else 'bicubic'}")
            sections[path, label] = section
    return sections, []


def path_key(protocol, row: int) -> str:
    """A probe named across protocols by its HR file (each Session indexes the data itself)."""
    return str(protocol.probes[row].hr.path)


def _outcomes(ev, probes, keys: set[str] | None = None) -> dict[str, tuple[bool, str]]:
    """Rank-1 correct and subject of each mated probe an evaluation read, by its HR file
    (``keys``: only these)."""
    rows = ev.probe_rows[ev.mated].tolist()
    out = {}
    for r, ok, subject in zip(rows, ev.rank1_correct().tolist(), ev.probe_subjects[ev.mated].tolist()):
        hr = probes[r].hr
        if hr is not None and (keys is None or str(hr.path) in keys):
            out[str(hr.path)] = (bool(ok), subject)
    return out


def _section(sides: dict, sizes: dict[str, int], size: int, *, n_boot: int, seed: int, alpha: float) -> dict:
    """One row's section from its (evaluation, probes) per side ("native" and each mode)."""
    outcomes = {k: _outcomes(ev, probes, set(sizes) if k == "native" else None) for k, (ev, probes) in sides.items()}
    keys = sorted(set.intersection(*(set(o) for o in outcomes.values())))  # read on every side
    section: dict[str, Any] = {"native_size_median": size, "n_paired": len(sizes), "n_probes": len(keys)}
    if not keys:
        return section
    compared = np.array([sizes[k] for k in keys])
    subjects = np.array([outcomes["native"][k][1] for k in keys])
    native = np.array([outcomes["native"][k][0] for k in keys])
    section.update(native_size_range=[int(compared.min()), int(compared.max())], rank1_native=float(native.mean()))
    for mode in MODES:
        correct = np.array([outcomes[mode][k][0] for k in keys])
        # synthetic minus native: positive where the synthetic probe overstates accuracy on real faces
        gap = paired_bootstrap_rank1(native, correct, subjects, n_boot=n_boot, alpha=alpha, seed=seed)
        section[f"rank1_{mode}"] = float(correct.mean())
        section[f"gap_{mode}"] = {"delta": gap.delta, "ci_low": gap.low, "ci_high": gap.high}
    return section


def degradations() -> dict[str, dict]:
    """What each synthetic side's degradation is (every range), for the report's settings."""
    return {mode: describe_degradation(mode) for mode in MODES}
