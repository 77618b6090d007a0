"""facediag inside a training loop: the Monitor and the result of one call.

```python
monitor = Monitor(data="held/", vlr_size=16, history="runs/monitor.jsonl")
for step, batch in enumerate(loader):
    ...                                           # the loop's own training step
    if step % 500 == 0:
        result = monitor(model, step=step)        # the live nn.Module (or its DDP wrapper)
        if result.should_stop:
            break
```

A call runs the suite (``monitor`` by default) over the held-out set with run-all's own
runner, checks, conditions and diagnosis rules, on a Session over the live module; it adds the
trends across calls (monitor.trends) and the stop decision (monitor.policy), appends one line to
the history and hands the result to the sinks.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from facediag.errors import FacediagError
from facediag.models.card import read_card
from facediag.models.loaded import LoadedModel
from facediag.models.presets import EDGEFACE
from facediag.monitor.held import HeldOut, LiveEmbedder
from facediag.monitor.history import append_record
from facediag.monitor.policy import StopPolicy
from facediag.monitor.ranks import DEFAULT_TIMEOUT_S, Ranks
from facediag.monitor.state import evaluating, input_layout, unwrap
from facediag.monitor.trends import describe, tolerances, trend_flags
from facediag.results.history import MonitorPoint
from facediag.runner import run_suite
from facediag.session import SessionConfig
from facediag.suites import Suite, load_suite


@dataclass(frozen=True)
class MonitorResult:
    """What one monitor call concluded (the same on every rank).

    ``metrics`` are flat ``check.metric`` names of the metric catalogue; ``statuses`` each check's
    status as run-all writes it (PASS, WARN, FAIL, SKIP, ERROR); ``diagnoses`` the ids run-all
    names; ``trends`` the trend ids against the first call (monitor.trends); ``reason`` says why
    ``should_stop`` (None when it is False). ``report`` is the full run Report of this call, on
    rank 0 (None on the others and for a result read back from a history line).
    """

    step: int
    metrics: dict[str, float]
    statuses: dict[str, str]
    diagnoses: list[str]
    trends: list[str]
    should_stop: bool
    reason: str | None
    time: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    report: Any = field(default=None, repr=False, compare=False)

    def record(self) -> dict:
        """The JSON-lines record of this call (the history file's line; what sinks receive)."""
        return MonitorPoint(step=self.step, time=self.time, metrics=dict(self.metrics), statuses=dict(self.statuses),
                            diagnoses=list(self.diagnoses), trends=list(self.trends), should_stop=self.should_stop,
                            reason=self.reason).as_dict()

    @classmethod
    def from_record(cls, record: dict) -> MonitorResult:
        return cls(step=int(record["step"]), metrics=dict(record["metrics"]), statuses=dict(record["statuses"]),
                   diagnoses=list(record["diagnoses"]), trends=list(record["trends"]),
                   should_stop=bool(record["should_stop"]), reason=record["reason"], time=record["time"])


class Monitor:
    """facediag's checks and diagnoses on the model a training loop is training, every N steps.

    Parameters
    ----------
    gallery_root, probe_root, data, layout, vlr_size, degrade, dsr, dsr_weights, align, batch_size
        The held-out data, as run-all's data options (SessionConfig) take them: ``data`` one root
        split per subject (``gallery_per_subject`` images enrolled), or a gallery and a probe root;
        probes degraded to ``vlr_size`` px by ``degrade`` ("bicubic": area; "realistic":
        facediag.data.degradation; None: full resolution) and brought back by ``dsr``.
    suite
        A suite name or file (default ``monitor``: pair-gap, identification, verification,
        norm-sanity, weights-integrity by separation, and pretrained-baseline / arcface-head where
        their inputs are given).
    baseline
        Weights of a reference model (e.g. the pretrained one) for pretrained-baseline; embedded
        once, on the first call.
    device
        Where the DSR and the matching run (default: auto). The module always runs where it lives.
    card
        A model card for the module's input preprocessing (default: EdgeFace's).
    history
        A JSON-lines file: one line per call (monitor.history), appended.
    sinks
        Sink objects (``log(result)``, ``close()``), or strings for monitor.sinks.resolve_sink
        (``"tensorboard:DIR"``, ``"mlflow"``, ``"wandb"``).
    policy
        When ``should_stop`` turns true (StopPolicy; default: embedding-collapse or
        pair-memorization diagnosed, or the seed's signature or a rank-1 drop seen, once).
    timeout
        Seconds a rank waits for the others under torch.distributed before it raises (monitor.ranks).
    protocol, dsr_model, aligner
        What a trainer built already for its own split (facediag train-contrastive): the held-out
        protocol over the ``data`` root, the DSR module it loaded and its Aligner, used instead of
        indexing the root, loading ``dsr`` again or detecting the faces twice (Session takes them).

    Notes
    -----
    A call leaves training untouched (monitor.state): the module runs in eval mode under
    ``torch.no_grad`` on its own device, dtype and memory format, under the caller's autocast if
    one is active; its flags, ``requires_grad`` and every RNG are restored; parameters and buffers
    are never written. The held-out set is decoded, degraded and super-resolved by the first call
    and kept (monitor.held states the memory bound), so a later call costs about one forward pass
    over the held-out images. Under torch.distributed, construct and call it on every rank: rank 0
    evaluates and the others wait for its verdict (monitor.ranks).
    """

    def __init__(self, *, gallery_root=None, probe_root=None, data=None, layout: str = "auto",
                 vlr_size: int | None = 16, degrade: str = "bicubic", dsr: str | None = None, dsr_weights=None,
                 align: str = "none",
                 suite: str | Path | Suite = "monitor", baseline=None, device: str | None = None,
                 batch_size: int = 64, card=None, history=None, sinks=(), policy: StopPolicy | None = None,
                 progress: bool = False, gallery_per_subject: int = 3, subject_regex: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, protocol=None, dsr_model=None, aligner=None):
        self.suite = suite if isinstance(suite, Suite) else load_suite(suite)
        self.policy = policy or StopPolicy()
        self.history_path = None if history is None else Path(history)
        self.history: list[MonitorResult] = []
        self._tolerances = tolerances(self.suite.gate.get("max_drop"), self.policy.min_change)
        self._streak = 0
        self._preset, self._card = EDGEFACE, None
        if card is not None:
            self._preset, self._card = read_card(card), str(card)
        self._ranks = Ranks(timeout)
        self._held = None
        self._sinks = []
        if self._ranks.main:  # rank 0 alone reads the data, writes the history and logs
            config = {"data": data, "gallery_root": gallery_root, "probe_root": probe_root, "layout": layout,
                      "vlr_size": vlr_size, "degrade": degrade, "dsr": dsr, "dsr_weights": dsr_weights, "align": align,
                      "baseline_weights": baseline, "device": device or "auto", "batch_size": batch_size,
                      "gallery_per_subject": gallery_per_subject, "use_cache": False, "progress": progress}
            if subject_regex is not None:
                config["subject_regex"] = subject_regex
            self._held = HeldOut(SessionConfig(**config), protocol=protocol, dsr=dsr_model, aligner=aligner)
            self._sinks = [_sink(s) for s in sinks]

    # ------------------------------------------------------------------ a call
    def __call__(self, model: nn.Module, *, step: int) -> MonitorResult:
        """Evaluate ``model`` (the live module, or its DDP wrapper) at training step ``step``."""
        if not isinstance(model, nn.Module):
            raise FacediagError(f"Monitor: the model must be a torch.nn.Module, not {type(model).__name__}")
        if isinstance(step, bool) or not isinstance(step, int):
            raise FacediagError(f"Monitor: step must be a whole number, not {step!r}")
        record = None
        if self._ranks.main:
            try:
                result = self._evaluate(unwrap(model), step)
            except BaseException as exc:
                if self._ranks.world > 1:
                    self._ranks.share(None, f"{type(exc).__name__}: {exc}")
                raise
            record = result.record()
            self._ranks.share(record)
            return result
        result = MonitorResult.from_record(self._ranks.share(None))
        self.history.append(result)
        return result

    def _evaluate(self, module: nn.Module, step: int) -> MonitorResult:
        with evaluating(module):
            device, dtype, channels_last = input_layout(module)
            embedder = LiveEmbedder(module, device, dtype=dtype, channels_last=channels_last,
                                    batch_size=self._held.config.batch_size, progress=self._held.config.progress)
            loaded = LoadedModel.from_module(module, name="model in training", preset=self._preset)
            loaded.card = self._card
            report = run_suite(self._held.session(loaded, embedder), self.suite,
                               command=f"facediag.Monitor at step {step}")
        metrics = flat_metrics(report.results)
        diagnoses = [d.id for d in report.diagnoses]
        first = self.history[0].metrics if self.history else None
        trends = trend_flags(first, metrics, self._tolerances) if first is not None else []
        stopping = self.policy.stopping(diagnoses, trends)
        self._streak = self._streak + 1 if stopping else 0
        should_stop = self._streak >= self.policy.patience
        reason = None
        if should_stop:
            said = {d.id: d.summary for d in report.diagnoses}
            why = [f"{flag}: {said[flag]}" if flag in said else f"{flag}: {describe(flag, first, metrics)}"
                   for flag in stopping]
            streak = f" ({self._streak} calls in a row)" if self.policy.patience > 1 else ""
            reason = f"at step {step}{streak}: " + "; ".join(why)
        result = MonitorResult(step, metrics, {r.name: r.status.value for r in report.results}, diagnoses, trends,
                               should_stop, reason, report=report)
        self.history.append(result)
        if self.history_path is not None:
            append_record(self.history_path, result.record())
        for sink in self._sinks:
            sink.log(result)
        return result

    # ------------------------------------------------------------ the end
    def close(self) -> None:
        """Close the sinks (the history file is closed after every line)."""
        sinks, self._sinks = self._sinks, []
        for sink in sinks:
            sink.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def flat_metrics(results) -> dict[str, float]:
    """``check.metric`` -> value for every finite number the checks measured (counts included;
    flags and missing values left out), as the metric catalogue names them."""
    out = {}
    for res in results:
        for name, value in res.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[f"{res.name}.{name}"] = float(value)
    return out


def _sink(spec):
    """A Sink object as given, or one made from its string by monitor.sinks.resolve_sink."""
    if isinstance(spec, str):
        try:  # facediag.monitor.sinks imports its optional loggers itself, when asked for one
            from facediag.monitor.sinks import resolve_sink
        except ImportError:
            raise FacediagError(f"sink {spec!r}: this install names no sinks by string; give a Sink object") from None
        return resolve_sink(spec)
    if not (callable(getattr(spec, "log", None)) and callable(getattr(spec, "close", None))):
        raise FacediagError(f"Monitor: a sink has log(result) and close(), not {type(spec).__name__}")
    return spec
