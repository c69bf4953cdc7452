"""Data shaping for the RNN Monitor dashboard: TensorFlow-free, no HTTP, no file access.

Everything is read through a TensorBoard data provider (`context.data_provider`), so the same
code works with the Python multiplexer (``--load_fast=false``) and the Rust data server
(``--load_fast=true``). Requests can only name runs, layers and states that the provider lists
for the ``rnn_monitor`` plugin; anything else raises `NotFound` / `BadRequest`, which the plugin
turns into a JSON error without paths or tracebacks.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from tensorboard.data import provider as tb_provider

from rnn_monitor.logdir import metadata

SAMPLES_FLAG = f"--samples_per_plugin {metadata.PLUGIN_NAME}=0"
SCALARS_PLUGIN = "scalars"
# Ask the provider for everything it holds; what it holds is set by --samples_per_plugin.
_DOWNSAMPLE_ALL = 1_000_000
_MAX_PARAM_LEN = 512
_INT_RE = re.compile(r"-?[0-9]{1,18}")
# Listings (which series exist, the run's scalars) are reused this long; TensorBoard itself
# reloads the logs every 5 s by default.
RECENT_SECONDS = 2.0


class RequestError(Exception):
    """A request the dashboard cannot answer; `status` is the HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestError):
    status = 400


class NotFound(RequestError):
    status = 404


# --------------------------------------------------------------------------- parameters
def text_param(args: Any, name: str, required: bool = True) -> Optional[str]:
    value = args.get(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"missing parameter {name!r}")
        return None
    if len(value) > _MAX_PARAM_LEN or "\x00" in value:
        raise BadRequest(f"parameter {name!r} is not a valid name")
    return value


def int_param(args: Any, name: str, required: bool = True) -> Optional[int]:
    raw = args.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"missing parameter {name!r}")
        return None
    if not _INT_RE.fullmatch(raw):
        raise BadRequest(f"parameter {name!r} must be an integer of at most 18 digits")
    return int(raw)


# --------------------------------------------------------------------------- JSON helpers
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


# --------------------------------------------------------------------------- index
@dataclass
class LayerIndex:
    name: str
    kinds: dict[str, str] = field(default_factory=dict)  # kind -> tag
    states: dict[str, str] = field(default_factory=dict)  # activation state -> tag


@dataclass
class RunIndex:
    run: str
    run_kinds: dict[str, str] = field(default_factory=dict)
    layers: dict[str, LayerIndex] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)  # tag -> TensorTimeSeries
    skipped: list[str] = field(default_factory=list)


class Source:
    """One request's view of the data: the provider, request context and experiment."""

    def __init__(self, provider: Any, ctx: Any, experiment_id: str, cache: "SeriesCache",
                 sampling_hint: Optional[int] = None) -> None:
        if provider is None:
            raise NotFound("TensorBoard has no data provider")
        self.provider = provider
        self.ctx = ctx
        self.eid = experiment_id
        self.cache = cache
        self.sampling_hint = sampling_hint
        self._index: Optional[dict[str, RunIndex]] = None

    # ---------------------------------------------------------------- listing
    def index(self) -> dict[str, RunIndex]:
        if self._index is None:
            def fetch():
                listing = self.provider.list_tensors(
                    self.ctx, experiment_id=self.eid, plugin_name=metadata.PLUGIN_NAME
                )
                return {run: _index_run(run, tags) for run, tags in (listing or {}).items()}

            self._index = self.cache.recent(("index", self.eid), fetch)
        return self._index

    def run(self, name: Optional[str]) -> RunIndex:
        runs = self.index()
        if name not in runs:
            raise NotFound("unknown run (see ./runs for the runs with RNN Monitor data)")
        return runs[name]

    def layer(self, run: RunIndex, name: Optional[str]) -> LayerIndex:
        if name not in run.layers:
            raise NotFound("unknown layer for this run (see ./runs)")
        return run.layers[name]

    # ---------------------------------------------------------------- reading
    def series(self, run: RunIndex, tag: str) -> list[tuple[int, np.ndarray]]:
        """[(step, array)] of one plugin tensor series, by step; cached until it changes."""
        meta = run.series[tag]
        key = (self.eid, run.run, tag)
        version = (getattr(meta, "max_step", None), getattr(meta, "max_wall_time", None))
        hit = self.cache.get(key, version)
        if hit is not None:
            return hit
        with self.cache.loading(key):  # one read per series, even for concurrent requests
            hit = self.cache.get(key, version)
            if hit is not None:
                return hit
            return self._read_series(run, tag, key, version)

    def _read_series(self, run: RunIndex, tag: str, key: tuple, version: Any) -> list:
        result = self.provider.read_tensors(
            self.ctx,
            experiment_id=self.eid,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=_DOWNSAMPLE_ALL,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run.run], tags=[tag]),
        )
        data = result.get(run.run, {}).get(tag, [])
        by_step: dict[int, np.ndarray] = {}
        for datum in data:
            by_step[int(datum.step)] = datum.numpy  # later writes of a step win
        out = sorted(by_step.items())
        self.cache.put(key, version, out, sum(a.nbytes if hasattr(a, "nbytes") else 64 for _, a in out))
        return out

    def manifest(self, run: RunIndex) -> Optional[dict]:
        tag = run.run_kinds.get(metadata.MANIFEST)
        if tag is None:
            return None
        series = self.series(run, tag)
        if not series:
            return None
        try:
            parsed = json.loads(metadata.decode_text(series[-1][1]))
        except (ValueError, TypeError):
            return None
        return parsed if isinstance(parsed, dict) else None

    def scalars(self, run: str) -> dict[str, tuple[list[int], list[float]]]:
        """{tag: (steps, values)} of every standard scalar of `run` (one provider call)."""

        def fetch():
            result = self.provider.read_scalars(
                self.ctx,
                experiment_id=self.eid,
                plugin_name=SCALARS_PLUGIN,
                downsample=_DOWNSAMPLE_ALL,
                run_tag_filter=tb_provider.RunTagFilter(runs=[run]),
            )
            out = {}
            for tag, points in (result or {}).get(run, {}).items():
                by_step = {int(p.step): float(p.value) for p in points}
                steps = sorted(by_step)
                out[tag] = (steps, [by_step[s] for s in steps])
            return out

        return self.cache.recent(("scalars", self.eid, run), fetch)

    def logged_epochs(self, run: RunIndex, layers: list[str]) -> list[int]:
        """Epochs at which the callback logged: the steps of the layers' scalar series.

        Scalars are kept far more generously than tensors (1000 per series by default), so
        they tell which epochs a sampled tensor series is missing.
        """
        steps: set[int] = set()
        for tag, (tag_steps, _) in self.scalars(run.run).items():
            if metadata.split_scalar_tag(tag, layers):
                steps.update(tag_steps)
        return sorted(steps)

    def sampling(self, run: RunIndex, steps: list[int], layers: list[str]) -> Optional[dict]:
        """How many epochs TensorBoard dropped from a tensor series, or None when none were."""
        if not steps or self.sampling_hint == 0:
            return None
        logged = self.logged_epochs(run, layers)
        expected = [e for e in logged if e <= steps[-1]]
        have = set(steps)
        missing = [e for e in expected if e not in have]
        if not missing:
            return None
        return {
            "shown": len(steps),
            "logged": len(set(expected) | have),
            "flag": SAMPLES_FLAG,
            "message": (
                f"TensorBoard kept {len(steps)} of {len(set(expected) | have)} logged epochs of "
                f"this series (it samples plugin tensors). Restart TensorBoard with "
                f"{SAMPLES_FLAG} to see every epoch."
            ),
        }


