"""The probe under tf.distribute: MirroredStrategy on two logical CPUs (Keras 3), and
MultiWorkerMirroredStrategy with two worker processes on loopback (tf.keras 2); only the chief writes.

Each case runs in a subprocess: logical devices must be configured before any TensorFlow op,
and TF_CONFIG must not leak into other tests.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from rnn_monitor import RNNMonitor, load_run

    log_dir, mode = sys.argv[1], sys.argv[2]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(4, name="lstm"), keras.layers.Dense(1)])
        model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    monitor = RNNMonitor(log_dir, probe_data=(x[:4], y[:4]), raise_errors=True, alerts=False)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[monitor])
    if mode == "chief":
        run = load_run(log_dir)
        G = run.timestep_gradients("lstm")
        assert G.shape == (2, 6, 4) and np.isfinite(G).all() and (G > 0).any(), G
        # the probe's loss gradient at the final weights equals a plain tape's
        with tf.GradientTape() as tape:
            loss = keras.losses.MeanSquaredError()(y[:4], model(x[:4]))
        wg = tape.gradient(loss, model.get_layer("lstm").cell.trainable_weights)
        expected = np.sqrt(sum(float(np.sum(np.square(w.numpy()))) for w in wg))
        _, norm = run.scalar("lstm", "grad_norm")
        assert abs(norm[-1] - expected) <= 1e-5 * expected, (norm, expected)
    print("OK", sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else None)
    """
)


def _run(tmp_path, mode, tf_config=None):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    log_dir = str(tmp_path / "logs")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, log_dir, mode], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    return log_dir, proc.stdout


def test_probe_under_mirrored_strategy_chief_writes(tmp_path):
    log_dir, out = _run(tmp_path, "chief")
    assert "OK" in out


def test_non_chief_worker_writes_nothing(tmp_path):
    # A worker that is not the chief (the cluster has a chief); MirroredStrategy ignores TF_CONFIG.
    config = {"cluster": {"chief": ["localhost:1"], "worker": ["localhost:2"]}, "task": {"type": "worker", "index": 0}}
    log_dir, out = _run(tmp_path, "worker", config)
    assert "OK" in out
    assert not os.path.exists(os.path.join(log_dir, "rnn_monitor")) or not os.listdir(os.path.join(log_dir, "rnn_monitor"))


