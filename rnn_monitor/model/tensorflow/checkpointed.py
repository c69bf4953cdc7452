"""TensorFlow's loop for the probe (the loop path on TensorFlow): every monitored recurrence of a
layer stepped in a `tf.while_loop`, differentiated as one custom-gradient op with checkpointed
backprop through time, and the reductions done in that backward pass.

Why TensorFlow has a loop of its own: the keras.ops loop (`rnn_monitor.model.perturbed_loop`),
differentiated by a tape, holds its zero perturbations, their gradients and TensorFlow's
while-loop accumulators for every step at once: 2.7x the training step's working set above the
training peak at 3 x LSTM 256, T = 400, against 0.01x here, in about the same time
(`benchmarks/memory.py`, docs/performance.md). JAX runs the keras.ops loop (its scan keeps
0.2x for the same pass).

How it works. Each step

* has a zero perturbation ``eps_t`` added to the new state h_t before it is fed to the next
  step *and* to the output, so ``dL/d eps_t`` is the total derivative dL/dh_t through the
  recurrence (true backprop through time, which also exists for ``return_sequences=False``);
* has a second zero perturbation ``delta_t`` added to the output at t only, so
  ``dL/d delta_t`` is the direct path dL/d(out_t).

Checkpointed backprop through time (Chen et al. 2016; Gruslys et al. 2016). The whole loop is
one `tf.custom_gradient` op. Its forward pass runs the steps in segments of
``ceil(sqrt(T))`` steps (`LoopOptions.segment_steps` overrides) without perturbations (they are zero) and
keeps, besides the layer's outputs and the cell's own new h (and c) of every step for the
statistics, only the states at each segment's start. Its backward pass walks the segments from
the last, one at a time: it recomputes the segment from its starting states under a tape *with*
the zero perturbations (per segment), takes the gradient of the segment's outputs and end states
with respect to its inputs, starting states, perturbations and the cell's weights, carries the
starting states' gradient to the previous segment, and reduces each step right there to what is
written (sums of |dL/dh_t| and |dL/d out_t| over the batch, the norms, non-finite counts, and
dL/dh at each sequence's last valid step ``v``). So the loop's memory for the gradient is the
boundary states plus one segment's intermediates, and no [T, B, units] perturbation or
gradient tensor exists; the price is one more forward pass per backward pass. The probe's tape
differentiates the loss with respect to one scalar *token* per recurrence (an input of the op
that stands for its perturbations, handed out by the probe's provider): that makes the tape run
the op's backward, which leaves its reduced results in the loop's `LoopResults`, read by
`CheckpointedGradients`. The pieces: `layer_loop` (the steps and the forward pass),
`taped_reverse` (the reverse pass by tape), `step_reductions` (what each step is reduced to).

A layer whose one monitored recurrence is its own stock LSTM or GRU cell (float32, vector
states) takes a hand-written reverse pass instead (`rnn_monitor.model.tensorflow.adjoint`;
`LoopOptions.hand_written_reverse` switches it off): the
same segments, reductions and flow, with each step's adjoint written out rather than recomputed
and differentiated by a tape.

The per-unit statistics (`rnn_monitor.model.tensorflow.unit_stats`: gates rebuilt from the
cell's weights and checked against the cell's own h and c, accumulators over the valid
positions, text samples) are reduced without gradients, vectorized over time, from the h (and
c) the loop kept: by the hand-written reverse pass, segment by segment with the gates it
rebuilds anyway, or else after the backward in chunks (`UnitStats.run`).

The temporal flow is the backward of ``<v, h_last>`` with ``v = stop_gradient(dL/dh_last)``
(dL/dh at each sequence's last valid step) to the recurrence's perturbations, which gives every
k at once. It rides on the loss's segment sweep: its adjoint (the states' chain alone, no
outputs, inputs or weights) is carried per recurrence beside the loss's, and v[b] enters it at
the end of the segment that holds sequence b's last valid step (later steps are masked for b and
pass its states on unchanged), where the loss's sweep has just computed it; only
||d<v, h_last>/dh_t|| per (sequence, step) is kept. A layer whose only output is its last h (no
sequences, no returned states: a classifier's top layer) reaches the loss through h_last alone,
so there the loss's own dL/dh_t is that derivative and no second adjoint is carried. Per
recurrence, not summed over layers, because a lower layer's eps also reaches the upper layers'
last states.

Masked steps behave as in Keras's TensorFlow loop (the state is carried over, the output is the
previous output, or zeros when ``zero_output_for_mask``); they are excluded from every
accumulator and sum.

Time order. All per-step arrays returned here are in the layer's own *processing* order
(reversed input order for ``go_backwards`` layers and the backward half of a Bidirectional),
time-major where noted. `rnn_monitor.probe.probe_monitor` turns them into *input* order before
writing (see its docstring).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import tensorflow as tf

from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.model.perturbed_loop import Provider, TracedRecurrence
from rnn_monitor.model.tensorflow import adjoint
from rnn_monitor.model.tensorflow.layer_loop import ForwardPass, LayerLoop, RecurrencePlan, build_loop, forward
from rnn_monitor.model.tensorflow.segments import FlowChains, Incoming, ReversePass
from rnn_monitor.model.tensorflow.step_reductions import StepReductions, per_position
from rnn_monitor.model.tensorflow.taped_reverse import TapedReverse
from rnn_monitor.model.tensorflow.unit_stats import UnitStats


@dataclasses.dataclass(eq=False)
class LoopResults:
    """What one call of a layer's loop leaves for `CheckpointedGradients`: what its forward kept
    for the statistics (no gradient flows through it) and, once the probe's tape has run its
    backward, what that reduced per recurrence (by its index in the layer loop)."""

    want_flow: bool  # the probe wants the temporal flow
    kept: list = dataclasses.field(default_factory=list)  # per recurrence {"h": [T, B, ...], "c": ...}
    inputs: dict = dataclasses.field(default_factory=dict)  # index -> its cell's input [T, B, ...] (keep_x)
    loss: Optional[list] = None  # StepReductions per recurrence; None: the loss does not reach the layer
    flow: dict = dataclasses.field(default_factory=dict)  # index -> ||d<v, h_last>/dh_t|| [B, T]
    stats: dict = dataclasses.field(default_factory=dict)  # index -> (accumulators, samples) of the reverse pass


@dataclasses.dataclass(eq=False)
class _Trace:
    """What one monitored recurrence produced while the probe was traced (symbolic tensors)."""

    info: RNNLayerInfo
    token: Any = None  # scalar standing for the perturbations eps_t, delta_t (see `_stepped_loop`)
    results: Optional[LoopResults] = None  # its layer loop's
    index: int = 0  # this recurrence's index in its layer loop
    valid: Any = None  # [T, B] bool, processing order
    final_h: Any = None  # [B, ...]: state after the last step (= at the last valid step)
    direct: bool = True  # h is the cell's output (eps reaches the output and the recurrence)
    recurrent: bool = True  # h is a state: dL/dh_t through the recurrence exists
    positions: int = 1  # spatial positions per sequence (feature-map states), else 1
    channels_first: bool = False
    dtype: str = "float32"  # the dtype the cell computes in
    segments: Any = None  # int32 [steps per segment, segments] of the checkpointed loop
    stats: Optional[UnitStats] = None
    tanh_output: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.tanh_output = TracedRecurrence(self.info).tanh_output


def _hand_written_weights(loop: LayerLoop, variables: list, dtypes: list) -> Optional[dict]:
    """Which of the loop's watched `variables` are the cell's kernel, recurrent kernel and bias
    when the hand-written reverse pass (`adjoint`) can serve the layer: it is switched on, and
    the layer's one monitored recurrence is its own stock cell with vector states, h first."""
    if not loop.settings.loop.hand_written_reverse:
        return None
    plans, trace = loop.plans, loop.traces[0]
    if len(plans) != 1 or plans[0].layout.path != () or trace.positions != 1:
        return None
    layout, kind = plans[0].layout, trace.info.kind
    if not (trace.recurrent and layout.direct and layout.h == 0 and layout.count == (2 if kind == "lstm" else 1)):
        return None
    if plans[0].template.shape.rank != 2:
        return None
    return adjoint.eligible(layout.cell, kind, variables, dtypes)


