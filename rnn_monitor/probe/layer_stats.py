"""Per-layer reductions of the probe: the unroll's accumulators and samples -> unit health,
gate saturation, gradients through time and the activations kept for the text view (the pure
numpy statistics themselves are in `rnn_monitor.stats`)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.record import EpochRecord, NonFinite
from rnn_monitor.stats import gradients as gstats
from rnn_monitor.stats import units as ustats

RECON_TOLERANCE = 1e-5

GATES_OF = {"lstm": ("i", "f", "g", "o"), "gru": ("z", "r", "hh"), "simple": (), "custom": ()}
SIGMOID_OF = {"lstm": ("i", "f", "o"), "gru": ("z", "r")}


def _unit_means(G: np.ndarray) -> np.ndarray:
    """[U]: mean over the valid (finite) steps of G[t, u]; NaN for a unit without one."""
    G = np.asarray(G, dtype=np.float64)
    ok = np.isfinite(G)
    count = ok.sum(axis=0)
    total = np.where(ok, G, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def state_names(info: RNNLayerInfo) -> tuple:
    """The states and gates the probe records for a layer of this kind, in writing order."""
    base = {"lstm": ("h", "c"), "gru": ("h",), "simple": ("h",), "custom": ("h",)}[info.kind]
    return base + GATES_OF[info.kind]


def layer_stats(
    info: RNNLayerInfo, res: dict, record: EpochRecord, h_bounded: bool, direct: bool, *,
    thresholds: Any, units: Optional[Sequence[int]], text_samples: int, gradients: bool,
    say_once: Callable[..., None],
) -> dict:
    """One layer's unroll results -> the statistics of DESIGN.md, in input order.

    Fills `record` (ratios, gate saturation, gradient norm and horizon, non-finite counts) and
    returns what is written: G, O, g, F, the kept activations and the unit findings.
    """
    th = thresholds
    name = info.name
    backward = info.direction == "backward"
    acc = res["acc"]
    valid = np.asarray(res["valid"], dtype=bool)  # [B, T] processing order
    out: dict = {"valid": gstats.to_input_order(valid, backward, axis=1)}

    gates_ok = True
    recon = float(acc["recon"])
    if GATES_OF[info.kind] and not (np.isfinite(recon) and recon <= RECON_TOLERANCE):
        gates_ok = False
        say_once(
            f"recon:{name}",
            "rnn_monitor: layer %r: the gate activations rebuilt from the weights differ from "
            "the cell's own output by %.3g (> %g), so its gates are not reported",
            name,
            recon,
            RECON_TOLERANCE,
        )
    out["gates_ok"] = gates_ok

    dead = ustats.dead_units(acc, th.dead_std)
    exploding = ustats.exploding_units(acc, h_bounded, th.exploding_state, states=state_names(info))
    saturated = ustats.saturated_units(acc, th.saturation_fraction)
    record.set_scalar(name, "dead_ratio", ustats.ratio(dead))
    record.set_scalar(name, "exploding_ratio", ustats.ratio(exploding))
    record.set_scalar(name, "saturated_ratio", ustats.ratio(saturated))
    out["dead"], out["exploding"], out["saturated"] = dead, exploding, saturated
    for state in state_names(info):
        count = ustats.nonfinite_total(acc, state)
        if count:
            is_gate = state in GATES_OF[info.kind]
            if is_gate and not gates_ok:
                continue
            record.nonfinite.append(
                NonFinite(name, "gate" if is_gate else f"state {state}", state if is_gate else None, count)
            )
    if gates_ok:
        for gate in SIGMOID_OF.get(info.kind, ()):
            left, right = ustats.gate_saturation(acc, gate)
            record.set_scalar(name, f"gate/{gate}/saturation_left", left)
            record.set_scalar(name, f"gate/{gate}/saturation_right", right)

    states = [s for s in state_names(info) if s in res["samples"]]
    if not gates_ok:
        states = [s for s in states if s not in GATES_OF[info.kind]]
    n_samples = min(text_samples, valid.shape[0])
    sample_valid = out["valid"][:n_samples]
    acts = {}
    for state in states:
        arr = gstats.to_input_order(np.asarray(res["samples"][state], dtype=np.float32), backward, axis=1)
        if state == "h":  # h is kept for more rows (the units' descriptions): all of them, masked
            rows = arr.shape[0]
            out["h_rows"] = np.where(out["valid"][:rows, :, None], arr, np.nan)
        if n_samples == 0:
            continue
        arr = np.where(sample_valid[:, :, None], arr[:n_samples], np.nan)
        if units is not None:
            keep = [u for u in units if 0 <= u < arr.shape[-1]]
            if len(keep) != len(units):
                say_once(
                    f"units:{name}",
                    "rnn_monitor: layer %r has %d units; unit indices outside that range are ignored",
                    name,
                    arr.shape[-1],
                )
            arr = arr[..., keep]
        acts[state] = arr
    out["activations"] = acts

    if gradients and "grad_abs_sum" in res:
        if not direct:
            say_once(
                f"direct:{name}",
                "rnn_monitor: layer %r: its cell's output is not its first state, so the "
                "gradient through the recurrence cannot be isolated; only output gradients "
                "are reported for it",
                name,
            )
        count = res["count_t"]
        G = gstats.to_input_order(gstats.timestep_gradients(res["grad_abs_sum"], count), backward)
        O = gstats.to_input_order(gstats.timestep_gradients(res["out_abs_sum"], count), backward)
        g = gstats.to_input_order(gstats.timestep_grad_norm(res["grad_norm_sum"], count), backward)
        F = gstats.temporal_flow(res["flow_norm"], res["v_norm"], valid)
        horizon = gstats.grad_horizon(F, th.flow_floor)
        out.update(G=G if direct else None, O=O, g=g if direct else None, F=F if direct else None)
        record.set_scalar(name, "grad_norm", float(res["weight_grad_norm"]))
        if direct:
            record.set_scalar(name, "grad_horizon", horizon)
            record.set_array(name, "temporal_flow", F)
            record.set_array(name, "timestep_grad_norm", g)
            # Findings the alert rules explain themselves with (written as scalars too).
            record.set_scalar(name, "flow_mid", gstats.flow_at_half(F, gstats.valid_timesteps(valid)))
            record.set_scalar(name, "grad_ratio", gstats.early_late_ratio(g, backward))
            # Per unit: mean over valid steps of G[t, u], beside the saturated-unit flags.
            record.set_array(name, "unit_grad", _unit_means(G))
            record.set_array(name, "saturated_units", np.asarray(saturated, dtype=bool))
        record.set_array(name, "timesteps", np.array(gstats.valid_timesteps(valid)))
        if res["grad_nonfinite"]:
            record.nonfinite.append(NonFinite(name, "gradient", None, int(res["grad_nonfinite"])))
        if res["weight_grad_nonfinite"]:
            record.nonfinite.append(
                NonFinite(name, "weight gradient", None, int(res["weight_grad_nonfinite"]))
            )
    return out
