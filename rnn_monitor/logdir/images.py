"""Heatmap images as RGB arrays and PNG bytes (numpy and Pillow, no TensorFlow).

Used for the standard TensorBoard images: the per-layer weight heatmap (kernel, recurrent
kernel and bias stacked, gate boundaries marked) and the gradient-over-time heatmap. The
diverging and viridis scales are the ones the terminal and the dashboard use
(`rnn_monitor.colour_scale`); other matplotlib colormaps are sampled from matplotlib.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Optional, Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image

from rnn_monitor import colour_scale

NONFINITE_RGB = (255, 0, 255)  # magenta: NaN / Inf weights stand out
MASKED_RGB = colour_scale.MISSING  # grey: masked (padded) steps, as in the dashboard
SEPARATOR_RGB = (40, 40, 40)  # dark lines between gates and between weights
# Colour levels of a colormap: fewer than 256, so that an image keeps every one of its colours
# (the levels plus the marker colours above and white padding) in a PNG palette, exactly.
COLOR_LEVELS = 248
PNG_COMPRESS_LEVEL = 1  # zlib's fastest level: heatmaps of weights are noise to it anyway
_LUTS: dict = {}


def _lut(cmap: str) -> np.ndarray:
    """[COLOR_LEVELS, 3] uint8 colours of a colormap, sampled evenly: a shared scale by its
    matplotlib name ("RdBu_r", "viridis"), else matplotlib's colormap of that name."""
    lut = _LUTS.get(cmap)
    if lut is None:
        shared = colour_scale.BY_MATPLOTLIB_NAME.get(cmap)
        if shared is not None:
            lut = colour_scale.sample(shared, COLOR_LEVELS)
        else:
            lut = (colormaps[cmap](np.linspace(0.0, 1.0, COLOR_LEVELS))[:, :3] * 255).astype(np.uint8)
        _LUTS[cmap] = lut
    return lut


def colorize(
    values: np.ndarray,
    cmap: str = "RdBu_r",
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    log: bool = False,
    nan_rgb: tuple[int, int, int] = NONFINITE_RGB,
) -> np.ndarray:
    """Map a 2-D array to uint8 RGB [H, W, 3]; non-finite entries get `nan_rgb`.

    Without vmin/vmax a diverging map is symmetric around 0 (white at 0) and a log map spans
    the finite positive range.
    """
    data = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(data)
    if log:
        finite &= data > 0
        data = np.where(finite, np.log10(np.where(finite, data, 1.0)), np.nan)
    if vmin is None or vmax is None:
        if finite.any():
            lo, hi = float(np.min(data[finite])), float(np.max(data[finite]))
        else:
            lo, hi = 0.0, 1.0
        if not log:
            bound = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -bound, bound
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    span = (vmax - vmin) or 1.0
    scaled = np.clip((np.where(finite, data, vmin) - vmin) / span, 0.0, 1.0)
    rgb = _lut(cmap)[np.rint(scaled * (COLOR_LEVELS - 1)).astype(np.intp)]
    rgb[~finite] = nan_rgb
    return rgb


