// Canvas set-up, tick choice and the line chart (temporal flow, health small multiples).

import { powerLabel } from "./format.js";

export const FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const TITLE_FONT = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const AXIS_COLOUR = "#424242";

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

// Line chart: several series over a shared x axis, optional log y, dashed horizontal lines
// and vertical markers. Axes carry tick values and, when given, their labels (xLabel below,
// yLabel rotated on the left). What was drawn is recorded on the canvas (data-x-label,
// data-y-label, data-x-ticks, data-y-ticks, data-label-boxes) for tests and assistive tools.
export function drawLines(canvas, opts) {
  const { series, width, height, logY, xLabel, yLabel, title, markers = [], hLines = [], xMin, xMax, yMin, yMax, yLogFloor } = opts;
  const m = { left: yLabel ? 66 : 52, right: 12, top: title ? 22 : 8, bottom: xLabel ? 36 : 22 };
  const ctx = setupCanvas(canvas, width, height);
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  let x0 = xMin;
  let x1 = xMax;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.x.length; i++) {
      const v = s.y[i];
      if (v === null || Number.isNaN(v) || (logY && v <= 0)) continue;
      y0 = Math.min(y0, v);
      y1 = Math.max(y1, v);
      if (xMin === undefined) x0 = x0 === undefined ? s.x[i] : Math.min(x0, s.x[i]);
      if (xMax === undefined) x1 = x1 === undefined ? s.x[i] : Math.max(x1, s.x[i]);
    }
  }
  for (const h of hLines) {
    if (!logY || h.y > 0) {
      y0 = Math.min(y0, h.y);
      y1 = Math.max(y1, h.y);
    }
  }
  if (title) {
    ctx.fillStyle = "#212121";
    ctx.font = TITLE_FONT;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(title, 4, 3);
    ctx.font = FONT;
  }
  ctx.strokeStyle = "#bdbdbd";
  ctx.strokeRect(m.left - 0.5, m.top - 0.5, pw + 1, ph + 1);
  const boxes = {};
  ctx.fillStyle = AXIS_COLOUR;
  if (xLabel) {
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(xLabel, m.left + pw / 2, height - 2);
    const tw = ctx.measureText(xLabel).width;
    boxes.x = [m.left + pw / 2 - tw / 2, height - 15, tw, 13];
  }
  if (yLabel) {
    ctx.save();
    ctx.translate(2, m.top + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillText(yLabel, 0, 0);
    ctx.restore();
    const tw = Math.min(ph, ctx.measureText(yLabel).width);
    boxes.y = [2, m.top + ph / 2 - tw / 2, 13, tw];
  }
  canvas.dataset.xLabel = xLabel || "";
  canvas.dataset.yLabel = yLabel || "";
  canvas.dataset.labelBoxes = JSON.stringify(boxes);
  if (!Number.isFinite(y0) || x0 === undefined) {
    ctx.fillStyle = "#757575";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("no data", m.left + pw / 2, m.top + ph / 2);
    canvas.dataset.xTicks = "[]";
    canvas.dataset.yTicks = "[]";
    return;
  }
  if (x1 === x0) x1 = x0 + 1;
  if (yMin !== undefined) y0 = Math.min(y0, yMin);
  if (yMax !== undefined) y1 = Math.max(y1, yMax);
  let ty = (v) => v;
  if (logY) {
    ty = (v) => Math.log10(v);
    if (yLogFloor !== undefined && y0 < yLogFloor && y1 > yLogFloor) y0 = yLogFloor; // lower values clipped
    y0 = Math.log10(y0);
    y1 = Math.log10(y1);
  }
  if (y1 === y0) {
    y0 -= logY ? 0.5 : Math.abs(y0) * 0.1 || 0.5;
    y1 += logY ? 0.5 : Math.abs(y1) * 0.1 || 0.5;
  } else if (!logY) {
    const pad = (y1 - y0) * 0.06;
    if (yMin === undefined || y0 < yMin) y0 -= pad;
    if (yMax === undefined || y1 > yMax) y1 += pad;
  } else {
    const pad = (y1 - y0) * 0.04;
    y0 -= pad;
    y1 += pad;
  }
  const X = (x) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (v) => m.top + (1 - (ty(v) - y0) / (y1 - y0)) * ph;

  // y ticks: nice values (linear) or powers of ten / 1-2-5 steps (log), with grid lines
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const yt = logY ? logTicks(y0, y1) : linearTicks(y0, y1, Math.max(2, Math.min(5, Math.floor(ph / 28))));
  for (const v of yt) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.strokeStyle = "#eeeeee";
    ctx.beginPath();
    ctx.moveTo(m.left, y);
    ctx.lineTo(m.left + pw, y);
    ctx.stroke();
    ctx.fillStyle = AXIS_COLOUR;
    ctx.fillRect(m.left - 3, y - 0.5, 3, 1);
    ctx.fillText(tickLabel(v, logY), m.left - 5, y);
  }
  // x ticks (integers: epochs, steps)
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const span = x1 - x0;
  const nt = Math.max(2, Math.floor(pw / 55));
  const raw = span / nt;
  const p10 = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const step = Math.max(1, [1, 2, 5, 10].map((k) => k * p10).find((s) => s >= raw) || raw);
  const xt = [];
  for (let x = Math.ceil(x0 / step) * step; x <= x1 + 1e-9; x += step) {
    ctx.fillRect(X(x), m.top + ph, 1, 3);
    ctx.fillText(String(Math.round(x)), X(x), m.top + ph + 4);
    xt.push(Math.round(x));
  }
  canvas.dataset.xTicks = JSON.stringify(xt);
  canvas.dataset.yTicks = JSON.stringify(yt.map((v) => tickLabel(v, logY)));

  ctx.save();
  ctx.beginPath();
  ctx.rect(m.left, m.top, pw, ph);
  ctx.clip();
  for (const h of hLines) {
    if (logY && h.y <= 0) continue;
    ctx.strokeStyle = h.color || "#9e9e9e";
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(m.left, Y(h.y));
    ctx.lineTo(m.left + pw, Y(h.y));
    ctx.stroke();
    ctx.setLineDash([]);
    if (h.label) {
      ctx.fillStyle = h.color || "#757575";
      ctx.textAlign = "left";
      ctx.textBaseline = "bottom";
      ctx.fillText(h.label, m.left + 4, Y(h.y) - 2);
    }
  }
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width || 1.5;
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < s.x.length; i++) {
      const v = s.y[i];
      if (v === null || Number.isNaN(v) || (logY && v <= 0)) {
        pen = false;
        continue;
      }
      if (pen) ctx.lineTo(X(s.x[i]), Y(v));
      else ctx.moveTo(X(s.x[i]), Y(v));
      pen = true;
    }
    ctx.stroke();
    if (s.x.length <= 30 && !s.noDots) {
      ctx.fillStyle = s.color;
      for (let i = 0; i < s.x.length; i++) {
        const v = s.y[i];
        if (v === null || Number.isNaN(v) || (logY && v <= 0)) continue;
        ctx.beginPath();
        ctx.arc(X(s.x[i]), Y(v), 2, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
  ctx.lineWidth = 1;
  for (const mk of markers) {
    ctx.strokeStyle = mk.color || "#d32f2f";
    ctx.setLineDash([5, 3]);
    ctx.beginPath();
    ctx.moveTo(X(mk.x), m.top);
    ctx.lineTo(X(mk.x), m.top + ph);
    ctx.stroke();
    ctx.setLineDash([]);
    if (mk.label) {
      const right = X(mk.x) > m.left + pw - 180;
      const tw = ctx.measureText(mk.label).width;
      const lx = right ? X(mk.x) - 6 - tw : X(mk.x) + 6;
      const ly = m.top + ph - 18;
      ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillRect(lx - 3, ly - 1, tw + 6, 15);
      ctx.fillStyle = mk.color || "#d32f2f";
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      ctx.fillText(mk.label, lx, ly + 1);
    }
  }
  ctx.restore();
}
