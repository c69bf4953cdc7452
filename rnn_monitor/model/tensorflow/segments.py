"""The checkpointed loop's segments, and what its two reverse passes (`taped_reverse`, by a tape
per segment; `adjoint`, written out for stock cells) take and give alike: the gradients arriving
at the loop's outputs, which recurrences carry the temporal flow, and the reversed results.

Checkpointed backprop through time (Chen et al. 2016): the forward pass keeps the states only at
the start of every segment of ``ceil(sqrt(T))`` steps (`LoopOptions.segment_steps` overrides)
and the backward pass recomputes one segment at a time, from the last.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import tensorflow as tf


def segment_steps(n_steps: Any, requested: Optional[int] = None) -> Any:
    """Steps per segment (int32 tensor): `requested` (at least 1, at most T), or ceil(sqrt(T))."""
    if requested is not None:
        return tf.maximum(1, tf.minimum(tf.constant(int(requested), tf.int32), n_steps))
    root = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(n_steps, tf.float32))), tf.int32)
    return tf.maximum(1, root)


class Segments(NamedTuple):
    """How a loop of `n_steps` steps is cut: `count` segments of `steps` steps (int32 tensors;
    the last segment may be shorter)."""

    steps: Any
    count: Any
    n_steps: Any

    @classmethod
    def of(cls, n_steps: Any, requested: Optional[int] = None) -> "Segments":
        steps = segment_steps(n_steps, requested)
        return cls(steps, (n_steps + steps - 1) // steps, n_steps)

    def span(self, s: Any) -> tuple[Any, Any]:
        """``(lo, hi)``: segment `s` holds the steps [lo, hi)."""
        lo = s * self.steps
        return lo, tf.minimum(self.n_steps, lo + self.steps)


class Incoming(NamedTuple):
    """The gradients arriving at the loop's outputs (time-major, processing order)."""

    sequence: Optional[Any]  # dL/d(output sequence) [T, B, ...]; None without return_sequences
    last: Any  # dL/d(last output) [B, ...]
    final: list  # dL/d(final flat states)

    @classmethod
    def of(cls, grads: list, return_sequences: bool) -> "Incoming":
        """From the gradients of the loop op's results ([sequence], last output, final states)."""
        at = int(return_sequences)
        return cls(grads[0] if return_sequences else None, grads[at], list(grads[at + 1 :]))


class FlowChains(NamedTuple):
    """Which recurrences (indices in the layer loop) get the temporal flow, and how: `own`
    carry the adjoint of ``<v, h_last>`` beside the loss's (v = dL/dh at each sequence's last
    valid step); `shared` reach the loss through their last h alone (no sequences, no returned
    states, h is the output), so the loss's own dL/dh_t is that adjoint."""

    own: list
    shared: list


class ReversePass(NamedTuple):
    """What a reverse pass of the loop gives: the gradients of the loop op's inputs and watched
    variables, and what the probe reads per recurrence (index in the layer loop)."""

    dx: Any  # dL/d(inputs) [T, B, ...]
    d_initial: list  # dL/d(initial flat states)
    d_vars: list  # dL/d(watched variables), in their order
    loss: list  # StepReductions per recurrence
    flow: dict  # index -> ||d<v, h_last>/dh_t|| [B, T]
    stats: dict  # index -> (accumulators, samples) reduced on the way (else `UnitStats.run`)

