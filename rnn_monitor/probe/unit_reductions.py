"""The probe's per-unit reductions of one recurrence, in `keras.ops` (any backend): the
accumulators `rnn_monitor.stats.unit_health` turns into dead / exploding / saturated ratios and gate
saturation, and the first sequences of every state for the text view.

Time is reduced in chunks of at most `ProbeSettings.chunk_elements` values per gate block, one after the
other (`keras.ops.fori_loop`), so that the gates and their comparisons are never alive for the
whole sequence at once. A stock cell's gates are rebuilt from its weights chunk by chunk
(`rnn_monitor.model.gates`, Keras's own formulas) and checked against the cell's own h (and c)
on the first `CHECK_ROWS` sequences (``recon``; the caller drops a layer's gates above the tolerance).

Layouts: batch-major, the layer's processing order, [B, T, ...]; feature maps (ConvLSTM) are
reduced per filter over every spatial position ([B, T, positions, units]). Masked steps are
excluded from every accumulator.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from rnn_monitor.model.gates import (
    CHECK_ROWS, SIGMOID_GATES, STATE_NAMES, gru_step, lstm_from_preactivations, lstm_preactivations,
)
from rnn_monitor.model.perturbed_loop import TracedRecurrence
from rnn_monitor.probe.reductions import per_position, started_from

_WIDTH = {"lstm": 4, "gru": 3}


class Positions:
    """The positions of one chunk of steps that count: valid (b, t) within the chunk, for
    per-unit reductions over [B, t, P, U] arrays. `where` [B, t, 1, 1] bool, or None for all."""

    def __init__(self, where: Any) -> None:
        self.where = where

    def select(self, flags: Any) -> Any:
        return flags if self.where is None else ops.logical_and(flags, self.where)

    def count(self, flags: Any) -> Any:
        """[U]: positions where `flags` hold."""
        return ops.sum(ops.cast(self.select(flags), "float32"), axis=(0, 1, 2))

    def nonfinite(self, values: Any) -> Any:
        """[U]: NaN / Inf; counted only when the chunk is not finite (one reduction otherwise)."""
        units = ops.shape(values)[-1]
        return ops.cond(ops.isfinite(ops.sum(values)), lambda: ops.zeros((units,), "float32"),
                        lambda: self.count(ops.logical_not(ops.isfinite(values))))

    def largest_abs(self, values: Any) -> Any:
        """[U]: the largest finite |value|."""
        ok = self.select(ops.isfinite(values))
        return ops.max(ops.where(ok, ops.abs(values), ops.zeros_like(values)), axis=(0, 1, 2))

    def moments(self, h: Any) -> tuple[Any, Any, Any]:
        """Per unit over the positions with a finite h: count, mean and the sum of squared
        deviations from it (two passes: the std of a nearly constant unit stays exact)."""
        ok = self.select(ops.isfinite(h))
        n = ops.sum(ops.cast(ok, "float32"), axis=(0, 1, 2))
        mean = ops.sum(ops.where(ok, h, ops.zeros_like(h)), axis=(0, 1, 2)) / ops.maximum(n, 1.0)
        dev = ops.where(ok, h - mean, ops.zeros_like(h))
        return n, mean, ops.sum(dev * dev, axis=(0, 1, 2))


def _merged_moments(a: tuple, b: tuple) -> tuple:
    """(count, mean, squared deviations) of two chunks together (Chan et al.)."""
    n = a[0] + b[0]
    delta = b[1] - a[1]
    share = b[0] / ops.maximum(n, 1.0)
    return n, a[1] + delta * share, a[2] + b[2] + delta * delta * a[0] * share


def _gates(shape: TracedRecurrence, parts: dict) -> dict:
    """A chunk's gates [B, t, P, U] (LSTM also ``tanh_c``), rebuilt from the weights."""
    cell, kind = shape.info.cell, shape.info.kind
    if kind == "lstm":
        z = per_position(lstm_preactivations(cell, parts["x"], parts["h_in"]), shape)  # [B, t, P, 4U]
        gates, _, tanh_c = lstm_from_preactivations(cell, z, per_position(parts["c_in"], shape))
        gates.pop("sig")
        return dict(gates, tanh_c=tanh_c)
    return {k: per_position(v, shape) for k, v in gru_step(cell, parts["x"], parts["h_in"])[0].items()}


def _rel_diff(rebuilt: Any, own: Any, where: Any) -> Any:
    """Largest |rebuilt - own| / max(1, |own|) at valid positions, finite values only."""
    d = ops.abs(rebuilt - own) / ops.maximum(1.0, ops.abs(own))
    return ops.max(ops.where(ops.logical_and(where, ops.isfinite(d)), d, ops.zeros_like(d)))


def _recon(shape: TracedRecurrence, parts: dict, gates: dict) -> Any:
    """How far the h (and c) the gates give is from the cell's own, relative (first sequences)."""
    where = ops.reshape(parts["valid"], ops.shape(parts["valid"]) + (1, 1))
    h_own = per_position(parts["h"], shape)
    if shape.info.kind == "lstm":
        c_in, c_own = per_position(parts["c_in"], shape), per_position(parts["c"], shape)
        return ops.maximum(_rel_diff(gates["o"] * gates["tanh_c"], h_own, where),
                           _rel_diff(gates["f"] * c_in + gates["i"] * gates["g"], c_own, where))
    h_prev = per_position(parts["h_in"], shape)
    return _rel_diff(gates["z"] * h_prev + (1.0 - gates["z"]) * gates["hh"], h_own, where)


