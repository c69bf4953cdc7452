"""The command-line tests start from an environment that asks for nothing about colour (a CI
job may set FORCE_COLOR or NO_COLOR); a test that wants one sets it."""

import pytest

from cli_logs import write_run

COLOUR_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLORTERM")


@pytest.fixture(autouse=True)
def _no_colour_settings(monkeypatch):
    for name in COLOUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")


@pytest.fixture
def runs(tmp_path):
    """Two runs under one log dir: a healthy LSTM and a SimpleRNN that raises the vanishing alert."""
    root = tmp_path / "runs"
    write_run(str(root / "healthy"), [60, 70, 80], layer="lstm", gates=("i", "f", "c", "o"))
    write_run(str(root / "vanishing"), [3, 2, 2, 1], learning=False)
    return root
