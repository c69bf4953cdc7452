"""The generic reverse pass of TensorFlow's probe loop (`checkpointed`), for any cell the stepper
can step: the segments from the last, each recomputed from its starting states under a tape
*with* the zero perturbations, its outputs and end states differentiated with respect to its
inputs, starting states, perturbations and the watched weights, and each step reduced right
there to what is written (`step_reductions`). The starting states' gradient is carried to the
previous segment.

The temporal flow rides on the same sweep: its adjoint d<v, h_last>/d(states) is carried per
recurrence (`FlowChains.own`); v[b] enters it at the end of the segment that holds sequence b's
last valid step (the steps after it are masked for b: they pass its states on unchanged), i.e.
as soon as the loss's sweep has computed it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from rnn_monitor.model.tensorflow.layer_loop import (
    ForwardPass, LayerLoop, Perturbations, Written, run_steps, zero_perturbations,
)
from rnn_monitor.model.tensorflow.segments import FlowChains, Incoming, ReversePass
from rnn_monitor.model.tensorflow.step_reductions import (
    StepReductions, StepSums, nonfinite_at, per_position, pick_last_valid, step_sums, where_here,
)


class _Carry(NamedTuple):
    """What the sweep carries from one segment to the one before it."""

    d_flat: list  # dL/d(flat states) at the segment's end
    d_prev: Any  # dL/d(previous output) at the segment's end (masked steps pass it on)
    d_vars: list  # dL/d(watched variables) so far
    dx: Any  # TensorArray: dL/d(inputs) per segment
    sums: list  # per plan: StepSums of TensorArrays
    v: list  # per plan: dL/dh at each sequence's last valid step, once its segment is past
    bad: list  # per plan: non-finite dL/dh_t at valid steps so far
    d_flows: dict  # plan index -> d<v, h_last>/d(flat states) at the segment's end (own chains)
    flow_norms: dict  # plan index -> TensorArray: ||d<v, h_last>/dh_t|| [n, B] per segment


class _Recomputed(NamedTuple):
    """One segment run again under a tape, with what it was differentiated with respect to."""

    tape: Any
    sources: list  # inputs, starting flat states, previous output, eps per plan, delta per plan, variables
    targets: list  # [output sequence,] last output, end flat states
    eps: list  # the zero perturbations added to each plan's h [n, B, ...]
    flat_start: list
    flat_end: list


class TapedReverse:
    """The reverse pass of `loop` given its forward pass `fwd` (see the module docstring)."""

    def __init__(self, loop: LayerLoop, fwd: ForwardPass, xs_in: Any, incoming: Incoming, chains: FlowChains,
                 variables: list) -> None:
        self.loop, self.fwd, self.xs_in, self.incoming = loop, fwd, xs_in, incoming
        self.chains, self.variables = chains, variables

    def run(self) -> ReversePass:
        """Segments one after the other, from the last (parallel_iterations=1: otherwise the
        recomputations of several segments, which do not depend on each other, would run at once
        and keep their intermediates alive together)."""
        count = self.loop.segments.count
        _, carry = tf.while_loop(
            lambda s, *_: s >= 0, self._segment, (count - 1, self._initial()),
            maximum_iterations=count, parallel_iterations=1,
        )
        dx = carry.dx.concat()
        dx.set_shape(self.xs_in.shape)
        return ReversePass(
            dx=dx, d_initial=list(carry.d_flat), d_vars=list(carry.d_vars),
            loss=[StepReductions.of(sums.concat(), carry.bad[i], carry.v[i]) for i, sums in enumerate(carry.sums)],
            flow={j: tf.transpose(array.concat(), [1, 0]) for j, array in carry.flow_norms.items()},  # [B, T]
            stats={},
        )

    def _initial(self) -> _Carry:
        loop, incoming, count = self.loop, self.incoming, self.loop.segments.count
        return _Carry(
            d_flat=list(incoming.final), d_prev=incoming.last, d_vars=[tf.zeros_like(v) for v in self.variables],
            dx=tf.TensorArray(self.xs_in.dtype, size=count, infer_shape=False),
            sums=[StepSums.arrays(count) for _ in loop.plans],
            v=[tf.zeros_like(plan.template) for plan in loop.plans], bad=[tf.constant(0.0) for _ in loop.plans],
            d_flows={j: [tf.zeros_like(f) for f in incoming.final] for j in self.chains.own},
            flow_norms={j: tf.TensorArray(tf.float32, size=count, infer_shape=False)
                        for j in self.chains.own + self.chains.shared},
        )

    def _recompute(self, s: Any, lo: Any, hi: Any) -> _Recomputed:
        """Segment `s` (steps [lo, hi)) from its starting states, with zero perturbations."""
        loop, n, n_flat = self.loop, hi - lo, self.loop.n_flat
        flat_s = [b[s] for b in self.fwd.bounds[:n_flat]]
        prev_s = self.fwd.bounds[n_flat][s]
        x_seg = self.xs_in[lo:hi]
        eps, delta = zero_perturbations(loop, n)
        sources = [x_seg] + flat_s + [prev_s] + eps + delta + self.variables
        with tf.GradientTape(persistent=bool(self.chains.own)) as tape:
            tape.watch(sources)
            flat_e, prev_e, written = run_steps(
                loop, tf.constant(0), n,
                tf.TensorArray(x_seg.dtype, size=n).unstack(x_seg),
                tf.TensorArray(tf.bool, size=n).unstack(loop.valid[lo:hi]) if loop.masked else None,
                flat_s, prev_s, Written.nothing_kept(loop, n),
                Perturbations(*({i: tf.TensorArray(z.dtype, size=n).unstack(z) for i, z in enumerate(zeros)}
                                for zeros in (eps, delta))),
            )
            targets = ([written.out["out"].stack()] if loop.return_sequences else []) + [prev_e] + flat_e
        return _Recomputed(tape, sources, targets, eps, flat_s, flat_e)

    def _segment(self, s: Any, carry: _Carry) -> tuple[Any, _Carry]:
        loop, incoming, n_flat, n_plans = self.loop, self.incoming, self.loop.n_flat, len(self.loop.plans)
        lo, hi = loop.segments.span(s)
        seg = self._recompute(s, lo, hi)
        out_grads = ([incoming.sequence[lo:hi]] if loop.return_sequences else []) + [carry.d_prev] + list(carry.d_flat)
        g = seg.tape.gradient(seg.targets, seg.sources, output_gradients=out_grads,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        g = [tf.convert_to_tensor(v) for v in g]
        at = 2 + n_flat
        carry = carry._replace(
            dx=carry.dx.write(s, g[0]), d_flat=g[1 : 1 + n_flat], d_prev=g[1 + n_flat],
            d_vars=[a + b for a, b in zip(carry.d_vars, g[at + 2 * n_plans :])],
        )
        d_eps, d_delta = g[at : at + n_plans], g[at + n_plans : at + 2 * n_plans]
        # Each step reduced to what is written: no [T, B, ...] gradient is kept.
        for i in range(n_plans):
            carry = self._reduce(s, lo, hi, i, d_eps[i], d_delta[i], seg, carry)
        del seg
        return s - 1, carry

    def _reduce(self, s: Any, lo: Any, hi: Any, i: int, d_eps: Any, d_delta: Any, seg: _Recomputed,
                carry: _Carry) -> _Carry:
        """Plan i's reductions of segment s, and its flow's adjoint carried through the segment."""
        trace, n = self.loop.traces[i], hi - lo
        e = per_position(tf.cast(d_eps, tf.float32), trace.channels_first, trace.positions)  # [n, B, P, U]
        d = per_position(tf.cast(d_delta, tf.float32), trace.channels_first, trace.positions)
        sums, bad, v = list(carry.sums), list(carry.bad), list(carry.v)
        sums[i] = carry.sums[i].write(s, step_sums(e, d))
        bad[i] = carry.bad[i] + nonfinite_at(e, self.loop.valid[lo:hi])
        # v: dL/dh at each sequence's last valid step, from the segment holding it
        picked, here = pick_last_valid(d_eps, self.loop.last, lo, n)
        v[i] = where_here(here, picked, carry.v[i])
        d_flows, flow_norms = dict(carry.d_flows), dict(carry.flow_norms)
        if i in self.chains.own:
            d_flows[i], norms = self._flow(i, seg, carry.d_flows[i], picked, here)
            flow_norms[i] = flow_norms[i].write(s, norms)
        elif i in self.chains.shared:
            flow_norms[i] = flow_norms[i].write(s, tf.norm(e, axis=[2, 3]))
        return carry._replace(sums=sums, bad=bad, v=v, d_flows=d_flows, flow_norms=flow_norms)

    def _flow(self, i: int, seg: _Recomputed, d_flow: list, picked: Any, here: Any) -> tuple[list, Any]:
        """``(d<v, h_last>/d(starting flat states), ||d<v, h_last>/dh_t|| [n, B])`` of plan i:
        its adjoint at the segment's end, seeded with v where the segment holds a sequence's
        last valid step, carried through the segment."""
        trace, h = self.loop.traces[i], self.loop.plans[i].layout.h
        seeds = [tf.zeros_like(f) for f in seg.flat_end]
        seeds[h] = where_here(here, tf.stop_gradient(picked), seeds[h])
        seeded = [a + b for a, b in zip(d_flow, seeds)]
        g = seg.tape.gradient(seg.flat_end, seg.flat_start + [seg.eps[i]], output_gradients=seeded,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        g = [tf.convert_to_tensor(v) for v in g]
        e = per_position(tf.cast(g[-1], tf.float32), trace.channels_first, trace.positions)
        return g[:-1], tf.norm(e, axis=[2, 3])

