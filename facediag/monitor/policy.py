"""When the monitor says stop: which diagnoses and trends stop a run, and after how many calls."""
from __future__ import annotations

from dataclasses import dataclass

from facediag.errors import FacediagError
from facediag.monitor.trends import TRENDS


@dataclass(frozen=True)
class StopPolicy:
    """What turns ``should_stop`` true.

    Parameters
    ----------
    diagnoses
        Diagnosis ids (as run-all names them) that stop the run. By default what training itself
        causes and more training makes worse: the model maps everyone alike, or learns the pairs
        instead of the people.
    trends
        Trend ids (monitor.trends) that stop the run. By default the seed's signature and a fall of
        rank-1; a rising impostor similarity or a drifting false-accept rate are reported, not
        stopped on (supervised training moves them too: pick the threshold again).
    patience
        How many calls in a row a stopping diagnosis or trend must hold (1: the first time).
    min_change
        The least change every trend counts; None: the suite's ``[gate.max_drop]`` tolerances
        (monitor.trends.tolerances).
    """

    diagnoses: frozenset[str] = frozenset({"embedding-collapse", "pair-memorization"})
    trends: frozenset[str] = frozenset({"paired-up-genuine-down", "rank1-drop"})
    patience: int = 1
    min_change: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "diagnoses", frozenset(self.diagnoses))
        object.__setattr__(self, "trends", frozenset(self.trends))
        unknown = self.trends - set(TRENDS)
        if unknown:
            raise FacediagError(f"StopPolicy: unknown trend(s) {', '.join(sorted(unknown))}; "
                                f"known: {', '.join(TRENDS)}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise FacediagError(f"StopPolicy: patience must be a whole number of calls from 1, not {self.patience!r}")
        if self.min_change is not None and not 0 <= self.min_change <= 1:
            raise FacediagError(f"StopPolicy: min_change is a change of a rate or cosine, 0 to 1, "
                                f"not {self.min_change!r}")

    def stopping(self, diagnoses: list[str], trends: list[str]) -> list[str]:
        """The flags of one call that count toward stopping, in the order given."""
        return [d for d in diagnoses if d in self.diagnoses] + [t for t in trends if t in self.trends]
