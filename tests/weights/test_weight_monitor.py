"""Per-gate norms and update ratios, checked against numpy on `layer.get_weights()` snapshots.

The expected values are computed here, independently: the gate column blocks are cut by hand
from Keras's documented layouts, norms with `np.linalg.norm`, snapshots taken by a separate
callback that runs in the same epoch-end as the monitor.
"""

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run

pytestmark = pytest.mark.backends

T, FEATURES = 6, 3


class Snapshots(keras.callbacks.Callback):
    """Records `get_weights()` of the given layers at each epoch end."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.by_epoch = {}

    def on_epoch_end(self, epoch, logs=None):
        self.by_epoch[epoch] = {name: [np.array(w) for w in layer.get_weights()] for name, layer in self.layers.items()}


def _gates(kind, units):
    names = {"lstm": "ifco", "gru": "zrh", "simple": "h"}[kind]
    return {g: slice(i * units, (i + 1) * units) for i, g in enumerate(names)}


def _expected(weights, kind, units):
    """{(role, gate): block} from a [kernel, recurrent_kernel, bias] list."""
    out = {}
    for role, w in zip(("kernel", "recurrent_kernel", "bias"), weights):
        for gate, cols in _gates(kind, units).items():
            out[(role, gate)] = np.asarray(w, np.float64)[..., cols]
    return out


def _fit(model, log_dir, snapshot_layers, epochs=3, **monitor_kwargs):
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, T, FEATURES)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    snaps = Snapshots(snapshot_layers)
    monitor = RNNMonitor(log_dir, raise_errors=True, alerts=False, **monitor_kwargs)
    history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[snaps, monitor])
    return snaps, history


def _functional(*layers):
    inp = keras.Input((T, FEATURES))
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, keras.layers.Dense(1)(x))


def _bidirectional_halves(model):
    bi = model.get_layer("bi")
    return {"bi/forward": bi.forward_layer, "bi/backward": bi.backward_layer}


def _nested():
    inner_in = keras.Input((T, FEATURES))
    inner = keras.Model(inner_in, keras.layers.GRU(4, name="gru")(inner_in), name="encoder")
    model = keras.Sequential([keras.Input((T, FEATURES)), inner, keras.layers.Dense(1)])
    return model, {"encoder/gru": inner.get_layer("gru")}


CASES = {
    "lstm": (lambda: _functional(keras.layers.LSTM(5, name="rnn")), "lstm", 5, None),
    "gru_reset_after": (lambda: _functional(keras.layers.GRU(4, name="rnn")), "gru", 4, None),
    "gru_reset_before": (lambda: _functional(keras.layers.GRU(4, reset_after=False, name="rnn")), "gru", 4, None),
    "simple_rnn": (lambda: _functional(keras.layers.SimpleRNN(4, name="rnn")), "simple", 4, None),
    "generic_lstm_cell": (lambda: _functional(keras.layers.RNN(keras.layers.LSTMCell(3), name="rnn")), "lstm", 3, None),
    "bidirectional_lstm": (
        lambda: _functional(keras.layers.Bidirectional(keras.layers.LSTM(3), name="bi")),
        "lstm",
        3,
        _bidirectional_halves,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES) + ["nested_gru"])
def test_gate_norms_and_update_ratios_match_numpy(case, log_dir):
    if case == "nested_gru":
        model, layers = _nested()
        kind, units = "gru", 4
    else:
        build, kind, units, halves = CASES[case]
        model = build()
        layers = halves(model) if halves else {"rnn": model.get_layer("rnn")}
    snaps, _ = _fit(model, log_dir, layers)
    run = load_run(log_dir)
    assert run.layers == list(layers)
    assert run.epochs == [0, 1, 2]
    checked = 0
    for name in layers:
        for epoch in run.epochs:
            now = _expected(snaps.by_epoch[epoch][name], kind, units)
            before = _expected(snaps.by_epoch[epoch - 1][name], kind, units) if epoch else None
            for (role, gate), block in now.items():
                epochs, values = run.scalar(name, f"{role}/{gate}/l2")
                got = values[list(epochs).index(epoch)]
                np.testing.assert_allclose(got, np.linalg.norm(block), rtol=1e-6)
                epochs, values = run.scalar(name, f"{role}/{gate}/nonfinite")
                assert values[list(epochs).index(epoch)] == 0
                if before is None:
                    continue
                epochs, values = run.scalar(name, f"{role}/{gate}/update_ratio")
                want = np.linalg.norm(block - before[(role, gate)]) / np.linalg.norm(before[(role, gate)])
                assert want > 0  # the optimizer really moved every block
                np.testing.assert_allclose(values[list(epochs).index(epoch)], want, rtol=1e-6)
                checked += 1
    assert checked == len(layers) * 2 * 3 * len(_gates(kind, units))


def _plant(layer, role, gate_index, units, value, count):
    """Put `count` copies of `value` into one gate's columns of one weight."""
    weights = layer.get_weights()
    index = {"kernel": 0, "recurrent_kernel": 1, "bias": 2}[role]
    w = weights[index]
    flat_cols = np.arange(gate_index * units, (gate_index + 1) * units)
    rows = np.arange(w.shape[0]) if w.ndim == 2 else [None]
    cells = [(r, c) for r in rows for c in flat_cols][:count]
    for r, c in cells:
        if r is None:
            w[c] = value
        else:
            w[r, c] = value
    layer.set_weights(weights)


class PlantAt(keras.callbacks.Callback):
    def __init__(self, epoch, action):
        super().__init__()
        self.epoch, self.action = epoch, action

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.action()


@pytest.mark.parametrize("role,gate,value,count", [("kernel", "f", np.nan, 4), ("recurrent_kernel", "o", np.inf, 3)])
def test_planted_nonfinite_weights_are_counted_for_exactly_that_gate(role, gate, value, count, log_dir):
    model = _functional(keras.layers.LSTM(5, name="rnn"))
    model.compile(optimizer="sgd", loss="mse")
    layer = model.get_layer("rnn")
    gate_index = "ifco".index(gate)
    plant = PlantAt(1, lambda: _plant(layer, role, gate_index, 5, value, count))
    x = np.random.default_rng(0).normal(size=(16, T, FEATURES)).astype("float32")
    y = np.ones((16, 1), "float32")
    monitor = RNNMonitor(log_dir, alerts=False)  # no raise_errors: must survive on its own
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[plant, monitor])
    assert len(history.history["loss"]) == 4, "training must run to the end"
    run = load_run(log_dir)
    assert run.epochs == [0, 1, 2, 3]
    for name in run.scalar_names("rnn"):
        if not name.endswith("/nonfinite"):
            continue
        _, values = run.scalar("rnn", name)
        assert values[0] == 0
        assert values[1] == (count if name == f"{role}/{gate}/nonfinite" else 0), name
    # The l2 of the planted gate is over its finite entries: still a finite number.
    _, norms = run.scalar("rnn", f"{role}/{gate}/l2")
    assert np.isfinite(norms[1]) and norms[1] > 0
