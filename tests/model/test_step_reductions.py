"""What TensorFlow's loop writes of each step's gradients
(`rnn_monitor.model.tensorflow.step_reductions`), against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from rnn_monitor.model.tensorflow.step_reductions import (
    StepSums, last_valid_steps, nonfinite_at, per_position, pick_last_valid, step_sums, where_here,
)


def _valid():
    valid = np.ones((6, 4), bool)  # [T, B]
    valid[4:, 0] = False  # padding at the end
    valid[:2, 1] = False  # at the start
    valid[3, 2] = False  # one step inside
    valid[:, 3] = False  # nothing valid
    return valid


def test_last_valid_steps():
    # the all-masked sequence counts its last step
    np.testing.assert_array_equal(last_valid_steps(tf.constant(_valid())).numpy(), [3, 5, 5, 5])


@pytest.mark.parametrize("positions", [1, 3])
def test_step_sums_against_numpy(positions):
    rng = np.random.default_rng(0)
    shape = (5, 4, 3) if positions == 1 else (5, 4, positions, 3)
    e, d = rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32")
    got = step_sums(tf.constant(e), tf.constant(d))
    e4, d4 = e.reshape(5, 4, positions, 3), d.reshape(5, 4, positions, 3)
    np.testing.assert_allclose(got.grad_abs_sum, np.abs(e4).sum(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(got.out_abs_sum, np.abs(d4).sum(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(got.grad_norm_sum, np.sqrt((e4 ** 2).sum(axis=(2, 3))).sum(axis=1), rtol=1e-6)


def test_step_sums_arrays_concatenate_the_segments_in_order():
    arrays = StepSums.arrays(2)
    first = StepSums(tf.ones([2, 3]), 2 * tf.ones([2, 3]), tf.ones([2]))
    second = StepSums(tf.zeros([1, 3]), tf.zeros([1, 3]), tf.zeros([1]))
    got = arrays.write(1, second).write(0, first).concat()
    np.testing.assert_array_equal(got.grad_abs_sum, [[1] * 3, [1] * 3, [0] * 3])
    np.testing.assert_array_equal(got.out_abs_sum, [[2] * 3, [2] * 3, [0] * 3])
    np.testing.assert_array_equal(got.grad_norm_sum, [1, 1, 0])


@pytest.mark.parametrize("positions", [1, 2])
def test_nonfinite_counted_at_valid_steps_only(positions):
    values = np.zeros((6, 4, positions, 3), "float32")  # [T, B, positions, U]
    values[0, 0] = np.nan  # valid: counted at every position and unit
    values[5, 0] = np.inf  # masked: not counted
    values[3, 2] = np.nan  # masked
    values[2, 2, :, 1] = -np.inf  # valid: one unit at every position
    if positions == 1:
        values = values[:, :, 0]  # vectors [T, B, U]
    expected = positions * 3 + positions
    assert float(nonfinite_at(tf.constant(values), tf.constant(_valid()))) == expected


def test_pick_last_valid_from_the_segment_holding_it():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(6, 4, 3)).astype("float32")
    last = last_valid_steps(tf.constant(_valid()))
    v = tf.fill([4, 3], -1.0)
    for lo, hi in ((4, 6), (2, 4), (0, 2)):  # segments from the last, as the reverse pass walks them
        picked, here = pick_last_valid(tf.constant(values[lo:hi]), last, tf.constant(lo), tf.constant(hi - lo))
        np.testing.assert_array_equal(here.numpy(), [lo <= t < hi for t in last.numpy()])
        v = where_here(here, picked, v)
    np.testing.assert_array_equal(v.numpy(), values[last.numpy(), np.arange(4)])


def test_per_position_channels_first_puts_filters_last():
    values = np.arange(2 * 3 * 4 * 5, dtype="float32").reshape(2, 3, 4, 5)  # [T, B, filters, width]
    got = per_position(tf.constant(values), channels_first=True, positions=5).numpy()
    np.testing.assert_array_equal(got, np.moveaxis(values, 2, -1))
