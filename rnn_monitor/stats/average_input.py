"""The input each unit likes to see (after comprehend): the activation-weighted average of the
input window that ends at each position. Pure numpy.

Definition: for every position t >= window-1 of every sequence b,
weight ``w = max(a[b, t, u], 0)`` and window ``x[b, t-window+1 .. t]`` (one-hot with
`vocab_size` for token ids); the result is ``sum w * window / sum w`` per unit, zeros where a
unit never fires. Positions whose activation is not finite (masked steps are NaN) are left out,
and so are windows that reach into such a step of the input (padding inside the window).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import sparse


def _windows(x: np.ndarray, window: int) -> np.ndarray:
    """[B, T-window+1, window, ...]: the window ending at each t >= window-1 (a view)."""
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=1)  # [B, T-W+1, ..., W]
    return np.moveaxis(view, -1, 2)


def average_input(
    x: np.ndarray, activations: np.ndarray, window: int = 10, vocab_size: Optional[int] = None
) -> np.ndarray:
    """[units, window, D]: each unit's activation-weighted mean input window.

    Args:
        x: token ids [B, T] (with `vocab_size`) or continuous inputs [B, T, D].
        activations: [B, T, units], NaN where a step is masked.
        window: input steps in a window, the last one is the step the unit has just read.
        vocab_size: D for token ids (one-hot); None for continuous inputs.
    """
    acts = np.asarray(activations, dtype=np.float64)
    if acts.ndim != 3:
        raise ValueError(f"activations must be [batch, time, units], got shape {acts.shape}")
    b, t, units = acts.shape
    x = np.asarray(x)
    if x.shape[:2] != (b, t):
        raise ValueError(f"x has shape {x.shape} but the activations cover [batch, time] = {(b, t)}")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if vocab_size is not None:
        if x.ndim != 2:
            raise ValueError(f"token ids must be [batch, time], got shape {x.shape}")
        depth = int(vocab_size)
    else:
        if x.ndim != 3:
            raise ValueError(f"continuous inputs must be [batch, time, features], got shape {x.shape}")
        depth = x.shape[2]
    out = np.zeros((units, window, depth), dtype=np.float64)
    if t < window:
        return out.astype(np.float32)
    weights = acts[:, window - 1 :, :]  # [B, P, U], P = T - window + 1 positions
    ok = np.isfinite(weights)
    if vocab_size is not None:
        ids = np.asarray(x, dtype=np.int64)
        good_ids = (ids >= 0) & (ids < depth)
        win_ok = _windows(good_ids, window).all(axis=2)  # [B, P]
        weights = np.where(ok & win_ok[:, :, None], np.maximum(weights, 0.0), 0.0)
        wins = _windows(np.clip(ids, 0, depth - 1), window)  # [B, P, W]
        # sum over (b, p) of w[b, p, u] * onehot(wins[b, p, k]): one sparse product, [W*D, N]
        # (a 1 at row k*D + token, for every slot k of every position) @ [N, U] (about 3x faster
        # than grouping the positions by token slot by slot).
        flat_w = weights.reshape(-1, units)  # [N, U], N = B*P
        n = flat_w.shape[0]
        rows = (np.arange(window) * depth + wins.reshape(n, window)).ravel()
        onehot = sparse.csc_matrix((np.ones(n * window), rows, np.arange(0, n * window + 1, window)),
                                   shape=(window * depth, n))
        out = (onehot @ flat_w).reshape(window, depth, units).transpose(2, 0, 1)  # a view, no copy
    else:
        xf = np.asarray(x, dtype=np.float64)
        win_ok = _windows(np.isfinite(xf).all(axis=2), window).all(axis=2)  # [B, P]
        weights = np.where(ok & win_ok[:, :, None], np.maximum(weights, 0.0), 0.0)
        wins = _windows(np.nan_to_num(xf), window)  # [B, P, W, D]
        n = weights.shape[0] * weights.shape[1]
        # One matrix product (BLAS) over all positions: [U, N] @ [N, W*D].
        out = (weights.reshape(n, units).T @ wins.reshape(n, window * depth)).reshape(units, window, depth)
    total = weights.sum(axis=(0, 1))  # [U]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total[:, None, None] > 0, out / np.where(total > 0, total, 1.0)[:, None, None], 0.0)
    return np.ascontiguousarray(out, dtype=np.float32)
