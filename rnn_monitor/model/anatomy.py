"""Find the recurrent layers of a Keras model and the gate layout of each.

`find_rnn_layers(model)` walks Sequential / functional models and models nested inside
models, and returns one `RNNLayerInfo` per monitored recurrence: LSTM, GRU (both bias
layouts), SimpleRNN, ConvLSTM1D/2D/3D, each half of a Bidirectional wrapper, generic
`keras.layers.RNN` around any cell, and each cell of a `StackedRNNCells` on its own
(``<layer>/cell_0``, ``<layer>/cell_1``, ...). Gate layouts are column slices of kernel /
recurrent_kernel / bias along the last axis, in Keras's own order (LSTM and ConvLSTM i,f,c,o;
GRU z,r,h; SimpleRNN h). A cell it does not know is still monitored, as one block named "all"
per weight.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional

import numpy as np

from rnn_monitor.model.backend import is_a, variable_numpy

logger = logging.getLogger("rnn_monitor")

GATES = {
    "lstm": ("i", "f", "c", "o"),
    "gru": ("z", "r", "h"),
    "simple": ("h",),
}


@dataclasses.dataclass(frozen=True)
class GateLayout:
    """Columns of a weight that belong to one gate."""

    name: str
    columns: slice


@dataclasses.dataclass
class RNNLayerInfo:
    """One monitored recurrence (a layer, or one direction of a Bidirectional)."""

    name: str  # monitored name, e.g. "lstm", "bi/forward", "encoder/lstm"
    layer: Any  # the keras RNN layer that runs this recurrence
    cell: Any
    kind: str  # "lstm" | "gru" | "simple" | "custom"
    direction: str  # "forward" | "backward" (backward = runs from the last step)
    units: Optional[int]
    gates: tuple[GateLayout, ...]  # empty for custom cells
    weights: dict[str, Any]  # role -> keras Variable (kernel, recurrent_kernel, bias, ...)
    container: Optional[Any] = None  # the Bidirectional wrapper, when there is one
    cell_path: tuple[int, ...] = ()  # index of the cell in the layer's StackedRNNCells, if any

    @property
    def gate_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.gates) or ("all",)

    def weight_arrays(self) -> dict[str, np.ndarray]:
        """A numpy snapshot of every weight, by role (on any backend and device)."""
        return {role: np.array(variable_numpy(var)) for role, var in self.weights.items()}

    def gate_blocks(self, arrays: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
        """Split a weight snapshot into ``{(role, gate): block}`` along the last axis."""
        blocks = {}
        for role, arr in arrays.items():
            if not self.gates:
                blocks[(role, "all")] = arr
                continue
            for gate in self.gates:
                blocks[(role, gate.name)] = arr[..., gate.columns]
        return blocks

    def describe(self) -> dict[str, Any]:
        """JSON-ready description, written to the log's manifest."""
        return {
            "name": self.name,
            "kind": self.kind,
            "class": type(self.layer).__name__,
            "cell": type(self.cell).__name__,
            "cell_path": list(self.cell_path),
            "direction": self.direction,
            "units": self.units,
            "gates": list(self.gate_names),
            "activation": _activation_name(getattr(self.cell, "activation", None)),
            "recurrent_activation": _activation_name(
                getattr(self.cell, "recurrent_activation", None)
            ),
            "return_sequences": bool(getattr(self.layer, "return_sequences", False)),
            "weights": {role: list(var.shape) for role, var in self.weights.items()},
        }


class NoRNNLayerError(ValueError):
    """The model has no recurrent layer to monitor."""


def _activation_name(fn: Any) -> Optional[str]:
    if fn is None:
        return None
    return getattr(fn, "__name__", None) or type(fn).__name__


def activation_name(fn: Any) -> str:
    """An activation function's name in lower case ("tanh", "sigmoid", ...)."""
    return str(_activation_name(fn)).lower()


def _is_conv_lstm_cell(cell: Any) -> bool:
    # Keras 3 does not export ConvLSTMCell; ConvLSTM1D/2D/3D all use it.
    return any(k.__name__ == "ConvLSTMCell" and k.__module__.startswith("keras") for k in type(cell).__mro__)


def _cell_kind(cell: Any) -> str:
    if is_a(cell, "LSTMCell") or _is_conv_lstm_cell(cell):
        return "lstm"
    if is_a(cell, "GRUCell"):
        return "gru"
    if is_a(cell, "SimpleRNNCell"):
        return "simple"
    return "custom"


