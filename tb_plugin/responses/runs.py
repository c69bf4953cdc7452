"""``/runs``: the runs with RNN Monitor data, their layers, and what each layer holds."""

from __future__ import annotations

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import LayerIndex, RunIndex, SAMPLES_FLAG, Source
from tb_plugin.lookup import missing_reason
from tb_plugin.responses.text import sources_of

STATE_ORDER = {"h": 0, "c": 1}  # then the gates in the manifest's order


def runs_impl(src: Source) -> dict:
    """Every run with a manifest, and a note for each run or series that cannot be shown."""
    runs = []
    notes = []
    for name, run in sorted(src.index().items()):
        manifest = src.manifest(run)
        notes.extend(f"{name}: {msg}" for msg in run.skipped)
        if manifest is None:
            if run.layers or run.run_kinds:
                notes.append(f"{name}: no manifest (written by an older or unfinished rnn-monitor)")
            continue
        runs.append(_run_entry(name, run, manifest))
    return {"runs": runs, "notes": notes, "samples_flag": SAMPLES_FLAG}


def _run_entry(name: str, run: RunIndex, manifest: dict) -> dict:
    """One run: its layers (the manifest's, then any others with data) and run-wide facts."""
    described = {l.get("name"): l for l in manifest.get("layers", []) if isinstance(l, dict)}
    names = [n for n in described if isinstance(n, str)]
    names += sorted(n for n in run.layers if n not in described)
    return {
        "run": name,
        "layers": [_layer_entry(run, manifest, lname, described.get(lname, {})) for lname in names],
        "has_tokens": metadata.TOKENS in run.run_kinds,
        "has_alerts": metadata.ALERTS in run.run_kinds,
        "probe": manifest.get("probe"),
        "every": manifest.get("every"),
        "thresholds": manifest.get("thresholds") or {},
    }


def _layer_entry(run: RunIndex, manifest: dict, lname: str, info: dict) -> dict:
    """One layer: the manifest's description, its states and kinds, and why it has no data."""
    idx = run.layers.get(lname, LayerIndex(lname))
    return {
        "name": lname,
        "kind": info.get("kind"),
        "class": info.get("class"),
        "direction": info.get("direction"),
        "units": info.get("units"),
        "gates": info.get("gates") or [],
        "states": order_states(list(idx.states), info.get("gates") or []),
        "has": {k: k in idx.kinds for k in metadata.LAYER_KINDS if k != metadata.ACTIVATIONS},
        "sources": sources_of(run, idx),
        "missing": None if idx.kinds else missing_reason(manifest, lname),
    }


def order_states(states: list[str], gates: list[str]) -> list[str]:
    """h, c, then the gates in their layout's order, then anything else by name."""
    gate_pos = {g: i for i, g in enumerate(gates)}
    return sorted(states, key=lambda s: (STATE_ORDER.get(s, 2), gate_pos.get(s, 99), s))
