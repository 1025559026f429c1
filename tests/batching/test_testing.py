"""textvae.testing: the small-store factory, the slow references and the batch validator catch
what they must (a validator that passes everything would hide every bug it is used for)."""

from __future__ import annotations

import numpy as np
import pytest

from textvae.batching import BatchLayout, OneHotSequence
from textvae.kernels import onehot
from textvae.testing import (
    assert_batch_matches_store,
    make_store,
    mask_reference,
    next_ids_reference,
    onehot_reference,
)


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path / "s.zarr", rows={"train": 21, "test": 5}, vocab_size=9, seed=3)


def test_make_store_builds_what_it_is_asked(tmp_path, store):
    assert set(store.splits) == {"train", "test"}
    assert (store.num_rows("train"), store.num_rows("test")) == (21, 5)
    assert (store.vocab_size, store.max_len, store.num_classes) == (9, 16, 2)
    ids = store.read("train", slice(None))
    assert ids[ids > 0].min() >= 3 and ids.max() < 9
    lengths = store.lengths("train")
    assert (lengths > 16).any() and (lengths < 16).any(), "some rows truncated, some padded"
    again = make_store(tmp_path / "again.zarr", rows={"train": 21, "test": 5}, vocab_size=9, seed=3)
    np.testing.assert_array_equal(again.read("train", slice(None)), ids)
    unlabelled = make_store(tmp_path / "u.zarr", rows=4, num_classes=None)
    assert not unlabelled.has_labels and list(unlabelled.splits) == ["train"]


def test_references_are_what_they_say(rng):
    ids = rng.integers(0, 7, size=(3, 5))
    np.testing.assert_array_equal(onehot_reference(ids, 7, "uint8"), np.eye(7, dtype="uint8")[ids])
    np.testing.assert_array_equal(onehot(ids, 7), onehot_reference(ids, 7))
    np.testing.assert_array_equal(next_ids_reference([[4, 5, 6]], pad_id=0), [[5, 6, 0]])
    np.testing.assert_array_equal(mask_reference([1, 5], 3, "pre"), [[0, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(mask_reference([1, 5], 3, "post"), [[1, 0, 0], [1, 1, 1]])


def _corrupt(batch, where):
    x, y = batch[0].copy(), {k: v.copy() for k, v in batch[1].items()}
    if where == "ids":
        x[0, -1] = (x[0, -1] + 1) % 9
    elif where == "onehot":
        y["reconstruction"][1, 3] = 0
    elif where == "label":
        y["sentiment"][0, 0] = 1 - y["sentiment"][0, 0]
    elif where == "dtype":
        y["reconstruction"] = y["reconstruction"].astype(np.float16)
    return x, y


@pytest.mark.parametrize("where", ["ids", "onehot", "label", "dtype"])
def test_a_wrong_batch_fails(store, where):
    seq = OneHotSequence(store, "train", 4, seed=1)
    batch, rows = seq[2], seq.batch_rows(2)
    assert_batch_matches_store(seq, batch, rows)
    with pytest.raises(AssertionError):
        assert_batch_matches_store(seq, _corrupt(batch, where), rows)
    with pytest.raises(AssertionError):
        assert_batch_matches_store(seq, batch, seq.batch_rows(1))


def test_a_store_alone_and_rows_found_by_their_ids(store):
    seq = OneHotSequence(store, "train", 5, seed=4)
    batch, rows = seq[1], seq.batch_rows(1)
    assert_batch_matches_store(store, batch, rows)
    assert_batch_matches_store(store.path, batch)  # rows found by their ids
    assert_batch_matches_store(store, batch, rows, positions=(0, -1))
    broken = _corrupt(batch, "onehot")  # row 1 only
    assert_batch_matches_store(store, broken, rows, positions=(0, -1))
    with pytest.raises(AssertionError):
        assert_batch_matches_store(store, broken, rows, positions=(1,))


def test_masks_and_named_layouts(store):
    layout = BatchLayout(
        inputs={"tokens": "ids", "padding": "mask"},
        outputs={"lm": "next_sparse", "label": "classes"},
        sample_weight="mask",
    )
    seq = OneHotSequence(store, "train", 6, **vars(layout))
    x, y, w = seq[0]
    assert_batch_matches_store(seq, (x, y, w), seq.batch_rows(0))
    w = {**w, "lm": w["lm"].copy()}
    w["lm"][0, -2] = 1 - w["lm"][0, -2]
    with pytest.raises(AssertionError, match="weights of 'lm'"):
        assert_batch_matches_store(seq, (x, y, w), seq.batch_rows(0))
