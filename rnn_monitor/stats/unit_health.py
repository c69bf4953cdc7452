"""Unit health from the probe's per-unit accumulators (pure numpy, no TensorFlow).

The probe never keeps a full [B, T, U] array of a state: while it unrolls, it accumulates per
unit, over the valid (unmasked) positions (b, t) only:

* ``n_valid``: number of valid positions;
* ``h_sum``, ``h_sumsq`` (float64): for the standard deviation of the output h;
* ``h_max_abs``, ``c_max_abs``: largest |state| (finite values);
* ``h_sat``: positions where the cell's tanh output is saturated, |tanh output| > 0.99
  (SimpleRNN / GRU: h itself; LSTM: tanh(c), the output nonlinearity of h = o * tanh(c));
* ``<gate>_low`` / ``<gate>_high``: positions where a sigmoid gate is < 0.1 / > 0.9;
* ``<state>_nonfinite``: NaN / Inf count.

`accumulate` computes the same accumulators from full arrays in numpy (reference and tests).

Definitions (docs/reference.md, "Scalars"): a unit is *dead* when the std of its output h over the valid positions
is below `dead_std`; *exploding* when an unbounded state (LSTM c; h of a cell whose activation is
not bounded, e.g. ReLU or linear) exceeds `exploding_state` in |value|, or any of its states is
non-finite; *saturated* when its tanh output is saturated in more than `saturation_fraction` of
the valid positions. Ratios are over units. Gate left / right saturation fractions are the share
of valid positions x units where the gate is below / above the thresholds (Karpathy et al. 2015).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np


def accumulate(
    states: Mapping[str, np.ndarray],
    valid: np.ndarray,
    sat_tanh: float = 0.99,
    low: float = 0.1,
    high: float = 0.9,
    sigmoid_gates: Sequence[str] = (),
    tanh_output: Optional[np.ndarray] = None,
) -> dict[str, np.ndarray]:
    """Accumulators from full arrays: `states` name -> [B, T, U], `valid` [B, T] bool.

    `tanh_output` [B, T, U]: the values whose saturation counts (default: ``states["h"]``).
    """
    valid = np.asarray(valid, dtype=bool)
    vm = valid[:, :, None]
    acc: dict[str, np.ndarray] = {"n_valid": np.float64(valid.sum())}
    for name, values in states.items():
        values = np.asarray(values, dtype=np.float64)
        acc[f"{name}_nonfinite"] = np.sum(vm & ~np.isfinite(values), axis=(0, 1)).astype(np.float64)
    h = np.asarray(states["h"], dtype=np.float64)
    ok = vm & np.isfinite(h)
    hv = np.where(ok, h, 0.0)
    acc["h_sum"] = hv.sum(axis=(0, 1))
    acc["h_sumsq"] = (hv * hv).sum(axis=(0, 1))
    acc["h_max_abs"] = np.abs(hv).max(axis=(0, 1))
    if "c" in states:
        c = np.asarray(states["c"], dtype=np.float64)
        acc["c_max_abs"] = np.abs(np.where(vm & np.isfinite(c), c, 0.0)).max(axis=(0, 1))
    sat = h if tanh_output is None else np.asarray(tanh_output, dtype=np.float64)
    sat_ok = vm & np.isfinite(sat)
    acc["h_sat"] = np.sum(sat_ok & (np.abs(np.where(sat_ok, sat, 0.0)) > sat_tanh), axis=(0, 1)).astype(np.float64)
    for gate in sigmoid_gates:
        g = np.asarray(states[gate], dtype=np.float64)
        g_ok = vm & np.isfinite(g)
        gv = np.where(g_ok, g, 0.5)
        acc[f"{gate}_low"] = np.sum(g_ok & (gv < low), axis=(0, 1)).astype(np.float64)
        acc[f"{gate}_high"] = np.sum(g_ok & (gv > high), axis=(0, 1)).astype(np.float64)
    return acc


def unit_std(acc: Mapping[str, np.ndarray]) -> np.ndarray:
    """Std of h per unit over the valid positions (population std), NaN without valid positions."""
    n = float(acc["n_valid"])
    if n <= 0:
        return np.full(np.shape(acc["h_sum"]), np.nan)
    mean = np.asarray(acc["h_sum"], dtype=np.float64) / n
    var = np.asarray(acc["h_sumsq"], dtype=np.float64) / n - mean * mean
    return np.sqrt(np.maximum(var, 0.0))


def dead_units(acc: Mapping[str, np.ndarray], dead_std: float = 1e-3) -> np.ndarray:
    """bool [U]: std of the output below `dead_std` (a unit with non-finite output is not dead)."""
    std = unit_std(acc)
    nonfinite = np.asarray(acc.get("h_nonfinite", np.zeros_like(std))) > 0
    return (std < dead_std) & ~nonfinite


def exploding_units(
    acc: Mapping[str, np.ndarray],
    h_bounded: bool,
    threshold: float = 1e2,
    states: Sequence[str] = ("h",),
) -> np.ndarray:
    """bool [U]: an unbounded state above `threshold` in |value|, or any state non-finite."""
    size = np.shape(acc["h_sum"])
    out = np.zeros(size, dtype=bool)
    if not h_bounded:
        out |= np.asarray(acc["h_max_abs"]) > threshold
    if "c_max_abs" in acc:
        out |= np.asarray(acc["c_max_abs"]) > threshold
    for name in states:
        key = f"{name}_nonfinite"
        if key in acc:
            out |= np.asarray(acc[key]) > 0
    return out


def saturated_units(acc: Mapping[str, np.ndarray], fraction: float = 0.95) -> np.ndarray:
    """bool [U]: tanh output saturated in more than `fraction` of the valid positions."""
    n = float(acc["n_valid"])
    if n <= 0:
        return np.zeros(np.shape(acc["h_sat"]), dtype=bool)
    return np.asarray(acc["h_sat"], dtype=np.float64) / n > fraction


def gate_saturation(acc: Mapping[str, np.ndarray], gate: str) -> tuple[float, float]:
    """(left, right): share of valid positions x units with the gate below low / above high."""
    n = float(acc["n_valid"])
    low = np.asarray(acc[f"{gate}_low"], dtype=np.float64)
    high = np.asarray(acc[f"{gate}_high"], dtype=np.float64)
    if n <= 0 or low.size == 0:
        return float("nan"), float("nan")
    return float(low.sum() / (n * low.size)), float(high.sum() / (n * high.size))


def ratio(flags: np.ndarray) -> float:
    """Share of True entries (NaN for an empty array)."""
    flags = np.asarray(flags, dtype=bool)
    return float(flags.mean()) if flags.size else float("nan")


def nonfinite_total(acc: Mapping[str, np.ndarray], state: str) -> int:
    return int(np.sum(acc.get(f"{state}_nonfinite", 0)))
