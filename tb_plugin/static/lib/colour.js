// Colour scales: viridis (log magnitudes) and a diverging scale white at 0.

// Colour maps -------------------------------------------------------------------------------
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

export function logScale(lo, hi) {
  let l = lo > 0 ? lo : 1e-12;
  let h = hi > 0 ? hi : 1;
  if (h <= l) {
    l = h / 10;
  }
  const a = Math.log10(l);
  const b = Math.log10(h);
  return {
    lo: l,
    hi: h,
    pos: (v) => (v > 0 ? (Math.log10(v) - a) / (b - a) : 0),
    color: (v) => (v === null || v === undefined || Number.isNaN(v) ? MISSING : ramp(VIRIDIS, v > 0 ? (Math.log10(v) - a) / (b - a) : 0)),
  };
}

export function divergingColor(v, scale) {
  if (v === null || v === undefined || Number.isNaN(v)) return MISSING;
  return ramp(DIVERGING, 0.5 + 0.5 * (v / scale));
}

export function rgb(c) {
  return `rgb(${Math.round(c[0])}, ${Math.round(c[1])}, ${Math.round(c[2])})`;
}
