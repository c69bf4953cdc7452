"""Stepping a Keras cell by hand (`rnn_monitor.model.stepping`): which state is h, where every
(sub-)cell's states sit, and that the stepped outputs are Keras's own loop's."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

from rnn_monitor.model.stepping import CellStepper, UnsupportedCell

pytestmark = pytest.mark.backends

B, T, D = 3, 5, 4


class _OutputBesideState(L.Layer):
    """Returns tanh of its state as the output: h is its state, not its output."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units, self.state_size = units, units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))

    def call(self, inputs, states):
        h = ops.matmul(inputs, self.kernel) + states[0]
        return ops.tanh(h), [h]


class _WiderOutput(_OutputBesideState):
    """Its output is wider than its state: no state can be called h."""

    def call(self, inputs, states):
        h = ops.matmul(inputs, self.kernel) + states[0]
        return ops.concatenate([h, h], axis=-1), [h]


class _NestedOutput(_OutputBesideState):
    def call(self, inputs, states):
        h = ops.matmul(inputs, self.kernel) + states[0]
        return (h, h), [h]


def _stepper(cell, state_sizes):
    """The cell built for D inputs, a stepper over zero initial states of `state_sizes` (nested
    as Keras passes them), the first input and the flat initial states."""
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    cell.build((B, D))
    structure = [[ops.zeros((B, n)) for n in sizes] for sizes in state_sizes]
    if len(state_sizes) == 1:
        structure = structure[0]
    flat = keras.tree.flatten(structure)
    return CellStepper(cell, structure), ops.convert_to_tensor(x), flat


def test_layout_of_a_stock_lstm_cell():
    stepper, x, flat = _stepper(L.LSTMCell(3), [[3, 3]])
    (layout,) = stepper.layout(x[:, 0], flat).values()
    assert (layout.path, layout.first, layout.count, layout.h, layout.local_h, layout.direct) == ((), 0, 2, 0, 0, True)
    assert (layout.out_shape, layout.in_shape, layout.out_dtype) == ((3,), (D,), "float32")


def test_layout_of_every_cell_of_a_stack():
    cell = L.StackedRNNCells([L.LSTMCell(2), L.GRUCell(3), _OutputBesideState(2)])
    stepper, x, flat = _stepper(cell, [[2, 2], [3], [2]])
    layouts = stepper.layout(x[:, 0], flat)
    assert sorted(layouts) == [(0,), (1,), (2,)]
    got = {path: (lay.first, lay.count, lay.h, lay.local_h, lay.direct, lay.in_shape) for path, lay in layouts.items()}
    assert got == {(0,): (0, 2, 0, 0, True, (D,)), (1,): (2, 1, 2, 0, True, (2,)), (2,): (3, 1, 3, 0, False, (3,))}
    assert all(layouts[path].cell is cell.cells[path[0]] for path in layouts)


def test_no_h_when_no_state_is_shaped_like_the_output():
    stepper, x, flat = _stepper(_WiderOutput(2), [[2]])
    (layout,) = stepper.layout(x[:, 0], flat).values()
    assert layout.h is None and layout.local_h is None and not layout.direct and layout.out_shape == (4,)


def test_stepped_outputs_are_keras_loops():
    """The stack stepped T times by hand gives what Keras's RNN layer gives for the same cells."""
    cell = L.StackedRNNCells([L.LSTMCell(2), L.GRUCell(3)])
    stepper, x, flat = _stepper(cell, [[2, 2], [3]])
    outputs = []
    for t in range(T):
        out, flat = stepper.step(x[:, t], flat)
        outputs.append(ops.convert_to_numpy(out))
    layer = L.RNN(cell, return_sequences=True, return_state=True)
    expected, *states = layer(x)
    np.testing.assert_allclose(np.stack(outputs, axis=1), ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-6)
    for got, want in zip(flat, keras.tree.flatten(states)):
        np.testing.assert_allclose(ops.convert_to_numpy(got), ops.convert_to_numpy(want), rtol=1e-5, atol=1e-6)


def test_the_hook_sees_and_rewrites_every_cell():
    """What the hook returns is what the next cell (and step) receives."""
    cell = L.StackedRNNCells([L.SimpleRNNCell(2), L.SimpleRNNCell(3)])
    stepper, x, flat = _stepper(cell, [[2], [3]])
    seen = []

    def hook(path, inputs, out, new_flat):
        seen.append((path, tuple(inputs.shape), len(new_flat)))
        shifted = out + 1.0
        return shifted, [shifted]

    out, new_flat = stepper.step(x[:, 0], flat, hook)
    assert seen == [((0,), (B, D), 1), ((1,), (B, 2), 1)]
    # by hand: the first cell's output + 1 is the second cell's input
    first = cell.cells[0]
    h0 = np.tanh(ops.convert_to_numpy(x[:, 0]) @ first.kernel.numpy()
                 + first.bias.numpy()) + 1.0
    second = cell.cells[1]
    h1 = np.tanh(h0 @ second.kernel.numpy() + second.bias.numpy()) + 1.0
    np.testing.assert_allclose(ops.convert_to_numpy(out), h1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(new_flat[0]), h0, rtol=1e-5, atol=1e-6)


def test_a_nested_output_cannot_be_stepped():
    stepper, x, flat = _stepper(_NestedOutput(2), [[2]])
    with pytest.raises(UnsupportedCell, match="nested output"):
        stepper.step(x[:, 0], flat)


def test_a_stack_with_missing_state_groups_cannot_be_stepped():
    cell = L.StackedRNNCells([L.SimpleRNNCell(2), L.SimpleRNNCell(3)])
    stepper, x, flat = _stepper(cell, [[2], [3]])
    stepper.structure = stepper.structure[:1]
    with pytest.raises(UnsupportedCell, match="2 cells but 1 state groups"):
        stepper.step(x[:, 0], flat[:1])
