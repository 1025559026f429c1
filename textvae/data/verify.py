"""Verify a token store: read every chunk of every array and report the damaged ones.

:func:`verify_store` opens the store (which checks its metadata), lists each array's chunk
files, and decodes every chunk, which checks its crc32c. A chunk is damaged when it fails its
checksum, cannot be decoded, or is missing (a store written with checksums writes every chunk;
in an older store a missing chunk of ``labels`` may be a legitimate run of -1 labels, and is not
reported: :meth:`TokenStore.holes_allowed`, the rule every read follows too). Arrays written
before checksums are listed in ``unchecked``: in them a changed byte that still decodes cannot
be found. The optional ``groups`` arrays are checked like the others. ``textvae-verify STORE``
prints the report.

A sharded array (zarr v3's sharding codec) is checked chunk by chunk all the same: each chunk
inside a shard keeps its own crc32c, so a damaged one is named with its rows; a missing shard
reports each of its chunks missing, and a chunk absent from its shard's index (which zarr
would read as fill value) is reported too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import StorePath

from textvae.data.chunks import object_rows
from textvae.data.format import GROUPS, SPLIT_ARRAYS, has_checksum
from textvae.data.store import TokenStore
from textvae.progress import ProgressFn

__all__ = ["DamagedChunk", "VerifyReport", "verify_store"]


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


def _check_array(
    store: TokenStore, split: str | None, name: str, progress: ProgressFn | None
) -> tuple[int, list[DamagedChunk], bool]:
    """(chunks checked, damaged chunks, whether the array has checksums)."""
    array = store.zarr_array(split, name)
    checked = has_checksum(array)
    keys, key_of = store.chunk_keys(split, name)
    n, c, per = array.shape[0], array.chunks[0], object_rows(array)
    indexes: dict[str, np.ndarray] = {}  # a sharded array's shard indexes, read once each
    damaged = []
    count = 0
    for start in range(0, n, c):
        stop = min(start + c, n)
        count += 1
        key = key_of(start // per)
        if key not in keys:
            # Old stores skipped chunks that were all fill value: only labels can be (all -1).
            if not store.holes_allowed(split, name):
                problem = f"its file {key} is missing"
                damaged.append(DamagedChunk(split, name, start, stop, problem))
        else:
            problem = store.chunk_damage(split, name, start, stop)
            if problem is None and array.shards is not None:
                if key not in indexes:
                    indexes[key] = _shard_index(array, key, per // c)
                if indexes[key][(start % per) // c] == _ABSENT:
                    problem = f"it is missing from the index of its shard {key}"
            if problem is not None:
                damaged.append(DamagedChunk(split, name, start, stop, problem))
        if progress is not None and split is not None:
            progress(f"verify {split}/{name}", stop)
    return count, damaged, checked


#: A shard index's offset of a chunk it does not hold (zarr v3's sharding codec).
_ABSENT = 2**64 - 1


def _shard_index(array: zarr.Array, key: str, chunks: int) -> np.ndarray:
    """The offset of each of the ``chunks`` chunks of the shard at ``key`` of ``array``, from
    its index (at the shard's end: an (offset, length) pair of little-endian uint64 per chunk,
    then a crc32c; asked only once a chunk of the shard decoded, so the index is intact)."""
    store = array.async_array.store_path.store
    size = 16 * chunks + 4
    path = StorePath(store, key)
    data = sync(path.get(prototype=default_buffer_prototype(), byte_range=SuffixByteRequest(size)))
    pairs = np.frombuffer(data.to_bytes()[:-4], dtype="<u8").reshape(-1, 2)
    return pairs[:, 0]


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
        for name in SPLIT_ARRAYS
        if name != "labels" or store.has_labels
    ]
    arrays += [(split, GROUPS) for split in store.splits if store.has_groups(split)]
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
