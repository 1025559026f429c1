"""The epoch plan (textvae.batching.sampling): coverage, shards, chunk-aware shuffling keyed on
(seed, epoch), row limits and subsets, the hold-out, and the options that describe them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from textvae.batching import EpochPlan, OneHotSequence, SamplingOptions, ShardOptions
from textvae.batching.sampling import chunk_windows, holdout_groups, holdout_rows
from textvae.data import StoreSpec


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
            drop_remainder=drop_remainder,
            sampling=SamplingOptions(window_chunks=2),
            shards=ShardOptions(shard, num_shards),
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
    seq = OneHotSequence(
        small_store, "train", 6, targets="sparse", sampling=SamplingOptions(window_chunks=1)
    )
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


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_rows_limits_each_epoch(small_store, shuffle):
    seq = OneHotSequence(
        small_store,
        "train",
        4,
        shuffle=shuffle,
        targets="sparse",
        sampling=SamplingOptions(rows=10),
        shards=ShardOptions(shard_index=1, num_shards=2),
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


@pytest.mark.parametrize(("n_chunks", "window"), [(25, 8), (5, 4), (5, 1), (1, 16), (16, 16)])
def test_chunk_windows_are_balanced(n_chunks, window, rng):
    windows = chunk_windows(n_chunks, window, rng)
    sizes = [len(w) for w in windows]
    assert max(sizes) <= window and max(sizes) - min(sizes) <= 1
    assert len(windows) == -(-n_chunks // window)
    assert sorted(np.concatenate(windows).tolist()) == list(range(n_chunks))


def test_sorted_source_gives_mixed_last_batches(tmp_path):
    """17 label-sorted chunks (8 negative, 9 positive), windows of up to 16 chunks: two windows
    of 9 and 8 chunks, not 16 and 1. With a lone last chunk, every epoch would end on a chunk's
    worth of rows of a single label."""
    from textvae.data import build_store
    from textvae.data.discover import open_corpus
    from textvae.testing import write_jsonl

    reviews = [("bad film", 0)] * 64 + [("good film", 1)] * 72
    write_jsonl(tmp_path / "c" / "c_train.jsonl", reviews)
    store = build_store(
        tmp_path / "s.zarr",
        open_corpus(tmp_path / "c"),
        spec=StoreSpec(vocab_size=8, max_len=4, chunk_rows=8),
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
            small_store,
            "train",
            4,
            targets="sparse",
            shuffle=shuffle,
            sampling=SamplingOptions(row_subset=subset),
        )
        served = np.concatenate([seq.batch_rows(i) for i in range(len(seq))])
        np.testing.assert_array_equal(np.sort(served), subset)
        ids, _ = seq[0]
        np.testing.assert_array_equal(ids, small_store.read("train", seq.batch_rows(0)))


def test_row_subset_out_of_range_is_refused(small_store):
    with pytest.raises(IndexError, match=r"valid rows are \[0, 37\)"):
        OneHotSequence(small_store, "train", 4, sampling=SamplingOptions(row_subset=[0, 37]))


def test_the_plan_needs_no_store(small_store):
    """An EpochPlan from the split's row and chunk counts gives the Sequence's rows: counting
    an epoch needs no Sequence."""
    sampling = SamplingOptions(rows=30, window_chunks=2)
    shards = ShardOptions(shard_index=1, num_shards=2)
    seq = OneHotSequence(small_store, "train", 4, seed=7, sampling=sampling, shards=shards)
    plan = EpochPlan(37, 8, 4, seed=7, sampling=sampling, shards=shards)
    assert (
        (plan.rows_per_shard, plan.batches_per_epoch) == (15, 4) == (seq.rows_per_shard, len(seq))
    )
    for epoch in (0, 3):
        np.testing.assert_array_equal(plan.epoch_rows(epoch), seq.epoch_rows(epoch))
    clone = pickle.loads(pickle.dumps(plan))
    np.testing.assert_array_equal(clone.epoch_rows(1), plan.epoch_rows(1))


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: ShardOptions(shard_index=1, num_shards=1), "shard_index"),
        (lambda: ShardOptions(num_shards=0), "num_shards"),
        (lambda: ShardOptions(num_shards=True), "num_shards"),
        (lambda: SamplingOptions(rows=0), "rows"),
        (lambda: SamplingOptions(window_chunks=1.5), "window_chunks"),
        (lambda: SamplingOptions(row_subset=[[1, 2]]), "row_subset"),
        (lambda: SamplingOptions(row_subset=[0.5]), "row_subset"),
        (lambda: EpochPlan(10, 8, 0), "batch_size"),
        (lambda: EpochPlan(10, 8, 4, seed=None), "seed"),
        (lambda: EpochPlan(10, 8, 4, seed=-1), "seed"),
    ],
)
def test_options_are_validated_at_construction(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_options_are_frozen_and_readable():
    options = SamplingOptions(row_subset=np.arange(5))
    with pytest.raises(AttributeError):
        options.rows = 3
    with pytest.raises(ValueError, match="read-only"):
        options.row_subset[0] = 9
    assert repr(options) == "SamplingOptions(rows=None, row_subset=<5 rows>, window_chunks=16)"
    assert ShardOptions(1, 3) == ShardOptions(shard_index=1, num_shards=3)
    assert EpochPlan(10, 8, 4, shuffle=False, seed=None).epoch_rows(0).tolist() == list(range(10))


def test_more_shards_than_rows_is_refused():
    with pytest.raises(ValueError, match="fewer than num_shards=4"):
        EpochPlan(3, 8, 1, shards=ShardOptions(num_shards=4))


def _movie_groups(rng: np.random.Generator, movies: int = 300) -> np.ndarray:
    """A group number per row: movies of 1 to 30 reviews (as IMDB's), rows sorted by label
    rather than by movie, so one movie's rows are scattered."""
    sizes = rng.integers(1, 31, size=movies)
    return rng.permutation(np.repeat(np.arange(movies), sizes))


@pytest.mark.parametrize("share", [0.01, 0.05, 0.3])
@pytest.mark.parametrize("seed", [0, 7])
def test_holdout_groups_never_splits_a_group(rng, share, seed):
    groups = _movie_groups(rng)
    kept, held = holdout_groups(groups, share, seed)
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(groups)))
    assert np.all(np.diff(kept) > 0) and np.all(np.diff(held) > 0)
    assert not set(groups[kept]) & set(groups[held])
    # close to the share: within half of the largest group (30 rows)
    assert abs(len(held) - share * len(groups)) <= 15
    again = holdout_groups(groups, share, seed)[1]
    np.testing.assert_array_equal(held, again)
    assert not np.array_equal(held, holdout_groups(groups, share, seed + 1)[1])


def test_holdout_groups_takes_one_group_at_least_and_never_all():
    groups = np.array([0, 0, 0, 1, 1, 2])
    kept, held = holdout_groups(groups, 0.01, seed=0)
    assert len(np.unique(groups[held])) == 1 and len(kept) >= 1
    np.testing.assert_array_equal(holdout_groups(groups, 0.0)[1], [])
    with pytest.raises(ValueError, match="at least 2 groups"):
        holdout_groups(np.zeros(5, dtype=np.int32), 0.2)
    with pytest.raises(ValueError, match="leaves none to keep"):
        holdout_groups(np.array([0, 0, 0, 0, 1]), 0.99)
    with pytest.raises(ValueError, match="1-D array of integer group numbers"):
        holdout_groups(np.array([0.5, 1.0]), 0.5)
