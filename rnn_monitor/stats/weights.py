"""Per-gate weight statistics: L2 norm, update ratio against the previous snapshot, non-finite count.

Definitions (docs/reference.md, "Scalars"): the gate's column block of kernel / recurrent_kernel / bias;
L2 = Frobenius norm over the finite entries; update ratio = ||W_e - W_prev|| / ||W_prev||;
nonfinite = number of NaN and Inf entries. Non-finite entries are set aside (not summed) so a
single NaN never turns every plot into NaN, and are counted instead.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

Block = tuple[str, str]  # (role, gate)


def l2(block: np.ndarray) -> float:
    """L2 (Frobenius) norm of the finite entries, in float64."""
    values = np.asarray(block, dtype=np.float64)
    finite = np.isfinite(values)
    return float(np.sqrt(np.sum(np.square(values[finite]))))


def nonfinite_count(block: np.ndarray) -> int:
    """Number of NaN and Inf entries."""
    return int(np.size(block) - np.count_nonzero(np.isfinite(block)))


def update_ratio(block: np.ndarray, previous: np.ndarray) -> float:
    """||W - W_prev|| / ||W_prev|| over positions finite in both; NaN when W_prev is all zero."""
    now = np.asarray(block, dtype=np.float64)
    before = np.asarray(previous, dtype=np.float64)
    if now.shape != before.shape:
        return float("nan")
    finite = np.isfinite(now) & np.isfinite(before)
    denom = np.sqrt(np.sum(np.square(before[finite])))
    if denom == 0.0:
        return float("nan")
    return float(np.sqrt(np.sum(np.square(now[finite] - before[finite]))) / denom)


def gate_statistics(
    blocks: Mapping[Block, np.ndarray], previous: Optional[Mapping[Block, np.ndarray]] = None
) -> dict[str, float]:
    """``{"<role>/<gate>/l2": .., "<role>/<gate>/nonfinite": .., "<role>/<gate>/update_ratio": ..}``.

    The update ratio is present only when a previous snapshot of the same block exists.
    """
    out: dict[str, float] = {}
    for (role, gate), block in blocks.items():
        out[f"{role}/{gate}/l2"] = l2(block)
        out[f"{role}/{gate}/nonfinite"] = float(nonfinite_count(block))
        if previous is not None and (role, gate) in previous:
            out[f"{role}/{gate}/update_ratio"] = update_ratio(block, previous[(role, gate)])
    return out
