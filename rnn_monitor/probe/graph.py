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
where it has a batch axis; `rnn_monitor.probe.monitor` turns them into input order.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from keras import ops

from rnn_monitor.backends import backend_for
from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.model.backend import kept_state
from rnn_monitor.model.patch import probe_loops
from rnn_monitor.model.perturbed_loop import TracedRecurrence
from rnn_monitor.probe import reductions
from rnn_monitor.probe.unit_reductions import unit_statistics


class ProbeSettings:
    """Thresholds the reductions count with, and how many sequences they keep."""

    def __init__(self, thresholds: Any, text_samples: int, h_samples: int = 0) -> None:
        self.sat_tanh = float(thresholds.saturation_tanh)
        self.low = float(thresholds.saturation_sigmoid_low)
        self.high = float(thresholds.saturation_sigmoid_high)
        self.text_samples = max(0, int(text_samples))
        # h alone is kept for more rows: the units' average input and spectrum need more text
        # than the text view, and keeping only h for them costs 1 state, not all of them.
        self.h_samples = max(self.text_samples, int(h_samples))


class Prober:
    """Runs the probe: `run(x, y, sample_weight)` -> numpy results per monitored recurrence.

    With ``gradients=False`` (no labels or no compiled loss) only the forward part runs.
    `path`: "auto" (the stock-layer kernel path where the backend fuses the layer, the
    perturbed loop elsewhere), "kernel" or "loop" (every layer that path can serve).
    """

    def __init__(self, model: Any, infos: Sequence[RNNLayerInfo], thresholds: Any, text_samples: int,
                 gradients: bool, flow: bool = True, h_samples: int = 0, path: str = "auto") -> None:
        self.model = model
        self.infos = list(infos)
        self.settings = ProbeSettings(thresholds, text_samples, h_samples)
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
        # Said by the caller (rnn_monitor.probe.monitor), once: the trace is reused every epoch.
        self.refusals = {t.info.name: t.refused for t in traced if t.refused is not None}
        results: dict = {}
        offset = 0
        # One recurrence after the other, each part after the previous one (the backward pass
        # of the loss first): the parts' temporaries are never alive together.
        done: Any = [fwd.loss, fwd.perturbation_grads, fwd.weight_grads]
        for t in traced:
            weight_grads = fwd.weight_grads[offset : offset + len(t.info.weights)]
            offset += len(t.info.weights)
            if t.refused is not None:
                continue
            rec = fwd.record[t.info.name]
            if getattr(t.gradients, "reduced", False):  # TensorFlow's loop reduced it in its backward
                done = results[t.info.name] = self.backend.after(
                    done, lambda parts, t=t: t.gradients.results(self.gradients, parts), weight_grads)
                continue
            res = {"valid": rec["valid"]}
            if self.gradients:
                grads = {k: v for k, v in fwd.perturbation_grads.items() if k[0] == t.info.name}
                res.update(self.backend.after(done, lambda parts, t=t: self._gradients(t, *parts),
                                              (rec, grads, weight_grads)))
                done = res
            acc, samples = self.backend.after(
                done, lambda rec, t=t: unit_statistics(t, rec, self.settings), rec)
            done = res["acc"], res["samples"] = acc, samples
            results[t.info.name] = res
        if fwd.loss is not None:
            results["__loss__"] = ops.cast(fwd.loss, "float32")
            if not isinstance(fwd.y_pred, (list, tuple, dict)):  # the constant-prediction loss needs it
                results["__pred_shape__"] = ops.convert_to_tensor(ops.shape(fwd.y_pred), "int32")
        return results

    def _gradients(self, t: TracedRecurrence, rec: dict, grads: dict, weight_grads: list) -> dict:
        """Per-step sums of dL/dh_t and dL/d out_t, the temporal flow and the weight-gradient norm
        of one recurrence."""
        dh, dout = t.gradients.total(grads, rec)
        res = reductions.gradient_sums(dh, dout, rec["valid"], t)
        v = ops.stop_gradient(reductions.last_valid(dh, rec["valid"]))
        if not (self.flow and t.recurrent):
            flow = ops.zeros_like(dh)
        elif t.only_last:
            flow = dh
        else:
            flow = t.gradients.flow(self.backend.vjp, rec, v, dh)
        res["flow_norm"] = reductions.norms_per_step(flow, t)
        res["v_norm"] = reductions.sequence_norms(v)
        res["weight_grad_norm"], res["weight_grad_nonfinite"] = reductions.weight_gradient_norm(weight_grads)
        return res

    def run(self, x: Any, y: Any = None, sample_weight: Any = None) -> dict:
        """Execute the probe and return every result as numpy (plus ``__static__``: what the
        trace found about each recurrence, as `rnn_monitor.probe.layer_stats` reads it)."""
        # A stateful layer assigns its state variables in `call`, a dropout cell draws from its
        # seed generator: keep the user's as they were before the probe.
        with kept_state(self.model):
            out = self._fn(x, y, sample_weight)
        self.segments = {}
        for name, res in out.items():
            if name.startswith("__"):
                continue
            if "segments" in res:  # how TensorFlow's loop checkpointed this layer
                self.segments[name] = tuple(int(v) for v in res.pop("segments"))
            if "h_count" in res["acc"]:
                res["acc"] = _sums(res["acc"])
        out["__static__"] = {t.info.name: _static(t) for t in self.traced if t.refused is None}
        return out


def _sums(acc: dict) -> dict:
    """The float64 sums of h that `rnn_monitor.stats.units` reads, from the per-unit mean and
    sum of squared deviations the device computed (exact for a nearly constant unit)."""
    acc = dict(acc)
    count = np.asarray(acc.pop("h_count"), np.float64)
    mean = np.asarray(acc.pop("h_mean"), np.float64)
    m2 = np.asarray(acc.pop("h_m2"), np.float64)
    acc["h_sum"] = count * mean
    acc["h_sumsq"] = m2 + count * mean * mean
    acc["n_valid"] = np.float64(acc["n_valid"])
    return acc


def _static(t: TracedRecurrence) -> np.ndarray:
    """[h bounded, tanh output, direct, recurrent, positions, machine epsilon of its dtype]."""
    return np.array([float(t.h_bounded), float(t.tanh_output), float(t.direct), float(t.recurrent),
                     float(t.positions), float(np.finfo(t.dtype).eps)])

