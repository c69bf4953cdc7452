"""The colour scales of the images, the terminal and the dashboard: one definition, one rule.

`rnn_monitor/colour_scale.json` holds the data; the dashboard's `tb_plugin/static/lib/colour.js`
reads the same file (the plugin serves it at ``/colour_scale``) and applies the same
interpolation and text-colour rule, so an activation has one colour everywhere:

* ``diverging`` (signed values: blue negative, near-white 0, red positive): the 11 ColorBrewer
  RdBu colours, blue first. matplotlib's ``RdBu_r`` is linear interpolation between exactly
  these (its ``_cm._RdBu_data``, reversed, times 255).
* ``magnitude`` (sizes on a log scale): matplotlib's ``viridis`` table, 256 colours rounded to
  whole 0-255 values.
* ``missing``: the grey of a masked or missing value.
* ``text``: the colours of the readable-text rule (`text_colour`) and its WCAG contrast target.

A colour is an ``(r, g, b)`` of 0-255 values; a position on a scale runs from 0 to 1.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import NamedTuple, Optional

import numpy as np

RGB = tuple[int, int, int]


class TextRule(NamedTuple):
    """Text colours for a background: `dark` on light ones, `light` on dark ones, and `black` or
    `light` (whichever contrasts more) in between; `min_contrast` (WCAG AA, 4.5) is reached
    with a `margin` for backgrounds rounded to whole values."""

    dark: RGB
    light: RGB
    black: RGB
    min_contrast: float
    margin: float


def _load() -> dict:
    return json.loads(resources.files("rnn_monitor").joinpath("colour_scale.json").read_text("utf-8"))


DEFINITION: dict = _load()  # the file as the dashboard receives it
DIVERGING = np.array(DEFINITION["diverging"]["stops"], dtype=np.float64)
MAGNITUDE = np.array(DEFINITION["magnitude"]["stops"], dtype=np.float64)
MISSING: RGB = tuple(DEFINITION["missing"])  # type: ignore[assignment]
TEXT = TextRule(**{k: tuple(v) if isinstance(v, list) else v for k, v in DEFINITION["text"].items()})
# matplotlib's name of each shared scale -> its stops (`rnn_monitor.logdir.images.colorize`)
BY_MATPLOTLIB_NAME = {DEFINITION[key]["matplotlib"]: stops
                      for key, stops in (("diverging", DIVERGING), ("magnitude", MAGNITUDE))}


def ramp(stops: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Colours [..., 3] (floats) at positions `x` (clipped to 0..1), linear between the evenly
    spaced `stops` [n, 3]: the same arithmetic as colour.js's `ramp`."""
    t = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0) * (len(stops) - 1)
    i = np.minimum(len(stops) - 2, np.floor(t)).astype(np.intp)
    f = (t - i)[..., None]
    return stops[i] + (stops[i + 1] - stops[i]) * f


def whole(colour: np.ndarray) -> np.ndarray:
    """Colours rounded half up to whole values, as CSS `rgb()` and colour.js's `rgb` round."""
    return np.floor(np.asarray(colour, dtype=np.float64) + 0.5).astype(np.int64)


def sample(stops: np.ndarray, levels: int) -> np.ndarray:
    """[levels, 3] uint8: the scale at `levels` evenly spaced positions from 0 to 1."""
    return whole(ramp(stops, np.linspace(0.0, 1.0, levels))).astype(np.uint8)


def diverging_position(value: float, scale: float) -> float:
    """Where `value` sits on the diverging scale: 0 at -scale, 0.5 at 0, 1 at +scale (0.5 for
    a scale that is not a positive number)."""
    return 0.5 + 0.5 * (value / scale) if scale > 0 and math.isfinite(scale) else 0.5


def diverging_rgb(value: Optional[float], scale: float) -> RGB:
    """The colour of `value` on the diverging scale spanning -scale..+scale; `MISSING` for a
    missing or non-finite value."""
    if value is None or not math.isfinite(value):
        return MISSING
    r, g, b = whole(ramp(DIVERGING, diverging_position(value, scale)))
    return int(r), int(g), int(b)


def luminance(colour: RGB) -> float:
    """WCAG 2 relative luminance of an sRGB colour of 0-255 values."""
    def linear(v: float) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(colour[0]) + 0.7152 * linear(colour[1]) + 0.0722 * linear(colour[2])


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG 2 contrast ratio of two colours, 1 to 21."""
    la, lb = luminance(a), luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def text_colour(background: RGB) -> RGB:
    """The text colour that reads on `background` (`TextRule`; colour.js's `textColourOn`):
    always at least 4.5:1, since where white falls below 4.5 the background's luminance is
    above 0.183 and black then gives more than 4.6."""
    bg = tuple(int(v) for v in whole(background))
    target = TEXT.min_contrast + TEXT.margin
    for candidate in (TEXT.dark, TEXT.light):
        if contrast_ratio(candidate, bg) >= target:
            return candidate
    if contrast_ratio(TEXT.black, bg) >= contrast_ratio(TEXT.light, bg):
        return TEXT.black
    return TEXT.light
