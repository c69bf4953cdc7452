"""Step a Keras recurrent cell by hand, one time step at a time, on any Keras backend: the layer's
own cell, or each cell of a `StackedRNNCells` in turn, so that the probe can touch the state of
every (sub-)cell between two steps.

What a cell carries is read from what it returns, not from its attributes. Its states are
flattened (any `state_size`: an int, a list, nested lists; vectors [B, units] or feature maps
[B, ..., filters]), and the state the probe calls h is, in this order:

* the state that the cell also returns as its output (the very same tensor: LSTMCell, GRUCell,
  SimpleRNNCell, ConvLSTMCell, Keras's own ``return output, [output]`` example). h_t is then both
  the output at t and what step t+1 starts from ("direct");
* else the first state with the output's shape (a cell that computes its output beside its
  states): h_t is what step t+1 starts from, the output at t is a separate tensor;
* else none: the probe can only watch the output (`CellLayout.h` is None).

`CellStepper.layout` finds this with one dry step on the first input; `CellStepper.step` runs
one step and lets a hook rewrite each (sub-)cell's output and new states as they come out (the
probe adds its zero perturbations there). Cells are called as Keras's RNN layer and
`StackedRNNCells` call them (``cell(inputs, states, training=...)``), so any cell that Keras
can run can be stepped.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

from keras import backend as keras_backend
from keras import tree

from rnn_monitor.model.anatomy import leaf_cells
from rnn_monitor.model.backend import cell_call_kwargs, is_a
from rnn_monitor.model.gates import positions, spatial_shape


class UnsupportedCell(ValueError):
    """The cell returns something the probe cannot step (said to the user as the reason)."""


@dataclasses.dataclass(frozen=True)
class CellLayout:
    """Where one (sub-)cell's states sit in the layer's flat state list, and which is h."""

    path: tuple[int, ...]  # () for the layer's cell; (i,) for cell i of a StackedRNNCells
    cell: Any
    first: int  # index of the cell's first state in the layer's flat state list
    count: int  # how many flat states the cell carries
    h: Optional[int]  # flat index (layer-wide) of the state called h; None: only the output
    direct: bool  # h is the output itself
    out_shape: tuple  # the cell's output per step, without the batch axis
    out_dtype: str
    in_shape: tuple  # the cell's input per step, without the batch axis
    in_dtype: str

    @property
    def local_h(self) -> Optional[int]:
        """Index of h among the cell's own states."""
        return None if self.h is None else self.h - self.first


def traced_layout(trace: Any, layouts: dict) -> CellLayout:
    """The layout of the sub-cell a traced recurrence monitors; notes on the trace whether its h
    is a state (`recurrent`) and the cell's output (`direct`). Both loops' plans start here."""
    path = trace.info.cell_path
    layout = layouts.get(path)
    if layout is None:
        raise UnsupportedCell(f"its cell has no sub-cell at {path}")
    trace.recurrent = layout.h is not None
    trace.direct = layout.direct
    return layout


def note_state(trace: Any, layout: CellLayout, state_shape: tuple, dtype: str) -> None:
    """Notes what the traced h ([B, ...] `state_shape`, `dtype`) tells of the recurrence: its
    spatial positions and channel order (feature maps), its dtype; an LSTM-like cell must carry
    two states (h and c)."""
    spatial, first = spatial_shape(layout.cell, state_shape)
    trace.positions, trace.channels_first = positions(spatial), first
    trace.dtype = dtype
    if trace.info.kind == "lstm" and layout.count < 2:
        raise UnsupportedCell(f"its LSTM-like cell at {layout.path} carries {layout.count} state(s), not 2")


# hook(layout path, inputs, output, new flat states of that cell) -> (output, new flat states)
Hook = Callable[[tuple, Any, Any, list], tuple]


def _static(shape: Any) -> tuple:
    return tuple(None if d is None else int(d) for d in shape)


def _same_shape(a: Any, b: Any) -> bool:
    sa, sb = _static(a.shape), _static(b.shape)
    return len(sa) == len(sb) and all(x is None or y is None or x == y for x, y in zip(sa[1:], sb[1:]))


class CellStepper:
    """One step of a layer's cell on flat states; `structure` is the layer's initial state as
    Keras passes it to ``inner_loop`` (a list, nested for stacked cells and nested state sizes)."""

    def __init__(self, cell: Any, structure: Sequence[Any]) -> None:
        self.cell = cell
        self.structure = list(structure)

    def layout(self, x0: Any, flat0: Sequence[Any]) -> dict[tuple, CellLayout]:
        """One dry step on the first input: which state of every (sub-)cell is h."""
        found: dict[tuple, CellLayout] = {}
        cells = dict(leaf_cells(self.cell))

        def find(path, inputs, out, new_flat, first):
            index = next((j for j, s in enumerate(new_flat) if s is out), None)
            direct = index is not None
            if index is None:
                index = next((j for j, s in enumerate(new_flat) if _same_shape(s, out)), None)
            found[path] = CellLayout(
                path=path, cell=cells.get(path), first=first, count=len(new_flat),
                h=None if index is None else first + index, direct=direct,
                out_shape=_static(out.shape[1:]), out_dtype=keras_backend.standardize_dtype(out.dtype),
                in_shape=_static(inputs.shape[1:]), in_dtype=keras_backend.standardize_dtype(inputs.dtype),
            )
            return out, new_flat

        self._run(self.cell, (), x0, tree.pack_sequence_as(self.structure, list(flat0)), 0, find)
        return found

    def step(self, x_t: Any, flat_states: Sequence[Any], hook: Optional[Hook] = None) -> tuple[Any, list]:
        """``(output, new flat states)`` of one step; `hook` sees every (sub-)cell's results."""
        states = tree.pack_sequence_as(self.structure, list(flat_states))
        wrapped = None if hook is None else (lambda path, inputs, out, new, first: hook(path, inputs, out, new))
        return self._run(self.cell, (), x_t, states, 0, wrapped)

    def _run(self, cell, path, inputs, states, first, hook):
        if is_a(cell, "StackedRNNCells"):
            if len(states) != len(cell.cells):
                raise UnsupportedCell(
                    f"its StackedRNNCells has {len(cell.cells)} cells but {len(states)} state groups"
                )
            new_flat: list = []
            for i, (sub, sub_states) in enumerate(zip(cell.cells, states)):
                inputs, sub_new = self._run(sub, path + (i,), inputs, sub_states, first + len(new_flat), hook)
                new_flat.extend(sub_new)
            return inputs, new_flat
        n_states = len(tree.flatten(states))
        # As Keras: the layer's cell gets a tuple of its states (backend.rnn), a cell of a stack
        # gets a list (StackedRNNCells.call).
        if not path:
            arg = tuple(states)
        else:
            arg = list(states) if tree.is_nested(states) else [states]
        out, new = cell(inputs, arg, **cell_call_kwargs(cell))
        if tree.is_nested(out):
            raise UnsupportedCell(f"its cell ({type(cell).__name__}) returns a nested output")
        new_flat = tree.flatten(new)
        if len(new_flat) != n_states:
            raise UnsupportedCell(
                f"its cell ({type(cell).__name__}) takes {n_states} state tensors but returns "
                f"{len(new_flat)}"
            )
        if hook is not None:
            out, new_flat = hook(path, inputs, out, list(new_flat), first)
        return out, list(new_flat)
