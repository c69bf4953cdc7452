"""The probe's reverse pass through a stock LSTM or GRU layer, written out by hand.

Why. The probe's generic reverse pass (`rnn_monitor.model.tensorflow.taped_reverse`) recomputes each segment of
the layer's loop under a tape and lets TensorFlow differentiate the `tf.while_loop`: every step
pays for the cell's forward again, for the loop gradient's stacks of intermediates, and for the
input and weight gradients one step at a time; the temporal flow pays for a second such sweep.
For the stock cells everything a step's adjoint needs can instead be rebuilt vectorized over a
whole segment from what the forward already keeps (h and c of every step): the pre-activations
``z = x K + h_prev R + b`` and the gates' derivatives. What is left sequential per step is a few
elementwise products and the product with the recurrent kernel (for an LSTM two matmuls, the
[i f g] and [o] blocks, so that dz is never concatenated per step); the input and weight gradients
are a few large matmuls per segment. The temporal flow's adjoint (the state chain alone) rides
in the same step as a second row block of those matmuls.

Exactness. This is the same chain rule as autodiff of Keras's cell (`keras/src/layers/rnn/
lstm.py`, `gru.py`; the formulas are those of `rnn_monitor.model.gates`), only evaluated in a
different order, so results agree with a tape to float rounding; the activations' derivatives
come from their values for sigmoid and tanh (TensorFlow's SigmoidGrad / TanhGrad formulas), else
from TensorFlow's own gradient of the (elementwise) activation function. Masked steps
follow Keras (`backend.rnn`): the state is carried, the output is the previous one (or zeros with
``zero_output_for_mask``). The generic pass stays for every other cell and setting; `eligible`
says which layers take this one (`LoopOptions.hand_written_reverse` switches it off).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import tensorflow as tf

from rnn_monitor.model.anatomy import activation_name
from rnn_monitor.model.tensorflow.rows import lstm_gates, lstm_preactivations, times
from rnn_monitor.model.tensorflow.segments import FlowChains, Incoming, Segments
from rnn_monitor.model.tensorflow.step_reductions import (
    StepReductions, StepSums, nonfinite_at, pick_last_valid, step_sums, where_here,
)

# Activations applied elementwise (their derivative is the gradient of their sum).
ELEMENTWISE = {
    "tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softsign", "elu", "selu", "softplus",
    "swish", "silu", "gelu", "exponential", "relu6", "hard_silu", "hard_swish", "leaky_relu",
    "mish", "log_sigmoid", "hard_tanh", "tanh_shrink", "celu", "squareplus", "sparse_plus",
}
STOCK = {"LSTMCell": "lstm", "GRUCell": "gru"}


def _underlying(variable: Any) -> Any:
    """The tf.Variable behind a Keras 3 variable (tf.keras 2 variables are tf.Variables)."""
    inner = getattr(variable, "value", None)
    return inner if isinstance(inner, tf.Variable) else variable


def eligible(cell: Any, kind: str, variables: list, dtypes: list) -> Optional[dict]:
    """``{"kernel": i, "recurrent_kernel": j, "bias": k}`` (indices into `variables`, the custom
    gradient's watched variables) when this pass can serve the cell, else None: a stock Keras /
    tf.keras LSTMCell or GRUCell (not a subclass), float32 throughout, elementwise activations,
    and no variable read besides its own weights."""
    klass = type(cell)
    if STOCK.get(klass.__name__) != kind:
        return None
    if klass.__module__.split(".", 1)[0] not in ("keras", "tf_keras"):
        return None
    if any(tf.as_dtype(d) != tf.float32 for d in dtypes):
        return None
    if any(activation_name(fn) not in ELEMENTWISE for fn in (cell.activation, cell.recurrent_activation)):
        return None
    names = ["kernel", "recurrent_kernel"] + (["bias"] if cell.use_bias else [])
    index = {}
    for name in names:
        weight = _underlying(getattr(cell, name))
        if weight.dtype.base_dtype != tf.float32:
            return None
        found = [j for j, v in enumerate(variables) if v is weight]
        if len(found) != 1:
            return None
        index[name] = found[0]
    if len(index) != len(variables):
        return None  # something else was read in the loop: the generic pass handles it
    return index


def _slope(fn: Any, z: Any, a: Any) -> Any:
    """fn'(z) of an elementwise activation whose value at z is `a`: from the value for sigmoid
    and tanh (the formulas of TensorFlow's SigmoidGrad / TanhGrad), else by TensorFlow's own
    gradient."""
    name = activation_name(fn)
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "tanh":
        return 1.0 - a * a
    with tf.GradientTape() as tape:
        tape.watch(z)
        again = fn(z)
    return tape.gradient(again, z, output_gradients=tf.ones_like(again))


def _outer(a: Any, b: Any) -> Any:
    """sum over every leading axis of a^T b: [..., n], [..., m] -> [n, m]."""
    flat = lambda v: tf.reshape(v, tf.stack([-1, tf.shape(v)[-1]]))  # noqa: E731
    return tf.matmul(flat(a), flat(b), transpose_a=True)


class LSTMAdjoint:
    """Keras's LSTM step (gate order i, f, c, o): z = x K + h R + b, c' = f c + i g,
    h' = o act(c'). States (h, c)."""

    def __init__(self, cell: Any) -> None:
        self.cell = cell
        self.units = int(cell.units)
        self.kernel = tf.convert_to_tensor(cell.kernel)
        self.recurrent = tf.convert_to_tensor(cell.recurrent_kernel)
        # The step's matmul dz R^T in two parts, [i f g] and [o], transposed once: no per-step
        # concat of dz (measured: a fifth less time in the step loop).
        transposed = tf.transpose(self.recurrent)
        self.recurrent_ifg_t = transposed[: 3 * self.units]
        self.recurrent_o_t = transposed[3 * self.units :]
        self.widths = (3 * self.units, self.units)

    def prepare(self, x, prev):
        """Per-step factors of a segment [n, B, ...] from its inputs and starting states (the
        gates by `rnn_monitor.model.tensorflow.rows`, as the statistics rebuild them)."""
        h_prev, c_prev = prev
        u = self.units
        z = lstm_preactivations(self.cell, x, h_prev)
        gates, sig, c, tc = lstm_gates(self.cell, z, c_prev)
        i, f, g, o = gates["i"], gates["f"], gates["g"], gates["o"]
        dsig = _slope(self.cell.recurrent_activation, z, sig)
        dg = _slope(self.cell.activation, z[..., 2 * u : 3 * u], g)
        dtc = _slope(self.cell.activation, c, tc)
        # dz = [dct g sig_i', dct c_prev sig_f', dct i g', dh tanh(c) sig_o'] with
        # dct = dc + dh o act'(c): the products that do not involve the adjoint are made here,
        # over the whole segment, so a step is left with few elementwise ops.
        n, b = tf.shape(z)[0], tf.shape(z)[1]
        three = tf.concat([g * dsig[..., :u], c_prev * dsig[..., u : 2 * u], i * dg], axis=-1)
        rebuilt = {"gates": gates, "sig": sig, "c_rec": c, "tanh_c": tc}
        return {"o_dtc": o * dtc, "three": tf.reshape(three, tf.stack([n, b, 3, u])),
                "tc_do": tc * dsig[..., 3 * u :], "f": f, "rebuilt": rebuilt}

    def step(self, pre, k, adj, d_state):
        """``(dz of row block 0 in parts [B, 3U] and [B, U] (gates i f g, and o), dh_prev,
        [dc_prev])`` of step k: `adj` = dL/dh' [R, B, U] (R row blocks), `d_state` = [dL/dc']
        [R, B, U]."""
        (dc,) = d_state
        u = self.units
        dct = dc + adj * pre["o_dtc"][k]
        shape = tf.shape(adj)
        first = tf.reshape(dct[:, :, None, :] * pre["three"][k], [-1, 3 * u])  # [R * B, 3U]
        last = tf.reshape(adj * pre["tc_do"][k], [-1, u])
        dh = tf.reshape(tf.matmul(first, self.recurrent_ifg_t) + tf.matmul(last, self.recurrent_o_t), shape)
        return (first[: shape[1]], last[: shape[1]]), dh, [dct * pre["f"][k]]

    def grads(self, x, prev, pre, dz):
        """``(dL/dx [n, B, D], {weight name: gradient})`` of a segment from its dz [n, B, 4U]."""
        h_prev = prev[0]
        out = {"kernel": _outer(x, dz), "recurrent_kernel": _outer(h_prev, dz)}
        if self.cell.use_bias:
            out["bias"] = tf.reduce_sum(dz, axis=[0, 1])
        return times(dz, self.kernel, transpose=True), out


class GRUAdjoint:
    """Keras's GRU step, both layouts: z, r = sig(x K + (h R) + b), hh = act(x K_h + r (h R_h))
    (reset_after) or act(x K_h + (r h) R_h), h' = z h + (1 - z) hh. State h."""

    def __init__(self, cell: Any) -> None:
        self.cell = cell
        self.units = int(cell.units)
        self.after = bool(cell.reset_after)
        self.kernel = tf.convert_to_tensor(cell.kernel)
        self.recurrent = tf.convert_to_tensor(cell.recurrent_kernel)
        self.widths = (3 * self.units,)
        self.in_bias = self.rec_bias = None
        if cell.use_bias:
            bias = tf.convert_to_tensor(cell.bias)
            if self.after:
                self.in_bias, self.rec_bias = bias[0], bias[1]
            else:
                self.in_bias = bias

    def prepare(self, x, prev):
        (h_prev,) = prev
        u = self.units
        mx = times(x, self.kernel)
        if self.in_bias is not None:
            mx = mx + self.in_bias
        if self.after:
            inner = times(h_prev, self.recurrent)
            if self.rec_bias is not None:
                inner = inner + self.rec_bias
            zr_pre = mx[..., : 2 * u] + inner[..., : 2 * u]
            rh = inner[..., 2 * u :]
        else:
            zr_pre = mx[..., : 2 * u] + times(h_prev, self.recurrent[:, : 2 * u])
        zr = self.cell.recurrent_activation(zr_pre)
        dzr = _slope(self.cell.recurrent_activation, zr_pre, zr)
        z, r = zr[..., :u], zr[..., u:]
        if self.after:
            hh_pre = mx[..., 2 * u :] + r * rh
        else:
            rh = r * h_prev  # (r h), multiplied by R_h
            hh_pre = mx[..., 2 * u :] + times(rh, self.recurrent[:, 2 * u :])
        hh = self.cell.activation(hh_pre)
        dhh = _slope(self.cell.activation, hh_pre, hh)
        rebuilt = {"gates": {"z": z, "r": r, "hh": hh}, "h_rec": z * h_prev + (1.0 - z) * hh}
        pre = {"z": z, "hp_hh": h_prev - hh, "one_z_dhh": (1.0 - z) * dhh, "dzr": dzr, "r": r, "h_prev": h_prev,
               "rebuilt": rebuilt}
        if self.after:
            pre["rh"] = rh
        return pre

    def step(self, pre, k, adj, d_state):
        """``(dz of row block 0 [B, 3U] as one part, dh_prev, [])`` of step k."""
        u = self.units
        dzr_k = pre["dzr"][k]
        dz_pre = adj * pre["hp_hh"][k] * dzr_k[..., :u]
        dhh_pre = adj * pre["one_z_dhh"][k]
        if self.after:
            dr_pre = dhh_pre * pre["rh"][k] * dzr_k[..., u:]
            d_inner = tf.concat([dz_pre, dr_pre, dhh_pre * pre["r"][k]], axis=-1)
            dh = adj * pre["z"][k] + times(d_inner, self.recurrent, transpose=True)
        else:
            d_rh = times(dhh_pre, self.recurrent[:, 2 * u :], transpose=True)
            dr_pre = d_rh * pre["h_prev"][k] * dzr_k[..., u:]
            dh = (adj * pre["z"][k] + d_rh * pre["r"][k]
                  + times(tf.concat([dz_pre, dr_pre], axis=-1), self.recurrent[:, : 2 * u], transpose=True))
        return (tf.concat([dz_pre, dr_pre, dhh_pre], axis=-1)[0],), dh, []

    def grads(self, x, prev, pre, dz):
        """dz holds the pre-activation gradients of (x K + b_in) per gate block [n, B, 3U]."""
        (h_prev,) = prev
        u = self.units
        out = {"kernel": _outer(x, dz)}
        if self.after:
            d_inner = tf.concat([dz[..., : 2 * u], dz[..., 2 * u :] * pre["r"]], axis=-1)
            out["recurrent_kernel"] = _outer(h_prev, d_inner)
            if self.in_bias is not None:
                out["bias"] = tf.stack([tf.reduce_sum(dz, axis=[0, 1]), tf.reduce_sum(d_inner, axis=[0, 1])])
        else:
            out["recurrent_kernel"] = tf.concat(
                [_outer(h_prev, dz[..., : 2 * u]), _outer(pre["r"] * h_prev, dz[..., 2 * u :])], axis=-1)
            if self.in_bias is not None:
                out["bias"] = tf.reduce_sum(dz, axis=[0, 1])
        return times(dz, self.kernel, transpose=True), out


