"""Drives one probe loop of a layer directly (imported by the loop tests: not a test module):
the loop run as the layer's ``inner_loop`` would be, its perturbations handed out by name, and
dL/dh_t from its gradients beside the same derivative taken by stepping the cell by hand.
`grad` is the tests' `backend_grad` (the fixture of that name)."""

from __future__ import annotations

import keras
import numpy as np

from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.model.perturbed_loop import TracedRecurrence


def traced(layer, steps, features):
    """The layer built on [B, steps, features] and its one `TracedRecurrence`."""
    model = keras.Sequential([keras.Input((steps, features)), layer])
    (info,) = find_rnn_layers(model)
    return TracedRecurrence(info)


def zero_states(layer, batch):
    units = layer.cell.units
    count = 2 if "LSTM" in type(layer.cell).__name__ else 1
    return [np.zeros((batch, units), "float32") for _ in range(count)]


def loss_weights(batch, steps, units, seed):
    """Weights of a loss on (outputs [B, T, U], last output, final h)."""
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=s).astype("float32") for s in ((batch, steps, units), (batch, units), (batch, units)))


def run_loop(make_loop, x, initial, mask, weights, grad):
    """``(last output, outputs, final states, record, {kind: dL/d perturbation})``: the loop's forward
    pass with zero perturbations, and the gradient of sum(w_seq * outputs * valid) +
    sum(w_last * last) + sum(w_h * final h) with respect to each perturbation (by kind)."""
    w_seq, w_last, w_h = weights
    valid = np.ones(x.shape[:2], "float32") if mask is None else mask.astype("float32")
    shapes = {}

    def discover(key, shape, dtype):
        shapes[key[1]] = (tuple(int(d) for d in shape), dtype)
        return keras.ops.zeros(shape, dtype)

    record = {}
    last, outs, states = make_loop(discover, record)(x, initial, mask)
    zeros = {kind: np.zeros(shape, dtype) for kind, (shape, dtype) in shapes.items()}

    def loss(perturbations):
        last, outs, states = make_loop(lambda key, shape, dtype: perturbations[key[1]], {})(x, initial, mask)
        total = keras.ops.sum(w_seq * outs * valid[:, :, None]) + keras.ops.sum(w_h * states[0])
        return total + keras.ops.sum(w_last * last)

    (grads,) = grad(loss, zeros)
    return np.asarray(last), np.asarray(outs), [np.asarray(s) for s in states], record, grads


def hand_dl_dh(cell, x, initial, lengths, weights, grad):
    """dL/dh_t [B, T, U] of the same loss (masked steps carry the state), by stepping `cell`
    over each sequence's valid steps with a zero added to each h_t; zeros after them."""
    w_seq, w_last, w_h = weights
    batch, steps = x.shape[:2]
    out = np.zeros(w_seq.shape)
    for b, n in enumerate(lengths):

        def target(eps, b=b, n=n):
            states = [s[b : b + 1] for s in initial]
            total = 0.0
            for t in range(n):
                h, states = cell(x[b : b + 1, t], states)
                states = list(states) if isinstance(states, (list, tuple)) else [states]
                h = h + eps[t]
                states[0] = h
                total = total + keras.ops.sum(w_seq[b, t] * h)
            return total + keras.ops.sum((w_last[b] + w_h[b]) * h)

        (grads,) = grad(target, [np.zeros((1, w_seq.shape[2]), "float32") for _ in range(n)])
        for t, g in enumerate(grads):
            out[b, t] = g[0]
    return out
