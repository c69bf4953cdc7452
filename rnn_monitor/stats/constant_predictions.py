"""Constant predictions for a batch of labels (pure numpy): the candidates whose loss is the level
a model reaches when it ignores its input ("predict the mean", "predict the class frequencies").

The probe evaluates the model's own compiled loss on each candidate and keeps the smallest
(`rnn_monitor.probe.constant_loss`); every candidate is a constant output, so whichever wins, its loss
is a loss some input-blind model reaches. Candidates, by the shape of the labels `y` against the
model's output shape:

* same shape (regression, binary or one-hot labels): the mean over every axis but the last;
  when the labels lie in [0, 1] also its log and its logit (for losses taking logits);
* one axis fewer, or a trailing axis of 1, with integer labels in [0, V) (sparse labels,
  V = the output's last axis): the class frequencies and their log.

Other shapes (several outputs, labels the output cannot be compared with) give no candidate.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

EPS = 1e-7


def constant_candidates(y: np.ndarray, out_shape: Sequence[int]) -> list[np.ndarray]:
    """Constant outputs (each of shape `out_shape`, float32) to evaluate the loss on."""
    y = np.asarray(y)
    out_shape = tuple(int(d) for d in out_shape)
    if y.dtype == object or not out_shape or not np.issubdtype(y.dtype, np.number):
        return []
    yf = y.astype(np.float64)
    if not np.all(np.isfinite(yf)):
        return []
    vectors: list[np.ndarray] = []
    if y.shape == out_shape:
        mean = yf.reshape(-1, out_shape[-1]).mean(axis=0)
        vectors.append(mean)
        if yf.min() >= 0.0 and yf.max() <= 1.0:
            p = np.clip(mean, EPS, 1.0 - EPS)
            vectors.append(np.log(p))
            vectors.append(np.log(p) - np.log1p(-p))
    else:
        sparse_shape = y.shape == out_shape[:-1] or y.shape == out_shape[:-1] + (1,)
        n_classes = out_shape[-1]
        if sparse_shape and n_classes > 1 and np.all(yf == np.round(yf)) \
                and yf.min() >= 0 and yf.max() < n_classes:
            freq = np.bincount(yf.astype(np.int64).ravel(), minlength=n_classes) / yf.size
            vectors.append(freq)
            vectors.append(np.log(np.clip(freq, EPS, 1.0)))
    return [np.broadcast_to(v.astype(np.float32), out_shape).copy() for v in vectors]


def best_finite(losses: Sequence[Optional[float]]) -> Optional[float]:
    """The smallest finite loss, or None."""
    finite = [float(v) for v in losses if v is not None and np.isfinite(v)]
    return min(finite) if finite else None
