"""Batches of a token store for Keras: the epoch plan, the one-hot Sequence, the hand-offs.

Imports Keras (never TensorFlow at import time), so it runs on any Keras backend.
"""

from textvae.batching.adapters import as_numpy_iterator, as_tf_dataset, as_torch_dataloader
from textvae.batching.layout import BatchLayout
from textvae.batching.memory import MemoryOptions, default_memory_budget
from textvae.batching.sampling import EpochPlan, SamplingOptions, ShardOptions, holdout_rows
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
    "holdout_rows",
]
