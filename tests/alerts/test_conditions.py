"""The alert and finding records: JSON-ready, one line, with what helps (alerts) or why it is
only a finding."""

import json

from rnn_monitor.alerts import FINDING_KINDS, KINDS
from rnn_monitor.record import NonFinite

from planted import run, vanishing_run


def test_records_are_json_and_messages_say_what_helps():
    records = vanishing_run()
    records[0].nonfinite.append(NonFinite("x", "kernel", "h", 1))
    records[0].set_scalar("x", "grad_norm", 1.0)
    alerts, findings = run(records)
    for a in alerts + findings:
        json.dumps(a, allow_nan=False)
        assert set(a) >= {"epoch", "layer", "kind", "message", "value", "threshold", "metric"}
        assert "\n" not in a["message"]
    for a in alerts:
        assert a["kind"] in KINDS and "usually helps" in a["message"]
    for f in findings:
        assert f["kind"] in FINDING_KINDS and "(finding)" in f["message"]
