"""One Keras RNN layer's loop as TensorFlow's probe loop steps it (`checkpointed`): the inputs,
masks and states of one trace in time-major processing order, a plan per monitored recurrence,
the steps run in a `tf.while_loop` with the layer's cell stepped by `CellStepper`, and the
forward pass that keeps, besides the outputs, each monitored h (and c, and a stacked cell's
input) for the statistics and the states at each segment's start for the reverse pass.

Masked steps behave as in Keras's TensorFlow loop: the state is carried over, the output is the
previous output, or zeros with ``zero_output_for_mask``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Optional

import tensorflow as tf

from rnn_monitor.model.anatomy import leaf_cells
from rnn_monitor.model.stepping import CellLayout, CellStepper, note_state, traced_layout
from rnn_monitor.model.tensorflow.segments import Segments
from rnn_monitor.model.tensorflow.step_reductions import last_valid_steps
from rnn_monitor.model.tensorflow.unit_stats import broadcast_mask


@dataclasses.dataclass(frozen=True, eq=False)
class RecurrencePlan:
    """What the loop does for one monitored recurrence."""

    layout: CellLayout  # where its cell's states sit in the layer's flat states, and which is h
    template: Any  # zeros [B, ...] shaped as its h (or as its output, when it has no h)
    keep_c: bool  # an LSTM: its c is kept for the statistics
    keep_x: bool  # a stock cell of a stack after the first: its input is kept (the previous cell's output)

    @property
    def recurrent(self) -> bool:
        """h is a state: dL/dh_t through the recurrence exists."""
        return self.layout.h is not None


@dataclasses.dataclass(frozen=True, eq=False)
class LayerLoop:
    """The layer's loop in one trace (its tensors belong to that trace)."""

    layer: Any
    traces: list  # the monitored recurrences (`checkpointed._Trace`), in plan order
    plans: list  # a RecurrencePlan per trace
    by_path: dict  # cell path -> index of its plan
    stepper: CellStepper
    settings: Any  # `rnn_monitor.probe.graph.ProbeSettings`
    xs: Any  # [T, B, ...] inputs
    valid: Any  # [T, B] bool
    masked: bool  # a mask reached the loop
    n_steps: Any
    batch: Any
    structure: Any  # the layer's initial state, nested as Keras passes it
    flat0: list  # the flat initial states
    out_templates: dict  # cell path -> zeros [B, ...] shaped as that cell's output
    out_template: Any  # the layer's output (its last cell's)
    prev0: Any  # the output before the first step (zeros)
    zero_output: bool  # zero_output_for_mask
    return_sequences: bool
    segments: Segments
    last: Any  # [B] each sequence's last valid step

    @property
    def n_flat(self) -> int:
        return len(self.flat0)


def build_loop(layer: Any, traces: list, settings: Any, sequences: Any, initial_state: Any, mask: Any) -> LayerLoop:
    """The loop of `layer` for its call on `sequences`; fills in what it finds about each trace."""
    xs, valid, masked, structure, flat0 = _inputs(layer, sequences, initial_state, mask)
    n_steps, batch = tf.shape(xs)[0], tf.shape(xs)[1]
    stepper = CellStepper(layer.cell, structure)
    layouts = stepper.layout(xs[0], flat0)
    out0 = {path: _template(batch, layout.out_shape, layout.out_dtype) for path, layout in layouts.items()}
    cells = leaf_cells(layer.cell)
    plans = _plans(traces, layouts, flat0, out0, cells[0][0])
    out_template = out0[cells[-1][0]]
    return LayerLoop(
        layer=layer, traces=list(traces), plans=plans,
        by_path={trace.info.cell_path: i for i, trace in enumerate(traces)},
        stepper=stepper, settings=settings, xs=xs, valid=valid, masked=masked, n_steps=n_steps, batch=batch,
        structure=structure, flat0=flat0, out_templates=out0, out_template=out_template,
        prev0=_zeros_steps(1, batch, out_template)[0],
        zero_output=bool(getattr(layer, "zero_output_for_mask", False)),
        return_sequences=bool(layer.return_sequences),
        segments=Segments.of(n_steps, settings.loop.segment_steps),
        last=last_valid_steps(valid),
    )


