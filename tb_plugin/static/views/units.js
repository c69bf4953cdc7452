// The Units view: what each unit does and how it became so. The Fourier heat surface (units x
// frequency, most periodic first) with the periodic units found, and a unit's card: the input it
// likes to see, and across epochs its period and strength, saturation and relevance to a regex.

import { panelWidth } from "../lib/chart.js";
import { logScale } from "../lib/colour.js";
import { debounce, el, errorNotice, notice, samplingNotice, section } from "../lib/dom.js";
import { api, decodeFloat16 } from "../lib/fetch.js";
import { fmt } from "../lib/format.js";
import { attachHover, drawHeatmap } from "../lib/heatmap.js";
import { drawLines } from "../lib/lines.js";

function showToken(tok) {
  // Thin or invisible tokens get a visible stand-in on the axis.
  return { " ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "": "\u2205" }[tok] ?? tok;
}

function noUnits() {
  return notice(
    "info",
    "No unit descriptions for this layer. They are logged when ",
    el("code", { text: "probe_data" }),
    " holds token ids [batch, time] or rows [batch, time, features].",
  );
}

export async function renderUnits(view, layer, stale, state) {
  if (!layer.has || !layer.has.periodicity) {
    view.append(noUnits());
    return;
  }
  const v = surfaceParts(layer, stale, state);
  view.append(v.banner, v.surfaceCard, v.cardCard);
  try {
    v.overview = await api("units", { run: state.run, layer: layer.name });
  } catch (err) {
    if (!stale()) view.replaceChildren(errorNotice(err));
    return;
  }
  if (stale()) return;
  const sampled = samplingNotice(v.overview.sampling);
  if (sampled) v.banner.append(sampled);
  v.epochs = v.overview.epochs;
  v.slider.max = String(v.epochs.length - 1);
  v.slider.value = String(state.unitsEpochIndex ?? v.epochs.length - 1);
  v.slider.addEventListener("input", debounce(() => showEpoch(v), 120));
  await showEpoch(v);
  setupUnitCard(v);
  const first = state.unitCard ?? (v.overview.periodic.length ? v.overview.periodic[0].unit : v.overview.order[0]);
  await selectUnit(v, Math.min(first, v.overview.units - 1));
}

// The view's cards and the surface's controls; `v` is what the view's parts share.
function surfaceParts(layer, stale, state) {
  const v = { layer, stale, state, banner: el("div", { class: "banner" }) };
  v.surfaceCard = section(
    "Periodic units: the Fourier heat surface",
    "Each row is a unit (most periodic first), each column a frequency in cycles per step; colour is the unit's share of its power at that frequency (log scale). Units whose peak holds more than the threshold of their power and repeats at least twice in the probe window are listed as periodic. Click a row or a unit to open its card.",
  );
  v.cardCard = section("Unit", null);
  v.slider = el("input", { type: "range", id: "units-epoch", min: "0", max: "0", step: "1", value: "0", "aria-label": "Epoch" });
  v.epochLabel = el("span", { class: "epoch-label" });
  v.canvas = el("canvas", { id: "fourier", role: "img", "aria-label": "Fourier heat surface: units by frequency" });
  v.readout = el("div", { class: "readout", text: "\u00a0" });
  v.chips = el("div", { class: "chips", id: "periodic-units" });
  v.surfaceCard.append(el("div", { class: "controls" }, el("label", {}, "Epoch ", v.slider), v.epochLabel), v.canvas, v.readout, v.chips);
  return v;
}

// The surface at the slider's epoch (the overview's own epoch needs no request).
async function showEpoch(v) {
  const { epochs, overview } = v;
  const index = Number(v.slider.value);
  v.state.unitsEpochIndex = index;
  v.epochLabel.textContent = `epoch ${epochs[index]}`;
  let body = overview;
  if (epochs[index] !== overview.epoch) {
    try {
      body = await api("units", { run: v.state.run, layer: v.layer.name, epoch: epochs[index] });
    } catch (err) {
      v.readout.textContent = err.message;
      return;
    }
    if (v.stale()) return;
  }
  drawSurface(v, body);
  drawChips(v, body);
}

// The Fourier heat surface: units (most periodic first) x frequency, power share (log).
function drawSurface(v, body) {
  const { canvas } = v;
  const [U, F] = body.shape;
  const share = decodeFloat16(body.share);
  let lo = Infinity;
  let hi = 0;
  for (const x of share) {
    if (x > 0) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
  }
  const geom = drawHeatmap(canvas, {
    rows: U,
    cols: F,
    value: (r, c) => share[r * F + c],
    scale: logScale(Math.max(lo, hi * 1e-4), hi || 1),
    width: panelWidth(v.surfaceCard) - 32,
    height: Math.max(180, Math.min(420, 50 + U * 3)),
    xLabel: "frequency (cycles per step)",
    yLabel: "unit (most periodic first)",
    xTick: (c) => fmt(body.freqs[c], 2),
    yTick: (r) => `#${body.order[r]}`,
    barLabel: "power share (log)",
  });
  canvas.dataset.epoch = String(body.epoch);
  canvas.dataset.paintedAt = String(Math.round(performance.now()));
  const describe = (r, c) => {
    const u = body.order[r];
    return `unit ${u}, ${fmt(body.freqs[c], 3)} cycles/step (period ${fmt(1 / body.freqs[c], 3)} steps): ${fmt(share[r * F + c])} of its power; peak ${fmt(body.peak_freq[u], 3)}, strength ${fmt(body.strength[u])}`;
  };
  attachHover(canvas, geom, U, F, describe, v.readout);
  canvas.onclick = (ev) => {
    const rect = canvas.getBoundingClientRect();
    const y = ev.clientY - rect.top - geom.m.top;
    if (y < 0 || y >= geom.ph) return;
    selectUnit(v, body.order[Math.min(U - 1, Math.floor((y / geom.ph) * U))]);
  };
}

// The periodic units found at this epoch, as buttons that open the unit's card.
function drawChips(v, body) {
  v.chips.replaceChildren(
    el("span", { class: "chips-label", text: body.periodic.length ? `Periodic units (strength > ${body.threshold}):` : `No unit has more than ${body.threshold} of its power at one frequency that repeats at least ${body.min_cycles} times in the probe window, at epoch ${body.epoch}.` }),
    ...body.periodic.slice(0, 24).map((p) => {
      const b = el("button", { type: "button", class: "chip", text: `#${p.unit}: period ${fmt(p.period, 3)}, ${Math.round(p.strength * 100)}%` });
      b.addEventListener("click", () => selectUnit(v, p.unit));
      return b;
    }),
  );
}

// The unit card's controls (unit number, feature regex) and its body.
function setupUnitCard(v) {
  const { overview, state } = v;
  v.unitInput = el("input", { type: "number", id: "unit-input", min: "0", max: String(overview.units - 1), value: "0", "aria-label": "Unit" });
  v.regexInput = el("input", { type: "text", id: "unit-regex", value: state.regex, placeholder: "feature regex, e.g. \\s or [\"']", spellcheck: "false", "aria-label": "Feature regex" });
  v.body = el("div", { id: "unit-card" });
  v.cardCard.replaceChildren(
    el("h2", { text: "Unit" }),
    el("p", { class: "sub", text: "The input the unit likes to see: the activation-weighted average of the input window before each step it fires on (weights: activation floored at 0; the last row is the token just read). Across epochs: its spectrum's peak and strength, how often it saturates (|h| > 0.99) on the probe text, and its relevance to a feature (mean activation on matching tokens minus elsewhere)." }),
    el("div", { class: "controls" }, el("label", {}, "Unit ", v.unitInput), el("label", {}, "Feature ", v.regexInput)),
    v.body,
  );
  v.unitInput.addEventListener("change", () => selectUnit(v, Math.max(0, Math.min(overview.units - 1, Number(v.unitInput.value) || 0))));
  v.regexInput.addEventListener("change", () => {
    state.regex = v.regexInput.value;
    selectUnit(v, Number(v.unitInput.value) || 0);
  });
}

async function selectUnit(v, u) {
  v.state.unitCard = u;
  v.unitInput.value = String(u);
  let card;
  try {
    card = await api("unit", { run: v.state.run, layer: v.layer.name, unit: u, epoch: v.epochs[Number(v.slider.value)], regex: v.regexInput.value || undefined });
  } catch (err) {
    v.body.replaceChildren(errorNotice(err));
    return;
  }
  if (v.stale()) return;
  drawCard(v, card);
}

function drawCard(v, card) {
  v.body.replaceChildren();
  const full = panelWidth(v.cardCard) - 32;
  if (card.average_input) drawAverageInput(v.body, card, full);
  else v.body.append(notice("info", "No average input at this epoch (it is left out first when the byte cap is reached)."));
  drawCardCharts(v.body, card, full);
  const fav = card.favourite.map((f, i) => (f === null ? null : `${card.epochs[i]}: ${JSON.stringify(f)}`)).filter(Boolean);
  if (fav.length) v.body.append(el("p", { class: "sub", id: "unit-favourite", text: `Favourite token just read, by epoch: ${fav.join(", ")}` }));
  if (card.note) v.body.append(notice("info", card.note));
}

// The input the unit likes to see: window position x input column, weight (log).
function drawAverageInput(body, card, full) {
  const a = card.average_input;
  const W = a.values.length;
  const D = a.columns.length;
  let hi = 0;
  let lo = Infinity;
  for (const row of a.values) for (const x of row) if (x !== null && x > 0) { hi = Math.max(hi, x); lo = Math.min(lo, x); }
  const c = el("canvas", { id: "average-input", role: "img", "aria-label": `average input of unit ${card.unit}` });
  const r = el("div", { class: "readout", text: "\u00a0" });
  body.append(el("h3", { text: `Unit ${card.unit}: the input it likes to see (epoch ${card.epoch})` }), c, r);
  const g = drawHeatmap(c, {
    rows: W,
    cols: D,
    value: (row, col) => a.values[row][col],
    scale: logScale(Math.max(lo, hi * 1e-3), hi || 1),
    width: Math.min(full, 140 + D * 44),
    height: Math.max(160, 60 + W * 18),
    xLabel: a.kind === "tokens" ? "token (the unit's top tokens)" : "input feature",
    yLabel: "window position (last = just read)",
    xTick: (col) => showToken(a.columns[col]),
    xTicks: Array.from({ length: D }, (_, col) => col),
    yTick: (row) => (row === W - 1 ? "t" : `t-${W - 1 - row}`),
    barLabel: "weight (log)",
  });
  attachHover(c, g, W, D, (row, col) => `position t-${W - 1 - row}, ${JSON.stringify(a.columns[col])}: ${fmt(a.values[row][col])}`, r);
}

// Across epochs: spectrum strength, period, saturation and (with a regex) relevance.
function drawCardCharts(body, card, full) {
  const grid = el("div", { class: "grid" });
  body.append(grid);
  const w = Math.max(260, Math.floor((full - 24) / 3));
  const xr = { xMin: card.epochs[0], xMax: Math.max(card.epochs[card.epochs.length - 1], card.epochs[0] + 1) };
  const chart = (id, title, series, extra = {}) => {
    const holder = el("div", { class: "small", id, role: "figure", "aria-label": title });
    grid.append(holder);
    drawLines(holder, { series: series.map((s) => ({ name: title, ...s })), width: w, height: 160, title, xLabel: "epoch", ...xr, ...extra });
  };
  chart("unit-strength", "spectrum strength", [{ x: card.epochs, y: card.strength, color: "#6a1b9a" }], { yMin: 0, yMax: 1, yLabel: "peak share of power" });
  chart("unit-period", "period at the peak", [{ x: card.epochs, y: card.peak_freq.map((f) => (f ? 1 / f : null)), color: "#00838f" }], { yMin: 0, yLabel: "steps" });
  if (card.saturation.length) chart("unit-saturation", "saturation (|h| > 0.99)", [{ x: card.activation_epochs, y: card.saturation, color: "#e65100" }], { yMin: 0, yMax: 1, yLabel: "fraction of steps" });
  if (card.relevance) chart("unit-relevance", `relevance to /${card.regex}/`, [{ x: card.activation_epochs, y: card.relevance, color: "#1565c0" }], { yLabel: "mean in - mean out" });
}
