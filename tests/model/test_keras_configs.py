"""Every recurrent configuration of Keras's own RNN test suite (keras/src/layers/rnn/*_test.py),
the keras-io seq2seq example and mixed precision: fit with `RNNMonitor(raise_errors=True)`,
then each monitored recurrence's dL/dh_t is checked against a step-by-step reference, on every
Keras backend and through every path that serves the layer.

Reference (independent of the probe): the model is run with every RNN layer set to
``unroll=True`` (Keras's own Python loop over the steps) and each monitored cell's `call`
wrapped so that the state called h gets a zero ``eps[t]`` added at every step; the gradient of
the compiled loss with respect to those (a `tf.GradientTape` on TensorFlow, `jax.grad` on JAX)
is dL/dh_t through everything that uses h_t (the output at t and the next steps). Which state
is h is written here by hand per cell class (stock cells and ``output, [output]`` cells: their
output = state 0; a cell whose output is beside its states: state 0, and the output is not h).

Configurations are grouped into a few models (parallel branches on shared inputs) so that the
file needs one fit per group.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run
from rnn_monitor.probe.probe_monitor import ProbeRefusedError

pytestmark = pytest.mark.backends

B, T, D = 4, 6, 3
L = keras.layers
TOLERANCE = {"float32": 1e-5, "float16": 1e-2}
GATES = {"LSTMCell": ("i", "f", "g", "o"), "GRUCell": ("z", "r", "hh"), "ConvLSTMCell": ("i", "f", "g", "o")}


# ---------------------------------------------------------------- cells of Keras's rnn_test.py
class OneStateRNNCell(L.Layer):
    """keras/src/layers/rnn/rnn_test.py: `return output, [output]`, any `state_size` form
    (random weights instead of ones, so that one training step stays finite)."""

    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = state_size if state_size else units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

    def call(self, inputs, states):
        output = keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(states[0], self.recurrent_kernel)
        return output, [output]


class TwoStatesRNNCell(L.Layer):
    """keras/src/layers/rnn/rnn_test.py: the output is the sum of two states, none of them."""

    def __init__(self, units, state_size=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = state_size if state_size else [units, units]
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel_1 = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel_1")
        self.recurrent_kernel_2 = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel_2")

    def call(self, inputs, states):
        h = keras.ops.matmul(inputs, self.kernel)
        output_1 = keras.ops.tanh(h + keras.ops.matmul(states[0], self.recurrent_kernel_1))
        output_2 = keras.ops.tanh(h + keras.ops.matmul(states[1], self.recurrent_kernel_2))
        return output_1 + output_2, [output_1, output_2]


class NestedStateCell(L.Layer):
    """A nested `state_size` ([[u, u], u]) whose output is the last state (Keras runs any
    nesting of the state structure when the cell gives its initial state)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [[units, units], units]
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

    def get_initial_state(self, batch_size=None):
        zeros = lambda: keras.ops.zeros((batch_size, self.units), dtype=self.compute_dtype)  # noqa: E731
        return [[zeros(), zeros()], zeros()]

    def call(self, inputs, states):
        (a, b), c = states
        new_a = keras.ops.tanh(keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(c, self.recurrent_kernel))
        new_b = 0.5 * b + 0.5 * new_a
        new_c = keras.ops.tanh(new_a + new_b)
        return new_c, [[new_a, new_b], new_c]


# Which state is h (index in the cell's flat states) and whether it is the output.
H_STATE = {"TwoStatesRNNCell": (0, False), "NestedStateCell": (2, True)}


# ---------------------------------------------------------------- reference
def _recurrences(layer, name=None):
    """{monitored name: (keras RNN layer, cell, backward)}, written out for the test."""
    name = name or layer.name
    if isinstance(layer, L.Bidirectional):
        return {**_recurrences(layer.forward_layer, f"{name}/forward"),
                **_recurrences(layer.backward_layer, f"{name}/backward")}
    cell = layer.cell
    if isinstance(cell, L.StackedRNNCells):
        return {f"{name}/cell_{i}": (layer, sub, layer.go_backwards) for i, sub in enumerate(cell.cells)}
    return {name: (layer, cell, layer.go_backwards)}


