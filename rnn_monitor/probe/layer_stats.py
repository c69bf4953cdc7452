"""Per-layer reductions of the probe: the unroll's accumulators and samples -> unit health,
gate saturation, gradients through time and the activations kept for the text view (the pure
numpy statistics themselves are in `rnn_monitor.stats`)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np

from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.model.gates import SIGMOID_GATES, STATE_NAMES
from rnn_monitor.probe.results import CellFacts
from rnn_monitor.record import EpochRecord, NonFinite
from rnn_monitor.stats import gradients as gstats
from rnn_monitor.stats import unit_health as ustats

RECON_TOLERANCE = 1e-5  # in float32; other dtypes: `recon_tolerance`
RECON_ULPS = 8  # the float16 / bfloat16 tolerance in units of the dtype's machine epsilon


def recon_tolerance(dtype_eps: float) -> float:
    """How far the gates rebuilt in float32 may be from the cell's own h and c (relative to
    max(1, |value|)): 1e-5 in float32, 8 machine epsilons of the layer's dtype when that is
    coarser (mixed_float16: 7.8e-3; the cell itself rounds every op to float16)."""
    return max(RECON_TOLERANCE, RECON_ULPS * float(dtype_eps))


def _gates(kind: str) -> tuple:
    """The gates of a cell kind (its recorded names after the states h and c)."""
    return tuple(s for s in STATE_NAMES[kind] if s not in ("h", "c"))


def state_names(info: RNNLayerInfo) -> tuple:
    """The states and gates the probe records for a layer of this kind, in writing order."""
    return STATE_NAMES[info.kind]


@dataclasses.dataclass
class LayerStats:
    """What one layer's probe results give, in input order, beside what went into the record."""

    valid: np.ndarray  # [B, T] bool: the valid (unmasked) steps
    gates_ok: bool  # the rebuilt gates matched the cell's own h and c
    dead: np.ndarray  # [U] bool, per the definitions of docs/reference.md
    exploding: np.ndarray  # [U] bool
    saturated: np.ndarray  # [U] bool
    activations: dict = dataclasses.field(default_factory=dict)  # state -> [S, T, U'] kept for the text view
    h_rows: Optional[np.ndarray] = None  # [N, T, U] h of every kept row, NaN where masked
    G: Optional[np.ndarray] = None  # [T, U] mean |dL/dh_t| (None: not recurrent, or no gradients)
    O: Optional[np.ndarray] = None  # [T, U] mean |dL/d(out_t)|
    g: Optional[np.ndarray] = None  # [T] mean ||dL/dh_t||
    F: Optional[np.ndarray] = None  # [K] temporal flow, processing order
    units: Any = None  # the units' descriptions (average input, spectrum), set by the probe part


