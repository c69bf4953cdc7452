"""One layer's loop as TensorFlow's probe steps it (`rnn_monitor.model.tensorflow.layer_loop`):
the forward pass gives Keras's own outputs and states, keeps each step's h, and the states at
each segment's start."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

from rnn_monitor.config import Thresholds
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.model.tensorflow.checkpointed import _Trace
from rnn_monitor.model.tensorflow.layer_loop import build_loop, forward
from rnn_monitor.probe.graph import LoopOptions, ProbeSettings

B, T, D, U = 3, 7, 4, 2


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[0, 5:] = False
    mask[1, :2] = False
    mask[2, 3] = False
    return x, mask


@pytest.mark.parametrize("go_backwards", [False, True])
def test_forward_gives_keras_outputs_and_keeps_segment_starts(go_backwards):
    keras.utils.set_random_seed(3)
    layer = L.GRU(U, return_sequences=True, return_state=True, go_backwards=go_backwards)
    model = keras.Sequential([keras.Input((T, D)), L.RNN(layer.cell, return_sequences=True)])
    x, mask = _data()
    want_seq, want_h = layer(x, mask=mask)
    trace = _Trace(find_rnn_layers(model)[0])
    settings = ProbeSettings(Thresholds(), 0, loop=LoopOptions(segment_steps=3))
    h0 = tf.zeros([B, U])
    loop = build_loop(layer, [trace], settings, tf.constant(x), [h0], tf.constant(mask))
    fwd = forward(loop, loop.xs, loop.flat0)
    seq, last, h_final = fwd.outputs  # time-major, processing order
    order = slice(None, None, -1) if go_backwards else slice(None)
    np.testing.assert_allclose(np.transpose(seq.numpy(), (1, 0, 2)), want_seq.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_final.numpy(), want_h.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(last.numpy(), want_seq.numpy()[:, -1], rtol=1e-5, atol=1e-6)
    valid = mask[:, order].T  # [T, B] processing order
    kept_h = fwd.kept[0]["h"].numpy()
    np.testing.assert_allclose(kept_h[valid], seq.numpy()[valid], rtol=1e-5, atol=1e-6)  # h is the output at valid steps
    assert (trace.recurrent, trace.direct, trace.positions, trace.dtype) == (True, True, 1, "float32")
    # the states each segment of 3 steps starts from: the layer's state after the steps before it
    assert (int(loop.segments.steps), int(loop.segments.count)) == (3, 3)
    bounds = fwd.bounds[0].numpy()
    xp, mp = x[:, order], mask[:, order]
    for s, lo in enumerate((0, 3, 6)):
        prefix = L.GRU(U, return_state=True)
        prefix.build((None, None, D))
        prefix.set_weights(layer.get_weights())
        want = h0.numpy() if lo == 0 else prefix(xp[:, :lo], mask=mp[:, :lo])[1].numpy()
        np.testing.assert_allclose(bounds[s], want, rtol=1e-5, atol=1e-6, err_msg=f"segment {s}")
