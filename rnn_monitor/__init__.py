"""rnn-monitor: watch recurrent networks learn, live in TensorBoard.

    from rnn_monitor import RNNMonitor, load_run

`load_run` needs no TensorFlow; `RNNMonitor` (a Keras callback) imports it on first use.
"""

from __future__ import annotations

from typing import Any

from rnn_monitor.logdir.reader import Run, load_run

__version__ = "0.1.0"
__all__ = ["RNNMonitor", "Run", "load_run", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "RNNMonitor":
        from rnn_monitor.callback import RNNMonitor

        return RNNMonitor
    raise AttributeError(f"module 'rnn_monitor' has no attribute {name!r}")
