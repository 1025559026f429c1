"""OneHotSequence: batches against a NumPy reference, epochs, shards, workers and Keras' path."""

from __future__ import annotations

import multiprocessing
import pickle

import keras
import numpy as np
import pytest

from textvae.batching import MemoryOptions, OneHotSequence, SamplingOptions, ShardOptions
from textvae.errors import StoreMismatchError, TextVAEDeprecationWarning
from textvae.testing import assert_batch_matches_store

_SPAWN = multiprocessing.get_context("spawn")


@pytest.mark.parametrize("targets", ["onehot", "sparse"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_batches_match_reference(small_store, targets, dtype):
    seq = OneHotSequence(small_store, "train", batch_size=5, targets=targets, dtype=dtype)
    for i in range(len(seq)):
        rows = seq.batch_rows(i)
        ids, outputs = seq[i]
        assert ids.dtype == np.int32 and ids.shape == (len(rows), 16)
        assert_batch_matches_store(seq, (ids, outputs), rows)
        if targets == "onehot":
            assert outputs["reconstruction"].ctypes.data % 64 == 0
        assert outputs["sentiment"].shape == (len(rows), 1)


def _rows_in_child(payload: bytes) -> list[int]:
    seq = pickle.loads(payload)
    return [int(r) for i in range(len(seq)) for r in seq[i][0][:, -1]]


def test_same_batches_in_another_process(small_store):
    seq = OneHotSequence(small_store, "train", 8, seed=11)
    seq.set_epoch(2)
    here = [int(r) for i in range(len(seq)) for r in seq[i][0][:, -1]]
    with _SPAWN.Pool(1) as pool:
        there = pool.apply(_rows_in_child, (pickle.dumps(seq),))
    assert here == there


def test_index_out_of_range_names_range(small_store):
    seq = OneHotSequence(small_store, "train", 10)
    assert len(seq) == 4
    with pytest.raises(IndexError, match=r"valid indices are \[0, 4\)"):
        seq[4]
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        seq[-1]


def test_store_expectations(small_store):
    with pytest.raises(StoreMismatchError, match="vocab_size=12"):
        OneHotSequence(small_store.path, vocab_size=20000)
    with pytest.raises(StoreMismatchError, match="max_len=16"):
        OneHotSequence(small_store, max_len=300)
    with pytest.raises(StoreMismatchError, match="no split"):
        OneHotSequence(small_store, split="valid")


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: {"targets": "dense"}, "targets"),
        (lambda: {"dtype": "int64"}, "dtype"),
        (lambda: {"batch_size": 0}, "batch_size"),
        (lambda: {"shards": ShardOptions(shard_index=2, num_shards=2)}, "shard_index"),
        (lambda: {"seed": None}, "seed"),
        (lambda: {"shards": ShardOptions(num_shards=0)}, "num_shards"),
        (lambda: {"sampling": SamplingOptions(rows=0)}, "rows"),
        (lambda: {"sampling": SamplingOptions(rows=2.5)}, "rows"),
        (lambda: {"sampling": SamplingOptions(window_chunks=0)}, "window_chunks"),
        (lambda: {"memory": MemoryOptions(pool_size=-1)}, "pool_size"),
        (lambda: {"memory": {"pool_size": 1}}, "memory"),
    ],
)
def test_bad_arguments(small_store, make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        OneHotSequence(small_store, **make())


def test_output_names_configurable(small_store):
    seq = OneHotSequence(small_store, reconstruction_name=None, sentiment_name="label")
    _, outputs = seq[0]
    assert list(outputs) == ["label"]
    seq = OneHotSequence(small_store, reconstruction_name="decoded", sentiment_name=None)
    assert list(seq[0][1]) == ["decoded"]


def test_pickles_without_store(small_store):
    seq = OneHotSequence(small_store, "test", 4, workers=2, max_queue_size=3)
    clone = pickle.loads(pickle.dumps(seq))
    assert (clone.workers, clone.max_queue_size, len(clone)) == (2, 3, len(seq))
    np.testing.assert_array_equal(clone[1][0], seq[1][0])


def _delivered(seq: OneHotSequence) -> tuple[list[tuple], list]:
    """Batches as `model.fit` receives them: Keras' PyDataset adapter -> tf.data -> tensors;
    and the pool's buffers as they were before the epoch ended (which lets the pool go)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(seq, shuffle=False)
    dataset = adapter.get_tf_dataset()
    adapter.on_epoch_begin()
    held = list(dataset)  # hold every tensor: nothing may be recycled under them
    pool = [buf for buf, _ in seq._pool._buffers]
    adapter.on_epoch_end()
    assert seq._pool is None, "the pool must be let go at the end of an epoch"
    return held, pool


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_keras_path_delivers_exact_batches(small_store, workers):
    seq = OneHotSequence(
        small_store, "train", 4, shuffle=True, seed=5, workers=workers, max_queue_size=2
    )
    rows = [seq.batch_rows(i) for i in range(len(seq))]
    held, pool = _delivered(seq)
    assert len(held) == len(seq)
    for batch, r in zip(held, rows, strict=True):
        assert_batch_matches_store(seq, batch, r)
    assert 0 < len(pool) <= seq.max_queue_size + workers + 2
    # Zero-copy hand-off, and no buffer under two held batches: mark every pooled buffer; each
    # mark must show through exactly one delivered tensor (TensorFlow wraps our memory).
    for buf in pool:
        buf[0, 0, 0] = 7
    marked = [float(out["reconstruction"][0, 0, 0]) == 7 for _, out in held]
    assert sum(marked) == len(pool)


def _tiny_vae_like(vocab_size: int, max_len: int) -> keras.Model:
    ids = keras.Input((max_len,), dtype="int32")
    h = keras.layers.Embedding(vocab_size, 8)(ids)
    recon = keras.layers.Dense(vocab_size, activation="softmax", name="reconstruction")(h)
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    senti = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(pooled)
    model = keras.Model(ids, {"reconstruction": recon, "sentiment": senti})
    model.compile(
        "adam",
        loss={"reconstruction": "categorical_crossentropy", "sentiment": "binary_crossentropy"},
    )
    return model


@pytest.mark.timeout(180)
@pytest.mark.parametrize("use_multiprocessing", [False, True], ids=["threads", "processes"])
def test_fit_with_two_workers(small_store, use_multiprocessing):
    keras.utils.set_random_seed(0)
    seq = OneHotSequence(
        small_store,
        "train",
        8,
        workers=2,
        use_multiprocessing=use_multiprocessing,
        max_queue_size=2,
    )
    model = _tiny_vae_like(small_store.vocab_size, small_store.max_len)
    history = model.fit(seq, epochs=2, steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["loss"]))


@pytest.mark.timeout(120)
def test_reuse_in_a_sentiment_classifier(small_store):
    """The README's reuse example: ids -> sentiment only, a model that is not the VAE."""
    keras.utils.set_random_seed(0)
    seq = OneHotSequence(
        small_store, "train", 8, reconstruction_name=None, sentiment_name="label", workers=2
    )
    ids = keras.Input((small_store.max_len,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(small_store.vocab_size, 8)(ids)
    )
    model = keras.Model(
        ids, {"label": keras.layers.Dense(1, activation="sigmoid", name="label")(h)}
    )
    model.compile("adam", loss={"label": "binary_crossentropy"}, metrics={"label": ["accuracy"]})
    history = model.fit(seq, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


FLAT = [
    ("rows", 10, "sampling", SamplingOptions(rows=10)),
    ("max_rows", 10, "sampling", SamplingOptions(rows=10)),
    ("window_chunks", 1, "sampling", SamplingOptions(window_chunks=1)),
    ("row_subset", [1, 5, 9, 30], "sampling", SamplingOptions(row_subset=[1, 5, 9, 30])),
    ("num_shards", 2, "shards", ShardOptions(num_shards=2)),
    ("pool_size", 1, "memory", MemoryOptions(pool_size=1)),
    ("memory_budget", 2**30, "memory", MemoryOptions(memory_budget=2**30)),
]


@pytest.mark.parametrize(("old", "value", "group", "options"), FLAT, ids=[f[0] for f in FLAT])
def test_flat_keywords_of_0_1_fold_into_the_options(small_store, old, value, group, options):
    with pytest.warns(
        TextVAEDeprecationWarning, match=rf"{old}=.*use OneHotSequence\({group}="
    ) as record:
        flat = OneHotSequence(small_store, "train", 4, seed=3, **{old: value})
    assert record[0].filename == __file__, "the warning points at the caller's line"
    grouped = OneHotSequence(small_store, "train", 4, seed=3, **{group: options})
    assert repr(getattr(flat, group)) == repr(getattr(grouped, group))
    np.testing.assert_array_equal(flat.epoch_rows(), grouped.epoch_rows())
    with pytest.warns(TextVAEDeprecationWarning), pytest.raises(ValueError, match=f"`{group}`"):
        OneHotSequence(small_store, "train", 4, **{old: value, group: options})


def test_max_rows_beside_rows_and_the_old_attribute(small_store):
    with pytest.warns(TextVAEDeprecationWarning), pytest.raises(ValueError, match="`rows` only"):
        OneHotSequence(small_store, "train", 4, rows=10, max_rows=10)
    seq = OneHotSequence(small_store, "train", 4, sampling=SamplingOptions(rows=10))
    with pytest.warns(TextVAEDeprecationWarning, match="use OneHotSequence.sampling.rows"):
        assert seq.max_rows == 10


def test_signature_defaults_read_as_values():
    import inspect

    text = str(inspect.signature(OneHotSequence))
    assert "object at" not in text
    assert (
        "targets: 'str' = 'onehot'" in text and "sampling: 'SamplingOptions | None' = None" in text
    )


@pytest.mark.parametrize("first", [0, 1, 4])
def test_from_batch_serves_the_rest_of_each_epoch(small_store, first):
    """What a run stopped after `first` batches of epoch 2 reads next, in order."""
    seq = OneHotSequence(small_store, "train", 8, seed=5)  # 37 rows: 5 batches, the last of 5
    seq.set_epoch(2)
    rest = seq.from_batch(first)
    rest.set_epoch(2)
    assert len(rest) == len(seq) - first and rest.batches_per_epoch == len(seq) == 5
    for i in range(len(rest)):
        np.testing.assert_array_equal(rest.batch_rows(i), seq.batch_rows(first + i))
        ids, outputs = rest[i]
        want_ids, want_targets = seq[first + i][0], seq[first + i][1]["reconstruction"]
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(outputs["reconstruction"], want_targets)
    with pytest.raises(IndexError, match=rf"valid indices are \[0, {len(rest)}\)"):
        rest.batch_rows(len(rest))
    assert seq.first_batch == 0 and len(seq) == 5  # the original is unchanged
    clone = pickle.loads(pickle.dumps(rest))
    np.testing.assert_array_equal(clone.batch_rows(0), rest.batch_rows(0))


def test_from_batch_refuses_a_batch_outside_the_epoch(small_store):
    seq = OneHotSequence(small_store, "train", 8)
    with pytest.raises(ValueError, match=r"`batch` must be an integer in \[0, 5\)"):
        seq.from_batch(5)
    with pytest.raises(ValueError, match="starts at batch 0"):
        seq.from_batch(2).from_batch(1)
