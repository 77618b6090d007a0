"""A score file's comparisons summed up while it streams past: the genuine scores, the impostor
scores as facediag's impostor stream (metrics.streaming: every score when they are few, else the
histogram, the exact top and a sample) and, where the file allows, each probe's search of the
gallery (metrics.identification.MatchSummary: its genuine score, rank and best score).

One pass reads the file; a second pass runs only when the impostors are too many to keep (more
than EXACT_LIMIT). Memory holds the genuine scores and a few numbers per probe, never the matrix.

Identification is computed only where the file is a search: every probe (bob's test label,
OpenBR's matrix row) compared with every gallery entry (bob's claimed identity, or its model in
5 columns; OpenBR's columns, less the cells its mask ignores). A probe with a genuine comparison
is mated; its rank is 1 + the impostor entries scoring at least its best genuine score (ties count
against the probe, as everywhere in facediag). A pair list (each probe compared with a few
entries) gives verification only, and the summary says why.

The histogram covers [-1, 1]. A file whose scores fall outside (distances, log-likelihood ratios)
and that has too many impostors to keep is read on an affine map of its score range onto [-1, 1]:
every rate is unchanged (they depend on the order of the scores), and every threshold is mapped
back (``ScoreSummary.verification``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from facediag.errors import DataError
from facediag.metrics.identification import MatchSummary
from facediag.metrics.streaming import EXACT_LIMIT, ImpostorScores, ImpostorStream, bin_counts
from facediag.metrics.verification import VerificationResult, verification_metrics

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Cosines overshoot 1 by float32 rounding; such a score still falls in the histogram's last bin.
_SLACK = 2.0 ** -20


@dataclass(frozen=True, eq=False)
class ScoreSummary:
    """What a score file holds, for the verification and identification metrics.

    ``genuine`` and ``impostors`` are on the reading scale: the file's own scores, or their affine
    map onto [-1, 1] (``scale`` = (centre, half-width): a file score s read as (s - centre) /
    half-width) when a summarised stream needed it. ``search``: each probe's search of the gallery,
    None when the file is not a search (``no_search`` says why)."""

    fmt: str
    paths: tuple
    genuine: np.ndarray
    impostors: ImpostorScores
    score_min: float
    score_max: float
    scale: tuple[float, float] | None = None
    search: MatchSummary | None = None
    probe_identities: np.ndarray | None = None  # str per searching probe: its identity (or row)
    no_search: str = ""
    n_probes: int = 0
    n_entries: int = 0
    ignored: int = 0     # OpenBR: cells the mask ignores
    nan: int = 0         # OpenBR: NaN scores left out

    @property
    def n_comparisons(self) -> int:
        return len(self.genuine) + self.impostors.n

    def to_file_scale(self, x):
        """A score on the reading scale as the file's own (thresholds, means)."""
        if self.scale is None or x is None:
            return x
        centre, half = self.scale
        return centre + half * np.asarray(x, dtype=np.float64) if np.ndim(x) else centre + half * float(x)

    def verification(self, fars) -> VerificationResult:
        """ROC, EER, TAR@FAR and DET (metrics.verification), thresholds on the file's scale."""
        v = verification_metrics(self.genuine, self.impostors, fars=tuple(fars))
        if self.scale is None:
            return v
        half = self.scale[1]
        points = tuple(replace(p, threshold=self.to_file_scale(p.threshold)) for p in v.tar_at_far)
        return replace(v, eer_threshold=self.to_file_scale(v.eer_threshold),
                       roc_thresholds=self.to_file_scale(v.roc_thresholds), tar_at_far=points,
                       score_resolution=v.score_resolution * half)

    def impostor_moments(self) -> tuple[float, float]:
        """Impostor mean and variance on the file's scale."""
        half = 1.0 if self.scale is None else self.scale[1]
        return float(self.to_file_scale(self.impostors.mean)), float(self.impostors.var * half ** 2)


def _grow(a: np.ndarray, n: int, fill) -> np.ndarray:
    if len(a) >= n:
        return a
    out = np.full(max(n, 2 * len(a), 1024), fill, dtype=a.dtype)
    out[:len(a)] = a
    return out


def _entry_hash(entry: np.ndarray) -> np.ndarray:
    """A 64-bit hash per gallery entry: a probe whose hashes add up to the whole gallery's was
    compared with every entry once (a count alone would miss one entry twice, another never)."""
    with np.errstate(over="ignore"):
        h = (entry.astype(np.uint64) + np.uint64(1)) * _GOLDEN
        h ^= h >> np.uint64(31)
        return h * np.uint64(0xBF58476D1CE4E5B9)


