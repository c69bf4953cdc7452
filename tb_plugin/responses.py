"""One function per route: the JSON each dashboard view asks for, shaped from the data source.
TensorFlow-free, no HTTP, no file access."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any, Optional

import numpy as np

from rnn_monitor.alerts.kinds import RUN as RUN_LAYER
from rnn_monitor.logdir import metadata
from rnn_monitor.stats.periodicity import MIN_CYCLES, PERIODIC_STRENGTH
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


def binary_grid(arr: Any) -> dict:
    """A float array as exact little-endian float32 in base64, with its shape: a 512 x 1000
    grid is 2.7 MB of base64 that encodes in milliseconds, against 4.4 MB of JSON numbers that
    take about a second to format. NaN (masked or missing) and Inf stay as they are."""
    a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
    return {"encoding": "float32-le-base64", "shape": [int(d) for d in a.shape],
            "data": base64.b64encode(a.tobytes()).decode("ascii")}


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
                "sources": sources_of(run, idx),
                "missing": None if idx.kinds else missing_reason(manifest, lname),
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


def missing_reason(manifest: dict, layer_name: str) -> str:
    """Why a layer of the manifest has no probe data (gradients, activations, unit health)."""
    probe = manifest.get("probe")
    if not isinstance(probe, dict):
        return "the run was logged without probe data"
    if layer_name not in (probe.get("states") or {}):
        return ("the probe does not cover this layer (one it cannot step, or one not selected: "
                "the training log says which)")
    return "the probe part was switched off during training (the training log says why)"


def _order_states(states: list[str], gates: list[str]) -> list[str]:
    order = {"h": 0, "c": 1}
    gate_pos = {g: i for i, g in enumerate(gates)}
    return sorted(states, key=lambda s: (order.get(s, 2), gate_pos.get(s, 99), s))


def _absent(src: Source, run: RunIndex, layer: LayerIndex, what: str, otherwise: str) -> str:
    """The message for `what` missing from `layer`: why nothing was probed for it, when nothing
    was, else `otherwise` (why this one kind is missing)."""
    if layer.kinds or layer.states:
        return f"no {what} for this layer: {otherwise}"
    why = missing_reason(src.manifest(run) or {}, layer.name)
    return f"no {what} for this layer: {why}; its weights are in the Health view"


def _layer_kind_series(src: Source, run: RunIndex, layer: LayerIndex, kind: str) -> list:
    tag = layer.kinds.get(kind)
    if tag is None:
        raise NotFound(_absent(src, run, layer, kind, "the run was logged without probe data with labels"))
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
        # matrix [T, E]: timestep x epoch, as the heatmap draws it
        "matrix": binary_grid(mat.T),
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
        "timesteps": int(arr.shape[0]),  # columns: time bins when time_bin > 1
        "time_bin": src.time_bin(run, layer.kinds[kind]),
        "units": int(arr.shape[1]),
        "values": binary_grid(arr),  # [T, U]
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
        "flow": binary_grid(mat),  # [E, K]
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
    state, chosen, steps, arr = _state_at(src, run, layer.states, state, epoch,
                                          _absent(src, run, layer, "activations", "the run was logged without probe data"))
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


def _state_at(src: Source, run: RunIndex, states: dict, state: Optional[str], epoch: Optional[int],
              missing: str) -> tuple[str, int, list[int], np.ndarray]:
    """``(state, epoch, epochs, array)`` of one state's series (default h) at `epoch` (default:
    the last); NotFound with `missing`, or with the states there are."""
    if not states:
        raise NotFound(missing)
    state = state or ("h" if "h" in states else sorted(states)[0])
    if state not in states:
        raise NotFound(f"unknown state; states of this layer: {', '.join(sorted(states))}")
    series = src.series(run, states[state])
    steps = [s for s, _ in series]
    chosen = _pick_epoch(steps, epoch)
    return state, chosen, steps, np.asarray(dict(series)[chosen])


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


def _records(src: Source, run: Any, tag: Optional[str]) -> tuple[list[dict], list[int]]:
    """The alert or finding records of a run (one JSON list per logged epoch), and the steps."""
    records: list[dict] = []
    steps: list[int] = []
    if tag is None:
        return records, steps
    series = src.series(run, tag)
    steps = [s for s, _ in series]
    for step, value in series:
        try:
            found = json.loads(metadata.decode_text(value))
        except (ValueError, TypeError):
            continue
        for rec in found if isinstance(found, list) else []:
            if not isinstance(rec, dict):
                continue
            records.append({
                "epoch": rec.get("epoch", step),
                "layer": str(rec.get("layer", "")),
                "kind": str(rec.get("kind", "")),
                "message": str(rec.get("message", "")),
                "value": rec.get("value") if isinstance(rec.get("value"), (int, float)) else None,
                "threshold": rec.get("threshold") if isinstance(rec.get("threshold"), (int, float)) else None,
            })
    return records, steps


def _finding_spans(records: list[dict], scalars: dict) -> list[dict]:
    """The raised findings, each with the epochs it stayed active: from its own 0/1 scalar
    (``<layer>/finding/<kind>``, ``_run/finding/<kind>`` for run-wide ones) when the log has it,
    else just the epoch it was raised at."""
    out = []
    for rec in records:
        layer, kind, first = rec["layer"], rec["kind"], rec["epoch"]
        tag = (metadata.run_scalar_tag(f"finding/{kind}") if layer == RUN_LAYER
               else metadata.scalar_tag(layer, f"finding/{kind}"))
        steps, values = scalars.get(tag, ([], []))
        active = [first]
        for step, value in sorted(zip(steps, values)):
            if isinstance(first, (int, float)) and step > first:
                if value != 1.0:
                    break
                active.append(step)
        out.append({**rec, "epochs": active, "last": active[-1]})
    return out


def alerts_response(src: Source, run_name: str) -> dict:
    """A run's alerts (one row each) and findings (one row per layer and kind, with its epochs)."""
    run = src.run(run_name)
    alerts, steps = _records(src, run, run.run_kinds.get(metadata.ALERTS))
    finding_tag = run.run_kinds.get(metadata.FINDINGS)
    findings, _ = _records(src, run, finding_tag)
    findings = _finding_spans(findings, src.scalars(run_name) if findings else {})
    return {
        "run": run_name,
        "enabled": metadata.ALERTS in run.run_kinds,
        "alerts": alerts,
        "findings_enabled": finding_tag is not None,
        "findings": findings,
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


# ----------------------------------------------------------------- text sources, units view
TEXT_SOURCES = ("probe", "generated", "importance")
TOP_TOKENS = 12  # average input of token models: the tokens shown per unit
MAX_REGEX_LEN = 200


def _f16(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(np.asarray(arr).astype("<f2")).tobytes()).decode("ascii")


def _run_series_at(src: Source, run: RunIndex, kind: str, epoch: Optional[int], why: str) -> tuple[int, list[int], Any]:
    tag = run.run_kinds.get(kind)
    if tag is None:
        raise NotFound(why)
    series = src.series(run, tag)
    steps = [s for s, _ in series]
    chosen = _pick_epoch(steps, epoch)
    return chosen, steps, dict(series)[chosen]


def sources_of(run: RunIndex, layer: LayerIndex) -> list[str]:
    """The text view's sources this layer has: probe text, generated text, token importance."""
    out = ["probe"] if layer.states else []
    if layer.generated and metadata.GENERATED_TOKENS in run.run_kinds:
        out.append("generated")
    if metadata.TOKEN_IMPORTANCE in run.run_kinds:
        out.append("importance")
    return out


def text_source_response(src: Source, run_name: str, layer_name: str, source: str, state: Optional[str],
                         epoch: Optional[int]) -> dict:
    """The text view's generated-text and importance sources, shaped like `activations_response`.

    generated: the text generated at `epoch`, one sequence, every unit of `state`.
    importance: the probe text with one "unit", the occlusion importance (score drop when the
    token is removed), plus the prediction-as-read curve and the decision point.
    """
    if source not in TEXT_SOURCES:
        raise BadRequest(f"source must be one of {', '.join(TEXT_SOURCES)}")
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    if source == "generated":
        state, chosen, steps, arr = _state_at(src, run, layer.generated, state, epoch,
                                              'no generated text for this layer: log it with RNNMonitor(generate={"seed": ...})')
        arr = np.asarray(arr, dtype=np.float32)[None]  # [1, N, U]
        _, _, raw = _run_series_at(src, run, metadata.GENERATED_TOKENS, chosen, "no generated tokens")
        tokens = [[metadata.decode_text(t) for t in np.asarray(raw, dtype=object).ravel()]]
        states, extra = sorted(layer.generated), {}
    else:
        why = "no token importance: it is logged for classifiers (one output per sequence) with probe_data"
        chosen, steps, imp = _run_series_at(src, run, metadata.TOKEN_IMPORTANCE, epoch, why)
        arr = np.asarray(imp, dtype=np.float32)[..., None]  # [S, T, 1]
        _, _, reading = _run_series_at(src, run, metadata.PREDICTION_AS_READ, chosen, why)
        try:
            _, _, info_raw = _run_series_at(src, run, metadata.IMPORTANCE_INFO, chosen, why)
            info = json.loads(metadata.decode_text(info_raw))
        except (NotFound, ValueError):
            info = {}
        tokens = _tokens(src, run, arr.shape[0], arr.shape[1])
        state, states = "importance", ["importance"]
        extra = {"reading": json_floats(np.asarray(reading, dtype=np.float32)), "decision": info.get("decision"),
                 "target": info.get("target"), "score": info.get("score")}
    n_seq, n_t, n_units = (int(d) for d in arr.shape)
    with np.errstate(invalid="ignore"):
        var = np.nanvar(arr.reshape(-1, n_units), axis=0) if np.isfinite(arr).any() else np.full(n_units, np.nan)
    ranking = [int(u) for u in np.argsort(np.nan_to_num(-var, nan=np.inf), kind="stable")]
    return dict({
        "run": run_name, "layer": layer_name, "source": source, "state": state, "states": states,
        "epoch": chosen, "epochs": steps, "shape": [n_seq, n_t, n_units], "tokens": tokens,
        "variance": json_floats(var), "ranking": ranking, "unit": ranking[0], "unit_ids": list(range(n_units)),
        "values": json_floats(arr[:, :, ranking[0]]), "encoding": "float16-le-base64", "data": _f16(arr),
        "sampling": src.sampling(run, steps, list(run.layers)),
    }, **extra)


def _periodicity_at(src: Source, run: RunIndex, layer: LayerIndex, epoch: Optional[int]) -> tuple[int, list[int], dict]:
    tag = layer.kinds.get(metadata.PERIODICITY)
    if tag is None:
        raise NotFound(_absent(src, run, layer, "unit descriptions", "they need probe_data of token ids or rows [B, T, D]"))
    series = src.series(run, tag)
    steps = [s for s, _ in series]
    chosen = _pick_epoch(steps, epoch)
    power = np.asarray(dict(series)[chosen], dtype=np.float32)
    freqs = dict(src.series(run, layer.kinds[metadata.PERIODICITY_FREQS])).get(chosen)
    peak = dict(src.series(run, layer.kinds[metadata.PERIODICITY_PEAK])).get(chosen)
    if freqs is None or peak is None:
        raise NotFound("the unit descriptions of this epoch are incomplete")
    return chosen, steps, {"power": power, "freqs": np.asarray(freqs, np.float64),
                           "peak": np.asarray(peak[0], np.float64), "strength": np.asarray(peak[1], np.float64)}


def units_response(src: Source, run_name: str, layer_name: str, epoch: Optional[int]) -> dict:
    """The Units view's overview: the Fourier heat surface (each unit's power share per frequency,
    most periodic first) and the periodic units, at one epoch."""
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    chosen, steps, p = _periodicity_at(src, run, layer, epoch)
    strength = p["strength"]
    order = [int(u) for u in np.argsort(-np.nan_to_num(strength, nan=-1.0), kind="stable")]
    total = p["power"].sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, p["power"] / np.where(total > 0, total, 1.0), np.nan)
    min_freq = MIN_CYCLES * float(p["freqs"][0]) if p["freqs"].size else 0.0  # lowest bin ~ 1 / length
    periodic = [
        {"unit": u, "freq": float(p["peak"][u]), "period": float(1.0 / p["peak"][u]) if p["peak"][u] > 0 else None,
         "strength": float(strength[u])}
        for u in order if np.isfinite(strength[u]) and strength[u] > PERIODIC_STRENGTH and p["peak"][u] >= min_freq - 1e-9
    ]
    return {
        "run": run_name, "layer": layer_name, "epoch": chosen, "epochs": steps,
        "units": int(share.shape[0]), "freqs": json_floats(p["freqs"]), "order": order,
        "share": _f16(share[order]), "encoding": "float16-le-base64", "shape": [int(d) for d in share.shape],
        "strength": json_floats(strength), "peak_freq": json_floats(p["peak"]), "periodic": periodic,
        "threshold": PERIODIC_STRENGTH, "min_cycles": MIN_CYCLES, "sampling": src.sampling(run, steps, list(run.layers)),
    }


