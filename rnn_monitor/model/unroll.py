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
* keeps the cell's own new h (and c) of every step. Nothing else happens inside the loop, so
  the differentiated loop costs what keras's own loop costs.

After the loop, without gradients and vectorized over time (in chunks of at most
`CHUNK_ELEMENTS` per gate block, to bound memory at long T), `_statistics` rebuilds the gate
activations (LSTM i, f, g = c~, o; GRU z, r, hh = h~) from the cell's weights, x_t and h_{t-1},
checks them against the cell's own h (and c) on the first `CHECK_ROWS` sequences (largest
absolute difference, ``recon``; the caller drops a layer's gates when it is above 1e-5), and
reduces early: per-unit accumulators over the valid (b, t) positions (sum and sum of squares of
h in float64, max |state|, saturation counts, non-finite counts) and the first
``text_samples`` sequences of every state (of h: ``h_samples``, for the units' descriptions) are all
that leaves the function.

The temporal flow needs one extra backward per layer: from ``<v, h_last>`` with
``v = stop_gradient(dL/dh_last)`` (dL/dh at each sequence's last valid step) to that layer's eps
tensor, which gives every k at once. It uses graph gradients (``tf.gradients(h_last, eps,
grad_ys=v)``, we are inside the traced function) so that the loss's tape need not be
persistent: a persistent tape keeps every intermediate of the loops alive (+1.8 GB for one LSTM
512 at T = 250). Per layer, not summed over layers, because a lower layer's eps also reaches the
upper layers' last states.

Masked steps behave as in keras (the state is carried over, the output is the previous output,
or zeros when ``zero_output_for_mask``); they are excluded from every accumulator and sum.

The patch lives only while the function is traced (keras layers are called only then); the real
``inner_loop`` is restored in a ``finally`` even when tracing raises. The traced graph is reused
until the input shapes change (`tf.function(reduce_retracing=True)`).

Time order. All per-step arrays returned here are in the layer's own *processing* order
(reversed input order for ``go_backwards`` layers and the backward half of a Bidirectional),
time-major where noted. `rnn_monitor.probe.monitor` turns them into *input* order before
writing (see its docstring).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any, Sequence

import tensorflow as tf

from rnn_monitor.model import backend
from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.model.gates import gru_gates

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


def _max_abs_diff(a, b):
    d = tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32))
    d = tf.where(tf.math.is_finite(d), d, tf.zeros_like(d))
    return tf.reduce_max(d)


class ProbeSettings:
    def __init__(self, thresholds: Any, text_samples: int, h_samples: int = 0) -> None:
        self.sat_tanh = float(thresholds.saturation_tanh)
        self.low = float(thresholds.saturation_sigmoid_low)
        self.high = float(thresholds.saturation_sigmoid_high)
        self.text_samples = max(0, int(text_samples))
        # h alone is kept for more rows: the units' average input and spectrum need more text
        # than the text view, and keeping only h for them costs 1 state, not all of them.
        self.h_samples = max(self.text_samples, int(h_samples))


CHECK_ROWS = 8  # sequences on which the rebuilt gates are checked against the cell
CHUNK_ELEMENTS = 1_000_000  # float32 elements per gate block in one vectorized stats chunk


