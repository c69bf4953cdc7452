"""Alert rules on hand-built EpochRecords, and the sinks (log, TensorBoard, hook, stop). No TF."""

import json
import logging

import numpy as np

from rnn_monitor.logdir import metadata
from rnn_monitor.alerts import KINDS, AlertEngine, AlertRules, check_record, format_markdown
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord, NonFinite

T = 100


def rec(epoch, layer="rnn", horizon=None, T=T, flow=None, **scalars):
    r = EpochRecord(epoch)
    if horizon is not None:
        r.set_scalar(layer, "grad_horizon", horizon)
        r.set_array(layer, "timesteps", np.array(T))
        r.set_array(layer, "temporal_flow", np.ones(T) if flow is None else np.asarray(flow))
    elif flow is not None:
        r.set_array(layer, "temporal_flow", np.asarray(flow))
    for name, value in scalars.items():
        r.set_scalar(layer, name, value)
    return r


def kinds(alerts):
    return sorted(a["kind"] for a in alerts)


class FakeWriter:
    def __init__(self):
        self.texts, self.tensors = [], []

    def text(self, tag, text, step):
        self.texts.append((tag, text, step))

    def json_tensor(self, kind, payload, step, layer=None):
        json.dumps(payload, allow_nan=False)  # what the real writer requires
        self.tensors.append((kind, payload, step))


class FakeModel:
    stop_training = False


# ------------------------------------------------------------------ pure rules
def test_healthy_record_has_no_condition():
    r = rec(0, horizon=60, grad_norm=0.5, dead_ratio=0.0, saturated_ratio=0.1)
    assert check_record(r, Thresholds()) == []


def test_vanishing_horizon_threshold_uses_fraction_of_T_and_min():
    th = Thresholds()
    (c,) = check_record(rec(0, horizon=9, T=100), th)
    assert c.kind == "vanishing" and c.threshold == 10 and c.value == 9 and c.metric == "grad_horizon"
    assert check_record(rec(0, horizon=10, T=100), th) == []
    # short sequences: the minimum of 2 applies
    assert check_record(rec(0, horizon=2, T=10), th) == []
    (c,) = check_record(rec(0, horizon=1, T=10), th)
    assert c.threshold == 2


def test_timesteps_fall_back_to_flow_length():
    r = EpochRecord(0)
    r.set_scalar("rnn", "grad_horizon", 3)
    r.set_array("rnn", "temporal_flow", np.ones(50))
    (c,) = check_record(r, Thresholds())
    assert c.threshold == 5


def test_vanishing_needs_patience_consecutive_epochs():
    rules = AlertRules(Thresholds(patience=2))
    raised, active, _ = rules.update(rec(0, horizon=3))
    assert raised == [] and active == []
    raised, active, _ = rules.update(rec(1, horizon=3))
    assert kinds(raised) == ["vanishing"] and raised[0]["epoch"] == 1
    assert "for 2 logged epochs" in raised[0]["message"]
    # a healthy epoch resets the streak
    rules = AlertRules(Thresholds(patience=2))
    rules.update(rec(0, horizon=3))
    rules.update(rec(1, horizon=50))
    raised, _, _ = rules.update(rec(2, horizon=3))
    assert raised == []


def test_patience_one_fires_at_once():
    raised, _, _ = AlertRules(Thresholds(patience=1)).update(rec(0, horizon=0))
    assert kinds(raised) == ["vanishing"]


def test_vanishing_by_tiny_grad_norm():
    rules = AlertRules(Thresholds(patience=2))
    rules.update(rec(0, grad_norm=1e-9))
    raised, _, _ = rules.update(rec(1, grad_norm=1e-9))
    assert kinds(raised) == ["vanishing"]
    assert raised[0]["metric"] == "grad_norm" and raised[0]["threshold"] == 1e-7


def test_exploding_by_flow_and_by_grad_norm():
    th = Thresholds()
    flow = np.ones(T)
    flow[40:] = 5e3
    (c,) = check_record(rec(0, horizon=99, flow=flow), th)
    assert c.kind == "exploding" and c.metric == "temporal_flow" and c.value == 5e3
    (c,) = check_record(rec(0, grad_norm=2e3), th)
    assert c.kind == "exploding" and c.metric == "grad_norm" and c.threshold == 1e3
    assert check_record(rec(0, grad_norm=999.0), th) == []


