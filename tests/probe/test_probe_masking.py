"""Masked (padded) steps: NaN in the per-step arrays, and no effect on any statistic."""

import keras
import numpy as np
import pytest

from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.config import Thresholds
from rnn_monitor.probe.probe_monitor import ProbeMonitor
from rnn_monitor.record import EpochRecord
from rnn_monitor.logdir.writer import SummaryWriter

pytestmark = pytest.mark.backends

B, T, PAD = 6, 9, 4


def _model():
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(12, 5, mask_zero=True),
            keras.layers.LSTM(6, return_sequences=True, name="lstm"),
            keras.layers.Bidirectional(keras.layers.GRU(4), name="bi"),
            keras.layers.Dense(3),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _probe(model, x, y, log_dir):
    probe = ProbeMonitor(model, find_rnn_layers(model), (x, y), SummaryWriter(log_dir), Thresholds(), text_samples=3)
    probe.start()
    record = EpochRecord(0)
    probe.log_epoch(0, record)
    return probe, record


def test_extra_padding_changes_no_statistic(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 12, size=(B, T)).astype("int32")
    x[0, 6:] = 0
    x[3, 2:] = 0
    y = rng.integers(0, 3, size=(B,))
    padded = np.concatenate([x, np.zeros((B, PAD), "int32")], axis=1)
    model = _model()
    p1, r1 = _probe(model, x, y, str(tmp_path / "a"))
    p2, r2 = _probe(model, padded, y, str(tmp_path / "b"))

    assert set(r1.scalars) == {"lstm", "bi/forward", "bi/backward"}
    for layer, values in r1.scalars.items():
        assert set(values) == set(r2.scalars[layer])
        for name, value in values.items():
            assert r2.scalars[layer][name] == pytest.approx(value, rel=1e-5, abs=1e-9), (layer, name)
        np.testing.assert_allclose(r2.arrays[layer]["temporal_flow"], r1.arrays[layer]["temporal_flow"], rtol=1e-5)
        assert int(r1.arrays[layer]["timesteps"]) == int(r2.arrays[layer]["timesteps"]) == T

    for layer in r1.scalars:
        a, b = p1.last_results[layer], p2.last_results[layer]
        # Every layer in input order: the padded steps are NaN, the others unchanged.
        assert np.isnan(b.G[T:]).all() and np.isnan(b.O[T:]).all() and np.isnan(b.g[T:]).all()
        assert np.isfinite(a.G).all()
        np.testing.assert_allclose(b.G[:T], a.G, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(b.O[:T], a.O, rtol=1e-5, atol=1e-12)
        h = b.activations["h"]
        assert np.isnan(h[0, 6:]).all() and np.isfinite(h[0, :6]).all()
        np.testing.assert_allclose(h[:, :T], a.activations["h"], rtol=1e-5, atol=1e-6)
    # sequence 3 has two valid steps: its padded steps are excluded from the batch mean at t >= 2
    assert np.isfinite(p1.last_results["lstm"].G[2:]).all()


def test_masking_layer_and_backward_half_in_input_order(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 7, 2)).astype("float32")
    x[:, 5:] = 0.0  # masked by Masking for every sequence
    y = rng.normal(size=(4, 1)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((7, 2)),
            keras.layers.Masking(0.0),
            keras.layers.SimpleRNN(3, go_backwards=True, name="back"),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse")
    probe, record = _probe(model, x, y, str(tmp_path))
    res = probe.last_results["back"]
    assert np.isnan(res.G[5:]).all() and np.isfinite(res.G[:5]).all()
    # A go_backwards layer with return_sequences=False outputs at input position 0 (its last step).
    assert (res.O[1:5] == 0).all() and (res.O[0] > 0).all()
    assert res.F.shape == (5,) and res.F[0] == pytest.approx(1.0)


def test_top_layer_flow_matches_a_per_sequence_tape_with_padding(log_dir, lstm_flow_by_tape, grad):
    """The top layer of a classifier (no sequences, no returned states) gets its temporal flow
    from the loss's own adjoint; checked against <v_b, h_last_b> differentiated by a plain tape
    through the cell stepped over each sequence's valid steps only."""
    from rnn_monitor import RNNMonitor, load_run
    from rnn_monitor.stats.gradients import temporal_flow

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    lengths = np.array([8, 3, 6, 1, 8])
    x = rng.integers(1, 7, size=(5, 8)).astype("int32")
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    y = rng.integers(0, 2, size=(5,))
    emb, rnn, head = keras.layers.Embedding(7, 3, mask_zero=True), keras.layers.LSTM(4, name="lstm"), keras.layers.Dense(2)
    model = keras.Sequential([keras.Input((8,), dtype="int32"), emb, rnn, head])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=5, verbose=0,
              callbacks=[RNNMonitor(log_dir, probe_data=(x, y), raise_errors=True, alerts=False, images=False)])

    e = emb(x)
    (v,) = grad(lambda out: model.loss(y, head(out)), np.asarray(rnn(e, mask=x != 0)))  # dL/dh_last per sequence
    flow_norm = lstm_flow_by_tape(rnn.cell, e, v, lengths, 8)
    expected = temporal_flow(flow_norm, np.linalg.norm(v, axis=1), x != 0)
    np.testing.assert_allclose(load_run(log_dir).temporal_flow("lstm")[-1], expected, rtol=1e-4, atol=1e-9)
