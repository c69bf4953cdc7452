"""`model/backend.py`: what the monitor keeps of the model around its own calls (stateful layers'
states, dropout seed generators, also when the body raises), the compiled loss as `fit` computes
it, and one gradient per variable from its parts; on every Keras backend."""

import keras
import numpy as np
import pytest

from rnn_monitor.model.backend import carried_states, compiled_loss, has_compiled_loss, kept_state

pytestmark = pytest.mark.backends


def _stateful_dropout_model():
    model = keras.Sequential([
        keras.Input((5, 3), batch_size=2),
        keras.layers.LSTM(4, stateful=True, dropout=0.3, recurrent_dropout=0.2, return_sequences=True, seed=1),
        keras.layers.Dense(1),
    ])
    model.compile("sgd", "mse")
    return model


def _seeds(model):
    return [np.array(v) for v in model.non_trainable_variables if "seed_generator" in v.path]


def test_states_and_seeds_are_put_back_after_the_body_also_when_it_raises():
    model = _stateful_dropout_model()
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    model.predict(x, verbose=0)  # states and seeds away from their initial values
    states = [np.array(v) for v in carried_states(model)]
    seeds = _seeds(model)
    assert len(states) == 2 and seeds, "the test would prove nothing"
    with kept_state(model):
        model(x, training=True)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(states, carried_states(model)))
    assert all(np.array_equal(a, b) for a, b in zip(seeds, _seeds(model)))
    with pytest.raises(RuntimeError):
        with kept_state(model):
            model(x, training=True)
            raise RuntimeError("the monitor's call failed")
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(states, carried_states(model)))
    model(x, training=True)  # without kept_state the call does move them
    assert not all(np.array_equal(a, np.array(b)) for a, b in zip(states, carried_states(model)))


def test_compiled_loss_is_the_loss_fit_reports_on_one_batch():
    model = keras.Sequential([keras.Input((4, 2)), keras.layers.SimpleRNN(3), keras.layers.Dense(1)])
    assert not has_compiled_loss(model)
    model.compile("sgd", "mse")
    assert has_compiled_loss(model)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4, 2)).astype("float32"), rng.normal(size=(6, 1)).astype("float32")
    w = rng.uniform(0.5, 1.5, size=(6,)).astype("float32")
    pred = model.predict(x, verbose=0)
    loss = float(np.asarray(compiled_loss(model, x, y, keras.ops.convert_to_tensor(pred), w)))
    expected = np.sum(w * np.mean((pred - y) ** 2, axis=1)) / len(w)  # Keras's sum over batch size
    assert loss == pytest.approx(expected, rel=1e-5)
    assert loss == pytest.approx(model.evaluate(x, y, sample_weight=w, batch_size=6, verbose=0), rel=1e-5)
