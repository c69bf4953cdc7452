"""`AlertRules`: the rules with their history and the start / active / clear bookkeeping of
alerts and findings across logged epochs. Pure: no logging, no I/O."""

from __future__ import annotations

from typing import Optional

from rnn_monitor.alerts.conditions import Condition, make_alert
from rnn_monitor.alerts.learning import History
from rnn_monitor.alerts.rules import check_record
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord


class Tracker:
    """Start / active / clear bookkeeping of one family of records (alerts, or findings)."""

    def __init__(self) -> None:
        self.active: dict[tuple, dict] = {}

    def update(self, epoch: int, conditions: list[Condition]) -> tuple[list, list, list]:
        """(raised, active, cleared) records after this epoch's `conditions`; an active record
        keeps the epoch it started at (``since``)."""
        now: dict[tuple, dict] = {}
        for cond in conditions:
            if cond.key not in now:
                now[cond.key] = make_alert(epoch, cond)
        raised, active = [], []
        for key, record in now.items():
            if key in self.active:
                record["since"] = self.active[key]["since"]
            else:
                record["since"] = epoch
                raised.append(record)
            active.append(record)
        cleared = [record for key, record in self.active.items() if key not in now]
        self.active = now
        return raised, active, cleared


class AlertRules:
    """The rules with their history: call `update(record)` once per logged epoch, in order.

    Returns ``(raised, active, cleared)`` alerts: those that start at this epoch, every alert
    active at this epoch (including the raised ones), and those of the previous logged epoch that
    no longer hold. The findings of the epoch are in `findings_raised`, `findings_active` and
    `findings_cleared` after the call.
    """

    def __init__(self, thresholds: Optional[Thresholds] = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.history = History()
        self._alerts = Tracker()
        self._findings = Tracker()
        self.findings_raised: list[dict] = []
        self.findings_active: list[dict] = []
        self.findings_cleared: list[dict] = []

    @property
    def active(self) -> dict[tuple, dict]:
        """Active alerts by (layer, kind)."""
        return self._alerts.active

    def update(self, record: EpochRecord) -> tuple[list[dict], list[dict], list[dict]]:
        """Judge one logged epoch; see the class docstring for what it returns."""
        epoch = int(record.epoch)
        conditions = check_record(record, self.thresholds, self.history)
        self.history.add(record, conditions)
        alerts = [c for c in conditions if not c.finding]
        findings = [c for c in conditions if c.finding]
        self.findings_raised, self.findings_active, self.findings_cleared = self._findings.update(epoch, findings)
        return self._alerts.update(epoch, alerts)
