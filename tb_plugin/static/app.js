// RNN Monitor dashboard: the ES module TensorBoard loads into the plugin's iframe (render()).
//
// This module holds the page's shared state, the header (run, layer, view tabs, Reload) and the
// routing between the views; each view lives in ./views/, shared drawing and fetching in ./lib/.
// TensorBoard's entry page sets <base href="plugin/rnn_monitor/">, so relative URLs such as
// "./runs" reach this plugin's routes (/data/plugin/rnn_monitor/runs), while the relative
// imports below resolve against this module's own URL (.../static/app.js). No external
// resources, no inline scripts or handlers (TensorBoard's CSP forbids them): plain DOM + canvas.

import { el, errorNotice, notice } from "./lib/dom.js";
import { api, clearCache } from "./lib/fetch.js";
import { renderGradients } from "./views/gradients.js";
import { renderHealth } from "./views/health.js";
import { renderText } from "./views/text.js";
import { renderUnits } from "./views/units.js";

// Tab id -> [label, render(view, layer, stale, state)]; a new view registers here.
const VIEWS = [
  ["gradients", "Gradients through time", renderGradients],
  ["text", "Activations in text", renderText],
  ["health", "Health", renderHealth],
  ["units", "Units", renderUnits],
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
  textSource: null, // text view: "probe", "generated" or "importance"
  unitsEpochIndex: null, // Units view: epoch slider position
  unitCard: null, // Units view: the unit whose card is open
  mask: null, // regex match mask of the text view's tokens
  renderToken: null, // the render in progress; older ones stop drawing (stale())
  emptyTimer: null,
};

let root = null;

function currentRun() {
  return state.runs.find((r) => r.run === state.run) || null;
}

function currentLayer() {
  const run = currentRun();
  return run ? run.layers.find((l) => l.name === state.layer) || null : null;
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
  state.unitsEpochIndex = null;
  state.unitCard = null;
}

async function load(force = false) {
  if (force) clearCache();
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
  const entry = VIEWS.find(([id]) => id === state.view) || VIEWS[0];
  entry[2](view, layer, stale, state);
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
