"""The alert engine and its sinks: log lines, TensorBoard text, plugin tensors and scalars, the
user's hook, stop_on; and what survives the real writer and reader. No TF."""

import json
import logging

import numpy as np
import pytest

from rnn_monitor.alerts import KINDS, RUN, AlertEngine, check_stop_on
from rnn_monitor.config import Thresholds
from rnn_monitor.logdir import metadata
from rnn_monitor.record import EpochRecord, NonFinite

T = 50


def rec(epoch, layer="rnn", **scalars):
    r = EpochRecord(epoch)
    for name, value in scalars.items():
        r.set_scalar(layer, name, value)
    return r


def stalled(epoch, mid=1e-8):
    """A vanishing signature: no gradient reaches T/2, probe loss at the constant level."""
    r = rec(epoch, grad_norm=0.1)
    r.set_array("rnn", "temporal_flow", mid ** (np.arange(T) / (T // 2)))
    r.set_array("rnn", "timesteps", np.array(T))
    r.probe_loss, r.constant_loss = 1.0, 1.0
    return r


def kinds(alerts):
    return sorted(a["kind"] for a in alerts)


class FakeWriter:
    def __init__(self):
        self.texts, self.tensors, self.scalars = [], [], {}

    def text(self, tag, text, step):
        self.texts.append((tag, text, step))

    def json_tensor(self, kind, payload, step, layer=None):
        json.dumps(payload, allow_nan=False)  # what the real writer requires
        self.tensors.append((kind, payload, step))

    def scalar(self, tag, value, step):
        self.scalars.setdefault(tag, {})[step] = value


class FakeModel:
    stop_training = False


def test_engine_logs_alerts_once_as_warnings_and_findings_as_info(caplog):
    engine = AlertEngine()
    with caplog.at_level(logging.INFO, logger="rnn_monitor"):
        for epoch in range(3):
            engine.evaluate(epoch, stalled(epoch), None)
        healthy = stalled(3, mid=0.5)
        healthy.probe_loss = 0.1
        engine.evaluate(3, healthy, None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "epoch 1: vanishing gradient in rnn" in warnings[0]
    assert any("epoch 0: short gradient reach in rnn (finding)" in m for m in infos)
    assert any("cleared" in m and "epoch 3" in m for m in infos)


def test_engine_writes_text_tensors_and_scalars():
    writer = FakeWriter()
    engine = AlertEngine(writer=writer)
    r0 = rec(0, dead_ratio=0.9, exploding_ratio=0.8)
    r0.probe_loss, r0.constant_loss = 0.5, 1.0
    engine.evaluate(0, r0, None)
    engine.evaluate(1, rec(1, dead_ratio=0.9, exploding_ratio=0.8), None)
    engine.evaluate(2, rec(2, dead_ratio=0.1), None)
    alerts = [t for t in writer.tensors if t[0] == metadata.ALERTS]
    findings = [t for t in writer.tensors if t[0] == metadata.FINDINGS]
    assert [kinds(t[1]) for t in alerts] == [["dead"], [], []]
    assert [kinds(t[1]) for t in findings] == [["exploding_units"], [], []]
    assert "1 active alert(s) at epoch 1" in writer.texts[1][1] and "1 finding(s) (not alerts)" in writer.texts[1][1]
    assert "No active alerts at epoch 2" in writer.texts[2][1] and "Cleared: dead in rnn" in writer.texts[2][1]
    assert writer.scalars["rnn/finding/exploding_units"] == {0: 1.0, 1: 1.0, 2: 0.0}
    assert writer.scalars["rnn/finding/short_memory"] == {0: 0.0, 1: 0.0, 2: 0.0}
    assert writer.scalars[metadata.run_scalar_tag("finding/stalled")] == {0: 0.0, 1: 0.0, 2: 0.0}
    assert writer.scalars[metadata.run_scalar_tag("loss_ratio")] == {0: 0.5}
    assert kinds(engine.history) == ["dead"] and kinds(engine.findings) == ["exploding_units"]


def test_on_alert_gets_alerts_only_and_its_errors_are_logged(caplog):
    seen = []

    def hook(alert):
        seen.append(alert)
        raise RuntimeError("boom in user hook")

    engine = AlertEngine(on_alert=hook)
    with caplog.at_level(logging.ERROR, logger="rnn_monitor"):
        engine.evaluate(0, rec(0, dead_ratio=0.9, exploding_ratio=0.9, saturated_ratio=0.9), None)
    assert kinds(seen) == ["dead"]  # the exploding-units finding is not handed to the hook
    assert any("on_alert" in r.getMessage() for r in caplog.records)


def test_stop_on_stops_at_the_epoch_the_alert_is_raised(caplog):
    model = FakeModel()
    engine = AlertEngine(stop_on=("vanishing",))
    engine.evaluate(0, stalled(0), model)
    assert model.stop_training is False  # only a finding so far
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        engine.evaluate(1, stalled(1), model)
    assert model.stop_training is True
    assert any("stopping training after epoch 1" in r.getMessage() for r in caplog.records)


def test_stop_on_nonfinite_run_alert():
    model = FakeModel()
    r = rec(0)
    r.set_logs({"loss": float("nan")})
    AlertEngine(stop_on="nonfinite").evaluate(0, r, model)
    assert model.stop_training is True


@pytest.mark.parametrize("bad", [("nonfinite", "explode"), "saturation", ["stalled"]])
def test_stop_on_unknown_kind_is_a_value_error_listing_the_kinds(bad):
    with pytest.raises(ValueError) as err:
        AlertEngine(stop_on=bad)
    for kind in KINDS:
        assert kind in str(err.value)
    assert check_stop_on("nonfinite") == ("nonfinite",) and check_stop_on(None) == ()


def test_engine_accepts_threshold_mapping_and_none():
    assert AlertEngine(thresholds={"patience": 3}).thresholds.patience == 3
    assert AlertEngine().thresholds == Thresholds()
    with pytest.raises(ValueError, match="known thresholds"):
        AlertEngine(thresholds={"horizon_fractoin": 0.5})


def test_alerts_findings_and_run_scalars_survive_the_real_writer_and_reader(tmp_path):
    from rnn_monitor.logdir.reader import load_run
    from rnn_monitor.logdir.writer import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "rnn_monitor"))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "rnn"}]}, 0)
    engine = AlertEngine(writer=writer)
    first = stalled(0)
    first.nonfinite.append(NonFinite("rnn", "kernel", "h", 2))
    first.set_scalar("rnn", "grad_norm", float("nan"))
    engine.evaluate(0, first, None)
    for epoch in (1, 2):
        r = rec(epoch, dead_ratio=0.2, exploding_ratio=0.7)
        r.probe_loss, r.constant_loss = 0.25, 1.0
        engine.evaluate(epoch, r, None)
    writer.close()
    run = load_run(str(tmp_path))
    (nf,) = run.alerts
    assert (nf["epoch"], nf["layer"], nf["kind"], nf["count"]) == (0, "rnn", "nonfinite", 3)
    assert nf["places"] == [{"where": "kernel", "gate": "h", "count": 2},
                            {"where": "weight gradient norm", "gate": None, "count": 1}]
    assert [(f["epoch"], f["kind"]) for f in run.findings] == [(1, "exploding_units")]
    assert "loss_ratio" in run.run_scalar_names()
    epochs, ratio = run.run_scalar("loss_ratio")
    assert list(epochs) == [0, 1, 2] and list(ratio) == [1.0, 0.25, 0.25]
    epochs, flag = run.scalar("rnn", "finding/exploding_units")
    assert list(flag) == [0.0, 1.0, 1.0]
    assert RUN not in run.layers


def test_rnn_monitor_rejects_an_unknown_stop_on_kind_before_training():
    from rnn_monitor import RNNMonitor

    with pytest.raises(ValueError, match="known alert kinds"):
        RNNMonitor("unused_dir", stop_on=("nonfinite", "nan"))
    assert RNNMonitor("unused_dir", stop_on="exploding").stop_on == ("exploding",)
