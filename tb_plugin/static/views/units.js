// The Units view: what each unit does and how it became so. The Fourier heat surface (units x
// frequency, most periodic first) with the periodic units found, and a unit's card: the input it
// likes to see, and across epochs its period and strength, saturation and relevance to a regex.

import { drawLines, panelWidth } from "../lib/chart.js";
import { logScale } from "../lib/colour.js";
import { debounce, el, errorNotice, notice, samplingNotice, section } from "../lib/dom.js";
import { api, decodeFloat16 } from "../lib/fetch.js";
import { fmt } from "../lib/format.js";
import { attachHover, drawHeatmap } from "../lib/heatmap.js";

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
  const banner = el("div", { class: "banner" });
  const surfaceCard = section(
    "Periodic units: the Fourier heat surface",
    "Each row is a unit (most periodic first), each column a frequency in cycles per step; colour is the unit's share of its power at that frequency (log scale). Units whose peak holds more than the threshold of their power and repeats at least twice in the probe window are listed as periodic. Click a row or a unit to open its card.",
  );
  const cardCard = section("Unit", null);
  view.append(banner, surfaceCard, cardCard);
  const slider = el("input", { type: "range", id: "units-epoch", min: "0", max: "0", step: "1", value: "0", "aria-label": "Epoch" });
  const epochLabel = el("span", { class: "epoch-label" });
  const canvas = el("canvas", { id: "fourier", role: "img", "aria-label": "Fourier heat surface: units by frequency" });
  const readout = el("div", { class: "readout", text: "\u00a0" });
  const chips = el("div", { class: "chips", id: "periodic-units" });
  surfaceCard.append(el("div", { class: "controls" }, el("label", {}, "Epoch ", slider), epochLabel), canvas, readout, chips);

  let overview;
  try {
    overview = await api("units", { run: state.run, layer: layer.name });
  } catch (err) {
    if (!stale()) view.replaceChildren(errorNotice(err));
    return;
  }
  if (stale()) return;
  const sampled = samplingNotice(overview.sampling);
  if (sampled) banner.append(sampled);
  const epochs = overview.epochs;
  slider.max = String(epochs.length - 1);
  slider.value = String(state.unitsEpochIndex ?? epochs.length - 1);

  const drawSurface = (body) => {
    const [U, F] = body.shape;
    const share = decodeFloat16(body.share);
    let lo = Infinity;
    let hi = 0;
    for (const v of share) {
      if (v > 0) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    const width = panelWidth(surfaceCard) - 32;
    const height = Math.max(180, Math.min(420, 50 + U * 3));
    const geom = drawHeatmap(canvas, {
      rows: U,
      cols: F,
      value: (r, c) => share[r * F + c],
      scale: logScale(Math.max(lo, hi * 1e-4), hi || 1),
      width,
      height,
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
    attachHover(canvas, geom, U, F, describe, readout);
    canvas.onclick = (ev) => {
      const rect = canvas.getBoundingClientRect();
      const y = ev.clientY - rect.top - geom.m.top;
      if (y < 0 || y >= geom.ph) return;
      selectUnit(body.order[Math.min(U - 1, Math.floor((y / geom.ph) * U))]);
    };
    chips.replaceChildren(
      el("span", { class: "chips-label", text: body.periodic.length ? `Periodic units (strength > ${body.threshold}):` : `No unit has more than ${body.threshold} of its power at one frequency that repeats at least ${body.min_cycles} times in the probe window, at epoch ${body.epoch}.` }),
      ...body.periodic.slice(0, 24).map((p) => {
        const b = el("button", { type: "button", class: "chip", text: `#${p.unit}: period ${fmt(p.period, 3)}, ${Math.round(p.strength * 100)}%` });
        b.addEventListener("click", () => selectUnit(p.unit));
        return b;
      }),
    );
  };

  const showEpoch = async () => {
    const index = Number(slider.value);
    state.unitsEpochIndex = index;
    epochLabel.textContent = `epoch ${epochs[index]}`;
    let body = overview;
    if (epochs[index] !== overview.epoch) {
      try {
        body = await api("units", { run: state.run, layer: layer.name, epoch: epochs[index] });
      } catch (err) {
        readout.textContent = err.message;
        return;
      }
      if (stale()) return;
    }
    drawSurface(body);
  };
  slider.addEventListener("input", debounce(showEpoch, 120));
  await showEpoch();

  // The unit's card
  const unitInput = el("input", { type: "number", id: "unit-input", min: "0", max: String(overview.units - 1), value: "0", "aria-label": "Unit" });
  const regexInput = el("input", { type: "text", id: "unit-regex", value: state.regex, placeholder: "feature regex, e.g. \\s or [\"']", spellcheck: "false", "aria-label": "Feature regex" });
  const body = el("div", { id: "unit-card" });
  cardCard.replaceChildren(
    el("h2", { text: "Unit" }),
    el("p", { class: "sub", text: "The input the unit likes to see: the activation-weighted average of the input window before each step it fires on (weights: activation floored at 0; the last row is the token just read). Across epochs: its spectrum's peak and strength, how often it saturates (|h| > 0.99) on the probe text, and its relevance to a feature (mean activation on matching tokens minus elsewhere)." }),
    el("div", { class: "controls" }, el("label", {}, "Unit ", unitInput), el("label", {}, "Feature ", regexInput)),
    body,
  );

  async function selectUnit(u) {
    state.unitCard = u;
    unitInput.value = String(u);
    let card;
    try {
      card = await api("unit", { run: state.run, layer: layer.name, unit: u, epoch: epochs[Number(slider.value)], regex: regexInput.value || undefined });
    } catch (err) {
      body.replaceChildren(errorNotice(err));
      return;
    }
    if (stale()) return;
    drawCard(card);
  }

  const drawCard = (card) => {
    body.replaceChildren();
    const full = panelWidth(cardCard) - 32;
    if (card.average_input) {
      const a = card.average_input;
      const W = a.values.length;
      const D = a.columns.length;
      let hi = 0;
      let lo = Infinity;
      for (const row of a.values) for (const v of row) if (v !== null && v > 0) { hi = Math.max(hi, v); lo = Math.min(lo, v); }
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
    } else {
      body.append(notice("info", "No average input at this epoch (it is left out first when the byte cap is reached)."));
    }
    const grid = el("div", { class: "grid" });
    body.append(grid);
    const w = Math.max(260, Math.floor((full - 24) / 3));
    const xr = { xMin: card.epochs[0], xMax: Math.max(card.epochs[card.epochs.length - 1], card.epochs[0] + 1) };
    const chart = (id, title, series, extra = {}) => {
      const cv = el("canvas", { class: "small", id, role: "img", "aria-label": title });
      grid.append(cv);
      drawLines(cv, { series, width: w, height: 160, title, xLabel: "epoch", ...xr, ...extra });
    };
    chart("unit-strength", "spectrum strength", [{ x: card.epochs, y: card.strength, color: "#6a1b9a" }], { yMin: 0, yMax: 1, yLabel: "peak share of power" });
    chart("unit-period", "period at the peak", [{ x: card.epochs, y: card.peak_freq.map((f) => (f ? 1 / f : null)), color: "#00838f" }], { yMin: 0, yLabel: "steps" });
    if (card.saturation.length) chart("unit-saturation", "saturation (|h| > 0.99)", [{ x: card.activation_epochs, y: card.saturation, color: "#e65100" }], { yMin: 0, yMax: 1, yLabel: "fraction of steps" });
    if (card.relevance) chart("unit-relevance", `relevance to /${card.regex}/`, [{ x: card.activation_epochs, y: card.relevance, color: "#1565c0" }], { yLabel: "mean in - mean out" });
    const fav = card.favourite.map((f, i) => (f === null ? null : `${card.epochs[i]}: ${JSON.stringify(f)}`)).filter(Boolean);
    if (fav.length) body.append(el("p", { class: "sub", id: "unit-favourite", text: `Favourite token just read, by epoch: ${fav.join(", ")}` }));
    if (card.note) body.append(notice("info", card.note));
  };

  unitInput.addEventListener("change", () => selectUnit(Math.max(0, Math.min(overview.units - 1, Number(unitInput.value) || 0))));
  regexInput.addEventListener("change", () => {
    state.regex = regexInput.value;
    selectUnit(Number(unitInput.value) || 0);
  });
  const first = state.unitCard ?? (overview.periodic.length ? overview.periodic[0].unit : overview.order[0]);
  await selectUnit(Math.min(first, overview.units - 1));
}
