"""Acceptance of the alerts inside `model.fit`: planted vanishing, exploding, NaN; a healthy LSTM."""

import logging

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run
from rnn_monitor.logdir.events import event_files, read_events

pytestmark = [pytest.mark.slow, pytest.mark.backends]


def _fit(model, x, y, log_dir, epochs, callbacks=(), **monitor_kwargs):
    alerts = []
    monitor = RNNMonitor(log_dir, on_alert=alerts.append, raise_errors=True, images=False,
                         histograms=False, **monitor_kwargs)
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0,
                        callbacks=list(callbacks) + [monitor])
    return history, alerts


def _scale_to_spectral_radius(layer, radius):
    w = layer.cell.recurrent_kernel.numpy()
    w *= radius / np.max(np.abs(np.linalg.eigvals(w)))
    layer.cell.recurrent_kernel.assign(w)


def test_planted_vanishing_is_alerted_at_the_second_epoch_and_stop_on_stops_there(log_dir):
    """Recurrent radius 0.3 at T=100 and targets that are noise: nothing reaches T/2 and the
    probe loss stays at the constant-prediction level."""
    T = 100
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, T, 4)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model = keras.Sequential([
        keras.Input((T, 4)),
        keras.layers.SimpleRNN(16, activation="tanh", return_sequences=False, name="rnn"),
        keras.layers.Dense(1),
    ])
    _scale_to_spectral_radius(model.layers[0], 0.3)
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    history, alerts = _fit(model, x, y, log_dir, epochs=5, probe_data=(x[:32], y[:32]), stop_on="vanishing")
    vanishing = [a for a in alerts if a["kind"] == "vanishing"]
    assert vanishing, f"no vanishing alert; got {alerts}"
    assert vanishing[0]["layer"] == "rnn" and vanishing[0]["epoch"] == 1
    assert vanishing[0]["metric"] == "flow_mid" and vanishing[0]["value"] < 1e-4
    assert "LSTM/GRU instead of SimpleRNN" in vanishing[0]["message"]
    assert history.epoch == [0, 1], "stop_on did not stop the fit at the alert's epoch"
    # raised once, not every epoch; and it is in the log, after a short-memory finding at epoch 0
    assert len(vanishing) == 1
    run = load_run(log_dir)
    assert [a["kind"] for a in run.alerts] == ["vanishing"]
    assert [(f["epoch"], f["kind"]) for f in run.findings] == [(0, "short_memory")]
    _, ratio = run.run_scalar("loss_ratio")
    assert ratio.min() >= 0.9


def _exploding_model(T):
    model = keras.Sequential([
        keras.Input((T, 4)),
        keras.layers.SimpleRNN(16, activation="linear", recurrent_initializer="orthogonal", name="rnn"),
        keras.layers.Dense(1),
    ])
    cell = model.layers[0].cell
    cell.recurrent_kernel.assign(cell.recurrent_kernel.numpy() * 1.5)
    return model


def _data(T, n=64, features=4):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, T, features)).astype("float32"),
            rng.normal(size=(n, 1)).astype("float32"))


def test_planted_exploding_alerts_and_stop_on_stops_training(log_dir, caplog):
    """Unclipped: training diverges in the first epoch; exploding or non-finite alert, then stop."""
    x, y = _data(30)
    model = _exploding_model(30)
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        history, alerts = _fit(model, x, y, log_dir, epochs=5, probe_data=(x[:32], y[:32]),
                               stop_on=("exploding", "nonfinite"))
    kinds = {a["kind"] for a in alerts}
    assert kinds & {"exploding", "nonfinite"}, f"no exploding/nonfinite alert; got {alerts}"
    assert alerts[0]["epoch"] == 0
    assert len(history.epoch) < 5, "stop_on did not stop training"
    assert any("stopping training" in r.getMessage() for r in caplog.records)


