"""What one logged epoch measured: filled by the weight and probe parts, read by the alert rules
and written as scalars by the callback."""

from __future__ import annotations

import dataclasses
from typing import Optional

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
    epoch: int
    scalars: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    nonfinite: list[NonFinite] = dataclasses.field(default_factory=list)

    def set_scalar(self, layer: str, name: str, value: float) -> None:
        self.scalars.setdefault(layer, {})[name] = float(value)

    def set_array(self, layer: str, name: str, value: np.ndarray) -> None:
        """Arrays the alert rules need (e.g. "temporal_flow"); not written by the callback."""
        self.arrays.setdefault(layer, {})[name] = value
