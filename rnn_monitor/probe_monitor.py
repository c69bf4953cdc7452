"""The probe part of the monitor: gradients through time, activations and unit health.

Each logged epoch, `ProbeMonitor.log_epoch` runs one forward + backward pass of the model on
the fixed probe batch with every monitored recurrent layer unrolled step by step
(`rnn_monitor.unroll`), turns the reduced arrays into the statistics of DESIGN.md
(`rnn_monitor.stats.gradients`, `rnn_monitor.stats.units`), fills the `EpochRecord` and writes
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
gradient tensors (G and output gradients in float32, g, F) are always written; then, while the
budget allows, the tokens, the gradient heatmap image and the activations (h of every layer
first, then c, then the gates). What was left out is said once in the log. With the defaults the
reference model of `benchmarks/overhead.py` (Embedding 32 -> LSTM 128 -> LSTM 128, T = 100, 4
text samples) writes 1.69 MB per epoch in total, every activation state included
(docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from rnn_monitor import images, metadata
from rnn_monitor.anatomy import RNNLayerInfo
from rnn_monitor.config import DEFAULT_MAX_BYTES_PER_EPOCH
from rnn_monitor.record import EpochRecord, NonFinite
from rnn_monitor.stats import gradients as gstats
from rnn_monitor.stats import units as ustats

logger = logging.getLogger("rnn_monitor")

DEFAULT_MAX_BYTES = DEFAULT_MAX_BYTES_PER_EPOCH
RECON_TOLERANCE = 1e-5
MAX_IMAGE_STEPS = 1024


def _is_dataset(data: Any) -> bool:
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


def _to_numpy(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    arr = np.asarray(value)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return arr


def unpack_probe_data(data: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` as numpy from x, (x,), (x, y), (x, y, sw) or a Dataset."""
    if _is_dataset(data):
        batch = next(iter(data.take(1)), None)
        if batch is None:
            raise ValueError("probe_data is an empty tf.data.Dataset: it must yield at least one batch")
        data = batch
    if isinstance(data, tuple):
        if not 1 <= len(data) <= 3:
            raise ValueError(
                f"probe_data as a tuple must be (x,), (x, y) or (x, y, sample_weight); got {len(data)} items"
            )
        parts = list(data) + [None] * (3 - len(data))
    else:
        parts = [data, None, None]
    return tuple(_to_numpy(p) for p in parts)  # type: ignore[return-value]


def _first_array(x: Any) -> np.ndarray:
    if isinstance(x, Mapping):
        return next(iter(x.values()))
    if isinstance(x, list):
        return x[0]
    return x


