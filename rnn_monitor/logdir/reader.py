"""`load_run(log_dir)`: what `RNNMonitor` wrote, as numpy arrays, for notebooks and the CLI.

No TensorFlow needed: event files are read directly (`rnn_monitor.logdir.events`). Every value is
read, with no sampling; when an epoch was written twice (a resumed run), the last write wins.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import numpy as np
from tensorboard.util import tensor_util

from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.events import event_files, read_events


class NoRunError(FileNotFoundError):
    """The path holds no rnn-monitor data."""


def find_run_dir(log_dir: str) -> str:
    """``<log_dir>/rnn_monitor`` when present, else `log_dir` itself if it holds our events."""
    if not os.path.isdir(log_dir):
        raise NoRunError(f"{log_dir!r} is not a directory")
    candidate = os.path.join(log_dir, metadata.RUN_SUBDIR)
    if os.path.isdir(candidate) and event_files(candidate):
        return candidate
    if os.path.basename(os.path.normpath(log_dir)) == metadata.RUN_SUBDIR and event_files(log_dir):
        return log_dir
    raise NoRunError(
        f"no rnn-monitor data in {log_dir!r}: expected event files in "
        f"{candidate!r} (written by RNNMonitor(log_dir={log_dir!r}))"
    )


def find_run_dirs(root: str) -> list[str]:
    """Every rnn-monitor run directory under `root` (for `rnn-monitor report runs/`)."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        if os.path.basename(dirpath) == metadata.RUN_SUBDIR and event_files(dirpath):
            found.append(dirpath)
    return found


