"""Where this process stands in a training cluster, read from ``TF_CONFIG`` (plain JSON).

No TensorFlow here: ``textvae-train`` asks :func:`worker_info` first and imports
:mod:`textvae.training.distributed` (and with it TensorFlow) only when the answer is a cluster,
so the single-process path runs on any Keras backend (``KERAS_BACKEND=jax`` without TensorFlow).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from textvae.errors import InvalidArgumentError

__all__ = ["worker_info"]


def _parse_tf_config(tf_config: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if tf_config is None:
        tf_config = os.environ.get("TF_CONFIG", "")
    if isinstance(tf_config, Mapping):
        return dict(tf_config)
    if not tf_config.strip():
        return {}
    try:
        parsed = json.loads(tf_config)
    except json.JSONDecodeError as err:
        raise InvalidArgumentError(
            f"`TF_CONFIG` must be JSON. Received: {tf_config!r} ({err})"
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidArgumentError(f"`TF_CONFIG` must be a JSON object. Received: {tf_config!r}")
    return parsed


def _json_object(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"`TF_CONFIG`'s {key!r} must be a JSON object. Received: {key}={value!r}"
        )
    return value


def _addresses(cluster: Mapping[str, Any], task_type: str) -> list[str]:
    value = cluster.get(task_type) or []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InvalidArgumentError(
            f"`TF_CONFIG`'s cluster {task_type!r} must be a list of host:port strings. "
            f"Received: {task_type}={value!r}"
        )
    return value


def worker_info(tf_config: str | Mapping[str, Any] | None = None) -> tuple[int, int, bool]:
    """``(task_index, num_workers, is_chief)`` of this process from ``TF_CONFIG``.

    ``task_index`` counts the cluster's ``chief`` (if any) first, then its ``worker`` tasks:
    it is the shard this process reads. Without ``TF_CONFIG`` (or without a cluster) the
    process is alone: ``(0, 1, True)``. The chief is the ``chief`` task, or worker 0 when the
    cluster has none (TensorFlow's rule).

    Parameters
    ----------
    tf_config
        The JSON text or its parsed dict; default ``os.environ["TF_CONFIG"]``.

    Returns
    -------
    tuple of (int, int, bool)
        This process's shard index, the number of training processes, and whether it is the
        chief (the process that writes the run folder).

    Raises
    ------
    InvalidArgumentError
        ``TF_CONFIG`` is not a JSON object, holds tasks other than ``chief``/``worker``, or its
        ``task`` is not in its ``cluster``.
    """
    config = _parse_tf_config(tf_config)
    cluster = _json_object(config, "cluster")
    chiefs = _addresses(cluster, "chief")
    workers = _addresses(cluster, "worker")
    others = sorted(set(cluster) - {"chief", "worker"})
    if others:
        raise InvalidArgumentError(
            f"`TF_CONFIG` may only hold `chief` and `worker` tasks for data-parallel training. "
            f"Received: cluster tasks {sorted(cluster)}"
        )
    if len(chiefs) > 1:
        raise InvalidArgumentError(
            f"`TF_CONFIG` may hold at most one chief. Received: chief={chiefs}"
        )
    num_workers = len(chiefs) + len(workers)
    if num_workers == 0:
        return 0, 1, True
    task = _json_object(config, "task")
    task_type = task.get("type", "worker")
    index = task.get("index", 0)
    size = {"chief": len(chiefs), "worker": len(workers)}.get(task_type, 0)
    if not isinstance(index, int) or not 0 <= index < size:
        raise InvalidArgumentError(
            f"`TF_CONFIG` task {task!r} is not in the cluster: expected type `chief` or `worker` "
            f"with index in [0, {size}). Received: task={task!r}"
        )
    position = index if task_type == "chief" else len(chiefs) + index
    return position, num_workers, position == 0
