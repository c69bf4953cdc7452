"""RNNMonitor as a Keras user meets it: set-up errors, scheduling, coexistence, robustness."""

import logging
import os

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing import plugin_event_multiplexer

from rnn_monitor import RNNMonitor, load_run
from rnn_monitor.model.anatomy import NoRNNLayerError
from rnn_monitor.weights.weight_monitor import WeightMonitor

pytestmark = pytest.mark.backends


def _data(n=16, t=5, f=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, t, f)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def _model():
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, name="lstm"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    return model


class CountBatches(keras.callbacks.Callback):
    batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_unwritable_log_dir_fails_before_the_first_batch(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    counter = CountBatches()
    x, y = _data()
    with pytest.raises(PermissionError, match="cannot write to log_dir .* directory you can write to"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(str(blocker / "logs")), counter])
    assert counter.batches == 0


def test_model_without_rnn_is_a_clear_error(log_dir):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x, y = _data()
    with pytest.raises(NoRNNLayerError, match="no recurrent layer.*Flatten"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(log_dir)])


def test_bad_arguments_are_clear_errors(log_dir):
    with pytest.raises(ValueError, match="every must be a positive integer"):
        RNNMonitor(log_dir, every=0)
    with pytest.raises(ValueError, match="unknown threshold.*dead_sd.*known thresholds"):
        RNNMonitor(log_dir, thresholds={"dead_sd": 1})
    # a wrong type is named at construction, not found by the first epoch end
    with pytest.raises(ValueError, match="threshold dead_std must be a finite number, got '0.001'"):
        RNNMonitor(log_dir, thresholds={"dead_std": "0.001"})
    with pytest.raises(ValueError, match="max_bytes_per_epoch must be a positive integer or None for no cap, got '1MB'"):
        RNNMonitor(log_dir, max_bytes_per_epoch="1MB")
    with pytest.raises(ValueError, match="text_samples must be an integer >= 0, got 'x'"):
        RNNMonitor(log_dir, text_samples="x")
    with pytest.raises(ValueError, match="every must be a positive integer, got True"):
        RNNMonitor(log_dir, every=True)
    assert RNNMonitor(log_dir, every=np.int64(2), max_copies=np.int32(3)).every == 2
    # every argument is checked when the callback is built, the same way (numpy integers pass, bools do not)
    for name, bad, message in (
        ("unit_samples", True, "unit_samples must be an integer >= 0, got True"),
        ("unit_samples", -1, "unit_samples must be an integer >= 0, got -1"),
        ("average_input_window", 2.5, "average_input_window must be a positive integer, got 2.5"),
        ("max_timesteps", 0, "max_timesteps must be a positive integer or None, got 0"),
        ("histograms", "yes", "histograms must be True or False, got 'yes'"),
        ("images", 1, "images must be True or False, got 1"),
        ("alerts", None, "alerts must be True or False, got None"),
        ("raise_errors", "no", "raise_errors must be True or False, got 'no'"),
        ("units", "abc", "units must be a list of unit indices or None, got 'abc'"),
        ("units", [1, -2], r"units\[...\] must be an integer >= 0, got -2"),
        ("units", [3, 3], r"units must not repeat an index, got \[3, 3\]"),
    ):
        with pytest.raises(ValueError, match=message):
            RNNMonitor(log_dir, **{name: bad})
    built = RNNMonitor(log_dir, unit_samples=np.int64(8), average_input_window=np.int32(4), max_timesteps=np.int64(5),
                       units=np.array([0, 2]), histograms=np.bool_(False))
    assert (built.unit_samples, built.average_input_window, built.max_timesteps, built.units, built.histograms) == (
        8, 4, 5, [0, 2], False)
    x, y = _data()
    monitor = RNNMonitor(log_dir, layers="lstm")  # one name, not its characters
    _model().fit(x, y, epochs=1, verbose=0, callbacks=[monitor])
    assert [info.name for info in monitor.infos] == ["lstm"]
    with pytest.raises(ValueError, match=r"\['nope'\] are not recurrent layers.*'lstm'"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(log_dir, layers=["nope"])])


def test_every_n_epochs_and_the_last_epoch_is_always_logged(log_dir):
    x, y = _data()
    _model().fit(x, y, epochs=6, verbose=0, callbacks=[RNNMonitor(log_dir, every=4, alerts=False)])
    assert load_run(log_dir).epochs == [0, 4, 5]


