"""Unit health from the probe's accumulators (`rnn_monitor.stats.unit_health`, pure numpy, no TensorFlow)."""

import sys

import numpy as np
import pytest

from rnn_monitor.stats import unit_health as us


def test_stats_modules_do_not_import_tensorflow():
    import subprocess

    code = (
        "import sys; import rnn_monitor.stats.unit_health, rnn_monitor.stats.gradients, "
        "rnn_monitor.stats.weights, rnn_monitor.stats.relevance, rnn_monitor.stats.average_input, "
        "rnn_monitor.stats.periodicity; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _acc(h, valid, **kw):
    return us.accumulate({"h": h}, valid, **kw)


def test_dead_exploding_saturated_from_full_arrays():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(4, 10, 6))
    h[..., 0] = 0.0  # dead: constant output
    h[..., 1] = 0.3  # dead too: constant, not zero
    h[..., 2] = np.sign(h[..., 2]) * 0.995  # saturated tanh
    h[..., 3] *= 1e3  # exploding when unbounded
    valid = np.ones((4, 10), bool)
    tanh_out = h.copy()
    tanh_out[..., 3] = 0.0  # (an unbounded unit has no tanh output to saturate)
    acc = _acc(h, valid, tanh_output=tanh_out)
    assert us.dead_units(acc).tolist() == [True, True, False, False, False, False]
    assert us.saturated_units(acc).tolist() == [False, False, True, False, False, False]
    assert us.exploding_units(acc, h_bounded=False).tolist() == [False, False, False, True, False, False]
    assert not us.exploding_units(acc, h_bounded=True).any()
    assert us.ratio(us.dead_units(acc)) == pytest.approx(2 / 6)
    np.testing.assert_allclose(us.unit_std(acc), h.reshape(-1, 6).std(0), rtol=1e-9, atol=1e-12)


def test_masked_positions_change_nothing():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(3, 8, 5))
    valid = np.ones((3, 8), bool)
    valid[0, 5:] = False
    valid[2, :2] = False
    garbage = h.copy()
    garbage[~valid] = np.nan  # masked positions hold anything, NaN included
    garbage[0, 6, 0] = 1e9
    a, b = _acc(h, valid), _acc(garbage, valid)
    for key in a:
        np.testing.assert_allclose(a[key], b[key])
    flat = h[valid]
    np.testing.assert_allclose(us.unit_std(a), flat.std(0), rtol=1e-9)


def test_nonfinite_states_are_exploding_not_dead():
    h = np.zeros((2, 3, 2))
    h[0, 1, 1] = np.nan
    acc = _acc(h, np.ones((2, 3), bool))
    assert acc["h_nonfinite"].tolist() == [0, 1]
    assert us.exploding_units(acc, h_bounded=True).tolist() == [False, True]
    assert us.dead_units(acc).tolist() == [True, False]


def test_gate_saturation_fractions():
    g = np.array([[[0.05, 0.5], [0.95, 0.5], [0.05, 0.95], [0.5, 0.02]]])  # [1, 4, 2]
    valid = np.array([[True, True, True, False]])
    acc = us.accumulate({"h": np.zeros_like(g), "f": g}, valid, sigmoid_gates=("f",))
    left, right = us.gate_saturation(acc, "f")
    assert left == pytest.approx(2 / 6) and right == pytest.approx(2 / 6)
