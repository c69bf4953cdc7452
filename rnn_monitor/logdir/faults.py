"""Conditions of the machine met while writing the log, told apart from faults of the monitor.

A full disk, a removed directory, a permission taken away or a remote file system that does not
answer are not bugs: the monitor says them in one line and tries again later
(`rnn_monitor.logdir.recovery`). They arrive as `OSError` (Python's own files) or as one of
TensorFlow's `OpError` classes (``tf.io.gfile``, also TensorBoard's stub of it without
TensorFlow); `machine_faults` turns both into `LogUnwritable`, whose `cause` is a few words.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Iterator, Optional

_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOENT: "the directory or file is gone",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ETIMEDOUT: "the file system timed out",
    errno.ESTALE: "stale file handle (the remote file system lost the file)",
    errno.EIO: "input/output error",
}

# TensorFlow's error classes for what a file system reports (tf.errors; the same names in
# TensorBoard's stub), read by name so that this module never imports TensorFlow.
_OP_ERRORS = {
    "ResourceExhaustedError": "no space left on device",
    "NotFoundError": "the directory or file is gone",
    "PermissionDeniedError": "permission denied",
    "DeadlineExceededError": "the file system timed out",
    "UnavailableError": "the file system is unavailable",
    "FailedPreconditionError": "the file system refused the write",
    "AbortedError": "the file system aborted the write",
    "DataLossError": "the file system lost data",
    "UnknownError": "the file system reported an error",
}


class LogUnwritable(Exception):
    """The log cannot be written now, for a reason of the machine (`cause`, a few words)."""

    def __init__(self, path: str, cause: str) -> None:
        super().__init__(f"{path}: {cause}")
        self.path = path
        self.cause = cause


def machine_cause(exc: BaseException) -> Optional[str]:
    """The condition of the machine `exc` reports, in a few words; None when it is none."""
    if isinstance(exc, OSError):
        if exc.errno in _CAUSES:
            return _CAUSES[exc.errno]
        return (exc.strerror or str(exc) or type(exc).__name__).lower()
    names = [cls.__name__ for cls in type(exc).__mro__]
    if "OpError" not in names:
        return None
    message = str(getattr(exc, "message", "") or exc)
    detail = message.rsplit("; ", 1)[-1].strip().lower()  # "<path>; No space left on device"
    for code, words in _CAUSES.items():
        if detail == _strerror(code):
            return words
    return _OP_ERRORS.get(type(exc).__name__) or detail or type(exc).__name__


def _strerror(code: int) -> str:
    return os.strerror(code).lower()


@contextlib.contextmanager
def machine_faults(path: str) -> Iterator[None]:
    """Within: an error of the machine while touching `path` becomes `LogUnwritable`."""
    try:
        yield
    except LogUnwritable:
        raise
    except Exception as exc:  # noqa: BLE001 - only conditions of the machine are converted
        cause = machine_cause(exc)
        if cause is None:
            raise
        raise LogUnwritable(path, cause) from exc
