// Heatmap: a rows x cols matrix drawn through an offscreen image, with axes and a log colour
// bar; hover read-out.

import { VIRIDIS, ramp, rgb } from "./colour.js";
import { logTicks, niceTicks, setupCanvas, tickLabel } from "./chart.js";

// opts: rows, cols, value(r, c), scale (colour.logScale), width, height, xLabel, yLabel,
// xTick(c), yTick(r), barLabel, and optionally xTicks (the columns to label; default: nice steps).
// Returns the plot geometry for attachHover.
export function drawHeatmap(canvas, opts) {
  const { rows, cols, value, scale, width, height, xLabel, yLabel, xTick, yTick, barLabel, xTicks } = opts;
  const m = { left: 58, right: 86, top: 10, bottom: 40 };
  const ctx = setupCanvas(canvas, width, height);
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const off = document.createElement("canvas");
  off.width = Math.max(1, cols);
  off.height = Math.max(1, rows);
  const octx = off.getContext("2d");
  const img = octx.createImageData(off.width, off.height);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const col = scale.color(value(r, c));
      img.data[k++] = col[0];
      img.data[k++] = col[1];
      img.data[k++] = col[2];
      img.data[k++] = 255;
    }
  }
  octx.putImageData(img, 0, 0);
  // Enlarged cells stay crisp; when there are more rows/columns than pixels, average them
  // (nearest-neighbour would silently drop units or timesteps).
  ctx.imageSmoothingEnabled = rows > ph || cols > pw;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(off, m.left, m.top, pw, ph);
  ctx.strokeStyle = "#9e9e9e";
  ctx.strokeRect(m.left - 0.5, m.top - 0.5, pw + 1, ph + 1);

  // Axes
  ctx.fillStyle = "#424242";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const c of xTicks || niceTicks(cols, Math.max(2, Math.floor(pw / 60)))) {
    const x = m.left + ((c + 0.5) / cols) * pw;
    ctx.fillRect(x, m.top + ph, 1, 4);
    ctx.fillText(xTick(c), x, m.top + ph + 6);
  }
  ctx.fillText(xLabel, m.left + pw / 2, height - 14);
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const r of niceTicks(rows, Math.max(2, Math.floor(ph / 28)))) {
    const y = m.top + ((r + 0.5) / rows) * ph;
    ctx.fillRect(m.left - 4, y, 4, 1);
    ctx.fillText(yTick(r), m.left - 6, y);
  }
  ctx.save();
  ctx.translate(14, m.top + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();

  // Colour bar (log scale)
  const bx = width - m.right + 18;
  const bw = 14;
  for (let i = 0; i < ph; i++) {
    const f = 1 - i / (ph - 1);
    ctx.fillStyle = rgb(ramp(VIRIDIS, f));
    ctx.fillRect(bx, m.top + i, bw, 1);
  }
  ctx.strokeStyle = "#9e9e9e";
  ctx.strokeRect(bx - 0.5, m.top - 0.5, bw + 1, ph + 1);
  ctx.fillStyle = "#424242";
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  const a = Math.log10(scale.lo);
  const b = Math.log10(scale.hi);
  for (const v of logTicks(a, b, 6)) {
    const y = m.top + (1 - (Math.log10(v) - a) / (b - a || 1)) * (ph - 1);
    ctx.fillRect(bx + bw, y, 3, 1);
    ctx.fillText(tickLabel(v, true), bx + bw + 5, y);
  }
  ctx.save();
  ctx.translate(width - 6, m.top + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(barLabel || "log scale", 0, 0);
  ctx.restore();
  return { m, pw, ph };
}

// Show describe(row, col) in `readout` while the pointer is over the plot area.
export function attachHover(canvas, geom, rows, cols, describe, readout) {
  const handler = (ev) => {
    const rect = canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left - geom.m.left;
    const y = ev.clientY - rect.top - geom.m.top;
    if (x < 0 || y < 0 || x >= geom.pw || y >= geom.ph) {
      readout.textContent = "\u00a0";
      return;
    }
    const c = Math.min(cols - 1, Math.floor((x / geom.pw) * cols));
    const r = Math.min(rows - 1, Math.floor((y / geom.ph) * rows));
    readout.textContent = describe(r, c);
  };
  canvas.onmousemove = handler; // property, not an inline attribute: CSP-safe, replaced on redraw
  canvas.onmouseleave = () => (readout.textContent = "\u00a0");
}
