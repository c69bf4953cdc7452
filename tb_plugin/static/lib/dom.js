// DOM helpers and the notices every view uses.

export function el(tag, attrs = {}, ...children) {
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

export function fmt(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  return Number(v.toPrecision(digits)).toString();
}

export function powerLabel(p) {
  // Tick label of 10^p: "0.01", "1", "100", or "1e-5" for far-away powers.
  if (Number.isInteger(p)) return Math.abs(p) <= 2 ? String(Math.pow(10, p)) : `1e${p}`;
  return fmt(Math.pow(10, p), 2);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function notice(kind, ...content) {
  return el("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...content);
}

export function samplingNotice(sampling) {
  if (!sampling) return null;
  return notice(
    "warn",
    el("strong", { text: "Sampled: " }),
    `showing ${sampling.shown} of ${sampling.logged} logged epochs. TensorBoard keeps only a sample of each plugin tensor series; restart it with `,
    el("code", { text: sampling.flag }),
    " to see every epoch.",
  );
}

export function errorNotice(err) {
  return notice("error", err && err.message ? err.message : String(err));
}

export function section(title, subtitle, ...children) {
  return el("section", { class: "card" }, el("h2", { text: title }), subtitle ? el("p", { class: "sub", text: subtitle }) : null, ...children);
}

export function noProbe(what) {
  return notice(
    "info",
    `No ${what} for this layer: the run was logged without probe data. Pass `,
    el("code", { text: "probe_data=(x, y)" }),
    " to RNNMonitor to record gradients through time and activations.",
  );
}
