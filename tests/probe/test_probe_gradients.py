"""The probe's gradients through time, checked against an independent computation.

Reference: the backend's own autodiff over the *unmodified* model's head gives dL/d(out_t)
(the gradient with respect to the RNN layer's output); the recursion ``dL/dh_t = dL/d(out_t) + (dh_{t+1}/dh_t)^T dL/dh_{t+1}``
is then run in numpy (float64) with the step Jacobians built from the layer's weights. The probe's
numbers are read back through `load_run` from a real `model.fit` with `RNNMonitor`.
"""

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run

pytestmark = pytest.mark.backends

B, T, D, U = 5, 6, 3, 4


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _weights(layer):
    cell = layer.cell
    k = np.asarray(cell.kernel.numpy(), np.float64)
    r = np.asarray(cell.recurrent_kernel.numpy(), np.float64)
    b = np.asarray(cell.bias.numpy(), np.float64)
    return k, r, b


def _forward_simple(layer, x):
    k, r, b = _weights(layer)
    h = np.zeros((x.shape[0], U))
    hs, cache = [], []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ k + h @ r + b)
        hs.append(h)
    return np.stack(hs, 1), cache


def _vjp_simple(layer, hs, t, grad_next):
    """(dh_{t+1}/dh_t)^T grad_next for every sequence: h_{t+1} = tanh(x k + h_t r + b)."""
    _, r, _ = _weights(layer)
    return (grad_next * (1.0 - hs[:, t + 1] ** 2)) @ r.T


def _gru_parts(layer, x_t, h):
    k, r, b = _weights(layer)
    bi, br = b[0], b[1]  # reset_after=True layout
    mx = x_t @ k + bi
    mi = h @ r + br
    z = _sigmoid(mx[:, :U] + mi[:, :U])
    rr = _sigmoid(mx[:, U : 2 * U] + mi[:, U : 2 * U])
    hh = np.tanh(mx[:, 2 * U :] + rr * mi[:, 2 * U :])
    return z, rr, hh, mi


def _forward_gru(layer, x):
    h = np.zeros((x.shape[0], U))
    hs = []
    for t in range(x.shape[1]):
        z, _, hh, _ = _gru_parts(layer, x[:, t], h)
        h = z * h + (1 - z) * hh
        hs.append(h)
    return np.stack(hs, 1), None


def _vjp_gru(layer, x, hs, t, g):
    """(dh_{t+1}/dh_t)^T g, written out for keras's GRU (reset_after=True)."""
    _, r, _ = _weights(layer)
    h = hs[:, t]
    z, rr, hh, mi = _gru_parts(layer, x[:, t + 1], h)
    gh = g * z
    gz = g * (h - hh)
    ga_h = g * (1 - z) * (1 - hh**2)
    gh += (ga_h * rr) @ r[:, 2 * U :].T
    gr = ga_h * mi[:, 2 * U :]
    gh += (gz * z * (1 - z)) @ r[:, :U].T
    gh += (gr * rr * (1 - rr)) @ r[:, U : 2 * U].T
    return gh


def _build(kind, return_sequences):
    rnn_cls = {"simple": keras.layers.SimpleRNN, "gru": keras.layers.GRU}[kind]
    rnn = rnn_cls(U, return_sequences=return_sequences, name="rnn")
    head = keras.layers.Dense(2, name="head")
    model = keras.Sequential([keras.Input((T, D)), rnn, head])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model, rnn, head


def _data(return_sequences):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(B, T, D)).astype("float32")
    y = rng.normal(size=(B, T, 2) if return_sequences else (B, 2)).astype("float32")
    return x, y


def _reference(kind, model, rnn, head, x, y, return_sequences, grad):
    """dL/d(out), total dL/dh_t (numpy recursion) and temporal flow, in float64."""
    (d_out,) = grad(lambda out: keras.losses.MeanSquaredError()(y, head(out)), np.asarray(rnn(x)))
    x64 = x.astype(np.float64)
    if kind == "simple":
        hs, _ = _forward_simple(rnn, x64)
        vjp = lambda t, g: _vjp_simple(rnn, hs, t, g)  # noqa: E731
    else:
        hs, _ = _forward_gru(rnn, x64)
        vjp = lambda t, g: _vjp_gru(rnn, x64, hs, t, g)  # noqa: E731
    np.testing.assert_allclose(hs[:, -1], np.asarray(rnn(x))[:, -1] if return_sequences else np.asarray(rnn(x)), rtol=1e-4, atol=1e-5)
    direct = np.zeros((B, T, U))
    if return_sequences:
        direct[:] = d_out
    else:
        direct[:, -1] = d_out
    total = np.zeros_like(direct)
    total[:, -1] = direct[:, -1]
    for t in range(T - 2, -1, -1):
        total[:, t] = direct[:, t] + vjp(t, total[:, t + 1])
    # temporal flow from v = dL/dh_T
    v = total[:, -1]
    flow = [np.linalg.norm(v, axis=1).mean()]
    u = v
    for k in range(1, T):
        u = vjp(T - 1 - k, u)
        flow.append(np.linalg.norm(u, axis=1).mean())
    flow = np.array(flow) / np.linalg.norm(v, axis=1).mean()
    return direct, total, flow


