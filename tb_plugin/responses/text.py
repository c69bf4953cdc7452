"""The text view: ``/activations`` with its three sources: the probe text with one state's
activations (``probe``), the text generated at an epoch (``generated``) and the probe text with
each token's occlusion importance (``importance``)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Optional

import numpy as np

from rnn_monitor.logdir import metadata
from tb_plugin.data_source import LayerIndex, RunIndex, Source
from tb_plugin.encoding import FLOAT16_ENCODING, float16_blob, json_floats
from tb_plugin.lookup import absent, probe_tokens, run_series_at, state_at
from tb_plugin.params import BadRequest, NotFound

TEXT_SOURCES = ("probe", "generated", "importance")
NO_GENERATED = 'no generated text for this layer: log it with RNNMonitor(generate={"seed": ...})'
NO_IMPORTANCE = "no token importance: it is logged for classifiers (one output per sequence) with probe_data"


class TextSample(NamedTuple):
    """What a text source shows at one epoch: values [S, T, U] over tokens [S][T]; `extra` holds
    the importance source's own fields (prediction as read, decision point, target, score)."""

    state: str
    states: list[str]
    epoch: int
    epochs: list[int]
    values: np.ndarray
    tokens: Optional[list[list[str]]]
    extra: dict[str, Any]


def sources_of(run: RunIndex, layer: LayerIndex) -> list[str]:
    """The text view's sources this layer has: probe text, generated text, token importance."""
    out = ["probe"] if layer.states else []
    if layer.generated and metadata.GENERATED_TOKENS in run.run_kinds:
        out.append("generated")
    if metadata.TOKEN_IMPORTANCE in run.run_kinds:
        out.append("importance")
    return out


def rank_by_variance(var: np.ndarray) -> list[int]:
    """Units by variance, largest first (ties in unit order, NaN last)."""
    return [int(u) for u in np.argsort(np.nan_to_num(-var, nan=np.inf), kind="stable")]


