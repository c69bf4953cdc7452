"""The reduced alert benchmark (the cases of benchmarks/alert_cases.py marked `reduced`): each
trains for real with RNNMonitor, its label is verified (held-out loss against the task's
baseline, control runs), and the alerts must be right: nothing on the healthy runs, the labelled
kind on each fault by the second logged epoch, no blown-up run called vanishing, and the rules
replayed offline on the saved records give the alerts raised live. A few minutes on 2 cores; the
full benchmark (`python benchmarks/alert_benchmark.py`) runs outside CI."""

import os
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import alert_benchmark as bench  # noqa: E402
import alert_cases  # noqa: E402

REDUCED = [c for c in alert_cases.CASES if c.reduced]


def test_reduced_set_covers_every_label():
    assert {c.label for c in REDUCED} == set(alert_cases.LABELS)
    assert {c.split for c in REDUCED} == {"tune", "report"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("alert_benchmark"))
    live = {c.name: bench.run_case(c, out)["live_alerts"] for c in REDUCED}
    return out, live, bench.evaluate(out, [c.name for c in REDUCED])


def test_labels_verify(results):
    _, _, rows = results
    for row in rows:
        assert row["verified"], (row["name"], row["evidence"])


def test_alerts_are_right_and_early(results):
    _, _, rows = results
    for row in rows:
        if row["label"] == "healthy":
            assert row["ours"] == {}, (row["name"], row["alerts"])
        else:
            assert row["label"] in row["ours"], (row["name"], row["ours"])
            assert row["ours"][row["label"]] <= 1, (row["name"], row["ours"])  # by the second logged epoch
        if row["label"] in ("nonfinite", "exploding"):
            assert "vanishing" not in row["ours"], row["name"]
    stats = bench.summary(rows)["all"]
    assert stats["ours_caught"] == stats["faults"] and stats["ours_false_alarms"] == 0


def test_offline_replay_gives_the_live_alerts(results):
    _, live, rows = results
    for row in rows:
        replayed = sorted((a["epoch"], a["layer"], a["kind"]) for a in row["alerts"])
        assert replayed == sorted((a["epoch"], a["layer"], a["kind"]) for a in live[row["name"]]), row["name"]


def test_sagemaker_style_rules_are_computed_side_by_side(results):
    _, _, rows = results
    by_name = {r["name"]: r for r in rows}
    assert by_name["nan_in_data"]["sagemaker"] == {"nonfinite": 0}
    for row in rows:
        if row["label"] == "healthy":
            assert "nonfinite" not in row["sagemaker"]