class _Searches:
    """Per probe, as comparisons stream past: how many, the hash of its entries, its best genuine
    score, its best score, its genuine count and its identity."""

    def __init__(self):
        self.count = np.zeros(0, np.int64)
        self.hashes = np.zeros(0, np.uint64)
        self.best_genuine = np.zeros(0, np.float64)
        self.top = np.zeros(0, np.float64)
        self.positives = np.zeros(0, np.int64)
        self.identity = np.zeros(0, np.int64)
        self.conflict: int | None = None  # a probe named with two identities

    def add(self, chunk) -> None:
        p, s, g = chunk.probe, chunk.score, chunk.genuine
        n = int(p.max()) + 1 if len(p) else 0
        self.count = _grow(self.count, n, 0)
        self.hashes = _grow(self.hashes, n, np.uint64(0))
        self.best_genuine = _grow(self.best_genuine, n, -np.inf)
        self.top = _grow(self.top, n, -np.inf)
        self.positives = _grow(self.positives, n, 0)
        self.identity = _grow(self.identity, n, -1)
        size = len(self.count)
        self.count += np.bincount(p, minlength=size)
        with np.errstate(over="ignore"):
            np.add.at(self.hashes, p, _entry_hash(chunk.entry))
        np.maximum.at(self.top, p, s)
        np.maximum.at(self.best_genuine, p[g], s[g])
        self.positives += np.bincount(p[g], minlength=size)
        if chunk.identity is not None:
            first = self.identity[p] < 0
            self.identity[p[first]] = chunk.identity[first]
            clash = np.flatnonzero(self.identity[p] != chunk.identity)
            if len(clash) and self.conflict is None:
                self.conflict = int(p[clash[0]])


class _FirstPass:
    """Everything one reading of the file gives: the genuine scores, every impostor score while
    they are at most ``limit`` (with each one's probe), the score range, the probes' searches."""

    def __init__(self, source, limit: int):
        self.source, self.limit = source, limit
        self.genuine: list[np.ndarray] = []
        self.impostors: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] | None = []
        self.n_impostors = 0
        self.lo, self.hi = np.inf, -np.inf
        self.searches = _Searches() if source.has_probes else None

    def add(self, chunk) -> None:
        if not len(chunk):
            return
        s, g = chunk.score, chunk.genuine
        self.lo, self.hi = min(self.lo, float(s.min())), max(self.hi, float(s.max()))
        self.genuine.append(s[g])
        imp = ~g
        self.n_impostors += int(imp.sum())
        if self.impostors is not None:
            if self.n_impostors > self.limit:
                self.impostors = None  # a second pass summarises them
            else:
                self.impostors.append((s[imp], None if chunk.probe is None else chunk.probe[imp],
                                       None if chunk.entry is None else chunk.entry[imp]))
        if self.searches is not None and chunk.probe is not None:
            self.searches.add(chunk)


def summarise(source, *, exact_limit: int | None = None, top_limit: int | None = None,
              sample_size: int | None = None) -> ScoreSummary:
    """Read a score file (files.open_scores) once (twice when its impostors are more than
    ``exact_limit``) into a ScoreSummary.

    Parameters
    ----------
    source
        An opened score file: ``chunks()``, ``has_probes``, ``probes``, ``entries``, ``fmt``, ``paths``.
    exact_limit, top_limit, sample_size : int, optional
        The impostor stream's limits (metrics.streaming defaults): every impostor score is kept up
        to ``exact_limit``; beyond, a histogram, the ``top_limit`` highest and a sample.

    Returns
    -------
    ScoreSummary
    """
    limit = EXACT_LIMIT if exact_limit is None else exact_limit
    first = _FirstPass(source, limit)
    for chunk in source.chunks():
        first.add(chunk)
    genuine = np.concatenate(first.genuine) if first.genuine else np.zeros(0)
    if len(genuine) == 0 or first.n_impostors == 0:
        raise DataError(f"{source.paths[0]}: {len(genuine)} genuine and {first.n_impostors} impostor comparisons: "
                        "the metrics need both")
    searches, reason = _search_plan(source, first.searches)
    limits = {k: v for k, v in (("top_limit", top_limit), ("sample_size", sample_size)) if v is not None}
    stream = ImpostorStream(first.n_impostors, exact_limit=limit, **limits)
    scale = None
    if first.impostors is not None:
        above = _exact_impostors(stream, first.impostors, searches)
    else:
        scale = _scale(first.lo, first.hi)
        above = _second_pass(source, stream, searches, scale)
        genuine = _mapped(genuine, scale)
    search, identities = (None, None) if searches is None else _search(source, searches, above)
    return ScoreSummary(source.fmt, tuple(str(p) for p in source.paths), genuine, stream.result(), first.lo, first.hi,
                        scale, search, identities, reason, n_probes=_size(source.probes),
                        n_entries=_size(source.entries), ignored=source.ignored, nan=source.nan)


def _size(labels) -> int:
    return 0 if labels is None else len(labels)


def _name(labels, i: int) -> str:
    return labels.name(i) if hasattr(labels, "name") else repr(labels.names()[i])


