// "Gradients through time" view: g[t] over epochs, G[t, u] at one epoch (epoch slider), and
// the temporal flow F[k] with its horizon.

import { VIRIDIS, logScale, ramp, rgb } from "../lib/colour.js";
import { panelWidth } from "../lib/chart.js";
import { debounce, el, errorNotice, noProbe, notice, samplingNotice, section } from "../lib/dom.js";
import { api, decodeGrid } from "../lib/fetch.js";
import { fmt } from "../lib/format.js";
import { attachHover, drawHeatmap } from "../lib/heatmap.js";
import { drawLines } from "../lib/lines.js";

const KIND_NAMES = { timestep_gradients: "through the recurrence: dL/dh_t", output_gradients: "direct path only: dL/d(out_t)" };

// The view's cards, empty: banner (sampling), g[t] over epochs, G[t, u], temporal flow.
function gradientCards() {
  return {
    banner: el("div", { class: "banner" }),
    over: section(
      "Gradient norm through time, over epochs",
      "g[t] = mean over the probe batch of ||dL/dh_t||: how much of the loss's gradient reaches each timestep. Columns: timestep; rows: logged epochs (latest at the bottom). Log colour scale; grey = no value (masked steps).",
    ),
    units: section("Per-unit gradient at one epoch", "G[t, u] = mean over the batch of |dL/dh_t,u|. Log colour scale; grey = masked steps. Dark rows: units the gradient does not reach."),
    flow: section(
      "Temporal flow",
      "F[k]: gradient from the last state that reaches k steps back (1 = all of it). One curve per logged epoch, dark = early, light = late; the chosen epoch is drawn in red with its horizon (the last k before F drops below the floor).",
    ),
  };
}

// state: the page's shared state (app.js): run, gradEpochIndex, unitKind.
export async function renderGradients(view, layer, stale, state) {
  if (!layer.has || !layer.has.timestep_grad_norm) {
    view.append(noProbe("gradients through time", layer.missing));
    return;
  }
  const cards = gradientCards();
  view.append(cards.banner, cards.over, cards.units, cards.flow);
  // What the view's parts share: the request, the per-unit epochs (G's own), the flow data.
  const g = { params: { run: state.run, layer: layer.name }, layer, stale, state, cards, uEpochs: [], flow: null, flowRows: [] };
  let grads;
  try {
    grads = await api("gradients", g.params);
  } catch (err) {
    if (!stale()) view.replaceChildren(errorNotice(err));
    return;
  }
  if (stale()) return;
  const sn = samplingNotice(grads.sampling);
  if (sn) cards.banner.append(sn);
  g.width = panelWidth(cards.over) - 32;
  drawOverview(g, grads);
  setupUnitCard(g, grads);
  setupFlowCard(g);
  await loadFlow(g);
}

// 1. g[t] heatmap: x = timestep, y = epoch.
function drawOverview(g, grads) {
  const gmat = decodeGrid(grads.matrix); // [T][E]
  const T = grads.timesteps;
  const E = grads.epochs.length;
  const canvas = el("canvas", { id: "grad-heatmap", class: "heatmap", role: "img", "aria-label": `Heatmap of g[t] for ${g.layer.name}: ${T} timesteps by ${E} epochs` });
  const readout = el("div", { class: "readout", text: "\u00a0" });
  g.cards.over.append(canvas, readout);
  const geom = drawHeatmap(canvas, {
    rows: E,
    cols: T,
    value: (r, c) => gmat[c][r],
    scale: logScale(grads.min_positive, grads.max),
    width: g.width,
    height: Math.max(180, Math.min(360, 40 + E * 14)),
    xLabel: "timestep t",
    yLabel: "epoch",
    xTick: (c) => String(c),
    yTick: (r) => String(grads.epochs[r]),
    barLabel: "g[t] (log)",
  });
  canvas.dataset.paintedAt = String(Math.round(performance.now()));
  attachHover(canvas, geom, E, T, (r, c) => `epoch ${grads.epochs[r]}, t = ${c}: g = ${fmt(gmat[c][r])}`, readout);
}

