"""Is the run learning? The loss side of the alert rules, from the probe loss against the loss of
a constant prediction and from Keras's training loss (docs/alerts.md, "Is the run learning"),
and the `History` of earlier logged epochs the rules compare with. Pure Python / numpy."""

from __future__ import annotations

import dataclasses
from typing import Optional

from rnn_monitor.alerts.conditions import Condition, finite
from rnn_monitor.alerts.kinds import EXPLODING, NONFINITE
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord

# An improving probe loss counts as learning only once it is below the constant prediction's.
_BELOW_CONSTANT = 1.0


@dataclasses.dataclass
class History:
    """What the rules keep of the earlier logged epochs, oldest first."""

    loss_ratios: list = dataclasses.field(default_factory=list)  # probe / constant loss (or None)
    losses: list = dataclasses.field(default_factory=list)  # Keras's training loss (or None)
    grad_norms: dict = dataclasses.field(default_factory=dict)  # layer -> finite grad norms
    blown_up: set = dataclasses.field(default_factory=set)  # layers (or RUN) once non-finite / exploding

    def add(self, record: EpochRecord, conditions: list[Condition]) -> None:
        """Remember `record` and which layers its `conditions` found non-finite or exploding."""
        self.loss_ratios.append(loss_ratio(record))
        self.losses.append(record.loss)
        for layer, scalars in record.scalars.items():
            value = scalars.get("grad_norm")
            if finite(value):
                self.grad_norms.setdefault(layer, []).append(float(value))
        for cond in conditions:
            if not cond.finding and cond.kind in (NONFINITE, EXPLODING):
                self.blown_up.add(cond.layer)


def loss_ratio(record: EpochRecord) -> Optional[float]:
    """Probe loss / constant-prediction loss (None when either is missing, not finite or the
    constant loss is not positive)."""
    p, c = record.probe_loss, record.constant_loss
    if not (finite(p) and finite(c)) or c <= 0 or p < 0:
        return None
    return float(p) / float(c)


def improvement(before: Optional[float], after: Optional[float]) -> Optional[float]:
    """Relative decrease of the loss from `before` to `after` (None without two finite values)."""
    if not (finite(before) and finite(after)) or before == 0:
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
    """The loss side of the rules: against the constant prediction when the probe has its loss,
    else from Keras's training loss alone."""
    patience = max(1, int(th.patience))
    ratio = loss_ratio(record)
    ratios = history.loss_ratios + [ratio]
    losses = history.losses + [record.loss]
    recent = ratios[-patience:]
    full = len(recent) == patience and all(r is not None for r in recent)
    if full and all(r > th.diverged_ratio for r in recent):
        return Learning(False, True, ratio, f"the probe loss has been {min(recent):.3g}x or more the loss of a "
                        f"constant prediction for {patience} logged epoch(s)")
    if ratio is not None:
        return _against_constant(ratios, losses, full, th)
    return _from_training_loss(losses, th)


def _against_constant(ratios: list, losses: list, full: bool, th: Thresholds) -> Learning:
    """Unlearned: the probe loss has stayed at or above `learned_ratio` x the constant
    prediction's for `patience` logged epochs, and neither it nor Keras's loss improved."""
    patience = max(1, int(th.patience))
    ratio, recent = ratios[-1], ratios[-patience:]
    if not (full and all(r >= th.learned_ratio for r in recent)):
        return Learning(False, False, ratio, f"the probe loss is {ratio:.2f}x the loss of a constant prediction")
    detail = (f"the probe loss has stayed at {min(recent):.2f}x or more the loss of a constant "
              f"prediction for {patience} logged epoch(s)")
    gain = improvement(ratios[-2], ratio) if len(ratios) >= 2 else None
    if gain is not None and gain >= th.stall_improvement and ratio < _BELOW_CONSTANT:
        return Learning(False, False, ratio, detail + f", but it improved {gain:.1%} since the last logged epoch")
    if len(losses) >= 3:  # the first logged epoch's Keras loss includes the warm-up
        gain = improvement(losses[-2], losses[-1])
        if gain is not None and gain >= th.stall_improvement:
            return Learning(False, False, ratio, detail + f", but the training loss improved {gain:.1%}")
        if gain is not None:
            detail += f" and the training loss improved {gain:.1%} since the last logged epoch"
    return Learning(True, False, ratio, detail)


def _from_training_loss(losses: list, th: Thresholds) -> Learning:
    """Without a constant-prediction loss, from the third logged epoch: Keras's loss improved less
    than `stall_improvement` per logged epoch and is not below `learned_ratio` x its second value."""
    patience = max(1, int(th.patience))
    later = losses[1:]
    window = later[-max(patience, 2):]
    if len(later) < max(patience, 2) or not all(finite(v) for v in window):
        return Learning(False, False, None, "the loss trend is not known yet")
    gains = [improvement(a, b) for a, b in zip(window, window[1:])]
    stalled = all(g is not None and g < th.stall_improvement for g in gains)
    flat = window[-1] >= th.learned_ratio * later[0] if later[0] > 0 else False
    if stalled and flat:
        return Learning(True, False, None, f"the training loss improved less than {th.stall_improvement:.0%} per "
                        f"logged epoch for {len(gains)} logged epoch(s) and is {window[-1] / later[0]:.2f}x its "
                        "value at the second logged epoch")
    return Learning(False, False, None, "the training loss is still improving")
