"""The stock cells' gate arithmetic, written out from their weights in `keras.ops` (any backend):
Keras's own formulas (`keras/src/layers/rnn/lstm.py`, `gru.py`, `conv_lstm.py`), so the probe can
see the gates a cell computes internally and the kernel path can rebuild c and the gates around
a fused layer.

Vector cells take any leading axes: one step [B, D] or a block of steps [t, B, D]. Everything runs
in float32 from the float32 variables, also when the layer computes in float16 (mixed
precision): callers compare the rebuilt h (and c) with the cell's own values with a tolerance
that follows the layer's dtype. Feature maps (ConvLSTM) keep their layout here; the caller
splits their gates after moving the filters last (`rnn_monitor.probe.reductions.per_position`).
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

# What both unit-statistics reductions (TensorFlow's loop, keras.ops) record per cell kind.
# State names of the activations view, by cell kind (gates after the states).
STATE_NAMES = {
    "lstm": ("h", "c", "i", "f", "g", "o"),
    "gru": ("h", "z", "r", "hh"),
    "simple": ("h",),
    "custom": ("h",),
}
# Gates whose activation is the recurrent (sigmoid) one: they get left / right saturation.
SIGMOID_GATES = {"lstm": ("i", "f", "o"), "gru": ("z", "r")}
CHECK_ROWS = 8  # sequences on which the rebuilt gates are checked against the cell's own h and c
CHUNK_ELEMENTS = 1_000_000  # default values per gate block in one chunk of steps (`ProbeSettings`)


def f32(value: Any) -> Any:
    return ops.cast(value, "float32")


def spatial_shape(cell: Any, state_shape: tuple) -> tuple[tuple[int, ...], bool]:
    """``(spatial dims, channels_first)`` of a state [B, ...] (shape as a tuple): () for a vector."""
    if len(state_shape) <= 2:
        return (), False
    first = getattr(cell, "data_format", None) == "channels_first"
    dims = tuple(state_shape[2:] if first else state_shape[1:-1])
    if any(d is None for d in dims):
        raise ValueError(f"its state has spatial dimensions {dims} that are not static")
    return tuple(int(d) for d in dims), first


def positions(spatial: tuple[int, ...]) -> int:
    return int(math.prod(spatial)) if spatial else 1


def _split(values: Any, parts: int) -> list:
    return ops.split(values, parts, axis=-1)


def lstm_preactivations(cell: Any, x: Any, h_prev: Any) -> Any:
    """z = x W + h U + b of all four gates (Keras's order i, f, c, o), in the state's layout:
    vectors [..., 4 units]; feature maps [L0, L1, ...] (two leading axes, e.g. batch and time) as
    one convolution with all four gates' kernels, equal to Keras's four (a convolution is linear
    in its output channels)."""
    kernel, recurrent = f32(cell.kernel), f32(cell.recurrent_kernel)
    bias = f32(cell.bias) if cell.use_bias else None
    x, h_prev = f32(x), f32(h_prev)
    if len(h_prev.shape) <= 3:
        z = ops.matmul(x, kernel) + ops.matmul(h_prev, recurrent)
        return z + bias if bias is not None else z
    lead = tuple(ops.shape(x)[:2])
    merged_x = ops.reshape(x, (-1,) + tuple(ops.shape(x)[2:]))
    merged_h = ops.reshape(h_prev, (-1,) + tuple(ops.shape(h_prev)[2:]))
    z = ops.conv(merged_x, kernel, strides=cell.strides, padding=cell.padding,
                 data_format=cell.data_format, dilation_rate=cell.dilation_rate)
    z = z + ops.conv(merged_h, recurrent, strides=1, padding="same", data_format=cell.data_format)
    if bias is not None:
        rank = len(z.shape)
        first = cell.data_format == "channels_first"
        z = z + ops.reshape(bias, (1, -1) + (1,) * (rank - 2) if first else (1,) * (rank - 1) + (-1,))
    return ops.reshape(z, lead + tuple(ops.shape(z)[1:]))


def lstm_from_preactivations(cell: Any, z: Any, c_prev: Any) -> tuple[dict, Any, Any]:
    """``({i, f, g, o, sig}, c, tanh(c))`` from the pre-activations and the carried c (same
    layout); ``sig`` is the recurrent activation of all four blocks at once (fewer ops: the
    c~ block of it is unused)."""
    sig = cell.recurrent_activation(z)
    si, sf, _, so = _split(sig, 4)
    gates = {"i": si, "f": sf, "g": cell.activation(_split(z, 4)[2]), "o": so, "sig": sig}
    c = gates["f"] * f32(c_prev) + gates["i"] * gates["g"]
    return gates, c, cell.activation(c)


def lstm_step(cell: Any, x: Any, h_prev: Any, c_prev: Any) -> tuple[dict, Any, Any]:
    """``({i, f, g, o}, h, c)`` of an LSTM (vector) cell, for one step or a block of steps."""
    gates, c, tanh_c = lstm_from_preactivations(cell, lstm_preactivations(cell, x, h_prev), c_prev)
    gates.pop("sig")
    return gates, gates["o"] * tanh_c, c


def gru_step(cell: Any, x: Any, h_prev: Any) -> tuple[dict, Any]:
    """``({z, r, hh}, h)`` of a GRU cell in both `reset_after` layouts (hh is h~), for one step
    or a block of steps."""
    units = cell.units
    x, h_prev = f32(x), f32(h_prev)
    kernel, recurrent = f32(cell.kernel), f32(cell.recurrent_kernel)
    matrix_x = ops.matmul(x, kernel)
    input_bias = recurrent_bias = None
    if cell.use_bias:
        bias = f32(cell.bias)
        input_bias, recurrent_bias = (bias[0], bias[1]) if cell.reset_after else (bias, None)
    if input_bias is not None:
        matrix_x = matrix_x + input_bias
    x_z, x_r, x_h = _split(matrix_x, 3)
    if cell.reset_after:
        inner = ops.matmul(h_prev, recurrent)
        if recurrent_bias is not None:
            inner = inner + recurrent_bias
        r_z, r_r, r_h = _split(inner, 3)
        z = cell.recurrent_activation(x_z + r_z)
        r = cell.recurrent_activation(x_r + r_r)
        hh = cell.activation(x_h + r * r_h)
    else:
        inner = ops.matmul(h_prev, recurrent[:, : 2 * units])
        z = cell.recurrent_activation(x_z + inner[..., :units])
        r = cell.recurrent_activation(x_r + inner[..., units:])
        hh = cell.activation(x_h + ops.matmul(r * h_prev, recurrent[:, 2 * units :]))
    h = z * h_prev + (1.0 - z) * hh
    return {"z": z, "r": r, "hh": hh}, h


def linear_recurrence(a: Any, b: Any, axis: int = 1, reverse: bool = False) -> Any:
    """x_t = b_t + a_t * x_{t-1} along `axis` (``reverse``: x_t = b_t + a_t * x_{t+1}), x = 0
    before the first step: an associative scan (log-depth, no step loop)."""

    def compose(earlier, later):  # the map of `later` after the map of `earlier`
        return earlier[0] * later[0], later[1] + later[0] * earlier[1]

    b = f32(b)
    out = ops.associative_scan(compose, (f32(a), b), reverse=reverse, axis=axis)[1]
    return ops.reshape(out, ops.shape(b))  # TensorFlow's scan loses the static shape
