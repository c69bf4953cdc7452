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
``ceil(sqrt(T))`` steps (`SEGMENT_STEPS` overrides) without perturbations (they are zero) and
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
the op's backward, which leaves its reduced results in the loop's ``side`` dict, read by
`CheckpointedGradients`.

A layer whose one monitored recurrence is its own stock LSTM or GRU cell (float32, vector
states) takes a hand-written reverse pass instead (`rnn_monitor.model.tensorflow.adjoint`): the
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

import logging
from typing import Any, Optional, Sequence

import tensorflow as tf

from rnn_monitor.model.anatomy import RNNLayerInfo, leaf_cells
from rnn_monitor.model.gates import positions, spatial_shape
from rnn_monitor.model.perturbed_loop import Provider, TracedRecurrence
from rnn_monitor.model.stepping import CellStepper, UnsupportedCell
from rnn_monitor.model.tensorflow import adjoint
from rnn_monitor.model.tensorflow.rows import to_rows
from rnn_monitor.model.tensorflow.unit_stats import UnitStats, broadcast_mask

logger = logging.getLogger("rnn_monitor")

class _Trace:
    """What one monitored recurrence produced while the probe was traced (symbolic tensors)."""

    def __init__(self, info: RNNLayerInfo) -> None:
        self.info = info
        self.called = 0
        self.token = None  # scalar standing for the perturbations eps_t, delta_t (see _stepped_loop)
        self.side: dict = {}  # the layer loop's shared dict: the backward's reduced results
        self.index = 0  # this recurrence's index in its layer loop
        self.valid = None  # [T, B] bool, processing order
        self.final_h = None  # [B, ...]: state after the last step (= at the last valid step)
        self.acc: dict = {}
        self.samples: dict = {}  # state -> [S, T, U]
        self.direct = True  # h is the cell's output (eps reaches the output and the recurrence)
        self.recurrent = True  # h is a state: dL/dh_t through the recurrence exists
        self.positions = 1  # spatial positions per sequence (feature-map states), else 1
        self.channels_first = False
        self.dtype = "float32"  # the dtype the cell computes in
        self.refused: Optional[str] = None  # why the probe could not step this recurrence
        self.segments = None  # int32 [steps per segment, segments] of the checkpointed loop
        self.stats = None  # its UnitStats (rnn_monitor.model.tensorflow.unit_stats)
        self.tanh_output = TracedRecurrence(info).tanh_output


def _zeros_steps(n_steps, batch, template):
    """Zeros [T, B, ...template's non-batch dims] in the template's dtype."""
    dims = template.shape.as_list()[1:]
    rest = tf.constant(dims, tf.int32) if all(d is not None for d in dims) else tf.shape(template)[1:]
    return tf.zeros(tf.concat([tf.stack([n_steps, batch]), rest], axis=0), dtype=template.dtype)


# Checkpointed backprop through time: the probe's loop keeps the states only at the start of
# every segment of SEGMENT_STEPS steps (None: ceil(sqrt(T))) and recomputes one segment at a time
# in the backward pass.
SEGMENT_STEPS: Optional[int] = None


def _segment_steps(n_steps):
    """Steps per segment (int32 tensor): SEGMENT_STEPS, or ceil(sqrt(T)) (Chen et al. 2016)."""
    if SEGMENT_STEPS is not None:
        return tf.maximum(1, tf.minimum(tf.constant(int(SEGMENT_STEPS), tf.int32), n_steps))
    root = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(n_steps, tf.float32))), tf.int32)
    return tf.maximum(1, root)


def _fast_weights(plans, traces, variables, dtypes):
    """Which of the loop's watched `variables` are the cell's kernel, recurrent kernel and bias
    when the hand-written reverse pass (`rnn_monitor.model.tensorflow.adjoint`) can serve the layer: its
    one monitored recurrence is the layer's own stock cell with vector states, h first."""
    if len(plans) != 1 or plans[0]["slot"].path != () or traces[0].positions != 1:
        return None
    slot, kind = plans[0]["slot"], traces[0].info.kind
    if not (traces[0].recurrent and slot.direct and slot.h == 0 and slot.count == (2 if kind == "lstm" else 1)):
        return None
    if plans[0]["template"].shape.rank != 2:
        return None
    return adjoint.eligible(slot.cell, kind, list(variables or []), dtypes)


