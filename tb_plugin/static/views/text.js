// "Activations in text" view: the probe sequences, each character on a background coloured by
// one unit's activation; units ranked by variance or by relevance to a regex.

import { DIVERGING, divergingColor, ramp, rgb, textColourOn } from "../lib/colour.js";
import { panelWidth, setupCanvas } from "../lib/chart.js";
import { debounce, el, errorNotice, noProbe, samplingNotice, section } from "../lib/dom.js";
import { api, decodeFloat16 } from "../lib/fetch.js";
import { fmt } from "../lib/format.js";
import { drawLines } from "../lib/lines.js";

// Characters with little ink (an underscore is ~0.6 px thick at 13 px): drawn bold so that
// they still show on a strongly coloured background.
const THIN = /^[_.,:;'`|!^~\-]+$/;

// How a token is shown: newline and tab visible, the empty token as a symbol.
export function tokenDisplay(tok) {
  if (tok === "\n") return "\u21b5\n";
  if (tok === "\t") return "\u2192   ";
  if (tok === "") return "\u2205";
  return tok;
}

// Token mask of positions overlapping a regex match, tokens joined per sequence: the definition
// of rnn_monitor/stats/relevance.py (feature_mask), so ^ and $ match at line breaks and an
// empty match marks the character it stands before.
export function regexMask(tokens, pattern) {
  const re = new RegExp(pattern, "gmu");
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
        if (m.index < text.length) mask[owner[m.index]] = 1;
        re.lastIndex++;
        continue;
      }
      for (let j = m.index; j < m.index + m[0].length; j++) mask[owner[j]] = 1;
    }
    return mask;
  });
}

const SOURCE_TEXT = {
  probe: ["Activations in the probe text", "Each character's background shows the chosen unit's activation (blue negative, white 0, red positive). Hover a character for its value. Rank units by variance, or by relevance to a regex: mean activation on matching characters minus elsewhere."],
  generated: ["Activations in the generated text", "Text the model generated at this epoch from the seed given to RNNMonitor(generate=...), each character coloured by the chosen unit's state after reading it (blue negative, white 0, red positive)."],
  importance: ["Token importance (occlusion)", "How much the score of the predicted class drops when a token is removed (red: the token supports the prediction, blue: it argues against it, white: no effect); below, the score as the model reads each prefix."],
};
const SOURCE_NAMES = { probe: "probe text", generated: "generated text", importance: "token importance (occlusion)" };

const STATE_NAMES = { h: "h (output)", c: "c (cell state)", importance: "score drop" };

export async function renderText(view, layer, stale, state) {
  const sources = layer.sources && layer.sources.length ? layer.sources : layer.states && layer.states.length ? ["probe"] : [];
  if (!sources.length) {
    view.append(noProbe("activations", layer.missing));
    return;
  }
  if (!state.textSource || !sources.includes(state.textSource)) state.textSource = sources[0];
  if (state.textSource === "probe" && (!state.textState || !layer.states.includes(state.textState))) state.textState = layer.states.includes("h") ? "h" : layer.states[0];
  const t = textControls(sources, layer, stale, state);
  view.append(t.banner, t.card);
  wireTextControls(t);
  const startEpoch = state.textEpochIndex;
  await loadEpoch(t, undefined);
  const { current } = t;
  if (current && startEpoch !== null && startEpoch < current.epochs.length && current.epochs[startEpoch] !== current.epoch) {
    loadEpoch(t, current.epochs[startEpoch]);
  }
}

