"""The command-line tests start from an environment that asks for nothing about colour (a CI
job may set FORCE_COLOR or NO_COLOR); a test that wants one sets it."""

import pytest

COLOUR_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLORTERM")


@pytest.fixture(autouse=True)
def _no_colour_settings(monkeypatch):
    for name in COLOUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")
