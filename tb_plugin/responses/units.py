"""The Units view: ``/units`` (the Fourier heat surface and the periodic units at one epoch) and
``/unit`` (one unit's card: its average input, and across epochs its period, strength, favourite
token, saturation and relevance to a regex feature of the probe text)."""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Optional

import numpy as np

from rnn_monitor.logdir import metadata
from rnn_monitor.stats.periodicity import MIN_CYCLES, PERIODIC_STRENGTH
from rnn_monitor.stats.relevance import feature_mask, relevance
from tb_plugin.data_source import LayerIndex, RunIndex, Source
from tb_plugin.encoding import FLOAT16_ENCODING, float16_blob, json_floats
from tb_plugin.lookup import layer_kind_series, probe_tokens, value_at
from tb_plugin.params import BadRequest, NotFound

TOP_TOKENS = 12  # average input of token models: the tokens shown per unit
MAX_REGEX_LEN = 200
SATURATED = 0.99  # |h| above this counts as saturated
NOT_KEPT = "this unit's activations were not kept (RNNMonitor(units=...))"
NO_VOCABULARY = "the probe text was logged without a vocabulary: no regex relevance"


class Periodicity(NamedTuple):
    """A layer's unit descriptions at one epoch: each unit's power per frequency [U, F], the
    frequencies [F], and each unit's peak frequency and strength (its peak's power share) [U]."""

    epoch: int
    epochs: list[int]
    power: np.ndarray
    freqs: np.ndarray
    peak: np.ndarray
    strength: np.ndarray


class AverageInputLayout(NamedTuple):
    """How the manifest describes the average input: token labels, whether the input is tokens
    (else continuous rows), the vocabulary size (the depth of top-K ids)."""

    labels: Optional[list]
    tokens_input: bool
    vocab_size: Any


class ActivationTrace(NamedTuple):
    """One unit's h across the logged epochs: saturation, relevance to `regex` (None when it
    cannot be computed), and a note when something could not be shown."""

    epochs: list[int]
    saturation: list[Optional[float]]
    relevance: list[float]
    regex: Optional[str]
    note: Optional[str]


def periodicity_at(src: Source, run: RunIndex, layer: LayerIndex, epoch: Optional[int]) -> Periodicity:
    """The unit descriptions at `epoch` (default: the last); NotFound when the log lacks them."""
    at = value_at(layer_kind_series(src, run, layer, metadata.PERIODICITY, "unit descriptions",
                                    "they need probe_data of token ids or rows [B, T, D]"), epoch)
    power = np.asarray(at.value, dtype=np.float32)
    freqs = dict(src.series(run, layer.kinds[metadata.PERIODICITY_FREQS])).get(at.epoch)
    peak = dict(src.series(run, layer.kinds[metadata.PERIODICITY_PEAK])).get(at.epoch)
    if freqs is None or peak is None:
        raise NotFound("the unit descriptions of this epoch are incomplete")
    return Periodicity(at.epoch, at.epochs, power, np.asarray(freqs, np.float64),
                       np.asarray(peak[0], np.float64), np.asarray(peak[1], np.float64))


def units_impl(src: Source, run_name: str, layer_name: str, epoch: Optional[int]) -> dict:
    """The Units view's overview: the Fourier heat surface (each unit's power share per frequency,
    most periodic first) and the periodic units, at one epoch."""
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    p = periodicity_at(src, run, layer, epoch)
    order = [int(u) for u in np.argsort(-np.nan_to_num(p.strength, nan=-1.0), kind="stable")]
    share = power_share(p.power)
    return {
        "run": run_name, "layer": layer_name, "epoch": p.epoch, "epochs": p.epochs,
        "units": int(share.shape[0]), "freqs": json_floats(p.freqs), "order": order,
        "share": float16_blob(share[order]), "encoding": FLOAT16_ENCODING, "shape": [int(d) for d in share.shape],
        "strength": json_floats(p.strength), "peak_freq": json_floats(p.peak), "periodic": periodic_units(p, order),
        "threshold": PERIODIC_STRENGTH, "min_cycles": MIN_CYCLES,
        "sampling": src.sampling(run, p.epochs, list(run.layers)),
    }