// The view's controls and card; `t` is what the view's parts share (`current`: the last
// activations answer, with its float16 data decoded).
function textControls(sources, layer, stale, state) {
  const t = { layer, stale, state, current: null, banner: el("div", { class: "banner" }) };
  t.sourceSel = el("select", { id: "text-source", "aria-label": "Text source" });
  for (const s of sources) t.sourceSel.append(el("option", { value: s, text: SOURCE_NAMES[s] || s }));
  t.sourceSel.value = state.textSource;
  t.stateSel = el("select", { id: "text-state", "aria-label": "State" });
  fillStates(t, state.textSource === "probe" ? layer.states : []);
  t.slider = el("input", { type: "range", id: "text-epoch", min: 0, max: 0, step: 1, value: 0, "aria-label": "Epoch of the activations" });
  t.epochLabel = el("output", { for: "text-epoch", class: "epoch-label" });
  t.rankSel = el("select", { id: "rank-mode", "aria-label": "Rank units by" });
  t.rankSel.append(el("option", { value: "variance", text: "variance" }), el("option", { value: "regex", text: "regex relevance" }));
  t.rankSel.value = state.rankMode;
  t.regexInput = el("input", { type: "text", id: "regex", value: state.regex, placeholder: "e.g. [\"'] or \\s+ or def", spellcheck: "false", "aria-label": "Regular expression for ranking units" });
  t.regexBtn = el("button", { type: "button", id: "regex-apply", text: "Rank" });
  t.unitSel = el("select", { id: "unit-select", "aria-label": "Unit" });
  t.topUnits = el("div", { class: "top-units", "aria-label": "Top-ranked units" });
  t.legend = el("canvas", { id: "text-legend", role: "img", "aria-label": "Colour legend" });
  t.rankInfo = el("p", { class: "sub", id: "rank-info" });
  t.textBox = el("div", { class: "text-sample", id: "text-sample" });
  t.readingBox = el("div", { id: "reading", class: "reading" });
  t.card = section(
    ...SOURCE_TEXT.probe,
    el(
      "div",
      { class: "controls" },
      el("label", {}, "Source ", t.sourceSel),
      el("label", {}, "State ", t.stateSel),
      el("label", {}, "Epoch ", t.slider, t.epochLabel),
      el("label", {}, "Rank by ", t.rankSel),
      el("label", { class: "regex-label" }, "Regex ", t.regexInput),
      t.regexBtn,
      el("label", {}, "Unit ", t.unitSel),
    ),
    t.topUnits,
    t.rankInfo,
    t.legend,
    t.textBox,
    t.readingBox,
  );
  return t;
}

function fillStates(t, states) {
  t.stateSel.replaceChildren();
  for (const s of states) t.stateSel.append(el("option", { value: s, text: STATE_NAMES[s] || `gate ${s}` }));
  if (states.includes(t.state.textState)) t.stateSel.value = t.state.textState;
}

// The eight listeners: source, state, epoch slider, rank mode, regex (button and Enter), unit.
function wireTextControls(t) {
  const { state, layer } = t;
  t.sourceSel.addEventListener("change", () => {
    state.textSource = t.sourceSel.value;
    state.unit = null;
    state.textState = state.textSource === "probe" ? (layer.states.includes("h") ? "h" : layer.states[0]) : state.textSource === "generated" ? "h" : "importance";
    loadEpoch(t, undefined);
  });
  t.stateSel.addEventListener("change", () => {
    state.textState = t.stateSel.value;
    loadEpoch(t, t.current ? t.current.epoch : undefined);
  });
  const onSlide = debounce(() => {
    if (t.current) loadEpoch(t, t.current.epochs[Number(t.slider.value)]);
  }, 60);
  t.slider.addEventListener("input", () => {
    if (t.current) t.epochLabel.textContent = `epoch ${t.current.epochs[Number(t.slider.value)]}`;
    onSlide();
  });
  t.rankSel.addEventListener("change", () => {
    state.rankMode = t.rankSel.value;
    rank(t);
  });
  const applyRegex = () => {
    state.regex = t.regexInput.value;
    state.rankMode = state.regex ? "regex" : "variance";
    t.rankSel.value = state.rankMode;
    rank(t);
  };
  t.regexBtn.addEventListener("click", applyRegex);
  t.regexInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") applyRegex();
  });
  t.unitSel.addEventListener("change", () => {
    state.unit = Number(t.unitSel.value);
    paint(t);
  });
}

// Fetch the activations of the chosen source and state at an epoch (undefined: the latest).
async function loadEpoch(t, epochParam) {
  const { state } = t;
  let body;
  try {
    const source = state.textSource === "probe" ? undefined : state.textSource;
    const st = state.textSource === "importance" ? undefined : state.textState;
    body = await api("activations", { run: state.run, layer: t.layer.name, state: st, epoch: epochParam, source });
  } catch (err) {
    if (err.status === 404 && epochParam !== undefined) return loadEpoch(t, undefined); // e.g. a state sampled at other epochs
    t.banner.replaceChildren(errorNotice(err));
    return;
  }
  if (t.stale()) return;
  t.banner.replaceChildren();
  const sn = samplingNotice(body.sampling);
  if (sn) t.banner.append(sn);
  if (!body.data_f32) body.data_f32 = decodeFloat16(body.data);
  t.current = body;
  showLoaded(t, body);
  rank(t);
}