def adjoint_for(cell: Any, kind: str) -> Any:
    return LSTMAdjoint(cell) if kind == "lstm" else GRUAdjoint(cell)



@dataclasses.dataclass(frozen=True, eq=False)
class StockLayer:
    """The stock LSTM / GRU layer whose loop `sweep` reverses."""

    cell: Any
    kind: str  # "lstm" | "gru"
    xs: Any  # [T, B, D]: the loop's inputs, processing order
    valid: Any  # [T, B] bool
    masked: bool
    zero_output: bool  # zero_output_for_mask: a masked step outputs zeros (else the previous output)
    stats: Any  # its `UnitStats`: the h and c the forward kept, the states each step started from
    segments: Segments
    last: Any  # [B]: each sequence's last valid step
    in_flight: int  # segments reversed at once (`LoopOptions.segments_in_flight`)


class HandWrittenPass(NamedTuple):
    """What `sweep` gives: the loop's input and weight gradients, what the probe writes (in the
    generic pass's layout) and the unit statistics (as `UnitStats.run` gives them)."""

    dx: Any  # [T, B, D]
    d_initial: list  # dL/d(initial states): h (and c)
    d_weights: dict  # weight name -> gradient
    loss: StepReductions
    flow: Optional[Any]  # [B, T] when wanted
    stats: tuple  # (accumulators, samples)