@pytest.mark.parametrize(
    "kind,return_sequences",
    [("simple", True), ("gru", True), ("simple", False), ("gru", False)],
)
def test_timestep_gradients_match_independent_bptt(kind, return_sequences, log_dir, grad):
    model, rnn, head = _build(kind, return_sequences)
    x, y = _data(return_sequences)
    monitor = RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True, alerts=False, images=False)
    model.fit(x, y, epochs=1, batch_size=B, verbose=0, callbacks=[monitor])
    direct, total, flow = _reference(kind, model, rnn, head, x, y, return_sequences, grad)

    run = load_run(log_dir)
    G = run.timestep_gradients("rnn")[-1]
    O = run.output_gradients("rnn")[-1]
    g = run.timestep_grad_norm("rnn")[-1]
    F = run.temporal_flow("rnn")[-1]
    assert G.shape == (T, U) and O.shape == (T, U) and g.shape == (T,) and F.shape == (T,)
    np.testing.assert_allclose(G, np.abs(total).mean(0), rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(O, np.abs(direct).mean(0), rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(g, np.linalg.norm(total, axis=2).mean(0), rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(F, flow, rtol=1e-4, atol=1e-9)
    if return_sequences:
        assert not np.allclose(G[:-1], O[:-1], rtol=1e-3)  # the recurrence adds to the direct path
    else:
        assert np.all(O[:-1] == 0) and np.all(G[:-1] > 0)  # BPTT reaches steps with no direct path
    _, horizon = run.scalar("rnn", "grad_horizon")
    expected = max(k for k in range(T) if np.all(flow[: k + 1] >= 1e-3))
    assert horizon[-1] == expected
    _, norm = run.scalar("rnn", "grad_norm")
    weights = rnn.cell.trainable_weights

    def loss_of(values):
        with keras.StatelessScope(state_mapping=list(zip(weights, values))):
            return keras.losses.MeanSquaredError()(y, model(x))

    (wg,) = grad(loss_of, [w.numpy() for w in weights])
    np.testing.assert_allclose(norm[-1], np.sqrt(sum(np.sum(np.square(w)) for w in wg)), rtol=1e-5)


def test_long_wide_gradients_are_binned_over_time_under_the_byte_cap(log_dir, caplog, grad):
    """Issue 13: when G and the output gradients at every step would take more than 60% of
    max_bytes_per_epoch, they are written as means over k consecutive steps (k the smallest that
    fits), each bin equal to the mean of the independent BPTT's per-step values; g[t] and F keep
    every step, and the run says k."""
    import logging

    model, rnn, head = _build("gru", True)
    x, y = _data(True)
    # G + O at every step: 2 x T x U x 4 = 192 bytes; 60% of 200 = 120 fits 3 bins of 2 steps.
    monitor = RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True, alerts=False, images=False,
                         histograms=False, max_bytes_per_epoch=200)
    with caplog.at_level(logging.INFO, logger="rnn_monitor"):
        model.fit(x, y, epochs=1, batch_size=B, verbose=0, callbacks=[monitor])
    direct, total, flow = _reference("gru", model, rnn, head, x, y, True, grad)
    run = load_run(log_dir)
    k = run.gradient_time_bin("rnn")
    assert k == 2 and "means over 2 consecutive steps" in caplog.text
    G, O = run.timestep_gradients("rnn")[-1], run.output_gradients("rnn")[-1]
    per_step_G, per_step_O = np.abs(total).mean(0), np.abs(direct).mean(0)  # [T, U]
    expected_G = np.array([per_step_G[i : i + k].mean(0) for i in range(0, T, k)])
    expected_O = np.array([per_step_O[i : i + k].mean(0) for i in range(0, T, k)])
    assert G.shape == (T // k, U)
    np.testing.assert_allclose(G, expected_G, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(O, expected_O, rtol=1e-5, atol=1e-10)
    g = run.timestep_grad_norm("rnn")[-1]
    np.testing.assert_allclose(g, np.linalg.norm(total, axis=2).mean(0), rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(run.temporal_flow("rnn")[-1], flow, rtol=1e-4, atol=1e-9)