def _flow_chains(loop: LayerLoop, want_flow: bool) -> FlowChains:
    """Which recurrences carry the flow's own adjoint and which share the loss's: a layer whose
    only output is its last h (no sequences, no returned states, its h is the output) reaches the
    loss through h_last alone, so there dL/dh_t *is* d<v, h_last>/dh_t with v = dL/dh_last (one
    backward less per step for a classifier's top layer)."""
    wanted = [j for j in range(len(loop.plans)) if want_flow and loop.traces[j].recurrent]
    only_last = not loop.return_sequences and not getattr(loop.layer, "return_state", False)
    shared = [j for j in wanted if only_last and loop.plans[j].layout.direct]
    return FlowChains(own=[j for j in wanted if j not in shared], shared=shared)


def _hand_written_reverse(loop: LayerLoop, xs_in: Any, incoming: Incoming, chains: FlowChains,
                          weights: dict, variables: list) -> ReversePass:
    """The stock layer's reverse pass by `adjoint.sweep`, in the generic pass's terms."""
    trace = loop.traces[0]
    layer = adjoint.StockLayer(
        cell=loop.plans[0].layout.cell, kind=trace.info.kind, xs=xs_in, valid=loop.valid, masked=loop.masked,
        zero_output=loop.zero_output, stats=trace.stats, segments=loop.segments, last=loop.last,
        in_flight=loop.settings.loop.segments_in_flight,
    )
    res = adjoint.sweep(layer, incoming, chains)
    d_vars: list = [None] * len(variables)
    for name, j in weights.items():
        d_vars[j] = res.d_weights[name]
    return ReversePass(dx=res.dx, d_initial=res.d_initial, d_vars=d_vars, loss=[res.loss],
                       flow={} if res.flow is None else {0: res.flow}, stats={0: res.stats})


