"""One function per route: the JSON each dashboard view asks for, shaped from the data source.
TensorFlow-free, no HTTP, no file access."""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Optional

import numpy as np

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import LayerIndex, RunIndex, SAMPLES_FLAG, Source
from tb_plugin.params import BadRequest, NotFound

def json_floats(arr: Any, digits: int = 4) -> Any:
    """Nested lists of floats rounded to `digits` significant digits, NaN/Inf -> None."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 0:
        v = float(a)
        return float(f"{v:.{digits}g}") if math.isfinite(v) else None
    fmt = f"%.{digits}g"
    flat = a.ravel()
    finite = np.isfinite(flat)
    strs = np.char.mod(fmt, np.where(finite, flat, 0.0))
    out = [float(s) for s in strs.tolist()]
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            out[i] = None
    return _reshape(out, a.shape)


def _reshape(flat: list, shape: tuple) -> Any:
    if len(shape) <= 1:
        return flat
    step = int(np.prod(shape[1:]))
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def finite_range(arr: np.ndarray, positive: bool = False) -> tuple[Optional[float], Optional[float]]:
    a = np.asarray(arr, dtype=np.float64)
    a = a[np.isfinite(a)]
    if positive:
        a = a[a > 0]
    if a.size == 0:
        return None, None
    return float(a.min()), float(a.max())


def runs_response(src: Source) -> dict:
    runs = []
    notes = []
    for name, run in sorted(src.index().items()):
        manifest = src.manifest(run)
        notes.extend(f"{name}: {msg}" for msg in run.skipped)
        if manifest is None:
            if run.layers or run.run_kinds:
                notes.append(f"{name}: no manifest (written by an older or unfinished rnn-monitor)")
            continue
        described = {l.get("name"): l for l in manifest.get("layers", []) if isinstance(l, dict)}
        names = [n for n in described if isinstance(n, str)]
        names += sorted(n for n in run.layers if n not in described)
        layers = []
        for lname in names:
            info = described.get(lname, {})
            idx = run.layers.get(lname, LayerIndex(lname))
            layers.append({
                "name": lname,
                "kind": info.get("kind"),
                "class": info.get("class"),
                "direction": info.get("direction"),
                "units": info.get("units"),
                "gates": info.get("gates") or [],
                "states": _order_states(list(idx.states), info.get("gates") or []),
                "has": {k: k in idx.kinds for k in metadata.LAYER_KINDS if k != metadata.ACTIVATIONS},
            })
        runs.append({
            "run": name,
            "layers": layers,
            "has_tokens": metadata.TOKENS in run.run_kinds,
            "has_alerts": metadata.ALERTS in run.run_kinds,
            "probe": manifest.get("probe"),
            "every": manifest.get("every"),
            "thresholds": manifest.get("thresholds") or {},
        })
    return {"runs": runs, "notes": notes, "samples_flag": SAMPLES_FLAG}


def _order_states(states: list[str], gates: list[str]) -> list[str]:
    order = {"h": 0, "c": 1}
    gate_pos = {g: i for i, g in enumerate(gates)}
    return sorted(states, key=lambda s: (order.get(s, 2), gate_pos.get(s, 99), s))


def _layer_kind_series(src: Source, run: RunIndex, layer: LayerIndex, kind: str) -> list:
    tag = layer.kinds.get(kind)
    if tag is None:
        raise NotFound(f"no {kind} for this layer: the run was logged without probe data with labels")
    return src.series(run, tag)


def _pick_epoch(steps: list[int], epoch: Optional[int]) -> int:
    if not steps:
        raise NotFound("no epochs logged for this series yet")
    if epoch is None:
        return steps[-1]
    if epoch not in steps:
        raise NotFound(f"epoch {epoch} is not available; available epochs: {_epoch_summary(steps)}")
    return epoch


def _epoch_summary(steps: list[int]) -> str:
    if len(steps) <= 12:
        return ", ".join(map(str, steps))
    return f"{steps[0]} .. {steps[-1]} ({len(steps)} epochs)"


def _stack_rows(series: list[tuple[int, np.ndarray]]) -> tuple[list[int], np.ndarray]:
    """Stack 1-D arrays of different lengths (NaN-padded) into [n_epochs, max_len]."""
    steps = [s for s, _ in series]
    arrays = [np.asarray(a, dtype=np.float64).ravel() for _, a in series]
    width = max((a.size for a in arrays), default=0)
    out = np.full((len(arrays), width), np.nan)
    for i, a in enumerate(arrays):
        out[i, : a.size] = a
    return steps, out


def gradients_response(src: Source, run_name: str, layer_name: str) -> dict:
    """g[t] over epochs (timestep x epoch heatmap) plus what the per-unit view can show."""
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    series = _layer_kind_series(src, run, layer, metadata.TIMESTEP_GRAD_NORM)
    steps, mat = _stack_rows(series)
    lo, hi = finite_range(mat, positive=True)
    # G, output gradients, g and F are written together, so g's epochs stand for G's (reading
    # G here would cost its whole series); /gradient_units answers with G's own epochs.
    unit_steps = steps if metadata.TIMESTEP_GRADIENTS in layer.kinds else []
    return {
        "run": run_name,
        "layer": layer_name,
        "epochs": steps,
        "timesteps": int(mat.shape[1]) if mat.ndim == 2 else 0,
        # matrix[t][e]: timestep x epoch, as the heatmap draws it
        "matrix": json_floats(mat.T),
        "min_positive": lo,
        "max": hi,
        "unit_epochs": unit_steps,
        "unit_kinds": [k for k in (metadata.TIMESTEP_GRADIENTS, metadata.OUTPUT_GRADIENTS) if k in layer.kinds],
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def gradient_units_response(src: Source, run_name: str, layer_name: str, epoch: Optional[int],
                            kind: Optional[str]) -> dict:
    """G[t, u] at one epoch (timestep x unit heatmap)."""
    kind = kind or metadata.TIMESTEP_GRADIENTS
    if kind not in (metadata.TIMESTEP_GRADIENTS, metadata.OUTPUT_GRADIENTS):
        raise BadRequest("kind must be timestep_gradients or output_gradients")
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    series = _layer_kind_series(src, run, layer, kind)
    steps = [s for s, _ in series]
    chosen = _pick_epoch(steps, epoch)
    arr = np.asarray(dict(series)[chosen], dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        arr = arr.reshape(arr.shape[0], -1)
    lo, hi = finite_range(arr, positive=True)
    return {
        "run": run_name,
        "layer": layer_name,
        "kind": kind,
        "epoch": chosen,
        "epochs": steps,
        "timesteps": int(arr.shape[0]),
        "units": int(arr.shape[1]),
        "values": json_floats(arr, digits=3),  # values[t][u]
        "min_positive": lo,
        "max": hi,
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def horizon(flow: np.ndarray, floor: float) -> Optional[int]:
    """Largest k with F[j] >= floor for all j <= k (None when F[0] is already below)."""
    ok = np.isfinite(flow) & (flow >= floor)
    if ok.size == 0 or not ok[0]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[0] - 1) if bad.size else int(ok.size - 1)


def flow_response(src: Source, run_name: str, layer_name: str) -> dict:
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    series = _layer_kind_series(src, run, layer, metadata.TEMPORAL_FLOW)
    steps, mat = _stack_rows(series)
    manifest = src.manifest(run) or {}
    floor = (manifest.get("thresholds") or {}).get("flow_floor", 1e-3)
    try:
        floor = float(floor)
    except (TypeError, ValueError):
        floor = 1e-3
    lo, hi = finite_range(mat, positive=True)
    return {
        "run": run_name,
        "layer": layer_name,
        "epochs": steps,
        "flow": json_floats(mat),  # flow[e][k]
        "horizon": [horizon(row, floor) for row in mat],
        "floor": floor,
        "min_positive": lo,
        "max": hi,
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def activations_response(src: Source, run_name: str, layer_name: str, state: Optional[str],
                         epoch: Optional[int], unit: Optional[int]) -> dict:
    """Tokens and one state's activations at one epoch, units ranked by variance.

    All units come as little-endian float16 in base64 (``data``, shape [S, T, U]) so the page
    can recolour and rank by a regex without asking again; ``values`` has the chosen unit as
    plain JSON numbers (NaN -> null).
    """
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    if not layer.states:
        raise NotFound("no activations for this layer: the run was logged without probe data")
    state = state or ("h" if "h" in layer.states else sorted(layer.states)[0])
    if state not in layer.states:
        raise NotFound(f"unknown state; states of this layer: {', '.join(sorted(layer.states))}")
    series = src.series(run, layer.states[state])
    steps = [s for s, _ in series]
    chosen = _pick_epoch(steps, epoch)
    arr = np.asarray(dict(series)[chosen])
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise NotFound("activations have an unexpected shape")
    n_seq, n_t, n_units = (int(d) for d in arr.shape)
    if unit is not None and not 0 <= unit < n_units:
        raise NotFound(f"unit out of range: this layer has {n_units} units")
    arr32 = arr.astype(np.float32)
    flat = arr32.reshape(-1, n_units)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(flat)
        counts = valid.sum(axis=0)
        safe = np.where(valid, flat, 0.0)
        mean = safe.sum(axis=0) / np.maximum(counts, 1)
        var = (np.where(valid, flat - mean, 0.0) ** 2).sum(axis=0) / np.maximum(counts, 1)
    var[counts == 0] = np.nan
    ranking = [int(u) for u in np.argsort(np.nan_to_num(-var, nan=np.inf), kind="stable")]
    chosen_unit = ranking[0] if unit is None else unit
    tokens = _tokens(src, run, n_seq, n_t)
    unit_ids = metadata.activation_unit_ids(src.manifest(run) or {}, layer_name, n_units)
    f16 = np.ascontiguousarray(arr.astype("<f2"))
    return {
        "run": run_name,
        "layer": layer_name,
        "state": state,
        "states": sorted(layer.states),
        "epoch": chosen,
        "epochs": steps,
        "shape": [n_seq, n_t, n_units],
        "tokens": tokens,
        "variance": json_floats(var),
        "ranking": ranking,
        "unit": chosen_unit,
        "unit_ids": unit_ids,  # the layer's unit index of each column (RNNMonitor(units=...))
        "values": json_floats(arr32[:, :, chosen_unit]),  # values[s][t] of `unit`
        "encoding": "float16-le-base64",
        "data": base64.b64encode(f16.tobytes()).decode("ascii"),
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def _tokens(src: Source, run: RunIndex, n_seq: int, n_t: int) -> Optional[list[list[str]]]:
    tag = run.run_kinds.get(metadata.TOKENS)
    if tag is None:
        return None
    series = src.series(run, tag)
    if not series:
        return None
    arr = np.asarray(series[-1][1], dtype=object)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        return None
    out = []
    for s in range(min(n_seq, arr.shape[0])):
        row = [metadata.decode_text(v) for v in arr[s, -n_t:]] if arr.shape[1] >= n_t else [metadata.decode_text(v) for v in arr[s]]
        out.append(row)
    return out


def health_response(src: Source, run_name: str, layer_name: str) -> dict:
    """Every standard scalar of one layer: health ratios, grad norm/horizon, per-gate stats."""
    run = src.run(run_name)
    manifest = src.manifest(run) or {}
    layer_names = [l.get("name") for l in manifest.get("layers", []) if isinstance(l, dict)]
    layer_names = [n for n in layer_names if isinstance(n, str)] + list(run.layers)
    if layer_name not in layer_names:
        raise NotFound("unknown layer for this run (see ./runs)")
    values = src.scalars(run_name)
    mine = []
    for tag in sorted(values):
        split = metadata.split_scalar_tag(tag, layer_names)
        if split and split[0] == layer_name:
            mine.append((tag, split[1]))
    series = {}
    for tag, name in mine:
        steps, vals = values.get(tag, ([], []))
        series[name] = {"epochs": steps, "values": [v if math.isfinite(v) else None for v in vals]}
    gates = []
    for info in manifest.get("layers", []):
        if isinstance(info, dict) and info.get("name") == layer_name:
            gates = [g for g in info.get("gates") or [] if isinstance(g, str)]
    return {
        "run": run_name,
        "layer": layer_name,
        "gates": gates,
        "health": [n for n in metadata.HEALTH_SCALARS if n in series],
        "roles": list(metadata.WEIGHT_ROLES),
        "stats": list(metadata.GATE_STATS),
        "series": series,
    }


def alerts_response(src: Source, run_name: str) -> dict:
    run = src.run(run_name)
    tag = run.run_kinds.get(metadata.ALERTS)
    alerts: list[dict] = []
    steps: list[int] = []
    if tag is not None:
        series = src.series(run, tag)
        steps = [s for s, _ in series]
        for step, value in series:
            try:
                records = json.loads(metadata.decode_text(value))
            except (ValueError, TypeError):
                continue
            for rec in records if isinstance(records, list) else []:
                if not isinstance(rec, dict):
                    continue
                alerts.append({
                    "epoch": rec.get("epoch", step),
                    "layer": str(rec.get("layer", "")),
                    "kind": str(rec.get("kind", "")),
                    "message": str(rec.get("message", "")),
                    "value": rec.get("value") if isinstance(rec.get("value"), (int, float)) else None,
                    "threshold": rec.get("threshold") if isinstance(rec.get("threshold"), (int, float)) else None,
                })
    return {
        "run": run_name,
        "enabled": tag is not None,
        "alerts": alerts,
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def prefetch_targets(src: Source, run_name: Optional[str] = None,
                     layer_name: Optional[str] = None) -> list[tuple[RunIndex, str]]:
    """Series the page will ask for next, to read ahead in the background.

    For one layer (after ``/gradients`` named it), or for the first layer of each run (after
    ``/runs``): G (the per-unit heatmap), F, the first activation state and the tokens.
    """
    out = []
    for name, run in sorted(src.index().items()):
        if run_name is not None and name != run_name:
            continue
        if layer_name is not None:
            chosen = layer_name if layer_name in run.layers else None
        else:
            manifest = src.manifest(run) or {}
            order = [l.get("name") for l in manifest.get("layers", []) if isinstance(l, dict)]
            chosen = next((n for n in order if n in run.layers), None)
        if chosen is None:
            continue
        layer = run.layers[chosen]
        for kind in (metadata.TIMESTEP_GRADIENTS, metadata.TEMPORAL_FLOW):
            if kind in layer.kinds:
                out.append((run, layer.kinds[kind]))
        if metadata.TOKENS in run.run_kinds:
            out.append((run, run.run_kinds[metadata.TOKENS]))
        if layer.states:
            state = "h" if "h" in layer.states else sorted(layer.states)[0]
            out.append((run, layer.states[state]))
    return out[:8]
