"""The optional ``groups`` array: a group (IMDB: the movie) per row, from the corpus, kept by
ingest, read and checked by TokenStore, checked by verify; stores without it as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from imdb_like import imdb_like, movie_url, write_records

from textvae.data import StoreSpec, TokenStore, build_store, open_corpus
from textvae.data.corpus import IMDB_METADATA
from textvae.data.verify import verify_store
from textvae.errors import CorpusError, StoreFormatError
from textvae.testing import random_reviews, write_jsonl

SPEC = StoreSpec(vocab_size=12, max_len=16, chunk_rows=8)


def _dense(keys: list) -> np.ndarray:
    """The numbers ingest gives ``keys``: 0, 1, ... in order of first appearance."""
    numbers: dict = {}
    return np.array([numbers.setdefault(k, len(numbers)) for k in keys], dtype=np.int32)


def test_imdb_reviews_are_grouped_by_movie_from_the_url_lists(tmp_path, rng):
    movies = imdb_like(tmp_path / "imdb", rng, {"train": 13, "test": 6})
    corpus = open_corpus(tmp_path / "imdb")
    assert corpus.groups("train") == ("movie", movies["train"])
    store = build_store(tmp_path / "s.zarr", corpus, SPEC)
    assert store.group_by("train") == "movie"
    for split in ("train", "test"):
        assert store.has_groups(split)
        groups = store.groups(split)
        assert groups.dtype == np.int32
        np.testing.assert_array_equal(groups, _dense(movies[split]))
        np.testing.assert_array_equal(store.groups(split, [3, 0]), groups[[3, 0]])
    assert store.attrs["group_by"] == {"train": "movie", "test": "movie"}
    assert TokenStore.open(store.path).has_groups("train")
    assert verify_store(store.path).ok


def test_verify_and_open_check_the_groups(tmp_path, rng):
    imdb_like(tmp_path / "imdb", rng, {"train": 9})
    store = build_store(tmp_path / "s.zarr", open_corpus(tmp_path / "imdb"), SPEC)
    chunk = Path(store.path) / "train" / "groups" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[-6] ^= 0xFF
    chunk.write_bytes(bytes(data))
    report = verify_store(store.path)
    assert [d.name for d in report.damaged] == ["train/groups"]
    shutil.rmtree(Path(store.path) / "train" / "groups")  # the attributes still name it
    with pytest.raises(StoreFormatError, match="the 'groups' array of split 'train' is missing"):
        TokenStore.open(store.path)


def test_an_aclimdb_folder_is_grouped_by_its_own_url_lists(tmp_path, rng):
    root = tmp_path / "aclImdb"
    expected = []
    for sub in ("neg", "pos"):
        folder = root / "train" / sub
        folder.mkdir(parents=True)
        listed = [int(m) for m in rng.integers(1, 4, size=12)]
        (root / "train" / f"urls_{sub}.txt").write_text(
            "".join(movie_url(m) + "\n" for m in listed)
        )
        for i in (0, 2, 10, 11):  # in id order, as the reader reads them (10 after 2)
            (folder / f"{i}_3.txt").write_text("a fine film")
            expected.append(f"tt{listed[i]:07d}")
    store = build_store(tmp_path / "s.zarr", open_corpus(root), SPEC)
    assert store.group_by("train") == "movie"
    np.testing.assert_array_equal(store.groups("train"), _dense(expected))


def test_a_group_field_groups_a_users_jsonl(tmp_path, rng):
    reviews = random_reviews(rng, 20)
    names = ["ann", "bob", 7, "ann", "cy"] * 4
    records = [
        {"text": t, "label": y, "group": g} for (t, y), g in zip(reviews, names, strict=True)
    ]
    path = write_records(tmp_path / "mine_train.jsonl", records)
    store = build_store(tmp_path / "s.zarr", open_corpus(path), SPEC)
    assert store.group_by("train") == "group"
    np.testing.assert_array_equal(store.groups("train"), [0, 1, 2, 0, 3] * 4)


@pytest.mark.parametrize(
    "groups", [["a", None], ["a", True]], ids=["missing-later", "not-a-string"]
)
def test_a_group_field_must_be_given_for_every_review(tmp_path, groups):
    records = [{"text": "good", "label": 1, "group": groups[0]}, {"text": "bad", "label": 0}]
    if groups[1] is not None:
        records[1]["group"] = groups[1]
    path = write_records(tmp_path / "mine_train.jsonl", records)
    with pytest.raises(CorpusError, match=r"mine_train.jsonl:2: `group` is"):
        build_store(tmp_path / "s.zarr", open_corpus(path), SPEC)
    assert not (tmp_path / "s.zarr").exists()


def test_a_corpus_without_groups_gives_a_store_without_them(small_store):
    """As every store built before groups: no array, no attribute, and groups() is None."""
    assert "group_by" not in small_store.attrs
    for split in small_store.splits:
        assert small_store.group_by(split) is None
        assert not small_store.has_groups(split)
        assert small_store.groups(split) is None
        assert "groups" not in zarr.open_group(small_store.path)[split]
    assert verify_store(small_store.path).ok


def test_imdb_jsonl_without_its_metadata_has_no_groups(tmp_path, rng):
    imdb_like(tmp_path / "imdb", rng, {"train": 5})
    (tmp_path / "imdb" / IMDB_METADATA).unlink()
    assert open_corpus(tmp_path / "imdb").groups("train") is None


def test_a_grouped_store_without_its_groups_opens_as_an_old_one(tmp_path, rng):
    """A store of textvae before groups is one without the array and the attribute."""
    imdb_like(tmp_path / "imdb", rng, {"train": 9})
    store = build_store(tmp_path / "s.zarr", open_corpus(tmp_path / "imdb"), SPEC)
    group = zarr.open_group(store.path)
    attrs = dict(group.attrs["textvae"])
    del attrs["group_by"]
    group.attrs["textvae"] = attrs
    shutil.rmtree(Path(store.path) / "train" / "groups")
    old = TokenStore.open(store.path)
    assert old.group_by("train") is None and old.groups("train") is None
    np.testing.assert_array_equal(old.labels("train"), store.labels("train"))
    assert verify_store(store.path).ok


def test_groups_of_the_wrong_dtype_are_damage(tmp_path, rng):
    imdb_like(tmp_path / "imdb", rng, {"train": 9})
    store = build_store(tmp_path / "s.zarr", open_corpus(tmp_path / "imdb"), SPEC)
    group = zarr.open_group(store.path)
    del group["train/groups"]
    group.create_array("train/groups", shape=(18,), dtype="int64")
    with pytest.raises(StoreFormatError, match=r"'train/groups' has shape \(18,\) and dtype int64"):
        TokenStore.open(store.path)


def test_groups_are_the_same_when_workers_ingest(tmp_path, rng):
    imdb_like(tmp_path / "imdb", rng, {"train": 21})
    corpus = open_corpus(tmp_path / "imdb")
    one = build_store(tmp_path / "one.zarr", corpus, SPEC)
    two = build_store(tmp_path / "two.zarr", corpus, SPEC, workers=2)
    np.testing.assert_array_equal(one.groups("train"), two.groups("train"))
    for name in ("zarr.json", "c/0"):
        assert (Path(one.path) / "train/groups" / name).read_bytes() == (
            Path(two.path) / "train/groups" / name
        ).read_bytes()


def test_write_jsonl_corpora_stay_ungrouped(tmp_path, rng):
    """The corpora the other tests write have no group field and no tarball beside them."""
    path = write_jsonl(tmp_path / "x_train.jsonl", random_reviews(rng, 3))
    assert open_corpus(path).groups("train") is None
