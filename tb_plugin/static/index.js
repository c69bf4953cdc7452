// RNN Monitor dashboard: an ES module loaded by TensorBoard into the plugin's iframe.
//
// TensorBoard's entry page sets <base href="plugin/rnn_monitor/">, so relative URLs such as
// "./runs" reach this plugin's routes (/data/plugin/rnn_monitor/runs). No external resources,
// no inline scripts or handlers (TensorBoard's CSP forbids them): plain DOM + canvas.

const VIEWS = [
  ["gradients", "Gradients through time"],
  ["text", "Activations in text"],
  ["health", "Health"],
];

const state = {
  runs: [],
  notes: [],
  run: null,
  layer: null,
  view: "gradients",
  gradEpochIndex: null,
  unitKind: "timestep_gradients",
  textState: null,
  textEpochIndex: null,
  unit: null,
  rankMode: "variance",
  regex: "",
  cache: new Map(),
};

let root = null;
// Answers kept in the page (an activations answer with all units is ~1-2 MB once decoded).
const CACHE_ENTRIES = 48;

// --------------------------------------------------------------------------- utilities
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(route, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) query.set(k, v);
  const url = `./${route}?${query}`;
  if (state.cache.has(url)) return state.cache.get(url);
  const promise = fetch(url, { credentials: "same-origin" }).then(async (resp) => {
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = { error: `unexpected answer from TensorBoard (HTTP ${resp.status})` };
    }
    if (!resp.ok) {
      const err = new Error((body && body.error) || `HTTP ${resp.status}`);
      err.status = resp.status;
      throw err;
    }
    return body;
  });
  state.cache.set(url, promise);
  while (state.cache.size > CACHE_ENTRIES) state.cache.delete(state.cache.keys().next().value);
  promise.catch(() => state.cache.delete(url));
  return promise;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  return Number(v.toPrecision(digits)).toString();
}

