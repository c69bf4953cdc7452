"""Alert rules: pure Python/numpy over an `EpochRecord` and what earlier logged epochs showed.

No TensorFlow, no I/O. `check_record` says which alerts and findings hold in one epoch, given
the `History` of the earlier ones; `AlertRules` keeps that history and turns the conditions into
alert and finding records with start / clear bookkeeping (docs/alerts.md).

An alert says "this is hurting training now; act"; a finding is a number worth knowing that the
evidence does not make a fault. The rules, per monitored layer (defaults in
`rnn_monitor.config.Thresholds`, chosen on benchmarks/alert_benchmark.py, figures in
docs/alerts.md):

* **nonfinite**: NaN/Inf anywhere in the layer's weights, states, gates or gradients, or in the
  loss: one alert per layer naming every place and count. The other rules skip a layer whose
  numbers are not finite, and every layer while the loss is not finite.
* **exploding**: the gradient grows going back through time (any ``F[k] > exploding_flow``),
  the weight-gradient norm jumps above ``exploding_grad_growth`` x the median of its earlier
  logged epochs, or (for the whole run, layer ``"model"``) the probe loss stays above
  ``diverged_ratio`` x the constant-prediction loss for ``patience`` logged epochs.
* **dead**: more than ``dead_alert_ratio`` of the units have an output std below ``dead_std``.
* **saturated**: more than ``saturation_alert_ratio`` of the units saturated *and* either the
  layer starves of gradient (``grad_norm < starvation_grad x probe loss``) or the run is not
  learning (below). Saturation alone is the finding ``saturation``.
* **vanishing**: the gradient does not reach half the sequence back (``F[T/2] <
  vanishing_flow``) *and* the run is not learning: the probe loss has stayed at or above
  ``learned_ratio`` x the loss of a constant prediction for ``patience`` logged epochs and
  (from the third logged epoch, the first one's Keras loss holding the warm-up) Keras's
  training loss improved less than ``stall_improvement`` since the last logged epoch. Without a
  constant-prediction loss (outputs the probe cannot build one for), Keras's loss alone decides
  from the third logged epoch: stalled, and not below ``learned_ratio`` x its second value.
  A short reach while the run learns is the finding ``short_memory`` (also when
  ``grad_horizon < max(horizon_min, horizon_fraction * T)``).

Root causes first: a layer with a dead or saturated alert is not also called vanishing; a layer
(or run) that was ever non-finite or exploding is never called vanishing or saturated afterwards.

An alert or finding record is a plain dict::

    {"epoch": 3, "layer": "simple_rnn", "kind": "vanishing", "message": "...",
     "value": 3.1e-07, "threshold": 1e-4, "metric": "flow_mid"}

Non-finite alerts also carry ``count`` (total) and ``places`` (``[{"where", "gate", "count"}]``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import numpy as np

from rnn_monitor.alerts.kinds import (
    DEAD, EXPLODING, EXPLODING_UNITS, FINDING_NOTE, HELP, NONFINITE, RUN, SATURATED, SATURATION,
    SHORT_MEMORY, STALLED, TITLES, VANISHING,
)
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord
from rnn_monitor.stats.gradients import flow_at_half


@dataclasses.dataclass(frozen=True)
class Condition:
    """One alert (or finding) that holds for one layer in one epoch."""

    layer: str
    kind: str
    metric: str
    value: float
    threshold: float
    detail: str  # what was seen, no advice
    extra: tuple = ()  # extra (key, value) pairs for the record
    finding: bool = False

    @property
    def key(self) -> tuple:
        """Identity across epochs (start / clear)."""
        return (self.layer, self.kind)


@dataclasses.dataclass
class History:
    """What the rules keep of the earlier logged epochs, oldest first."""

    loss_ratios: list = dataclasses.field(default_factory=list)  # probe / constant loss (or None)
    losses: list = dataclasses.field(default_factory=list)  # Keras's training loss (or None)
    grad_norms: dict = dataclasses.field(default_factory=dict)  # layer -> finite grad norms
    blown_up: set = dataclasses.field(default_factory=set)  # layers (or RUN) once non-finite / exploding

    def add(self, record: EpochRecord, conditions: list) -> None:
        self.loss_ratios.append(loss_ratio(record))
        self.losses.append(record.loss)
        for layer, scalars in record.scalars.items():
            value = scalars.get("grad_norm")
            if _finite(value):
                self.grad_norms.setdefault(layer, []).append(float(value))
        for cond in conditions:
            if not cond.finding and cond.kind in (NONFINITE, EXPLODING):
                self.blown_up.add(cond.layer)


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def loss_ratio(record: EpochRecord) -> Optional[float]:
    """Probe loss / constant-prediction loss (None when either is missing, not finite or the
    constant loss is not positive)."""
    p, c = record.probe_loss, record.constant_loss
    if not (_finite(p) and _finite(c)) or c <= 0 or p < 0:
        return None
    return float(p) / float(c)


def _improvement(before: Optional[float], after: Optional[float]) -> Optional[float]:
    """Relative decrease of the loss from `before` to `after` (None without two finite values)."""
    if not (_finite(before) and _finite(after)) or before == 0:
        return None
    return (float(before) - float(after)) / abs(float(before))


@dataclasses.dataclass(frozen=True)
class Learning:
    """Is the run learning at this epoch? From the probe and Keras losses (run-wide)."""

    unlearned: bool  # no better than a constant prediction for `patience` logged epochs, stalled
    diverged: bool  # far worse than a constant prediction for `patience` logged epochs
    ratio: Optional[float]  # probe loss / constant-prediction loss at this epoch
    detail: str  # the evidence, one clause


def learning_state(record: EpochRecord, history: History, th: Thresholds) -> Learning:
    """The loss side of the rules (see the module docstring)."""
    patience = max(1, int(th.patience))
    ratio = loss_ratio(record)
    ratios = history.loss_ratios + [ratio]
    losses = history.losses + [record.loss]
    recent = ratios[-patience:]
    full = len(recent) == patience and all(r is not None for r in recent)
    diverged = full and all(r > th.diverged_ratio for r in recent)
    if diverged:
        return Learning(False, True, ratio, f"the probe loss has been {min(recent):.3g}x or more the loss of a "
                        f"constant prediction for {patience} logged epoch(s)")
    if ratio is not None:
        if not (full and all(r >= th.learned_ratio for r in recent)):
            return Learning(False, False, ratio, f"the probe loss is {ratio:.2f}x the loss of a constant prediction")
        detail = (f"the probe loss has stayed at {min(recent):.2f}x or more the loss of a constant "
                  f"prediction for {patience} logged epoch(s)")
        gain = _improvement(ratios[-2], ratio) if len(ratios) >= 2 else None
        if gain is not None and gain >= th.stall_improvement and ratio < 1.0:
            return Learning(False, False, ratio, detail + f", but it improved {gain:.1%} since the last logged epoch")
        if len(losses) >= 3:  # the first logged epoch's Keras loss includes the warm-up
            gain = _improvement(losses[-2], losses[-1])
            if gain is not None and gain >= th.stall_improvement:
                return Learning(False, False, ratio, detail + f", but the training loss improved {gain:.1%}")
            if gain is not None:
                detail += f" and the training loss improved {gain:.1%} since the last logged epoch"
        return Learning(True, False, ratio, detail)
    # No constant-prediction loss: Keras's loss alone, from the third logged epoch.
    later = losses[1:]
    window = later[-max(patience, 2):]
    if len(later) < max(patience, 2) or not all(_finite(v) for v in window):
        return Learning(False, False, None, "the loss trend is not known yet")
    gains = [_improvement(a, b) for a, b in zip(window, window[1:])]
    stalled = all(g is not None and g < th.stall_improvement for g in gains)
    flat = window[-1] >= th.learned_ratio * later[0] if later[0] > 0 else False
    if stalled and flat:
        return Learning(True, False, None, f"the training loss improved less than {th.stall_improvement:.0%} per "
                        f"logged epoch for {len(gains)} logged epoch(s) and is {window[-1] / later[0]:.2f}x its "
                        "value at the second logged epoch")
    return Learning(False, False, None, "the training loss is still improving")


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


def _nonfinite_places(record: EpochRecord) -> dict[str, list[tuple[str, Optional[str], int]]]:
    """layer -> [(where, gate, count)] summed over the record's non-finite entries."""
    counts: dict[tuple, int] = {}
    for nf in record.nonfinite:
        key = (nf.layer, str(nf.where), nf.gate)
        counts[key] = counts.get(key, 0) + int(nf.count)
    places: dict[str, list] = {}
    for (layer, where, gate), count in counts.items():
        if count > 0:
            places.setdefault(layer, []).append((where, gate, count))
    return places


