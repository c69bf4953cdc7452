"""Probe data: unpack what the user gave (`x`, `(x, y)`, `(x, y, sw)`, a Dataset) into numpy, check
it against the model's inputs, and cut it to the last `max_timesteps` steps."""

from __future__ import annotations

import re
import sys
from typing import Any, Callable, Mapping, Optional

import numpy as np


class ProbeDataError(ValueError):
    """The model itself fails on the probe data: the user's data, not the monitor, needs a fix."""


def _is_dataset(data: Any) -> bool:
    tf = sys.modules.get("tensorflow")  # a Dataset exists only where TensorFlow was imported
    return tf is not None and isinstance(data, tf.data.Dataset)


def _to_numpy(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    arr = np.asarray(value)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return arr


def unpack_probe_data(data: Any) -> tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` as numpy from x, (x,), (x, y), (x, y, sw) or a Dataset."""
    if _is_dataset(data):
        batch = next(iter(data.take(1)), None)
        if batch is None:
            raise ValueError("probe_data is an empty tf.data.Dataset: it must yield at least one batch")
        data = batch
    if isinstance(data, tuple):
        if not 1 <= len(data) <= 3:
            raise ValueError(
                f"probe_data as a tuple must be (x,), (x, y) or (x, y, sample_weight); got {len(data)} items"
            )
        parts = list(data) + [None] * (3 - len(data))
    else:
        parts = [data, None, None]
    return tuple(_to_numpy(p) for p in parts)  # type: ignore[return-value]


def first_array(x: Any) -> np.ndarray:
    if isinstance(x, Mapping):
        return next(iter(x.values()))
    if isinstance(x, list):
        return x[0]
    return x


def slice_time(value: Any, steps: int, length: int) -> Any:
    """Keep the last `steps` steps of every array whose axis 1 has `length` entries."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: slice_time(v, steps, length) for k, v in value.items()}
    if isinstance(value, list):
        return [slice_time(v, steps, length) for v in value]
    if value.ndim >= 2 and value.shape[1] == length:
        return value[:, length - steps :]
    return value


def expected_shapes(model: Any) -> Optional[list]:
    """The model's input shapes (None = any size), or None when the model does not say."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    try:
        return [tuple(i.shape) for i in inputs]
    except Exception:  # pragma: no cover - exotic models
        return None


def _input_names(model: Any) -> list:
    """The names of the model's inputs, in the order of `model.inputs` (Keras matches a dict of
    arrays to them by name, whatever the dict's order)."""
    names = []
    for tensor in getattr(model, "inputs", None) or []:
        name = getattr(tensor, "name", None)
        names.append(name.split(":")[0] if isinstance(name, str) else None)
    return names


def _matched_names(x: Any, model: Any) -> Optional[list]:
    """The model's input names when `x` is a dict keyed by exactly those names, else None."""
    if not isinstance(x, Mapping):
        return None
    names = _input_names(model)
    if names and len(names) == len(x) and all(n in x for n in names):
        return names
    return None


def _in_order(x: Any, names: Optional[list]) -> list:
    """The arrays of `x` in the order of the model's inputs: a dict keyed by the inputs' `names`
    (from `_matched_names`) by name, as Keras does; a list, a single array or any other dict in
    its own order."""
    if names is not None:
        return [x[n] for n in names]
    if isinstance(x, Mapping):
        return list(x.values())
    return list(x) if isinstance(x, list) else [x]


def validate_x(x: Any, model: Any) -> None:
    """A ValueError that says what to pass when `x` does not fit the model's inputs."""
    expected = expected_shapes(model)
    names = _matched_names(x, model)
    arrays = _in_order(x, names)
    for arr in arrays:
        if not isinstance(arr, np.ndarray) or arr.ndim < 1:
            raise ValueError(
                f"probe_data x must be an array (or a list / dict of arrays), got {type(arr).__name__}"
            )
    if expected is None:
        return
    if len(arrays) != len(expected):
        raise ValueError(
            f"probe_data x has {len(arrays)} input array(s) but the model takes {len(expected)} "
            f"input(s) of shapes {expected}"
        )
    for k, (arr, shape) in enumerate(zip(arrays, expected)):
        label = f"[{names[k]!r}]" if names is not None else ""
        bad = len(arr.shape) != len(shape) or any(
            want is not None and got != want for got, want in zip(arr.shape[1:], shape[1:])
        )
        if bad:
            short = len(arr.shape) == len(shape) - 1 and tuple(arr.shape) == tuple(
                got if want is None else want for got, want in zip(arr.shape, shape[1:]))
            hint = (" It looks like one sequence without its batch axis: pass a batch (a tf.data.Dataset "
                    "must be batched, e.g. dataset.batch(32))." if short else "")
            raise ValueError(
                f"probe_data x{label} has shape {arr.shape} but the model expects inputs of shape "
                f"{shape} (None = any size; from model.inputs). Pass a batch shaped like the "
                f"training data.{hint}"
            )


def blame_the_data(model: Any, x: Any, error: BaseException, loss: Optional[Callable[[Any], Any]] = None) -> None:
    """After a part failed on the probe data with `error`: when Keras's own forward of `model` on
    `x` (and `loss` of its prediction) fails too, the data is at fault, and a ProbeDataError says
    so and what to pass (ids past an Embedding, strings, a y the loss cannot take are only found
    by running the model). Otherwise return, and the caller re-raises `error`."""
    from rnn_monitor.model.backend import kept_state

    try:
        with kept_state(model):  # a stateful model's states stay the user's
            prediction = model(x, training=False)
            if loss is not None:
                loss(prediction)
    except Exception as own:  # noqa: BLE001 - anything the model raises on this data
        raise ProbeDataError(
            f"the model itself fails on probe_data ({type(own).__name__}: {_gist(own)}); if it trains "
            "on its training data, pass probe_data=(x, y) like a training batch: the same dtypes and "
            "shapes, token ids below the Embedding's input_dim, y as the compiled loss expects"
        ) from error


def _gist(error: BaseException) -> str:
    """The line of an error message that says what went wrong: Keras wraps an op's error between
    "Exception encountered when calling ..." and "Arguments received by ..." lines, and
    TensorFlow prefixes it with ``{{function_node ...}}`` and terminal colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m|\{\{function_node [^}]*\}\}", "", line).strip()
             for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Exception encountered", "Arguments received", "•"))]
    return (lines[0] if lines else type(error).__name__)[:300]