def _slice_time(value: Any, steps: int, length: int) -> Any:
    """Keep the last `steps` steps of every array whose axis 1 has `length` entries."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _slice_time(v, steps, length) for k, v in value.items()}
    if isinstance(value, list):
        return [_slice_time(v, steps, length) for v in value]
    if value.ndim >= 2 and value.shape[1] == length:
        return value[:, length - steps :]
    return value


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
        max_timesteps: Optional[int] = None,
        units: Optional[Sequence[int]] = None,
        images: bool = True,
        max_bytes_per_epoch: Optional[int] = DEFAULT_MAX_BYTES,
    ) -> None:
        self.model = model
        self.infos = list(infos)
        self.probe_data = probe_data
        self.writer = writer
        self.thresholds = thresholds
        self.vocabulary = vocabulary
        self.text_samples = max(0, int(text_samples))
        if max_timesteps is not None and (not isinstance(max_timesteps, int) or max_timesteps < 1):
            raise ValueError(f"max_timesteps must be a positive integer or None, got {max_timesteps!r}")
        self.max_timesteps = max_timesteps
        self.units = None if units is None else [int(u) for u in units]
        self.images = images
        self.max_bytes_per_epoch = max_bytes_per_epoch
        self.x = self.y = self.sample_weight = None
        self.gradients = False
        self.batch_size = 0
        self.timesteps: Optional[int] = None
        self.last_seconds: Optional[float] = None  # wall time of the last probe (run + writes)
        self.last_results: Optional[dict] = None  # numpy results of the last probe, input order
        self._unroller = None
        self._tokens_written = False
        self._said: set = set()
        self._mark = 0  # writer.bytes_this_step after this part last wrote

    # ------------------------------------------------------------------ set-up
    def _say_once(self, key: str, message: str, *args: Any, level: int = logging.WARNING) -> None:
        if key not in self._said:
            self._said.add(key)
            logger.log(level, message, *args)

    def _expected_shapes(self) -> Optional[list]:
        inputs = getattr(self.model, "inputs", None)
        if not inputs:
            return None
        try:
            return [tuple(i.shape) for i in inputs]
        except Exception:  # pragma: no cover - exotic models
            return None

    def _validate_x(self, x: Any) -> None:
        expected = self._expected_shapes()
        arrays = list(x.values()) if isinstance(x, Mapping) else list(x) if isinstance(x, list) else [x]
        for arr in arrays:
            if not isinstance(arr, np.ndarray) or arr.ndim < 1:
                raise ValueError(
                    f"probe_data x must be an array (or a list / dict of arrays), got {type(arr).__name__}"
                )
        if expected is None:
            return
        if len(arrays) != len(expected):
            raise ValueError(
                f"probe_data x has {len(arrays)} input array(s) but the model takes {len(expected)} "
                f"input(s) of shapes {expected}"
            )
        for arr, shape in zip(arrays, expected):
            bad = len(arr.shape) != len(shape) or any(
                want is not None and got != want for got, want in zip(arr.shape[1:], shape[1:])
            )
            if bad:
                raise ValueError(
                    f"probe_data x has shape {arr.shape} but the model expects inputs of shape "
                    f"{shape} (None = any size; from model.inputs). Pass a batch shaped like the "
                    "training data."
                )

    def start(self) -> None:
        """Validate the probe data (a wrong shape is a ValueError before training starts)."""
        from rnn_monitor.unroll import Unroller

        x, y, sw = unpack_probe_data(self.probe_data)
        self._validate_x(x)
        first = _first_array(x)
        self.batch_size = int(first.shape[0])
        if self.batch_size < 1:
            raise ValueError("probe_data holds no sequence (batch size 0)")
        for name, arr in (("y", y), ("sample_weight", sw)):
            lead = _first_array(arr) if arr is not None else None
            if lead is not None and lead.ndim >= 1 and lead.shape[0] != self.batch_size:
                raise ValueError(
                    f"probe_data {name} has {lead.shape[0]} rows but x has {self.batch_size}: they "
                    "must describe the same batch"
                )
        length = int(first.shape[1]) if first.ndim >= 2 else None
        if self.max_timesteps is not None and length is not None and self.max_timesteps < length:
            expected = self._expected_shapes()
            if expected and len(expected[0]) >= 2 and expected[0][1] is not None:
                raise ValueError(
                    f"max_timesteps={self.max_timesteps} needs a model that accepts shorter "
                    f"sequences, but its input shape is {expected[0]}; build it with a time "
                    "dimension of None or drop max_timesteps"
                )
            x = _slice_time(x, self.max_timesteps, length)
            y = _slice_time(y, self.max_timesteps, length)
            sw = _slice_time(sw, self.max_timesteps, length)
            length = self.max_timesteps
        self.timesteps = length
        self.x, self.y, self.sample_weight = x, y, sw
        has_loss = getattr(self.model, "_compile_loss", None) is not None or bool(
            getattr(self.model, "losses", None)
        )
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
        self._unroller = Unroller(
            self.model, self.infos, self.thresholds, self.text_samples, gradients=self.gradients
        )
        self._mark = self.writer.bytes_this_step if self.writer is not None else 0

    def describe(self) -> dict:
        """JSON-ready probe settings for the manifest."""
        return {
            "batch_size": self.batch_size,
            "timesteps": self.timesteps,
            "text_samples": min(self.text_samples, self.batch_size),
            "vocabulary": self.vocabulary is not None,
            "gradients": bool(self.gradients),
            "max_timesteps": self.max_timesteps,
            "units": self.units,
            "max_bytes_per_epoch": self.max_bytes_per_epoch,
            "time_order": "input",
            "flow_order": "processing",
            "states": {info.name: list(_state_names(info)) for info in self.infos},
        }

    # ------------------------------------------------------------------ per epoch
    def run(self) -> dict:
        """Run the probe; numpy results per layer (processing order, see `rnn_monitor.unroll`)."""
        if self._unroller is None:
            self.start()
        return self._unroller.run(self.x, self.y, self.sample_weight)

    def log_epoch(self, epoch: int, record: EpochRecord) -> None:
        began = time.perf_counter()
        raw = self.run()
        statics = raw.pop("__static__")
        raw.pop("__loss__", None)
        epoch_start_bytes = self._mark
        essentials: list = []
        optional: list = []  # (priority, size, writer call)
        results = {}
        for info in self.infos:
            res = raw[info.name]
            h_bounded, tanh_output, direct = (bool(v) for v in statics[info.name])
            out = self._layer_stats(info, res, record, h_bounded, direct)
            results[info.name] = out
            self._queue_writes(info, out, epoch, essentials, optional)
        if not self._tokens_written and self.vocabulary is not None:
            tokens = self._tokens()
            if tokens is not None:
                optional.append((-1, tokens.size * 8 + 200, (metadata.TOKENS, tokens, None, None), "tokens"))
        for kind, data, layer, state in essentials:
            self.writer.plugin_tensor(kind, data, epoch, layer=layer, state=state)
        cap = self.max_bytes_per_epoch
        skipped = []
        for priority, size, item, label in sorted(optional, key=lambda o: o[0]):
            used = self.writer.bytes_this_step - epoch_start_bytes
            if cap is not None and used + size > cap:
                skipped.append(label)
                continue
            if item[0] == "image":
                _, tag, rgb, description = item
                self.writer.image(tag, rgb, epoch, description=description)
            else:
                kind, data, layer, state = item
                self.writer.plugin_tensor(kind, data, epoch, layer=layer, state=state)
                if kind == metadata.TOKENS:
                    self._tokens_written = True
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

    # ------------------------------------------------------------------ helpers
    def _layer_stats(
        self, info: RNNLayerInfo, res: dict, record: EpochRecord, h_bounded: bool, direct: bool
    ) -> dict:
        th = self.thresholds
        name = info.name
        backward = info.direction == "backward"
        acc = res["acc"]
        valid = np.asarray(res["valid"], dtype=bool)  # [B, T] processing order
        out: dict = {"valid": gstats.to_input_order(valid, backward, axis=1)}

        gates_ok = True
        recon = float(acc["recon"])
        if GATES_OF[info.kind] and not (np.isfinite(recon) and recon <= RECON_TOLERANCE):
            gates_ok = False
            self._say_once(
                f"recon:{name}",
                "rnn_monitor: layer %r: the gate activations rebuilt from the weights differ from "
                "the cell's own output by %.3g (> %g), so its gates are not reported",
                name,
                recon,
                RECON_TOLERANCE,
            )
        out["gates_ok"] = gates_ok

        dead = ustats.dead_units(acc, th.dead_std)
        exploding = ustats.exploding_units(acc, h_bounded, th.exploding_state, states=_state_names(info))
        saturated = ustats.saturated_units(acc, th.saturation_fraction)
        record.set_scalar(name, "dead_ratio", ustats.ratio(dead))
        record.set_scalar(name, "exploding_ratio", ustats.ratio(exploding))
        record.set_scalar(name, "saturated_ratio", ustats.ratio(saturated))
        out["dead"], out["exploding"], out["saturated"] = dead, exploding, saturated
        for state in _state_names(info):
            count = ustats.nonfinite_total(acc, state)
            if count:
                is_gate = state in GATES_OF[info.kind]
                if is_gate and not gates_ok:
                    continue
                record.nonfinite.append(
                    NonFinite(name, "gate" if is_gate else f"state {state}", state if is_gate else None, count)
                )
        if gates_ok:
            for gate in SIGMOID_OF.get(info.kind, ()):
                left, right = ustats.gate_saturation(acc, gate)
                record.set_scalar(name, f"gate/{gate}/saturation_left", left)
                record.set_scalar(name, f"gate/{gate}/saturation_right", right)

        states = [s for s in _state_names(info) if s in res["samples"]]
        if not gates_ok:
            states = [s for s in states if s not in GATES_OF[info.kind]]
        n_samples = min(self.text_samples, valid.shape[0])
        sample_valid = out["valid"][:n_samples]
        acts = {}
        for state in states:
            arr = gstats.to_input_order(np.asarray(res["samples"][state], dtype=np.float32), backward, axis=1)
            arr = np.where(sample_valid[:, :, None], arr, np.nan)
            if self.units is not None:
                keep = [u for u in self.units if 0 <= u < arr.shape[-1]]
                if len(keep) != len(self.units):
                    self._say_once(
                        f"units:{name}",
                        "rnn_monitor: layer %r has %d units; unit indices outside that range are ignored",
                        name,
                        arr.shape[-1],
                    )
                arr = arr[..., keep]
            acts[state] = arr
        out["activations"] = acts

        if self.gradients and "grad_abs_sum" in res:
            if not direct:
                self._say_once(
                    f"direct:{name}",
                    "rnn_monitor: layer %r: its cell's output is not its first state, so the "
                    "gradient through the recurrence cannot be isolated; only output gradients "
                    "are reported for it",
                    name,
                )
            count = res["count_t"]
            G = gstats.to_input_order(gstats.timestep_gradients(res["grad_abs_sum"], count), backward)
            O = gstats.to_input_order(gstats.timestep_gradients(res["out_abs_sum"], count), backward)
            g = gstats.to_input_order(gstats.timestep_grad_norm(res["grad_norm_sum"], count), backward)
            F = gstats.temporal_flow(res["flow_norm"], res["v_norm"], valid)
            horizon = gstats.grad_horizon(F, th.flow_floor)
            out.update(G=G if direct else None, O=O, g=g if direct else None, F=F if direct else None)
            record.set_scalar(name, "grad_norm", float(res["weight_grad_norm"]))
            if direct:
                record.set_scalar(name, "grad_horizon", horizon)
                record.set_array(name, "temporal_flow", F)
            record.set_array(name, "timesteps", np.array(gstats.valid_timesteps(valid)))
            if res["grad_nonfinite"]:
                record.nonfinite.append(NonFinite(name, "gradient", None, int(res["grad_nonfinite"])))
            if res["weight_grad_nonfinite"]:
                record.nonfinite.append(
                    NonFinite(name, "weight gradient", None, int(res["weight_grad_nonfinite"]))
                )
        return out

    def _queue_writes(self, info: RNNLayerInfo, out: dict, epoch: int, essentials: list, optional: list) -> None:
        name = info.name
        if out.get("G") is not None:
            essentials.append((metadata.TIMESTEP_GRADIENTS, out["G"].astype(np.float32), name, None))
        if out.get("O") is not None:
            essentials.append((metadata.OUTPUT_GRADIENTS, out["O"].astype(np.float32), name, None))
        if out.get("g") is not None:
            essentials.append((metadata.TIMESTEP_GRAD_NORM, out["g"].astype(np.float32), name, None))
        if out.get("F") is not None:
            essentials.append((metadata.TEMPORAL_FLOW, out["F"].astype(np.float32), name, None))
        if self.images and out.get("G") is not None:
            rgb = _gradient_image(out["G"])
            size = rgb.size // 4 + 500  # PNG estimate; the exact size is counted after writing
            description = (
                "mean_b |dL/dh_t|: time steps left to right (input order), units top to bottom; "
                "log colour scale (viridis, bright = large); grey = masked steps"
            )
            optional.append((0, size, ("image", f"{name}/timestep_gradients", rgb, description), f"{name} image"))
        order = {s: i for i, s in enumerate(_state_names(info))}
        for state, arr in out.get("activations", {}).items():
            with np.errstate(over="ignore"):  # beyond float16's 65504 is stored as +-Inf
                data = arr.astype(np.float16)  # the writer stores float16 packed
            priority = 1 + min(order.get(state, 9), 2)  # h, then c, then the gates
            optional.append(
                (priority, arr.size * 2 + 300, (metadata.ACTIVATIONS, data, name, state), f"{name} {state}")
            )

    def _tokens(self) -> Optional[np.ndarray]:
        x = _first_array(self.x)
        if not (isinstance(x, np.ndarray) and x.ndim == 2 and np.issubdtype(x.dtype, np.integer)):
            self._say_once(
                "tokens",
                "rnn_monitor: vocabulary given but the probe inputs are not integer token ids "
                "[batch, time]; the text view shows positions instead of tokens",
            )
            return None
        rows = x[: min(self.text_samples, x.shape[0])]
        vocab = self.vocabulary

        def decode(i: int) -> bytes:
            try:
                tok = vocab[int(i)]
            except (IndexError, KeyError, TypeError):
                tok = f"<{int(i)}>"
            return str(tok).encode("utf-8")

        return np.array([[decode(i) for i in row] for row in rows], dtype=object)


GATES_OF = {"lstm": ("i", "f", "g", "o"), "gru": ("z", "r", "hh"), "simple": (), "custom": ()}
SIGMOID_OF = {"lstm": ("i", "f", "o"), "gru": ("z", "r")}


def _state_names(info: RNNLayerInfo) -> tuple:
    base = {"lstm": ("h", "c"), "gru": ("h",), "simple": ("h",), "custom": ("h",)}[info.kind]
    return base + GATES_OF[info.kind]


def _gradient_image(G: np.ndarray) -> np.ndarray:
    """Units x time heatmap of G on a log scale; long sequences are averaged into <= 1024 columns."""
    data = np.asarray(G, dtype=np.float64).T  # [U, T]
    steps = data.shape[1]
    if steps > MAX_IMAGE_STEPS:
        bins = np.array_split(np.arange(steps), MAX_IMAGE_STEPS)
        with np.errstate(all="ignore"), _quiet():
            data = np.stack([np.nanmean(data[:, b], axis=1) for b in bins], axis=1)
    rgb = images.colorize(data, cmap="viridis", log=True, nan_rgb=images.MASKED_RGB)
    return images.upscale(rgb)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
