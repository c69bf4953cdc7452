"""The constant-prediction loss of the probe batch (`rnn_monitor.probe.constant_loss`): the
model's compiled loss on the best constant output, against the loss written out by hand."""

import keras
import numpy as np
import pytest

from rnn_monitor.probe.constant_loss import constant_loss

pytestmark = pytest.mark.backends


def _compiled(outputs, loss, activation=None):
    model = keras.Sequential([keras.Input((4, 2)), keras.layers.GRU(2), keras.layers.Dense(outputs, activation=activation)])
    model.compile("adam", loss)
    return model


def test_regression_is_the_variance_of_the_labels_per_output():
    y = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    x = np.zeros((10, 4, 2), "float32")
    got = constant_loss(_compiled(3, "mse"), x, y, (10, 3))
    assert got == pytest.approx(float(np.mean(y.var(axis=0))), rel=1e-5)  # mean of the per-output variances


def test_sparse_labels_from_logits_are_the_entropy_of_the_class_frequencies():
    y = np.array([0, 0, 1, 2, 2, 2, 2, 1])
    freq = np.bincount(y, minlength=4) / len(y)
    entropy = -sum(p * np.log(p) for p in freq if p > 0)  # the log-frequency logits: softmax = freq
    model = _compiled(4, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    got = constant_loss(model, np.zeros((8, 4, 2), "float32"), y, (8, 4))
    assert got == pytest.approx(entropy, rel=1e-4)


def test_binary_labels_with_sample_weights_are_the_weighted_cross_entropy():
    y = np.array([[1.0], [0.0], [1.0], [1.0]], "float32")
    weights = np.array([1.0, 3.0, 1.0, 1.0], "float32")
    model = _compiled(1, "binary_crossentropy", activation="sigmoid")
    got = constant_loss(model, np.zeros((4, 4, 2), "float32"), y, (4, 1), sample_weight=weights)

    def weighted(p):  # Keras: sum of weighted losses / batch size
        losses = -(y[:, 0] * np.log(p) + (1 - y[:, 0]) * np.log(1 - p))
        return float(np.sum(weights * losses) / 4)

    # the candidates come from the labels alone (their mean, 0.75); the weights enter the loss
    assert got == pytest.approx(weighted(0.75), rel=1e-4)


def test_no_baseline_for_several_or_unusable_labels():
    model = _compiled(3, "mse")
    x = np.zeros((2, 4, 2), "float32")
    assert constant_loss(model, x, None, (2, 3)) is None
    assert constant_loss(model, x, [np.zeros((2, 3))], (2, 3)) is None
    assert constant_loss(model, x, np.zeros((2, 5)), (2, 3)) is None  # no candidate for this shape
    assert constant_loss(model, x, np.array([[np.nan, 0, 0], [0, 0, 0]]), (2, 3)) is None
