"""Where alerts and findings go (`rnn_monitor.alerts.sinks`), one sink at a time: the markdown
summary written out by hand, the log lines, what the real writer puts in the log (read back by
`load_run` and the raw events), the user's hook and `model.stop_training`."""

import logging
import os

import numpy as np
import pytest

from rnn_monitor.alerts import sinks
from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.events import event_files, read_events

DEAD = {"epoch": 3, "layer": "rnn", "kind": "dead", "message": "dead units in rnn | half", "since": 1}
SHORT = {"epoch": 4, "layer": "rnn", "kind": "short_memory", "message": "short reach", "since": 4}


def _messages(caplog, level):
    return [r.getMessage() for r in caplog.records if r.name == "rnn_monitor" and r.levelno == level]


def test_public_drops_the_bookkeeping_only():
    assert sinks.public(DEAD) == {k: DEAD[k] for k in ("epoch", "layer", "kind", "message")}
    assert "since" in DEAD


def test_markdown_escapes_pipes_and_lists_findings():
    md = sinks.format_markdown(4, [{"layer": "a", "kind": "dead", "message": "x | y", "since": 2}], [],
                               [{"layer": "b", "kind": "saturation", "message": "m", "since": 3}])
    assert "x \\| y" in md and "| a | dead | 2 |" in md and "| b | saturation | 3 | m |" in md


def test_markdown_summary_line_by_line():
    cleared = [{"layer": "rnn", "kind": "vanishing"}, {"layer": "gru", "kind": "dead"}]
    assert sinks.format_markdown(5, [DEAD, {"layer": "gru", "kind": "exploding", "message": "big"}], cleared,
                                 [SHORT]).split("\n") == [
        "**2 active alert(s) at epoch 5**",
        "",
        "| layer | kind | since epoch | message |",
        "|---|---|---|---|",
        "| rnn | dead | 1 | dead units in rnn \\| half |",
        "| gru | exploding | 5 | big |",  # no "since": the epoch itself
        "",
        "Cleared: vanishing in rnn, dead in gru.",
        "",
        "1 finding(s) (not alerts)",
        "",
        "| layer | kind | since epoch | message |",
        "|---|---|---|---|",
        "| rnn | short_memory | 4 | short reach |",
    ]
    assert sinks.format_markdown(0, [], []) == "No active alerts at epoch 0."
    assert sinks.format_markdown(0, [], [], []) == "No active alerts at epoch 0."


def test_log_lines_warn_for_alerts_and_inform_for_clears_and_findings(caplog):
    with caplog.at_level(logging.INFO, logger="rnn_monitor"):
        sinks.log_changes(6, [DEAD], [{"layer": "gru", "kind": "exploding", "epoch": 2},
                                      {"layer": "gru", "kind": "dead", "epoch": 2, "since": 0}])
        sinks.log_findings(6, [SHORT])
    assert _messages(caplog, logging.WARNING) == ["rnn_monitor: epoch 6: dead units in rnn | half"]
    assert _messages(caplog, logging.INFO) == [
        "rnn_monitor: epoch 6: exploding alert in gru cleared (raised at epoch 2)",
        "rnn_monitor: epoch 6: dead alert in gru cleared (raised at epoch 0)",
        "rnn_monitor: epoch 6: short reach",
    ]


def _texts(run_dir):
    texts = {}
    for path in event_files(run_dir):
        for event in read_events(path):
            for value in event.summary.value:
                if value.tag.startswith(sinks.TEXT_TAG):
                    texts[event.step] = metadata.decode_text(value.tensor)
    return texts


