"""Kernel-only benchmarks: onehot into an existing buffer beside its reference points.

Every case of one (size, dtype) shares a benchmark group, so the table reads as ratios:
memset of the same bytes (the floor), NumPy ``np.zeros`` + fancy indexing,
``keras.utils.to_categorical`` (float64 only, listed under float32) and ``tf.one_hot`` from a
tensor. Each case also checks a few rows of its result, so ``--benchmark-disable`` makes
them plain tests.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from textvae.kernels import aligned_empty, onehot
from textvae.testing import onehot_reference

SMALL_SIZES = [(8, 50, 2000)]
# (batch, max_len, vocab_size); at 50,000 a float32 batch is 3.8 GB.
FULL_SIZES = [(64, 300, 20000), (64, 300, 2000), (64, 300, 50000)]
DTYPES = ["float32", "float16", "uint8"]
#: to_categorical returns float64: at this vocab a batch is 7.7 GB and two are alive while timed.
TO_CATEGORICAL_MAX_VOCAB = 20000


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        sizes = FULL_SIZES if metafunc.config.getoption("--full") else SMALL_SIZES
        metafunc.parametrize("size", sizes, ids=["x".join(map(str, s)) for s in sizes])


@pytest.fixture(autouse=True)
def _free_buffers():
    # Full-size buffers are GBs: make sure one case's are gone before the next allocates.
    yield
    gc.collect()


@pytest.fixture(params=DTYPES)
def dtype(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ids(rng: np.random.Generator, size: tuple[int, int, int]) -> np.ndarray:
    batch, max_len, vocab_size = size
    # uint16, as in the token store; the extremes are always present.
    ids = rng.integers(0, vocab_size, size=(batch, max_len)).astype(np.uint16)
    ids[0, 0], ids[-1, -1] = 0, vocab_size - 1
    return ids


def _group(benchmark, size: tuple[int, int, int], dtype: str) -> None:
    benchmark.group = f"onehot {'x'.join(map(str, size))} {dtype}"


def assert_rows_onehot(result, ids: np.ndarray, vocab_size: int, rows=(0, -1)) -> None:
    """A few rows of a one-hot batch against the slow reference (cheap at any size)."""
    rows = list(rows)
    want = onehot_reference(ids[rows], vocab_size, np.asarray(result).dtype)
    np.testing.assert_array_equal(np.asarray(result)[rows], want)


def test_kernel(benchmark, ids, size, dtype):
    _group(benchmark, size, dtype)
    vocab_size = size[2]
    out = aligned_empty(size, dtype)
    out.view(np.uint8).fill(0xFF)  # touch every page, and leave garbage for the kernel
    onehot(ids, vocab_size, dtype=dtype, out=out)  # compile before timing
    result = benchmark(onehot, ids, vocab_size, dtype=dtype, out=out)
    assert result is out
    assert_rows_onehot(out, ids, vocab_size)
    assert np.count_nonzero(out[1:3]) == 2 * size[1]


def test_kernel_recycled(benchmark, ids, size, dtype, rng):
    """What OneHotSequence does with a pooled buffer: clear the previous batch's ones (its
    record), write the new ones. Alternates two batches so every round really changes cells."""
    _group(benchmark, size, dtype)
    vocab_size = size[2]
    other = rng.integers(0, vocab_size, size=ids.shape).astype(ids.dtype)
    out = aligned_empty(size, dtype)
    out.view(np.uint8).fill(0)
    previous = np.full(ids.shape, -1, dtype=np.int32)
    onehot(ids, vocab_size, dtype=dtype, out=out, previous=previous)  # compile before timing
    batches = [other, ids]

    def step():
        batches.reverse()
        return onehot(batches[0], vocab_size, dtype=dtype, out=out, previous=previous)

    benchmark(step)
    last = batches[0]
    assert_rows_onehot(out, last, vocab_size)
    np.testing.assert_array_equal(previous, last)
    assert np.count_nonzero(out) == last.size


def test_memset(benchmark, size, dtype):
    _group(benchmark, size, dtype)
    out = aligned_empty(size, dtype)
    out_bytes = out.view(np.uint8)
    out_bytes.fill(0xFF)
    benchmark(out_bytes.fill, 0)
    assert not out_bytes[:: max(1, out_bytes.size // 4096)].any()
    assert not out_bytes[-4096:].any()


def test_numpy_zeros_fancy_indexing(benchmark, ids, size, dtype):
    _group(benchmark, size, dtype)
    batch, max_len, vocab_size = size
    batch_index = np.arange(batch)[:, None]
    time_index = np.arange(max_len)[None, :]

    def numpy_onehot():
        result = np.zeros(size, dtype=dtype)
        result[batch_index, time_index, ids] = 1
        return result

    result = benchmark(numpy_onehot)
    assert_rows_onehot(result, ids, vocab_size)


def test_keras_to_categorical(benchmark, ids, size):
    if size[2] > TO_CATEGORICAL_MAX_VOCAB:
        pytest.skip(
            f"to_categorical at vocab {size[2]} makes float64 batches of "
            f"{np.prod(size) * 8 / 1e9:.1f} GB (two alive while timed): too much memory here"
        )
    import keras  # here, so that the other cases do not pay for importing it

    # It returns float64 whatever is asked: it sits in the float32 groups, at twice the bytes.
    _group(benchmark, size, "float32")
    vocab_size = size[2]
    result = benchmark(keras.utils.to_categorical, ids, vocab_size)
    assert result.shape == size
    assert_rows_onehot(result, ids, vocab_size)


def test_tf_one_hot(benchmark, ids, size, dtype):
    import tensorflow as tf

    _group(benchmark, size, dtype)
    vocab_size = size[2]
    ids_tensor = tf.constant(ids.astype(np.int32))  # from a tensor: the conversion is not timed
    tf_dtype = tf.dtypes.as_dtype(dtype)
    tf.one_hot(ids_tensor, vocab_size, dtype=tf_dtype)  # warm up kernels and the allocator
    result = benchmark(tf.one_hot, ids_tensor, vocab_size, dtype=tf_dtype)
    assert result.dtype == tf_dtype
    assert_rows_onehot(result, ids, vocab_size)
