"""examples/adding_problem.py at CI size: the SimpleRNN raises the vanishing alert, the LSTM does not."""

import os
import subprocess
import sys

import pytest

from rnn_monitor import load_run

pytestmark = pytest.mark.slow

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples", "adding_problem.py")


def test_adding_problem_small_shows_the_alert_difference(tmp_path):
    log_dir = tmp_path / "adding"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, EXAMPLE, "--size", "small", "--logdir", str(log_dir)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "OK: the vanishing alert fired for the SimpleRNN and not for the LSTM" in proc.stdout
    simple = load_run(str(log_dir / "simple_rnn"))
    lstm = load_run(str(log_dir / "lstm"))
    assert any(a["kind"] == "vanishing" and a["epoch"] <= 2 for a in simple.alerts)
    assert not any(a["kind"] == "vanishing" for a in lstm.alerts)
    # the LSTM's gradient reaches (almost) the whole sequence, the SimpleRNN's does not
    _, h_simple = simple.scalar("simple_rnn", "grad_horizon")
    _, h_lstm = lstm.scalar("lstm", "grad_horizon")
    assert h_simple[-1] < 50 <= h_lstm[-1]
