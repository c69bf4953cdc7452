"""`rnn-monitor report`: a readable summary of runs, no TensorFlow.

`summarize_run(run)` turns a `reader.Run` into a JSON-ready dict; `format_report` renders a list
of those for an 80-column terminal.
"""

from __future__ import annotations

from typing import Any

from rnn_monitor.cli.terminal import (
    MAX_SPARK, WIDTH, Style, alert_lines, number, fmt, sparkline, wrap,
)
from rnn_monitor.logdir import metadata


def summarize_run(run: Any, name: str) -> dict:
    """Everything the report shows for one run, JSON-ready."""
    layers_meta = {layer.get("name"): layer for layer in run.manifest.get("layers", [])}
    layers = []
    for layer in run.layers:
        names = run.scalar_names(layer)
        latest = {}
        for health in metadata.HEALTH_SCALARS:
            if health in names:
                _, values = run.scalar(layer, health)
                latest[health] = number(values[-1]) if len(values) else None
        horizon = None
        if "grad_horizon" in names:
            epochs, values = run.scalar(layer, "grad_horizon")
            horizon = {"epochs": [int(e) for e in epochs], "values": [number(v) for v in values]}
        meta = layers_meta.get(layer, {})
        gate_order = list(meta.get("gates") or [])
        found = []
        for scalar in names:
            parts = scalar.split("/")
            if len(parts) == 3 and parts[0] in metadata.WEIGHT_ROLES and parts[2] == "l2":
                role, gate = parts[0], parts[1]
                rank = gate_order.index(gate) if gate in gate_order else len(gate_order)
                found.append(((metadata.WEIGHT_ROLES.index(role), rank, gate), scalar, role, gate))
        gate_norms = {}
        for _, scalar, role, gate in sorted(found):
            epochs, values = run.scalar(layer, scalar)
            gate_norms[f"{role}/{gate}"] = {
                "epochs": [int(e) for e in epochs],
                "values": [number(v) for v in values],
            }
        timesteps = (run.manifest.get("probe") or {}).get("timesteps")
        if not timesteps:
            try:
                flow = run.temporal_flow(layer)
                if flow.size:
                    timesteps = int(flow.shape[-1])
            except KeyError:
                pass
        horizon_needed = None  # below it the short-memory finding holds
        if timesteps:
            th = run.manifest.get("thresholds") or {}
            horizon_needed = max(float(th.get("horizon_min") or 2.0),
                                 float(th.get("horizon_fraction") or 0.1) * float(timesteps))
        layers.append(
            {
                "name": layer,
                "class": meta.get("class"),
                "units": meta.get("units"),
                "timesteps": int(timesteps) if timesteps else None,
                "horizon_needed": horizon_needed,
                "latest": latest,
                "grad_horizon": horizon,
                "gate_norms": gate_norms,
            }
        )
    alerts = [_clean_alert(a) for a in run.alerts]
    findings = [_clean_alert(f) for f in run.findings]
    return {
        "run": name,
        "path": run.run_dir,
        "epochs": [int(e) for e in run.epochs],
        "layers": layers,
        "alerts": alerts,
        "findings": findings,
    }


def _clean_alert(alert: dict) -> dict:
    out = dict(alert)
    for key in ("value", "threshold"):
        if key in out:
            out[key] = number(out[key])
    return out


def _trend(
    label: str, series: dict, style: Style, label_width: int, relative: bool = False,
    suffix: str = "", width: int = WIDTH, **scale: Any
) -> str:
    """``label  sparkline  first -> last`` (plus the relative change for norms), in `width`.

    The sparkline shows the most recent epochs that fit (at most `MAX_SPARK`); "…" marks that
    older ones are left out.
    """
    values = series["values"]
    finite = [v for v in values if v is not None]
    if not finite:
        span = "n/a"
    elif len(values) > 1:
        span = f"{fmt(values[0])} {style.arrow} {fmt(values[-1])}"
        if relative and values[0] and values[-1] is not None:
            span += f" ({(values[-1] - values[0]) / abs(values[0]):+.1%})"
    else:
        span = fmt(values[-1])
    span += suffix
    room = width - 4 - label_width - 2 - len(span)
    n = max(8, min(MAX_SPARK, room))
    shown = values[-n:]
    spark = sparkline(shown, style.spark_chars, **scale)
    if len(values) > n:
        spark = style.ellipsis + spark[len(style.ellipsis):]
    return f"    {label:<{label_width}} {spark} {span}"


def format_report(runs: list[dict], style: Style) -> str:
    lines: list[str] = []
    for i, run in enumerate(runs):
        if i:
            lines.append("")
        epochs = run["epochs"]
        span = f"epochs {epochs[0]}-{epochs[-1]}, {len(epochs)} logged" if epochs else "no epochs logged"
        lines.extend(wrap(f"{style('run ' + run['run'], 'bold')} ({span})", ""))
        if not run["layers"]:
            lines.append("  no recurrent layers logged")
        if not epochs:
            lines.append("  no epoch logged yet")
            continue
        for layer in run["layers"]:
            desc = ", ".join(
                str(x) for x in (layer.get("class"), f"{layer['units']} units" if layer.get("units") else None,
                                 f"T={layer['timesteps']}" if layer.get("timesteps") else None) if x
            )
            lines.extend(wrap(f"{style(layer['name'], 'cyan')}" + (f" ({desc})" if desc else ""), "  "))
            latest = layer["latest"]
            if latest:
                parts = []
                for key in ("dead_ratio", "saturated_ratio", "exploding_ratio"):
                    if key in latest:
                        v = latest[key]
                        parts.append(f"{key.replace('_ratio', '')} {'n/a' if v is None else f'{v:.0%}'}")
                if "grad_norm" in latest:
                    parts.append(f"grad_norm {fmt(latest['grad_norm'])}")
                if "grad_horizon" in latest:
                    parts.append(f"horizon {fmt(latest['grad_horizon'])}")
                lines.extend(wrap("latest: " + "  ".join(parts), "    "))
            else:
                lines.append("    latest: no probe data (weights only)")
            width = max([len("grad_horizon")] + [len(k) + 3 for k in layer["gate_norms"]])
            width = min(width, 24)
            if layer.get("grad_horizon"):
                lines.append(
                    _trend("grad_horizon", layer["grad_horizon"], style, width,
                           suffix=f" (finding < {fmt(layer['horizon_needed'])})"
                           if layer.get("horizon_needed") else "",
                           lo=0.0, hi=float(layer["timesteps"]) if layer.get("timesteps") else None)
                )
            for key, series in layer["gate_norms"].items():
                lines.append(_trend(f"{key} l2", series, style, width, relative=True, min_rel_span=0.05))
        alerts = run["alerts"]
        if alerts:
            lines.append(f"  {style(f'{len(alerts)} alert(s)', 'red')}:")
            lines.extend(alert_lines(alerts, style))
        else:
            lines.append(f"  {style('no alerts', 'green')}")
        findings = run.get("findings") or []
        if findings:
            lines.append(f"  {len(findings)} finding(s) (not alerts):")
            lines.extend(alert_lines(findings, style))
    return "\n".join(lines)
