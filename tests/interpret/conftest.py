"""Small hand-built models for the interpretability tests."""

import keras
import numpy as np
import pytest

PLANTED = 3


@pytest.fixture
def q_detector():
    """A classifier that fires when token 3 occurs: Embedding puts 1 on token 3, a ReLU SimpleRNN
    keeps the maximum, a sigmoid reads it. Inputs of fixed length 6, 0 is padding (mask_zero)."""
    model = keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(5, 1, mask_zero=True),
        keras.layers.SimpleRNN(1, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    emb = np.zeros((5, 1), "float32")
    emb[PLANTED] = 1.0
    model.layers[0].set_weights([emb])
    model.layers[1].set_weights([np.array([[4.0]], "float32"), np.array([[1.0]], "float32"), np.zeros(1, "float32")])
    model.layers[2].set_weights([np.array([[2.0]], "float32"), np.array([-1.0], "float32")])
    return model
