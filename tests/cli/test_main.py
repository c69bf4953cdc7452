"""The command itself: bad input is one line, no TensorFlow import, --version."""

import subprocess
import sys

import pytest

from rnn_monitor.cli import main as cli
from rnn_monitor.logdir.writer import SummaryWriter

from cli_logs import run_main


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


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and "rnn-monitor" in capsys.readouterr().out
