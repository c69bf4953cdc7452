// The line chart (temporal flow, health small multiples, unit cards, prediction as read), drawn
// by uPlot (vendor/uplot): log or linear y, dashed horizontal lines and vertical markers, a
// read-out of each series' value at the cursor, drag to zoom the x axis, double-click to reset.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { FONT, linearTicks, logTicks, tickLabel } from "./chart.js";
import { el } from "./dom.js";
import { fmt } from "./format.js";

const AXIS_COLOUR = "#424242";
const GRID_COLOUR = "#eeeeee";
const LABEL_SIZE = 16; // CSS px of the band that holds an axis label
const TITLE_HEIGHT = 18; // CSS px of the title line above the plot
const MANY_SERIES = 6; // above this, the read-out names the bold series and the nearest one

const charts = new WeakMap(); // holder element -> its uPlot

const missing = (v, logY) => v === null || v === undefined || Number.isNaN(v) || (logY && v <= 0);

// One x column for all series: the union of their x values (and xMin/xMax, so that the full
// range is the data's extent: the initial view and where double-click returns). A series has
// undefined where it has no point (uPlot joins across those) and null where its value is
// missing (a gap), as the canvas chart left gaps at null, NaN and, on a log axis, values <= 0.
export function alignSeries(series, logY, xMin, xMax) {
  const xs = new Set();
  for (const s of series) for (let i = 0; i < s.x.length; i++) if (!missing(s.y[i], logY)) xs.add(s.x[i]);
  if (!xs.size) return null;
  if (xMin !== undefined) xs.add(xMin);
  if (xMax !== undefined) xs.add(xMax);
  const x = [...xs].sort((a, b) => a - b);
  if (x.length === 1) x.push(x[0] + 1);
  const at = new Map(x.map((v, i) => [v, i]));
  const columns = series.map((s) => {
    const col = new Array(x.length).fill(undefined);
    for (let i = 0; i < s.x.length; i++) if (at.has(s.x[i])) col[at.get(s.x[i])] = missing(s.y[i], logY) ? null : s.y[i];
    return col;
  });
  return [x, ...columns];
}

