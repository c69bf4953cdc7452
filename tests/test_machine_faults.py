"""Faults of the machine during `model.fit`, made for real: the disk holding the log fills up and
empties again (a small tmpfs; needs root to mount it), the log directory is removed between
epochs, the log directory cannot be written (a read-only mount as root, a directory without
write permission otherwise). Training finishes, each fault is one line without a traceback,
the epochs before stay readable, alerts and `stop_on` keep working, and the epochs after the
fault are in the log `load_run` reads. (The writer alone, with a file that fails as a full disk
fails where no tmpfs can be mounted: tests/logdir/test_recovery.py.)"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run



def _mount(path: str, *options: str) -> None:
    """Mount a tmpfs at `path` (root only); skips the test with the reason where it cannot."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs, and mounting one needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", path],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")


def _umount(path: str) -> None:
    subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs: the log fits, and a file can fill what is left."""
    path = str(tmp_path / "disk")
    os.makedirs(path)
    _mount(path, "size=16m")
    yield path
    _umount(path)


class _AtEpochEnd(keras.callbacks.Callback):
    """Runs `actions[epoch]()` at the end of that epoch, before the monitor logs it."""

    def __init__(self, actions):
        super().__init__()
        self.actions = actions

    def on_epoch_end(self, epoch, logs=None):
        if epoch in self.actions:
            self.actions[epoch]()


def _model_and_data():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8, 3)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model = keras.Sequential([keras.Input((8, 3)), keras.layers.LSTM(8, return_sequences=True, name="low"),
                              keras.layers.LSTM(6, name="lstm"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    return model, x, y


def _fit(log_dir, actions, epochs, **kwargs):
    model, x, y = _model_and_data()
    alerts = []
    monitor = RNNMonitor(log_dir, probe_data=(x[:16], y[:16]), on_alert=alerts.append, **kwargs)
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0,
                        callbacks=[_AtEpochEnd({e: (lambda f=f: f(model)) for e, f in actions.items()}), monitor])
    return history, alerts, monitor


def _plant_nan(model):
    cell = model.get_layer("lstm").cell
    w = cell.recurrent_kernel.numpy()
    w[0, 0] = np.nan
    cell.recurrent_kernel.assign(w)


def _monitor_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "rnn_monitor" and r.levelno >= logging.WARNING]


def _no_traceback(lines):
    assert not any("Traceback" in line or "Please report" in line for line in lines), lines


def test_a_full_disk_is_one_line_alerts_go_on_and_logging_resumes_when_space_returns(small_disk, caplog):
    log_dir = os.path.join(small_disk, "logs")
    filler = os.path.join(small_disk, "filler")

    def fill(model):
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * (1 << 16))
                    handle.flush()
            except OSError:
                pass

    actions = {1: fill, 2: _plant_nan, 3: lambda model: os.remove(filler)}
    with caplog.at_level(logging.INFO, logger="rnn_monitor"):
        history, alerts, monitor = _fit(log_dir, actions, epochs=5)
    assert history.epoch == [0, 1, 2, 3, 4]
    lines = _monitor_lines(caplog)
    _no_traceback(lines)
    run_dir = monitor.writer.logdir
    faults = [line for line in lines if run_dir in line]
    assert len(faults) == 2, faults
    assert faults[0].startswith(f"rnn_monitor: cannot write the log in {run_dir} (no space left on device): "
                                "epoch 1 is not in it; training goes on (alerts do not need the disk)")
    assert faults[1] == f"rnn_monitor: logging to {run_dir} resumed at epoch 3; epochs 1-2 are missing from the log"
    # The alert raised while nothing could be written: its hook and its log line.
    assert (2, "nonfinite", "lstm") in {(a["epoch"], a["kind"], a["layer"]) for a in alerts}
    assert any(line.startswith("rnn_monitor: epoch 2: ") and "lstm" in line for line in lines)
    assert all(part is not None for part in monitor._parts.values()), "no part was switched off"
    run = load_run(log_dir)
    assert run.epochs == [0, 3, 4] and run.layers == ["low", "lstm"]
    assert run.timestep_grad_norm("lstm").shape[0] == 3  # the probe of every epoch logged


def test_a_removed_log_dir_is_said_and_the_epochs_after_are_logged(log_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        history, _, monitor = _fit(log_dir, {2: lambda model: shutil.rmtree(log_dir)}, epochs=5)
    assert history.epoch == [0, 1, 2, 3, 4]
    lines = _monitor_lines(caplog)
    _no_traceback(lines)
    assert lines == [f"rnn_monitor: the log in {monitor.writer.logdir} was removed during training: "
                     "epochs 0-1 written there are lost; a new log is started there"]
    run = load_run(log_dir)
    assert run.epochs == [2, 3, 4] and run.layers == ["low", "lstm"]


def test_stop_on_works_while_the_log_dir_cannot_be_written(tmp_path, caplog):
    """The log directory is removed and comes back unwritable (read-only): the fault is said
    once, the alert stops training, and the end of training names the epochs missing."""
    log_dir = str(tmp_path / "logs")

    def unwritable(model):
        shutil.rmtree(log_dir)
        os.makedirs(log_dir)
        if os.geteuid() == 0:  # root writes through permissions: a read-only mount instead
            _mount(log_dir, "ro", "size=1m")
        else:
            os.chmod(log_dir, 0o555)

    try:
        with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
            history, alerts, monitor = _fit(log_dir, {1: unwritable, 2: _plant_nan}, epochs=5,
                                            stop_on="nonfinite")
    finally:
        if os.path.ismount(log_dir):
            _umount(log_dir)
        os.chmod(log_dir, 0o755)
    assert history.epoch == [0, 1, 2], "stop_on did not stop training at the alert"
    assert {(a["epoch"], a["kind"], a["layer"]) for a in alerts} == {(2, "nonfinite", "low"), (2, "nonfinite", "lstm")}
    lines = _monitor_lines(caplog)
    _no_traceback(lines)
    run_dir = monitor.writer.logdir
    said = [line for line in lines if run_dir in line]
    cause = "read-only file system" if os.geteuid() == 0 else "permission denied"
    assert said == [
        f"rnn_monitor: the log in {run_dir} was removed during training: epoch 0 written there is lost; "
        "a new log is started there",
        f"rnn_monitor: cannot write the log in {run_dir} ({cause}): epoch 1 is not in it; training goes on "
        "(alerts do not need the disk) and each logged epoch tries again",
        f"rnn_monitor: the log in {run_dir} could not be written until the end of training ({cause}): "
        "epochs 1-2 are missing from it",
    ]
