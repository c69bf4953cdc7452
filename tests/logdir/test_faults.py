"""Conditions of the machine told apart from faults of the monitor (`rnn_monitor.logdir.faults`):
`OSError` numbers and TensorFlow's file-system errors (the real ones and TensorBoard's stub of
them) said in a few words, everything else left as it is."""

from __future__ import annotations

import errno
import os

import pytest
from tensorboard.compat.tensorflow_stub import errors as stub_errors

from rnn_monitor.logdir.faults import LogUnwritable, machine_cause, machine_faults


def test_machine_causes_in_words_and_other_errors_left_alone(tmp_path):
    assert machine_cause(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"
    assert machine_cause(PermissionError(errno.EACCES, "Permission denied")) == "permission denied"
    assert machine_cause(OSError(errno.EROFS, "Read-only file system")) == "read-only file system"
    assert machine_cause(ValueError("a bug")) is None
    assert machine_cause(KeyError("x")) is None
    with pytest.raises(ValueError):
        with machine_faults("somewhere"):
            raise ValueError("a fault of the monitor stays what it is")
    with pytest.raises(LogUnwritable, match="somewhere: the directory or file is gone"):
        with machine_faults("somewhere"):
            open(tmp_path / "missing" / "file")


def test_tensorflows_file_errors_are_machine_causes(tmp_path):
    """tf.io.gfile reports a full disk as ResourceExhaustedError('<path>; No space left on
    device'), a missing directory as NotFoundError."""
    errors = pytest.importorskip("tensorflow").errors
    full = errors.ResourceExhaustedError(None, None, f"{tmp_path}/f; No space left on device")
    assert machine_cause(full) == "no space left on device"
    gone = errors.NotFoundError(None, None, f"{tmp_path}/d; No such file or directory")
    assert machine_cause(gone) == "the directory or file is gone"
    slow = errors.DeadlineExceededError(None, None, "gs://bucket/run; deadline")
    assert machine_cause(slow) == "the file system timed out"


def test_every_listed_errno_and_an_unlisted_one_in_words():
    said = {
        errno.EDQUOT: "disk quota exceeded",
        errno.ENOTDIR: "a part of the path is not a directory",
        errno.EPERM: "permission denied",
        errno.ETIMEDOUT: "the file system timed out",
        errno.ESTALE: "stale file handle (the remote file system lost the file)",
        errno.EIO: "input/output error",
    }
    for code, words in said.items():
        assert machine_cause(OSError(code, os.strerror(code))) == words
    assert machine_cause(OSError(errno.EMFILE, "Too many open files")) == "too many open files"
    assert machine_cause(OSError("Bare Message")) == "bare message"
    assert machine_cause(OSError()) == "oserror"
    assert machine_cause(TimeoutError()) == "timeouterror"


def test_tensorboards_stub_errors_without_tensorflow():
    """The stub's `OpError` classes, read by name: the errno text after the path first, then the
    class, then the message itself."""
    full = stub_errors.ResourceExhaustedError(None, None, "/log/f; No space left on device")
    assert machine_cause(full) == "no space left on device"
    denied = stub_errors.UnknownError(None, None, "/log/f; Permission denied")
    assert machine_cause(denied) == "permission denied"  # the errno text wins over the class
    assert machine_cause(stub_errors.UnavailableError(None, None, "gs://b; try later")) == \
        "the file system is unavailable"
    assert machine_cause(stub_errors.OpError(None, None, "/log/f; Odd Detail", 2)) == "odd detail"


def test_a_log_unwritable_passes_through_unchanged_and_keeps_its_cause():
    first = LogUnwritable("inner", "no space left on device")
    with pytest.raises(LogUnwritable) as raised:
        with machine_faults("outer"):
            raise first
    assert raised.value is first and raised.value.path == "inner"
    with pytest.raises(LogUnwritable) as raised:
        with machine_faults("/log/f"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (raised.value.path, raised.value.cause) == ("/log/f", "no space left on device")
    assert str(raised.value) == "/log/f: no space left on device"
    assert isinstance(raised.value.__cause__, OSError)
