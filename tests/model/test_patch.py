"""Installing the probe's loops (`rnn_monitor.model.patch`): while the body runs each monitored
layer runs the probe's loop (the model computes what it computes without it, the loop records
what it keeps), a Bidirectional wrapper's own fused path is off; a cell the loop cannot step runs
in Keras's own loop with the reason said; everything is restored afterwards, also on an error."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnn_monitor.config import Thresholds
from rnn_monitor.model import patch
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.model.perturbed_loop import TracedRecurrence
from rnn_monitor.model.stepping import UnsupportedCell
from rnn_monitor.probe.graph import ProbeSettings

L = keras.layers
pytestmark = pytest.mark.backends


def _model():
    keras.utils.set_random_seed(6)
    inp = keras.Input((5, 2))
    h = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(inp)
    h = L.GRU(2, name="gru")(h)
    return keras.Model(inp, L.Dense(1)(h))


def _zeros(key, shape, dtype):
    return keras.ops.zeros(shape, dtype)


def _installed(layers):
    return ["inner_loop" in layer.__dict__ for layer in layers]


def _probe_loops(shapes, record, path="loop"):
    return patch.probe_loops(shapes, _zeros, record, path, ProbeSettings(Thresholds(), 0), flow=True)


def test_the_probes_loops_run_the_model_unchanged_and_are_removed_after():
    model = _model()
    x = np.random.default_rng(6).normal(size=(3, 5, 2)).astype("float32")
    expected = np.asarray(model(x))
    shapes = [TracedRecurrence(info) for info in find_rnn_layers(model)]
    layers = [shape.info.layer for shape in shapes]
    bi = model.get_layer("bi")
    own = bi.__dict__.get("_can_attempt_fused_lstm", "absent")
    record = {}
    with _probe_loops(shapes, record):
        assert _installed(layers) == [True, True, True]
        assert bi._can_attempt_fused_lstm(None) is False
        got = np.asarray(model(x))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [s.called for s in shapes] == [1, 1, 1] and [s.refused for s in shapes] == [None] * 3
    assert sorted(record) == sorted(s.info.name for s in shapes)
    assert _installed(layers) == [False, False, False]
    assert bi.__dict__.get("_can_attempt_fused_lstm", "absent") == own
    np.testing.assert_allclose(np.asarray(model(x)), expected, atol=1e-6)


def test_a_layers_own_inner_loop_comes_back_also_after_an_error():
    model = _model()
    shapes = [TracedRecurrence(info) for info in find_rnn_layers(model)]
    gru = model.get_layer("gru")
    mine = object()
    object.__setattr__(gru, "inner_loop", mine)
    with pytest.raises(RuntimeError, match="in the body"):
        with _probe_loops(shapes, {}):
            assert gru.__dict__["inner_loop"] is not mine
            raise RuntimeError("in the body")
    assert gru.__dict__["inner_loop"] is mine
    assert _installed([s.info.layer for s in shapes if s.info.layer is not gru]) == [False, False]
    with pytest.raises(ValueError, match="probe_path must be one of .*'fused'"):
        with _probe_loops(shapes, {}, path="fused"):
            pass


@pytest.mark.parametrize("error, reason", [
    (UnsupportedCell("its cell returns a dict"), "its cell returns a dict"),
    (TypeError("\n  bad state\nmore lines"), "stepping its cell failed (TypeError: bad state)"),
])
def test_a_cell_the_loop_cannot_step_runs_in_keras_loop_with_the_reason(monkeypatch, error, reason):
    model = _model()
    x = np.random.default_rng(7).normal(size=(2, 5, 2)).astype("float32")
    expected = np.asarray(model(x))
    shapes = [TracedRecurrence(info) for info in find_rnn_layers(model)]

    def refusing(*args, **kwargs):
        def loop(sequences, initial_state, mask, training=False):
            raise error
        return loop

    monkeypatch.setattr(patch, "_loop_for", refusing)
    with _probe_loops(shapes, {}):
        got = np.asarray(model(x))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [s.refused for s in shapes] == [reason] * 3 and [s.called for s in shapes] == [1, 1, 1]
