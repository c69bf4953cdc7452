"""How numbers travel to the page: JSON numbers rounded to a few significant digits (NaN and Inf
as ``null``), exact float32 grids and float16 blobs in base64, and the finite range that a colour
scale spans."""

from __future__ import annotations

import base64
import math
from typing import Any, Optional

import numpy as np

FLOAT16_ENCODING = "float16-le-base64"
FLOAT32_ENCODING = "float32-le-base64"


def json_floats(arr: Any, digits: int = 4) -> Any:
    """Nested lists of floats rounded to `digits` significant digits, NaN/Inf -> None."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 0:
        v = float(a)
        return float(f"{v:.{digits}g}") if math.isfinite(v) else None
    fmt = f"%.{digits}g"
    flat = a.ravel()
    finite = np.isfinite(flat)
    strs = np.char.mod(fmt, np.where(finite, flat, 0.0))
    out = [float(s) for s in strs.tolist()]
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            out[i] = None
    return _reshape(out, a.shape)


def _reshape(flat: list, shape: tuple) -> Any:
    if len(shape) <= 1:
        return flat
    step = int(np.prod(shape[1:]))
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def binary_grid(arr: Any) -> dict:
    """A float array as exact little-endian float32 in base64, with its shape: a 512 x 1000
    grid is 2.7 MB of base64 that encodes in milliseconds, against 4.4 MB of JSON numbers that
    take about a second to format. NaN (masked or missing) and Inf stay as they are."""
    a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
    return {"encoding": FLOAT32_ENCODING, "shape": [int(d) for d in a.shape],
            "data": base64.b64encode(a.tobytes()).decode("ascii")}


def float16_blob(arr: Any) -> str:
    """A float array as little-endian float16 in base64 (decoded by tb_plugin/static/lib/fetch.js):
    half the bytes of float32, for data logged as float16 anyway."""
    return base64.b64encode(np.ascontiguousarray(np.asarray(arr).astype("<f2")).tobytes()).decode("ascii")


def finite_range(arr: Any, positive: bool = False) -> tuple[Optional[float], Optional[float]]:
    """``(min, max)`` of the finite values (only those > 0 with `positive`: a log colour
    scale's range), ``(None, None)`` when there are none."""
    a = np.asarray(arr, dtype=np.float64)
    a = a[np.isfinite(a)]
    if positive:
        a = a[a > 0]
    if a.size == 0:
        return None, None
    return float(a.min()), float(a.max())
