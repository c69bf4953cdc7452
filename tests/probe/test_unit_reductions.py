"""The probe's per-unit reductions (`rnn_monitor.probe.unit_reductions`) on a recurrence recorded
by stepping a stock cell by hand over padded sequences, in chunks of two steps (the last chunk
overlapping the one before): every accumulator against numpy on the full arrays, the gates
rebuilt from the saved weights, the first sequences of each state."""

import keras
import numpy as np
import pytest

from rnn_monitor.config import Thresholds
from rnn_monitor.probe import unit_reductions
from rnn_monitor.probe.graph import ProbeSettings
from loop_records import stepped_record

pytestmark = pytest.mark.backends

LENGTHS = [7, 3, 5, 1]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _gates(kind, weights, x, h_in):
    """The gates of every step in numpy from the saved weights (Keras's formulas)."""
    if kind == "lstm":
        kernel, recurrent, bias = weights
        zi, zf, zg, zo = np.split(x @ kernel + h_in @ recurrent + bias, 4, axis=-1)
        return {"i": _sigmoid(zi), "f": _sigmoid(zf), "g": np.tanh(zg), "o": _sigmoid(zo)}
    kernel, recurrent, bias = weights  # reset_after
    xz, xr, xh = np.split(x @ kernel + bias[0], 3, axis=-1)
    uz, ur, uh = np.split(h_in @ recurrent + bias[1], 3, axis=-1)
    r = _sigmoid(xr + ur)
    return {"z": _sigmoid(xz + uz), "r": r, "hh": np.tanh(xh + r * uh)}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_accumulators_in_chunks_against_numpy_on_the_full_arrays(kind):
    shape, rec, arrays = stepped_record(kind, LENGTHS, steps=7, units=3, features=2, seed=0)
    units = 3
    # two steps a chunk: 4 sequences x (4 or 3) x 3 units per gate block
    chunk = 4 * units * (4 if kind == "lstm" else 3) * 2
    settings = ProbeSettings(Thresholds(saturation_tanh=0.8), text_samples=2, h_samples=3, chunk_elements=chunk)
    acc, samples = unit_reductions.unit_statistics(shape, rec, settings)
    acc = {k: np.asarray(v, np.float64) for k, v in acc.items()}

    valid = arrays["valid"]
    h, x = arrays["h"], arrays["x"]
    h_in = np.concatenate([arrays["h0"][:, None], h[:, :-1]], axis=1)
    gates = _gates(kind, shape.info.cell.get_weights(), x, h_in)
    at = valid[:, :, None]
    hv = h[valid]  # [positions, U]
    assert acc["n_valid"] == valid.sum() == sum(LENGTHS)
    np.testing.assert_array_equal(acc["h_count"], [valid.sum()] * units)
    np.testing.assert_allclose(acc["h_mean"], hv.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(acc["h_m2"], ((hv - hv.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(acc["h_max_abs"], np.abs(hv).max(axis=0), rtol=1e-6)
    for gate in ("i", "f", "o") if kind == "lstm" else ("z", "r"):
        np.testing.assert_array_equal(acc[f"{gate}_low"], ((gates[gate] < 0.1) & at).sum(axis=(0, 1)), err_msg=gate)
        np.testing.assert_array_equal(acc[f"{gate}_high"], ((gates[gate] > 0.9) & at).sum(axis=(0, 1)), err_msg=gate)
    if kind == "lstm":
        c = arrays["c"]
        np.testing.assert_allclose(acc["c_max_abs"], np.abs(c[valid]).max(axis=0), rtol=1e-6)
        saturated = np.abs(np.tanh(c)) > 0.8
    else:
        saturated = np.abs(h) > 0.8
    np.testing.assert_array_equal(acc["h_sat"], (saturated & at).sum(axis=(0, 1)))
    assert all(not acc[key].any() for key in acc if key.endswith("_nonfinite"))
    assert acc["recon"] < 1e-5
    gate = "z" if kind == "gru" else "f"
    assert saturated.any() and (gates[gate] > 0.9).any() and (gates[gate] < 0.1).any()  # counts not all 0

    assert sorted(samples) == sorted(("h", "c", "i", "f", "g", "o") if kind == "lstm" else ("h", "z", "r", "hh"))
    np.testing.assert_allclose(np.asarray(samples["h"]), h[:3], rtol=1e-6)  # h_samples sequences
    for gate, values in gates.items():
        np.testing.assert_allclose(np.asarray(samples[gate]), values[:2], rtol=1e-5, atol=1e-6)


def test_nonfinite_states_are_counted_at_valid_steps_and_left_out_of_the_moments():
    shape, rec, arrays = stepped_record("gru", LENGTHS, steps=7, units=3, features=2, seed=1)
    h = arrays["h"].copy()
    h[0, 2, 1] = np.nan
    h[2, 0, 0] = np.inf
    h[1, 5, 2] = np.nan  # a masked step: not counted
    rec = dict(rec, h=keras.ops.convert_to_tensor(h.astype("float32")))
    acc, _ = unit_reductions.unit_statistics(shape, rec, ProbeSettings(Thresholds(), 0))
    np.testing.assert_array_equal(np.asarray(acc["h_nonfinite"]), [1, 1, 0])
    valid = arrays["valid"]
    finite = np.where(valid[:, :, None] & np.isfinite(h), h, np.nan)
    np.testing.assert_array_equal(np.asarray(acc["h_count"]), np.isfinite(finite).sum(axis=(0, 1)))
    np.testing.assert_allclose(np.asarray(acc["h_mean"]), np.nanmean(finite, axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(acc["h_max_abs"]), np.nanmax(np.abs(finite), axis=(0, 1)), rtol=1e-6)
