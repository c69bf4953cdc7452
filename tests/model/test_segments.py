"""The checkpointed loop's segments (`rnn_monitor.model.tensorflow.segments`): how T steps are
cut, and the incoming gradients split by what the loop returns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from rnn_monitor.model.tensorflow.segments import Incoming, Segments, segment_steps


@pytest.mark.parametrize("steps", [0, -3])
def test_segment_steps_are_at_least_one(steps):
    assert int(segment_steps(tf.constant(10), steps)) == 1


@pytest.mark.parametrize("n_steps", [1, 2, 10, 17, 400])
def test_default_segments_are_ceil_sqrt_t_steps(n_steps):
    assert int(segment_steps(tf.constant(n_steps))) == math.ceil(math.sqrt(n_steps))


@pytest.mark.parametrize("n_steps, requested", [(10, None), (10, 3), (10, 1000), (7, 7), (1, None), (13, 5)])
def test_spans_cover_every_step_once_in_order(n_steps, requested):
    segments = Segments.of(tf.constant(n_steps), requested)
    steps = int(segments.steps)
    assert steps == (min(max(requested, 1), n_steps) if requested is not None else math.ceil(math.sqrt(n_steps)))
    assert int(segments.count) == -(-n_steps // steps)
    covered = []
    for s in range(int(segments.count)):
        lo, hi = (int(v) for v in segments.span(tf.constant(s)))
        assert 0 < hi - lo <= steps
        covered.extend(range(lo, hi))
    assert covered == list(range(n_steps))


def test_incoming_gradients_by_what_the_loop_returns():
    grads = [tf.constant(float(i)) for i in range(4)]
    with_sequences = Incoming.of(grads, return_sequences=True)
    assert [float(with_sequences.sequence), float(with_sequences.last)] == [0.0, 1.0]
    assert [float(g) for g in with_sequences.final] == [2.0, 3.0]
    last_only = Incoming.of(grads, return_sequences=False)
    assert last_only.sequence is None and float(last_only.last) == 0.0
    np.testing.assert_array_equal([float(g) for g in last_only.final], [1.0, 2.0, 3.0])