def _sequences(shape: TracedRecurrence, rec: dict) -> dict:
    """Every [B, T, ...] sequence a chunk reads (the states each step started from included)."""
    parts = {"valid": rec["valid"], "h": rec["h"]}
    if shape.rebuild:
        parts["h_in"] = started_from(rec["h"], rec["h0"])
        parts["x"] = rec["x"]
    if shape.info.kind == "lstm":
        parts["c"] = rec["c"]
        if shape.rebuild:
            parts["c_in"] = started_from(rec["c"], rec["c0"])
    return parts


def _chunk(parts: dict, start: Any, size: int) -> dict:
    """Steps [start, start + size) of every sequence in `parts`."""

    def cut(value):
        begin = (0, start) + (0,) * (len(value.shape) - 2)
        return ops.slice(value, begin, (ops.shape(value)[0], size) + tuple(ops.shape(value)[2:]))

    return {k: cut(v) for k, v in parts.items()}


def _chunk_accumulators(shape: TracedRecurrence, parts: dict, at: Positions, settings: Any) -> dict:
    """The accumulators of one chunk (see `rnn_monitor.stats.unit_health`)."""
    kind = shape.info.kind
    obs = {"h": per_position(parts["h"], shape)}
    if kind == "lstm":
        obs["c"] = per_position(parts["c"], shape)
    sat = ops.abs(obs["h"]) if shape.tanh_output else None
    acc: dict = {}
    if shape.rebuild:
        gates = _gates(shape, parts)
        tanh_c = gates.pop("tanh_c", None)
        if tanh_c is not None:
            sat = ops.abs(tanh_c) if shape.tanh_output else None
        obs.update(gates)
        for gate in SIGMOID_GATES[kind]:
            acc[f"{gate}_low"] = at.count(obs[gate] < settings.low)
            acc[f"{gate}_high"] = at.count(obs[gate] > settings.high)
    for name in STATE_NAMES[kind]:
        acc[f"{name}_nonfinite"] = at.nonfinite(obs[name])
    acc["h_moments"] = at.moments(obs["h"])
    acc["h_max_abs"] = at.largest_abs(obs["h"])
    if kind == "lstm":
        acc["c_max_abs"] = at.largest_abs(obs["c"])
    acc["h_sat"] = at.count(sat > settings.sat_tanh) if sat is not None else ops.zeros((ops.shape(obs["h"])[-1],), "float32")
    return acc


def _merge(acc: dict, part: dict) -> dict:
    out = {}
    for key, value in acc.items():
        if key == "h_moments":
            out[key] = _merged_moments(value, part[key])
        elif key.endswith("_max_abs"):
            out[key] = ops.maximum(value, part[key])
        else:
            out[key] = value + part[key]
    return out


def unit_statistics(shape: TracedRecurrence, rec: dict, settings: Any) -> tuple[dict, dict]:
    """``(accumulators, samples)`` of one recurrence: per-unit accumulators over its valid
    positions (`rnn_monitor.stats.unit_health`; ``h_count``, ``h_mean`` and ``h_m2`` stand for the sums
    of h, which the caller forms in float64) and the first sequences of every state."""
    parts = _sequences(shape, rec)
    batch, steps = ops.shape(rec["valid"])[0], ops.shape(rec["valid"])[1]
    width = _WIDTH.get(shape.info.kind, 1) * int(ops.shape(rec["h"])[-1]) * shape.positions
    size = int(max(1, min(steps, settings.chunk_elements // max(1, batch * width))))
    n_chunks = -(-steps // size)

    def chunk(i):
        start = ops.minimum(i * size, steps - size)  # the last chunk ends at the last step
        part = _chunk(parts, start, size)
        counted = ops.arange(size) + start >= i * size  # steps an earlier chunk did not count
        where = ops.logical_and(part["valid"], ops.expand_dims(counted, 0))
        return _chunk_accumulators(shape, part, Positions(ops.reshape(where, ops.shape(where) + (1, 1))), settings)

    acc = ops.fori_loop(1, n_chunks, lambda i, acc: _merge(acc, chunk(i)), chunk(0))
    count, mean, m2 = acc.pop("h_moments")
    acc.update(h_count=count, h_mean=mean, h_m2=m2,
               n_valid=ops.sum(ops.cast(rec["valid"], "float32")) * shape.positions)
    first = _chunk_rows(parts, max(CHECK_ROWS, settings.text_samples))
    obs = {"h": per_position(first["h"], shape)}
    if shape.info.kind == "lstm":
        obs["c"] = per_position(first["c"], shape)
    acc["recon"] = ops.zeros((), "float32")
    if shape.rebuild:
        gates = _gates(shape, first)
        acc["recon"] = _recon(shape, first, gates)  # on the first sequences, text samples included
        gates.pop("tanh_c", None)
        obs.update(gates)
    return acc, _samples(obs, shape, parts, settings)


def _chunk_rows(parts: dict, rows: int) -> dict:
    return {k: value[:rows] for k, value in parts.items()}


def _samples(first: dict, shape: TracedRecurrence, parts: dict, settings: Any) -> dict:
    """The first sequences of each state [S, T, U] (feature maps: the mean over positions); h
    for ``h_samples`` sequences (the units' descriptions read more text than the text view)."""
    out = {name: ops.mean(values[: settings.text_samples], axis=2) for name, values in first.items()} \
        if settings.text_samples else {}
    if settings.h_samples:
        out["h"] = ops.mean(per_position(parts["h"][: settings.h_samples], shape), axis=2)
    return out
