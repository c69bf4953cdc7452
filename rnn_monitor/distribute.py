"""Which process writes when training spans several: only the chief (as Keras's callbacks do).

Two multi-process set-ups are recognised: tf.keras 2 under `MultiWorkerMirroredStrategy`
(``TF_CONFIG``) and Keras 3 on JAX after `keras.distribution.initialize` (``jax.process_count()
> 1``, every process running the same program). One process (MirroredStrategy, JAX on one
host with many devices) is always the chief.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def is_chief() -> bool:
    """True unless this process is a non-chief worker of a multi-process run.

    In a MultiWorkerMirroredStrategy cluster the chief is task "chief", or worker 0 when the
    cluster has no "chief" task; in a JAX multi-process run it is process 0.
    """
    if jax_processes() > 1:
        return _jax().process_index() == 0
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        config = json.loads(raw)
    except json.JSONDecodeError:
        return True
    task = config.get("task") or {}
    cluster = config.get("cluster") or {}
    task_type, index = task.get("type"), int(task.get("index", 0) or 0)
    if task_type in (None, "chief"):
        return True
    if task_type == "worker" and "chief" not in cluster:
        return index == 0
    return False


def cluster_size() -> int:
    """Number of training processes: JAX's process count, else the workers of TF_CONFIG's
    cluster (chief and workers); 1 without either."""
    if jax_processes() > 1:
        return jax_processes()
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 1
    try:
        cluster = json.loads(raw).get("cluster") or {}
    except (json.JSONDecodeError, AttributeError):
        return 1
    return max(1, sum(len(cluster.get(kind) or []) for kind in ("chief", "worker")))


def jax_processes() -> int:
    """JAX's process count when Keras runs on JAX (1 otherwise; JAX is never imported here)."""
    jax = _jax()
    return int(jax.process_count()) if jax is not None else 1


def process_index() -> int:
    """This process's index among the training processes (0 with one process)."""
    if jax_processes() > 1:
        return int(_jax().process_index())
    raw = os.environ.get("TF_CONFIG")
    try:
        task = (json.loads(raw).get("task") or {}) if raw else {}
    except (json.JSONDecodeError, AttributeError):
        task = {}
    return int(task.get("index", 0) or 0)


def agree_to_stop(model: Any) -> None:
    """In a JAX multi-process run, every process takes process 0's ``model.stop_training`` (an
    alert's `stop_on` is decided there): a process that went on alone would wait forever for
    the others at its next step. Every process must call it at the same epochs."""
    if jax_processes() <= 1:
        return
    import numpy as np
    from jax.experimental import multihost_utils

    stop = bool(getattr(model, "stop_training", False)) if is_chief() else False
    model.stop_training = bool(np.asarray(multihost_utils.broadcast_one_to_all(np.array(stop))))


def _jax() -> Any:
    """The `jax` module when Keras runs on JAX and it is imported, else None."""
    jax = sys.modules.get("jax")
    return jax if jax is not None and _keras_backend() == "jax" else None


def _keras_backend() -> str:
    keras = sys.modules.get("keras")
    try:
        return keras.backend.backend() if keras is not None else ""
    except Exception:  # noqa: BLE001 - an odd Keras: not JAX
        return ""
