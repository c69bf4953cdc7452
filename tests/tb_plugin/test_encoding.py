"""tb_plugin/encoding.py: JSON numbers, float32 grids and float16 blobs, finite ranges; each
checked against the values written and decoded here with numpy."""

from __future__ import annotations

import base64

import numpy as np

from tb_plugin.encoding import binary_grid, finite_range, float16_blob, json_floats


def test_json_floats_round_to_four_significant_digits_and_null_nan_and_inf():
    values = [3.14159265, 1234567.0, -0.000123456, 2.0, np.nan, np.inf, -np.inf]
    assert json_floats(values) == [3.142, 1235000.0, -0.0001235, 2.0, None, None, None]
    assert json_floats(values[:2], digits=2) == [3.1, 1200000.0]


def test_json_floats_keep_the_shape_and_scalars_stay_scalars():
    arr = np.array([[1.23456, np.nan, 3.0], [4.0, 5.55555, 6.0]])
    assert json_floats(arr) == [[1.235, None, 3.0], [4.0, 5.556, 6.0]]
    assert json_floats(np.zeros((2, 0, 3))) == [[], []]
    assert json_floats(2.718281828) == 2.718 and json_floats(np.float32("nan")) is None


def test_json_floats_are_within_rounding_of_random_values():
    rng = np.random.default_rng(0)
    values = rng.lognormal(0.0, 6.0, size=500) * rng.choice([-1.0, 1.0], size=500)
    out = np.array(json_floats(values))
    np.testing.assert_allclose(out, values, rtol=5.001e-4)
    assert all(float(f"{v:.3e}") == v for v in out)  # four significant digits at most


def _decode(field: dict, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(field["data"]), dtype=dtype).reshape(field["shape"])


def test_binary_grid_is_exact_float32_in_row_major_order_with_nan_and_inf():
    grid = np.array([[1.2345678e-20, 3.1415927, np.nan], [np.inf, -6.0e-8, 2.0]], np.float64)
    field = binary_grid(grid.T)  # a transposed (non-contiguous) view: its own row order
    assert field["encoding"] == "float32-le-base64" and field["shape"] == [3, 2]
    np.testing.assert_array_equal(_decode(field, "<f4"), grid.T.astype(np.float32))


def test_float16_blob_is_the_values_as_little_endian_float16():
    arr = np.array([[[0.1, -2.5], [np.nan, 70000.0]]], np.float32)  # 70000 overflows float16
    with np.errstate(over="ignore"):
        raw = base64.b64decode(float16_blob(arr))
        expected = arr.astype(np.float16)
    assert len(raw) == arr.size * 2
    decoded = np.frombuffer(raw, dtype="<f2").reshape(arr.shape)
    np.testing.assert_array_equal(decoded, expected)
    assert np.isinf(decoded[0, 1, 1]) and np.isnan(decoded[0, 1, 0])


def test_finite_range_and_its_positive_part():
    arr = np.array([[np.nan, -2.0, 0.0], [3.0, np.inf, 0.5]])
    assert finite_range(arr) == (-2.0, 3.0)
    assert finite_range(arr, positive=True) == (0.5, 3.0)
    assert finite_range(np.array([np.nan, -1.0]), positive=True) == (None, None)
    assert finite_range(np.array([])) == (None, None)
