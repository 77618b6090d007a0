"""Impostor scores as a stream: exact where it matters, bounded memory everywhere.

A gallery of S templates and P probes has about P·S impostor pairs (a billion at 100k × 10k):
too many to keep. They are summarised while the scores are computed, chunk by chunk:

- a fixed-bin histogram over [-1, 1] (2**16 bins, width 2**-15 ≈ 3.1e-5). A bin is
  ``floor(score · 2**15)``: multiplying a float by a power of two is exact, so "how many
  impostors score >= a bin edge" is an exact count, and every threshold the histogram path
  reports is a bin edge;
- the exact highest impostor scores, with the probe and template of each (TAR at a low FAR
  and the most alike impostor pairs need the top of the distribution exactly);
- count, sum and sum of squares (mean and spread, hence d′, are exact);
- a deterministic sample of pairs (the matching pass picks them), the same pairs for any
  model on the same probes and templates, so a bootstrap of two models stays paired. When the impostor count is at most
  ``EXACT_LIMIT`` the sample is every pair and every metric is exactly the all-pairs one.
  The sample's share of pairs is ``sample_fraction`` (1.0 when exact).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ordering import descending_stable

SCALE = 2 ** 15
BINS = 2 * SCALE                 # bins over [-1, 1)
BIN_WIDTH = 1.0 / SCALE
EXACT_LIMIT = 1 << 22            # impostor pairs kept exactly (4.2M pairs, 67 MB with their ids)
SAMPLE_SIZE = 1 << 20            # pairs sampled (for the bootstrap and 10-fold) when not every pair is kept
TOP_SHARE, TOP_MIN, TOP_MAX = 1e-4, 10_000, 1 << 21  # highest impostor scores kept: TAR@FAR exact to FAR 1e-4


def top_size(n_impostors: int) -> int:
    """How many of the highest impostor scores a summary keeps: every TAR@FAR down to the lowest
    FAR the count supports (n·FAR >= 10) and up to FAR 1e-4 (at least 10,000 scores) is then
    exact, up to n = 2·10^10; above, a histogram edge at most one bin stricter."""
    return int(min(TOP_MAX, max(TOP_MIN, np.ceil(TOP_SHARE * n_impostors) + 1)))


def bin_index(scores) -> np.ndarray:
    """The histogram bin of each score (exact: no rounding happens before the floor)."""
    s = np.asarray(scores)
    return np.clip(np.floor(s * SCALE).astype(np.int64) + SCALE, 0, BINS - 1)


def bin_counts(scores) -> np.ndarray:
    """The histogram of some scores: int64 counts per bin (bin_index), [BINS]."""
    return np.bincount(bin_index(scores).ravel(), minlength=BINS)


def bin_edge(i) -> np.ndarray:
    """Lower edge of bin i: every score in bins >= i is >= this edge, and no other is."""
    return (np.asarray(i, dtype=np.float64) - SCALE) / SCALE


@dataclass(frozen=True, eq=False)
class ImpostorScores:
    """The summary of every impostor score of a matching pass (see the module docstring)."""

    n: int
    total: float                  # sum of scores
    total_sq: float               # sum of squared scores
    histogram: np.ndarray         # int64 [BINS]
    top: np.ndarray               # float64, the highest scores, descending
    top_probe: np.ndarray         # int, probe row (in the matching) of each top score
    top_template: np.ndarray      # int, template column of each
    sample: np.ndarray            # float64, the sampled pairs' scores (every pair when exact)
    sample_probe: np.ndarray      # int, probe row of each sampled pair
    sample_fraction: float        # share of pairs in the sample (1.0 when exact)

    @property
    def exact(self) -> bool:
        """Every impostor score is kept: every metric equals the all-pairs computation."""
        return self.sample_fraction >= 1.0

    @property
    def resolution(self) -> float:
        """Score resolution of thresholds and ROC points: 0 when exact, else the bin width."""
        return 0.0 if self.exact else BIN_WIDTH

    def scores(self) -> np.ndarray:
        """Every impostor score; only when all were kept (small data)."""
        if not self.exact:
            raise ValueError(f"{self.n} impostor scores were summarised, not kept")
        return self.sample

    @property
    def mean(self) -> float:
        if self.exact:
            return float(self.sample.mean()) if self.n else float("nan")
        return self.total / self.n if self.n else float("nan")

    @property
    def var(self) -> float:
        if self.exact:
            return float(self.sample.var()) if self.n else float("nan")
        return max(self.total_sq / self.n - self.mean ** 2, 0.0) if self.n else float("nan")

    def count_at_least(self, threshold: float) -> int | None:
        """Impostors scoring >= threshold, exactly, when the summary can say (kept scores, a
        threshold within the kept top, or a bin edge); None otherwise."""
        if self.exact:
            return int((self.sample >= threshold).sum())
        if len(self.top) and threshold > self.top[-1]:
            return int(np.searchsorted(-self.top, -threshold, side="right"))
        i = int(bin_index(threshold))
        if bin_edge(i) == threshold:
            return int(self.histogram[i:].sum())
        return None

    def plot_histogram(self, bins: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) over [-1, 1] for plots: the kept scores, or the fine bins regrouped
        by their lower edge (off by at most one fine bin per coarse edge)."""
        edges = np.linspace(-1.0, 1.0, bins + 1)
        if self.exact:
            return np.histogram(self.sample[np.isfinite(self.sample)], bins=bins, range=(-1.0, 1.0))[0], edges
        coarse = np.clip(np.searchsorted(edges, bin_edge(np.arange(BINS)), side="right") - 1, 0, bins - 1)
        return np.bincount(coarse, weights=self.histogram, minlength=bins).astype(np.int64), edges