def _place_text(where: str, gate: Optional[str]) -> str:
    if gate and where == "gate":
        return f"gate {gate}"
    return f"{where}/{gate}" if gate else where


def _nonfinite_condition(layer: str, places: list) -> Condition:
    total = sum(c for _, _, c in places)
    listed = ", ".join(f"{_place_text(w, g)} {c}" for w, g, c in places)
    return Condition(
        layer, NONFINITE, "count", float(total), 0.0,
        f"{total} NaN/Inf value(s) in {len(places)} place(s): {listed}",
        (("count", int(total)), ("places", [{"where": w, "gate": g, "count": int(c)} for w, g, c in places])),
    )


def _layer_conditions(layer: str, scalars: dict, arrays: dict, learning: Learning, record: EpochRecord,
                      history: History, th: Thresholds) -> list[Condition]:
    """Alerts and findings of one layer whose numbers are finite."""
    out: list[Condition] = []
    flow = arrays.get("temporal_flow")
    flow = None if flow is None else np.asarray(flow, dtype=np.float64).ravel()
    T = _timesteps(arrays, flow)
    grad_norm = scalars.get("grad_norm")
    blown = layer in history.blown_up or RUN in history.blown_up or learning.diverged

    # Exploding: growth back through time, or a weight gradient far above its own history.
    exploding = None
    if flow is not None and flow.size and np.isfinite(flow).any() and np.nanmax(flow) > th.exploding_flow:
        k = int(np.nanargmax(flow))
        exploding = Condition(
            layer, EXPLODING, "temporal_flow", float(np.nanmax(flow)), th.exploding_flow,
            f"the gradient grows {np.nanmax(flow):.3g}x going {k} steps back through time "
            f"(limit {th.exploding_flow:g})")
    earlier = history.grad_norms.get(layer, [])
    if exploding is None and _finite(grad_norm) and earlier:
        median = float(np.median(earlier))
        if median > 0 and grad_norm > th.exploding_grad_growth * median:
            exploding = Condition(
                layer, EXPLODING, "grad_norm", float(grad_norm), th.exploding_grad_growth * median,
                f"the weight-gradient norm jumped to {grad_norm:.3g}, {grad_norm / median:.3g}x the median "
                f"of its earlier logged epochs (limit {th.exploding_grad_growth:g}x)")
    if exploding is not None:
        out.append(exploding)
        blown = True
    expl_units = scalars.get("exploding_ratio")
    if exploding is None and not learning.diverged and _finite(expl_units) and expl_units > 0.5:
        out.append(Condition(layer, EXPLODING_UNITS, "exploding_ratio", float(expl_units), 0.5,
                             f"{expl_units:.0%} of the units reach |state| > {th.exploding_state:g}", finding=True))

    dead = scalars.get("dead_ratio")
    is_dead = _finite(dead) and dead > th.dead_alert_ratio
    if is_dead:
        out.append(Condition(layer, DEAD, "dead_ratio", float(dead), th.dead_alert_ratio,
                             f"{dead:.0%} of units are dead (output std < {th.dead_std:g}; alert above "
                             f"{th.dead_alert_ratio:.0%})"))

    # Saturated: an alert only with starvation or no learning.
    saturated_alert = False
    sat = scalars.get("saturated_ratio")
    if _finite(sat) and sat > th.saturation_alert_ratio and not blown and not is_dead:
        probe_loss = record.probe_loss
        starved = _finite(grad_norm) and _finite(probe_loss) and probe_loss > 0 \
            and grad_norm < th.starvation_grad * probe_loss
        if starved:
            saturated_alert = True
            out.append(Condition(layer, SATURATED, "saturated_ratio", float(sat), th.saturation_alert_ratio,
                                 f"{sat:.0%} of units are saturated and the layer starves of gradient "
                                 f"(weight-gradient norm {grad_norm:.2e} < {th.starvation_grad:g} x the probe "
                                 f"loss {probe_loss:.3g})"))
        elif learning.unlearned:
            saturated_alert = True
            out.append(Condition(layer, SATURATED, "saturated_ratio", float(sat), th.saturation_alert_ratio,
                                 f"{sat:.0%} of units are saturated while {learning.detail}"))
        else:
            out.append(Condition(layer, SATURATION, "saturated_ratio", float(sat), th.saturation_alert_ratio,
                                 f"{sat:.0%} of units are saturated while {learning.detail}", finding=True))

    # Vanishing: the signal does not reach back and the run is not learning.
    mid = flow_at_half(flow, T) if flow is not None and T is not None else float("nan")
    horizon = scalars.get("grad_horizon")
    if _finite(mid) and T is not None and not blown and not is_dead and not saturated_alert:
        reach = f"only {mid:.1e} of the gradient at the last step reaches {int(T) // 2} of {T:g} steps back"
        reach += f" (F[{int(T) // 2}]" + (f"; horizon {horizon:g} steps)" if _finite(horizon) else ")")
        need = max(th.horizon_min, th.horizon_fraction * T)
        if mid < th.vanishing_flow and learning.unlearned:
            out.append(Condition(layer, VANISHING, "flow_mid", mid, th.vanishing_flow,
                                 f"{reach}, below {th.vanishing_flow:g}, and {learning.detail}"))
        elif mid < th.vanishing_flow or (_finite(horizon) and horizon < need):
            out.append(Condition(layer, SHORT_MEMORY, "flow_mid", mid, th.vanishing_flow,
                                 f"{reach} while {learning.detail}", finding=True))
    return out


