"""What the interpretability methods score (`rnn_monitor.interpret.scoring`): the target column
of each row, the classifier check, and the model's output predicted in chunks, against plain
model.predict."""

import keras
import numpy as np
import pytest

from rnn_monitor.interpret import scoring

OUT = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4]])


def test_resolve_target_given_single_unit_or_predicted_class():
    np.testing.assert_array_equal(scoring.resolve_target(OUT, None), [1, 0, 2])
    np.testing.assert_array_equal(scoring.resolve_target(OUT, 2), [2, 2, 2])
    np.testing.assert_array_equal(scoring.resolve_target(OUT, np.int64(0)), [0, 0, 0])
    np.testing.assert_array_equal(scoring.resolve_target(np.array([[0.9], [0.1]]), None), [0, 0])
    for bad in (3, -1):
        with pytest.raises(ValueError, match=f"target {bad} is not an output of this model \\(it has 3\\)"):
            scoring.resolve_target(OUT, bad)


def test_pick_takes_each_rows_own_column():
    np.testing.assert_array_equal(scoring.pick(OUT, np.array([2, 0, 1])), [0.2, 0.5, 0.3])


def test_only_one_vector_per_sequence_is_a_classifier():
    scoring.check_classifier(OUT, "occlusion")
    for shape in ((3,), (3, 4, 2)):
        with pytest.raises(ValueError, match=f"occlusion needs .*shape {shape}".replace("(", "\\(").replace(")", "\\)")):
            scoring.check_classifier(np.zeros(shape), "occlusion")


def _counting(monkeypatch):
    """The row count of every model call from now on."""
    real, rows = scoring.forward, []

    def forward(model):
        call = real(model)

        def counted(inputs):
            rows.append(len(inputs[0]) if isinstance(inputs, list) else len(inputs))
            return call(inputs)

        return counted

    monkeypatch.setattr(scoring, "forward", forward)
    return rows


@pytest.mark.backends
def test_predict_in_chunks_equals_one_predict(monkeypatch):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((None, 2)), keras.layers.GRU(3), keras.layers.Dense(2)])
    x = np.random.default_rng(3).normal(size=(7, 4, 2)).astype("float32")
    assert scoring.forward(model) is scoring.forward(model)  # compiled once per model
    rows = _counting(monkeypatch)
    got = scoring.predict(model, x, max_copies=3)
    assert rows == [3, 3, 1]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-6)
    made = []

    def row(i):
        made.append(i)
        return x[6 - i]

    rows.clear()
    got = scoring.predict_rows(model, row, 7, max_copies=4)
    assert rows == [4, 3] and made == list(range(7))
    np.testing.assert_allclose(got, model.predict(x[::-1], verbose=0), atol=1e-6)
    assert scoring.predict_rows(model, row, 0).shape == (0,)


@pytest.mark.backends
def test_predict_with_two_inputs_chunks_both(monkeypatch):
    keras.utils.set_random_seed(4)
    a, b = keras.Input((3,)), keras.Input((2,))
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    rng = np.random.default_rng(4)
    xa, xb = rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(5, 2)).astype("float32")
    rows = _counting(monkeypatch)
    got = scoring.predict(model, [xa, xb], max_copies=2)
    assert rows == [2, 2, 1]
    np.testing.assert_allclose(got, model.predict([xa, xb], verbose=0), atol=1e-6)
