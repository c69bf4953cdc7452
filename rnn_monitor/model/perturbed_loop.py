"""The probe's loop of one Keras RNN layer (the wrapper path): the layer's own cell, run step by
step by Keras's own loop (`keras.src.backend.rnn`, on any backend), with the probe's zero
perturbations added where the quantities it measures enter.

For every monitored recurrence of the layer (its cell, or each cell of a StackedRNNCells):

* ``e_t`` (key ``(name, "h")``) is added to the new state h_t before it is carried to the next
  step *and* used as the output, so ``dL/de_t`` is the total derivative dL/dh_t through the
  recurrence (true backprop through time; it exists also for ``return_sequences=False``);
* ``d_t`` (key ``(name, "out")``) is added to the cell's output at t only, so ``dL/dd_t`` is the
  direct path dL/d(out_t).

Both are zeros: the forward pass computes what the model computes. Where a cell has no state
shaped like its output, e_t is added to the output itself (`CellLayout.h` is None).

Masking is done here, not by Keras's loop, so that each step can also return what the probe
keeps (the carried h, an LSTM's c, a stacked cell's input) beside its output; it follows the
rule of the backend the layer runs on (`masked_output_rule`): a masked step carries the states
over, and its output is zeros (``zero_output_for_mask``), the previous output (TensorFlow, and
every backend's unrolled loop) or the first carried state (JAX's scan). Everything here is in
the layer's *processing* order (reversed input order for ``go_backwards``), batch-major.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

import keras
from keras import ops, tree

from rnn_monitor.model.anatomy import RNNLayerInfo, activation_name, leaf_cells
from rnn_monitor.model.backend import TF_KERAS, engine_of
from rnn_monitor.model.stepping import CellLayout, CellStepper, note_state, traced_layout

# Activations whose output is bounded: a state produced by one of these never "explodes".
BOUNDED_ACTIVATIONS = {"tanh", "sigmoid", "hard_sigmoid", "softsign", "hard_tanh"}

# Perturbations are handed out by key: (recurrence name, "h" | "out").
Provider = Callable[[tuple, tuple, str], Any]  # (key, shape, dtype) -> zeros


@dataclasses.dataclass
class TracedRecurrence:
    """What the trace found about one monitored recurrence (Python values, fixed per trace)."""

    info: RNNLayerInfo
    path: str = "loop"  # "loop" (this module) | "kernel" (`rnn_monitor.model.fused_kernel`)
    called: int = 0
    refused: Optional[str] = None  # why the probe could not step it
    direct: bool = True  # h is the cell's output (e reaches the output and the recurrence)
    recurrent: bool = True  # h is a state: dL/dh_t through the recurrence exists
    only_last: bool = False  # the layer's only use of h is its last value (flow = dL/dh)
    masked: bool = False  # its layer's steps are masked (a mask reached the loop)
    positions: int = 1  # spatial positions per sequence (feature-map states), else 1
    channels_first: bool = False
    dtype: str = "float32"  # the dtype the cell computes in
    rebuild: bool = False  # the stock cell's gates are rebuilt from its weights for the statistics
    gradients: Any = None  # how its path turns gradients into dL/dh_t and the flow (`LoopGradients`)

    @property
    def h_bounded(self) -> bool:
        act = getattr(self.info.cell, "activation", None)
        return act is not None and activation_name(act) in BOUNDED_ACTIVATIONS

    @property
    def tanh_output(self) -> bool:
        act = getattr(self.info.cell, "activation", None)
        return act is not None and activation_name(act) == "tanh"


def masked_output_rule(layer: Any) -> str:
    """What Keras's loop outputs at a masked step on the backend this layer runs on
    (keras/src/backend/*/rnn.py): zeros with ``zero_output_for_mask``, else the previous output;
    JAX's scan outputs its first carried state instead, and JAX's unrolled loop the previous
    output whatever ``zero_output_for_mask`` says."""
    if engine_of(layer) != TF_KERAS and keras.backend.backend() == "jax":
        if layer.unroll:
            return "previous"
        return "zeros" if getattr(layer, "zero_output_for_mask", False) else "first_state"
    return "zeros" if getattr(layer, "zero_output_for_mask", False) else "previous"


def _first_state(structure: Any) -> Any:
    first = structure[0]
    return structure[-1][0] if tree.is_nested(first) else first


def _where(mask_b: Any, a: Any, b: Any) -> Any:
    """`a` where the [B] mask holds, else `b` (broadcast over the trailing axes)."""
    m = ops.reshape(mask_b, (-1,) + (1,) * (len(a.shape) - 1))
    return ops.where(m, a, b)


@dataclasses.dataclass
class _Plan:
    """One monitored recurrence inside the layer's loop."""

    index: int
    shape: TracedRecurrence
    layout: CellLayout
    h_shape: tuple  # per sequence, no batch axis
    keep_c: bool
    keep_x: bool
    h_is_output: bool = False  # the layer's output sequence holds h at every valid step: not kept twice


@dataclasses.dataclass(frozen=True)
class _Loop:
    """What `run_loop` needs to know about the layer (no tensors: it outlives one trace)."""

    layer: Any
    template: Any  # the nesting of the layer's initial state, leaves 0
    out_shape: tuple  # the layer's output per step, no batch axis
    out_dtype: str
    masked: bool

    @property
    def rule(self) -> str:
        return masked_output_rule(self.layer)


class PerturbedLoop:
    """The replacement ``inner_loop`` of one Keras RNN layer for the probe's forward pass.

    `shapes` are the layer's monitored recurrences; `provider` hands out their perturbations;
    `record` receives, per recurrence name, the tensors the statistics and the flow need (batch
    -major, processing order): ``valid`` [B, T], ``h`` (carried) [B, T, ...], ``c``, ``x`` (the
    cell's input), ``h0``, ``c0``, ``inputs`` and ``initial`` (what the flow's isolated rerun
    starts from) and ``last_h``.
    """

    def __init__(self, layer: Any, shapes: Sequence[TracedRecurrence], provider: Provider, record: dict) -> None:
        self.layer = layer
        self.shapes = list(shapes)
        self.provider = provider
        self.record = record

    def __call__(self, sequences, initial_state, mask, training=False):
        xs, valid, structure, flat0 = _prepare(self.layer, sequences, initial_state, mask)
        stepper = CellStepper(self.layer.cell, structure)
        layouts = stepper.layout(xs[:, 0], flat0)
        plans = _plans(self.layer, self.shapes, layouts, flat0)
        last_path = leaf_cells(self.layer.cell)[-1][0]
        for plan in plans:
            plan.shape.masked = valid is not None
            # (masked steps output something else than the carried h: zeros, or before the first
            # valid step the zeros of "previous" where h starts from a given initial state)
            plan.h_is_output = plan.layout.direct and plan.layout.path == last_path and valid is None
        last = layouts[leaf_cells(self.layer.cell)[-1][0]]
        loop = _Loop(self.layer, tree.map_structure(lambda _: 0, structure), last.out_shape, last.out_dtype,
                     valid is not None)
        batch, steps = ops.shape(xs)[0], ops.shape(xs)[1]
        perturb = {}
        for plan in plans:
            name = plan.shape.info.name
            perturb[plan.index] = (
                self.provider((name, "h"), (batch, steps) + plan.h_shape, plan.shape.dtype),
                self.provider((name, "out"), (batch, steps) + plan.layout.out_shape, plan.layout.out_dtype),
            )
        outputs, kept, final = run_loop(loop, plans, xs, valid, flat0, perturb, keep=True)
        for plan in plans:
            self.record[plan.shape.info.name] = _recorded(plan, kept[plan.index], xs, valid, flat0, final, outputs)
            plan.shape.gradients = LoopGradients(loop, plan)
        return outputs[:, -1], outputs, tree.pack_sequence_as(structure, final)


def _prepare(layer, sequences, initial_state, mask):
    """``(xs, valid, structure, flat states)`` in processing order (valid None: no mask)."""
    if mask is not None and isinstance(mask, (list, tuple)):
        mask = mask[0]
    xs = ops.convert_to_tensor(sequences)
    structure = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    # Read now: a stateful layer's initial states may arrive as its state variables, which the
    # layer assigns after the loop.
    flat0 = [ops.copy(s) if hasattr(s, "assign") else ops.convert_to_tensor(s) for s in tree.flatten(structure)]
    structure = tree.pack_sequence_as(structure, flat0)
    valid = None
    if mask is not None:
        valid = ops.cast(mask, "bool")
        if len(valid.shape) == 3:
            valid = valid[:, :, 0]
    if layer.go_backwards:
        xs = ops.flip(xs, axis=1)
        valid = None if valid is None else ops.flip(valid, axis=1)
    return xs, valid, structure, flat0


def _plans(layer, shapes, layouts, flat0) -> list[_Plan]:
    """One plan per monitored recurrence; fills in what the trace found about each."""
    cells = leaf_cells(layer.cell)
    first_path, last_path = cells[0][0], cells[-1][0]
    only_last = not layer.return_sequences and not getattr(layer, "return_state", False)
    plans = []
    for i, shape in enumerate(shapes):
        layout = traced_layout(shape, layouts)
        path = layout.path
        h_shape = tuple(flat0[layout.h].shape[1:]) if shape.recurrent else layout.out_shape
        dtype = keras.backend.standardize_dtype(flat0[layout.h].dtype) if shape.recurrent else layout.out_dtype
        note_state(shape, layout, (None,) + h_shape, dtype)
        shape.only_last = only_last and layout.direct and path == last_path
        keep_c = shape.info.kind == "lstm"
        shape.rebuild = shape.info.kind in ("lstm", "gru")
        plans.append(_Plan(i, shape, layout, h_shape, keep_c, keep_x=shape.rebuild and path != first_path))
    return plans


def _recorded(plan, kept, xs, valid, flat0, final, outputs) -> dict:
    """What the statistics and the flow read of one recurrence (see `PerturbedLoop`)."""
    shape, layout = plan.shape, plan.layout
    batch, steps = ops.shape(xs)[0], ops.shape(xs)[1]
    recorded = {
        "valid": ops.ones((batch, steps), "bool") if valid is None else valid,
        "h": outputs if plan.h_is_output else kept["h"],
        "h0": flat0[layout.h] if shape.recurrent else ops.zeros((batch,) + plan.h_shape, shape.dtype),
        "last_h": final[layout.h] if shape.recurrent else outputs[:, -1],
        "inputs": ops.stop_gradient(xs),
        "initial": [ops.stop_gradient(s) for s in flat0],
        "x": kept["x"] if plan.keep_x else ops.stop_gradient(xs),
    }
    if plan.keep_c:
        recorded["c"] = kept["c"]
        recorded["c0"] = flat0[layout.first + 1]
    return recorded


# The flow's isolated loop keeps only its carried states for the backward where the backend can
# rematerialize a step inside its loop (JAX's scan; TensorFlow's recompute_grad cannot capture the
# cell's variables inside a while loop).
REMAT_FLOW = {"jax": True}


class LoopGradients:
    """dL/dh_t and the temporal flow of a recurrence run by `PerturbedLoop`."""

    def __init__(self, loop: _Loop, plan: _Plan) -> None:
        self.loop, self.plan = loop, plan

    def total(self, grads: dict, recorded: dict) -> tuple[Any, Any]:
        """``(dL/dh_t, dL/d out_t)`` [B, T, ...] from the perturbations' gradients."""
        name = self.plan.shape.info.name
        return grads[(name, "h")], grads[(name, "out")]

    def flow(self, vjp: Callable, recorded: dict, v: Any, like: Any) -> Any:
        """d<v, h_last>/dh_t [B, T, ...] through this recurrence alone: the layer run again on its
        recorded inputs and initial states (no gradient reaches them), differentiated with
        respect to this recurrence's perturbation only, the cotangent `v` on its last h."""
        loop, plan = self.loop, self.plan

        def last_h(e):
            valid = recorded["valid"] if loop.masked else None
            _, _, final = run_loop(loop, [plan], recorded["inputs"], valid, list(recorded["initial"]),
                                   {plan.index: (e, None)}, keep=False, remat=REMAT_FLOW.get(keras.backend.backend(), False))
            return final[plan.layout.h]

        return vjp(last_h, ops.zeros_like(like), v)


def run_loop(loop: _Loop, plans: list, xs, valid, flat0, perturb: dict, keep: bool, remat: bool = False):
    """Run the layer's cell over `xs` [B, T, ...] (processing order) with Keras's own loop.

    `perturb` maps a plan's index to its ``(e, d)`` (either may be None). Returns the outputs
    [B, T, ...] (masked as the backend masks them), per plan the kept tensors (when `keep`) and
    the final flat states. With `remat`, differentiating it recomputes each step instead of
    keeping the step's intermediates (`keras.remat`).
    """
    from keras.src import backend as keras_backend

    seq_inputs = [xs] + ([ops.expand_dims(valid, -1)] if valid is not None else [])
    slots = {}
    for index, pair in perturb.items():
        for k, tensor in enumerate(pair):
            if tensor is not None:
                slots[(index, k)] = len(seq_inputs)
                seq_inputs.append(tensor)
    carries = _Carries(loop, plans, slots, valid is not None, len(flat0))
    initial = list(flat0) + carries.initial(ops.shape(xs)[0])
    step = _step_function(loop, plans, slots, carries, keep)
    if remat:
        step = keras.remat(step)
    _, outputs, final = keras_backend.rnn(
        step, tuple(seq_inputs), initial, go_backwards=False, mask=None, unroll=False,
        input_length=xs.shape[1] or ops.shape(xs)[1], return_all_outputs=True,
    )
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    kept, at = {}, 1
    for plan in plans:
        kept[plan.index] = {}
        for key in (_kept_keys(plan) if keep else ()):
            kept[plan.index][key] = outputs[at]
            at += 1
    return outputs[0], kept, tree.flatten(final)[: len(flat0)]


def _kept_keys(plan: _Plan) -> list:
    return ([] if plan.h_is_output else ["h"]) + (["c"] if plan.keep_c else []) + (["x"] if plan.keep_x else [])


class _Carries:
    """What the loop carries beside the layer's states when steps are masked: the previous
    output (the rule "previous"), or, for the rule "first_state" when that state is a monitored
    direct cell's h, the direct-path perturbation of its last valid step, so that the output
    copies of h at masked steps count as uses of the output (as the previous outputs do)."""

    def __init__(self, loop: _Loop, plans: list, slots: dict, masked: bool, n_flat: int) -> None:
        self.loop, self.n_flat, self.masked = loop, n_flat, masked
        self.previous = masked and loop.rule == "previous"
        self.d_slot = None
        if masked and loop.rule == "first_state":
            first = _first_state(tree.pack_sequence_as(loop.template, list(range(n_flat))))
            for plan in plans:
                if isinstance(first, int) and plan.layout.h == first and plan.layout.direct:
                    self.d_slot = slots.get((plan.index, 1))

    def initial(self, batch: Any) -> list:
        if self.previous or self.d_slot is not None:
            return [ops.zeros((batch,) + self.loop.out_shape, self.loop.out_dtype)]
        return []

    def masked_output(self, out, states, carried, inputs):
        """The output of a masked step (`masked_output_rule`)."""
        rule = self.loop.rule
        if rule == "zeros":
            return ops.zeros_like(out)
        if rule == "previous":
            return states[self.n_flat]
        first = _first_state(tree.pack_sequence_as(self.loop.template, carried))
        return first + states[self.n_flat] if self.d_slot is not None else first

    def carried(self, out, states, inputs, m_t) -> list:
        if self.previous:
            return [out]
        if self.d_slot is not None:
            return [_where(m_t, inputs[self.d_slot], states[self.n_flat])]
        return []


def _step_function(loop: _Loop, plans: list, slots: dict, carries: _Carries, keep: bool):
    """One step of the loop: the cell, the perturbations, the masking, what is kept."""
    by_path = {plan.layout.path: plan for plan in plans}
    n_flat = carries.n_flat
    stepper = CellStepper(loop.layer.cell, tree.pack_sequence_as(loop.template, [0] * n_flat))

    def step(inputs, states):
        inputs = list(inputs)
        states = tree.flatten(states)
        carried = states[:n_flat]
        kept: dict = {}
        hook = functools.partial(_perturb, by_path, slots, inputs, kept)
        out, new_flat = stepper.step(inputs[0], carried, hook)
        extra_states = []
        if carries.masked:
            m_t = inputs[1][:, 0]
            new_flat = [_where(m_t, n, s) for n, s in zip(new_flat, carried)]
            out = _where(m_t, out, carries.masked_output(out, states, carried, inputs))
            extra_states = carries.carried(out, states, inputs, m_t)
            for plan in plans:  # the carried values are what the statistics read
                if plan.layout.h is not None:
                    kept[plan.index]["h"] = new_flat[plan.layout.h]
                if plan.keep_c:
                    kept[plan.index]["c"] = new_flat[plan.layout.first + 1]
        extra = [kept[p.index][key] for p in plans for key in _kept_keys(p)] if keep else []
        return (out, *extra), list(new_flat) + extra_states

    return step


def _perturb(by_path, slots, inputs, kept, path, cell_in, out, new_flat):
    """The stepper's hook: add a monitored cell's perturbations and keep its values."""
    plan = by_path.get(path)
    if plan is None:
        return out, new_flat
    e_at, d_at = slots.get((plan.index, 0)), slots.get((plan.index, 1))
    k = plan.layout.local_h
    values = {}
    if k is not None:
        values["h"] = new_flat[k]
        if e_at is not None:
            new_flat[k] = new_flat[k] + inputs[e_at]
        if plan.layout.direct:
            out = new_flat[k]
    else:  # only the output can be watched
        values["h"] = out
        if e_at is not None:
            out = out + inputs[e_at]
    if d_at is not None:
        out = out + inputs[d_at]
    if plan.keep_c:
        values["c"] = new_flat[1]
    if plan.keep_x:
        values["x"] = cell_in
    kept[plan.index] = values
    return out, new_flat
