"""The constant-prediction loss of the probe batch: the model's compiled loss evaluated on the
constant outputs of `rnn_monitor.stats.constant_predictions` (once per run: the labels do not change). The
alert rules compare the probe loss with it: a model whose loss stays at this level has learned
nothing from its input."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from rnn_monitor.stats.constant_predictions import best_finite, constant_candidates


def constant_loss(model: Any, x: Any, y: Any, pred_shape: tuple, sample_weight: Any = None) -> Optional[float]:
    """The smallest compiled loss over the constant candidates for `y` and outputs of
    `pred_shape` (the probe's own output: the model is not called again, which would move a
    stateful model's states); None when there is none (several outputs, labels of another
    shape, a loss that fails on them)."""
    from keras import ops

    if y is None or isinstance(y, (dict, list, tuple)):
        return None
    candidates = constant_candidates(np.asarray(y), tuple(pred_shape))
    losses = []
    for const in candidates:
        try:
            if hasattr(model, "_compute_loss"):
                value = model._compute_loss(x=x, y=y, y_pred=ops.convert_to_tensor(const), sample_weight=sample_weight,
                                            training=False)
            else:
                value = model.compute_loss(x=x, y=y, y_pred=ops.convert_to_tensor(const), sample_weight=sample_weight)
            losses.append(float(np.asarray(value)))
        except Exception:  # a loss that cannot take this candidate: not a baseline
            losses.append(None)
    return best_finite(losses)
