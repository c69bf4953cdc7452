"""Where alerts and findings go besides the rules: the log lines, the TensorBoard text summary,
plugin tensors and scalars, the user's `on_alert` hook and `model.stop_training`. Each sink is
one function."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterable, Optional

from rnn_monitor.alerts.kinds import FINDING_KINDS, RUN, STALLED
from rnn_monitor.logdir import metadata

logger = logging.getLogger("rnn_monitor")

TEXT_TAG = "alerts"


def public(alert: dict) -> dict:
    """The alert record as written and handed to users (without the rules' bookkeeping)."""
    return {k: v for k, v in alert.items() if k != "since"}


def _table(title: str, records: list[dict], epoch: int) -> list[str]:
    lines = [title, "", "| layer | kind | since epoch | message |", "|---|---|---|---|"]
    for a in records:
        msg = str(a["message"]).replace("|", "\\|")
        lines.append(f"| {a['layer']} | {a['kind']} | {a.get('since', epoch)} | {msg} |")
    return lines


def format_markdown(epoch: int, active: list[dict], cleared: list[dict],
                    findings: Optional[list[dict]] = None) -> str:
    """The text summary: alerts active at `epoch` (and the ones that just cleared), then the
    active findings."""
    if not active:
        lines = [f"No active alerts at epoch {epoch}."]
    else:
        lines = _table(f"**{len(active)} active alert(s) at epoch {epoch}**", active, epoch)
    if cleared:
        lines.append("")
        lines.append(
            "Cleared: " + ", ".join(f"{a['kind']} in {a['layer']}" for a in cleared) + "."
        )
    if findings:
        lines.append("")
        lines.extend(_table(f"{len(findings)} finding(s) (not alerts)", findings, epoch))
    return "\n".join(lines)


def log_changes(epoch: int, raised: list[dict], cleared: list[dict]) -> None:
    """One WARNING line when an alert starts, one INFO line when it clears."""
    for alert in raised:
        logger.warning("rnn_monitor: epoch %d: %s", epoch, alert["message"])
    for alert in cleared:
        logger.info(
            "rnn_monitor: epoch %d: %s alert in %s cleared (raised at epoch %d)",
            epoch, alert["kind"], alert["layer"], alert.get("since", alert["epoch"]),
        )


def log_findings(epoch: int, raised: list[dict]) -> None:
    """One INFO line when a finding starts (findings are not warnings)."""
    for finding in raised:
        logger.info("rnn_monitor: epoch %d: %s", epoch, finding["message"])


def write_tensorboard(writer: Any, epoch: int, raised: list[dict], active: list[dict],
                      cleared: list[dict], findings_raised: Optional[list[dict]] = None,
                      findings_active: Optional[list[dict]] = None) -> None:
    """The text summary of what is active, and the plugin tensors of what was raised."""
    writer.text(TEXT_TAG, format_markdown(epoch, active, cleared, findings_active), epoch)
    writer.json_tensor(metadata.ALERTS, raised, epoch)
    writer.json_tensor(metadata.FINDINGS, findings_raised or [], epoch)


def write_finding_scalars(writer: Any, epoch: int, layers: Iterable[str], active: list[dict]) -> None:
    """``<layer>/finding/<kind>`` = 1 while the finding is active, else 0, for every layer and
    per-layer finding kind; ``_run/finding/stalled`` likewise."""
    on = {(f["layer"], f["kind"]) for f in active}
    for layer in layers:
        for kind in FINDING_KINDS:
            if kind != STALLED:
                writer.scalar(metadata.scalar_tag(layer, f"finding/{kind}"), float((layer, kind) in on), epoch)
    writer.scalar(metadata.run_scalar_tag(f"finding/{STALLED}"), float((RUN, STALLED) in on), epoch)


def write_loss_scalars(writer: Any, epoch: int, probe_loss: Optional[float], constant_loss: Optional[float],
                       ratio: Optional[float]) -> None:
    """The run-wide loss numbers the rules read (only those that exist)."""
    for name, value in (("probe_loss", probe_loss), ("constant_loss", constant_loss), ("loss_ratio", ratio)):
        if value is not None and math.isfinite(float(value)):
            writer.scalar(metadata.run_scalar_tag(name), float(value), epoch)


def call_hook(on_alert: Optional[Callable[[dict], Any]], raised: list[dict]) -> None:
    """The user's hook, once per raised alert; its exceptions are logged, never raised."""
    if on_alert is None:
        return
    for alert in raised:
        try:
            on_alert(dict(alert))
        except Exception:  # the user's hook must never stop training
            logger.exception("rnn_monitor: on_alert raised for %s alert; ignored", alert["kind"])


def stop_training(model: Any, epoch: int, hits: list[dict], stop_on: tuple) -> bool:
    """Set ``model.stop_training``; True when it was set."""
    first = hits[0]
    try:
        model.stop_training = True
    except Exception:
        logger.exception("rnn_monitor: could not set model.stop_training")
        return False
    logger.warning(
        "rnn_monitor: stopping training after epoch %d because of the %s alert in %s "
        "(stop_on=%s)", epoch, first["kind"], first["layer"], stop_on,
    )
    return True
