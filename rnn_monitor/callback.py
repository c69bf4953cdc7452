"""`RNNMonitor`: the Keras callback that watches the recurrent layers of a model during `fit`.

Every `every` epochs it logs, per monitored layer, the weight statistics (`weights_monitor`),
the probe measurements when probe data is given (`probe_monitor`: gradients through time,
activations, unit health) and runs the alert rules (`alerts`). Each part is guarded: an error
in the monitor is logged once and that part is switched off, training goes on
(`raise_errors=True` makes it raise instead, for tests and debugging).
"""

from __future__ import annotations

import logging
import os
import tempfile
import traceback
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import keras

from rnn_monitor.logdir import metadata
from rnn_monitor.model.anatomy import RNNLayerInfo, find_rnn_layers
from rnn_monitor.model.backend import kept_state
from rnn_monitor.model.patch import PATHS as PROBE_PATHS
from rnn_monitor.probe.data import ProbeDataError
from rnn_monitor.alerts.engine import check_stop_on
from rnn_monitor.background import BackgroundTask
from rnn_monitor.config import (
    DEFAULT_MAX_BYTES_PER_EPOCH, Thresholds, check_count, check_flag, check_generate_config, check_units,
)
from rnn_monitor.distribute import agree_to_stop, cluster_size, is_chief, process_index
from rnn_monitor.record import EpochRecord
from rnn_monitor.weights.weight_monitor import WeightMonitor
from rnn_monitor.logdir.writer import SummaryWriter

logger = logging.getLogger("rnn_monitor")