class _Perturbed:
    """Each monitored cell's h gets ``eps[name][t]`` added at its t-th step (``eps`` None: the
    steps' shapes are recorded instead)."""

    def __init__(self):
        self.eps = None
        self.shapes: dict = {}
        self.step: dict = {}
        self.running: set = set()  # the layers whose loop over the steps is running

    def wrap(self, cell, name, layer):
        real = cell.call
        index, direct = H_STATE.get(type(cell).__name__, (0, True))

        def call(inputs, states, *args, **kwargs):
            out, new = real(inputs, states, *args, **kwargs)
            if id(layer) not in self.running:  # e.g. Keras's dropout-mask set-up call of a stack's cells
                return out, new
            flat = keras.tree.flatten(new)
            t = self.step[name] = self.step.get(name, -1) + 1
            if self.eps is None:
                self.shapes.setdefault(name, []).append(tuple(flat[index].shape))
                return out, new
            flat[index] = flat[index] + self.eps[name][t]
            return (flat[index] if direct else out), keras.tree.pack_sequence_as(new, flat)

        object.__setattr__(cell, "call", call)

    def loop_of(self, layer):
        real = layer.inner_loop

        def inner_loop(sequences, initial_state, mask, training=False):
            self.running.add(id(layer))
            try:
                last, outputs, states = real(sequences, initial_state, mask, training=training)
            finally:
                self.running.discard(id(layer))
            if mask is not None and layer.zero_output_for_mask and keras.backend.backend() == "jax":
                # Keras's JAX unrolled loop ignores zero_output_for_mask, its scan (what the model
                # runs) does not: zero the masked outputs as the scan does.
                m = keras.ops.flip(mask, axis=1) if layer.go_backwards else mask
                outputs = keras.ops.where(m[:, :, None], outputs, keras.ops.zeros_like(outputs))
                last = outputs[:, -1]
            return last, outputs, states

        return inner_loop


def reference_gradients(model, x, y, rnn_layers, grad):
    """{name: dL/dh [B, T, ...] in input order} from Keras's own unrolled loop."""
    units = {}
    for layer in rnn_layers:
        units.update(_recurrences(layer))
    keras_layers = {id(layer): layer for layer, _, _ in units.values()}
    unroll = {key: layer.unroll for key, layer in keras_layers.items()}
    perturbed = _Perturbed()

    def loss_of(eps):
        perturbed.eps, perturbed.step = eps, {}
        with keras.StatelessScope():  # a stateful layer's states stay as they are
            pred = model(x, training=False)
        return keras.losses.MeanSquaredError()(y, keras.ops.cast(pred, "float32"))

    for name, (layer, cell, _) in units.items():
        perturbed.wrap(cell, name, layer)
    try:
        for layer in keras_layers.values():
            layer.unroll = True
            object.__setattr__(layer, "inner_loop", perturbed.loop_of(layer))
        loss_of(None)  # the shapes of h at every step
        dtypes = {name: cell.compute_dtype for name, (_, cell, _) in units.items()}
        zeros = {name: [np.zeros(s, dtypes[name]) for s in shapes] for name, shapes in perturbed.shapes.items()}
        (grads,) = grad(loss_of, zeros)
    finally:
        for name, (_, cell, _) in units.items():
            object.__delattr__(cell, "call")
        for key, layer in keras_layers.items():
            layer.unroll = unroll[key]
            object.__delattr__(layer, "inner_loop")
    out = {}
    for name, (layer, cell, backward) in units.items():
        g = np.stack(grads[name], axis=1)  # [B, T, ...]
        out[name] = (g[:, ::-1] if backward else g, cell)
    return out


