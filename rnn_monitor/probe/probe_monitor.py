"""The probe part of the monitor: gradients through time, activations and unit health.

Each logged epoch, `ProbeMonitor.log_epoch` runs one forward + backward pass of the model on
the fixed probe batch with every monitored recurrent layer run by the probe's loop or kernel
(`rnn_monitor.probe.graph`), turns the reduced arrays into the statistics defined in docs/reference.md
(`rnn_monitor.stats.gradients`, `rnn_monitor.stats.unit_health`), fills the `EpochRecord` and writes
the plugin tensors and the gradient heatmap image.

Time order of what is written: every per-timestep array (timestep_gradients,
output_gradients, timestep_grad_norm, activations, tokens, the heatmap image) is in *input*
order, t = position in the input sequence, for every layer, including ``go_backwards`` layers and
the backward half of a Bidirectional (their arrays are flipped back from the order they ran
in), so that all layers line up with the tokens. The temporal flow ``F[k]`` is the exception: k
counts steps back from the last state the layer computed, in the layer's own processing order
(for a backward layer, F[1] is the step after position 0 of the input...).

Masked (padded) steps: NaN in timestep_gradients / output_gradients / timestep_grad_norm
(where no probe sequence is valid at that step; otherwise the batch mean runs over the valid
sequences only), NaN in activations, excluded from every statistic.

Byte cap: `max_bytes_per_epoch` (default `DEFAULT_MAX_BYTES`, 1.9 MB) bounds what is written per
logged epoch, counting everything written through the shared writer since this part last wrote
(the weight part's histograms and images and the previous epoch's scalars included). The
gradient tensors (G and output gradients in float32, g, F) are always written (G and the output
gradients as means over bins of consecutive steps when, at full resolution, they would take more
than `GRADIENT_SHARE` of the cap: long sequences x wide layers); then, while the
budget allows, the tokens, the gradient heatmap image and the activations (h of every layer
first, then c, then the gates). What was left out is said once in the log. With the defaults the
reference model of `benchmarks/overhead.py` (Embedding 32 -> LSTM 128 -> LSTM 128, T = 100, 4
text samples) writes 1.69 MB per epoch in total, every activation state included
(docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Sequence


from rnn_monitor.background import BackgroundTask
from rnn_monitor.config import DEFAULT_MAX_BYTES_PER_EPOCH, check_count, check_units
from rnn_monitor.logdir import metadata
from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.model.backend import compiled_loss, has_compiled_loss
from rnn_monitor.probe.data import (
    blame_the_data, expected_shapes, first_array, slice_time, unpack_probe_data, validate_x,
)
from rnn_monitor.probe.layer_stats import LayerStats, layer_stats, state_names
from rnn_monitor.probe.results import ProbeRun
from rnn_monitor.probe.unit_roles import describe_units, probe_inputs, queue_unit_writes
from rnn_monitor.probe.writes import encode_tokens, queue_writes, write_within_cap
from rnn_monitor.record import EpochRecord
from rnn_monitor.stats import gradients as gstats

logger = logging.getLogger("rnn_monitor")

DEFAULT_MAX_BYTES = DEFAULT_MAX_BYTES_PER_EPOCH
MAX_VOCAB_LABELS = 5000  # token names kept in the manifest for the average-input axis
# Share of max_bytes_per_epoch that G and the output gradients may take before they are written
# binned over time (`stats.gradients.gradient_time_bin`); the rest is for g, F, tokens, images and
# activations.
GRADIENT_SHARE = 0.6
_UNSET = object()


class ProbeRefusedError(ValueError):
    """The probe cannot step a monitored layer (raised instead of a warning with raise_errors)."""


class ProbeMonitor:
    """Probe measurements for the monitored layers (constructed by `RNNMonitor._make_probe`)."""

    def __init__(
        self,
        model: Any,
        infos: Sequence[RNNLayerInfo],
        probe_data: Any,
        writer: Any,
        thresholds: Any,
        vocabulary: Optional[Any] = None,
        text_samples: int = 4,
        unit_samples: int = 16,
        average_input_window: int = 10,
        max_timesteps: Optional[int] = None,
        units: Optional[Sequence[int]] = None,
        images: bool = True,
        max_bytes_per_epoch: Optional[int] = DEFAULT_MAX_BYTES,
        raise_errors: bool = False,
        path: str = "auto",
    ) -> None:
        self.model = model
        self.path = path
        self.raise_errors = raise_errors
        self.infos = list(infos)
        self.probe_data = probe_data
        self.writer = writer
        self.thresholds = thresholds
        self.vocabulary = vocabulary
        self.text_samples = max(0, int(text_samples))
        self.unit_samples = check_count("unit_samples", unit_samples, minimum=0)
        self.average_input_window = check_count("average_input_window", average_input_window, minimum=1)
        self._unit_inputs: Optional[tuple] = None  # (inputs, vocab_size) for the units' descriptions
        self.max_timesteps = None if max_timesteps is None else check_count("max_timesteps", max_timesteps, minimum=1, none="None")
        self.units = check_units(units)
        self.images = images
        self.max_bytes_per_epoch = max_bytes_per_epoch
        self.x = self.y = self.sample_weight = None
        self.gradients = False
        self.batch_size = 0
        self.timesteps: Optional[int] = None
        self.time_bin: Optional[int] = None  # steps per bin of the written G (chosen at the first epoch)
        self.last_seconds: Optional[float] = None  # wall time of the last probe (run + writes)
        self.last_results: Optional[dict] = None  # numpy results of the last probe, input order
        self._prober = None
        self._tokens_written = False
        self._said: set = set()
        self._constant_loss: Any = _UNSET  # computed at the first probe with labels
        self._mark = 0  # writer.bytes_this_step after this part last wrote

    # ------------------------------------------------------------------ set-up
    def _say_once(self, key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
        if key not in self._said:
            self._said.add(key)
            logger.log(level, message, *args)

    def start(self) -> None:
        """Validate the probe data (a wrong shape is a ValueError before training starts)."""
        from rnn_monitor.probe.graph import Prober

        x, y, sw = unpack_probe_data(self.probe_data)
        validate_x(x, self.model)
        first = first_array(x)
        self.batch_size = int(first.shape[0])
        if self.batch_size < 1:
            raise ValueError("probe_data holds no sequence (batch size 0)")
        for name, arr in (("y", y), ("sample_weight", sw)):
            lead = first_array(arr) if arr is not None else None
            if lead is not None and lead.ndim >= 1 and lead.shape[0] != self.batch_size:
                raise ValueError(
                    f"probe_data {name} has {lead.shape[0]} rows but x has {self.batch_size}: they "
                    "must describe the same batch"
                )
        length = int(first.shape[1]) if first.ndim >= 2 else None
        if self.max_timesteps is not None and length is not None and self.max_timesteps < length:
            expected = expected_shapes(self.model)
            if expected and len(expected[0]) >= 2 and expected[0][1] is not None:
                raise ValueError(
                    f"max_timesteps={self.max_timesteps} needs a model that accepts shorter "
                    f"sequences, but its input shape is {expected[0]}; build it with a time "
                    "dimension of None or drop max_timesteps"
                )
            x = slice_time(x, self.max_timesteps, length)
            y = slice_time(y, self.max_timesteps, length)
            sw = slice_time(sw, self.max_timesteps, length)
            length = self.max_timesteps
        self.timesteps = length
        self.x, self.y, self.sample_weight = x, y, sw
        has_loss = has_compiled_loss(self.model)
        if y is None:
            self._say_once(
                "nolabels",
                "rnn_monitor: probe_data has no labels, so gradients through time, temporal flow "
                "and weight-gradient norms are off; activations and unit health still run. Pass "
                "probe_data=(x, y) to switch them on",
            )
        elif not has_loss:
            self._say_once(
                "noloss",
                "rnn_monitor: the model has no compiled loss, so gradients through time, temporal "
                "flow and weight-gradient norms are off; activations and unit health still run. "
                "compile() the model with a loss to switch them on",
            )
        self.gradients = y is not None and has_loss
        self._prober = Prober(
            self.model, self.infos, self.thresholds, self.text_samples, gradients=self.gradients,
            h_samples=self.unit_samples, path=self.path,
        )
        if self.unit_samples:
            inputs, vocab_size, why = probe_inputs(x, self.vocabulary)
            if inputs is None:
                self._say_once("units-input", "rnn_monitor: average input per unit is off: %s", why)
            else:
                self._unit_inputs = (inputs[: self.unit_samples], vocab_size)
        self._mark = self.writer.bytes_this_step if self.writer is not None else 0
        try:  # compiled now, before training's peak; a failure is met (and said) at the first run
            self._prober.prepare(self.x, self.y, self.sample_weight)
        except Exception:  # noqa: BLE001 - the guarded first run reports it with the data's blame
            logger.debug("rnn_monitor: compiling the probe ahead failed", exc_info=True)

    def attach(self, writer: Any) -> None:
        """Write through `writer` from now on (the byte cap counts from its current size)."""
        self.writer = writer
        self._mark = writer.bytes_this_step

    def describe(self) -> dict:
        """JSON-ready probe settings for the manifest."""
        return {
            "batch_size": self.batch_size,
            "timesteps": self.timesteps,
            "text_samples": min(self.text_samples, self.batch_size),
            "unit_samples": min(self.unit_samples, self.batch_size),
            "average_input_window": self.average_input_window,
            "average_input": None if self._unit_inputs is None else {
                "vocab_size": self._unit_inputs[1],
                "input": "tokens" if self._unit_inputs[1] is not None else "continuous",
                "order": "reading order (backward layers: reversed)",
                # the average input's D axis by name (token strings), when a vocabulary is given
                "labels": [str(t) for t in self.vocabulary][:MAX_VOCAB_LABELS]
                if self.vocabulary is not None and self._unit_inputs[1] is not None else None,
            },
            "vocabulary": self.vocabulary is not None,
            "gradients": bool(self.gradients),
            "max_timesteps": self.max_timesteps,
            "units": self.units,
            "max_bytes_per_epoch": self.max_bytes_per_epoch,
            "time_order": "input",
            "flow_order": "processing",
            "states": {info.name: list(state_names(info)) for info in self.infos},
        }

    def _baseline(self, pred_shape: Optional[tuple]) -> Optional[float]:
        """The probe's constant-prediction loss (`rnn_monitor.probe.constant_loss`), or None."""
        from rnn_monitor.probe.constant_loss import constant_loss

        if pred_shape is None:
            return None
        try:
            return constant_loss(self.model, self.x, self.y, pred_shape, self.sample_weight)
        except Exception:  # a model this does not fit: the rules go without the baseline
            self._say_once("baseline", "rnn_monitor: no constant-prediction loss for this model's "
                           "outputs; the alert rules use the loss trend alone", level=logging.INFO)
            return None

    # ------------------------------------------------------------------ per epoch
    def run(self) -> ProbeRun:
        """Run the probe; numpy results per layer (processing order, see `rnn_monitor.probe.graph`)."""
        if self._prober is None:
            self.start()
        try:
            return self._prober.run(self.x, self.y, self.sample_weight)
        except Exception as exc:
            loss = None
            if self.gradients:
                loss = lambda y_pred: compiled_loss(self.model, self.x, self.y, y_pred, self.sample_weight)  # noqa: E731
            blame_the_data(self.model, self.x, exc, loss)
            raise

    def _cannot(self, key: str, message: str, *args: Any) -> None:
        """Something this layer cannot have measured: a warning once, an error with raise_errors."""
        if self.raise_errors:
            raise ProbeRefusedError(message % args)
        self._say_once(key, message, *args)

    def _refuse(self, refusals: dict) -> None:
        """Say once per layer why the probe does not step it (an error with raise_errors)."""
        for name, why in refusals.items():
            message = (
                f"rnn_monitor: layer {name!r} is not probed: {why}. Its weights are still "
                "monitored (per-gate norms, update ratios, histograms) and the other layers are "
                "probed; gradients through time, activations and unit health are off for it"
            )
            self._cannot(f"refused:{name}", "%s", message)

    def _describe_units(self, info: Any, out: LayerStats, optional: list) -> None:
        """The units' average input and spectrum from the layer's kept h (`unit_roles`), queued."""
        inputs, vocab_size = self._unit_inputs or (None, None)
        if inputs is None or out.h_rows is None:
            return
        if out.h_rows.shape[1] != inputs.shape[1]:
            self._say_once(f"units-steps:{info.name}", "rnn_monitor: layer %r runs %d steps over %d input "
                           "steps, so its average input is not computed", info.name, out.h_rows.shape[1],
                           inputs.shape[1])
            return
        out.units = describe_units(inputs, out.h_rows, info.direction == "backward",
                                   self.average_input_window, vocab_size)
        queue_unit_writes(info.name, out.units, vocab_size is None, optional, self.images)

    def _choose_time_bin(self, results: dict) -> int:
        """Steps averaged per written step of G and O, so that they fit the byte cap (said once)."""
        widths = [out.G.shape[-1] for out in results.values() if out.G is not None]
        steps = max((out.G.shape[0] for out in results.values() if out.G is not None), default=0)
        cap = self.max_bytes_per_epoch
        time_bin = gstats.gradient_time_bin(steps, widths, None if cap is None else GRADIENT_SHARE * cap)
        if time_bin > 1:
            self._say_once(
                "time-bin",
                "rnn_monitor: per-unit gradients of %d layers x %d steps would take most of "
                "max_bytes_per_epoch=%s, so G and the output gradients are written as means over "
                "%d consecutive steps (g[t] and the temporal flow keep every step); pass "
                "max_bytes_per_epoch=None, units=[...] or max_timesteps to keep every step",
                len(widths), steps, cap, time_bin, level=logging.INFO,
            )
        return time_bin

    def log_epoch(self, epoch: int, record: EpochRecord, beside: Optional[BackgroundTask] = None) -> None:
        """Probe, measure and write one logged epoch. `beside` (another part's numpy work) runs
        on a second thread while the probe's graph runs, and is joined before anything here
        writes or touches `record` (`rnn_monitor.background`)."""
        began = time.perf_counter()
        if beside is not None:
            beside.start()
        try:
            raw = self.run()
        finally:
            if beside is not None:
                beside.join()
        self._refuse(self._prober.refusals)
        if raw.loss is not None:
            record.probe_loss = raw.loss
            if self._constant_loss is _UNSET:
                self._constant_loss = self._baseline(raw.pred_shape)
            record.constant_loss = self._constant_loss
        essentials: list = []
        optional: list = []  # (priority, size, writer call, label)
        results = {}
        for info in self.infos:
            if info.name not in raw.layers:
                continue  # refused above
            results[info.name] = layer_stats(
                info, raw.layers[info.name], record, raw.cells[info.name], thresholds=self.thresholds,
                units=self.units, text_samples=self.text_samples, gradients=self.gradients,
                say_once=self._say_once, refuse=self._cannot,
            )
            self._describe_units(info, results[info.name], optional)
        if self.time_bin is None:  # chosen once: every epoch of the run has the same shapes
            self.time_bin = self._choose_time_bin(results)
        for info in self.infos:
            if info.name in results:
                queue_writes(info, results[info.name], essentials, optional, with_image=self.images,
                             time_bin=self.time_bin)
        if not self._tokens_written and self.vocabulary is not None:
            tokens = encode_tokens(self.x, self.vocabulary, self.text_samples, self._say_once)
            if tokens is not None:
                optional.append((-1, tokens.size * 8 + 200, (metadata.TOKENS, tokens, None, None), "tokens"))
        cap = self.max_bytes_per_epoch
        skipped, wrote_tokens = write_within_cap(self.writer, epoch, essentials, optional, cap, self._mark)
        self._tokens_written = self._tokens_written or wrote_tokens
        if skipped:
            self._say_once(
                "cap:" + ",".join(skipped),
                "rnn_monitor: the per-epoch byte cap (max_bytes_per_epoch=%s) left out %s; pass "
                "units=[...], a smaller text_samples or max_timesteps to fit everything",
                cap,
                ", ".join(skipped),
            )
        self._mark = self.writer.bytes_this_step
        self.last_results = results
        self.last_seconds = time.perf_counter() - began
