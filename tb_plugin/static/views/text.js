// "Activations in text" view: the probe sequences, each character on a background coloured by
// one unit's activation; units ranked by variance or by relevance to a regex.

import { DIVERGING, divergingColor, ramp, rgb, textColourOn } from "../lib/colour.js";
import { drawLines, panelWidth, setupCanvas } from "../lib/chart.js";
import { debounce, el, errorNotice, noProbe, samplingNotice, section } from "../lib/dom.js";
import { api, decodeFloat16 } from "../lib/fetch.js";
import { fmt } from "../lib/format.js";

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

export async function renderText(view, layer, stale, state) {
  const sources = layer.sources && layer.sources.length ? layer.sources : layer.states && layer.states.length ? ["probe"] : [];
  if (!sources.length) {
    view.append(noProbe("activations", layer.missing));
    return;
  }
  if (!state.textSource || !sources.includes(state.textSource)) state.textSource = sources[0];
  if (state.textSource === "probe" && (!state.textState || !layer.states.includes(state.textState))) state.textState = layer.states.includes("h") ? "h" : layer.states[0];
  const sourceSel = el("select", { id: "text-source", "aria-label": "Text source" });
  for (const s of sources) sourceSel.append(el("option", { value: s, text: SOURCE_NAMES[s] || s }));
  sourceSel.value = state.textSource;
  const readingBox = el("div", { id: "reading", class: "reading" });
  const banner = el("div", { class: "banner" });
  const stateSel = el("select", { id: "text-state", "aria-label": "State" });
  const stateNames = { h: "h (output)", c: "c (cell state)", importance: "score drop" };
  const fillStates = (states) => {
    stateSel.replaceChildren();
    for (const s of states) stateSel.append(el("option", { value: s, text: stateNames[s] || `gate ${s}` }));
    if (states.includes(state.textState)) stateSel.value = state.textState;
  };
  fillStates(state.textSource === "probe" ? layer.states : []);
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
      el("label", {}, "Source ", sourceSel),
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
    readingBox,
  );
  view.append(banner, card);

  let current = null; // last activations response + decoded data
  const loadEpoch = async (epochParam) => {
    let body;
    try {
      const source = state.textSource === "probe" ? undefined : state.textSource;
      const st = state.textSource === "importance" ? undefined : state.textState;
      body = await api("activations", { run: state.run, layer: layer.name, state: st, epoch: epochParam, source });
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
    if (body.states && body.states.join() !== Array.from(stateSel.options).map((o) => o.value).join()) fillStates(body.states);
    state.textState = body.state;
    stateSel.value = body.state;
    const [title, sub] = SOURCE_TEXT[body.source || "probe"];
    card.querySelector("h2").textContent = title;
    card.querySelector("p.sub").textContent = sub;
    for (const node of [rankSel, regexInput, regexBtn, unitSel, topUnits]) {
      const box = node.closest("label") || node;
      box.style.display = body.source === "importance" ? "none" : ""; // the CSS display beats [hidden]
    }
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
        if (THIN.test(span.textContent)) span.className = "thin";
        const c = divergingColor(v, scale);
        span.style.backgroundColor = rgb(c);
        span.style.color = rgb(textColourOn(c)); // readable on any background (WCAG >= 4.5)
        if (state.mask && state.mask[s] && state.mask[s][t]) span.classList.add("match");
        span.title = `${JSON.stringify(tok)}  t=${t}  unit ${shownId} ${current.state} = ${Number.isNaN(v) ? "n/a (masked)" : v.toFixed(3)}`;
        pre.append(span);
      }
      frag.append(pre);
    }
    textBox.replaceChildren(frag);
    drawReading();
    textBox.dataset.epoch = String(current.epoch);
    textBox.dataset.unit = String(shownId);
  };

  const drawReading = () => {
    readingBox.replaceChildren();
    if (!current || current.source !== "importance" || !current.reading) return;
    const T = current.shape[1];
    const full = panelWidth(textBox) - 8;
    const decision = current.decision === null || current.decision === undefined ? null : current.decision;
    readingBox.append(el("h3", { text: "Prediction as read" }), el("p", { class: "sub", text: `The model's score for its predicted class after reading each prefix (t + 1 tokens); the dashed line is the decision point (${decision === null ? "n/a" : decision}).` }));
    current.reading.forEach((row, s) => {
      const c = el("canvas", { class: "small reading-curve", role: "img", "aria-label": `prediction as read, sequence ${s + 1}` });
      readingBox.append(c);
      const score = current.score && current.score[s] !== undefined && current.score[s] !== null ? fmt(current.score[s]) : "n/a";
      drawLines(c, {
        series: [{ x: Array.from({ length: T }, (_, t) => t), y: row, color: "#6a1b9a" }],
        width: Math.min(full, 760), height: 130, title: `sequence ${s + 1}: score ${score}`,
        xLabel: "tokens read (t)", yLabel: "score", hLines: decision === null ? [] : [{ y: decision, color: "#9e9e9e" }],
      });
    });
  };

  sourceSel.addEventListener("change", () => {
    state.textSource = sourceSel.value;
    state.unit = null;
    state.textState = state.textSource === "probe" ? (layer.states.includes("h") ? "h" : layer.states[0]) : state.textSource === "generated" ? "h" : "importance";
    loadEpoch(undefined);
  });
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
