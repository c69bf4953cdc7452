"""Alerts: rules over what an epoch measured (`rules`, pure), and where alerts go (`sinks`), wired
together by `engine.AlertEngine`."""

from rnn_monitor.alerts.engine import AlertEngine
from rnn_monitor.alerts.kinds import DEAD, EXPLODING, KINDS, NONFINITE, SATURATED, TITLES, VANISHING
from rnn_monitor.alerts.rules import AlertRules, Condition, check_record, make_alert
from rnn_monitor.alerts.sinks import TEXT_TAG, format_markdown

__all__ = [
    "AlertEngine", "AlertRules", "Condition", "check_record", "make_alert", "format_markdown",
    "KINDS", "TITLES", "TEXT_TAG", "VANISHING", "EXPLODING", "NONFINITE", "DEAD", "SATURATED",
]
