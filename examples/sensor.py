"""An LSTM that spots a pattern in continuous sensor rows: the input each unit likes to see.

Each sequence is 60 steps of 8 noisy sensor channels. Half of them carry a *sweep*: a pulse
that crosses the channels one step at a time (channel 0 at step t, channel 1 at t+1, ...,
channel 7 at t+7), at a random place; the label is whether the sweep is there. The units that
detect it like to see a diagonal: in TensorBoard's Images tab, ``lstm/average_input`` shows, for
each unit, the activation-weighted average of the 10 input rows before each step (rows: window
positions, oldest at the top; columns: the 8 channels), and the RNN Monitor tab's Units view
shows the same per unit and epoch. The occlusion importance of the text view marks the sweep's
steps.

    python examples/sensor.py --logdir runs/sensor             # default size, ~1 minute
    python examples/sensor.py --size small --logdir /tmp/sensor  # quick (CI)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

CHANNELS = 8
STEPS = 60
SIZES = {"small": {"epochs": 3, "samples": 768}, "default": {"epochs": 8, "samples": 4000}}


def make_data(n: int, seed: int = 0, noise: float = 0.3):
    """(x [n, STEPS, CHANNELS] float32, y [n, 1] float32, where [n]: sweep start or -1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, noise, size=(n, STEPS, CHANNELS)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    where = np.full(n, -1)
    for i in np.nonzero(y)[0]:
        t = int(rng.integers(0, STEPS - CHANNELS))
        where[i] = t
        x[i, t + np.arange(CHANNELS), np.arange(CHANNELS)] += 2.0
    return x, y[:, None], where


def sweep_pattern(window: int = 10) -> np.ndarray:
    """[window, CHANNELS]: the sweep as a unit that fires right after it would see it."""
    pattern = np.zeros((window, CHANNELS), np.float32)
    for k in range(CHANNELS):
        pattern[window - CHANNELS + k, k] = 1.0
    return pattern


def build_model(units: int = 32):
    import keras

    model = keras.Sequential([
        keras.Input((STEPS, CHANNELS)),
        keras.layers.LSTM(units, name="lstm"),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="sweep_detector")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(log_dir: str, size: str = "default", verbose: int = 1):
    import keras

    from rnn_monitor import RNNMonitor

    keras.utils.set_random_seed(0)
    settings = SIZES[size]
    x, y, _ = make_data(settings["samples"])
    probe_x, probe_y, _ = make_data(64, seed=1)
    model = build_model()
    monitor = RNNMonitor(log_dir, probe_data=(probe_x, probe_y), unit_samples=64)
    history = model.fit(x, y, epochs=settings["epochs"], batch_size=64, validation_split=0.1,
                        callbacks=[monitor], verbose=verbose)
    return model, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", "--log-dir", dest="logdir", default="runs/sensor")
    parser.add_argument("--size", choices=sorted(SIZES), default="default", help="small: a quick run (CI size)")
    args = parser.parse_args(argv)
    _, history = train(args.logdir, args.size)
    from rnn_monitor import load_run

    run = load_run(args.logdir)
    avg = run.average_input("lstm")  # [units, window, channels]
    pattern = sweep_pattern(avg.shape[1])
    flat = avg.reshape(len(avg), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1) * np.linalg.norm(pattern - pattern.mean())
    match = (flat @ (pattern - pattern.mean()).ravel()) / np.where(norms > 0, norms, 1.0)
    best = np.argsort(-match)[:3]
    print(f"validation accuracy {history.history['val_accuracy'][-1]:.3f}; logs in {args.logdir}")
    print("units whose average input looks most like the sweep (correlation with the diagonal): "
          + ", ".join(f"#{u} ({match[u]:+.2f})" for u in best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