def finite_variance(flat: np.ndarray) -> np.ndarray:
    """Each column's variance over its finite values ([N, U] -> [U]); NaN for a column with none."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(flat)
        counts = valid.sum(axis=0)
        safe = np.where(valid, flat, 0.0)
        mean = safe.sum(axis=0) / np.maximum(counts, 1)
        var = (np.where(valid, flat - mean, 0.0) ** 2).sum(axis=0) / np.maximum(counts, 1)
    var[counts == 0] = np.nan
    return var


def activations_impl(src: Source, run_name: str, layer_name: str, state: Optional[str],
                     epoch: Optional[int], unit: Optional[int]) -> dict:
    """Tokens and one state's activations at one epoch, units ranked by variance.

    All units come as little-endian float16 in base64 (``data``, shape [S, T, U]) so the page
    can recolour and rank by a regex without asking again; ``values`` has the chosen unit as
    plain JSON numbers (NaN -> null).
    """
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    at = state_at(src, run, layer.states, state, epoch,
                  absent(src, run, layer, "activations", "the run was logged without probe data"))
    arr = at.values[None] if at.values.ndim == 2 else at.values
    if arr.ndim != 3:
        raise NotFound("activations have an unexpected shape")
    n_seq, n_t, n_units = (int(d) for d in arr.shape)
    if unit is not None and not 0 <= unit < n_units:
        raise NotFound(f"unit out of range: this layer has {n_units} units")
    arr32 = arr.astype(np.float32)
    var = finite_variance(arr32.reshape(-1, n_units))
    ranking = rank_by_variance(var)
    chosen_unit = ranking[0] if unit is None else unit
    return {
        "run": run_name,
        "layer": layer_name,
        "state": at.state,
        "states": sorted(layer.states),
        "epoch": at.epoch,
        "epochs": at.epochs,
        "shape": [n_seq, n_t, n_units],
        "tokens": probe_tokens(src, run, n_seq, n_t),
        "variance": json_floats(var),
        "ranking": ranking,
        "unit": chosen_unit,
        # the layer's unit index of each column (RNNMonitor(units=...))
        "unit_ids": metadata.activation_unit_ids(src.manifest(run) or {}, layer_name, n_units),
        "values": json_floats(arr32[:, :, chosen_unit]),  # values[s][t] of `unit`
        "encoding": FLOAT16_ENCODING,
        "data": float16_blob(arr),
        "sampling": src.sampling(run, at.epochs, list(run.layers)),
    }


def text_source_impl(src: Source, run_name: str, layer_name: str, source: str, state: Optional[str],
                     epoch: Optional[int]) -> dict:
    """The text view's generated-text and importance sources, shaped like `activations_impl`.

    generated: the text generated at `epoch`, one sequence, every unit of `state`.
    importance: the probe text with one "unit", the occlusion importance (score drop when the
    token is removed), plus the prediction-as-read curve and the decision point.
    """
    if source not in TEXT_SOURCES:
        raise BadRequest(f"source must be one of {', '.join(TEXT_SOURCES)}")
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    sample = (generated_sample(src, run, layer, state, epoch) if source == "generated"
              else importance_sample(src, run, epoch))
    arr = sample.values
    n_seq, n_t, n_units = (int(d) for d in arr.shape)
    with np.errstate(invalid="ignore"):
        var = np.nanvar(arr.reshape(-1, n_units), axis=0) if np.isfinite(arr).any() else np.full(n_units, np.nan)
    ranking = rank_by_variance(var)
    return dict({
        "run": run_name, "layer": layer_name, "source": source, "state": sample.state, "states": sample.states,
        "epoch": sample.epoch, "epochs": sample.epochs, "shape": [n_seq, n_t, n_units], "tokens": sample.tokens,
        "variance": json_floats(var), "ranking": ranking, "unit": ranking[0], "unit_ids": list(range(n_units)),
        "values": json_floats(arr[:, :, ranking[0]]), "encoding": FLOAT16_ENCODING, "data": float16_blob(arr),
        "sampling": src.sampling(run, sample.epochs, list(run.layers)),
    }, **sample.extra)


def generated_sample(src: Source, run: RunIndex, layer: LayerIndex, state: Optional[str],
                     epoch: Optional[int]) -> TextSample:
    """The text generated at `epoch` (one sequence [1, N, U]) with every unit of `state`."""
    at = state_at(src, run, layer.generated, state, epoch, NO_GENERATED)
    raw = run_series_at(src, run, metadata.GENERATED_TOKENS, at.epoch, "no generated tokens").value
    tokens = [[metadata.decode_text(t) for t in np.asarray(raw, dtype=object).ravel()]]
    values = np.asarray(at.values, dtype=np.float32)[None]
    return TextSample(at.state, sorted(layer.generated), at.epoch, at.epochs, values, tokens, {})


def importance_sample(src: Source, run: RunIndex, epoch: Optional[int]) -> TextSample:
    """The probe text with each token's occlusion importance as one unit ([S, T, 1]), and the
    prediction as read with the decision point, target and score."""
    at = run_series_at(src, run, metadata.TOKEN_IMPORTANCE, epoch, NO_IMPORTANCE)
    values = np.asarray(at.value, dtype=np.float32)[..., None]
    reading = run_series_at(src, run, metadata.PREDICTION_AS_READ, at.epoch, NO_IMPORTANCE).value
    try:
        info_raw = run_series_at(src, run, metadata.IMPORTANCE_INFO, at.epoch, NO_IMPORTANCE).value
        info = json.loads(metadata.decode_text(info_raw))
    except (NotFound, ValueError):
        info = {}
    tokens = probe_tokens(src, run, values.shape[0], values.shape[1])
    extra = {"reading": json_floats(np.asarray(reading, dtype=np.float32)), "decision": info.get("decision"),
             "target": info.get("target"), "score": info.get("score")}
    return TextSample("importance", ["importance"], at.epoch, at.epochs, values, tokens, extra)