def _per_unit(g, cell):
    """[B, T, ...] -> [B, T, positions, units] (ConvLSTM: filters are the units)."""
    if getattr(cell, "data_format", None) == "channels_first" and g.ndim > 3:
        g = np.moveaxis(g, 2, -1)
    return g.reshape(g.shape[0], g.shape[1], -1, g.shape[-1])


def check_against_reference(log_dir, model, x, y, rnn_layers, grad, valid=None, dtype="float32"):
    """Every monitored recurrence: finite G and g equal to the reference's; returns the max
    relative errors {name: (G error, g error)}.

    Relative to the layer's largest value, or to 1% of the model's largest when the layer's is
    smaller: there float32 rounding of the model's larger gradients dominates (a stacked linear
    cell under a tanh cell, max |dL/dh| 8e-4 against 0.5: the reference itself moves by 2.7e-5
    of its own maximum between eager and compiled JAX)."""
    run = load_run(log_dir)
    ref = reference_gradients(model, x, y, rnn_layers, grad)
    assert set(ref) <= set(run.layers), (run.layers, sorted(ref))
    scale = max(float(np.abs(g).max()) for g, _ in ref.values())
    errors = {}
    for name, (g_ref, cell) in ref.items():
        per = _per_unit(g_ref, cell)  # [B, T, P, U]
        ok = np.ones(per.shape[:2], bool) if valid is None else valid
        assert np.all(per[~ok] == 0), name  # masked steps: no gradient reaches them
        count = ok.sum(0)  # [T]
        G_ref = np.abs(per).sum(axis=(0, 2)) / (count * per.shape[2])[:, None]
        g_ref = np.linalg.norm(per.reshape(per.shape[0], per.shape[1], -1), axis=-1).sum(0) / count
        G = run.timestep_gradients(name)[-1]
        g = run.timestep_grad_norm(name)[-1]
        assert G.shape == G_ref.shape, (name, G.shape, G_ref.shape)
        assert np.isfinite(G).all() and np.isfinite(g).all(), name
        assert np.abs(G_ref).max() > 0, name
        floor = 0.01 * scale / max(float(np.abs(per).max()), 1e-30)  # of the layer's own scale
        err_G = np.abs(G - G_ref).max() / (np.abs(G_ref).max() * max(1.0, floor))
        err_g = np.abs(g - g_ref).max() / (np.abs(g_ref).max() * max(1.0, floor))
        errors[name] = (err_G, err_g)
        assert err_G <= TOLERANCE[dtype] and err_g <= TOLERANCE[dtype], (name, err_G, err_g)
        gates = GATES.get(type(cell).__name__, ())
        assert set(gates) <= set(run.activation_states(name)), (name, run.activation_states(name))
    print("\n" + "\n".join(f"  {n}: G {e[0]:.2e}  g {e[1]:.2e}" for n, e in sorted(errors.items())))
    return errors


def _data(shapes, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(B,) + s).astype("float32") for s in shapes]
    return xs, rng.normal(size=(B, 1)).astype("float32")


def _head(outputs):
    flat = []
    for out in outputs:
        for o in out if isinstance(out, (list, tuple)) else [out]:
            flat.append(L.Flatten()(o) if len(o.shape) > 2 else o)
    merged = L.Concatenate()(flat) if len(flat) > 1 else flat[0]
    return L.Dense(1, name="head")(merged)


def _fit(log_dir, model, x, y, **kw):
    model.compile(keras.optimizers.SGD(0.01), "mse")
    monitor = RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True, alerts=False, images=False, **kw)
    model.fit(x, y, epochs=1, batch_size=B, verbose=0, callbacks=[monitor])
    return monitor


def _branches(make_layers, shape=(T, D)):
    inp = keras.Input(shape)
    layers = make_layers()
    outs = [layer(inp) for layer in layers]
    return keras.Model(inp, _head(outs)), layers


