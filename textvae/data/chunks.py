"""Chunk keys, and the check under every read of a store that a chunk's file exists.

A sharded array (zarr v3's sharding codec) stores whole chunks in one object per shard: its
keys name shards (:func:`object_rows` rows each), and a missing shard is reported as such.

zarr (3.1) reads a chunk that has no file as the array's fill value, with no option to refuse:
a deleted ``labels`` chunk reads as -1 (unlabelled) and a deleted ``tokens`` chunk as padding.
A textvae store writes every chunk (``write_empty_chunks``), so a missing one is damage.
:func:`checking` puts a group over a :class:`ChunkCheckingStore`, whose ``get`` (which zarr
calls for every chunk a read touches anyway) raises :class:`MissingChunkError` for a chunk key
with no file: no extra request and no per-read work, on local and object stores alike, for every
array, later ones included. :class:`~textvae.data.store.TokenStore` turns it into
:class:`~textvae.errors.StoreCorruptError` naming the array, the chunk and its rows.
"""

from __future__ import annotations

import re
from typing import Any

import zarr
from zarr.storage import StorePath, WrapperStore

__all__ = [
    "CHUNK_KEY",
    "ChunkCheckingStore",
    "MissingChunkError",
    "checking",
    "chunk_key",
    "object_rows",
]


def object_rows(array: zarr.Array) -> int:
    """Rows of ``array`` per stored object: its shard's rows when it is sharded (zarr v3's
    sharding codec: one object holds whole chunks), else its chunk's."""
    return int((array.shards or array.chunks)[0])


def chunk_key(array: zarr.Array, k: int) -> str:
    """The store key of object ``k`` (along the rows) of ``array``: its chunk ``k``, or its
    shard ``k`` when it is sharded (rows ``k * object_rows(array)`` on)."""
    coords = (k,) + (0,) * (array.ndim - 1)
    return f"{array.async_array.store_path.path}/{array.metadata.encode_chunk_key(coords)}"


#: A chunk's key under its array (``train/tokens/c/3/0``, ``vocab/c/0``): zarr v3's default
#: chunk key encoding, which every textvae store uses.
CHUNK_KEY = re.compile(r"^(?P<array>.+)/c(?P<coords>(?:/\d+)+)$")


class MissingChunkError(FileNotFoundError):
    """A chunk that should exist has no file (raised inside zarr's read; a FileNotFoundError so
    that :mod:`textvae.data.retry` does not retry it). :class:`TokenStore` turns it into
    :class:`~textvae.errors.StoreCorruptError`."""

    def __init__(self, key: str) -> None:
        super().__init__(f"chunk {key} is missing")
        self.key = key


class ChunkCheckingStore(WrapperStore[Any]):
    """The store under a :class:`~textvae.data.store.TokenStore`: a chunk with no file raises
    :class:`MissingChunkError` instead of reading as the fill value.

    zarr (3.1) reads a missing chunk as its fill value with no option to refuse; a textvae
    store writes every chunk (``write_empty_chunks``), so a missing one is damage. Checking in
    the store's ``get``, which zarr calls for every chunk a read touches anyway, costs no
    request and nothing per read, and covers every array, later ones included. ``holes``: the
    arrays (``train/labels``) in which a missing chunk is legitimate (written before checksums,
    when all-fill chunks were skipped).
    """

    def __init__(self, store: Any, holes: set[str] | None = None) -> None:
        super().__init__(store)
        self.holes: set[str] = set() if holes is None else holes

    def _with_store(self, store: Any) -> ChunkCheckingStore:
        return type(self)(store, self.holes)

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        value = await self._store.get(key, prototype, byte_range)
        if value is None:
            match = CHUNK_KEY.match(key)
            if match is not None and match["array"] not in self.holes:
                raise MissingChunkError(key)
        return value


def checking(group: zarr.Group) -> zarr.Group:
    """``group`` over a :class:`ChunkCheckingStore` (no request: its metadata is reused)."""
    store_path = group.store_path
    checked = StorePath(ChunkCheckingStore(store_path.store), store_path.path)
    return zarr.Group(zarr.AsyncGroup(metadata=group.metadata, store_path=checked))
