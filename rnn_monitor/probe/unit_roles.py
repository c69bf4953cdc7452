"""What each unit does, from the probe's own activations: the input it likes to see (average
input, after comprehend) and its periodic components (spectrum, after johndah), per layer and
logged epoch (docs/reference.md, "What each unit does"). The definitions are the pure numpy ones in
`rnn_monitor.stats`; this module picks their inputs, bins the spectrum for the log and draws the
two TensorBoard images (the Fourier heat surface, and for continuous inputs the average-input
grid).

Time order: a backward layer (go_backwards, the backward half of a Bidirectional) reads the
sequence from its end, so its input window and its spectrum are taken in its own reading order:
window position W-1 is always the token the unit has just read.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnn_monitor.logdir import images, metadata
from rnn_monitor.stats.average_input import average_input
from rnn_monitor.stats.periodicity import periodicity

MAX_GRID_UNITS = 64  # average-input grid image: at most this many units (the most active ones)


def probe_inputs(x: Any, vocabulary: Optional[Any]) -> tuple[Optional[np.ndarray], Optional[int], str]:
    """``(inputs, vocab_size, why_not)``: token ids [B, T] with their vocabulary size, continuous
    rows [B, T, D] with None, or (None, None, reason) for inputs the average input cannot use."""
    if isinstance(x, dict):
        if len(x) != 1:
            return None, None, "the model has several inputs"
        x = next(iter(x.values()))
    elif isinstance(x, list):
        if len(x) != 1:
            return None, None, "the model has several inputs"
        x = x[0]
    x = np.asarray(x)
    if x.ndim == 2 and np.issubdtype(x.dtype, np.integer):
        size = len(vocabulary) if vocabulary is not None else int(x.max()) + 1 if x.size else 1
        return x, max(size, int(x.max()) + 1 if x.size else 1), ""
    if x.ndim == 3 and np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32), None, ""
    return None, None, f"the probe inputs have shape {x.shape} and dtype {x.dtype} (need token ids [B, T] or rows [B, T, D])"


def describe_units(
    x: np.ndarray, h: np.ndarray, backward: bool, window: int, vocab_size: Optional[int]
) -> dict:
    """Average input [U, W, D] and periodicity of one layer's h [S, T, U] (input order, NaN masked)."""
    rows = np.asarray(x)[: h.shape[0], : h.shape[1]]
    acts = np.asarray(h, dtype=np.float32)
    if backward:
        rows, acts = np.flip(rows, axis=1), np.flip(acts, axis=1)
    window = max(1, min(int(window), acts.shape[1]))
    avg = average_input(rows, acts, window=window, vocab_size=vocab_size)
    spectrum = periodicity(acts)
    return {"average_input": np.asarray(avg, dtype=np.float32), "periodicity": spectrum}


