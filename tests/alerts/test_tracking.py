"""Start / active / clear bookkeeping of alerts and findings across logged epochs."""

from rnn_monitor.alerts import AlertRules
from rnn_monitor.config import Thresholds

from planted import rec


def test_raised_active_cleared_for_alerts_and_findings():
    rules = AlertRules(Thresholds())
    raised, active, cleared = rules.update(rec(0, dead_ratio=0.9, exploding_ratio=0.9))
    assert [a["kind"] for a in raised] == ["dead"] and cleared == []
    assert [f["kind"] for f in rules.findings_raised] == ["exploding_units"]
    raised, active, cleared = rules.update(rec(1, dead_ratio=0.8, exploding_ratio=0.9))
    assert raised == [] and active[0]["since"] == 0 and rules.findings_raised == []
    assert rules.findings_active[0]["since"] == 0
    raised, active, cleared = rules.update(rec(2, dead_ratio=0.1))
    assert active == [] and [c["kind"] for c in cleared] == ["dead"]
    assert [f["kind"] for f in rules.findings_cleared] == ["exploding_units"]
    raised, _, _ = rules.update(rec(3, dead_ratio=0.9))
    assert [a["kind"] for a in raised] == ["dead"]  # a new start after clearing is raised again
