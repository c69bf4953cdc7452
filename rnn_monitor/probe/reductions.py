"""The probe's reductions, in `keras.ops` inside the probe's compiled function (any backend): what
leaves the device per recurrence is per-step and per-unit sums, never a [B, T, units] array
(except the few text-view sequences).

Layouts: everything arrives batch-major in the layer's processing order, [B, T, ...]. States that
are feature maps (ConvLSTM) are reduced per filter over every spatial position: `per_position`
turns [B, T, ...] into [B, T, positions, units]. Masked (padded) steps are excluded from every
sum (``valid`` [B, T]). The pure numpy statistics on top of these (`rnn_monitor.stats`) define
the numbers; the definitions of every accumulator are in `rnn_monitor.stats.units`.
"""

from __future__ import annotations

from typing import Any, Optional

from keras import ops

from rnn_monitor.model.gates import f32, gru_step, lstm_from_preactivations, lstm_preactivations
from rnn_monitor.model.perturbed_loop import TracedRecurrence

# State names of the activations view, by cell kind (gates after the states).
STATE_NAMES = {
    "lstm": ("h", "c", "i", "f", "g", "o"),
    "gru": ("h", "z", "r", "hh"),
    "simple": ("h",),
    "custom": ("h",),
}
# Gates whose activation is the recurrent (sigmoid) one: they get left / right saturation.
SIGMOID_GATES = {"lstm": ("i", "f", "o"), "gru": ("z", "r")}
CHECK_ROWS = 8  # sequences on which the rebuilt gates are checked against the cell


def per_position(values: Any, shape: TracedRecurrence) -> Any:
    """[B, T, ...] -> [B, T, positions, units] in float32 (vectors: one position)."""
    values = f32(values)
    if shape.channels_first and len(values.shape) > 3:
        values = ops.moveaxis(values, 2, -1)
    b, t = ops.shape(values)[0], ops.shape(values)[1]
    return ops.reshape(values, (b, t, shape.positions, ops.shape(values)[-1]))


def started_from(carried: Any, initial: Any) -> Any:
    """The state each step started from: the initial one, then the previous step's carried one."""
    return ops.concatenate([ops.expand_dims(initial, 1), carried[:, :-1]], axis=1)


def last_valid(values: Any, valid: Any) -> Any:
    """[B, ...]: each sequence's value at its last valid step (the last step when none is)."""
    steps = ops.shape(valid)[1]
    index = steps - 1 - ops.argmax(ops.cast(ops.flip(valid, axis=1), "int32"), axis=1)
    index = ops.reshape(ops.cast(index, "int32"), (-1, 1) + (1,) * (len(values.shape) - 2))
    return ops.take_along_axis(values, index, axis=1)[:, 0]


def _valid4(valid: Any) -> Any:
    return ops.reshape(valid, ops.shape(valid) + (1, 1))


def _count(flags: Any, vm: Any) -> Any:
    """[U]: positions where `flags` hold at valid (b, t, position)."""
    return ops.sum(ops.cast(ops.logical_and(flags, vm), "float32"), axis=(0, 1, 2))


def _nonfinite(values: Any, vm: Any) -> Any:
    return _count(ops.logical_not(ops.isfinite(values)), vm)


def _rel_diff(rebuilt: Any, own: Any, vm: Any) -> Any:
    """Largest |rebuilt - own| / max(1, |own|) at valid positions of the first `CHECK_ROWS`
    sequences (finite values only): the rebuilt gates' error, relative for large states."""
    rebuilt, own, vm = rebuilt[:CHECK_ROWS], own[:CHECK_ROWS], vm[:CHECK_ROWS]
    d = ops.abs(rebuilt - own) / ops.maximum(1.0, ops.abs(own))
    d = ops.where(ops.logical_and(vm, ops.isfinite(d)), d, ops.zeros_like(d))
    return ops.max(d)


def rebuilt_gates(shape: TracedRecurrence, rec: dict) -> tuple[dict, Any]:
    """A stock cell's gates [B, T, P, U] from its weights, and the largest difference between
    the h (and c) they give and the cell's own (``recon``)."""
    cell, valid = shape.info.cell, _valid4(rec["valid"])
    h_in = started_from(rec["h"], rec["h0"])
    h_own = per_position(rec["h"], shape)
    if shape.info.kind == "lstm":
        c_in = started_from(rec["c"], rec["c0"])
        z = per_position(lstm_preactivations(cell, rec["x"], h_in), shape)  # [B, T, P, 4U]
        gates, c, tanh_c = lstm_from_preactivations(cell, z, per_position(c_in, shape))
        recon = ops.maximum(_rel_diff(gates["o"] * tanh_c, h_own, valid),
                            _rel_diff(c, per_position(rec["c"], shape), valid))
        return dict(gates, tanh_c=tanh_c), recon
    gates, h = gru_step(cell, rec["x"], h_in)
    gates = {k: per_position(v, shape) for k, v in gates.items()}
    return gates, _rel_diff(per_position(h, shape), h_own, valid)


