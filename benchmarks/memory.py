"""Peak memory of `fit` with and without RNNMonitor, each in its own process.

For every point of a grid (T timesteps x units, 3 stacked LSTM layers by default, batch 64, probe
batch 64) two fresh processes run the same thing except for the monitor:

* ``plain``    build the model, then one `fit` epoch of one training step;
* ``monitor``  the same `fit` with ``RNNMonitor(log_dir, probe_data=(x[:64], y[:64]))`` (its
  defaults: weights, probe, alerts), so the probe runs once, at the end of the epoch.

Each process reports its resident memory just before `fit` (VmRSS) and its peak (VmHWM, from
``/proc/self/status``); the parent also reads each child's ``ru_maxrss`` from `os.wait4` as a
cross-check. From the pair:

* training step's working set = peak(plain) - RSS before fit (plain): what one step of this
  `fit` (its first, traced) needs above the built model;
* probe's extra peak = peak(monitor) - peak(plain);
* **ratio** = probe's extra peak / training step's working set (target: <= 1.0,
  goal 0.5).

The model is the overhead benchmark's reference model made longer and wider:
``Embedding(96, 32) -> LSTM(units) x layers -> Dense(96)`` on random token ids (nothing is
downloaded). A child whose resident memory passes ``--max-rss-gb`` is stopped (the machine is
shared) and its row says so, with the memory it had reached as a lower bound.

    python benchmarks/memory.py                  # T in {100, 400, 1000} x units {128, 512}
    python benchmarks/memory.py --quick          # T in {100, 400} x units {128}
    python benchmarks/memory.py --points 400x256 # one point (the issue's 3 x LSTM 256, T = 400)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FULL_GRID = [(t, u) for u in (128, 512) for t in (100, 400, 1000)]
QUICK_GRID = [(100, 128), (400, 128)]

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "benchmarks")]
mode, T, units, layers, batch, log_dir = sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7]
monitor_kwargs = json.loads(sys.argv[8]) if len(sys.argv) > 8 else {}

def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0

import numpy as np
import keras
from rnn_monitor import RNNMonitor
from overhead import reference_model

vocab = 96
rng = np.random.default_rng(0)
x = rng.integers(0, vocab, size=(batch, T)).astype("int32")
y = rng.integers(0, vocab, size=(batch,))
keras.utils.set_random_seed(0)
model = reference_model(vocab, units=units, layers=layers, seq=T)
callbacks = []
if mode == "monitor":
    callbacks.append(RNNMonitor(log_dir, probe_data=(x[:64], y[:64]), **monitor_kwargs))
out = {"mode": mode, "rss_before_fit_mb": status("VmRSS")}
began = time.perf_counter()
model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=callbacks)
out["fit_seconds"] = time.perf_counter() - began
out["peak_rss_mb"] = status("VmHWM")
if callbacks:
    probe = callbacks[0]._parts.get("probe")
    out["probe_seconds"] = probe.last_seconds if probe is not None else None
print("RESULT " + json.dumps(out), flush=True)
"""


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def run_child(mode: str, timesteps: int, units: int, layers: int, batch: int,
              max_rss_mb: float, timeout: float, monitor_kwargs: Optional[dict] = None) -> dict:
    """One process: its report, plus ``maxrss_mb`` from wait4 and how it ended."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, ROOT, mode, str(timesteps), str(units), str(layers),
                 str(batch), os.path.join(tmp, "logs"), json.dumps(monitor_kwargs or {})],
                stdout=out_file, stderr=err_file, text=True,
            )
        watch = {"max_seen_mb": 0.0, "killed": None}
        done = threading.Event()
        began = time.monotonic()

        def watchdog() -> None:  # the machine is shared: stop a child before it takes it all
            while not done.wait(0.2):
                rss = _rss_mb(proc.pid)
                watch["max_seen_mb"] = max(watch["max_seen_mb"], rss)
                reason = None
                if rss > max_rss_mb:
                    reason = f"over --max-rss-gb ({rss / 1024:.1f} GB)"
                elif time.monotonic() - began > timeout:
                    reason = f"over --timeout ({timeout:.0f} s)"
                if reason and not done.is_set():
                    watch["killed"] = reason
                    proc.kill()
                    return

        thread = threading.Thread(target=watchdog, daemon=True)
        thread.start()
        _, status, usage = os.wait4(proc.pid, 0)  # the only wait: its rusage is this child's
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
        thread.join()
        with open(out_path) as handle:
            out_text = handle.read()
        with open(err_path) as handle:
            err_text = handle.read()
    result: dict = {"mode": mode, "maxrss_mb": usage.ru_maxrss / 1024.0, "wall_seconds": time.monotonic() - began}
    for line in out_text.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[len("RESULT "):]))
    if watch["killed"]:
        result["stopped"] = watch["killed"]
        result["peak_rss_at_least_mb"] = watch["max_seen_mb"]
    elif proc.returncode != 0 or "peak_rss_mb" not in result:
        result["error"] = err_text[-2000:]
    return result


def measure(timesteps: int, units: int, layers: int, batch: int, max_rss_mb: float, timeout: float,
            monitor_kwargs: Optional[dict] = None) -> dict:
    row: dict = {"timesteps": timesteps, "units": units, "layers": layers, "batch": batch,
                 "monitor_kwargs": monitor_kwargs or {}}
    plain = run_child("plain", timesteps, units, layers, batch, max_rss_mb, timeout)
    print("  plain  ", json.dumps(plain), flush=True)
    row["plain"] = plain
    if "peak_rss_mb" not in plain:
        return row
    monitor = run_child("monitor", timesteps, units, layers, batch, max_rss_mb, timeout, monitor_kwargs)
    print("  monitor", json.dumps(monitor), flush=True)
    row["monitor"] = monitor
    row["train_working_set_mb"] = plain["peak_rss_mb"] - plain["rss_before_fit_mb"]
    if "peak_rss_mb" in monitor:
        row["probe_extra_peak_mb"] = monitor["peak_rss_mb"] - plain["peak_rss_mb"]
    elif "peak_rss_at_least_mb" in monitor:
        row["probe_extra_peak_at_least_mb"] = monitor["peak_rss_at_least_mb"] - plain["peak_rss_mb"]
    extra = row.get("probe_extra_peak_mb", row.get("probe_extra_peak_at_least_mb"))
    if extra is not None and row["train_working_set_mb"] > 0:
        row["ratio" if "probe_extra_peak_mb" in row else "ratio_at_least"] = extra / row["train_working_set_mb"]
    return row


def table(rows: list) -> str:
    """Markdown table of the rows (sizes in MB)."""
    lines = [
        "| T | layers x units | training step working set | probe's extra peak | ratio | fit s (plain / monitor) | first probe s (with tracing) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        plain, monitor = row.get("plain", {}), row.get("monitor", {})
        if "probe_extra_peak_mb" in row:
            extra, ratio = f"{row['probe_extra_peak_mb']:.0f} MB", f"{row['ratio']:.2f}x"
        elif "probe_extra_peak_at_least_mb" in row:
            extra = f">= {row['probe_extra_peak_at_least_mb']:.0f} MB ({monitor.get('stopped')})"
            ratio = f">= {row['ratio_at_least']:.2f}x"
        else:
            extra = ratio = "not run"
        working = f"{row['train_working_set_mb']:.0f} MB" if "train_working_set_mb" in row else "failed"
        fit = f"{plain.get('fit_seconds', float('nan')):.1f} / {monitor.get('fit_seconds', float('nan')):.1f}"
        probe = monitor.get("probe_seconds")
        probe_text = f"{probe:.1f}" if probe is not None else "-"
        lines.append(
            f"| {row['timesteps']} | {row['layers']} x {row['units']} | {working} | {extra} | "
            f"{ratio} | {fit} | {probe_text} |"
        )
    return "\n".join(lines)


def _parse_points(text: Optional[str]) -> Optional[list]:
    if not text:
        return None
    points = []
    for item in text.split(","):
        t, u = item.lower().split("x")
        points.append((int(t), int(u)))
    return points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T in {100, 400} x units {128}")
    parser.add_argument("--points", default=None, help="comma-separated TxUNITS, e.g. 400x256,1000x128")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-rss-gb", type=float, default=10.0, help="stop a child above this RSS")
    parser.add_argument("--timeout", type=float, default=900.0, help="stop a child after this many seconds")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--monitor-kwargs", default="{}",
                        help='extra RNNMonitor arguments as JSON, e.g. \'{"importance": false}\' (the probe without '
                        "the occlusion importance of the interpretability part)")
    args = parser.parse_args(argv)
    points = _parse_points(args.points) or (QUICK_GRID if args.quick else FULL_GRID)
    rows = []
    for timesteps, units in points:
        print(f"T={timesteps} units={units} layers={args.layers} batch={args.batch}", flush=True)
        rows.append(measure(timesteps, units, args.layers, args.batch, args.max_rss_gb * 1024, args.timeout,
                            json.loads(args.monitor_kwargs)))
        if args.json:  # keep what was measured even if a later point is interrupted
            with open(args.json, "w") as handle:
                json.dump(rows, handle, indent=1)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
