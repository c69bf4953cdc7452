"""The probe's two paths: the layer's own (fused) kernel for stock LSTM / GRU layers
(`rnn_monitor.model.fused_kernel`) and the cell stepped by Keras's loop for every layer
(`rnn_monitor.model.perturbed_loop`).

dL/dh_t on every path is checked against independent tapes in `test_keras_configs.py`. Here: the
temporal flow of a lower layer against a plain tape (with padding on the loop path, without on
the kernel path, which takes no mask), every number of the probe equal on both paths, non-finite
gradients counted at every valid step (which layers the kernel path serves: test_fused_kernel.py).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnn_monitor import RNNMonitor, load_run
from rnn_monitor.config import Thresholds
from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.probe.graph import Prober
from rnn_monitor.stats.gradients import temporal_flow
from probe_inputs import nan_below_two_lstms, padded_tokens

L = keras.layers
pytestmark = pytest.mark.backends


@pytest.mark.parametrize("path, padded", [("loop", True), ("loop", False), ("kernel", False)])
def test_lower_layer_flow_matches_a_plain_tape(path, padded, log_dir, lstm_flow_by_tape, grad):
    """Flow of an LSTM below a GRU (one more backward of its own, the cotangent v at each
    sequence's last valid step): ||d<v_b, h_last_b>/dh_t|| by a tape through the cell stepped
    over the valid steps."""
    keras.utils.set_random_seed(5)
    lengths = np.array([9, 4, 7, 1, 9, 2]) if padded else np.full(6, 9)
    x, y = padded_tokens(lengths, 9, seed=5)
    emb = L.Embedding(9, 3, mask_zero=padded)
    low, top = L.LSTM(5, return_sequences=True, name="low"), L.GRU(4, name="top")
    head = L.Dense(3)
    model = keras.Sequential([keras.Input((9,), dtype="int32"), emb, low, top, head])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    monitor = RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True, alerts=False, images=False, probe_path=path)
    model.fit(x, y, epochs=1, batch_size=6, verbose=0, callbacks=[monitor])
    assert {t.info.name: t.path for t in monitor._parts["probe"]._prober.traced} == {"low": path, "top": path}

    e, mask = emb(x), (x != 0) if padded else None
    (d_seq,) = grad(lambda seq: model.loss(y, head(top(seq, mask=mask))), np.asarray(low(e, mask=mask)))
    # dL/dh at the last valid step: its output and every masked output after it (a copy of it)
    v = np.stack([d_seq[b, n - 1 :].sum(0) for b, n in enumerate(lengths)])
    flow_norm = lstm_flow_by_tape(low.cell, e, v, lengths, 9)
    expected = temporal_flow(flow_norm, np.linalg.norm(v, axis=1), x != 0)
    np.testing.assert_allclose(load_run(log_dir).temporal_flow("low")[-1], expected, rtol=1e-4, atol=1e-9)


def _stock_model(steps):
    inp = keras.Input((steps,), dtype="int32")
    x = L.Embedding(9, 4)(inp)
    x = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bi")(x)
    x = L.GRU(4, return_sequences=True, name="gru")(x)
    x, h, c = L.LSTM(3, go_backwards=True, return_sequences=True, return_state=True, name="lstm_back")(x)
    x = L.GRU(3, go_backwards=True, name="gru_back")(x)
    model = keras.Model(inp, L.Dense(3)(L.Concatenate()([x, h, c])))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_every_probe_number_is_the_same_on_both_paths():
    """Every number the probe gives (per-step sums, norms, flow, v, weight-gradient norms, the
    unit statistics and text samples) is the same through the kernel and through the loop."""
    keras.utils.set_random_seed(2)
    x, y = padded_tokens([11] * 5, 11, seed=2)
    model = _stock_model(11)
    model.fit(x, y, epochs=1, verbose=0)
    infos = find_rnn_layers(model)
    results = {}
    for path in ("kernel", "loop"):
        prober = Prober(model, infos, Thresholds(), 2, gradients=True, h_samples=3, path=path)
        results[path] = prober.run(x, y).layers
        assert {t.path for t in prober.traced} == {path}
    keys = ("grad_abs_sum", "out_abs_sum", "grad_norm_sum", "flow_norm", "v_norm", "weight_grad_norm", "grad_nonfinite")
    for info in infos:
        kernel, loop = results["kernel"][info.name], results["loop"][info.name]
        for key in keys:
            scale = max(float(np.abs(loop[key]).max()), 1e-30)
            assert np.abs(kernel[key] - loop[key]).max() <= 1e-5 * scale, (info.name, key)
        assert np.abs(loop["grad_abs_sum"]).max() > 0, info.name
        for part in ("acc", "samples"):
            assert sorted(kernel[part]) == sorted(loop[part]), (info.name, part)
            for key in loop[part]:
                np.testing.assert_allclose(kernel[part][key], loop[part][key], rtol=1e-5, atol=1e-6,
                                           err_msg=f"{info.name} {key}")
        assert kernel["acc"]["recon"] < 1e-5 and loop["acc"]["recon"] < 1e-5


def test_a_batch_unlike_the_prepared_one_still_runs():
    """The probe is compiled at the start of `fit` for the probe batch; called with another batch
    size it gives the same numbers as a probe never prepared."""
    keras.utils.set_random_seed(3)
    x, y = padded_tokens([6] * 5, 6, seed=3)
    inp = keras.Input((6,), dtype="int32")
    model = keras.Model(inp, L.Dense(3)(L.LSTM(4, name="lstm")(L.Embedding(9, 4)(inp))))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    infos = find_rnn_layers(model)
    prepared = Prober(model, infos, Thresholds(), 2, gradients=True, path="loop")
    prepared.prepare(x, y)
    fresh = Prober(model, infos, Thresholds(), 2, gradients=True, path="loop")
    for rows in (5, 3):
        got, expected = prepared.run(x[:rows], y[:rows]).layers, fresh.run(x[:rows], y[:rows]).layers
        for info in infos:
            np.testing.assert_allclose(got[info.name]["grad_abs_sum"], expected[info.name]["grad_abs_sum"],
                                       rtol=1e-6, err_msg=f"{info.name}, {rows} rows")


@pytest.mark.parametrize("path, lengths", [("loop", [7, 3, 7, 5]), ("kernel", [7, 7, 7, 7])])
def test_nonfinite_gradients_are_counted_at_every_valid_step(path, lengths):
    """A NaN in the output layer's kernel makes dL/dh NaN at every valid step of every layer
    below it: each path counts exactly (valid tokens) x units non-finite gradients per layer."""
    model, x, y, valid = nan_below_two_lstms(lengths, masked=path == "loop")
    out = Prober(model, find_rnn_layers(model), Thresholds(), 2, gradients=True, path=path).run(x, y).layers
    assert float(out["low"]["grad_nonfinite"]) == valid * 5
    assert float(out["high"]["grad_nonfinite"]) == valid * 4