def test_nonfinite_fires_at_once_naming_layer_where_gate_and_count():
    r = rec(0)
    r.nonfinite.append(NonFinite("lstm", "recurrent_kernel", "f", 3))
    r.nonfinite.append(NonFinite("lstm", "recurrent_kernel", "f", 2))
    r.nonfinite.append(NonFinite("lstm", "state h", None, 7))
    raised, _, _ = AlertRules(Thresholds(patience=5)).update(r)
    assert kinds(raised) == ["nonfinite", "nonfinite"]
    gate = next(a for a in raised if a["gate"] == "f")
    assert gate["layer"] == "lstm" and gate["count"] == 5 and gate["where"] == "recurrent_kernel"
    assert "lstm" in gate["message"] and "recurrent_kernel" in gate["message"] and " f" in gate["message"]
    assert "5 NaN/Inf" in gate["message"]
    state = next(a for a in raised if a["gate"] is None)
    assert state["count"] == 7 and "state h" in state["message"]


def test_nonfinite_grad_norm_or_flow_is_a_nonfinite_alert():
    (c,) = check_record(rec(0, grad_norm=float("nan")), Thresholds())
    assert c.kind == "nonfinite" and c.layer == "rnn"
    flow = np.ones(T)
    flow[-1] = np.inf
    cs = check_record(rec(0, horizon=99, flow=flow), Thresholds())
    assert "nonfinite" in [c.kind for c in cs]


def test_dead_and_saturated_ratios():
    th = Thresholds()
    cs = check_record(rec(0, dead_ratio=0.6, saturated_ratio=0.7), th)
    assert sorted(c.kind for c in cs) == ["dead", "saturated"]
    assert check_record(rec(0, dead_ratio=0.5, saturated_ratio=0.5), th) == []
    cs = check_record(rec(0, dead_ratio=0.2), Thresholds(dead_alert_ratio=0.1))
    assert [c.kind for c in cs] == ["dead"]


def test_missing_scalars_do_not_trigger():
    r = EpochRecord(0)
    r.set_scalar("lstm", "kernel/i/l2", 1.0)  # weights only, no probe data
    assert check_record(r, Thresholds()) == []


def test_messages_say_what_usually_helps():
    th = Thresholds(patience=1)
    flow = np.full(T, 1e4)
    r = rec(0, layer="a", horizon=1, grad_norm=0.1)
    r.set_scalar("b", "grad_norm", 1e5)
    r.set_array("c", "temporal_flow", flow)
    raised, _, _ = AlertRules(th).update(r)
    by = {(a["layer"], a["kind"]): a["message"] for a in raised}
    assert "LSTM/GRU instead of SimpleRNN" in by[("a", "vanishing")]
    assert "gradient clipping (clipnorm=1.0)" in by[("b", "exploding")]
    assert "lower learning rate" in by[("c", "exploding")]
    for a in raised:
        assert set(a) >= {"epoch", "layer", "kind", "message", "value", "threshold"}
        assert a["kind"] in KINDS and "\n" not in a["message"]


def test_raised_active_cleared_bookkeeping():
    rules = AlertRules(Thresholds(patience=1))
    raised, active, cleared = rules.update(rec(0, dead_ratio=0.9))
    assert kinds(raised) == ["dead"] and kinds(active) == ["dead"] and cleared == []
    raised, active, cleared = rules.update(rec(1, dead_ratio=0.8))
    assert raised == [] and kinds(active) == ["dead"] and active[0]["since"] == 0
    raised, active, cleared = rules.update(rec(2, dead_ratio=0.1))
    assert raised == [] and active == [] and kinds(cleared) == ["dead"]
    raised, _, _ = rules.update(rec(3, dead_ratio=0.9))
    assert kinds(raised) == ["dead"]  # a new start after clearing is raised again


# ------------------------------------------------------------------ sinks
def test_engine_logs_once_when_started_and_once_when_cleared(caplog):
    engine = AlertEngine(thresholds=Thresholds(patience=1))
    with caplog.at_level(logging.INFO, logger="rnn_monitor"):
        for epoch, horizon in enumerate([1, 1, 1, 50]):
            engine.evaluate(epoch, rec(epoch, horizon=horizon), None)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and "vanishing" in warnings[0].getMessage()
    assert "epoch 0" in warnings[0].getMessage() and "rnn" in warnings[0].getMessage()
    assert len(infos) == 1 and "cleared" in infos[0].getMessage() and "epoch 3" in infos[0].getMessage()
    assert all(r.name == "rnn_monitor" for r in caplog.records)


