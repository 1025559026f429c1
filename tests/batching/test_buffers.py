"""Recycled one-hot buffers and the chunk cache (textvae.batching.buffers), alone and under a
Sequence: exact batches in any order, read-only, recycled only when nobody holds them."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.batching import OneHotSequence
from textvae.batching.buffers import BufferPool, ChunkCache
from textvae.batching.memory import MemoryOptions
from textvae.testing import onehot_reference


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_recycled_buffers_exact_in_any_access_order(small_store, dtype, rng):
    """Recycled buffers are cleared cell by cell (not zeroed whole): whatever order batches are
    asked in (full after partial, the same twice), each equals the reference."""
    seq = OneHotSequence(small_store, "train", 6, dtype=dtype, memory=MemoryOptions(pool_size=2))
    order = [len(seq) - 1, 0, len(seq) - 1, 3, *rng.integers(0, len(seq), 20)]
    for i in order:
        ids, outputs = seq[int(i)]
        ref = onehot_reference(ids.astype(np.int64), small_store.vocab_size, dtype)
        np.testing.assert_array_equal(outputs["reconstruction"], ref)
    assert seq._pool.allocations <= 2, "released buffers must be reused"


def test_batches_are_read_only(small_store):
    _, outputs = OneHotSequence(small_store, "train", 4)[0]
    with pytest.raises(ValueError, match="read-only"):
        outputs["reconstruction"][0, 0, 0] = 5


def test_buffer_recycled_only_when_released(small_store):
    seq = OneHotSequence(small_store, "train", 4, memory=MemoryOptions(pool_size=2))
    _, first = seq[0]
    first_ptr = first["reconstruction"].ctypes.data
    view = first["reconstruction"][1:]  # a view keeps the buffer alive
    del first
    _, second = seq[1]
    assert second["reconstruction"].ctypes.data != first_ptr
    snapshot = view.copy()
    _, third = seq[2]  # pool full (2 held): a fresh, unpooled buffer
    np.testing.assert_array_equal(view, snapshot)
    assert seq._pool.allocations == 3 and len(seq._pool) == 2
    del view, second, third
    _, fourth = seq[3]
    assert fourth["reconstruction"].ctypes.data == first_ptr
    assert seq._pool.allocations == 3


def test_pool_hands_a_buffer_out_again_once_released():
    pool = BufferPool((4, 3, 5), np.dtype(np.float32), capacity=2)
    first, record = pool.acquire(4)
    assert first.ctypes.data % 64 == 0 and first.flags.c_contiguous and not first.any()
    assert (record == -1).all(), "a new buffer holds no ones"
    pointer = first.ctypes.data
    second, _ = pool.acquire(2)  # first is held: another buffer
    assert second.shape == (2, 3, 5) and second.ctypes.data != pointer
    third, none = pool.acquire(4)  # both held, capacity 2: a fresh, unpooled buffer
    assert none is None and len(pool) == 2 and pool.allocations == 3
    del first, third
    again, _ = pool.acquire(3)
    assert again.ctypes.data == pointer and pool.allocations == 3


def test_chunk_cache_keeps_the_most_recent_chunks():
    loads = []

    def load(key):
        loads.append(key)
        return np.full(2, key)

    cache = ChunkCache(capacity=2)
    for key in (0, 1, 0, 2, 0, 1):
        assert (cache.get(key, load) == key).all()
    assert loads == [0, 1, 2, 1], "0 stayed (recently used); 1 was evicted by 2"
