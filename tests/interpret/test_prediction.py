"""prediction_as_read (`rnn_monitor.interpret.prediction`) against plain model.predict on the
prefixes made by hand: true prefixes for a model that takes any length, prefixes pre-padded with
`fill` for a fixed-length one, the grid over two inputs.

`q_detector` (conftest) fires on token 3.
"""

import keras
import numpy as np
import pytest

from rnn_monitor.interpret import prediction_as_read

pytestmark = pytest.mark.backends


def test_prediction_as_read_equals_the_true_prefixes(q_detector):
    x = np.array([[1, 3, 2, 4, 1, 2], [2, 4, 1, 1, 3, 0]], "int32")
    got = prediction_as_read(q_detector, x)
    # The same weights in a model that takes any length: the true prefix, no padding at all.
    free = keras.Sequential([keras.Input((None,), dtype="int32")] + [
        type(layer).from_config(layer.get_config()) for layer in q_detector.layers
    ])
    free.set_weights(q_detector.get_weights())
    for t in range(6):
        np.testing.assert_allclose(got[:, t], free.predict(x[:, : t + 1], verbose=0)[:, 0], atol=1e-6)
    assert got[0, 0] < 0.5 < got[0, 1]  # the score jumps when the planted token is read


def test_prediction_as_read_grid_for_two_inputs():
    keras.utils.set_random_seed(1)
    a = keras.Input((None,), dtype="int32")
    b = keras.Input((None,), dtype="int32")
    ha = keras.layers.GRU(2)(keras.layers.Embedding(5, 2)(a))
    hb = keras.layers.GRU(2)(keras.layers.Embedding(5, 2)(b))
    model = keras.Model([a, b], keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([ha, hb])))
    x1 = np.array([[1, 2, 3]], "int32")
    x2 = np.array([[4, 1, 2, 2]], "int32")
    grid = prediction_as_read(model, [x1, x2])
    assert grid.shape == (1, 3, 4)
    for i in range(3):
        for j in range(4):
            expected = model.predict([x1[:, : i + 1], x2[:, : j + 1]], verbose=0)[0, 0]
            assert grid[0, i, j] == pytest.approx(expected, abs=1e-6)


def _fixed_length_softmax():
    keras.utils.set_random_seed(2)
    return keras.Sequential([keras.Input((5, 2)), keras.layers.SimpleRNN(3), keras.layers.Dense(4, activation="softmax")])


def test_a_fixed_length_model_reads_the_prefix_pre_padded_with_fill():
    model = _fixed_length_softmax()
    x = np.random.default_rng(2).normal(size=(3, 5, 2)).astype("float32")
    for target, fill, chunk in ((None, 0.0, 4), (1, 0.5, 1024)):
        got = prediction_as_read(model, x, target=target, fill=fill, max_copies=chunk)
        assert got.shape == (3, 5) and got.dtype == np.float32
        classes = model.predict(x, verbose=0).argmax(axis=1) if target is None else [target] * 3
        for t in range(5):
            padded = np.full_like(x, fill)
            padded[:, 5 - (t + 1):] = x[:, : t + 1]  # the prefix last: the model reads it last
            expected = model.predict(padded, verbose=0)[np.arange(3), classes]
            np.testing.assert_allclose(got[:, t], expected, atol=1e-6)
    np.testing.assert_allclose(prediction_as_read(model, [x])[:, -1], model.predict(x, verbose=0).max(axis=1),
                               atol=1e-6)  # one input in a list; the last prefix is the whole sequence


def test_a_target_the_model_lacks_and_a_per_timestep_output_are_clear_errors():
    with pytest.raises(ValueError, match="target 4 is not an output"):
        prediction_as_read(_fixed_length_softmax(), np.zeros((1, 5, 2), "float32"), target=4)
    model = keras.Sequential([keras.Input((4, 1)), keras.layers.GRU(2, return_sequences=True)])
    with pytest.raises(ValueError, match="prediction_as_read needs .* one vector per sequence"):
        prediction_as_read(model, np.zeros((1, 4, 1), "float32"))
