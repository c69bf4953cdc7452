"""tb_plugin/responses/units.py on a small log: the Fourier surface, the periodic units and one
unit's card, each number computed here with numpy from what the test wrote."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from rnn_monitor.logdir import metadata
from tb_plugin.params import BadRequest, NotFound
from tb_plugin.responses.units import NO_VOCABULARY, NOT_KEPT, unit_impl, units_impl

FREQS = np.array([0.05, 0.1, 0.2, 0.3, 0.5], np.float32)  # periodic: peak >= 2 * 0.05
PEAK = {0: [[0.2, 0.3, 0.1, 0.5], [0.3, 0.1, 0.5, 0.2]],
        1: [[0.25, 0.05, 0.1, 0.5], [0.6, 0.9, 0.1, np.nan]]}  # [peak_freq, strength] x 4 units
LABELS = list("abcde")  # token 5 has no label
WORDS = [list("abca"), list("aabc")]
KEPT = [0, 2, 3]  # RNNMonitor(units=[0, 2, 3]): h has these columns


def f32(x) -> float:
    return float(np.float32(x))


def _units_run(tiny_log, run: str, rng, tokens: bool) -> dict:
    """Four units at epochs 0 and 1; with `tokens`, the average input as top-3 ids of 6 tokens,
    the probe text and h of the units `KEPT`; else a dense average input of 2 input columns."""
    average_input = {"input": "tokens", "labels": LABELS, "vocab_size": 6} if tokens else {"input": "rows"}
    tiny_log.manifest([{"name": "lstm", "units": 4}], run=run, probe={"units": KEPT, "average_input": average_input})
    if tokens:
        tiny_log.tokens(metadata.TOKENS, WORDS, 0, run=run)
    written = {}
    for epoch in (0, 1):
        power = rng.random((4, 5)).astype(np.float16)
        power[3] = 0  # no power at all: its share is NaN
        written[epoch, "power"] = power
        tiny_log.tensor(metadata.PERIODICITY, power, epoch, layer="lstm", run=run)
        tiny_log.tensor(metadata.PERIODICITY_FREQS, FREQS, epoch, layer="lstm", run=run)
        tiny_log.tensor(metadata.PERIODICITY_PEAK, np.array(PEAK[epoch], np.float32), epoch, layer="lstm", run=run)
        if tokens:
            values = rng.random((4, 3, 3)).astype(np.float16)
            ids = np.stack([rng.permutation(6)[:3] for _ in range(12)]).reshape(4, 3, 3).astype(np.int32)
            dense = np.zeros((4, 3, 6), np.float32)
            for u, w, k in np.ndindex(4, 3, 3):
                dense[u, w, ids[u, w, k]] = values[u, w, k]
            written[epoch, "average"] = dense
            tiny_log.tensor(metadata.AVERAGE_INPUT, values, epoch, layer="lstm", run=run)
            tiny_log.tensor(metadata.AVERAGE_INPUT_IDS, ids, epoch, layer="lstm", run=run)
        else:
            written[epoch, "average"] = rng.normal(size=(4, 3, 2)).astype(np.float16)
            tiny_log.tensor(metadata.AVERAGE_INPUT, written[epoch, "average"], epoch, layer="lstm", run=run)
        h = np.tanh(3 * rng.normal(size=(2, 4, 3))).astype(np.float16)
        h[1, 0, :] = np.nan  # a masked step
        written[epoch, "h"] = h
        tiny_log.tensor(metadata.ACTIVATIONS, h, epoch, layer="lstm", state="h", run=run)
    return written


@pytest.fixture
def log(tiny_log):
    rng = np.random.default_rng(7)
    written = {"a": _units_run(tiny_log, "a", rng, tokens=True), "b": _units_run(tiny_log, "b", rng, tokens=False)}
    return tiny_log.source(), written


def test_units_surface_most_periodic_first_and_the_periodic_units(log):
    src, written = log
    body = units_impl(src, "a", "lstm", None)
    assert body["order"] == [1, 0, 2, 3]  # by strength, NaN last
    power = written["a"][1, "power"].astype(np.float64)
    with np.errstate(invalid="ignore"):
        share = power / power.sum(axis=1, keepdims=True)
    blob = np.frombuffer(base64.b64decode(body["share"]), dtype="<f2").reshape(body["shape"])
    np.testing.assert_allclose(blob, share[[1, 0, 2, 3]], rtol=1e-3)
    assert np.isnan(blob[3]).all() and body["shape"] == [4, 5] and body["units"] == 4
    # unit 1 is the strongest but repeats less than twice within the spectrum; 2 is weak; 3 NaN
    assert body["periodic"] == [{"unit": 0, "freq": 0.25, "period": 4.0, "strength": f32(0.6)}]
    assert body["strength"] == [0.6, 0.9, 0.1, None] and body["freqs"] == [0.05, 0.1, 0.2, 0.3, 0.5]
    assert (body["epoch"], body["epochs"]) == (1, [0, 1])
    assert units_impl(src, "a", "lstm", 0)["order"] == [2, 0, 3, 1]


def test_unit_card_of_token_input(log):
    src, written = log
    body = unit_impl(src, "a", "lstm", 2, None, "a")
    avg = written["a"][1, "average"][2]  # [W, D], scattered from the top-3 ids
    top = list(np.argsort(-avg.sum(axis=0), kind="stable"))
    card = body["average_input"]
    assert card["kind"] == "tokens" and card["window"] == 3
    assert card["columns"] == [LABELS[d] if d < 5 else "<5>" for d in top]
    np.testing.assert_allclose(np.array(card["values"]), avg[:, top], rtol=1e-3)
    favourites = []
    for epoch in (0, 1):
        last = written["a"][epoch, "average"][2, -1]
        favourites.append(LABELS[int(np.argmax(last))] if np.argmax(last) < 5 else "<5>")
    assert body["favourite"] == favourites
    assert body["peak_freq"] == [0.1, 0.1] and body["strength"] == [0.5, 0.1]  # 4 significant digits


def test_unit_card_saturation_and_relevance_of_the_units_column(log):
    src, written = log
    body = unit_impl(src, "a", "lstm", 2, None, "a")
    mask = np.array(WORDS) == "a"
    saturation, relevance = [], []
    for epoch in (0, 1):
        column = written["a"][epoch, "h"][..., KEPT.index(2)].astype(np.float64)
        finite = np.isfinite(column)
        saturation.append(np.mean(np.abs(column[finite]) > 0.99))
        relevance.append(column[mask & finite].mean() - column[~mask & finite].mean())
    assert body["activation_epochs"] == [0, 1] and body["note"] is None and body["regex"] == "a"
    np.testing.assert_allclose(body["saturation"], saturation)
    np.testing.assert_allclose(body["relevance"], relevance, rtol=1e-3)
    assert unit_impl(src, "a", "lstm", 2, None, None)["relevance"] is None


def test_unit_card_says_what_it_cannot_show(log):
    src, written = log
    not_kept = unit_impl(src, "a", "lstm", 1, None, "a")
    assert not_kept["note"] == NOT_KEPT and not_kept["activation_epochs"] == [] and not_kept["relevance"] == []
    no_text = unit_impl(src, "b", "lstm", 0, 0, "a")  # the run has no tokens
    assert no_text["note"] == NO_VOCABULARY and no_text["regex"] is None and no_text["relevance"] is None
    assert no_text["activation_epochs"] == [0, 1] and no_text["favourite"] == [None, None]
    card = no_text["average_input"]
    assert card["kind"] == "continuous" and card["columns"] == ["0", "1"]
    np.testing.assert_allclose(np.array(card["values"]), written["b"][0, "average"][0].astype(np.float64), rtol=1e-3)


def test_unit_card_refuses_bad_units_and_regexes(log):
    src, _ = log
    with pytest.raises(NotFound, match="unit out of range: this layer has 4 units"):
        unit_impl(src, "a", "lstm", 4, None, None)
    with pytest.raises(BadRequest, match="not a valid regular expression"):
        unit_impl(src, "a", "lstm", 0, None, "(")
    with pytest.raises(BadRequest, match="regex longer than 200 characters"):
        unit_impl(src, "a", "lstm", 0, None, "a" * 201)
    with pytest.raises(NotFound, match="epoch 5 is not available"):
        units_impl(src, "a", "lstm", 5)
