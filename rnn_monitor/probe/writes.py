"""What the probe writes each logged epoch, and in which order under the byte cap: the gradient
tensors always, then tokens, the gradient heatmap image and the activations while they fit."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import numpy as np

from rnn_monitor.logdir import images, metadata
from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.probe.data import first_array
from rnn_monitor.probe.layer_stats import LayerStats, state_names
from rnn_monitor.stats import gradients as gstats

MAX_IMAGE_STEPS = 1024


def queue_writes(info: RNNLayerInfo, out: LayerStats, essentials: list, optional: list, with_image: bool,
                 time_bin: int = 1) -> None:
    """Add one layer's writes: gradient tensors to `essentials` (always written), the heatmap
    image and the activations to `optional` as ``(priority, size estimate, item, label)``.
    G and the output gradients are written as means over `time_bin` consecutive steps (1: every
    step; the tensors' metadata says ``time_bin``); the image is drawn from the full G."""
    name = info.name
    binned = {"time_bin": int(time_bin)} if time_bin > 1 else {}
    if out.G is not None:
        G = gstats.bin_time(out.G.astype(np.float32), time_bin)
        essentials.append((metadata.TIMESTEP_GRADIENTS, G, name, None, binned))
    if out.O is not None:
        O = gstats.bin_time(out.O.astype(np.float32), time_bin)
        essentials.append((metadata.OUTPUT_GRADIENTS, O, name, None, binned))
    if out.g is not None:
        essentials.append((metadata.TIMESTEP_GRAD_NORM, out.g.astype(np.float32), name, None, {}))
    if out.F is not None:
        essentials.append((metadata.TEMPORAL_FLOW, out.F.astype(np.float32), name, None, {}))
    if with_image and out.G is not None:
        rgb = gradient_image(out.G)
        size = images.png_estimate(rgb)  # PNG estimate; the exact size is counted after writing
        description = (
            "mean_b |dL/dh_t|: time steps left to right (input order), units top to bottom; "
            "log colour scale (viridis, bright = large); grey = masked steps"
        )
        optional.append((0, size, ("image", f"{name}/timestep_gradients", rgb, description), f"{name} image"))
    order = {s: i for i, s in enumerate(state_names(info))}
    for state, arr in out.activations.items():
        with np.errstate(over="ignore"):  # beyond float16's 65504 is stored as +-Inf
            data = arr.astype(np.float16)  # the writer stores float16 packed
        priority = 1 + min(order.get(state, 9), 2)  # h, then c, then the gates
        optional.append(
            (priority, arr.size * 2 + 300, (metadata.ACTIVATIONS, data, name, state), f"{name} {state}")
        )


def encode_tokens(x: Any, vocabulary: Any, text_samples: int, say_once: Callable[..., None]) -> Optional[np.ndarray]:
    """The first `text_samples` probe sequences as UTF-8 token strings, or None (and say why)."""
    x = first_array(x)
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and np.issubdtype(x.dtype, np.integer)):
        say_once(
            "tokens",
            "rnn_monitor: vocabulary given but the probe inputs are not integer token ids "
            "[batch, time]; the text view shows positions instead of tokens",
        )
        return None
    rows = x[: min(text_samples, x.shape[0])]
    vocab = vocabulary

    missing = object()

    def token(i: int) -> Any:
        try:
            return vocab[int(i)]
        except (IndexError, KeyError, TypeError):
            return missing

    past = [int(i) for i in np.unique(x) if token(i) is missing]
    if past:
        say_once(
            "tokens-past",
            "rnn_monitor: probe token ids %s are not in the vocabulary (%s entries); they show as <id> "
            "in the text view (pass the vocabulary the ids were made with)",
            ", ".join(map(str, past[:5])) + (", ..." if len(past) > 5 else ""),
            len(vocab) if hasattr(vocab, "__len__") else "?",
        )

    def decode(i: int) -> bytes:
        tok = token(i)
        return str(tok if tok is not missing else f"<{int(i)}>").encode("utf-8")

    return np.array([[decode(i) for i in row] for row in rows], dtype=object)


def gradient_image(G: np.ndarray) -> np.ndarray:
    """Units x time heatmap of G on a log scale; long sequences are averaged into <= 1024 columns."""
    data = np.asarray(G, dtype=np.float64).T  # [U, T]
    steps = data.shape[1]
    if steps > MAX_IMAGE_STEPS:
        bins = np.array_split(np.arange(steps), MAX_IMAGE_STEPS)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            data = np.stack([np.nanmean(data[:, b], axis=1) for b in bins], axis=1)
    rgb = images.colorize(data, cmap="viridis", log=True, nan_rgb=images.MASKED_RGB)
    return rgb



def write_within_cap(
    writer: Any, epoch: int, essentials: list, optional: list, cap: Optional[int], start_bytes: int
) -> tuple[list[str], bool]:
    """Write every essential item, then the optional ones by priority while the epoch's bytes
    (counted from `start_bytes`) stay under `cap`. An optional item is an image, one plugin
    tensor ``(kind, data, layer, state)``, or a list of tensors written together.
    Returns (labels left out, tokens written)."""
    for kind, data, layer, state, extra in essentials:
        writer.plugin_tensor(kind, data, epoch, layer=layer, state=state, **extra)
    skipped: list[str] = []
    wrote_tokens = False
    for _priority, size, item, label in sorted(optional, key=lambda o: o[0]):
        used = writer.bytes_this_step - start_bytes
        if cap is not None and used + size > cap:
            skipped.append(label)
            continue
        if isinstance(item, tuple) and item[0] == "image":
            _, tag, rgb, description = item
            writer.image(tag, rgb, epoch, description=description)
            continue
        for kind, data, layer, state in item if isinstance(item, list) else [item]:
            writer.plugin_tensor(kind, data, epoch, layer=layer, state=state)
            wrote_tokens = wrote_tokens or kind == metadata.TOKENS
    return skipped, wrote_tokens
