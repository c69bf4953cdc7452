"""`rnn-monitor check`: exit codes (in process and through the console script), JSON, ignored
kinds, and findings that never fail it."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from rnn_monitor.cli import main as cli

from cli_logs import run_main, write_run


def test_check_exit_codes_in_process(runs, tmp_path, capsys):
    code, out, err = run_main(capsys, "check", str(runs / "healthy"))
    assert code == 0 and "OK: no alerts in 1 run(s)" in out and err == ""
    code, out, _ = run_main(capsys, "check", str(runs / "vanishing"))
    flat = " ".join(out.split())
    assert code == 1 and "epoch 1: vanishing gradient in simple_rnn" in flat
    assert "LSTM/GRU instead of SimpleRNN" in flat
    code, out, _ = run_main(capsys, "check", str(runs))
    assert code == 1 and "1 alert(s) in 2 run(s)" in out
    code, out, err = run_main(capsys, "check", str(tmp_path / "nowhere"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "no such file" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_main(capsys, "check", str(empty))
    assert code == 2 and "no rnn-monitor data" in err and err.count("\n") == 1


def test_check_json(runs, capsys):
    code, out, _ = run_main(capsys, "check", "--json", str(runs))
    data = json.loads(out)
    assert code == 1 and data["status"] == "alerts" and data["alerts"] == 1
    by_run = {r["run"]: r["alerts"] for r in data["runs"]}
    assert by_run["healthy"] == []
    (alert,) = by_run["vanishing"]
    assert alert["kind"] == "vanishing" and alert["epoch"] == 1 and alert["layer"] == "simple_rnn"
    assert alert["metric"] == "flow_mid" and alert["threshold"] == 1e-4 and alert["value"] == pytest.approx(1e-6)


def _console_script():
    exe = os.path.join(os.path.dirname(sys.executable), "rnn-monitor")
    return exe if os.path.exists(exe) else shutil.which("rnn-monitor")


def test_check_exit_codes_through_the_console_script(runs, tmp_path):
    exe = _console_script()
    assert exe, "rnn-monitor console script not installed (pip install -e .)"
    env = dict(os.environ, PYTHONIOENCODING="utf-8")

    def check(path):
        return subprocess.run([exe, "check", str(path)], capture_output=True, text=True, env=env)

    ok, bad, none = check(runs / "healthy"), check(runs / "vanishing"), check(tmp_path / "nope")
    assert ok.returncode == 0, ok.stderr
    assert bad.returncode == 1 and "vanishing" in bad.stdout.lower()
    assert none.returncode == 2 and "Traceback" not in none.stderr and none.stderr.strip()
    assert len(none.stderr.strip().splitlines()) == 1


def test_check_ignore(runs, capsys):
    code, out, _ = run_main(capsys, "check", "--ignore", "vanishing", str(runs))
    assert code == 0 and "OK: no alerts" in out
    code, _, err = run_main(capsys, "check", "--ignore", "typo", str(runs))
    assert code == 2 and "unknown alert kind" in err


def test_findings_are_reported_but_never_fail_the_check(tmp_path, capsys):
    # a short reach while the loss falls: a finding, not an alert
    log_dir = write_run(str(tmp_path / "short"), [3, 2, 2], learning=True)
    code, out, _ = run_main(capsys, "check", log_dir)
    assert code == 0 and "OK: no alerts in 1 run(s)" in out
    code, out, _ = run_main(capsys, "report", "--color", "never", log_dir)
    flat = " ".join(out.split())
    assert code == 0 and "no alerts" in flat and "1 finding(s) (not alerts):" in flat
    assert "epoch 0: short gradient reach in simple_rnn (finding)" in flat
    code, out, _ = run_main(capsys, "report", "--json", log_dir)
    (run,) = json.loads(out)["runs"]
    assert run["alerts"] == [] and [f["kind"] for f in run["findings"]] == ["short_memory"]
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    assert "Only alerts count: findings" in " ".join(capsys.readouterr().out.split())