def check_record(record: EpochRecord, thresholds: Thresholds, history: Optional[History] = None) -> list[Condition]:
    """Alerts and findings holding at this epoch, given the earlier logged epochs' `history`; a
    layer without a number is not judged on it."""
    th = thresholds
    history = history or History()
    out: list[Condition] = []
    places = _nonfinite_places(record)
    layers = list(dict.fromkeys(list(record.scalars) + list(record.arrays) + list(places)))

    # Non-finite numbers the probe could not attribute to a count (a NaN norm or flow).
    for layer in layers:
        scalars = record.scalars.get(layer, {})
        flow = record.arrays.get(layer, {}).get("temporal_flow")
        if "grad_norm" in scalars and not _finite(scalars["grad_norm"]):
            places.setdefault(layer, []).append(("weight gradient norm", None, 1))
        elif flow is not None and np.size(flow) and not np.all(np.isfinite(np.asarray(flow, dtype=np.float64))):
            if not any(w == "gradient" for w, _, _ in places.get(layer, [])):
                n = int(np.sum(~np.isfinite(np.asarray(flow, dtype=np.float64))))
                places.setdefault(layer, []).append(("gradient through time", None, n))
    for layer in layers:
        if places.get(layer):
            out.append(_nonfinite_condition(layer, places[layer]))
    loss_ok = record.loss_is_finite()
    if not loss_ok and not places:
        bad = [name for name, v in (("training loss", record.loss), ("probe loss", record.probe_loss))
               if v is not None and not _finite(v)]
        out.append(Condition(RUN, NONFINITE, "loss", float("nan"), 0.0, f"the {' and the '.join(bad)} is NaN/Inf",
                             (("count", len(bad)), ("places", [{"where": b, "gate": None, "count": 1} for b in bad]))))
    if not loss_ok:
        return out  # nothing else means anything once the loss is not finite

    learning = learning_state(record, history, th)
    alerted = False
    for layer in layers:
        if places.get(layer):
            continue
        conds = _layer_conditions(layer, record.scalars.get(layer, {}), record.arrays.get(layer, {}),
                                  learning, record, history, th)
        alerted = alerted or any(not c.finding for c in conds)
        out.extend(conds)
    if learning.diverged:
        out.append(Condition(RUN, EXPLODING, "loss_ratio", float(learning.ratio), th.diverged_ratio,
                             f"{learning.detail}: training is diverging (limit {th.diverged_ratio:g}x)"))
    elif learning.unlearned and not alerted and not places:
        out.append(Condition(RUN, STALLED, "loss_ratio", float(learning.ratio) if learning.ratio is not None
                             else float("nan"), th.learned_ratio, learning.detail, finding=True))
    return out


