"""The token store's format: what a store holds and how it is laid out.

Layout (see DESIGN.md, "The corpus store")::

    <store>/                 attrs["textvae"] = {"format": 2, "vocab_size": V, "max_len": L, ...,
                                                 "num_classes": C or null, "complete": true}
    <store>/vocab            (V,) strings, id -> token
    <store>/<split>/tokens   (N, L) uint16 (uint32 when V > 65,536), chunks of whole rows
    <store>/<split>/labels   (N,) class ids (int8 while C <= 127), -1 unlabelled; absent when
                             the store has no labels (num_classes null)
    <store>/<split>/lengths  (N,) int32: tokens before padding/truncation
    <store>/<split>/groups   (N,) int32, optional: the group of every row (IMDB: the movie it
                             reviews), numbered 0, 1, ... in order of first appearance within
                             the split; written when the corpus names a group per review, and
                             then the attribute "group_by" names the split and what its groups
                             are: {"train": "movie", "test": "movie"}

Format 2 adds ``num_classes`` (null: no labels) and lets a store built from a user's token ids
(:mod:`textvae.data.from_ids`) have its own ``pad_id`` and no start or out-of-vocabulary id
(``start_id`` and ``oov_id`` null). Format-1 stores (always binary labels, textvae's ids) are
read as before. Every chunk of a new store carries a crc32c checksum after zstd.

``groups`` and ``group_by`` are optional and need no new format number: a reader that knows
nothing of them (textvae before them) reads the store as before, and a store without them (every
older one) has no groups (:meth:`~textvae.data.store.TokenStore.groups` is None). Training holds
out whole groups for validation when the train split has them.

:class:`StoreSpec` is the shape of a store to build (vocabulary size, ids per row, padding and
truncation, rows per chunk), a frozen, validated dataclass that
:class:`~textvae.config.IngestConfig` holds and the ``build_store*`` functions take.

zarr is imported only where a codec is made or inspected, so the configs can import this module
without it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textvae._checks import PADDINGS, int_at_least, one_of, positive_int
from textvae.data.vocab import MAX_VOCAB_SIZE, OOV_ID, PAD_ID, START_ID, check_vocab_size
from textvae.errors import InvalidArgumentError

if TYPE_CHECKING:
    import zarr

__all__ = [
    "ARRAY_CONFIG",
    "ATTR",
    "DECODE_ERRORS",
    "DEFAULT_CHUNK_ROWS",
    "FORMAT",
    "GROUPS",
    "GROUP_DTYPE",
    "MAX_CHUNK_BYTES",
    "MAX_CLASSES",
    "READ_FORMATS",
    "REQUIRED_ATTRS",
    "SHARD_ABOVE_ROWS",
    "SPLIT_ARRAYS",
    "TEXTVAE_IDS",
    "ZSTD_LEVEL",
    "StoreSpec",
    "array_codecs",
    "auto_shard_rows",
    "check_chunk_bytes",
    "chunk_problem",
    "compressors",
    "damaged_store_problem",
    "has_checksum",
    "label_dtype",
    "metadata_problem",
    "shard_rows_for",
    "token_dtype",
]

#: The format :func:`~textvae.data.ingest.build_store` writes;
#: :meth:`~textvae.data.store.TokenStore.open` reads every one of :data:`READ_FORMATS`.
FORMAT = 2
READ_FORMATS = (1, 2)
#: The group attribute that holds the store's metadata.
ATTR = "textvae"
#: Attributes every store has (``source`` and ``complete`` aside); format 2 adds ``num_classes``.
REQUIRED_ATTRS = (
    "vocab_size",
    "max_len",
    "pad_id",
    "start_id",
    "oov_id",
    "padding",
    "truncating",
    "splits",
)
#: The reserved ids of a store with textvae's vocabulary (every format-1 store).
TEXTVAE_IDS = {"pad_id": PAD_ID, "start_id": START_ID, "oov_id": OOV_ID}
#: The arrays of each split (``labels`` only in a store with labels).
SPLIT_ARRAYS = ("tokens", "labels", "lengths")
#: The optional array of each split that names every row's group, and its dtype.
GROUPS = "groups"
GROUP_DTYPE = np.dtype(np.int32)
#: Rows per stored chunk (``chunk_rows``). 1024 rows x 300 ids is 600 kB raw, about 150 kB
#: compressed for IMDB.
DEFAULT_CHUNK_ROWS = 1024
#: ``shard_rows=None`` (automatic) shards a store whose train split has more rows than this
#: (1,024 chunks of 1,024 rows): below it every array is about a thousand objects at most
#: already, and sharding slows random reads where requests wait: zarr 3.1 fetches each touched
#: shard's index, then its chunks one after another. A random batch of 64 rows of 262,144 x 300
#: ids (benchmarks/test_bench_shards.py --full: chunks of 1,024, shards of 131,072) took 3.9x as
#: long sharded with 20 ms a request, 2.6x on moto and 1.08x on local disk.
SHARD_ABOVE_ROWS = 1024 * 1024
#: Rows per shard that ``shard_rows=None`` chooses above :data:`SHARD_ABOVE_ROWS`, rounded up to
#: whole chunks: 128 chunks of 1,024 rows, so a billion rows are 7,630 objects per array
#: (about 20-40 MB each at 300 ids a row) where unsharded they would be 976,563.
AUTO_SHARD_ROWS = 128 * 1024
#: The most ids' bytes an automatic shard holds raw: ingest holds a shard's rows in memory
#: (every task of a parallel build is one shard).
AUTO_SHARD_BYTES = 2**28
#: The largest chunk a build writes (``chunk_rows x max_len`` ids), in bytes.
MAX_CHUNK_BYTES = 2**30
#: The largest ``num_classes`` (labels are stored as int32 beyond int8's range).
MAX_CLASSES = 2**31 - 1
#: Measured on IMDB train (25,000 x 300 ids at vocab 20,000, README "Store codec"): zstd level 3
#: gives the smallest store (6.8 MB of 15 MB raw) at the same read speed as the blosc variants.
ZSTD_LEVEL = 3
#: Every chunk is written, even one that is all fill value, so that a missing chunk file is
#: damage (``textvae-verify`` reports it) rather than a legitimate hole.
ARRAY_CONFIG = {"write_empty_chunks": True}
#: What zarr raises for a chunk that fails its crc32c (ValueError: "Stored and computed checksum
#: do not match"), holds bytes zstd cannot decode (RuntimeError: "Zstd decompression error:
#: invalid input data", or "... doesn't match checksum" with zstd's frame checksum) or decodes
#: to the wrong size (ValueError from the reshape).
DECODE_ERRORS = (ValueError, RuntimeError)


def damaged_store_problem(path: Path) -> str | None:
    """Why the local folder ``path`` is a damaged store rather than a corpus or another
    folder: it has no ``zarr.json`` (the store's metadata) at its root but zarr nodes below
    (``train/zarr.json``, ``train/tokens/zarr.json``, ...); else None. A few stats: ask it
    only when ``path`` turned out to be neither a store nor a corpus."""
    if not path.is_dir() or (path / "zarr.json").exists():
        return None
    below = sorted(path.glob("*/zarr.json")) or sorted(path.glob("*/*/zarr.json"))
    if not below:
        return None
    nodes = ", ".join(p.relative_to(path).as_posix() for p in below[:3])
    return (
        f"{path} looks like a damaged token store: it has zarr nodes ({nodes}) but no zarr.json "
        "at its root, which holds the store's metadata: delete the folder and build it again "
        f"with `textvae-ingest SOURCE {path}` (or restore it from a copy)"
    )


def token_dtype(vocab_size: int) -> np.dtype:
    """Dtype of stored ids: uint16, or uint32 when ``vocab_size`` > 65,536."""
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)


def label_dtype(num_classes: int) -> np.dtype:
    """int8 while class ids and -1 fit (every binary store), else int32."""
    return np.dtype(np.int8 if num_classes <= 127 else np.int32)


def check_chunk_bytes(chunk_rows: int, max_len: int, dtype: np.dtype) -> None:
    """Refuse a chunk of ``chunk_rows x max_len`` ids over :data:`MAX_CHUNK_BYTES`."""
    # Ingest holds a chunk in memory (several copies through the codec) and every batch read
    # decompresses whole chunks: the default is 600 kB; a GiB is far beyond any use.
    size = chunk_rows * max_len * dtype.itemsize
    if size > MAX_CHUNK_BYTES:
        raise InvalidArgumentError(
            f"a chunk of `chunk_rows` x `max_len` ids must be at most {MAX_CHUNK_BYTES:,} bytes "
            f"(ingest holds one in memory; every read decompresses whole chunks). Received: "
            f"chunk_rows={chunk_rows}, max_len={max_len} ({size:,} bytes): lower --chunk-rows"
        )


def auto_shard_rows(chunk_rows: int, max_len: int, dtype: np.dtype) -> int:
    """Rows per shard of ``shard_rows=None`` above :data:`SHARD_ABOVE_ROWS`: about
    :data:`AUTO_SHARD_ROWS` in whole chunks, at most :data:`AUTO_SHARD_BYTES` of raw ids (and
    at least one chunk)."""
    chunk_bytes = chunk_rows * max_len * dtype.itemsize
    chunks = min(-(-AUTO_SHARD_ROWS // chunk_rows), AUTO_SHARD_BYTES // chunk_bytes)
    return chunk_rows * max(1, chunks)


def shard_rows_for(spec: StoreSpec, train_rows: int | None) -> int:
    """The rows per shard a build of ``spec`` writes, 0 for none: ``spec.shard_rows`` when
    given, else (automatic) :func:`auto_shard_rows` when the train split is known to hold more
    than :data:`SHARD_ABOVE_ROWS` rows (``train_rows``; None: not known, no shards)."""
    if spec.shard_rows is not None:
        return spec.shard_rows
    if train_rows is None or train_rows <= SHARD_ABOVE_ROWS:
        return 0
    return auto_shard_rows(spec.chunk_rows, spec.max_len, spec.token_dtype)


def compressors() -> list[Any]:
    """The bytes-to-bytes codecs of every array of a new store: zstd, then a crc32c of each
    compressed chunk, checked on every read.

    Measured on IMDB train chunks (README "Checksums"): crc32c costs 15 us a chunk against
    50 us for zstd's own frame checksum (xxhash64 of the decompressed bytes), and it fails on
    any damaged byte, zstd's header included, with one kind of error.
    """
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=ZSTD_LEVEL), Crc32cCodec()]


def array_codecs(array: zarr.Array) -> tuple[str, ...]:
    """Names of the bytes-to-bytes codecs of ``array``, in order (``("zstd", "crc32c")``)."""
    return tuple(type(c).__name__.removesuffix("Codec").lower() for c in array.compressors)


def has_checksum(array: zarr.Array) -> bool:
    """Whether every chunk of ``array`` is checked on read (a crc32c codec, or zstd's frame
    checksum)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return any(
        isinstance(c, Crc32cCodec) or (isinstance(c, ZstdCodec) and c.checksum)
        for c in array.compressors
    )


def chunk_problem(err: BaseException) -> str:
    """What a decode error (one of :data:`DECODE_ERRORS`) says about a chunk, in a few words."""
    text = " ".join(str(err).split())
    if "checksum" in text.lower():
        return "checksum mismatch"
    return f"cannot be decoded: {type(err).__name__}: {text[:120]}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def metadata_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with a store's attributes (``meta``, of a format in
    :data:`READ_FORMATS`), in a few words, or None when they are valid."""
    fmt = meta["format"]
    required = REQUIRED_ATTRS + (("num_classes",) if fmt >= 2 else ())
    for key in required:
        if key not in meta:
            return f"attribute '{key}' is missing from the store's metadata"
    vocab_ok = _is_int(meta["vocab_size"]) and 4 <= meta["vocab_size"] <= MAX_VOCAB_SIZE
    checks = {
        "vocab_size": vocab_ok,
        "max_len": _is_int(meta["max_len"]) and meta["max_len"] >= 1,
        "padding": meta["padding"] in PADDINGS,
        "truncating": meta["truncating"] in PADDINGS,
        "splits": isinstance(meta["splits"], list)
        and len(meta["splits"]) > 0
        and all(isinstance(s, str) and s and "/" not in s for s in meta["splits"])
        and len(set(meta["splits"])) == len(meta["splits"]),
    }
    if fmt == 1 or meta["start_id"] is not None or meta["oov_id"] is not None:
        # textvae's own ids (every format-1 store, and format 2 from texts)
        checks.update({k: _is_int(meta[k]) and meta[k] == v for k, v in TEXTVAE_IDS.items()})
    else:  # format 2 from a user's token ids: its own padding id, no start or OOV id
        checks["pad_id"] = (
            _is_int(meta["pad_id"]) and vocab_ok and 0 <= meta["pad_id"] < meta["vocab_size"]
        )
    if "group_by" in meta:  # absent: no split has groups
        group_by = meta["group_by"]
        checks["group_by"] = (
            isinstance(group_by, dict)
            and isinstance(meta["splits"], list)
            and all(s in meta["splits"] and isinstance(k, str) and k for s, k in group_by.items())
        )
    if "shard_rows" in meta:  # absent: written before shards, none
        checks["shard_rows"] = _is_int(meta["shard_rows"]) and meta["shard_rows"] >= 0
    if fmt >= 2:
        classes = meta["num_classes"]
        checks["num_classes"] = classes is None or (
            _is_int(classes) and 2 <= classes <= MAX_CLASSES
        )
    for key, ok in checks.items():
        if not ok:
            return f"attribute {key}={meta[key]!r} is not valid"
    return None


_SHARD_RULE = "0 stores every chunk as its own object, None chooses by the train split's size"


@dataclass(frozen=True)
class StoreSpec:
    """The shape of a token store to build.

    ``vocab_size`` counts every id, the reserved ones included (as Keras' ``num_words``);
    each review is padded or truncated to ``max_len`` ids, at the start (``"pre"``, Keras'
    ``pad_sequences`` default, which keeps a long review's end) or the end (``"post"``);
    ``chunk_rows`` rows are stored per chunk (the unit of compression and of reading), at most
    :data:`MAX_CHUNK_BYTES` of ids. ``shard_rows`` rows (whole chunks) are stored per object
    with zarr v3's sharding codec, each chunk inside keeping its own crc32c: ``None``
    (automatic) shards a store whose train split is known to hold more than
    :data:`SHARD_ABOVE_ROWS` rows (:func:`shard_rows_for`), ``0`` never shards. The rows per
    shard written are recorded in the store's metadata (``shard_rows``, 0: none).

    Examples
    --------
    >>> StoreSpec(vocab_size=20000, max_len=200).chunk_rows
    1024
    """

    vocab_size: int = 20000
    max_len: int = 300
    padding: str = "pre"
    truncating: str = "pre"
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    shard_rows: int | None = None

    def __post_init__(self) -> None:
        check_vocab_size(self.vocab_size)
        positive_int("max_len", self.max_len)
        positive_int("chunk_rows", self.chunk_rows)
        check_chunk_bytes(self.chunk_rows, self.max_len, self.token_dtype)
        int_at_least("shard_rows", self.shard_rows, 0, allow_none=True, reason=_SHARD_RULE)
        if self.shard_rows and self.shard_rows % self.chunk_rows:
            raise InvalidArgumentError(
                f"`shard_rows` must be a multiple of `chunk_rows` ({self.chunk_rows}): a shard "
                f"holds whole chunks. Received: shard_rows={self.shard_rows}"
            )
        one_of("padding", self.padding, PADDINGS)
        one_of("truncating", self.truncating, PADDINGS)

    @property
    def token_dtype(self) -> np.dtype:
        """Dtype of the stored ids (:func:`token_dtype`)."""
        return token_dtype(self.vocab_size)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data."""
        return dataclasses.asdict(self)
