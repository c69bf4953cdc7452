"""Summaries of rnn-monitor runs for the terminal (`rnn-monitor report|check`), no TensorFlow.

`summarize_run(run)` turns a `reader.Run` into a JSON-ready dict; `format_report` and
`format_check` render lists of those for an 80-column terminal, with ANSI colour only when asked.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any, Optional, Sequence

from rnn_monitor import metadata

WIDTH = 80
SPARK_UNICODE = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.-:=+*#"
MAX_SPARK = 30  # epochs shown in a trend; older ones are left out (marked with "…")

_COLOURS = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2", "cyan": "36"}
_KIND_COLOUR = {
    "nonfinite": "red",
    "exploding": "red",
    "vanishing": "yellow",
    "dead": "yellow",
    "saturated": "yellow",
}


def _num(value: Any) -> Optional[float]:
    """A float for JSON, None when missing or non-finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


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
                latest[health] = _num(values[-1]) if len(values) else None
        horizon = None
        if "grad_horizon" in names:
            epochs, values = run.scalar(layer, "grad_horizon")
            horizon = {"epochs": [int(e) for e in epochs], "values": [_num(v) for v in values]}
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
                "values": [_num(v) for v in values],
            }
        timesteps = (run.manifest.get("probe") or {}).get("timesteps")
        if not timesteps:
            try:
                flow = run.temporal_flow(layer)
                if flow.size:
                    timesteps = int(flow.shape[-1])
            except KeyError:
                pass
        horizon_needed = None
        if timesteps:
            th = run.manifest.get("thresholds") or {}
            horizon_needed = max(float(th.get("horizon_min", 2.0)),
                                 float(th.get("horizon_fraction", 0.1)) * float(timesteps))
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
    return {
        "run": name,
        "path": run.run_dir,
        "epochs": [int(e) for e in run.epochs],
        "layers": layers,
        "alerts": alerts,
    }


def _clean_alert(alert: dict) -> dict:
    out = dict(alert)
    for key in ("value", "threshold"):
        if key in out:
            out[key] = _num(out[key])
    return out


