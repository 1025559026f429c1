"""resolve_store: --data to an opened store, ingesting a corpus once into the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from textvae.data import (
    StoreSpec,
    build_store,
    is_store,
    open_corpus,
    resolve_store,
)
from textvae.data.resolve import default_store_path
from textvae.errors import (
    StoreMismatchError,
)


def test_is_store(small_store, corpus_dir, tmp_path):
    assert is_store(small_store.path)
    assert is_store(f"file://{small_store.path}")
    assert is_store("s3://bucket/anything")  # remote data is always a store
    assert not is_store(corpus_dir)
    assert not is_store(tmp_path / "missing")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TEXTVAE_CACHE", str(folder))
    return folder


def test_default_store_path(cache, corpus_dir, monkeypatch):
    path = default_store_path(corpus_dir, 12, 16)
    assert path.parent == cache / "stores"
    assert path.name.startswith("corpus-") and path.name.endswith("-v12-l16.zarr")
    assert default_store_path(str(corpus_dir), 12, 16) == path  # str or Path, same store
    assert default_store_path(corpus_dir, 13, 16) != path
    assert default_store_path(corpus_dir.parent / "other", 12, 16) != path
    monkeypatch.delenv("TEXTVAE_CACHE")
    assert default_store_path(corpus_dir, 12, 16).parent == Path.home() / ".cache/textvae/stores"


def test_resolve_store_opens_a_store(small_store, cache):
    logs = []
    store = resolve_store(small_store.path, vocab_size=12, max_len=16, log=logs.append)
    assert store.path == small_store.path
    assert not cache.exists(), "an existing store is opened, nothing is ingested"
    with pytest.raises(StoreMismatchError, match="max_len=16"):
        resolve_store(small_store.path, vocab_size=12, max_len=8)


def test_resolve_store_ingests_once_then_reuses(corpus_dir, cache):
    logs, stages = [], []
    first = resolve_store(
        corpus_dir,
        vocab_size=12,
        max_len=16,
        log=logs.append,
        progress=lambda stage, n: stages.append(stage),
    )
    assert Path(first.path) == default_store_path(corpus_dir, 12, 16)
    assert "ingesting" in logs[-1] and {"vocab", "train", "test"} <= set(stages)
    expected = build_store(
        cache / "ref.zarr", open_corpus(corpus_dir), StoreSpec(vocab_size=12, max_len=16)
    ).read("test", slice(None))
    np.testing.assert_array_equal(first.read("test", slice(None)), expected)
    logs.clear()
    again = resolve_store(corpus_dir, vocab_size=12, max_len=16, log=logs.append)
    assert again.path == first.path and logs[-1].startswith("using the store")


def test_resolve_store_rebuilds_an_interrupted_build(corpus_dir, tmp_path, cache):
    target = tmp_path / "explicit.zarr"
    store = resolve_store(corpus_dir, vocab_size=12, max_len=16, store_path=target, log=print)
    group = zarr.open_group(store.path, mode="r+")
    group.attrs["textvae"] = {**group.attrs["textvae"], "complete": False}
    logs = []
    rebuilt = resolve_store(
        corpus_dir, vocab_size=12, max_len=16, store_path=target, log=logs.append
    )
    assert "interrupted build" in logs[0] and "ingesting" in logs[1]
    assert rebuilt.num_rows("train") == 37
    assert not cache.exists(), "store_path replaces the cache folder"


def test_resolve_store_without_data_finds_imdb(corpus_dir, cache, monkeypatch):
    monkeypatch.setenv("TEXTVAE_IMDB", str(corpus_dir))
    store = resolve_store(None, vocab_size=12, max_len=16, log=lambda line: None)
    assert Path(store.path) == default_store_path(corpus_dir, 12, 16)
    assert store.num_rows("test") == 11


def test_resolve_store_refuses_storage_options_without_url(corpus_dir, small_store, cache):
    for data in (corpus_dir, small_store.path):
        with pytest.raises(ValueError, match="storage options apply to a URL store"):
            resolve_store(data, vocab_size=12, max_len=16, storage_options={"anon": True})
    assert not cache.exists()


def test_a_corpus_that_changed_gets_a_new_store_and_says_so(tmp_path, cache):
    """The cache was keyed on the corpus path alone: a corpus that grew from 100 to 300 reviews
    was answered with "using the store ..." and 100 rows. The key now holds each file's size and
    modification time."""
    from textvae.testing import random_reviews, write_jsonl

    corpus = tmp_path / "grows" / "reviews_train.jsonl"
    write_jsonl(corpus, random_reviews(np.random.default_rng(1), 100))
    logs: list[str] = []
    first = resolve_store(corpus, vocab_size=12, max_len=16, log=logs.append)
    assert first.num_rows("train") == 100
    write_jsonl(corpus, random_reviews(np.random.default_rng(2), 300))
    logs.clear()
    second = resolve_store(corpus, vocab_size=12, max_len=16, log=logs.append)
    assert second.num_rows("train") == 300 and second.path != first.path
    assert any("changed since" in line and first.path in line for line in logs), logs
    logs.clear()
    third = resolve_store(corpus, vocab_size=12, max_len=16, log=logs.append)
    assert third.path == second.path and logs[-1].startswith("using the store")


def test_the_fingerprint_follows_size_and_modification_time(tmp_path):
    import os

    from textvae.data.resolve import corpus_fingerprint

    folder = tmp_path / "corpus"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "a.txt").write_text("one")
    before = corpus_fingerprint(folder)
    assert corpus_fingerprint(folder) == before  # nothing changed
    os.utime(folder / "train" / "a.txt", ns=(1, 10**18))
    touched = corpus_fingerprint(folder)
    assert touched != before
    (folder / "train" / "b.txt").write_text("two")
    assert corpus_fingerprint(folder) != touched  # a file more
    assert corpus_fingerprint(folder / "train" / "a.txt") != corpus_fingerprint(folder)


def test_a_cached_store_without_the_groups_the_corpus_gives_is_ingested_again(tmp_path, cache):
    """A store cached before groups existed (no array, no attribute) is built again once when
    its corpus now names groups (IMDB with its URL lists), then reused."""
    import shutil

    from imdb_like import imdb_like

    imdb_like(tmp_path / "imdb", np.random.default_rng(3), {"train": 9, "test": 4})
    first = resolve_store(tmp_path / "imdb", vocab_size=12, max_len=16, log=lambda line: None)
    assert first.has_groups("train")
    group = zarr.open_group(first.path, mode="r+")  # as textvae before groups wrote it
    group.attrs["textvae"] = {k: v for k, v in group.attrs["textvae"].items() if k != "group_by"}
    for split in ("train", "test"):
        shutil.rmtree(Path(first.path) / split / "groups")
    logs = []
    again = resolve_store(tmp_path / "imdb", vocab_size=12, max_len=16, log=logs.append)
    assert "has no groups, which" in logs[0] and "ingesting" in logs[-1]
    assert again.path == first.path and again.group_by("train") == "movie"
    logs.clear()
    resolve_store(tmp_path / "imdb", vocab_size=12, max_len=16, log=logs.append)
    assert logs[-1].startswith("using the store")


def test_a_cached_store_of_a_corpus_without_groups_is_reused(corpus_dir, cache):
    resolve_store(corpus_dir, vocab_size=12, max_len=16, log=lambda line: None)
    logs = []
    store = resolve_store(corpus_dir, vocab_size=12, max_len=16, log=logs.append)
    assert logs == [f"using the store {store.path} (built from {store.attrs['source']})"]
    assert not store.has_groups("train")
