"""The Health view's tables: ``/alerts``, a run's alert records and its finding records, each
finding with the logged epochs it stayed active (docs/alerts.md)."""

from __future__ import annotations

import json
from typing import Any, Optional

from rnn_monitor.alerts.kinds import RUN as RUN_LAYER
from rnn_monitor.logdir import metadata
from tb_plugin.data_source import RunIndex, Source


def alerts_impl(src: Source, run_name: str) -> dict:
    """A run's alerts (one row each) and findings (one row per layer and kind, with its epochs)."""
    run = src.run(run_name)
    alerts, steps = records(src, run, run.run_kinds.get(metadata.ALERTS))
    finding_tag = run.run_kinds.get(metadata.FINDINGS)
    findings, _ = records(src, run, finding_tag)
    findings = finding_spans(findings, src.scalars(run_name) if findings else {})
    return {
        "run": run_name,
        "enabled": metadata.ALERTS in run.run_kinds,
        "alerts": alerts,
        "findings_enabled": finding_tag is not None,
        "findings": findings,
        "sampling": src.sampling(run, steps, list(run.layers)),
    }


def records(src: Source, run: RunIndex, tag: Optional[str]) -> tuple[list[dict], list[int]]:
    """The alert or finding records of a run (one JSON list per logged epoch), and the steps;
    an unreadable epoch or record is left out."""
    out: list[dict] = []
    if tag is None:
        return out, []
    series = src.series(run, tag)
    for step, value in series:
        try:
            found = json.loads(metadata.decode_text(value))
        except (ValueError, TypeError):
            continue
        out += [record_row(rec, step) for rec in (found if isinstance(found, list) else []) if isinstance(rec, dict)]
    return out, [s for s, _ in series]


def record_row(rec: dict, step: int) -> dict:
    """One record as the table shows it: text fields as strings, numbers or None."""
    return {
        "epoch": rec.get("epoch", step),
        "layer": str(rec.get("layer", "")),
        "kind": str(rec.get("kind", "")),
        "message": str(rec.get("message", "")),
        "value": _number(rec.get("value")),
        "threshold": _number(rec.get("threshold")),
    }


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) else None


def finding_spans(found: list[dict], scalars: dict) -> list[dict]:
    """The raised findings, each with the epochs it stayed active: from its own 0/1 scalar
    (``<layer>/finding/<kind>``, ``_run/finding/<kind>`` for run-wide ones) when the log has it,
    else just the epoch it was raised at."""
    out = []
    for rec in found:
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
