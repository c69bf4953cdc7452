// Number formatting for labels, read-outs and ticks.

export function fmt(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  return Number(v.toPrecision(digits)).toString();
}

// Tick label of 10^p: "0.01", "1", "100", or "1e-5" for far-away powers.
export function powerLabel(p) {
  if (Number.isInteger(p)) return Math.abs(p) <= 2 ? String(Math.pow(10, p)) : `1e${p}`;
  return fmt(Math.pow(10, p), 2);
}
