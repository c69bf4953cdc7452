"""Probe on stacked / bidirectional / go_backwards layers, probe data handling, restoring layers."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnn_monitor import RNNMonitor, load_run
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.config import Thresholds
from rnn_monitor.probe.probe_monitor import ProbeMonitor
from rnn_monitor.logdir.writer import SummaryWriter

pytestmark = pytest.mark.backends

B, T, V = 6, 8, 11
VOCAB = [f"w{i}" for i in range(V)]


def _model():
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(V, 4),
            keras.layers.LSTM(5, return_sequences=True, name="lstm_1"),
            keras.layers.LSTM(5, return_sequences=True, name="lstm_2"),
            keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True), name="bi"),
            keras.layers.SimpleRNN(2, go_backwards=True, name="back"),
            keras.layers.Dense(V),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.integers(0, V, size=(16, T)).astype("int32"), rng.integers(0, V, size=(16,))


def test_stacked_bidirectional_go_backwards_shapes_and_restore(log_dir):
    model = _model()
    x, y = _data()
    before = model.predict(x, verbose=0)
    monitor = RNNMonitor(
        log_dir, probe_data=(x[:B], y[:B]), vocabulary=VOCAB, text_samples=2, units=[0, 2],
        raise_errors=True, alerts=False,
    )
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[monitor])
    probe = monitor._parts["probe"]
    assert probe._prober.traces_count == 1  # traced once, reused every epoch
    for info in find_rnn_layers(model):
        assert "inner_loop" not in vars(info.layer)  # the real layers are back
    run = load_run(log_dir)
    assert run.layers == ["lstm_1", "lstm_2", "bi/forward", "bi/backward", "back"]
    units = {"lstm_1": 5, "lstm_2": 5, "bi/forward": 3, "bi/backward": 3, "back": 2}
    for layer, n in units.items():
        assert run.timestep_gradients(layer).shape == (3, T, n)
        assert run.output_gradients(layer).shape == (3, T, n)
        assert run.timestep_grad_norm(layer).shape == (3, T)
        assert run.temporal_flow(layer).shape == (3, T)
        assert np.isfinite(run.timestep_gradients(layer)).all()
        for name in ("dead_ratio", "exploding_ratio", "saturated_ratio", "grad_norm", "grad_horizon"):
            assert name in run.scalar_names(layer)
    assert run.activation_states("lstm_1") == sorted(["h", "c", "i", "f", "g", "o"])
    assert run.activation_states("bi/backward") == sorted(["h", "z", "r", "hh"])
    assert run.activation_states("back") == ["h"]
    assert run.activations("lstm_2", "f").shape == (2, T, 2)  # text_samples x T x chosen units
    assert run.activations("back", "h").shape == (2, T, 1)  # unit 2 does not exist there
    assert "gate/f/saturation_right" in run.scalar_names("lstm_1")
    assert "gate/z/saturation_left" in run.scalar_names("bi/forward")
    assert run.tokens.shape == (2, T) and run.tokens[1, 3] == VOCAB[x[1, 3]]
    manifest = run.manifest["probe"]
    assert manifest["gradients"] and manifest["batch_size"] == B and manifest["timesteps"] == T
    # the go_backwards layer's only direct output is its last step = input position 0
    O = run.output_gradients("back")[-1]
    assert (O[1:] == 0).all() and (O[0] > 0).all()
    # activations are the probe's unrolled values: h of the last layer matches keras's own output
    h = run.activations("lstm_1", "h")[:, :, :]
    sub = keras.Model(model.inputs, model.get_layer("lstm_1").output)
    np.testing.assert_allclose(h, sub.predict(x[:2], verbose=0)[:, :, [0, 2]], atol=2e-3)  # float16
    assert model.predict(x, verbose=0).shape == before.shape


def test_layers_restored_when_the_probe_raises(log_dir):
    def broken_loss(y_true, y_pred):
        raise RuntimeError("broken loss")

    model = keras.Sequential([keras.Input((T, 2)), keras.layers.LSTM(3, name="lstm"), keras.layers.Dense(1)])
    model.compile("sgd", broken_loss)
    x = np.ones((2, T, 2), "float32")
    probe = ProbeMonitor(model, find_rnn_layers(model), (x, np.ones((2, 1), "float32")), SummaryWriter(log_dir), Thresholds())
    probe.start()
    from rnn_monitor.probe.data import ProbeDataError
    from rnn_monitor.record import EpochRecord

    # Keras's own loss fails on the probe data too, so it is said as the data's (ProbeDataError)
    with pytest.raises(ProbeDataError, match="broken loss"):
        probe.log_epoch(0, EpochRecord(0))
    layer = model.get_layer("lstm")
    assert "inner_loop" not in vars(layer)
    assert layer.inner_loop.__func__ is type(layer).inner_loop


def test_probe_data_forms_and_errors(log_dir, caplog):
    model = keras.Sequential([keras.Input((T, 2)), keras.layers.GRU(3, name="gru"), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, T, 2)).astype("float32")
    y = rng.normal(size=(4, 1)).astype("float32")
    infos = find_rnn_layers(model)

    def make(data, **kw):
        p = ProbeMonitor(model, infos, data, SummaryWriter(log_dir), Thresholds(), **kw)
        p.start()
        return p

    with pytest.raises(ValueError, match=r"shape \(4, 8, 3\).*expects inputs of shape \(None, 8, 2\)"):
        make((np.zeros((4, T, 3), "float32"), y))
    with pytest.raises(ValueError, match="y has 3 rows but x has 4"):
        make((x, y[:3]))
    with pytest.raises(ValueError, match="shorter sequences"):
        make((x, y), max_timesteps=4)
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(4, "float32"))).batch(3)
    p = make(ds)
    assert p.gradients and p.describe()["batch_size"] == 3
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        p = make(x)
    assert not p.gradients and "no labels" in caplog.text
    from rnn_monitor.record import EpochRecord

    record = EpochRecord(0)
    p.log_epoch(0, record)  # activations and unit health still run
    assert "dead_ratio" in record.scalars["gru"] and "grad_norm" not in record.scalars["gru"]

    uncompiled = keras.Sequential([keras.Input((None, 2)), keras.layers.GRU(3), keras.layers.Dense(1)])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        p = ProbeMonitor(uncompiled, find_rnn_layers(uncompiled), (x, y), SummaryWriter(log_dir), Thresholds(), max_timesteps=5)
        p.start()
    assert not p.gradients and "no compiled loss" in caplog.text
    assert p.describe()["timesteps"] == 5 and p.x.shape == (4, 5, 2)


def test_byte_cap_keeps_gradients_and_drops_activations_in_order(log_dir, caplog):
    from rnn_monitor.record import EpochRecord

    model = keras.Sequential([keras.Input((T, 2)), keras.layers.LSTM(16, name="lstm"), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(4, T, 2)).astype("float32")
    writer = SummaryWriter(log_dir)
    # room for the gradients and about two activation tensors (4 x 8 x 16 float16 = 1 kB each)
    probe = ProbeMonitor(model, find_rnn_layers(model), (x, np.zeros((4, 1), "float32")), writer,
                         Thresholds(), images=False, max_bytes_per_epoch=3500)
    probe.start()
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        probe.log_epoch(0, EpochRecord(0))
    writer.flush()
    assert "byte cap" in caplog.text and "lstm g" in caplog.text
    from rnn_monitor.logdir.events import event_files, read_events

    tags = {v.tag for f in event_files(log_dir) for e in read_events(f) if e.HasField("summary") for v in e.summary.value}
    for kind in ("timestep_gradients", "output_gradients", "timestep_grad_norm", "temporal_flow"):
        assert f"lstm/_rnn_monitor/{kind}" in tags
    assert "lstm/_rnn_monitor/activations/h" in tags
    assert "lstm/_rnn_monitor/activations/o" not in tags
    assert writer.bytes_this_step <= 3500 + 2600  # the gradient tensors are always written
