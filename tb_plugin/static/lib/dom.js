// DOM helpers shared by the views: element building and the page's recurring pieces (notices,
// cards). No inline handlers or HTML strings: TensorBoard's CSP forbids inline script.

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

export function errorNotice(err) {
  return notice("error", err && err.message ? err.message : String(err));
}

// "Showing n of m epochs": TensorBoard sampled the series (names the flag that keeps them all),
// or the series was too large for its data server to send whole (no flag: the server's message).
export function samplingNotice(sampling) {
  if (!sampling) return null;
  if (!sampling.flag) return notice("warn", el("strong", { text: "Sampled: " }), sampling.message);
  return notice(
    "warn",
    el("strong", { text: "Sampled: " }),
    `showing ${sampling.shown} of ${sampling.logged} logged epochs. TensorBoard keeps only a sample of each plugin tensor series; restart it with `,
    el("code", { text: sampling.flag }),
    " to see every epoch.",
  );
}

export function section(title, subtitle, ...children) {
  return el("section", { class: "card" }, el("h2", { text: title }), subtitle ? el("p", { class: "sub", text: subtitle }) : null, ...children);
}

// `missing`: why nothing was probed for the layer (the /runs answer's `missing`); without probe
// data at all, say what to pass.
export function noProbe(what, missing) {
  if (missing && missing !== "the run was logged without probe data") {
    return notice("info", `No ${what} for this layer: ${missing}. Its weights are in the Health view.`);
  }
  return notice(
    "info",
    `No ${what} for this layer: the run was logged without probe data. Pass `,
    el("code", { text: "probe_data=(x, y)" }),
    " to RNNMonitor to record gradients through time and activations.",
  );
}
