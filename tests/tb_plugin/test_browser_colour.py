"""The dashboard's colours in a real browser (headless Chromium) are the Python side's: colour.js,
loaded by the plugin page from the scale the plugin serves, gives the same diverging and viridis
colours, missing grey and text colours as `rnn_monitor.colour_scale` (which the images and the
terminal use), and matplotlib's RdBu_r and viridis within rounding.

Skipped like test_browser.py when Chromium or Playwright is missing (failing under CI=true).
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from test_browser import TensorBoardProcess, _synthetic, browser, open_dashboard  # noqa: F401  (fixture)

from rnn_monitor import colour_scale

pytestmark = pytest.mark.browser

SCALE = 2.0
VALUES = [float(v) for v in np.linspace(-1.5 * SCALE, 1.5 * SCALE, 241)]
LOG_LO, LOG_HI = 1e-3, 10.0
MAGNITUDES = [float(v) for v in np.logspace(-4, 2, 121)]

# colour.js as the page's own modules import it (the frame's <base> is the plugin's route root);
# null stands for a missing value, which the routes send as null
_EVALUATE = """async ([values, scale, lo, hi, magnitudes]) => {
  const c = await import(new URL('static/lib/colour.js', document.baseURI).href);
  const served = await (await fetch('./colour_scale')).json();
  const diverging = values.map((v) => c.divergingColor(v, scale));
  const log = c.logScale(lo, hi);
  return {
    served,
    diverging,
    text: diverging.map((bg) => c.textColourOn(bg)),
    missing: [c.divergingColor(null, scale), c.divergingColor(NaN, scale), log.color(null), c.MISSING],
    missingText: c.textColourOn(c.MISSING),
    magnitude: magnitudes.map((v) => log.color(v)),
    viridisGrid: Array.from({ length: 256 }, (_, k) => c.ramp(c.VIRIDIS, k / 255)),
    css: c.rgb(diverging[0]),
  };
}"""


@pytest.fixture(scope="module")
def colours(browser, tmp_path_factory):  # noqa: F811
    logdir = tmp_path_factory.mktemp("colour_logs")
    _synthetic().write_log(str(logdir), epochs=1, n_layers=1, timesteps=8, units=4, text_samples=1)
    tb = TensorBoardProcess(str(logdir), "false", tmp_path_factory.mktemp("tb_colour"))
    try:
        tb.wait_ready()
        view = open_dashboard(browser, tb.url, "1024x768")
        found = view["frame"].evaluate(_EVALUATE, [VALUES, SCALE, LOG_LO, LOG_HI, MAGNITUDES])
        view["page"].close()
    finally:
        tb.stop()
    errors = [m for m in view["messages"] if m[0] in ("error", "pageerror")]
    assert not errors, errors
    return found


def test_the_plugin_serves_the_python_definition(colours):
    assert colours["served"] == colour_scale.DEFINITION


def test_diverging_colours_equal_python_and_matplotlib(colours):
    page = np.array(colours["diverging"], dtype=float)
    python = np.array([colour_scale.diverging_rgb(v, SCALE) for v in VALUES], dtype=float)
    assert np.abs(np.floor(page + 0.5) - python).max() <= 1.0
    positions = np.clip(0.5 + 0.5 * np.array(VALUES) / SCALE, 0.0, 1.0)
    reference = colormaps["RdBu_r"].resampled(65536)(positions)[:, :3] * 255
    assert np.abs(page - reference).max() <= 1.0
    assert colours["css"] == "rgb(5, 48, 97)"  # below -scale: the blue end


def test_viridis_colours_equal_python_and_matplotlib(colours):
    grid = np.array(colours["viridisGrid"], dtype=float)
    reference = colormaps["viridis"](np.arange(256) / 255)[:, :3] * 255
    assert np.abs(grid - reference).max() <= 1.0
    page = np.array(colours["magnitude"], dtype=float)
    a, b = np.log10(LOG_LO), np.log10(LOG_HI)
    python = colour_scale.ramp(colour_scale.MAGNITUDE, (np.log10(MAGNITUDES) - a) / (b - a))
    assert np.abs(page - python).max() <= 1.0


def test_missing_grey_and_text_colours_equal_python(colours):
    assert all(tuple(m) == colour_scale.MISSING for m in colours["missing"])
    assert tuple(colours["missingText"]) == colour_scale.text_colour(colour_scale.MISSING)
    python = [colour_scale.text_colour(tuple(bg)) for bg in colours["diverging"]]
    assert [tuple(t) for t in colours["text"]] == python
    text = colour_scale.TEXT
    assert {text.dark, text.light} <= set(python)  # dark on the light middle, white on the dark ends