def test_what_the_writer_sinks_put_in_the_log(tmp_path):
    from rnn_monitor import load_run
    from rnn_monitor.logdir.writer import SummaryWriter

    run_dir = os.path.join(str(tmp_path), metadata.RUN_SUBDIR)
    writer = SummaryWriter(run_dir)
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "rnn"}, {"name": "gru"}]}, 0)
    stalled = {"epoch": 0, "layer": "model", "kind": "stalled", "message": "flat", "since": 0}
    short = dict(SHORT, epoch=0)
    dead = dict(sinks.public(DEAD), epoch=0)
    sinks.write_tensorboard(writer, 0, [dead], [DEAD], [], [short], [short, stalled])
    sinks.write_finding_scalars(writer, 0, ["rnn", "gru"], [short, stalled])
    sinks.write_loss_scalars(writer, 0, 0.5, 1.0, 0.5)
    sinks.write_tensorboard(writer, 1, [], [], [DEAD])
    sinks.write_finding_scalars(writer, 1, ["rnn", "gru"], [])
    sinks.write_loss_scalars(writer, 1, float("nan"), 1.0, None)
    writer.close()

    run = load_run(str(tmp_path))
    assert run.alerts == [dead]
    assert run.findings == [short]
    texts = _texts(run_dir)
    assert sorted(texts) == [0, 1]
    assert texts[0].startswith("**1 active alert(s) at epoch 0**")
    assert "| rnn | dead | 1 |" in texts[0] and "2 finding(s) (not alerts)" in texts[0]
    assert "| model | stalled | 0 | flat |" in texts[0]  # the active findings, not only the raised
    assert texts[1] == "No active alerts at epoch 1.\n\nCleared: dead in rnn."
    flags = {(layer, kind): list(run.scalar(layer, f"finding/{kind}")[1])
             for layer in ("rnn", "gru") for kind in ("short_memory", "saturation", "exploding_units")}
    assert flags == {key: [1.0, 0.0] if key == ("rnn", "short_memory") else [0.0, 0.0] for key in flags}
    assert "finding/stalled" not in run.scalar_names("rnn")
    assert list(run.run_scalar("finding/stalled")[1]) == [1.0, 0.0]
    assert sorted(run.run_scalar_names()) == ["constant_loss", "finding/stalled", "loss_ratio", "probe_loss"]
    epochs, constant = run.run_scalar("constant_loss")
    assert list(epochs) == [0, 1] and list(constant) == [1.0, 1.0]
    assert list(run.run_scalar("probe_loss")[0]) == [0]  # NaN is not written
    np.testing.assert_array_equal(run.run_scalar("loss_ratio"), [[0], [0.5]])


def test_the_hook_gets_a_copy_of_each_alert_and_its_errors_are_logged(caplog):
    seen = []

    def hook(alert):
        seen.append(alert)
        alert["message"] = "changed by the hook"
        if alert["kind"] == "dead":
            raise RuntimeError("boom")

    second = {"layer": "gru", "kind": "exploding", "message": "big"}
    with caplog.at_level(logging.ERROR, logger="rnn_monitor"):
        sinks.call_hook(hook, [DEAD, second])
        sinks.call_hook(None, [DEAD])
    assert [a["kind"] for a in seen] == ["dead", "exploding"]
    assert DEAD["message"] == "dead units in rnn | half" and second["message"] == "big"
    assert _messages(caplog, logging.ERROR) == ["rnn_monitor: on_alert raised for dead alert; ignored"]


def test_stop_training_sets_the_flag_and_says_why(caplog):
    class Model:
        stop_training = False

    class Frozen:
        def __setattr__(self, name, value):
            raise AttributeError(name)

    model = Model()
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        assert sinks.stop_training(model, 7, [DEAD, SHORT], ("dead",)) is True
        assert sinks.stop_training(Frozen(), 7, [DEAD], ("dead",)) is False
    assert model.stop_training is True
    assert _messages(caplog, logging.WARNING) == [
        "rnn_monitor: stopping training after epoch 7 because of the dead alert in rnn (stop_on=('dead',))"]
    assert _messages(caplog, logging.ERROR) == ["rnn_monitor: could not set model.stop_training"]


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_loss_scalars_skip_infinities(value):
    written = []

    class Writer:
        def scalar(self, tag, v, step):
            written.append((tag, v, step))

    sinks.write_loss_scalars(Writer(), 2, value, 0.25, value)
    assert written == [("_run/constant_loss", 0.25, 2)]
