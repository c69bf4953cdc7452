// The plugin's JSON routes, fetched with relative URLs and kept for a while; float16 blobs.
//
// TensorBoard's entry page sets <base href="plugin/rnn_monitor/">, so "./runs" reaches
// /data/plugin/rnn_monitor/runs (fetch resolves against the document, not this module).

// Answers kept in the page (an activations answer with all units is ~1-2 MB once decoded).
const CACHE_ENTRIES = 48;
const cache = new Map();

export function clearCache() {
  cache.clear();
}

// GET ./route?params as JSON; rejects with an Error carrying the route's message and `status`.
export function api(route, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) query.set(k, v);
  const url = `./${route}?${query}`;
  if (cache.has(url)) return cache.get(url);
  const promise = fetch(url, { credentials: "same-origin" }).then(async (resp) => {
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = { error: `unexpected answer from TensorBoard (HTTP ${resp.status})` };
    }
    if (!resp.ok) {
      const err = new Error((body && body.error) || `HTTP ${resp.status}`);
      err.status = resp.status;
      throw err;
    }
    return body;
  });
  cache.set(url, promise);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value);
  promise.catch(() => cache.delete(url));
  return promise;
}

// float16 (little-endian, base64) -> Float32Array, through a 65536-entry table.
let HALF_TABLE = null;
function halfTable() {
  if (HALF_TABLE) return HALF_TABLE;
  HALF_TABLE = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    let v;
    if (e === 0) v = s * Math.pow(2, -14) * (f / 1024);
    else if (e === 31) v = f ? NaN : s * Infinity;
    else v = s * Math.pow(2, e - 15) * (1 + f / 1024);
    HALF_TABLE[h] = v;
  }
  return HALF_TABLE;
}

export function decodeFloat16(b64) {
  const bin = atob(b64);
  const n = bin.length >> 1;
  const out = new Float32Array(n);
  const table = halfTable();
  for (let i = 0; i < n; i++) out[i] = table[bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)];
  return out;
}

// A grid the routes send as exact float32 (little-endian, base64) with its shape [rows, cols]
// -> an array of rows (Float32Array views; NaN where nothing was measured).
export function decodeGrid(grid) {
  const bin = atob(grid.data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const flat = new Float32Array(bytes.buffer);
  const [rows, cols] = grid.shape.length === 2 ? grid.shape : [1, flat.length];
  const out = new Array(rows);
  for (let r = 0; r < rows; r++) out[r] = flat.subarray(r * cols, (r + 1) * cols);
  return out;
}
