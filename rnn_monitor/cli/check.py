"""`rnn-monitor check`: the alerts of every run, and the exit status a CI pipeline acts on."""

from __future__ import annotations

import json

from rnn_monitor.alerts.kinds import KINDS
from rnn_monitor.cli.terminal import Style, alert_lines, wrap


def format_check(runs: list[dict], style: Style) -> str:
    lines: list[str] = []
    total = sum(len(r["alerts"]) for r in runs)
    for run in runs:
        if run["alerts"]:
            lines.extend(wrap(f"{style('run ' + run['run'], 'bold')}: {len(run['alerts'])} alert(s)", ""))
            lines.extend(alert_lines(run["alerts"], style, indent="  "))
    n = len(runs)
    if total:
        lines.append(style(f"FAIL: {total} alert(s) in {n} run(s)", "red"))
    else:
        lines.append(style(f"OK: no alerts in {n} run(s)", "green"))
    return "\n".join(lines)


def run_check(summaries: list[dict], ignore: str, as_json: bool, style: Style) -> tuple[int, str]:
    """``(number of alerts counted, text to print)``; `ignore` is a comma-separated list of kinds.

    An unknown kind in `ignore` is a ValueError that names the known ones.
    """
    skip = {k.strip() for k in ignore.split(",") if k.strip()}
    known = set(KINDS)
    if skip - known:
        raise ValueError(f"--ignore: unknown alert kind(s) {sorted(skip - known)}; known: {sorted(known)}")
    if skip:
        for s in summaries:
            s["alerts"] = [a for a in s["alerts"] if a.get("kind") not in skip]
    n_alerts = sum(len(s["alerts"]) for s in summaries)
    if not as_json:
        return n_alerts, format_check(summaries, style)
    payload = {
        "status": "alerts" if n_alerts else "ok",
        "alerts": n_alerts,
        "runs": [{"run": s["run"], "path": s["path"], "alerts": s["alerts"]} for s in summaries],
    }
    return n_alerts, json.dumps(payload, indent=2, allow_nan=False)
