// Canvas set-up and tick choice, shared by the heatmaps (heatmap.js) and the line charts (lines.js).

import { powerLabel } from "./format.js";

export const FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

// A canvas of cssWidth x cssHeight CSS pixels, sharp on high-DPI screens; its 2D context.
export function setupCanvas(canvas, cssWidth, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  canvas.width = Math.round(cssWidth * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  ctx.font = FONT;
  return ctx;
}

export function panelWidth(container, fallback = 760) {
  const w = container.clientWidth || fallback;
  return Math.max(360, Math.min(w, 1400));
}

// Integer ticks 0..n-1 at a "nice" step (1, 2, 5 x 10^k), at most about maxTicks of them.
export function niceTicks(n, maxTicks) {
  if (n <= 0) return [];
  const raw = Math.max(1, (n - 1) / Math.max(1, maxTicks - 1));
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
  const out = [];
  for (let i = 0; i < n; i += step) out.push(Math.round(i));
  return out;
}

// Values k * step (step = 1, 2 or 5 x 10^j) inside [lo, hi], about `count` of them.
export function linearTicks(lo, hi, count = 4) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / Math.max(1, count);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

// Ticks of a log axis over [10^a, 10^b]: powers of ten when at least two fall inside; else the
// 1-2-5 values (0.05, 0.1, 0.2, 0.5); within a narrow range, evenly stepped values (0.08, 0.1,
// 0.12) placed on the log axis; at worst the two ends.
export function logTicks(a, b, count = 5) {
  let out = [];
  for (let p = Math.ceil(a - 1e-9); p <= Math.floor(b + 1e-9); p++) out.push(Math.pow(10, p));
  if (out.length > count) {
    const st = Math.ceil(out.length / count);
    out = out.filter((v) => Math.round(Math.log10(v)) % st === 0);
  }
  if (out.length >= 2) return out;
  out = [];
  for (let p = Math.floor(a) - 1; p <= Math.ceil(b); p++) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * Math.pow(10, p)).toPrecision(6));
      if (Math.log10(v) >= a - 1e-9 && Math.log10(v) <= b + 1e-9) out.push(v);
    }
  }
  if (out.length >= 2) return out;
  out = linearTicks(Math.pow(10, a), Math.pow(10, b), count - 1).filter((v) => v > 0);
  return out.length >= 2 ? out : [Math.pow(10, a), Math.pow(10, b)];
}

// Label of a tick value: "0.05", "0.12", "1e-4", "2e-5", "100".
export function tickLabel(v, logY = false) {
  const p = Math.log10(Math.abs(v));
  if (logY && Math.abs(p - Math.round(p)) < 1e-9) return powerLabel(Math.round(p));
  const r = Number(v.toPrecision(3));
  const a = Math.abs(r);
  if (r !== 0 && (a >= 1e4 || a < 1e-3)) return r.toExponential().replace("e+", "e");
  return String(r);
}
