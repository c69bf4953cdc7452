"""What a rule returns (`Condition`: one alert or finding holding for one layer at one epoch) and
the JSON record it becomes (`make_alert`), with the message that says what helps."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from rnn_monitor.alerts.kinds import FINDING_NOTE, HELP, TITLES


def finite(value: Any) -> bool:
    """True for a number that is neither None, NaN nor infinite."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class Condition:
    """One alert (or finding) that holds for one layer in one epoch."""

    layer: str
    kind: str
    metric: str
    value: float
    threshold: float
    detail: str  # what was seen, no advice
    extra: tuple = ()  # extra (key, value) pairs for the record
    finding: bool = False

    @property
    def key(self) -> tuple:
        """Identity across epochs (start / clear)."""
        return (self.layer, self.kind)


def make_alert(epoch: int, cond: Condition) -> dict:
    """The alert or finding record for a condition (JSON-ready: plain floats, None for non-finite)."""
    if cond.finding:
        message = f"{TITLES[cond.kind]} in {cond.layer} (finding): {cond.detail}; {FINDING_NOTE[cond.kind]}"
    else:
        message = f"{TITLES[cond.kind]} in {cond.layer}: {cond.detail}; {HELP[cond.kind]}"
    record = {
        "epoch": int(epoch),
        "layer": cond.layer,
        "kind": cond.kind,
        "message": message,
        "value": float(cond.value) if finite(cond.value) else None,
        "threshold": float(cond.threshold),
        "metric": cond.metric,
    }
    record.update(dict(cond.extra))
    return record