// 2. The per-unit heatmap's controls (epoch slider, gradient kind) and its canvas.
function setupUnitCard(g, grads) {
  const { state } = g;
  g.uEpochs = (grads.unit_epochs || []).slice();
  if (!g.uEpochs.length) {
    g.cards.units.append(notice("info", "No per-unit gradients were logged for this layer."));
    return;
  }
  if (state.gradEpochIndex === null || state.gradEpochIndex >= g.uEpochs.length) state.gradEpochIndex = g.uEpochs.length - 1;
  const u = {
    slider: el("input", { type: "range", id: "grad-epoch", min: 0, max: g.uEpochs.length - 1, step: 1, value: state.gradEpochIndex, "aria-label": "Epoch of the per-unit gradient heatmap" }),
    label: el("output", { for: "grad-epoch", class: "epoch-label", text: `epoch ${g.uEpochs[state.gradEpochIndex]}` }),
    kindSel: el("select", { id: "grad-kind", "aria-label": "Gradient kind" }),
    canvas: el("canvas", { id: "unit-heatmap", class: "heatmap", role: "img", "aria-label": `Heatmap of G[t, u] for ${g.layer.name}` }),
    readout: el("div", { class: "readout", text: "\u00a0" }),
    status: el("div", { class: "banner" }),
  };
  for (const k of grads.unit_kinds) u.kindSel.append(el("option", { value: k, text: KIND_NAMES[k] || k }));
  if (!grads.unit_kinds.includes(state.unitKind)) state.unitKind = grads.unit_kinds[0];
  u.kindSel.value = state.unitKind;
  g.cards.units.append(
    el("div", { class: "controls" }, el("label", {}, "Epoch ", u.slider, u.label), el("label", {}, "Gradient ", u.kindSel)),
    u.status,
    u.canvas,
    u.readout,
  );
  const redraw = debounce(() => loadUnits(g, u), 60);
  u.slider.addEventListener("input", () => {
    state.gradEpochIndex = Number(u.slider.value);
    u.label.textContent = `epoch ${g.uEpochs[state.gradEpochIndex]}`;
    redraw();
  });
  u.kindSel.addEventListener("change", () => {
    state.unitKind = u.kindSel.value;
    loadUnits(g, u);
  });
  loadUnits(g, u);
}

// G[t, u] at the slider's epoch: fetched, then drawn with the flow curves' chosen epoch.
async function loadUnits(g, u) {
  const { state } = g;
  const epoch = g.uEpochs[state.gradEpochIndex];
  u.label.textContent = `epoch ${epoch}`;
  let body;
  try {
    body = await api("gradient_units", { ...g.params, epoch, kind: state.unitKind });
  } catch (err) {
    u.status.replaceChildren(errorNotice(err));
    return;
  }
  if (g.stale() || g.uEpochs[state.gradEpochIndex] !== epoch) return;
  if (body.epochs.join(",") !== g.uEpochs.join(",")) {
    // G's own epochs (they differ from g's only when TensorBoard sampled them apart).
    g.uEpochs = body.epochs.slice();
    state.gradEpochIndex = g.uEpochs.indexOf(body.epoch);
    u.slider.max = String(g.uEpochs.length - 1);
    u.slider.value = String(state.gradEpochIndex);
  }
  u.status.replaceChildren();
  drawUnitHeatmap(g, u, body, epoch);
  drawFlowCurves(g);
}

