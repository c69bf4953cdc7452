"""The kernel path: a stock LSTM or GRU layer probed through its own fused kernel (cuDNN on a GPU,
through `keras.src.backend.lstm` / `gru`), so that the probe's forward and backward pass run as
fast as the training step's.

The zero perturbation rides on the layer's input: the kernel runs on ``[x_t, e_t]`` with kernel
``[W; I]`` (``e_t`` zeros, one column per gate unit), which leaves every pre-activation
``z_t = x_t W + h_{t-1} U + b`` unchanged and makes ``dL/de_t`` the total derivative with respect
to ``z_t`` (LSTM; for a GRU the input projection, whose candidate part is ``dL/d`` of the
candidate's pre-activation). The total dL/dh_t then follows without a loop over the cell:

* LSTM: ``dL/dh_t = direct_t + dL/dz_{t+1} U^T`` (h_t reaches the loss through its uses outside
  the recurrence and through ``z_{t+1}`` alone; c is a separate state);
* GRU (``reset_after``, the form cuDNN runs): ``g_t = a_t + z_{t+1} * g_{t+1}`` with
  ``a_t = direct_t + [dpre_z, dpre_r, r * dpre_n]_{t+1} U^T``: an elementwise linear recurrence,
  solved by an associative scan.

``direct_t`` is the gradient of the layer's returned values at t: the output sequence, and at
the last step the last output and the final h (zero perturbations on each). The temporal flow is
the same formula with ``direct = v`` at the last step only, from one more backward of the
kernel. For the statistics, the gates come from batched matmuls over the returned h sequence and
an LSTM's c from the same kind of scan.

The kernel path serves one stock cell per layer (not a stack), vector states, no mask and no
recurrent dropout (Keras does not fuse those either). Where the backend cannot fuse the layer
(`NotImplementedError`: no GPU, or arguments cuDNN does not take) the perturbed loop
(`rnn_monitor.model.perturbed_loop`) runs instead, unless the kernel path was asked for explicitly:
then the same arithmetic runs through Keras's generic loop (tests compare both paths with a
step-by-step tape on any machine).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
from keras import ops

from rnn_monitor.model.backend import KERAS, engine_of, is_a
from rnn_monitor.model.gates import gru_step, linear_recurrence, lstm_preactivations
from rnn_monitor.model.perturbed_loop import Provider, TracedRecurrence

# (backend, kind) whose fused kernel returns a go_backwards layer's output sequence in input
# order (keras/src/backend/jax/rnn.py `lstm` flips it back); every other one in processing order.
_SEQUENCES_IN_INPUT_ORDER = {("jax", "lstm")}


def on_gpu() -> bool:
    """Whether the Keras backend computes on a GPU (where fused kernels run)."""
    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if name == "jax":
        import jax

        return jax.default_backend() in ("gpu", "cuda", "rocm")
    return False


def eligible(layer: Any, shapes: Sequence[TracedRecurrence]) -> bool:
    """The layer is one stock LSTM or GRU (``reset_after``) cell that Keras may fuse."""
    if engine_of(layer) != KERAS or len(shapes) != 1 or shapes[0].info.cell_path != ():
        return False
    cell = layer.cell
    if is_a(layer, "LSTM"):
        kind_ok = True
    elif is_a(layer, "GRU"):
        kind_ok = bool(cell.reset_after)
    else:
        return False
    return (kind_ok and getattr(layer, "use_cudnn", "auto") in ("auto", True) and not cell.recurrent_dropout
            and not layer.unroll and not layer.stateful)


def serves(layer: Any, shapes: Sequence[TracedRecurrence], path: str) -> bool:
    """Whether the kernel path runs this layer: asked for, or ("auto") fusable on a GPU."""
    if path == "loop" or not eligible(layer, shapes):
        return False
    return path == "kernel" or on_gpu()


class FusedLoop:
    """The replacement ``inner_loop`` of a stock LSTM / GRU layer on the kernel path."""

    def __init__(self, layer: Any, shape: TracedRecurrence, provider: Provider, record: dict,
                 fallback: Callable, forced: bool) -> None:
        self.layer, self.shape, self.provider, self.record = layer, shape, provider, record
        self.fallback, self.forced = fallback, forced
        self.kind = shape.info.kind
        self.fused = False  # the backend's fused kernel ran (else Keras's generic loop, forced)

    def __call__(self, sequences, initial_state, mask, training=False):
        if mask is not None:  # the kernel path serves unmasked steps only
            return self.fallback(sequences, initial_state, mask, training=training)
        layer, shape = self.layer, self.shape
        x = ops.convert_to_tensor(sequences)
        flat0 = [ops.copy(s) if hasattr(s, "assign") else ops.convert_to_tensor(s) for s in initial_state]
        name, units = shape.info.name, layer.cell.units
        dtype = keras.backend.standardize_dtype(flat0[0].dtype)
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        width = (4 if self.kind == "lstm" else 3) * units
        e = self.provider((name, "z"), (batch, steps, width), dtype)
        try:
            last, outs, states = self._kernel(ops.concatenate([x, e], axis=-1), flat0, fused=True)
            self.fused = True
        except NotImplementedError:
            if not self.forced:
                return self.fallback(sequences, initial_state, mask, training=training)
            last, outs, states = self._kernel(ops.concatenate([x, e], axis=-1), flat0, fused=False)
            self.fused = False
        self._describe(dtype)
        outs = outs + self.provider((name, "out"), (batch, steps, units), dtype)
        last = last + self.provider((name, "last"), (batch, units), dtype)
        h_last = states[0] + self.provider((name, "final_h"), (batch, units), dtype)
        self.record[name] = self._recorded(x, flat0, outs, states)
        shape.gradients = FusedGradients(self)
        return last, outs, [h_last] + list(states[1:])

    def _describe(self, dtype: str) -> None:
        shape, layer = self.shape, self.layer
        shape.path, shape.direct, shape.recurrent = "kernel", True, True
        shape.positions, shape.channels_first, shape.dtype, shape.rebuild = 1, False, dtype, True
        shape.only_last = not layer.return_sequences and not getattr(layer, "return_state", False)

    def _augmented_kernel(self) -> Any:
        kernel = ops.convert_to_tensor(self.layer.cell.kernel)
        width = ops.shape(kernel)[1]
        return ops.concatenate([kernel, ops.cast(ops.eye(width), kernel.dtype)], axis=0)

    def _kernel(self, x_aug, flat0, fused: bool):
        """The layer's fused kernel on the augmented input, or (``fused=False``) the same
        arithmetic through Keras's generic loop: ``(last output, outputs, states)``."""
        from keras.src import backend as keras_backend

        layer, cell = self.layer, self.layer.cell
        kernel = self._augmented_kernel()
        common = dict(kernel=kernel, recurrent_kernel=cell.recurrent_kernel, bias=cell.bias,
                      activation=cell.activation, recurrent_activation=cell.recurrent_activation,
                      return_sequences=True, go_backwards=layer.go_backwards, unroll=False)
        if fused:
            if self.kind == "lstm":
                return keras_backend.lstm(x_aug, flat0[0], flat0[1], None, **common)
            return keras_backend.gru(x_aug, flat0[0], None, reset_after=True, **common)
        step = _generic_step(self.kind, cell, kernel)
        last, outs, states = keras_backend.rnn(step, x_aug, list(flat0), go_backwards=layer.go_backwards,
                                               input_length=x_aug.shape[1], return_all_outputs=True)
        return last, outs, list(states)

    def processing_order(self, values: Any) -> Any:
        """The kernel's output sequence in the layer's processing order."""
        backwards = (self.fused and self.layer.go_backwards
                     and (keras.backend.backend(), self.kind) in _SEQUENCES_IN_INPUT_ORDER)
        return ops.flip(values, axis=1) if backwards else values

    def _recorded(self, x, flat0, outs, states) -> dict:
        xs = ops.flip(x, axis=1) if self.layer.go_backwards else x
        h = ops.stop_gradient(self.processing_order(outs))
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        recorded = {"valid": ops.ones((batch, steps), "bool"), "h": h, "h0": flat0[0], "last_h": states[0],
                    "inputs": ops.stop_gradient(x), "initial": [ops.stop_gradient(s) for s in flat0],
                    "x": ops.stop_gradient(xs)}
        if self.kind == "lstm":
            recorded["c0"] = flat0[1]
            recorded["c"] = lstm_cells(self.layer.cell, xs, h, flat0[0], flat0[1])
        return recorded


