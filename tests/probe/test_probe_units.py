"""Unit health reported by the probe on planted cases: dead, saturated, exploding units."""

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run

pytestmark = pytest.mark.backends

B, T, D, N = 8, 10, 3, 8


def _fit_simple(log_dir, activation, bias, recurrent_scale=0.1):
    rnn = keras.layers.SimpleRNN(N, activation=activation, return_sequences=True, name="rnn")
    model = keras.Sequential([keras.Input((T, D)), rnn, keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e-6), "mse")
    k, r, _ = rnn.get_weights()
    rnn.set_weights([k, r * recurrent_scale, np.asarray(bias, "float32")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype("float32")
    y = rng.normal(size=(B, T, 1)).astype("float32")
    monitor = RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True, alerts=False)
    model.fit(x, y, epochs=1, batch_size=B, verbose=0, callbacks=[monitor])
    return load_run(log_dir), monitor


@pytest.mark.parametrize("k", [0, 3])
def test_relu_units_with_huge_negative_bias_are_dead(k, log_dir):
    bias = [-1e3] * k + [1.0] * (N - k)
    run, _ = _fit_simple(log_dir, "relu", bias)
    _, dead = run.scalar("rnn", "dead_ratio")
    assert dead[-1] == k / N
    _, exploding = run.scalar("rnn", "exploding_ratio")
    assert exploding[-1] == 0.0


def test_planted_tanh_saturation_is_reported(log_dir):
    bias = [50.0, -50.0, 30.0] + [0.0] * (N - 3)
    run, monitor = _fit_simple(log_dir, "tanh", bias)
    _, sat = run.scalar("rnn", "saturated_ratio")
    assert sat[-1] == 3 / N
    assert monitor._parts["probe"].last_results["rnn"].saturated[:3].all()
    _, dead = run.scalar("rnn", "dead_ratio")
    assert dead[-1] == 3 / N  # a unit pinned at +-1 also has no variance


def test_exploding_linear_units_and_nonfinite_states(log_dir):
    bias = [500.0, 0.0] + [0.0] * (N - 2)
    run, monitor = _fit_simple(log_dir, "linear", bias)
    _, exploding = run.scalar("rnn", "exploding_ratio")
    assert exploding[-1] == 1 / N


def test_nan_state_is_counted_not_crashing(log_dir):
    from rnn_monitor.model.anatomy import find_rnn_layers
    from rnn_monitor.config import Thresholds
    from rnn_monitor.probe.probe_monitor import ProbeMonitor
    from rnn_monitor.record import EpochRecord
    from rnn_monitor.logdir.writer import SummaryWriter

    rnn = keras.layers.LSTM(4, name="lstm")
    model = keras.Sequential([keras.Input((T, D)), rnn, keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    weights = rnn.get_weights()
    weights[2][0] = np.nan  # input gate bias of unit 0
    rnn.set_weights(weights)
    x = np.ones((2, T, D), "float32")
    probe = ProbeMonitor(model, find_rnn_layers(model), (x, np.zeros((2, 1), "float32")),
                         SummaryWriter(log_dir), Thresholds())
    probe.start()
    record = EpochRecord(0)
    probe.log_epoch(0, record)
    wheres = {(n.where, n.gate) for n in record.nonfinite}
    assert ("state h", None) in wheres and ("gate", "i") in wheres and ("gradient", None) in wheres
    # the NaN reaches every unit through the recurrent kernel at the next step
    assert record.scalars["lstm"]["exploding_ratio"] == 1.0


def test_token_ids_outside_the_vocabulary_show_as_ids_and_are_said_once():
    from rnn_monitor.probe.writes import encode_tokens

    said = []
    x = np.array([[0, 1, 5], [2, 7, 1]], dtype=np.int32)
    tokens = encode_tokens(x, ["a", "b", "c"], 2, lambda key, message, *args: said.append(message % args))
    assert tokens.tolist() == [[b"a", b"b", b"<5>"], [b"c", b"<7>", b"b"]]
    assert len(said) == 1 and "ids 5, 7 are not in the vocabulary (3 entries)" in said[0]
    said.clear()
    assert encode_tokens(x[:, :2] % 3, ["a", "b", "c"], 2, lambda *a: said.append(a)).shape == (2, 2) and not said
