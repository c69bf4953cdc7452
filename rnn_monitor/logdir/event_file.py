"""One TensorBoard event file, written: TFRecord framing of serialized `Event` protos.

A record is ``uint64 length | uint32 masked crc32c(length) | data | uint32 masked
crc32c(data)`` (the layout `rnn_monitor.logdir.events` reads). TensorBoard's own
`EventFileWriter` computes the checksums in pure Python, about 0.26 s per MB: for the 1.7 MB the
reference model logs each epoch that was more CPU time than the writing itself, on a thread
that holds the GIL while training runs. Here they come from `google_crc32c` (C), with
TensorBoard's pure-Python function as the fallback. Files are named and opened as TensorBoard
names and opens them (``tf.io.gfile`` through `tensorboard.compat`, so remote log dirs work
wherever TensorFlow's file systems do). A condition of the machine met while writing (no space,
the file or its directory gone, permission denied, a file system that does not answer) is
raised as `rnn_monitor.logdir.faults.LogUnwritable`; `rnn_monitor.logdir.recovery` starts a
new file when it has passed.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time

from tensorboard.compat import tf
from tensorboard.compat.proto import event_pb2

from rnn_monitor.logdir.faults import LogUnwritable, machine_faults

try:  # C implementation of CRC-32C (Castagnoli), the checksum TFRecord uses
    import google_crc32c

    def _crc32c(data: bytes) -> int:
        return google_crc32c.value(data)
except ImportError:  # pragma: no cover - google-crc32c is a dependency; kept for odd installs
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as _crc32c

_UID = itertools.count()
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data`."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """`data` framed as one TFRecord."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def open_for_writing(path: str):
    """A new file at `path`, opened as TensorBoard opens its event files (any file system
    ``tf.io.gfile`` knows)."""
    return tf.io.gfile.GFile(path, "wb")


class EventFile:
    """A new event file in `logdir`. `add` queues an event (serialized at once, so later changes
    to it are not written); `flush` frames and writes everything queued. Thread-safe: the
    summary writer flushes on a background thread while the callback adds."""

    def __init__(self, logdir: str, header: tuple[bytes, ...] = ()) -> None:
        """Creates the file, writes the file version and `header` (serialized events that start
        every file of a run: its manifest) and flushes them."""
        name = "events.out.tfevents.%010d.%s.%s.%s" % (time.time(), socket.gethostname(), os.getpid(), next(_UID))
        self.path = os.path.join(logdir, name)
        with machine_faults(self.path):
            tf.io.gfile.makedirs(logdir)
            self._file = open_for_writing(self.path)
        self._pending: list[bytes] = []
        self._good_size = 0  # bytes in the file after its last flush that succeeded
        self._lock = threading.Lock()  # guards _pending
        self._write_lock = threading.Lock()  # one flush at a time, records in order
        self.add(event_pb2.Event(
            wall_time=time.time(), file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="rnn_monitor"),
        ))
        self._pending.extend(header)
        try:
            self.flush()
        except LogUnwritable:
            self._remove_quietly()  # it holds nothing worth keeping: no file per failed try
            raise

    def _remove_quietly(self) -> None:
        self.abandon()
        try:
            with machine_faults(self.path):
                tf.io.gfile.remove(self.path)
        except LogUnwritable:
            pass

    def add(self, event: event_pb2.Event) -> None:
        self.add_serialized(event.SerializeToString())

    def add_serialized(self, data: bytes) -> None:
        with self._lock:
            self._pending.append(data)

    def still_there(self) -> bool:
        """Whether the file is still where it was created (an open file that was removed, or
        whose directory was, takes writes that nobody will read)."""
        with machine_faults(self.path):
            return tf.io.gfile.exists(self.path)

    def flush(self) -> None:
        """Write what was queued; on a condition of the machine, `LogUnwritable` (what was
        queued is then dropped: part of it may be in the file, up to a torn record)."""
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            data = b"".join(record(data) for data in pending)
            with machine_faults(self.path):
                if data:
                    self._file.write(data)
                self._file.flush()
            self._good_size += len(data)

    def abandon(self) -> None:
        """Close after a failed write, and cut a local file back to its last complete flush (no
        torn record, no part of the epoch that failed); elsewhere readers skip a torn end."""
        try:
            with machine_faults(self.path):
                self._file.close()
        except LogUnwritable:
            pass
        if "://" not in self.path:
            try:
                if os.path.getsize(self.path) > self._good_size:
                    os.truncate(self.path, self._good_size)
            except OSError:
                pass

    def close(self) -> None:
        self.flush()
        with machine_faults(self.path):
            self._file.close()
