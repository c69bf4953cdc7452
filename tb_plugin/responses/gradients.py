"""The gradients view: ``/gradients`` (g[t] per epoch), ``/gradient_units`` (G[t, u] at one
epoch) and ``/flow`` (temporal flow F[k] per epoch and its horizon)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import Source
from tb_plugin.encoding import binary_grid, finite_range
from tb_plugin.lookup import layer_kind_series, value_at
from tb_plugin.params import BadRequest

UNIT_KINDS = (metadata.TIMESTEP_GRADIENTS, metadata.OUTPUT_GRADIENTS)
DEFAULT_FLOW_FLOOR = 1e-3


def gradients_impl(src: Source, run_name: str, layer_name: str) -> dict:
    """g[t] over epochs (timestep x epoch heatmap) plus what the per-unit view can show."""
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    series = layer_kind_series(src, run, layer, metadata.TIMESTEP_GRAD_NORM)
    steps, mat = stack_rows(series)
    lo, hi = finite_range(mat, positive=True)
    # G, output gradients, g and F are written together, so g's epochs stand for G's (reading
    # G here would cost its whole series); /gradient_units answers with G's own epochs.
    unit_steps = steps if metadata.TIMESTEP_GRADIENTS in layer.kinds else []
    return {
        "run": run_name,
        "layer": layer_name,
        "epochs": steps,
        "timesteps": int(mat.shape[1]) if mat.ndim == 2 else 0,
        # matrix [T, E]: timestep x epoch, as the heatmap draws it
        "matrix": binary_grid(mat.T),
        "min_positive": lo,
        "max": hi,
        "unit_epochs": unit_steps,
        "unit_kinds": [k for k in UNIT_KINDS if k in layer.kinds],
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def gradient_units_impl(src: Source, run_name: str, layer_name: str, epoch: Optional[int],
                        kind: Optional[str]) -> dict:
    """G[t, u] (or the output gradients, `kind`) at one epoch (timestep x unit heatmap)."""
    kind = kind or metadata.TIMESTEP_GRADIENTS
    if kind not in UNIT_KINDS:
        raise BadRequest("kind must be timestep_gradients or output_gradients")
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    at = value_at(layer_kind_series(src, run, layer, kind), epoch)
    arr = timestep_by_unit(at.value)
    lo, hi = finite_range(arr, positive=True)
    return {
        "run": run_name,
        "layer": layer_name,
        "kind": kind,
        "epoch": at.epoch,
        "epochs": at.epochs,
        "timesteps": int(arr.shape[0]),  # columns: time bins when time_bin > 1
        "time_bin": src.time_bin(run, layer.kinds[kind]),
        "units": int(arr.shape[1]),
        "values": binary_grid(arr),  # [T, U]
        "min_positive": lo,
        "max": hi,
        "sampling": src.sampling(run, at.epochs, list(run.layers)),
    }


def timestep_by_unit(values: np.ndarray) -> np.ndarray:
    """One epoch's per-unit gradients as float32 [T, U]: one unit for a 1-D series, any
    trailing axes flattened into units."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 1:
        return arr[:, None]
    if arr.ndim != 2:
        return arr.reshape(arr.shape[0], -1)
    return arr


def flow_impl(src: Source, run_name: str, layer_name: str) -> dict:
    """F[k] per epoch (epoch x lag) with each epoch's horizon at the run's flow floor."""
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    series = layer_kind_series(src, run, layer, metadata.TEMPORAL_FLOW)
    steps, mat = stack_rows(series)
    floor = flow_floor(src.manifest(run) or {})
    lo, hi = finite_range(mat, positive=True)
    return {
        "run": run_name,
        "layer": layer_name,
        "epochs": steps,
        "flow": binary_grid(mat),  # [E, K]
        "horizon": [horizon(row, floor) for row in mat],
        "floor": floor,
        "min_positive": lo,
        "max": hi,
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def flow_floor(manifest: dict) -> float:
    """The run's ``flow_floor`` threshold (docs/reference.md), 1e-3 when missing or not a number."""
    floor = (manifest.get("thresholds") or {}).get("flow_floor", DEFAULT_FLOW_FLOOR)
    try:
        return float(floor)
    except (TypeError, ValueError):
        return DEFAULT_FLOW_FLOOR


def horizon(flow: np.ndarray, floor: float) -> Optional[int]:
    """Largest k with F[j] >= floor for all j <= k (None when F[0] is already below)."""
    ok = np.isfinite(flow) & (flow >= floor)
    if ok.size == 0 or not ok[0]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[0] - 1) if bad.size else int(ok.size - 1)


def stack_rows(series: list[tuple[int, np.ndarray]]) -> tuple[list[int], np.ndarray]:
    """Stack 1-D arrays of different lengths (NaN-padded) into [n_epochs, max_len]."""
    steps = [s for s, _ in series]
    arrays = [np.asarray(a, dtype=np.float64).ravel() for _, a in series]
    width = max((a.size for a in arrays), default=0)
    out = np.full((len(arrays), width), np.nan)
    for i, a in enumerate(arrays):
        out[i, : a.size] = a
    return steps, out
