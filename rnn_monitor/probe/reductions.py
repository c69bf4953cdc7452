"""The probe's gradient reductions, in `keras.ops` inside the probe's compiled function (any
backend): what leaves the device per recurrence is per-step sums, never a [B, T, units] array
(the unit statistics are in `rnn_monitor.probe.unit_reductions`).

Layouts: everything arrives batch-major in the layer's processing order, [B, T, ...]. States that
are feature maps (ConvLSTM) are reduced per filter over every spatial position: `per_position`
turns [B, T, ...] into [B, T, positions, units]. Masked (padded) steps carry exactly zero
gradient and are excluded from the counts (``valid`` [B, T]). The pure numpy statistics on top
of these (`rnn_monitor.stats.gradients`) define the numbers.
"""

from __future__ import annotations

from typing import Any, Optional

from keras import ops

from rnn_monitor.model.gates import f32
from rnn_monitor.model.perturbed_loop import TracedRecurrence

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
        "grad_nonfinite": _nonfinite_at(e, valid),
    }


def _nonfinite_at(values: Any, valid: Any) -> Any:
    """NaN / Inf in [B, T, P, U] at the valid steps (counted only when the sum is not finite)."""
    where = ops.reshape(valid, ops.shape(valid) + (1, 1))
    return ops.cond(ops.isfinite(ops.sum(values)), lambda: ops.zeros((), "float32"),
                    lambda: ops.sum(ops.cast(ops.logical_and(ops.logical_not(ops.isfinite(values)), where), "float32")))


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