def _gate_layout(kind: str, units: int) -> tuple[GateLayout, ...]:
    return tuple(
        GateLayout(name, slice(i * units, (i + 1) * units)) for i, name in enumerate(GATES[kind])
    )


def _cell_weights(cell: Any, kind: str) -> dict[str, Any]:
    weights = {}
    if kind != "custom":
        for role in ("kernel", "recurrent_kernel", "bias"):
            var = getattr(cell, role, None)
            if var is not None:
                weights[role] = var
        return weights
    for var in cell.trainable_weights:
        role = var.path.split("/")[-1] if getattr(var, "path", None) else var.name
        while role in weights:  # two weights with the same short name
            role += "_"
        weights[role] = var
    return weights


def describe_layer(layer: Any, name: str, direction: str = "forward", container: Any = None) -> list[RNNLayerInfo]:
    """Anatomy of one built keras RNN layer: one recurrence, or one per cell of a
    StackedRNNCells (named ``<name>/cell_<i>``, nested stacks ``<name>/cell_<i>/cell_<j>``)."""
    if direction == "forward" and getattr(layer, "go_backwards", False):
        direction = "backward"
    infos = []
    for path, cell in leaf_cells(layer.cell):
        kind = _cell_kind(cell)
        units = getattr(cell, "units", None)
        if units is None and _is_conv_lstm_cell(cell):
            units = cell.filters  # a ConvLSTM's units are its filters
        gates = _gate_layout(kind, units) if kind != "custom" else ()
        infos.append(
            RNNLayerInfo(
                name=name + "".join(f"/cell_{i}" for i in path),
                layer=layer,
                cell=cell,
                kind=kind,
                direction=direction,
                units=units,
                gates=gates,
                weights=_cell_weights(cell, kind),
                container=container,
                cell_path=path,
            )
        )
    return infos


def leaf_cells(cell: Any, path: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], Any]]:
    """``[(path, cell)]``: the cell itself, or every cell of a StackedRNNCells (recursively)."""
    if is_a(cell, "StackedRNNCells"):
        return [found for i, sub in enumerate(cell.cells) for found in leaf_cells(sub, path + (i,))]
    return [(path, cell)]


def _walk(layer: Any, path: tuple[str, ...], found: list, seen: list) -> None:
    seen.append(type(layer).__name__)
    if is_a(layer, "Bidirectional"):
        base = "/".join(path + (layer.name,))
        for info in describe_layer(layer.forward_layer, f"{base}/forward", "forward", layer):
            found.append((path, info))
        for info in describe_layer(layer.backward_layer, f"{base}/backward", "backward", layer):
            found.append((path, info))
        return
    if is_a(layer, "RNN"):
        for info in describe_layer(layer, "/".join(path + (layer.name,))):
            found.append((path, info))
        return
    sublayers = getattr(layer, "layers", None)
    if is_a(layer, "Model") or (sublayers and isinstance(sublayers, list)):
        for sub in sublayers or []:
            _walk(sub, path + (layer.name,), found, seen)


def find_rnn_layers(model: Any) -> list[RNNLayerInfo]:
    """Every recurrence in `model`, in layer order; raises NoRNNLayerError when there is none.

    Names are the layer's own name; a layer inside a nested model is named
    ``<submodel>/<layer>`` so that names stay unique.
    """
    if not getattr(model, "built", True):
        raise ValueError(
            "the model is not built yet: call it on data or pass an Input shape before "
            "monitoring it (RNNMonitor does this at the start of fit)"
        )
    found: list = []
    seen: list = []
    for layer in model.layers:
        _walk(layer, (), found, seen)
    if not found:
        kinds = ", ".join(dict.fromkeys(seen)) or "no layers"
        raise NoRNNLayerError(
            f"model {model.name!r} has no recurrent layer to monitor (found: {kinds}). "
            "RNNMonitor watches keras.layers.LSTM, GRU, SimpleRNN, RNN(cell) and "
            "Bidirectional(...) layers, also inside nested models."
        )
    infos = [info for _, info in found]
    for info in infos:
        if info.kind == "custom":
            logger.info(
                "rnn_monitor: layer %r uses a cell it does not know (%s); its weights are "
                "monitored as one block named 'all'",
                info.name,
                type(info.cell).__name__,
            )
    return infos
