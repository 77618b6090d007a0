"""facediag inside a user's training loop: the Monitor (core), what a call may touch (state), the
held-out set prepared once (held), trends across calls (trends), when to stop (policy), the
JSON-lines history (history), torch.distributed (ranks) and where results are logged (sinks)."""
from facediag.monitor.core import Monitor, MonitorResult
from facediag.monitor.policy import StopPolicy

__all__ = ["Monitor", "MonitorResult", "StopPolicy"]