def power_share(power: np.ndarray) -> np.ndarray:
    """Each unit's power per frequency as a share of its total ([U, F]); NaN for a unit with none."""
    total = power.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, power / np.where(total > 0, total, 1.0), np.nan)


def periodic_units(p: Periodicity, order: list[int]) -> list[dict]:
    """The units (in `order`) whose peak is strong enough and repeats at least `MIN_CYCLES` times
    within the spectrum's length, with their peak frequency, period and strength."""
    min_freq = MIN_CYCLES * float(p.freqs[0]) if p.freqs.size else 0.0  # lowest bin ~ 1 / length
    return [
        {"unit": u, "freq": float(p.peak[u]), "period": float(1.0 / p.peak[u]) if p.peak[u] > 0 else None,
         "strength": float(p.strength[u])}
        for u in order
        if np.isfinite(p.strength[u]) and p.strength[u] > PERIODIC_STRENGTH and p.peak[u] >= min_freq - 1e-9
    ]


def unit_impl(src: Source, run_name: str, layer_name: str, unit: int, epoch: Optional[int],
              regex: Optional[str]) -> dict:
    """One unit's card: its average input at `epoch`, and across every logged epoch its peak
    frequency and strength, its favourite token, its saturation and (with `regex`) its relevance
    to that feature in the probe text."""
    run = src.run(run_name)
    layer = src.layer(run, layer_name)
    p = periodicity_at(src, run, layer, epoch)
    n_units = int(p.power.shape[0])
    if not 0 <= unit < n_units:
        raise NotFound(f"unit out of range: this layer has {n_units} units")
    manifest = src.manifest(run) or {}
    layout = average_input_layout(manifest)
    avg_series = average_input_series(src, run, layer, layout)
    avg = None
    if p.epoch in avg_series:
        avg = average_input_card(np.asarray(avg_series[p.epoch], dtype=np.float32)[unit], layout)
    peaks, strengths = peak_history(src, run, layer, p.epochs, unit)
    favourite = [favourite_token(avg_series.get(s), unit, layout) for s in p.epochs]
    trace = activation_trace(src, run, layer, manifest, unit, regex)
    return {
        "run": run_name, "layer": layer_name, "unit": unit, "epoch": p.epoch, "epochs": p.epochs,
        "average_input": avg, "peak_freq": json_floats(np.array(peaks, dtype=float)),
        "strength": json_floats(np.array(strengths, dtype=float)), "favourite": favourite,
        "activation_epochs": trace.epochs, "saturation": trace.saturation,
        "relevance": json_floats(np.array(trace.relevance, dtype=float)) if trace.regex else None,
        "regex": trace.regex, "note": trace.note,
    }


def average_input_layout(manifest: dict) -> AverageInputLayout:
    """The manifest's description of the average input (``probe.average_input``)."""
    probe = manifest.get("probe") if isinstance(manifest.get("probe"), dict) else {}
    described = (probe or {}).get("average_input") or {}
    labels = described.get("labels") if isinstance(described.get("labels"), list) else None
    return AverageInputLayout(labels, described.get("input") == "tokens", described.get("vocab_size"))


def average_input_series(src: Source, run: RunIndex, layer: LayerIndex,
                         layout: AverageInputLayout) -> dict[int, Any]:
    """{epoch: average input [U, W, D]}; logged as top-K values and ids, scattered back to dense."""
    avg_series = {}
    if metadata.AVERAGE_INPUT in layer.kinds:
        avg_series = dict(src.series(run, layer.kinds[metadata.AVERAGE_INPUT]))
    if metadata.AVERAGE_INPUT_IDS in layer.kinds:
        id_series = dict(src.series(run, layer.kinds[metadata.AVERAGE_INPUT_IDS]))
        avg_series = {s: metadata.dense_average_input(v, id_series.get(s), layout.vocab_size)
                      for s, v in avg_series.items() if s in id_series}
    return avg_series


