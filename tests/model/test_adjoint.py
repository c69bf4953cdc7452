"""The hand-written reverse pass of stock LSTM / GRU layers in TensorFlow's loop
(`rnn_monitor.model.tensorflow.adjoint`).

The per-timestep gradients it gives are checked against independent tapes in
`test_keras_configs.py`, `test_probe_gradients.py` and `test_probe_masking.py` (stock layers take
this pass by default). Here: the temporal flow of a lower layer with padding against a plain tape,
every number of the probe (gradients and the unit statistics it reduces with the gates it
rebuilds) against the generic (autodiff) pass, and which cells it serves.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnn_monitor import RNNMonitor, load_run
from rnn_monitor.config import Thresholds
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.model.tensorflow import adjoint
from rnn_monitor.model.tensorflow.unit_stats import UnitStats
from rnn_monitor.probe.graph import LoopOptions, Prober
from rnn_monitor.stats.gradients import temporal_flow
from probe_inputs import nan_below_two_lstms, padded_tokens

L = keras.layers


@pytest.mark.parametrize("hand_written", [True, False])
def test_lower_layer_flow_with_padding_matches_a_plain_tape(hand_written, log_dir, probe_settings, lstm_flow_by_tape):
    """Flow of an LSTM below a GRU (its own second adjoint, seeded at each sequence's last valid
    step): ||d<v_b, h_last_b>/dh_t|| by a tape through the cell stepped over the valid steps."""
    probe_settings(hand_written_reverse=hand_written)
    keras.utils.set_random_seed(5)
    lengths = np.array([9, 4, 7, 1, 9, 2])
    x, y = padded_tokens(lengths, 9, seed=5)
    emb = L.Embedding(9, 3, mask_zero=True)
    low, top = L.LSTM(5, return_sequences=True, name="low"), L.GRU(4, name="top")
    head = L.Dense(3)
    model = keras.Sequential([keras.Input((9,), dtype="int32"), emb, low, top, head])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=6, verbose=0,
              callbacks=[RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True, alerts=False, images=False)])

    e, mask = emb(x), x != 0
    with tf.GradientTape() as tape:
        seq = low(e, mask=mask)
        tape.watch(seq)
        loss = model.loss(y, head(top(seq, mask=mask)))
    d_seq = tape.gradient(loss, seq).numpy()
    # dL/dh at the last valid step: its output and every masked output after it (a copy of it)
    v = np.stack([d_seq[b, n - 1 :].sum(0) for b, n in enumerate(lengths)])
    flow_norm = lstm_flow_by_tape(low.cell, e, v, lengths, 9)
    expected = temporal_flow(flow_norm, np.linalg.norm(v, axis=1), mask)
    np.testing.assert_allclose(load_run(log_dir).temporal_flow("low")[-1], expected, rtol=1e-4, atol=1e-9)


def _mixed_model(steps):
    inp = keras.Input((steps,), dtype="int32")
    x = L.Embedding(9, 4, mask_zero=True)(inp)
    x = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bi")(x)
    x = L.GRU(4, return_sequences=True, reset_after=False, activation="relu", name="gru_before")(x)
    x = L.GRU(4, return_sequences=True, zero_output_for_mask=True, name="gru_after")(x)
    x = L.LSTM(3, go_backwards=True, use_bias=False, name="lstm_back")(x)
    model = keras.Model(inp, L.Dense(3)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_every_probe_number_equals_the_generic_pass(monkeypatch):
    """Each stock layer of a masked model takes the hand-written pass, and every number the
    probe's backward gives (per-step sums, norms, flow, v, weight-gradient norms) equals the
    generic pass's to float rounding."""
    keras.utils.set_random_seed(2)
    x, y = padded_tokens([11, 6, 3, 11, 8], 11, seed=2)
    x[1, :2] = 0  # a row with leading padding too
    model = _mixed_model(11)
    infos = find_rnn_layers(model)
    served = []
    real_sweep = adjoint.sweep

    def counting(layer, *args, **kwargs):
        served.append(layer.kind)
        return real_sweep(layer, *args, **kwargs)

    monkeypatch.setattr(adjoint, "sweep", counting)
    chunked = []  # statistics reduced apart from a reverse pass
    real_run = UnitStats.run
    monkeypatch.setattr(UnitStats, "run", lambda self: chunked.append(self.kind) or real_run(self))
    results = {}
    for on in (True, False):
        probe = Prober(model, infos, Thresholds(), 2, gradients=True, h_samples=3, path="loop", loop=LoopOptions(hand_written_reverse=on))
        results[on] = probe.run(tf.constant(x), tf.constant(y)).layers
        assert len(chunked) == (0 if on else len(infos)), chunked  # traced once per setting
    assert sorted(served) == ["gru", "gru", "lstm", "lstm", "lstm"]
    keys = ("grad_abs_sum", "out_abs_sum", "grad_norm_sum", "flow_norm", "v_norm", "weight_grad_norm", "grad_nonfinite")
    for info in infos:
        for key in keys:
            fast, generic = results[True][info.name][key], results[False][info.name][key]
            scale = max(float(np.abs(generic).max()), 1e-30)
            assert np.abs(fast - generic).max() <= 1e-5 * scale, (info.name, key)
        assert np.abs(results[True][info.name]["grad_abs_sum"]).max() > 0, info.name
        # the unit statistics, reduced inside the hand-written pass with the gates it rebuilds
        for part in ("acc", "samples"):
            fast, generic = results[True][info.name][part], results[False][info.name][part]
            assert sorted(fast) == sorted(generic), (info.name, part)
            for key in generic:
                np.testing.assert_allclose(fast[key], generic[key], rtol=1e-5, atol=1e-6, err_msg=f"{info.name} {key}")
        assert results[True][info.name]["acc"]["recon"] < 1e-5


