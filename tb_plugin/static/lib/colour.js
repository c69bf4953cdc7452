// Colour maps (viridis for magnitudes on a log scale, blue-white-red for signed activations)
// and the text colour that stays readable on any of their backgrounds.

export const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
export const DIVERGING = [
  [33, 102, 172], [103, 169, 207], [209, 229, 240], [255, 255, 255],
  [253, 219, 199], [239, 138, 98], [178, 24, 43],
];
export const MISSING = [221, 221, 221];

export function ramp(stops, x) {
  const t = Math.min(1, Math.max(0, x)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t));
  const f = t - i;
  const a = stops[i];
  const b = stops[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

// Log colour scale over [lo, hi] (positive values; 0 and below map to the bottom colour).
export function logScale(lo, hi) {
  let l = lo > 0 ? lo : 1e-12;
  const h = hi > 0 ? hi : 1;
  if (h <= l) l = h / 10;
  const a = Math.log10(l);
  const b = Math.log10(h);
  return {
    lo: l,
    hi: h,
    pos: (v) => (v > 0 ? (Math.log10(v) - a) / (b - a) : 0),
    color: (v) => (v === null || v === undefined || Number.isNaN(v) ? MISSING : ramp(VIRIDIS, v > 0 ? (Math.log10(v) - a) / (b - a) : 0)),
  };
}

// Blue (-scale) .. white (0) .. red (+scale); grey for a missing value.
export function divergingColor(v, scale) {
  if (v === null || v === undefined || Number.isNaN(v)) return MISSING;
  return ramp(DIVERGING, 0.5 + 0.5 * (v / scale));
}

export function rgb(c) {
  return `rgb(${Math.round(c[0])}, ${Math.round(c[1])}, ${Math.round(c[2])})`;
}

// WCAG 2 relative luminance of an sRGB colour [r, g, b] in 0..255.
export function luminance(c) {
  const lin = (v) => {
    const s = v / 255;
    return s <= 0.04045 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
}

// WCAG 2 contrast ratio of two colours (1 .. 21).
export function contrastRatio(a, b) {
  const la = luminance(a);
  const lb = luminance(b);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

const TEXT_DARK = [33, 33, 33]; // the page's text colour
const TEXT_LIGHT = [255, 255, 255];
const TEXT_BLACK = [0, 0, 0];
export const MIN_CONTRAST = 4.5; // WCAG AA for normal text
const TARGET = MIN_CONTRAST + 0.1; // margin for backgrounds rounded to whole rgb() values

// Text colour for a background: the page's dark grey on light backgrounds, white on dark ones,
// and whichever of black and white contrasts more in the middle band where neither reaches the
// target. Always >= 4.5:1: where white falls below 4.5 the background's luminance is > 0.183,
// and black then gives > 4.6.
export function textColourOn(bg) {
  const c = bg.map(Math.round);
  for (const t of [TEXT_DARK, TEXT_LIGHT]) if (contrastRatio(t, c) >= TARGET) return t;
  return contrastRatio(TEXT_BLACK, c) >= contrastRatio(TEXT_LIGHT, c) ? TEXT_BLACK : TEXT_LIGHT;
}
