// Colour maps (viridis for magnitudes on a log scale, blue-white-red for signed activations)
// and the text colour that stays readable on any of their backgrounds.
//
// The scales' stops, the missing-value grey and the text colours are not written here: they
// come from rnn_monitor/colour_scale.json, served by the plugin at ./colour_scale, the file the
// Python side (images, terminal) reads too (rnn_monitor/colour_scale.py applies the same
// interpolation and text rule), so a value has one colour in every view.

const SCALE_URL = new URL("../../colour_scale", import.meta.url);

async function loadScale() {
  const resp = await fetch(SCALE_URL, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`colour scale: HTTP ${resp.status} from ${SCALE_URL}`);
  return resp.json();
}

const SCALE = await loadScale();

export const VIRIDIS = SCALE.magnitude.stops; // matplotlib's viridis, 256 colours
export const DIVERGING = SCALE.diverging.stops; // ColorBrewer RdBu, blue (-) .. red (+)
export const MISSING = SCALE.missing;

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

// Blue (-scale) .. near-white (0) .. red (+scale); grey for a missing or non-finite value.
// A scale that is not a positive number puts every value in the middle.
export function divergingColor(v, scale) {
  if (!Number.isFinite(v)) return MISSING;
  return ramp(DIVERGING, scale > 0 && Number.isFinite(scale) ? 0.5 + 0.5 * (v / scale) : 0.5);
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

const TEXT = SCALE.text;
export const MIN_CONTRAST = TEXT.min_contrast; // WCAG AA for normal text
const TARGET = MIN_CONTRAST + TEXT.margin; // margin for backgrounds rounded to whole rgb() values

// Text colour for a background: the page's dark grey on light backgrounds, white on dark ones,
// and whichever of black and white contrasts more in the middle band where neither reaches the
// target. Always >= 4.5:1: where white falls below 4.5 the background's luminance is > 0.183,
// and black then gives > 4.6.
export function textColourOn(bg) {
  const c = bg.map(Math.round);
  for (const t of [TEXT.dark, TEXT.light]) if (contrastRatio(t, c) >= TARGET) return t;
  return contrastRatio(TEXT.black, c) >= contrastRatio(TEXT.light, c) ? TEXT.black : TEXT.light;
}
