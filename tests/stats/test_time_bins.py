"""Time bins of the written per-unit gradients (`stats.gradients.bin_time`, `gradient_time_bin`)
against plain loops."""

import math

import numpy as np
import pytest

from rnn_monitor.stats.gradients import bin_time, gradient_time_bin


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