def _make_inner_loop(trace: _Trace, tape: tf.GradientTape, settings: ProbeSettings):
    info = trace.info
    layer = info.layer
    cell = layer.cell
    kind = info.kind
    call_kwargs = backend.cell_call_kwargs(cell)
    act = getattr(cell, "activation", None)
    trace.h_bounded = act is not None and is_bounded(act)
    trace.tanh_output = act is not None and activation_name(act) == "tanh"

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
        h0 = states0[0]
        units = int(h0.shape[-1])
        dtype = h0.dtype
        eps = tf.zeros(tf.stack([n_steps, batch, units]), dtype=dtype)
        delta = tf.zeros(tf.stack([n_steps, batch, units]), dtype=dtype)
        tape.watch(eps)
        tape.watch(delta)

        x_ta = tf.TensorArray(xs.dtype, size=n_steps).unstack(xs)
        eps_ta = tf.TensorArray(dtype, size=n_steps).unstack(eps)
        delta_ta = tf.TensorArray(dtype, size=n_steps).unstack(delta)
        valid_ta = tf.TensorArray(tf.bool, size=n_steps).unstack(valid) if masked else None
        n_keep = 2 if kind == "lstm" else 1
        keep_tas = [
            tf.TensorArray(dtype, size=n_steps, element_shape=tf.TensorShape([None, units]))
            for _ in range(n_keep)
        ]  # the cell's own new h (and c) at every step
        out_ta = tf.TensorArray(dtype, size=n_steps if layer.return_sequences else 1,
                                element_shape=tf.TensorShape([None, units]))
        zero_output = bool(getattr(layer, "zero_output_for_mask", False))
        direct = trace.direct_state

        def body(t, states, prev_out, keep_tas, out_ta):
            x_t = x_ta.read(t)
            out, new_states = cell(x_t, list(states), **call_kwargs)
            new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
            keep_tas = [ta.write(t, v) for ta, v in zip(keep_tas, [out if not direct else new_states[0]] + new_states[1:n_keep])]
            e_t = eps_ta.read(t)
            d_t = delta_ta.read(t)
            if direct:
                h_new = new_states[0] + e_t
                new_states[0] = h_new
                out_t = h_new + d_t
            else:
                out_t = out + e_t + d_t
            if masked:
                mcol = valid_ta.read(t)[:, None]
                new_states = [tf.where(mcol, n, s) for n, s in zip(new_states, states)]
                out_t = tf.where(mcol, out_t, tf.zeros_like(out_t) if zero_output else prev_out)
            if layer.return_sequences:
                out_ta = out_ta.write(t, out_t)
            return t + 1, new_states, out_t, keep_tas, out_ta

        _, states, last_output, keep_tas, out_ta = tf.while_loop(
            lambda t, *_: t < n_steps,
            body,
            (tf.constant(0), states0, tf.zeros_like(h0), keep_tas, out_ta),
            maximum_iterations=n_steps,
        )
        if not layer.return_sequences:
            out_ta = out_ta.write(0, last_output)
        outputs = tf.transpose(out_ta.stack(), [1, 0, 2])
        trace.eps, trace.delta, trace.valid = eps, delta, valid
        trace.final_h = states[0]
        kept = [tf.stop_gradient(ta.stack()) for ta in keep_tas]  # [T, B, U]
        trace.acc, trace.samples = _statistics(
            trace, cell, kind, tf.stop_gradient(xs), [tf.stop_gradient(s) for s in states0], kept, valid,
            settings, masked,
        )
        return last_output, outputs, list(states)

    return inner_loop