def test_engine_writes_text_of_active_and_tensor_of_raised():
    writer = FakeWriter()
    engine = AlertEngine(writer=writer, thresholds=Thresholds(patience=1))
    engine.evaluate(0, rec(0, dead_ratio=0.9), None)
    engine.evaluate(1, rec(1, dead_ratio=0.9, saturated_ratio=0.99), None)
    engine.evaluate(2, rec(2), None)
    assert [t[0] for t in writer.tensors] == [metadata.ALERTS] * 3
    assert [kinds(t[1]) for t in writer.tensors] == [["dead"], ["saturated"], []]
    assert [t[2] for t in writer.tensors] == [0, 1, 2]
    assert all(tag == "alerts" for tag, _, _ in writer.texts)
    text1 = writer.texts[1][1]
    assert "2 active alert(s) at epoch 1" in text1 and "dead" in text1 and "saturated" in text1
    assert "No active alerts at epoch 2" in writer.texts[2][1] and "Cleared" in writer.texts[2][1]
    assert kinds(engine.history) == ["dead", "saturated"]


def test_on_alert_called_per_raised_alert_and_its_errors_are_logged(caplog):
    seen = []

    def hook(alert):
        seen.append(alert)
        raise RuntimeError("boom in user hook")

    engine = AlertEngine(thresholds=Thresholds(patience=1), on_alert=hook)
    with caplog.at_level(logging.ERROR, logger="rnn_monitor"):
        engine.evaluate(0, rec(0, dead_ratio=0.9, saturated_ratio=0.9), None)
        engine.evaluate(1, rec(1, dead_ratio=0.9, saturated_ratio=0.9), None)
    assert kinds(seen) == ["dead", "saturated"]
    assert any("on_alert" in r.getMessage() for r in caplog.records)


def test_stop_on_sets_stop_training_with_a_message(caplog):
    model = FakeModel()
    engine = AlertEngine(thresholds=Thresholds(patience=1), stop_on=("exploding",))
    engine.evaluate(0, rec(0, dead_ratio=0.9), model)
    assert model.stop_training is False
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        engine.evaluate(1, rec(1, grad_norm=1e6), model)
    assert model.stop_training is True
    assert any("stopping training" in r.getMessage() and "exploding" in r.getMessage()
               for r in caplog.records)


def test_stop_on_unknown_kind_is_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        engine = AlertEngine(stop_on=("nonfinite", "explode"))
    assert engine.stop_on == ("nonfinite",)
    assert any("explode" in r.getMessage() for r in caplog.records)
    assert AlertEngine(stop_on="nonfinite").stop_on == ("nonfinite",)


def test_engine_accepts_threshold_mapping_and_none():
    assert AlertEngine(thresholds={"patience": 3}).rules.patience == 3
    assert AlertEngine().thresholds == Thresholds()


def test_markdown_escapes_pipes():
    md = format_markdown(4, [{"layer": "a", "kind": "dead", "message": "x | y", "since": 2}], [])
    assert "x \\| y" in md and "| a | dead | 2 |" in md


def test_alert_records_survive_the_real_writer_and_reader(tmp_path):
    from rnn_monitor.logdir.reader import load_run
    from rnn_monitor.logdir.writer import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "rnn_monitor"))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "rnn"}]}, 0)
    engine = AlertEngine(writer=writer, thresholds=Thresholds(patience=1))
    engine.evaluate(0, rec(0, grad_norm=float("nan")), None)
    for epoch in (1, 2):
        writer.scalar("rnn/dead_ratio", 0.9, epoch)
        engine.evaluate(epoch, rec(epoch, dead_ratio=0.9), None)
    writer.close()
    run = load_run(str(tmp_path))
    assert kinds(run.alerts) == ["dead", "nonfinite"]
    nf = next(a for a in run.alerts if a["kind"] == "nonfinite")
    assert nf["epoch"] == 0 and nf["value"] is None and nf["layer"] == "rnn"
