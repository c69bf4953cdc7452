// "Health" view: unit and gradient health over epochs, per-gate weight norms and update
// ratios (small multiples), non-finite weights, the run's alerts and its findings.

import { panelWidth } from "../lib/chart.js";
import { el, errorNotice, noProbe, notice, samplingNotice, section } from "../lib/dom.js";
import { api } from "../lib/fetch.js";
import { drawLines } from "../lib/lines.js";

const GATE_COLORS = ["#1976d2", "#e65100", "#2e7d32", "#6a1b9a", "#c2185b", "#00838f"];
// Title and y-axis label (what is plotted, with its unit or scale) of each health chart.
const HEALTH_CHARTS = {
  dead_ratio: ["dead units", "fraction of units"],
  exploding_ratio: ["exploding units", "fraction of units"],
  saturated_ratio: ["saturated units", "fraction of units"],
  grad_norm: ["weight-gradient norm", "||dL/dW|| (L2)"],
  grad_horizon: ["gradient horizon", "steps back (k)"],
};
const GATE_CHARTS = {
  l2: ["L2 norm", "||W_gate|| (L2)"],
  update_ratio: ["update ratio", "ratio (log scale)"],
};

export async function renderHealth(view, layer, stale, state) {
  const params = { run: state.run, layer: layer.name };
  const banner = el("div", { class: "banner" });
  const healthCard = section("Unit and gradient health", "Per logged epoch. Dead: output std < threshold; saturated: tanh |h| > 0.99 or sigmoid gates outside [0.1, 0.9] most of the time; horizon: steps back the gradient still reaches.");
  const gateCard = section("Per-gate weights", "L2 norm of each gate's block of the kernel, recurrent kernel and bias, and its update ratio ||W_e - W_prev|| / ||W_prev||.");
  const alertCard = section("Alerts", "Training is being hurt now: act on these.");
  const findingCard = section("Findings", "Unusual but not, on the evidence, hurting training (the loss falls, gradient flows): shown here and in rnn-monitor report, never alarmed.");
  view.append(banner, healthCard, gateCard, alertCard, findingCard);
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
  const size = { width: Math.floor((full - (cols - 1) * 12) / cols), height: 172, ...epochRange(health.series) };
  drawHealthCharts(healthCard, health, layer, size);
  drawGateCharts(gateCard, health, size);
  renderAlerts(alertCard, alerts, layer);
  renderFindings(findingCard, alerts, layer);
}

// The epochs every chart spans (xMin, xMax): first to last logged epoch of any series.
function epochRange(seriesByName) {
  let e0 = Infinity;
  let e1 = -Infinity;
  for (const s of Object.values(seriesByName)) {
    if (s.epochs.length) {
      e0 = Math.min(e0, s.epochs[0]);
      e1 = Math.max(e1, s.epochs[s.epochs.length - 1]);
    }
  }
  return Number.isFinite(e0) ? { xMin: e0, xMax: Math.max(e1, e0 + 1) } : {};
}

// A chart holder in `grid` with its accessible name.
function chartIn(grid, label) {
  const holder = el("div", { class: "small", role: "figure", "aria-label": label });
  grid.append(holder);
  return holder;
}

// Dead / exploding / saturated fractions, weight-gradient norm, horizon: one chart each.
function drawHealthCharts(card, health, layer, size) {
  const grid = el("div", { class: "grid", id: "health-grid" });
  card.append(grid);
  if (!health.health.length) card.append(noProbe("unit health measurements", layer.missing));
  for (const name of health.health) {
    const s = health.series[name];
    const [title, yLabel] = HEALTH_CHARTS[name] || [name, "value"];
    const ratio = name.endsWith("_ratio");
    drawLines(chartIn(grid, `${title} over epochs (x: epoch, y: ${yLabel})`), {
      series: [{ x: s.epochs, y: s.values, color: "#1565c0", name: title }],
      ...size,
      title,
      xLabel: "epoch",
      yLabel,
      yMin: 0,
      yMax: ratio && !s.values.some((v) => v > 0) ? 1 : undefined,
    });
  }
}

