"""What the interpretability methods score: the model's output for one target per sequence, on
many input copies predicted in bounded chunks."""

from __future__ import annotations

import weakref
from typing import Any, Optional

import numpy as np

DEFAULT_MAX_COPIES = 1024  # input copies per model call: bounds the memory of one call


_FORWARD: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def forward(model: Any) -> Any:
    """The model's inference call compiled once per model by its backend (`tf.function` relaxed
    to any batch and length, `jax.jit`). Called directly, outside any `tf.distribute` replica
    context, like the probe."""
    fn = _FORWARD.get(model)
    if fn is None:
        from rnn_monitor.backends import backend_for

        fn = backend_for(model).inference()
        _FORWARD[model] = fn
    return fn


def predict(model: Any, x: Any, max_copies: int = DEFAULT_MAX_COPIES) -> np.ndarray:
    """The model's output on `x` (one array, or a list of arrays for several inputs), in chunks of
    at most `max_copies` rows."""
    arrays = x if isinstance(x, list) else [x]
    n = len(arrays[0])
    out = []
    call = forward(model)
    for lo in range(0, n, max(1, int(max_copies))):
        part = [a[lo : lo + max_copies] for a in arrays]
        out.append(np.asarray(call(part if isinstance(x, list) else part[0])))
    return np.concatenate(out, axis=0)


def predict_rows(model: Any, make_row: Any, n: int, max_copies: int = DEFAULT_MAX_COPIES) -> np.ndarray:
    """The model's output on ``make_row(i)`` for i < n, built and predicted `max_copies` at a time
    (the copies never all exist at once)."""
    out = []
    step = max(1, int(max_copies))
    for lo in range(0, n, step):
        out.append(predict(model, np.stack([make_row(i) for i in range(lo, min(n, lo + step))]), step))
    return np.concatenate(out, axis=0) if out else np.zeros((0,))


def check_classifier(output: np.ndarray, method: str) -> None:
    """A ValueError unless the output is one vector per sequence ([batch, classes])."""
    if output.ndim != 2:
        raise ValueError(
            f"{method} needs a model whose output is one vector per sequence, [batch, classes]; "
            f"this model's output has shape {output.shape} (a per-timestep output: use the "
            "text view's activations or generate() instead)"
        )


def resolve_target(output: np.ndarray, target: Optional[int]) -> np.ndarray:
    """[B] the output column scored for each sequence: `target` when given, the single output
    unit, or the class predicted on the full input."""
    if target is not None:
        if not 0 <= int(target) < output.shape[1]:
            raise ValueError(f"target {target} is not an output of this model (it has {output.shape[1]})")
        return np.full(output.shape[0], int(target))
    if output.shape[1] == 1:
        return np.zeros(output.shape[0], dtype=int)
    return np.argmax(output, axis=1)


def pick(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``output[i, target[i]]`` for every row."""
    return output[np.arange(len(output)), target]
