"""The run's event file, kept going through faults of the machine.

A long run meets full disks, log directories cleaned away while it trains, permissions taken
away, remote file systems that stop answering. None of them is a fault of the monitor and none
may cost more of the log than it must. `RecoveringEventFile` writes through one
`rnn_monitor.logdir.event_file.EventFile` at a time:

* when a write fails for a reason of the machine (`rnn_monitor.logdir.faults`) the file is
  abandoned, cut back to its last complete flush where the file system allows (elsewhere a torn
  record at its end is skipped by readers), what was queued for that epoch is dropped, and one
  line says where, why and what happens next;
* every later flush tries again with a new file, which starts with the run's header (its
  manifest), so `load_run` and TensorBoard read the run as before; when it succeeds, one line
  says that logging resumed and which epochs are missing;
* a file that disappeared (its directory removed), as TensorFlow's own events writer notices
  it, is said in one line naming the epochs it held, and a new one takes the queued events.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Optional

from tensorboard.compat.proto import event_pb2

from rnn_monitor.logdir.event_file import EventFile
from rnn_monitor.logdir.faults import LogUnwritable

logger = logging.getLogger("rnn_monitor")


class RecoveringEventFile:
    """The event files of one run directory, a new one after each fault (see the module)."""

    def __init__(self, logdir: str, say: Optional[Callable[[str], None]] = None) -> None:
        self.logdir = logdir
        self._say = say or logger.warning
        self._file: Optional[EventFile] = None
        self._header: tuple[bytes, ...] = ()
        self._header_due = False
        self._pending: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()  # guards _pending and the header
        self._flush_lock = threading.Lock()  # one flush at a time
        self._steps_in_file: set[int] = set()
        self._missing: set[int] = set()
        self._fault: Optional[str] = None  # the cause, while the log cannot be written

    @property
    def path(self) -> Optional[str]:
        """The event file written now (None before the first flush and while faulted)."""
        return self._file.path if self._file is not None else None

    @property
    def missing_epochs(self) -> list[int]:
        """The epochs whose events were dropped since the log last resumed."""
        return sorted(self._missing)

    def add(self, event: event_pb2.Event) -> None:
        with self._lock:
            self._pending.append((int(event.step), event.SerializeToString()))

    def set_header(self, event: event_pb2.Event) -> None:
        """`event` starts every event file from now on (the run's manifest) and is written
        with the next flush."""
        with self._lock:
            self._header = (event.SerializeToString(),)
            self._header_due = True

    def flush(self) -> None:
        """Write what was queued, to a new file where the last one failed or disappeared."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, []
                header, due, self._header_due = self._header, self._header_due, False
            steps = {step for step, _ in pending}
            try:
                self._write(header if due else (), [data for _, data in pending])
            except LogUnwritable as fault:
                self._abandon()
                self._failed(fault.cause, steps)
                return
            self._steps_in_file |= steps
            if self._fault is not None or self._missing:
                missing = self._missing
                self._say(f"rnn_monitor: logging to {self.logdir} resumed{_at(steps)}"
                          f"{f'; {_epochs(missing)} {_be(missing)} missing from the log' if missing else ''}")
                self._fault, self._missing = None, set()

    def finish(self) -> None:
        """Flush; if the log still cannot be written, say which epochs it lacks."""
        self.flush()
        if self._fault is not None and self._missing:
            self._say(f"rnn_monitor: the log in {self.logdir} could not be written until the end of "
                      f"training ({self._fault}): {_epochs(self._missing)} {_be(self._missing)} missing from it")

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            try:
                self._file.close()
            except LogUnwritable as fault:
                self._failed(fault.cause, set())
            self._file = None

    def _write(self, header: tuple[bytes, ...], records: list[bytes]) -> None:
        if self._file is not None and not self._file.still_there():
            lost, self._steps_in_file = sorted(self._steps_in_file), set()
            self._abandon()
            self._say(f"rnn_monitor: the log in {self.logdir} was removed during training"
                      f"{f': {_epochs(lost)} written there {_be(lost)} lost' if lost else ''}; a new log is "
                      "started there")
        if self._file is None:
            with self._lock:
                header = self._header
            self._file = EventFile(self.logdir, header=header)
            self._steps_in_file = set()
        else:
            records = list(header) + records
        for data in records:
            self._file.add_serialized(data)
        self._file.flush()

    def _abandon(self) -> None:
        """Leave the current file, quietly: it failed or is gone."""
        if self._file is not None:
            self._file.abandon()
        self._file = None

    def _failed(self, cause: str, steps: set[int]) -> None:
        self._missing |= steps
        if self._fault is None:
            self._say(f"rnn_monitor: cannot write the log in {self.logdir} ({cause})"
                      f"{f': {_epochs(steps)} {_be(steps)} not in it' if steps else ''}; training goes on "
                      "(alerts do not need the disk) and each logged epoch tries again")
        self._fault = cause


def _epochs(steps: Iterable[int]) -> str:
    """'epoch 3' or 'epochs 1-3, 5'."""
    steps = sorted(steps)
    runs: list[list[int]] = []
    for step in steps:
        if runs and step == runs[-1][-1] + 1:
            runs[-1].append(step)
        else:
            runs.append([step])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"epoch {text}" if len(steps) == 1 else f"epochs {text}"


def _be(steps: Iterable[int]) -> str:
    return "is" if len(set(steps)) == 1 else "are"


def _at(steps: set[int]) -> str:
    return f" at epoch {min(steps)}" if steps else ""
