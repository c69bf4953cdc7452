"""Write a synthetic RNN Monitor log exactly as `rnn_monitor.logdir.metadata` lays it out.

For the dashboard's tests, benchmark and screenshots when no real training run is wanted:
every plugin tensor kind (manifest, tokens, alerts, findings, timestep_gradients, output_gradients,
timestep_grad_norm, temporal_flow, activations per state) and the standard scalars (health
ratios, grad_norm, grad_horizon, per-gate l2 / update_ratio / nonfinite), with plausible
shapes and dynamics (gradient reaching further back as epochs pass, a few units that respond
to quotes, spaces and newlines in Python source text).

    python benchmarks/make_synthetic_log.py OUT_DIR --epochs 100 --layers 4 --timesteps 200 --units 256
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from typing import Optional, Sequence

import numpy as np

from rnn_monitor.logdir import metadata
from rnn_monitor.logdir.writer import SummaryWriter
from rnn_monitor.stats.gradients import bin_time

GATES = {"lstm": ["i", "f", "c", "o"], "gru": ["z", "r", "h"], "simple_rnn": ["h"]}
THRESHOLDS = {
    "dead_std": 0.001, "exploding_state": 100.0, "saturation_tanh": 0.99,
    "saturation_sigmoid_low": 0.1, "saturation_sigmoid_high": 0.9, "saturation_fraction": 0.95,
    "flow_floor": 0.001, "horizon_fraction": 0.1, "horizon_min": 2.0,
    "vanishing_grad_norm": 1e-07, "exploding_flow": 1000.0, "exploding_grad_norm": 1000.0,
    "dead_alert_ratio": 0.5, "saturation_alert_ratio": 0.5, "patience": 2,
}


def use_fast_crc() -> bool:
    """Checksum event records with google-crc32c (C, GB/s) when it is installed.

    TensorBoard's event writer computes each record's CRC32C in pure Python (a few MB/s on this
    machine), which dominates writing a multi-GB log (100 epochs x 4 layers x T=1000 x 512 units:
    hours instead of minutes). The bytes on disk are identical. Returns whether it switched.
    """
    try:
        import google_crc32c
    except ImportError:
        return False
    from tensorboard.summary.writer import record_writer

    def masked_crc32c(data: bytes) -> int:
        crc = google_crc32c.value(bytes(data))
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    record_writer.masked_crc32c = masked_crc32c
    return True


def default_layers(n: int) -> list[tuple[str, str, str]]:
    """(name, kind, direction) for `n` layers: lstm, a bidirectional GRU's halves, more lstms."""
    layers = [("lstm", "lstm", "forward"), ("bi_gru/forward", "gru", "forward"),
              ("bi_gru/backward", "gru", "backward")]
    i = 2
    while len(layers) < n:
        layers.append((f"lstm_{i}", "lstm", "forward"))
        i += 1
    return layers[:n]


def source_text(length: int) -> str:
    """Python standard-library source (json.encoder), repeated to `length` characters."""
    import json.encoder as enc

    text = inspect.getsource(enc)
    while len(text) < length:
        text += text
    return text[:length]


def _char_features(chars: np.ndarray) -> dict[str, np.ndarray]:
    """Per-position features of the text: inside a string literal, space, newline, letter."""
    quote = np.zeros(chars.shape, dtype=np.float32)
    for s in range(chars.shape[0]):
        inside = False
        for t, ch in enumerate(chars[s]):
            if ch in "\"'":
                inside = not inside
            quote[s, t] = 1.0 if inside else 0.0
    return {
        "quote": quote,
        "space": (chars == " ").astype(np.float32),
        "newline": (chars == "\n").astype(np.float32),
        "alpha": np.vectorize(str.isalpha, otypes=[bool])(chars).astype(np.float32),
    }


def _tensor(writer: SummaryWriter, kind: str, data: np.ndarray, step: int, layer=None, state=None,
            float16_bytes: bool = False, **extra) -> None:
    """`writer.plugin_tensor`, or with `float16_bytes` the same tensor with its float16 data as
    raw little-endian bytes (``tensor_content``) instead of ``half_val`` varints: the same
    TensorProto to every reader, ~250x faster to decode (see docs/dashboard.md)."""
    if not (float16_bytes and data.dtype == np.float16):
        writer.plugin_tensor(kind, data, step, layer=layer, state=state, **extra)
        return
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_HALF,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(n)) for n in data.shape]
        ),
        tensor_content=np.ascontiguousarray(data, dtype="<f2").tobytes(),
    )
    md = metadata.create_summary_metadata(kind, layer=layer, state=state)
    tag = metadata.plugin_tag(kind, layer=layer, state=state)
    writer._add(summary_pb2.Summary.Value(tag=tag, metadata=md, tensor=proto), step)


