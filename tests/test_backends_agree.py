"""The same log on every backend: the same model with the same weights, probed under
``KERAS_BACKEND=tensorflow`` (through each path) and ``KERAS_BACKEND=jax``, logs the same
per-timestep gradients, output gradients, gradient norms, temporal flow, unit ratios, horizons,
gate norms and alerts, to 1e-5. Each backend runs in its own process (a process has one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnn_monitor import load_run

CHILD = r"""
import json, os, sys
import numpy as np
import keras
from rnn_monitor import RNNMonitor

log_dir, weights_path, path = sys.argv[1:4]
L = keras.layers
inp = keras.Input((12,), dtype="int32")
h = L.Embedding(20, 6, mask_zero=True)(inp)  # masked steps: each backend's own masking rule
h = L.LSTM(8, return_sequences=True, name="lstm")(h)
h = L.Bidirectional(L.GRU(5, return_sequences=True), name="bi")(h)
h = L.SimpleRNN(4, name="simple")(h)
u = L.Embedding(20, 6)(inp)  # unmasked: the kernel path serves these where it is asked for
u = L.LSTM(6, return_sequences=True, name="plain_lstm")(u)
u = L.GRU(4, go_backwards=True, name="plain_gru")(u)
model = keras.Model(inp, L.Dense(3)(L.Concatenate()([h, u])))
model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
if not os.path.exists(weights_path):  # the first child: the weights every backend then starts from
    np.savez(weights_path, *[np.asarray(w) for w in model.get_weights()])
stored = np.load(weights_path)
model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
x, y = np.load(weights_path + ".data.npy"), np.load(weights_path + ".labels.npy")
monitor = RNNMonitor(log_dir, probe_data=(x, y), vocabulary=[chr(97 + i) for i in range(20)], probe_path=path,
                     raise_errors=True, importance=False)
model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=[monitor])
print("BACKEND", keras.backend.backend())
print("PATHS", json.dumps({t.info.name: t.path for t in monitor._parts["probe"]._prober.traced}))
"""


def _child(backend: str, log_dir: str, weights: str, path: str) -> dict:
    """Run the child; the path that served each layer."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run([sys.executable, "-c", CHILD, log_dir, weights, path], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"BACKEND {backend}" in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("PATHS ")]
    return json.loads(lines[0][len("PATHS "):]) if lines else {}


def test_tensorflow_and_jax_log_the_same_numbers_on_the_same_weights(tmp_path):
    pytest.importorskip("jax", reason="JAX is not installed (pip install jax, or ./dev test installs it)")
    weights = str(tmp_path / "weights.npz")  # written by the first child
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(8, 12)).astype("int32")
    for b, n in enumerate([12, 5, 9, 12, 2, 12, 7, 12]):
        x[b, n:] = 0
    np.save(weights + ".data.npy", x)
    np.save(weights + ".labels.npy", rng.integers(0, 3, size=(8,)))
    runs = {}
    for name, backend, path in (("tf", "tensorflow", "loop"), ("tf_kernel", "tensorflow", "kernel"), ("jax", "jax", "loop")):
        served = _child(backend, str(tmp_path / name), weights, path)
        kernel = {"plain_lstm", "plain_gru"} if path == "kernel" else set()
        assert {layer for layer, p in served.items() if p == "kernel"} == kernel, (name, served)
        runs[name] = load_run(str(tmp_path / name))
    ref = runs["tf"]
    assert sorted(ref.layers) == sorted(["lstm", "bi/forward", "bi/backward", "simple", "plain_lstm", "plain_gru"])
    for name, run in runs.items():
        assert run.layers == ref.layers and run.epochs == ref.epochs == [0, 1, 2]
        for layer in ref.layers:
            for series in ("timestep_gradients", "output_gradients", "timestep_grad_norm", "temporal_flow"):
                a, b = getattr(ref, series)(layer), getattr(run, series)(layer)
                scale = np.nanmax(np.abs(a))
                assert scale > 0, (layer, series)
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * scale, err_msg=f"{name} {layer} {series}")
            assert run.scalar_names(layer) == ref.scalar_names(layer), (name, layer)
            for scalar in ref.scalar_names(layer):
                a, b = ref.scalar(layer, scalar)[1], run.scalar(layer, scalar)[1]
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=f"{name} {layer} {scalar}")
        strip = lambda alerts: [(a["epoch"], a["layer"], a["kind"]) for a in alerts]  # noqa: E731
        assert strip(run.alerts) == strip(ref.alerts), name
