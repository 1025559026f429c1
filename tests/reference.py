"""Slow, obvious NumPy references that the numba kernels are tested against."""

from __future__ import annotations

import numpy as np


def onehot_reference(ids, vocab_size: int, dtype="float32") -> np.ndarray:
    """One-hot of `ids` along a new last axis of length `vocab_size`, by indexing an identity."""
    return np.eye(vocab_size, dtype=dtype)[np.asarray(ids)]
