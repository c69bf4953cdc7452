"""The probe's compiled function: one forward pass of the whole model on the probe batch with every
monitored layer run by the probe's loop (`rnn_monitor.model.patch`), the compiled loss and its
gradients with respect to the loops' zero perturbations (dL/dh_t through the recurrence and the
direct path dL/d out_t) and to the monitored weights, the temporal flow of every recurrence, and
the reductions (`rnn_monitor.probe.reductions`). Written once in `keras.ops`; compiling and
differentiating are the backend's (`rnn_monitor.backends`).

Temporal flow: ``F[k]`` needs ``d<v, h_last>/dh_t`` with ``v = dL/dh_last`` (dL/dh at each
sequence's last valid step) through the recurrence itself, each recurrence on its own (a lower
layer's h also reaches the upper layers' last states). It is one more backward: the recurrence
run again on its recorded inputs and initial states, differentiated with respect to its own
perturbation with the cotangent `v` on its last h. A recurrence whose only use is its last h (no
sequences, no returned states: a classifier's top layer) reaches the loss through h_last alone,
so there dL/dh_t *is* that derivative and the extra backward is skipped.

Time order: every per-step array returned is in the layer's own *processing* order (reversed
input order for ``go_backwards`` layers and the backward half of a Bidirectional), batch-major
where it has a batch axis; `rnn_monitor.probe.probe_monitor` turns them into input order.
"""

from __future__ import annotations

import dataclasses

from typing import Any, Optional, Sequence

import numpy as np
from keras import ops

from rnn_monitor.backends import backend_for
from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.model.backend import forget_dropout_masks, kept_state
from rnn_monitor.model.gates import CHUNK_ELEMENTS
from rnn_monitor.model.patch import probe_loops
from rnn_monitor.model.perturbed_loop import TracedRecurrence
from rnn_monitor.probe import reductions
from rnn_monitor.probe.results import CellFacts, ProbeRun
from rnn_monitor.probe.unit_reductions import unit_statistics

# Beside the layers' results in the compiled function's output (taken out by `Prober.run`).
_LOSS, _PRED_SHAPE = "__loss__", "__pred_shape__"


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """How TensorFlow's loop path (`rnn_monitor.model.tensorflow.checkpointed`) runs; read when
    the probe is traced. The defaults are the measured best (docs/performance.md)."""

    segment_steps: Optional[int] = None  # steps per checkpointed segment (None: ceil(sqrt(T)))
    hand_written_reverse: bool = True  # stock LSTM / GRU reversed by hand (off: the generic pass)
    segments_in_flight: int = 2  # the hand-written pass's segments run at once (2: 15% faster than 1)


class ProbeSettings:
    """Thresholds the reductions count with, how many sequences they keep, how many values a
    chunk of the unit statistics holds per gate block (`chunk_elements`: the statistics reduce
    time chunk after chunk so that a whole sequence of gates is never alive at once), and how
    TensorFlow's loop runs (`LoopOptions`)."""

    def __init__(self, thresholds: Any, text_samples: int, h_samples: int = 0,
                 loop: LoopOptions = LoopOptions(), chunk_elements: int = CHUNK_ELEMENTS) -> None:
        self.sat_tanh = float(thresholds.saturation_tanh)
        self.low = float(thresholds.saturation_sigmoid_low)
        self.high = float(thresholds.saturation_sigmoid_high)
        self.text_samples = max(0, int(text_samples))
        # h alone is kept for more rows: the units' average input and spectrum need more text
        # than the text view, and keeping only h for them costs 1 state, not all of them.
        self.h_samples = max(self.text_samples, int(h_samples))
        self.loop = loop
        self.chunk_elements = int(chunk_elements)