class RNNMonitor(keras.callbacks.Callback):
    """Log RNN weights, gradients through time, unit health and alerts to TensorBoard.

    Args:
        log_dir: where to write; events go to ``<log_dir>/rnn_monitor`` so the same `log_dir`
            can be shared with Keras's `TensorBoard` callback.
        probe_data: a fixed batch for the gradient and activation features: ``x``, ``(x, y)``,
            ``(x, y, sample_weight)`` or a `tf.data.Dataset` (its first batch is taken once).
        vocabulary: token strings indexed by the integer inputs (for the text view).
        every: log every `every` epochs (the last epoch of a fit is always logged).
        layers: names of the layers to monitor (default: every recurrent layer).
        histograms: write per-gate weight histograms.
        images: write the weight heatmap and gradient-over-time images.
        text_samples: probe sequences whose activations are kept for the text view.
        max_timesteps: probe only the last `max_timesteps` steps of each sequence.
        units: indices of the units whose activations are written (default all).
        unit_samples: probe sequences whose h feeds each unit's average input and spectrum.
        average_input_window: input steps before each position in a unit's average input.
        generate: ``{"seed": "def ", "steps": 200, "temperature": 0.0}`` to generate text from
            a next-token model each logged epoch and log it with every layer's activations.
        importance: occlusion importance and prediction-as-read of the text-view sequences:
            "auto" (for classifiers, whose output is not per timestep; every k-th logged epoch
            when 2 x text_samples x T passes 1024 inputs, see
            `rnn_monitor.interpret.interpret_monitor.importance_every`), True (every logged epoch) or False.
        max_copies: occluded copies / prefixes per model call (bounds its memory); None: as
            many as the probe batch has sequences (at least 32), so no call holds more than
            the training step already did.
        max_bytes_per_epoch: what one logged epoch may write (gradient tensors always, then
            tokens, images and activations while they fit); None for no cap.
        thresholds: overrides of `rnn_monitor.config.Thresholds` (names in docs/reference.md).
        alerts: run the alert rules.
        on_alert: called with each new alert record.
        stop_on: alert kinds that stop training after the epoch they are raised at (e.g.
            ``("nonfinite", "exploding")``); an unknown kind is a ValueError listing the kinds.
        probe_path: how the probe runs each stock LSTM / GRU layer: "auto" (through the
            layer's own fused kernel where the backend fuses it, on a GPU; elsewhere, and for
            every other layer, the layer's cell stepped by Keras's own loop), "kernel" (the
            kernel path wherever it applies, also on a CPU) or "loop".
        raise_errors: raise errors of the monitor itself instead of logging them.
    """

    # The only batch hook starts the monitor once for models built by their first step; it reads
    # the model's structure and never touches training state, so Keras may keep dispatching
    # batch ends asynchronously (it waits for them before `on_epoch_end`).
    async_safe = True
    # tf.keras 2 (tf-keras) asks every callback of its CallbackList these three (private) hooks:
    # which batch hooks to call, and whether logs may stay tensors. The monitor reads no logs, so
    # tf.keras 2 need not copy them to numpy every batch; its batch hook only matters until the
    # monitor has started. Keras 3 never reads them.
    _supports_tf_logs = True

    def _implements_train_batch_hooks(self) -> bool:
        return not self._started

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    def __init__(
        self,
        log_dir: str,
        probe_data: Any = None,
        vocabulary: Optional[Sequence[str]] = None,
        every: int = 1,
        layers: Optional[Iterable[str]] = None,
        histograms: bool = True,
        images: bool = True,
        text_samples: int = 4,
        max_timesteps: Optional[int] = None,
        units: Optional[Sequence[int]] = None,
        unit_samples: int = 16,
        average_input_window: int = 10,
        generate: Optional[Mapping[str, Any]] = None,
        importance: Any = "auto",
        max_copies: Optional[int] = None,
        max_bytes_per_epoch: Optional[int] = DEFAULT_MAX_BYTES_PER_EPOCH,
        thresholds: Optional[Mapping[str, Any]] = None,
        alerts: bool = True,
        on_alert: Optional[Callable[[dict], Any]] = None,
        stop_on: Iterable[str] = (),
        probe_path: str = "auto",
        raise_errors: bool = False,
    ) -> None:
        super().__init__()
        every = check_count("every", every, minimum=1)
        if not log_dir:
            raise ValueError("log_dir is required: the directory TensorBoard will read")
        self.log_dir = os.fspath(log_dir)
        self.probe_data = probe_data
        self.vocabulary = vocabulary
        self.every = every
        if isinstance(layers, str):  # one layer's name, not its characters
            layers = [layers]
        self.layer_names = list(layers) if layers is not None else None
        self.histograms = check_flag("histograms", histograms)
        self.images = check_flag("images", images)
        self.text_samples = check_count("text_samples", text_samples, minimum=0)
        self.max_timesteps = None if max_timesteps is None else check_count("max_timesteps", max_timesteps, minimum=1, none="None")
        self.units = check_units(units)
        self.unit_samples = check_count("unit_samples", unit_samples, minimum=0)
        self.average_input_window = check_count("average_input_window", average_input_window, minimum=1)
        self.generate = check_generate_config(generate)
        if importance not in ("auto", True, False):
            raise ValueError(f"importance must be 'auto', True or False, got {importance!r}")
        self.importance = importance
        self.max_copies = None if max_copies is None else check_count("max_copies", max_copies, minimum=1, none="None")
        if max_bytes_per_epoch is not None:
            max_bytes_per_epoch = check_count("max_bytes_per_epoch", max_bytes_per_epoch, minimum=1, none="None for no cap")
        self.max_bytes_per_epoch = max_bytes_per_epoch
        self.thresholds = Thresholds.from_mapping(thresholds)
        self.alerts_enabled = check_flag("alerts", alerts)
        self.on_alert = on_alert
        self.stop_on = check_stop_on(stop_on)
        if probe_path not in PROBE_PATHS:
            raise ValueError(f"probe_path must be one of {PROBE_PATHS}, got {probe_path!r}")
        self.probe_path = probe_path
        self.raise_errors = check_flag("raise_errors", raise_errors)

        self.infos: list[RNNLayerInfo] = []
        self.writer: Optional[SummaryWriter] = None
        self._chief = True
        self._parts: dict[str, Any] = {}
        self._last_logged: Optional[int] = None
        self._last_epoch: Optional[int] = None
        self._last_logs: dict = {}
        self._started = False

    # ------------------------------------------------------------------ set-up
    @property
    def run_dir(self) -> str:
        """The TensorBoard run directory this callback writes to."""
        return os.path.join(self.log_dir, metadata.RUN_SUBDIR)

    def _check_log_dir(self) -> None:
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.run_dir, prefix=".write_test_"):
                pass
        except OSError as exc:
            raise PermissionError(
                f"RNNMonitor cannot write to log_dir {self.log_dir!r} ({exc.strerror or exc}). "
                "Pass a log_dir in a directory you can write to."
            ) from exc

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self._chief = is_chief()
        if not self._chief:
            return
        self._check_log_dir()
        if cluster_size() > 1:
            logger.info("rnn_monitor: process %d of %d writes the log; the others train without it",
                        process_index(), cluster_size())
        if getattr(self.model, "built", False):
            self._start()

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        # Models without an input shape are built by their first training step.
        if self._chief and not self._started:
            self._start()

    def _select_layers(self, infos: list[RNNLayerInfo]) -> list[RNNLayerInfo]:
        if self.layer_names is None:
            return infos
        wanted = set(self.layer_names)
        chosen = [i for i in infos if i.name in wanted or i.name.split("/")[0] in wanted]
        missing = wanted - {i.name for i in chosen} - {i.name.split("/")[0] for i in chosen}
        if missing:
            raise ValueError(
                f"layers {sorted(missing)} are not recurrent layers of the model; "
                f"monitorable layers: {[i.name for i in infos]}"
            )
        return chosen

    def _start(self) -> None:
        """Find the layers and check the probe data first, then open the writer: a fit that fails
        on bad input leaves no event file behind, and every event file starts with a manifest."""
        self._started = True
        self.infos = self._select_layers(find_rnn_layers(self.model))
        if "writer" not in self._parts:
            model_parts = self._backend_supported()
            probe = self._make_probe() if self.probe_data is not None and model_parts else None
            interpret = self._make_interpret() if model_parts else None
            if self.writer is None:
                self.writer = SummaryWriter(self.run_dir)
            self._parts["writer"] = self.writer
            self._parts["weights"] = WeightMonitor(
                self.infos, self.writer, histograms=self.histograms, weight_images=self.images
            )
            if probe is not None:
                probe.attach(self.writer)
                self._parts["probe"] = probe
            elif self.probe_data is None:
                logger.warning(
                    "rnn_monitor: no probe_data given, so only weights are monitored; pass "
                    "probe_data=(x, y) for gradients through time, activations and unit health"
                )
            if interpret is not None and interpret.active:
                interpret.writer = self.writer
                self._parts["interpret"] = interpret
            if self.alerts_enabled:
                self._parts["alerts"] = self._make_alerts()
        self.writer.json_tensor(metadata.MANIFEST, self.manifest(), step=self._initial_epoch())
        self.writer.flush()

    def _backend_supported(self) -> bool:
        """Whether the probe and the interpretability part run on the model's Keras backend;
        when not, say once what still runs."""
        from rnn_monitor.backends import SUPPORTED, backend_name

        name = backend_name(self.model)
        if name in SUPPORTED:
            return True
        logger.warning(
            "rnn_monitor: on the %s backend this run logs the weights (per-gate norms, update ratios, "
            "non-finite counts, histograms, images) and their alerts; gradients through time, unit "
            "statistics and the interpretability views need KERAS_BACKEND=%s", name, " or ".join(SUPPORTED))
        return False

    def _initial_epoch(self) -> int:
        return int(self.params.get("initial_epoch", 0) or 0) if self.params else 0

    def _make_probe(self) -> Any:
        from rnn_monitor.probe.probe_monitor import ProbeMonitor

        probe = ProbeMonitor(
            model=self.model,
            infos=self.infos,
            probe_data=self.probe_data,
            writer=None,  # attached once the probe data passed its checks
            thresholds=self.thresholds,
            vocabulary=self.vocabulary,
            text_samples=self.text_samples,
            unit_samples=self.unit_samples,
            average_input_window=self.average_input_window,
            max_timesteps=self.max_timesteps,
            units=self.units,
            images=self.images,
            max_bytes_per_epoch=self.max_bytes_per_epoch,
            raise_errors=self.raise_errors,
            path=self.probe_path,
        )
        probe.start()  # validates probe data: a wrong shape is an error before training
        return probe

    def _make_interpret(self) -> Any:
        from rnn_monitor.interpret.interpret_monitor import InterpretMonitor

        return InterpretMonitor(
            model=self.model,
            writer=None,  # attached once every check passed
            probe_data=self.probe_data,
            vocabulary=self.vocabulary,
            text_samples=self.text_samples,
            generate=self.generate,
            importance=self.importance,
            max_copies=self.max_copies,
        )

    def _make_alerts(self) -> Any:
        from rnn_monitor.alerts import AlertEngine

        return AlertEngine(
            writer=self.writer,
            thresholds=self.thresholds,
            on_alert=self.on_alert,
            stop_on=self.stop_on,
        )

    def manifest(self) -> dict:
        """What the log holds: layers and their gate layouts, probe settings, thresholds."""
        probe = self._parts.get("probe")
        interpret = self._parts.get("interpret")
        return {
            "version": metadata.CONTENT_VERSION,
            "layers": [info.describe() for info in self.infos],
            "every": self.every,
            "probe": probe.describe() if probe is not None else None,
            "interpret": interpret.describe() if interpret is not None else None,
            "thresholds": vars(self.thresholds).copy(),
            "processes": {"writer": process_index(), "count": cluster_size()},
        }

    # ------------------------------------------------------------------ per epoch
    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._last_epoch = epoch
        logged = (epoch - self._initial_epoch()) % self.every == 0
        try:
            if self._chief:
                if not self._started:
                    self._start()
                self._last_logs = dict(logs or {})
                if logged:
                    self._log_epoch(epoch, logs)
        finally:
            if logged and self.stop_on:  # every process stops where the chief's alert stops it
                agree_to_stop(self.model)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if not self._chief or self.writer is None:
            return
        if self._last_epoch is not None and self._last_logged != self._last_epoch:
            self._log_epoch(self._last_epoch, self._last_logs)
        self._guard("writer", lambda writer: writer.finish())

    def _log_epoch(self, epoch: int, logs: Optional[dict] = None) -> None:
        # The parts call the model; its carried states and dropout seeds must stay where
        # training left them.
        with kept_state(self.model):
            self._log_parts(epoch, logs)

    def _log_parts(self, epoch: int, logs: Optional[dict] = None) -> None:
        record = EpochRecord(epoch)
        record.set_logs(logs)  # the loss trend the alert rules read
        weights = self._weights_beside(epoch, record)
        # Before the probe's writes, so that the probe's byte cap counts what these parts wrote.
        self._guard("interpret", lambda part: part.log_epoch(epoch, record))
        self._guard("probe", lambda part: part.log_epoch(epoch, record, beside=weights))
        if weights is not None:
            weights.finish()  # the probe is off, or failed before it started the weight part
        self._guard("writer", lambda writer: _write_scalars(writer, record))
        self._guard("alerts", lambda part: part.evaluate(epoch, record, self.model))
        # On disk within ~0.1 s, on a background thread, while the next epoch trains.
        self._guard("writer", lambda writer: writer.flush(wait=False))
        self._last_logged = epoch

    def _weights_beside(self, epoch: int, record: EpochRecord) -> Optional[BackgroundTask]:
        """The weight part of this epoch, to run beside the probe's graph (`rnn_monitor.background`):
        its weights are read here, on the training thread."""
        taken: dict = {}
        self._guard("weights", lambda part: taken.update(snapshot=part.snapshot()))
        if "snapshot" not in taken:
            return None
        return BackgroundTask(lambda: self._guard(
            "weights", lambda part: part.log_epoch(epoch, record, snapshot=taken["snapshot"])))

    def _guard(self, name: str, action: Callable[[Any], Any]) -> None:
        """Run one part of the monitor; on error log it and switch that part off."""
        part = self._parts.get(name)
        if part is None:
            return
        try:
            action(part)
        except Exception as exc:
            if self.raise_errors:
                raise
            if isinstance(exc, ProbeDataError):  # the user's data, not the monitor: say what to pass
                logger.error("rnn_monitor: the %s part is switched off for this run, training goes on: %s", name, exc)
            else:
                logger.error(
                    "rnn_monitor: the %s part failed and is switched off for this run; training "
                    "goes on. Please report this with the traceback:\n%s",
                    name,
                    traceback.format_exc(),
                )
            self._parts[name] = None


def _write_scalars(writer: SummaryWriter, record: EpochRecord) -> None:
    """Every scalar the parts measured, as standard TensorBoard scalars at the record's epoch."""
    for layer, values in record.scalars.items():
        for name, value in values.items():
            writer.scalar(metadata.scalar_tag(layer, name), value, record.epoch)
