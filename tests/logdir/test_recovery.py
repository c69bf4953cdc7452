"""The log through faults of the machine (`rnn_monitor.logdir.recovery`), with the writer alone:
a disk that fills and empties again (a file object that fails as a full disk fails: part of the
write lands, then OSError(ENOSPC)), a log directory removed between epochs (for real), and how
each is said. In `model.fit`, with the faults made for real: tests/test_machine_faults.py."""

from __future__ import annotations

import errno
import logging
import os
import shutil

import numpy as np

from rnn_monitor import load_run
from rnn_monitor.logdir import event_file, metadata
from rnn_monitor.logdir.events import event_files
from rnn_monitor.logdir.writer import SummaryWriter


class _Disk:
    """Files that fail as on a full disk while `full` is set: a write puts its first half on
    disk (a torn record), then raises OSError(ENOSPC), as does every flush."""

    def __init__(self) -> None:
        self.full = False

    def open(self, path):
        disk = self

        class _File:
            def __init__(self):
                self._f = open(path, "wb")

            def write(self, data):
                if disk.full:
                    self._f.write(data[: len(data) // 2])
                    self._f.flush()
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self._f.write(data)

            def flush(self):
                if disk.full:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self._f.flush()

            def close(self):
                self._f.close()

        return _File()


def _log_epoch(writer, epoch):
    writer.scalar("lstm/loss", float(epoch) + 0.5, epoch)
    writer.plugin_tensor(metadata.TOKENS, np.arange(4, dtype=np.int32) + epoch, epoch)
    writer.flush(wait=False)


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "rnn_monitor"]


def test_a_full_disk_costs_its_epochs_is_said_once_and_logging_resumes(tmp_path, monkeypatch, caplog):
    disk = _Disk()
    monkeypatch.setattr(event_file, "open_for_writing", disk.open)
    log_dir = str(tmp_path / "logs")
    writer = SummaryWriter(os.path.join(log_dir, metadata.RUN_SUBDIR))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "lstm"}]}, 0)
    writer.flush()
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        for epoch in range(7):
            disk.full = epoch in (2, 3, 4)
            _log_epoch(writer, epoch)
            writer._join_flush()  # each epoch's background flush done before the disk changes
        writer.finish()
    lines = _lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"rnn_monitor: cannot write the log in {writer.logdir} (no space left on device): "
                               "epoch 2 is not in it; training goes on")
    assert lines[1] == f"rnn_monitor: logging to {writer.logdir} resumed at epoch 5; epochs 2-4 are missing from the log"
    assert not any("Traceback" in line or "report" in line for line in lines)
    run = load_run(log_dir)  # the first file ends in a torn record: read up to it
    assert run.epochs == [0, 1, 5, 6]
    assert run.layers == ["lstm"]
    np.testing.assert_array_equal(run.scalar("lstm", "loss")[1], [0.5, 1.5, 5.5, 6.5])
    files = event_files(run.run_dir)
    assert len(files) == 2, "a try that failed on its first write leaves no file behind"
    assert os.path.getsize(files[0]) > 0


def test_a_fault_until_the_end_of_training_names_every_missing_epoch(tmp_path, monkeypatch, caplog):
    disk = _Disk()
    monkeypatch.setattr(event_file, "open_for_writing", disk.open)
    writer = SummaryWriter(str(tmp_path / "run"))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "lstm"}]}, 0)
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        for epoch in range(4):
            disk.full = epoch >= 1
            _log_epoch(writer, epoch)
            writer._join_flush()
        writer.finish()
    lines = _lines(caplog)
    assert len(lines) == 2, lines
    assert "epoch 1 is not in it" in lines[0]
    assert lines[1] == (f"rnn_monitor: the log in {writer.logdir} could not be written until the end of "
                        "training (no space left on device): epochs 1-3 are missing from it")


def test_a_removed_log_dir_is_said_with_the_epochs_it_held_and_a_new_log_starts(tmp_path, caplog):
    log_dir = str(tmp_path / "logs")
    writer = SummaryWriter(os.path.join(log_dir, metadata.RUN_SUBDIR))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "lstm"}]}, 0)
    with caplog.at_level(logging.WARNING, logger="rnn_monitor"):
        for epoch in range(5):
            if epoch == 2:
                writer._join_flush()
                shutil.rmtree(log_dir)  # a user cleaning runs/ while training
            _log_epoch(writer, epoch)
        writer.finish()
    assert _lines(caplog) == [f"rnn_monitor: the log in {writer.logdir} was removed during training: "
                              "epochs 0-1 written there are lost; a new log is started there"]
    run = load_run(log_dir)
    assert run.epochs == [2, 3, 4] and run.layers == ["lstm"]