def _statistics(trace, cell, kind, xs, states0, kept, valid, settings, masked):
    """Per-unit accumulators and text samples, vectorized over time in chunks (no gradients).

    `kept` holds the cell's own new h (and c) per step, time-major. The state a step started
    from is the carried one: the previous step's value where that step was valid, else the
    state before it (keras keeps the state through masked steps).
    """
    h_raw = kept[0]
    units = int(h_raw.shape[-1])
    # Carried states (what the next step starts from), then shifted by one step.
    def carried(raw, init):
        if not masked:
            return raw

        def step(prev, elems):
            value, m = elems
            return tf.where(m[:, None], value, prev)

        return tf.scan(step, (raw, valid), initializer=init)

    if kind in ("lstm", "gru"):
        h_car = carried(h_raw, states0[0])
        h_prev = tf.concat([states0[0][None], h_car[:-1]], axis=0)
    if kind == "lstm":
        c_car = carried(kept[1], states0[1])
        c_prev = tf.concat([states0[1][None], c_car[:-1]], axis=0)

    names = STATE_NAMES[kind]
    sigmoid_gates = SIGMOID_GATES.get(kind, ())
    n_samples = settings.text_samples
    sample_rows = {name: n_samples for name in names} if n_samples else {}
    if settings.h_samples:
        sample_rows["h"] = settings.h_samples
    batch_static = h_raw.shape[1]
    width = units * (4 if kind == "lstm" else 3 if kind == "gru" else 1)
    chunk = max(1, CHUNK_ELEMENTS // max(1, (batch_static or 64) * width))
    n_steps = tf.shape(h_raw)[0]
    n_chunks = (n_steps + chunk - 1) // chunk
    # The rebuilt gates are checked against the cell's own h (and c) on the first rows of the
    # batch: the check is about the formulas matching the cell, which does not depend on b.
    check_rows = max(CHECK_ROWS, n_samples)

    def chunk_stats(lo, hi):
        """Partial accumulators and sample slices of steps [lo, hi)."""
        acc = {}
        samples = {}
        vm = valid[lo:hi][:, :, None]  # [t, B, 1]
        obs = {"h": tf.cast(h_raw[lo:hi], tf.float32)}
        tanh_c = None
        if kind == "lstm":
            x2 = xs[lo:hi]
            z = tf.einsum("tbd,du->tbu", x2, tf.convert_to_tensor(cell.kernel)) + tf.einsum(
                "tbd,du->tbu", h_prev[lo:hi], tf.convert_to_tensor(cell.recurrent_kernel)
            )
            if cell.use_bias:
                z = z + cell.bias
            # One sigmoid over all four blocks (the c~ block of it is unused): fewer, larger ops.
            sig = cell.recurrent_activation(z)
            gates = {
                "i": sig[..., :units],
                "f": sig[..., units : 2 * units],
                "g": cell.activation(z[..., 2 * units : 3 * units]),
                "o": sig[..., 3 * units :],
            }
            fused = tf.cast(sig, tf.float32)
            c_raw = kept[1][lo:hi]
            c_rec = gates["f"] * c_prev[lo:hi] + gates["i"] * gates["g"]
            tanh_c = cell.activation(c_rec)
            h_rec = gates["o"] * tanh_c
            obs["c"] = tf.cast(c_raw, tf.float32)
            r = check_rows
            recon = tf.maximum(
                _masked_max_diff(h_rec[:, :r], h_raw[lo:hi][:, :r], vm[:, :r]),
                _masked_max_diff(c_rec[:, :r], c_raw[:, :r], vm[:, :r]),
            )
            obs.update({k: tf.cast(v, tf.float32) for k, v in gates.items()})
        elif kind == "gru":
            gates, h_rec = _gates_gru_seq(cell, xs[lo:hi], h_prev[lo:hi])
            recon = _masked_max_diff(h_rec[:, :check_rows], h_raw[lo:hi][:, :check_rows], vm[:, :check_rows])
            obs.update({k: tf.cast(v, tf.float32) for k, v in gates.items()})
        else:
            recon = tf.constant(0.0, tf.float32)
        acc["recon"] = recon
        for name in names:
            if kind == "lstm" and name in ("i", "f", "o"):
                continue
            _add(acc, f"{name}_nonfinite", _nonfinite_counts(obs[name], vm))
        if kind == "lstm":
            counts = {
                "nonfinite": _nonfinite_counts(fused, vm),
                "low": _count(fused < settings.low, vm, masked),
                "high": _count(fused > settings.high, vm, masked),
            }
            for j, gate in ((0, "i"), (1, "f"), (3, "o")):
                for what, value in counts.items():
                    _add(acc, f"{gate}_{what}", value[j * units : (j + 1) * units])
        h = tf.where(vm, obs["h"], tf.zeros_like(obs["h"])) if masked else obs["h"]
        h64 = tf.cast(h, tf.float64)
        _add(acc, "h_sum", tf.reduce_sum(h64, axis=[0, 1]))
        _add(acc, "h_sumsq", tf.reduce_sum(h64 * h64, axis=[0, 1]))
        _max(acc, "h_max_abs", tf.reduce_max(tf.abs(h), axis=[0, 1]))
        if kind == "lstm":
            c = tf.where(vm, obs["c"], tf.zeros_like(obs["c"])) if masked else obs["c"]
            _max(acc, "c_max_abs", tf.reduce_max(tf.abs(c), axis=[0, 1]))
            tanh_out = tf.abs(tf.cast(tanh_c, tf.float32)) if trace.tanh_output else None
        else:
            tanh_out = tf.abs(h) if trace.tanh_output else None
        if tanh_out is not None:
            _add(acc, "h_sat", _count(tanh_out > settings.sat_tanh, vm, masked))
        else:
            _add(acc, "h_sat", tf.zeros([units], tf.float32))
        for gate in sigmoid_gates if kind != "lstm" else ():
            g = obs[gate]
            _add(acc, f"{gate}_low", _count(g < settings.low, vm, masked))
            _add(acc, f"{gate}_high", _count(g > settings.high, vm, masked))
        for name, rows in sample_rows.items():
            samples[name] = obs[name][:, :rows]
        return acc, samples

    # Chunks run one after the other (parallel_iterations=1) so that only one chunk's
    # temporaries are alive per layer: in a plain Python loop the graph would run them all at
    # once (at T = 250 x 3 LSTM 512 that took several GB).
    init = _acc_zeros(kind, units)
    sample_tas = {
        name: tf.TensorArray(tf.float32, size=n_chunks, infer_shape=False, element_shape=tf.TensorShape([None, None, units]))
        for name in sample_rows
    }

    def body(i, acc, tas):
        lo = i * chunk
        hi = tf.minimum(n_steps, lo + chunk)
        part, samples = chunk_stats(lo, hi)
        merged = {}
        for key, value in acc.items():
            if key.endswith("_max_abs") or key == "recon":
                merged[key] = tf.maximum(value, part[key])
            else:
                merged[key] = value + part[key]
        tas = {name: ta.write(i, samples[name]) for name, ta in tas.items()}
        return i + 1, merged, tas

    _, acc, tas = tf.while_loop(
        lambda i, *_: i < n_chunks, body, (tf.constant(0), init, sample_tas), parallel_iterations=1
    )
    acc = dict(acc)
    acc["n_valid"] = tf.reduce_sum(tf.cast(valid, tf.float64))
    samples = {name: tf.transpose(ta.concat(), [1, 0, 2]) for name, ta in tas.items()}  # [S, T, U]
    return acc, samples


def _acc_zeros(kind, units):
    """Initial accumulators (see `rnn_monitor.stats.units`)."""
    zeros = tf.zeros([units], tf.float32)
    acc = {
        "recon": tf.constant(0.0, tf.float32),
        "h_sum": tf.zeros([units], tf.float64),
        "h_sumsq": tf.zeros([units], tf.float64),
        "h_max_abs": zeros,
        "h_sat": zeros,
    }
    for name in STATE_NAMES[kind]:
        acc[f"{name}_nonfinite"] = zeros
    if kind == "lstm":
        acc["c_max_abs"] = zeros
    for gate in SIGMOID_GATES.get(kind, ()):
        acc[f"{gate}_low"] = zeros
        acc[f"{gate}_high"] = zeros
    return acc


def _count(flags, vm, masked):
    if masked:
        flags = tf.logical_and(flags, vm)
    return tf.reduce_sum(tf.cast(flags, tf.float32), axis=[0, 1])


def _nonfinite_counts(values, vm):
    """Per-unit count of NaN / Inf at valid positions; the full count only runs when needed."""
    units = tf.shape(values)[-1]

    def counts():
        bad = tf.logical_and(tf.logical_not(tf.math.is_finite(values)), vm)
        return tf.reduce_sum(tf.cast(bad, tf.float32), axis=[0, 1])

    return tf.cond(
        tf.math.is_finite(tf.reduce_sum(values)), lambda: tf.zeros(tf.reshape(units, [1]), tf.float32), counts
    )


def _add(acc, key, value):
    acc[key] = acc[key] + value if key in acc else value


def _max(acc, key, value):
    acc[key] = tf.maximum(acc[key], value) if key in acc else value


def _masked_max_diff(a, b, vm):
    d = tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32))
    d = tf.where(tf.logical_and(vm, tf.math.is_finite(d)), d, tf.zeros_like(d))
    return tf.reduce_max(d)