function powerLabel(p) {
  // Tick label of 10^p: "0.01", "1", "100", or "1e-5" for far-away powers.
  if (Number.isInteger(p)) return Math.abs(p) <= 2 ? String(Math.pow(10, p)) : `1e${p}`;
  return fmt(Math.pow(10, p), 2);
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// Colour maps -------------------------------------------------------------------------------
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
const DIVERGING = [
  [33, 102, 172], [103, 169, 207], [209, 229, 240], [255, 255, 255],
  [253, 219, 199], [239, 138, 98], [178, 24, 43],
];
const MISSING = [221, 221, 221];

function ramp(stops, x) {
  const t = Math.min(1, Math.max(0, x)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t));
  const f = t - i;
  const a = stops[i];
  const b = stops[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

function logScale(lo, hi) {
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

function divergingColor(v, scale) {
  if (v === null || v === undefined || Number.isNaN(v)) return MISSING;
  return ramp(DIVERGING, 0.5 + 0.5 * (v / scale));
}

function rgb(c) {
  return `rgb(${Math.round(c[0])}, ${Math.round(c[1])}, ${Math.round(c[2])})`;
}

function niceTicks(n, maxTicks) {
  // Integer ticks 0..n-1 at a "nice" step.
  if (n <= 0) return [];
  const raw = Math.max(1, (n - 1) / Math.max(1, maxTicks - 1));
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
  const out = [];
  for (let i = 0; i < n; i += step) out.push(Math.round(i));
  return out;
}

// Canvas helpers ----------------------------------------------------------------------------
function setupCanvas(canvas, cssWidth, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  canvas.width = Math.round(cssWidth * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  return ctx;
}

function panelWidth(container, fallback = 760) {
  const w = container.clientWidth || fallback;
  return Math.max(360, Math.min(w, 1400));
}

// Heatmap: rows x cols matrix via an offscreen image, scaled without smoothing, plus axes and a
// colour bar on a log scale.
function drawHeatmap(canvas, opts) {
  const { rows, cols, value, scale, width, height, xLabel, yLabel, xTick, yTick, barLabel } = opts;
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
  for (const c of niceTicks(cols, Math.max(2, Math.floor(pw / 60)))) {
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
  let ticks = [];
  for (let p = Math.ceil(a); p <= Math.floor(b); p++) ticks.push(p);
  if (ticks.length > 6) {
    const step = Math.ceil(ticks.length / 6);
    ticks = ticks.filter((p) => p % step === 0);
  }
  if (ticks.length < 2) ticks = [a, b];
  for (const p of ticks) {
    const y = m.top + (1 - (p - a) / (b - a || 1)) * (ph - 1);
    ctx.fillRect(bx + bw, y, 3, 1);
    ctx.fillText(powerLabel(p), bx + bw + 5, y);
  }
  ctx.save();
  ctx.translate(width - 6, m.top + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText(barLabel || "log scale", 0, 0);
  ctx.restore();
  return { m, pw, ph };
}

function attachHover(canvas, geom, rows, cols, describe, readout) {
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

// Line chart (flow curves, health small multiples).
function drawLines(canvas, opts) {
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

// float16 (little-endian, base64) -> Float32Array
let HALF_TABLE = null;
function halfTable() {
  if (HALF_TABLE) return HALF_TABLE;
  HALF_TABLE = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    let v;
    if (e === 0) v = s * Math.pow(2, -14) * (f / 1024);
    else if (e === 31) v = f ? NaN : s * Infinity;
    else v = s * Math.pow(2, e - 15) * (1 + f / 1024);
    HALF_TABLE[h] = v;
  }
  return HALF_TABLE;
}

function decodeFloat16(b64) {
  const bin = atob(b64);
  const n = bin.length >> 1;
  const out = new Float32Array(n);
  const table = halfTable();
  for (let i = 0; i < n; i++) out[i] = table[bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)];
  return out;
}

// --------------------------------------------------------------------------- shell
function currentRun() {
  return state.runs.find((r) => r.run === state.run) || null;
}

function currentLayer() {
  const run = currentRun();
  return run ? run.layers.find((l) => l.name === state.layer) || null : null;
}

function notice(kind, ...content) {
  return el("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...content);
}

function samplingNotice(sampling) {
  if (!sampling) return null;
  return notice(
    "warn",
    el("strong", { text: "Sampled: " }),
    `showing ${sampling.shown} of ${sampling.logged} logged epochs. TensorBoard keeps only a sample of each plugin tensor series; restart it with `,
    el("code", { text: sampling.flag }),
    " to see every epoch.",
  );
}

function errorNotice(err) {
  return notice("error", err && err.message ? err.message : String(err));
}

function emptyState() {
  return el(
    "div",
    { class: "empty" },
    el("h2", { text: "No RNN Monitor data yet" }),
    el("p", {}, "Add the callback to ", el("code", { text: "model.fit" }), " and point TensorBoard at the same log directory:"),
    el("pre", { class: "snippet", text: "from rnn_monitor import RNNMonitor\nmodel.fit(x, y, callbacks=[RNNMonitor(\"runs/exp1\", probe_data=(x_probe, y_probe), vocabulary=chars)])\n\ntensorboard --logdir runs" }),
    el("p", { text: "The data appears here after the first logged epoch. Gradients through time and activations need probe_data; weights and health need nothing more." }),
    state.notes.length ? el("ul", { class: "notes" }, state.notes.map((n) => el("li", { text: n }))) : null,
  );
}

function buildShell() {
  root.replaceChildren();
  const runSel = el("select", { id: "run-select", "aria-label": "Run" });
  const layerSel = el("select", { id: "layer-select", "aria-label": "Layer" });
  runSel.addEventListener("change", () => {
    state.run = runSel.value;
    const run = currentRun();
    state.layer = run && run.layers.length ? run.layers[0].name : null;
    resetLayerState();
    fillLayers(layerSel);
    renderView();
  });
  layerSel.addEventListener("change", () => {
    state.layer = layerSel.value;
    resetLayerState();
    renderView();
  });
  const tabs = el("div", { class: "tabs", role: "tablist" });
  for (const [id, label] of VIEWS) {
    const b = el("button", {
      type: "button",
      class: "tab",
      role: "tab",
      id: `tab-${id}`,
      "aria-selected": state.view === id ? "true" : "false",
      text: label,
    });
    b.addEventListener("click", () => {
      state.view = id;
      for (const t of tabs.children) t.setAttribute("aria-selected", t.id === `tab-${id}` ? "true" : "false");
      renderView();
    });
    tabs.append(b);
  }
  const reload = el("button", { type: "button", class: "reload", id: "reload", title: "Read the log again", text: "Reload" });
  reload.addEventListener("click", () => load(true));
  const header = el(
    "header",
    { class: "bar" },
    el("h1", { text: "RNN Monitor" }),
    el("label", {}, "Run ", runSel),
    el("label", {}, "Layer ", layerSel),
    tabs,
    reload,
  );
  root.append(header, el("div", { id: "notes" }), el("main", { id: "view", "aria-live": "polite" }));
  for (const r of state.runs) runSel.append(el("option", { value: r.run, text: r.run }));
  runSel.value = state.run;
  fillLayers(layerSel);
}

function fillLayers(sel) {
  sel.replaceChildren();
  const run = currentRun();
  for (const l of run ? run.layers : []) {
    const bits = [l.class || l.kind, l.units ? `${l.units} units` : null, l.direction && l.direction !== "forward" ? l.direction : null].filter(Boolean);
    sel.append(el("option", { value: l.name, text: `${l.name} (${bits.join(", ")})` }));
  }
  sel.value = state.layer;
}

function resetLayerState() {
  state.gradEpochIndex = null;
  state.textEpochIndex = null;
  state.textState = null;
  state.unit = null;
}

async function load(force = false) {
  if (force) state.cache.clear();
  let body;
  try {
    body = await api("runs");
  } catch (err) {
    root.replaceChildren(errorNotice(err));
    return;
  }
  state.runs = body.runs || [];
  state.notes = body.notes || [];
  if (!state.runs.length) {
    const again = el("button", { type: "button", id: "check-again", text: "Check again" });
    again.addEventListener("click", () => load(true));
    root.replaceChildren(el("header", { class: "bar" }, el("h1", { text: "RNN Monitor" }), again), emptyState());
    // Training may be about to write its first epoch: look again now and then.
    clearTimeout(state.emptyTimer);
    state.emptyTimer = setTimeout(() => {
      if (!state.runs.length) load(true);
    }, 15000);
    return;
  }
  if (!currentRun()) state.run = state.runs[0].run;
  if (!currentLayer()) {
    state.layer = currentRun().layers.length ? currentRun().layers[0].name : null;
    resetLayerState();
  }
  buildShell();
  const notesBox = root.querySelector("#notes");
  if (state.notes.length) notesBox.append(notice("info", state.notes.join("; ")));
  renderView();
}

function renderView() {
  const view = root.querySelector("#view");
  view.replaceChildren();
  const layer = currentLayer();
  if (!layer) {
    view.append(notice("info", "This run has no recurrent layer in its manifest."));
    return;
  }
  const token = Symbol("render");
  state.renderToken = token;
  const stale = () => state.renderToken !== token;
  if (state.view === "gradients") renderGradients(view, layer, stale);
  else if (state.view === "text") renderText(view, layer, stale);
  else renderHealth(view, layer, stale);
}

function section(title, subtitle, ...children) {
  return el("section", { class: "card" }, el("h2", { text: title }), subtitle ? el("p", { class: "sub", text: subtitle }) : null, ...children);
}

function noProbe(what) {
  return notice(
    "info",
    `No ${what} for this layer: the run was logged without probe data. Pass `,
    el("code", { text: "probe_data=(x, y)" }),
    " to RNNMonitor to record gradients through time and activations.",
  );
}

// --------------------------------------------------------------------------- gradients view
async function renderGradients(view, layer, stale) {
  if (!layer.has || !layer.has.timestep_grad_norm) {
    view.append(noProbe("gradients through time"));
    return;
  }
  const params = { run: state.run, layer: layer.name };
  const banner = el("div", { class: "banner" });
  const overCard = section(
    "Gradient norm through time, over epochs",
    "g[t] = mean over the probe batch of ||dL/dh_t||: how much of the loss's gradient reaches each timestep. Columns: timestep; rows: logged epochs (latest at the bottom). Log colour scale; grey = no value (masked steps).",
  );
  const unitsCard = section("Per-unit gradient at one epoch", "G[t, u] = mean over the batch of |dL/dh_t,u|. Log colour scale; grey = masked steps. Dark rows: units the gradient does not reach.");
  const flowCard = section(
    "Temporal flow",
    "F[k]: gradient from the last state that reaches k steps back (1 = all of it). One curve per logged epoch, dark = early, light = late; the chosen epoch is drawn in red with its horizon (the last k before F drops below the floor).",
  );
  view.append(banner, overCard, unitsCard, flowCard);
  let grads;
  try {
    grads = await api("gradients", params);
  } catch (err) {
    if (!stale()) view.replaceChildren(errorNotice(err));
    return;
  }
  if (stale()) return;
  const sn = samplingNotice(grads.sampling);
  if (sn) banner.append(sn);

  // 1. g[t] heatmap: x = timestep, y = epoch
  const T = grads.timesteps;
  const E = grads.epochs.length;
  const canvas = el("canvas", { id: "grad-heatmap", class: "heatmap", role: "img", "aria-label": `Heatmap of g[t] for ${layer.name}: ${T} timesteps by ${E} epochs` });
  const readout = el("div", { class: "readout", text: "\u00a0" });
  overCard.append(canvas, readout);
  const scale = logScale(grads.min_positive, grads.max);
  const width = panelWidth(overCard) - 32;
  const height = Math.max(180, Math.min(360, 40 + E * 14));
  const geom = drawHeatmap(canvas, {
    rows: E,
    cols: T,
    value: (r, c) => grads.matrix[c][r],
    scale,
    width,
    height,
    xLabel: "timestep t",
    yLabel: "epoch",
    xTick: (c) => String(c),
    yTick: (r) => String(grads.epochs[r]),
    barLabel: "g[t] (log)",
  });
  canvas.dataset.paintedAt = String(Math.round(performance.now()));
  attachHover(canvas, geom, E, T, (r, c) => `epoch ${grads.epochs[r]}, t = ${c}: g = ${fmt(grads.matrix[c][r])}`, readout);

  // 2. per-unit heatmap with an epoch slider
  let uEpochs = (grads.unit_epochs || []).slice();
  if (!uEpochs.length) {
    unitsCard.append(notice("info", "No per-unit gradients were logged for this layer."));
  } else {
    if (state.gradEpochIndex === null || state.gradEpochIndex >= uEpochs.length) state.gradEpochIndex = uEpochs.length - 1;
    const slider = el("input", { type: "range", id: "grad-epoch", min: 0, max: uEpochs.length - 1, step: 1, value: state.gradEpochIndex, "aria-label": "Epoch of the per-unit gradient heatmap" });
    const label = el("output", { for: "grad-epoch", class: "epoch-label", text: `epoch ${uEpochs[state.gradEpochIndex]}` });
    const kindSel = el("select", { id: "grad-kind", "aria-label": "Gradient kind" });
    const kindNames = { timestep_gradients: "through the recurrence: dL/dh_t", output_gradients: "direct path only: dL/d(out_t)" };
    for (const k of grads.unit_kinds) kindSel.append(el("option", { value: k, text: kindNames[k] || k }));
    if (!grads.unit_kinds.includes(state.unitKind)) state.unitKind = grads.unit_kinds[0];
    kindSel.value = state.unitKind;
    const uCanvas = el("canvas", { id: "unit-heatmap", class: "heatmap", role: "img", "aria-label": `Heatmap of G[t, u] for ${layer.name}` });
    const uReadout = el("div", { class: "readout", text: "\u00a0" });
    const uStatus = el("div", { class: "banner" });
    unitsCard.append(
      el("div", { class: "controls" }, el("label", {}, "Epoch ", slider, label), el("label", {}, "Gradient ", kindSel)),
      uStatus,
      uCanvas,
      uReadout,
    );
    const drawUnits = async () => {
      const epoch = uEpochs[state.gradEpochIndex];
      label.textContent = `epoch ${epoch}`;
      let body;
      try {
        body = await api("gradient_units", { ...params, epoch, kind: state.unitKind });
      } catch (err) {
        uStatus.replaceChildren(errorNotice(err));
        return;
      }
      if (stale() || uEpochs[state.gradEpochIndex] !== epoch) return;
      if (body.epochs.join(",") !== uEpochs.join(",")) {
        // G's own epochs (they differ from g's only when TensorBoard sampled them apart).
        uEpochs = body.epochs.slice();
        state.gradEpochIndex = uEpochs.indexOf(body.epoch);
        slider.max = String(uEpochs.length - 1);
        slider.value = String(state.gradEpochIndex);
      }
      uStatus.replaceChildren();
      const U = body.units;
      const Tn = body.timesteps;
      const uh = Math.max(200, Math.min(420, 50 + U * 2));
      const ug = drawHeatmap(uCanvas, {
        rows: U,
        cols: Tn,
        value: (r, c) => body.values[c][r],
        scale: logScale(body.min_positive, body.max),
        width,
        height: uh,
        xLabel: "timestep t",
        yLabel: "unit",
        xTick: (c) => String(c),
        yTick: (r) => String(r),
        barLabel: "G[t,u] (log)",
      });
      uCanvas.dataset.epoch = String(epoch);
      uCanvas.dataset.paintedAt = String(Math.round(performance.now()));
      attachHover(uCanvas, ug, U, Tn, (r, c) => `epoch ${epoch}, t = ${c}, unit ${r}: G = ${fmt(body.values[c][r])}`, uReadout);
      drawFlowCurves();
    };
    const redraw = debounce(drawUnits, 60);
    slider.addEventListener("input", () => {
      state.gradEpochIndex = Number(slider.value);
      label.textContent = `epoch ${uEpochs[state.gradEpochIndex]}`;
      redraw();
    });
    kindSel.addEventListener("change", () => {
      state.unitKind = kindSel.value;
      drawUnits();
    });
    drawUnits();
  }

  // 3. temporal flow
  let flow = null;
  const fCanvas = el("canvas", { id: "flow-chart", role: "img", "aria-label": `Temporal flow curves for ${layer.name}` });
  const fInfo = el("p", { class: "sub" });
  flowCard.append(fCanvas, fInfo);
  const drawFlowCurves = () => {
    if (!flow || stale()) return;
    const n = flow.epochs.length;
    const chosenEpoch = uEpochs.length ? uEpochs[state.gradEpochIndex] : flow.epochs[n - 1];
    let ci = flow.epochs.indexOf(chosenEpoch);
    if (ci < 0) ci = n - 1;
    const K = Math.max(...flow.flow.map((r) => r.length));
    const series = flow.flow.map((row, i) => ({
      x: row.map((_, k) => k),
      y: row,
      color: rgb(ramp(VIRIDIS, n > 1 ? (0.85 * i) / (n - 1) : 0.5)),
      width: 1,
      noDots: true,
    }));
    series.push({ x: flow.flow[ci].map((_, k) => k), y: flow.flow[ci], color: "#d32f2f", width: 2.5, noDots: true });
    const h = flow.horizon[ci];
    drawLines(fCanvas, {
      series,
      width,
      height: 260,
      logY: true,
      xLabel: "steps back from the last state, k",
      xMin: 0,
      xMax: Math.max(1, K - 1),
      hLines: [{ y: flow.floor, label: `floor ${fmt(flow.floor)}`, color: "#757575" }],
      yLogFloor: flow.floor / 1e4,
      markers: h === null ? [] : [{ x: h, label: `horizon k = ${h} (epoch ${flow.epochs[ci]})`, color: "#d32f2f" }],
    });
    fCanvas.dataset.epoch = String(flow.epochs[ci]);
    fInfo.textContent =
      h === null
        ? `Epoch ${flow.epochs[ci]}: the flow is below the floor from the first step.`
        : `Epoch ${flow.epochs[ci]}: gradient reaches ${h} of ${K - 1} steps back (horizon). Horizon over epochs: ${flow.horizon.map((v) => (v === null ? "-" : v)).join(" ")}`;
  };
  if (!layer.has.temporal_flow) {
    flowCard.append(notice("info", "No temporal flow was logged for this layer."));
    return;
  }
  try {
    flow = await api("flow", params);
  } catch (err) {
    flowCard.append(errorNotice(err));
    return;
  }
  if (!stale()) drawFlowCurves();
}

// --------------------------------------------------------------------------- text view
function tokenDisplay(tok) {
  if (tok === "\n") return "\u21b5\n";
  if (tok === "\t") return "\u2192   ";
  if (tok === "") return "\u2205";
  return tok;
}

function regexMask(tokens, pattern) {
  // Token mask of positions overlapping a regex match, tokens joined per sequence.
  const re = new RegExp(pattern, "gu");
  return tokens.map((row) => {
    const text = row.join("");
    const owner = new Int32Array(text.length);
    let p = 0;
    row.forEach((tok, i) => {
      for (let j = 0; j < tok.length; j++) owner[p++] = i;
    });
    const mask = new Uint8Array(row.length);
    re.lastIndex = 0;
    let m;
    let guard = 0;
    while ((m = re.exec(text)) !== null && guard++ < 1e6) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      for (let j = m.index; j < m.index + m[0].length; j++) mask[owner[j]] = 1;
    }
    return mask;
  });
}

async function renderText(view, layer, stale) {
  if (!layer.states || !layer.states.length) {
    view.append(noProbe("activations"));
    return;
  }
  if (!state.textState || !layer.states.includes(state.textState)) state.textState = layer.states.includes("h") ? "h" : layer.states[0];
  const banner = el("div", { class: "banner" });
  const stateSel = el("select", { id: "text-state", "aria-label": "State" });
  const stateNames = { h: "h (output)", c: "c (cell state)" };
  for (const s of layer.states) stateSel.append(el("option", { value: s, text: stateNames[s] || `gate ${s}` }));
  stateSel.value = state.textState;
  const slider = el("input", { type: "range", id: "text-epoch", min: 0, max: 0, step: 1, value: 0, "aria-label": "Epoch of the activations" });
  const epochLabel = el("output", { for: "text-epoch", class: "epoch-label" });
  const rankSel = el("select", { id: "rank-mode", "aria-label": "Rank units by" });
  rankSel.append(el("option", { value: "variance", text: "variance" }), el("option", { value: "regex", text: "regex relevance" }));
  rankSel.value = state.rankMode;
  const regexInput = el("input", { type: "text", id: "regex", value: state.regex, placeholder: "e.g. [\"'] or \\s+ or def", spellcheck: "false", "aria-label": "Regular expression for ranking units" });
  const regexBtn = el("button", { type: "button", id: "regex-apply", text: "Rank" });
  const unitSel = el("select", { id: "unit-select", "aria-label": "Unit" });
  const topUnits = el("div", { class: "top-units", "aria-label": "Top-ranked units" });
  const legend = el("canvas", { id: "text-legend", role: "img", "aria-label": "Colour legend" });
  const rankInfo = el("p", { class: "sub", id: "rank-info" });
  const textBox = el("div", { class: "text-sample", id: "text-sample" });
  const card = section(
    "Activations in the probe text",
    "Each character's background shows the chosen unit's activation (blue negative, white 0, red positive). Hover a character for its value. Rank units by variance, or by relevance to a regex: mean activation on matching characters minus elsewhere.",
    el(
      "div",
      { class: "controls" },
      el("label", {}, "State ", stateSel),
      el("label", {}, "Epoch ", slider, epochLabel),
      el("label", {}, "Rank by ", rankSel),
      el("label", { class: "regex-label" }, "Regex ", regexInput),
      regexBtn,
      el("label", {}, "Unit ", unitSel),
    ),
    topUnits,
    rankInfo,
    legend,
    textBox,
  );
  view.append(banner, card);

  let current = null; // last activations response + decoded data
  const loadEpoch = async (epochParam) => {
    let body;
    try {
      body = await api("activations", { run: state.run, layer: layer.name, state: state.textState, epoch: epochParam });
    } catch (err) {
      if (err.status === 404 && epochParam !== undefined) return loadEpoch(undefined); // e.g. a state sampled at other epochs
      banner.replaceChildren(errorNotice(err));
      return;
    }
    if (stale()) return;
    banner.replaceChildren();
    const sn = samplingNotice(body.sampling);
    if (sn) banner.append(sn);
    if (!body.data_f32) body.data_f32 = decodeFloat16(body.data);
    current = body;
    slider.max = String(body.epochs.length - 1);
    state.textEpochIndex = body.epochs.indexOf(body.epoch);
    slider.value = String(state.textEpochIndex);
    epochLabel.textContent = `epoch ${body.epoch}`;
    rank();
  };

  const unitValues = (u) => {
    const [S, T, U] = current.shape;
    const out = new Float32Array(S * T);
    for (let i = 0; i < S * T; i++) out[i] = current.data_f32[i * U + u];
    return out;
  };

  const rank = () => {
    if (!current) return;
    const [S, T, U] = current.shape;
    let order = current.ranking.slice();
    const ids = current.unit_ids || [];
    const uid = (u) => (ids[u] !== undefined ? ids[u] : u);
    let scoreLabel = (u) => `var ${fmt(current.variance[u])}`;
    state.mask = null;
    rankInfo.textContent = "";
    if (state.rankMode === "regex" && state.regex) {
      if (!current.tokens) {
        rankInfo.textContent = "No vocabulary was logged, so the text cannot be matched; ranking by variance.";
      } else {
        let mask;
        try {
          mask = regexMask(current.tokens, state.regex);
        } catch (err) {
          rankInfo.textContent = `Not a valid regular expression: ${err.message}`;
          mask = null;
        }
        if (mask) {
          const on = new Float64Array(U);
          const off = new Float64Array(U);
          const nOn = new Float64Array(U);
          const nOff = new Float64Array(U);
          for (let s = 0; s < S; s++) {
            for (let t = 0; t < T; t++) {
              const m = mask[s] && t < mask[s].length ? mask[s][t] : 0;
              const base = (s * T + t) * U;
              for (let u = 0; u < U; u++) {
                const v = current.data_f32[base + u];
                if (Number.isNaN(v)) continue;
                if (m) {
                  on[u] += v;
                  nOn[u]++;
                } else {
                  off[u] += v;
                  nOff[u]++;
                }
              }
            }
          }
          const matched = mask.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
          if (matched === 0 || matched === S * T) {
            rankInfo.textContent = `The regex matches ${matched === 0 ? "no" : "every"} character of the sample; ranking by variance.`;
          } else {
            const rel = new Float64Array(U);
            for (let u = 0; u < U; u++) rel[u] = nOn[u] && nOff[u] ? on[u] / nOn[u] - off[u] / nOff[u] : NaN;
            order = Array.from({ length: U }, (_, u) => u).sort((a, b) => (Math.abs(rel[b]) || -1) - (Math.abs(rel[a]) || -1));
            scoreLabel = (u) => `${rel[u] >= 0 ? "+" : ""}${fmt(rel[u])}`;
            rankInfo.textContent = `${matched} of ${S * T} characters match. Score: mean activation on matches minus elsewhere (positive: more active on matches).`;
            state.mask = mask;
          }
        }
      }
    }
    current.order = order;
    unitSel.replaceChildren();
    for (const u of order) unitSel.append(el("option", { value: u, text: `unit ${uid(u)} \u00b7 ${scoreLabel(u)}` }));
    topUnits.replaceChildren(el("span", { class: "sub", text: "Top units: " }));
    for (const u of order.slice(0, 8)) {
      const b = el("button", { type: "button", class: "chip", "data-unit": u, text: `${uid(u)} (${scoreLabel(u)})` });
      b.addEventListener("click", () => {
        state.unit = u;
        unitSel.value = String(u);
        paint();
      });
      topUnits.append(b);
    }
    if (state.unit === null || state.unit >= U || state.rankMode === "regex") state.unit = order[0];
    unitSel.value = String(state.unit);
    paint();
  };

  const paint = () => {
    if (!current) return;
    const [S, T] = current.shape;
    const u = state.unit;
    const vals = unitValues(u);
    const shownId = current.unit_ids && current.unit_ids[u] !== undefined ? current.unit_ids[u] : u;
    let maxAbs = 0;
    for (const v of vals) if (!Number.isNaN(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
    const scale = maxAbs > 0 ? maxAbs : 1;
    for (const b of topUnits.querySelectorAll("button")) b.setAttribute("aria-pressed", b.dataset.unit === String(u) ? "true" : "false");
    drawDivergingLegend(legend, scale, `${current.state} of unit ${shownId}, epoch ${current.epoch}`);
    const frag = document.createDocumentFragment();
    for (let s = 0; s < S; s++) {
      const pre = el("pre", { class: "seq", "aria-label": `Sequence ${s + 1}` });
      for (let t = 0; t < T; t++) {
        const tok = current.tokens && current.tokens[s] ? current.tokens[s][t] : "\u00b7";
        const v = vals[s * T + t];
        const span = document.createElement("span");
        span.textContent = tokenDisplay(tok === undefined ? "\u00b7" : tok);
        const c = divergingColor(v, scale);
        span.style.backgroundColor = rgb(c);
        if (Math.abs(v) / scale > 0.6) span.className = "strong";
        if (state.mask && state.mask[s] && state.mask[s][t]) span.classList.add("match");
        span.title = `${JSON.stringify(tok)}  t=${t}  unit ${shownId} ${current.state} = ${Number.isNaN(v) ? "n/a (masked)" : v.toFixed(3)}`;
        pre.append(span);
      }
      frag.append(pre);
    }
    textBox.replaceChildren(frag);
    textBox.dataset.epoch = String(current.epoch);
    textBox.dataset.unit = String(shownId);
  };

  stateSel.addEventListener("change", () => {
    state.textState = stateSel.value;
    loadEpoch(current ? current.epoch : undefined);
  });
  const onSlide = debounce(() => {
    if (current) loadEpoch(current.epochs[Number(slider.value)]);
  }, 60);
  slider.addEventListener("input", () => {
    if (current) epochLabel.textContent = `epoch ${current.epochs[Number(slider.value)]}`;
    onSlide();
  });
  rankSel.addEventListener("change", () => {
    state.rankMode = rankSel.value;
    rank();
  });
  const applyRegex = () => {
    state.regex = regexInput.value;
    state.rankMode = state.regex ? "regex" : "variance";
    rankSel.value = state.rankMode;
    rank();
  };
  regexBtn.addEventListener("click", applyRegex);
  regexInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") applyRegex();
  });
  unitSel.addEventListener("change", () => {
    state.unit = Number(unitSel.value);
    paint();
  });
  const startEpoch = state.textEpochIndex;
  await loadEpoch(undefined);
  if (current && startEpoch !== null && startEpoch < current.epochs.length && current.epochs[startEpoch] !== current.epoch) {
    loadEpoch(current.epochs[startEpoch]);
  }
}

function drawDivergingLegend(canvas, scale, caption) {
  const width = 360;
  const height = 40;
  const ctx = setupCanvas(canvas, width, height);
  const x0 = 40;
  const w = 240;
  for (let i = 0; i < w; i++) {
    ctx.fillStyle = rgb(ramp(DIVERGING, i / (w - 1)));
    ctx.fillRect(x0 + i, 4, 1, 14);
  }
  ctx.strokeStyle = "#9e9e9e";
  ctx.strokeRect(x0 - 0.5, 3.5, w + 1, 15);
  ctx.fillStyle = "#424242";
  ctx.textBaseline = "top";
  ctx.textAlign = "center";
  ctx.fillText(`-${fmt(scale)}`, x0, 22);
  ctx.fillText("0", x0 + w / 2, 22);
  ctx.fillText(`+${fmt(scale)}`, x0 + w, 22);
  canvas.setAttribute("aria-label", `Colour legend: ${caption}, from -${fmt(scale)} (blue) through 0 (white) to +${fmt(scale)} (red)`);
  canvas.title = caption;
}

// --------------------------------------------------------------------------- health view
const GATE_COLORS = ["#1976d2", "#e65100", "#2e7d32", "#6a1b9a", "#c2185b", "#00838f"];
const HEALTH_TITLES = {
  dead_ratio: "dead units (fraction)",
  exploding_ratio: "exploding units (fraction)",
  saturated_ratio: "saturated units (fraction)",
  grad_norm: "weight-gradient norm",
  grad_horizon: "gradient horizon (steps)",
};

async function renderHealth(view, layer, stale) {
  const params = { run: state.run, layer: layer.name };
  const banner = el("div", { class: "banner" });
  const healthCard = section("Unit and gradient health", "Per logged epoch. Dead: output std < threshold; saturated: tanh |h| > 0.99 or sigmoid gates outside [0.1, 0.9] most of the time; horizon: steps back the gradient still reaches.");
  const gateCard = section("Per-gate weights", "L2 norm of each gate's block of the kernel, recurrent kernel and bias, and its update ratio ||W_e - W_prev|| / ||W_prev||.");
  const alertCard = section("Alerts", null);
  view.append(banner, healthCard, gateCard, alertCard);
  let health;
  let alerts;
  try {
    [health, alerts] = await Promise.all([api("health", params), api("alerts", { run: state.run })]);
  } catch (err) {
    if (!stale()) view.replaceChildren(errorNotice(err));
    return;
  }
  if (stale()) return;
  const full = panelWidth(view) - 44;
  const cols = Math.max(1, Math.floor(full / 280));
  const w = Math.floor((full - (cols - 1) * 12) / cols);
  const h = 150;
  let e0 = Infinity;
  let e1 = -Infinity;
  for (const s of Object.values(health.series)) {
    if (s.epochs.length) {
      e0 = Math.min(e0, s.epochs[0]);
      e1 = Math.max(e1, s.epochs[s.epochs.length - 1]);
    }
  }
  const xr = Number.isFinite(e0) ? { xMin: e0, xMax: Math.max(e1, e0 + 1) } : {};
  const grid = el("div", { class: "grid", id: "health-grid" });
  healthCard.append(grid);
  if (!health.health.length) healthCard.append(noProbe("unit health measurements"));
  for (const name of health.health) {
    const s = health.series[name];
    const c = el("canvas", { class: "small", role: "img", "aria-label": `${name} over epochs` });
    grid.append(c);
    const ratio = name.endsWith("_ratio");
    drawLines(c, {
      series: [{ x: s.epochs, y: s.values, color: "#1565c0" }],
      width: w,
      height: h,
      title: HEALTH_TITLES[name] || name,
      ...xr,
      yMin: 0,
      yMax: ratio && !s.values.some((v) => v > 0) ? 1 : undefined,
    });
  }

  const gates = health.gates.length ? health.gates : [...new Set(Object.keys(health.series).filter((k) => k.split("/").length === 3).map((k) => k.split("/")[1]))];
  const legend = el("div", { class: "legend" }, gates.map((g, i) => el("span", { class: "key" }, el("span", { class: "swatch", style: `background:${GATE_COLORS[i % GATE_COLORS.length]}` }), `gate ${g}`)));
  const ggrid = el("div", { class: "grid", id: "gate-grid" });
  gateCard.append(legend, ggrid);
  const nonfinite = [];
  for (const role of health.roles) {
    for (const stat of ["l2", "update_ratio"]) {
      const series = gates
        .map((g, i) => ({ g, i, s: health.series[`${role}/${g}/${stat}`] }))
        .filter((o) => o.s)
        .map((o) => ({ x: o.s.epochs, y: o.s.values, color: GATE_COLORS[o.i % GATE_COLORS.length] }));
      if (!series.length) continue;
      const c = el("canvas", { class: "small", role: "img", "aria-label": `${role} ${stat} per gate over epochs` });
      ggrid.append(c);
      drawLines(c, { series, width: w, height: h, ...xr, yMin: stat === "l2" ? 0 : undefined, title: `${role.replace("_", " ")} \u00b7 ${stat === "l2" ? "L2 norm" : "update ratio"}`, logY: stat === "update_ratio" && series.some((s) => s.y.some((v) => v > 0)) });
    }
    for (const g of gates) {
      const s = health.series[`${role}/${g}/nonfinite`];
      if (s && s.values.some((v) => v)) nonfinite.push(`${role}/${g}: up to ${Math.max(...s.values)} NaN/Inf values`);
    }
  }
  gateCard.append(nonfinite.length ? notice("error", `Non-finite weights: ${nonfinite.join("; ")}`) : el("p", { class: "sub ok", text: "No NaN or Inf in the weights of this layer." }));

  // Alerts
  const sn = samplingNotice(alerts.sampling);
  if (sn) alertCard.append(sn);
  if (!alerts.enabled) {
    alertCard.append(el("p", { class: "sub", text: "No alert records in this run (alerts were off, or an older rnn-monitor wrote it)." }));
  } else if (!alerts.alerts.length) {
    alertCard.append(el("p", { class: "sub ok", text: "No alerts were raised." }));
  } else {
    const table = el(
      "table",
      { class: "alerts", id: "alerts-table" },
      el("thead", {}, el("tr", {}, ["Epoch", "Layer", "Kind", "Message"].map((t) => el("th", { scope: "col", text: t })))),
      el(
        "tbody",
        {},
        alerts.alerts.map((a) =>
          el(
            "tr",
            { class: a.layer === layer.name ? "this-layer" : null },
            el("td", { class: "num", text: a.epoch }),
            el("td", { text: a.layer }),
            el("td", {}, el("span", { class: `badge badge-${a.kind.replace(/[^a-z_]/g, "")}`, text: a.kind })),
            el("td", { text: a.message }),
          ),
        ),
      ),
    );
    alertCard.append(table);
  }
}

// --------------------------------------------------------------------------- entry point
function ensureStylesheet() {
  if (document.querySelector("link[data-rnn-monitor]")) return;
  const link = el("link", { rel: "stylesheet", href: "./static/style.css", "data-rnn-monitor": "1" });
  document.head.append(link);
}

export async function render() {
  ensureStylesheet();
  document.title = "RNN Monitor";
  root = document.getElementById("rnn-monitor") || el("div", { id: "rnn-monitor" });
  document.body.append(root);
  root.replaceChildren(el("p", { class: "loading", text: "Loading RNN Monitor data\u2026" }));
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (state.runs.length) renderView();
    }, 200);
  });
  await load();
}