// Per role (kernel, recurrent kernel, bias): L2 norm and update ratio, one line per gate;
// then the count of non-finite weights.
function drawGateCharts(card, health, size) {
  const gates = health.gates.length ? health.gates : [...new Set(Object.keys(health.series).filter((k) => k.split("/").length === 3).map((k) => k.split("/")[1]))];
  const colour = (i) => GATE_COLORS[i % GATE_COLORS.length];
  const legend = el("div", { class: "legend" }, gates.map((g, i) => el("span", { class: "key" }, el("span", { class: "swatch", style: `background:${colour(i)}` }), `gate ${g}`)));
  const grid = el("div", { class: "grid", id: "gate-grid" });
  card.append(legend, grid);
  for (const role of health.roles) {
    for (const stat of ["l2", "update_ratio"]) {
      const series = gates
        .map((g, i) => ({ g, i, s: health.series[`${role}/${g}/${stat}`] }))
        .filter((o) => o.s)
        .map((o) => ({ x: o.s.epochs, y: o.s.values, color: colour(o.i), name: `gate ${o.g}` }));
      if (!series.length) continue;
      const logY = stat === "update_ratio" && series.some((s) => s.y.some((v) => v > 0));
      const [what, yLabel] = GATE_CHARTS[stat];
      const title = `${role.replace("_", " ")} \u00b7 ${what}`;
      drawLines(chartIn(grid, `${title} per gate over epochs (x: epoch, y: ${yLabel})`), {
        series,
        ...size,
        yMin: stat === "l2" ? 0 : undefined,
        title,
        xLabel: "epoch",
        yLabel: stat === "update_ratio" && !logY ? "ratio" : yLabel, // all zero: no log axis
        logY,
      });
    }
  }
  const nonfinite = [];
  for (const role of health.roles) {
    for (const g of gates) {
      const s = health.series[`${role}/${g}/nonfinite`];
      if (s && s.values.some((v) => v)) nonfinite.push(`${role}/${g}: up to ${Math.max(...s.values)} NaN/Inf values`);
    }
  }
  card.append(nonfinite.length ? notice("error", `Non-finite weights: ${nonfinite.join("; ")}`) : el("p", { class: "sub ok", text: "No NaN or Inf in the weights of this layer." }));
}

// A table of records (alerts or findings), one row each: epoch(s), layer, kind badge, message;
// rows of the selected layer highlighted.
function recordTable(id, firstHeader, records, layer, cells) {
  const rows = records.map((r) => {
    const [epochCell, badgeClass] = cells(r);
    return el(
      "tr",
      { class: r.layer === layer.name ? "this-layer" : null },
      epochCell,
      el("td", { text: r.layer }),
      el("td", {}, el("span", { class: `badge ${badgeClass}`, text: r.kind })),
      el("td", { text: r.message }),
    );
  });
  return el(
    "table",
    { class: "alerts", id },
    el("thead", {}, el("tr", {}, [firstHeader, "Layer", "Kind", "Message"].map((t) => el("th", { scope: "col", text: t })))),
    el("tbody", {}, rows),
  );
}

function renderAlerts(card, alerts, layer) {
  const sn = samplingNotice(alerts.sampling);
  if (sn) card.append(sn);
  if (!alerts.enabled) {
    card.append(el("p", { class: "sub", text: "No alert records in this run (alerts were off, or an older rnn-monitor wrote it)." }));
    return;
  }
  if (!alerts.alerts.length) {
    card.append(el("p", { class: "sub ok", text: "No alerts were raised." }));
    return;
  }
  card.append(recordTable("alerts-table", "Epoch", alerts.alerts, layer, (a) => [el("td", { class: "num", text: a.epoch }), `badge-${a.kind.replace(/[^a-z_]/g, "")}`]));
}

function epochSpan(f) {
  return f.last > f.epoch ? `${f.epoch}\u2013${f.last}` : `${f.epoch}`;
}

function renderFindings(card, alerts, layer) {
  if (!alerts.findings_enabled) {
    card.append(el("p", { class: "sub", text: "No finding records in this run (alerts were off, or an older rnn-monitor wrote it)." }));
    return;
  }
  if (!alerts.findings.length) {
    card.append(el("p", { class: "sub ok", text: "No findings." }));
    return;
  }
  const epochCell = (f) => el("td", { class: "num", text: epochSpan(f), title: `active at logged epochs ${f.epochs.join(", ")}` });
  card.append(recordTable("findings-table", "Epochs", alerts.findings, layer, (f) => [epochCell(f), "badge-finding"]));
}
