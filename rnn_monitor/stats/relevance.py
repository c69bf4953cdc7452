"""Rank units by what they respond to in the probe text (pure numpy, no TensorFlow).

A feature is a regular expression over the decoded probe text (e.g. ``'[^'\\n]*'`` for the
inside of quoted strings, ``^ +`` for indentation). A unit's relevance is its mean activation
on the tokens the feature covers minus its mean activation on the other tokens: positive for
units that light up on the feature, negative for units that switch off. Used by the demo, the
CLI and (the same definition) the dashboard's text view.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np


def feature_mask(tokens: Sequence[Sequence[str]], pattern: str) -> np.ndarray:
    """bool [S, T]: token (s, t) overlaps a match of `pattern` in sequence s's joined text.

    Tokens are joined without separators (characters for char models); `^` and `$` match at
    line breaks inside a sequence (re.MULTILINE).
    """
    regex = re.compile(pattern, re.MULTILINE)
    rows = []
    for seq in tokens:
        seq = [str(tok) for tok in seq]
        starts = np.cumsum([0] + [len(tok) for tok in seq])
        covered = np.zeros(starts[-1] + 1, dtype=bool)
        for match in regex.finditer("".join(seq)):
            covered[match.start() : max(match.end(), match.start() + 1)] = True
        rows.append(
            np.array([covered[starts[i] : max(starts[i + 1], starts[i] + 1)].any() for i in range(len(seq))], bool)
        )
    return np.array(rows, dtype=bool).reshape(len(rows), -1)


def relevance(activations: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[U]: mean over valid positions inside the feature minus mean outside it.

    `activations` is [S, T, U] with NaN at masked (padded) steps; NaN where either side is empty.
    """
    acts = np.asarray(activations, dtype=np.float64)
    valid = np.isfinite(acts).all(axis=-1)
    inside, outside = mask & valid, ~mask & valid
    with np.errstate(invalid="ignore"):
        mean_in = acts[inside].mean(axis=0) if inside.any() else np.full(acts.shape[-1], np.nan)
        mean_out = acts[outside].mean(axis=0) if outside.any() else np.full(acts.shape[-1], np.nan)
    return mean_in - mean_out


def rank_units(activations: np.ndarray, tokens: Sequence[Sequence[str]], pattern: str, top: int = 5) -> list[tuple[int, float]]:
    """The `top` units with the largest |relevance| to `pattern`, as (unit, relevance)."""
    scores = relevance(activations, feature_mask(tokens, pattern))
    order = np.argsort(-np.nan_to_num(np.abs(scores), nan=-1.0))
    return [(int(u), float(scores[u])) for u in order[:top]]
