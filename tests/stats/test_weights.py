"""Per-gate weight statistics (`rnn_monitor.stats.weights`): L2 over finite entries, update
ratio over positions finite in both snapshots, non-finite counts, against plain numpy."""

import math

import numpy as np

from rnn_monitor.stats import weights as ws


def test_l2_and_nonfinite_set_nan_and_inf_aside():
    block = np.array([[3.0, np.nan], [4.0, np.inf]], dtype=np.float32)
    assert ws.l2(block) == 5.0 and ws.nonfinite_count(block) == 2
    rng = np.random.default_rng(0)
    w = rng.normal(size=(7, 5))
    assert math.isclose(ws.l2(w), float(np.linalg.norm(w)), rel_tol=1e-12)


def test_update_ratio_over_positions_finite_in_both():
    before = np.array([1.0, 2.0, np.nan, 2.0])
    now = np.array([1.5, 2.0, 7.0, np.inf])
    # positions 0 and 1 only: ||(0.5, 0)|| / ||(1, 2)||
    assert math.isclose(ws.update_ratio(now, before), 0.5 / math.sqrt(5.0), rel_tol=1e-12)
    assert math.isnan(ws.update_ratio(now, np.zeros(4)))
    assert math.isnan(ws.update_ratio(now, np.ones(3)))  # a changed shape has no ratio


def test_gate_statistics_names_each_block_and_ratio_only_with_a_previous_snapshot():
    rng = np.random.default_rng(1)
    blocks = {("kernel", "i"): rng.normal(size=(3, 4)), ("bias", "f"): rng.normal(size=(4,))}
    first = ws.gate_statistics(blocks)
    assert set(first) == {"kernel/i/l2", "kernel/i/nonfinite", "bias/f/l2", "bias/f/nonfinite"}
    moved = {k: v * 1.1 for k, v in blocks.items()}
    second = ws.gate_statistics(moved, blocks)
    assert math.isclose(second["kernel/i/update_ratio"], 0.1, rel_tol=1e-9)
    assert math.isclose(second["bias/f/l2"], float(np.linalg.norm(moved[("bias", "f")])), rel_tol=1e-12)