def _generic_step(kind: str, cell: Any, kernel: Any) -> Callable:
    """One step of Keras's LSTMCell / GRUCell (``reset_after``) arithmetic with `kernel`."""

    def lstm(x_t, states):
        h, c = states[0], states[1]
        z = ops.matmul(x_t, kernel) + ops.matmul(h, cell.recurrent_kernel)
        if cell.use_bias:
            z = z + cell.bias
        zi, zf, zc, zo = ops.split(z, 4, axis=-1)
        c = cell.recurrent_activation(zf) * c + cell.recurrent_activation(zi) * cell.activation(zc)
        h = cell.recurrent_activation(zo) * cell.activation(c)
        return h, [h, c]

    def gru(x_t, states):
        h = states[0]
        matrix_x = ops.matmul(x_t, kernel)
        inner = ops.matmul(h, cell.recurrent_kernel)
        if cell.use_bias:
            matrix_x, inner = matrix_x + cell.bias[0], inner + cell.bias[1]
        x_z, x_r, x_h = ops.split(matrix_x, 3, axis=-1)
        r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
        z = cell.recurrent_activation(x_z + r_z)
        r = cell.recurrent_activation(x_r + r_r)
        hh = cell.activation(x_h + r * r_h)
        h = z * h + (1.0 - z) * hh
        return h, [h]

    return lstm if kind == "lstm" else gru