# ---------------------------------------------------------------- groups
GROUPS = {
    # lstm_test.py / gru_test.py / simple_rnn_test.py: every constructor option they use
    "lstm": lambda: [
        L.LSTM(3, dropout=0.5, name="lstm_dropout"),
        L.LSTM(3, dropout=0.5, recurrent_dropout=0.5, name="lstm_recurrent_dropout"),
        L.LSTM(3, return_sequences=True, bias_regularizer="l1", kernel_regularizer="l2",
               recurrent_regularizer="l2", name="lstm_regularizers"),
        L.LSTM(3, implementation=1, name="lstm_implementation_1"),
        L.LSTM(3, go_backwards=True, name="lstm_go_backwards"),
        L.LSTM(3, unroll=True, name="lstm_unroll"),
        L.LSTM(3, use_bias=False, name="lstm_no_bias"),
        L.LSTM(3, unit_forget_bias=False, name="lstm_no_forget_bias"),
    ],
    "gru": lambda: [
        L.GRU(3, dropout=0.5, recurrent_dropout=0.5, name="gru_dropout"),
        L.GRU(3, return_sequences=True, bias_regularizer="l1", kernel_regularizer="l2",
              recurrent_regularizer="l2", name="gru_regularizers"),
        L.GRU(3, implementation=1, name="gru_implementation_1"),
        L.GRU(3, reset_after=False, name="gru_reset_before"),
        L.GRU(3, go_backwards=True, unroll=True, name="gru_backwards_unroll"),
        L.GRU(3, use_bias=False, name="gru_no_bias"),
    ],
    "simple_and_generic": lambda: [
        L.SimpleRNN(3, dropout=0.5, recurrent_dropout=0.5, name="simple_dropout"),
        L.SimpleRNN(3, return_sequences=True, kernel_regularizer="l2", name="simple_regularizers"),
        L.SimpleRNN(3, activation="relu", name="simple_relu"),
        L.SimpleRNN(3, go_backwards=True, use_bias=False, name="simple_backwards_no_bias"),
        L.RNN(L.LSTMCell(3), name="rnn_lstm_cell"),
        L.RNN(L.GRUCell(3), return_sequences=True, name="rnn_gru_cell"),
    ],
    # rnn_test.py: custom cells with every state_size form
    "custom_cells": lambda: [
        L.RNN(OneStateRNNCell(4), name="one_state_int"),
        L.RNN(OneStateRNNCell(4, state_size=[4]), name="one_state_list"),
        L.RNN(OneStateRNNCell(4, state_size=(4,)), return_sequences=True, name="one_state_tuple"),
        L.RNN(OneStateRNNCell(4), go_backwards=True, unroll=True, name="one_state_backwards"),
        L.RNN(TwoStatesRNNCell(4), name="two_states"),
        L.RNN(TwoStatesRNNCell(4, state_size=(4, 4)), return_sequences=True, name="two_states_tuple"),
        L.RNN(NestedStateCell(3), name="nested_states"),
    ],
    # stacked_rnn_cells_test.py
    "stacked": lambda: [
        L.RNN([L.LSTMCell(3), L.GRUCell(2)], name="lstm_gru"),
        L.RNN([OneStateRNNCell(3), OneStateRNNCell(4), OneStateRNNCell(2)], return_sequences=True, name="one_states"),
        L.RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)], name="two_states"),
        L.RNN([L.SimpleRNNCell(3, dropout=0.1, recurrent_dropout=0.1), L.SimpleRNNCell(2)],
              return_sequences=True, name="simple_cells"),
        L.RNN([L.LSTMCell(2), L.LSTMCell(2)], go_backwards=True, name="lstm_cells_backwards"),
    ],
    # bidirectional_test.py: every merge mode, an explicit backward layer
    "bidirectional": lambda: [
        L.Bidirectional(L.SimpleRNN(3), name="bi_concat"),
        L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum", name="bi_sum"),
        L.Bidirectional(L.LSTM(3), merge_mode="ave", name="bi_ave"),
        L.Bidirectional(L.LSTM(2), merge_mode="mul", name="bi_mul"),
        L.Bidirectional(L.GRU(2), merge_mode=None, name="bi_none"),
        L.Bidirectional(L.SimpleRNN(2), backward_layer=L.SimpleRNN(2, go_backwards=True), name="bi_backward_layer"),
        L.Bidirectional(L.RNN([L.GRUCell(2), L.LSTMCell(2)]), name="bi_stacked"),
    ],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_config_group_matches_step_by_step_tape(group, log_dir, grad):
    model, layers = _branches(GROUPS[group])
    (x,), y = _data([(T, D)])
    _fit(log_dir, model, x, y)
    check_against_reference(log_dir, model, x, y, layers, grad)