class Prober:
    """Runs the probe: `run(x, y, sample_weight)` -> numpy results per monitored recurrence.

    With ``gradients=False`` (no labels or no compiled loss) only the forward part runs.
    `path`: "auto" (the stock-layer kernel path where the backend fuses the layer, the
    perturbed loop elsewhere), "kernel" or "loop" (every layer that path can serve).
    `loop`: how TensorFlow's loop path runs (`LoopOptions`).
    """

    def __init__(self, model: Any, infos: Sequence[RNNLayerInfo], thresholds: Any, text_samples: int,
                 gradients: bool, flow: bool = True, h_samples: int = 0, path: str = "auto",
                 loop: LoopOptions = LoopOptions()) -> None:
        self.model = model
        self.infos = list(infos)
        self.settings = ProbeSettings(thresholds, text_samples, h_samples, loop)
        self.gradients = gradients
        self.flow = flow
        self.path = path
        self.traces_count = 0
        self.refusals: dict[str, str] = {}  # layer name -> why the probe could not step it
        self.traced: list[TracedRecurrence] = []  # what the last trace found per recurrence
        self.segments: dict[str, tuple] = {}  # TensorFlow's loop: (steps per segment, segments) per layer
        self.backend = backend_for(model)
        self._fn = self.backend.compile(self._probe)

    def _probe(self, x, y, sample_weight):
        try:
            return self._traced_probe(x, y, sample_weight)
        finally:
            forget_dropout_masks({id(i.layer): i.layer for i in self.infos}.values())

    def _traced_probe(self, x, y, sample_weight):
        self.traces_count += 1
        traced = [TracedRecurrence(info) for info in self.infos]
        weights = [w for t in traced for w in t.info.weights.values()]

        def loops(provider, record):
            return probe_loops(traced, provider, record, self.path, self.settings, self.flow)

        fwd = self.backend.forward(self.model, x, y, sample_weight, weights, loops, self.gradients)
        missing = [t.info.name for t in traced if t.called == 0]
        if missing:
            raise RuntimeError(
                f"the probe did not reach layers {missing} (called outside the model's forward "
                "pass?); they cannot be probed"
            )
        self.traced = traced
        # Said by the caller (rnn_monitor.probe.probe_monitor), once: the trace is reused every epoch.
        self.refusals = {t.info.name: t.refused for t in traced if t.refused is not None}
        live = [t for t in traced if t.refused is None]
        results = {t.info.name: {} for t in live}
        # The parts run one after the other, after the loss's backward pass: first every
        # recurrence's gradients are reduced (their [B, T, ...] arrays can go), then the flows,
        # then the unit statistics, so their temporaries are never alive together.
        done: Any = [fwd.loss, fwd.perturbation_grads, fwd.weight_grads]
        weight_grads = _per_recurrence(traced, fwd.weight_grads)
        parts = (self._gradient_part, self._flow_part, self._statistics_part) if self.gradients else (
            self._statistics_part,)
        for part in parts:
            for t in live:
                out = part(t, fwd, weight_grads.get(t.info.name, []), results[t.info.name], done)
                if out is not None:
                    results[t.info.name].update(out)
                    done = out
        for res in results.values():
            res.pop("v", None)
        if fwd.loss is not None:
            results[_LOSS] = ops.cast(fwd.loss, "float32")
            if not isinstance(fwd.y_pred, (list, tuple, dict)):  # the constant-prediction loss needs it
                results[_PRED_SHAPE] = ops.convert_to_tensor(ops.shape(fwd.y_pred), "int32")
        return results

    def _gradient_part(self, t: TracedRecurrence, fwd: Any, weight_grads: list, so_far: dict, done: Any) -> dict:
        """Per-step sums of dL/dh_t and dL/d out_t, v (dL/dh at each sequence's last valid step),
        the weight-gradient norm; the flow too where it is dL/dh_t itself. TensorFlow's loop:
        everything, reduced in its own backward pass."""
        rec = fwd.record[t.info.name]
        if getattr(t.gradients, "reduced", False):
            return self.backend.after(done, lambda w: t.gradients.results(True, w), weight_grads)
        grads = {k: v for k, v in fwd.perturbation_grads.items() if k[0] == t.info.name}

        def reduce(inputs):
            rec, grads, weight_grads = inputs
            dh, dout = t.gradients.total(grads, rec)
            res = reductions.gradient_sums(dh, dout, rec["valid"], t)
            res["v"] = ops.stop_gradient(reductions.last_valid(dh, rec["valid"]))
            res["v_norm"] = reductions.sequence_norms(res["v"])
            if not (self.flow and t.recurrent):
                res["flow_norm"] = ops.zeros(ops.shape(rec["valid"]), "float32")
            elif t.only_last:  # its only use is its last h: dL/dh_t is d<v, h_last>/dh_t
                res["flow_norm"] = reductions.norms_per_step(dh, t)
            res["weight_grad_norm"], res["weight_grad_nonfinite"] = reductions.weight_gradient_norm(weight_grads)
            return res

        return self.backend.after(done, reduce, (rec, grads, weight_grads))

    def _flow_part(self, t: TracedRecurrence, fwd: Any, weight_grads: list, so_far: dict, done: Any):
        """The temporal flow's own backward, one recurrence at a time, where it is needed."""
        if getattr(t.gradients, "reduced", False) or "flow_norm" in so_far:
            return None

        def flow(inputs):
            rec, v = inputs
            values = t.gradients.flow(self.backend.vjp, rec, v, ops.zeros_like(rec["h"]))
            return {"flow_norm": reductions.norms_per_step(values, t)}

        return self.backend.after(done, flow, (fwd.record[t.info.name], so_far["v"]))

    def _statistics_part(self, t: TracedRecurrence, fwd: Any, weight_grads: list, so_far: dict, done: Any):
        """The unit statistics and text samples, one recurrence at a time."""
        if getattr(t.gradients, "reduced", False):  # TensorFlow's loop: with its gradients
            return None if self.gradients else self.backend.after(
                done, lambda w: t.gradients.results(False, w), weight_grads)
        rec = fwd.record[t.info.name]
        acc, samples = self.backend.after(done, lambda rec: unit_statistics(t, rec, self.settings), rec)
        return {"acc": acc, "samples": samples, "valid": rec["valid"]}

    def prepare(self, x: Any, y: Any = None, sample_weight: Any = None) -> None:
        """Trace and compile the probe ahead of its first run (at the start of `fit`: the
        compiler's memory is then spent before training's peak, not on top of the probe's)."""
        with kept_state(self.model):
            self._fn.prepare(x, y, sample_weight)

    def run(self, x: Any, y: Any = None, sample_weight: Any = None) -> ProbeRun:
        """Execute the probe; every result as numpy (`ProbeRun`)."""
        # A stateful layer assigns its state variables in `call`, a dropout cell draws from its
        # seed generator: keep the user's as they were before the probe.
        with kept_state(self.model):
            out = self._fn(x, y, sample_weight)
        loss, pred_shape = out.pop(_LOSS, None), out.pop(_PRED_SHAPE, None)
        self.segments = {}
        for name, res in out.items():
            if "segments" in res:  # how TensorFlow's loop checkpointed this layer
                self.segments[name] = tuple(int(v) for v in res.pop("segments"))
            if "h_count" in res["acc"]:
                res["acc"] = _sums(res["acc"])
        return ProbeRun(
            layers=out, cells={t.info.name: _cell_facts(t) for t in self.traced if t.refused is None},
            loss=None if loss is None else float(np.asarray(loss)),
            pred_shape=None if pred_shape is None else tuple(int(d) for d in np.asarray(pred_shape)),
        )

def _per_recurrence(traced: Sequence[TracedRecurrence], grads: list) -> dict:
    """The weight gradients (in the order of every recurrence's weights) by recurrence name."""
    out, offset = {}, 0
    for t in traced:
        out[t.info.name] = list(grads[offset : offset + len(t.info.weights)])
        offset += len(t.info.weights)
    return out


def _sums(acc: dict) -> dict:
    """The float64 sums of h that `rnn_monitor.stats.unit_health` reads, from the per-unit mean and
    sum of squared deviations the device computed (exact for a nearly constant unit)."""
    acc = dict(acc)
    count = np.asarray(acc.pop("h_count"), np.float64)
    mean = np.asarray(acc.pop("h_mean"), np.float64)
    m2 = np.asarray(acc.pop("h_m2"), np.float64)
    acc["h_sum"] = count * mean
    acc["h_sumsq"] = m2 + count * mean * mean
    acc["n_valid"] = np.float64(acc["n_valid"])
    return acc


def _cell_facts(t: TracedRecurrence) -> CellFacts:
    return CellFacts(bool(t.h_bounded), bool(t.tanh_output), bool(t.direct), bool(t.recurrent),
                     int(t.positions), float(np.finfo(t.dtype).eps))