def _backward(loop: LayerLoop, results: LoopResults, fwd: ForwardPass, xs_in: Any, flat_in: list,
              grads: Sequence[Any], variables: list) -> Any:
    """The loop op's gradient function: the reverse pass, its reductions left in `results`."""
    grads = [tf.zeros_like(r) if g is None else g for g, r in zip(grads, fwd.outputs)]
    incoming = Incoming.of(grads, loop.return_sequences)
    chains = _flow_chains(loop, results.want_flow)
    weights = _hand_written_weights(loop, variables, [xs_in.dtype] + [f.dtype for f in flat_in])
    if weights is not None:  # a stock LSTM / GRU
        reverse = _hand_written_reverse(loop, xs_in, incoming, chains, weights, variables)
    else:
        reverse = TapedReverse(loop, fwd, xs_in, incoming, chains, variables).run()
    results.loss, results.flow, results.stats = reverse.loss, reverse.flow, reverse.stats
    input_grads = [reverse.dx] + list(reverse.d_initial) + [tf.zeros([], tf.float32) for _ in loop.plans]
    if not variables:
        return input_grads
    return input_grads, reverse.d_vars


def _checkpointed_op(loop: LayerLoop, results: LoopResults) -> Any:
    """The layer's whole loop as one `tf.custom_gradient` op of (inputs, flat initial states,
    one token per recurrence): the forward pass keeps what `results` holds; the gradient
    function is the checkpointed reverse pass."""

    def op(xs_in, *rest):
        flat_in = list(rest[: loop.n_flat])
        fwd = forward(loop, xs_in, flat_in)
        results.kept, results.inputs = fwd.kept, fwd.inputs

        def backward(*grads, variables=None):
            return _backward(loop, results, fwd, xs_in, flat_in, grads, list(variables or []))

        return fwd.outputs, backward

    return tf.custom_gradient(op)