def make_alert(epoch: int, cond: Condition) -> dict:
    """The alert or finding record for a condition (JSON-ready: plain floats, None for non-finite)."""
    if cond.finding:
        message = f"{TITLES[cond.kind]} in {cond.layer} (finding): {cond.detail}; {FINDING_NOTE[cond.kind]}"
    else:
        message = f"{TITLES[cond.kind]} in {cond.layer}: {cond.detail}; {HELP[cond.kind]}"
    record = {
        "epoch": int(epoch),
        "layer": cond.layer,
        "kind": cond.kind,
        "message": message,
        "value": float(cond.value) if _finite(cond.value) else None,
        "threshold": float(cond.threshold),
        "metric": cond.metric,
    }
    record.update(dict(cond.extra))
    return record


class _Tracker:
    """Start / active / clear bookkeeping of one family of records (alerts, or findings)."""

    def __init__(self) -> None:
        self.active: dict[tuple, dict] = {}

    def update(self, epoch: int, conditions: list[Condition]) -> tuple[list, list, list]:
        now: dict[tuple, dict] = {}
        for cond in conditions:
            if cond.key not in now:
                now[cond.key] = make_alert(epoch, cond)
        raised, active = [], []
        for key, record in now.items():
            if key in self.active:
                record["since"] = self.active[key]["since"]
            else:
                record["since"] = epoch
                raised.append(record)
            active.append(record)
        cleared = [record for key, record in self.active.items() if key not in now]
        self.active = now
        return raised, active, cleared


