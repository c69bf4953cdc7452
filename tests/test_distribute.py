"""The probe under tf.distribute: MirroredStrategy on two logical CPUs; only the chief writes.

Each case runs in a subprocess: logical devices must be configured before any TensorFlow op,
and TF_CONFIG must not leak into other tests.
"""

import json
import os
import subprocess
import sys
import textwrap

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
