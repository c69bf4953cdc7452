"""Every `python` block of the README runs as written, top to bottom, in an empty directory."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.slow


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_blocks_run_in_an_empty_directory(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2, "the README's usage and notebook blocks are python blocks"
    # What the README's comments promise about the run, checked after its own code.
    check = (
        "\nassert run.layers == ['lstm'], run.layers\n"
        "assert list(run.epochs) == [0, 1, 2], run.epochs\n"
        "assert run.timestep_gradients('lstm').shape == (3, T, 128)\n"
        "assert run.average_input('lstm').shape == (128, 10, len(chars))\n"
        "assert gen.text.startswith('def ') and len(gen.tokens) == 44\n"
        "assert gen.activations['lstm']['h'].shape == (44, 128)\n"
        "print('README OK')\n"
    )
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks) + check)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "README OK" in proc.stdout
    assert (tmp_path / "runs" / "exp1" / "rnn_monitor").is_dir()