def _index_run(run: str, tags: dict[str, Any]) -> RunIndex:
    index = RunIndex(run=run)
    for tag, meta in sorted(tags.items()):
        try:
            content = metadata.parse_plugin_content(meta.plugin_content)
        except (ValueError, TypeError) as exc:
            index.skipped.append(str(exc) if "newer" in str(exc) else f"unreadable series {tag!r}")
            continue
        kind = content.get("kind")
        layer = content.get("layer")
        state = content.get("state")
        if not isinstance(kind, str) or (layer is not None and not isinstance(layer, str)):
            continue
        if state is not None and not isinstance(state, str):
            continue
        if tag != metadata.plugin_tag(kind, layer=layer, state=state):
            continue  # not laid out as metadata.py says: ignore rather than guess
        index.series[tag] = meta
        if layer is None:
            if kind in metadata.RUN_KINDS:
                index.run_kinds[kind] = tag
            continue
        if kind not in metadata.LAYER_KINDS:
            continue
        entry = index.layers.setdefault(layer, LayerIndex(layer))
        if kind == metadata.ACTIVATIONS:
            if state:
                entry.states[state] = tag
        else:
            entry.kinds[kind] = tag
    return index


# --------------------------------------------------------------------------- cache
class SeriesCache:
    """LRU of decoded tensor series, bounded in bytes, invalidated when a series grows."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: "OrderedDict[tuple, tuple[Any, Any, int]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._recent: dict[tuple, tuple[float, Any]] = {}
        self._loading: dict[tuple, threading.Lock] = {}

    def recent(self, key: tuple, fetch: Any, ttl: float = RECENT_SECONDS) -> Any:
        """`fetch()`'s value, reused for `ttl` seconds: one page load asks for the same listing
        several times, and each provider call costs a round trip to the data server."""
        now = time.monotonic()
        with self._lock:
            hit = self._recent.get(key)
            if hit is not None and now - hit[0] < ttl:
                return hit[1]
        value = fetch()
        with self._lock:
            self._recent[key] = (now, value)
            if len(self._recent) > 64:
                oldest = min(self._recent, key=lambda k: self._recent[k][0])
                del self._recent[oldest]
        return value

    def loading(self, key: tuple) -> threading.Lock:
        """A lock per series key, held while it is read from the provider."""
        with self._lock:
            lock = self._loading.get(key)
            if lock is None:
                if len(self._loading) > 1024:
                    self._loading = {k: v for k, v in self._loading.items() if v.locked()}
                lock = self._loading[key] = threading.Lock()
            return lock

    def clear_recent(self) -> None:
        with self._lock:
            self._recent.clear()

    def get(self, key: tuple, version: Any) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != version:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple, version: Any, value: Any, nbytes: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if nbytes > self.max_bytes:
                return
            self._items[key] = (version, value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and self._items:
                _, (_, _, size) = self._items.popitem(last=False)
                self._bytes -= size


# --------------------------------------------------------------------------- responses
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
    unit_ids = _unit_ids(src.manifest(run) or {}, layer_name, n_units)
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


def _unit_ids(manifest: dict, layer_name: str, n_units: int) -> list[int]:
    """Which of the layer's units the activation columns are: ``RNNMonitor(units=[...])``
    keeps a subset (those within the layer's size), in the order given."""
    probe = manifest.get("probe") if isinstance(manifest.get("probe"), dict) else {}
    chosen = probe.get("units") if probe else None
    size = None
    for info in manifest.get("layers", []):
        if isinstance(info, dict) and info.get("name") == layer_name and isinstance(info.get("units"), int):
            size = info["units"]
    if isinstance(chosen, list) and all(isinstance(u, int) for u in chosen):
        keep = [u for u in chosen if 0 <= u and (size is None or u < size)]
        if len(keep) == n_units:
            return keep
    return list(range(n_units))


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
