"""Damaged and missing chunks of a token store: which rows they hold and what is wrong with
them (:class:`ChunkDamage`, a base of :class:`~textvae.data.store.TokenStore`). Reads use it to
name the rows of a chunk that fails, :mod:`textvae.data.verify` to check every chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import zarr

from textvae.data.chunks import CHUNK_KEY, MissingChunkError, chunk_key, object_rows
from textvae.data.format import DECODE_ERRORS, chunk_problem
from textvae.data.retry import run_with_timeout
from textvae.errors import StoreCorruptError

__all__ = ["ChunkDamage"]


class ChunkDamage:
    """The chunk inspection of a store reader. The reader provides ``path``, ``_holes`` (the
    arrays whose chunks may have no file), ``_array(split, name)``, ``_get(array, rows)`` (a
    checked read) and ``_call(attempt)`` (with retries for a URL)."""

    path: str
    _holes: Any

    def _missing(self, array: zarr.Array, key: str) -> tuple[int, int, str]:
        """(first row, end row, problem) of the object at ``key`` of ``array``, missing."""
        match = CHUNK_KEY.match(key)
        n, c = array.shape[0], object_rows(array)
        k = int(match["coords"].split("/")[1]) if match is not None else 0
        return k * c, min((k + 1) * c, n), f"its file {key} is missing"

    def _missing_chunks(
        self, split: str | None, name: str, rows: slice | np.ndarray
    ) -> list[tuple[int, int, str]]:
        """Each object under ``rows`` whose file is missing (asked once a read met one)."""
        array = self._array(split, name)
        c = object_rows(array)
        return [
            self._missing(array, chunk_key(array, int(k)))
            for k in np.unique(np.arange(array.shape[0])[rows] // c)
            if not self._chunk_exists(array, int(k))
        ]

    def _chunk_exists(self, array: zarr.Array, k: int) -> bool:
        """Whether object ``k`` (chunk or shard, along the rows) of ``array`` exists."""
        store = array.async_array.store_path.store
        key = chunk_key(array, k)
        return self._call(lambda timeout: run_with_timeout(lambda: store.exists(key), timeout))

    def zarr_array(self, split: str | None, name: str) -> zarr.Array:
        """The zarr array ``split/name`` (``vocab`` when ``split`` is None), to inspect it."""
        return self._array(split, name)

    def chunk_keys(self, split: str | None, name: str) -> tuple[set[str], Callable[[int], str]]:
        """The keys of the chunk files of ``split/name`` that exist (one listing), and the
        function giving the key of object ``k`` (chunk or shard) along the rows."""
        array = self._array(split, name)
        store_path = array.async_array.store_path

        async def listing() -> set[str]:
            return {key async for key in store_path.store.list_prefix(f"{store_path.path}/")}

        keys = self._call(lambda timeout: run_with_timeout(listing, timeout))
        return keys, lambda k: chunk_key(array, k)

    def chunk_damage(self, split: str | None, name: str, start: int, stop: int) -> str | None:
        """What is wrong with the chunk of ``split/name`` holding rows ``start:stop`` (it fails
        its checksum or cannot be decoded), or None when it reads."""
        array = self._array(split, name)
        try:
            self._get(array, slice(start, stop))
        except MissingChunkError as err:
            return self._missing(array, err.key)[2]
        except DECODE_ERRORS as err:
            return chunk_problem(err)
        return None

    def holes_allowed(self, split: str | None, name: str) -> bool:
        """Whether a chunk of ``split/name`` may legitimately have no file (it then reads as
        fill value): only ``labels`` written before checksums, when all-fill chunks were
        skipped."""
        return split is not None and f"{split}/{name}" in self._holes

    def _damaged_chunks(
        self, split: str | None, name: str, rows: slice | np.ndarray
    ) -> list[tuple[int, int, str]]:
        """(first row, end row, problem) of each chunk under ``rows`` that fails to decode."""
        array = self._array(split, name)
        n, c = array.shape[0], array.chunks[0]
        damage = []
        for k in np.unique(np.arange(n)[rows] // c):
            start, stop = int(k) * c, min((int(k) + 1) * c, n)
            problem = self.chunk_damage(split, name, start, stop)
            if problem is not None:
                damage.append((start, stop, problem))
        return damage

    def _corrupt(
        self, split: str | None, name: str, damage: list[tuple[int, int, str]]
    ) -> StoreCorruptError:
        start, stop, problem = damage[0]
        what = name if split is None else f"{split}/{name}"
        unit = "ids" if split is None else "rows"
        more = f" (and {len(damage) - 1} more damaged chunks)" if len(damage) > 1 else ""
        return StoreCorruptError(
            f"{self.path}: the chunk of {what} holding {unit} {start}-{stop - 1} is damaged "
            f"({problem}){more}: rebuild the store with `textvae-ingest SOURCE {self.path} "
            "--overwrite` (`textvae-verify` lists every damaged chunk)"
        )