def _stepped_loop(layer: Any, traces: list, provider: Provider, settings: Any, results: LoopResults,
                  sequences: Any, initial_state: Any, mask: Any) -> tuple[Any, Any, list]:
    """Keras's RNN loop with the layer's cell stepped by `CellStepper`, the probe's zero
    perturbations added to each monitored h, and each monitored h (and c, and the input of a
    stacked cell) kept for the statistics: ``(last output, outputs [B, T, ...], final states)``."""
    loop = build_loop(layer, traces, settings, sequences, initial_state, mask)
    for trace in traces:
        trace.segments = tf.stack([loop.segments.steps, loop.segments.count])
    # One scalar token per recurrence stands for its perturbations: the probe's tape
    # differentiates the loss with respect to it, which runs the op's backward; what that
    # computes per step (reduced) is read from `results`.
    tokens = [provider((trace.info.name, "token"), (), "float32") for trace in traces]
    outs = _checkpointed_op(loop, results)(loop.xs, *loop.flat0, *tokens)
    if loop.return_sequences:
        stacked_out, last_output, flat_final = outs[0], outs[1], list(outs[2:])
    else:
        last_output, flat_final = outs[0], list(outs[1:])
        stacked_out = last_output[None]
    outputs = tf.transpose(stacked_out, [1, 0] + list(range(2, len(stacked_out.shape))))
    for i, (trace, plan) in enumerate(zip(traces, loop.plans)):
        trace.token, trace.results, trace.index, trace.valid = tokens[i], results, i, loop.valid
        trace.final_h = flat_final[plan.layout.h] if trace.recurrent else last_output
        trace.stats = _unit_stats(loop, results, i, plan)
    final_states = tf.nest.pack_sequence_as(loop.structure, list(flat_final))
    return last_output, outputs, list(final_states)


def _unit_stats(loop: LayerLoop, results: LoopResults, i: int, plan: RecurrencePlan) -> UnitStats:
    """Recurrence i's statistics from what the forward kept: reduced after the backward
    (`CheckpointedGradients.results`), or by a stock layer's reverse pass segment by segment
    with the gates it rebuilds anyway."""
    trace = loop.traces[i]
    kept = {k: tf.stop_gradient(v) for k, v in results.kept[i].items()}  # [T, B, ...]
    x_seq = tf.stop_gradient(results.inputs[i]) if i in results.inputs else tf.stop_gradient(loop.xs)
    c0 = loop.flat0[plan.layout.first + 1] if plan.keep_c else None
    return UnitStats(
        trace, plan.layout.cell, trace.info.kind, x_seq, tf.stop_gradient(plan.template),
        None if c0 is None else tf.stop_gradient(c0), kept, loop.valid, loop.settings, loop.masked,
    )


class CheckpointedLoop:
    """The replacement ``inner_loop`` of one Keras RNN layer on TensorFlow's loop path, serving
    every monitored recurrence of it; fills in what the trace found about each."""

    def __init__(self, layer: Any, shapes: Sequence[TracedRecurrence], provider: Provider, record: dict,
                 settings: Any, flow: bool) -> None:
        self.layer, self.shapes, self.provider, self.record = layer, list(shapes), provider, record
        self.settings, self.flow = settings, flow
        self.traces = [_Trace(shape.info) for shape in self.shapes]

    def __call__(self, sequences, initial_state, mask, training=False):
        results = LoopResults(want_flow=self.flow)
        out = _stepped_loop(self.layer, self.traces, self.provider, self.settings, results,
                            sequences, initial_state, mask)
        for shape, trace in zip(self.shapes, self.traces):
            shape.path, shape.direct, shape.recurrent = "loop", trace.direct, trace.recurrent
            shape.positions, shape.channels_first, shape.dtype = trace.positions, trace.channels_first, trace.dtype
            shape.masked, shape.rebuild = mask is not None, trace.info.kind in ("lstm", "gru")
            shape.gradients = CheckpointedGradients(trace)
            self.record[shape.info.name] = {"valid": tf.transpose(trace.valid, [1, 0])}
        return out


