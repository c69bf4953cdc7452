"""The stand-alone interpretability functions leave the model's dropout seeds as they found
them (Keras 3's RNN draws its cell's dropout masks from the cell's seed generator even at
inference), as the callback does: a seeded run trains the same with or without a call of them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnn_monitor.interpret.generation import generate
from rnn_monitor.interpret.occlusion import occlusion
from rnn_monitor.interpret.prediction import prediction_as_read

pytestmark = pytest.mark.backends


def _seeds(model):
    states = [np.array(v) for v in model.non_trainable_variables if "seed_generator" in v.path]
    assert states, "the model has no seed generator: the test would prove nothing"
    return states


def _model(outputs):
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(9, 4)(inp)
    if outputs == "classifier":
        h = keras.layers.LSTM(5, dropout=0.3, recurrent_dropout=0.2)(h)
        out = keras.layers.Dense(1, activation="sigmoid")(h)
    else:
        h = keras.layers.LSTM(5, dropout=0.3, return_sequences=True)(h)
        out = keras.layers.Dense(9)(h)
    return keras.Model(inp, out)


@pytest.mark.parametrize("method", ["occlusion", "prediction_as_read", "generate"])
def test_seed_generators_are_left_as_they_were(method):
    x = np.random.default_rng(0).integers(1, 9, size=(3, 6)).astype("int32")
    model = _model("next_token" if method == "generate" else "classifier")
    before = _seeds(model)
    if method == "occlusion":
        occlusion(model, x)
    elif method == "prediction_as_read":
        prediction_as_read(model, x)
    else:
        generate(model, [1, 2, 3], steps=4)
    for old, new in zip(before, _seeds(model)):
        np.testing.assert_array_equal(old, new)