class Run:
    """Everything one `RNNMonitor` run directory holds."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self._scalars: dict[str, dict[int, float]] = {}
        self._tensors: dict[str, dict[int, tuple[dict, Any]]] = {}
        for path in event_files(run_dir):
            for event in read_events(path):
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    self._ingest(int(event.step), value)
        manifests = self._tensors.get(metadata.plugin_tag(metadata.MANIFEST), {})
        if not manifests:
            raise NoRunError(f"{run_dir!r} has event files but no rnn-monitor manifest")
        self.manifest: dict = json.loads(metadata.decode_text(manifests[max(manifests)][1]))
        self.layers: list[str] = [layer["name"] for layer in self.manifest.get("layers", [])]
        epochs = {step for tag, series in self._scalars.items() for step in series}
        self.epochs: list[int] = sorted(epochs)

    def _ingest(self, step: int, value: Any) -> None:
        plugin = value.metadata.plugin_data.plugin_name
        if plugin == "scalars":
            self._scalars.setdefault(value.tag, {})[step] = float(tensor_util.make_ndarray(value.tensor))
        elif plugin == metadata.PLUGIN_NAME:
            try:
                content = metadata.parse_plugin_content(value.metadata.plugin_data.content)
            except ValueError:
                return
            self._tensors.setdefault(value.tag, {})[step] = (content, value.tensor)
        # A tag's metadata is written only with its first value by some writers:
        elif not plugin and value.tag in self._scalars:
            self._scalars[value.tag][step] = float(tensor_util.make_ndarray(value.tensor))

    # ------------------------------------------------------------------ scalars
    def _check_layer(self, layer: str) -> None:
        if layer not in self.layers:
            raise KeyError(f"no layer {layer!r} in this run; layers: {self.layers}")

    def scalar_names(self, layer: str) -> list[str]:
        """Every scalar logged for `layer`, e.g. ``dead_ratio``, ``kernel/i/l2``."""
        self._check_layer(layer)
        names = []
        for tag in self._scalars:
            split = metadata.split_scalar_tag(tag, self.layers)
            if split and split[0] == layer:
                names.append(split[1])
        return sorted(names)

    def scalar(self, layer: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(epochs, values)`` of one scalar, in epoch order."""
        self._check_layer(layer)
        series = self._scalars.get(metadata.scalar_tag(layer, name))
        if series is None:
            raise KeyError(
                f"no scalar {name!r} for layer {layer!r}; see run.scalar_names({layer!r})"
            )
        steps = sorted(series)
        return np.array(steps, dtype=np.int64), np.array([series[s] for s in steps], dtype=np.float64)

    # ------------------------------------------------------------------ plugin tensors
    def _series(self, kind: str, layer: Optional[str] = None, state: Optional[str] = None) -> dict[int, np.ndarray]:
        if layer is not None:
            self._check_layer(layer)
        raw = self._tensors.get(metadata.plugin_tag(kind, layer=layer, state=state), {})
        return {step: tensor_util.make_ndarray(tensor) for step, (_, tensor) in sorted(raw.items())}

    def _stack(self, kind: str, layer: str) -> np.ndarray:
        """One array per epoch of `run.epochs`, NaN-filled where that epoch has none."""
        series = self._series(kind, layer)
        if not series:
            raise KeyError(
                f"no {kind} for layer {layer!r}: the run was logged without probe data with labels"
            )
        shape = max((a.shape for a in series.values()), key=lambda s: np.prod(s))
        out = np.full((len(self.epochs),) + shape, np.nan, dtype=np.float32)
        for i, epoch in enumerate(self.epochs):
            if epoch in series and series[epoch].shape == shape:
                out[i] = series[epoch]
        return out

    def timestep_gradients(self, layer: str) -> np.ndarray:
        """[n_epochs, T, units]: mean_b |dL/dh_t| through the recurrence; NaN where masked.
        With ``gradient_time_bin(layer) = k > 1`` the time axis has ceil(T / k) bins, each the
        mean over its k steps."""
        return self._stack(metadata.TIMESTEP_GRADIENTS, layer)

    def output_gradients(self, layer: str) -> np.ndarray:
        """[n_epochs, T, units]: mean_b |dL/d(out_t)|, the direct path only (binned as
        `timestep_gradients`)."""
        return self._stack(metadata.OUTPUT_GRADIENTS, layer)

    def gradient_time_bin(self, layer: str) -> int:
        """Steps per time bin of `timestep_gradients` / `output_gradients`: 1 (every step) unless
        the byte cap made the monitor write them as means over k consecutive steps."""
        self._check_layer(layer)
        raw = self._tensors.get(metadata.plugin_tag(metadata.TIMESTEP_GRADIENTS, layer=layer), {})
        return max((int(content.get("time_bin", 1) or 1) for content, _ in raw.values()), default=1)

    def timestep_grad_norm(self, layer: str) -> np.ndarray:
        """[n_epochs, T]: g[t] = mean_b ||dL/dh_t||."""
        return self._stack(metadata.TIMESTEP_GRAD_NORM, layer)

    def temporal_flow(self, layer: str) -> np.ndarray:
        """[n_epochs, K]: F[k], gradient reaching k steps back from the last state."""
        return self._stack(metadata.TEMPORAL_FLOW, layer)

    def activation_states(self, layer: str) -> list[str]:
        """States whose activations were kept for `layer` (h, c, gates)."""
        self._check_layer(layer)
        prefix = metadata.plugin_tag(metadata.ACTIVATIONS, layer=layer) + "/"
        return sorted(tag[len(prefix):] for tag in self._tensors if tag.startswith(prefix))

    def activations(self, layer: str, state: str = "h", epoch: Optional[int] = None) -> np.ndarray:
        """[S, T, units] activations of the text-view sequences at `epoch` (default: last)."""
        series = self._series(metadata.ACTIVATIONS, layer, state)
        if not series:
            raise KeyError(f"no activations of state {state!r} for layer {layer!r}")
        epoch = max(series) if epoch is None else epoch
        if epoch not in series:
            raise KeyError(f"no activations at epoch {epoch}; epochs: {sorted(series)}")
        return series[epoch].astype(np.float32)

    def _at(self, kind: str, layer: Optional[str], epoch: Optional[int], state: Optional[str] = None,
            what: str = "") -> tuple[int, np.ndarray]:
        """``(epoch, array)`` of one plugin tensor at `epoch` (default: the last logged)."""
        series = self._series(kind, layer, state)
        if not series:
            where = f" for layer {layer!r}" if layer else ""
            raise KeyError(f"no {kind}{where} in this run{what}")
        epoch = max(series) if epoch is None else int(epoch)
        if epoch not in series:
            raise KeyError(f"no {kind} at epoch {epoch}; epochs: {sorted(series)}")
        return epoch, series[epoch]

    def average_input(self, layer: str, epoch: Optional[int] = None) -> np.ndarray:
        """[units, window, D]: the input each unit likes to see (activation-weighted mean input
        window; D = vocabulary size for token ids), at `epoch` (default: the last). For a
        vocabulary larger than `metadata.AVERAGE_INPUT_TOP` only each position's 12 most weighted
        tokens are logged (exact); the other entries are 0."""
        epoch, values = self._at(metadata.AVERAGE_INPUT, layer, epoch,
                                 what=" (logged when probe_data are token ids or rows [B, T, D])")
        ids = self._series(metadata.AVERAGE_INPUT_IDS, layer).get(epoch)
        described = (self.manifest.get("probe") or {}).get("average_input") or {}
        return metadata.dense_average_input(values, ids, described.get("vocab_size"))

    def periodicity(self, layer: str, epoch: Optional[int] = None) -> dict:
        """``{freqs, power [units, F], peak_freq [units], strength [units]}`` of the units' h at
        `epoch`; `power` is binned to at most `metadata.MAX_SPECTRUM_BINS` frequencies, the peak
        and strength are computed at full resolution."""
        epoch, power = self._at(metadata.PERIODICITY, layer, epoch)
        freqs = self._at(metadata.PERIODICITY_FREQS, layer, epoch)[1]
        peak = self._at(metadata.PERIODICITY_PEAK, layer, epoch)[1]
        return {"freqs": freqs.astype(np.float64), "power": power.astype(np.float32),
                "peak_freq": peak[0].astype(np.float64), "strength": peak[1].astype(np.float64)}

    def token_importance(self, epoch: Optional[int] = None) -> dict:
        """Classifiers: ``{importance [S, T], prediction_as_read [S, T], target, score, decision,
        tokens}`` for the text-view sequences at `epoch` (default: the last); NaN at padding."""
        why = " (logged for classifiers, whose output is one vector per sequence, with probe_data)"
        epoch, importance = self._at(metadata.TOKEN_IMPORTANCE, None, epoch, what=why)
        reading = self._at(metadata.PREDICTION_AS_READ, None, epoch)[1]
        info = json.loads(metadata.decode_text(self._at(metadata.IMPORTANCE_INFO, None, epoch)[1]))
        tokens = self.tokens
        return dict(info, epoch=epoch, importance=importance.astype(np.float32),
                    prediction_as_read=reading.astype(np.float32),
                    tokens=None if tokens is None else tokens[: importance.shape[0]])

    def generated(self, epoch: Optional[int] = None) -> dict:
        """``{epoch, tokens, text, activations: {layer: {state: [N, units]}}}``: the text generated
        at `epoch` (default: the last) with the state of every layer after each token."""
        epoch, raw = self._at(metadata.GENERATED_TOKENS, None, epoch,
                              what=' (logged with RNNMonitor(generate={"seed": ...}))')
        tokens = [metadata.decode_text(t) for t in np.asarray(raw, dtype=object).ravel()]
        activations: dict[str, dict[str, np.ndarray]] = {}
        prefix = f"/{metadata.PREFIX}/{metadata.GENERATED_ACTIVATIONS}/"
        for tag, series in self._tensors.items():
            if prefix in tag and epoch in series:
                layer, state = tag.split(prefix)
                activations.setdefault(layer, {})[state] = tensor_util.make_ndarray(series[epoch][1]).astype(np.float32)
        return {"epoch": epoch, "tokens": tokens, "text": "".join(tokens), "activations": activations}

    def unit_ids(self, layer: str, state: str = "h") -> list[int]:
        """The layer's own unit index of each activation column (``RNNMonitor(units=...)``)."""
        n_units = self.activations(layer, state).shape[-1]
        return metadata.activation_unit_ids(self.manifest, layer, n_units)

    @property
    def tokens(self) -> Optional[np.ndarray]:
        """[S, T] decoded probe tokens, when a vocabulary was given."""
        series = self._series(metadata.TOKENS)
        if not series:
            return None
        arr = series[max(series)]
        return np.vectorize(metadata.decode_text, otypes=[object])(arr)

    def _records(self, kind: str) -> list[dict]:
        out = []
        for epoch, tensor in self._series(kind).items():
            for record in json.loads(metadata.decode_text(tensor)):
                out.append(dict(record, epoch=record.get("epoch", epoch)))
        return out

    @property
    def alerts(self) -> list[dict]:
        """Every alert raised, oldest first: ``{epoch, layer, kind, message, value, threshold}``."""
        return self._records(metadata.ALERTS)

    @property
    def findings(self) -> list[dict]:
        """Every finding raised (unusual numbers that are not alerts), oldest first, in the shape
        of alerts; empty for logs written before findings existed."""
        return self._records(metadata.FINDINGS)

    def run_scalar_names(self) -> list[str]:
        """Run-wide scalars, e.g. ``probe_loss``, ``constant_loss``, ``loss_ratio``."""
        prefix = metadata.run_scalar_tag("")
        return sorted(tag[len(prefix):] for tag in self._scalars if tag.startswith(prefix))

    def run_scalar(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(epochs, values)`` of one run-wide scalar, in epoch order."""
        series = self._scalars.get(metadata.run_scalar_tag(name))
        if series is None:
            raise KeyError(f"no run-wide scalar {name!r}; see run.run_scalar_names()")
        steps = sorted(series)
        return np.array(steps, dtype=np.int64), np.array([series[s] for s in steps], dtype=np.float64)

    def __repr__(self) -> str:
        return f"Run({self.run_dir!r}, layers={self.layers}, epochs={self.epochs})"


def load_run(log_dir: str) -> Run:
    """Read what `RNNMonitor(log_dir)` wrote. Raises NoRunError when there is nothing to read."""
    return Run(find_run_dir(os.fspath(log_dir)))
