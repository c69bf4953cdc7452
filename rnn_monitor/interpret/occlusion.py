"""Occlusion importance for sequence classifiers (after the occlusion heatmaps of LSTM paper
classifiers): how much the score drops when a step is removed."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnn_monitor.interpret.scoring import (
    DEFAULT_MAX_COPIES, check_classifier, pick, predict, predict_rows, resolve_target,
)
from rnn_monitor.model.backend import keeping_state


@keeping_state
def occlusion(
    model: Any, x: np.ndarray, target: Optional[int] = None, fill: Any = 0, window: int = 1,
    max_copies: int = DEFAULT_MAX_COPIES,
) -> np.ndarray:
    """[B, T]: ``s(x_b) - s(x_b with steps t .. t+window-1 set to fill)``.

    `s` is the model's output (as the model returns it) for `target`: the single output unit, or
    for a multi-class output the class predicted on the full input. With a `mask_zero`
    embedding, ``fill=0`` removes the token. All B*T occluded copies are predicted in chunks of
    at most `max_copies` rows, built chunk by chunk. Works for token ids [B, T] and continuous rows [B, T, D] (a
    whole row is set to `fill`).
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must be [batch, time] or [batch, time, features], got shape {x.shape}")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    b, t = x.shape[:2]
    full = predict(model, x, max_copies)
    check_classifier(full, "occlusion")
    tgt = resolve_target(full, target)
    base = pick(full, tgt)
    def occluded_copy(i: int) -> np.ndarray:  # copy i = sequence i // T with step i % T occluded
        row = x[i // t].copy()
        row[i % t : i % t + window] = fill
        return row

    scores = predict_rows(model, occluded_copy, b * t, max_copies)
    occluded = pick(scores, np.repeat(tgt, t)).reshape(b, t)
    return (base[:, None] - occluded).astype(np.float32)
