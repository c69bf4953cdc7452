"""The on-disk contract between the writer, the reader and the TensorBoard plugin.

TensorFlow-free on purpose: the plugin (which runs inside TensorBoard, often without
TensorFlow) and `load_run` import this module; the callback's writer imports it too, so
tag names, the plugin name and the content version live in exactly one place.

Layout of what `RNNMonitor(log_dir)` writes, all in ``<log_dir>/rnn_monitor/`` (one
TensorBoard run beside Keras's own ``train`` / ``validation`` runs):

* standard scalars, tag ``<layer>/<scalar name>`` (see `scalar_tag`), and run-wide ones,
  tag ``_run/<name>`` (see `run_scalar_tag`);
* standard histograms, tag ``<layer>/<role>/<gate>`` (role: kernel, recurrent_kernel, bias);
* standard images, tag ``<layer>/weights`` and ``<layer>/timestep_gradients``;
* a standard text summary ``alerts`` (active alerts, then active findings);
* plugin tensors (plugin name `PLUGIN_NAME`, ``data_class`` TENSOR), one per kind below.
  Per-timestep arrays are in input order (position in the input sequence) for every layer,
  backward halves included; the temporal flow F[k] counts steps back from the layer's last
  computed state, in its own processing order (see `rnn_monitor.probe.probe_monitor`).
  Per layer: tag ``<layer>/_rnn_monitor/<kind>``; activations add ``/<state>``.
  Run-wide: tag ``_rnn_monitor/<kind>``. The summary metadata's content is JSON:
  ``{"version": CONTENT_VERSION, "kind": ..., "layer": ..., "state": ...}``.

The TensorBoard step is always the Keras epoch (0-based).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from tensorboard.compat.proto import summary_pb2

PLUGIN_NAME = "rnn_monitor"
CONTENT_VERSION = 1
RUN_SUBDIR = "rnn_monitor"
PREFIX = "_rnn_monitor"

# Run-wide plugin tensors.
MANIFEST = "manifest"  # string scalar: JSON, see `manifest` in callback (layers, gates, probe)
TOKENS = "tokens"  # string [S, T]: decoded probe tokens for the text view
ALERTS = "alerts"  # string scalar: JSON list of alert records raised at that epoch
# string scalar: JSON list of finding records raised at that epoch, the same shape as alerts
# ({epoch, layer, kind, message, value, threshold, metric}; kind in alerts.kinds.FINDING_KINDS,
# layer "model" for run-wide ones). Findings are measurements worth knowing, never alerts.
FINDINGS = "findings"

# Per-layer plugin tensors, one per logged epoch.
# G and the output gradients are float32, not float16: vanishing gradients (1e-8 .. 1e-30) are
# exactly what they must show, and float16 flushes everything below 6e-8 to 0.
TIMESTEP_GRADIENTS = "timestep_gradients"  # float32 [T, U]: G[t,u] = mean_b |dL/dh_t|, NaN masked
OUTPUT_GRADIENTS = "output_gradients"  # float32 [T, U]: mean_b |dL/d(out_t)| (direct path)
TIMESTEP_GRAD_NORM = "timestep_grad_norm"  # float32 [T]: g[t] = mean_b ||dL/dh_t||
TEMPORAL_FLOW = "temporal_flow"  # float32 [K]: F[k], k = 0 .. K-1
# ACTIVATIONS: float16 [S, T, U], one tensor per state (the tag's last part), for the first S
# probe sequences (NaN at masked steps), in input order; U = the chosen `units` (default all).
# State names: every cell "h" (its output); LSTM also "c" (cell state) and gates "i", "f",
# "g" (the candidate c~, named g so it does not clash with c), "o"; GRU gates "z", "r", "hh"
# (the candidate h~). Gates are left out for a layer whose rebuilt gates disagree with the cell.
ACTIVATIONS = "activations"  # float16 [S, T, U]: one state (h, c, or a gate) for S sequences


# What each unit does (docs/reference.md, "What each unit does"), per layer and logged epoch, from the h of
# the first `unit_samples` probe sequences (input order; backward layers read in their own order,
# see `rnn_monitor.probe.unit_roles`):
AVERAGE_INPUT = "average_input"  # float16 [U, W, D]: activation-weighted mean input window, or
# for token inputs with a vocabulary larger than AVERAGE_INPUT_TOP: float16 [U, W, K], each
# window position's K most weighted tokens, their ids in AVERAGE_INPUT_IDS (see dense_average_input)
AVERAGE_INPUT_IDS = "average_input_ids"  # uint16/int32 [U, W, K]: token ids of AVERAGE_INPUT's K
AVERAGE_INPUT_TOP = 12
PERIODICITY = "periodicity"  # float16 [U, F']: power spectrum, F' <= MAX_SPECTRUM_BINS bins
PERIODICITY_FREQS = "periodicity_freqs"  # float32 [F']: bin centres, cycles per step
PERIODICITY_PEAK = "periodicity_peak"  # float32 [2, U]: peak_freq, strength (full resolution)
# Generated text (RNNMonitor(generate={...})): run-wide tokens, per-layer activations per state.
GENERATED_TOKENS = "generated_tokens"  # string [N]: seed + generated tokens, decoded
GENERATED_ACTIVATIONS = "generated_activations"  # float16 [N, U] per state: state after token n
# Classifiers (output not per timestep): run-wide, for the text-view sequences.
TOKEN_IMPORTANCE = "token_importance"  # float32 [S, T]: occlusion score drop, NaN at padding
PREDICTION_AS_READ = "prediction_as_read"  # float32 [S, T]: score after reading t+1 tokens
IMPORTANCE_INFO = "importance_info"  # string scalar: JSON {target, score, decision, fill, window}
MAX_SPECTRUM_BINS = 128

LAYER_KINDS = (TIMESTEP_GRADIENTS, OUTPUT_GRADIENTS, TIMESTEP_GRAD_NORM, TEMPORAL_FLOW, ACTIVATIONS,
               AVERAGE_INPUT, AVERAGE_INPUT_IDS, PERIODICITY, PERIODICITY_FREQS, PERIODICITY_PEAK, GENERATED_ACTIVATIONS)
RUN_KINDS = (MANIFEST, TOKENS, ALERTS, FINDINGS, GENERATED_TOKENS, TOKEN_IMPORTANCE, PREDICTION_AS_READ,
             IMPORTANCE_INFO)

# Scalar names written per layer (the gate-wise ones are built by `gate_scalar_name`).
HEALTH_SCALARS = (
    "dead_ratio",
    "exploding_ratio",
    "saturated_ratio",
    "grad_norm",
    "grad_horizon",
)
# Per layer, with probe labels: what the alert rules read beyond the health scalars.
RULE_SCALARS = (
    "flow_mid",  # F at k = T // 2: the level the vanishing rule reads
    "grad_ratio",  # g at the first processed step / g at the last one
)
# Per layer, every logged epoch: finding/<kind> = 1 while that finding is active, else 0
# (kinds: short_memory, saturation, exploding_units).
WEIGHT_ROLES = ("kernel", "recurrent_kernel", "bias")
GATE_STATS = ("l2", "update_ratio", "nonfinite")


# Run-wide standard scalars: tag ``_run/<name>``: probe_loss, constant_loss (the probe's
# constant-prediction loss), loss_ratio (their ratio) and finding/stalled (0/1).
RUN_SCALARS = "_run"


def run_scalar_tag(name: str) -> str:
    """Tag of a run-wide scalar, e.g. ``_run/loss_ratio``."""
    return f"{RUN_SCALARS}/{name}"


def plugin_tag(kind: str, layer: Optional[str] = None, state: Optional[str] = None) -> str:
    """Tag of a plugin tensor: run-wide when `layer` is None."""
    if layer is None:
        return f"{PREFIX}/{kind}"
    tag = f"{layer}/{PREFIX}/{kind}"
    return f"{tag}/{state}" if state else tag


def scalar_tag(layer: str, name: str) -> str:
    """Tag of a standard scalar, e.g. ``lstm/kernel/i/l2``: grouped by layer in TensorBoard."""
    return f"{layer}/{name}"


def gate_scalar_name(role: str, gate: str, stat: str) -> str:
    """``{kernel|recurrent_kernel|bias}/{gate}/{l2|update_ratio|nonfinite}``."""
    return f"{role}/{gate}/{stat}"


def create_summary_metadata(
    kind: str, layer: Optional[str] = None, state: Optional[str] = None, **extra: Any
) -> summary_pb2.SummaryMetadata:
    """SummaryMetadata for a plugin tensor; `data_class` TENSOR so TensorBoard keeps it."""
    content: dict[str, Any] = {"version": CONTENT_VERSION, "kind": kind}
    if layer is not None:
        content["layer"] = layer
    if state is not None:
        content["state"] = state
    content.update(extra)
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(content).encode("utf-8")
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


def parse_plugin_content(content: bytes) -> dict[str, Any]:
    """Decode a plugin tensor's metadata content; raises ValueError for unknown versions."""
    if not isinstance(content, (bytes, bytearray)):
        raise TypeError("plugin content must be bytes")
    try:
        parsed = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not rnn_monitor plugin content: {exc}") from exc
    if not isinstance(parsed, dict) or "kind" not in parsed:
        raise ValueError("not rnn_monitor plugin content: no 'kind'")
    version = parsed.get("version", 0)
    if version > CONTENT_VERSION:
        raise ValueError(
            f"log written by a newer rnn-monitor (content version {version}, "
            f"this one reads up to {CONTENT_VERSION}): upgrade rnn-monitor"
        )
    return parsed


