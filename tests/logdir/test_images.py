"""Weight heatmaps of large layers: pooled to a pixel budget (max-abs per block, NaN kept), so a
layer of 512 units does not write megabytes of PNG per epoch."""

import numpy as np

from rnn_monitor.logdir import images


def test_max_abs_pool_keeps_sign_extremes_and_nonfinite_blocks():
    rng = np.random.default_rng(0)
    mat = rng.normal(size=(7, 10))
    mat[5, 9] = np.inf
    pooled = images.max_abs_pool(mat, 3)
    assert pooled.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            block = mat[3 * i : 3 * i + 3, 3 * j : 3 * j + 3]
            if not np.isfinite(block).all():
                assert np.isnan(pooled[i, j])
            else:
                flat = block.ravel()
                assert pooled[i, j] == flat[np.abs(flat).argmax()]
    assert np.isnan(pooled[1, 3])  # the Inf at (5, 9)


def test_large_layer_image_is_pooled_small_and_small_layers_are_not():
    rng = np.random.default_rng(1)
    units = 512
    kernel = rng.normal(size=(units, 4 * units))
    recurrent = rng.normal(size=(units, 4 * units))
    bias = rng.normal(size=(4 * units,))
    kernel[3, 5] = np.nan
    heatmap = images.weight_heatmap([kernel, recurrent, bias], gate_width=units)
    rgb = heatmap.rgb
    png = images.encode_png(rgb)
    assert len(png) < 200_000  # about 10 MB of PNG at one pixel per weight
    assert (rgb == images.NONFINITE_RGB).all(axis=-1).any()  # the NaN is still shown
    rows = 2 * units + 1
    f = heatmap.pool  # the smallest factor that brings the image under the pixel budget
    assert f > 1 and -(-rows // f) * -(-4 * units // f) <= images.MAX_WEIGHT_PIXELS
    assert -(-rows // (f - 1)) * -(-4 * units // (f - 1)) > images.MAX_WEIGHT_PIXELS
    # every gate keeps its own columns: 3 dark separators between the 4 gates
    dark = (rgb == images.SEPARATOR_RGB).all(axis=-1).all(axis=0)
    runs = np.flatnonzero(np.diff(dark.astype(int)) == 1)
    assert len(runs) == 3
    small = images.weight_heatmap([rng.normal(size=(32, 512)), rng.normal(size=(128, 512)), rng.normal(size=(512,))],
                                  gate_width=128)
    assert small.pool == 1 and small.rgb.shape[1] >= 512


def test_png_palette_keeps_every_colour_of_a_heatmap_exactly():
    """A colorize image (every colour level, NaN, separators, white padding) round-trips
    through the palette PNG pixel for pixel."""
    import io

    from PIL import Image

    values = np.linspace(-1.0, 1.0, 600).reshape(20, 30)
    values[3, 4] = np.nan
    rgb = images.colorize(values)
    rgb = np.concatenate([rgb, np.full((2, 30, 3), images.SEPARATOR_RGB, np.uint8),
                          np.full((2, 30, 3), 255, np.uint8)], axis=0)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == images.COLOR_LEVELS + 3  # + NaN, separator, white
    decoded = np.asarray(Image.open(io.BytesIO(images.encode_png(rgb))).convert("RGB"))
    np.testing.assert_array_equal(decoded, rgb)
    png, height, width = images.display_png(rgb)  # enlarged for display: 24 x 30 -> 18x (ceil(512 / 30))
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert shown.shape == (height, width, 3) == (24 * 18, 30 * 18, 3)
    np.testing.assert_array_equal(shown[::18, ::18], rgb)
    np.testing.assert_array_equal(shown[17::18, 17::18], rgb)
    noisy = np.random.default_rng(2).integers(0, 256, size=(40, 40, 3), dtype=np.uint8)  # > 256 colours
    assert Image.open(io.BytesIO(images.encode_png(noisy))).size == (40, 40)


def test_palette_png_is_the_enlarged_image_pixel_for_pixel(monkeypatch):
    """The palette PNG decodes to exactly the input enlarged by repetition, whichever way a
    pixel's palette index was found (the modulus lookup, or the sort when every modulus
    collides)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    colours[1] = colours[0] + np.array([0, 0, 1], np.uint8)  # near-duplicates stay distinct
    for shape, factor in (((17, 23), 1), ((9, 31), 4), ((1, 1), 7), ((40, 3), 2)):
        rgb = colours[rng.integers(0, 256, size=shape)]
        rgb[0, 0] = colours[0]
        rgb[-1, -1] = colours[1]
        for moduli in (images._MODULI, (1,)):
            monkeypatch.setattr(images, "_MODULI", moduli)
            index, palette = images._palette(rgb)
            np.testing.assert_array_equal(palette[index], rgb)
            png = images.encode_png(rgb, factor)
            decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            np.testing.assert_array_equal(decoded, np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1))


def test_display_png_is_a_palette_image_of_the_shared_scale():
    """A 512 x 250 heatmap through `display_png`: an 8-bit palette PNG whose pixels are
    matplotlib's RdBu_r at each value's colour level (within rounding), and a small one shown
    enlarged, each value an exact f x f block."""
    import io

    from matplotlib import colormaps
    from PIL import Image

    rng = np.random.default_rng(4)
    values = rng.normal(size=(250, 512))
    values[7, 9] = np.inf
    png, height, width = images.display_png(images.colorize(values))
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG" and decoded.mode == "P" and (height, width) == (250, 512)
    pixels = np.asarray(decoded.convert("RGB")).astype(float)
    bound = np.abs(values[np.isfinite(values)]).max()
    level = np.rint((np.clip(values, -bound, bound) + bound) / (2 * bound) * (images.COLOR_LEVELS - 1))
    expected = colormaps["RdBu_r"].resampled(65536)(level / (images.COLOR_LEVELS - 1))[..., :3] * 255
    expected[7, 9] = images.NONFINITE_RGB
    assert np.abs(pixels - expected).max() <= 1.0
    small = rng.normal(size=(10, 16))
    rgb = images.colorize(small)
    png, height, width = images.display_png(rgb)
    f = images.enlargement(10, 16)
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert f == 32 and shown.shape == (height, width, 3) == (320, 512, 3)
    np.testing.assert_array_equal(shown, np.kron(rgb, np.ones((f, f, 1), np.uint8)))