def test_stock_layers_by_the_kernel_path_match_the_tape(log_dir, grad):
    """Stock LSTM / GRU layers through their own (fused, where the backend fuses) kernel: exact
    too. On a CPU the kernel runs as Keras's generic loop over the augmented input."""
    model, layers = _branches(lambda: [
        L.LSTM(3, name="lstm"),
        L.LSTM(3, go_backwards=True, return_sequences=True, name="lstm_go_backwards"),
        L.LSTM(3, use_bias=False, unit_forget_bias=False, name="lstm_no_bias"),
        L.GRU(3, return_sequences=True, name="gru"),
        L.GRU(3, go_backwards=True, name="gru_go_backwards"),
        L.Bidirectional(L.LSTM(2, return_sequences=True), merge_mode="sum", name="bi_lstm"),
        L.Bidirectional(L.GRU(2), name="bi_gru"),
    ])
    (x,), y = _data([(T, D)])
    monitor = _fit(log_dir, model, x, y, probe_path="kernel")
    assert {t.path for t in monitor._parts["probe"]._prober.traced} == {"kernel"}
    check_against_reference(log_dir, model, x, y, layers, grad)


def test_return_state_and_masking(log_dir, grad):
    """return_state (LSTM, a stack, a Bidirectional) and a Masking layer before LSTM / GRU
    (zero_output_for_mask) / go_backwards / a stack."""
    inp = keras.Input((T, D))
    masked = L.Masking(0.0)(inp)
    lstm = L.LSTM(3, return_state=True, name="lstm_state")
    out, h, c = lstm(inp)
    stack = L.RNN([L.LSTMCell(2), L.LSTMCell(2)], return_state=True, name="stack_state")
    s_out, *s_states = stack(inp)
    bi = L.Bidirectional(L.LSTM(2, return_state=True), name="bi_state")
    b_out, *b_states = bi(inp)
    m1 = L.LSTM(3, name="mask_lstm")
    m2 = L.GRU(3, return_sequences=True, zero_output_for_mask=True, name="mask_gru")
    m3 = L.SimpleRNN(3, go_backwards=True, name="mask_backwards")
    m4 = L.RNN([L.LSTMCell(2), L.GRUCell(2)], name="mask_stack")
    m5 = L.Bidirectional(L.GRU(2), name="mask_bi")
    outs = [out, c, s_out, *s_states[1], b_out, b_states[1], m1(masked), m2(masked), m3(masked), m4(masked), m5(masked)]
    model = keras.Model(inp, _head(outs))
    (x,), y = _data([(T, D)])
    lengths = np.array([T, T - 2, 3, T])
    valid = np.arange(T)[None, :] < lengths[:, None]
    x = np.where(valid[:, :, None], x, 0.0).astype("float32")
    _fit(log_dir, model, x, y)
    check_against_reference(log_dir, model, x, y, [lstm, stack, bi], grad)
    check_against_reference(log_dir, model, x, y, [m1, m2, m3, m4, m5], grad, valid=valid)
    assert len(load_run(log_dir).layers) == 1 + 2 + 2 + 3 + 2 + 2