def split_scalar_tag(tag: str, layers: Iterable[str]) -> Optional[tuple[str, str]]:
    """Split ``<layer>/<name>`` using the known layer names (longest match wins).

    Layer names may contain ``/`` (``bi/forward``, ``encoder/lstm``), so the split needs them.
    """
    best = None
    for layer in layers:
        if tag.startswith(layer + "/") and (best is None or len(layer) > len(best)):
            best = layer
    if best is None:
        return None
    return best, tag[len(best) + 1 :]


def decode_text(value: Any) -> str:
    """A string written by the writer, as the reader or the plugin gets it back: a numpy
    string scalar or array element, bytes, or a string TensorProto (its first value)."""
    if hasattr(value, "string_val"):  # a TensorProto
        value = value.string_val[0]
    elif hasattr(value, "shape") and hasattr(value, "ravel"):  # a numpy array
        value = value.item() if value.shape == () else value.ravel()[0]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def activation_unit_ids(manifest: dict, layer_name: str, n_units: int) -> list[int]:
    """Which of the layer's units the activation columns are: ``RNNMonitor(units=[...])``
    keeps a subset (those within the layer's size), in the order given; otherwise all."""
    probe = manifest.get("probe") if isinstance(manifest.get("probe"), dict) else {}
    chosen = probe.get("units") if probe else None
    size = None
    for info in manifest.get("layers", []):
        if isinstance(info, dict) and info.get("name") == layer_name and isinstance(info.get("units"), int):
            size = info["units"]
    if isinstance(chosen, list) and all(isinstance(u, int) for u in chosen):
        keep = [u for u in chosen if 0 <= u and (size is None or u < size)]
        if len(keep) == n_units:
            return keep
    return list(range(n_units))


def dense_average_input(values: Any, ids: Any = None, depth: Optional[int] = None) -> Any:
    """The average input as [U, W, D] from what the log holds: `values` itself when dense, else the
    top-K `values` [U, W, K] scattered at `ids` into zeros of depth `depth` (the vocabulary size):
    the K largest entries of each window position are exact, the others are left at 0."""
    import numpy as np

    values = np.asarray(values, dtype=np.float32)
    if ids is None:
        return values
    ids = np.asarray(ids, dtype=np.int64)
    depth = int(depth) if depth else int(ids.max()) + 1 if ids.size else 0
    out = np.zeros(values.shape[:2] + (depth,), dtype=np.float32)
    np.put_along_axis(out, ids, values, axis=2)
    return out
