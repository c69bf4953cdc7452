"""The loop path (`rnn_monitor.model.perturbed_loop`), driven directly on padded sequences: the
forward pass against the layer's own (masked outputs by the backend's rule), the kept h and c
against the cell stepped by hand over the valid steps, and dL/dh_t, dL/d out_t and the flow from
the perturbations' gradients against the same derivatives taken by stepping the cell by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnn_monitor.model.perturbed_loop import PerturbedLoop, masked_output_rule
from loop_harness import hand_dl_dh, loss_weights, run_loop, traced, zero_states

L = keras.layers
pytestmark = pytest.mark.backends
LENGTHS = [6, 2, 4, 1]


def test_the_masked_output_rule_of_each_backend():
    on_jax = keras.backend.backend() == "jax"
    assert masked_output_rule(L.LSTM(2)) == ("first_state" if on_jax else "previous")
    assert masked_output_rule(L.LSTM(2, zero_output_for_mask=True)) == "zeros"
    assert masked_output_rule(L.GRU(2, unroll=True, zero_output_for_mask=True)) == ("previous" if on_jax else "zeros")


@pytest.mark.parametrize("make", [
    lambda: L.LSTM(3, return_sequences=True),
    lambda: L.GRU(3, return_sequences=True, reset_after=False),
    lambda: L.SimpleRNN(3, return_sequences=True, zero_output_for_mask=True),
])
def test_loop_path_on_padded_sequences_against_the_cell_stepped_by_hand(make, grad):
    layer = make()
    shape = traced(layer, 6, 2)
    rng = np.random.default_rng(4)
    for variable in layer.weights:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype("float32"))
    x = rng.normal(size=(4, 6, 2)).astype("float32")
    mask = np.arange(6)[None, :] < np.array(LENGTHS)[:, None]
    valid = mask[:, :, None]
    initial = [rng.normal(size=s.shape).astype("float32") for s in zero_states(layer, 4)]
    weights = loss_weights(4, 6, 3, seed=5)
    # the last output is the last valid step's, or zeros for a padded sequence under "zeros"
    reaches = np.array([n == 6 or masked_output_rule(layer) != "zeros" for n in LENGTHS])
    seen = (weights[0], weights[1] * reaches[:, None], weights[2])  # what the hand loss sees

    def make_loop(provider, record):
        return PerturbedLoop(layer, [shape], provider, record)

    last, outs, states, record, grads = run_loop(make_loop, x, initial, mask, weights, grad)
    np.testing.assert_allclose(outs, np.asarray(layer(x, initial_state=initial, mask=mask)), atol=1e-5)
    assert shape.masked and shape.path == "loop"
    rec = record[shape.info.name]
    np.testing.assert_array_equal(np.asarray(rec["valid"]), mask)
    hand_h, hand_c = np.zeros((4, 6, 3)), np.zeros((4, 6, 3))
    for b, n in enumerate(LENGTHS):
        carried = [s[b : b + 1] for s in initial]
        for t in range(n):
            _, carried = layer.cell(x[b : b + 1, t], carried)
            carried = list(carried) if isinstance(carried, (list, tuple)) else [carried]
            hand_h[b, t], hand_c[b, t] = np.asarray(carried[0])[0], np.asarray(carried[-1])[0]
        np.testing.assert_allclose(states[0][b], hand_h[b, n - 1], atol=1e-5)
        np.testing.assert_allclose(last[b], hand_h[b, n - 1] * reaches[b], atol=1e-5)
    np.testing.assert_allclose(np.where(valid, np.asarray(rec["h"]), 0), hand_h, atol=1e-5)
    if shape.info.kind == "lstm":
        np.testing.assert_allclose(np.where(valid, np.asarray(rec["c"]), 0), hand_c, atol=1e-5)

    keyed = {(shape.info.name, kind): value for kind, value in grads.items()}
    total, direct = (np.asarray(g) for g in shape.gradients.total(keyed, rec))
    expected_direct = weights[0].astype(np.float64).copy()
    for b, n in enumerate(LENGTHS):
        expected_direct[b, n - 1] += seen[1][b]
    np.testing.assert_allclose(np.where(valid, direct, 0), np.where(valid, expected_direct, 0), atol=1e-6)
    expected = hand_dl_dh(layer.cell, x, initial, LENGTHS, seen, grad)
    np.testing.assert_allclose(np.where(valid, total, 0), expected, rtol=1e-4, atol=1e-5)

    def vjp(fn, primal, cotangent):
        return grad(lambda p: keras.ops.sum(fn(p) * cotangent), primal)[0]

    v = weights[2]
    flow = np.asarray(shape.gradients.flow(vjp, rec, v, keras.ops.zeros_like(rec["h"])))
    zero = np.zeros_like(v)
    expected_flow = hand_dl_dh(layer.cell, x, initial, LENGTHS, (np.zeros_like(weights[0]), zero, v), grad)
    np.testing.assert_allclose(np.where(valid, flow, 0), expected_flow, rtol=1e-4, atol=1e-5)
