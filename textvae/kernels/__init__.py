"""numba kernels that expand token ids for training (NumPy and numba only, no Keras)."""

from textvae.kernels._onehot import ALIGNMENT, aligned_empty, onehot

__all__ = ["ALIGNMENT", "aligned_empty", "onehot"]
