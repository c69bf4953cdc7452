"""The probe's gradient reductions (`rnn_monitor.probe.reductions`) in `keras.ops`, against numpy
on the full arrays: feature maps per position, the state each step started from, the last valid
step, per-step sums and norms, non-finite counts at valid steps only, weight-gradient norms."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest

from rnn_monitor.probe import reductions

pytestmark = pytest.mark.backends


def _np(value):
    return np.asarray(keras.ops.convert_to_numpy(value), np.float64)


def _shape(positions=1, channels_first=False):
    return SimpleNamespace(positions=positions, channels_first=channels_first)


def test_feature_maps_per_position_with_filters_last():
    rng = np.random.default_rng(0)
    last = rng.normal(size=(2, 3, 4, 5, 6)).astype("float32")  # [B, T, H, W, filters]
    np.testing.assert_array_equal(_np(reductions.per_position(last, _shape(20))), last.reshape(2, 3, 20, 6))
    first = np.moveaxis(last, -1, 2)  # [B, T, filters, H, W]
    np.testing.assert_array_equal(_np(reductions.per_position(first, _shape(20, True))), last.reshape(2, 3, 20, 6))
    vectors = rng.normal(size=(2, 3, 6)).astype("float32")
    np.testing.assert_array_equal(_np(reductions.per_position(vectors, _shape())), vectors[:, :, None])


def test_started_from_and_last_valid():
    carried = np.arange(24, dtype="float32").reshape(2, 4, 3)
    initial = -np.ones((2, 3), "float32")
    expected = np.concatenate([initial[:, None], carried[:, :3]], axis=1)
    np.testing.assert_array_equal(_np(reductions.started_from(carried, initial)), expected)
    valid = np.array([[True, True, False, False], [False, False, False, False]])
    got = _np(reductions.last_valid(carried, valid))
    np.testing.assert_array_equal(got, [carried[0, 1], carried[1, 3]])  # none valid: the last step
    everywhere = np.array([[True] * 4, [True, False, True, False]])
    np.testing.assert_array_equal(_np(reductions.last_valid(carried[..., 0], everywhere)), [carried[0, 3, 0], carried[1, 2, 0]])


def test_gradient_sums_against_numpy():
    rng = np.random.default_rng(1)
    dh, dout = rng.normal(size=(2, 3, 4, 5)).astype("float32"), rng.normal(size=(2, 3, 4, 5)).astype("float32")
    valid = np.array([[True, True, False], [True, False, False]])
    got = reductions.gradient_sums(dh, dout, valid, _shape(4))
    np.testing.assert_allclose(_np(got["grad_abs_sum"]), np.abs(dh).sum(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(_np(got["out_abs_sum"]), np.abs(dout).sum(axis=(0, 2)), rtol=1e-5)
    norms = np.sqrt((dh.astype(np.float64) ** 2).sum(axis=(2, 3)))
    np.testing.assert_allclose(_np(got["grad_norm_sum"]), norms.sum(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(_np(got["count_t"]), [2, 1, 0])
    assert _np(got["grad_nonfinite"]) == 0
    np.testing.assert_allclose(_np(reductions.norms_per_step(dh, _shape(4))), norms, rtol=1e-5)
    np.testing.assert_allclose(_np(reductions.sequence_norms(dh)), np.sqrt((dh.astype(np.float64) ** 2).sum(axis=(1, 2, 3))),
                               rtol=1e-5)


def test_nonfinite_gradients_counted_at_valid_steps_only():
    dh = np.zeros((2, 3, 4), "float32")
    dh[0, 0, 1] = np.nan
    dh[0, 1, :2] = np.inf
    dh[1, 2, 3] = np.nan  # a masked step
    valid = np.array([[True, True, True], [True, True, False]])
    assert _np(reductions.gradient_sums(dh, dh, valid, _shape())["grad_nonfinite"]) == 3


def test_weight_gradient_norm_over_finite_entries():
    grads = [np.array([[3.0, np.nan], [0.0, 4.0]], "float32"), np.array([12.0, -np.inf], "float32")]
    norm, bad = reductions.weight_gradient_norm(grads)
    assert _np(norm) == pytest.approx(13.0) and _np(bad) == 2
    norm, bad = reductions.weight_gradient_norm([])
    assert _np(norm) == 0 and _np(bad) == 0