def test_planted_exploding_with_clipping_raises_exploding_on_the_flow(log_dir):
    """Clipped updates keep the weights finite; the flow through time still grows like 1.5^k."""
    x, y = _data(30)
    model = _exploding_model(30)
    model.compile(keras.optimizers.SGD(1e-3, clipnorm=1.0), "mse")
    history, alerts = _fit(model, x, y, log_dir, epochs=3, probe_data=(x[:32], y[:32]),
                           stop_on=("exploding",))
    exploding = [a for a in alerts if a["kind"] == "exploding"]
    assert exploding and exploding[0]["epoch"] == 0 and exploding[0]["layer"] == "rnn"
    assert exploding[0]["metric"] == "temporal_flow" and exploding[0]["value"] > 1e3
    assert "gradient clipping (clipnorm=1.0)" in exploding[0]["message"]
    assert not [a for a in alerts if a["kind"] == "nonfinite"]
    assert len(history.epoch) == 1, "stop_on=('exploding',) did not stop after epoch 0"


def test_healthy_lstm_on_a_short_lag_task_has_no_alert(log_dir):
    T = 20
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, T, 2)).astype("float32")
    y = x[:, -3, :1].copy()  # the value seen 3 steps before the end
    model = keras.Sequential([
        keras.Input((T, 2)), keras.layers.LSTM(16, name="lstm"), keras.layers.Dense(1)
    ])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    monitor = RNNMonitor(log_dir, probe_data=(x[:64], y[:64]), raise_errors=True, images=False, histograms=False)
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[monitor])
    assert load_run(log_dir).alerts == []
    assert history.history["loss"][-1] < history.history["loss"][0]
    # the rules saw the loss Keras reported at each epoch's end
    np.testing.assert_allclose(monitor._parts["alerts"].rules.history.losses, history.history["loss"], rtol=1e-6)


class _PlantNaN(keras.callbacks.Callback):
    """Puts NaN in the recurrent kernel of one LSTM gate at the end of `epoch`."""

    def __init__(self, epoch, gate_index):
        super().__init__()
        self.epoch, self.gate_index = epoch, gate_index

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            cell = self.model.get_layer("lstm").cell
            w = cell.recurrent_kernel.numpy()
            u = cell.units
            w[0, self.gate_index * u] = np.nan
            cell.recurrent_kernel.assign(w)


def test_nan_in_one_gate_names_layer_and_gate_in_the_same_epoch(log_dir):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10, 3)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model = keras.Sequential([
        keras.Input((10, 3)), keras.layers.LSTM(8, name="lstm"), keras.layers.Dense(1)
    ])
    model.compile("adam", "mse")
    _, alerts = _fit(model, x, y, log_dir, epochs=2, callbacks=[_PlantNaN(1, gate_index=1)])
    nonfinite = [a for a in alerts if a["kind"] == "nonfinite"]
    assert len(nonfinite) == 1, f"expected one non-finite alert for the layer; got {alerts}"
    first = nonfinite[0]
    assert first["epoch"] == 1 and first["layer"] == "lstm"
    assert {"where": "recurrent_kernel", "gate": "f", "count": 1} in first["places"]
    assert first["count"] == sum(p["count"] for p in first["places"])
    assert "lstm" in first["message"] and "recurrent_kernel/f 1" in first["message"]
    # the gradient rules are skipped for the NaN layer: nothing else is raised
    assert [a["kind"] for a in alerts] == ["nonfinite"]
    # the plugin tensor and the text summary of that epoch carry it too
    logged = [a for a in load_run(log_dir).alerts if a["kind"] == "nonfinite"]
    assert logged and logged[0]["epoch"] == 1 and logged[0]["places"] == first["places"]
    texts = {}
    for path in event_files(load_run(log_dir).run_dir):
        for event in read_events(path):
            for value in event.summary.value:
                if value.tag == "alerts" and value.metadata.plugin_data.plugin_name == "text":
                    texts[event.step] = value.tensor.string_val[0].decode()
    assert "nonfinite" in texts[1] and "lstm" in texts[1]
    assert "No active alerts" in texts[0]
