"""Which process writes under `tf.distribute`: only the chief (as Keras's callbacks do)."""

from __future__ import annotations

import json
import os


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker of a multi-worker cluster.

    MirroredStrategy (one process) is always chief. In a MultiWorkerMirroredStrategy cluster
    the chief is task "chief", or worker 0 when the cluster has no "chief" task.
    """
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
    """Number of worker processes in TF_CONFIG's cluster (chief and workers); 1 without one."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 1
    try:
        cluster = json.loads(raw).get("cluster") or {}
    except (json.JSONDecodeError, AttributeError):
        return 1
    return max(1, sum(len(cluster.get(kind) or []) for kind in ("chief", "worker")))