def bin_spectrum(freqs: np.ndarray, power: np.ndarray, bins: int = metadata.MAX_SPECTRUM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """At most `bins` frequency bins (mean power per bin) for the log; unchanged when smaller."""
    freqs = np.asarray(freqs, dtype=np.float64)
    power = np.asarray(power, dtype=np.float64)
    if freqs.size <= bins:
        return freqs.astype(np.float32), power.astype(np.float32)
    groups = np.array_split(np.arange(freqs.size), bins)
    f = np.array([freqs[g].mean() for g in groups], dtype=np.float32)
    p = np.stack([power[:, g].mean(axis=1) for g in groups], axis=1).astype(np.float32)
    return f, p


def fourier_image(power: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The Fourier heat surface: one row per unit (most periodic first), frequency left to right,
    each row's power normalised to its own total, log colour scale."""
    power = np.asarray(power, dtype=np.float64)
    order = np.argsort(-np.nan_to_num(np.asarray(strength, dtype=np.float64), nan=-1.0), kind="stable")
    total = power.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, power / np.where(total > 0, total, 1.0), np.nan)[order]
    rgb = images.colorize(share, cmap="magma", log=True, nan_rgb=images.MASKED_RGB)
    return rgb


def average_input_grid(avg: np.ndarray, max_units: int = MAX_GRID_UNITS) -> np.ndarray:
    """Continuous inputs: one small image per unit (window positions down, input features
    across, diverging colour white at 0), the units with the largest average input first, in a
    grid with 1-pixel separators."""
    avg = np.asarray(avg, dtype=np.float64)
    n_units, w, d = avg.shape
    energy = np.nan_to_num(np.abs(avg)).sum(axis=(1, 2))
    order = np.argsort(-energy, kind="stable")[: min(max_units, n_units)]
    cols = int(np.ceil(np.sqrt(len(order))))
    rows = int(np.ceil(len(order) / cols)) if cols else 0
    bound = float(np.nanmax(np.abs(avg[order]))) if len(order) and np.isfinite(avg[order]).any() else 1.0
    grid = np.full((rows * (w + 1) + 1, cols * (d + 1) + 1, 3), images.SEPARATOR_RGB, dtype=np.uint8)
    for i, u in enumerate(order):
        r, c = divmod(i, cols)
        tile = images.colorize(avg[u], vmin=-bound or -1.0, vmax=bound or 1.0)
        grid[1 + r * (w + 1): 1 + r * (w + 1) + w, 1 + c * (d + 1): 1 + c * (d + 1) + d] = tile
    return grid


def queue_unit_writes(name: str, described: dict, continuous: bool, optional: list, with_images: bool) -> None:
    """Add one layer's unit descriptions to the optional writes: the spectrum and the average
    input after h and before c and the gates; their TensorBoard images (the dashboard draws the
    same from the tensors) last, when the byte cap leaves room."""
    spectrum = described["periodicity"]
    freqs, power = bin_spectrum(spectrum["freqs"], spectrum["power"])
    peak = np.stack([np.asarray(spectrum["peak_freq"], np.float32), np.asarray(spectrum["strength"], np.float32)])
    with np.errstate(over="ignore"):
        power16 = power.astype(np.float16)
        avg16 = described["average_input"].astype(np.float16)
    optional.append((1.2, power16.size * 2 + freqs.size * 4 + peak.size * 4 + 900, [
        (metadata.PERIODICITY, power16, name, None),
        (metadata.PERIODICITY_FREQS, freqs, name, None),
        (metadata.PERIODICITY_PEAK, peak, name, None),
    ], f"{name} periodicity"))
    avg = described["average_input"]
    if not continuous and avg.shape[2] > metadata.AVERAGE_INPUT_TOP:
        # Token inputs: each window position's K most weighted tokens (exact), not all D.
        k = metadata.AVERAGE_INPUT_TOP
        ids = np.argsort(-avg, axis=2, kind="stable")[:, :, :k]
        with np.errstate(over="ignore"):
            avg16 = np.take_along_axis(avg, ids, axis=2).astype(np.float16)
        ids = ids.astype(np.uint16 if avg.shape[2] <= 65535 else np.int32)
        item = [(metadata.AVERAGE_INPUT, avg16, name, None), (metadata.AVERAGE_INPUT_IDS, ids, name, None)]
        size = avg16.size * 2 + ids.nbytes + 600
    else:
        item, size = (metadata.AVERAGE_INPUT, avg16, name, None), avg16.size * 2 + 300
    optional.append((1.5, size, item, f"{name} average input"))
    if with_images and power.size:
        rgb = fourier_image(power, peak[1])
        optional.append((3.5, images.png_estimate(rgb), ("image", f"{name}/fourier", rgb,
                         "Fourier heat surface: units top to bottom (most periodic first), frequency "
                         "0 .. 0.5 cycles per step left to right; each unit's share of its power, log scale"),
                         f"{name} fourier image"))
        if continuous and described["average_input"].size:
            grid = average_input_grid(described["average_input"])
            optional.append((3.6, images.png_estimate(grid), ("image", f"{name}/average_input", grid,
                             "the input each unit likes to see: activation-weighted mean of the input "
                             "window before each step (rows: window positions, oldest at top; columns: "
                             "input features); one tile per unit, most active first; red > 0 > blue"),
                             f"{name} average input image"))
