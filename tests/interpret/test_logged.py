"""What RNNMonitor logs each epoch about what units do, checked against independent computations
on the trained model: average input and periodicity of the probe's h, occlusion and
prediction-as-read of a classifier, generated text with its activations."""

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run
from rnn_monitor.cli.main import main
from rnn_monitor.stats.average_input import average_input
from rnn_monitor.stats.periodicity import periodicity

pytestmark = pytest.mark.backends

VOCAB = list("abcdef \n")


def _char_model():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(len(VOCAB), 4),
        keras.layers.LSTM(6, return_sequences=True, name="lstm"),
        keras.layers.Dense(len(VOCAB)),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_char_model_units_and_generated_text(log_dir, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, len(VOCAB), size=(48, 24)).astype("int32")
    y = np.roll(x, -1, axis=1)
    model = _char_model()
    monitor = RNNMonitor(log_dir, probe_data=(x[:12], y[:12]), vocabulary=VOCAB, unit_samples=12,
                         average_input_window=4, generate={"seed": "ab ", "steps": 15}, raise_errors=True)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    run = load_run(log_dir)
    h = keras.Model(model.inputs, model.get_layer("lstm").output).predict(x[:12], verbose=0)
    np.testing.assert_allclose(run.average_input("lstm"), average_input(x[:12], h, 4, len(VOCAB)), atol=2e-3)  # D=8 <= 12: all logged
    spectrum, logged = periodicity(h), run.periodicity("lstm")
    np.testing.assert_allclose(logged["freqs"], spectrum["freqs"], rtol=1e-6)
    np.testing.assert_allclose(logged["power"], spectrum["power"], rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(logged["strength"], spectrum["strength"], rtol=1e-4)
    assert run.average_input("lstm", epoch=0).shape == (6, 4, len(VOCAB))

    gen = run.generated()
    tokens = [VOCAB.index(c) for c in "ab "]
    for _ in range(15):
        tokens.append(int(np.argmax(model.predict(np.array([tokens]), verbose=0)[0, -1])))
    assert gen["text"] == "".join(VOCAB[t] for t in tokens) and gen["epoch"] == 1
    h_gen = keras.Model(model.inputs, model.get_layer("lstm").output).predict(np.array([tokens]), verbose=0)[0]
    np.testing.assert_allclose(gen["activations"]["lstm"]["h"], h_gen, atol=2e-3)
    assert main(["text", log_dir, "--layer", "lstm", "--unit", "2", "--source", "generated", "--json"]) == 0
    assert '"source": "generated"' in capsys.readouterr().out


def test_classifier_token_importance_is_occlusion_of_the_trained_model(log_dir):
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.integers(1, 6, size=(64, 10)).astype("int32")
    x[::3, 7:] = 0  # padding
    y = (x == 3).any(axis=1, keepdims=True).astype("float32")
    model = keras.Sequential([
        keras.Input((10,), dtype="int32"), keras.layers.Embedding(6, 4, mask_zero=True),
        keras.layers.GRU(5, name="gru"), keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[RNNMonitor(log_dir, probe_data=(x[:6], y[:6]), text_samples=3, raise_errors=True)])
    found = load_run(log_dir).token_importance()
    base = model.predict(x[:3], verbose=0)[:, 0]
    for b in range(3):
        for t in range(10):
            if x[b, t] == 0:
                assert np.isnan(found["importance"][b, t])
                continue
            copy = x[b : b + 1].copy()
            copy[0, t] = 0
            expected = base[b] - model.predict(copy, verbose=0)[0, 0]
            assert found["importance"][b, t] == pytest.approx(expected, abs=1e-5)
        n = int((x[b] != 0).sum())
        assert found["prediction_as_read"][b, n - 1] == pytest.approx(base[b], abs=1e-5)
    assert found["decision"] == 0.5 and found["target"] == [0, 0, 0]


def test_importance_model_calls_are_no_larger_than_the_probe_batch(log_dir, monkeypatch):
    """Default max_copies: occlusion *and* prediction-as-read call the model on at most as many
    rows as the probe batch (at least 32): at T = 400, calls of 1024 copies took +1.4 GB."""
    from rnn_monitor.interpret import scoring

    real_forward, rows = scoring.forward, []

    def counting_forward(model):
        call = real_forward(model)

        def counted(inputs):
            rows.append(int(np.shape(inputs)[0]))
            return call(inputs)
        return counted

    monkeypatch.setattr(scoring, "forward", counting_forward)
    rng = np.random.default_rng(6)
    x = rng.integers(1, 6, size=(16, 12)).astype("int32")
    y = (x == 3).any(axis=1, keepdims=True).astype("float32")
    model = keras.Sequential([
        keras.Input((12,), dtype="int32"), keras.layers.Embedding(6, 4),
        keras.layers.LSTM(3), keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[RNNMonitor(log_dir, probe_data=(x[:8], y[:8]), text_samples=4, raise_errors=True)])
    # 4 sequences x 12 steps = 48 copies per method, in calls of at most max(8, 32) = 32 rows
    assert rows and max(rows) == 32 and rows.count(32) >= 2
    assert load_run(log_dir).token_importance()["importance"].shape == (4, 12)
    with pytest.raises(ValueError, match="max_copies"):
        RNNMonitor(log_dir, max_copies=0)


def test_bad_generate_settings_fail_before_training(log_dir):
    with pytest.raises(ValueError, match="unknown key"):
        RNNMonitor(log_dir, generate={"seed": "a", "stepz": 3})
    model = _char_model()
    x = np.zeros((4, 5), "int32")
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[RNNMonitor(log_dir, probe_data=(x, x), vocabulary=VOCAB,
                                                                    generate={"seed": "az"})])


def test_large_vocabulary_logs_each_positions_top_tokens_exactly(log_dir):
    vocab = [chr(ord("a") + i) for i in range(20)]  # more tokens than metadata.AVERAGE_INPUT_TOP
    keras.utils.set_random_seed(6)
    x = np.random.default_rng(6).integers(0, 20, size=(24, 16)).astype("int32")
    y = np.roll(x, -1, axis=1)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(20, 4),
                              keras.layers.GRU(5, return_sequences=True, name="gru"), keras.layers.Dense(20)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(log_dir, probe_data=(x[:8], y[:8]), vocabulary=vocab,
                                                               unit_samples=8, average_input_window=3)])
    logged = load_run(log_dir).average_input("gru")
    h = keras.Model(model.inputs, model.get_layer("gru").output).predict(x[:8], verbose=0)
    expected = average_input(x[:8], h, 3, 20)
    assert logged.shape == expected.shape == (5, 3, 20)
    top = np.argsort(-expected, axis=2, kind="stable")[:, :, :12]
    np.testing.assert_allclose(np.take_along_axis(logged, top, axis=2), np.take_along_axis(expected, top, axis=2), atol=2e-3)
    assert ((logged > 0).sum(axis=2) <= 12).all()


