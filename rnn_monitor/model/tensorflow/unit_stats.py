"""The probe's per-unit statistics of one recurrence, reduced block by block of time steps (no
gradients): what `rnn_monitor.stats.unit_health` turns into dead / exploding / saturated ratios and
what the text view shows.

`kept` holds the cell's own new h (and c) per step, time-major [T, B, ...]. The state a step
started from is the carried one: the previous step's value where that step was valid, else the
state before it (keras keeps the state through masked steps). The stock cells' gates are rebuilt
from the cell's weights (`rnn_monitor.model.tensorflow.rows`) and checked against the cell's own h (and
c) on the first `CHECK_ROWS` sequences (largest relative difference, ``recon``; the caller drops
a layer's gates when it is above 1e-5). Feature-map states [T, B, ...spatial, filters] are
reduced as rows: every (sequence, position) is one row, so unit statistics are per filter over
every valid position; text samples are the spatial mean per filter.

What leaves: per-unit accumulators over the valid (b, t) positions (sum and sum of squares of h
in float64, max |state|, saturation counts, non-finite counts) and the first ``text_samples``
sequences of every state (of h: ``h_samples``). `UnitStats.run` reduces the whole sequence in
chunks of at most `ProbeSettings.chunk_elements` per gate block; the hand-written reverse pass
(`rnn_monitor.model.tensorflow.adjoint`) instead calls `UnitStats.block` once per segment with the gates it
has rebuilt anyway, so they are rebuilt once, not twice.
"""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from rnn_monitor.model.gates import CHECK_ROWS, SIGMOID_GATES, STATE_NAMES
from rnn_monitor.model.tensorflow.rows import gru_block, lstm_gates, lstm_preactivations, to_rows


def broadcast_mask(mask: Any, like: Any) -> Any:
    """A [B] mask shaped to broadcast against `like` [B, ...]."""
    rank = like.shape.rank
    return tf.reshape(mask, [-1] + [1] * (rank - 1)) if rank and rank > 1 else mask


