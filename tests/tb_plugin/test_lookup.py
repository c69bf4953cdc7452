"""tb_plugin/lookup.py: finding epochs, states and tokens in a small log, and the messages that
say why something is absent."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_monitor.logdir import metadata
from tb_plugin.lookup import (
    absent, default_state, layer_kind_series, manifest_layer_names, missing_reason, pick_epoch, probe_tokens,
    run_series_at, state_at, value_at,
)
from tb_plugin.params import NotFound


def test_pick_epoch_defaults_to_the_last_and_names_the_epochs_there_are():
    assert pick_epoch([0, 2, 4], None) == 4 and pick_epoch([0, 2, 4], 2) == 2
    with pytest.raises(NotFound, match="epoch 3 is not available; available epochs: 0, 2, 4"):
        pick_epoch([0, 2, 4], 3)
    with pytest.raises(NotFound, match=r"available epochs: 0 \.\. 29 \(30 epochs\)"):
        pick_epoch(list(range(30)), 31)
    with pytest.raises(NotFound, match="no epochs logged"):
        pick_epoch([], None)


def test_value_at_is_the_chosen_epochs_value():
    series = [(0, "a"), (3, "b"), (5, "c")]
    assert value_at(series, None) == (5, [0, 3, 5], "c")
    at = value_at(series, 3)
    assert (at.epoch, at.epochs, at.value) == (3, [0, 3, 5], "b")


def test_default_state_is_h_else_the_first_by_name():
    assert default_state({"f": "t1", "h": "t2", "c": "t3"}) == "h"
    assert default_state({"z": "t1", "r": "t2"}) == "r"


def test_manifest_layer_names_keep_the_models_order_and_only_names():
    manifest = {"layers": [{"name": "lstm"}, "junk", {"name": 3}, {"name": "bi/forward"}, {}]}
    assert manifest_layer_names(manifest) == ["lstm", "bi/forward"]
    assert manifest_layer_names({}) == []


@pytest.mark.parametrize("probe, start", [
    (None, "the run was logged without probe data"),
    ({"states": {"lstm": ["h"]}}, "the probe part was switched off"),
    ({"states": {"gru": ["h"]}}, "the probe does not cover this layer"),
])
def test_missing_reason(probe, start):
    assert missing_reason({"probe": probe}, "lstm").startswith(start)


def _probe_log(tiny_log):
    """Layer lstm: h and c at epochs 0 and 2, 2 sequences x 5 steps x 3 units; tokens [2, 6]."""
    rng = np.random.default_rng(1)
    tiny_log.manifest([{"name": "lstm"}, {"name": "gru"}], probe={"states": {"lstm": ["h", "c"]}})
    words = [list("abcdef"), list("uvwxyz")]
    tiny_log.tokens(metadata.TOKENS, words, 0)
    values = {}
    for epoch in (0, 2):
        for state in ("h", "c"):
            values[epoch, state] = rng.normal(size=(2, 5, 3)).astype(np.float16)
            tiny_log.tensor(metadata.ACTIVATIONS, values[epoch, state], epoch, layer="lstm", state=state)
    tiny_log.tensor(metadata.TEMPORAL_FLOW, np.ones(5, np.float32), 0, layer="lstm")
    src = tiny_log.source()
    return src, src.run("rnn_monitor"), values, words


def test_state_at_reads_the_chosen_state_and_epoch(tiny_log):
    src, run, values, _ = _probe_log(tiny_log)
    states = run.layers["lstm"].states
    at = state_at(src, run, states, None, None, "none")
    assert (at.state, at.epoch, at.epochs) == ("h", 2, [0, 2])
    np.testing.assert_array_equal(at.values, values[2, "h"])
    np.testing.assert_array_equal(state_at(src, run, states, "c", 0, "none").values, values[0, "c"])
    with pytest.raises(NotFound, match="states of this layer: c, h"):
        state_at(src, run, states, "f", None, "none")
    with pytest.raises(NotFound, match="^nothing here$"):
        state_at(src, run, {}, None, None, "nothing here")


def test_probe_tokens_are_the_last_steps_of_the_first_sequences(tiny_log):
    src, run, _, words = _probe_log(tiny_log)
    assert probe_tokens(src, run, 1, 4) == [words[0][-4:]]
    assert probe_tokens(src, run, 5, 6) == words
    assert probe_tokens(src, run, 2, 9) == words  # fewer tokens than steps: the whole row


def test_series_of_a_kind_and_the_message_when_absent(tiny_log):
    src, run, _, _ = _probe_log(tiny_log)
    lstm = run.layers["lstm"]
    (step, flow), = layer_kind_series(src, run, lstm, metadata.TEMPORAL_FLOW)
    assert step == 0 and flow.tolist() == [1.0] * 5
    with pytest.raises(NotFound, match="^no periodicity for this layer: the run was logged without"):
        layer_kind_series(src, run, lstm, metadata.PERIODICITY)
    with pytest.raises(NotFound, match="^no tokens: why$"):
        run_series_at(src, run, metadata.GENERATED_TOKENS, None, "no tokens: why")
    gru = src.layer(run, "gru")  # in the manifest, nothing probed
    message = absent(src, run, gru, "activations", "not used")
    assert message == ("no activations for this layer: the probe does not cover this layer (one it cannot "
                       "step, or one not selected: the training log says which); its weights are in the Health view")
    assert absent(src, run, lstm, "unit descriptions", "because") == "no unit descriptions for this layer: because"
