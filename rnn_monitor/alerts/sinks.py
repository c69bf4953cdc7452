"""Where alerts go besides the rules: the log lines, the TensorBoard text summary and plugin
tensor, the user's `on_alert` hook and `model.stop_training`. Each sink is one function."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from rnn_monitor.logdir import metadata

logger = logging.getLogger("rnn_monitor")

TEXT_TAG = "alerts"


def public(alert: dict) -> dict:
    """The alert record as written and handed to users (without the rules' bookkeeping)."""
    return {k: v for k, v in alert.items() if k != "since"}


def format_markdown(epoch: int, active: list[dict], cleared: list[dict]) -> str:
    """The text summary: alerts active at `epoch` (and the ones that just cleared)."""
    if not active:
        lines = [f"No active alerts at epoch {epoch}."]
    else:
        lines = [
            f"**{len(active)} active alert(s) at epoch {epoch}**",
            "",
            "| layer | kind | since epoch | message |",
            "|---|---|---|---|",
        ]
        for a in active:
            msg = str(a["message"]).replace("|", "\\|")
            lines.append(f"| {a['layer']} | {a['kind']} | {a.get('since', epoch)} | {msg} |")
    if cleared:
        lines.append("")
        lines.append(
            "Cleared: " + ", ".join(f"{a['kind']} in {a['layer']}" for a in cleared) + "."
        )
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


def write_tensorboard(writer: Any, epoch: int, raised: list[dict], active: list[dict],
                      cleared: list[dict]) -> None:
    """The text summary of the active alerts and the plugin tensor of the raised ones."""
    writer.text(TEXT_TAG, format_markdown(epoch, active, cleared), epoch)
    writer.json_tensor(metadata.ALERTS, raised, epoch)


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
