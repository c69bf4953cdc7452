"""The plugin's only way to the logs: a TensorBoard data provider (`context.data_provider`), so
the same code works with the Python multiplexer (``--load_fast=false``) and the Rust data server
(``--load_fast=true``). Requests can only name runs, layers and states that the provider lists for
the ``rnn_monitor`` plugin; anything else raises `NotFound` / `BadRequest`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from tensorboard.data import provider as tb_provider

from rnn_monitor.logdir import metadata
from tb_plugin.params import NotFound
from tb_plugin.cache import SeriesCache

SAMPLES_FLAG = f"--samples_per_plugin {metadata.PLUGIN_NAME}=0"
SCALARS_PLUGIN = "scalars"
# Ask the provider for everything it holds; what it holds is set by --samples_per_plugin.


_DOWNSAMPLE_ALL = 1_000_000


@dataclass
class LayerIndex:
    name: str
    kinds: dict[str, str] = field(default_factory=dict)  # kind -> tag
    states: dict[str, str] = field(default_factory=dict)  # activation state -> tag
    generated: dict[str, str] = field(default_factory=dict)  # generated-text state -> tag


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
        """The layer's index; empty for a layer the manifest names but nothing was probed for."""
        if name in run.layers:
            return run.layers[name]
        listed = (self.manifest(run) or {}).get("layers") or []
        if any(isinstance(info, dict) and info.get("name") == name for info in listed):
            return LayerIndex(name)
        raise NotFound("unknown layer for this run (see ./runs)")

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
        downsample = _DOWNSAMPLE_ALL
        while True:
            try:
                result = self.provider.read_tensors(
                    self.ctx,
                    experiment_id=self.eid,
                    plugin_name=metadata.PLUGIN_NAME,
                    downsample=downsample,
                    run_tag_filter=tb_provider.RunTagFilter(runs=[run.run], tags=[tag]),
                )
                break
            except Exception as exc:  # noqa: BLE001 - only the size limit is retried
                smaller = _fewer_steps(exc, run.series[tag], downsample)
                if smaller is None:
                    raise
                downsample = smaller
        data = result.get(run.run, {}).get(tag, [])
        by_step: dict[int, np.ndarray] = {}
        for datum in data:
            by_step[int(datum.step)] = datum.numpy  # later writes of a step win
        out = sorted(by_step.items())
        self.cache.put(key, version, out, sum(a.nbytes if hasattr(a, "nbytes") else 64 for _, a in out))
        return out

    def time_bin(self, run: RunIndex, tag: str) -> int:
        """Steps per time bin of a per-unit gradient series (its metadata's ``time_bin``; 1)."""
        meta = run.series.get(tag)
        try:
            content = metadata.parse_plugin_content(meta.plugin_content) if meta is not None else {}
            return max(1, int(content.get("time_bin", 1) or 1))
        except (ValueError, TypeError):
            return 1

    def latest(self, run: RunIndex, kind: str) -> Optional[Any]:
        """The last logged value of a run-wide series of `kind` (the manifest, the probe text's
        tokens); None when the run has none."""
        tag = run.run_kinds.get(kind)
        if tag is None:
            return None
        series = self.series(run, tag)
        return series[-1][1] if series else None

    def manifest(self, run: RunIndex) -> Optional[dict]:
        value = self.latest(run, metadata.MANIFEST)
        if value is None:
            return None
        try:
            parsed = json.loads(metadata.decode_text(value))
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
        """How many epochs TensorBoard dropped from a tensor series, or None when none were.

        With every tensor kept (``--samples_per_plugin rnn_monitor=0``) epochs are only missing
        when the series was too large for the data server to send whole (`_fewer_steps`)."""
        if not steps:
            return None
        logged = self.logged_epochs(run, layers)
        expected = [e for e in logged if e <= steps[-1]]
        have = set(steps)
        missing = [e for e in expected if e not in have]
        if not missing:
            return None
        total = len(set(expected) | have)
        if self.sampling_hint == 0:
            return {
                "shown": len(steps),
                "logged": total,
                "flag": None,
                "message": (
                    f"Showing {len(steps)} of {total} logged epochs, evenly spaced: the whole series "
                    f"is larger than TensorBoard's data server sends at once "
                    f"({GRPC_MAX_BYTES // 2**20} MB). Fewer units or time steps per epoch "
                    f"(RNNMonitor(units=..., max_timesteps=...)) or --load_fast=false show every epoch."
                ),
            }
        return {
            "shown": len(steps),
            "logged": total,
            "flag": SAMPLES_FLAG,
            "message": (
                f"TensorBoard kept {len(steps)} of {total} logged epochs of "
                f"this series (it samples plugin tensors). Restart TensorBoard with "
                f"{SAMPLES_FLAG} to see every epoch."
            ),
        }


# What TensorBoard's data server (--load_fast=true) may send in one answer: its gRPC client's
# limit. A longer series is read evenly downsampled instead (`_fewer_steps`).
GRPC_MAX_BYTES = 256 * 1024 * 1024
_OVERSIZE = re.compile(r"larger than max \((\d+) vs\. (\d+)\)")


def _fewer_steps(exc: Exception, meta: Any, downsample: int) -> Optional[int]:
    """For an answer over the data server's size limit ("Received message larger than max (N
    vs. M)", gRPC RESOURCE_EXHAUSTED): how many steps to ask for instead, so that the answer
    fits with 10% to spare; None for any other error, or when one step does not fit."""
    text = str(exc)
    code = getattr(exc, "code", None)
    code_name = getattr(code() if callable(code) else code, "name", "")
    if "larger than max" not in text and code_name != "RESOURCE_EXHAUSTED":
        return None
    steps = int(getattr(meta, "max_step", 0) or 0) + 1
    current = min(downsample, steps)
    match = _OVERSIZE.search(text)
    if match and int(match.group(1)) > 0:
        fits = int(current * 0.9 * int(match.group(2)) / int(match.group(1)))
    else:
        fits = current // 2
    fits = min(fits, current - 1)
    return fits if fits >= 1 else None


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
        elif kind == metadata.GENERATED_ACTIVATIONS:
            if state:
                entry.generated[state] = tag
                entry.kinds[kind] = tag
        else:
            entry.kinds[kind] = tag
    return index