@pytest.mark.parametrize("hand_written", [True, False])
def test_nonfinite_gradients_are_counted_at_every_valid_step(hand_written):
    """A NaN in the output layer's kernel makes dL/dh NaN at every valid step of every layer
    below it: each pass counts exactly (valid tokens) x units non-finite gradients per layer
    (the count is skipped only when every sum of |dL/dh| is finite)."""
    model, x, y, valid = nan_below_two_lstms([7, 3, 7, 5], masked=True)
    out = Prober(model, find_rnn_layers(model), Thresholds(), 2, gradients=True, path="loop",
                 loop=LoopOptions(hand_written_reverse=hand_written)).run(tf.constant(x), tf.constant(y)).layers
    assert float(out["low"]["grad_nonfinite"]) == valid * 5
    assert float(out["high"]["grad_nonfinite"]) == valid * 4


class _OwnLSTMCell(L.LSTMCell):
    """A subclass: its `call` may differ from Keras's, so the generic pass serves it."""


@pytest.mark.parametrize(
    "make, dtype, expected",
    [
        (lambda: L.LSTMCell(3), "float32", True),
        (lambda: L.GRUCell(3, reset_after=False, activation="relu"), "float32", True),
        (lambda: L.LSTMCell(3, use_bias=False), "float32", True),
        (lambda: _OwnLSTMCell(3), "float32", False),
        (lambda: L.LSTMCell(3, activation="softmax"), "float32", False),
        (lambda: L.LSTMCell(3), "float16", False),
        (lambda: L.SimpleRNNCell(3), "float32", False),
    ],
)
def test_which_cells_take_the_hand_written_pass(make, dtype, expected):
    cell = make()
    cell.build((None, 2))
    kind = {"LSTMCell": "lstm", "_OwnLSTMCell": "lstm", "GRUCell": "gru"}.get(type(cell).__name__, "simple")
    weights = [cell.kernel, cell.recurrent_kernel] + ([cell.bias] if cell.use_bias else [])
    variables = [w.value for w in weights]
    index = adjoint.eligible(cell, kind, variables, [dtype])
    assert (index is not None) == expected
    if expected:
        assert all(variables[index[name]] is w.value for name, w in zip(("kernel", "recurrent_kernel", "bias"), weights))
        # a variable read in the loop that is not the cell's own: the generic pass
        extra = tf.Variable(1.0)
        assert adjoint.eligible(cell, kind, variables + [extra], [dtype]) is None
