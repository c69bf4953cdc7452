"""Terminal output: which colour system (rich) the flag, the stream and the environment give, and
colour that only adds escape codes."""

import pytest

from cli_logs import run_main


class _Stream:
    def __init__(self, tty):
        self.tty = tty
        self.encoding = "utf-8"

    def isatty(self):
        return self.tty

    def write(self, text):
        return len(text)

    def flush(self):
        pass


@pytest.mark.parametrize("choice, tty, env, expected", [
    ("auto", True, {}, "STANDARD"),
    ("auto", True, {"TERM": "xterm-256color"}, "EIGHT_BIT"),
    ("auto", True, {"TERM": "xterm-256color", "COLORTERM": "truecolor"}, "TRUECOLOR"),
    ("auto", True, {"TERM": "dumb"}, None),
    ("auto", True, {"NO_COLOR": "1", "COLORTERM": "truecolor"}, None),
    ("auto", False, {"COLORTERM": "truecolor"}, None),
    ("auto", False, {"FORCE_COLOR": "1", "TERM": "xterm-256color"}, "EIGHT_BIT"),
    ("never", True, {"FORCE_COLOR": "1"}, None),
    ("always", False, {"NO_COLOR": "1", "COLORTERM": "24bit"}, "TRUECOLOR"),
    ("always", False, {"TERM": "dumb"}, "STANDARD"),
])
def test_colour_system_follows_the_flag_the_stream_and_the_environment(choice, tty, env, expected, monkeypatch):
    from rich.color import ColorSystem

    from rnn_monitor.cli import terminal

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = terminal.colour_system(choice, _Stream(tty))
    assert found == (None if expected is None else ColorSystem[expected])


def test_colour_adds_escape_codes_only(runs, capsys):
    """The coloured report is the plain one with ANSI codes around words (the same named codes
    on every colour system)."""
    import re

    _, plain, _ = run_main(capsys, "report", "--color", "never", str(runs))
    _, coloured, _ = run_main(capsys, "report", "--color", "always", str(runs))
    assert "\x1b[1mrun healthy\x1b[0m" in coloured and "\x1b[31m1 alert(s)\x1b[0m" in coloured
    assert "\x1b[32mno alerts\x1b[0m" in coloured and "\x1b[36mlstm\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
