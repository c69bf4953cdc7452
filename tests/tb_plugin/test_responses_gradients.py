"""tb_plugin/responses/gradients.py on a small log: g[t], G[t, u] and F[k] as written, with ranges
and horizons computed here with numpy."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from rnn_monitor.logdir import metadata
from tb_plugin.params import BadRequest, NotFound
from tb_plugin.responses.gradients import flow_floor, flow_impl, gradient_units_impl, gradients_impl, horizon

G_NORM = {0: [0.1, 0.0, 0.3, np.nan], 1: [0.2, 0.5, 1e-3, 2.0, 4.0]}  # epoch 0 logged fewer steps
FLOW = {0: [1.0, 0.5, 0.04, 0.6], 1: [1.0, 0.2, 0.1, 0.06, 0.01]}
FLOOR = 0.05


def grid(field: dict) -> np.ndarray:
    assert field["encoding"] == "float32-le-base64"
    return np.frombuffer(base64.b64decode(field["data"]), dtype="<f4").reshape(field["shape"])


def padded(rows: dict) -> np.ndarray:
    """[epochs, longest] float32 rows, NaN after each row's end."""
    out = np.full((len(rows), max(len(r) for r in rows.values())), np.nan, np.float32)
    for i, row in enumerate(rows.values()):
        out[i, : len(row)] = row
    return out


def positive_range(arr: np.ndarray) -> tuple[float, float]:
    a = np.asarray(arr, np.float64)
    a = a[np.isfinite(a) & (a > 0)]
    return float(a.min()), float(a.max())


@pytest.fixture
def log(tiny_log):
    rng = np.random.default_rng(3)
    tiny_log.manifest([{"name": "lstm"}, {"name": "vec"}], thresholds={"flow_floor": FLOOR})
    G = {}
    for epoch in (0, 1):
        tiny_log.tensor(metadata.TIMESTEP_GRAD_NORM, np.array(G_NORM[epoch], np.float32), epoch, layer="lstm")
        G[epoch] = rng.lognormal(size=(5, 3)).astype(np.float32)
        tiny_log.tensor(metadata.TIMESTEP_GRADIENTS, G[epoch], epoch, layer="lstm")
        tiny_log.tensor(metadata.TEMPORAL_FLOW, np.array(FLOW[epoch], np.float32), epoch, layer="lstm")
    out = rng.lognormal(size=(2, 3)).astype(np.float32)
    tiny_log.tensor(metadata.OUTPUT_GRADIENTS, out, 1, layer="lstm", time_bin=3)
    tiny_log.tensor(metadata.TIMESTEP_GRAD_NORM, np.ones(4, np.float32), 0, layer="vec")
    tiny_log.tensor(metadata.OUTPUT_GRADIENTS, np.arange(4, dtype=np.float32), 0, layer="vec")
    tiny_log.tensor(metadata.TIMESTEP_GRADIENTS, np.ones((4, 2, 3), np.float32), 0, layer="vec")
    return tiny_log.source(), G, out


def test_gradients_are_the_g_rows_as_a_timestep_by_epoch_grid(log):
    src, _, _ = log
    body = gradients_impl(src, "rnn_monitor", "lstm")
    expected = padded(G_NORM)
    np.testing.assert_array_equal(grid(body["matrix"]), expected.T)
    assert (body["epochs"], body["timesteps"]) == ([0, 1], 5)
    assert (body["min_positive"], body["max"]) == positive_range(expected)
    assert body["unit_epochs"] == [0, 1] and body["sampling"] is None
    assert body["unit_kinds"] == ["timestep_gradients", "output_gradients"]
    vec = gradients_impl(src, "rnn_monitor", "vec")
    assert vec["unit_epochs"] == [0] and vec["unit_kinds"] == ["timestep_gradients", "output_gradients"]


def test_gradient_units_are_one_epochs_G_exactly(log):
    src, G, out = log
    body = gradient_units_impl(src, "rnn_monitor", "lstm", 0, None)
    np.testing.assert_array_equal(grid(body["values"]), G[0])
    assert (body["kind"], body["epoch"], body["epochs"]) == ("timestep_gradients", 0, [0, 1])
    assert (body["timesteps"], body["units"], body["time_bin"]) == (5, 3, 1)
    assert (body["min_positive"], body["max"]) == positive_range(G[0])
    assert gradient_units_impl(src, "rnn_monitor", "lstm", None, None)["epoch"] == 1
    binned = gradient_units_impl(src, "rnn_monitor", "lstm", None, "output_gradients")
    np.testing.assert_array_equal(grid(binned["values"]), out)
    assert (binned["epochs"], binned["time_bin"], binned["timesteps"]) == ([1], 3, 2)


def test_gradient_units_of_other_shapes_are_timestep_by_unit(log):
    src, _, _ = log
    one = gradient_units_impl(src, "rnn_monitor", "vec", 0, "output_gradients")  # [T]: one unit
    np.testing.assert_array_equal(grid(one["values"]), np.arange(4, dtype=np.float32)[:, None])
    assert gradient_units_impl(src, "rnn_monitor", "vec", 0, None)["units"] == 6  # [T, 2, 3]


def test_gradient_units_refuse_other_kinds_and_missing_epochs(log):
    src, _, _ = log
    with pytest.raises(BadRequest):
        gradient_units_impl(src, "nope", "lstm", None, "temporal_flow")  # the kind is checked first
    with pytest.raises(NotFound, match="epoch 7 is not available"):
        gradient_units_impl(src, "rnn_monitor", "lstm", 7, None)
    with pytest.raises(NotFound, match="unknown layer"):
        gradient_units_impl(src, "rnn_monitor", "gru", None, None)


def test_flow_rows_and_their_horizons_at_the_runs_floor(log):
    src, _, _ = log
    body = flow_impl(src, "rnn_monitor", "lstm")
    expected = padded(FLOW)
    np.testing.assert_array_equal(grid(body["flow"]), expected)
    # the horizon: how many leading lags stay at or above the floor, minus one
    assert body["horizon"] == [int(np.cumprod(row >= FLOOR).sum()) - 1 for row in expected] == [1, 3]
    assert body["floor"] == FLOOR and (body["min_positive"], body["max"]) == positive_range(expected)


def test_flow_floor_falls_back_to_the_default():
    assert flow_floor({"thresholds": {"flow_floor": "0.2"}}) == 0.2
    assert flow_floor({"thresholds": {"flow_floor": "low"}}) == 1e-3
    assert flow_floor({"thresholds": None}) == flow_floor({}) == 1e-3


def test_horizon_of_a_row_below_the_floor_at_once_is_none():
    assert horizon(np.array([0.01, 1.0]), 0.05) is None and horizon(np.array([]), 0.05) is None
