"""Where a store lives: is_url, local paths, StoreLocation, the one storage-options rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from textvae.data import (
    is_url,
)


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
