"""Batches of a token store for Keras: the epoch plan, the one-hot Sequence, the hand-offs.

Imports Keras (never TensorFlow at import time), so it runs on any Keras backend; and Keras
only when :class:`OneHotSequence` is first used, so ``import textvae`` and the plan, options
and adapters stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textvae._lazy import attach
from textvae.batching.adapters import as_numpy_iterator, as_tf_dataset, as_torch_dataloader
from textvae.batching.layout import BatchLayout
from textvae.batching.memory import MemoryOptions, default_memory_budget
from textvae.batching.sampling import (
    EpochPlan,
    SamplingOptions,
    ShardOptions,
    holdout_groups,
    holdout_rows,
)

if TYPE_CHECKING:
    from textvae.batching.sequence import OneHotSequence

__all__ = [
    "BatchLayout",
    "EpochPlan",
    "MemoryOptions",
    "OneHotSequence",
    "SamplingOptions",
    "ShardOptions",
    "as_numpy_iterator",
    "as_tf_dataset",
    "as_torch_dataloader",
    "default_memory_budget",
    "holdout_groups",
    "holdout_rows",
]


# OneHotSequence imports Keras: loaded on first use.
__getattr__, __dir__ = attach(__name__, {"OneHotSequence": "sequence"})