def enlargement(height: int, width: int, target: int = 512, max_size: int = 1024) -> int:
    """The whole factor by which an image is enlarged for display: its longer side reaches about
    `target` pixels, never past `max_size` (small layers stay readable, large ones are left as
    they are)."""
    longest = max(1, height, width)
    return max(1, min(-(-target // longest), max_size // longest))


MAX_WEIGHT_PIXELS = 100_000  # a weight image's pixels before enlarging (about 100 kB of PNG)


def max_abs_pool(mat: np.ndarray, factor: int) -> np.ndarray:
    """[H, W] -> [ceil(H/f), ceil(W/f)]: each block's entry of largest magnitude, sign kept (the
    colour scale's extremes survive; a tie between +a and -a shows +a); a block with a NaN or
    Inf is NaN (shown as non-finite). From each block's max and min (no sort, no gather)."""
    if factor <= 1:
        return mat
    h, w = mat.shape
    hp, wp = -(-h // factor) * factor, -(-w // factor) * factor
    padded = np.zeros((hp, wp))
    padded[:h, :w] = mat
    blocks = padded.reshape(hp // factor, factor, wp // factor, factor)
    # f x f strided slices folded in turn: numpy reduces a short inner axis slowly (15x here)
    high, low = blocks[:, 0, :, 0].copy(), blocks[:, 0, :, 0].copy()
    for i in range(factor):
        for j in range(factor):
            np.maximum(high, blocks[:, i, :, j], out=high)  # NaN propagates
            np.minimum(low, blocks[:, i, :, j], out=low)
    pick = np.where(high >= -low, high, low)
    return np.where(np.isfinite(high) & np.isfinite(low), pick, np.nan)


def pool_factor(rows: int, cols: int, max_pixels: int = MAX_WEIGHT_PIXELS) -> int:
    """The smallest whole factor f with ceil(rows/f) * ceil(cols/f) <= max_pixels."""
    f = 1
    while -(-rows // f) * -(-cols // f) > max_pixels:
        f += 1
    return f


def weight_heatmap(
    weights: Sequence[np.ndarray], gate_width: Optional[int] = None, gap: int = 2,
    max_pixels: int = MAX_WEIGHT_PIXELS,
) -> "WeightHeatmap":
    """Kernel, recurrent kernel and bias, one band each, columns in gate order.

    Each band has its own symmetric colour scale (they differ by orders of magnitude); bands
    are separated by `gap` dark rows and gates by a dark column every `gate_width` columns.
    Layers with more than `max_pixels` weights are shown at 1/f resolution (`weight_pool`): each
    pixel the largest-magnitude weight of an f x f block, pooled gate by gate, so the image of a
    large layer stays near 100 kB instead of megabytes.
    """
    mats = []
    for arr in weights:
        mat = np.atleast_2d(np.asarray(arr, dtype=np.float64))
        mats.append(mat.reshape(-1, mat.shape[-1]))
    factor = weight_pool(mats, max_pixels)
    if factor > 1:
        pooled = []
        for mat in mats:
            step = gate_width if gate_width and mat.shape[1] % gate_width == 0 else mat.shape[1]
            pooled.append(np.concatenate([max_abs_pool(mat[:, c : c + step], factor)
                                          for c in range(0, mat.shape[1], step)], axis=1))
        mats = pooled
        gate_width = -(-gate_width // factor) if gate_width else gate_width
    bands = []
    width = max(m.shape[1] for m in mats)
    for mat in mats:
        rgb = colorize(mat)
        if rgb.shape[1] < width:  # pad narrower blocks (never happens for stock cells)
            pad = np.full((rgb.shape[0], width - rgb.shape[1], 3), 255, np.uint8)
            rgb = np.concatenate([rgb, pad], axis=1)
        rgb = np.repeat(rgb, max(1, 8 // mat.shape[0]), axis=0)  # bias rows visible
        bands.append(rgb)
        bands.append(np.full((gap, width, 3), SEPARATOR_RGB, np.uint8))
    image = np.concatenate(bands[:-1], axis=0)
    if gate_width and gate_width < width:
        cuts = list(range(gate_width, width, gate_width))
        image = np.insert(image, cuts, SEPARATOR_RGB, axis=1)
    return WeightHeatmap(image, factor)


@dataclasses.dataclass(frozen=True)
class WeightHeatmap:
    """A layer's weight image: `rgb` [H, W, 3] uint8, and `pool`, the side of the block of
    weights each pixel shows (1: one weight a pixel)."""

    rgb: np.ndarray
    pool: int


def weight_pool(mats: Sequence[np.ndarray], max_pixels: int = MAX_WEIGHT_PIXELS) -> int:
    """The pooling factor of `weight_heatmap` for these [rows, cols] weight matrices."""
    rows = sum(m.shape[0] for m in mats)
    cols = max(m.shape[1] for m in mats)
    return pool_factor(rows, cols, max_pixels)


# Moduli tried, in turn, to index a palette's colours without sorting the pixels (`_palette`).
_MODULI = (4093, 16381, 65521, 262139, 1048573)


def _palette(rgb: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(uint8 index image, [n, 3] colours) when `rgb` has at most 256 colours, else None.

    The colours come from PIL's `getcolors` (a hash table in C); each pixel's index is then
    looked up by its packed colour modulo a number at which the image's colours do not collide
    (exact: every pixel's colour is one of them). About 6x faster than `np.unique`'s sort.
    """
    found = Image.fromarray(rgb).getcolors(256)
    if found is None:
        return None
    palette = np.array([colour for _, colour in found], dtype=np.uint8).reshape(-1, 3)
    packed, keys = _packed(rgb), _packed(palette)
    for modulus in _MODULI:
        slots = keys % modulus
        if len(np.unique(slots)) == len(keys):
            table = np.zeros(modulus, np.uint8)
            table[slots] = np.arange(len(keys), dtype=np.uint8)
            return table[packed % modulus], palette
    _, index = np.unique(packed, return_inverse=True)  # every modulus collided
    return index.reshape(packed.shape).astype(np.uint8), palette[np.argsort(keys)]


def _packed(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 colours -> [...] uint32 0xRRGGBB."""
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def palette_png(index: np.ndarray, palette: np.ndarray, enlarge: int = 1) -> bytes:
    """PNG bytes of an 8-bit palette image (`index` [H, W] uint8 into `palette` [n, 3] uint8),
    enlarged `enlarge` times (nearest neighbour), encoded by Pillow at zlib level 1."""
    image = Image.fromarray(np.ascontiguousarray(index, dtype=np.uint8))
    image.putpalette(np.ascontiguousarray(palette, dtype=np.uint8).tobytes())  # mode L -> P
    f = max(1, int(enlarge))
    if f > 1:
        image = image.resize((image.width * f, image.height * f), Image.Resampling.NEAREST)
    return _png_bytes(image)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def encode_png(rgb: np.ndarray, enlarge: int = 1) -> bytes:
    """PNG bytes of a uint8 RGB array, enlarged `enlarge` times (nearest neighbour), as a
    palette image (one byte a pixel).

    Heatmaps of weights are noise to PNG's compressor; one byte a pixel instead of three makes
    them about 3x smaller (the reference model's weight images: 224 KB -> 76 KB a layer). An
    image of `colorize` has at most COLOR_LEVELS + 4 colours, so its palette holds them exactly;
    the palette is found before enlarging (an image of more than 256 colours gets PIL's
    median-cut palette).
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    found = _palette(rgb)
    if found is not None:
        return palette_png(found[0], found[1], enlarge)
    image = Image.fromarray(upscale_by(rgb, enlarge)).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    return _png_bytes(image)


def upscale_by(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of the first two axes by a whole factor."""
    if factor <= 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def display_png(rgb: np.ndarray) -> tuple[bytes, int, int]:
    """(PNG, height, width) of a heatmap as TensorBoard shows it: enlarged by `enlargement`."""
    factor = enlargement(rgb.shape[0], rgb.shape[1])
    return encode_png(rgb, factor), rgb.shape[0] * factor, rgb.shape[1] * factor


def png_estimate(rgb: np.ndarray) -> int:
    """A generous estimate of `display_png`'s bytes, for the byte cap before encoding."""
    factor = enlargement(rgb.shape[0], rgb.shape[1])
    return rgb.size * factor * factor // 4 + 500
