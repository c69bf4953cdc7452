"""Alert rules: pure Python/numpy over an `EpochRecord` and what earlier logged epochs showed.

No TensorFlow, no I/O. Each rule is its own function of one layer's `LayerEvidence` (and, for
the rules that ask whether the run learns, `learning.Learning`) returning a `Condition` or None,
with every number from `Thresholds`. `layer_conditions` applies them with the precedence below;
`check_record` says which alerts and findings hold in one epoch, given the `History` of the
earlier ones; `tracking.AlertRules` keeps that history and the start / clear bookkeeping
(docs/alerts.md).

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
* **exploding_units** (a finding): more than ``exploding_units_ratio`` of the units reach
  ``|state| > exploding_state`` while no exploding alert holds and the loss has not diverged.
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
from typing import Mapping, Optional

import numpy as np

from rnn_monitor.alerts.conditions import Condition, finite
from rnn_monitor.alerts.kinds import (
    DEAD, EXPLODING, EXPLODING_UNITS, NONFINITE, RUN, SATURATED, SATURATION, SHORT_MEMORY, STALLED, VANISHING,
)
from rnn_monitor.alerts.learning import History, Learning, learning_state
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord
from rnn_monitor.stats.gradients import flow_at_half

Places = list[tuple[str, Optional[str], int]]  # (where, gate, count) of non-finite values


@dataclasses.dataclass(frozen=True)
class LayerEvidence:
    """What the rules read of one layer whose numbers are finite, at one epoch."""

    layer: str
    scalars: Mapping[str, float]
    flow: Optional[np.ndarray]  # F[k], float64
    timesteps: Optional[float]  # valid T of the probe
    earlier_grad_norms: list  # finite grad_norm of the earlier logged epochs
    probe_loss: Optional[float]
    blown_before: bool  # the layer or the run was once non-finite or exploding, or the loss diverged

    @property
    def grad_norm(self) -> Optional[float]:
        return self.scalars.get("grad_norm")


def layer_evidence(layer: str, record: EpochRecord, history: History, learning: Learning) -> LayerEvidence:
    """The evidence of `layer` in `record`, with what `history` kept of it."""
    arrays = record.arrays.get(layer, {})
    flow = arrays.get("temporal_flow")
    flow = None if flow is None else np.asarray(flow, dtype=np.float64).ravel()
    blown = layer in history.blown_up or RUN in history.blown_up or learning.diverged
    return LayerEvidence(layer, record.scalars.get(layer, {}), flow, _timesteps(arrays, flow),
                         history.grad_norms.get(layer, []), record.probe_loss, blown)


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


# ------------------------------------------------------------------ one rule a function
def exploding(ev: LayerEvidence, th: Thresholds) -> Optional[Condition]:
    """The gradient grows going back through time, or the weight gradient jumped far above the
    median of its earlier logged epochs."""
    flow = ev.flow
    if flow is not None and flow.size and np.isfinite(flow).any() and np.nanmax(flow) > th.exploding_flow:
        k = int(np.nanargmax(flow))
        return Condition(ev.layer, EXPLODING, "temporal_flow", float(np.nanmax(flow)), th.exploding_flow,
                         f"the gradient grows {np.nanmax(flow):.3g}x going {k} steps back through time "
                         f"(limit {th.exploding_flow:g})")
    grad_norm = ev.grad_norm
    if not (finite(grad_norm) and ev.earlier_grad_norms):
        return None
    median = float(np.median(ev.earlier_grad_norms))
    if median > 0 and grad_norm > th.exploding_grad_growth * median:
        return Condition(ev.layer, EXPLODING, "grad_norm", float(grad_norm), th.exploding_grad_growth * median,
                         f"the weight-gradient norm jumped to {grad_norm:.3g}, {grad_norm / median:.3g}x the median "
                         f"of its earlier logged epochs (limit {th.exploding_grad_growth:g}x)")
    return None


def exploding_units(ev: LayerEvidence, th: Thresholds) -> Optional[Condition]:
    """Finding: many units reach a large |state| (alone, that need not hurt training)."""
    ratio = ev.scalars.get("exploding_ratio")
    if not (finite(ratio) and ratio > th.exploding_units_ratio):
        return None
    return Condition(ev.layer, EXPLODING_UNITS, "exploding_ratio", float(ratio), th.exploding_units_ratio,
                     f"{ratio:.0%} of the units reach |state| > {th.exploding_state:g}", finding=True)


def dead(ev: LayerEvidence, th: Thresholds) -> Optional[Condition]:
    """More than `dead_alert_ratio` of the units have a (nearly) constant output."""
    ratio = ev.scalars.get("dead_ratio")
    if not (finite(ratio) and ratio > th.dead_alert_ratio):
        return None
    return Condition(ev.layer, DEAD, "dead_ratio", float(ratio), th.dead_alert_ratio,
                     f"{ratio:.0%} of units are dead (output std < {th.dead_std:g}; alert above "
                     f"{th.dead_alert_ratio:.0%})")


def starved(ev: LayerEvidence, th: Thresholds) -> bool:
    """The layer's weight gradient is below `starvation_grad` x the probe loss."""
    loss = ev.probe_loss
    return finite(ev.grad_norm) and finite(loss) and loss > 0 and ev.grad_norm < th.starvation_grad * loss


