"""Store-only benchmarks: reading one batch of rows, and building a store (ingest).

Row reads, one benchmark group per store, read as ratios: 64 contiguous rows (one chunk
decompressed), 64 rows drawn at random across the split (a chunk decompressed per distinct chunk
touched), and the same random rows taken from an in-memory NumPy array (the floor: no
decompression at all). ``--full`` reads the real IMDB train store (vocab 20,000, max_len 300);
the default is a small synthetic store. Ingest: the whole IMDB folder (``--full`` only, one
round, reviews/s in ``extra_info``) and a synthetic corpus (which skips tokenising, so it times
padding, compression and writes alone).
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from synthetic import IMDB_DIR, SyntheticCorpus

from textvae.data import StoreSpec, TokenStore, build_store

BATCH = 64
SPLIT = "train"


@pytest.fixture(scope="module")
def all_ids(train_store: TokenStore) -> np.ndarray:
    return train_store.read(SPLIT, slice(None))


def _group(benchmark, store: TokenStore) -> None:
    n = store.num_rows(SPLIT)
    benchmark.group = (
        f"store read {BATCH} rows of {n}x{store.max_len} (vocab {store.vocab_size}, "
        f"chunks of {store.chunk_rows(SPLIT)})"
    )


def _rounds(full: bool) -> int:
    return 50 if full else 5


def test_read_contiguous(benchmark, train_store, all_ids, full, rng):
    _group(benchmark, train_store)
    n = train_store.num_rows(SPLIT)
    # Starts spread over the split, each batch inside one chunk, as an unshuffled epoch reads.
    starts = itertools.cycle(rng.integers(0, n - BATCH, size=64))
    last = {}

    def read():
        start = last["start"] = int(next(starts))
        return train_store.read(SPLIT, slice(start, start + BATCH))

    result = benchmark.pedantic(read, rounds=_rounds(full), warmup_rounds=1, iterations=1)
    start = last["start"]
    assert result.dtype == train_store.token_dtype and result.shape == (BATCH, train_store.max_len)
    np.testing.assert_array_equal(result, all_ids[start : start + BATCH])


def test_read_shuffled(benchmark, train_store, all_ids, full, rng):
    _group(benchmark, train_store)
    n = train_store.num_rows(SPLIT)
    batches = itertools.cycle([rng.choice(n, BATCH, replace=False) for _ in range(64)])
    last = {}

    def read():
        rows = last["rows"] = next(batches)
        return train_store.read(SPLIT, rows)

    result = benchmark.pedantic(read, rounds=_rounds(full), warmup_rounds=1, iterations=1)
    rows = last["rows"]
    benchmark.extra_info["chunks_touched"] = len(np.unique(rows // train_store.chunk_rows(SPLIT)))
    np.testing.assert_array_equal(result, all_ids[rows])


def test_read_shuffled_in_memory_reference(benchmark, train_store, all_ids, full, rng):
    _group(benchmark, train_store)
    n = train_store.num_rows(SPLIT)
    batches = itertools.cycle([rng.choice(n, BATCH, replace=False) for _ in range(64)])
    last = {}

    def take():
        rows = last["rows"] = next(batches)
        return all_ids[rows]

    result = benchmark.pedantic(take, rounds=_rounds(full), warmup_rounds=1, iterations=1)
    assert result.shape == (BATCH, train_store.max_len)
    np.testing.assert_array_equal(result[0], all_ids[last["rows"][0]])


def _ingest(benchmark, path, corpus, *, vocab_size: int, max_len: int) -> TokenStore:
    seconds = []

    def build():
        start = time.perf_counter()
        store = build_store(
            path, corpus, spec=StoreSpec(vocab_size=vocab_size, max_len=max_len), overwrite=True
        )
        seconds.append(time.perf_counter() - start)
        return store

    store = benchmark.pedantic(build, rounds=1, iterations=1)
    rows = sum(store.num_rows(split) for split in store.splits)
    benchmark.extra_info["reviews"] = rows
    benchmark.extra_info["seconds"] = round(seconds[-1], 3)
    benchmark.extra_info["reviews_per_s"] = round(rows / seconds[-1], 1)
    return store


@pytest.mark.full
def test_ingest_imdb(benchmark, tmp_path):
    if IMDB_DIR is None:
        pytest.skip("no IMDB corpus found ($TEXTVAE_IMDB, shared/data/imdb, ../shared/data/imdb)")
    from textvae.data.discover import open_corpus

    benchmark.group = "ingest"
    store = _ingest(
        benchmark,
        tmp_path / "imdb.zarr",
        open_corpus(IMDB_DIR),
        vocab_size=20000,
        max_len=300,
    )
    assert store.splits == ("train", "test")
    assert store.num_rows("train") == 25000 and store.num_rows("test") == 25000
    labels = store.labels("train")
    assert (labels == 0).sum() == (labels == 1).sum() == 12500
    assert store.vocab[:5] == ("<pad>", "<start>", "<oov>", "the", ".")
    # Reviews that fit keep their start id ("pre" truncation drops it from longer ones).
    ids, lengths = store.read("train", slice(0, 1000)), store.lengths("train", slice(0, 1000))
    np.testing.assert_array_equal((ids == 1).any(axis=1), lengths <= 300)


def test_ingest_synthetic(benchmark, tmp_path, full):
    benchmark.group = "ingest"
    n_rows, vocab_size, max_len = (100_000, 20000, 300) if full else (5000, 2000, 50)
    corpus = SyntheticCorpus(n_rows, vocab_size=vocab_size, max_len=max_len)
    store = _ingest(
        benchmark, tmp_path / "synthetic.zarr", corpus, vocab_size=vocab_size, max_len=max_len
    )
    assert store.num_rows("train") == n_rows
    lengths = store.lengths("train")
    ids = store.read("train", slice(0, 1000))
    # Every review starts with the start id, keeps its length, and padding fills the rest.
    np.testing.assert_array_equal((ids != 0).sum(axis=1), np.minimum(lengths[:1000], max_len))
    counts = np.bincount(ids.ravel(), minlength=vocab_size)
    assert counts[3] > counts[4] > counts[100] > 0  # Zipf-like: frequent words first
