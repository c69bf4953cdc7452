"""tb_plugin/responses/alerts.py on a small log: alert rows as written, findings with the epochs
their 0/1 scalars say they stayed active."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_monitor.alerts.kinds import RUN as RUN_LAYER
from rnn_monitor.logdir import metadata
from tb_plugin.responses.alerts import alerts_impl

DEAD = {"epoch": 2, "layer": "lstm", "kind": "dead", "message": "m", "value": 0.25, "threshold": 0.5, "metric": "x"}


@pytest.fixture
def tiny(tiny_log):
    tiny_log.manifest([{"name": "lstm"}])
    for epoch in range(5):
        alerts = [DEAD, "not a record", {"layer": 3, "value": "high", "threshold": None}] if epoch == 2 else []
        tiny_log.records(metadata.ALERTS, alerts, epoch)
        findings = []
        if epoch == 1:
            findings = [{"epoch": 1, "layer": "lstm", "kind": "saturation", "message": "s"},
                        {"epoch": 1, "layer": RUN_LAYER, "kind": "stalled", "message": "r"},
                        {"epoch": 1, "layer": "lstm", "kind": "other", "message": "o"}]
        tiny_log.records(metadata.FINDINGS, findings, epoch)
        tiny_log.scalar("lstm", "finding/saturation", [0, 1, 1, 0, 1][epoch], epoch)
        tiny_log.writer().scalar(metadata.run_scalar_tag("finding/stalled"), [0, 1, 1, 1, 1][epoch], epoch)
    tiny_log.tensor(metadata.ALERTS, np.array(b"{torn", dtype=object), 5)  # unreadable: left out
    return tiny_log


def test_alert_rows_as_written(tiny):
    body = alerts_impl(tiny.source(), "rnn_monitor")
    assert body["enabled"] is True and body["findings_enabled"] is True and body["sampling"] is None
    assert body["alerts"] == [
        {"epoch": 2, "layer": "lstm", "kind": "dead", "message": "m", "value": 0.25, "threshold": 0.5},
        {"epoch": 2, "layer": "3", "kind": "", "message": "", "value": None, "threshold": None},
    ]


def test_findings_span_the_epochs_their_scalar_stays_one(tiny):
    findings = alerts_impl(tiny.source(), "rnn_monitor")["findings"]
    spans = [(f["layer"], f["kind"], f["epochs"], f["last"]) for f in findings]
    assert spans == [("lstm", "saturation", [1, 2], 2),  # 0 at epoch 3 ends it
                     (RUN_LAYER, "stalled", [1, 2, 3, 4], 4),  # run-wide: the _run/ scalar
                     ("lstm", "other", [1], 1)]  # no scalar: the epoch it was raised at


def test_a_run_without_alerts_or_findings(tiny_log):
    tiny_log.manifest([{"name": "lstm"}])
    body = alerts_impl(tiny_log.source(), "rnn_monitor")
    assert (body["enabled"], body["alerts"], body["findings_enabled"], body["findings"]) == (False, [], False, [])
