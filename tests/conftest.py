"""Shared test settings: quiet TensorFlow, deterministic seeds, small thread pools (2-core CI)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seeds."""
    import keras

    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def log_dir(tmp_path):
    """A fresh log directory for one test."""
    path = tmp_path / "logs"
    path.mkdir()
    return str(path)


@pytest.fixture
def lstm_flow_by_tape():
    """``flow(cell, inputs, v, lengths, steps) -> [B, steps]``: ||d<v_b, h_last_b>/dh_t|| of an
    LSTM cell stepped by a plain tape over each sequence's valid steps only (zero elsewhere);
    `inputs` [B, T, D] are the cell's inputs, `v` [B, units]."""

    def flow(cell, inputs, v, lengths, steps):
        import numpy as np
        import tensorflow as tf

        units = v.shape[1]
        norms = np.zeros((len(lengths), steps))
        for b, n in enumerate(lengths):
            eps = [tf.zeros((1, units)) for _ in range(n)]
            with tf.GradientTape() as tape:
                tape.watch(eps)
                h = c = tf.zeros((1, units))
                for t in range(n):
                    h, (h, c) = cell(inputs[b : b + 1, t], [h, c])
                    h = h + eps[t]
                target = tf.reduce_sum(v[b] * h)
            for t, g in enumerate(tape.gradient(target, eps)):
                norms[b, t] = np.linalg.norm(g.numpy())
        return norms

    return flow
