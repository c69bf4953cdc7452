"""Alert rules: pure Python/numpy over an `EpochRecord` and the history of earlier logged epochs.

No TensorFlow, no I/O. `check_record` says which conditions hold in one epoch; `AlertRules` adds the
cross-epoch part (`patience` for vanishing) and turns conditions into alert records.

An alert record is a plain dict::

    {"epoch": 3, "layer": "simple_rnn", "kind": "vanishing", "message": "...",
     "value": 4.0, "threshold": 10.0, "metric": "grad_horizon"}

`kind` is one of `KINDS`; `metric` names the number compared (a scalar name, or
``temporal_flow``, or for non-finite alerts ``<where>/<gate>``). Non-finite alerts also carry
``where``, ``gate`` and ``count``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import numpy as np

from rnn_monitor.alerts.kinds import DEAD, EXPLODING, HELP, NONFINITE, SATURATED, TITLES, VANISHING
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord


@dataclasses.dataclass(frozen=True)
class Condition:
    """One rule that holds for one layer in one epoch (before `patience` is applied)."""

    layer: str
    kind: str
    metric: str
    value: float
    threshold: float
    detail: str  # what was seen, one clause, no advice
    extra: tuple = ()  # extra (key, value) pairs for the alert record

    @property
    def key(self) -> tuple:
        """Identity of the alert across epochs (start / clear)."""
        if self.kind == NONFINITE:
            return (self.layer, self.kind, self.metric)
        return (self.layer, self.kind)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _timesteps(arrays: dict, flow: Optional[np.ndarray]) -> Optional[float]:
    """Valid T of the probe for the layer: arrays["timesteps"], else the length of F."""
    if "timesteps" in arrays:
        t = np.asarray(arrays["timesteps"], dtype=np.float64).ravel()
        t = t[np.isfinite(t)]
        if t.size:
            return float(t.max())
    if flow is not None and flow.size:
        return float(flow.size)
    return None


def check_record(record: EpochRecord, thresholds: Thresholds) -> list[Condition]:
    """Conditions holding in this epoch, per layer; a layer without a number is not judged on it."""
    th = thresholds
    out: list[Condition] = []
    layers = list(dict.fromkeys(list(record.scalars) + list(record.arrays)))

    # Non-finite values the weight / probe parts found (weights, states, gradients).
    counts: dict[tuple, int] = {}
    for nf in record.nonfinite:
        key = (nf.layer, nf.where, nf.gate)
        counts[key] = counts.get(key, 0) + int(nf.count)
    for (layer, where, gate), count in counts.items():
        where_gate = f"{where}/{gate}" if gate else str(where)
        if gate and where == "gate":
            what = f"activations of gate {gate}"
        elif gate:
            what = f"{where} of gate {gate}"
        else:
            what = str(where)
        out.append(
            Condition(
                layer, NONFINITE, where_gate, float(count), 0.0,
                f"{count} NaN/Inf value(s) in the {what}",
                (("where", where), ("gate", gate), ("count", int(count))),
            )
        )
    nonfinite_layers = {layer for layer, _, _ in counts}

    for layer in layers:
        scalars = record.scalars.get(layer, {})
        arrays = record.arrays.get(layer, {})
        flow = arrays.get("temporal_flow")
        flow = None if flow is None else np.asarray(flow, dtype=np.float64).ravel()
        grad_norm = scalars.get("grad_norm")

        # A non-finite gradient norm or flow is a non-finite alert (unless already named).
        if layer not in nonfinite_layers:
            if grad_norm is not None and not _finite(grad_norm):
                out.append(
                    Condition(layer, NONFINITE, "gradient/grad_norm", float("nan"), 0.0,
                              f"the weight-gradient norm is {grad_norm}",
                              (("where", "gradient"), ("gate", None), ("count", 1)))
                )
            elif flow is not None and flow.size and not np.all(np.isfinite(flow)):
                n = int(np.sum(~np.isfinite(flow)))
                out.append(
                    Condition(layer, NONFINITE, "gradient/temporal_flow", float(n), 0.0,
                              f"{n} NaN/Inf value(s) in the gradient through time",
                              (("where", "gradient"), ("gate", None), ("count", n)))
                )

        # Exploding: flow growing through time, or a huge weight gradient.
        exploding = None
        if flow is not None and flow.size:
            finite = flow[np.isfinite(flow)]
            if finite.size and finite.max() > th.exploding_flow:
                k = int(np.argmax(np.where(np.isfinite(flow), flow, -np.inf)))
                exploding = Condition(
                    layer, EXPLODING, "temporal_flow", float(finite.max()), th.exploding_flow,
                    f"the gradient grows {finite.max():.3g}x going {k} steps back through time "
                    f"(limit {th.exploding_flow:g})",
                )
        if exploding is None and grad_norm is not None and _finite(grad_norm) \
                and grad_norm > th.exploding_grad_norm:
            exploding = Condition(
                layer, EXPLODING, "grad_norm", float(grad_norm), th.exploding_grad_norm,
                f"the weight-gradient norm is {grad_norm:.3g} (limit {th.exploding_grad_norm:g})",
            )
        if exploding is not None:
            out.append(exploding)

        # Vanishing (patience is applied by AlertRules).
        horizon = scalars.get("grad_horizon")
        T = _timesteps(arrays, flow)
        vanishing = None
        if horizon is not None and _finite(horizon) and T is not None:
            need = max(th.horizon_min, th.horizon_fraction * T)
            if horizon < need:
                vanishing = Condition(
                    layer, VANISHING, "grad_horizon", float(horizon), float(need),
                    f"the gradient reaches only {horizon:g} of {T:g} timesteps back "
                    f"(needs {need:g})",
                )
        if vanishing is None and grad_norm is not None and _finite(grad_norm) \
                and grad_norm < th.vanishing_grad_norm:
            vanishing = Condition(
                layer, VANISHING, "grad_norm", float(grad_norm), th.vanishing_grad_norm,
                f"the weight-gradient norm is {grad_norm:.2e} (below {th.vanishing_grad_norm:g})",
            )
        if vanishing is not None:
            out.append(vanishing)

        dead = scalars.get("dead_ratio")
        if dead is not None and _finite(dead) and dead > th.dead_alert_ratio:
            out.append(
                Condition(layer, DEAD, "dead_ratio", float(dead), th.dead_alert_ratio,
                          f"{dead:.0%} of units are dead (output std < {th.dead_std:g}; "
                          f"alert above {th.dead_alert_ratio:.0%})")
            )
        sat = scalars.get("saturated_ratio")
        if sat is not None and _finite(sat) and sat > th.saturation_alert_ratio:
            out.append(
                Condition(layer, SATURATED, "saturated_ratio", float(sat), th.saturation_alert_ratio,
                          f"{sat:.0%} of units are saturated (alert above "
                          f"{th.saturation_alert_ratio:.0%})")
            )
    return out


def make_alert(epoch: int, cond: Condition, streak: int = 1) -> dict:
    """The alert record for a condition (JSON-ready: plain floats, None for non-finite)."""
    detail = cond.detail
    if cond.kind == VANISHING:
        if streak > 1:
            detail += f" for {streak} logged epochs"
        if cond.metric == "grad_horizon":
            detail += ", so it cannot learn longer dependencies"
    message = f"{TITLES[cond.kind]} in {cond.layer}: {detail}; {HELP[cond.kind]}"
    alert = {
        "epoch": int(epoch),
        "layer": cond.layer,
        "kind": cond.kind,
        "message": message,
        "value": float(cond.value) if _finite(cond.value) else None,
        "threshold": float(cond.threshold),
        "metric": cond.metric,
    }
    alert.update(dict(cond.extra))
    return alert


class AlertRules:
    """The rules with their history: call `update(record)` once per logged epoch, in order.

    Returns ``(raised, active, cleared)``: alerts that start at this epoch, every alert active at
    this epoch (including the raised ones), and the alerts of the previous epoch that no longer
    hold. Pure: no logging, no I/O.
    """

    def __init__(self, thresholds: Optional[Thresholds] = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.patience = max(1, int(self.thresholds.patience))
        self._streaks: dict[tuple, int] = {}
        self.active: dict[tuple, dict] = {}  # key -> alert record (as raised; "since" epoch)

    def update(self, record: EpochRecord) -> tuple[list[dict], list[dict], list[dict]]:
        epoch = int(record.epoch)
        conditions = check_record(record, self.thresholds)
        streaks: dict[tuple, int] = {}
        now: dict[tuple, dict] = {}
        for cond in conditions:
            if cond.key in now:
                continue
            streak = self._streaks.get(cond.key, 0) + 1
            streaks[cond.key] = streak
            if cond.kind == VANISHING and streak < self.patience:
                continue
            now[cond.key] = make_alert(epoch, cond, streak)
        self._streaks = streaks

        raised, active = [], []
        for key, alert in now.items():
            if key in self.active:
                alert["since"] = self.active[key]["since"]
            else:
                alert["since"] = epoch
                raised.append(alert)
            active.append(alert)
        cleared = [alert for key, alert in self.active.items() if key not in now]
        self.active = now
        return raised, active, cleared
