// Canvas line charts with axes, labels and hover read-outs.

import { fmt, powerLabel } from "./dom.js";
import { setupCanvas } from "./heatmap.js";

// Line chart (flow curves, health small multiples).
export function drawLines(canvas, opts) {
  const { series, width, height, logY, xLabel, title, markers = [], hLines = [], xMin, xMax, yMin, yMax, yLogFloor } = opts;
  const m = { left: 52, right: 12, top: title ? 20 : 8, bottom: xLabel ? 34 : 22 };
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
    ctx.font = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(title, 4, 2);
    ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  }
  ctx.strokeStyle = "#bdbdbd";
  ctx.strokeRect(m.left - 0.5, m.top - 0.5, pw + 1, ph + 1);
  if (!Number.isFinite(y0) || x0 === undefined) {
    ctx.fillStyle = "#757575";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("no data", m.left + pw / 2, m.top + ph / 2);
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
  }
  const X = (x) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (v) => m.top + (1 - (ty(v) - y0) / (y1 - y0)) * ph;

  // y ticks
  ctx.fillStyle = "#616161";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  let yt = [];
  if (logY) {
    for (let p = Math.ceil(y0); p <= Math.floor(y1); p++) yt.push(p);
    if (yt.length > 5) {
      const st = Math.ceil(yt.length / 5);
      yt = yt.filter((p) => p % st === 0);
    }
    if (yt.length < 2) yt = [y0, y1];
    yt = yt.map((p) => Math.pow(10, p));
  } else {
    yt = [y0, (y0 + y1) / 2, y1];
  }
  ctx.strokeStyle = "#eeeeee";
  for (const v of yt) {
    const y = Y(v);
    ctx.beginPath();
    ctx.moveTo(m.left, y);
    ctx.lineTo(m.left + pw, y);
    ctx.stroke();
    ctx.fillText(logY ? powerLabel(Math.log10(v)) : fmt(v, 2), m.left - 5, y);
  }
  // x ticks
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const span = x1 - x0;
  const nt = Math.max(2, Math.floor(pw / 55));
  const raw = span / nt;
  const p10 = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const step = Math.max(1, [1, 2, 5, 10].map((k) => k * p10).find((s) => s >= raw) || raw);
  for (let x = Math.ceil(x0 / step) * step; x <= x1 + 1e-9; x += step) {
    ctx.fillRect(X(x), m.top + ph, 1, 3);
    ctx.fillText(String(Math.round(x)), X(x), m.top + ph + 4);
  }
  if (xLabel) ctx.fillText(xLabel, m.left + pw / 2, height - 14);

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
