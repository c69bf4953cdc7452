"""What each unit does, from the probe's activations (`rnn_monitor.probe.unit_roles`): which
inputs the average input can use, a backward layer read in its own order, the spectrum binned by
hand, the images' row order and layout, and what is queued for the log (the top tokens of a large
vocabulary exactly)."""

import numpy as np

from rnn_monitor.logdir import images, metadata
from rnn_monitor.probe import unit_roles
from rnn_monitor.stats.average_input import average_input
from rnn_monitor.stats.periodicity import periodicity


def test_which_probe_inputs_the_average_input_can_use():
    ids = np.array([[1, 4], [2, 0]])
    x, size, why = unit_roles.probe_inputs(ids, None)
    assert x is ids or np.array_equal(x, ids)
    assert (size, why) == (5, "")
    assert unit_roles.probe_inputs({"only": ids}, list("abc"))[1] == 5  # ids past the vocabulary count
    assert unit_roles.probe_inputs([ids], list("abcdefgh"))[1] == 8
    rows, size, _ = unit_roles.probe_inputs(np.zeros((2, 3, 4)), None)
    assert rows.dtype == np.float32 and size is None
    assert unit_roles.probe_inputs([ids, ids], None) == (None, None, "the model has several inputs")
    assert unit_roles.probe_inputs({"a": ids, "b": ids}, None)[2] == "the model has several inputs"
    x, size, why = unit_roles.probe_inputs(np.zeros((2, 3)), None)
    assert x is None and "shape (2, 3) and dtype float64" in why


def test_a_backward_layer_is_described_in_its_own_reading_order():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(4, 9))
    h = rng.normal(size=(3, 7, 2))  # fewer sequences and steps than x: x is cut to them
    got = unit_roles.describe_units(x, h, backward=True, window=20, vocab_size=5)
    rows, acts = x[:3, :7][:, ::-1], h[:, ::-1]
    np.testing.assert_allclose(got["average_input"], average_input(rows, acts, window=7, vocab_size=5), rtol=1e-6)
    np.testing.assert_allclose(got["periodicity"]["power"], periodicity(acts)["power"], rtol=1e-6)
    forward = unit_roles.describe_units(x, h, backward=False, window=0, vocab_size=5)
    assert forward["average_input"].shape == (2, 1, 5)


def test_the_spectrum_is_binned_to_mean_power_per_bin():
    freqs = np.linspace(0, 0.5, 7)
    power = np.arange(14, dtype=float).reshape(2, 7)
    f, p = unit_roles.bin_spectrum(freqs, power, bins=3)  # bins of 3, 2, 2 frequencies
    np.testing.assert_allclose(f, [freqs[:3].mean(), freqs[3:5].mean(), freqs[5:].mean()], rtol=1e-6)
    np.testing.assert_allclose(p, [[1, 3.5, 5.5], [8, 10.5, 12.5]])
    f, p = unit_roles.bin_spectrum(freqs, power, bins=7)
    assert f.dtype == p.dtype == np.float32 and np.array_equal(p, power)


def test_fourier_rows_most_periodic_first_each_normalised():
    power = np.array([[1.0, 1.0], [3.0, 1.0], [0.0, 0.0]])
    rgb = unit_roles.fourier_image(power, np.array([0.2, np.nan, 0.9]))
    share = np.array([[np.nan, np.nan], [0.5, 0.5], [0.75, 0.25]])  # units 2, 0, 1
    expected = images.colorize(share, cmap="magma", log=True, nan_rgb=images.MASKED_RGB)
    np.testing.assert_array_equal(rgb, expected)
    assert tuple(rgb[0, 0]) == tuple(images.MASKED_RGB)


def test_average_input_grid_puts_the_most_active_unit_first():
    avg = np.zeros((5, 2, 3))
    avg[3] = [[1.0, -1.0, 0.5], [0.0, 0.25, -0.5]]  # the most active
    avg[1, 0, 0] = 0.1
    grid = unit_roles.average_input_grid(avg, max_units=4)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 3)  # 4 units in 2 x 2 tiles of 2 x 3, 1-pixel lines
    np.testing.assert_array_equal(grid[1:3, 1:4], images.colorize(avg[3], vmin=-1.0, vmax=1.0))
    np.testing.assert_array_equal(grid[1:3, 5:8], images.colorize(avg[1], vmin=-1.0, vmax=1.0))
    assert (grid[0] == images.SEPARATOR_RGB).all() and (grid[:, 4] == images.SEPARATOR_RGB).all()


def _described(units, window, depth, seed=0):
    rng = np.random.default_rng(seed)
    return {"average_input": rng.random((units, window, depth)).astype(np.float32),
            "periodicity": {"freqs": np.linspace(0, 0.5, 5), "power": rng.random((units, 5)),
                            "peak_freq": np.full(units, 0.25), "strength": rng.random(units)}}


def test_a_large_vocabulary_queues_each_positions_top_tokens():
    described = _described(2, 3, 40)
    optional = []
    unit_roles.queue_unit_writes("lstm", described, continuous=False, optional=optional, with_images=True)
    assert [entry[3] for entry in optional] == ["lstm periodicity", "lstm average input", "lstm fourier image"]
    (kind_v, values, _, _), (kind_i, ids, _, _) = optional[1][2]
    assert (kind_v, kind_i) == (metadata.AVERAGE_INPUT, metadata.AVERAGE_INPUT_IDS)
    assert ids.dtype == np.uint16 and ids.shape == (2, 3, metadata.AVERAGE_INPUT_TOP)
    avg = described["average_input"]
    for u in range(2):
        for w in range(3):
            top = sorted(range(40), key=lambda d: -avg[u, w, d])[: metadata.AVERAGE_INPUT_TOP]
            assert list(ids[u, w]) == top
            np.testing.assert_array_equal(values[u, w], avg[u, w, top].astype(np.float16))
    peak = optional[0][2][2][1]
    np.testing.assert_allclose(peak, [[0.25, 0.25], described["periodicity"]["strength"]], rtol=1e-6)


def test_continuous_inputs_queue_the_whole_average_input_and_its_grid():
    described = _described(3, 2, 4)
    optional = []
    unit_roles.queue_unit_writes("gru", described, continuous=True, optional=optional, with_images=True)
    assert [entry[0] for entry in optional] == [1.2, 1.5, 3.5, 3.6]
    kind, values, layer, state = optional[1][2]
    assert (kind, layer, state) == (metadata.AVERAGE_INPUT, "gru", None)
    np.testing.assert_array_equal(values, described["average_input"].astype(np.float16))
    assert optional[1][1] == values.size * 2 + 300
    optional.clear()
    unit_roles.queue_unit_writes("gru", described, continuous=True, optional=optional, with_images=False)
    assert len(optional) == 2
