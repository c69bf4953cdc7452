"""Stopping the demo stops its TensorBoard too: the port is free again (Ctrl-C, SIGTERM, or killed);
TensorBoard starts quietly: the demo says where to open it, without TensorFlow's start-up lines."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_demo_frees_the_tensorboard_port(tmp_path, sig):
    port = _free_port()
    code = f"import sys, demo; sys.exit(demo.serve({str(tmp_path)!r}, '127.0.0.1', {port}))"
    demo = subprocess.Popen(
        [sys.executable, "-c", code], cwd=EXAMPLES, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # the signal reaches the demo alone, as a `kill` would
    )
    try:
        assert _wait(lambda: _listening(port), 60), "TensorBoard did not start"
        os.kill(demo.pid, sig)
        assert _wait(lambda: not _listening(port), 20), f"port {port} still served after {sig.name}"
        assert demo.wait(timeout=20) is not None
    finally:
        if demo.poll() is None:
            demo.kill()
        os.system(f"pkill -f 'tensorboard --logdir {tmp_path}' >/dev/null 2>&1")


def test_tensorboard_starts_quietly_and_the_demo_says_where_to_open_it(tmp_path):
    port = _free_port()
    code = f"import sys, demo; sys.exit(demo.serve({str(tmp_path)!r}, '127.0.0.1', {port}))"
    demo = subprocess.Popen([sys.executable, "-c", code], cwd=EXAMPLES, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert _wait(lambda: _listening(port), 60), "TensorBoard did not start"
        time.sleep(2)  # anything TensorBoard prints after it listens
        os.kill(demo.pid, signal.SIGINT)
        out, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
        os.system(f"pkill -f 'tensorboard --logdir {tmp_path}' >/dev/null 2>&1")
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == [f"Serving TensorBoard: http://127.0.0.1:{port}/#rnn_monitor  (Ctrl-C to stop)"], out
