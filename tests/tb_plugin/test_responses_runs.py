"""tb_plugin/responses/runs.py on a small log: the runs, their layers in the model's order, each
layer's states, kinds and text sources, and notes for what cannot be shown."""

from __future__ import annotations

import numpy as np

from rnn_monitor.logdir import metadata
from tb_plugin.responses.runs import order_states, runs_impl


def test_runs_layers_and_what_each_holds(tiny_log):
    tiny_log.manifest([{"name": "lstm", "kind": "lstm", "class": "LSTM", "direction": "forward", "units": 3,
                        "gates": ["i", "f", "c", "o"]}, {"name": "gru"}],
                      probe={"states": {"lstm": ["h"]}}, every=2, thresholds={"flow_floor": 0.01})
    tiny_log.tokens(metadata.TOKENS, [list("ab")], 0)
    for state in ("o", "x", "c", "i", "h"):
        tiny_log.tensor(metadata.ACTIVATIONS, np.ones((1, 2, 3), np.float16), 0, layer="lstm", state=state)
    tiny_log.tensor(metadata.TEMPORAL_FLOW, np.ones(2, np.float32), 0, layer="lstm")
    tiny_log.tensor(metadata.TEMPORAL_FLOW, np.ones(2, np.float32), 0, layer="dense_rnn")  # not in the manifest
    tiny_log.tensor(metadata.TEMPORAL_FLOW, np.ones(2, np.float32), 0, layer="lstm", run="old")  # no manifest
    body = runs_impl(tiny_log.source())
    assert body["notes"] == ["old: no manifest (written by an older or unfinished rnn-monitor)"]
    assert body["samples_flag"] == "--samples_per_plugin rnn_monitor=0"
    (run,) = body["runs"]
    assert (run["run"], run["has_tokens"], run["has_alerts"], run["every"]) == ("rnn_monitor", True, False, 2)
    assert run["probe"] == {"states": {"lstm": ["h"]}} and run["thresholds"] == {"flow_floor": 0.01}
    lstm, gru, extra = run["layers"]
    assert [lstm["name"], gru["name"], extra["name"]] == ["lstm", "gru", "dense_rnn"]
    assert (lstm["kind"], lstm["class"], lstm["direction"], lstm["units"]) == ("lstm", "LSTM", "forward", 3)
    assert lstm["states"] == ["h", "c", "i", "o", "x"] and lstm["sources"] == ["probe"]
    assert [k for k, has in lstm["has"].items() if has] == ["temporal_flow"] and lstm["missing"] is None
    assert set(lstm["has"]) == set(metadata.LAYER_KINDS) - {metadata.ACTIVATIONS}
    assert gru["missing"].startswith("the probe does not cover this layer") and gru["gates"] == []
    assert extra["kind"] is None and extra["missing"] is None


def test_states_order_h_c_the_gates_then_by_name():
    assert order_states(["z", "b", "f", "c", "h", "i"], ["i", "f", "c", "o"]) == ["h", "c", "i", "f", "b", "z"]