def saturated(ev: LayerEvidence, learning: Learning, th: Thresholds) -> Optional[Condition]:
    """Most units saturated: an alert when the layer starves of gradient or the run is not
    learning, else the finding `saturation`."""
    ratio = ev.scalars.get("saturated_ratio")
    if not (finite(ratio) and ratio > th.saturation_alert_ratio):
        return None
    seen = f"{ratio:.0%} of units are saturated"
    if starved(ev, th):
        return Condition(ev.layer, SATURATED, "saturated_ratio", float(ratio), th.saturation_alert_ratio,
                         f"{seen} and the layer starves of gradient (weight-gradient norm {ev.grad_norm:.2e} < "
                         f"{th.starvation_grad:g} x the probe loss {ev.probe_loss:.3g})")
    return Condition(ev.layer, SATURATED if learning.unlearned else SATURATION, "saturated_ratio", float(ratio),
                     th.saturation_alert_ratio, f"{seen} while {learning.detail}", finding=not learning.unlearned)


def vanishing(ev: LayerEvidence, learning: Learning, th: Thresholds) -> Optional[Condition]:
    """The gradient does not reach half the sequence back and the run is not learning: an alert;
    a short reach (or a short horizon) while the run learns: the finding `short_memory`."""
    T = ev.timesteps
    mid = flow_at_half(ev.flow, T) if ev.flow is not None and T is not None else float("nan")
    if not finite(mid) or T is None:
        return None
    horizon = ev.scalars.get("grad_horizon")
    reach = f"only {mid:.1e} of the gradient at the last step reaches {int(T) // 2} of {T:g} steps back"
    reach += f" (F[{int(T) // 2}]" + (f"; horizon {horizon:g} steps)" if finite(horizon) else ")")
    if mid < th.vanishing_flow and learning.unlearned:
        return Condition(ev.layer, VANISHING, "flow_mid", mid, th.vanishing_flow,
                         f"{reach}, below {th.vanishing_flow:g}, and {learning.detail}")
    need = max(th.horizon_min, th.horizon_fraction * T)
    if mid < th.vanishing_flow or (finite(horizon) and horizon < need):
        return Condition(ev.layer, SHORT_MEMORY, "flow_mid", mid, th.vanishing_flow,
                         f"{reach} while {learning.detail}", finding=True)
    return None


def layer_conditions(ev: LayerEvidence, learning: Learning, th: Thresholds) -> list[Condition]:
    """The layer rules with root causes first: an exploding layer (or run) is not judged on units
    or memory; a dead layer not on saturation or reach; a saturated alert replaces vanishing."""
    blow_up = exploding(ev, th)
    units = None if blow_up is not None or learning.diverged else exploding_units(ev, th)
    dying = dead(ev, th)
    calm = not (ev.blown_before or blow_up is not None or dying is not None)
    sat = saturated(ev, learning, th) if calm else None
    reach = vanishing(ev, learning, th) if calm and (sat is None or sat.finding) else None
    return [c for c in (blow_up, units, dying, sat, reach) if c is not None]


# ------------------------------------------------------------------ non-finite numbers
def nonfinite_places(record: EpochRecord, layers: list[str]) -> dict[str, Places]:
    """layer -> [(where, gate, count)] summed over the record's non-finite entries, plus the
    non-finite numbers the probe could not attribute to a count (a NaN norm or flow)."""
    counts: dict[tuple, int] = {}
    for nf in record.nonfinite:
        key = (nf.layer, str(nf.where), nf.gate)
        counts[key] = counts.get(key, 0) + int(nf.count)
    places: dict[str, Places] = {}
    for (layer, where, gate), count in counts.items():
        if count > 0:
            places.setdefault(layer, []).append((where, gate, count))
    for layer in layers:
        _add_unattributed(layer, record, places)
    return places


