"""The probe part of the monitor (`rnn_monitor.probe.probe_monitor.ProbeMonitor`), driven
directly with the real writer: the probe data checked and cut before training, its settings for
the manifest, and one logged epoch's record and log against the model's own loss, the labels'
variance and a plain tape's dL/dh_t of the last step."""

import logging
import os

import keras
import numpy as np
import pytest

from rnn_monitor import load_run
from rnn_monitor.config import Thresholds
from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.writer import SummaryWriter
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.probe.probe_monitor import ProbeMonitor
from rnn_monitor.record import EpochRecord

pytestmark = pytest.mark.backends
VOCAB = list("abcdefgh")


def _model(steps=6):
    keras.utils.set_random_seed(12)
    model = keras.Sequential([keras.Input((steps,), dtype="int32"), keras.layers.Embedding(8, 3),
                              keras.layers.LSTM(4, name="lstm"), keras.layers.Dense(2, name="head")])
    model.compile("sgd", "mse")
    return model


def _data(rows=5, steps=6):
    rng = np.random.default_rng(12)
    return rng.integers(0, 8, size=(rows, steps)).astype("int32"), rng.normal(size=(rows, 2)).astype("float32")


def _monitor(model, data, writer=None, **options):
    return ProbeMonitor(model, find_rnn_layers(model), data, writer, Thresholds(), **options)


def test_the_probe_data_is_checked_before_training(caplog):
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="probe_data y has 4 rows but x has 5"):
        _monitor(model, (x, y[:4])).start()
    with pytest.raises(ValueError, match="holds no sequence"):
        _monitor(model, (x[:0], y[:0])).start()
    with pytest.raises(ValueError, match="max_timesteps=3 needs a model that accepts shorter sequences"):
        _monitor(model, (x, y), max_timesteps=3).start()
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        unlabelled = _monitor(model, x)
        unlabelled.start()
        unlabelled.start()
    assert not unlabelled.gradients
    assert sum("has no labels" in r.getMessage() for r in caplog.records) == 1


def test_max_timesteps_keeps_the_last_steps_and_the_manifest_says_so():
    x, y = _data(steps=9)
    model = _model(steps=None)
    monitor = _monitor(model, (x, y), vocabulary=VOCAB, text_samples=8, unit_samples=3, max_timesteps=4)
    monitor.start()
    np.testing.assert_array_equal(monitor.x, x[:, 5:])
    described = monitor.describe()
    assert (described["batch_size"], described["timesteps"], described["text_samples"], described["unit_samples"]) == (5, 4, 5, 3)
    assert described["gradients"] and described["states"] == {"lstm": ["h", "c", "i", "f", "g", "o"]}
    assert described["average_input"]["vocab_size"] == 8 and described["average_input"]["labels"] == VOCAB


def test_one_logged_epoch_against_the_models_own_numbers(tmp_path, grad):
    x, y = _data()
    model = _model()
    writer = SummaryWriter(os.path.join(str(tmp_path), metadata.RUN_SUBDIR))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "lstm"}]}, 0)
    monitor = _monitor(model, (x, y), writer=writer, vocabulary=VOCAB, text_samples=2, path="loop")
    monitor.start()
    records = [EpochRecord(epoch) for epoch in range(2)]
    for record in records:
        monitor.log_epoch(record.epoch, record)
        writer.scalar(metadata.run_scalar_tag("probe_loss"), record.probe_loss, record.epoch)  # as the callback
    writer.close()
    y_pred = np.asarray(model(x))
    assert records[0].probe_loss == pytest.approx(float(np.mean((y_pred - y) ** 2)), rel=1e-5)
    assert records[1].constant_loss == records[0].constant_loss == pytest.approx(float(np.mean(y.var(axis=0))), rel=1e-5)

    run = load_run(str(tmp_path))
    assert run.epochs == [0, 1]
    G = run.timestep_gradients("lstm")
    assert G.shape == (2, 6, 4)  # both epochs, every step
    features, lstm, head = model.layers[0](x), model.get_layer("lstm"), model.get_layer("head")
    (d_last,) = grad(lambda h: keras.ops.mean((head(h) - y) ** 2), np.asarray(lstm(features)))
    np.testing.assert_allclose(G[0, -1], np.abs(d_last).mean(axis=0), rtol=1e-4)  # dL/dh at the last step
    assert run.tokens.tolist() == [[VOCAB[i] for i in row] for row in x[:2]]
    np.testing.assert_allclose(run.activations("lstm", "h", epoch=0)[:, -1], np.asarray(lstm(features))[:2], atol=2e-3)
    assert set(monitor.last_results) == {"lstm"} and monitor.last_seconds > 0