def token_name(token_id: int, labels: Optional[list]) -> str:
    """A token's label, ``<id>`` when the vocabulary does not name it."""
    return str(labels[token_id]) if labels and token_id < len(labels) else f"<{token_id}>"


def average_input_card(a: np.ndarray, layout: AverageInputLayout) -> dict:
    """One unit's average input [W, D] as the card draws it: for tokens, the `TOP_TOKENS` tokens
    with the most weight over the window; for continuous input, every input column."""
    if layout.tokens_input:
        top = [int(d) for d in np.argsort(-np.nan_to_num(a.sum(axis=0)), kind="stable")[:TOP_TOKENS]]
        names = [token_name(d, layout.labels) for d in top]
        return {"kind": "tokens", "columns": names, "values": json_floats(a[:, top]), "window": int(a.shape[0])}
    return {"kind": "continuous", "columns": [str(d) for d in range(a.shape[1])],
            "values": json_floats(a), "window": int(a.shape[0])}


def favourite_token(avg: Any, unit: int, layout: AverageInputLayout) -> Optional[str]:
    """The token with the most weight right before the unit's step (the window's last position),
    None for continuous input, a missing epoch, or no positive weight."""
    if avg is None or not layout.tokens_input:
        return None
    last = np.asarray(avg, np.float32)[unit, -1]
    if not (np.isfinite(last).any() and last.max() > 0):
        return None
    return token_name(int(np.argmax(last)), layout.labels)


def peak_history(src: Source, run: RunIndex, layer: LayerIndex, steps: list[int],
                 unit: int) -> tuple[list[Optional[float]], list[Optional[float]]]:
    """The unit's peak frequency and strength at each of `steps` (None where not logged)."""
    per_epoch = {s: arr for s, arr in src.series(run, layer.kinds[metadata.PERIODICITY_PEAK])}
    rows = [per_epoch.get(s) for s in steps]
    return ([float(row[0][unit]) if row is not None else None for row in rows],
            [float(row[1][unit]) if row is not None else None for row in rows])


def activation_trace(src: Source, run: RunIndex, layer: LayerIndex, manifest: dict, unit: int,
                     regex: Optional[str]) -> ActivationTrace:
    """The unit's h at every logged epoch: the share of saturated steps and, with `regex`, the
    relevance to that feature (dropped, with a note, when the probe text has no vocabulary)."""
    saturation, epochs, relevances, note = [], [], [], None
    if "h" not in layer.states:
        return ActivationTrace(epochs, saturation, relevances, regex, note)
    ids = None
    for s, acts in src.series(run, layer.states["h"]):
        acts = np.asarray(acts, dtype=np.float32)
        if ids is None:
            ids = metadata.activation_unit_ids(manifest, layer.name, acts.shape[-1])
        if unit not in ids:
            note = NOT_KEPT
            break
        column = acts[..., ids.index(unit)]
        epochs.append(s)
        finite = column[np.isfinite(column)]
        saturation.append(float(np.mean(np.abs(finite) > SATURATED)) if finite.size else None)
        if regex:
            value = regex_relevance(src, run, acts, column, regex)
            if value is None:
                note, regex = NO_VOCABULARY, None
            else:
                relevances.append(value)
    return ActivationTrace(epochs, saturation, relevances, regex, note)


def regex_relevance(src: Source, run: RunIndex, acts: np.ndarray, column: np.ndarray,
                    regex: str) -> Optional[float]:
    """The relevance of one unit's activations `column` [S, T] to the probe text's tokens that
    `regex` matches (`rnn_monitor.stats.relevance`); None when the run logged no tokens."""
    tokens = probe_tokens(src, run, acts.shape[0], acts.shape[1])
    if tokens is None:
        return None
    if len(regex) > MAX_REGEX_LEN:
        raise BadRequest(f"regex longer than {MAX_REGEX_LEN} characters")
    try:
        mask = feature_mask(tokens, regex)
    except re.error as exc:
        raise BadRequest(f"not a valid regular expression: {exc}") from None
    return float(relevance(column[..., None], mask)[0])
