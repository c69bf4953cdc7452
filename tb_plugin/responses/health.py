"""The Health view's scalars: ``/health``, every standard scalar of one layer (health ratios,
gradient norm and horizon, per-gate weight statistics)."""

from __future__ import annotations

import math

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import Source
from tb_plugin.lookup import manifest_layer_names
from tb_plugin.params import NotFound


def health_impl(src: Source, run_name: str, layer_name: str) -> dict:
    """Every standard scalar of one layer: health ratios, grad norm/horizon, per-gate stats."""
    run = src.run(run_name)
    manifest = src.manifest(run) or {}
    layer_names = manifest_layer_names(manifest) + list(run.layers)
    if layer_name not in layer_names:
        raise NotFound("unknown layer for this run (see ./runs)")
    series = layer_scalars(src.scalars(run_name), layer_names, layer_name)
    return {
        "run": run_name,
        "layer": layer_name,
        "gates": gates_of(manifest, layer_name),
        "health": [n for n in metadata.HEALTH_SCALARS if n in series],
        "roles": list(metadata.WEIGHT_ROLES),
        "stats": list(metadata.GATE_STATS),
        "series": series,
    }


def layer_scalars(values: dict[str, tuple[list[int], list[float]]], layer_names: list[str],
                  layer_name: str) -> dict[str, dict]:
    """{scalar name: {epochs, values}} of the scalars of `layer_name` (NaN/Inf -> None): tags are
    told apart by the layers of the run, so ``bi/forward`` never takes ``bi/backward``'s."""
    series = {}
    for tag in sorted(values):
        split = metadata.split_scalar_tag(tag, layer_names)
        if split and split[0] == layer_name:
            steps, vals = values[tag]
            series[split[1]] = {"epochs": steps, "values": [v if math.isfinite(v) else None for v in vals]}
    return series


def gates_of(manifest: dict, layer_name: str) -> list[str]:
    """The gate names the manifest gives the layer (none for a layer it does not describe)."""
    gates = []
    for info in manifest.get("layers", []):
        if isinstance(info, dict) and info.get("name") == layer_name:
            gates = [g for g in info.get("gates") or [] if isinstance(g, str)]
    return gates
