"""The probe's reverse pass through a stock LSTM or GRU layer, written out by hand.

Why. The probe's generic reverse pass (`rnn_monitor.model.tensorflow.checkpointed`) recomputes each segment of
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
says which layers take this one.
"""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from rnn_monitor.model.anatomy import activation_name
from rnn_monitor.model.tensorflow.rows import lstm_gates, lstm_preactivations, times

# Activations applied elementwise (their derivative is the gradient of their sum).
ELEMENTWISE = {
    "tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softsign", "elu", "selu", "softplus",
    "swish", "silu", "gelu", "exponential", "relu6", "hard_silu", "hard_swish", "leaky_relu",
    "mish", "log_sigmoid", "hard_tanh", "tanh_shrink", "celu", "squareplus", "sparse_plus",
}
STOCK = {"LSTMCell": "lstm", "GRUCell": "gru"}
SEGMENTS_IN_FLIGHT = 2  # measured: 15% less probe time than 1 (benchmarks/overhead.py --probe-parts)
ON = True  # switch the hand-written pass off (tests compare it with the generic one)


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
    if not ON or STOCK.get(klass.__name__) != kind:
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


def sweep(cell: Any, kind: str, xs: Any, valid: Any, masked: bool, stats: Any,
          seg: Any, n_seg: Any, last: Any, d_seq: Optional[Any], d_last: Any, d_final: list,
          zero_output: bool, flow: bool, shared: bool) -> dict:
    """The whole reverse pass of one stock layer's loop, segment by segment from the last.

    `stats` is the layer's `rnn_monitor.model.tensorflow.unit_stats.UnitStats` (it has the h and c the
    forward kept, and the states each step started from); its per-unit statistics are reduced
    here too, from the gates each segment rebuilds. `d_seq` / `d_last` / `d_final` are the
    incoming gradients of the layer's outputs (sequence, last output, final states). Returns the
    gradients of the loop's inputs (``dx``, ``d_initial``, ``d_weights`` by name), the per-step
    reductions the probe writes in the generic pass's layout (``loss``; ``flow`` [B, T] when
    wanted) and ``stats`` (accumulators, samples) as `UnitStats.run` gives them.
    """
    adj = adjoint_for(cell, kind)
    n_steps = tf.shape(xs)[0]
    batch = tf.shape(xs)[1]
    units = adj.units
    zeros_bu = tf.zeros(tf.stack([batch, units]), tf.float32)

    def ta(size=n_seg):
        return tf.TensorArray(tf.float32, size=size, infer_shape=False)

    def seg_back(s, d_h, d_states, d_carry, d_w, dx_ta, red_tas, v, bad, acc, sample_tas):
        lo = s * seg
        hi = tf.minimum(n_steps, lo + seg)
        n = hi - lo
        x = xs[lo:hi]
        prev = stats.previous(lo, hi)
        pre = adj.prepare(x, prev)
        part, samples = stats.block(lo, hi, pre["rebuilt"])
        acc = stats.merge(acc, part)
        sample_tas = {name: ta.write(s, samples[name]) for name, ta in sample_tas.items()}

        def step(k, d_h, d_states, d_carry, dz_tas, e_ta, o_ta, f_ta):
            t = lo + k
            g_out = d_carry if d_seq is None else d_carry + d_seq[t]
            if masked:
                m = valid[t][:, None]
                e = tf.where(m, d_h[0] + g_out, 0.0)
                d_out = tf.where(m, g_out, 0.0)
                d_carry = tf.zeros_like(d_carry) if zero_output else tf.where(m, 0.0, g_out)
                d_in_states = [tf.where(m[None], d, 0.0) for d in d_states]
            else:
                e = d_h[0] + g_out
                d_out = g_out
                d_carry = tf.zeros_like(d_carry)
                d_in_states = d_states
            if flow:
                seed = tf.cast(tf.equal(last, t), tf.float32)[:, None] * e
                e_flow = (tf.where(m, d_h[1], 0.0) if masked else d_h[1]) + seed
                adjs = tf.stack([e, e_flow])
                f_ta = f_ta.write(k, tf.norm(e_flow, axis=-1))
            else:
                adjs = e[None]
            dz_parts, dh_cell, ds_cell = adj.step(pre, k, adjs, d_in_states)
            if masked:
                mm = m[None]
                d_h = dh_cell + tf.where(mm, 0.0, d_h)
                d_states = [a + tf.where(mm, 0.0, b) for a, b in zip(ds_cell, d_states)]
            else:
                d_h, d_states = dh_cell, ds_cell
            dz_tas = tuple(ta.write(k, part) for ta, part in zip(dz_tas, dz_parts))
            return k - 1, d_h, d_states, d_carry, dz_tas, e_ta.write(k, e), o_ta.write(k, d_out), f_ta

        tas = (tuple(tf.TensorArray(tf.float32, size=n, element_shape=tf.TensorShape([None, width]))
                     for width in adj.widths),
               tf.TensorArray(tf.float32, size=n, element_shape=tf.TensorShape([None, units])),
               tf.TensorArray(tf.float32, size=n, element_shape=tf.TensorShape([None, units])),
               tf.TensorArray(tf.float32, size=n, element_shape=tf.TensorShape([None])))
        _, d_h, d_states, d_carry, dz_tas, e_ta, o_ta, f_ta = tf.while_loop(
            lambda k, *_: k >= 0, step, (n - 1, d_h, d_states, d_carry) + tas,
            maximum_iterations=n, parallel_iterations=1,
        )
        stacked = [ta.stack() for ta in dz_tas]
        dz = stacked[0] if len(stacked) == 1 else tf.concat(stacked, axis=-1)  # [n, B, 4U or 3U]
        e, d_out = e_ta.stack(), o_ta.stack()  # [n, B, U]
        dx, dw = adj.grads(x, prev, pre, dz)
        d_w = {name: d_w[name] + g for name, g in dw.items()}
        dx_ta = dx_ta.write(s, dx)
        valid_seg = valid[lo:hi]
        parts = {
            "grad_abs_sum": tf.reduce_sum(tf.abs(e), axis=1),  # [n, U]
            "out_abs_sum": tf.reduce_sum(tf.abs(d_out), axis=1),
            "grad_norm_sum": tf.reduce_sum(tf.norm(e, axis=-1), axis=1),  # [n]
        }
        if flow:
            parts["flow"] = f_ta.stack()  # [n, B]
        elif shared:
            parts["flow"] = tf.norm(e, axis=-1)
        red_tas = {name: red_tas[name].write(s, value) for name, value in parts.items()}

        def count_nonfinite():
            flags = tf.logical_and(valid_seg[:, :, None], tf.logical_not(tf.math.is_finite(e)))
            return tf.reduce_sum(tf.cast(flags, tf.float32))

        # Every e is finite when its sums of |e| are (NaN and Inf propagate): count only then.
        bad = bad + tf.cond(tf.reduce_all(tf.math.is_finite(parts["grad_abs_sum"])),
                            lambda: tf.constant(0.0), count_nonfinite)
        at_seg = last - lo
        here = tf.logical_and(at_seg >= 0, at_seg < n)
        picked = tf.gather_nd(e, tf.stack([tf.clip_by_value(at_seg, 0, n - 1), tf.range(batch)], axis=1))
        v = tf.where(here[:, None], picked, v)
        return s - 1, d_h, d_states, d_carry, d_w, dx_ta, red_tas, v, bad, acc, sample_tas

    d_h = tf.stack([d_final[0]] + ([tf.zeros_like(d_final[0])] if flow else []))
    d_states = [tf.stack([d] + ([tf.zeros_like(d)] if flow else [])) for d in d_final[1:]]
    names = ["kernel", "recurrent_kernel"] + (["bias"] if cell.use_bias else [])
    d_w0 = {name: tf.zeros_like(tf.convert_to_tensor(getattr(cell, name))) for name in names}
    red_names = ["grad_abs_sum", "out_abs_sum", "grad_norm_sum"] + (["flow"] if flow or shared else [])
    # Two segments in flight: the next segment's rebuild and statistics (which need no adjoint)
    # run beside this one's sequential steps and its input and weight gradients, on the core
    # the step loop leaves idle; at most two segments' intermediates are alive.
    _, d_h, d_states, _, d_w, dx_ta, red_tas, v, bad, acc, sample_tas = tf.while_loop(
        lambda s, *_: s >= 0,
        seg_back,
        (n_seg - 1, d_h, d_states, d_last, d_w0, ta(), {name: ta() for name in red_names}, zeros_bu,
         tf.constant(0.0), stats.init(), stats.sample_arrays(n_seg)),
        maximum_iterations=n_seg, parallel_iterations=SEGMENTS_IN_FLIGHT,
    )
    dx = dx_ta.concat()
    dx.set_shape(xs.shape)
    loss = {name: red_tas[name].concat() for name in ("grad_abs_sum", "out_abs_sum", "grad_norm_sum")}
    loss.update(grad_nonfinite=bad, v=v)
    return {
        "dx": dx,
        "d_initial": [d_h[0]] + [d[0] for d in d_states],
        "d_weights": d_w,
        "loss": loss,
        "flow": tf.transpose(red_tas["flow"].concat(), [1, 0]) if "flow" in red_tas else None,
        "stats": stats.finish(acc, sample_tas),
    }