# ---------------------------------------------------------------------------------- text
class Style:
    def __init__(self, colour: bool, unicode: bool = True) -> None:
        self.colour = colour
        self.spark_chars = SPARK_UNICODE if unicode else SPARK_ASCII
        self.ellipsis = "…" if unicode else "..."
        self.arrow = "→" if unicode else "->"

    def __call__(self, text: str, colour: str) -> str:
        if not self.colour or colour not in _COLOURS:
            return text
        return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def sparkline(
    values: Sequence[Optional[float]],
    chars: str = SPARK_UNICODE,
    log: bool = False,
    lo: Optional[float] = None,
    hi: Optional[float] = None,
    min_rel_span: float = 0.0,
) -> str:
    """One character per value, " " for missing.

    Scaled between `lo` and `hi` (default the series' min and max). `min_rel_span` keeps noise
    flat: the scale spans at least that fraction of the largest magnitude, centred on the data.
    """
    vals = []
    for v in values:
        v = _num(v)
        if v is not None and log:
            v = math.log10(v) if v > 0 else None
        vals.append(v)
    finite = [v for v in vals if v is not None]
    if not finite:
        return " " * len(vals)
    lo = min(finite) if lo is None else lo
    hi = max(finite) if hi is None else hi
    span = hi - lo
    wanted = min_rel_span * max(abs(hi), abs(lo))
    if span < wanted:
        lo, hi = lo - (wanted - span) / 2, hi + (wanted - span) / 2
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        elif hi - lo <= 1e-12 * max(1.0, abs(hi)):
            out.append(chars[len(chars) // 2])
        else:
            frac = min(1.0, max(0.0, (v - lo) / (hi - lo)))
            out.append(chars[int(round(frac * (len(chars) - 1)))])
    return "".join(out)


def _fmt(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}"
    if value == int(value) and abs(value) < 1e4:
        return str(int(value))
    return f"{value:.3g}"


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
        span = f"{_fmt(values[0])} {style.arrow} {_fmt(values[-1])}"
        if relative and values[0] and values[-1] is not None:
            span += f" ({(values[-1] - values[0]) / abs(values[0]):+.1%})"
    else:
        span = _fmt(values[-1])
    span += suffix
    room = width - 4 - label_width - 2 - len(span)
    n = max(8, min(MAX_SPARK, room))
    shown = values[-n:]
    spark = sparkline(shown, style.spark_chars, **scale)
    if len(values) > n:
        spark = style.ellipsis + spark[len(style.ellipsis):]
    return f"    {label:<{label_width}} {spark} {span}"


def _wrap(text: str, indent: str, width: int = WIDTH) -> list[str]:
    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent + "  ",
        break_long_words=True, break_on_hyphens=False,
    ) or [indent]


def _alert_lines(alerts: list[dict], style: Style, indent: str = "    ") -> list[str]:
    lines = []
    for a in alerts:
        kind = str(a.get("kind", "?"))
        layer = str(a.get("layer", "?"))
        message = str(a.get("message", "")) or kind
        if layer not in message:
            message = f"{layer}: {message}"
        body = _wrap(f"epoch {a.get('epoch', '?')}: {message}", indent)
        # colour the first mention of the kind (after wrapping, so the widths stay right)
        i = body[0].find(kind)
        if i >= 0:
            body[0] = body[0][:i] + style(kind, _KIND_COLOUR.get(kind, "")) + body[0][i + len(kind):]
        lines.extend(body)
    return lines


def format_report(runs: list[dict], style: Style) -> str:
    lines: list[str] = []
    for i, run in enumerate(runs):
        if i:
            lines.append("")
        epochs = run["epochs"]
        span = f"epochs {epochs[0]}-{epochs[-1]}, {len(epochs)} logged" if epochs else "no epochs logged"
        lines.extend(_wrap(f"{style('run ' + run['run'], 'bold')} ({span})", ""))
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
            lines.extend(_wrap(f"{style(layer['name'], 'cyan')}" + (f" ({desc})" if desc else ""), "  "))
            latest = layer["latest"]
            if latest:
                parts = []
                for key in ("dead_ratio", "saturated_ratio", "exploding_ratio"):
                    if key in latest:
                        v = latest[key]
                        parts.append(f"{key.replace('_ratio', '')} {'n/a' if v is None else f'{v:.0%}'}")
                if "grad_norm" in latest:
                    parts.append(f"grad_norm {_fmt(latest['grad_norm'])}")
                if "grad_horizon" in latest:
                    parts.append(f"horizon {_fmt(latest['grad_horizon'])}")
                lines.extend(_wrap("latest: " + "  ".join(parts), "    "))
            else:
                lines.append("    latest: no probe data (weights only)")
            width = max([len("grad_horizon")] + [len(k) + 3 for k in layer["gate_norms"]])
            width = min(width, 24)
            if layer.get("grad_horizon"):
                lines.append(
                    _trend("grad_horizon", layer["grad_horizon"], style, width,
                           suffix=f" (alert < {_fmt(layer['horizon_needed'])})"
                           if layer.get("horizon_needed") else "",
                           lo=0.0, hi=float(layer["timesteps"]) if layer.get("timesteps") else None)
                )
            for key, series in layer["gate_norms"].items():
                lines.append(_trend(f"{key} l2", series, style, width, relative=True, min_rel_span=0.05))
        alerts = run["alerts"]
        if alerts:
            lines.append(f"  {style(f'{len(alerts)} alert(s)', 'red')}:")
            lines.extend(_alert_lines(alerts, style))
        else:
            lines.append(f"  {style('no alerts', 'green')}")
    return "\n".join(lines)


def format_check(runs: list[dict], style: Style) -> str:
    lines: list[str] = []
    total = sum(len(r["alerts"]) for r in runs)
    for run in runs:
        if run["alerts"]:
            lines.extend(_wrap(f"{style('run ' + run['run'], 'bold')}: {len(run['alerts'])} alert(s)", ""))
            lines.extend(_alert_lines(run["alerts"], style, indent="  "))
    n = len(runs)
    if total:
        lines.append(style(f"FAIL: {total} alert(s) in {n} run(s)", "red"))
    else:
        lines.append(style(f"OK: no alerts in {n} run(s)", "green"))
    return "\n".join(lines)
