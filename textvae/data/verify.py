"""Verify a token store: read every chunk of every array and report the damaged ones.

:func:`verify_store` opens the store (which checks its metadata), lists each array's chunk
files, and decodes every chunk, which checks its crc32c. A chunk is damaged when it fails its
checksum, cannot be decoded, or is missing (a store written with checksums writes every chunk;
in an older store a missing chunk of ``labels`` may be a legitimate run of -1 labels, and is not
reported). Arrays written before checksums are listed in ``unchecked``: in them a changed byte
that still decodes cannot be found. ``textvae-verify STORE`` prints the report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zarr

from textvae.data.retry import call_with_retry, run_with_timeout
from textvae.data.store import _DECODE_ERRORS, TokenStore, _chunk_problem, has_checksum
from textvae.progress import ProgressFn

__all__ = ["DamagedChunk", "VerifyReport", "verify_store"]

_SPLIT_ARRAYS = ("tokens", "labels", "lengths")


@dataclass(frozen=True)
class DamagedChunk:
    """One damaged chunk: ``rows`` ``start`` to ``stop - 1`` of ``split/array`` (ids of
    ``vocab`` when ``split`` is None) and what is wrong (``problem``)."""

    split: str | None
    array: str
    start: int
    stop: int
    problem: str

    @property
    def name(self) -> str:
        """``split/array``, or the array's name for ``vocab``."""
        return self.array if self.split is None else f"{self.split}/{self.array}"

    def __str__(self) -> str:
        unit = "ids" if self.split is None else "rows"
        return f"{self.name} {unit} {self.start}-{self.stop - 1}: {self.problem}"


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_store` found.

    Attributes
    ----------
    path
        The store.
    chunks
        Chunks checked (every chunk of every array).
    rows
        Rows of each split.
    damaged
        Each damaged chunk, in store order.
    unchecked
        Arrays written without checksums (``"train/tokens"``, ...): empty for a store of this
        version.
    """

    path: str
    chunks: int
    rows: dict[str, int]
    damaged: tuple[DamagedChunk, ...]
    unchecked: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether no chunk is damaged."""
        return not self.damaged

    def summary(self) -> str:
        """One line: ``ok`` or how many chunks are damaged, with the counts."""
        rows = ", ".join(f"{split} {n:,}" for split, n in self.rows.items())
        if self.ok:
            return f"ok: {self.path}: {self.chunks} chunks checked ({rows} rows), none damaged"
        return (
            f"{self.path}: {len(self.damaged)} of {self.chunks} chunks damaged ({rows} rows): "
            f"rebuild the store with `textvae-ingest SOURCE {self.path} --overwrite`"
        )


def _chunk_keys(store: TokenStore, array: zarr.Array) -> set[str]:
    """The keys of ``array``'s chunk files (one listing)."""
    store_path = array.async_array.store_path

    async def listing() -> set[str]:
        return {key async for key in store_path.store.list_prefix(f"{store_path.path}/")}

    def attempt(timeout: float | None) -> set[str]:
        return run_with_timeout(listing, timeout)

    if not store._remote:
        return attempt(None)
    return call_with_retry(attempt, url=store.path, seconds=store._retry_s)


def _check_array(
    store: TokenStore, split: str | None, name: str, progress: ProgressFn | None
) -> tuple[int, list[DamagedChunk], bool]:
    """(chunks checked, damaged chunks, whether the array has checksums)."""
    array = store._array(split, name)
    checked = has_checksum(array)
    keys = _chunk_keys(store, array)
    prefix = array.async_array.store_path.path
    n, c = array.shape[0], array.chunks[0]
    chunk_rest = (0,) * (array.ndim - 1)
    damaged = []
    count = 0
    for start in range(0, n, c):
        stop = min(start + c, n)
        count += 1
        key = f"{prefix}/{array.metadata.encode_chunk_key((start // c, *chunk_rest))}"
        if key not in keys:
            # Old stores skipped chunks that were all fill value: only labels can be (all -1).
            if checked or name != "labels":
                damaged.append(DamagedChunk(split, name, start, stop, "its file is missing"))
        else:
            try:
                store._get(array, slice(start, stop))
            except _DECODE_ERRORS as err:
                damaged.append(DamagedChunk(split, name, start, stop, _chunk_problem(err)))
        if progress is not None and split is not None:
            progress(f"verify {split}/{name}", stop)
    return count, damaged, checked


def verify_store(
    path: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> VerifyReport:
    """Read every chunk of every array of the store at ``path`` and report the damaged ones.

    Parameters
    ----------
    path
        Local path or URL of a store.
    storage_options
        Passed to fsspec for URLs.
    progress
        Called as ``progress("verify <split>/<array>", rows checked)``.

    Raises
    ------
    TextVAEError
        Whatever :meth:`TokenStore.open` raises (no store, incomplete, not a store, ...).
    """
    store = TokenStore.open(path, storage_options=storage_options)
    arrays: list[tuple[str | None, str]] = [(None, "vocab")]
    arrays += [
        (split, name)
        for split in store.splits
        for name in _SPLIT_ARRAYS
        if name != "labels" or store.has_labels
    ]
    chunks = 0
    damaged: list[DamagedChunk] = []
    unchecked: list[str] = []
    for split, name in arrays:
        count, bad, checked = _check_array(store, split, name, progress)
        chunks += count
        damaged += bad
        if not checked:
            unchecked.append(name if split is None else f"{split}/{name}")
    rows = {split: store.num_rows(split) for split in store.splits}
    return VerifyReport(store.path, chunks, rows, tuple(damaged), tuple(unchecked))