class UnitStats:
    """Accumulators and text samples of one recurrence (symbolic, inside the probe's graph)."""

    def __init__(self, trace: Any, cell: Any, kind: str, xs: Any, h0: Any, c0: Optional[Any],
                 kept: dict, valid: Any, settings: Any, masked: bool) -> None:
        self.trace, self.cell, self.kind, self.xs = trace, cell, kind, xs
        self.h0, self.c0, self.kept, self.valid = h0, c0, kept, valid
        self.settings, self.masked = settings, masked
        self.n_pos = trace.positions
        self.units = int(self.rows(kept["h"]).shape[-1])
        if kind in ("lstm", "gru"):
            self.h_car = self._carried(kept["h"], h0)
        if kind == "lstm":
            self.c_car = self._carried(kept["c"], c0)
        self.valid_rows = tf.repeat(valid, self.n_pos, axis=1) if self.n_pos > 1 else valid
        n_samples = settings.text_samples
        self.sample_rows = {name: n_samples for name in STATE_NAMES[kind]} if n_samples else {}
        if settings.h_samples:
            self.sample_rows["h"] = settings.h_samples
        # The rebuilt gates are checked on the first rows of the batch: the check is about the
        # formulas matching the cell, which does not depend on b.
        self.check_rows = max(CHECK_ROWS, n_samples)

    def rows(self, values: Any) -> Any:
        """[t, B, ...] -> [t, B * positions, U]."""
        return to_rows(values, self.trace.channels_first)

    def _carried(self, raw, init):
        if not self.masked:
            return raw

        def step(prev, elems):
            value, m = elems
            return tf.where(broadcast_mask(m, value), value, prev)

        return tf.scan(step, (raw, self.valid), initializer=init)

    def previous(self, lo: Any, hi: Any) -> list:
        """The states (h, and c for an LSTM) that steps [lo, hi) started from, [t, B, ...]
        (built per block: no shifted [T, B, ...] copy)."""

        def before(car, init):
            start = tf.cond(lo > 0, lambda: car[tf.maximum(lo - 1, 0)], lambda: init)
            return tf.concat([start[None], car[lo : hi - 1]], axis=0)

        out = [before(self.h_car, self.h0)]
        if self.kind == "lstm":
            out.append(before(self.c_car, self.c0))
        return out

    def rebuild(self, lo: Any, hi: Any) -> dict:
        """The stock cell's gates of steps [lo, hi) from its weights (rows layout):
        LSTM ``{gates, sig, c_rec, tanh_c}``, GRU ``{gates, h_rec}``."""
        prev = self.previous(lo, hi)
        if self.kind == "lstm":
            z = lstm_preactivations(self.cell, self.xs[lo:hi], prev[0])
            gates, sig, c_rec, tanh_c = lstm_gates(self.cell, z, self.rows(prev[1]))
            return {"gates": gates, "sig": sig, "c_rec": c_rec, "tanh_c": tanh_c}
        gates, h_rec = gru_block(self.cell, self.xs[lo:hi], prev[0])
        return {"gates": gates, "h_rec": h_rec}

    def sample(self, values: Any, n_rows: int) -> Any:
        """The first `n_rows` sequences of a rows-layout block [t, N, U] (spatial mean per filter)."""
        if self.n_pos == 1:
            return values[:, :n_rows]
        shape = tf.shape(values)
        per_seq = tf.reshape(values, tf.stack([shape[0], -1, self.n_pos, self.units]))
        return tf.reduce_mean(per_seq, axis=2)[:, :n_rows]

    def block(self, lo: Any, hi: Any, rebuilt: Optional[dict] = None) -> tuple[dict, dict]:
        """Partial accumulators and sample slices of steps [lo, hi); `rebuilt` as `rebuild`
        returns it (the gates of those steps), else rebuilt here."""
        kind = self.kind
        acc: dict = {}
        vm = self.valid_rows[lo:hi][:, :, None]  # [t, N, 1]
        h_rows = self.rows(self.kept["h"][lo:hi])
        obs = {"h": tf.cast(h_rows, tf.float32)}
        if kind in ("lstm", "gru") and rebuilt is None:
            rebuilt = self.rebuild(lo, hi)
        acc["recon"] = self._check_rebuilt(lo, hi, rebuilt, h_rows, vm, obs)
        for name in STATE_NAMES[kind]:
            if kind == "lstm" and name in ("i", "f", "o"):
                continue
            _add(acc, f"{name}_nonfinite", _nonfinite_counts(obs[name], vm))
        if kind == "lstm":
            self._count_lstm_gates(acc, rebuilt["sig"], vm)
        self._count_states(acc, obs, vm, rebuilt)
        samples = {name: self.sample(obs[name], n_rows) for name, n_rows in self.sample_rows.items()}
        return acc, samples

    def _check_rebuilt(self, lo: Any, hi: Any, rebuilt: Optional[dict], h_rows: Any, vm: Any, obs: dict) -> Any:
        """The rebuilt gates' largest relative error against the cell's own h (and c) on the
        checked rows (0 for other cells); the gates (and c) join `obs`."""
        r = self.check_rows
        if self.kind == "lstm":
            gates, c_rec, tanh_c = rebuilt["gates"], rebuilt["c_rec"], rebuilt["tanh_c"]
            c_raw = self.rows(self.kept["c"][lo:hi])
            h_rec = gates["o"][:, :r] * tanh_c[:, :r]  # only the checked rows
            obs["c"] = tf.cast(c_raw, tf.float32)
            recon = tf.maximum(
                _masked_rel_diff(h_rec, h_rows[:, :r], vm[:, :r]),
                _masked_rel_diff(c_rec[:, :r], c_raw[:, :r], vm[:, :r]),
            )
            obs.update(gates)
            return recon
        if self.kind == "gru":
            obs.update(rebuilt["gates"])
            return _masked_rel_diff(rebuilt["h_rec"][:, :r], h_rows[:, :r], vm[:, :r])
        return tf.constant(0.0, tf.float32)

    def _count_lstm_gates(self, acc: dict, fused: Any, vm: Any) -> None:
        """An LSTM's i, f, o counts, from its recurrent activation over all four blocks."""
        settings, masked, units = self.settings, self.masked, self.units
        counts = {
            "nonfinite": _nonfinite_counts(fused, vm),
            "low": _count(fused < settings.low, vm, masked),
            "high": _count(fused > settings.high, vm, masked),
        }
        for j, gate in ((0, "i"), (1, "f"), (3, "o")):
            for what, value in counts.items():
                _add(acc, f"{gate}_{what}", value[j * units : (j + 1) * units])

    def _count_states(self, acc: dict, obs: dict, vm: Any, rebuilt: Optional[dict]) -> None:
        """Sums and largest |value| of h (and c), tanh saturation, and the sigmoid gates' counts
        (a GRU's)."""
        kind, settings, masked = self.kind, self.settings, self.masked
        h = tf.where(vm, obs["h"], tf.zeros_like(obs["h"])) if masked else obs["h"]
        h64 = tf.cast(h, tf.float64)
        _add(acc, "h_sum", tf.reduce_sum(h64, axis=[0, 1]))
        _add(acc, "h_sumsq", tf.reduce_sum(h64 * h64, axis=[0, 1]))
        _max(acc, "h_max_abs", tf.reduce_max(tf.abs(h), axis=[0, 1]))
        if kind == "lstm":
            c = tf.where(vm, obs["c"], tf.zeros_like(obs["c"])) if masked else obs["c"]
            _max(acc, "c_max_abs", tf.reduce_max(tf.abs(c), axis=[0, 1]))
            tanh_out = tf.abs(rebuilt["tanh_c"]) if self.trace.tanh_output else None
        else:
            tanh_out = tf.abs(h) if self.trace.tanh_output else None
        if tanh_out is not None:
            _add(acc, "h_sat", _count(tanh_out > settings.sat_tanh, vm, masked))
        else:
            _add(acc, "h_sat", tf.zeros([self.units], tf.float32))
        for gate in SIGMOID_GATES.get(kind, ()) if kind != "lstm" else ():
            g = obs[gate]
            _add(acc, f"{gate}_low", _count(g < settings.low, vm, masked))
            _add(acc, f"{gate}_high", _count(g > settings.high, vm, masked))

    def init(self) -> dict:
        """Initial accumulators (see `rnn_monitor.stats.unit_health`)."""
        zeros = tf.zeros([self.units], tf.float32)
        acc = {
            "recon": tf.constant(0.0, tf.float32),
            "h_sum": tf.zeros([self.units], tf.float64),
            "h_sumsq": tf.zeros([self.units], tf.float64),
            "h_max_abs": zeros,
            "h_sat": zeros,
        }
        for name in STATE_NAMES[self.kind]:
            acc[f"{name}_nonfinite"] = zeros
        if self.kind == "lstm":
            acc["c_max_abs"] = zeros
        for gate in SIGMOID_GATES.get(self.kind, ()):
            acc[f"{gate}_low"] = zeros
            acc[f"{gate}_high"] = zeros
        return acc

    def sample_arrays(self, size: Any) -> dict:
        """One TensorArray per sampled state, one element per block."""
        return {
            name: tf.TensorArray(tf.float32, size=size, infer_shape=False,
                                 element_shape=tf.TensorShape([None, None, self.units]))
            for name in self.sample_rows
        }

    @staticmethod
    def merge(acc: dict, part: dict) -> dict:
        return {
            key: tf.maximum(value, part[key]) if key.endswith("_max_abs") or key == "recon" else value + part[key]
            for key, value in acc.items()
        }

    def finish(self, acc: dict, tas: dict) -> tuple[dict, dict]:
        """``(accumulators with n_valid, {state: [S, T, U] samples})``."""
        acc = dict(acc)
        acc["n_valid"] = tf.reduce_sum(tf.cast(self.valid_rows, tf.float64))
        samples = {name: tf.transpose(ta.concat(), [1, 0, 2]) for name, ta in tas.items()}
        return acc, samples

    def run(self) -> tuple[dict, dict]:
        """All steps, in chunks of at most `ProbeSettings.chunk_elements` per gate block.

        Chunks run one after the other (parallel_iterations=1) so that only one chunk's
        temporaries are alive per layer: in a plain Python loop the graph would run them all at
        once (at T = 250 x 3 LSTM 512 that took several GB).
        """
        h_raw = self.kept["h"]
        width = self.units * self.n_pos * (4 if self.kind == "lstm" else 3 if self.kind == "gru" else 1)
        chunk = max(1, self.settings.chunk_elements // max(1, (h_raw.shape[1] or 64) * width))
        n_steps = tf.shape(h_raw)[0]
        n_chunks = (n_steps + chunk - 1) // chunk

        def body(i, acc, tas):
            lo = i * chunk
            part, samples = self.block(lo, tf.minimum(n_steps, lo + chunk))
            tas = {name: ta.write(i, samples[name]) for name, ta in tas.items()}
            return i + 1, self.merge(acc, part), tas

        _, acc, tas = tf.while_loop(
            lambda i, *_: i < n_chunks, body, (tf.constant(0), self.init(), self.sample_arrays(n_chunks)),
            parallel_iterations=1,
        )
        return self.finish(acc, tas)


def _count(flags, vm, masked):
    if masked:
        flags = tf.logical_and(flags, vm)
    return tf.reduce_sum(tf.cast(flags, tf.float32), axis=[0, 1])


def _nonfinite_counts(values, vm):
    """Per-unit count of NaN / Inf at valid positions; the full count only runs when needed."""
    units = tf.shape(values)[-1]

    def counts():
        bad = tf.logical_and(tf.logical_not(tf.math.is_finite(values)), vm)
        return tf.reduce_sum(tf.cast(bad, tf.float32), axis=[0, 1])

    return tf.cond(
        tf.math.is_finite(tf.reduce_sum(values)), lambda: tf.zeros(tf.reshape(units, [1]), tf.float32), counts
    )


def _add(acc, key, value):
    acc[key] = acc[key] + value if key in acc else value


def _max(acc, key, value):
    acc[key] = tf.maximum(acc[key], value) if key in acc else value


def _masked_rel_diff(rebuilt, own, vm):
    """Largest |rebuilt - own| / max(1, |own|) at valid positions (finite values only): the
    rebuilt gates' error, relative for large states (an LSTM's c is unbounded)."""
    own = tf.cast(own, tf.float32)
    d = tf.abs(tf.cast(rebuilt, tf.float32) - own) / tf.maximum(1.0, tf.abs(own))
    d = tf.where(tf.logical_and(vm, tf.math.is_finite(d)), d, tf.zeros_like(d))
    return tf.reduce_max(d)
