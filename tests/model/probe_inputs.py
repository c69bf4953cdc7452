"""Inputs shared by the probe's tests in this folder (imported by them: not a test module)."""

from __future__ import annotations

import keras
import numpy as np


def padded_tokens(lengths, steps, seed):
    """Token ids [B, steps] with 0 after each sequence's length, and class labels [B]."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 9, size=(len(lengths), steps)).astype("int32")
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    return x, rng.integers(0, 3, size=(len(lengths),))


def nan_below_two_lstms(lengths, masked):
    """Embedding -> LSTM 5 "low" -> LSTM 4 "high" -> Dense "out" whose kernel holds one NaN, so
    dL/dh is NaN at every valid step of both layers; returns (model, x, y, valid tokens)."""
    keras.utils.set_random_seed(4)
    x, y = padded_tokens(lengths, 7, seed=4)
    inp = keras.Input((7,), dtype="int32")
    h = keras.layers.Embedding(9, 4, mask_zero=masked)(inp)
    h = keras.layers.LSTM(5, return_sequences=True, name="low")(h)
    h = keras.layers.LSTM(4, name="high")(h)
    model = keras.Model(inp, keras.layers.Dense(3, name="out")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kernel = model.get_layer("out").kernel
    planted = kernel.numpy()
    planted[1, 2] = np.nan
    kernel.assign(planted)
    return model, x, y, int((x != 0).sum())
