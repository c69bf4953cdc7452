"""Alerts and findings: rules over what an epoch measured (`rules`, one pure function a rule;
`learning`, is the run learning; `tracking`, start and clear across epochs), and where they go
(`sinks`), wired together by `engine.AlertEngine`."""

from rnn_monitor.alerts.engine import AlertEngine, check_stop_on
from rnn_monitor.alerts.kinds import (
    DEAD, EXPLODING, EXPLODING_UNITS, FINDING_KINDS, KINDS, NONFINITE, RUN, SATURATED, SATURATION, SHORT_MEMORY,
    STALLED, TITLES, VANISHING,
)
from rnn_monitor.alerts.conditions import Condition, make_alert
from rnn_monitor.alerts.learning import History, learning_state
from rnn_monitor.alerts.rules import check_record
from rnn_monitor.alerts.sinks import TEXT_TAG, format_markdown
from rnn_monitor.alerts.tracking import AlertRules

__all__ = [
    "AlertEngine", "AlertRules", "Condition", "History", "check_record", "check_stop_on", "learning_state",
    "make_alert", "format_markdown", "KINDS", "FINDING_KINDS", "TITLES", "TEXT_TAG", "RUN", "VANISHING",
    "EXPLODING", "NONFINITE", "DEAD", "SATURATED", "SHORT_MEMORY", "SATURATION", "STALLED", "EXPLODING_UNITS",
]
