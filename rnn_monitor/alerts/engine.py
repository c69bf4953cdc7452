"""`AlertEngine`: what the callback calls once per logged epoch, after the weight and probe parts
filled the record. It runs the rules (`rules.AlertRules`) and hands the result to the sinks
(`sinks`): one WARNING line when an alert starts and one INFO line when it clears (never the
same alert every epoch), a TensorBoard text summary of the alerts active at the epoch, the plugin
tensor `metadata.ALERTS` with the alerts *raised* at the epoch, the user's `on_alert(alert)` for
each raised alert, and ``model.stop_training`` when a raised or active alert's kind is in
`stop_on`."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Iterable, Optional

from rnn_monitor.alerts import sinks
from rnn_monitor.alerts.kinds import KINDS
from rnn_monitor.alerts.rules import AlertRules
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord

logger = logging.getLogger("rnn_monitor")


class AlertEngine:
    """Runs the rules each logged epoch and reports to the sinks (see the module docstring).

    Args:
        writer: a `SummaryWriter` (or None: no TensorBoard output).
        thresholds: `Thresholds` (or a mapping of overrides).
        on_alert: called with each raised alert record; its exceptions are logged, not raised.
        stop_on: alert kinds that set ``model.stop_training = True``.
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
        if isinstance(stop_on, str):
            stop_on = (stop_on,)
        stop_on = tuple(stop_on or ())
        unknown = [k for k in stop_on if k not in KINDS]
        if unknown:
            logger.warning(
                "rnn_monitor: ignoring unknown stop_on kind(s) %s; known kinds: %s",
                unknown, ", ".join(KINDS),
            )
        self.stop_on = tuple(k for k in stop_on if k in KINDS)
        self.history: list[dict] = []  # every raised alert, oldest first
        self._stopped = False

    def evaluate(self, epoch: int, record: EpochRecord, model: Any = None) -> list[dict]:
        """Run the rules on `record`; returns the alerts raised at this epoch."""
        if int(record.epoch) != int(epoch):
            record = dataclasses.replace(record, epoch=int(epoch))
        raised, active, cleared = self.rules.update(record)
        sinks.log_changes(epoch, raised, cleared)
        public = [sinks.public(a) for a in raised]
        self.history.extend(public)
        if self.writer is not None:
            sinks.write_tensorboard(self.writer, epoch, public, active, cleared)
        sinks.call_hook(self.on_alert, public)
        self._maybe_stop(epoch, active, model)
        return public

    def _maybe_stop(self, epoch: int, active: list[dict], model: Any) -> None:
        if not self.stop_on or self._stopped or model is None:
            return
        hits = [a for a in active if a["kind"] in self.stop_on]
        if hits:
            self._stopped = sinks.stop_training(model, epoch, hits, self.stop_on)
