"""A custom cell that returns `output, [output]` and has no `output_size` (Keras's own custom-cell
example): probed exactly, dL/dh_t equal to a plain tape over a hand-written unroll."""

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run

pytestmark = pytest.mark.backends


class MinimalRNNCell(keras.layers.Layer):
    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units = units
        self.state_size = units  # no output_size: Keras takes the first state's size

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

    def call(self, inputs, states):
        out = keras.ops.tanh(keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(states[0], self.recurrent_kernel))
        return out, [out]


def test_custom_cell_output_as_only_state_is_probed_exactly(log_dir, grad):
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 6, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.RNN(MinimalRNNCell(4), name="custom"),
                              keras.layers.Dense(1, name="head")])
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True)])
    logged = load_run(log_dir).timestep_gradients("custom")[-1]  # [T, U]

    K, R = model.get_layer("custom").cell.get_weights()
    W, b = model.get_layer("head").get_weights()
    ops = keras.ops

    def loss(eps):
        h = ops.zeros((8, 4))
        for t in range(6):
            h = ops.tanh(ops.matmul(x[:, t], K) + ops.matmul(h, R)) + eps[t]  # eps_t: dL/dh_t in total
        return ops.mean((ops.matmul(h, W) + b - y) ** 2)

    (grads,) = grad(loss, [np.zeros((8, 4), "float32") for _ in range(6)])
    expected = np.stack([np.abs(g).mean(axis=0) for g in grads])
    np.testing.assert_allclose(logged, expected, rtol=1e-5, atol=1e-9)
    assert np.abs(expected[0]).max() > 0  # the gradient reaches the first step through the recurrence
