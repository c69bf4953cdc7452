"""The alert rules on planted EpochRecords (pure numpy, no TF): each rule fires on its planted
signature, at the epoch its definition says, and stays quiet on the look-alikes that are not
faults (docs/alerts.md)."""

import numpy as np
import pytest

from rnn_monitor.alerts import RUN, check_record
from rnn_monitor.alerts.learning import Learning
from rnn_monitor.alerts.rules import (
    LayerEvidence, dead, diverged, exploding, exploding_units, saturated, stalled, starved, vanishing,
)
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord, NonFinite

from planted import T, flow_with_mid, kinds, rec, run, vanishing_run


# ------------------------------------------------------------------ vanishing
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




# ------------------------------------------------------------------ one rule a function
LEARNING = Learning(unlearned=False, diverged=False, ratio=0.5, detail="it learns")
UNLEARNED = Learning(unlearned=True, diverged=False, ratio=1.0, detail="it does not learn")


def evidence(flow=None, T=None, earlier=(), probe_loss=1.0, **scalars):
    flow = None if flow is None else np.asarray(flow, dtype=np.float64)
    return LayerEvidence("rnn", scalars, flow, T, list(earlier), probe_loss, False)


def test_each_rule_reads_its_threshold_from_thresholds():
    """Every rule fires just above its threshold and not at it, for default and moved values."""
    for th in (Thresholds(), Thresholds(exploding_flow=50.0, exploding_grad_growth=4.0, exploding_units_ratio=0.2,
                                        dead_alert_ratio=0.3, saturation_alert_ratio=0.7, vanishing_flow=1e-2)):
        up = 1.0001
        assert exploding(evidence(flow=[1.0, th.exploding_flow]), th) is None
        assert exploding(evidence(flow=[1.0, th.exploding_flow * up]), th).metric == "temporal_flow"
        growth = th.exploding_grad_growth * 2.0  # the median of [1, 3] is 2
        assert exploding(evidence(earlier=[1.0, 3.0], grad_norm=growth), th) is None
        assert exploding(evidence(earlier=[1.0, 3.0], grad_norm=growth * up), th).threshold == growth
        assert exploding_units(evidence(exploding_ratio=th.exploding_units_ratio), th) is None
        assert exploding_units(evidence(exploding_ratio=th.exploding_units_ratio * up), th).finding
        assert dead(evidence(dead_ratio=th.dead_alert_ratio), th) is None
        assert not dead(evidence(dead_ratio=th.dead_alert_ratio * up), th).finding
        assert saturated(evidence(saturated_ratio=th.saturation_alert_ratio), UNLEARNED, th) is None
        assert saturated(evidence(saturated_ratio=th.saturation_alert_ratio * up), UNLEARNED, th).kind == "saturated"
        mid = th.vanishing_flow
        assert vanishing(evidence(flow=flow_with_mid(mid), T=T), UNLEARNED, th) is None
        assert vanishing(evidence(flow=flow_with_mid(mid / up), T=T), UNLEARNED, th).kind == "vanishing"
        assert vanishing(evidence(flow=flow_with_mid(mid / up), T=T), LEARNING, th).kind == "short_memory"


def test_saturation_is_an_alert_only_when_starved_or_not_learning():
    th = Thresholds()
    starving = evidence(saturated_ratio=0.9, grad_norm=0.5 * th.starvation_grad * 2.0, probe_loss=2.0)
    assert starved(starving, th) and saturated(starving, LEARNING, th).kind == "saturated"
    fed = evidence(saturated_ratio=0.9, grad_norm=1.0, probe_loss=2.0)
    assert not starved(fed, th)
    assert saturated(fed, LEARNING, th).kind == "saturation" and saturated(fed, LEARNING, th).finding
    assert saturated(fed, UNLEARNED, th).kind == "saturated" and "does not learn" in saturated(fed, UNLEARNED, th).detail


def test_vanishing_reads_the_flow_at_half_the_valid_steps():
    """F[T/2] of the layer's valid length, not of the flow's length: with T = 40, F[20]."""
    th = Thresholds()
    flow = np.ones(100)
    flow[20:] = 1e-6
    cond = vanishing(evidence(flow=flow, T=40.0), UNLEARNED, th)
    assert cond.kind == "vanishing" and cond.value == pytest.approx(1e-6) and "20 of 40" in cond.detail
    assert vanishing(evidence(flow=flow, T=None), UNLEARNED, th) is None


def test_run_rules_diverged_and_stalled():
    th = Thresholds()
    assert diverged(LEARNING, th) is None and stalled(LEARNING, th) is None
    cond = diverged(Learning(False, True, 40.0, "far above"), th)
    assert cond.layer == RUN and cond.kind == "exploding" and cond.value == 40.0 and cond.threshold == th.diverged_ratio
    cond = stalled(UNLEARNED, th)
    assert cond.finding and cond.kind == "stalled" and cond.threshold == th.learned_ratio
