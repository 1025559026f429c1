"""End-to-end benchmarks of OneHotSequence beside the pipelines a Keras user would write instead.

Four kinds of case, each kind grouped by target (one-hot float32, one-hot uint8, sparse ids)
so that the table reads as ratios:

- ``seq[i]`` alone: OneHotSequence over the shuffled, compressed store, beside a plain
  ``keras.utils.PyDataset`` that reads random rows and builds targets with ``np.zeros`` + fancy
  indexing, and the bare ``store.read`` of the same random rows;
- batches through Keras' own PyDataset path, ``PyDatasetAdapter(seq).get_tf_dataset()``, which
  is what ``model.fit`` consumes: OneHotSequence (1 and 2 thread workers), a ``tf.data``
  pipeline over the same ids that calls ``tf.one_hot`` in a parallel ``map``, and the plain
  PyDataset (2 workers). One round is one batch pulled from the iterator and dropped, as ``fit``
  does; every pipeline is warmed up first (a cold ``tf.data`` pipeline spends its first ~10
  batches growing its allocator), so the mean is the steady-state time per batch;
- ``seq[i]`` with a ``target_window`` of half the row beside whole-row targets (recycled and
  fresh buffers): what building one-hot targets for the positions a model predicts saves;
- peak RSS of a whole epoch (``epoch_rss.py`` in a fresh process) over synthetic stores of
  10k, 100k and 1M rows (``--full``; 1k and 20k otherwise): it must not grow with the corpus.

``--full``: batches of (64, 300, 20000) from the real IMDB train store; the default is a small
synthetic store and batches of (8, 50, 2000), fast enough to run every case as a plain test
with ``--benchmark-disable``. Each case checks the batch it ends on against the store.
The throughput ratios are printed at the end of the run (see ``conftest.py``).
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from synthetic import cached_synthetic_store

from textvae.batching import BatchLayout, MemoryOptions, OneHotSequence
from textvae.data.store import TokenStore
from textvae.testing import assert_batch_matches_store

SPLIT = "train"
TARGETS = ["float32", "uint8", "sparse"]  # one-hot float32, one-hot uint8, sparse ids
MAX_QUEUE_SIZE = 2  # a (64, 300, 20000) float32 batch is 1.5 GB: keep few in flight
#: The full-size cases knowingly keep up to 2 + 2 + 2 batches of 1.5 GB alive (9 GB), over the
#: default budget (a quarter of memory) that would warn: stated here instead.
MEMORY_BUDGET = 12 * 2**30


def _targets_dtype(target: str) -> tuple[str, str]:
    return ("sparse", "float32") if target == "sparse" else ("onehot", target)


@pytest.fixture(scope="module")
def shape(train_store: TokenStore, full: bool) -> tuple[int, int, int]:
    """(batch, max_len, vocab_size) of the batches."""
    return (64 if full else 8, train_store.max_len, train_store.vocab_size)


@pytest.fixture(scope="module")
def all_ids(train_store: TokenStore) -> np.ndarray:
    return train_store.read(SPLIT, slice(None)).astype(np.int32)


@pytest.fixture(scope="module")
def all_labels(train_store: TokenStore) -> np.ndarray:
    return train_store.labels(SPLIT).astype(np.float32)


@pytest.fixture(scope="module")
def rounds(full: bool) -> tuple[int, int]:
    """(warm-up batches, timed batches) of every pipeline case."""
    return (10, 24) if full else (2, 5)


def _name(shape: tuple[int, int, int]) -> str:
    return "x".join(map(str, shape))


class NumpyPyDataset(keras.utils.PyDataset):
    """The plain PyDataset a Keras user writes: random rows, targets by ``np.zeros`` + indexing."""

    def __init__(self, store, split, batch_size, *, target="float32", seed=0, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.split = split
        self.batch_size = batch_size
        self.target = target
        self.order = np.random.default_rng(seed).permutation(store.num_rows(split))

    def __len__(self) -> int:
        return math.ceil(self.order.size / self.batch_size)

    def batch_rows(self, index: int) -> np.ndarray:
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index):
        rows = self.batch_rows(index)
        ids = self.store.read(self.split, rows).astype(np.int32)
        labels = self.store.labels(self.split, rows).astype(np.float32).reshape(-1, 1)
        if self.target == "sparse":
            targets = ids
        else:
            batch, max_len = ids.shape
            targets = np.zeros((batch, max_len, self.store.vocab_size), dtype=self.target)
            targets[np.arange(batch)[:, None], np.arange(max_len)[None, :], ids] = 1
        return ids, {"reconstruction": targets, "sentiment": labels}


def _sequence(store, shape, target, **kwargs) -> OneHotSequence:
    targets, dtype = _targets_dtype(target)
    return OneHotSequence(
        store,
        SPLIT,
        shape[0],
        targets=targets,
        dtype=dtype,
        shuffle=True,
        seed=0,
        memory=MemoryOptions(memory_budget=MEMORY_BUDGET),
        **kwargs,
    )


def check_batch(batch, store: TokenStore, target: str, rows=None) -> None:
    """A delivered batch against the store (its first and last rows: a full-size one-hot batch
    is 1.5 GB), with :func:`textvae.testing.assert_batch_matches_store`; ``rows`` None: found
    by their ids."""
    kind, dtype = _targets_dtype(target)
    layout = BatchLayout(outputs={"reconstruction": kind, "sentiment": "binary"})
    assert_batch_matches_store(
        store, batch, rows, split=SPLIT, layout=layout, dtype=dtype, positions=(0, -1)
    )


def _record_mean(benchmark, results: dict, key: tuple[str, str]) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable
        return
    mean = stats.stats.mean
    benchmark.extra_info["ms_per_batch"] = round(mean * 1e3, 2)
    benchmark.extra_info["batches_per_s"] = round(1 / mean, 2)
    results[key] = mean


# -- seq[i] alone -----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_getitem_sequence(benchmark, train_store, shape, target, full, all_ids, all_labels):
    benchmark.group = f"seq[i] {_name(shape)} {target}"
    seq = _sequence(train_store, shape, target)
    indices = itertools.cycle(range(len(seq)))
    last = {}

    def getitem():
        i = last["i"] = next(indices)
        # Hold the previous batch while the next one is made, as fit does, from the warm-up
        # on: the pool's second buffer is then allocated (page faults: seconds) before timing.
        batch = last["batch"] = seq[i]
        return batch

    seq[0]  # compile, open the store, build the epoch plan
    batch = benchmark.pedantic(getitem, rounds=30 if full else 3, warmup_rounds=2, iterations=1)
    check_batch(batch, train_store, target, rows=seq.batch_rows(last["i"]))


@pytest.mark.parametrize("target", TARGETS)
def test_getitem_numpy_reference(benchmark, train_store, shape, target, full, all_ids, all_labels):
    benchmark.group = f"seq[i] {_name(shape)} {target}"
    dataset = NumpyPyDataset(train_store, SPLIT, shape[0], target=target)
    indices = itertools.cycle(range(len(dataset)))
    last = {}

    def getitem():
        i = last["i"] = next(indices)
        return dataset[i]

    batch = benchmark.pedantic(getitem, rounds=10 if full else 3, warmup_rounds=1, iterations=1)
    check_batch(batch, train_store, target, rows=dataset.batch_rows(last["i"]))


@pytest.mark.parametrize("target", TARGETS)
def test_getitem_store_read_reference(benchmark, train_store, shape, target, full, all_ids):
    # The bare read of the same random rows: the floor of the plain PyDataset, and of sparse.
    benchmark.group = f"seq[i] {_name(shape)} {target}"
    dataset = NumpyPyDataset(train_store, SPLIT, shape[0])
    indices = itertools.cycle(range(len(dataset)))
    last = {}

    def read():
        i = last["i"] = next(indices)
        return train_store.read(SPLIT, dataset.batch_rows(i))

    ids = benchmark.pedantic(read, rounds=30 if full else 3, warmup_rounds=1, iterations=1)
    np.testing.assert_array_equal(ids, all_ids[dataset.batch_rows(last["i"])])


# -- target window: one-hot targets for the last positions only ------------------------------

#: The case names of the target-window groups; the summary prints the window's ratio to whole rows.
WINDOW_CASES = {"whole": "whole-row-targets", "half": "textvae-target-window"}


@pytest.mark.parametrize("pool", ["pooled", "fresh"])
@pytest.mark.parametrize("window", list(WINDOW_CASES))
def test_getitem_target_window(benchmark, train_store, shape, window, pool, full, pipeline_results):
    """``seq[i]`` with ``target_window=max_len // 2`` beside whole-row targets, same store, rows
    and float32 one-hot: recycled buffers (the kernel clears and writes only the window's
    cells) and fresh ones (``pool_size=0``: every batch allocates, zeroes and page-faults its
    buffer, whose bytes the window halves)."""
    positions = shape[1] // 2
    benchmark.group = (
        f"seq[i] {_name(shape)} float32, {pool} buffers: target_window={positions} vs whole rows"
    )
    seq = OneHotSequence(
        train_store,
        SPLIT,
        shape[0],
        shuffle=True,
        seed=0,
        target_window=None if window == "whole" else positions,
        memory=MemoryOptions(
            memory_budget=MEMORY_BUDGET, pool_size=None if pool == "pooled" else 0
        ),
    )
    indices = itertools.cycle(range(len(seq)))
    last = {}

    def getitem():
        i = last["i"] = next(indices)
        batch = last["batch"] = seq[i]  # held while the next is made, as fit does
        return batch

    seq[0]  # compile, open the store, build the epoch plan
    batch = benchmark.pedantic(getitem, rounds=30 if full else 5, warmup_rounds=2, iterations=1)
    _record_mean(benchmark, pipeline_results, (benchmark.group, WINDOW_CASES[window]))
    targets = batch[1]["reconstruction"]
    assert targets.shape[1:] == (shape[1] if window == "whole" else positions, shape[2])
    assert_batch_matches_store(seq, batch, seq.batch_rows(last["i"]), positions=(0, -1))


# -- through Keras' PyDataset path ------------------------------------------------------------


@dataclass
class Pipeline:
    """A running pipeline: its batch iterator, the rows of its j-th batch (None: unknown) and
    how to stop it."""

    iterator: Iterator
    rows_of: Callable[[int], np.ndarray] | None
    close: Callable[[], None]


def time_pipeline(
    benchmark,
    running: Pipeline,
    results: dict,
    pipeline: str,
    rounds: tuple[int, int],
    check: Callable[[Any, np.ndarray | None], None],
    rows: int | None = None,
) -> None:
    """Time one batch pulled from ``running`` per round (``rounds``: warm-up, timed), record
    the mean under ``(benchmark.group, pipeline)``, check the next batch with ``check(batch,
    row_index)`` (the rows it holds, or None), then close the pipeline whatever happened.
    ``rows``: the size every timed batch must have (its first element's leading axis)."""
    pulled = 0

    def next_batch():
        nonlocal pulled
        batch = next(running.iterator)  # dropped on return, as fit drops each batch
        pulled += 1
        return len(batch) if rows is None else int(batch[0].shape[0])

    warmup, timed = rounds
    try:
        size = benchmark.pedantic(next_batch, rounds=timed, warmup_rounds=warmup, iterations=1)
        if rows is not None:
            assert size == rows
        _record_mean(benchmark, results, (benchmark.group, pipeline))
        batch = next(running.iterator)
        check(batch, running.rows_of(pulled) if running.rows_of else None)
        del batch
    finally:
        running.iterator = None
        gc.collect()
        running.close()
        gc.collect()


def _keras_path(dataset: keras.utils.PyDataset) -> Pipeline:
    """Batches as ``model.fit`` receives them: Keras' adapter -> tf.data -> tensors."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(dataset, shuffle=False)
    tf_dataset = adapter.get_tf_dataset()
    adapter.on_epoch_begin()

    def close():
        adapter.on_epoch_end()
        # tf.data's from_generator keeps its generator (a method of the adapter) registered
        # after the dataset is gone, and the adapter holds the dataset, its buffers and the
        # enqueuer's drained batches (GBs at full size): cut those links between cases.
        adapter.enqueuer = None
        adapter.py_dataset = None

    return Pipeline(iter(tf_dataset), dataset.batch_rows, close)


def _tf_data(all_ids, all_labels, shape, target) -> Pipeline:
    """The tf.data pipeline a Keras user writes: shuffle ids, batch, ``tf.one_hot`` in a map."""
    import tensorflow as tf

    vocab_size = shape[2]

    if target == "sparse":

        def targets(x, y):
            return x, {"reconstruction": x, "sentiment": y}
    else:
        tf_dtype = tf.dtypes.as_dtype(target)

        def targets(x, y):
            onehot = tf.one_hot(x, vocab_size, dtype=tf_dtype)
            return x, {"reconstruction": onehot, "sentiment": y}

    dataset = (
        tf.data.Dataset.from_tensor_slices((all_ids, all_labels.reshape(-1, 1)))
        .shuffle(all_ids.shape[0], seed=0)
        .batch(shape[0])
        .map(targets, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    return Pipeline(iter(dataset), None, lambda: None)


PIPELINES = ["textvae-w1", "textvae-w2", "tf.data", "numpy-pydataset-w2"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_keras_path(
    benchmark,
    train_store,
    shape,
    target,
    pipeline,
    rounds,
    all_ids,
    all_labels,
    pipeline_results,
):
    benchmark.group = f"batches via Keras PyDataset path {_name(shape)} {target}"
    if pipeline == "tf.data":
        running = _tf_data(all_ids, all_labels, shape, target)
    elif pipeline.startswith("textvae"):
        workers = int(pipeline[-1])
        seq = _sequence(train_store, shape, target, workers=workers, max_queue_size=MAX_QUEUE_SIZE)
        running = _keras_path(seq)
    else:
        dataset = NumpyPyDataset(
            train_store, SPLIT, shape[0], target=target, workers=2, max_queue_size=MAX_QUEUE_SIZE
        )
        running = _keras_path(dataset)
    time_pipeline(
        benchmark,
        running,
        pipeline_results,
        pipeline,
        rounds,
        lambda batch, rows: check_batch(batch, train_store, target, rows=rows),
        rows=shape[0],
    )


# -- peak RSS over an epoch ---------------------------------------------------------------------


def _epoch(store: TokenStore, timeout: float) -> dict:
    script = Path(__file__).with_name("epoch_rss.py")
    command = [sys.executable, str(script), store.path, "--batch-size", "64"]
    command += ["--targets", "onehot", "--dtype", "float32", "--workers", "2"]
    command += ["--max-queue-size", str(MAX_QUEUE_SIZE)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["batches"] == result["expected_batches"] == math.ceil(store.num_rows(SPLIT) / 64)
    assert result["rows"] == store.num_rows(SPLIT)
    return result


#: Corpus sizes of the peak-RSS epochs (rows of synthetic stores, vocab 2,000) and their max_len.
RSS_ROWS_FULL, RSS_MAX_LEN_FULL = (10_000, 100_000, 1_000_000), 300
RSS_ROWS_SMALL, RSS_MAX_LEN_SMALL = (1_000, 20_000), 50
RSS_VOCAB = 2000


def test_epoch_peak_rss(benchmark, full):
    # One-hot float32 at vocab 2,000 (154 MB a batch): the buffer pool is in play, and an epoch
    # of 1M rows (15,625 batches) takes ~1 minute; at vocab 20,000 it would take over an hour.
    # The largest corpus's epoch is the timed round; every epoch's peak is in extra_info.
    benchmark.group = f"epoch peak RSS (onehot float32, vocab {RSS_VOCAB}, batch 64, 2 workers)"
    all_rows, max_len = (
        (RSS_ROWS_FULL, RSS_MAX_LEN_FULL) if full else (RSS_ROWS_SMALL, RSS_MAX_LEN_SMALL)
    )
    stores = [
        cached_synthetic_store(rows, vocab_size=RSS_VOCAB, max_len=max_len) for rows in all_rows
    ]
    epochs = [_epoch(store, timeout=600) for store in stores[:-1]]
    epochs.append(benchmark.pedantic(_epoch, args=(stores[-1], 1800), rounds=1, iterations=1))
    # VmHWM, not ru_maxrss: the latter inherits pytest's own RSS across fork + exec.
    small, large = epochs[0], epochs[-1]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    benchmark.extra_info.update(
        {
            "vocab_size": RSS_VOCAB,
            "max_len": max_len,
            "epochs": [
                {
                    "rows": rows,
                    "peak_rss_mb": round(epoch["peak_rss_mb"], 1),
                    "ru_maxrss_mb": round(epoch["maxrss_mb"], 1),
                    "rss_before_mb": round(epoch["rss_before_mb"], 1),
                    "pool_buffers": epoch["pool_buffers"],
                    "epoch_s": round(epoch["seconds"], 1),
                }
                for rows, epoch in zip(all_rows, epochs, strict=True)
            ],
            "rows_small": all_rows[0],
            "rows_large": all_rows[-1],
            "peak_rss_mb_small": round(small["peak_rss_mb"], 1),
            "peak_rss_mb_large": round(large["peak_rss_mb"], 1),
            "rss_ratio": round(ratio, 3),
        }
    )
    peaks = ", ".join(
        f"{rows} rows {epoch['peak_rss_mb']:.0f} MB"
        for rows, epoch in zip(all_rows, epochs, strict=True)
    )
    print(f"\nepoch peak RSS (VmHWM): {peaks}; largest / smallest {ratio:.3f}")
    if full:
        assert ratio <= 1.15, f"peak RSS grew {ratio:.2f}x with the corpus (target <= 1.15)"
