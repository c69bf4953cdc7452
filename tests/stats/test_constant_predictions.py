"""Constant-prediction candidates (numpy) and the probe's constant-prediction loss, against the
losses of the best constants computed by hand (variance, entropy of the label frequencies)."""

import math

import numpy as np
import pytest

from rnn_monitor.stats.constant_predictions import best_finite, constant_candidates
from rnn_monitor.stats.gradients import early_late_ratio, flow_at_half


def test_candidates_for_same_shape_labels_are_the_mean_and_its_log_and_logit():
    y = np.array([[0.0], [1.0], [1.0], [1.0]])
    mean, log, logit = constant_candidates(y, (4, 1))
    assert mean.shape == (4, 1) and np.allclose(mean, 0.75)
    assert np.allclose(log, math.log(0.75)) and np.allclose(logit, math.log(0.75 / 0.25))
    # regression targets outside [0, 1]: the mean per output only
    y = np.array([[1.0, 10.0], [3.0, 30.0]])
    (mean,) = constant_candidates(y, (2, 2))
    assert np.allclose(mean, [[2.0, 20.0], [2.0, 20.0]])


def test_candidates_for_sparse_labels_are_the_frequencies_and_their_log():
    y = np.array([[0, 2, 2], [2, 1, 2]])  # [B, T] ids, output [B, T, 3]
    freq, log = constant_candidates(y, (2, 3, 3))
    assert freq.shape == (2, 3, 3) and np.allclose(freq[0, 0], [1 / 6, 1 / 6, 4 / 6])
    assert np.allclose(log[1, 2], np.log([1 / 6, 1 / 6, 4 / 6]))
    assert len(constant_candidates(np.array([[1], [0]]), (2, 4))) == 2  # trailing axis of 1


def test_no_candidate_for_labels_that_do_not_fit_the_output():
    assert constant_candidates(np.array([0.5, 7.0]), (2, 3)) == []  # not class ids
    assert constant_candidates(np.array([[np.nan]]), (1, 1)) == []
    assert constant_candidates(np.array(["a", "b"]), (2, 1)) == []
    assert best_finite([None, float("nan"), 3.0, 2.0]) == 2.0 and best_finite([None]) is None


def test_flow_at_half_and_early_late_ratio_by_hand():
    flow = np.array([1.0, 0.5, 0.25, 0.125, 0.0625])
    assert flow_at_half(flow, 5) == 0.25 and flow_at_half(flow, 100) == 0.0625
    assert math.isnan(flow_at_half(np.zeros(0), 4))
    g = np.array([np.nan, 2.0, 4.0, 8.0, np.nan])  # input order, NaN where masked
    assert early_late_ratio(g) == 0.25 and early_late_ratio(g, backward=True) == 4.0
    assert math.isnan(early_late_ratio(np.array([1.0, 0.0])))


@pytest.mark.parametrize("kind", ["mse", "bce_probs", "sce_logits", "bce_logits"])
def test_probe_constant_loss_is_the_loss_of_the_best_constant(kind):
    import keras

    from rnn_monitor.probe.constant_loss import constant_loss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6, 3)).astype("float32")
    if kind == "mse":
        y = rng.normal(2.0, 3.0, size=(40, 2)).astype("float32")
        out, loss, expected = keras.layers.Dense(2), "mse", float(np.mean(np.var(y, axis=0)))
    elif kind.startswith("bce"):
        y = (rng.random((40, 1)) < 0.3).astype("float32")
        p = float(y.mean())
        expected = -(p * math.log(p) + (1 - p) * math.log(1 - p))
        if kind == "bce_probs":
            out, loss = keras.layers.Dense(1, activation="sigmoid"), "binary_crossentropy"
        else:
            out, loss = keras.layers.Dense(1), keras.losses.BinaryCrossentropy(from_logits=True)
    else:
        y = rng.integers(0, 4, size=(40, 6))
        freq = np.bincount(y.ravel(), minlength=4) / y.size
        expected = float(-(freq * np.log(freq)).sum())
        out, loss = keras.layers.Dense(4), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return_sequences = kind == "sce_logits"
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.GRU(4, return_sequences=return_sequences), out])
    model.compile("adam", loss)
    pred_shape = tuple(model(x).shape)
    assert constant_loss(model, x, y, pred_shape) == pytest.approx(expected, rel=1e-4)
