"""What one run of the probe gives (`ProbeRun`), as numpy: the reduced arrays of each monitored
recurrence, what the trace found about each cell (`CellFacts`), and the probe loss."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class CellFacts:
    """What the trace found about a recurrence's cell, as the statistics need it."""

    h_bounded: bool  # h is a bounded (tanh-like) output: it cannot explode
    tanh_output: bool  # h is the output of a tanh
    direct: bool  # h is the cell's output
    recurrent: bool  # h is a state carried through time
    positions: int  # spatial positions of each sequence (1 for vectors)
    dtype_eps: float  # machine epsilon of the cell's dtype


@dataclasses.dataclass
class ProbeRun:
    """One probe run: `layers` maps each probed recurrence's name to its reduced arrays
    (``acc``, ``samples``, ``valid`` and, with gradients, the per-step sums; docs/reference.md
    defines what they become); `cells` what the trace found about each; `loss` the compiled loss
    on the probe batch and `pred_shape` the model's output shape (None without a loss, or for
    several outputs)."""

    layers: dict
    cells: dict[str, CellFacts]
    loss: Optional[float] = None
    pred_shape: Optional[tuple] = None