function drawUnitHeatmap(g, u, body, epoch) {
  const U = body.units;
  const Tn = body.timesteps;
  const vals = decodeGrid(body.values); // [T][U]; columns are bins of `bin` steps when bin > 1
  const bin = body.time_bin || 1;
  const steps = (c) => (bin > 1 ? `t = ${c * bin}..${c * bin + bin - 1} (mean)` : `t = ${c}`);
  if (bin > 1) {
    u.status.append(notice("info", `Each column is the mean over ${bin} consecutive steps: at full resolution these gradients would not fit the per-epoch byte cap (RNNMonitor(max_bytes_per_epoch=None) keeps every step). g[t] above and the temporal flow below have every step.`));
  }
  const geom = drawHeatmap(u.canvas, {
    rows: U,
    cols: Tn,
    value: (r, c) => vals[c][r],
    scale: logScale(body.min_positive, body.max),
    width: g.width,
    height: Math.max(200, Math.min(420, 50 + U * 2)),
    xLabel: "timestep t",
    yLabel: "unit",
    xTick: (c) => String(c * bin),
    yTick: (r) => String(r),
    barLabel: "G[t,u] (log)",
  });
  u.canvas.dataset.epoch = String(epoch);
  u.canvas.dataset.paintedAt = String(Math.round(performance.now()));
  attachHover(u.canvas, geom, U, Tn, (r, c) => `epoch ${epoch}, ${steps(c)}, unit ${r}: G = ${fmt(vals[c][r])}`, u.readout);
}

// 3. The temporal flow chart and the line under it.
function setupFlowCard(g) {
  g.flowChart = el("div", { id: "flow-chart", role: "figure", "aria-label": `Temporal flow curves for ${g.layer.name}` });
  g.flowInfo = el("p", { class: "sub" });
  g.cards.flow.append(g.flowChart, g.flowInfo);
}

async function loadFlow(g) {
  if (!g.layer.has.temporal_flow) {
    g.cards.flow.append(notice("info", "No temporal flow was logged for this layer."));
    return;
  }
  try {
    g.flow = await api("flow", g.params);
    g.flowRows = decodeGrid(g.flow.flow); // [E][K]
  } catch (err) {
    g.cards.flow.append(errorNotice(err));
    return;
  }
  if (!g.stale()) drawFlowCurves(g);
}

// One curve per epoch (viridis, early to late), the chosen epoch in red with its horizon.
function drawFlowCurves(g) {
  const { flow, flowRows } = g;
  if (!flow || g.stale()) return;
  const n = flow.epochs.length;
  const chosenEpoch = g.uEpochs.length ? g.uEpochs[g.state.gradEpochIndex] : flow.epochs[n - 1];
  let ci = flow.epochs.indexOf(chosenEpoch);
  if (ci < 0) ci = n - 1;
  const K = Math.max(...flowRows.map((r) => r.length));
  const series = flowRows.map((row, i) => ({
    x: row.map((_, k) => k),
    y: row,
    color: rgb(ramp(VIRIDIS, n > 1 ? (0.85 * i) / (n - 1) : 0.5)),
    width: 1,
    noDots: true,
    name: `epoch ${flow.epochs[i]}`,
    readout: i !== ci, // read from the red curve drawn over it
  }));
  series.push({ x: flowRows[ci].map((_, k) => k), y: flowRows[ci], color: "#d32f2f", width: 2.5, noDots: true, name: `epoch ${flow.epochs[ci]} (chosen)` });
  const h = flow.horizon[ci];
  drawLines(g.flowChart, {
    series,
    width: g.width,
    height: 260,
    logY: true,
    xLabel: "steps back from the last state, k",
    xName: "k",
    yLabel: "F[k] (log scale)",
    xMin: 0,
    xMax: Math.max(1, K - 1),
    hLines: [{ y: flow.floor, label: `floor ${fmt(flow.floor)}`, color: "#757575" }],
    yLogFloor: flow.floor / 1e4,
    markers: h === null ? [] : [{ x: h, label: `horizon k = ${h} (epoch ${flow.epochs[ci]})`, color: "#d32f2f" }],
  });
  g.flowChart.dataset.epoch = String(flow.epochs[ci]);
  g.flowInfo.textContent =
    h === null
      ? `Epoch ${flow.epochs[ci]}: the flow is below the floor from the first step.`
      : `Epoch ${flow.epochs[ci]}: gradient reaches ${h} of ${K - 1} steps back (horizon). Horizon over epochs: ${flow.horizon.map((v) => (v === null ? "-" : v)).join(" ")}`;
}
