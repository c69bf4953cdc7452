"""Prediction as read: the classifier's score after reading each prefix of the sequence (and,
for a model with two sequence inputs such as title and abstract, a grid over both prefixes)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnn_monitor.interpret.scoring import (
    DEFAULT_MAX_COPIES, check_classifier, pick, predict, predict_rows, resolve_target,
)
from rnn_monitor.model.backend import keeping_state


def _takes_any_length(model: Any, index: int = 0) -> bool:
    try:
        return model.inputs[index].shape[1] is None
    except Exception:
        return False


def _prefixes(x: np.ndarray, fill: Any, any_length: bool) -> list[np.ndarray]:
    """Per prefix length n = 1..T: the batch's first n steps; for a fixed-length model padded
    with `fill` in front (pre-padding), so the model reads the prefix last."""
    t = x.shape[1]
    out = []
    for n in range(1, t + 1):
        if any_length:
            out.append(x[:, :n])
        else:
            padded = np.full_like(x, fill)
            padded[:, t - n :] = x[:, :n]
            out.append(padded)
    return out


@keeping_state
def prediction_as_read(
    model: Any, x: Any, target: Optional[int] = None, fill: Any = 0,
    max_copies: int = DEFAULT_MAX_COPIES,
) -> np.ndarray:
    """[B, T]: ``s(x_b[:t+1])``, the score for `target` (see `occlusion`) as the model reads.

    A model that takes any length gets the true prefix (one call per length); a fixed-length
    model gets the prefix pre-padded with `fill` (with a `mask_zero` embedding and fill 0, the
    padding is skipped, so this is the true prefix too). With two sequence inputs ``x = [x1, x2]``
    the result is the grid [B, T1, T2] of ``s(x1_b[:i+1], x2_b[:j+1])``.
    """
    if isinstance(x, (list, tuple)) and len(x) == 2:
        return _grid(model, [np.asarray(a) for a in x], target, fill, max_copies)
    x = np.asarray(x[0] if isinstance(x, (list, tuple)) else x)
    full = predict(model, x, max_copies)
    check_classifier(full, "prediction_as_read")
    tgt = resolve_target(full, target)
    b, t = x.shape[:2]
    if _takes_any_length(model):
        cols = [pick(predict(model, x[:, : n + 1], max_copies), tgt) for n in range(t)]
        return np.stack(cols, axis=1).astype(np.float32)

    def prefix_row(i: int) -> np.ndarray:  # row i = sequence i // T, prefix of i % T + 1 steps
        n = i % t + 1
        row = np.full_like(x[0], fill)
        row[t - n :] = x[i // t, :n]
        return row

    scores = predict_rows(model, prefix_row, b * t, max_copies)
    return pick(scores, np.repeat(tgt, t)).reshape(b, t).astype(np.float32)


def _grid(model: Any, xs: list, target: Optional[int], fill: Any, max_copies: int) -> np.ndarray:
    full = predict(model, xs, max_copies)
    check_classifier(full, "prediction_as_read")
    tgt = resolve_target(full, target)
    b = len(xs[0])
    p1 = _prefixes(xs[0], fill, _takes_any_length(model, 0))
    p2 = _prefixes(xs[1], fill, _takes_any_length(model, 1))
    out = np.zeros((b, len(p1), len(p2)), dtype=np.float32)
    for i, a in enumerate(p1):
        for j, c in enumerate(p2):
            out[:, i, j] = pick(predict(model, [a, c], max_copies), tgt)
    return out
