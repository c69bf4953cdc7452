"""The generic reverse pass of TensorFlow's probe loop (`rnn_monitor.model.tensorflow.taped_reverse`),
segment by segment, against a plain tape through the cell stepped by hand: the input, state
and weight gradients, and the per-step reductions of dL/dh_t and v."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

from rnn_monitor.config import Thresholds
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.model.tensorflow.checkpointed import LoopResults, _checkpointed_op, _Trace
from rnn_monitor.model.tensorflow.layer_loop import build_loop
from rnn_monitor.probe.graph import LoopOptions, ProbeSettings

B, T, D = 3, 7, 4


def _by_hand(cell, x, states, weights, r_seq):
    """Loss sum(r_seq * outputs) with the cell stepped by hand, zero perturbations on each h:
    (loss gradients of x, initial states and weights, dL/dh_t [T, B, U])."""
    eps = [tf.zeros_like(states[0]) for _ in range(T)]
    with tf.GradientTape() as tape:
        tape.watch([x] + states + eps)
        flat, outs = list(states), []
        for t in range(T):
            out, flat = cell(x[:, t], flat)
            flat = list(flat) if isinstance(flat, (list, tuple)) else [flat]
            flat[0] = flat[0] + eps[t]
            outs.append(flat[0])
        loss = tf.reduce_sum(r_seq * tf.stack(outs))
    grads = tape.gradient(loss, [x] + states + weights + eps)
    n = 1 + len(states) + len(weights)
    return grads[:n], tf.stack(grads[n:])


@pytest.mark.parametrize("make, n_states", [(lambda: L.SimpleRNN(3, return_sequences=True), 1),
                                            (lambda: L.LSTM(2, return_sequences=True), 2)])
def test_gradients_and_reductions_match_a_plain_tape(make, n_states):
    keras.utils.set_random_seed(4)
    layer = make()
    model = keras.Sequential([keras.Input((T, D)), layer])
    units = layer.cell.units
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(B, T, D)).astype("float32"))
    states = [tf.constant(rng.normal(size=(B, units)).astype("float32")) for _ in range(n_states)]
    r_seq = tf.constant(rng.normal(size=(T, B, units)).astype("float32"))
    weights = [w.value for w in layer.cell.weights]
    (dx, *d_rest), dh = _by_hand(layer.cell, x, states, weights, r_seq)

    trace = _Trace(find_rnn_layers(model)[0])
    settings = ProbeSettings(Thresholds(), 0, loop=LoopOptions(segment_steps=3, hand_written_reverse=False))
    results = LoopResults(want_flow=False)
    loop = build_loop(layer, [trace], settings, x, states, None)
    token = tf.zeros([])
    with tf.GradientTape() as tape:
        tape.watch([loop.xs, token] + loop.flat0)
        seq, *_ = _checkpointed_op(loop, results)(loop.xs, *loop.flat0, token)
        loss = tf.reduce_sum(r_seq * seq)
    got = tape.gradient(loss, [loop.xs] + loop.flat0 + weights + [token])
    np.testing.assert_allclose(np.transpose(got[0].numpy(), (1, 0, 2)), dx.numpy(), rtol=1e-5, atol=1e-6)
    for g, want in zip(got[1:-1], d_rest):
        np.testing.assert_allclose(g.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    assert float(got[-1]) == 0.0  # the token only runs the reverse pass

    (reduced,) = results.loss
    dh = dh.numpy()
    np.testing.assert_allclose(reduced.grad_abs_sum.numpy(), np.abs(dh).sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reduced.out_abs_sum.numpy(), np.abs(r_seq.numpy()).sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reduced.grad_norm_sum.numpy(), np.linalg.norm(dh, axis=-1).sum(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reduced.v.numpy(), dh[-1], rtol=1e-5, atol=1e-6)  # no mask: the last step
    assert float(reduced.grad_nonfinite) == 0.0
    assert results.stats == {} and results.flow == {}  # statistics left to UnitStats.run; no flow wanted
