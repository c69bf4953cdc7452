"""The per-unit statistics of TensorFlow's loop (`rnn_monitor.model.tensorflow.unit_stats`),
against numpy: an LSTM stepped over padded sequences by hand, its gates from its weights."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

from rnn_monitor.config import Thresholds
from rnn_monitor.model.tensorflow.unit_stats import UnitStats
from rnn_monitor.probe.graph import ProbeSettings

T, B, D, U = 7, 4, 3, 5


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _lstm_run():
    """An LSTM cell stepped over [T, B] with padding: what the loop keeps (the cell's own new h
    and c per step), what each step started from (carried over masked steps) and the gates."""
    rng = np.random.default_rng(0)
    cell = L.LSTMCell(U, kernel_initializer=keras.initializers.RandomNormal(stddev=1.5))
    cell.build((None, D))
    x = rng.normal(size=(T, B, D)).astype("float32")
    valid = np.ones((T, B), bool)
    valid[5:, 0] = False
    valid[:2, 1] = False
    valid[3, 2] = False
    h0, c0 = rng.normal(size=(B, U)).astype("float32"), np.zeros((B, U), "float32")
    kernel, recurrent, bias = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
    h, c = h0, c0
    kept = {"h": [], "c": []}
    gates, starts = [], []
    for t in range(T):
        starts.append((h, c))
        z = x[t] @ kernel + h @ recurrent + bias
        i, f, g, o = _sigmoid(z[:, :U]), _sigmoid(z[:, U : 2 * U]), np.tanh(z[:, 2 * U : 3 * U]), _sigmoid(z[:, 3 * U :])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        kept["h"].append(h_new)
        kept["c"].append(c_new)
        gates.append({"i": i, "f": f, "o": o, "tanh_c": np.tanh(c_new)})
        m = valid[t][:, None]
        h, c = np.where(m, h_new, h), np.where(m, c_new, c)
    kept = {k: np.stack(v).astype("float32") for k, v in kept.items()}
    return cell, x, valid, h0, c0, kept, gates, starts


def _stats(run):
    cell, x, valid, h0, c0, kept, _, _ = run
    settings = ProbeSettings(Thresholds(), text_samples=2, h_samples=3)
    trace = SimpleNamespace(positions=1, channels_first=False, tanh_output=True)
    return UnitStats(trace, cell, "lstm", tf.constant(x), tf.constant(h0), tf.constant(c0),
                     {k: tf.constant(v) for k, v in kept.items()}, tf.constant(valid), settings, masked=True)


def test_accumulators_against_numpy():
    run = _lstm_run()
    _, _, valid, _, _, kept, gates, _ = run
    acc, samples = _stats(run).run()
    h = kept["h"][valid].astype(np.float64)  # [valid positions, U]
    assert float(acc["n_valid"]) == valid.sum()
    np.testing.assert_allclose(acc["h_sum"].numpy(), h.sum(0), rtol=1e-6)
    np.testing.assert_allclose(acc["h_sumsq"].numpy(), (h * h).sum(0), rtol=1e-6)
    np.testing.assert_allclose(acc["h_max_abs"].numpy(), np.abs(h).max(0), rtol=1e-6)
    np.testing.assert_allclose(acc["c_max_abs"].numpy(), np.abs(kept["c"][valid]).max(0), rtol=1e-6)
    tanh_c = np.stack([g["tanh_c"] for g in gates])[valid]
    np.testing.assert_array_equal(acc["h_sat"].numpy(), (np.abs(tanh_c) > 0.99).sum(0))
    for gate in ("i", "f", "o"):
        values = np.stack([g[gate] for g in gates])[valid]
        np.testing.assert_array_equal(acc[f"{gate}_low"].numpy(), (values < 0.1).sum(0), err_msg=gate)
        np.testing.assert_array_equal(acc[f"{gate}_high"].numpy(), (values > 0.9).sum(0), err_msg=gate)
        np.testing.assert_array_equal(acc[f"{gate}_nonfinite"].numpy(), np.zeros(U))
    assert acc["recon"].numpy() < 1e-5  # the rebuilt h and c are the cell's own
    assert (acc["i_low"].numpy() + acc["i_high"].numpy()).sum() > 0  # the test sees saturation
    np.testing.assert_allclose(samples["h"].numpy(), np.transpose(kept["h"][:, :3], (1, 0, 2)), rtol=1e-6)
    np.testing.assert_allclose(samples["c"].numpy(), np.transpose(kept["c"][:, :2], (1, 0, 2)), rtol=1e-6)


def test_blocks_merge_to_the_whole_run():
    run = _lstm_run()
    stats = _stats(run)
    acc = stats.init()
    for lo, hi in ((0, 3), (3, 7)):
        part, _ = stats.block(tf.constant(lo), tf.constant(hi))
        acc = stats.merge(acc, part)
    whole, _ = stats.run()
    for key, value in acc.items():
        np.testing.assert_allclose(value.numpy(), whole[key].numpy(), rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("lo, hi", [(0, 7), (2, 5), (4, 7)])
def test_previous_states_are_the_carried_ones(lo, hi):
    run = _lstm_run()
    starts = run[-1]
    h_prev, c_prev = _stats(run).previous(tf.constant(lo), tf.constant(hi))
    np.testing.assert_allclose(h_prev.numpy(), np.stack([starts[t][0] for t in range(lo, hi)]), rtol=1e-6)
    np.testing.assert_allclose(c_prev.numpy(), np.stack([starts[t][1] for t in range(lo, hi)]), rtol=1e-6)


def test_nonfinite_states_are_counted_at_valid_positions_only():
    run = list(_lstm_run())
    kept = {k: v.copy() for k, v in run[5].items()}
    kept["h"][0, 0, 1] = np.nan  # valid
    kept["h"][6, 0, 2] = np.inf  # masked (sequence 0 ends at step 5)
    run[5] = kept
    acc, _ = _stats(tuple(run)).run()
    np.testing.assert_array_equal(acc["h_nonfinite"].numpy(), [0, 1, 0, 0, 0])
