"""Gradient-through-time statistics from the probe's reduced arrays (pure numpy, no TensorFlow).

Definitions (docs/reference.md, "Scalars"), with masking made explicit:

* ``G[t, u] = mean_b |dL/dh_{b,t,u}|`` over the sequences b whose step t is valid; NaN where no
  sequence is valid at t. ``g[t] = mean_b ||dL/dh_{b,t}||_2`` likewise.
* Temporal flow ``F[k] = sum_b ||v_b^T dh_{b,last}/dh_{b,last-k}|| / sum_b ||v_b||`` with
  ``v_b = dL/dh`` at sequence b's last valid step, where ``last-k`` is the k-th *valid* step
  before it in the layer's processing order (masked steps do not count as steps; without
  masking this is exactly ``mean_b ||.|| / mean_b ||v_b||``). Only sequences with at least
  k + 1 valid steps enter F[k] (numerator and denominator alike). NaN where that is no sequence
  or where every ``v_b`` is 0.
* Long sequences under the byte cap: G and the output gradients may be written as means over
  bins of k consecutive steps (`gradient_time_bin`, `bin_time`); g[t] and F[k] never are.
* ``grad_horizon`` = largest k with ``F[j] >= floor`` for all j <= k (0 when F is empty, NaN
  or F[0] fails).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def batch_mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``total / count`` along the leading (time) axis, NaN where ``count == 0``."""
    total = np.asarray(total, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    shape = count.shape + (1,) * (total.ndim - count.ndim)
    c = count.reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / np.where(c > 0, c, 1.0)
    return np.where(c > 0, out, np.nan)


def timestep_gradients(abs_sum: np.ndarray, count: np.ndarray) -> np.ndarray:
    """G [T, U] from ``sum_b valid |dL/dh|`` [T, U] and the valid count per step [T]."""
    return batch_mean(abs_sum, count)


def timestep_grad_norm(norm_sum: np.ndarray, count: np.ndarray) -> np.ndarray:
    """g [T] from ``sum_b valid ||dL/dh_bt||`` [T] and the valid count per step [T]."""
    return batch_mean(norm_sum, count)


def valid_rank_from_end(valid: np.ndarray) -> np.ndarray:
    """[B, T]: for valid positions, how many valid steps come after it in its row; -1 if masked."""
    valid = np.asarray(valid, dtype=bool)
    after = np.cumsum(valid[:, ::-1], axis=1)[:, ::-1] - 1
    return np.where(valid, after, -1)


def temporal_flow(flow_norm: np.ndarray, v_norm: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """F [K] (K = the longest valid length) from per-(b, t) norms in processing order.

    `flow_norm` [B, T]: ``||v_b^T dh_{b,last}/dh_{b,t}||``; `v_norm` [B]: ``||v_b||``;
    `valid` [B, T] bool.
    """
    flow_norm = np.asarray(flow_norm, dtype=np.float64)
    v_norm = np.asarray(v_norm, dtype=np.float64)
    rank = valid_rank_from_end(valid)
    k_max = int(rank.max()) + 1 if rank.size else 0
    if k_max <= 0:
        return np.zeros(0, dtype=np.float64)
    num = np.zeros(k_max)
    den = np.zeros(k_max)
    b_idx, t_idx = np.nonzero(rank >= 0)
    ks = rank[b_idx, t_idx]
    np.add.at(num, ks, flow_norm[b_idx, t_idx])
    np.add.at(den, ks, v_norm[b_idx])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / np.where(den > 0, den, 1.0)
    return np.where(den > 0, out, np.nan)


def grad_horizon(flow: np.ndarray, floor: float = 1e-3) -> int:
    """Largest k with ``F[j] >= floor`` for every j <= k (NaN counts as below the floor)."""
    flow = np.asarray(flow, dtype=np.float64)
    ok = np.isfinite(flow) & (flow >= floor)
    if ok.size == 0 or not ok[0]:
        return 0
    bad = np.nonzero(~ok)[0]
    return int(bad[0] - 1) if bad.size else int(ok.size - 1)


def valid_timesteps(valid: np.ndarray) -> int:
    """Number of steps of the longest valid sequence (the T the alert rules compare against)."""
    valid = np.asarray(valid, dtype=bool)
    return int(valid.sum(axis=1).max()) if valid.size else 0


def to_input_order(array: np.ndarray, backward: bool, axis: int = 0) -> np.ndarray:
    """Processing order -> input order (reverse the time axis of backward-running layers)."""
    return np.flip(array, axis=axis) if backward else array


def flow_at_half(flow: np.ndarray, timesteps: int) -> float:
    """F at k = T // 2 (the level of the gradient that reaches half the sequence back), or the
    last F[k] when the flow is shorter; NaN when there is none or it is not finite."""
    flow = np.asarray(flow, dtype=np.float64).ravel()
    if flow.size == 0:
        return float("nan")
    k = min(int(timesteps) // 2, flow.size - 1)
    return float(flow[k])


def early_late_ratio(g: np.ndarray, backward: bool = False) -> float:
    """g at the first processed valid step over g at the last processed one (g in input order;
    a backward layer processes it in reverse). NaN without two finite steps or with g_last = 0."""
    g = np.asarray(g, dtype=np.float64).ravel()
    if backward:
        g = g[::-1]
    finite = g[np.isfinite(g)]
    if finite.size < 2 or finite[-1] == 0:
        return float("nan")
    return float(finite[0] / finite[-1])


def gradient_time_bin(timesteps: int, units: Sequence[int], budget_bytes: Optional[float]) -> int:
    """Steps per time bin of the per-unit gradients G and output gradients (float32 [T, U] each
    per layer) so that, for layers of `units`, both fit `budget_bytes` together: 1 (every step)
    when they fit or there is no budget, else the smallest k with
    ``sum_l 2 * ceil(T / k) * U_l * 4 <= budget``. g[t] and F[k] are never binned."""
    if budget_bytes is None or timesteps < 2 or not units:
        return 1
    per_step = 2 * 4 * sum(int(u) for u in units)
    for k in range(1, timesteps + 1):
        if -(-timesteps // k) * per_step <= budget_bytes:
            return k
    return timesteps


def bin_time(values: np.ndarray, k: int) -> np.ndarray:
    """[T, ...] -> [ceil(T / k), ...]: the mean over each run of k consecutive steps (the last bin
    may be shorter), NaN (masked) steps left out; a bin with no value is NaN. With k = 1 the input
    itself. Exact: each entry is the mean of the per-step values it covers."""
    values = np.asarray(values)
    if k <= 1:
        return values
    steps = values.shape[0]
    n_bins = -(-steps // k)
    pad = n_bins * k - steps
    padded = np.concatenate([values.astype(np.float64), np.full((pad,) + values.shape[1:], np.nan)])
    blocks = padded.reshape((n_bins, k) + values.shape[1:])
    finite = ~np.isnan(blocks)
    count = finite.sum(axis=1)
    total = np.where(finite, blocks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out.astype(values.dtype if values.dtype.kind == "f" else np.float64)
