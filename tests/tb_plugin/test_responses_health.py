"""tb_plugin/responses/health.py on a small log: each layer's own scalars, as written."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_monitor.logdir import metadata
from tb_plugin.params import NotFound
from tb_plugin.responses.health import health_impl

WRITTEN = {  # layer -> scalar -> values at epochs 0, 1, 2
    "bi": {"grad_norm": [9.0, 8.0, 7.0]},  # a layer whose name prefixes the others'
    "bi/forward": {"saturated_ratio": [0.5, np.nan, 0.25], "dead_ratio": [0.0, 0.125, np.inf],
                   "kernel/z/l2": [1.5, 2.5, 3.5]},
    "bi/backward": {"dead_ratio": [1.0, 1.0, 1.0]},
}


@pytest.fixture
def src(tiny_log):
    tiny_log.manifest([{"name": "bi/forward", "gates": ["z", 7, "r", "h"]}, {"name": "bi/backward"}])
    for layer, scalars in WRITTEN.items():
        for name, values in scalars.items():
            for epoch, value in enumerate(values):
                tiny_log.scalar(layer, name, value, epoch)
    tiny_log.tensor(metadata.TEMPORAL_FLOW, np.ones(3, np.float32), 0, layer="bi")  # bi: data, no manifest entry
    return tiny_log.source()


def test_a_layers_scalars_and_only_its_own(src):
    body = health_impl(src, "rnn_monitor", "bi/forward")
    expected = {name: {"epochs": [0, 1, 2], "values": [v if np.isfinite(v) else None for v in values]}
                for name, values in WRITTEN["bi/forward"].items()}
    assert body["series"] == expected
    assert body["gates"] == ["z", "r", "h"]
    assert body["health"] == ["dead_ratio", "saturated_ratio"]  # those it has, in the table's order
    assert (body["roles"], body["stats"]) == (list(metadata.WEIGHT_ROLES), list(metadata.GATE_STATS))
    assert health_impl(src, "rnn_monitor", "bi")["series"] == {"grad_norm": {"epochs": [0, 1, 2],
                                                                             "values": [9.0, 8.0, 7.0]}}
    assert health_impl(src, "rnn_monitor", "bi")["gates"] == []


def test_an_unknown_layer_is_not_found(src):
    with pytest.raises(NotFound, match="unknown layer for this run"):
        health_impl(src, "rnn_monitor", "bi/side")
