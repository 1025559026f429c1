"""Verify a token store: read every chunk of every array and report the damaged ones.

:func:`verify_store` opens the store (which checks its metadata), lists each array's chunk
files, and decodes every chunk, which checks its crc32c. A chunk is damaged when it fails its
checksum, cannot be decoded, or is missing (a store written with checksums writes every chunk;
in an older store a missing chunk of ``labels`` may be a legitimate run of -1 labels, and is not
reported: :meth:`TokenStore.holes_allowed`, the rule every read follows too). Arrays written
before checksums are listed in ``unchecked``: in them a changed byte that still decodes cannot
be found. ``textvae-verify STORE`` prints the report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textvae.data.format import SPLIT_ARRAYS, has_checksum
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
    n, c = array.shape[0], array.chunks[0]
    damaged = []
    count = 0
    for start in range(0, n, c):
        stop = min(start + c, n)
        count += 1
        key = key_of(start // c)
        if key not in keys:
            # Old stores skipped chunks that were all fill value: only labels can be (all -1).
            if not store.holes_allowed(split, name):
                problem = f"its file {key} is missing"
                damaged.append(DamagedChunk(split, name, start, stop, problem))
        else:
            problem = store.chunk_damage(split, name, start, stop)
            if problem is not None:
                damaged.append(DamagedChunk(split, name, start, stop, problem))
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
        for name in SPLIT_ARRAYS
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
