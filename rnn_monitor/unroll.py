"""The probe's TensorFlow part: one forward + backward of the whole model on the probe batch, in
which every monitored recurrent layer runs its own cell step by step.

How it works. While the probe's `tf.function` is traced, each monitored keras RNN layer gets an
instance attribute ``inner_loop`` (keras's `RNN.call` calls ``self.inner_loop``; LSTM and GRU
override it to try cuDNN, the replacement bypasses that). The replacement is a `tf.while_loop`
over the time steps that calls ``layer.cell(x_t, states, training=False)`` and

* adds a zero tensor ``eps_t`` to the new state h_t before it is fed to the next step *and* to
  the output, so ``dL/d eps_t`` is the total derivative dL/dh_t through the recurrence (true
  backprop through time, which also exists for ``return_sequences=False``);
* adds a second zero tensor ``delta_t`` to the output at t only, so ``dL/d delta_t`` is the
  direct path dL/d(out_t);
* reconstructs the gate activations (LSTM i, f, g = c~, o; GRU z, r, hh = h~) from the cell's
  weights, x_t and h_{t-1}, and checks them against the cell's own new state (largest absolute
  difference, ``recon_error``; the caller drops a layer's gates when it is above 1e-5);
* reduces early: per-unit accumulators over the valid (b, t) positions (sum and sum of squares
  of h in float64, max |state|, saturation counts, non-finite counts) and the first
  ``text_samples`` sequences of every state are all that is kept per step besides what the
  backward pass itself needs.

Masked steps behave as in keras (the state is carried over, the output is the previous output,
or zeros when ``zero_output_for_mask``); they are excluded from every accumulator and sum.

The patch lives only while the function is traced (keras layers are called only then); the real
``inner_loop`` is restored in a ``finally`` even when tracing raises. The traced graph is reused
until the input shapes change (`tf.function(reduce_retracing=True)`).

Time order. All per-step arrays returned here are in the layer's own *processing* order
(reversed input order for ``go_backwards`` layers and the backward half of a Bidirectional),
time-major where noted. `rnn_monitor.probe_monitor` turns them into *input* order before
writing (see its docstring).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from rnn_monitor.anatomy import RNNLayerInfo

logger = logging.getLogger("rnn_monitor")

# Activations whose output is bounded: a state produced by one of these never "explodes".
BOUNDED_ACTIVATIONS = {"tanh", "sigmoid", "hard_sigmoid", "softsign", "hard_tanh", "hard_sigmoid"}
# State names of the activations view, by cell kind (gates after the states).
STATE_NAMES = {
    "lstm": ("h", "c", "i", "f", "g", "o"),
    "gru": ("h", "z", "r", "hh"),
    "simple": ("h",),
    "custom": ("h",),
}
GATE_STATES = {"lstm": ("i", "f", "g", "o"), "gru": ("z", "r", "hh"), "simple": (), "custom": ()}
# Gates whose activation is the recurrent (sigmoid) one: they get left / right saturation.
SIGMOID_GATES = {"lstm": ("i", "f", "o"), "gru": ("z", "r")}


def activation_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return str(name).lower()


def is_bounded(fn: Any) -> bool:
    return activation_name(fn) in BOUNDED_ACTIVATIONS


class _Trace:
    """What one monitored recurrence produced while the probe was traced (symbolic tensors)."""

    def __init__(self, info: RNNLayerInfo) -> None:
        self.info = info
        self.called = 0
        self.eps = None  # [T, B, U] processing order
        self.delta = None
        self.valid = None  # [T, B] bool, processing order
        self.final_h = None  # [B, U]: state after the last step (= at the last valid step)
        self.acc: dict = {}
        self.samples: dict = {}  # state -> [S, T, U]
        self.recon_error = None
        self.direct_state = True  # eps goes into the recurrence (False for odd custom cells)


def _gates_lstm(cell, x_t, h_prev, c_prev):
    z = keras.ops.matmul(x_t, cell.kernel) + keras.ops.matmul(h_prev, cell.recurrent_kernel)
    if cell.use_bias:
        z = z + cell.bias
    z0, z1, z2, z3 = tf.split(z, 4, axis=-1)
    i = cell.recurrent_activation(z0)
    f = cell.recurrent_activation(z1)
    g = cell.activation(z2)
    o = cell.recurrent_activation(z3)
    c = f * c_prev + i * g
    h = o * cell.activation(c)
    return {"i": i, "f": f, "g": g, "o": o}, h, c


def _gates_gru(cell, x_t, h_prev):
    units = cell.units
    matrix_x = keras.ops.matmul(x_t, cell.kernel)
    input_bias = recurrent_bias = None
    if cell.use_bias:
        if cell.reset_after:
            input_bias, recurrent_bias = cell.bias[0], cell.bias[1]
        else:
            input_bias = cell.bias
    if input_bias is not None:
        matrix_x = matrix_x + input_bias
    x_z, x_r, x_h = tf.split(matrix_x, 3, axis=-1)
    rk = cell.recurrent_kernel
    if cell.reset_after:
        inner = keras.ops.matmul(h_prev, rk)
        if recurrent_bias is not None:
            inner = inner + recurrent_bias
        r_z, r_r, r_h = inner[:, :units], inner[:, units : 2 * units], inner[:, 2 * units :]
        z = cell.recurrent_activation(x_z + r_z)
        r = cell.recurrent_activation(x_r + r_r)
        hh = cell.activation(x_h + r * r_h)
    else:
        inner = keras.ops.matmul(h_prev, rk[:, : 2 * units])
        z = cell.recurrent_activation(x_z + inner[:, :units])
        r = cell.recurrent_activation(x_r + inner[:, units:])
        hh = cell.activation(x_h + keras.ops.matmul(r * h_prev, rk[:, 2 * units :]))
    h = z * h_prev + (1.0 - z) * hh
    return {"z": z, "r": r, "hh": hh}, h


def _max_abs_diff(a, b):
    d = tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32))
    d = tf.where(tf.math.is_finite(d), d, tf.zeros_like(d))
    return tf.reduce_max(d)


class ProbeSettings:
    def __init__(self, thresholds: Any, text_samples: int) -> None:
        self.sat_tanh = float(thresholds.saturation_tanh)
        self.low = float(thresholds.saturation_sigmoid_low)
        self.high = float(thresholds.saturation_sigmoid_high)
        self.text_samples = max(0, int(text_samples))


def _make_inner_loop(trace: _Trace, tape: tf.GradientTape, settings: ProbeSettings):
    info = trace.info
    layer = info.layer
    cell = layer.cell
    kind = info.kind
    call_kwargs = {"training": False} if getattr(cell, "_call_has_training_arg", False) else {}
    act = getattr(cell, "activation", None)
    h_bounded = act is not None and is_bounded(act)
    tanh_output = act is not None and activation_name(act) == "tanh"

    def inner_loop(sequences, initial_state, mask, training=False):
        trace.called += 1
        if mask is not None and isinstance(mask, (list, tuple)):
            mask = mask[0]
        seq = tf.convert_to_tensor(sequences)
        states0 = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        states0 = [tf.convert_to_tensor(s) for s in states0]
        rank = len(seq.shape)
        perm = [1, 0] + list(range(2, rank))
        xs = tf.transpose(seq, perm)  # [T, B, ...]
        n_steps = tf.shape(xs)[0]
        batch = tf.shape(xs)[1]
        if mask is None:
            valid = tf.ones(tf.stack([n_steps, batch]), dtype=tf.bool)
        else:
            m = tf.cast(mask, tf.bool)
            if len(m.shape) == 3:
                m = m[:, :, 0]
            valid = tf.transpose(m, [1, 0])
        if layer.go_backwards:
            xs = tf.reverse(xs, [0])
            valid = tf.reverse(valid, [0])
        h0 = states0[0]
        units = int(h0.shape[-1])
        dtype = h0.dtype
        eps = tf.zeros(tf.stack([n_steps, batch, units]), dtype=dtype)
        delta = tf.zeros(tf.stack([n_steps, batch, units]), dtype=dtype)
        tape.watch(eps)
        tape.watch(delta)
        n_samples = settings.text_samples

        x_ta = tf.TensorArray(xs.dtype, size=n_steps).unstack(xs)
        eps_ta = tf.TensorArray(dtype, size=n_steps).unstack(eps)
        delta_ta = tf.TensorArray(dtype, size=n_steps).unstack(delta)
        valid_ta = tf.TensorArray(tf.bool, size=n_steps).unstack(valid)

        names = STATE_NAMES[kind]
        gate_names = GATE_STATES[kind]
        sigmoid_gates = SIGMOID_GATES.get(kind, ())
        zeros_u = tf.zeros([units], tf.float32)
        acc0 = {
            "n_valid": tf.constant(0.0, tf.float64),
            "h_sum": tf.zeros([units], tf.float64),
            "h_sumsq": tf.zeros([units], tf.float64),
            "h_max_abs": zeros_u,
            "h_sat": zeros_u,  # positions where the tanh output |.| > sat_tanh
            "recon": tf.constant(0.0, tf.float32),
        }
        for name in names:
            acc0[f"{name}_nonfinite"] = zeros_u
        if kind == "lstm":
            acc0["c_max_abs"] = zeros_u
        for gate in sigmoid_gates:
            acc0[f"{gate}_low"] = zeros_u
            acc0[f"{gate}_high"] = zeros_u
        sample_tas = {
            name: tf.TensorArray(tf.float32, size=n_steps, element_shape=tf.TensorShape([None, units]))
            for name in (names if n_samples else ())
        }
        out_ta = tf.TensorArray(dtype, size=n_steps if layer.return_sequences else 1,
                                element_shape=tf.TensorShape([None, units]))
        zero_output = bool(getattr(layer, "zero_output_for_mask", False))

        def body(t, states, prev_out, acc, tas, out_ta):
            x_t = x_ta.read(t)
            m_t = valid_ta.read(t)
            mcol = m_t[:, None]
            out, new_states = cell(x_t, list(states), **call_kwargs)
            new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
            raw = list(new_states)
            e_t = eps_ta.read(t)
            d_t = delta_ta.read(t)
            if trace.direct_state:
                h_new = raw[0] + e_t
                new_states[0] = h_new
                out_t = h_new + d_t
            else:
                out_t = out + e_t + d_t
            new_states = [tf.where(mcol, n, s) for n, s in zip(new_states, states)]
            if zero_output:
                out_t = tf.where(mcol, out_t, tf.zeros_like(out_t))
            else:
                out_t = tf.where(mcol, out_t, prev_out)

            # Observations at this step: the cell's own values (before masking), counted
            # only where the step is valid.
            h_obs = raw[0] if trace.direct_state else out
            obs = {"h": h_obs}
            recon = tf.constant(0.0, tf.float32)
            if kind == "lstm":
                gates, h_rec, c_rec = _gates_lstm(cell, x_t, states[0], states[1])
                obs["c"] = raw[1]
                obs.update(gates)
                recon = tf.maximum(_max_abs_diff(h_rec, raw[0]), _max_abs_diff(c_rec, raw[1]))
            elif kind == "gru":
                gates, h_rec = _gates_gru(cell, x_t, states[0])
                obs.update(gates)
                recon = _max_abs_diff(h_rec, raw[0])
            obs = {k: tf.cast(v, tf.float32) for k, v in obs.items()}
            validf = tf.cast(mcol, tf.float32)
            acc = dict(acc)
            acc["n_valid"] += tf.reduce_sum(tf.cast(m_t, tf.float64))
            acc["recon"] = tf.maximum(acc["recon"], recon)
            finite = {}
            for name in names:
                fin = tf.math.is_finite(obs[name])
                finite[name] = tf.logical_and(fin, mcol)
                acc[f"{name}_nonfinite"] += tf.reduce_sum(
                    tf.cast(tf.logical_and(tf.logical_not(fin), mcol), tf.float32), axis=0
                )
            h_ok = finite["h"]
            h_val = tf.where(h_ok, obs["h"], tf.zeros_like(obs["h"]))
            h64 = tf.cast(h_val, tf.float64)
            acc["h_sum"] += tf.reduce_sum(h64, axis=0)
            acc["h_sumsq"] += tf.reduce_sum(h64 * h64, axis=0)
            acc["h_max_abs"] = tf.maximum(acc["h_max_abs"], tf.reduce_max(tf.abs(h_val), axis=0))
            if kind == "lstm":
                c_val = tf.where(finite["c"], obs["c"], tf.zeros_like(obs["c"]))
                acc["c_max_abs"] = tf.maximum(acc["c_max_abs"], tf.reduce_max(tf.abs(c_val), axis=0))
                tanh_out = tf.abs(cell.activation(c_val)) if tanh_output else None
                sat_ok = finite["c"]
            else:
                tanh_out = tf.abs(h_val) if tanh_output else None
                sat_ok = h_ok
            if tanh_out is not None:
                acc["h_sat"] += tf.reduce_sum(
                    tf.cast(tf.logical_and(sat_ok, tanh_out > settings.sat_tanh), tf.float32), axis=0
                )
            for gate in sigmoid_gates:
                g = obs[gate]
                ok = finite[gate]
                acc[f"{gate}_low"] += tf.reduce_sum(
                    tf.cast(tf.logical_and(ok, g < settings.low), tf.float32), axis=0
                )
                acc[f"{gate}_high"] += tf.reduce_sum(
                    tf.cast(tf.logical_and(ok, g > settings.high), tf.float32), axis=0
                )
            tas = {name: ta.write(t, obs[name][:n_samples]) for name, ta in tas.items()}
            if layer.return_sequences:
                out_ta = out_ta.write(t, out_t)
            return t + 1, new_states, out_t, acc, tas, out_ta

        prev0 = tf.zeros_like(h0)
        _, states, last_output, acc, tas, out_ta = tf.while_loop(
            lambda t, *_: t < n_steps,
            body,
            (tf.constant(0), states0, prev0, acc0, sample_tas, out_ta),
            maximum_iterations=n_steps,
        )
        if not layer.return_sequences:
            out_ta = out_ta.write(0, last_output)
        outputs = tf.transpose(out_ta.stack(), [1, 0, 2])
        trace.eps, trace.delta, trace.valid = eps, delta, valid
        trace.final_h = states[0]
        trace.acc = acc
        trace.samples = {name: tf.transpose(ta.stack(), [1, 0, 2]) for name, ta in tas.items()}
        trace.h_bounded = h_bounded
        trace.tanh_output = tanh_output
        return last_output, outputs, list(states)

    return inner_loop


@contextlib.contextmanager
def patched(traces: Sequence[_Trace], tape: tf.GradientTape, settings: ProbeSettings):
    """Give each monitored layer the step-by-step inner loop; restore the real one afterwards."""
    saved = []
    try:
        for trace in traces:
            layer = trace.info.layer
            had_own = "inner_loop" in layer.__dict__
            saved.append((layer, had_own, layer.__dict__.get("inner_loop")))
            object.__setattr__(layer, "inner_loop", _make_inner_loop(trace, tape, settings))
        yield
    finally:
        for layer, had_own, previous in reversed(saved):
            if had_own:
                object.__setattr__(layer, "inner_loop", previous)
            else:
                try:
                    object.__delattr__(layer, "inner_loop")
                except AttributeError:
                    pass


def _custom_state_is_output(info: RNNLayerInfo) -> bool:
    """For a custom cell, whether its output is its first state (so eps can enter the recurrence)."""
    cell = info.cell
    size = getattr(cell, "state_size", None)
    first = size[0] if isinstance(size, (list, tuple)) else size
    out = getattr(cell, "output_size", None)
    return first is not None and first == out


class Unroller:
    """Runs the probe: `run(x, y, sample_weight)` -> numpy results per monitored layer.

    With ``gradients=False`` (no labels or no compiled loss) only the forward part runs.
    """

    def __init__(
        self,
        model: Any,
        infos: Sequence[RNNLayerInfo],
        thresholds: Any,
        text_samples: int,
        gradients: bool,
    ) -> None:
        self.model = model
        self.infos = list(infos)
        self.settings = ProbeSettings(thresholds, text_samples)
        self.gradients = gradients
        self.traces_count = 0
        self._fn = tf.function(self._probe, reduce_retracing=True)

    def _loss(self, x, y, y_pred, sample_weight):
        model = self.model
        if hasattr(model, "_compute_loss"):
            return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    def _probe(self, x, y, sample_weight):
        self.traces_count += 1
        traces = [_Trace(info) for info in self.infos]
        for trace in traces:
            if trace.info.kind == "custom":
                trace.direct_state = _custom_state_is_output(trace.info)
        with tf.GradientTape(persistent=True) as tape:
            with patched(traces, tape, self.settings):
                y_pred = self.model(x, training=False)
                loss = self._loss(x, y, y_pred, sample_weight) if self.gradients else None
        results = {}
        missing = [t.info.name for t in traces if t.eps is None]
        if missing:
            raise RuntimeError(
                f"the probe did not reach layers {missing} (called outside the model's forward "
                "pass?); they cannot be probed"
            )
        grads = None
        if self.gradients:
            sources = [t.eps for t in traces] + [t.delta for t in traces]
            weights = [list(t.info.weights.values()) for t in traces]
            flat_w = [w for ws in weights for w in ws]
            grads = tape.gradient(
                loss, sources + flat_w, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
        n = len(traces)
        offset = 2 * n
        for i, trace in enumerate(traces):
            valid = trace.valid  # [T, B]
            res = {
                "acc": trace.acc,
                "samples": trace.samples,
                "valid": tf.transpose(valid, [1, 0]),  # [B, T]
            }
            if grads is not None:
                validf = tf.cast(valid, tf.float32)
                d_eps = tf.cast(grads[i], tf.float32)  # [T, B, U]
                d_out = tf.cast(grads[n + i], tf.float32)
                vcol = valid[:, :, None]
                abs_eps = tf.where(vcol, tf.abs(d_eps), tf.zeros_like(d_eps))
                abs_out = tf.where(vcol, tf.abs(d_out), tf.zeros_like(d_out))
                res["grad_abs_sum"] = tf.reduce_sum(abs_eps, axis=1)  # [T, U]
                res["out_abs_sum"] = tf.reduce_sum(abs_out, axis=1)
                res["grad_norm_sum"] = tf.reduce_sum(
                    tf.where(valid, tf.norm(d_eps, axis=-1), tf.zeros_like(validf)), axis=1
                )
                res["count_t"] = tf.reduce_sum(validf, axis=1)  # [T]
                res["grad_nonfinite"] = tf.reduce_sum(
                    tf.cast(tf.logical_and(vcol, tf.logical_not(tf.math.is_finite(d_eps))), tf.float32)
                )
                # Temporal flow: v = dL/dh at each sequence's last valid step (processing order).
                n_steps = tf.shape(valid)[0]
                rev_first = tf.argmax(tf.cast(tf.reverse(valid, [0]), tf.int32), axis=0, output_type=tf.int32)
                last = n_steps - 1 - rev_first  # [B]
                d_eps_b = tf.transpose(grads[i], [1, 0, 2])  # [B, T, U]
                v = tf.stop_gradient(tf.gather(d_eps_b, last, axis=1, batch_dims=1))  # [B, U]
                flow = tape.gradient(
                    trace.final_h, trace.eps, output_gradients=v,
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                res["flow_norm"] = tf.transpose(tf.norm(tf.cast(flow, tf.float32), axis=-1), [1, 0])  # [B, T]
                res["v_norm"] = tf.norm(tf.cast(v, tf.float32), axis=-1)
                wg = grads[offset : offset + len(weights[i])]
                offset += len(weights[i])
                sq = tf.constant(0.0, tf.float64)
                wnf = tf.constant(0.0, tf.float32)
                for g in wg:
                    g = tf.convert_to_tensor(g)
                    fin = tf.math.is_finite(g)
                    wnf += tf.reduce_sum(tf.cast(tf.logical_not(fin), tf.float32))
                    g64 = tf.cast(tf.where(fin, g, tf.zeros_like(g)), tf.float64)
                    sq += tf.reduce_sum(g64 * g64)
                res["weight_grad_norm"] = tf.sqrt(sq)
                res["weight_grad_nonfinite"] = wnf
            results[trace.info.name] = res
        if loss is not None:
            results["__loss__"] = tf.cast(loss, tf.float32)
        results["__static__"] = {
            t.info.name: tf.constant([float(t.h_bounded), float(t.tanh_output), float(t.direct_state)])
            for t in traces
        }
        del tape
        return results

    def run(self, x, y=None, sample_weight=None) -> dict:
        """Execute the probe and return every result as numpy."""
        out = self._fn(x, y, sample_weight)
        return tf.nest.map_structure(lambda t: t.numpy(), out)