class CheckpointedGradients:
    """What `CheckpointedLoop`'s backward reduced for one recurrence (``reduced``: the probe
    reads these results instead of reducing dL/dh_t itself)."""

    reduced = True

    def __init__(self, trace: _Trace) -> None:
        self.trace = trace

    def results(self, gradients: bool, weight_grads: list) -> dict:
        """The probe's numbers of this recurrence (as `rnn_monitor.probe.layer_stats` reads them)."""
        trace = self.trace
        done = trace.results.stats.get(trace.index)  # from the reverse pass, or reduced here
        acc, samples = done if done is not None else trace.stats.run()
        valid = trace.valid  # [T, B]
        res = {"acc": acc, "samples": samples, "valid": tf.transpose(valid, [1, 0]), "segments": trace.segments}
        if gradients:
            res.update(self._gradients(valid))
            res["weight_grad_norm"], res["weight_grad_nonfinite"] = _weight_gradient_norm(weight_grads)
        return res

    def _gradients(self, valid: Any) -> dict:
        trace, results = self.trace, self.trace.results
        n_steps, batch = tf.shape(valid)[0], tf.shape(valid)[1]
        if results.loss is not None:
            reduced = results.loss[trace.index]
        else:  # the loss does not reach this layer: every gradient is zero
            units = tf.shape(per_position(tf.zeros_like(trace.final_h)[None], trace.channels_first, trace.positions))[-1]
            zeros_tu = tf.zeros(tf.stack([n_steps, units]), tf.float32)
            reduced = StepReductions(zeros_tu, zeros_tu, tf.zeros(tf.reshape(n_steps, [1]), tf.float32),
                                     tf.constant(0.0), tf.zeros_like(trace.final_h))
        # At masked steps both gradients are exactly 0 (the step's eps / delta never reach the
        # output: Keras's `where` keeps the previous state), so plain sums over b are sums over
        # the valid sequences.
        res = {k: getattr(reduced, k) for k in ("grad_abs_sum", "out_abs_sum", "grad_norm_sum", "grad_nonfinite")}
        res["count_t"] = tf.reduce_sum(tf.cast(valid, tf.float32), axis=1)  # [T]
        # Temporal flow: v = dL/dh at each sequence's last valid step (processing order); its
        # backward ran in the same sweep.
        v = tf.stop_gradient(reduced.v)  # [B, ...]
        flow_norm = results.flow.get(trace.index) if results.want_flow else None
        res["flow_norm"] = flow_norm if flow_norm is not None else tf.zeros(tf.stack([batch, n_steps]), tf.float32)
        res["v_norm"] = tf.norm(tf.reshape(tf.cast(v, tf.float32), tf.stack([tf.shape(v)[0], -1])), axis=-1)
        return res


def _weight_gradient_norm(grads: list) -> tuple[Any, Any]:
    """``(norm, non-finite count)`` of a layer's weight gradients, the norm over finite entries
    (the squares summed in float64)."""
    sq = tf.constant(0.0, tf.float64)
    bad = tf.constant(0.0, tf.float32)
    for g in grads:
        g = tf.convert_to_tensor(g)
        finite = tf.math.is_finite(g)
        bad += tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.float32))
        g64 = tf.cast(tf.where(finite, g, tf.zeros_like(g)), tf.float64)
        sq += tf.reduce_sum(g64 * g64)
    return tf.sqrt(sq), bad
