"""The interpretability part of the monitor (`rnn_monitor.interpret.interpret_monitor`): when
token importance and generation apply, the seed's encoding, the decision point, the padding
mask, how often importance runs, and what one logged epoch writes, against occlusion and
greedy generation done by hand with model.predict.

`q_detector` (conftest) fires on token 3."""

import logging

import keras
import numpy as np
import pytest

from rnn_monitor.config import GenerateConfig
from rnn_monitor.interpret import interpret_monitor as im
from rnn_monitor.logdir import metadata


class Writer:
    """Records what is written, by kind (and layer, state)."""

    def __init__(self):
        self.tensors, self.json = {}, {}

    def plugin_tensor(self, kind, data, step, layer=None, state=None):
        self.tensors[(kind, layer, state, step)] = np.asarray(data)

    def json_tensor(self, kind, payload, step):
        self.json[(kind, step)] = payload


def test_seed_text_split_longest_token_first():
    vocab = ["a", "b", "ab", "abc", " "]
    assert im.encode_seed("abcab a", vocab) == [3, 2, 4, 0]
    assert im.encode_seed([4, np.int64(1)], None) == [4, 1]
    with pytest.raises(ValueError, match="character 'z' is not in the vocabulary"):
        im.encode_seed("abz", vocab)
    with pytest.raises(ValueError, match="needs RNNMonitor\\(vocabulary=...\\)"):
        im.encode_seed("ab", None)


def _head(outputs, activation=None, sequences=False):
    return keras.Sequential([keras.Input((4, 2)), keras.layers.GRU(3, return_sequences=sequences),
                             keras.layers.Dense(outputs, activation=activation)])


@pytest.mark.backends
def test_output_kind_and_decision_point():
    assert im.output_kind(_head(1, "sigmoid")) == (True, 0.5)
    assert im.output_kind(_head(4, "softmax")) == (True, 0.25)
    assert im.output_kind(_head(3)) == (True, 0.0)
    assert im.output_kind(_head(3, sequences=True)) == (False, None)  # per timestep
    assert im.output_kind(_head(3), vocabulary=list("xyz")) == (False, None)  # a next-token model
    assert im.output_kind(_head(2, "softmax"), vocabulary=list("xy")) == (True, 0.5)
    a, b = keras.Input((2,)), keras.Input((2,))
    assert im.output_kind(keras.Model([a, b], [keras.layers.Dense(1)(a), keras.layers.Dense(1)(b)])) == (False, None)


@pytest.mark.backends
def test_padding_is_id_zero_only_behind_a_mask_zero_embedding_even_nested():
    x = np.array([[3, 1, 0], [0, 2, 2]], "int32")
    inner = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(5, 2, mask_zero=True)])
    nested = keras.Sequential([keras.Input((3,), dtype="int32"), inner, keras.layers.GRU(2)])
    np.testing.assert_array_equal(im.padding_mask(nested, x), x != 0)
    np.testing.assert_array_equal(im.padding_mask(nested, x.astype("float32")), np.ones((2, 3), bool))
    plain = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(5, 2), keras.layers.GRU(2)])
    np.testing.assert_array_equal(im.padding_mask(plain, x), np.ones((2, 3), bool))


def test_importance_runs_every_kth_epoch_and_calls_are_as_large_as_the_probe_batch():
    # k = ceil(2 * samples * steps / 1024)
    assert [im.importance_every(s, t) for s, t in ((4, 128), (4, 129), (3, 200), (4, 400), (1, 1))] == [1, 2, 2, 4, 1]
    assert im.importance_every(2, 10, budget=7) == 6  # 40 / 7 = 5.7
    assert [im.copies_for(n) for n in (1, 32, 100, 1024, 5000)] == [32, 32, 100, 1024, 1024]


@pytest.mark.backends
def test_an_epoch_writes_occlusion_and_prediction_as_read_masked_at_padding(q_detector):
    x = np.array([[1, 3, 2, 0, 0, 0], [2, 2, 4, 1, 3, 0], [4, 4, 4, 4, 4, 4]], "int32")
    writer = Writer()
    part = im.InterpretMonitor(q_detector, writer, (x, np.zeros(3)), None, text_samples=2, generate=None)
    assert part.active and part.importance and part.max_copies == 32 and part.importance_every == 1
    part.log_epoch(5)
    base = q_detector.predict(x[:2], verbose=0)[:, 0]
    importance = writer.tensors[(metadata.TOKEN_IMPORTANCE, None, None, 5)]
    reading = writer.tensors[(metadata.PREDICTION_AS_READ, None, None, 5)]
    assert importance.shape == reading.shape == (2, 6)
    for b in range(2):
        for t in range(6):
            if x[b, t] == 0:
                assert np.isnan(importance[b, t]) and np.isnan(reading[b, t])
                continue
            copy = x[b : b + 1].copy()
            copy[0, t] = 0
            assert importance[b, t] == pytest.approx(base[b] - q_detector.predict(copy, verbose=0)[0, 0], abs=1e-6)
            prefix = np.zeros((1, 6), "int32")
            prefix[0, 5 - t :] = x[b, : t + 1]
            assert reading[b, t] == pytest.approx(q_detector.predict(prefix, verbose=0)[0, 0], abs=1e-6)
    info = writer.json[(metadata.IMPORTANCE_INFO, 5)]
    assert info["target"] == [0, 0] and info["decision"] == 0.5 and (info["fill"], info["window"]) == (0, 1)
    np.testing.assert_allclose(info["score"], base, atol=1e-6)


