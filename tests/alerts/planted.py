"""Planted EpochRecords for the alert-rule tests: a layer's flow with a chosen F[T/2], its
scalars and the run's losses, and a helper that replays records through `AlertRules`."""

import numpy as np

from rnn_monitor.alerts import AlertRules
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord

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


def vanishing_run(n=4, mid=1e-6, ratio=1.0, losses=None):
    losses = losses or [0.3] + [0.17] * (n - 1)
    return [rec(e, mid=mid, probe=ratio * 0.17, const=0.17, loss=losses[e], grad_norm=0.5) for e in range(n)]
