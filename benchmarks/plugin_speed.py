"""How fast the RNN Monitor dashboard answers on a large log (a measurement, not a test).

Writes (or reuses) a synthetic log of 100 epochs x 4 layers x T=200 x 256 units laid out as
`rnn_monitor.logdir.metadata` says (`make_synthetic_log.py`), starts a real `tensorboard` with
``--samples_per_plugin rnn_monitor=0`` (every epoch kept: the worst case), and times:

* each JSON route over HTTP, first ("cold": decoded from the data provider) and warm (median
  of 5 repeats; the plugin caches decoded series until they change), for the Rust data server
  (``--load_fast=true``) and the Python loader (``--load_fast=false``);
* in headless Chromium, the first paint of the gradient view: milliseconds from the start of
  the plugin iframe's navigation until the g[t] heatmap and the per-unit heatmap are drawn.

    .venv/bin/python benchmarks/plugin_speed.py [--logdir DIR] [--loaders true,false] [--json OUT]

Target: every route < 300 ms, first paint < 2 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

HERE = pathlib.Path(__file__).resolve().parent
TENSORBOARD = os.path.join(os.path.dirname(sys.executable), "tensorboard")
CHROMIUM = "/usr/bin/chromium"


def _synthetic():
    spec = importlib.util.spec_from_file_location("make_synthetic_log", HERE / "make_synthetic_log.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[float, int, bytes]:
    """(milliseconds, HTTP status, body); an error status is a result too, not an exception."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            body = resp.read()
            code = resp.status
    except urllib.error.HTTPError as err:
        body, code = err.read(), err.code
    return (time.perf_counter() - start) * 1000.0, code, body