def test_auto_importance_of_long_sequences_runs_every_kth_logged_epoch(log_dir, tmp_path):
    """importance="auto": 2 x 3 sequences x 200 steps = 1200 inputs a run, over the 1024 budget,
    so it runs at logged epochs 0 and 2 of 4 (k = 2); importance=True at every one. Each logged
    value is the occlusion of the model as it was at that epoch."""
    from rnn_monitor.interpret.interpret_monitor import importance_every

    assert importance_every(4, 100) == 1 and importance_every(3, 200) == 2 and importance_every(4, 400) == 4
    rng = np.random.default_rng(7)
    x = rng.integers(1, 6, size=(8, 200)).astype("int32")
    y = (x[:, -5:] == 3).any(axis=1, keepdims=True).astype("float32")
    snapshots = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = self.model.predict(x[:1], verbose=0)[0, 0]

    for importance, where, expected in (("auto", log_dir, [0, 2]), (True, str(tmp_path / "all"), [0, 1, 2, 3])):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input((200,), dtype="int32"), keras.layers.Embedding(6, 3),
            keras.layers.GRU(3), keras.layers.Dense(1, activation="sigmoid"),
        ])
        model.compile("adam", "binary_crossentropy")
        monitor = RNNMonitor(where, probe_data=(x, y), text_samples=3, importance=importance, raise_errors=True)
        model.fit(x, y, epochs=4, verbose=0, callbacks=[Snapshot(), monitor])  # Snapshot first: same weights
        run = load_run(where)
        assert run.manifest["interpret"]["importance_every"] == (2 if importance == "auto" else 1)
        logged = [e for e in range(4) if _has_importance(run, e)]
        assert logged == expected
        for epoch in expected:  # the prediction on the full sequence at that epoch's weights
            score = run.token_importance(epoch)["score"][0]
            assert score == pytest.approx(float(snapshots[epoch]), abs=1e-5)


def _has_importance(run, epoch):
    try:
        run.token_importance(epoch)
        return True
    except KeyError:
        return False
