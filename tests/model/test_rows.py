"""The stock cells' gates rebuilt from their weights in the rows layout
(`rnn_monitor.model.tensorflow.rows`), against numpy and the cells' own calls."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

from rnn_monitor.model.tensorflow.rows import gru_block, lstm_gates, lstm_preactivations, times, to_rows

T, B, D, U = 4, 3, 5, 2
RNG = np.random.default_rng(0)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_to_rows_puts_every_position_of_every_sequence_in_a_row():
    last = RNG.normal(size=(T, B, 3, 4, U)).astype("float32")  # channels last
    np.testing.assert_array_equal(to_rows(tf.constant(last), False).numpy(), last.reshape(T, B * 12, U))
    first = np.moveaxis(last, -1, 2)  # [T, B, U, 3, 4]
    np.testing.assert_array_equal(to_rows(tf.constant(first), True).numpy(), last.reshape(T, B * 12, U))
    vectors = RNG.normal(size=(T, B, U)).astype("float32")
    np.testing.assert_array_equal(to_rows(tf.constant(vectors), False).numpy(), vectors)


def test_times_is_a_matmul_over_the_last_axis():
    a, m = RNG.normal(size=(T, B, D)).astype("float32"), RNG.normal(size=(D, 3)).astype("float32")
    np.testing.assert_allclose(times(tf.constant(a), tf.constant(m)).numpy(), a @ m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(times(tf.constant(a), tf.constant(m.T), transpose=True).numpy(), a @ m,
                               rtol=1e-5, atol=1e-6)


def test_lstm_gates_against_numpy():
    cell = L.LSTMCell(U)
    cell.build((None, D))
    x, h, c = (RNG.normal(size=(T, B, n)).astype("float32") for n in (D, U, U))
    kernel, recurrent, bias = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
    z = x @ kernel + h @ recurrent + bias
    got_z = lstm_preactivations(cell, tf.constant(x), tf.constant(h))
    np.testing.assert_allclose(got_z.numpy(), z, rtol=1e-5, atol=1e-6)
    gates, sig, c_new, tanh_c = lstm_gates(cell, got_z, tf.constant(c))
    i, f, g, o = _sigmoid(z[..., :U]), _sigmoid(z[..., U : 2 * U]), np.tanh(z[..., 2 * U : 3 * U]), _sigmoid(z[..., 3 * U :])
    for name, want in (("i", i), ("f", f), ("g", g), ("o", o)):
        np.testing.assert_allclose(gates[name].numpy(), want, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(sig.numpy(), _sigmoid(z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_new.numpy(), f * c + i * g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tanh_c.numpy(), np.tanh(f * c + i * g), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_block_is_the_cells_own_step(reset_after):
    cell = L.GRUCell(U, reset_after=reset_after, bias_initializer="glorot_uniform")
    cell.build((None, D))
    x, h = RNG.normal(size=(T, B, D)).astype("float32"), RNG.normal(size=(T, B, U)).astype("float32")
    gates, h_new = gru_block(cell, tf.constant(x), tf.constant(h))
    want = np.stack([cell(x[t], [h[t]])[0].numpy() for t in range(T)])
    np.testing.assert_allclose(h_new.numpy(), want, rtol=1e-5, atol=1e-6)
    assert sorted(gates) == ["hh", "r", "z"]
    np.testing.assert_allclose(h_new.numpy(), gates["z"].numpy() * h + (1 - gates["z"].numpy()) * gates["hh"].numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv_lstm_gates_give_the_cells_own_h_and_c(data_format):
    cell = L.ConvLSTM1D(U, 3, padding="same", data_format=data_format, bias_initializer="glorot_uniform").cell
    spatial = (6, D) if data_format == "channels_last" else (D, 6)
    state = (6, U) if data_format == "channels_last" else (U, 6)
    cell.build((None,) + spatial)
    x = RNG.normal(size=(T, B) + spatial).astype("float32")
    h, c = (RNG.normal(size=(T, B) + state).astype("float32") for _ in range(2))
    z = lstm_preactivations(cell, tf.constant(x), tf.constant(h))  # [T, B * 6, 4U]
    first = data_format == "channels_first"
    gates, _, c_new, tanh_c = lstm_gates(cell, z, to_rows(tf.constant(c), first))
    own = [cell(x[t], [h[t], c[t]])[1] for t in range(T)]
    want_h = np.stack([s[0].numpy() for s in own])
    want_c = np.stack([s[1].numpy() for s in own])
    np.testing.assert_allclose((gates["o"] * tanh_c).numpy(), to_rows(tf.constant(want_h), first).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c_new.numpy(), to_rows(tf.constant(want_c), first).numpy(), rtol=1e-5, atol=1e-5)
