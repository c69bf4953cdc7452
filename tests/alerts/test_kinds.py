"""Alert and finding kinds (`rnn_monitor.alerts.kinds`): every kind has its title, its advice or
note, and its row in docs/alerts.md; alerts and findings are apart."""

import os
import re

from rnn_monitor.alerts import kinds

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "alerts.md")


def test_alerts_and_findings_are_distinct_kinds_each_titled():
    assert len(set(kinds.KINDS)) == 5 and len(set(kinds.FINDING_KINDS)) == 4
    assert not set(kinds.KINDS) & set(kinds.FINDING_KINDS)
    assert set(kinds.TITLES) == set(kinds.KINDS) | set(kinds.FINDING_KINDS)
    assert all(kinds.TITLES[k] and kinds.TITLES[k] == kinds.TITLES[k].lower() for k in kinds.TITLES)


def test_alerts_carry_advice_and_findings_a_note():
    assert set(kinds.HELP) == set(kinds.KINDS)
    assert set(kinds.FINDING_NOTE) == set(kinds.FINDING_KINDS)
    assert all("usually helps" in advice for advice in kinds.HELP.values())


def test_every_kind_has_its_row_in_the_alerts_page():
    with open(DOCS, encoding="utf-8") as handle:
        rows = re.findall(r"^\| `(\w+)`", handle.read(), flags=re.MULTILINE)
    for kind in kinds.KINDS + kinds.FINDING_KINDS:
        assert kind in rows, kind
    assert kinds.RUN == "model"