def start_tensorboard(logdir: str, load_fast: str, command: Optional[str] = None) -> tuple[subprocess.Popen, str, float]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        (shlex.split(command) if command else [TENSORBOARD]) + ["--logdir", logdir, "--host", "127.0.0.1", "--port", str(port),
         f"--load_fast={load_fast}", "--samples_per_plugin", "rnn_monitor=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    start = time.time()
    # Ready = the last layer's g[t] series holds every epoch.
    while time.time() - start < 900:
        try:
            _, _, body = _get(url + "/data/plugin/rnn_monitor/runs")
            runs = json.loads(body)["runs"]
            if runs and runs[0]["layers"]:
                if runs[0]["layers"][-1]["has"].get("temporal_flow"):
                    # The loaders read files in order; wait until the last epoch is in, then a
                    # little longer, without touching the series that will be timed.
                    _, _, b = _get(f"{url}/data/plugin/rnn_monitor/alerts?run={runs[0]['run']}")
                    alerts = json.loads(b)
                    if any(a["epoch"] == EXPECTED_EPOCHS - 1 for a in alerts["alerts"]) or _last_step_seen(url, runs[0]):
                        break
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(1.0)
    else:
        proc.terminate()
        raise RuntimeError("tensorboard did not load the log in 15 minutes")
    loaded = time.time() - start
    time.sleep(2.5)  # let the plugin's short-lived listing cache expire: cold means cold
    return proc, url, loaded


def _last_step_seen(url: str, run: dict) -> bool:
    q = urllib.parse.urlencode({"run": run["run"], "layer": run["layers"][-1]["name"]})
    _, _, b = _get(f"{url}/data/plugin/rnn_monitor/health?{q}")
    series = json.loads(b)["series"]
    return bool(series) and all(s["epochs"] and s["epochs"][-1] == EXPECTED_EPOCHS - 1 for s in series.values())


def time_routes(url: str, repeats: int = 5) -> dict:
    _, _, body = _get(url + "/data/plugin/rnn_monitor/runs")
    run = json.loads(body)["runs"][0]
    layer = run["layers"][0]["name"]
    last_layer = run["layers"][-1]["name"]
    base = {"run": run["run"], "layer": layer}
    other = {"run": run["run"], "layer": last_layer}
    fresh = {"run": run["run"], "layer": run["layers"][1]["name"]}
    routes = {
        "runs": ("runs", {}),
        "gradients": ("gradients", base),
        "gradient_units (epoch 50)": ("gradient_units", dict(base, epoch=50)),
        "gradient_units (output, last)": ("gradient_units", dict(base, kind="output_gradients")),
        "flow": ("flow", base),
        "activations (h, epoch 50)": ("activations", dict(base, state="h", epoch=50)),
        # A layer nothing has touched yet, asked directly: no read-ahead, the worst case.
        "activations (h, untouched layer)": ("activations", dict(fresh, state="h")),
        "gradient_units (untouched layer)": ("gradient_units", fresh),
        "flow (untouched layer)": ("flow", fresh),
        # Another layer, in the page's order (/gradients first starts reading ahead).
        "gradients (other layer)": ("gradients", other),
        "gradient_units (other layer, last)": ("gradient_units", other),
        "flow (other layer)": ("flow", other),
        "activations (h, other layer)": ("activations", dict(other, state="h")),
        "health": ("health", base),
        "alerts": ("alerts", {"run": run["run"]}),
    }
    out = {}
    for name, (route, params) in routes.items():
        full = f"{url}/data/plugin/rnn_monitor/{route}?{urllib.parse.urlencode(params)}"
        cold, code, body = _get(full)
        warm = [_get(full)[0] for _ in range(repeats)]
        out[name] = {"status": code, "cold_ms": round(cold, 1), "warm_ms": round(statistics.median(warm), 1),
                     "kB": round(len(body) / 1024, 1)}
    return out


def first_paint(url: str, repeats: int = 3) -> dict:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            t0 = time.perf_counter()
            page.goto(url + "/#rnn_monitor")
            frame = page.wait_for_selector("iframe[src*='plugin_entry.html']", timeout=60000).content_frame()
            frame.wait_for_selector("#grad-heatmap[data-painted-at]", timeout=60000)
            frame.wait_for_selector("#unit-heatmap[data-painted-at]", timeout=60000)
            page_total = (time.perf_counter() - t0) * 1000
            grad = float(frame.get_attribute("#grad-heatmap", "data-painted-at"))
            unit = float(frame.get_attribute("#unit-heatmap", "data-painted-at"))
            results.append({"heatmap_ms": grad, "unit_heatmap_ms": unit, "page_incl_tensorboard_ms": round(page_total)})
            page.close()
        browser.close()
    return {
        "runs": results,
        "median_heatmap_ms": statistics.median(r["heatmap_ms"] for r in results),
        "median_unit_heatmap_ms": statistics.median(r["unit_heatmap_ms"] for r in results),
        "median_page_incl_tensorboard_ms": statistics.median(r["page_incl_tensorboard_ms"] for r in results),
    }


EXPECTED_EPOCHS = 100


def main(argv=None) -> int:
    global EXPECTED_EPOCHS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", help="reuse this log (default: generate one in a temp dir)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--timesteps", type=int, default=200)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--loaders", default="true,false", help="--load_fast values to measure")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--float16-bytes", action="store_true",
                        help="generate float16 tensors as raw bytes (tensor_content), not half_val")
    parser.add_argument("--gradients-float32", action="store_true",
                        help="generate G and output gradients in float32, as RNNMonitor writes them")
    parser.add_argument("--text-samples", type=int, default=4, help="sequences with activations")
    parser.add_argument("--states", default="h",
                        help="activation states written per layer ('none': RNNMonitor's default cap "
                             "leaves them all out at 4 x T=1000 x 512)")
    parser.add_argument("--time-bin", type=int, default=1,
                        help="G and output gradients as k-step means (RNNMonitor's default at "
                             "4 x T=1000 x 512 is 15)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--tensorboard", default=None,
                        help="command that starts tensorboard (default: the venv's `tensorboard`)")
    args = parser.parse_args(argv)
    EXPECTED_EPOCHS = args.epochs

    logdir = args.logdir
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "log": f"{args.epochs} epochs x {args.layers} layers x T={args.timesteps} x {args.units} units",
                     "float16_bytes": args.float16_bytes, "gradients_float32": args.gradients_float32,
                     "text_samples": args.text_samples, "states": args.states, "time_bin": args.time_bin}
    if not logdir or not os.path.isdir(os.path.join(logdir, "rnn_monitor")):
        logdir = logdir or tempfile.mkdtemp(prefix="rnn_monitor_bench_")
        t = time.time()
        synthetic = _synthetic()
        results["fast_crc"] = synthetic.use_fast_crc()
        synthetic.write_log(logdir, epochs=args.epochs, n_layers=args.layers, timesteps=args.timesteps,
                               units=args.units, text_samples=args.text_samples,
                               states=[] if args.states == "none" else args.states.split(","),
                               float16_bytes=args.float16_bytes, gradients_float32=args.gradients_float32,
                               time_bin=args.time_bin)
        results["write_s"] = round(time.time() - t, 1)
    run_dir = os.path.join(logdir, "rnn_monitor")
    results["log_MB"] = round(sum(os.path.getsize(os.path.join(run_dir, f)) for f in os.listdir(run_dir)) / 2**20, 1)
    print(json.dumps({k: v for k, v in results.items()}), flush=True)

    for load_fast in [v for v in args.loaders.split(",") if v]:
        proc, url, load_s = start_tensorboard(logdir, load_fast, args.tensorboard)
        try:
            entry = {"tensorboard_load_s": round(load_s, 1), "routes": time_routes(url)}
            if not args.no_browser and os.path.exists(CHROMIUM):
                entry["first_paint"] = first_paint(url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        results[f"load_fast={load_fast}"] = entry
        print(json.dumps({f"load_fast={load_fast}": entry}, indent=1), flush=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
