"""Is the run learning: the probe loss against a constant prediction, Keras's loss trend from
the third logged epoch, patience (docs/alerts.md), on planted records."""

import math

from rnn_monitor.alerts import AlertRules, History, learning_state
from rnn_monitor.config import Thresholds

from planted import kinds, rec, run, vanishing_run


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
