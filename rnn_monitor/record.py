"""What one logged epoch measured: filled by the weight and probe parts, read by the alert rules
and written as scalars by the callback."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class NonFinite:
    """`count` NaN/Inf values in `where` (kernel, recurrent_kernel, bias, state h, gradient, ...)."""

    layer: str
    where: str
    gate: Optional[str]
    count: int


@dataclasses.dataclass
class EpochRecord:
    """One logged epoch: per-layer scalars and arrays, non-finite counts, and run-wide numbers.

    `logs` are the epoch-end numbers Keras hands to callbacks (``loss``, metrics, ``val_*``) as
    floats; `probe_loss` is the compiled loss on the probe batch at the epoch's end and
    `constant_loss` the loss of the best constant prediction found for the probe's labels (see
    `rnn_monitor.probe.constant_loss`): the level a model that ignores its input reaches.
    """

    epoch: int
    scalars: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    nonfinite: list[NonFinite] = dataclasses.field(default_factory=list)
    logs: dict[str, float] = dataclasses.field(default_factory=dict)
    probe_loss: Optional[float] = None
    constant_loss: Optional[float] = None

    def set_scalar(self, layer: str, name: str, value: float) -> None:
        self.scalars.setdefault(layer, {})[name] = float(value)

    def set_array(self, layer: str, name: str, value: np.ndarray) -> None:
        """Arrays the alert rules need (e.g. "temporal_flow"); not written by the callback."""
        self.arrays.setdefault(layer, {})[name] = value

    def set_logs(self, logs: Optional[Mapping[str, Any]]) -> None:
        """Keep the numeric entries of Keras's epoch logs as floats (others are dropped)."""
        for key, value in (logs or {}).items():
            try:
                self.logs[str(key)] = float(value)
            except (TypeError, ValueError):
                continue

    @property
    def loss(self) -> Optional[float]:
        """The epoch's training loss as Keras reported it (None when it did not report one)."""
        value = self.logs.get("loss")
        return None if value is None else float(value)

    def loss_is_finite(self) -> bool:
        """False when Keras's loss or the probe loss is NaN/Inf."""
        for value in (self.loss, self.probe_loss):
            if value is not None and not math.isfinite(value):
                return False
        return True
