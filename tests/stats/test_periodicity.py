"""periodicity: against per-sequence FFTs by hand, and a unit driven by a rotation of known period."""

import keras
import numpy as np

from rnn_monitor.stats.periodicity import common_length, periodic_units, periodicity


def test_matches_per_sequence_ffts():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(4, 32, 3))
    got = periodicity(acts)
    power = np.zeros((3, 16))
    for b in range(4):
        for u in range(3):
            seq = acts[b, :, u] - acts[b, :, u].mean()
            power[u] += np.abs(np.fft.fft(seq)[1:17]) ** 2 / 4
    np.testing.assert_allclose(got["power"], power, rtol=1e-10)
    np.testing.assert_allclose(got["freqs"], np.arange(1, 17) / 32)
    np.testing.assert_allclose(got["strength"], power.max(axis=1) / power.sum(axis=1))
    np.testing.assert_allclose(got["peak_freq"], (np.argmax(power, axis=1) + 1) / 32)


def test_a_simple_rnn_driven_by_a_rotation_has_its_period():
    period = 8
    angle = 2 * np.pi / period
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    layer = keras.layers.SimpleRNN(2, activation=None, use_bias=False, return_sequences=True)
    layer.build((None, 64, 1))
    layer.set_weights([np.array([[1.0, 0.0]]), rotation])
    x = np.zeros((3, 64, 1), "float32")
    x[:, 0, 0] = [1.0, 0.5, 2.0]  # one impulse, then the recurrence alone
    noise = np.random.default_rng(0).normal(0, 0.05, size=(3, 64, 1))
    h = np.concatenate([np.asarray(layer(x)), noise], axis=-1)  # units 0, 1 rotate; unit 2 is noise
    got = periodicity(h)
    np.testing.assert_allclose(got["peak_freq"][:2], [1 / period, 1 / period])
    assert got["strength"][:2].min() > 0.9 and got["strength"][2] < 0.3
    assert [u for u, _, _ in periodic_units(got)] == [0, 1] or [u for u, _, _ in periodic_units(got)] == [1, 0]


def test_masked_tails_use_the_common_valid_length():
    acts = np.random.default_rng(1).normal(size=(4, 20, 2))
    acts[0, 12:] = np.nan
    acts[1, 15:] = np.nan
    acts[2, 17:] = np.nan
    # valid prefixes 12, 15, 17, 20: the longest length kept by at least half is 17
    length, rows = common_length(acts)
    assert length == 17 and list(rows) == [2, 3]
    got = periodicity(acts)
    np.testing.assert_allclose(got["power"], periodicity(acts[2:, :17])["power"])
    assert got["length"] == 17 and np.isfinite(got["power"]).all()