// The controls after a load: states offered, card text per source, the slider's epoch.
function showLoaded(t, body) {
  if (body.states && body.states.join() !== Array.from(t.stateSel.options).map((o) => o.value).join()) fillStates(t, body.states);
  t.state.textState = body.state;
  t.stateSel.value = body.state;
  const [title, sub] = SOURCE_TEXT[body.source || "probe"];
  t.card.querySelector("h2").textContent = title;
  t.card.querySelector("p.sub").textContent = sub;
  for (const node of [t.rankSel, t.regexInput, t.regexBtn, t.unitSel, t.topUnits]) {
    const box = node.closest("label") || node;
    box.style.display = body.source === "importance" ? "none" : ""; // the CSS display beats [hidden]
  }
  t.slider.max = String(body.epochs.length - 1);
  t.state.textEpochIndex = body.epochs.indexOf(body.epoch);
  t.slider.value = String(t.state.textEpochIndex);
  t.epochLabel.textContent = `epoch ${body.epoch}`;
}

// Per unit, mean activation where mask is set minus elsewhere (NaN: masked steps skipped;
// NaN where either side is empty), and how many positions the mask sets.
function relevanceScores(current, mask) {
  const [S, T, U] = current.shape;
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
  const rel = new Float64Array(U);
  for (let u = 0; u < U; u++) rel[u] = nOn[u] && nOff[u] ? on[u] / nOn[u] - off[u] / nOff[u] : NaN;
  const matched = mask.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
  return { rel, matched };
}

// The ranking by relevance to the regex, or null (with the reason in `info`) to keep variance.
function regexRanking(current, pattern) {
  const [S, T, U] = current.shape;
  if (!current.tokens) return { info: "No vocabulary was logged, so the text cannot be matched; ranking by variance." };
  let mask;
  try {
    mask = regexMask(current.tokens, pattern);
  } catch (err) {
    return { info: `Not a valid regular expression: ${err.message}` };
  }
  const { rel, matched } = relevanceScores(current, mask);
  if (matched === 0 || matched === S * T) {
    return { info: `The regex matches ${matched === 0 ? "no" : "every"} character of the sample; ranking by variance.` };
  }
  return {
    order: Array.from({ length: U }, (_, u) => u).sort((a, b) => (Math.abs(rel[b]) || -1) - (Math.abs(rel[a]) || -1)),
    scoreLabel: (u) => `${rel[u] >= 0 ? "+" : ""}${fmt(rel[u])}`,
    info: `${matched} of ${S * T} characters match. Score: mean activation on matches minus elsewhere (positive: more active on matches).`,
    mask,
  };
}

// Rank the units (variance, or relevance to the regex) and offer them, best first.
function rank(t) {
  const { current, state } = t;
  if (!current) return;
  let order = current.ranking.slice();
  let scoreLabel = (u) => `var ${fmt(current.variance[u])}`;
  state.mask = null;
  t.rankInfo.textContent = "";
  if (state.rankMode === "regex" && state.regex) {
    const ranked = regexRanking(current, state.regex);
    t.rankInfo.textContent = ranked.info;
    if (ranked.order) {
      ({ order, scoreLabel } = ranked);
      state.mask = ranked.mask;
    }
  }
  current.order = order;
  offerUnits(t, order, scoreLabel);
  if (state.unit === null || state.unit >= current.shape[2] || state.rankMode === "regex") state.unit = order[0];
  t.unitSel.value = String(state.unit);
  paint(t);
}

// The unit menu in rank order and the top eight as buttons.
function offerUnits(t, order, scoreLabel) {
  const ids = t.current.unit_ids || [];
  const uid = (u) => (ids[u] !== undefined ? ids[u] : u);
  t.unitSel.replaceChildren();
  for (const u of order) t.unitSel.append(el("option", { value: u, text: `unit ${uid(u)} \u00b7 ${scoreLabel(u)}` }));
  t.topUnits.replaceChildren(el("span", { class: "sub", text: "Top units: " }));
  for (const u of order.slice(0, 8)) {
    const b = el("button", { type: "button", class: "chip", "data-unit": u, text: `${uid(u)} (${scoreLabel(u)})` });
    b.addEventListener("click", () => {
      t.state.unit = u;
      t.unitSel.value = String(u);
      paint(t);
    });
    t.topUnits.append(b);
  }
}

