// "Gradients through time" view: g[t] over epochs, G[t, u] at one epoch (epoch slider), and
// the temporal flow F[k] with its horizon.

import { VIRIDIS, logScale, ramp, rgb } from "../lib/colour.js";
import { drawLines, panelWidth } from "../lib/chart.js";
import { debounce, el, errorNotice, noProbe, notice, samplingNotice, section } from "../lib/dom.js";
import { api, decodeGrid } from "../lib/fetch.js";
import { fmt } from "../lib/format.js";
import { attachHover, drawHeatmap } from "../lib/heatmap.js";

// state: the page's shared state (app.js): run, gradEpochIndex, unitKind.
export async function renderGradients(view, layer, stale, state) {
  if (!layer.has || !layer.has.timestep_grad_norm) {
    view.append(noProbe("gradients through time", layer.missing));
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
  const gmat = decodeGrid(grads.matrix); // [T][E]
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
    value: (r, c) => gmat[c][r],
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
  attachHover(canvas, geom, E, T, (r, c) => `epoch ${grads.epochs[r]}, t = ${c}: g = ${fmt(gmat[c][r])}`, readout);

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
      const vals = decodeGrid(body.values); // [T][U]; columns are bins of `bin` steps when bin > 1
      const bin = body.time_bin || 1;
      const steps = (c) => (bin > 1 ? `t = ${c * bin}..${c * bin + bin - 1} (mean)` : `t = ${c}`);
      if (bin > 1) {
        uStatus.append(notice("info", `Each column is the mean over ${bin} consecutive steps: at full resolution these gradients would not fit the per-epoch byte cap (RNNMonitor(max_bytes_per_epoch=None) keeps every step). g[t] above and the temporal flow below have every step.`));
      }
      const uh = Math.max(200, Math.min(420, 50 + U * 2));
      const ug = drawHeatmap(uCanvas, {
        rows: U,
        cols: Tn,
        value: (r, c) => vals[c][r],
        scale: logScale(body.min_positive, body.max),
        width,
        height: uh,
        xLabel: "timestep t",
        yLabel: "unit",
        xTick: (c) => String(c * bin),
        yTick: (r) => String(r),
        barLabel: "G[t,u] (log)",
      });
      uCanvas.dataset.epoch = String(epoch);
      uCanvas.dataset.paintedAt = String(Math.round(performance.now()));
      attachHover(uCanvas, ug, U, Tn, (r, c) => `epoch ${epoch}, ${steps(c)}, unit ${r}: G = ${fmt(vals[c][r])}`, uReadout);
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
  let flowRows = []; // [E][K]
  const fCanvas = el("canvas", { id: "flow-chart", role: "img", "aria-label": `Temporal flow curves for ${layer.name}` });
  const fInfo = el("p", { class: "sub" });
  flowCard.append(fCanvas, fInfo);
  const drawFlowCurves = () => {
    if (!flow || stale()) return;
    const n = flow.epochs.length;
    const chosenEpoch = uEpochs.length ? uEpochs[state.gradEpochIndex] : flow.epochs[n - 1];
    let ci = flow.epochs.indexOf(chosenEpoch);
    if (ci < 0) ci = n - 1;
    const K = Math.max(...flowRows.map((r) => r.length));
    const series = flowRows.map((row, i) => ({
      x: row.map((_, k) => k),
      y: row,
      color: rgb(ramp(VIRIDIS, n > 1 ? (0.85 * i) / (n - 1) : 0.5)),
      width: 1,
      noDots: true,
    }));
    series.push({ x: flowRows[ci].map((_, k) => k), y: flowRows[ci], color: "#d32f2f", width: 2.5, noDots: true });
    const h = flow.horizon[ci];
    drawLines(fCanvas, {
      series,
      width,
      height: 260,
      logY: true,
      xLabel: "steps back from the last state, k",
      yLabel: "F[k] (log scale)",
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
    flowRows = decodeGrid(flow.flow);
  } catch (err) {
    flowCard.append(errorNotice(err));
    return;
  }
  if (!stale()) drawFlowCurves();
}
