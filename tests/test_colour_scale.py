"""One colour scale for the images, the terminal and the dashboard, held to matplotlib's colormaps
(the dashboard's colour.js is held to the same values in tests/tb_plugin/test_browser_colour.py)."""

import numpy as np
import pytest
from matplotlib import colormaps

from rnn_monitor import colour_scale
from rnn_monitor.cli import text as text_cmd
from rnn_monitor.cli.terminal import Style
from rnn_monitor.logdir import images

# Positions where matplotlib's 256-entry lookup tables are exact: the 256 evenly spaced ones.
GRID = np.arange(256) / 255


def rdbu_r(x):
    """matplotlib's RdBu_r at positions x in 0..1, 0-255 floats: its segment data interpolated
    into a 65536-entry table (the 256-entry default steps by up to 4 levels)."""
    return colormaps["RdBu_r"].resampled(65536)(np.asarray(x, dtype=np.float64))[..., :3] * 255


def viridis_at_grid():
    return colormaps["viridis"](GRID)[:, :3] * 255


def wcag_contrast(a, b):
    """WCAG 2 contrast ratio, written out here (the sRGB curve and the 0.05 flare)."""
    def lum(c):
        s = np.asarray(c, dtype=np.float64) / 255
        lin = np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
        return float(lin @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_scales_are_matplotlibs_rdbu_r_and_viridis():
    x = np.linspace(0.0, 1.0, 1001)
    diverging = colour_scale.whole(colour_scale.ramp(colour_scale.DIVERGING, x))
    # rounding, plus up to 0.02 for the reference table's step (1/65535 of a slope < 1000)
    assert np.abs(diverging - rdbu_r(x)).max() <= 0.52
    magnitude = colour_scale.ramp(colour_scale.MAGNITUDE, GRID)
    assert np.abs(magnitude - viridis_at_grid()).max() <= 0.5 + 1e-6
    assert colour_scale.BY_MATPLOTLIB_NAME.keys() == {"RdBu_r", "viridis"}
    # the middle of the diverging scale is ColorBrewer's near-white, its ends the darkest colours
    assert colour_scale.diverging_rgb(0.0, 1.0) == (247, 247, 247)
    assert colour_scale.diverging_rgb(1.0, 1.0) == (103, 0, 31) == colour_scale.diverging_rgb(5.0, 1.0)
    assert colour_scale.diverging_rgb(-2.0, 2.0) == (5, 48, 97)
    assert colour_scale.diverging_rgb(float("nan"), 1.0) == colour_scale.MISSING
    assert colour_scale.diverging_rgb(float("inf"), 1.0) == colour_scale.MISSING
    assert colour_scale.diverging_rgb(0.3, 0.0) == (247, 247, 247)  # no scale: the middle


@pytest.mark.parametrize("cmap, reference", [("RdBu_r", rdbu_r), ("viridis", None)])
def test_image_colours_are_the_shared_scale(cmap, reference):
    """colorize's levels: matplotlib's colormap at each level's position, within rounding."""
    levels = images.COLOR_LEVELS
    positions = np.arange(levels) / (levels - 1)
    values = positions.reshape(8, -1)
    rgb = images.colorize(values, cmap=cmap, vmin=0.0, vmax=1.0)
    if reference is not None:
        expected = reference(values)
    else:  # viridis: a listed table; between its entries, the linear blend of the two nearest
        k = values * 255
        lo = np.floor(k).astype(int)
        hi = np.minimum(lo + 1, 255)
        table = viridis_at_grid()
        expected = table[lo] + (table[hi] - table[lo]) * (k - lo)[..., None]
    assert np.abs(rgb.astype(float) - expected).max() <= 1.0


def test_image_and_terminal_agree_on_a_value():
    """The weight image's colour of an activation and the terminal's background for it."""
    scale = 2.0
    values = scale * (2 * np.arange(images.COLOR_LEVELS) / (images.COLOR_LEVELS - 1) - 1)  # level values
    image = images.colorize(values[None, :], vmin=-scale, vmax=scale)[0]
    terminal = np.array([colour_scale.diverging_rgb(v, scale) for v in values])
    np.testing.assert_array_equal(image, terminal)
    shown = text_cmd.render(["x"], np.array([values[40]]), scale, Style(colour=True))
    r, g, b = image[40]
    assert f"48;2;{r};{g};{b}m" in shown


def test_missing_grey_is_the_dashboards_and_the_images_mask():
    assert images.MASKED_RGB == colour_scale.MISSING == tuple(colour_scale.DEFINITION["missing"])
    masked = images.colorize(np.array([[1.0, np.nan]]), cmap="viridis", log=True, nan_rgb=images.MASKED_RGB)
    assert tuple(masked[0, 1]) == colour_scale.MISSING


def test_text_colour_reads_on_every_background():
    """At least 4.5:1 on every colour of both scales and the missing grey; the page's dark grey
    wherever it reaches 4.6, else white where that does, else the better of black and white."""
    backgrounds = [tuple(int(v) for v in c) for c in colour_scale.sample(colour_scale.DIVERGING, 501)]
    backgrounds += [tuple(int(v) for v in c) for c in colour_scale.MAGNITUDE.astype(int)]
    backgrounds += [colour_scale.MISSING, (255, 255, 255), (0, 0, 0), (119, 119, 119), (118, 118, 118)]
    dark, white, black = (33, 33, 33), (255, 255, 255), (0, 0, 0)
    seen = set()
    for bg in backgrounds:
        fg = colour_scale.text_colour(bg)
        assert wcag_contrast(fg, bg) >= 4.5, (bg, fg)
        assert abs(colour_scale.contrast_ratio(fg, bg) - wcag_contrast(fg, bg)) < 1e-12
        if wcag_contrast(dark, bg) >= 4.6:
            assert fg == dark
        elif wcag_contrast(white, bg) >= 4.6:
            assert fg == white
        else:
            assert fg == (black if wcag_contrast(black, bg) >= wcag_contrast(white, bg) else white)
        seen.add(fg)
    assert seen == {dark, white, black}  # each branch of the rule is taken