// One unit's values over the sample, [S * T].
function unitValues(current, u) {
  const [S, T, U] = current.shape;
  const out = new Float32Array(S * T);
  for (let i = 0; i < S * T; i++) out[i] = current.data_f32[i * U + u];
  return out;
}

// The sample's characters on the chosen unit's colours, the legend, the reading curves.
function paint(t) {
  const { current } = t;
  if (!current) return;
  const u = t.state.unit;
  const vals = unitValues(current, u);
  const shownId = current.unit_ids && current.unit_ids[u] !== undefined ? current.unit_ids[u] : u;
  let maxAbs = 0;
  for (const v of vals) if (!Number.isNaN(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
  const scale = maxAbs > 0 ? maxAbs : 1;
  for (const b of t.topUnits.querySelectorAll("button")) b.setAttribute("aria-pressed", b.dataset.unit === String(u) ? "true" : "false");
  drawDivergingLegend(t.legend, scale, `${current.state} of unit ${shownId}, epoch ${current.epoch}`);
  const frag = document.createDocumentFragment();
  for (let s = 0; s < current.shape[0]; s++) frag.append(sequenceElement(t, s, vals, scale, shownId));
  t.textBox.replaceChildren(frag);
  drawReading(t);
  t.textBox.dataset.epoch = String(current.epoch);
  t.textBox.dataset.unit = String(shownId);
}

// Sequence s: one span per token, background = activation, text colour readable on it.
function sequenceElement(t, s, vals, scale, shownId) {
  const { current, state } = t;
  const T = current.shape[1];
  const pre = el("pre", { class: "seq", "aria-label": `Sequence ${s + 1}` });
  for (let i = 0; i < T; i++) {
    const tok = current.tokens && current.tokens[s] ? current.tokens[s][i] : "\u00b7";
    const v = vals[s * T + i];
    const span = document.createElement("span");
    span.textContent = tokenDisplay(tok === undefined ? "\u00b7" : tok);
    if (THIN.test(span.textContent)) span.className = "thin";
    const c = divergingColor(v, scale);
    span.style.backgroundColor = rgb(c);
    span.style.color = rgb(textColourOn(c)); // readable on any background (WCAG >= 4.5)
    if (state.mask && state.mask[s] && state.mask[s][i]) span.classList.add("match");
    span.title = `${JSON.stringify(tok)}  t=${i}  unit ${shownId} ${current.state} = ${Number.isNaN(v) ? "n/a (masked)" : v.toFixed(3)}`;
    pre.append(span);
  }
  return pre;
}

// Token importance: the predicted class's score after each prefix, one chart per sequence.
function drawReading(t) {
  const { current, readingBox } = t;
  readingBox.replaceChildren();
  if (!current || current.source !== "importance" || !current.reading) return;
  const T = current.shape[1];
  const full = panelWidth(t.textBox) - 8;
  const decision = current.decision === null || current.decision === undefined ? null : current.decision;
  readingBox.append(el("h3", { text: "Prediction as read" }), el("p", { class: "sub", text: `The model's score for its predicted class after reading each prefix (t + 1 tokens); the dashed line is the decision point (${decision === null ? "n/a" : decision}).` }));
  current.reading.forEach((row, s) => {
    const holder = el("div", { class: "small reading-curve", role: "figure", "aria-label": `prediction as read, sequence ${s + 1}` });
    readingBox.append(holder);
    const score = current.score && current.score[s] !== undefined && current.score[s] !== null ? fmt(current.score[s]) : "n/a";
    drawLines(holder, {
      series: [{ x: Array.from({ length: T }, (_, i) => i), y: row, color: "#6a1b9a", name: "score" }],
      width: Math.min(full, 760), height: 130, title: `sequence ${s + 1}: score ${score}`,
      xLabel: "tokens read (t)", xName: "t", yLabel: "score", hLines: decision === null ? [] : [{ y: decision, color: "#9e9e9e" }],
    });
  });
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