class AlertRules:
    """The rules with their history: call `update(record)` once per logged epoch, in order.

    Returns ``(raised, active, cleared)`` alerts: those that start at this epoch, every alert
    active at this epoch (including the raised ones), and those of the previous logged epoch that
    no longer hold. The findings of the epoch are in `findings_raised`, `findings_active` and
    `findings_cleared` after the call. Pure: no logging, no I/O.
    """

    def __init__(self, thresholds: Optional[Thresholds] = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.history = History()
        self._alerts = _Tracker()
        self._findings = _Tracker()
        self.findings_raised: list[dict] = []
        self.findings_active: list[dict] = []
        self.findings_cleared: list[dict] = []

    @property
    def active(self) -> dict[tuple, dict]:
        """Active alerts by (layer, kind)."""
        return self._alerts.active

    def update(self, record: EpochRecord) -> tuple[list[dict], list[dict], list[dict]]:
        epoch = int(record.epoch)
        conditions = check_record(record, self.thresholds, self.history)
        self.history.add(record, conditions)
        alerts = [c for c in conditions if not c.finding]
        findings = [c for c in conditions if c.finding]
        self.findings_raised, self.findings_active, self.findings_cleared = self._findings.update(epoch, findings)
        return self._alerts.update(epoch, alerts)
