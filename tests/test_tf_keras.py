"""`RNNMonitor` in a tf.keras 2 (`tf-keras`) `fit`: the same callback, the same log.

Each case runs in a subprocess (``TF_USE_LEGACY_KERAS`` is read when TensorFlow is imported, and
tf_keras should not leak into the Keras 3 tests). The model stacks a tf.keras 2 LSTM, a
Bidirectional GRU and a Dense head. The reference is independent of the probe: the same cells
stepped by a plain Python loop under a plain `tf.GradientTape`, with a zero tensor added to each
new state (its gradient is the total dL/dh_t through time); that loop must reproduce
`model.predict`. The weight statistics are checked against numpy on the final weights.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tf_keras")

SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    log_dir, mode = sys.argv[1], sys.argv[2]
    if mode == "env":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf
        K = tf.keras
    else:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
        import tensorflow as tf
        import tf_keras as K
    assert K.layers.LSTM.__module__.startswith("tf_keras."), K.layers.LSTM.__module__
    import numpy as np
    from rnn_monitor import RNNMonitor, load_run
    from rnn_monitor.model.backend import engine_of

    B, T, D, U, V = 5, 7, 3, 4, 3
    rng = np.random.default_rng(7)
    x = rng.normal(size=(24, T, D)).astype("float32")
    y = rng.normal(size=(24, T, 2)).astype("float32")
    K.utils.set_random_seed(3)
    model = K.Sequential([
        K.Input((T, D)),
        K.layers.LSTM(U, return_sequences=True, name="lstm"),
        K.layers.Bidirectional(K.layers.GRU(V, return_sequences=True), name="bi"),
        K.layers.Dense(2, name="head"),
    ])
    model.compile(K.optimizers.SGD(0.1), "mse")
    assert engine_of(model) == "tf_keras"
    monitor = RNNMonitor(log_dir, probe_data=(x[:B], y[:B]), raise_errors=True, alerts=False)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[monitor])

    run = load_run(log_dir)
    assert run.layers == ["lstm", "bi/forward", "bi/backward"], run.layers
    kinds = {l["name"]: (l["kind"], l["gates"], l["direction"]) for l in run.manifest["layers"]}
    assert kinds == {
        "lstm": ("lstm", ["i", "f", "c", "o"], "forward"),
        "bi/forward": ("gru", ["z", "r", "h"], "forward"),
        "bi/backward": ("gru", ["z", "r", "h"], "backward"),
    }, kinds
    assert list(run.epochs) == [0, 1], run.epochs

    # Reference at the final weights (the probe of the last epoch ran after its training).
    lstm, bi, head = model.get_layer("lstm"), model.get_layer("bi"), model.get_layer("head")
    xp, yp = tf.constant(x[:B]), tf.constant(y[:B])

    def first(states):
        return states[0] if isinstance(states, (list, tuple)) else states

    eps = {name: [tf.zeros((B, n)) for _ in range(T)] for name, n in
           (("lstm", U), ("bi/forward", V), ("bi/backward", V))}
    with tf.GradientTape() as tape:
        for values in eps.values():
            for e in values:
                tape.watch(e)
        h, c = tf.zeros((B, U)), tf.zeros((B, U))
        seq = []
        for t in range(T):
            _, (h, c) = lstm.cell(xp[:, t], [h, c], training=False)
            h = h + eps["lstm"][t]
            seq.append(h)
        seq = tf.stack(seq, 1)
        hf, fwd = tf.zeros((B, V)), []
        for t in range(T):
            _, hf = bi.forward_layer.cell(seq[:, t], [hf], training=False)
            hf = first(hf) + eps["bi/forward"][t]
            fwd.append(hf)
        hb, bwd = tf.zeros((B, V)), [None] * T
        for t in reversed(range(T)):
            _, hb = bi.backward_layer.cell(seq[:, t], [hb], training=False)
            hb = first(hb) + eps["bi/backward"][t]
            bwd[t] = hb
        pred = head(tf.concat([tf.stack(fwd, 1), tf.stack(bwd, 1)], -1))
        loss = tf.reduce_mean(tf.square(yp - pred))
    np.testing.assert_allclose(pred.numpy(), model.predict(x[:B], verbose=0), atol=1e-5)
    grads = tape.gradient(loss, eps)
    for name, values in grads.items():
        want = np.mean(np.abs(np.stack([g.numpy() for g in values], 1)), axis=0)  # [T, units]
        got = run.timestep_gradients(name)
        assert got.shape == (2,) + want.shape, (name, got.shape)
        np.testing.assert_allclose(got[-1], want, rtol=1e-4, atol=1e-5, err_msg=name)
        assert (want > 1e-4).all(), (name, want)  # a test that can fail

    # Direct path dL/d(out_t) of the LSTM: a plain tape on the unmodified layers.
    with tf.GradientTape() as tape:
        out = lstm(xp)
        tape.watch(out)
        loss2 = tf.reduce_mean(tf.square(yp - head(bi(out))))
    direct = np.mean(np.abs(tape.gradient(loss2, out).numpy()), axis=0)
    np.testing.assert_allclose(run.output_gradients("lstm")[-1], direct, rtol=1e-4, atol=1e-5)
    # The LSTM's weight-gradient norm, and its activations (float16 in the log).
    with tf.GradientTape() as tape:
        loss3 = tf.reduce_mean(tf.square(yp - model(xp)))
    wg = tape.gradient(loss3, lstm.cell.trainable_weights)
    expected = np.sqrt(sum(float(np.sum(np.square(g.numpy()))) for g in wg))
    _, norm = run.scalar("lstm", "grad_norm")
    assert abs(norm[-1] - expected) <= 1e-5 * expected + 1e-7, (norm, expected)
    h_ref = lstm(xp).numpy()[:4]
    np.testing.assert_allclose(run.activations("lstm", "h", epoch=1), h_ref, atol=2e-3)

    # Weight statistics: numpy on the final weights, per gate column block.
    kernel = lstm.cell.kernel.numpy()
    _, l2 = run.scalar("lstm", "kernel/f/l2")
    assert abs(l2[-1] - np.linalg.norm(kernel[:, U:2 * U])) < 1e-5 * np.linalg.norm(kernel), l2
    rk = bi.backward_layer.cell.recurrent_kernel.numpy()
    _, l2 = run.scalar("bi/backward", "recurrent_kernel/h/l2")
    assert abs(l2[-1] - np.linalg.norm(rk[:, 2 * V:])) < 1e-5 * np.linalg.norm(rk), l2

    # A masked batch: steps padded in every probe sequence have no gradient (NaN), others do.
    xm = x[:B].copy()
    xm[:, -2:] = 0.0
    masked = K.Sequential([K.Input((T, D)), K.layers.Masking(0.0), K.layers.LSTM(U, name="m"), K.layers.Dense(2)])
    masked.compile("sgd", "mse")
    masked.fit(xm, y[:B, -1], epochs=1, verbose=0, callbacks=[
        RNNMonitor(log_dir + "_masked", probe_data=(xm, y[:B, -1]), raise_errors=True, alerts=False)])
    G = load_run(log_dir + "_masked").timestep_gradients("m")[-1]
    assert np.isnan(G[-2:]).all() and np.isfinite(G[:-2]).all() and (G[:-2] > 0).all(), G
    print("OK")
    """
)


def _run(tmp_path, mode: str) -> str:
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "logs"), mode],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    return proc.stdout


def test_tf_keras_fit_under_legacy_keras_env(tmp_path):
    """`tf.keras` with TF_USE_LEGACY_KERAS=1 (what tf.keras 2 code does unchanged)."""
    assert "OK" in _run(tmp_path, "env")


def test_tf_keras_imported_directly(tmp_path):
    """`import tf_keras` next to Keras 3 in one process."""
    assert "OK" in _run(tmp_path, "direct")