@pytest.mark.backends
def test_auto_importance_of_long_inputs_skips_logged_epochs(q_detector, caplog):
    x = np.ones((200, 6), "int32")  # 2 x 100 x 6 = 1200 inputs a run: every 2nd logged epoch
    writer = Writer()
    with caplog.at_level(logging.INFO, logger="rnn_monitor"):
        part = im.InterpretMonitor(q_detector, writer, x, None, text_samples=100, generate=None, max_copies=512)
    assert part.importance_every == 2 and part.max_copies == 512 and len(part.x) == 100
    assert any("every 2 logged epochs" in r.getMessage() for r in caplog.records)
    for epoch in (3, 4, 5):
        part.log_epoch(epoch)
    assert sorted(step for (_, step) in writer.json) == [3, 5]
    assert part.describe() == {"importance": True, "importance_every": 2, "decision": 0.5, "generate": None}


@pytest.mark.backends
def test_when_importance_is_off_or_refused(q_detector, caplog):
    x = np.ones((4, 4, 2), "float32")
    per_step = _head(3, sequences=True)
    assert not im.InterpretMonitor(per_step, Writer(), x, None, 2, None).active  # "auto": not a classifier
    with pytest.raises(ValueError, match="importance=True needs a classifier"):
        im.InterpretMonitor(per_step, Writer(), x, None, 2, None, importance=True)
    assert not im.InterpretMonitor(q_detector, Writer(), None, None, 2, None).active  # no probe data
    assert not im.InterpretMonitor(q_detector, Writer(), np.ones((2, 6), "int32"), None, 2, None, importance=False).active
    a, b = keras.Input((4, 2)), keras.Input((4, 2))
    two = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([keras.layers.GRU(2)(a),
                                                                                keras.layers.GRU(2)(b)])))
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        assert not im.InterpretMonitor(two, Writer(), [x, x], None, 2, None).importance
    assert any("one sequence input" in r.getMessage() for r in caplog.records)


@pytest.mark.backends
def test_a_stateful_model_gets_neither_importance_nor_generation(caplog):
    model = keras.Sequential([keras.Input((6,), dtype="int32", batch_size=2), keras.layers.Embedding(5, 2),
                              keras.layers.GRU(2, stateful=True), keras.layers.Dense(1, activation="sigmoid")])
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        part = im.InterpretMonitor(model, Writer(), np.ones((2, 6), "int32"), None, 2, GenerateConfig(seed=[1]))
    assert not part.active and part.describe()["generate"] is None
    assert any("stateful" in r.getMessage() for r in caplog.records)


@pytest.mark.backends
def test_an_epoch_writes_the_greedy_generation_and_every_state():
    vocab = ["a", "b", "c"]
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(4, 3),
                              keras.layers.LSTM(2, return_sequences=True, name="lstm"), keras.layers.Dense(4)])
    writer = Writer()
    part = im.InterpretMonitor(model, writer, None, vocab, 2, GenerateConfig(seed="ba", steps=4))
    assert part.seed_ids == [1, 0] and not part.importance
    assert part.describe()["generate"] == {"seed": "ba", "steps": 4, "temperature": 0.0, "random_seed": 0}
    part.log_epoch(2)
    tokens = [1, 0]
    for _ in range(4):
        tokens.append(int(np.argmax(model.predict(np.array([tokens]), verbose=0)[0, -1])))
    names = [vocab[t] if t < 3 else f"<{t}>" for t in tokens]  # id 3 is past the vocabulary
    written = writer.tensors[(metadata.GENERATED_TOKENS, None, None, 2)]
    assert [t.decode() for t in written] == names
    h = keras.Model(model.inputs, model.get_layer("lstm").output).predict(np.array([tokens]), verbose=0)[0]
    states = {state for (kind, layer, state, _) in writer.tensors if kind == metadata.GENERATED_ACTIVATIONS}
    assert {"h", "c"} <= states
    logged = writer.tensors[(metadata.GENERATED_ACTIVATIONS, "lstm", "h", 2)]
    assert logged.dtype == np.float16
    np.testing.assert_allclose(logged.astype(np.float32), h, atol=2e-3)