def test_unbuilt_sequential_model_is_monitored_from_its_first_batch(log_dir):
    model = keras.Sequential([keras.layers.GRU(3, name="gru"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x, y = _data()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[RNNMonitor(log_dir, raise_errors=True, alerts=False)])
    run = load_run(log_dir)
    assert run.layers == ["gru"] and run.epochs == [0, 1]


def test_shares_a_log_dir_with_keras_tensorboard_and_shows_in_tensorboard(log_dir):
    x, y = _data()
    callbacks = [
        keras.callbacks.TensorBoard(log_dir, histogram_freq=1),
        RNNMonitor(log_dir, raise_errors=True, alerts=False),
    ]
    _model().fit(x, y, epochs=2, validation_data=(x, y), verbose=0, callbacks=callbacks)
    assert {"train", "validation", "rnn_monitor"} <= set(os.listdir(log_dir))
    # What `tensorboard --logdir` would show, through TensorBoard's own loader.
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(log_dir)
    multiplexer.Reload()
    ours = "rnn_monitor"
    assert "lstm/kernel/i/l2" in multiplexer.PluginRunToTagToContent("scalars")[ours]
    assert "lstm/recurrent_kernel/o" in multiplexer.PluginRunToTagToContent("histograms")[ours]
    assert "lstm/weights" in multiplexer.PluginRunToTagToContent("images")[ours]
    assert "epoch_loss" in multiplexer.PluginRunToTagToContent("scalars")["train"]
    run = load_run(log_dir)
    assert run.layers == ["lstm"] and run.epochs == [0, 1]


@pytest.mark.parametrize("with_probe", [False, True], ids=["alone", "beside_the_probe"])
def test_a_failing_part_is_switched_off_and_training_goes_on(log_dir, monkeypatch, caplog, with_probe):
    def broken(self, epoch, record, snapshot=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(WeightMonitor, "log_epoch", broken)
    x, y = _data()
    probe = {"probe_data": (x[:4], y[:4])} if with_probe else {}
    with caplog.at_level(logging.ERROR, logger="rnn_monitor"):
        history = _model().fit(x, y, epochs=3, verbose=0, callbacks=[RNNMonitor(log_dir, alerts=False, **probe)])
    assert len(history.history["loss"]) == 3
    assert caplog.text.count("weights part failed") == 1 and "boom" in caplog.text
    assert "probe part failed" not in caplog.text
    if with_probe:  # the probe went on writing every epoch
        assert load_run(log_dir).timestep_gradients("lstm").shape[0] == 3
    with pytest.raises(RuntimeError, match="boom"):
        _model().fit(x, y, epochs=1, verbose=0,
                     callbacks=[RNNMonitor(log_dir, alerts=False, raise_errors=True, **probe)])


def test_the_weight_part_runs_beside_the_probe_graph_and_is_done_before_the_probe_writes(log_dir, monkeypatch):
    import threading

    from rnn_monitor.logdir.writer import SummaryWriter
    from rnn_monitor.probe.probe_monitor import ProbeMonitor

    events = []  # (epoch, what, thread name)
    for method in ("scalar", "histogram", "image", "plugin_tensor"):
        real = getattr(SummaryWriter, method)

        def spy(self, *args, _real=real, _method=method, **kwargs):
            events.append((_method, threading.current_thread().name))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(SummaryWriter, method, spy)
    real_log, real_run = ProbeMonitor.log_epoch, ProbeMonitor.run

    def log_epoch(self, *args, **kwargs):
        events.append(("probe part", threading.current_thread().name))
        return real_log(self, *args, **kwargs)

    def run(self):
        events.append(("probe graph", threading.current_thread().name))
        return real_run(self)

    monkeypatch.setattr(ProbeMonitor, "log_epoch", log_epoch)
    monkeypatch.setattr(ProbeMonitor, "run", run)
    x, y = _data()
    _model().fit(x, y, epochs=2, verbose=0,
                 callbacks=[RNNMonitor(log_dir, probe_data=(x[:4], y[:4]), alerts=False, raise_errors=True)])
    main = threading.current_thread().name
    parts = [i for i, e in enumerate(events) if e[0] == "probe part"]
    assert len(parts) == 2 and all(e[1] == main for e in events if e[0].startswith("probe "))
    for begin, end in zip(parts, parts[1:] + [len(events)]):
        epoch = events[begin + 1 : end]
        beside = [i for i, e in enumerate(epoch) if e[1] != main]
        # histograms and the heatmap of the weight part, from its own thread...
        assert {epoch[i][0] for i in beside} >= {"histogram", "image"}
        # ...all of them before the first thing the probe writes after its graph
        first_probe = next(i for i, e in enumerate(epoch) if e[1] == main and e[0] == "plugin_tensor")
        assert epoch.index(("probe graph", main)) < first_probe and max(beside) < first_probe


def test_non_chief_worker_writes_nothing(log_dir, monkeypatch):
    monkeypatch.setenv(
        "TF_CONFIG",
        '{"cluster": {"chief": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}',
    )
    x, y = _data()
    _model().fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(log_dir, alerts=False)])
    assert os.listdir(log_dir) == []


def test_resumed_fit_continues_epoch_numbers_and_update_ratios(log_dir):
    model = _model()
    x, y = _data()
    monitor = RNNMonitor(log_dir, raise_errors=True, alerts=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    model.fit(x, y, initial_epoch=2, epochs=4, verbose=0, callbacks=[monitor])
    run = load_run(log_dir)
    assert run.epochs == [0, 1, 2, 3]
    epochs, _ = run.scalar("lstm", "kernel/i/update_ratio")
    assert list(epochs) == [1, 2, 3]


def test_each_epoch_is_on_disk_while_the_next_one_trains(log_dir):
    seen = {}

    class Peek(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                monitor.writer._join_flush()  # the background flush of epoch 1 has finished
                seen["epochs"] = load_run(log_dir).epochs

    monitor = RNNMonitor(log_dir, raise_errors=True, alerts=False)
    x, y = _data()
    _model().fit(x, y, epochs=3, verbose=0, callbacks=[monitor, Peek()])
    assert seen["epochs"] == [0, 1]


def test_a_failing_disk_write_never_stops_training(log_dir, monkeypatch, caplog):
    from rnn_monitor.logdir.writer import SummaryWriter

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "scalar", full_disk)
    x, y = _data()
    with caplog.at_level(logging.ERROR, logger="rnn_monitor"):
        history = _model().fit(x, y, epochs=2, verbose=0, callbacks=[RNNMonitor(log_dir, alerts=False)])
    assert len(history.history["loss"]) == 2
    assert "writer part failed" in caplog.text and "No space left" in caplog.text


def test_fit_failing_on_bad_probe_data_leaves_no_headless_event_file(tmp_path):
    """Wrong probe data stops the fit before training, and writes nothing a reader would trip on."""
    import subprocess
    import sys

    x, y = _data()
    good = tmp_path / "good"
    _model().fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(str(good), probe_data=(x, y))])
    bad = tmp_path / "bad"
    with pytest.raises(ValueError, match="probe_data x has shape"):
        _model().fit(x, y, epochs=1, verbose=0,
                     callbacks=[RNNMonitor(str(bad), probe_data=(np.zeros((4, 5, 2), "float32"), y[:4]))])
    run_dir = bad / "rnn_monitor"
    assert not run_dir.exists() or not any("tfevents" in p.name for p in run_dir.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "rnn_monitor.cli", "check", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == "" and "OK: no alerts in 1 run(s)" in proc.stdout


def test_a_seeded_run_with_dropout_trains_the_same_with_the_monitor(tmp_path):
    """Keras draws an RNN cell's dropout masks from its seed generator even at training=False,
    so the monitor's own calls of the model (probe, importance) must leave the generators as
    training left them: the same seeds give the same weights (and losses, which the probe's loss
    must not feed either) with and without the monitor."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 6, 3)).astype("float32")
    y = (rng.random(size=(32, 1)) > 0.5).astype("float32")

    def train(callbacks):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([
            keras.Input((6, 3)),
            keras.layers.LSTM(8, dropout=0.3, recurrent_dropout=0.3, return_sequences=True, name="lstm"),
            keras.layers.GRU(4, dropout=0.2, name="gru"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1, activation="sigmoid"),  # a classifier: importance runs too
        ])
        model.compile("adam", "binary_crossentropy")
        keras.utils.set_random_seed(4)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)
        return [w.copy() for w in model.get_weights()] + [np.asarray(history.history["loss"])]

    plain = train([])
    monitor = RNNMonitor(str(tmp_path / "logs"), probe_data=(x[:8], y[:8]), importance=True)
    monitored = train([monitor])
    assert monitor._parts.get("probe") is not None and monitor._parts.get("interpret") is not None
    assert len(plain) == len(monitored)
    for a, b in zip(plain, monitored):
        np.testing.assert_array_equal(a, b)


def test_probe_data_as_a_dict_is_matched_to_the_inputs_by_name(tmp_path):
    """Keras matches a dict of arrays to a functional model's inputs by name, whatever the
    dict's order; so does the probe (model.inputs here are ordered aux, seq)."""
    seq_in, aux_in = keras.Input((6, 3), name="seq"), keras.Input((2,), name="aux")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([keras.layers.GRU(4, name="gru")(seq_in), aux_in]))
    model = keras.Model({"seq": seq_in, "aux": aux_in}, out)
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    x = {"seq": rng.normal(size=(16, 6, 3)).astype("float32"), "aux": rng.normal(size=(16, 2)).astype("float32")}
    y = rng.normal(size=(16, 1)).astype("float32")
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[RNNMonitor(str(tmp_path / "ok"), probe_data=(x, y), alerts=False)])
    grads = load_run(str(tmp_path / "ok")).timestep_gradients("gru")
    assert grads.shape == (1, 6, 4) and np.isfinite(grads).all() and (grads > 0).any()
    import tensorflow as tf

    unbatched = tf.data.Dataset.from_tensor_slices((x, y))  # one sequence per element
    with pytest.raises(ValueError, match=r"without its batch axis.*dataset.batch\(32\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(str(tmp_path / "ds"), probe_data=unbatched)])
    wrong = {"seq": x["seq"][:, :, :2], "aux": x["aux"]}
    with pytest.raises(ValueError, match=r"probe_data x\['seq'\] has shape \(16, 6, 2\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RNNMonitor(str(tmp_path / "bad"), probe_data=(wrong, y))])


def test_probe_data_the_model_itself_cannot_take_is_said_as_such(log_dir, caplog):
    """Ids past the Embedding or a y the loss cannot take are found only by running the model:
    the part is switched off with a message that blames the data and says what to pass, not
    as the monitor's own failure; with raise_errors it is a ProbeDataError."""
    from rnn_monitor.probe.data import ProbeDataError

    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(10, 4),
                              keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 10, (16, 6)).astype("int32"), rng.integers(0, 10, (16, 6))
    past = np.full((4, 6), 12, "int32")
    if keras.backend.backend() == "tensorflow":  # JAX's gather clamps ids past the table: nothing fails
        with caplog.at_level(logging.ERROR, logger="rnn_monitor"):
            history = model.fit(x, y, epochs=2, verbose=0, callbacks=[RNNMonitor(log_dir, probe_data=(past, y[:4]))])
        assert len(history.history["loss"]) == 2
        assert "the model itself fails on probe_data" in caplog.text and "is not in [0, 10)" in caplog.text
        assert "Please report" not in caplog.text
    with pytest.raises(ProbeDataError, match=r"target.shape=\(4, 6, 2\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[
            RNNMonitor(log_dir + "2", probe_data=(x[:4], rng.integers(0, 10, (4, 6, 2))), raise_errors=True)])


