"""tb_plugin/responses/text.py on a small log: the probe, generated and importance sources, their
values, variances and rankings computed here with numpy from what the test wrote."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from rnn_monitor.logdir import metadata
from tb_plugin.params import BadRequest, NotFound
from tb_plugin.responses.text import activations_impl, sources_of, text_source_impl

WORDS = [list("abcdef"), list("uvwxyz")]
GENERATED = list("seed!?")
INFO = {"decision": [3, 4], "target": 1, "score": 0.8}


def as_json(arr: np.ndarray) -> list:
    """What the route's numbers compare to: float, None for NaN."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(arr, np.float64).ravel()]


def close(got: list, want: list) -> bool:
    return all((g is None and w is None) or (g is not None and w is not None and g == pytest.approx(w, rel=1e-3))
               for g, w in zip(got, want, strict=True))


@pytest.fixture
def log(tiny_log):
    rng = np.random.default_rng(5)
    tiny_log.manifest([{"name": "lstm", "units": 8}, {"name": "gru"}], probe={"units": [5, 2, 7]})
    tiny_log.tokens(metadata.TOKENS, WORDS, 0)
    written = {}
    for epoch in (0, 1):
        for state, scale in (("h", np.array([0.2, 1.0, 0.5])), ("c", np.array([2.0, 0.1, 1.0]))):
            values = (rng.normal(size=(2, 5, 3)) * scale).astype(np.float16)
            values[1, 4, :] = np.nan  # a masked step
            written[epoch, state] = values
            tiny_log.tensor(metadata.ACTIVATIONS, values, epoch, layer="lstm", state=state)
        written[epoch, "generated"] = (rng.normal(size=(6, 3)) * [1.0, 0.1, 3.0]).astype(np.float16)
        tiny_log.tensor(metadata.GENERATED_ACTIVATIONS, written[epoch, "generated"], epoch, layer="lstm", state="h")
        tiny_log.tokens(metadata.GENERATED_TOKENS, GENERATED, epoch)
        importance = rng.normal(size=(2, 6)).astype(np.float32)
        importance[0, 0] = np.nan  # padding
        written[epoch, "importance"] = importance
        tiny_log.tensor(metadata.TOKEN_IMPORTANCE, importance, epoch)
        written[epoch, "reading"] = rng.random((2, 6)).astype(np.float32)
        tiny_log.tensor(metadata.PREDICTION_AS_READ, written[epoch, "reading"], epoch)
    tiny_log.records(metadata.IMPORTANCE_INFO, INFO, 1)  # epoch 0 has none
    return tiny_log.source(), written


def test_probe_activations_ranked_by_variance(log):
    src, written = log
    body = activations_impl(src, "rnn_monitor", "lstm", None, None, None)
    h = written[1, "h"].astype(np.float32)
    var = np.array([np.var(h[..., u][np.isfinite(h[..., u])].astype(np.float64)) for u in range(3)])
    ranking = [int(u) for u in np.argsort(-var)]
    assert (body["state"], body["epoch"], body["epochs"], body["shape"]) == ("h", 1, [0, 1], [2, 5, 3])
    assert close(body["variance"], list(var)) and body["ranking"] == ranking and body["unit"] == ranking[0]
    assert close(sum(body["values"], []), as_json(h[:, :, ranking[0]]))
    blob = np.frombuffer(base64.b64decode(body["data"]), dtype="<f2").reshape(2, 5, 3)
    np.testing.assert_array_equal(blob, written[1, "h"])
    assert body["tokens"] == [w[-5:] for w in WORDS] and body["states"] == ["c", "h"]
    assert body["unit_ids"] == [5, 2, 7]  # RNNMonitor(units=[5, 2, 7])


def test_probe_activations_of_a_chosen_state_epoch_and_unit(log):
    src, written = log
    body = activations_impl(src, "rnn_monitor", "lstm", "c", 0, 1)
    assert (body["state"], body["epoch"], body["unit"]) == ("c", 0, 1)
    assert close(sum(body["values"], []), as_json(written[0, "c"][:, :, 1]))
    with pytest.raises(NotFound, match="unit out of range: this layer has 3 units"):
        activations_impl(src, "rnn_monitor", "lstm", None, None, 3)
    with pytest.raises(NotFound, match="^no activations for this layer: the probe does not cover this layer"):
        activations_impl(src, "rnn_monitor", "gru", None, None, None)


def test_generated_text_is_one_sequence_of_every_unit(log):
    src, written = log
    body = text_source_impl(src, "rnn_monitor", "lstm", "generated", None, 0)
    values = written[0, "generated"].astype(np.float32)
    var = np.var(values.astype(np.float64), axis=0)
    assert (body["source"], body["state"], body["states"], body["epoch"]) == ("generated", "h", ["h"], 0)
    assert body["shape"] == [1, 6, 3] and body["tokens"] == [GENERATED] and body["unit_ids"] == [0, 1, 2]
    assert close(body["variance"], list(var)) and body["ranking"] == [2, 0, 1] and body["unit"] == 2
    assert close(sum(body["values"], []), as_json(values[:, 2]))
    assert "reading" not in body


def test_importance_is_one_unit_over_the_probe_text_with_the_prediction_as_read(log):
    src, written = log
    body = text_source_impl(src, "rnn_monitor", "lstm", "importance", None, None)
    assert (body["state"], body["states"], body["epoch"], body["shape"]) == ("importance", ["importance"], 1, [2, 6, 1])
    assert body["tokens"] == WORDS and body["ranking"] == [0]
    assert close(sum(body["values"], []), as_json(written[1, "importance"]))
    assert close([np.nanvar(written[1, "importance"].astype(np.float64))], body["variance"])
    assert close(sum(body["reading"], []), as_json(written[1, "reading"]))
    assert list(body)[-4:] == ["reading", "decision", "target", "score"]
    assert (body["decision"], body["target"], body["score"]) == (INFO["decision"], 1, 0.8)
    earlier = text_source_impl(src, "rnn_monitor", "lstm", "importance", None, 0)
    assert (earlier["decision"], earlier["target"], earlier["score"]) == (None, None, None)


def test_text_sources_a_layer_has_and_those_it_lacks(log):
    src, _ = log
    run = src.run("rnn_monitor")
    assert sources_of(run, run.layers["lstm"]) == ["probe", "generated", "importance"]
    assert sources_of(run, src.layer(run, "gru")) == ["importance"]
    with pytest.raises(BadRequest, match="source must be one of probe, generated, importance"):
        text_source_impl(src, "rnn_monitor", "lstm", "weights", None, None)
    with pytest.raises(NotFound, match="no generated text for this layer"):
        text_source_impl(src, "rnn_monitor", "gru", "generated", None, None)