class _Carry(NamedTuple):
    """What the sweep carries from one segment to the one before it. The adjoints have one row
    block per chain [R, B, U]: the loss's, and with the flow's own chain d<v, h_last>/d(state)."""

    d_h: Any  # adjoint of h at the segment's end
    d_states: list  # the same of the cell's other states (an LSTM's c)
    d_carry: Any  # dL/d(previous output), passed on by masked steps
    d_w: dict  # weight name -> gradient so far
    dx: Any  # TensorArray: dL/dx per segment
    sums: StepSums  # TensorArrays of the per-step sums
    flow_norms: tuple  # (TensorArray of ||d<v, h_last>/dh_t|| [n, B] per segment,) when wanted
    v: Any  # [B, U]: dL/dh at each sequence's last valid step, once its segment is past
    bad: Any  # non-finite dL/dh_t at valid steps so far
    acc: dict  # the unit statistics' accumulators
    samples: dict  # their sample TensorArrays


class _StepCarry(NamedTuple):
    """What the step loop of one segment carries from step k to step k - 1."""

    d_h: Any
    d_states: list
    d_carry: Any
    dz: tuple  # TensorArrays: the pre-activations' gradient per step, in the adjoint's parts
    e: Any  # TensorArray: dL/dh_t [B, U] per step
    d_out: Any  # TensorArray: dL/d out_t [B, U] per step
    flow: Any  # TensorArray: ||d<v, h_last>/dh_t|| [B] per step (written with the own chain)


