"""The alert rules on planted EpochRecords (pure numpy, no TF): each rule fires on its planted
signature, at the epoch its definition says, and stays quiet on the look-alikes that are not
faults (docs/alerts.md)."""

import json
import math

import numpy as np
import pytest

from rnn_monitor.alerts import (
    FINDING_KINDS, KINDS, RUN, AlertRules, History, check_record, learning_state,
)
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord, NonFinite

T = 100


def flow_with_mid(mid, T=T):
    """F[k] = mid ** (k / (T // 2)): 1 at k = 0, exactly `mid` at k = T // 2."""
    k = np.arange(T)
    return mid ** (k / (T // 2))


def rec(epoch, layer="rnn", mid=None, flow=None, probe=None, const=None, loss=None, T=T, **scalars):
    r = EpochRecord(epoch)
    if mid is not None:
        flow = flow_with_mid(mid, T)
    if flow is not None:
        r.set_array(layer, "temporal_flow", np.asarray(flow, dtype=np.float64))
        r.set_array(layer, "timesteps", np.array(T))
    for name, value in scalars.items():
        r.set_scalar(layer, name, value)
    r.probe_loss, r.constant_loss = probe, const
    if loss is not None:
        r.set_logs({"loss": loss})
    return r


def run(records, **th):
    """Every alert and finding raised over `records`, oldest first."""
    rules = AlertRules(Thresholds(**th))
    alerts, findings = [], []
    for r in records:
        raised, _, _ = rules.update(r)
        alerts += raised
        findings += rules.findings_raised
    return alerts, findings


def kinds(records):
    return sorted((a["epoch"], a["layer"], a["kind"]) for a in records)


# ------------------------------------------------------------------ vanishing
def vanishing_run(n=4, mid=1e-6, ratio=1.0, losses=None):
    losses = losses or [0.3] + [0.17] * (n - 1)
    return [rec(e, mid=mid, probe=ratio * 0.17, const=0.17, loss=losses[e], grad_norm=0.5) for e in range(n)]


def test_vanishing_needs_low_flow_and_no_learning_for_patience_epochs():
    alerts, findings = run(vanishing_run())
    assert kinds(alerts) == [(1, "rnn", "vanishing")]  # the second logged epoch, not the first
    (a,) = alerts
    assert a["metric"] == "flow_mid" and a["value"] == pytest.approx(1e-6) and a["threshold"] == 1e-4
    assert "1.0e-06" in a["message"] and "50 of 100" in a["message"] and "constant prediction" in a["message"]
    assert kinds(findings) == [(0, "rnn", "short_memory")]  # before the loss evidence is in


def test_low_flow_while_learning_is_a_finding_only():
    records = [rec(e, mid=1e-9, probe=0.9 - 0.1 * e, const=1.0, loss=3 - 0.3 * e) for e in range(4)]
    alerts, findings = run(records)
    assert alerts == [] and kinds(findings) == [(0, "rnn", "short_memory")]
    assert "fine for a task with short dependencies" in findings[0]["message"]


def test_stalled_loss_with_gradient_reaching_back_is_a_run_finding_not_vanishing():
    alerts, findings = run(vanishing_run(mid=5e-3))
    assert alerts == [] and kinds(findings) == [(1, RUN, "stalled")]


def test_flow_threshold_is_strict_and_configurable():
    assert run(vanishing_run(mid=1.0001e-4))[0] == []
    assert kinds(run(vanishing_run(mid=0.99e-4))[0]) == [(1, "rnn", "vanishing")]
    assert run(vanishing_run(mid=1e-6), vanishing_flow=1e-7)[0] == []


def test_probe_loss_improving_below_the_constant_level_is_learning():
    # 0.96 -> 0.92: 4% better and below 1.0, so not "unlearned" although both are >= 0.9
    records = [rec(e, mid=1e-6, probe=p, const=1.0, loss=2.0) for e, p in enumerate([0.96, 0.92])]
    assert run(records)[0] == []
    # the same drop above the constant level (1.10 -> 1.04) is not learning anything
    records = [rec(e, mid=1e-6, probe=p, const=1.0, loss=2.0) for e, p in enumerate([1.10, 1.04])]
    assert kinds(run(records)[0]) == [(1, "rnn", "vanishing")]


def test_keras_loss_trend_counts_from_the_third_logged_epoch():
    # epoch 1's big Keras improvement (warm-up in epoch 0's mean) does not hold the alert back...
    alerts, _ = run(vanishing_run(losses=[0.5, 0.2, 0.2, 0.2]))
    assert kinds(alerts) == [(1, "rnn", "vanishing")]
    # ... but a >= 3% improvement between later logged epochs clears it
    rules = AlertRules(Thresholds())
    for r in vanishing_run(losses=[0.5, 0.2, 0.19, 0.189]):
        raised, active, cleared = rules.update(r)
        if r.epoch == 2:  # 0.2 -> 0.19 is 5%: learning
            assert active == [] and [c["kind"] for c in cleared] == ["vanishing"]
        if r.epoch == 3:  # 0.19 -> 0.189 is 0.5%: stalled again
            assert [a["kind"] for a in raised] == ["vanishing"]


def test_without_constant_loss_keras_trend_alone_decides_from_the_third_epoch():
    records = [rec(e, mid=1e-6, loss=l) for e, l in enumerate([0.4, 0.2, 0.2, 0.2])]
    assert kinds(run(records)[0]) == [(2, "rnn", "vanishing")]
    records = [rec(e, mid=1e-6, loss=l) for e, l in enumerate([0.4, 0.2, 0.18, 0.16])]
    assert run(records)[0] == []


def test_patience_sets_the_epochs_the_loss_must_stay_unlearned():
    assert kinds(run(vanishing_run(), patience=3)[0]) == [(2, "rnn", "vanishing")]
    assert kinds(run(vanishing_run(), patience=1)[0]) == [(0, "rnn", "vanishing")]


def test_short_horizon_finding_uses_horizon_fraction():
    r = rec(0, flow=np.ones(T), probe=0.5, const=1.0, grad_horizon=15)
    assert [c.kind for c in check_record(r, Thresholds())] == []  # 15 >= 0.1 * 100
    (c,) = check_record(r, Thresholds(horizon_fraction=0.5))
    assert c.kind == "short_memory" and c.finding


# ------------------------------------------------------------------ exploding
def test_exploding_by_gradient_growing_back_through_time():
    flow = np.ones(T)
    flow[40:] = 5e3
    (c,) = check_record(rec(0, flow=flow, probe=0.5, const=1.0), Thresholds())
    assert (c.kind, c.metric, c.value, c.threshold) == ("exploding", "temporal_flow", 5e3, 1e3)
    assert "40 steps back" in c.detail
    flow[40:] = 999.0
    assert check_record(rec(0, flow=flow, probe=0.5, const=1.0), Thresholds()) == []


def test_exploding_by_weight_gradient_far_above_its_history():
    norms = [0.1, 0.12, 0.1, 20.0]  # 20 / median(0.1, 0.12, 0.1) = 200x
    records = [rec(e, flow=np.ones(T), probe=0.5, const=1.0, grad_norm=g) for e, g in enumerate(norms)]
    alerts, _ = run(records)
    assert kinds(alerts) == [(3, "rnn", "exploding")]
    assert alerts[0]["metric"] == "grad_norm" and alerts[0]["threshold"] == pytest.approx(100 * np.median(norms[:3]))
    records[3].scalars["rnn"]["grad_norm"] = 5.0  # 50x: not "far above"
    assert run(records)[0] == []


def test_divergence_is_a_run_exploding_alert_and_blocks_vanishing_and_saturation():
    records = [rec(e, mid=0.0, probe=500.0, const=0.6, loss=500.0, saturated_ratio=1.0, grad_norm=1.0)
               for e in range(4)]
    alerts, findings = run(records)
    assert kinds(alerts) == [(1, RUN, "exploding")]
    assert alerts[0]["metric"] == "loss_ratio" and alerts[0]["value"] == pytest.approx(500 / 0.6)
    assert "diverging" in alerts[0]["message"]
    # then back at the constant level: a blown-up run is never called vanishing or saturated
    later = [rec(e, mid=0.0, probe=0.6, const=0.6, loss=0.6, saturated_ratio=1.0, grad_norm=1e-9)
             for e in range(4, 8)]
    alerts, _ = run(records + later)
    assert {a["kind"] for a in alerts} == {"exploding"}


def test_large_states_alone_are_a_finding():
    r = rec(0, flow=np.ones(T), probe=0.5, const=1.0, exploding_ratio=0.9)
    (c,) = check_record(r, Thresholds())
    assert c.kind == "exploding_units" and c.finding


# ------------------------------------------------------------------ non-finite
def test_one_nonfinite_alert_per_layer_naming_every_place_and_count():
    r = rec(0, flow=np.ones(T), probe=0.5, const=1.0, dead_ratio=0.9)
    r.set_scalar("other", "dead_ratio", 0.9)
    for nf in [NonFinite("rnn", "recurrent_kernel", "f", 3), NonFinite("rnn", "recurrent_kernel", "f", 2),
               NonFinite("rnn", "state h", None, 7), NonFinite("rnn", "gate", "i", 4),
               NonFinite("rnn", "gradient", None, 11)]:
        r.nonfinite.append(nf)
    alerts, _ = run([r])
    assert kinds(alerts) == [(0, "other", "dead"), (0, "rnn", "nonfinite")]  # no dead alert for the NaN layer
    a = next(a for a in alerts if a["kind"] == "nonfinite")
    assert a["count"] == 3 + 2 + 7 + 4 + 11
    places = {(p["where"], p["gate"]): p["count"] for p in a["places"]}
    assert places == {("recurrent_kernel", "f"): 5, ("state h", None): 7, ("gate", "i"): 4, ("gradient", None): 11}
    for text in ("27 NaN/Inf", "recurrent_kernel/f 5", "state h 7", "gate i 4", "gradient 11", "4 place(s)"):
        assert text in a["message"]


def test_nonfinite_norm_or_flow_is_named_and_skips_the_gradient_rules():
    (c,) = check_record(rec(0, mid=1e-9, probe=1.0, const=1.0, grad_norm=float("nan")), Thresholds())
    assert c.kind == "nonfinite" and "weight gradient norm" in c.detail
    flow = flow_with_mid(1e-9)
    flow[-1] = np.inf
    (c,) = check_record(rec(0, flow=flow, probe=1.0, const=1.0), Thresholds())
    assert c.kind == "nonfinite" and "gradient through time 1" in c.detail


def test_nonfinite_loss_alone_is_a_run_alert_and_silences_the_rest():
    r = rec(0, mid=1e-9, probe=float("nan"), const=1.0, loss=float("nan"), dead_ratio=0.9)
    (c,) = check_record(r, Thresholds())
    assert (c.layer, c.kind) == (RUN, "nonfinite") and "training loss and the probe loss" in c.detail


def test_a_run_that_was_nonfinite_is_not_called_vanishing_later():
    first = rec(0, mid=1e-9, probe=1.0, const=1.0, loss=1.0)
    first.nonfinite.append(NonFinite("rnn", "kernel", "h", 1))
    alerts, _ = run([first] + vanishing_run(4)[1:])
    assert kinds(alerts) == [(0, "rnn", "nonfinite")]


def test_nonfinite_alert_is_raised_once_while_it_lasts():
    records = []
    for e in range(3):
        r = rec(e, flow=np.ones(T))
        r.nonfinite.append(NonFinite("rnn", "kernel", "h", 2 + e))
        records.append(r)
    assert kinds(run(records)[0]) == [(0, "rnn", "nonfinite")]


# ------------------------------------------------------------------ dead, saturated
def test_dead_alerts_at_once_and_explains_the_flat_flow():
    records = [rec(e, mid=0.0, probe=1.0, const=1.0, loss=1.0, dead_ratio=1.0, grad_norm=0.0) for e in range(3)]
    alerts, _ = run(records)
    assert kinds(alerts) == [(0, "rnn", "dead")]  # not also vanishing
    assert check_record(rec(0, dead_ratio=0.5), Thresholds()) == []


def test_saturation_while_learning_is_a_finding():
    records = [rec(e, mid=1e-10, probe=0.8 - 0.1 * e, const=1.0, loss=3 - 0.3 * e, saturated_ratio=0.9,
                   grad_norm=0.05) for e in range(3)]
    alerts, findings = run(records)
    assert alerts == [] and {f["kind"] for f in findings} == {"saturation", "short_memory"}


def test_saturation_with_starved_layer_alerts_at_once():
    # grad_norm 1e-5 < 1e-3 x probe loss 0.69
    r = rec(0, mid=0.0, probe=0.69, const=0.69, loss=0.69, saturated_ratio=1.0, grad_norm=1e-5)
    alerts, _ = run([r])
    assert kinds(alerts) == [(0, "rnn", "saturated")] and "starves" in alerts[0]["message"]
    r = rec(0, mid=0.0, probe=0.69, const=0.69, loss=0.69, saturated_ratio=1.0, grad_norm=1e-3)
    assert run([r])[0] == []


def test_saturation_with_unlearned_loss_alerts_instead_of_vanishing():
    records = [rec(e, mid=1e-8, probe=0.94, const=1.0, loss=0.69, saturated_ratio=0.9, grad_norm=2.0)
               for e in range(3)]
    alerts, _ = run(records)
    assert kinds(alerts) == [(1, "rnn", "saturated")]


# ------------------------------------------------------------------ records and bookkeeping
def test_missing_numbers_do_not_trigger():
    r = EpochRecord(0)
    r.set_scalar("lstm", "kernel/i/l2", 1.0)  # weights only, no probe data
    assert check_record(r, Thresholds()) == []


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


def test_learning_state_reports_its_evidence():
    th = Thresholds()
    h = History()
    first = rec(0, probe=1.0, const=1.0, loss=0.5)
    state = learning_state(first, h, th)
    assert not state.unlearned and not state.diverged and state.ratio == 1.0
    h.add(first, [])
    state = learning_state(rec(1, probe=1.02, const=1.0, loss=0.4), h, th)
    assert state.unlearned and "1.00x or more" in state.detail
    assert math.isclose(learning_state(rec(1, probe=30.0, const=2.0), History([20.0], [1.0]), th).ratio, 15.0)
    assert learning_state(rec(1, probe=30.0, const=2.0), History([20.0], [1.0]), th).diverged