def _unit_means(G: np.ndarray) -> np.ndarray:
    """[U]: mean over the valid (finite) steps of G[t, u]; NaN for a unit without one."""
    G = np.asarray(G, dtype=np.float64)
    ok = np.isfinite(G)
    count = ok.sum(axis=0)
    total = np.where(ok, G, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def layer_stats(
    info: RNNLayerInfo, res: dict, record: EpochRecord, facts: CellFacts, *,
    thresholds: Any, units: Optional[Sequence[int]], text_samples: int, gradients: bool,
    say_once: Callable[..., None], refuse: Optional[Callable[..., None]] = None,
) -> LayerStats:
    """One layer's unroll results -> the statistics of docs/reference.md, in input order.

    `facts` is what the trace found about the cell. Fills `record` (ratios, gate
    saturation, gradient norm and horizon, non-finite counts) and returns what is written. What
    cannot be measured for this layer is said through `refuse` (a warning once, or an error with
    raise_errors; default `say_once`).
    """
    refuse = refuse or say_once
    backward = info.direction == "backward"
    acc = res["acc"]
    valid = np.asarray(res["valid"], dtype=bool)  # [B, T] processing order
    gates_ok = _gates_match(info, float(acc["recon"]), facts.dtype_eps, refuse)
    dead, exploding, saturated = _unit_health(info, acc, record, thresholds, facts.h_bounded, gates_ok)
    out = LayerStats(gstats.to_input_order(valid, backward, axis=1), gates_ok, dead, exploding, saturated)
    _keep_activations(info, res["samples"], out, text_samples, units, say_once)
    if gradients and "grad_abs_sum" in res:
        _say_gradient_reach(info.name, facts, refuse, say_once)
        _gradients(info, res, record, facts, thresholds, valid, out)
    return out


def _gates_match(info: RNNLayerInfo, recon: float, dtype_eps: float, refuse: Callable[..., None]) -> bool:
    """Whether the gates rebuilt from the weights match the cell's own h (and c); if not, say so."""
    tolerance = recon_tolerance(dtype_eps)
    if not _gates(info.kind) or (np.isfinite(recon) and recon <= tolerance):
        return True
    refuse(
        f"recon:{info.name}",
        "rnn_monitor: layer %r: the gate activations rebuilt from the weights differ from "
        "the cell's own output by %.3g (relative, > %g), so its gates are not reported "
        "(h%s, unit health, gradients and weights still are)",
        info.name, recon, tolerance, ", c" if info.kind == "lstm" else "",
    )
    return False


def _unit_health(info: RNNLayerInfo, acc: dict, record: EpochRecord, th: Any, h_bounded: bool,
                 gates_ok: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dead / exploding / saturated units and their ratios, non-finite counts per state, and the
    sigmoid gates' saturation, into `record`; returns the three unit flags."""
    name, gates = info.name, _gates(info.kind)
    dead = ustats.dead_units(acc, th.dead_std)
    exploding = ustats.exploding_units(acc, h_bounded, th.exploding_state, states=state_names(info))
    saturated = ustats.saturated_units(acc, th.saturation_fraction)
    record.set_scalar(name, "dead_ratio", ustats.ratio(dead))
    record.set_scalar(name, "exploding_ratio", ustats.ratio(exploding))
    record.set_scalar(name, "saturated_ratio", ustats.ratio(saturated))
    for state in state_names(info):
        count = ustats.nonfinite_total(acc, state)
        is_gate = state in gates
        if count and (gates_ok or not is_gate):
            record.nonfinite.append(
                NonFinite(name, "gate" if is_gate else f"state {state}", state if is_gate else None, count)
            )
    if gates_ok:
        for gate in SIGMOID_GATES.get(info.kind, ()):
            left, right = ustats.gate_saturation(acc, gate)
            record.set_scalar(name, f"gate/{gate}/saturation_left", left)
            record.set_scalar(name, f"gate/{gate}/saturation_right", right)
    return dead, exploding, saturated


def _keep_activations(info: RNNLayerInfo, samples: dict, out: LayerStats, text_samples: int,
                      units: Optional[Sequence[int]], say_once: Callable[..., None]) -> None:
    """The text view's activations (first `text_samples` sequences, `units` only, NaN where
    masked) and h of every kept row for the units' descriptions, in input order."""
    backward = info.direction == "backward"
    states = [s for s in state_names(info) if s in samples and (out.gates_ok or s not in _gates(info.kind))]
    n_samples = min(text_samples, out.valid.shape[0])
    sample_valid = out.valid[:n_samples]
    for state in states:
        arr = gstats.to_input_order(np.asarray(samples[state], dtype=np.float32), backward, axis=1)
        if state == "h":  # h is kept for more rows (the units' descriptions): all of them, masked
            out.h_rows = np.where(out.valid[: arr.shape[0], :, None], arr, np.nan)
        if n_samples == 0:
            continue
        arr = np.where(sample_valid[:, :, None], arr[:n_samples], np.nan)
        if units is not None:
            keep = [u for u in units if 0 <= u < arr.shape[-1]]
            if len(keep) != len(units):
                say_once(f"units:{info.name}", "rnn_monitor: layer %r has %d units; unit indices outside "
                         "that range are ignored", info.name, arr.shape[-1])
            arr = arr[..., keep]
        out.activations[state] = arr


def _say_gradient_reach(name: str, facts: CellFacts, refuse: Callable[..., None],
                        say_once: Callable[..., None]) -> None:
    """Say what dL/dh_t means for a cell whose output is not (or is not the same as) its state."""
    if not facts.recurrent:
        refuse(
            f"direct:{name}",
            "rnn_monitor: layer %r: its cell's output is none of its states and no state has "
            "the output's shape, so dL/dh_t through the recurrence, its norm and the temporal "
            "flow are not computed; output gradients dL/d(out_t), activations of the output, "
            "unit health and weights are",
            name,
        )
    elif not facts.direct:
        say_once(
            f"state:{name}",
            "rnn_monitor: layer %r: its cell's output is none of its states, so h is the first "
            "state with the output's shape: dL/dh_t is the gradient that reaches that state "
            "from the later steps, output gradients are dL/d(out_t) of the output itself",
            name,
            level=logging.INFO,
        )


def _gradients(info: RNNLayerInfo, res: dict, record: EpochRecord, facts: CellFacts, th: Any,
               valid: np.ndarray, out: LayerStats) -> None:
    """G, O, g and F (docs/reference.md, "Gradients through time") into `out`; the gradient
    scalars, arrays and non-finite counts into `record`. Feature maps: G and O average over
    sequences and spatial positions, g and F take the norm of the whole map of each sequence."""
    name, backward, count = info.name, info.direction == "backward", res["count_t"]
    G = gstats.to_input_order(gstats.timestep_gradients(res["grad_abs_sum"], count * facts.positions), backward)
    out.O = gstats.to_input_order(gstats.timestep_gradients(res["out_abs_sum"], count * facts.positions), backward)
    g = gstats.to_input_order(gstats.timestep_grad_norm(res["grad_norm_sum"], count), backward)
    F = gstats.temporal_flow(res["flow_norm"], res["v_norm"], valid)
    record.set_scalar(name, "grad_norm", float(res["weight_grad_norm"]))
    if facts.recurrent:
        out.G, out.g, out.F = G, g, F
        record.set_scalar(name, "grad_horizon", gstats.grad_horizon(F, th.flow_floor))
        record.set_array(name, "temporal_flow", F)
        record.set_array(name, "timestep_grad_norm", g)
        # Findings the alert rules explain themselves with (written as scalars too).
        record.set_scalar(name, "flow_mid", gstats.flow_at_half(F, gstats.valid_timesteps(valid)))
        record.set_scalar(name, "grad_ratio", gstats.early_late_ratio(g, backward))
        # Per unit: mean over valid steps of G[t, u], beside the saturated-unit flags.
        record.set_array(name, "unit_grad", _unit_means(G))
        record.set_array(name, "saturated_units", np.asarray(out.saturated, dtype=bool))
    record.set_array(name, "timesteps", np.array(gstats.valid_timesteps(valid)))
    if res["grad_nonfinite"]:
        record.nonfinite.append(NonFinite(name, "gradient", None, int(res["grad_nonfinite"])))
    if res["weight_grad_nonfinite"]:
        record.nonfinite.append(NonFinite(name, "weight gradient", None, int(res["weight_grad_nonfinite"])))