def _gates_gru_seq(cell, x, h_prev):
    """GRU gates for a whole [t, B, .] block (same math as `gates.gru_gates`)."""
    shape = tf.shape(x)
    t, b = shape[0], shape[1]
    x2 = tf.reshape(x, tf.stack([t * b, tf.shape(x)[-1]]))
    h2 = tf.reshape(h_prev, tf.stack([t * b, tf.shape(h_prev)[-1]]))
    gates, h = gru_gates(cell, x2, h2)
    units = int(h_prev.shape[-1])
    back = lambda v: tf.reshape(v, tf.stack([t, b, units]))  # noqa: E731
    return {k: back(v) for k, v in gates.items()}, back(h)


@contextlib.contextmanager
def patched(traces: Sequence[_Trace], tape: tf.GradientTape, settings: ProbeSettings):
    """Give each monitored layer the step-by-step inner loop; restore the real one afterwards."""
    saved = []
    routes = contextlib.ExitStack()  # tf.keras 2 layers: their backend.rnn call goes to the loop
    try:
        for trace in traces:
            layer = trace.info.layer
            had_own = "inner_loop" in layer.__dict__
            saved.append((layer, had_own, layer.__dict__.get("inner_loop")))
            loop = _make_inner_loop(trace, tape, settings)
            object.__setattr__(layer, "inner_loop", loop)
            routes.enter_context(backend.legacy_rnn_route(layer, loop))
        yield
    finally:
        routes.close()
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
    # As Keras's RNN layer: a cell without `output_size` outputs its first state's size.
    out = getattr(cell, "output_size", None)
    return first is not None and (out is None or first == out)


