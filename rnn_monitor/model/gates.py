"""The stock cells' gate arithmetic, written out from their weights: Keras's own formulas
(`keras/src/layers/rnn/lstm.py`, `gru.py`), so the probe can see the gates the cell computes
internally. Each works on one step: inputs [B, D], states [B, units].
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf


def lstm_gates(cell: Any, x_t: Any, h_prev: Any, c_prev: Any) -> tuple[dict, Any, Any]:
    """``({i, f, g, o}, h, c)`` of one LSTM step (Keras's gate order i f c o; g is c~)."""
    z = keras.ops.matmul(x_t, cell.kernel) + keras.ops.matmul(h_prev, cell.recurrent_kernel)
    if cell.use_bias:
        z = z + cell.bias
    z0, z1, z2, z3 = tf.split(z, 4, axis=-1)
    i = cell.recurrent_activation(z0)
    f = cell.recurrent_activation(z1)
    g = cell.activation(z2)
    o = cell.recurrent_activation(z3)
    c = f * c_prev + i * g
    h = o * cell.activation(c)
    return {"i": i, "f": f, "g": g, "o": o}, h, c


def gru_gates(cell: Any, x_t: Any, h_prev: Any, dtype: Optional[Any] = None) -> tuple[dict, Any]:
    """``({z, r, hh}, h)`` of one GRU step, for both `reset_after` layouts (hh is h~).

    With `dtype` the weights are cast to it first (the probe rebuilds gates in float32 also
    when the layer computes in float16)."""
    weight = (lambda v: tf.cast(v, dtype)) if dtype is not None else (lambda v: v)  # noqa: E731
    units = cell.units
    matrix_x = keras.ops.matmul(x_t, weight(cell.kernel))
    input_bias = recurrent_bias = None
    if cell.use_bias:
        bias = weight(cell.bias)
        if cell.reset_after:
            input_bias, recurrent_bias = bias[0], bias[1]
        else:
            input_bias = bias
    if input_bias is not None:
        matrix_x = matrix_x + input_bias
    x_z, x_r, x_h = tf.split(matrix_x, 3, axis=-1)
    rk = weight(cell.recurrent_kernel)
    if cell.reset_after:
        inner = keras.ops.matmul(h_prev, rk)
        if recurrent_bias is not None:
            inner = inner + recurrent_bias
        r_z, r_r, r_h = inner[:, :units], inner[:, units : 2 * units], inner[:, 2 * units :]
        z = cell.recurrent_activation(x_z + r_z)
        r = cell.recurrent_activation(x_r + r_r)
        hh = cell.activation(x_h + r * r_h)
    else:
        inner = keras.ops.matmul(h_prev, rk[:, : 2 * units])
        z = cell.recurrent_activation(x_z + inner[:, :units])
        r = cell.recurrent_activation(x_r + inner[:, units:])
        hh = cell.activation(x_h + keras.ops.matmul(r * h_prev, rk[:, 2 * units :]))
    h = z * h_prev + (1.0 - z) * hh
    return {"z": z, "r": r, "hh": hh}, h
