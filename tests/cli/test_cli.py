"""`rnn-monitor report|check` on logs written with the real SummaryWriter + AlertEngine (no TF)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rnn_monitor.cli import main as cli
from rnn_monitor.logdir import metadata
from rnn_monitor.alerts import AlertEngine
from rnn_monitor.config import Thresholds
from rnn_monitor.record import EpochRecord
from rnn_monitor.logdir.writer import SummaryWriter


def write_run(log_dir, horizons, layer="simple_rnn", T=100, gates=("h",), dead=0.0, learning=True):
    """A log like RNNMonitor's: manifest, per-gate l2 and health scalars, alerts per epoch.

    The flow is 1 up to the horizon and 1e-6 beyond; a run that is not `learning` keeps its
    probe loss at the constant-prediction loss (the vanishing alert needs both)."""
    writer = SummaryWriter(os.path.join(log_dir, metadata.RUN_SUBDIR))
    manifest = {
        "version": metadata.CONTENT_VERSION,
        "layers": [{"name": layer, "class": "SimpleRNN", "units": 8, "gates": list(gates)}],
        "thresholds": {},
    }
    writer.json_tensor(metadata.MANIFEST, manifest, 0)
    engine = AlertEngine(writer=writer, thresholds=Thresholds())
    for epoch, horizon in enumerate(horizons):
        record = EpochRecord(epoch)
        record.set_scalar(layer, "grad_horizon", horizon)
        record.set_scalar(layer, "dead_ratio", dead)
        record.set_scalar(layer, "saturated_ratio", 0.25)
        record.set_scalar(layer, "grad_norm", 0.01 * (epoch + 1))
        for role in metadata.WEIGHT_ROLES:
            for gate in gates:
                record.set_scalar(layer, metadata.gate_scalar_name(role, gate, "l2"), 1.0 + 0.1 * epoch)
        record.set_array(layer, "timesteps", np.array(T))
        flow = np.where(np.arange(T) <= horizon, 1.0, 1e-6).astype(np.float32)
        record.constant_loss = 1.0
        record.probe_loss = 0.5 / (epoch + 1) if learning else 1.0
        record.set_array(layer, "temporal_flow", flow)
        writer.plugin_tensor(metadata.TEMPORAL_FLOW, flow, epoch, layer=layer)
        for name, value in record.scalars[layer].items():
            writer.scalar(metadata.scalar_tag(layer, name), value, epoch)
        engine.evaluate(epoch, record, None)
    writer.close()
    return log_dir


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    write_run(str(root / "healthy"), [60, 70, 80], layer="lstm", gates=("i", "f", "c", "o"))
    write_run(str(root / "vanishing"), [3, 2, 2, 1], learning=False)
    return root


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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


def test_report_text_fits_80_columns_and_has_no_colour_off_tty(runs, capsys):
    code, out, err = run_main(capsys, "report", str(runs))
    assert code == 0 and err == ""
    assert "\033[" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "run healthy" in out and "run vanishing" in out
    assert "grad_horizon" in out and "recurrent_kernel/f l2" in out
    assert "dead 0%" in out and "saturated 25%" in out
    assert "1 alert(s)" in out and "no alerts" in out
    # the horizon trend of the vanishing run: 3 -> 1
    line = next(l for l in out.split("run vanishing")[1].splitlines() if "grad_horizon" in l and "→" in l)
    assert "3 → 1 (finding < 10)" in line


def test_report_colour_when_forced(runs, capsys):
    code, out, _ = run_main(capsys, "report", "--color", "always", str(runs / "vanishing"))
    assert code == 0 and "\033[" in out


def test_report_json(runs, capsys):
    code, out, _ = run_main(capsys, "report", "--json", str(runs / "healthy"))
    data = json.loads(out)
    (run,) = data["runs"]
    (layer,) = run["layers"]
    assert layer["name"] == "lstm" and layer["timesteps"] == 100
    assert layer["latest"]["saturated_ratio"] == 0.25
    assert layer["grad_horizon"]["values"] == [60, 70, 80]
    assert list(layer["gate_norms"])[:4] == ["kernel/i", "kernel/f", "kernel/c", "kernel/o"]
    assert run["alerts"] == [] and run["epochs"] == [0, 1, 2]


def test_report_accepts_the_run_subdir_itself(runs, capsys):
    code, out, _ = run_main(capsys, "report", str(runs / "vanishing" / "rnn_monitor"))
    assert code == 0 and "simple_rnn" in out


def test_bad_input_is_one_line_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "file.txt"
    path.write_text("x")
    code, out, err = run_main(capsys, "report", str(path))
    assert code == 2 and "not a directory" in err and "Traceback" not in err
    # event files but no manifest (e.g. only Keras's TensorBoard callback wrote there)
    writer = SummaryWriter(str(tmp_path / "keras_only" / "rnn_monitor"))
    writer.scalar("loss", 1.0, 0)
    writer.close()
    code, out, err = run_main(capsys, "check", str(tmp_path / "keras_only"))
    assert code == 2 and "manifest" in err and err.count("\n") == 1


def test_cli_does_not_import_tensorflow(runs):
    code = (
        "import sys; from rnn_monitor.cli.main import main; rc = main(['report', sys.argv[1]]); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'; "
        "sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(runs)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


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


def test_run_without_epochs_is_no_data(tmp_path, capsys):
    writer = SummaryWriter(str(tmp_path / "fresh" / "rnn_monitor"))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "lstm"}]}, 0)
    writer.close()
    code, out, err = run_main(capsys, "check", str(tmp_path / "fresh"))
    assert code == 2 and "no epoch logged yet" in err and err.count("\n") == 1


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and "rnn-monitor" in capsys.readouterr().out


def test_long_runs_still_fit_80_columns():
    from rnn_monitor.cli import report, terminal

    style = terminal.Style(colour=False)
    values = {"values": [1.2e-5 * (1 + i) for i in range(500)]}
    line = report._trend("recurrent_kernel/o l2", values, style, 21, relative=True)
    assert len(line) <= 80 and "…" in line and line.endswith("(+49900.0%)")
    assert terminal.sparkline([0, 50, 100], lo=0, hi=100) == "▁▅█"
    assert terminal.sparkline([None, 1.0]) == " ▅"


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