// The y range shown for data in [lo, hi] (both finite): stretched to yMin/yMax and the
// horizontal lines, on a log axis clipped at yLogFloor, then padded (6% linear unless held by
// yMin/yMax, 4% of the decades on a log axis); a flat series gets +-10% (+-half a decade).
export function yRange(lo, hi, opts) {
  const { logY, yMin, yMax, yLogFloor, hLines = [] } = opts;
  let y0 = lo;
  let y1 = hi;
  for (const h of hLines) {
    if (!logY || h.y > 0) {
      y0 = Math.min(y0, h.y);
      y1 = Math.max(y1, h.y);
    }
  }
  if (yMin !== undefined) y0 = Math.min(y0, yMin);
  if (yMax !== undefined) y1 = Math.max(y1, yMax);
  if (logY) {
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
  return logY ? [Math.pow(10, y0), Math.pow(10, y1)] : [y0, y1];
}

// Whole-number x ticks at a 1-2-5 step, about one per 55 px.
export function xTicks(x0, x1, plotWidth) {
  const raw = (x1 - x0) / Math.max(2, Math.floor(plotWidth / 55));
  const p10 = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const step = Math.max(1, [1, 2, 5, 10].map((k) => k * p10).find((s) => s >= raw) || raw);
  const out = [];
  for (let x = Math.ceil(x0 / step) * step; x <= x1 + 1e-9; x += step) out.push(Math.round(x));
  return out;
}

function yTicks(y0, y1, plotHeight, logY) {
  if (logY) return logTicks(Math.log10(y0), Math.log10(y1));
  return linearTicks(y0, y1, Math.max(2, Math.min(5, Math.floor(plotHeight / 28))));
}

function textWidth(text, font = FONT) {
  const ctx = textWidth.ctx || (textWidth.ctx = document.createElement("canvas").getContext("2d"));
  ctx.font = font;
  return ctx.measureText(text).width;
}

// --------------------------------------------------------------------------- axes
function axisOptions(opts, drawn) {
  const { xLabel, yLabel, logY } = opts;
  const common = { stroke: AXIS_COLOUR, font: FONT, labelFont: FONT, ticks: { stroke: AXIS_COLOUR, width: 1, size: 3 } };
  const x = {
    ...common,
    size: 20,
    gap: 3,
    grid: { show: false },
    label: xLabel || undefined,
    labelSize: xLabel ? LABEL_SIZE : 0,
    splits: (u, _i, lo, hi) => (drawn.x = xTicks(lo, hi, u.bbox.width / uPlot.pxRatio)),
    values: (_u, ticks) => ticks.map((v) => String(v)),
  };
  const y = {
    ...common,
    gap: 4,
    grid: { stroke: GRID_COLOUR, width: 1 },
    label: yLabel || undefined,
    labelSize: yLabel ? LABEL_SIZE : 0,
    splits: (u, _i, lo, hi) => (drawn.y = yTicks(lo, hi, u.bbox.height / uPlot.pxRatio, logY)),
    filter: (_u, ticks) => ticks, // every tick labelled (uPlot's log axes drop all but 1-2-5)
    values: (_u, ticks) => ticks.map((v) => (v === null ? "" : tickLabel(v, logY))),
    size: (_u, values) => Math.ceil(Math.max(24, ...(values || []).map((v) => textWidth(v))) + 12),
  };
  return [x, y];
}

// Where the axis labels were painted, in CSS px of the canvas: {x: [left, top, w, h], y: ...}.
function labelBoxes(u, opts) {
  const r = uPlot.pxRatio;
  const boxes = {};
  const [ax, ay] = u.axes;
  if (opts.xLabel) {
    const tw = textWidth(opts.xLabel);
    boxes.x = [(u.bbox.left + u.bbox.width / 2) / r - tw / 2, ax._lpos, tw, 13];
  }
  if (opts.yLabel) {
    const tw = Math.min(u.bbox.height / r, textWidth(opts.yLabel));
    boxes.y = [ay._lpos - 13, (u.bbox.top + u.bbox.height / 2) / r - tw / 2, 13, tw];
  }
  return boxes;
}

// --------------------------------------------------------------------------- overlays
// Dashed horizontal lines (floor, decision point) with their labels, under the series.
function drawHLines(u, opts) {
  const { ctx } = u;
  const r = uPlot.pxRatio;
  const left = u.bbox.left / r;
  ctx.save();
  ctx.scale(r, r);
  ctx.beginPath();
  ctx.rect(left, u.bbox.top / r, u.bbox.width / r, u.bbox.height / r);
  ctx.clip();
  ctx.font = FONT;
  for (const h of opts.hLines || []) {
    if (opts.logY && h.y <= 0) continue;
    const y = u.bbox.top / r + u.valToPos(h.y, "y");
    ctx.strokeStyle = h.color || "#9e9e9e";
    ctx.lineWidth = 1;
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + u.bbox.width / r, y);
    ctx.stroke();
    ctx.setLineDash([]);
    if (h.label) {
      ctx.fillStyle = h.color || "#757575";
      ctx.textAlign = "left";
      ctx.textBaseline = "bottom";
      ctx.fillText(h.label, left + 4, y - 2);
    }
  }
  ctx.restore();
}

