"""`rnn-monitor report`: 80 columns, JSON, a run given by its own folder, runs without epochs,
long trends."""

import json

from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.writer import SummaryWriter

from cli_logs import run_main


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


def test_run_without_epochs_is_no_data(tmp_path, capsys):
    writer = SummaryWriter(str(tmp_path / "fresh" / "rnn_monitor"))
    writer.json_tensor(metadata.MANIFEST, {"version": 1, "layers": [{"name": "lstm"}]}, 0)
    writer.close()
    code, out, err = run_main(capsys, "check", str(tmp_path / "fresh"))
    assert code == 2 and "no epoch logged yet" in err and err.count("\n") == 1


def test_long_runs_still_fit_80_columns():
    from rnn_monitor.cli import report, terminal

    style = terminal.Style(colour=False)
    values = {"values": [1.2e-5 * (1 + i) for i in range(500)]}
    line = report._trend("recurrent_kernel/o l2", values, style, 21, relative=True)
    assert len(line) <= 80 and "…" in line and line.endswith("(+49900.0%)")
    assert terminal.sparkline([0, 50, 100], lo=0, hi=100) == "▁▅█"
    assert terminal.sparkline([None, 1.0]) == " ▅"
