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

from textvae.errors import (
    InvalidArgumentError,
    StoreAccessError,
    StoreFormatError,
    StoreNotFoundError,
    TextVAEError,
)

__all__ = [
    "StoreLocation",
    "access_error",
    "check_remote",
    "check_storage_options",
    "is_url",
    "local_path",
    "one_line",
    "open_group",
    "read_options",
    "remote_fs",
    "url_options",
]

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

    Examples
    --------
    >>> check_storage_options({"anon": True}, "imdb.zarr", "s3://bucket/imdb.zarr")
    {'anon': True}
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


def url_options(
    path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """``storage_options`` if ``path`` is a URL, else None: the options of whichever of
    several locations is remote (the others are local and take none)."""
    return storage_options if is_url(path) else None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


def remote_fs(path: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path within it (s3fs for ``s3://``)."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(path, **(storage_options or {}))
    except ImportError as err:
        raise ImportError(
            f"{path} needs an fsspec backend that is not installed ({err}): for s3:// URLs "
            "install s3fs (`pip install 'textvae[s3]'`)"
        ) from err


def access_error(path: str, err: BaseException) -> StoreAccessError:
    """The error of object storage refusing access to ``path``."""
    return StoreAccessError(
        f"access to {path} was denied ({one_line(err)}): check the credentials "
        "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE), the endpoint "
        "(AWS_ENDPOINT_URL) and the bucket's permissions"
    )


def check_remote(
    path: str, storage_options: Mapping[str, Any] | None, *, exists: bool = False
) -> bool:
    """Check that the bucket of URL ``path`` exists and is readable; with ``exists``, also
    return whether anything is at ``path`` (else False, saving a listing).

    zarr reports a missing bucket, a missing store and a missing group alike ("no group found"),
    and a denied request as a bare ``PermissionError``: look first, so the errors say which.
    """
    fs, inner = remote_fs(path, storage_options)
    split_path = getattr(fs, "split_path", None)  # object stores (s3fs, gcsfs): bucket + key
    try:
        if split_path is not None:
            bucket = split_path(inner)[0]
            try:
                fs.info(bucket)
            except FileNotFoundError:
                raise StoreNotFoundError(
                    f"bucket {bucket!r} of {path} does not exist: create it (`aws s3 mb "
                    f"s3://{bucket}`), or check the URL and the endpoint (AWS_ENDPOINT_URL or "
                    "--storage-option endpoint_url=...)"
                ) from None
        if not exists:
            return False
        fs.invalidate_cache(inner)  # fsspec caches listings across calls; look afresh
        return bool(fs.exists(inner))
    except PermissionError as err:
        raise access_error(path, err) from err


def read_options(path: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Storage options for reading a URL: for s3, botocore makes one attempt per request (unless
    the caller set ``config_kwargs["retries"]``), so that :mod:`textvae.data.retry` alone decides
    how long a failing read is retried (botocore's own retries are counted, not timed)."""
    options = dict(storage_options or {})
    if path.startswith(("s3://", "s3a://")):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("retries", {"mode": "standard", "total_max_attempts": 1})
        options["config_kwargs"] = config
    return options


def open_group(path: str, storage_options: Mapping[str, Any] | None, retry_s: float) -> Any:
    """The zarr group at ``path``, opened to read (a URL: its bucket checked first, transient
    faults retried for ``retry_s`` seconds); what goes wrong as textvae's errors.

    Raises
    ------
    StoreNotFoundError, StoreAccessError, StoreUnavailableError, StoreFormatError
        No store (or bucket) there; access denied; no answer in time; not a zarr v3 group.
    """
    import zarr  # here, not at import: the configs import this module

    from textvae.data.retry import call_with_retry

    def open_remote(timeout: float | None) -> zarr.Group:
        check_remote(path, storage_options)
        options = dict(storage_options) if storage_options else None
        return zarr.open_group(store=path, mode="r", storage_options=options)

    try:
        if is_url(path):
            return call_with_retry(open_remote, url=path, seconds=retry_s)
        return zarr.open_group(store=path, mode="r")
    except TextVAEError:
        raise
    except PermissionError as err:
        raise access_error(path, err) from err
    except FileNotFoundError as err:
        if not is_url(path):
            raise StoreFormatError(
                f"{path} exists but is not a zarr group: point at a store built by `textvae-ingest`"
            ) from err
        raise StoreNotFoundError(
            f"no token store at {path} ({err}): check the path/URL, or build one with "
            "`textvae-ingest`"
        ) from err
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise StoreFormatError(
            f"{path} is not a zarr v3 group ({type(err).__name__}: {err}): "
            "point at a store built by `textvae-ingest`"
        ) from err
