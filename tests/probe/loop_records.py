"""A recurrence's record as the probe's loops keep it, made by stepping a stock cell by hand
(imported by the probe's reduction tests: not a test module)."""

from __future__ import annotations

import keras
import numpy as np

from rnn_monitor.model.anatomy import find_rnn_layers
from rnn_monitor.model.perturbed_loop import TracedRecurrence


def stepped_record(kind, lengths, steps, units, features, seed):
    """``(shape, record, arrays)``: a stock LSTM / GRU layer with random weights stepped over
    padded sequences (a masked step carries the states), its `TracedRecurrence` and the record
    (tensors: valid, h, h0, x, and for an LSTM c, c0), the same as numpy arrays."""
    layer = (keras.layers.LSTM if kind == "lstm" else keras.layers.GRU)(units, return_sequences=True)
    model = keras.Sequential([keras.Input((steps, features)), layer])
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(scale=1.5, size=variable.shape).astype("float32"))
    (info,) = find_rnn_layers(model)
    shape = TracedRecurrence(info, rebuild=True)
    batch = len(lengths)
    x = rng.normal(scale=2.0, size=(batch, steps, features)).astype("float32")
    valid = np.arange(steps)[None, :] < np.array(lengths)[:, None]
    carried = [rng.normal(size=(batch, units)).astype("float32") for _ in range(2 if kind == "lstm" else 1)]
    arrays = {"valid": valid, "x": x, "h0": carried[0], "h": np.zeros((batch, steps, units), "float32")}
    if kind == "lstm":
        arrays["c0"], arrays["c"] = carried[1], np.zeros((batch, steps, units), "float32")
    for t in range(steps):
        _, new = layer.cell(x[:, t], carried)
        new = [np.asarray(s) for s in (new if isinstance(new, (list, tuple)) else [new])]
        carried = [np.where(valid[:, t, None], n, c) for n, c in zip(new, carried)]
        arrays["h"][:, t] = carried[0]
        if kind == "lstm":
            arrays["c"][:, t] = carried[1]
    record = {key: keras.ops.convert_to_tensor(value) for key, value in arrays.items()}
    return shape, record, arrays
