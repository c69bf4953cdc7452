"""Finding what a request names in a run's index: a layer's series of one kind, a series' value
at one epoch, one state's activations, the probe text's tokens; and, when something is absent,
the message that says why (never just "not found")."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import LayerIndex, RunIndex, Source
from tb_plugin.params import NotFound

DEFAULT_STATE = "h"


class EpochValue(NamedTuple):
    """One epoch's value of a series, and every epoch the series has."""

    epoch: int
    epochs: list[int]
    value: Any


class StateAt(NamedTuple):
    """One activation state's values at one epoch."""

    state: str
    epoch: int
    epochs: list[int]
    values: np.ndarray


def manifest_layer_names(manifest: dict) -> list[str]:
    """The layers the manifest describes, in the model's order."""
    names = [info.get("name") for info in manifest.get("layers", []) if isinstance(info, dict)]
    return [n for n in names if isinstance(n, str)]


def missing_reason(manifest: dict, layer_name: str) -> str:
    """Why a layer of the manifest has no probe data (gradients, activations, unit health)."""
    probe = manifest.get("probe")
    if not isinstance(probe, dict):
        return "the run was logged without probe data"
    if layer_name not in (probe.get("states") or {}):
        return ("the probe does not cover this layer (one it cannot step, or one not selected: "
                "the training log says which)")
    return "the probe part was switched off during training (the training log says why)"


def absent(src: Source, run: RunIndex, layer: LayerIndex, what: str, otherwise: str) -> str:
    """The message for `what` missing from `layer`: why nothing was probed for it, when nothing
    was, else `otherwise` (why this one kind is missing)."""
    if layer.kinds or layer.states:
        return f"no {what} for this layer: {otherwise}"
    why = missing_reason(src.manifest(run) or {}, layer.name)
    return f"no {what} for this layer: {why}; its weights are in the Health view"


def layer_kind_series(src: Source, run: RunIndex, layer: LayerIndex, kind: str, what: Optional[str] = None,
                      otherwise: str = "the run was logged without probe data with labels",
                      ) -> list[tuple[int, np.ndarray]]:
    """The layer's series of `kind`; NotFound saying why the log lacks it (`absent`: no `what`,
    default the kind, for this layer because `otherwise`)."""
    tag = layer.kinds.get(kind)
    if tag is None:
        raise NotFound(absent(src, run, layer, what or kind, otherwise))
    return src.series(run, tag)


def pick_epoch(steps: list[int], epoch: Optional[int]) -> int:
    """`epoch` (default: the last one logged); NotFound naming the epochs there are."""
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


def value_at(series: list[tuple[int, Any]], epoch: Optional[int]) -> EpochValue:
    """The series' value at `epoch` (default: the last), as `pick_epoch` chooses it."""
    steps = [s for s, _ in series]
    chosen = pick_epoch(steps, epoch)
    return EpochValue(chosen, steps, dict(series)[chosen])


def run_series_at(src: Source, run: RunIndex, kind: str, epoch: Optional[int], why: str) -> EpochValue:
    """A run-wide series of `kind` at `epoch`; NotFound with `why` when the run has none."""
    tag = run.run_kinds.get(kind)
    if tag is None:
        raise NotFound(why)
    return value_at(src.series(run, tag), epoch)


def default_state(states: dict[str, str]) -> str:
    """The state a view shows first: h when the layer has it."""
    return DEFAULT_STATE if DEFAULT_STATE in states else sorted(states)[0]


def state_at(src: Source, run: RunIndex, states: dict[str, str], state: Optional[str], epoch: Optional[int],
             missing: str) -> StateAt:
    """One state's series (default: `default_state`) at `epoch` (default: the last); NotFound
    with `missing` when there are no states, or naming the states there are."""
    if not states:
        raise NotFound(missing)
    state = state or default_state(states)
    if state not in states:
        raise NotFound(f"unknown state; states of this layer: {', '.join(sorted(states))}")
    at = value_at(src.series(run, states[state]), epoch)
    return StateAt(state, at.epoch, at.epochs, np.asarray(at.value))


def probe_tokens(src: Source, run: RunIndex, n_seq: int, n_t: int) -> Optional[list[list[str]]]:
    """The probe text as tokens, ``[sequence][step]`` for the first `n_seq` sequences and their
    last `n_t` steps; None when the run logged no tokens (no vocabulary)."""
    value = src.latest(run, metadata.TOKENS)
    if value is None:
        return None
    arr = np.asarray(value, dtype=object)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        return None
    out = []
    for s in range(min(n_seq, arr.shape[0])):
        row = arr[s, -n_t:] if arr.shape[1] >= n_t else arr[s]
        out.append([metadata.decode_text(v) for v in row])
    return out