def _search_plan(source, searches: _Searches | None) -> tuple[_Searches | None, str]:
    """The searches when the file is one (every probe against every gallery entry), else None
    and why not."""
    if searches is None:
        return None, ("pyeer's lists name no probes" if source.fmt == "pyeer"
                      else "the file names no probe (no probe_key, probe_reference_id or probe_template_id column)")
    n_entries = len(source.entries)
    counted = searches.count[:_size(source.probes)]
    if searches.conflict is not None:
        return None, (f"probe {_name(source.probes, searches.conflict)} is named with two identities: a test label "
                      "must name one probe")
    if n_entries < 2:
        return None, f"the gallery has {n_entries} entry: a search needs at least two"
    if not getattr(source, "dense", False):  # OpenBR's matrix compares every row with every column
        with np.errstate(over="ignore"):
            whole = np.sum(_entry_hash(np.arange(n_entries)), dtype=np.uint64)
        short = np.flatnonzero((counted != n_entries) | (searches.hashes[:len(counted)] != whole))
        if len(short):
            i = int(short[0])
            return None, (f"probe {_name(source.probes, i)} is compared with {counted[i]} of the {n_entries} gallery "
                          "entries (a pair list, not every probe against every entry)")
    if not (searches.positives[:len(counted)] > 0).any():
        return None, "no probe has a genuine comparison (no mated search)"
    return searches, ""


def _exact_impostors(stream: ImpostorStream, parts, searches: _Searches | None) -> np.ndarray | None:
    """Every impostor into the stream (exact); per probe, the impostors scoring at least its best
    genuine score (its rank - 1), when it searches."""
    above = None if searches is None else np.zeros(len(searches.count), np.int64)
    for values, probe, entry in parts:
        none = np.zeros(len(values), np.int64)  # a format without probes or entries
        stream.add_exact(values, none if probe is None else probe, none if entry is None else entry)
        if above is not None:
            above += np.bincount(probe[values >= searches.best_genuine[probe]], minlength=len(above))
    return above


def _scale(lo: float, hi: float) -> tuple[float, float] | None:
    """(centre, half-width) mapping [lo, hi] inside (-1, 1), or None when the scores fit already."""
    if lo >= -1.0 - _SLACK and hi <= 1.0 + _SLACK:
        return None
    half = (hi - lo) / 2 * (1 + 2.0 ** -14) if hi > lo else 1.0
    return (lo + hi) / 2, half


def _mapped(x: np.ndarray, scale) -> np.ndarray:
    return x if scale is None else (x - scale[0]) / scale[1]


def _second_pass(source, stream: ImpostorStream, searches: _Searches | None, scale) -> np.ndarray | None:
    """Read the file again: the impostors summarised (moments, histogram, sample, top) and, for
    each searching probe, its impostors at or above its best genuine score."""
    above = None if searches is None else np.zeros(len(searches.count), np.int64)
    seen = 0
    for chunk in source.chunks():
        imp = ~chunk.genuine
        raw = chunk.score[imp]
        v = _mapped(raw, scale)
        probe = chunk.probe[imp] if chunk.probe is not None else np.zeros(len(v), np.int64)
        entry = chunk.entry[imp] if chunk.entry is not None else np.zeros(len(v), np.int64)
        stream.add_moments(len(v), float(v.sum()), float(np.dot(v, v)))
        stream.add_histogram(bin_counts(v))
        with np.errstate(over="ignore"):  # a deterministic pick by the pair's place in the file
            u = (np.arange(seen, seen + len(v), dtype=np.uint64) * _GOLDEN) >> np.uint64(11)
        pick = u.astype(np.float64) / 2.0 ** 53 < stream.keep
        stream.add_sample(v[pick], probe[pick], entry[pick])
        top = v >= stream.floor
        if top.any():
            stream.offer_top(v[top], probe[top], entry[top])
        seen += len(v)
        if above is not None:
            above += np.bincount(probe[raw >= searches.best_genuine[probe]], minlength=len(above))
    return above


def _search(source, searches: _Searches, above: np.ndarray) -> tuple[MatchSummary, np.ndarray]:
    """The MatchSummary of the probes that searched (rows with no comparison left out) and each
    one's identity name."""
    n = _size(source.probes)
    searched = np.flatnonzero(searches.count[:n] > 0)
    mated = searches.positives[searched] > 0
    ranks = 1 + above[searched]
    summary = MatchSummary(mated=mated, genuine=searches.best_genuine[searched][mated], ranks=ranks[mated],
                           top_score=searches.top[searched], n_gallery=len(source.entries))
    if source.identities is not None:
        names = np.asarray(source.identities.names(), dtype=str)
        identities = names[searches.identity[searched]]
    else:
        identities = np.asarray([source.probes.name(int(i)) for i in searched], dtype=str)
    return summary, identities
