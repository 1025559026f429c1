"""The rows a run trains on and holds out: drawn once, and what the sequences serve."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.config import TrainConfig
from textvae.training.run_data import _train_sequence, _TrainRows, _val_sequence


def test_validation_rows_are_held_out_of_training(small_store):
    config = TrainConfig(vocab_size=12, max_len=16, batch_size=4, val_fraction=0.2, seed=3)
    rows = _TrainRows.of(config, small_store)
    trained = _train_sequence(config, small_store, rows)
    held = _val_sequence(config, small_store, rows)
    served = np.concatenate([trained.batch_rows(i) for i in range(len(trained))])
    validated = np.concatenate([held.batch_rows(i) for i in range(len(held))])
    assert not set(served) & set(validated)
    assert len(served) + len(validated) == small_store.num_rows("train") == 37
    np.testing.assert_array_equal(np.sort(validated), rows.held_out)
    assert len(rows.held_out) == 7  # round(0.2 * 37)
    np.testing.assert_array_equal(np.sort(served), rows.kept)


def test_no_validation_split_without_val_fraction(small_store):
    config = TrainConfig(vocab_size=12, max_len=16, batch_size=4, val_fraction=0.0)
    rows = _TrainRows.of(config, small_store)
    np.testing.assert_array_equal(rows.kept, np.arange(37))
    assert rows.held_out.size == 0
    assert _val_sequence(config, small_store, rows) is None


def test_rows_are_the_same_in_every_draw(small_store):
    config = TrainConfig(vocab_size=12, max_len=16, val_fraction=0.3, seed=5)
    first, again = _TrainRows.of(config, small_store), _TrainRows.of(config, small_store)
    np.testing.assert_array_equal(first.held_out, again.held_out)
    other = _TrainRows.of(config.replace(seed=6), small_store)
    assert not np.array_equal(first.held_out, other.held_out)


@pytest.mark.parametrize(
    ("train_rows", "val_fraction", "shards"),
    [(None, 0.0, 1), (None, 0.2, 1), (None, 0.2, 3), (10, 0.0, 1), (10, 0.2, 4), (100, 0.1, 2)],
)
def test_rows_per_epoch_are_what_the_shards_serve(small_store, train_rows, val_fraction, shards):
    """metrics.json's ``train_rows`` comes from the plan, not from a sequence built to count."""
    config = TrainConfig(
        vocab_size=12, max_len=16, batch_size=4, train_rows=train_rows, val_fraction=val_fraction
    )
    rows = _TrainRows.of(config, small_store)
    sequences = [_train_sequence(config, small_store, rows, i, shards) for i in range(shards)]
    assert rows.per_epoch(shards) == sum(seq.rows_per_shard for seq in sequences)


def test_train_sequence_draws_the_rows_when_not_given(small_store):
    config = TrainConfig(vocab_size=12, max_len=16, batch_size=4, val_fraction=0.2, seed=3)
    given = _train_sequence(config, small_store, _TrainRows.of(config, small_store))
    drawn = _train_sequence(config, small_store)
    np.testing.assert_array_equal(given.batch_rows(0), drawn.batch_rows(0))


@pytest.fixture
def grouped_store(tmp_path, rng):
    """A store of 60 train reviews whose JSONL names a group (6 movies of 4 to 16 reviews)."""
    import json

    from textvae.data import StoreSpec, build_store, open_corpus
    from textvae.testing import random_reviews

    sizes = [4, 16, 8, 12, 10, 10]
    movies = rng.permutation(np.repeat([f"tt{m}" for m in range(6)], sizes))
    path = tmp_path / "grouped_train.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": text, "label": label, "group": str(movie)}) + "\n"
            for (text, label), movie in zip(random_reviews(rng, 60), movies, strict=True)
        )
    )
    return build_store(
        tmp_path / "grouped.zarr", open_corpus(path), StoreSpec(vocab_size=12, max_len=16)
    )


def test_a_grouped_store_holds_out_whole_groups(grouped_store):
    config = TrainConfig(vocab_size=12, max_len=16, batch_size=4, val_fraction=0.2, seed=3)
    rows = _TrainRows.of(config, grouped_store)
    groups = grouped_store.groups("train")
    assert not set(groups[rows.kept]) & set(groups[rows.held_out])
    held_groups = len(np.unique(groups[rows.held_out]))
    assert rows.how == f"grouped by group ({held_groups} group{'' if held_groups == 1 else 's'})"
    assert abs(len(rows.held_out) - 12) <= 8  # 20% of 60, in whole groups of up to 16
    again = _TrainRows.of(config, grouped_store)
    np.testing.assert_array_equal(rows.held_out, again.held_out)
    held = _val_sequence(config, grouped_store, rows)
    validated = np.concatenate([held.batch_rows(i) for i in range(len(held))])
    np.testing.assert_array_equal(np.sort(validated), rows.held_out)


def test_a_store_without_groups_keeps_the_seeded_random_rows(small_store):
    from textvae.batching import holdout_rows

    config = TrainConfig(vocab_size=12, max_len=16, val_fraction=0.2, seed=3)
    rows = _TrainRows.of(config, small_store)
    assert rows.how == "at random"
    np.testing.assert_array_equal(rows.held_out, holdout_rows(37, 0.2, 3)[1])


@pytest.mark.parametrize("window", [None, 5])
def test_unigram_counts_count_the_window_and_one_end_per_row(small_store, window):
    """The counts the softmax starts from: the ids of the decoder's window of each row, and the
    pad id once per row (every row ends: the store keeps each review's end)."""
    from textvae.training.run_data import _unigram_counts

    assert small_store.truncating == "pre"
    rows = np.arange(0, small_store.num_rows("train"), 2)
    counts = _unigram_counts(small_store, rows, window)
    ids = small_store.read("train", rows)
    ids = ids if window is None else ids[:, -window:]
    want = np.bincount(ids.ravel(), minlength=small_store.vocab_size)
    want[0] = len(rows)
    np.testing.assert_array_equal(counts, want)
