"""TensorFlow's loop path: the stock cells' gates rebuilt from their weights for a block of steps,
in float32, in the *rows* layout its statistics and reverse pass use.

Keras's LSTM / GRU / ConvLSTM cells do not return their gates, so the probe recomputes them after
the unroll, vectorized over [t, B] (Keras's own formulas: `keras/src/layers/rnn/lstm.py`,
`gru.py`, `conv_lstm.py`). Everything runs in float32 from the float32 variables, also when the
layer computes in float16 (mixed precision): the caller compares the rebuilt h (and c) with the
cell's own values with a tolerance that scales with the layer's dtype.

Layouts: x [t, B, ...input], h_prev / c_prev [t, B, ...state]. Results are in *rows* layout
[t, N, units] with N = B for vector states and N = B * positions for feature maps (every spatial
position of every sequence is one row; units = filters, the last axis).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rnn_monitor.model.gates import gru_step


def to_rows(values: Any, channels_first: bool, lead: int = 2) -> Any:
    """[*lead axes, B, ...] with units last (or at ``lead`` for channels_first) -> [*lead-1, N, U].

    With ``lead=2`` a time-major block [t, B, ...] becomes [t, B * positions, units].
    """
    rank = values.shape.rank
    if rank == lead:
        return values
    if channels_first and rank > lead + 1:
        perm = list(range(lead)) + list(range(lead + 1, rank)) + [lead]
        values = tf.transpose(values, perm)
    units = values.shape[-1]
    shape = tf.shape(values)
    lead_dims = [shape[i] for i in range(lead - 1)]
    return tf.reshape(values, tf.stack(lead_dims + [-1, units]))


def _f32(value: Any) -> Any:
    return tf.cast(tf.convert_to_tensor(value), tf.float32)


def _merge_time(values: Any) -> Any:
    """[t, B, ...] -> [t * B, ...]."""
    shape = tf.shape(values)
    return tf.reshape(values, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))


def times(a: Any, matrix: Any, transpose: bool = False) -> Any:
    """[..., n] @ matrix (or its transpose) as one 2-D matmul: [..., m] (a batched einsum over
    [t, B, n] is about a quarter slower here)."""
    shape = tf.shape(a)
    out = tf.matmul(tf.reshape(a, tf.stack([-1, shape[-1]])), matrix, transpose_b=transpose)
    cols = matrix.shape[0] if transpose else matrix.shape[1]
    out = tf.reshape(out, tf.concat([shape[:-1], [cols]], axis=0))
    out.set_shape(a.shape[:-1].concatenate([cols]))
    return out


def lstm_preactivations(cell: Any, x: Any, h_prev: Any) -> Any:
    """z = W x + U h + b of every gate (Keras's order i, f, c, o), rows layout [t, N, 4 units]."""
    x, h_prev = _f32(x), _f32(h_prev)
    kernel, recurrent = _f32(cell.kernel), _f32(cell.recurrent_kernel)
    bias = _f32(cell.bias) if cell.use_bias else None
    if h_prev.shape.rank <= 3:  # vectors: [t, B, D] @ [D, 4U]
        z = times(x, kernel) + times(h_prev, recurrent)
        return z + bias if bias is not None else z
    # Feature maps (ConvLSTM): one convolution with all four gates' kernels at once (the
    # convolution is linear in the kernel's output channels, so this equals Keras's four).
    t = tf.shape(x)[0]
    first = cell.data_format == "channels_first"
    zx = keras.ops.conv(_merge_time(x), kernel, strides=cell.strides, padding=cell.padding,
                        data_format=cell.data_format, dilation_rate=cell.dilation_rate)
    zh = keras.ops.conv(_merge_time(h_prev), recurrent, strides=1, padding="same",
                        data_format=cell.data_format)
    z = zx + zh
    if bias is not None:
        rank = z.shape.rank
        shape = [1, -1] + [1] * (rank - 2) if first else [1] * (rank - 1) + [-1]
        z = z + tf.reshape(bias, shape)
    z = tf.reshape(z, tf.concat([[t, -1], tf.shape(z)[1:]], axis=0))  # [t, B, ...]
    return to_rows(z, first)


def lstm_gates(cell: Any, z: Any, c_prev_rows: Any) -> tuple[dict, Any, Any, Any]:
    """``({i, f, g, o}, sigmoid of z, c, tanh(c))`` from the pre-activations (rows layout)."""
    units = z.shape[-1] // 4
    # One recurrent activation over all four blocks (the c~ block of it is unused): fewer ops.
    sig = cell.recurrent_activation(z)
    gates = {
        "i": sig[..., :units],
        "f": sig[..., units : 2 * units],
        "g": cell.activation(z[..., 2 * units : 3 * units]),
        "o": sig[..., 3 * units :],
    }
    c = gates["f"] * _f32(c_prev_rows) + gates["i"] * gates["g"]
    tanh_c = cell.activation(c)
    return gates, sig, c, tanh_c


def gru_block(cell: Any, x: Any, h_prev: Any) -> tuple[dict, Any]:
    """GRU gates and h for a whole [t, B, .] block (rows layout = [t, B, units])."""
    x, h_prev = _f32(x), _f32(h_prev)
    shape = tf.shape(x)
    t, b = shape[0], shape[1]
    x2 = tf.reshape(x, tf.stack([t * b, shape[-1]]))
    units = int(h_prev.shape[-1])
    h2 = tf.reshape(h_prev, tf.stack([t * b, units]))
    gates, h = gru_step(cell, x2, h2)
    back = lambda v: tf.reshape(v, tf.stack([t, b, units]))  # noqa: E731
    return {k: back(v) for k, v in gates.items()}, back(h)
