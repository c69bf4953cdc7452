"""The kernel path (`rnn_monitor.model.fused_kernel`), driven directly: which layers it serves,
its forward pass against the layer's own, an LSTM's c rebuilt from h against the cell stepped by
hand, and dL/dh_t and the flow from its perturbations' gradients (the module's formulas) against
the derivative taken by stepping the cell by hand. On a machine without a GPU the forced kernel
path runs the same arithmetic through Keras's generic loop."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnn_monitor.model import fused_kernel
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.model.perturbed_loop import TracedRecurrence
from loop_harness import hand_dl_dh, loss_weights, run_loop, traced, zero_states

L = keras.layers
pytestmark = pytest.mark.backends


class _OwnLSTM(L.LSTM):
    """A subclass of the layer: still Keras's cell and kernel."""


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: L.LSTM(3), True),
        (lambda: L.GRU(3), True),
        (lambda: L.LSTM(3, go_backwards=True, return_state=True), True),
        (lambda: _OwnLSTM(3), True),
        (lambda: L.GRU(3, reset_after=False), False),  # cuDNN runs reset_after GRUs only
        (lambda: L.LSTM(3, recurrent_dropout=0.2), False),  # Keras does not fuse it either
        (lambda: L.LSTM(3, unroll=True), False),
        (lambda: L.LSTM(3, use_cudnn=False), False),
        (lambda: L.SimpleRNN(3), False),
        (lambda: L.RNN(L.LSTMCell(3)), False),
        (lambda: L.RNN([L.LSTMCell(3), L.LSTMCell(3)]), False),
    ],
)
def test_which_layers_the_kernel_path_serves(make, expected):
    layer = make()
    model = keras.Sequential([keras.Input((5, 2)), layer])
    traced = [TracedRecurrence(info) for info in find_rnn_layers(model)]
    assert fused_kernel.eligible(layer, traced[:1] if len(traced) == 1 else traced) is expected
    # "auto" takes it only where the backend fuses the layer: on a GPU
    assert fused_kernel.serves(layer, traced, "auto") is (expected and fused_kernel.on_gpu())
    assert fused_kernel.serves(layer, traced, "loop") is False


def _fused(layer, shape):
    return lambda provider, record: fused_kernel.FusedLoop(layer, shape, provider, record, fallback=None,
                                                           forced=True)


def _random_layer(make, steps, features, seed):
    layer = make()
    shape = traced(layer, steps, features)
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype("float32"))
    return layer, shape


@pytest.mark.parametrize("make", [lambda: L.LSTM(3, return_sequences=True), lambda: L.GRU(3, return_sequences=True)])
def test_kernel_path_forward_and_dl_dh_against_the_cell_stepped_by_hand(make, grad):
    layer, shape = _random_layer(make, 6, 2, seed=1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 2)).astype("float32")
    initial = [rng.normal(size=s.shape).astype("float32") for s in zero_states(layer, 4)]
    weights = loss_weights(4, 6, 3, seed=2)
    last, outs, states, record, grads = run_loop(_fused(layer, shape), x, initial, None, weights, grad)
    np.testing.assert_allclose(outs, np.asarray(layer(x, initial_state=initial)), atol=1e-5)
    np.testing.assert_allclose(last, outs[:, -1], atol=1e-6)
    assert shape.path == "kernel" and shape.rebuild and not shape.only_last
    rec = record[shape.info.name]
    np.testing.assert_allclose(np.asarray(rec["h"]), outs, atol=1e-6)
    # c from h by the associative scan, against the cell's own c step by step
    carried = [keras.ops.convert_to_tensor(s) for s in initial]
    for t in range(6):
        _, carried = layer.cell(x[:, t], carried)
        carried = list(carried) if isinstance(carried, (list, tuple)) else [carried]
        if shape.info.kind == "lstm":
            np.testing.assert_allclose(np.asarray(rec["c"])[:, t], np.asarray(carried[1]), atol=1e-5)
    np.testing.assert_allclose(states[-1], np.asarray(carried[-1]), atol=1e-5)

    keyed = {(shape.info.name, kind): value for kind, value in grads.items()}
    total, direct = shape.gradients.total(keyed, rec)
    expected_direct = weights[0].astype(np.float64).copy()
    expected_direct[:, -1] += weights[1]  # the last output
    np.testing.assert_allclose(np.asarray(direct), expected_direct, atol=1e-6)
    expected = hand_dl_dh(layer.cell, x, initial, [6] * 4, weights, grad)
    np.testing.assert_allclose(np.asarray(total), expected, rtol=1e-4, atol=1e-5)

    def vjp(fn, primal, cotangent):
        return grad(lambda p: keras.ops.sum(fn(p) * cotangent), primal)[0]

    v = weights[2]
    flow = shape.gradients.flow(vjp, rec, v, keras.ops.zeros_like(rec["h"]))
    zero = np.zeros_like(v)
    expected_flow = hand_dl_dh(layer.cell, x, initial, [6] * 4, (np.zeros_like(weights[0]), zero, v), grad)
    np.testing.assert_allclose(np.asarray(flow), expected_flow, rtol=1e-4, atol=1e-5)


def test_lstm_cells_rebuild_c_in_processing_order():
    layer, shape = _random_layer(lambda: L.LSTM(3, go_backwards=True, return_sequences=True), 5, 2, seed=3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 2)).astype("float32")
    h0, c0 = (rng.normal(size=(2, 3)).astype("float32") for _ in range(2))
    xs = x[:, ::-1]  # the order a go_backwards layer reads
    hs, cs, carried = [], [], [h0, c0]
    for t in range(5):
        h, carried = layer.cell(xs[:, t], carried)
        hs.append(np.asarray(h))
        cs.append(np.asarray(carried[1]))
    c = fused_kernel.lstm_cells(layer.cell, xs, np.stack(hs, 1), h0, c0)
    np.testing.assert_allclose(np.asarray(c), np.stack(cs, 1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(layer(x, initial_state=[h0, c0])), np.stack(hs, 1), atol=1e-5)
