"""TensorFlow's checkpointed backprop through time (rnn_monitor.model.tensorflow.checkpointed): states kept at
segment boundaries, one segment recomputed at a time in the backward pass, each step reduced to
what is written. Forced short segments (`LoopOptions.segment_steps`) must change nothing:
dL/dh_t equals the step-by-step tape of Keras's own unrolled loop, and every logged number
equals the single-segment probe's."""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import layers as L

from rnn_monitor import load_run
from test_keras_configs import _fit, _head, check_against_reference

B, T, D = 4, 10, 3


def _model():
    keras.utils.set_random_seed(7)
    inp = keras.Input((T, D))
    masked = L.Masking()(inp)
    lstm = L.LSTM(3, return_sequences=True, name="lstm")
    gru = L.GRU(2, go_backwards=True, return_sequences=True, name="gru_back")
    bi = L.Bidirectional(L.SimpleRNN(2), name="bi")
    stack = L.RNN([L.LSTMCell(2), L.GRUCell(3)], name="stack")
    h = lstm(masked)
    out = [bi(gru(h)), stack(h)]
    return keras.Model(inp, _head(out)), [lstm, gru, bi, stack]


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(B, T, D)).astype("float32")
    x[0, 7:] = 0.0  # padding at the end
    x[1, :4] = 0.0  # and at the start
    x[2, 5] = 0.0  # and one step inside
    y = rng.normal(size=(B, 1)).astype("float32")
    return x, y, np.any(x != 0, axis=-1)


def _probe(log_dir, segment_steps, probe_settings):
    probe_settings(segment_steps=segment_steps)
    model, layers = _model()
    x, y, valid = _data()
    monitor = _fit(log_dir, model, x, y)
    return monitor, model, layers, x, y, valid


def test_short_segments_match_the_step_by_step_tape(log_dir, probe_settings, grad):
    monitor, model, layers, x, y, valid = _probe(log_dir, 3, probe_settings)
    segments = monitor._parts["probe"]._prober.segments
    # 10 steps in segments of 3: four segments, the last one step long, in every loop
    assert segments and set(segments.values()) == {(3, 4)}, segments
    assert set(segments) == set(load_run(log_dir).layers)
    check_against_reference(log_dir, model, x, y, layers, grad, valid=valid)


def test_segment_length_changes_no_logged_number(tmp_path, probe_settings):
    runs = {}
    # the default ceil(sqrt(10)) = 4 against one segment (3 steps: against the tape, above)
    for steps in (None, 1000):
        log_dir = os.path.join(str(tmp_path), f"seg{steps}")
        os.makedirs(log_dir)
        monitor, *_ = _probe(log_dir, steps, probe_settings)
        runs[steps] = (load_run(log_dir), monitor._parts["probe"]._prober.segments)
    assert set(runs[None][1].values()) == {(4, 3)}
    assert set(runs[1000][1].values()) == {(10, 1)}
    run, one = runs[None][0], runs[1000][0]
    assert run.layers == one.layers
    for layer in one.layers:
        for name in ("timestep_gradients", "timestep_grad_norm", "output_gradients", "temporal_flow"):
            a, b = getattr(run, name)(layer), getattr(one, name)(layer)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=f"{layer} {name} at the default length")
        for name in one.scalar_names(layer):
            np.testing.assert_allclose(
                run.scalar(layer, name)[1], one.scalar(layer, name)[1], rtol=1e-4, atol=1e-6,
                err_msg=f"{layer} {name} at the default length",
            )