def lstm_cells(cell: Any, xs: Any, h: Any, h0: Any, c0: Any) -> Any:
    """An LSTM's c sequence [B, T, U] from its h sequence (processing order): the gates from
    batched matmuls, c_t = f_t c_{t-1} + i_t g_t by an associative scan."""
    h_in = ops.concatenate([ops.expand_dims(h0, 1), h[:, :-1]], axis=1)
    z = lstm_preactivations(cell, xs, h_in)
    zi, zf, zg, _ = ops.split(z, 4, axis=-1)
    f = cell.recurrent_activation(zf)
    update = cell.recurrent_activation(zi) * cell.activation(zg)
    first = update[:, :1] + f[:, :1] * ops.cast(ops.expand_dims(c0, 1), "float32")
    update = ops.concatenate([first, update[:, 1:]], axis=1)
    return ops.cast(linear_recurrence(f, update, axis=1), h.dtype)


class FusedGradients:
    """dL/dh_t and the temporal flow of a recurrence run by `FusedLoop` (see the module)."""

    def __init__(self, loop: FusedLoop) -> None:
        self.loop = loop
        self.name = loop.shape.info.name

    def _to_processing(self, values: Any) -> Any:
        return ops.flip(values, axis=1) if self.loop.layer.go_backwards else values

    def total(self, grads: dict, recorded: dict) -> tuple[Any, Any]:
        """``(dL/dh_t, dL/d out_t)`` [B, T, U] in processing order."""
        name = self.name
        dout = self.loop.processing_order(grads[(name, "out")])
        dout = _add_last(dout, grads[(name, "last")])
        direct = _add_last(dout, grads[(name, "final_h")])
        dz = self._to_processing(grads[(name, "z")])
        return self._through_recurrence(dz, direct, recorded), dout

    def flow(self, vjp: Callable, recorded: dict, v: Any, like: Any) -> Any:
        """d<v, h_last>/dh_t: one more backward of the kernel, the cotangent `v` on its last h."""
        loop = self.loop
        x = recorded["inputs"]
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        width = (4 if loop.kind == "lstm" else 3) * loop.layer.cell.units

        def last_h(e):
            _, _, states = loop._kernel(ops.concatenate([x, e], axis=-1), list(recorded["initial"]), fused=loop.fused)
            return states[0]

        dz = self._to_processing(vjp(last_h, ops.zeros((batch, steps, width), keras.backend.standardize_dtype(like.dtype)), v))
        direct = _add_last(ops.zeros_like(like), v)
        return self._through_recurrence(dz, direct, recorded)

    def _through_recurrence(self, dz: Any, direct: Any, recorded: dict) -> Any:
        """The total dL/dh_t from dL/dz_t and the direct path (see the module's formulas)."""
        cell = self.loop.layer.cell
        dz, direct = ops.cast(dz, "float32"), ops.cast(direct, "float32")
        recurrent = ops.cast(cell.recurrent_kernel, "float32")
        nxt = dz[:, 1:]
        if self.loop.kind == "lstm":
            back = ops.matmul(nxt, ops.transpose(recurrent))
            return direct + ops.pad(back, [[0, 0], [0, 1], [0, 0]])
        h, h0, xs = recorded["h"], recorded["h0"], recorded["x"]
        h_in = ops.concatenate([ops.expand_dims(h0, 1), h[:, :-1]], axis=1)
        gates, _ = gru_step(cell, xs, h_in)
        dpre_z, dpre_r, dpre_n = ops.split(nxt, 3, axis=-1)
        mixed = ops.concatenate([dpre_z, dpre_r, gates["r"][:, 1:] * dpre_n], axis=-1)
        a = direct + ops.pad(ops.matmul(mixed, ops.transpose(recurrent)), [[0, 0], [0, 1], [0, 0]])
        carry = ops.pad(gates["z"][:, 1:], [[0, 0], [0, 1], [0, 0]])  # z_{t+1}; 0 after the last step
        return linear_recurrence(carry, a, axis=1, reverse=True)


def _add_last(values: Any, last: Any) -> Any:
    """`values` [B, T, ...] with `last` [B, ...] added at the last step."""
    steps = ops.shape(values)[1]
    one_hot = ops.reshape(ops.cast(ops.arange(steps) == steps - 1, values.dtype), (1, -1) + (1,) * (len(values.shape) - 2))
    return values + one_hot * ops.expand_dims(ops.cast(last, values.dtype), 1)

