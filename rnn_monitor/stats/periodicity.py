"""Periodic units (after johndah's Fourier neuron detection): the power spectrum of each unit's
activation over time, its peak frequency and how much of the power the peak holds. Pure numpy.

Definition: per sequence remove each unit's mean over time,
``|rfft|^2`` along time, mean over sequences, the DC term dropped; ``freqs`` in cycles per step;
``strength = max power / total power``.

Masked steps (NaN) are handled by the common valid length: the spectrum uses the first L steps
of every sequence that is valid on all of its first L steps, with L the longest length that
keeps at least half of the sequences (so one long sequence does not decide alone, and padding
never enters a transform). A sequence whose first step is masked is left out.
"""

from __future__ import annotations

import numpy as np

PERIODIC_STRENGTH = 0.2  # a unit is listed as periodic when its peak holds more of the power
MIN_STEPS = 4  # fewer valid steps than this: no spectrum (all NaN)
MIN_CYCLES = 2  # a periodic unit repeats at least this often within the spectrum's length


def common_length(activations: np.ndarray) -> tuple[int, np.ndarray]:
    """``(L, rows)``: the spectrum's length and the sequences valid on all of their first L steps."""
    acts = np.asarray(activations)
    finite = np.isfinite(acts).all(axis=2)  # [B, T]
    prefix = np.cumprod(finite, axis=1).sum(axis=1)  # valid prefix length per sequence
    if prefix.size == 0 or prefix.max() == 0:
        return 0, np.zeros(0, dtype=int)
    ordered = np.sort(prefix)[::-1]
    length = int(ordered[(len(ordered) - 1) // 2])  # kept by at least half of the sequences
    return length, np.nonzero(prefix >= length)[0]


def periodicity(activations: np.ndarray) -> dict:
    """``{freqs [F], power [units, F], peak_freq [units], strength [units], length}`` of
    activations [B, T, units] (NaN where masked); F = L // 2 frequencies k / L, k = 1 .. L//2."""
    acts = np.asarray(activations, dtype=np.float64)
    if acts.ndim != 3:
        raise ValueError(f"activations must be [batch, time, units], got shape {acts.shape}")
    units = acts.shape[2]
    length, rows = common_length(acts)
    if length < MIN_STEPS:
        return {
            "freqs": np.zeros(0), "power": np.zeros((units, 0)), "peak_freq": np.full(units, np.nan),
            "strength": np.full(units, np.nan), "length": int(length),
        }
    seq = acts[rows, :length, :]  # [B', L, U]
    seq = seq - seq.mean(axis=1, keepdims=True)
    spectrum = np.abs(np.fft.rfft(seq, axis=1)) ** 2  # [B', L//2 + 1, U]
    power = spectrum.mean(axis=0)[1:].T  # [U, F], DC dropped
    freqs = np.fft.rfftfreq(length)[1:]
    total = power.sum(axis=1)
    peak = np.argmax(power, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        strength = np.where(total > 0, power[np.arange(units), peak] / np.where(total > 0, total, 1.0), np.nan)
    peak_freq = np.where(total > 0, freqs[peak], np.nan)
    return {"freqs": freqs, "power": power, "peak_freq": peak_freq, "strength": strength, "length": int(length)}


def periodic_units(result: dict, min_strength: float = PERIODIC_STRENGTH,
                   min_cycles: float = MIN_CYCLES) -> list[tuple[int, float, float]]:
    """``[(unit, peak_freq, strength)]`` of the units whose peak holds more than `min_strength`
    of their power and repeats at least `min_cycles` times in the spectrum's length (a slow
    drift over the window is not a period), strongest first."""
    strength = np.asarray(result["strength"], dtype=np.float64)
    peak = np.asarray(result["peak_freq"], dtype=np.float64)
    freqs = np.asarray(result.get("freqs", []), dtype=np.float64)
    length = result.get("length") or (1.0 / freqs[0] if freqs.size and freqs[0] > 0 else 0)
    min_freq = min_cycles / length if length else 0.0
    keep = np.nonzero(np.isfinite(strength) & (strength > min_strength) & (peak >= min_freq - 1e-12))[0]
    keep = keep[np.argsort(-strength[keep], kind="stable")]
    return [(int(u), float(peak[u]), float(strength[u])) for u in keep]
