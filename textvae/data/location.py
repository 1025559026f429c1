"""Where a store lives: a local path or a URL (``s3://...``) and the fsspec options for it.

One rule tells the two apart (:func:`is_url`) and one rule, with one message, refuses storage
options that nothing would use (:func:`check_storage_options`). :class:`StoreLocation` holds a
location parsed once, as zarr-python's ``StorePath`` does, so later code asks it rather than
re-parsing the string.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from textvae.errors import InvalidArgumentError

__all__ = ["StoreLocation", "check_storage_options", "is_url", "local_path"]

_FILE_SCHEME = "file://"


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names remote storage (read through fsspec) rather than a local path.

    The one rule everywhere in textvae: a URL holds ``://`` and is not a ``file://`` URL
    (those are local paths, and :class:`~textvae.data.store.TokenStore` reads them as such).

    Examples
    --------
    >>> is_url("s3://bucket/imdb.zarr"), is_url("file:///tmp/imdb.zarr"), is_url("imdb.zarr")
    (True, False, False)
    """
    path = os.fspath(path)
    return "://" in path and not path.startswith(_FILE_SCHEME)


def local_path(path: str | os.PathLike[str]) -> str:
    """``path`` as textvae uses it: a URL as is, a ``file://`` URL as its local path."""
    path = os.fspath(path)
    return path.removeprefix(_FILE_SCHEME) if path.startswith(_FILE_SCHEME) else path


def check_storage_options(
    storage_options: Mapping[str, Any] | None, *locations: str | os.PathLike[str] | None
) -> dict[str, Any] | None:
    """A copy of ``storage_options`` (None when empty or None), refused unless one of
    ``locations`` is a URL: options for a local path would be silently unused.

    The one place that states this rule; the configs, the commands and the store functions all
    call it, so the message is the same wherever the mistake is made.
    """
    if storage_options is None:
        return None
    if not isinstance(storage_options, Mapping):
        raise InvalidArgumentError(
            "`storage_options` must be a dict or None. "
            f"Received: storage_options={storage_options!r}"
        )
    given = [os.fspath(loc) for loc in locations if loc is not None]
    if storage_options and not any(is_url(loc) for loc in given):
        named = " or ".join(repr(loc) for loc in given) or "no location"
        raise InvalidArgumentError(
            "storage options apply to a URL store (s3://...), not to "
            f"{named}: drop them or use a URL"
        )
    return dict(storage_options) if storage_options else None


@dataclass(frozen=True)
class StoreLocation:
    """A store's location, parsed once: ``path`` (a URL, or a local path without ``file://``)
    and the fsspec ``storage_options`` that go with a URL (None for a local path).

    Examples
    --------
    >>> StoreLocation.parse("file:///tmp/imdb.zarr")
    StoreLocation(path='/tmp/imdb.zarr')
    >>> StoreLocation.parse("s3://bucket/imdb.zarr", {"anon": True}).is_url
    True
    """

    path: str
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(
        cls, path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
    ) -> StoreLocation:
        """The location of ``path``; ``storage_options`` are refused for a local path."""
        if isinstance(path, StoreLocation):
            return path
        return cls(local_path(path), check_storage_options(storage_options, path))

    @property
    def is_url(self) -> bool:
        """Whether the store is remote (read and written through fsspec)."""
        return is_url(self.path)

    def __str__(self) -> str:
        return self.path