# Two worker processes on loopback, tf.keras 2 `fit` under MultiWorkerMirroredStrategy (Keras 3's
# `fit` does not run under it). Both must finish with the same weights, only the chief (worker 0)
# writes, and its probe's loss gradient equals a plain tape's at the final weights (no division
# by the number of replicas).
WORKER = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np, tensorflow as tf
    from rnn_monitor import RNNMonitor, load_run

    log_dir = sys.argv[1]
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 10, 3)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    with strategy.scope():
        model = tf.keras.Sequential(
            [tf.keras.Input((10, 3)), tf.keras.layers.LSTM(6, name="lstm"), tf.keras.layers.Dense(1)]
        )
        model.compile(tf.keras.optimizers.SGD(0.05), "mse")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    monitor = RNNMonitor(log_dir, probe_data=(x[:4], y[:4]), raise_errors=True, alerts=False)
    model.fit(data, epochs=2, verbose=0, callbacks=[monitor])
    kernel = model.get_layer("lstm").cell.kernel.numpy()
    if monitor._chief:
        run = load_run(log_dir)
        G = run.timestep_gradients("lstm")
        assert G.shape == (2, 10, 6) and np.isfinite(G).all() and (G > 0).all(), G
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y[:4] - model(x[:4])))
        grads = tape.gradient(loss, model.get_layer("lstm").cell.trainable_weights)
        expected = np.sqrt(sum(float(np.sum(np.square(g.numpy()))) for g in grads))
        _, norm = run.scalar("lstm", "grad_norm")
        assert abs(norm[-1] - expected) <= 1e-5 * expected, (norm, expected)
    print("DONE", os.getpid(), monitor._chief, repr(float(np.sum(np.abs(kernel)))), flush=True)
    """
)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _all_finish(procs, seconds: float) -> list[str]:
    """Every process's stdout once all have exited with 0 within `seconds` in all; the ones still
    running then are killed (a process waiting for a lost peer would hang the suite)."""
    deadline = time.monotonic() + seconds
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for code, out, err in outputs:
        assert code == 0, out + err[-4000:]
    return [out for _, out, _ in outputs]


@pytest.mark.slow
def test_multi_worker_tf_keras_two_workers_only_chief_writes(tmp_path):
    pytest.importorskip("tf_keras")
    log_dir = str(tmp_path / "logs")  # shared by both workers: the chief alone may write there
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, log_dir],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        )
    outputs = _all_finish(procs, 120)  # a lost worker blocks the other's collectives: never hang
    done = [line.split() for out in outputs for line in out.splitlines() if line.startswith("DONE")]
    assert [d[2] for d in done] == ["True", "False"], done
    assert done[0][3] == done[1][3], done  # synchronous training: the same weights on both workers
    chief_pid = done[0][1]
    files = os.listdir(os.path.join(log_dir, "rnn_monitor"))
    events = [f for f in files if f.startswith("events.out.tfevents.")]
    assert events and all(f.split(".")[-2] == chief_pid for f in events), (files, chief_pid)


# Keras 3's many-machine path: the JAX backend, `keras.distribution.initialize` and a
# `DataParallel` distribution, two processes on loopback (CPU collectives by gloo), a
# `tf.data.Dataset` as Keras requires for multi-process input. Process 0 alone writes a full log
# (gradients through time exact against jax.grad on its own copy of the weights, unit
# statistics, the alert); an Inf planted in both processes at epoch 2 raises an alert whose
# `stop_on` stops both there (a process that went on alone would wait for the other forever).
# The model and data of both JAX scripts below, and ||dL/dW|| of its LSTM on the probe batch by
# jax.grad at given values of the variables (set after the distribution: variables are laid out
# when they are made).
JAX_MODEL = textwrap.dedent(
    """
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, size=(64, 12)).astype("int32")
    y = rng.integers(0, 5, size=(64,))
    model = keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(20, 4),
                              keras.layers.LSTM(8, name="lstm"), keras.layers.Dense(5)])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss_fn)

    def lstm_grad_norm(tv, ntv):
        grads = jax.grad(lambda tv: loss_fn(y[:8], model.stateless_call(tv, ntv, x[:8])[0]))(tv)
        cell = [g for g, v in zip(grads, model.trainable_variables) if "lstm" in v.path.split("/")]
        return float(np.sqrt(sum(float(np.sum(np.square(g))) for g in cell)))
    """
)

JAX_PROCESS = textwrap.dedent(
    """
    import os, sys, json
    os.environ.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras, numpy as np, tensorflow as tf
    from rnn_monitor import RNNMonitor, load_run

    log_dir, address, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
    keras.distribution.initialize(job_addresses=address, num_processes=2, process_id=index)
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    keras.utils.set_random_seed(0)
    """
) + JAX_MODEL + textwrap.dedent(
    """
    expected = {}

    class Expect(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1 and index == 0:  # process 0's own copy: no collective
                local = lambda vs: [v.value.addressable_shards[0].data for v in vs]
                expected["norm"] = lstm_grad_norm(local(model.trainable_variables), local(model.non_trainable_variables))

    class PlantInf(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                kernel = model.get_layer("lstm").cell.recurrent_kernel
                w = np.array(kernel.value.addressable_shards[0].data)
                w[0, 0] = np.inf  # (not NaN: assign checks that both processes give equal values)
                kernel.assign(w)

    monitor = RNNMonitor(log_dir, probe_data=(x[:8], y[:8]), raise_errors=True, stop_on="nonfinite")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    history = model.fit(data, epochs=5, verbose=0, callbacks=[PlantInf(), monitor, Expect()])
    if index == 0:
        run = load_run(log_dir)
        assert run.manifest["processes"] == {"writer": 0, "count": 2}, run.manifest["processes"]
        G = run.timestep_gradients("lstm")
        assert G.shape == (3, 12, 8) and np.isfinite(G[:2]).all() and (G[:2] > 0).any(), G
        _, norm = run.scalar("lstm", "grad_norm")
        assert abs(norm[1] - expected["norm"]) <= 1e-5 * expected["norm"], (norm, expected)
        epochs, dead = run.scalar("lstm", "dead_ratio")
        assert list(epochs) == [0, 1, 2] and np.isfinite(dead).all(), dead
        assert [(a["epoch"], a["kind"]) for a in run.alerts] == [(2, "nonfinite")], run.alerts
    print("DONE", os.getpid(), index, history.epoch, flush=True)
    """
)


@pytest.mark.slow
def test_jax_multi_process_only_process_0_writes_and_stop_on_stops_both(tmp_path):
    pytest.importorskip("jax")
    log_dir = str(tmp_path / "logs")  # shared by both processes: process 0 alone may write there
    address = f"127.0.0.1:{_free_ports(1)[0]}"
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    procs = [subprocess.Popen([sys.executable, "-c", JAX_PROCESS, log_dir, address, str(index)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in range(2)]
    outputs = _all_finish(procs, 180)  # a process that waits for the other must not hang the suite
    done = [line.split(maxsplit=3) for out in outputs for line in out.splitlines() if line.startswith("DONE")]
    assert [(d[2], d[3]) for d in done] == [("0", "[0, 1, 2]"), ("1", "[0, 1, 2]")], done
    files = os.listdir(os.path.join(log_dir, "rnn_monitor"))
    events = [f for f in files if f.startswith("events.out.tfevents.")]
    assert events and all(f.split(".")[-2] == done[0][1] for f in events), (files, done)


JAX_ONE_HOST = textwrap.dedent(
    """
    import os, sys
    os.environ.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    import jax, keras, numpy as np
    from rnn_monitor import RNNMonitor, load_run

    assert len(jax.devices()) == 2
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    """
) + JAX_MODEL + textwrap.dedent(
    """
    monitor = RNNMonitor(sys.argv[1], probe_data=(x[:8], y[:8]), raise_errors=True)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[monitor])
    expected = lstm_grad_norm([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    _, norm = load_run(sys.argv[1]).scalar("lstm", "grad_norm")
    assert abs(norm[-1] - expected) <= 1e-5 * expected, (norm, expected)
    print("OK")
    """
)


def test_jax_data_parallel_on_two_devices_of_one_host(tmp_path):
    """Keras 3 on JAX with a DataParallel distribution over two (host) devices: the probe's
    gradient norm at the final weights equals jax.grad's."""
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run([sys.executable, "-c", JAX_ONE_HOST, str(tmp_path / "logs")], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr[-4000:]