def test_stateful_layers(log_dir, grad):
    inp = keras.Input(batch_shape=(B, T, D))
    layers = [L.LSTM(3, stateful=True, name="lstm_stateful"), L.GRU(3, stateful=True, name="gru_stateful"),
              L.RNN([OneStateRNNCell(2), L.SimpleRNNCell(2)], stateful=True, name="stack_stateful")]
    model = keras.Model(inp, _head([layer(inp) for layer in layers]))
    (x,), y = _data([(T, D)])
    monitor = _fit(log_dir, model, x, y)
    before = [v.numpy().copy() for layer in layers for v in keras.tree.flatten(layer.states)]
    monitor._parts["probe"].run()  # the probe leaves the user's states as they were
    after = [v.numpy() for layer in layers for v in keras.tree.flatten(layer.states)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    check_against_reference(log_dir, model, x, y, layers, grad)


def test_seq2seq_with_initial_state(log_dir, grad):
    """The keras-io character seq2seq: an encoder LSTM's states start the decoder LSTM."""
    enc_in, dec_in = keras.Input((T, D)), keras.Input((T - 1, D + 1))
    encoder = L.LSTM(4, return_state=True, name="encoder")
    _, h, c = encoder(enc_in)
    decoder = L.LSTM(4, return_sequences=True, return_state=True, name="decoder")
    dec_out, _, _ = decoder(dec_in, initial_state=[h, c])
    gru_enc, gru_dec = L.GRU(3, return_state=True, name="gru_encoder"), L.GRU(3, name="gru_decoder")
    _, gh = gru_enc(enc_in)
    model = keras.Model([enc_in, dec_in], _head([dec_out, gru_dec(dec_in, initial_state=gh)]))
    x, y = _data([(T, D), (T - 1, D + 1)])
    _fit(log_dir, model, x, y)
    run = load_run(log_dir)
    assert run.timestep_gradients("decoder").shape[1] == T - 1
    # the decoder's gradient reaches the encoder through the initial state
    assert np.all(run.timestep_gradients("encoder")[-1][0] > 0)
    check_against_reference(log_dir, model, x, y, [encoder, decoder, gru_enc, gru_dec], grad)


def test_conv_lstm_1d_2d_3d(log_dir, grad):
    """conv_lstm*_test.py: per-filter gates, gradients averaged over positions, per filter."""
    shapes = [(T, 5, D), (T, 4, 4, D), (T, D, 5, 4), (T, 3, 3, 3, D)]
    inputs = [keras.Input(s) for s in shapes]
    layers = [
        L.ConvLSTM1D(2, 3, padding="same", name="conv1d"),
        L.ConvLSTM2D(2, 3, padding="valid", return_sequences=True, name="conv2d"),
        L.ConvLSTM2D(2, (2, 3), padding="same", data_format="channels_first", name="conv2d_channels_first"),
        L.ConvLSTM3D(2, 2, padding="valid", go_backwards=True, name="conv3d"),
    ]
    model = keras.Model(inputs, _head([layer(i) for layer, i in zip(layers, inputs)]))
    x, y = _data(shapes)
    _fit(log_dir, model, x, y)
    check_against_reference(log_dir, model, x, y, layers, grad)
    run = load_run(log_dir)
    # unit health and activations per filter: h of the text view is the spatial mean per filter
    assert run.activations("conv2d", "h").shape == (B, T, 2)
    assert "gate/f/saturation_right" in run.scalar_names("conv1d")
    assert "dead_ratio" in run.scalar_names("conv3d")


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision(log_dir, grad, mixed_float16):
    """Gates are kept (the rebuild check's tolerance follows float16), dL/dh_t matches to 1e-2."""
    model, layers = _branches(lambda: [
        L.LSTM(4, return_sequences=True, name="lstm"), L.GRU(4, name="gru"), L.SimpleRNN(4, name="simple"),
        L.Bidirectional(L.LSTM(3), name="bi"), L.RNN([L.LSTMCell(3), L.GRUCell(3)], name="stack"),
    ])
    (x,), y = _data([(T, D)])
    _fit(log_dir, model, x, y)
    errors = check_against_reference(log_dir, model, x, y, layers, grad, dtype="float16")
    assert max(e for pair in errors.values() for e in pair) > 0  # float16 is not float32


class WideOutputCell(L.Layer):
    """Its output (3 wide) is none of its states (4 wide): the recurrence cannot be watched."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.state_size = 4
        self.output_size = 3

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 4), name="kernel")
        self.out = self.add_weight(shape=(4, 3), name="out")

    def call(self, inputs, states):
        h = keras.ops.tanh(keras.ops.matmul(inputs, self.kernel) + states[0])
        return keras.ops.matmul(h, self.out), [h]


def test_what_cannot_be_probed_is_one_clear_line_and_training_goes_on(log_dir, caplog):
    inp = keras.Input((T, D))
    wide = L.RNN(WideOutputCell(), name="wide")
    plain = L.GRU(2, name="gru")
    model = keras.Model(inp, _head([wide(inp), plain(inp)]))
    (x,), y = _data([(T, D)])
    model.compile("sgd", "mse")
    with caplog.at_level(logging.INFO, logger="rnn_monitor"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[RNNMonitor(log_dir, probe_data=(x, y), alerts=False)])
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in lines if "'wide'" in m]) == 1, lines
    assert "output gradients dL/d(out_t)" in next(m for m in lines if "'wide'" in m)
    assert not any("Traceback" in m or "failed" in m for m in lines), lines
    run = load_run(log_dir)
    assert run.epochs == [0, 1]
    assert np.isfinite(run.output_gradients("wide")).all()
    with pytest.raises(KeyError):
        run.timestep_gradients("wide")
    assert np.isfinite(run.timestep_gradients("gru")).all()
    with pytest.raises(ProbeRefusedError, match="'wide'.*none of its states"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[RNNMonitor(log_dir + "/strict", probe_data=(x, y), raise_errors=True)])


def test_a_cell_the_probe_cannot_step_runs_in_keras_loop_and_is_named(log_dir, caplog, monkeypatch):
    """When stepping a cell by hand fails, Keras's own loop runs it (the model's outputs do
    not change), the layer is named once with the reason and the rest is probed."""
    from rnn_monitor.model import stepping

    layout = stepping.CellStepper.layout

    def failing(self, x0, flat0):
        if isinstance(self.cell, L.SimpleRNNCell):
            raise stepping.UnsupportedCell("its cell does something the probe cannot follow")
        return layout(self, x0, flat0)

    monkeypatch.setattr(stepping.CellStepper, "layout", failing)
    inp = keras.Input((T, D))
    model = keras.Model(inp, _head([L.SimpleRNN(2, name="simple")(inp), L.LSTM(2, name="lstm")(inp)]))
    (x,), y = _data([(T, D)])
    model.compile("sgd", "mse")
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        monitor = RNNMonitor(log_dir, probe_data=(x, y), alerts=False)
        model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    lines = [r.getMessage() for r in caplog.records]
    assert [m for m in lines if "'simple'" in m] == [
        "rnn_monitor: layer 'simple' is not probed: its cell does something the probe cannot "
        "follow. Its weights are still monitored (per-gate norms, update ratios, histograms) and "
        "the other layers are probed; gradients through time, activations and unit health are "
        "off for it"
    ]
    run = load_run(log_dir)
    assert "kernel/h/l2" in run.scalar_names("simple") and "dead_ratio" not in run.scalar_names("simple")
    assert np.isfinite(run.timestep_gradients("lstm")).all()
    # the probe's forward pass (Keras's loop for 'simple') gives the model's own loss
    probe = monitor._parts["probe"]
    loss = probe._prober.run(x, y).loss
    np.testing.assert_allclose(loss, np.mean((model.predict(x, verbose=0) - y) ** 2), rtol=1e-5)
    with pytest.raises(ProbeRefusedError, match="'simple' is not probed"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[RNNMonitor(log_dir + "/strict", probe_data=(x, y), raise_errors=True)])
