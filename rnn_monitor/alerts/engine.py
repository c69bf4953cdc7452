"""`AlertEngine`: what the callback calls once per logged epoch, after the weight and probe parts
filled the record. It runs the rules (`tracking.AlertRules`) and hands the result to the sinks
(`sinks`):

* alerts: one WARNING line when an alert starts and one INFO line when it clears (never the
  same alert every epoch), the plugin tensor `metadata.ALERTS` with the alerts *raised* at the
  epoch, the user's `on_alert(alert)` for each raised alert, and ``model.stop_training`` when a
  raised or active alert's kind is in `stop_on`;
* findings: one INFO line when a finding starts, the plugin tensor `metadata.FINDINGS` with the
  findings raised at the epoch, and a 0/1 scalar ``finding/<kind>`` per layer (run-wide:
  ``_run/finding/<kind>``) at every logged epoch; never a hook call, never a stop;
* both: the TensorBoard text summary of what is active at the epoch, and the run-wide scalars
  ``_run/probe_loss``, ``_run/constant_loss`` and ``_run/loss_ratio`` the loss rules read.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Iterable, Optional

from rnn_monitor.alerts import sinks
from rnn_monitor.alerts.kinds import KINDS
from rnn_monitor.alerts.learning import loss_ratio
from rnn_monitor.alerts.tracking import AlertRules
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord

logger = logging.getLogger("rnn_monitor")


def check_stop_on(stop_on: Any) -> tuple[str, ...]:
    """`stop_on` as a tuple of alert kinds; an unknown kind is a ValueError listing the known ones
    (findings never stop training, so their kinds are not accepted either)."""
    if stop_on is None:
        return ()
    if isinstance(stop_on, str):
        stop_on = (stop_on,)
    stop_on = tuple(stop_on)
    unknown = [k for k in stop_on if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown stop_on kind(s) {unknown}; known alert kinds: {list(KINDS)}")
    return stop_on


class AlertEngine:
    """Runs the rules each logged epoch and reports to the sinks (see the module docstring).

    Args:
        writer: a `SummaryWriter` (or None: no TensorBoard output).
        thresholds: `Thresholds` (or a mapping of overrides).
        on_alert: called with each raised alert record; its exceptions are logged, not raised.
        stop_on: alert kinds that set ``model.stop_training = True``; an unknown kind is a
            ValueError.
    """

    def __init__(
        self,
        writer: Any = None,
        thresholds: Any = None,
        on_alert: Optional[Callable[[dict], Any]] = None,
        stop_on: Iterable[str] = (),
    ) -> None:
        if thresholds is None or not isinstance(thresholds, Thresholds):
            thresholds = Thresholds.from_mapping(thresholds)
        self.writer = writer
        self.thresholds = thresholds
        self.rules = AlertRules(thresholds)
        self.on_alert = on_alert
        self.stop_on = check_stop_on(stop_on)
        self.history: list[dict] = []  # every raised alert, oldest first
        self.findings: list[dict] = []  # every raised finding, oldest first
        self._stopped = False

    def evaluate(self, epoch: int, record: EpochRecord, model: Any = None) -> list[dict]:
        """Run the rules on `record`; returns the alerts raised at this epoch."""
        if int(record.epoch) != int(epoch):
            record = dataclasses.replace(record, epoch=int(epoch))
        raised, active, cleared = self.rules.update(record)
        f_raised, f_active = self.rules.findings_raised, self.rules.findings_active
        sinks.log_changes(epoch, raised, cleared)
        sinks.log_findings(epoch, f_raised)
        public = [sinks.public(a) for a in raised]
        public_findings = [sinks.public(f) for f in f_raised]
        self.history.extend(public)
        self.findings.extend(public_findings)
        if self.writer is not None:
            sinks.write_tensorboard(self.writer, epoch, public, active, cleared, public_findings, f_active)
            layers = list(dict.fromkeys(list(record.scalars) + list(record.arrays)))
            sinks.write_finding_scalars(self.writer, epoch, layers, f_active)
            sinks.write_loss_scalars(self.writer, epoch, record.probe_loss, record.constant_loss, loss_ratio(record))
        sinks.call_hook(self.on_alert, public)
        self._maybe_stop(epoch, active, model)
        return public

    def _maybe_stop(self, epoch: int, active: list[dict], model: Any) -> None:
        if not self.stop_on or self._stopped or model is None:
            return
        hits = [a for a in active if a["kind"] in self.stop_on]
        if hits:
            self._stopped = sinks.stop_training(model, epoch, hits, self.stop_on)
