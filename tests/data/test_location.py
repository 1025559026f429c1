"""Where a store lives: is_url, local paths, StoreLocation, the one storage-options rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from textvae.data import StoreLocation, StoreSpec, build_store, is_url, open_corpus, resolve_store
from textvae.data.location import check_storage_options, local_path, url_options
from textvae.errors import InvalidArgumentError

#: The one message of the one rule, wherever the mistake is made.
UNUSED_OPTIONS = r"storage options apply to a URL store \(s3://\.\.\.\), not to "


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("s3://bucket/imdb.zarr", True),
        ("gcs://bucket/x", True),
        ("memory://x", True),
        ("file:///tmp/imdb.zarr", False),
        ("/tmp/imdb.zarr", False),
        ("imdb.zarr", False),
        (Path("s3:/bucket/x"), False),
    ],
    ids=["s3", "gcs", "memory", "file-url", "absolute", "relative", "pathlib"],
)
def test_is_url_one_rule(path, expected):
    assert is_url(path) is expected


def test_local_path_drops_only_the_file_scheme():
    assert local_path("file:///tmp/a.zarr") == "/tmp/a.zarr"
    assert local_path(Path("a.zarr")) == "a.zarr"
    assert local_path("s3://b/a.zarr") == "s3://b/a.zarr"


def test_check_storage_options_copies_or_refuses():
    options = {"anon": True}
    copied = check_storage_options(options, "imdb.zarr", "s3://b/x.zarr")
    assert copied == options and copied is not options
    assert check_storage_options(None, "imdb.zarr") is None
    assert check_storage_options({}, "imdb.zarr") is None  # empty: nothing to leave unused
    with pytest.raises(InvalidArgumentError, match=UNUSED_OPTIONS + r"'a\.zarr' or 'b\.zarr'"):
        check_storage_options(options, "a.zarr", None, Path("b.zarr"))
    with pytest.raises(InvalidArgumentError, match=UNUSED_OPTIONS + "no location"):
        check_storage_options(options)
    with pytest.raises(InvalidArgumentError, match="`storage_options` must be a dict or None"):
        check_storage_options([("anon", True)], "s3://b/x.zarr")


def test_one_message_from_every_entry_point(tmp_path, corpus_dir, small_store):
    # The configs and the commands call check_storage_options too (helper h-cli's tests).
    options = {"anon": True}
    target = tmp_path / "s.zarr"
    calls = {
        "StoreLocation.parse": lambda: StoreLocation.parse(target, options),
        "build_store": lambda: build_store(
            target, open_corpus(corpus_dir), StoreSpec(12, 8), storage_options=options
        ),
        "resolve_store (a store)": lambda: resolve_store(
            small_store.path, vocab_size=12, max_len=16, storage_options=options
        ),
        "resolve_store (a corpus)": lambda: resolve_store(
            corpus_dir, vocab_size=12, max_len=8, store_path=target, storage_options=options
        ),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidArgumentError, match=UNUSED_OPTIONS) as info:
            call()
        assert "drop them or use a URL" in str(info.value), name
    assert not target.exists()


def test_store_location_is_parsed_once():
    local = StoreLocation.parse("file:///tmp/imdb.zarr")
    assert local == StoreLocation("/tmp/imdb.zarr") and str(local) == "/tmp/imdb.zarr"
    assert not local.is_url and local.storage_options is None
    remote = StoreLocation.parse("s3://bucket/imdb.zarr", {"anon": True})
    assert remote.is_url and remote.storage_options == {"anon": True}
    assert StoreLocation.parse(remote) is remote  # already parsed: kept as is
    assert StoreLocation.parse("s3://bucket/imdb.zarr", {}).storage_options is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        remote.path = "elsewhere"  # type: ignore[misc]


def test_url_options_go_to_the_url_only():
    options = {"anon": True}
    assert url_options("s3://b/x.zarr", options) is options
    assert url_options("x.zarr", options) is None
