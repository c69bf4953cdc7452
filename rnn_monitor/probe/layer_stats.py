"""Per-layer reductions of the probe: the unroll's accumulators and samples -> unit health,
gate saturation, gradients through time and the activations kept for the text view (the pure
numpy statistics themselves are in `rnn_monitor.stats`)."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np

from rnn_monitor.model.anatomy import RNNLayerInfo
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
    info: RNNLayerInfo, res: dict, record: EpochRecord, static: Any, *,
    thresholds: Any, units: Optional[Sequence[int]], text_samples: int, gradients: bool,
    say_once: Callable[..., None], refuse: Optional[Callable[..., None]] = None,
) -> dict:
    """One layer's unroll results -> the statistics of docs/reference.md, in input order.

    `static` is what the trace found about the cell (`rnn_monitor.probe.graph`): whether h is
    bounded, is a tanh output, is the cell's output (direct), is a state (recurrent), how many
    spatial positions each sequence has and the machine epsilon of the cell's dtype.
    Fills `record` (ratios, gate saturation, gradient norm and horizon, non-finite counts) and
    returns what is written: G, O, g, F, the kept activations and the unit findings. What cannot
    be measured for this layer is said through `refuse` (a warning once, or an error with
    raise_errors; default `say_once`).
    """
    refuse = refuse or say_once
    h_bounded, _tanh_output, direct, recurrent = (bool(v) for v in static[:4])
    n_pos, dtype_eps = int(static[4]), float(static[5])
    th = thresholds
    name = info.name
    backward = info.direction == "backward"
    acc = res["acc"]
    valid = np.asarray(res["valid"], dtype=bool)  # [B, T] processing order
    out: dict = {"valid": gstats.to_input_order(valid, backward, axis=1)}

    gates_ok = True
    recon = float(acc["recon"])
    tolerance = recon_tolerance(dtype_eps)
    if GATES_OF[info.kind] and not (np.isfinite(recon) and recon <= tolerance):
        gates_ok = False
        refuse(
            f"recon:{name}",
            "rnn_monitor: layer %r: the gate activations rebuilt from the weights differ from "
            "the cell's own output by %.3g (relative, > %g), so its gates are not reported "
            "(h%s, unit health, gradients and weights still are)",
            name,
            recon,
            tolerance,
            ", c" if info.kind == "lstm" else "",
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
        if not recurrent:
            refuse(
                f"direct:{name}",
                "rnn_monitor: layer %r: its cell's output is none of its states and no state has "
                "the output's shape, so dL/dh_t through the recurrence, its norm and the temporal "
                "flow are not computed; output gradients dL/d(out_t), activations of the output, "
                "unit health and weights are",
                name,
            )
        elif not direct:
            say_once(
                f"state:{name}",
                "rnn_monitor: layer %r: its cell's output is none of its states, so h is the first "
                "state with the output's shape: dL/dh_t is the gradient that reaches that state "
                "from the later steps, output gradients are dL/d(out_t) of the output itself",
                name,
                level=logging.INFO,
            )
        count = res["count_t"]
        # Feature maps: G and O average over sequences and spatial positions, g and F take the
        # norm of the whole map of each sequence.
        G = gstats.to_input_order(gstats.timestep_gradients(res["grad_abs_sum"], count * n_pos), backward)
        O = gstats.to_input_order(gstats.timestep_gradients(res["out_abs_sum"], count * n_pos), backward)
        g = gstats.to_input_order(gstats.timestep_grad_norm(res["grad_norm_sum"], count), backward)
        F = gstats.temporal_flow(res["flow_norm"], res["v_norm"], valid)
        horizon = gstats.grad_horizon(F, th.flow_floor)
        out.update(G=G if recurrent else None, O=O, g=g if recurrent else None, F=F if recurrent else None)
        record.set_scalar(name, "grad_norm", float(res["weight_grad_norm"]))
        if recurrent:
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
