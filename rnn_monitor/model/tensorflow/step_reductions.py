"""What TensorFlow's loop writes of each step's gradients, reduced segment by segment in its
reverse passes (time-major, the layer's processing order): no [T, B, units] gradient leaves the
segment that computed it.

Per recurrence: the sums over the batch of |dL/dh_t| and |dL/d out_t| per unit, the sum of
||dL/dh_t|| over the batch, the non-finite dL/dh at valid steps, and v = dL/dh at each
sequence's last valid step. Masked steps carry exactly zero gradient, so plain sums over the
batch are sums over the valid sequences. (The keras.ops loop reduces the same quantities over
the whole [B, T, ...] arrays at once: `rnn_monitor.probe.reductions`.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from rnn_monitor.model.tensorflow.rows import to_rows
from rnn_monitor.model.tensorflow.unit_stats import broadcast_mask


class StepSums(NamedTuple):
    """Per-step sums over the batch (and spatial positions) of one recurrence's gradients:
    |dL/dh_t| [n, U], |dL/d out_t| [n, U], ||dL/dh_t|| [n]. As `arrays` makes it: one
    TensorArray per sum, one element per segment."""

    grad_abs_sum: Any
    out_abs_sum: Any
    grad_norm_sum: Any

    @classmethod
    def arrays(cls, size: Any) -> "StepSums":
        return cls(*(tf.TensorArray(tf.float32, size=size, infer_shape=False) for _ in cls._fields))

    def write(self, s: Any, sums: "StepSums") -> "StepSums":
        """These TensorArrays with segment `s`'s sums written."""
        return StepSums(*(array.write(s, value) for array, value in zip(self, sums)))

    def concat(self) -> "StepSums":
        """Every segment's sums, end to end: [T, ...]."""
        return StepSums(*(array.concat() for array in self))


class StepReductions(NamedTuple):
    """Everything the reverse pass reduced for one recurrence."""

    grad_abs_sum: Any  # [T, U]
    out_abs_sum: Any  # [T, U]
    grad_norm_sum: Any  # [T]
    grad_nonfinite: Any  # scalar: NaN / Inf in dL/dh_t at valid steps
    v: Any  # [B, ...]: dL/dh at each sequence's last valid step

    @classmethod
    def of(cls, sums: StepSums, grad_nonfinite: Any, v: Any) -> "StepReductions":
        return cls(*sums, grad_nonfinite, v)


def per_position(values: Any, channels_first: bool, positions: int) -> Any:
    """[T, B, ...] -> [T, B, positions, U] (feature maps: one row per spatial position)."""
    rows = to_rows(values, channels_first)  # [T, B * positions, U]
    shape = tf.shape(rows)
    return tf.reshape(rows, tf.stack([shape[0], -1, positions, shape[2]]))


def step_sums(e: Any, d: Any) -> StepSums:
    """The per-step sums of e = dL/dh_t and d = dL/d out_t of a segment, float32
    [n, B, U] or [n, B, positions, U]."""
    rank = e.shape.rank
    batch_axes = list(range(1, rank - 1))  # B (and positions)
    state_axes = -1 if rank == 3 else [2, 3]
    return StepSums(
        tf.reduce_sum(tf.abs(e), axis=batch_axes),
        tf.reduce_sum(tf.abs(d), axis=batch_axes),
        tf.reduce_sum(tf.norm(e, axis=state_axes), axis=1),
    )


def nonfinite_at(values: Any, valid: Any) -> Any:
    """Count of NaN / Inf in `values` [n, B, ...] at the valid steps (`valid` [n, B])."""
    where = valid[(...,) + (None,) * (values.shape.rank - 2)]
    flags = tf.logical_and(where, tf.logical_not(tf.math.is_finite(values)))
    return tf.reduce_sum(tf.cast(flags, tf.float32))


def last_valid_steps(valid: Any) -> Any:
    """[B] int32: each sequence's last valid step of `valid` [T, B] (all-masked: the last step)."""
    n_steps = tf.shape(valid)[0]
    return n_steps - 1 - tf.argmax(tf.cast(tf.reverse(valid, [0]), tf.int32), axis=0, output_type=tf.int32)


def pick_last_valid(values: Any, last: Any, lo: Any, n: Any) -> tuple[Any, Any]:
    """``(picked [B, ...], here [B])`` from a segment's `values` [n, B, ...] that starts at step
    `lo`: each sequence's value at its `last` valid step, and whether this segment holds it."""
    at = last - lo
    here = tf.logical_and(at >= 0, at < n)
    rows = tf.stack([tf.clip_by_value(at, 0, n - 1), tf.range(tf.shape(values)[1])], axis=1)
    return tf.gather_nd(values, rows), here


def where_here(here: Any, picked: Any, other: Any) -> Any:
    """`picked` for the sequences whose last valid step this segment holds, else `other`."""
    return tf.where(broadcast_mask(here, picked), picked, other)
