"""Gradients through time from the probe's sums (`rnn_monitor.stats.gradients`, pure numpy):
batch means, the temporal flow over valid steps, the horizon, input order, time bins, checked
against hand computations."""

import math

import numpy as np
import pytest

from rnn_monitor.stats import gradients as gs
from rnn_monitor.stats.gradients import bin_time, gradient_time_bin


def test_batch_mean_is_nan_where_nothing_is_valid():
    G = gs.timestep_gradients(np.array([[2.0, 4.0], [0.0, 0.0]]), np.array([2, 0]))
    assert G[0].tolist() == [1.0, 2.0] and np.isnan(G[1]).all()


def test_temporal_flow_counts_valid_steps_only():
    flow = np.array([[0.1, 0.5, 1.0, 0.0], [0.2, 0.4, 0.8, 2.0]])
    vnorm = np.array([1.0, 2.0])
    valid = np.array([[True, True, True, False], [True, True, True, True]])
    F = gs.temporal_flow(flow, vnorm, valid)
    # k=0: (1.0 + 2.0) / 3; k=1: (0.5 + 0.8) / 3; k=2: (0.1 + 0.4) / 3; k=3: only row 1: 0.2 / 2
    np.testing.assert_allclose(F, [1.0, 1.3 / 3, 0.5 / 3, 0.1])
    no_mask = gs.temporal_flow(flow[1:], vnorm[1:], valid[1:])
    np.testing.assert_allclose(no_mask, flow[1, ::-1] / 2.0)


def test_grad_horizon():
    assert gs.grad_horizon(np.array([1.0, 0.5, 1e-2, 1e-4, 0.5])) == 2
    assert gs.grad_horizon(np.array([1.0, 0.5])) == 1
    assert gs.grad_horizon(np.array([np.nan, 1.0])) == 0
    assert gs.grad_horizon(np.array([])) == 0
    assert gs.grad_horizon(np.array([1.0, 2e-3, 5e-4]), floor=1e-3) == 1


def test_input_order():
    a = np.arange(6).reshape(2, 3)
    assert gs.to_input_order(a, True, axis=1).tolist() == [[2, 1, 0], [5, 4, 3]]
    assert gs.to_input_order(a, False, axis=1) is a


@pytest.mark.parametrize("steps, k", [(10, 3), (9, 3), (7, 1), (5, 8)])
def test_bins_are_means_of_their_steps_without_masked_ones(steps, k):
    rng = np.random.default_rng(steps * 10 + k)
    G = rng.random((steps, 4)).astype(np.float32)
    G[rng.random(G.shape) < 0.3] = np.nan  # masked steps
    G[:, 3] = np.nan  # a unit never valid
    out = bin_time(G, k)
    assert out.shape == (math.ceil(steps / k), 4) and out.dtype == np.float32
    for b in range(out.shape[0]):
        for u in range(4):
            values = [v for v in G[b * k : (b + 1) * k, u] if not np.isnan(v)]
            if values:
                assert out[b, u] == pytest.approx(sum(values) / len(values), rel=1e-6)
            else:
                assert np.isnan(out[b, u])


def test_bin_is_the_smallest_that_fits():
    for steps, units, budget in [(1000, [512] * 4, 1.14e6), (100, [128, 128], 1.14e6), (37, [5], 300.0)]:
        k = gradient_time_bin(steps, units, budget)
        size = lambda k: math.ceil(steps / k) * 2 * 4 * sum(units)  # noqa: E731
        assert size(k) <= budget and (k == 1 or size(k - 1) > budget)
    assert gradient_time_bin(1000, [512], None) == 1  # no cap: every step


def test_flow_at_half_reads_k_equal_half_the_valid_steps():
    flow = np.array([1.0, 0.5, 0.25, 0.125, 0.0625])
    assert gs.flow_at_half(flow, 4) == 0.25  # k = 2
    assert gs.flow_at_half(flow, 5) == 0.25  # k = 5 // 2
    assert gs.flow_at_half(flow, 40) == 0.0625  # shorter flow: its last value
    assert math.isnan(gs.flow_at_half(np.array([]), 10))


def test_early_late_ratio_follows_the_processing_order():
    g = np.array([np.nan, 4.0, 2.0, 1.0])  # input order; the first step masked
    assert gs.early_late_ratio(g) == 4.0  # first processed valid step 4.0 over the last 1.0
    assert gs.early_late_ratio(g, backward=True) == 0.25  # a backward layer reads it from the end
    assert math.isnan(gs.early_late_ratio(np.array([1.0, 0.0])))
    assert math.isnan(gs.early_late_ratio(np.array([np.nan, 2.0])))


def test_valid_rank_from_end_and_valid_timesteps():
    valid = np.array([[True, True, False], [False, True, True]])
    assert gs.valid_rank_from_end(valid).tolist() == [[1, 0, -1], [-1, 1, 0]]
    assert gs.valid_timesteps(valid) == 2