// Dashed vertical markers (the horizon) with a label on a light box, beside the line.
function drawMarkers(u, opts) {
  const { ctx } = u;
  const r = uPlot.pxRatio;
  const [left, top, pw, ph] = [u.bbox.left / r, u.bbox.top / r, u.bbox.width / r, u.bbox.height / r];
  ctx.save();
  ctx.scale(r, r);
  ctx.beginPath();
  ctx.rect(left, top, pw, ph);
  ctx.clip();
  ctx.font = FONT;
  ctx.lineWidth = 1;
  for (const mk of opts.markers || []) {
    const x = left + u.valToPos(mk.x, "x");
    ctx.strokeStyle = mk.color || "#d32f2f";
    ctx.setLineDash([5, 3]);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + ph);
    ctx.stroke();
    ctx.setLineDash([]);
    if (mk.label) {
      const tw = ctx.measureText(mk.label).width;
      const lx = x > left + pw - 180 ? x - 6 - tw : x + 6;
      const ly = top + ph - 18;
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

// --------------------------------------------------------------------------- read-out
// The series named in the read-out at data index idx: all of them, or with many, the bold
// ones (the chosen epoch) and the one nearest the cursor.
function seriesToRead(u, series, idx) {
  const all = series.map((_, i) => i + 1).filter((i) => series[i - 1].readout !== false);
  if (series.length <= MANY_SERIES) return all;
  const bold = all.filter((i) => (series[i - 1].width || 1.5) >= 2);
  let nearest = null;
  let best = Infinity;
  for (const i of all) {
    const v = u.data[i][idx];
    if (v === null || v === undefined) continue;
    const d = Math.abs(u.valToPos(v, "y") - u.cursor.top);
    if (d < best) [best, nearest] = [d, i];
  }
  return nearest === null || bold.includes(nearest) ? bold : [...bold, nearest];
}

function readoutText(u, series, opts) {
  const idx = u.cursor.idx;
  if (idx === null || idx === undefined) return "\u00a0";
  const parts = seriesToRead(u, series, idx).map((i) => {
    const v = u.data[i][idx];
    const name = series[i - 1].name || `series ${i}`;
    return `${name} ${v === null || v === undefined ? "n/a" : fmt(v)}`.replace(/ /g, "\u00a0"); // wraps between series only
  });
  return `${opts.xName || opts.xLabel || "x"} = ${u.data[0][idx]}: ${parts.join(", ")}`;
}

// --------------------------------------------------------------------------- the chart
function uplotOptions(opts, drawn, holder, readout) {
  const { series, width, height, logY, title } = opts;
  const [xAxis, yAxis] = axisOptions(opts, drawn);
  return {
    width,
    height: height - (title ? TITLE_HEIGHT : 0),
    title: title || undefined,
    padding: [8, 12, 0, 0],
    legend: { show: false },
    cursor: { y: false, drag: { x: true, y: false }, points: { size: 6 } },
    scales: {
      x: { time: false, range: (_u, lo, hi) => (lo === hi ? [lo, lo + 1] : [lo, hi]) },
      y: { distr: logY ? 3 : 1, log: 10, range: (_u, lo, hi) => (lo === null || !Number.isFinite(lo) ? [logY ? 0.1 : 0, 1] : yRange(lo, hi, opts)) },
    },
    axes: [xAxis, yAxis],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.name || `series ${i + 1}`,
        stroke: s.color,
        width: s.width || 1.5,
        spanGaps: false,
        points: { show: s.x.length <= 30 && !s.noDots, size: 4, width: 0, fill: s.color, stroke: s.color },
      })),
    ],
    hooks: {
      drawAxes: [(u) => drawHLines(u, opts)],
      draw: [(u) => {
        drawMarkers(u, opts);
        recordDrawn(holder, u, opts, drawn);
      }],
      setCursor: [(u) => (readout.textContent = readoutText(u, series, opts))],
    },
  };
}

// What was drawn, on the holder (data-x-label, data-y-label, data-x-ticks, data-y-ticks,
// data-label-boxes, data-x-range) for tests and assistive tools.
function recordDrawn(holder, u, opts, drawn) {
  holder.dataset.xTicks = JSON.stringify(drawn.x || []);
  holder.dataset.yTicks = JSON.stringify((drawn.y || []).map((v) => tickLabel(v, opts.logY)));
  holder.dataset.labelBoxes = JSON.stringify(labelBoxes(u, opts));
  holder.dataset.xRange = JSON.stringify([u.scales.x.min, u.scales.x.max]);
}

function noData(holder, opts) {
  const { width, height, title } = opts;
  holder.append(
    title ? el("div", { class: "u-title", text: title }) : null,
    el("div", { class: "no-data", style: `width:${width}px;height:${height - (title ? TITLE_HEIGHT : 0)}px`, text: "no data" }),
  );
  holder.dataset.xTicks = "[]";
  holder.dataset.yTicks = "[]";
  holder.dataset.labelBoxes = "{}";
}

// Line chart in `holder` (a div; any chart it held is replaced): several series over a shared
// x axis, each {x, y, color, name?, width?, noDots?, readout?} (readout false: left out of the
// read-out, e.g. a curve drawn again on top); options as the canvas chart had them
// (width, height, logY, xLabel, yLabel, title, markers, hLines, xMin, xMax, yMin, yMax,
// yLogFloor) and xName, the x in the read-out ("epoch", "k"). Missing values are gaps.
export function drawLines(holder, opts) {
  if (charts.has(holder)) charts.get(holder).destroy();
  charts.delete(holder);
  holder.replaceChildren();
  holder.classList.add("chart");
  holder.style.width = `${opts.width}px`; // a long read-out wraps instead of widening the chart
  holder.dataset.xLabel = opts.xLabel || "";
  holder.dataset.yLabel = opts.yLabel || "";
  const data = alignSeries(opts.series, opts.logY, opts.xMin, opts.xMax);
  if (!data) {
    noData(holder, opts);
    return null;
  }
  const readout = el("div", { class: "readout chart-readout", text: "\u00a0" });
  const drawn = {};
  const plot = new uPlot(uplotOptions(opts, drawn, holder, readout), data, holder);
  holder.append(readout);
  charts.set(holder, plot);
  return plot;
}
