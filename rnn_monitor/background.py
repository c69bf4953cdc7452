"""Run one piece of the epoch end on a second thread while the probe's TensorFlow graph runs.

Why. The probe's graph steps the recurrent layers one time step after the other and leaves one
of the machine's cores mostly idle; while it runs, the calling thread waits inside TensorFlow
with the GIL released. The weight part's work (numpy statistics, histograms, PNG encoding) does
not depend on the probe, so it runs in that time instead of after it (measured in
`benchmarks/overhead.py`). It touches no TensorFlow object: the weights are read on the calling
thread before it starts (`WeightMonitor.snapshot`), and it is joined before the probe writes or
fills the epoch's record, so the writer and the record are never used by two threads at once.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class BackgroundTask:
    """`action` run at most once: on a thread between `start` and `join`, or here by `finish`."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self._action = action
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self._done = False

    def _run(self) -> None:
        try:
            self._action()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread by join
            self._error = exc

    def start(self) -> None:
        """Start the action on its own thread (once)."""
        if self._thread is None and not self._done:
            self._thread = threading.Thread(target=self._run, name="rnn_monitor-beside", daemon=True)
            self._thread.start()

    def join(self) -> None:
        """Wait for the action; raise here what it raised."""
        if self._thread is not None and not self._done:
            self._thread.join()
            self._done = True
            if self._error is not None:
                error, self._error = self._error, None
                raise error

    def finish(self) -> None:
        """Make sure the action has run: join its thread, or run it here if it never started."""
        if self._thread is None and not self._done:
            self._done = True
            self._action()
        else:
            self.join()
