"""The rows a run trains on and holds out: drawn once, and what the sequences serve."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.config import TrainConfig
from textvae.training.trainer import _train_sequence, _TrainRows, _val_sequence


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