def write_log(
    log_dir: str,
    epochs: int = 6,
    n_layers: int = 3,
    timesteps: int = 60,
    units: int = 32,
    text_samples: int = 3,
    states: Optional[Sequence[str]] = None,
    alerts: bool = True,
    every: int = 1,
    seed: int = 0,
    layers: Optional[list[tuple[str, str, str]]] = None,
    float16_bytes: bool = False,
    gradients_float32: bool = False,
    time_bin: int = 1,
) -> str:
    """Write the log under ``<log_dir>/rnn_monitor``; returns that run directory.

    `gradients_float32` stores G and the output gradients in float32, as `RNNMonitor` does
    (default float16: smaller, as the earlier benchmarks ran). `time_bin` > 1 writes them as
    means over that many steps, as `RNNMonitor` does for long sequences under its byte cap.
    """
    grad_dtype = np.float32 if gradients_float32 else np.float16
    rng = np.random.default_rng(seed)
    layers = layers or default_layers(n_layers)
    run_dir = os.path.join(log_dir, metadata.RUN_SUBDIR)
    os.makedirs(run_dir, exist_ok=True)
    writer = SummaryWriter(run_dir)
    manifest = {
        "version": metadata.CONTENT_VERSION,
        "layers": [
            {"name": name, "kind": kind, "class": kind.upper(), "cell": kind.upper() + "Cell",
             "direction": direction, "units": units, "gates": GATES[kind],
             "activation": "tanh", "recurrent_activation": "sigmoid", "return_sequences": True,
             "weights": {}}
            for name, kind, direction in layers
        ],
        "every": every,
        "probe": {"batch": 16, "timesteps": timesteps, "text_samples": text_samples,
                  "synthetic": True},
        "thresholds": THRESHOLDS,
    }
    writer.json_tensor(metadata.MANIFEST, manifest, step=0)

    text = source_text(text_samples * timesteps)
    chars = np.array(list(text), dtype=object).reshape(text_samples, timesteps)
    writer.plugin_tensor(metadata.TOKENS, np.vectorize(lambda c: c.encode("utf-8"), otypes=[object])(chars), 0)
    feats = _char_features(chars.astype(str))

    t = np.arange(timesteps, dtype=np.float64)
    unit_scale = rng.lognormal(0.0, 0.6, size=units)
    noise_base = rng.normal(size=(text_samples, timesteps, units)).astype(np.float32)
    prev_l2: dict[tuple, float] = {}
    logged = list(range(0, epochs, every))
    if logged[-1] != epochs - 1:
        logged.append(epochs - 1)
    for epoch in logged:
        progress = (epoch + 1) / epochs
        for li, (name, kind, direction) in enumerate(layers):
            # Gradient through time: decays away from the end (the loss sits at the end);
            # the decay length grows as the layer learns.
            decay = 3.0 + 0.35 * timesteps * progress * (1.0 + 0.3 * li)
            back = (timesteps - 1 - t) if direction == "forward" else t
            g = 0.05 * np.exp(-back / decay) * (1 + 0.1 * rng.standard_normal(timesteps)) + 1e-9
            writer.plugin_tensor(metadata.TIMESTEP_GRAD_NORM, g.astype(np.float32), epoch, layer=name)
            G = (g[:, None] * unit_scale[None, :] / np.sqrt(units)
                 * rng.lognormal(0.0, 0.3, size=(timesteps, units)))
            binned = {"time_bin": time_bin} if time_bin > 1 else {}
            _tensor(writer, metadata.TIMESTEP_GRADIENTS, bin_time(G, time_bin).astype(grad_dtype), epoch,
                    layer=name, float16_bytes=float16_bytes, **binned)
            out = G * (0.3 + 0.2 * rng.random((timesteps, units)))
            _tensor(writer, metadata.OUTPUT_GRADIENTS, bin_time(out, time_bin).astype(grad_dtype), epoch,
                    layer=name, float16_bytes=float16_bytes, **binned)
            K = timesteps
            flow = np.exp(-np.arange(K) / decay)
            writer.plugin_tensor(metadata.TEMPORAL_FLOW, flow.astype(np.float32), epoch, layer=name)
            horizon = int(np.sum(np.cumprod(flow >= THRESHOLDS["flow_floor"])) - 1)

            # Activations: a few feature-detector units, the rest smooth noise.
            pre = 0.6 * noise_base * (1.0 - 0.5 * progress)
            pre[:, :, 0 % units] += 2.5 * progress * (feats["quote"] - 0.4)
            pre[:, :, 1 % units] += 3.0 * progress * (feats["space"] - 0.2)
            pre[:, :, 2 % units] -= 3.0 * progress * (feats["newline"] - 0.05)
            pre[:, :, 3 % units] += 1.5 * progress * (feats["alpha"] - 0.5)
            h = np.tanh(pre + 0.05 * li)
            state_values = {"h": h, "c": 1.8 * pre}
            for gi, gate in enumerate(GATES[kind]):
                state_values.setdefault(gate, 1 / (1 + np.exp(-(pre * (0.5 + 0.2 * gi)))))
            wanted = list(states) if states is not None else (["h", "c"] if kind == "lstm" else ["h"]) + GATES[kind]
            seen = set()
            for state in wanted:
                if state in seen or state not in state_values:
                    continue
                seen.add(state)
                _tensor(writer, metadata.ACTIVATIONS, state_values[state].astype(np.float16),
                        epoch, layer=name, state=state, float16_bytes=float16_bytes)

            # Standard scalars.
            scal = {
                "dead_ratio": max(0.0, 0.2 - 0.2 * progress) if li == 1 else 0.0,
                "exploding_ratio": 0.0,
                "saturated_ratio": 0.05 + 0.1 * progress,
                "grad_norm": float(np.linalg.norm(g)),
                "grad_horizon": float(horizon),
            }
            for role in metadata.WEIGHT_ROLES:
                for gi, gate in enumerate(GATES[kind]):
                    l2 = (4.0 + gi + (2.0 if role == "recurrent_kernel" else 0.0)) * (1 + 0.4 * progress)
                    if role == "bias":
                        l2 = 0.5 + 0.8 * progress * (gi + 1) / 4
                    key = (name, role, gate)
                    upd = abs(l2 - prev_l2[key]) / prev_l2[key] + 0.002 if key in prev_l2 else 0.0
                    prev_l2[key] = l2
                    scal[metadata.gate_scalar_name(role, gate, "l2")] = l2
                    scal[metadata.gate_scalar_name(role, gate, "update_ratio")] = upd
                    scal[metadata.gate_scalar_name(role, gate, "nonfinite")] = 0.0
            for sname, value in scal.items():
                writer.scalar(metadata.scalar_tag(name, sname), value, epoch)
        if alerts:
            raised = []
            if epoch == logged[min(1, len(logged) - 1)]:
                raised.append({
                    "epoch": epoch, "layer": layers[-1][0], "kind": "vanishing",
                    "message": f"{layers[-1][0]}: the gradient {timesteps // 2} of {timesteps} steps back "
                               "is 3e-06 of its value at the last step (flow_mid < 0.0001) and the "
                               "loss is not falling",
                    "value": 3e-6, "threshold": 1e-4, "metric": "flow_mid",
                })
            if len(logged) > 3 and epoch == logged[3]:
                raised.append({
                    "epoch": epoch, "layer": layers[min(1, len(layers) - 1)][0], "kind": "dead",
                    "message": "20% of units are dead (output std < 0.001)",
                    "value": 0.2, "threshold": 0.5, "metric": "dead_ratio",
                })
            writer.json_tensor(metadata.ALERTS, raised, epoch)
            # Findings: the first layer's units are mostly saturated for the first three logged
            # epochs while the run learns (raised once, then active: its 0/1 scalar says so).
            first = layers[0][0]
            active = epoch in logged[:3]
            writer.json_tensor(metadata.FINDINGS, [{
                "epoch": epoch, "layer": first, "kind": "saturation",
                "message": f"{first}: 62% of units are saturated while gradient flows and the "
                           "loss falls (a finding, not an alert)",
                "value": 0.62, "threshold": 0.5, "metric": "saturated_ratio",
            }] if epoch == logged[0] else [], epoch)
            writer.scalar(metadata.scalar_tag(first, "finding/saturation"), float(active), epoch)
        writer.flush()
    writer.close()
    return run_dir


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log_dir")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--timesteps", type=int, default=200)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--text-samples", type=int, default=4)
    parser.add_argument("--states", default="", help="comma-separated activation states (default: all)")
    parser.add_argument("--float16-bytes", action="store_true",
                        help="store float16 tensors as raw bytes (tensor_content), not half_val")
    parser.add_argument("--gradients-float32", action="store_true",
                        help="G and output gradients in float32, as RNNMonitor writes them")
    parser.add_argument("--time-bin", type=int, default=1,
                        help="G and output gradients as means over this many steps (RNNMonitor's "
                             "default cap picks 15 at 4 layers x T=1000 x 512 units)")
    args = parser.parse_args(argv)
    use_fast_crc()
    start = time.time()
    run_dir = write_log(
        args.log_dir, epochs=args.epochs, n_layers=args.layers, timesteps=args.timesteps,
        units=args.units, text_samples=args.text_samples,
        states=[s for s in args.states.split(",") if s] or None, float16_bytes=args.float16_bytes,
        gradients_float32=args.gradients_float32, time_bin=args.time_bin,
    )
    size = sum(os.path.getsize(os.path.join(run_dir, f)) for f in os.listdir(run_dir))
    print(json.dumps({"run_dir": run_dir, "bytes": size, "seconds": round(time.time() - start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
