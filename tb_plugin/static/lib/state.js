// The dashboard's state: what is selected and what was loaded, shared by the app and the views.

export const state = {
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
  cache: new Map(),
};

export function currentRun() {
  return state.runs.find((r) => r.run === state.run) || null;
}

export function currentLayer() {
  const run = currentRun();
  return run ? run.layers.find((l) => l.name === state.layer) || null : null;
}
