"""generate: greedy tokens equal re-reading the text, activations equal a stateless re-run."""

import keras
import numpy as np
import pytest

from rnn_monitor.interpret import generate

pytestmark = pytest.mark.backends

V = 7


def _lm(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(V, 4),
        keras.layers.LSTM(5, return_sequences=True, name="lstm"),
        keras.layers.GRU(3, return_sequences=True, name="gru"),
        keras.layers.Dense(V),
    ])


def test_greedy_tokens_equal_rereading_and_states_equal_a_stateless_run():
    model = _lm()
    vocab = list("abcdefg")
    gen = generate(model, [1, 2, 3], steps=12, vocabulary=vocab)
    tokens = [1, 2, 3]
    for _ in range(12):
        tokens.append(int(np.argmax(model.predict(np.array([tokens]), verbose=0)[0, -1])))
    assert gen.tokens == tokens and gen.text == "".join(vocab[t] for t in tokens)
    sub = keras.Model(model.inputs, [model.get_layer("lstm").output, model.get_layer("gru").output])
    h_lstm, h_gru = sub.predict(np.array([tokens]), verbose=0)
    np.testing.assert_allclose(gen.activations["lstm"]["h"], h_lstm[0], atol=1e-5)
    np.testing.assert_allclose(gen.activations["gru"]["h"], h_gru[0], atol=1e-5)
    acts = gen.activations["lstm"]
    assert set(acts) == {"h", "c", "i", "f", "g", "o"} and set(gen.activations["gru"]) == {"h", "z", "r", "hh"}
    # The recorded gates are the cell's: c_t = f c_{t-1} + i g and h_t = o tanh(c_t).
    c_prev = np.vstack([np.zeros((1, 5)), acts["c"][:-1]])
    np.testing.assert_allclose(acts["c"], acts["f"] * c_prev + acts["i"] * acts["g"], atol=1e-5)
    np.testing.assert_allclose(acts["h"], acts["o"] * np.tanh(acts["c"]), atol=1e-5)


def test_sampling_is_repeatable_and_follows_temperature():
    model = _lm(1)
    a = generate(model, [2], steps=30, temperature=1.0, rng=np.random.default_rng(5))
    b = generate(model, [2], steps=30, temperature=1.0, rng=np.random.default_rng(5))
    assert a.tokens == b.tokens
    greedy = generate(model, [2], steps=30)
    assert a.tokens != greedy.tokens  # sampling at temperature 1 is not greedy on a random model


def test_windowed_model_reads_the_last_window():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input((4,), dtype="int32"), keras.layers.Embedding(V, 3, mask_zero=True),
        keras.layers.LSTM(4, name="lstm"), keras.layers.Dense(V, activation="softmax"),
    ])
    gen = generate(model, [1, 2], steps=6)
    tokens = [1, 2]
    for _ in range(6):
        ctx = ([0] * 4 + tokens)[-4:]
        tokens.append(int(np.argmax(model.predict(np.array([ctx]), verbose=0)[0])))
    assert gen.tokens == tokens
    assert gen.activations["lstm"]["h"].shape == (8, 4)


def test_bidirectional_is_refused_clearly():
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, 3),
        keras.layers.Bidirectional(keras.layers.LSTM(2, return_sequences=True)), keras.layers.Dense(V),
    ])
    with pytest.raises(ValueError, match="Bidirectional"):
        generate(model, [1], steps=2)


def test_padding_token_in_the_seed_is_skipped_as_keras_does():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, 4, mask_zero=True),
        keras.layers.GRU(5, return_sequences=True, name="gru"), keras.layers.Dense(V),
    ])
    seed = [2, 0, 0, 3, 1]
    gen = generate(model, seed, steps=8)
    tokens = list(seed)
    for _ in range(8):
        tokens.append(int(np.argmax(model.predict(np.array([tokens]), verbose=0)[0, -1])))
    assert gen.tokens == tokens
    h = gen.activations["gru"]["h"]
    np.testing.assert_allclose(h[1], h[0]) and np.testing.assert_allclose(h[2], h[0])  # carried over
    assert np.isnan(gen.activations["gru"]["z"][1]).all()


def test_a_layer_that_mixes_timesteps_is_refused():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, 4),
        keras.layers.Conv1D(4, 3, padding="same"),  # sees the next token: not steppable
        keras.layers.LSTM(5, return_sequences=True), keras.layers.Dense(V),
    ])
    with pytest.raises(ValueError, match="mixes timesteps"):
        generate(model, [1, 2, 3], steps=4)
