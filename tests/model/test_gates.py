"""The stock cells' gate arithmetic (`rnn_monitor.model.gates`) against Keras's own cell call on
random weights (h and c), and the gates against numpy on the saved weights; the linear
recurrence against a plain loop."""

import keras
import numpy as np
import pytest

from rnn_monitor.model import gates

pytestmark = pytest.mark.backends


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _randomised(cell, rng, scale=0.7):
    """Random weights (biases too), so that every term of the formulas counts."""
    for variable in cell.weights:
        variable.assign(rng.normal(scale=scale, size=variable.shape).astype("float32"))


def _np(value):
    return np.asarray(keras.ops.convert_to_numpy(value), np.float64)


def test_lstm_step_is_the_keras_cell_and_its_gates_the_formulas():
    rng = np.random.default_rng(0)
    cell = keras.layers.LSTMCell(4)
    cell.build((None, 3))
    _randomised(cell, rng)
    x, h, c = (rng.normal(size=(5, n)).astype("float32") for n in (3, 4, 4))
    found, h_new, c_new = gates.lstm_step(cell, x, h, c)
    keras_h, (_, keras_c) = cell(x, [h, c], training=False)
    np.testing.assert_allclose(_np(h_new), _np(keras_h), atol=1e-6)
    np.testing.assert_allclose(_np(c_new), _np(keras_c), atol=1e-6)
    kernel, recurrent, bias = (np.asarray(w, np.float64) for w in cell.get_weights())
    z = x @ kernel + h @ recurrent + bias
    zi, zf, zg, zo = np.split(z, 4, axis=1)  # Keras's order i, f, c~, o
    expected = {"i": _sigmoid(zi), "f": _sigmoid(zf), "g": np.tanh(zg), "o": _sigmoid(zo)}
    assert set(found) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(_np(found[name]), value, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(_np(c_new), expected["f"] * c + expected["i"] * expected["g"], atol=1e-6)


def test_a_block_of_steps_is_each_step_and_no_bias_is_no_bias():
    rng = np.random.default_rng(1)
    cell = keras.layers.LSTMCell(3, use_bias=False)
    cell.build((None, 2))
    _randomised(cell, rng)
    x, h, c = (rng.normal(size=(4, 5, n)).astype("float32") for n in (2, 3, 3))  # [t, B, D]
    block, h_block, c_block = gates.lstm_step(cell, x, h, c)
    for t in range(4):
        keras_h, (_, keras_c) = cell(x[t], [h[t], c[t]], training=False)
        np.testing.assert_allclose(_np(h_block)[t], _np(keras_h), atol=1e-6)
        np.testing.assert_allclose(_np(c_block)[t], _np(keras_c), atol=1e-6)
    z = _np(gates.lstm_preactivations(cell, x, h))
    kernel, recurrent = cell.get_weights()
    np.testing.assert_allclose(z, x @ kernel + h @ recurrent, atol=1e-5)


@pytest.mark.parametrize("reset_after,use_bias", [(True, True), (False, True), (True, False), (False, False)])
def test_gru_step_is_the_keras_cell_in_both_layouts(reset_after, use_bias):
    rng = np.random.default_rng(2)
    cell = keras.layers.GRUCell(4, reset_after=reset_after, use_bias=use_bias)
    cell.build((None, 3))
    _randomised(cell, rng)
    x, h = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(6, 4)).astype("float32")
    found, h_new = gates.gru_step(cell, x, h)
    keras_h, _ = cell(x, h, training=False)
    np.testing.assert_allclose(_np(h_new), _np(keras_h), atol=1e-6)
    weights = [np.asarray(w, np.float64) for w in cell.get_weights()]
    kernel, recurrent = weights[:2]
    bias = weights[2] if use_bias else np.zeros((2, 12) if reset_after else (12,))
    b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, np.zeros(12))
    xz, xr, xh = np.split(x @ kernel + b_in, 3, axis=1)
    uz, ur, uh = np.split(recurrent, 3, axis=1)
    bz, br, bh = np.split(b_rec, 3)
    z = _sigmoid(xz + h @ uz + bz)
    r = _sigmoid(xr + h @ ur + br)
    hh = np.tanh(xh + r * (h @ uh + bh)) if reset_after else np.tanh(xh + (r * h) @ uh)
    for name, value in (("z", z), ("r", r), ("hh", hh)):
        np.testing.assert_allclose(_np(found[name]), value, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(_np(h_new), z * h + (1 - z) * hh, atol=1e-6)


def test_conv_lstm_gates_as_one_convolution_are_the_keras_cell():
    rng = np.random.default_rng(3)
    layer = keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)
    layer.build((None, 2, 5, 5, 2))
    cell = layer.cell
    _randomised(cell, rng, scale=0.3)
    x = rng.normal(size=(1, 2, 5, 5, 2)).astype("float32")  # two leading axes [L0, L1]
    h = rng.normal(size=(1, 2, 5, 5, 3)).astype("float32")
    c = rng.normal(size=(1, 2, 5, 5, 3)).astype("float32")
    z = gates.lstm_preactivations(cell, x, h)
    assert tuple(z.shape) == (1, 2, 5, 5, 12)
    found, c_new, tanh_c = gates.lstm_from_preactivations(cell, z, c)
    for t in range(2):
        keras_h, (_, keras_c) = cell(x[:, t], [h[:, t], c[:, t]], training=False)
        np.testing.assert_allclose(_np(c_new)[:, t], _np(keras_c), atol=1e-5)
        np.testing.assert_allclose(_np(found["o"] * tanh_c)[:, t], _np(keras_h), atol=1e-5)
    np.testing.assert_allclose(_np(found["sig"]), _sigmoid(_np(z)), atol=1e-6)


def test_spatial_shape_and_positions():
    class Cell:
        data_format = "channels_first"

    assert gates.spatial_shape(Cell(), (4, 8)) == ((), False)
    assert gates.spatial_shape(Cell(), (4, 3, 5, 6)) == ((5, 6), True)
    assert gates.spatial_shape(object(), (4, 5, 6, 3)) == ((5, 6), False)
    with pytest.raises(ValueError, match="not static"):
        gates.spatial_shape(object(), (4, None, 6, 3))
    assert gates.positions(()) == 1 and gates.positions((5, 6)) == 30


@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence_is_the_loop(reverse):
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-1.2, 1.2, size=(3, 9, 2)), rng.normal(size=(3, 9, 2))
    expected = np.zeros_like(b)
    carried = np.zeros((3, 2))
    for t in (range(8, -1, -1) if reverse else range(9)):
        carried = b[:, t] + a[:, t] * carried
        expected[:, t] = carried
    got = gates.linear_recurrence(a.astype("float32"), b.astype("float32"), axis=1, reverse=reverse)
    assert tuple(got.shape) == (3, 9, 2)
    np.testing.assert_allclose(_np(got), expected, rtol=1e-4, atol=1e-5)
    along_first = gates.linear_recurrence(np.moveaxis(a, 1, 0), np.moveaxis(b, 1, 0), axis=0, reverse=reverse)
    np.testing.assert_allclose(np.moveaxis(_np(along_first), 0, 1), expected, rtol=1e-4, atol=1e-5)