def _add_unattributed(layer: str, record: EpochRecord, places: dict[str, Places]) -> None:
    """A non-finite weight-gradient norm, or a non-finite flow no gradient count explains."""
    scalars = record.scalars.get(layer, {})
    flow = record.arrays.get(layer, {}).get("temporal_flow")
    if "grad_norm" in scalars and not finite(scalars["grad_norm"]):
        places.setdefault(layer, []).append(("weight gradient norm", None, 1))
    elif flow is not None and np.size(flow) and not np.all(np.isfinite(np.asarray(flow, dtype=np.float64))):
        if not any(w == "gradient" for w, _, _ in places.get(layer, [])):
            n = int(np.sum(~np.isfinite(np.asarray(flow, dtype=np.float64))))
            places.setdefault(layer, []).append(("gradient through time", None, n))


def _place_text(where: str, gate: Optional[str]) -> str:
    if gate and where == "gate":
        return f"gate {gate}"
    return f"{where}/{gate}" if gate else where


def nonfinite(layer: str, places: Places) -> Condition:
    """One alert per layer naming every place with NaN/Inf and its count."""
    total = sum(c for _, _, c in places)
    listed = ", ".join(f"{_place_text(w, g)} {c}" for w, g, c in places)
    return Condition(
        layer, NONFINITE, "count", float(total), 0.0,
        f"{total} NaN/Inf value(s) in {len(places)} place(s): {listed}",
        (("count", int(total)), ("places", [{"where": w, "gate": g, "count": int(c)} for w, g, c in places])),
    )


def nonfinite_loss(record: EpochRecord) -> Condition:
    """The run-wide alert for a NaN/Inf training or probe loss."""
    bad = [name for name, v in (("training loss", record.loss), ("probe loss", record.probe_loss))
           if v is not None and not finite(v)]
    return Condition(RUN, NONFINITE, "loss", float("nan"), 0.0, f"the {' and the '.join(bad)} is NaN/Inf",
                     (("count", len(bad)), ("places", [{"where": b, "gate": None, "count": 1} for b in bad])))


# ------------------------------------------------------------------ run-wide rules
def diverged(learning: Learning, th: Thresholds) -> Optional[Condition]:
    """The probe loss stays far above the constant prediction's: the run's exploding alert."""
    if not learning.diverged:
        return None
    return Condition(RUN, EXPLODING, "loss_ratio", float(learning.ratio), th.diverged_ratio,
                     f"{learning.detail}: training is diverging (limit {th.diverged_ratio:g}x)")


def stalled(learning: Learning, th: Thresholds) -> Optional[Condition]:
    """Finding: the run does not learn, and no layer rule says why."""
    if not learning.unlearned:
        return None
    ratio = float(learning.ratio) if learning.ratio is not None else float("nan")
    return Condition(RUN, STALLED, "loss_ratio", ratio, th.learned_ratio, learning.detail, finding=True)


def _layers(record: EpochRecord) -> list[str]:
    return list(dict.fromkeys(list(record.scalars) + list(record.arrays) + [nf.layer for nf in record.nonfinite]))


def check_record(record: EpochRecord, thresholds: Thresholds, history: Optional[History] = None) -> list[Condition]:
    """Alerts and findings holding at this epoch, given the earlier logged epochs' `history`; a
    layer without a number is not judged on it, and nothing but NaN/Inf once the loss is."""
    th, history = thresholds, history or History()
    layers = _layers(record)
    places = nonfinite_places(record, layers)
    out = [nonfinite(layer, places[layer]) for layer in layers if places.get(layer)]
    if not record.loss_is_finite():
        return out if places else out + [nonfinite_loss(record)]
    learning = learning_state(record, history, th)
    for layer in layers:
        if not places.get(layer):
            out.extend(layer_conditions(layer_evidence(layer, record, history, learning), learning, th))
    run = diverged(learning, th)
    if run is None and not places and not any(not c.finding for c in out):
        run = stalled(learning, th)
    return out + ([run] if run is not None else [])
