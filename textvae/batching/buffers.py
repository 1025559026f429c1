"""Memory that outlives a batch: recycled one-hot output buffers and decompressed chunks.

Both are per process (a Sequence rebuilds them after pickling) and thread-safe (Keras' thread
workers share them).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from textvae.kernels import aligned_empty

__all__ = ["BufferPool", "ChunkCache"]


class BufferPool:
    """Output buffers handed out again only when nothing outside the pool holds them.

    Each buffer is an aligned view of a raw uint8 allocation; every NumPy view of it (and every
    zero-copy TensorFlow tensor, which keeps the array it wraps alive) references that raw
    owner, so the owner's reference count says whether anyone still holds the memory. A fresh
    1.5 GB buffer costs ~90 ms of page faults here (4x the kernel): recycling avoids that.
    Beyond ``capacity`` buffers it falls back to a fresh, unpooled allocation.

    Each pooled buffer keeps a record of the ids whose ones it holds (-1: an all-zero
    position), so the kernel clears just those cells instead of zeroing gigabytes. Batches
    are handed out read-only, so the record stays true.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, capacity: int) -> None:
        self.shape = shape
        self.dtype = dtype
        self.capacity = capacity
        self._buffers: list[tuple[np.ndarray, np.ndarray]] = []
        self._lock = threading.Lock()
        self._idle_refcount: int | None = None
        self.allocations = 0  # buffers allocated so far, pooled or not (for tests and benchmarks)

    @staticmethod
    def _owner(buf: np.ndarray) -> Any:
        return buf.base if buf.base is not None else buf

    def acquire(self, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(out, previous)``: a C-contiguous (rows, ...) 64-byte-aligned view that nobody else
        holds, and the record of the ids it holds (None for an unpooled buffer)."""
        with self._lock:
            for buf, record in self._buffers:
                if sys.getrefcount(self._owner(buf)) == self._idle_refcount:
                    return buf[:rows], record[:rows]  # the view holds the owner from here on
            buf = aligned_empty(self.shape, self.dtype)
            self.allocations += 1
            if len(self._buffers) >= self.capacity:
                return buf[:rows], None
            buf.reshape(-1).view(np.uint8).fill(0)
            record = np.full(self.shape[:2], -1, dtype=np.int32)
            self._buffers.append((buf, record))
            if self._idle_refcount is None:
                # The same expression as in the loop above, while only the pool holds it.
                for pooled, _ in self._buffers[-1:]:
                    self._idle_refcount = sys.getrefcount(self._owner(pooled))
            return buf[:rows], record[:rows]

    def __len__(self) -> int:
        return len(self._buffers)


class ChunkCache:
    """A small LRU cache of decompressed token chunks (a shuffled window reuses each one)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: int, load: Callable[[int], np.ndarray]) -> np.ndarray:
        with self._lock:
            if key in self._chunks:
                self._chunks.move_to_end(key)
                return self._chunks[key]
        chunk = load(key)  # outside the lock: decompression runs in parallel across workers
        with self._lock:
            self._chunks[key] = chunk
            self._chunks.move_to_end(key)
            while len(self._chunks) > self.capacity:
                self._chunks.popitem(last=False)
        return chunk
