"""The probe's compiled run (`rnn_monitor.probe.graph.Prober`) on one LSTM below a Dense head:
its per-step gradient sums, v, the flow and the loss against dL/dh_t taken by stepping the cell
by hand with the backend's autodiff; the float64 sums of h against numpy; the forward part alone
without gradients; what the trace found per recurrence."""

import keras
import numpy as np
import pytest

from rnn_monitor.config import Thresholds
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.probe.graph import Prober
from rnn_monitor.probe.results import CellFacts

pytestmark = pytest.mark.backends
B, T, D, U = 4, 5, 2, 3


def _model():
    keras.utils.set_random_seed(9)
    model = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(U, return_sequences=True, name="lstm"),
                              keras.layers.Dense(1, name="head")])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(9)
    return model, rng.normal(size=(B, T, D)).astype("float32"), rng.normal(size=(B, T, 1)).astype("float32")


def _by_hand(model, x, y, grad):
    """``(loss, dL/dh_t [B, T, U], h [B, T, U])`` with the cell stepped by hand."""
    cell, head = model.get_layer("lstm").cell, model.get_layer("head")

    def run(eps):
        h = c = keras.ops.zeros((B, U))
        hs = []
        for t in range(T):
            h, (h, c) = cell(x[:, t], [h, c])
            h = h + eps[t]
            hs.append(h)
        return keras.ops.stack(hs, axis=1)

    def mse(eps):  # the compiled "mse": the mean over every output
        return keras.ops.mean((head(run(eps)) - y) ** 2)

    zeros = [np.zeros((B, U), "float32") for _ in range(T)]
    (dh,) = grad(mse, zeros)
    loss = float(np.asarray(mse(zeros)))
    return loss, np.stack(dh, axis=1), np.asarray(run(zeros), np.float64)


def test_gradient_sums_flow_and_loss_against_the_cell_stepped_by_hand(grad):
    model, x, y = _model()
    prober = Prober(model, find_rnn_layers(model), Thresholds(), text_samples=2, gradients=True, path="loop")
    out = prober.run(x, y)
    res = out.layers["lstm"]
    loss, dh, h = _by_hand(model, x, y, grad)
    assert out.loss == pytest.approx(loss, rel=1e-5)
    assert out.pred_shape == (B, T, 1)
    np.testing.assert_allclose(res["grad_abs_sum"], np.abs(dh).sum(axis=0), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(res["grad_norm_sum"], np.linalg.norm(dh, axis=2).sum(axis=0), rtol=1e-4, atol=1e-8)
    np.testing.assert_array_equal(res["count_t"], [B] * T)
    v = dh[:, -1]
    np.testing.assert_allclose(res["v_norm"], np.linalg.norm(v, axis=1), rtol=1e-4)
    cell = model.get_layer("lstm").cell

    def last_h(eps):  # d<v, h_T>/dh_t through the recurrence alone
        h = c = keras.ops.zeros((B, U))
        for t in range(T):
            h, (h, c) = cell(x[:, t], [h, c])
            h = h + eps[t]
        return keras.ops.sum(v * h)

    (flow,) = grad(last_h, [np.zeros((B, U), "float32") for _ in range(T)])
    np.testing.assert_allclose(res["flow_norm"], np.linalg.norm(np.stack(flow, 1), axis=2), rtol=1e-4, atol=1e-9)
    acc = res["acc"]  # the device's mean and squared deviations, as float64 sums
    np.testing.assert_allclose(acc["h_sum"], h.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(acc["h_sumsq"], (h * h).sum(axis=(0, 1)), rtol=1e-5)
    assert acc["n_valid"] == B * T and acc["h_sum"].dtype == np.float64
    np.testing.assert_allclose(res["samples"]["h"], h[:2], rtol=1e-5, atol=1e-7)
    assert out.cells["lstm"] == CellFacts(h_bounded=True, tanh_output=True, direct=True, recurrent=True,
                                          positions=1, dtype_eps=float(np.finfo(np.float32).eps))
    assert prober.refusals == {} and [t.info.name for t in prober.traced] == ["lstm"]


def test_without_gradients_only_the_forward_part_runs():
    model, x, _ = _model()
    out = Prober(model, find_rnn_layers(model), Thresholds(), text_samples=1, gradients=False, path="loop").run(x)
    assert out.loss is None and out.pred_shape is None and "grad_abs_sum" not in out.layers["lstm"]
    h = np.asarray(model.get_layer("lstm")(x))
    np.testing.assert_allclose(out.layers["lstm"]["samples"]["h"], h[:1], rtol=1e-5, atol=1e-7)
    assert out.layers["lstm"]["acc"]["n_valid"] == B * T