def unit_response(src: Source, run_name: str, layer_name: str, unit: int, epoch: Optional[int],
                  regex: Optional[str]) -> dict:
    """One unit's card: its average input at `epoch`, and across every logged epoch its peak
    frequency and strength, its favourite token, its saturation and (with `regex`) its relevance
    to that feature in the probe text."""
    from rnn_monitor.stats.relevance import feature_mask, relevance

    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    chosen, steps, p = _periodicity_at(src, run, layer, epoch)
    n_units = int(p["power"].shape[0])
    if not 0 <= unit < n_units:
        raise NotFound(f"unit out of range: this layer has {n_units} units")
    manifest = src.manifest(run) or {}
    probe = manifest.get("probe") if isinstance(manifest.get("probe"), dict) else {}
    described = (probe or {}).get("average_input") or {}
    labels = described.get("labels") if isinstance(described.get("labels"), list) else None
    tokens_input = described.get("input") == "tokens"
    avg_series = dict(src.series(run, layer.kinds[metadata.AVERAGE_INPUT])) if metadata.AVERAGE_INPUT in layer.kinds else {}
    if metadata.AVERAGE_INPUT_IDS in layer.kinds:  # top-K per position: back to [U, W, D]
        id_series = dict(src.series(run, layer.kinds[metadata.AVERAGE_INPUT_IDS]))
        avg_series = {s: metadata.dense_average_input(v, id_series.get(s), described.get("vocab_size"))
                      for s, v in avg_series.items() if s in id_series}
    avg = None
    if chosen in avg_series:
        a = np.asarray(avg_series[chosen], dtype=np.float32)[unit]  # [W, D]
        if tokens_input:
            top = [int(d) for d in np.argsort(-np.nan_to_num(a.sum(axis=0)), kind="stable")[:TOP_TOKENS]]
            names = [str(labels[d]) if labels and d < len(labels) else f"<{d}>" for d in top]
            avg = {"kind": "tokens", "columns": names, "values": json_floats(a[:, top]), "window": int(a.shape[0])}
        else:
            avg = {"kind": "continuous", "columns": [str(d) for d in range(a.shape[1])],
                   "values": json_floats(a), "window": int(a.shape[0])}
    # across epochs
    peaks, strengths, favourite = [], [], []
    per_epoch = {s: arr for s, arr in src.series(run, layer.kinds[metadata.PERIODICITY_PEAK])}
    for s in steps:
        row = per_epoch.get(s)
        peaks.append(float(row[0][unit]) if row is not None else None)
        strengths.append(float(row[1][unit]) if row is not None else None)
        a = avg_series.get(s)
        if a is not None and tokens_input:
            last = np.asarray(a, np.float32)[unit, -1]
            d = int(np.argmax(last)) if np.isfinite(last).any() and last.max() > 0 else None
            favourite.append(None if d is None else (str(labels[d]) if labels and d < len(labels) else f"<{d}>"))
        else:
            favourite.append(None)
    relevance_by_epoch, saturation, act_epochs, note = [], [], [], None
    if "h" in layer.states:
        ids = None
        for s, acts in src.series(run, layer.states["h"]):
            acts = np.asarray(acts, dtype=np.float32)
            if ids is None:
                ids = metadata.activation_unit_ids(manifest, layer_name, acts.shape[-1])
            if unit not in ids:
                note = "this unit's activations were not kept (RNNMonitor(units=...))"
                break
            column = acts[..., ids.index(unit)]
            act_epochs.append(s)
            finite = column[np.isfinite(column)]
            saturation.append(float(np.mean(np.abs(finite) > 0.99)) if finite.size else None)
            if regex:
                tokens = _tokens(src, run, acts.shape[0], acts.shape[1])
                if tokens is None:
                    note = "the probe text was logged without a vocabulary: no regex relevance"
                    regex = None
                    continue
                if len(regex) > MAX_REGEX_LEN:
                    raise BadRequest(f"regex longer than {MAX_REGEX_LEN} characters")
                try:
                    mask = feature_mask(tokens, regex)
                except re.error as exc:
                    raise BadRequest(f"not a valid regular expression: {exc}") from None
                relevance_by_epoch.append(float(relevance(column[..., None], mask)[0]))
    return {
        "run": run_name, "layer": layer_name, "unit": unit, "epoch": chosen, "epochs": steps,
        "average_input": avg, "peak_freq": json_floats(np.array(peaks, dtype=float)),
        "strength": json_floats(np.array(strengths, dtype=float)), "favourite": favourite,
        "activation_epochs": act_epochs, "saturation": saturation,
        "relevance": json_floats(np.array(relevance_by_epoch, dtype=float)) if regex else None,
        "regex": regex, "note": note,
    }