def _inputs(layer: Any, sequences: Any, initial_state: Any, mask: Any) -> tuple:
    """``(xs [T, B, ...], valid [T, B], masked, structure, flat states)``, processing order."""
    if mask is not None and isinstance(mask, (list, tuple)):
        mask = mask[0]
    seq = tf.convert_to_tensor(sequences)
    structure = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    flat0 = [tf.convert_to_tensor(s) for s in tf.nest.flatten(structure)]
    structure = tf.nest.pack_sequence_as(structure, flat0)
    xs = tf.transpose(seq, [1, 0] + list(range(2, len(seq.shape))))  # [T, B, ...]
    masked = mask is not None
    if masked:
        m = tf.cast(mask, tf.bool)
        if len(m.shape) == 3:
            m = m[:, :, 0]
        valid = tf.transpose(m, [1, 0])
    else:
        valid = tf.ones(tf.stack([tf.shape(xs)[0], tf.shape(xs)[1]]), dtype=tf.bool)
    if layer.go_backwards:
        xs = tf.reverse(xs, [0])
        valid = tf.reverse(valid, [0])
    return xs, valid, masked, structure, flat0


def _plans(traces: list, layouts: dict, flat0: list, out0: dict, first_path: tuple) -> list:
    """A plan per monitored recurrence; fills in what the trace found about each."""
    plans = []
    for trace in traces:
        layout = traced_layout(trace, layouts)
        template = flat0[layout.h] if trace.recurrent else out0[layout.path]
        note_state(trace, layout, tuple(template.shape), template.dtype.name)
        keep_x = trace.info.kind in ("lstm", "gru") and layout.path != first_path
        plans.append(RecurrencePlan(layout, template, trace.info.kind == "lstm", keep_x))
    return plans


def _template(batch: Any, shape: tuple, dtype: Any) -> Any:
    """Zeros [B, ...shape] in `dtype`: what the loop's buffers of one value per step look like."""
    return tf.zeros(tf.concat([tf.reshape(batch, [1]), tf.constant(list(shape), tf.int32)], 0), dtype)


def _zeros_steps(n_steps: Any, batch: Any, template: Any) -> Any:
    """Zeros [T, B, ...template's non-batch dims] in the template's dtype."""
    dims = template.shape.as_list()[1:]
    rest = tf.constant(dims, tf.int32) if all(d is not None for d in dims) else tf.shape(template)[1:]
    return tf.zeros(tf.concat([tf.stack([n_steps, batch]), rest], axis=0), dtype=template.dtype)


def zero_perturbations(loop: LayerLoop, n: Any) -> tuple[list, list]:
    """``(eps, delta)``: zeros [n, B, ...] per plan, added to each h and to each output."""
    eps = [_zeros_steps(n, loop.batch, plan.template) for plan in loop.plans]
    delta = [_zeros_steps(n, loop.batch, loop.out_templates[plan.layout.path]) for plan in loop.plans]
    return eps, delta


def step_array(template: Any, size: Any) -> Any:
    """A TensorArray of `size` values shaped and typed as `template`."""
    return tf.TensorArray(template.dtype, size=size, element_shape=template.shape)


class Written(NamedTuple):
    """The TensorArrays a run of steps writes at every step t (the loop variables of
    `run_steps`; dicts rather than None where one is absent)."""

    out: dict  # {"out": the layer's output} when it returns sequences, else {}
    kept: list  # per plan {"h": ..., "c": ...}: what the statistics read
    inputs: dict  # plan index -> the cell's input (plans with keep_x)

    @classmethod
    def nothing_kept(cls, loop: LayerLoop, size: Any) -> "Written":
        """Only the output sequence (the reverse pass's recomputation)."""
        out = {"out": step_array(loop.out_template, size)} if loop.return_sequences else {}
        return cls(out, [{} for _ in loop.plans], {})

    @classmethod
    def everything(cls, loop: LayerLoop, size: Any) -> "Written":
        """The output sequence and what the statistics read (the forward pass)."""
        kept, inputs = [], {}
        for i, plan in enumerate(loop.plans):
            arrays = {"h": step_array(plan.template, size)}
            if plan.keep_c:
                arrays["c"] = step_array(loop.flat0[plan.layout.first + 1], size)
            kept.append(arrays)
            if plan.keep_x:
                inputs[i] = step_array(_template(loop.batch, plan.layout.in_shape, plan.layout.in_dtype), size)
        return cls(cls.nothing_kept(loop, size).out, kept, inputs)

    def write(self, t: Any, out: Any, kept: dict) -> "Written":
        return Written(
            {k: array.write(t, out) for k, array in self.out.items()},
            [{k: array.write(t, kept[i][k]) for k, array in arrays.items()} for i, arrays in enumerate(self.kept)],
            {i: array.write(t, kept[i]["x"]) for i, array in self.inputs.items()},
        )


class Perturbations(NamedTuple):
    """Per plan index, the zero perturbations of a recomputed segment, one element per step:
    `eps` added to the new h (or to the output, without h), `delta` to the output."""

    eps: dict
    delta: dict