@contextlib.contextmanager
def _without_arithmetic_optimizer():
    """Switch Grappler's arithmetic optimizer off for the functions called inside, then restore
    the options exactly as they were (so the user's own functions keep their cached graphs).

    Why: at larger widths (TF 2.21, e.g. 3 x LSTM 256 at T = 200) it rewrites sums in the
    probe's gradient loops into temporary variables that leak from one call to the next, and
    the second probe fails with AlreadyExistsError ("tmp_var ... iter:200"). The options are
    read when a function is called, so only the probe's own function is affected.
    """
    from tensorflow.python.eager import context as tf_context

    ctx = tf_context.context()
    saved = dict(getattr(ctx, "_optimizer_experimental_options", {}))
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    try:
        yield
    finally:
        if hasattr(ctx, "_optimizer_experimental_options"):
            ctx._optimizer_experimental_options = saved
            ctx._thread_local_data.function_call_options = None
        else:  # pragma: no cover - other TF versions
            tf.config.optimizer.set_experimental_options({"arithmetic_optimization": True})


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
        flow: bool = True,
        h_samples: int = 0,
    ) -> None:
        self.flow = flow
        self.model = model
        self.infos = list(infos)
        self.settings = ProbeSettings(thresholds, text_samples, h_samples)
        self.gradients = gradients
        self.traces_count = 0
        # A partial (no __code__): TensorFlow's "frequent retracing" warning counts calls per
        # code object, so one function per monitor would add up across monitors in a process.
        self._fn = tf.function(functools.partial(Unroller._probe, self), reduce_retracing=True)

    def _loss(self, x, y, y_pred, sample_weight):
        model = self.model
        if backend.engine_of(model) == backend.TF_KERAS:
            return backend.legacy_loss(model, x, y, y_pred, sample_weight)
        if hasattr(model, "_compute_loss"):
            return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    def _probe(self, x, y, sample_weight):
        self.traces_count += 1
        traces = [_Trace(info) for info in self.infos]
        for trace in traces:
            if trace.info.kind == "custom":
                trace.direct_state = _custom_state_is_output(trace.info)
        # Not persistent: a persistent tape makes every intermediate of the loops outlive the
        # pass (+1.8 GB for one LSTM 512 at T = 250, against +0.3 GB for a training step).
        with tf.GradientTape() as tape:
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
            # A tf.distribute variable of tf.keras 2 is differentiated through its per-device
            # parts (its own handle does not exist outside replica context).
            parts = [backend.variable_parts(w) for ws in weights for w in ws]
            grads = tape.gradient(
                loss,
                sources + [p for ps in parts for p in ps],
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            grads = grads[: len(sources)] + backend.sum_parts(grads[len(sources) :], parts)
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
                # At masked steps both gradients are exactly 0 (the step's eps / delta never
                # reach the output: keras's `where` keeps the previous state), so plain sums
                # over b are sums over the valid sequences.
                res["grad_abs_sum"] = tf.reduce_sum(tf.abs(d_eps), axis=1)  # [T, U]
                res["out_abs_sum"] = tf.reduce_sum(tf.abs(d_out), axis=1)
                res["grad_norm_sum"] = tf.reduce_sum(tf.norm(d_eps, axis=-1), axis=1)
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
                # The flow's backward uses graph gradients (we are inside tf.function), so the
                # tape need not be persistent.
                flow = None
                if self.flow:
                    flow = tf.gradients(trace.final_h, trace.eps, grad_ys=v)[0]
                if flow is None:
                    flow = tf.zeros_like(trace.eps)
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
        return results

    def run(self, x, y=None, sample_weight=None) -> dict:
        """Execute the probe and return every result as numpy."""
        # A stateful layer assigns its state variables in `call`: keep the user's states as
        # they were before the probe.
        state_vars = [
            v
            for info in self.infos
            if getattr(info.layer, "stateful", False) and getattr(info.layer, "states", None) is not None
            for v in tf.nest.flatten(info.layer.states)
        ]
        saved = [v.numpy() for v in state_vars]
        try:
            with _without_arithmetic_optimizer():
                out = self._fn(x, y, sample_weight)
        finally:
            for var, value in zip(state_vars, saved):
                var.assign(value)
        return tf.nest.map_structure(lambda t: t.numpy(), out)
