"""OneHotSequence: batches against a NumPy reference, epochs, shards, workers and Keras' path."""

from __future__ import annotations

import multiprocessing
import pickle

import keras
import numpy as np
import pytest
from reference import onehot_reference

from textvae.batching.sequence import OneHotSequence, holdout_rows
from textvae.data.store import TokenStore
from textvae.errors import StoreMismatchError

_SPAWN = multiprocessing.get_context("spawn")


def expected_batch(store: TokenStore, split: str, rows: np.ndarray, dtype="float32"):
    ids = store.read(split, rows).astype(np.int64)
    return ids, onehot_reference(ids, store.vocab_size, dtype), store.labels(split, rows)


@pytest.mark.parametrize("targets", ["onehot", "sparse"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_batches_match_reference(small_store, targets, dtype):
    seq = OneHotSequence(small_store, "train", batch_size=5, targets=targets, dtype=dtype)
    for i in range(len(seq)):
        rows = seq.batch_rows(i)
        ids, outputs = seq[i]
        ref_ids, ref_onehot, ref_labels = expected_batch(small_store, "train", rows, dtype)
        assert ids.dtype == np.int32 and ids.shape == (len(rows), 16)
        np.testing.assert_array_equal(ids, ref_ids)
        recon = outputs["reconstruction"]
        if targets == "sparse":
            np.testing.assert_array_equal(recon, ref_ids)
        else:
            assert recon.dtype == np.dtype(dtype) and recon.ctypes.data % 64 == 0
            np.testing.assert_array_equal(recon, ref_onehot)
        assert outputs["sentiment"].shape == (len(rows), 1)
        np.testing.assert_array_equal(outputs["sentiment"].ravel(), ref_labels)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("num_shards", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [4, 7, 37, 64])
@pytest.mark.parametrize("drop_remainder", [False, True], ids=["keep", "drop"])
def test_epoch_covers_rows_once(small_store, shuffle, num_shards, batch_size, drop_remainder):
    n = small_store.num_rows("train")  # 37
    served = []
    lengths = set()
    for shard in range(num_shards):
        seq = OneHotSequence(
            small_store,
            "train",
            batch_size,
            targets="sparse",
            shuffle=shuffle,
            shard_index=shard,
            num_shards=num_shards,
            drop_remainder=drop_remainder,
            window_chunks=2,
        )
        lengths.add(len(seq))
        rows = [seq.batch_rows(i) for i in range(len(seq))]
        with pytest.raises(IndexError):
            seq.batch_rows(len(seq))
        if drop_remainder:
            assert all(r.size == batch_size for r in rows)
        served.append(np.concatenate(rows) if rows else np.array([], dtype=np.int64))
        if not drop_remainder:
            assert served[-1].size == n // num_shards
    assert len(lengths) == 1, "every shard must take the same number of steps"
    everything = np.concatenate(served)
    assert np.unique(everything).size == everything.size, "a row was served twice"
    assert set(everything) <= set(range(n))
    if not drop_remainder:
        assert everything.size == (n // num_shards) * num_shards
    if not shuffle and num_shards == 1 and not drop_remainder:
        np.testing.assert_array_equal(everything, np.arange(n))


def test_shuffle_is_chunk_aware(small_store):
    # 5 chunks of (at most) 8 rows, windows of 1 chunk: a batch of 6 lies in one window or
    # straddles two, so it touches at most 2 chunks (a row-wise shuffle would touch 3-5).
    seq = OneHotSequence(small_store, "train", batch_size=6, window_chunks=1, targets="sparse")
    for i in range(len(seq)):
        assert np.unique(seq.batch_rows(i) // 8).size <= 2
    order = seq.epoch_rows()
    assert not np.array_equal(np.sort(order[:8]), order[:8]), "rows within a window are shuffled"


def test_shuffle_keyed_on_seed_and_epoch(small_store):
    a = OneHotSequence(small_store, "train", 8, seed=3)
    b = OneHotSequence(small_store.path, "train", 8, seed=3)
    np.testing.assert_array_equal(a.epoch_rows(), b.epoch_rows())
    first = a.epoch_rows().copy()
    a.on_epoch_begin()  # an epoch as Keras runs one (here without batches)
    a.on_epoch_end()
    assert not np.array_equal(a.epoch_rows(), first)
    b.set_epoch(1)
    np.testing.assert_array_equal(a.epoch_rows(), b.epoch_rows())
    c = OneHotSequence(small_store, "train", 8, seed=4)
    assert not np.array_equal(c.epoch_rows(0), first)


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
    ("kwargs", "name"),
    [
        ({"targets": "dense"}, "targets"),
        ({"dtype": "int64"}, "dtype"),
        ({"batch_size": 0}, "batch_size"),
        ({"shard_index": 2, "num_shards": 2}, "shard_index"),
        ({"seed": None}, "seed"),
        ({"num_shards": 0}, "num_shards"),
        ({"rows": 0}, "rows"),
        ({"rows": 2.5}, "rows"),
        ({"window_chunks": 0}, "window_chunks"),
        ({"pool_size": -1}, "pool_size"),
    ],
)
def test_bad_arguments(small_store, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        OneHotSequence(small_store, **kwargs)


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


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_recycled_buffers_exact_in_any_access_order(small_store, dtype, rng):
    """Recycled buffers are cleared cell by cell (not zeroed whole): whatever order batches are
    asked in (full after partial, the same twice), each equals the reference."""
    seq = OneHotSequence(small_store, "train", 6, dtype=dtype, pool_size=2)
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
    seq = OneHotSequence(small_store, "train", 4, pool_size=2)
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
    for i, (ids, outputs) in enumerate(held):
        ref_ids, ref_onehot, ref_labels = expected_batch(small_store, "train", rows[i])
        np.testing.assert_array_equal(ids.numpy(), ref_ids)
        np.testing.assert_array_equal(outputs["reconstruction"].numpy(), ref_onehot)
        np.testing.assert_array_equal(outputs["sentiment"].numpy().ravel(), ref_labels)
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


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_rows_limits_each_epoch(small_store, shuffle):
    seq = OneHotSequence(
        small_store,
        "train",
        4,
        rows=10,
        shuffle=shuffle,
        num_shards=2,
        shard_index=1,
        targets="sparse",
    )
    assert (seq.rows_per_shard, len(seq)) == (5, 2)
    rows = np.concatenate([seq.batch_rows(i) for i in range(len(seq))])
    assert np.unique(rows).size == 5
    seq.on_epoch_begin()
    seq.on_epoch_end()
    later = np.concatenate([seq.batch_rows(i) for i in range(len(seq))])
    assert np.array_equal(np.sort(rows), np.sort(later)) != shuffle
    if not shuffle:
        np.testing.assert_array_equal(rows, np.arange(5, 10))


def test_max_rows_is_a_deprecated_name_of_rows(small_store):
    with pytest.warns(DeprecationWarning, match="`max_rows` is deprecated, use `rows`"):
        old = OneHotSequence(small_store, "train", 4, max_rows=10, seed=3)
    new = OneHotSequence(small_store, "train", 4, rows=10, seed=3)
    assert old.rows == new.rows == 10
    np.testing.assert_array_equal(old.epoch_rows(), new.epoch_rows())
    with pytest.warns(DeprecationWarning, match="use `rows`"):
        assert old.max_rows == 10
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="pass `rows` only"):
        OneHotSequence(small_store, "train", 4, rows=10, max_rows=10)


@pytest.mark.parametrize(("n_chunks", "window"), [(25, 8), (5, 4), (5, 1), (1, 16), (16, 16)])
def test_chunk_windows_are_balanced(n_chunks, window, rng):
    from textvae.batching.sequence import chunk_windows

    windows = chunk_windows(n_chunks, window, rng)
    sizes = [len(w) for w in windows]
    assert max(sizes) <= window and max(sizes) - min(sizes) <= 1
    assert len(windows) == -(-n_chunks // window)
    assert sorted(np.concatenate(windows).tolist()) == list(range(n_chunks))


def test_sorted_source_gives_mixed_last_batches(tmp_path):
    """17 label-sorted chunks (8 negative, 9 positive), windows of up to 16 chunks: two windows
    of 9 and 8 chunks, not 16 and 1. With a lone last chunk, every epoch would end on a chunk's
    worth of rows of a single label."""
    from textvae.data.corpus import open_corpus
    from textvae.data.store import build_store
    from textvae.testing import write_jsonl

    reviews = [("bad film", 0)] * 64 + [("good film", 1)] * 72
    write_jsonl(tmp_path / "c" / "c_train.jsonl", reviews)
    store = build_store(
        tmp_path / "s.zarr", open_corpus(tmp_path / "c"), vocab_size=8, max_len=4, chunk_rows=8
    )
    single_label_endings = 0
    for seed in range(20):
        seq = OneHotSequence(store, "train", 8, seed=seed, targets="sparse")
        last = store.labels("train", seq.epoch_rows()[-8:])
        single_label_endings += int(last.min() == last.max())
    assert single_label_endings <= 5


@pytest.mark.parametrize("share", [0.05, 0.3])
def test_holdout_rows_partition_is_seeded(share):
    kept, held = holdout_rows(37, share, seed=4)
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(37))
    assert len(held) == max(round(share * 37), 1)
    _, again_held = holdout_rows(37, share, seed=4)
    np.testing.assert_array_equal(held, again_held)
    assert not np.array_equal(held, holdout_rows(37, share, seed=5)[1]) or len(held) == 37


@pytest.mark.parametrize("share", [-0.1, 1.0, 2])
def test_holdout_rows_refuses_bad_shares(share):
    with pytest.raises(ValueError, match="`share` must be a number in"):
        holdout_rows(37, share)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_row_subset_serves_only_its_rows(small_store, shuffle):
    kept, held = holdout_rows(small_store.num_rows("train"), 0.25, seed=0)
    for subset in (kept, held):
        seq = OneHotSequence(
            small_store, "train", 4, targets="sparse", shuffle=shuffle, row_subset=subset
        )
        served = np.concatenate([seq.batch_rows(i) for i in range(len(seq))])
        np.testing.assert_array_equal(np.sort(served), subset)
        ids, _ = seq[0]
        np.testing.assert_array_equal(ids, small_store.read("train", seq.batch_rows(0)))


def test_row_subset_out_of_range_is_refused(small_store):
    with pytest.raises(IndexError, match=r"valid rows are \[0, 37\)"):
        OneHotSequence(small_store, "train", 4, row_subset=[0, 37])


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