def run_steps(loop: LayerLoop, lo: Any, hi: Any, x_steps: Any, valid_steps: Optional[Any], flat: list,
              prev_out: Any, written: Written, perturbations: Optional[Perturbations] = None) -> tuple:
    """Steps t in [lo, hi), reading `x_steps` (and `valid_steps`) at t: ``(flat states,
    last output, written)``. Without `perturbations` (zeros) none is added (the forward pass)."""

    def body(t, flat, prev_out, written):
        kept: dict = {}
        hook = functools.partial(_perturb, loop, perturbations, kept, t)
        out, new_flat = loop.stepper.step(x_steps.read(t), flat, hook)
        if loop.masked:
            m_t = valid_steps.read(t)
            new_flat = [tf.where(broadcast_mask(m_t, n), n, s) for n, s in zip(new_flat, flat)]
            out = tf.where(broadcast_mask(m_t, out), out, tf.zeros_like(out) if loop.zero_output else prev_out)
        return t + 1, new_flat, out, written.write(t, out, kept)

    _, flat, prev_out, written = tf.while_loop(
        lambda t, *_: t < hi, body, (lo, list(flat), prev_out, written),
        maximum_iterations=hi - lo, parallel_iterations=1,
    )
    return list(flat), prev_out, written


def _perturb(loop: LayerLoop, perturbations: Optional[Perturbations], kept: dict, t: Any,
             path: tuple, inputs: Any, out: Any, new_flat: list) -> tuple[Any, list]:
    """The stepper's hook at step t: keep a monitored cell's h (and c, and input) and add its
    perturbations, if any."""
    i = loop.by_path.get(path)
    if i is None:
        return out, new_flat
    plan = loop.plans[i]
    if plan.recurrent:
        k = plan.layout.local_h
        values = {"h": new_flat[k]}
        if perturbations is not None:
            new_flat[k] = new_flat[k] + perturbations.eps[i].read(t)
        out = new_flat[k] if plan.layout.direct else out
    else:  # only the output can be watched
        values = {"h": out}
        if perturbations is not None:
            out = out + perturbations.eps[i].read(t)
    if perturbations is not None:
        out = out + perturbations.delta[i].read(t)
    if plan.keep_c:
        values["c"] = new_flat[1]
    if plan.keep_x:
        values["x"] = inputs
    kept[i] = values
    return out, new_flat


class ForwardPass(NamedTuple):
    """What the forward pass gives and keeps."""

    outputs: list  # the loop op's results: [output sequence,] last output, final flat states
    kept: list  # per plan {"h": [T, B, ...], "c": ...}: the cell's own new states per step
    inputs: dict  # plan index -> the cell's input per step [T, B, ...] (plans with keep_x)
    bounds: list  # per flat state and the previous output: its value at each segment's start [segments, B, ...]


def forward(loop: LayerLoop, xs_in: Any, flat_in: list) -> ForwardPass:
    """The layer's whole loop, segment after segment, without perturbations (they are zero):
    for the gradient only the states at each segment's start are kept."""
    n_steps, segments = loop.n_steps, loop.segments
    x_steps = tf.TensorArray(xs_in.dtype, size=n_steps).unstack(xs_in)
    valid_steps = tf.TensorArray(tf.bool, size=n_steps).unstack(loop.valid) if loop.masked else None
    bound_arrays = [step_array(s, segments.count) for s in flat_in + [loop.prev0]]

    def segment(s, flat, prev_out, written, bound_arrays):
        bound_arrays = [array.write(s, v) for array, v in zip(bound_arrays, list(flat) + [prev_out])]
        lo, hi = segments.span(s)
        flat, prev_out, written = run_steps(loop, lo, hi, x_steps, valid_steps, flat, prev_out, written)
        return s + 1, flat, prev_out, written, bound_arrays

    _, flat, prev_out, written, bound_arrays = tf.while_loop(
        lambda s, *_: s < segments.count, segment,
        (tf.constant(0), flat_in, loop.prev0, Written.everything(loop, n_steps), bound_arrays),
        maximum_iterations=segments.count, parallel_iterations=1,
    )
    outputs = ([written.out["out"].stack()] if loop.return_sequences else []) + [prev_out] + list(flat)
    return ForwardPass(
        outputs,
        [{k: array.stack() for k, array in arrays.items()} for arrays in written.kept],
        {i: array.stack() for i, array in written.inputs.items()},
        [array.stack() for array in bound_arrays],  # [segments, B, ...] each
    )
