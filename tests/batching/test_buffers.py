"""Recycled one-hot buffers and the chunk cache (textvae.batching.buffers), alone and under a
Sequence: exact batches in any order, read-only, recycled only when nobody holds them."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.batching import OneHotSequence
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