def sweep(layer: StockLayer, incoming: Incoming, chains: FlowChains) -> HandWrittenPass:
    """The whole reverse pass of one stock layer's loop, segment by segment from the last:
    `incoming` are the gradients of the layer's outputs; the flow is wanted when its recurrence
    (the loop's only one, index 0) is in `chains`. The unit statistics are reduced here too,
    from the gates each segment rebuilds."""
    return _Sweep(layer, incoming, own_flow=0 in chains.own, shared_flow=0 in chains.shared).run()


class _Sweep:
    """`sweep`'s segments (`_segment`) and steps (`_step`)."""

    def __init__(self, layer: StockLayer, incoming: Incoming, own_flow: bool, shared_flow: bool) -> None:
        self.layer, self.incoming, self.own_flow, self.shared_flow = layer, incoming, own_flow, shared_flow
        self.adj = adjoint_for(layer.cell, layer.kind)
        self.names = ["kernel", "recurrent_kernel"] + (["bias"] if layer.cell.use_bias else [])

    def run(self) -> HandWrittenPass:
        """Two segments in flight: the next segment's rebuild and statistics (which need no
        adjoint) run beside this one's sequential steps and its input and weight gradients, on
        the core the step loop leaves idle; at most two segments' intermediates are alive."""
        layer, count = self.layer, self.layer.segments.count
        _, carry = tf.while_loop(
            lambda s, *_: s >= 0, self._segment, (count - 1, self._initial()),
            maximum_iterations=count, parallel_iterations=layer.in_flight,
        )
        dx = carry.dx.concat()
        dx.set_shape(layer.xs.shape)
        return HandWrittenPass(
            dx=dx, d_initial=[carry.d_h[0]] + [d[0] for d in carry.d_states], d_weights=carry.d_w,
            loss=StepReductions.of(carry.sums.concat(), carry.bad, carry.v),
            flow=tf.transpose(carry.flow_norms[0].concat(), [1, 0]) if carry.flow_norms else None,
            stats=layer.stats.finish(carry.acc, carry.samples),
        )

    def _initial(self) -> _Carry:
        layer, final, count = self.layer, self.incoming.final, self.layer.segments.count
        batch = tf.shape(layer.xs)[1]
        rows = (lambda d: tf.stack([d] + ([tf.zeros_like(d)] if self.own_flow else [])))  # noqa: E731
        arrays = lambda: tf.TensorArray(tf.float32, size=count, infer_shape=False)  # noqa: E731
        return _Carry(
            d_h=rows(final[0]), d_states=[rows(d) for d in final[1:]], d_carry=self.incoming.last,
            d_w={name: tf.zeros_like(tf.convert_to_tensor(getattr(layer.cell, name))) for name in self.names},
            dx=arrays(), sums=StepSums.arrays(count),
            flow_norms=(arrays(),) if self.own_flow or self.shared_flow else (),
            v=tf.zeros(tf.stack([batch, self.adj.units]), tf.float32), bad=tf.constant(0.0),
            acc=layer.stats.init(), samples=layer.stats.sample_arrays(count),
        )

    def _segment(self, s: Any, carry: _Carry) -> tuple[Any, _Carry]:
        layer, adj = self.layer, self.adj
        lo, hi = layer.segments.span(s)
        n = hi - lo
        x = layer.xs[lo:hi]
        prev = layer.stats.previous(lo, hi)
        pre = adj.prepare(x, prev)
        part, samples = layer.stats.block(lo, hi, pre["rebuilt"])
        carry = carry._replace(acc=layer.stats.merge(carry.acc, part),
                               samples={name: a.write(s, samples[name]) for name, a in carry.samples.items()})
        steps = self._steps(lo, n, pre, carry)
        stacked = [a.stack() for a in steps.dz]
        dz = stacked[0] if len(stacked) == 1 else tf.concat(stacked, axis=-1)  # [n, B, 4U or 3U]
        dx, dw = adj.grads(x, prev, pre, dz)
        carry = carry._replace(d_h=steps.d_h, d_states=steps.d_states, d_carry=steps.d_carry,
                               d_w={name: carry.d_w[name] + g for name, g in dw.items()}, dx=carry.dx.write(s, dx))
        return s - 1, self._reduce(s, lo, hi, steps.e.stack(), steps.d_out.stack(), steps.flow, carry)

    def _steps(self, lo: Any, n: Any, pre: dict, carry: _Carry) -> _StepCarry:
        """The segment's steps, from the last: the adjoints at its start, and per step what the
        reductions and the input and weight gradients read."""

        def arrays(width):
            return tf.TensorArray(tf.float32, size=n, element_shape=tf.TensorShape([None] if width is None else [None, width]))

        units = self.adj.units
        start = _StepCarry(carry.d_h, carry.d_states, carry.d_carry, tuple(arrays(w) for w in self.adj.widths),
                           arrays(units), arrays(units), arrays(None))
        _, steps = tf.while_loop(
            lambda k, *_: k >= 0, lambda k, c: self._step(lo, pre, k, c), (n - 1, start),
            maximum_iterations=n, parallel_iterations=1,
        )
        return steps

    def _step(self, lo: Any, pre: dict, k: Any, c: _StepCarry) -> tuple[Any, _StepCarry]:
        """Step t = lo + k: the adjoints entering it (masked steps pass them on), the cell's adjoint."""
        layer, t = self.layer, lo + k
        g_out = c.d_carry if self.incoming.sequence is None else c.d_carry + self.incoming.sequence[t]
        if layer.masked:
            m = layer.valid[t][:, None]
            e = tf.where(m, c.d_h[0] + g_out, 0.0)
            d_out = tf.where(m, g_out, 0.0)
            d_carry = tf.zeros_like(c.d_carry) if layer.zero_output else tf.where(m, 0.0, g_out)
            d_in_states = [tf.where(m[None], d, 0.0) for d in c.d_states]
        else:
            e, d_out, d_carry, d_in_states = c.d_h[0] + g_out, g_out, tf.zeros_like(c.d_carry), c.d_states
        flow = c.flow
        if self.own_flow:
            seed = tf.cast(tf.equal(layer.last, t), tf.float32)[:, None] * e
            e_flow = (tf.where(m, c.d_h[1], 0.0) if layer.masked else c.d_h[1]) + seed
            adjs = tf.stack([e, e_flow])
            flow = flow.write(k, tf.norm(e_flow, axis=-1))
        else:
            adjs = e[None]
        dz_parts, dh_cell, ds_cell = self.adj.step(pre, k, adjs, d_in_states)
        if layer.masked:
            mm = m[None]
            d_h = dh_cell + tf.where(mm, 0.0, c.d_h)
            d_states = [a + tf.where(mm, 0.0, b) for a, b in zip(ds_cell, c.d_states)]
        else:
            d_h, d_states = dh_cell, ds_cell
        dz = tuple(a.write(k, part) for a, part in zip(c.dz, dz_parts))
        return k - 1, _StepCarry(d_h, d_states, d_carry, dz, c.e.write(k, e), c.d_out.write(k, d_out), flow)

    def _reduce(self, s: Any, lo: Any, hi: Any, e: Any, d_out: Any, flow: Any, carry: _Carry) -> _Carry:
        """Segment s's per-step reductions of e = dL/dh_t and d_out = dL/d out_t [n, B, U]."""
        sums = step_sums(e, d_out)
        flow_norms = carry.flow_norms
        if self.own_flow:
            flow_norms = (flow_norms[0].write(s, flow.stack()),)  # [n, B]
        elif self.shared_flow:
            flow_norms = (flow_norms[0].write(s, tf.norm(e, axis=-1)),)
        valid_seg = self.layer.valid[lo:hi]
        # Every e is finite when its sums of |e| are (NaN and Inf propagate): count only then.
        bad = carry.bad + tf.cond(tf.reduce_all(tf.math.is_finite(sums.grad_abs_sum)),
                                  lambda: tf.constant(0.0), lambda: nonfinite_at(e, valid_seg))
        picked, here = pick_last_valid(e, self.layer.last, lo, hi - lo)
        return carry._replace(sums=carry.sums.write(s, sums), flow_norms=flow_norms, bad=bad,
                              v=where_here(here, picked, carry.v))