class ImpostorStream:
    """Accumulates a matching pass's impostor scores into an ImpostorScores.

    ``n_expected``, the number of impostor pairs the pass will see (known before it starts),
    decides whether every pair is kept (<= exact_limit) or only a sample of about sample_size
    pairs, the histogram and the kept top (top_size). The matching pass feeds it: ``add_exact`` in the
    first case; ``add_histogram``, ``add_sample`` and ``offer_top`` (above a ``floor`` it may
    raise before the top is full, ``raise_floor``) in the second."""

    def __init__(self, n_expected: int, top_limit: int | None = None, exact_limit: int | None = None,
                 sample_size: int | None = None):
        exact_limit = EXACT_LIMIT if exact_limit is None else exact_limit
        sample_size = SAMPLE_SIZE if sample_size is None else sample_size
        self.exact = n_expected <= exact_limit
        self.keep = 1.0 if self.exact else min(sample_size, exact_limit) / n_expected  # < 1: not every pair
        self.top_limit = top_size(n_expected) if top_limit is None else top_limit
        self.n, self.total, self.total_sq = 0, 0.0, 0.0
        self.histogram = np.zeros(BINS, np.int64)
        self._top: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._top_size = 0
        self.floor = -np.inf      # scores at or below it cannot enter the kept top (once it is full)
        self._sample: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add_exact(self, values, probe_ids, template_ids) -> None:
        """Every impostor pair of a chunk (exact mode)."""
        v = np.asarray(values, np.float64)
        self.n += len(v)
        self._sample.append((v, _ids(probe_ids), _ids(template_ids)))

    def add_moments(self, n: int, total: float, total_sq: float) -> None:
        self.n += int(n)
        self.total += float(total)
        self.total_sq += float(total_sq)

    def add_histogram(self, counts) -> None:
        self.histogram += np.asarray(counts, np.int64)

    def add_sample(self, values, probe_ids, template_ids) -> None:
        self._sample.append((np.asarray(values, np.float64), _ids(probe_ids), _ids(template_ids)))

    def raise_floor(self, value: float) -> None:
        """The caller offers every impostor score >= value, and at least top_limit of them: no
        lower score can be in the kept top."""
        self.floor = max(self.floor, float(value))

    def offer_top(self, values, probe_ids, template_ids) -> None:
        """Candidates for the kept top: every impostor score of the chunk above ``floor``."""
        self._top.append((np.asarray(values, np.float64), _ids(probe_ids), _ids(template_ids)))
        self._top_size += len(self._top[-1][0])
        if self._top_size > 2 * self.top_limit:
            self._shrink_top()

    def _shrink_top(self) -> None:
        """Keep only the top_limit highest candidates; a score at or below the lowest of them can
        no longer enter."""
        s, p, t = _highest(self._top, self.top_limit)
        if self._top_size > self.top_limit:
            self.floor = float(s.min())
        self._top, self._top_size = [(s, p, t)], len(s)

    def result(self) -> ImpostorScores:
        """The summary of every score added so far; the stream is left as it was (more may be added)."""
        empty = (np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.int32))
        sample, sample_probe, sample_template = (tuple(np.concatenate(x) for x in zip(*self._sample))
                                                 if self._sample else empty)
        if self.exact:  # every pair kept: moments, histogram and top come from the pairs themselves
            s, p, t = sample, sample_probe, sample_template
            total, total_sq, histogram = float(sample.sum()), float(np.dot(sample, sample)), bin_counts(sample)
            order = descending_stable(s)  # equal scores in pass order
        else:
            s, p, t = _highest(self._top, self.top_limit) if self._top else empty
            total, total_sq, histogram = self.total, self.total_sq, self.histogram.copy()
            # Equal scores by probe then template: the kept top arrives in an order that depends on
            # the pass's block shape.
            order = np.lexsort((t, p, -s))
        return ImpostorScores(self.n, total, total_sq, histogram, s[order], p[order], t[order],
                              sample, sample_probe, self.keep)


def _highest(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], limit: int):
    """The ``limit`` highest (score, probe, template) of some parts, unordered (all when fewer)."""
    s, p, t = (np.concatenate(x) for x in zip(*parts))
    if len(s) > limit:
        keep = np.argpartition(-s, limit - 1)[:limit]
        s, p, t = s[keep], p[keep], t[keep]
    return s, p, t


def _ids(x) -> np.ndarray:
    # Probe and template ids as int32: a kept pair costs 16 bytes, not 24.
    return np.asarray(x).astype(np.int32, copy=False)