def test_the_probe_leaves_every_stateful_layers_states_as_they_were(tmp_path):
    """Monitored or not, every stateful layer the probe's forward runs through keeps the states
    training left it (a call of a stateful layer assigns them)."""
    inp = keras.Input(batch_shape=(4, 5, 3))
    below = keras.layers.LSTM(3, stateful=True, return_sequences=True, name="below")
    top = keras.layers.GRU(2, stateful=True, name="top")
    model = keras.Model(inp, keras.layers.Dense(1)(top(below(inp))))
    model.compile("adam", "mse")
    x, y = _data(n=8)
    monitor = RNNMonitor(str(tmp_path), probe_data=(x[:4], y[:4]), layers=["top"], alerts=False)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[monitor])
    states = [v for layer in (below, top) for v in keras.tree.flatten(layer.states)]
    rng = np.random.default_rng(1)
    for v in states:  # states of their own (Keras's JAX fit does not carry them between batches)
        v.assign(rng.normal(size=v.shape).astype("float32"))
    before = [v.numpy().copy() for v in states]
    monitor._parts["probe"].run()
    for b, v in zip(before, states):
        np.testing.assert_array_equal(b, v.numpy())


def test_a_backend_the_probe_does_not_run_on_is_one_line_and_weights_are_logged(log_dir, monkeypatch, caplog):
    """On a Keras backend the probe does not support yet (PyTorch), the fit trains, one line at
    its start says what still runs, and the weights and their statistics are logged."""
    from rnn_monitor import backends

    monkeypatch.setattr(backends, "backend_name", lambda model: "torch")
    x, y = _data()
    model = _model()
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        history = model.fit(x, y, epochs=2, verbose=0,
                            callbacks=[RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True)])
    assert len(history.history["loss"]) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "on the torch backend this run logs the weights" in lines[0], lines
    assert "KERAS_BACKEND=tensorflow or jax" in lines[0]
    run = load_run(log_dir)
    assert run.epochs == [0, 1] and "kernel/f/l2" in run.scalar_names("lstm")
    assert "dead_ratio" not in run.scalar_names("lstm")
