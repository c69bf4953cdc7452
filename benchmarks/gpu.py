"""The monitor's epoch end on whatever device runs this, in training steps, for each probe path.

For two models, the reference model of `overhead.py` (Embedding 32 -> LSTM 128 -> LSTM 128 ->
Dense, T = 100, batch 64) and a large one (Embedding 32 -> 3 x LSTM 512 -> Dense, T = 1000,
batch 64), on random token ids (nothing is downloaded), it prints:

* the device and the Keras backend (``KERAS_BACKEND``: tensorflow or jax);
* the training step: the median of `train_on_batch` calls after the first (compiled) one;
* per probe path ("kernel": the layers' own fused kernel where the backend fuses them, "loop":
  the cell stepped by Keras's own loop), the probe alone and the monitor's whole epoch end
  (weights, probe, alerts, writes; token importance off: it runs every k-th logged epoch and is
  measured by ``overhead.py --interpret``; alerts off: they read the loss of real epochs), as the median of the calls after the first (which
  compiles), in seconds and in training steps. On a CPU the kernel path runs the same arithmetic
  through Keras's generic loop (no fused kernel there).

    python benchmarks/gpu.py                 # both models (minutes on a GPU; the large one is slow on a CPU)
    python benchmarks/gpu.py --models reference
    KERAS_BACKEND=jax python benchmarks/gpu.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numpy as np  # noqa: E402

MODELS = {"reference": dict(timesteps=100, units=128, layers=2), "large": dict(timesteps=1000, units=512, layers=3)}
VOCAB, BATCH = 96, 64


def device() -> str:
    """The device the Keras backend computes on, in words."""
    import keras

    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU: {details.get('device_name', gpus[0].name)} (TensorFlow {tf.__version__})"
        return f"CPU, {os.cpu_count()} cores (TensorFlow {tf.__version__})"
    if name == "jax":
        import jax

        return f"{jax.devices()[0].device_kind} ({jax.default_backend()}, JAX {jax.__version__})"
    return name


def build(timesteps: int, units: int, layers: int):
    import keras

    stack = [keras.Input((timesteps,), dtype="int32"), keras.layers.Embedding(VOCAB, 32)]
    for i in range(layers):
        stack.append(keras.layers.LSTM(units, return_sequences=i < layers - 1, name=f"lstm_{i + 1}"))
    stack.append(keras.layers.Dense(VOCAB))
    model = keras.Sequential(stack)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _median_after_first(fn, calls: int) -> tuple[float, float]:
    """(first call's seconds, median of the next `calls`)."""
    times = []
    for _ in range(calls + 1):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times[0], statistics.median(times[1:])


def measure(name: str, timesteps: int, units: int, layers: int, calls: int) -> dict:
    import keras

    from rnn_monitor import RNNMonitor
    from rnn_monitor.config import Thresholds
    from rnn_monitor.model.anatomy import find_rnn_layers
    from rnn_monitor.probe.graph import Prober

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, size=(BATCH, timesteps)).astype("int32")
    y = rng.integers(0, VOCAB, size=(BATCH,))
    model = build(timesteps, units, layers)
    first, step = _median_after_first(lambda: model.train_on_batch(x, y), calls)
    row = {"model": name, "timesteps": timesteps, "units": units, "layers": layers, "batch": BATCH,
           "training_step_s": round(step, 4), "training_step_first_s": round(first, 2), "paths": {}}
    infos = find_rnn_layers(model)
    for path in ("kernel", "loop"):
        prober = Prober(model, infos, Thresholds(), 4, gradients=True, h_samples=16, path=path)
        probe_first, probe = _median_after_first(lambda: prober.run(x, y), calls)
        with tempfile.TemporaryDirectory() as log_dir:
            monitor = RNNMonitor(log_dir, probe_data=(x, y), probe_path=path, importance=False, alerts=False)
            monitor.set_model(model)
            monitor.set_params({"epochs": calls + 1, "steps": 1})
            monitor.on_train_begin()
            epoch = iter(range(calls + 1))
            end_first, end = _median_after_first(lambda: monitor._log_epoch(next(epoch), {"loss": 1.0}), calls)
            monitor.writer.close()
        row["paths"][path] = {
            "served": sorted({t.path for t in prober.traced}),
            "probe_s": round(probe, 4), "probe_steps": round(probe / step, 2), "probe_first_s": round(probe_first, 2),
            "epoch_end_s": round(end, 4), "epoch_end_steps": round(end / step, 2), "epoch_end_first_s": round(end_first, 2),
        }
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--calls", type=int, default=5, help="timed calls after the first of each")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    import keras

    began = time.perf_counter()
    result = {"date": time.strftime("%Y-%m-%d"), "device": device(), "backend": keras.backend.backend(),
              "keras": keras.__version__, "rows": []}
    print(f"{result['date']}  {result['device']}  Keras {keras.__version__} ({result['backend']})", flush=True)
    for name in args.models.split(","):
        row = measure(name, calls=args.calls, **MODELS[name])
        result["rows"].append(row)
        print(f"{name}: T = {row['timesteps']}, {row['layers']} x LSTM {row['units']}, batch {BATCH}: "
              f"training step {row['training_step_s']:.4f} s", flush=True)
        for path, p in row["paths"].items():
            print(f"  {path:6s} (serves {'/'.join(p['served'])}): probe {p['probe_s']:.4f} s = {p['probe_steps']} steps, "
                  f"epoch end {p['epoch_end_s']:.4f} s = {p['epoch_end_steps']} steps "
                  f"(first call {p['epoch_end_first_s']} s)", flush=True)
    result["seconds"] = round(time.perf_counter() - began, 1)
    print(f"took {result['seconds']} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
