"""occlusion against plain model.predict on copies made by hand.

`q_detector` (conftest) fires on token 3.
"""

import keras
import numpy as np
import pytest


from rnn_monitor.interpret import occlusion

pytestmark = pytest.mark.backends


def test_occlusion_equals_predictions_on_copies_made_by_hand(q_detector):
    x = np.array([[1, 3, 2, 4, 0, 0], [2, 2, 1, 3, 3, 1], [4, 1, 2, 0, 0, 0]], "int32")
    got = occlusion(q_detector, x, max_copies=5)  # several chunks
    base = q_detector.predict(x, verbose=0)[:, 0]
    for b in range(3):
        for t in range(6):
            copy = x[b : b + 1].copy()
            copy[0, t] = 0
            assert got[b, t] == pytest.approx(base[b] - q_detector.predict(copy, verbose=0)[0, 0], abs=1e-6)


def test_occlusion_finds_the_planted_token(q_detector):
    x = np.array([[1, 2, 3, 4, 1, 0]], "int32")
    got = occlusion(q_detector, x)[0]
    assert int(np.argmax(got)) == 2 and got[2] > 0.5
    assert np.abs(np.delete(got, 2)).max() < 1e-6


def test_window_and_multiclass_target():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(3), keras.layers.Dense(4, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype("float32")
    got = occlusion(model, x, window=2, fill=0.0)
    full = model.predict(x, verbose=0)
    target = full.argmax(axis=1)
    for b in range(2):
        for t in range(5):
            copy = x[b : b + 1].copy()
            copy[0, t : t + 2] = 0.0
            expected = full[b, target[b]] - model.predict(copy, verbose=0)[0, target[b]]
            assert got[b, t] == pytest.approx(expected, abs=1e-5)


def test_per_timestep_output_is_a_clear_error():
    model = keras.Sequential([keras.Input((4, 1)), keras.layers.LSTM(2, return_sequences=True)])
    with pytest.raises(ValueError, match="one vector per sequence"):
        occlusion(model, np.zeros((1, 4, 1), "float32"))
