"""The demo behind `./dev demo`: train the char-LSTM, report, find telling units, serve TensorBoard.

    ./dev demo                      # default size, then serve TensorBoard on 127.0.0.1:6006
    ./dev demo --no-serve --size small --logdir /tmp/runs
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import char_lstm  # noqa: E402

# Features of Python source that char-LSTM units are known to pick up (Karpathy et al. 2015).
FEATURES = {
    "inside a quoted string": r"'[^'\n]*'|\"[^\"\n]*\"",
    "indentation": r"^ +",
    "inside a comment": r"#[^\n]*",
    "inside parentheses": r"\([^()\n]*\)",
}


def report_units(log_dir: str, top: int = 3) -> list[str]:
    """Lines naming, per layer and feature, the units most active on that feature."""
    from rnn_monitor import load_run
    from rnn_monitor.stats.relevance import feature_mask, rank_units

    run = load_run(log_dir)
    tokens = run.tokens
    lines = []
    if tokens is None:
        return ["(no probe text logged: no units to rank)"]
    for layer in run.layers:
        if "h" not in run.activation_states(layer):
            continue
        acts = run.activations(layer, "h")
        for name, pattern in FEATURES.items():
            mask = feature_mask(tokens[: acts.shape[0]], pattern)
            if not mask.any() or mask.all():
                lines.append(f"  {layer:8s} {name:24s} (not in the probe text)")
                continue
            ranked = rank_units(acts, tokens[: acts.shape[0]], pattern, top=top)
            shown = ", ".join(f"#{u} ({score:+.2f})" for u, score in ranked)
            lines.append(f"  {layer:8s} {name:24s} {shown}")
    return lines


def report_periodic_and_generated(log_dir: str, top: int = 3) -> list[str]:
    """Lines naming each layer's most periodic units and the text generated at the last epoch."""
    from rnn_monitor import load_run
    from rnn_monitor.stats.periodicity import periodic_units

    run = load_run(log_dir)
    lines = []
    for layer in run.layers:
        try:
            spectrum = run.periodicity(layer)
        except KeyError:
            continue
        found = periodic_units(spectrum)[:top]
        shown = ", ".join(f"#{u} (period {1 / f:.1f} steps, {s:.0%} of its power)" for u, f, s in found if f > 0)
        lines.append(f"  {layer:8s} periodic units: {shown or 'none above the threshold'}")
    try:
        gen = run.generated()
        text = gen["text"].replace("\n", "\u21b5")
        lines.append(f"  generated at epoch {gen['epoch']}: {text[:120]!r}")
    except KeyError:
        pass
    return lines


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL when the demo dies without stopping it
    (killed outright; an orderly stop sends SIGTERM first, `stop_process_group`). Not SIGTERM:
    TensorBoard's handler then writes to its output, a pipe the dead demo no longer reads, and
    the broken pipe keeps it from exiting."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the signal handlers below still stop it
        pass


def stop_process_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM to the child's whole process group, SIGKILL if it is still there after `timeout`."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# What TensorBoard's process prints at start that says nothing to a user of the demo: TensorFlow's
# start-up log lines (CPU features, "failed call to cuInit" on a machine without a GPU), the note
# on its fast loader, its own address line (the demo prints where to open the dashboard) and its
# line when the demo stops it.
_START_UP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IWEF]\d{4} |To enable the following instructions|"
    r"NOTE: Using experimental fast data loading|\s+\"--load_fast=false\"|\s+https://github\.com/tensorflow/"
    r"tensorboard/issues/4784|TensorBoard \S+ at http|TensorBoard caught SIG\w+; exiting|\s*$)")


def _forward_quietly(stream) -> None:
    """Copy TensorBoard's output to stderr, without its start-up noise: errors still show."""
    for line in stream:
        if not _START_UP_NOISE.match(line):
            sys.stderr.write(line)


def serve(logdir: str, host: str, port: int) -> int:
    """Run TensorBoard until it exits or the demo is stopped (Ctrl-C, SIGTERM, SIGHUP).

    TensorBoard runs in its own process group, so stopping the demo always stops it too and the
    port is free again: the demo's signal handlers stop the group, and the child is told by the
    kernel to stop if the demo is killed outright.
    """
    tensorboard = shutil.which("tensorboard", path=os.path.dirname(sys.executable)) or shutil.which("tensorboard")
    if tensorboard is None:
        print("tensorboard is not installed in this environment", file=sys.stderr)
        return 1
    command = [tensorboard, "--logdir", logdir, "--host", host, "--port", str(port), "--samples_per_plugin", "rnn_monitor=0"]
    print(f"\nServing TensorBoard: http://{host}:{port}/#rnn_monitor  (Ctrl-C to stop)", flush=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    threading.Thread(target=_forward_quietly, args=(process.stdout,), daemon=True).start()

    def stop(signum, _frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_process_group(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train a char-LSTM on Python's own source with RNNMonitor, then open TensorBoard.")
    parser.add_argument("--logdir", "--log-dir", dest="logdir", default="runs", help="TensorBoard log root (default: runs)")
    parser.add_argument("--size", choices=sorted(char_lstm.SIZES), default="default")
    parser.add_argument("--epochs", type=int, default=None, help="default: 8 (default size), 2 (small)")
    parser.add_argument("--no-serve", action="store_true", help="stop after training and the report")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6006)
    args = parser.parse_args(argv)

    run_dir = os.path.join(args.logdir, "char_lstm")
    if os.path.isdir(run_dir):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = os.path.join(args.logdir, f"char_lstm-{stamp}")
    char_lstm.train(run_dir, args.size, args.epochs)

    print("\n== rnn-monitor report ==", flush=True)
    cli = shutil.which("rnn-monitor", path=os.path.dirname(sys.executable)) or shutil.which("rnn-monitor")
    subprocess.run([cli, "report", run_dir], check=False)

    print("\n== units that respond to features of the text (mean activation inside minus outside) ==")
    print("\n".join(report_units(run_dir)))
    print("\n== periodic units (Fourier) and generated text ==")
    print("\n".join(report_periodic_and_generated(run_dir)))

    if args.no_serve:
        print(f"\nLogs in {run_dir}. To look at them: tensorboard --logdir {args.logdir}")
        return 0
    return serve(args.logdir, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