def _h_moments(h: Any, vm: Any, n: Any) -> tuple[Any, Any]:
    """Per unit: mean of h and the sum of squared deviations from it over the valid positions
    (two passes: the std of a nearly constant unit stays exact in float32)."""
    masked = ops.where(vm, h, ops.zeros_like(h))
    mean = ops.sum(masked, axis=(0, 1, 2)) / ops.maximum(n, 1.0)
    dev = ops.where(vm, h - mean, ops.zeros_like(h))
    return mean, ops.sum(dev * dev, axis=(0, 1, 2))


def unit_statistics(shape: TracedRecurrence, rec: dict, settings: Any) -> tuple[dict, dict]:
    """``(accumulators, samples)`` of one recurrence: per-unit accumulators over its valid
    positions (`rnn_monitor.stats.units`; ``h_mean`` and ``h_m2`` stand for the sums, which the
    caller forms in float64) and the first sequences of every state for the text view."""
    kind = shape.info.kind
    vm = _valid4(rec["valid"])
    obs = {"h": per_position(rec["h"], shape)}
    if kind == "lstm":
        obs["c"] = per_position(rec["c"], shape)
    acc: dict = {"recon": ops.zeros((), "float32")}
    tanh_out = ops.abs(obs["h"]) if shape.tanh_output else None
    if shape.rebuild:
        gates, acc["recon"] = rebuilt_gates(shape, rec)
        if kind == "lstm":
            tanh_out = ops.abs(gates.pop("tanh_c")) if shape.tanh_output else None
        obs.update(gates)
    n = ops.sum(ops.cast(vm, "float32")) * shape.positions
    acc["n_valid"] = n
    for name in STATE_NAMES[kind]:
        acc[f"{name}_nonfinite"] = _nonfinite(obs[name], vm)
    finite_h = ops.logical_and(vm, ops.isfinite(obs["h"]))
    acc["h_mean"], acc["h_m2"] = _h_moments(obs["h"], finite_h, ops.sum(ops.cast(finite_h, "float32"), axis=(0, 1, 2)))
    acc["h_count"] = ops.sum(ops.cast(finite_h, "float32"), axis=(0, 1, 2))
    acc["h_max_abs"] = ops.max(ops.where(finite_h, ops.abs(obs["h"]), ops.zeros_like(obs["h"])), axis=(0, 1, 2))
    if kind == "lstm":
        finite_c = ops.logical_and(vm, ops.isfinite(obs["c"]))
        acc["c_max_abs"] = ops.max(ops.where(finite_c, ops.abs(obs["c"]), ops.zeros_like(obs["c"])), axis=(0, 1, 2))
    acc["h_sat"] = (_count(tanh_out > settings.sat_tanh, vm) if tanh_out is not None
                    else ops.zeros((ops.shape(obs["h"])[-1],), "float32"))
    for gate in SIGMOID_GATES.get(kind, ()) if shape.rebuild else ():
        acc[f"{gate}_low"] = _count(obs[gate] < settings.low, vm)
        acc[f"{gate}_high"] = _count(obs[gate] > settings.high, vm)
    return acc, _samples(obs, settings)


def _samples(obs: dict, settings: Any) -> dict:
    """The first sequences of each state [S, T, U] (feature maps: the mean over positions)."""
    rows = {name: settings.text_samples for name in obs} if settings.text_samples else {}
    if settings.h_samples:
        rows["h"] = settings.h_samples
    return {name: ops.mean(obs[name][:n], axis=2) for name, n in rows.items()}


def gradient_sums(dh: Optional[Any], dout: Any, valid: Any, shape: TracedRecurrence) -> dict:
    """Per-step sums over the batch of |dL/dh_t| [T, U], |dL/d out_t| [T, U] and ||dL/dh_t|| [T],
    and the count of non-finite dL/dh at valid steps (masked steps carry exactly 0)."""
    e = per_position(dh, shape)
    d = per_position(dout, shape)
    norms = ops.sqrt(ops.sum(e * e, axis=(2, 3)))  # [B, T]
    return {
        "grad_abs_sum": ops.sum(ops.abs(e), axis=(0, 2)),
        "out_abs_sum": ops.sum(ops.abs(d), axis=(0, 2)),
        "grad_norm_sum": ops.sum(norms, axis=0),
        "count_t": ops.sum(ops.cast(valid, "float32"), axis=0),
        "grad_nonfinite": ops.sum(_nonfinite(e, _valid4(valid))),
    }


def norms_per_step(values: Any, shape: TracedRecurrence) -> Any:
    """[B, T]: the norm of each sequence's whole state at each step."""
    e = per_position(values, shape)
    return ops.sqrt(ops.sum(e * e, axis=(2, 3)))


def sequence_norms(values: Any) -> Any:
    """[B]: the norm of each sequence's [B, ...] value."""
    flat = ops.reshape(f32(values), (ops.shape(values)[0], -1))
    return ops.sqrt(ops.sum(flat * flat, axis=-1))


def weight_gradient_norm(grads: list) -> tuple[Any, Any]:
    """``(norm, non-finite count)`` of a layer's weight gradients, the norm over finite entries."""
    total = ops.zeros((), "float32")
    bad = ops.zeros((), "float32")
    for g in grads:
        g = f32(g)
        finite = ops.isfinite(g)
        bad = bad + ops.sum(ops.cast(ops.logical_not(finite), "float32"))
        g = ops.where(finite, g, ops.zeros_like(g))
        total = total + ops.sum(g * g)
    return ops.sqrt(total), bad