def _template(batch: Any, shape: tuple, dtype: Any) -> Any:
    """Zeros [B, ...shape] in `dtype`: what the loop's buffers of one value per step look like."""
    return tf.zeros(tf.concat([tf.reshape(batch, [1]), tf.constant(list(shape), tf.int32)], 0), dtype)


def _stepped_loop(layer, traces, provider, settings, sequences, initial_state, mask):
    """Keras's RNN loop with the layer's cell stepped by `CellStepper`, the probe's zero
    perturbations added to each monitored h, and each monitored h (and c, and the input of a
    stacked cell) kept for the statistics."""
    cell = layer.cell
    if mask is not None and isinstance(mask, (list, tuple)):
        mask = mask[0]
    seq = tf.convert_to_tensor(sequences)
    structure = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    flat0 = [tf.convert_to_tensor(s) for s in tf.nest.flatten(structure)]
    structure = tf.nest.pack_sequence_as(structure, flat0)
    rank = len(seq.shape)
    xs = tf.transpose(seq, [1, 0] + list(range(2, rank)))  # [T, B, ...]
    n_steps = tf.shape(xs)[0]
    batch = tf.shape(xs)[1]
    masked = mask is not None
    if masked:
        m = tf.cast(mask, tf.bool)
        if len(m.shape) == 3:
            m = m[:, :, 0]
        valid = tf.transpose(m, [1, 0])
    else:
        valid = tf.ones(tf.stack([n_steps, batch]), dtype=tf.bool)
    if layer.go_backwards:
        xs = tf.reverse(xs, [0])
        valid = tf.reverse(valid, [0])

    stepper = CellStepper(cell, structure)
    slots = stepper.layout(xs[0], flat0)
    first_path = leaf_cells(cell)[0][0]
    out0 = {path: _template(batch, slot.out_shape, slot.out_dtype) for path, slot in slots.items()}
    by_path = {}
    plans = []
    for i, trace in enumerate(traces):
        path = trace.info.cell_path
        slot = slots.get(path)
        if slot is None:
            raise UnsupportedCell(f"its cell has no sub-cell at {path}")
        trace.recurrent = slot.h is not None
        trace.direct = slot.direct
        template = flat0[slot.h] if trace.recurrent else out0[path]
        spatial, first = spatial_shape(slot.cell, tuple(template.shape))
        trace.positions, trace.channels_first = positions(spatial), first
        trace.dtype = template.dtype.name
        keep_c = trace.info.kind == "lstm"
        if keep_c and slot.count < 2:
            raise UnsupportedCell(f"its LSTM-like cell at {path} carries {slot.count} state(s), not 2")
        plans.append({
            "slot": slot,
            "template": template,
            "keep_c": keep_c,
            # a stock cell of a stack after the first: its input is the previous cell's output
            "keep_x": trace.info.kind in ("lstm", "gru") and path != first_path,
        })
        by_path[path] = i
    out_template = out0[leaf_cells(cell)[-1][0]]
    zero_output = bool(getattr(layer, "zero_output_for_mask", False))
    return_sequences = bool(layer.return_sequences)
    prev0 = _zeros_steps(1, batch, out_template)[0]
    seg = _segment_steps(n_steps)
    n_seg = (n_steps + seg - 1) // seg
    for trace in traces:
        trace.segments = tf.stack([seg, n_seg])

    def kept_ta(template, size):
        return tf.TensorArray(template.dtype, size=size, element_shape=template.shape)

    def run(lo, hi, x_ta, valid_ta, flat, prev_out, out_ta=None, keep_tas=None, x_tas=None, eps_tas=None, delta_tas=None):
        """Steps t in [lo, hi): read every TensorArray at t, write at t. Without `eps_tas` the
        perturbations (zeros) are not added (the forward pass); the recomputation adds them."""
        eps_tas = eps_tas or {}
        delta_tas = delta_tas or {}
        if keep_tas is None:
            keep_tas = [{} for _ in plans]
        if x_tas is None:
            x_tas = {}

        outs = {} if out_ta is None else {"out": out_ta}  # no None among the loop variables

        def body(t, flat, prev_out, outs, keep_tas, x_tas):
            x_t = x_ta.read(t)
            kept = {}

            def perturb(path, inputs, out, new_flat):
                i = by_path.get(path)
                if i is None:
                    return out, new_flat
                plan = plans[i]
                values = {}
                if traces[i].recurrent:
                    k = plan["slot"].local_h
                    values["h"] = new_flat[k]
                    h = new_flat[k] + eps_tas[i].read(t) if i in eps_tas else new_flat[k]
                    new_flat[k] = h
                    out = h if plan["slot"].direct else out
                    if i in delta_tas:
                        out = out + delta_tas[i].read(t)
                else:  # only the output can be watched
                    values["h"] = out
                    if i in eps_tas:
                        out = out + eps_tas[i].read(t)
                    if i in delta_tas:
                        out = out + delta_tas[i].read(t)
                if plan["keep_c"]:
                    values["c"] = new_flat[1]
                if plan["keep_x"]:
                    values["x"] = inputs
                kept[i] = values
                return out, new_flat

            out, new_flat = stepper.step(x_t, flat, perturb)
            if masked:
                m_t = valid_ta.read(t)
                new_flat = [tf.where(broadcast_mask(m_t, n), n, s) for n, s in zip(new_flat, flat)]
                out = tf.where(broadcast_mask(m_t, out), out, tf.zeros_like(out) if zero_output else prev_out)
            keep_tas = [{k: ta.write(t, kept[i][k]) for k, ta in tas.items()} for i, tas in enumerate(keep_tas)]
            x_tas = {i: ta.write(t, kept[i]["x"]) for i, ta in x_tas.items()}
            outs = {k: ta.write(t, out) for k, ta in outs.items()}
            return t + 1, new_flat, out, outs, keep_tas, x_tas

        _, flat, prev_out, outs, keep_tas, x_tas = tf.while_loop(
            lambda t, *_: t < hi,
            body,
            (lo, list(flat), prev_out, outs, keep_tas, x_tas),
            maximum_iterations=hi - lo,
            parallel_iterations=1,
        )
        return list(flat), prev_out, outs.get("out"), keep_tas, x_tas

    n_plans = len(plans)
    n_flat = len(flat0)
    # What the forward keeps for the statistics (no gradient flows through it), what `backward`
    # computes, and whether the probe wants the temporal flow ("want_flow").
    side: dict = {}
    # each sequence's last valid step (processing order); all-masked rows: the last step
    last = n_steps - 1 - tf.argmax(tf.cast(tf.reverse(valid, [0]), tf.int32), axis=0, output_type=tf.int32)

    def forward(xs_in, *rest):
        """The layer's whole loop, differentiated by `backward` (checkpointed BPTT): only the
        states at segment boundaries are kept for the gradient."""
        flat_in = list(rest[:n_flat])
        x_ta = tf.TensorArray(xs_in.dtype, size=n_steps).unstack(xs_in)
        valid_ta = tf.TensorArray(tf.bool, size=n_steps).unstack(valid) if masked else None
        keep_tas = []
        x_tas = {}
        for i, plan in enumerate(plans):
            slot = plan["slot"]
            tas = {"h": kept_ta(plan["template"], n_steps)}
            if plan["keep_c"]:
                tas["c"] = kept_ta(flat0[slot.first + 1], n_steps)
            keep_tas.append(tas)
            if plan["keep_x"]:
                x_tas[i] = kept_ta(_template(batch, plan["slot"].in_shape, plan["slot"].in_dtype), n_steps)
        out_ta = kept_ta(out_template, n_steps) if return_sequences else None
        bound_tas = [kept_ta(s, n_seg) for s in flat_in + [prev0]]

        outs = {} if out_ta is None else {"out": out_ta}

        def segment(s, flat, prev_out, outs, keep_tas, x_tas, bound_tas):
            bound_tas = [ta.write(s, v) for ta, v in zip(bound_tas, list(flat) + [prev_out])]
            lo = s * seg
            flat, prev_out, out_ta, keep_tas, x_tas = run(
                lo, tf.minimum(n_steps, lo + seg), x_ta, valid_ta, flat, prev_out, outs.get("out"), keep_tas, x_tas
            )
            outs = {} if out_ta is None else {"out": out_ta}
            return s + 1, flat, prev_out, outs, keep_tas, x_tas, bound_tas

        _, flat, prev_out, outs, keep_tas, x_tas, bound_tas = tf.while_loop(
            lambda s, *_: s < n_seg,
            segment,
            (tf.constant(0), flat_in, prev0, outs, keep_tas, x_tas, bound_tas),
            maximum_iterations=n_seg,
            parallel_iterations=1,
        )
        side["kept"] = [{k: ta.stack() for k, ta in tas.items()} for tas in keep_tas]
        side["x"] = {i: ta.stack() for i, ta in x_tas.items()}
        bounds = [ta.stack() for ta in bound_tas]  # [n_seg, B, ...] each
        results = ([outs["out"].stack()] if return_sequences else []) + [prev_out] + list(flat)

        def backward(*grads, variables=None):
            variables = list(variables or [])
            grads = [tf.zeros_like(r) if g is None else g for g, r in zip(grads, results)]
            d_seq = grads[0] if return_sequences else None
            d_last = grads[int(return_sequences)]
            d_final = grads[int(return_sequences) + 1 :]

            def grad_ta(dtype=tf.float32):
                return tf.TensorArray(dtype, size=n_seg, infer_shape=False)

            # The temporal flow rides on the same sweep: its adjoint d<v, h_last>/d(states) is
            # carried per recurrence; v[b] enters at the end of the segment that holds sequence
            # b's last valid step (the steps after it are masked for b: they pass its states on
            # unchanged), i.e. as soon as the loss's sweep has computed it.
            flows = [j for j in range(n_plans) if side.get("want_flow") and traces[j].recurrent]
            # A layer whose only output is its last h (no sequences, no returned states, its h is
            # the output) reaches the loss through h_last alone: there dL/dh_t *is*
            # d<v, h_last>/dh_t with v = dL/dh_last, so its flow is the loss's own adjoint and
            # needs no second chain (one backward less per step for a classifier's top layer).
            only_last = not return_sequences and not getattr(layer, "return_state", False)
            shared = [j for j in flows if only_last and plans[j]["slot"].direct]
            flows = [j for j in flows if j not in shared]

            fast = _fast_weights(plans, traces, variables, [xs_in.dtype] + [f.dtype for f in flat_in])
            if fast is not None:  # a stock LSTM / GRU: the hand-written reverse pass
                res = adjoint.sweep(
                    plans[0]["slot"].cell, traces[0].info.kind, xs_in, valid, masked, traces[0].stats,
                    seg, n_seg, last, d_seq, d_last, d_final, zero_output, bool(flows), bool(shared),
                )
                side["flow"] = {} if res["flow"] is None else {0: res["flow"]}
                side["stats"] = {0: res["stats"]}
                side["loss"] = [res["loss"]]
                input_grads = [res["dx"]] + res["d_initial"] + [tf.zeros([], tf.float32) for _ in plans]
                if not variables:
                    return input_grads
                d_vars = [None] * len(variables)
                for name, j in fast.items():
                    d_vars[j] = res["d_weights"][name]
                return input_grads, d_vars

            def seg_back(s, d_flat, d_prev, d_vars, dx_ta, reduced, vs, bad, d_flows, flow_tas):
                lo = s * seg
                hi = tf.minimum(n_steps, lo + seg)
                n = hi - lo
                flat_s = [b[s] for b in bounds[:n_flat]]
                prev_s = bounds[n_flat][s]
                x_seg = xs_in[lo:hi]
                eps_seg = [_zeros_steps(n, batch, p["template"]) for p in plans]
                delta_seg = [_zeros_steps(n, batch, out0[p["slot"].path]) for p in plans]
                with tf.GradientTape(persistent=bool(flows)) as seg_tape:
                    seg_tape.watch([x_seg] + flat_s + [prev_s] + eps_seg + delta_seg + variables)
                    flat_e, prev_e, out_ta_s, _, _ = run(
                        tf.constant(0), n,
                        tf.TensorArray(x_seg.dtype, size=n).unstack(x_seg),
                        tf.TensorArray(tf.bool, size=n).unstack(valid[lo:hi]) if masked else None,
                        flat_s, prev_s,
                        out_ta=kept_ta(out_template, n) if return_sequences else None,
                        eps_tas={i: tf.TensorArray(e.dtype, size=n).unstack(e) for i, e in enumerate(eps_seg)},
                        delta_tas={i: tf.TensorArray(d.dtype, size=n).unstack(d) for i, d in enumerate(delta_seg)},
                    )
                    targets = ([out_ta_s.stack()] if return_sequences else []) + [prev_e] + flat_e
                out_grads = ([d_seq[lo:hi]] if return_sequences else []) + [d_prev] + list(d_flat)
                sources = [x_seg] + flat_s + [prev_s] + eps_seg + delta_seg + variables
                g = seg_tape.gradient(
                    targets, sources, output_gradients=out_grads,
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                g = [tf.convert_to_tensor(v) for v in g]
                dx_ta = dx_ta.write(s, g[0])
                d_flat = g[1 : 1 + n_flat]
                d_prev = g[1 + n_flat]
                at = 2 + n_flat
                d_eps, d_delta = g[at : at + n_plans], g[at + n_plans : at + 2 * n_plans]
                d_vars = [a + b for a, b in zip(d_vars, g[at + 2 * n_plans :])]
                # Each step reduced to what is written: no [T, B, ...] gradient is kept.
                valid_seg = valid[lo:hi]
                new_reduced, new_vs, new_bad = [], [], []
                for i, plan in enumerate(plans):
                    e = _per_position(tf.cast(d_eps[i], tf.float32), traces[i])  # [n, B, P, U]
                    d = _per_position(tf.cast(d_delta[i], tf.float32), traces[i])
                    parts = {
                        "grad_abs_sum": tf.reduce_sum(tf.abs(e), axis=[1, 2]),  # [n, U]
                        "out_abs_sum": tf.reduce_sum(tf.abs(d), axis=[1, 2]),
                        "grad_norm_sum": tf.reduce_sum(tf.norm(e, axis=[2, 3]), axis=1),  # [n]
                    }
                    new_reduced.append({k: ta.write(s, parts[k]) for k, ta in reduced[i].items()})
                    flags = tf.logical_and(valid_seg[:, :, None, None], tf.logical_not(tf.math.is_finite(e)))
                    new_bad.append(bad[i] + tf.reduce_sum(tf.cast(flags, tf.float32)))
                    # v: dL/dh at each sequence's last valid step, from the segment holding it
                    at_seg = last - lo
                    here = tf.logical_and(at_seg >= 0, at_seg < n)
                    rows = tf.stack([tf.clip_by_value(at_seg, 0, n - 1), tf.range(batch)], axis=1)
                    picked = tf.gather_nd(d_eps[i], rows)  # [B, ...]
                    new_vs.append(tf.where(broadcast_mask(here, picked), picked, vs[i]))
                    if i in flows:
                        seeds = [tf.zeros_like(f) for f in flat_e]
                        seeds[plan["slot"].h] = tf.where(broadcast_mask(here, picked), tf.stop_gradient(picked), seeds[plan["slot"].h])
                        seeded = [a + b for a, b in zip(d_flows[i], seeds)]
                        gf = seg_tape.gradient(
                            flat_e, flat_s + [eps_seg[i]], output_gradients=seeded,
                            unconnected_gradients=tf.UnconnectedGradients.ZERO,
                        )
                        gf = [tf.convert_to_tensor(v) for v in gf]
                        d_flows[i] = gf[:-1]
                        ef = _per_position(tf.cast(gf[-1], tf.float32), traces[i])
                        flow_tas[i] = flow_tas[i].write(s, tf.norm(ef, axis=[2, 3]))  # [n, B]
                    elif i in shared:
                        flow_tas[i] = flow_tas[i].write(s, tf.norm(e, axis=[2, 3]))
                del seg_tape
                return s - 1, d_flat, d_prev, d_vars, dx_ta, new_reduced, new_vs, new_bad, d_flows, flow_tas

            # Segments one after the other, from the last (parallel_iterations=1: otherwise the
            # recomputations of several segments, which do not depend on each other, would run
            # at once and keep their intermediates alive together).
            _, d_flat0, _, d_vars, dx_ta, reduced, vs, bad, _, flow_tas = tf.while_loop(
                lambda s, *_: s >= 0,
                seg_back,
                (n_seg - 1, list(d_final), d_last, [tf.zeros_like(v) for v in variables], grad_ta(xs_in.dtype),
                 [{k: grad_ta() for k in ("grad_abs_sum", "out_abs_sum", "grad_norm_sum")} for _ in plans],
                 [tf.zeros_like(p["template"]) for p in plans], [tf.constant(0.0) for _ in plans],
                 {j: [tf.zeros_like(f) for f in d_final] for j in flows}, {j: grad_ta() for j in flows + shared}),
                maximum_iterations=n_seg,
                parallel_iterations=1,
            )
            side["flow"] = {j: tf.transpose(ta.concat(), [1, 0]) for j, ta in flow_tas.items()}  # [B, T]
            side["loss"] = [
                dict({k: ta.concat() for k, ta in reduced[i].items()}, grad_nonfinite=bad[i], v=vs[i])
                for i in range(n_plans)
            ]
            dx = dx_ta.concat()
            dx.set_shape(xs_in.shape)
            input_grads = [dx] + list(d_flat0) + [tf.zeros([], tf.float32) for _ in plans]
            if variables:
                return input_grads, list(d_vars)
            return input_grads

        return results, backward

    # One scalar token per recurrence stands for its perturbations: the probe's tape
    # differentiates the loss with respect to it, which runs `backward`; what that computes per
    # step (reduced) is read from `side`.
    tokens = [provider((trace.info.name, "token"), (), "float32") for trace in traces]
    results = tf.custom_gradient(forward)(xs, *flat0, *tokens)
    if return_sequences:
        stacked_out, last_output, flat_final = results[0], results[1], list(results[2:])
    else:
        last_output, flat_final = results[0], list(results[1:])
        stacked_out = last_output[None]
    outputs = tf.transpose(stacked_out, [1, 0] + list(range(2, len(stacked_out.shape))))
    for i, (trace, plan) in enumerate(zip(traces, plans)):
        slot = plan["slot"]
        trace.token, trace.side, trace.index, trace.valid = tokens[i], side, i, valid
        trace.final_h = flat_final[slot.h] if trace.recurrent else last_output
        kept = {k: tf.stop_gradient(v) for k, v in side["kept"][i].items()}  # [T, B, ...]
        x_seq = tf.stop_gradient(side["x"][i]) if i in side["x"] else tf.stop_gradient(xs)
        h0 = plan["template"] if not trace.recurrent else flat0[slot.h]
        c0 = flat0[slot.first + 1] if plan["keep_c"] else None
        # Reduced after the backward (`CheckpointedGradients.results`), or by a stock layer's
        # reverse pass segment by segment with the gates it rebuilds anyway.
        trace.stats = UnitStats(
            trace, slot.cell, trace.info.kind, x_seq, tf.stop_gradient(h0),
            None if c0 is None else tf.stop_gradient(c0), kept, valid, settings, masked,
        )
    final_states = tf.nest.pack_sequence_as(structure, list(flat_final))
    return last_output, outputs, list(final_states)


class CheckpointedLoop:
    """The replacement ``inner_loop`` of one Keras RNN layer on TensorFlow's loop path, serving
    every monitored recurrence of it; fills in what the trace found about each."""

    def __init__(self, layer: Any, shapes: Sequence[TracedRecurrence], provider: Provider, record: dict,
                 settings: Any, flow: bool) -> None:
        self.layer, self.shapes, self.provider, self.record = layer, list(shapes), provider, record
        self.settings, self.flow = settings, flow
        self.traces = [_Trace(shape.info) for shape in self.shapes]

    def __call__(self, sequences, initial_state, mask, training=False):
        out = _stepped_loop(self.layer, self.traces, self.provider, self.settings, sequences, initial_state, mask)
        for shape, trace in zip(self.shapes, self.traces):
            shape.path, shape.direct, shape.recurrent = "loop", trace.direct, trace.recurrent
            shape.positions, shape.channels_first, shape.dtype = trace.positions, trace.channels_first, trace.dtype
            shape.masked, shape.rebuild = mask is not None, trace.info.kind in ("lstm", "gru")
            trace.side["want_flow"] = self.flow
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
        done = trace.side.get("stats", {}).get(trace.index)  # from the reverse pass, or reduced here
        acc, samples = done if done is not None else trace.stats.run()
        valid = trace.valid  # [T, B]
        res = {"acc": acc, "samples": samples, "valid": tf.transpose(valid, [1, 0]), "segments": trace.segments}
        if gradients:
            res.update(self._gradients(valid))
            res["weight_grad_norm"], res["weight_grad_nonfinite"] = _weight_gradient_norm(weight_grads)
        return res

    def _gradients(self, valid: Any) -> dict:
        trace = self.trace
        n_steps, batch = tf.shape(valid)[0], tf.shape(valid)[1]
        reduced = trace.side.get("loss")
        if reduced is not None:
            reduced = reduced[trace.index]
        else:  # the loss does not reach this layer: every gradient is zero
            units = tf.shape(_per_position(tf.zeros_like(trace.final_h)[None], trace))[-1]
            zeros_tu = tf.zeros(tf.stack([n_steps, units]), tf.float32)
            reduced = {"grad_abs_sum": zeros_tu, "out_abs_sum": zeros_tu,
                       "grad_norm_sum": tf.zeros(tf.reshape(n_steps, [1]), tf.float32),
                       "grad_nonfinite": tf.constant(0.0), "v": tf.zeros_like(trace.final_h)}
        # At masked steps both gradients are exactly 0 (the step's eps / delta never reach the
        # output: Keras's `where` keeps the previous state), so plain sums over b are sums over
        # the valid sequences.
        res = {k: reduced[k] for k in ("grad_abs_sum", "out_abs_sum", "grad_norm_sum", "grad_nonfinite")}
        res["count_t"] = tf.reduce_sum(tf.cast(valid, tf.float32), axis=1)  # [T]
        # Temporal flow: v = dL/dh at each sequence's last valid step (processing order); its
        # backward ran in the same sweep.
        v = tf.stop_gradient(reduced["v"])  # [B, ...]
        flow_norm = trace.side.get("flow", {}).get(trace.index) if trace.side.get("want_flow") else None
        res["flow_norm"] = flow_norm if flow_norm is not None else tf.zeros(tf.stack([batch, n_steps]), tf.float32)
        res["v_norm"] = tf.norm(tf.reshape(tf.cast(v, tf.float32), tf.stack([tf.shape(v)[0], -1])), axis=-1)
        return res


def _weight_gradient_norm(grads: list) -> tuple[Any, Any]:
    """``(norm, non-finite count)`` of a layer's weight gradients, the norm over finite entries."""
    sq = tf.constant(0.0, tf.float64)
    bad = tf.constant(0.0, tf.float32)
    for g in grads:
        g = tf.convert_to_tensor(g)
        finite = tf.math.is_finite(g)
        bad += tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.float32))
        g64 = tf.cast(tf.where(finite, g, tf.zeros_like(g)), tf.float64)
        sq += tf.reduce_sum(g64 * g64)
    return tf.sqrt(sq), bad


def _per_position(values, trace):
    """[T, B, ...] -> [T, B, positions, U] (feature maps: one row per spatial position)."""
    rows = to_rows(values, trace.channels_first)  # [T, B * positions, U]
    shape = tf.shape(rows)
    return tf.reshape(rows, tf.stack([shape[0], -1, trace.positions, shape[2]]))
