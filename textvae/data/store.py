"""The token store: padded token ids of a corpus in a chunked zarr v3 group (format 2).

Layout (see DESIGN.md, "The corpus store")::

    <store>/                 attrs["textvae"] = {"format": 2, "vocab_size": V, "max_len": L, ...,
                                                 "num_classes": C or null, "complete": true}
    <store>/vocab            (V,) strings, id -> token
    <store>/<split>/tokens   (N, L) uint16 (uint32 when V > 65,536), chunks of whole rows
    <store>/<split>/labels   (N,) class ids (int8 while C <= 127), -1 unlabelled; absent when
                             the store has no labels (num_classes null)
    <store>/<split>/lengths  (N,) int32: tokens before padding/truncation

Format 2 adds ``num_classes`` (null: no labels) and lets a store built from a user's token ids
(:mod:`textvae.data.sources`) have its own ``pad_id`` and no start or out-of-vocabulary id
(``start_id`` and ``oov_id`` null). Format-1 stores (always binary labels, textvae's ids) are
read as before.

``complete`` is written last: a store whose build was interrupted never opens as valid. Every
chunk of every array carries a crc32c checksum (zarr v3's ``crc32c`` codec after zstd), verified
on every read: a damaged chunk raises :class:`StoreCorruptError` naming its rows. Stores written
before checksums (same format 1) still open and read, unchecked. A build holds the path's lock
(:mod:`textvae.data.lock`); reads of remote stores retry transient faults for a bounded time
(:mod:`textvae.data.retry`).
A store can be a local path or any URL zarr understands through fsspec (``s3://...``); one rule,
:func:`is_url`, tells them apart. :func:`resolve_store` turns what a user passed (a store, a
corpus, or nothing: IMDB) into an opened store, ingesting a corpus once into a cache folder.
This module knows nothing of batches or Keras.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from textvae._checks import PADDINGS, one_of, positive_int
from textvae.data.corpus import Corpus, download_keras_imdb, find_imdb, open_corpus
from textvae.data.format import DEFAULT_CHUNK_ROWS
from textvae.data.location import is_url
from textvae.data.location import local_path as _location
from textvae.data.lock import StoreLock, lock_owner
from textvae.data.parallel_ingest import ParallelWriter, check_workers, parallel_vocabulary
from textvae.data.retry import call_with_retry, is_transient, run_with_timeout
from textvae.data.retry import retry_seconds as retry_seconds_of
from textvae.data.vocab import (
    MAX_VOCAB_SIZE,
    OOV_ID,
    PAD_ID,
    START_ID,
    Vocabulary,
    check_vocab_size,
    pad_row,
)
from textvae.errors import (
    IncompleteStoreError,
    InvalidArgumentError,
    StoreAccessError,
    StoreCorruptError,
    StoreExistsError,
    StoreFormatError,
    StoreMismatchError,
    StoreNotFoundError,
    StoreUnavailableError,
    StoreWriteError,
    TextVAEError,
)
from textvae.progress import ProgressFn

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_CHUNK_ROWS",
    "FORMAT",
    "READ_FORMATS",
    "StoreSource",
    "TokenStore",
    "build_store",
    "default_store_path",
    "is_store",
    "is_url",
    "resolve_store",
]

#: The format :func:`build_store` writes; :meth:`TokenStore.open` reads every one of
#: :data:`READ_FORMATS`.
FORMAT = 2
READ_FORMATS = (1, 2)
#: Measured on IMDB train (25,000 x 300 ids at vocab 20,000, README "Store codec"): zstd level 3
#: gives the smallest store (6.8 MB of 15 MB raw) at the same read speed as the blosc variants.
ZSTD_LEVEL = 3
#: Codecs after zstd on every array of a new store: a crc32c of each compressed chunk, checked on
#: every read. Measured on IMDB train chunks (README "Checksums"): crc32c costs 15 us a chunk
#: against 50 us for zstd's own frame checksum (xxhash64 of the decompressed bytes), and it
#: fails on any damaged byte, zstd's header included, with one kind of error.
CHECKSUM_CODECS = (Crc32cCodec(),)
#: Every chunk is written, even one that is all fill value, so that a missing chunk file is
#: damage (``textvae-verify`` reports it) rather than a legitimate hole.
_ARRAY_CONFIG = {"write_empty_chunks": True}
#: What zarr raises for a chunk that fails its crc32c (ValueError: "Stored and computed checksum
#: do not match"), holds bytes zstd cannot decode (RuntimeError: "Zstd decompression error:
#: invalid input data", or "... doesn't match checksum" with zstd's frame checksum) or decodes
#: to the wrong size (ValueError from the reshape).
_DECODE_ERRORS = (ValueError, RuntimeError)
#: errno values of a full disk, a quota or a file-size limit (RLIMIT_FSIZE gives EFBIG).
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: Environment variable naming the cache folder (default ``~/.cache/textvae``) in whose
#: ``stores/`` :func:`resolve_store` keeps the stores it ingests.
CACHE_ENV_VAR = "TEXTVAE_CACHE"
#: The largest chunk :func:`build_store` writes (``chunk_rows x max_len`` ids), in bytes.
MAX_CHUNK_BYTES = 2**30
_ATTR = "textvae"
_FILE_SCHEME = "file://"

#: Attributes every store has (``source`` and ``complete`` aside); format 2 adds ``num_classes``.
_REQUIRED_ATTRS = (
    "vocab_size",
    "max_len",
    "pad_id",
    "start_id",
    "oov_id",
    "padding",
    "truncating",
    "splits",
)
_IDS = {"pad_id": PAD_ID, "start_id": START_ID, "oov_id": OOV_ID}
_ARRAYS = ("tokens", "labels", "lengths")
#: The largest ``num_classes`` (labels are stored as int32 beyond int8's range).
MAX_CLASSES = 2**31 - 1

Rows = slice | Sequence[int] | np.ndarray
Log = Callable[[str], None]


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a token store rather than a corpus to ingest.

    A URL always does (corpora are read from local files only); a local path does when it is a
    zarr v3 group (a folder holding ``zarr.json``). Whether the store is valid is
    :meth:`TokenStore.open`'s to say.
    """
    if is_url(path):
        return True
    return (Path(_location(path)) / "zarr.json").is_file()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)


def _label_dtype(num_classes: int) -> np.dtype:
    """int8 while class ids and -1 fit (every binary store), else int32."""
    return np.dtype(np.int8 if num_classes <= 127 else np.int32)


class StoreSource(Protocol):
    """What :func:`build_store` reads: a :class:`~textvae.data.corpus.Corpus`, or a source of
    :mod:`textvae.data.sources` (users' token ids or texts).

    ``vocabulary`` returns an object with ``size``, ``padded(vocab_size).tokens`` and the
    special ids ``pad_id``, ``start_id``, ``oov_id`` (None: the ids have none), as
    :class:`~textvae.data.vocab.Vocabulary` has; ``encoded`` yields ``(ids, label)`` of every row of
    a split in order, ids in ``[0, vocab_size)``, label a class id, -1 (unlabelled) or None
    when ``num_classes`` is None (no labels).
    """

    source: str
    splits: tuple[str, ...]
    num_classes: int | None

    def vocabulary(self, vocab_size: int, progress: ProgressFn | None = None) -> Any: ...

    def encoded(self, split: str, vocab: Any) -> Iterator[tuple[Sequence[int], int | None]]: ...


def _chunk_problem(err: BaseException) -> str:
    """What a decode error says about a chunk, in a few words."""
    text = " ".join(str(err).split())
    if "checksum" in text.lower():
        return "checksum mismatch"
    return f"cannot be decoded: {type(err).__name__}: {text[:120]}"


def array_codecs(array: zarr.Array) -> tuple[str, ...]:
    """Names of the bytes-to-bytes codecs of ``array``, in order (``("zstd", "crc32c")``)."""
    return tuple(type(c).__name__.removesuffix("Codec").lower() for c in array.compressors)


def has_checksum(array: zarr.Array) -> bool:
    """Whether every chunk of ``array`` is checked on read (a crc32c codec, or zstd's frame
    checksum)."""
    return any(
        isinstance(c, Crc32cCodec) or (isinstance(c, ZstdCodec) and c.checksum)
        for c in array.compressors
    )


def _check_chunk_bytes(chunk_rows: int, max_len: int, dtype: np.dtype) -> None:
    # Ingest holds a chunk in memory (several copies through the codec) and every batch read
    # decompresses whole chunks: the default is 600 kB; a GiB is far beyond any use.
    size = chunk_rows * max_len * dtype.itemsize
    if size > MAX_CHUNK_BYTES:
        raise InvalidArgumentError(
            f"a chunk of `chunk_rows` x `max_len` ids must be at most {MAX_CHUNK_BYTES:,} bytes "
            f"(ingest holds one in memory; every read decompresses whole chunks). Received: "
            f"chunk_rows={chunk_rows}, max_len={max_len} ({size:,} bytes): lower --chunk-rows"
        )


class TokenStore:
    """A validated, read-only view of a textvae token store.

    Open one with :meth:`TokenStore.open`; build one with :func:`build_store`.
    Row reads go straight to zarr, so memory stays bounded by what is read.
    """

    def __init__(self, group: zarr.Group, path: str, retry_s: float | None = None) -> None:
        self._group = group
        self.path = path
        self.attrs: dict[str, Any] = dict(group.attrs[_ATTR])
        self._vocab: Vocabulary | None = None
        self._tokens: tuple[str, ...] | None = None
        self._arrays: dict[tuple[str | None, str], zarr.Array] = {}
        self._remote = is_url(path)
        self._retry_s = retry_seconds_of(retry_s)

    # -- opening and validation -------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        vocab_size: int | None = None,
        max_len: int | None = None,
        split: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        retry_seconds: float | None = None,
    ) -> TokenStore:
        """Open and validate a store.

        Parameters
        ----------
        path
            Local path or fsspec URL (``s3://bucket/imdb.zarr``).
        vocab_size, max_len, split
            What the caller expects; a store that differs raises :class:`StoreMismatchError`.
        storage_options
            Passed to fsspec for URLs (endpoint, credentials, ...).
        retry_seconds
            For URLs: how long opening and each read retry transient faults (connection
            refused or reset, timeouts) before :class:`StoreUnavailableError`; default
            ``$TEXTVAE_RETRY_SECONDS``, else 60 (:mod:`textvae.data.retry`).

        Raises
        ------
        StoreNotFoundError
            Nothing at ``path`` (or, for a URL, no such bucket).
        StoreAccessError
            Object storage refused access (credentials, permissions).
        StoreUnavailableError
            Object storage did not answer within the retry time.
        IncompleteStoreError
            The build never finished (no ``complete`` flag).
        StoreFormatError
            Something that is not a textvae format-1 store.
        StoreMismatchError
            A valid store whose vocab_size, max_len or splits are not the expected ones.
        """
        path = _location(path)
        if not is_url(path) and not Path(path).exists():
            raise StoreNotFoundError(
                f"no token store at {path}: build one with `textvae-ingest SOURCE {path} "
                "--vocab N --max-len L`"
            )
        retry_s = retry_seconds_of(retry_seconds)
        if is_url(path):
            storage_options = _read_options(path, storage_options)
        try:
            if is_url(path):
                group = call_with_retry(
                    lambda _: _open_remote(path, storage_options), url=path, seconds=retry_s
                )
            else:
                group = zarr.open_group(store=path, mode="r")
        except TextVAEError:
            raise
        except PermissionError as err:
            raise _access_error(path, err) from err
        except FileNotFoundError as err:
            if not is_url(path):
                raise StoreFormatError(
                    f"{path} exists but is not a zarr group: point at a store built by "
                    "`textvae-ingest`"
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
        meta = group.attrs.get(_ATTR)
        if not isinstance(meta, dict) or meta.get("format") is None:
            raise StoreFormatError(
                f"{path} is a zarr group but not a textvae store (no '{_ATTR}' attributes): "
                "point at a store built by `textvae-ingest`"
            )
        if not _is_int(meta.get("format")) or meta.get("format") not in READ_FORMATS:
            readable = " and ".join(str(f) for f in READ_FORMATS)
            raise StoreFormatError(
                f"{path} is textvae store format {meta.get('format')!r}; this version reads "
                f"formats {readable}: rebuild it with this version's `textvae-ingest`"
            )
        if meta.get("complete") is not True:
            builder = _builder(path, storage_options)
            if builder is not None:
                raise IncompleteStoreError(
                    f"{path} is still being built ({builder}): wait for that ingest to finish"
                )
            raise IncompleteStoreError(
                f"{path} is an incomplete store (its build was interrupted or failed): delete it "
                "and run `textvae-ingest` again, or run it with --overwrite"
            )
        store = cls(group, path, retry_s)
        store._validate()
        store.check_expected(vocab_size=vocab_size, max_len=max_len, split=split)
        return store

    def _validate(self) -> None:
        """Check the metadata and every array's type, shape and dtype (no data is read)."""
        meta = self.attrs
        required = _REQUIRED_ATTRS + (("num_classes",) if self.format >= 2 else ())
        for key in required:
            if key not in meta:
                raise self._damaged(f"attribute '{key}' is missing from the store's metadata")
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
        if self.format == 1 or meta["start_id"] is not None or meta["oov_id"] is not None:
            # textvae's own ids (every format-1 store, and format 2 from texts)
            checks.update({k: _is_int(meta[k]) and meta[k] == v for k, v in _IDS.items()})
        else:  # format 2 from a user's token ids: its own padding id, no start or OOV id
            checks["pad_id"] = (
                _is_int(meta["pad_id"]) and vocab_ok and 0 <= meta["pad_id"] < meta["vocab_size"]
            )
        if self.format >= 2:
            classes = meta["num_classes"]
            checks["num_classes"] = classes is None or (
                _is_int(classes) and 2 <= classes <= MAX_CLASSES
            )
        for key, ok in checks.items():
            if not ok:
                raise self._damaged(f"attribute {key}={meta[key]!r} is not valid")
        vocab = self._node("vocab")
        if vocab.shape != (self.vocab_size,) or np.dtype(vocab.dtype).kind not in "OUT":
            raise self._damaged(
                f"'vocab' has shape {vocab.shape} and dtype {vocab.dtype}, expected "
                f"({self.vocab_size},) strings for vocab_size {self.vocab_size}"
            )
        expected_dtype = _token_dtype(self.vocab_size)
        names = _ARRAYS if self.has_labels else ("tokens", "lengths")
        label_dtype = _label_dtype(self.num_classes) if self.has_labels else None
        for split in self.splits:
            nodes = {
                name: self._node(f"{split}/{name}", f"the {name!r} array of split {split!r}")
                for name in names
            }
            self._arrays.update({(split, name): node for name, node in nodes.items()})
            tokens, lengths = nodes["tokens"], nodes["lengths"]
            n = tokens.shape[0]
            if tokens.ndim != 2 or tokens.shape[1] != self.max_len:
                raise self._damaged(
                    f"'{split}/tokens' has shape {tokens.shape}, expected (N, {self.max_len})"
                )
            if np.dtype(tokens.dtype) != expected_dtype:
                raise self._damaged(
                    f"'{split}/tokens' has dtype {tokens.dtype}, expected {expected_dtype} for "
                    f"vocab_size {self.vocab_size}"
                )
            if tokens.chunks[1] != self.max_len:
                raise self._damaged(
                    f"'{split}/tokens' chunks {tokens.chunks} do not hold whole rows"
                )
            vectors = [(lengths, "lengths", np.int32)]
            if label_dtype is not None:
                vectors.insert(0, (nodes["labels"], "labels", label_dtype))
            for array, name, dtype in vectors:
                if array.shape != (n,) or np.dtype(array.dtype) != dtype:
                    raise self._damaged(
                        f"'{split}/{name}' has shape {array.shape} and dtype {array.dtype}, "
                        f"expected ({n},) {np.dtype(dtype)} for {n} token rows"
                    )

    def _node(self, key: str, what: str | None = None) -> zarr.Array:
        """The array at ``key``; a missing, damaged or non-array node is a StoreFormatError."""
        what = what or f"the {key!r} array"
        try:
            node = self._group[key]
        except KeyError:
            raise self._damaged(f"{what} is missing") from None
        except (ValueError, TypeError, OSError) as err:  # unreadable metadata (zarr.json)
            raise self._damaged(
                f"the metadata of {what} is unreadable ({_one_line(err)})"
            ) from None
        if not isinstance(node, zarr.Array):
            raise self._damaged(f"{what} is a {type(node).__name__}, not an array")
        return node

    def _damaged(self, what: str) -> StoreFormatError:
        return StoreFormatError(
            f"{self.path} is damaged: {what}: rebuild it with `textvae-ingest ... --overwrite`"
        )

    def check_expected(
        self,
        *,
        vocab_size: int | None = None,
        max_len: int | None = None,
        split: str | None = None,
    ) -> None:
        """Raise :class:`StoreMismatchError` unless the store has what the caller expects."""
        if vocab_size is not None:
            check_vocab_size(vocab_size)
        positive_int("max_len", max_len, allow_none=True)
        if vocab_size is not None and vocab_size != self.vocab_size:
            raise StoreMismatchError(
                f"the store at {self.path} was built with vocab_size={self.vocab_size}, but "
                f"vocab_size={vocab_size} was asked: use --vocab {self.vocab_size}, or build "
                f"another store with `textvae-ingest SOURCE STORE --vocab {vocab_size}`"
            )
        if max_len is not None and max_len != self.max_len:
            raise StoreMismatchError(
                f"the store at {self.path} was built with max_len={self.max_len}, but "
                f"max_len={max_len} was asked: use --max-len {self.max_len}, or build another "
                f"store with `textvae-ingest SOURCE STORE --max-len {max_len}`"
            )
        if split is not None:
            self._check_split(split)

    def _check_split(self, split: str) -> None:
        if not isinstance(split, str) or split not in self.splits:
            raise StoreMismatchError(
                f"the store at {self.path} has no split {split!r}; it has {list(self.splits)}"
            )

    def _array(self, split: str | None, name: str) -> zarr.Array:
        """``split/name``, or the top-level array ``name`` when ``split`` is None (``vocab``)."""
        key = (split, name)
        if key not in self._arrays:
            self._arrays[key] = self._group[name if split is None else f"{split}/{name}"]
        return self._arrays[key]

    # -- metadata ---------------------------------------------------------------------------
    @property
    def format(self) -> int:
        """The store's format number (1 or 2; :data:`READ_FORMATS`)."""
        return int(self.attrs["format"])

    @property
    def num_classes(self) -> int | None:
        """Number of label classes: None for a store without labels; 2 for binary labels and
        for every format-1 store."""
        if self.format == 1:
            return 2
        classes = self.attrs["num_classes"]
        return None if classes is None else int(classes)

    @property
    def has_labels(self) -> bool:
        """Whether the store keeps a label per row (``num_classes`` is not None)."""
        return self.num_classes is not None

    @property
    def pad_id(self) -> int:
        """The id of padding (0 unless a store built from token ids chose another)."""
        return int(self.attrs.get("pad_id", PAD_ID))

    @property
    def start_id(self) -> int | None:
        """The id that starts every row (1), or None for a store built from token ids."""
        value = self.attrs.get("start_id")
        return None if value is None else int(value)

    @property
    def oov_id(self) -> int | None:
        """The out-of-vocabulary id (2), or None for a store built from token ids."""
        value = self.attrs.get("oov_id")
        return None if value is None else int(value)

    @property
    def vocab_size(self) -> int:
        """Number of token ids, reserved ones included (Keras' ``num_words``)."""
        return int(self.attrs["vocab_size"])

    @property
    def max_len(self) -> int:
        """Row length: every review is padded or truncated to this many ids."""
        return int(self.attrs["max_len"])

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names in build order (``train`` first)."""
        return tuple(self.attrs["splits"])

    @property
    def padding(self) -> str:
        """Where the padding of a short review went: ``"pre"`` or ``"post"``."""
        return str(self.attrs["padding"])

    @property
    def truncating(self) -> str:
        """Which end of a long review was cut: ``"pre"`` or ``"post"``."""
        return str(self.attrs["truncating"])

    @property
    def token_dtype(self) -> np.dtype:
        """Dtype of the stored ids: uint16, or uint32 when ``vocab_size`` > 65,536."""
        return _token_dtype(self.vocab_size)

    def num_rows(self, split: str) -> int:
        """Number of reviews in ``split``."""
        self._check_split(split)
        return int(self._array(split, "tokens").shape[0])

    def chunk_rows(self, split: str) -> int:
        """Rows per stored chunk of ``split/tokens`` (the unit of decompression)."""
        self._check_split(split)
        return int(self._array(split, "tokens").chunks[0])

    @property
    def tokens(self) -> tuple[str, ...]:
        """The token of every id (``vocab_size`` strings), for every store; read once, then
        cached. A store built from token ids without a token list holds placeholders
        (``"<id:5>"``)."""
        if self._tokens is None:
            self._tokens = tuple(str(t) for t in self._fetch(None, "vocab", slice(None)))
        return self._tokens

    @property
    def vocab(self) -> Vocabulary:
        """The store's :class:`~textvae.data.vocab.Vocabulary`, ``vocab_size`` tokens by id (read
        once, then cached). It is a sequence of tokens: ``store.vocab[i]``, ``list(store.vocab)``.

        Raises
        ------
        InvalidArgumentError
            A store built from a user's token ids has no textvae vocabulary (no ``<start>`` and
            ``<oov>`` ids): use :attr:`tokens`.
        """
        if self._vocab is None:
            if self.start_id is None:
                raise InvalidArgumentError(
                    f"the store at {self.path} was built from token ids (start_id=None): it has "
                    "no textvae Vocabulary (reserved ids <pad>, <start>, <oov>); read its tokens "
                    "with `store.tokens`"
                )
            tokens = self.tokens
            try:
                self._vocab = Vocabulary(tokens)
            except ValueError as err:
                raise StoreFormatError(
                    f"{self.path}: the 'vocab' array is not a textvae vocabulary ({err}): the "
                    "store is damaged, rebuild it with `textvae-ingest`"
                ) from None
        return self._vocab

    # -- rows -------------------------------------------------------------------------------
    def read(self, split: str, rows: Rows) -> np.ndarray:
        """Token ids of ``rows`` (a slice or an array of row indices, any order) of ``split``."""
        return self._read(split, "tokens", rows)

    def labels(self, split: str, rows: Rows = slice(None)) -> np.ndarray:
        """Class ids of ``rows`` (binary: 1 positive, 0 negative), -1 for an unlabelled row;
        int8 (int32 beyond 127 classes).

        Raises
        ------
        InvalidArgumentError
            The store has no labels (:attr:`has_labels` is false).
        """
        if not self.has_labels:
            self._check_split(split)
            raise InvalidArgumentError(
                f"the store at {self.path} has no labels (it was built without them, "
                "num_classes=None): build it with `labels=` and `num_classes=`, or use it "
                "without a label output"
            )
        return self._read(split, "labels", rows)

    def lengths(self, split: str, rows: Rows = slice(None)) -> np.ndarray:
        """Review lengths in ids (start id included) before padding/truncation."""
        return self._read(split, "lengths", rows)

    def _read(self, split: str, name: str, rows: Rows) -> np.ndarray:
        known = isinstance(split, str) and split in self.splits  # not `in` on an array
        array = self._array(split, name) if known else None
        if array is None:
            self._check_split(split)
        n = array.shape[0]
        if isinstance(rows, slice):
            return self._fetch(split, name, rows)
        index = np.asarray(rows)
        if index.dtype.kind not in "iu" or index.ndim != 1:
            raise TypeError(
                f"rows must be a slice or a 1-D integer array; received {index.dtype} "
                f"array of shape {index.shape}"
            )
        if index.size == 0:
            return np.empty((0, *array.shape[1:]), dtype=array.dtype)
        index = index.astype(np.int64, copy=False)
        if index.min() < -n or index.max() >= n:
            bad = index[(index < -n) | (index >= n)][0]
            raise IndexError(
                f"row {bad} is out of range for split {split!r}: valid rows are [0, {n})"
            )
        index = np.where(index < 0, index + n, index)
        # zarr wants sorted unique indices for an efficient orthogonal read; put order back after.
        unique, inverse = np.unique(index, return_inverse=True)
        return self._fetch(split, name, unique)[inverse]

    def _fetch(self, split: str | None, name: str, rows: slice | np.ndarray) -> np.ndarray:
        """Rows ``rows`` (a slice, or sorted unique indices) of an array, checked: a chunk that
        fails its checksum or cannot be decoded raises :class:`StoreCorruptError`."""
        array = self._array(split, name)
        try:
            data = self._get(array, rows)
        except _DECODE_ERRORS as err:
            damage = self._damaged_chunks(array, rows)
            if not damage:
                raise  # not a chunk's fault: a bug, keep the traceback
            raise self._corrupt(split, name, damage) from err
        if name == "tokens" and data.size:
            # Every review keeps its start id or its words, so a row that is all padding is
            # suspect (in a store of a user's ids an empty row is legitimate, but rare): zarr
            # reads a chunk whose file is missing as fill value. Checked on the
            # row's edge (O(rows)); the file's existence is asked only then.
            edge = data[:, -1] if self.padding == "pre" else data[:, 0]
            empty = np.flatnonzero(edge == self.pad_id)
            if empty.size:
                c = array.chunks[0]
                suspects = np.unique(np.arange(array.shape[0])[rows][empty] // c)
                damage = [
                    (int(k) * c, min((int(k) + 1) * c, array.shape[0]), "its file is missing")
                    for k in suspects
                    if not self._chunk_exists(array, int(k))
                ]
                if damage:
                    raise self._corrupt(split, name, damage)
        return data

    def _chunk_exists(self, array: zarr.Array, k: int) -> bool:
        """Whether the file of chunk ``k`` (along the rows) of ``array`` exists."""
        store_path = array.async_array.store_path
        coords = (k,) + (0,) * (array.ndim - 1)
        key = f"{store_path.path}/{array.metadata.encode_chunk_key(coords)}"

        def attempt(timeout: float | None) -> bool:
            return run_with_timeout(lambda: store_path.store.exists(key), timeout)

        if not self._remote:
            return attempt(None)
        return call_with_retry(attempt, url=self.path, seconds=self._retry_s)

    def _get(self, array: zarr.Array, rows: slice | np.ndarray) -> np.ndarray:
        if not self._remote:
            if isinstance(rows, slice):
                return np.asarray(array[rows])
            return np.asarray(array.get_orthogonal_selection((rows,)))
        # Remote: zarr's async API, so that each attempt can be cut off at the deadline.
        async_array = array.async_array

        def attempt(timeout: float | None) -> np.ndarray:
            if isinstance(rows, slice):
                return run_with_timeout(lambda: async_array.getitem(rows), timeout)
            return run_with_timeout(lambda: async_array.get_orthogonal_selection((rows,)), timeout)

        return np.asarray(call_with_retry(attempt, url=self.path, seconds=self._retry_s))

    def _damaged_chunks(
        self, array: zarr.Array, rows: slice | np.ndarray
    ) -> list[tuple[int, int, str]]:
        """(first row, end row, problem) of each chunk under ``rows`` that fails to decode."""
        n, c = array.shape[0], array.chunks[0]
        damage = []
        for k in np.unique(np.arange(n)[rows] // c):
            start, stop = int(k) * c, min((int(k) + 1) * c, n)
            try:
                self._get(array, slice(start, stop))
            except _DECODE_ERRORS as err:
                damage.append((start, stop, _chunk_problem(err)))
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

    def __repr__(self) -> str:
        rows = ", ".join(f"{s}={self.num_rows(s)}" for s in self.splits)
        return (
            f"TokenStore({self.path!r}, vocab_size={self.vocab_size}, max_len={self.max_len}, "
            f"{rows})"
        )

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            "TokenStore holds an open zarr group and does not pickle: pass its path "
            "(store.path) and open it in the other process"
        )


def _remote_fs(path: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path within it (s3fs for ``s3://``)."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(path, **(storage_options or {}))
    except ImportError as err:
        raise ImportError(
            f"{path} needs an fsspec backend that is not installed ({err}): for s3:// URLs "
            "install s3fs (`pip install 'textvae[s3]'`)"
        ) from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _access_error(path: str, err: BaseException) -> StoreAccessError:
    return StoreAccessError(
        f"access to {path} was denied ({_one_line(err)}): check the credentials "
        "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE), the endpoint "
        "(AWS_ENDPOINT_URL) and the bucket's permissions"
    )


def _check_remote(
    path: str, storage_options: Mapping[str, Any] | None, *, exists: bool = False
) -> bool:
    """Check that the bucket of URL ``path`` exists and is readable; with ``exists``, also
    return whether anything is at ``path`` (else False, saving a listing).

    zarr reports a missing bucket, a missing store and a missing group alike ("no group found"),
    and a denied request as a bare ``PermissionError``: look first, so the errors say which.
    """
    fs, inner = _remote_fs(path, storage_options)
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
        raise _access_error(path, err) from err


def _read_options(path: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Storage options for reading a URL: for s3, botocore makes one attempt per request (unless
    the caller set ``config_kwargs["retries"]``), so that :mod:`textvae.data.retry` alone decides
    how long a failing read is retried (botocore's own retries are counted, not timed)."""
    options = dict(storage_options or {})
    if path.startswith(("s3://", "s3a://")):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("retries", {"mode": "standard", "total_max_attempts": 1})
        options["config_kwargs"] = config
    return options


def _open_remote(path: str, storage_options: Mapping[str, Any] | None) -> zarr.Group:
    _check_remote(path, storage_options)
    return zarr.open_group(store=path, mode="r", storage_options=_opts(path, storage_options))


def _builder(path: str, storage_options: Mapping[str, Any] | None) -> str | None:
    """Who is building the store at ``path`` now (its lock's owner, unless known to be gone)."""
    try:
        fs, inner = _remote_fs(path, storage_options) if is_url(path) else (None, None)
        owner = lock_owner(path, fs, inner)
    except Exception:  # only a hint for the message: never in the way of the real error
        return None
    if owner is None or owner.is_alive() is False:
        return None
    return str(owner)


def _lock(path: str, storage_options: Mapping[str, Any] | None, log: Log) -> StoreLock:
    if not is_url(path):
        return StoreLock(path, log=log)
    fs, inner = _remote_fs(path, storage_options)
    return StoreLock(path, fs=fs, inner=inner, log=log)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _write_error(path: str, reason: str) -> StoreWriteError:
    return StoreWriteError(
        f"cannot write the store at {path} ({reason}): choose a STORE path inside a folder "
        "you can write to"
    )


def _check_writable(path: str) -> None:
    """Refuse a local store path that cannot be created, without creating anything.

    The nearest existing ancestor of ``path`` must be a folder we may write into (zarr creates
    the folders below it).
    """
    ancestor = Path(path).absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise _write_error(path, f"{ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise _write_error(path, f"no permission to write in {ancestor}")


def _replaceable(path: Path) -> bool:
    """Whether ``--overwrite`` may delete the local ``path``: a zarr group (a store, perhaps an
    interrupted one) or an empty folder, never a user's file or folder of files."""
    return path.is_dir() and ((path / "zarr.json").is_file() or not any(path.iterdir()))


def _opts(path: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if storage_options and not is_url(path):
        raise InvalidArgumentError(
            f"storage_options apply to URLs (s3://...), not to the local path {path!r}"
        )
    return dict(storage_options) if storage_options else None


def build_store(
    path: str | os.PathLike[str],
    corpus: Corpus | StoreSource,
    *,
    vocab_size: int,
    max_len: int,
    padding: str = "pre",
    truncating: str = "pre",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Log | None = None,
    workers: int | None = 1,
) -> TokenStore:
    """Build a token store (format 2) from ``corpus``, streaming, and return it opened.

    The vocabulary comes from the training split only. Rows keep source order. Padding and
    truncation follow ``keras.utils.pad_sequences`` (``"pre"`` keeps the end of a long review).
    ``complete`` is written last; if the build fails or is interrupted (Ctrl-C), a local store
    it created is removed, and any store left behind (remote) is refused by :meth:`TokenStore.open`.
    Every chunk carries a crc32c checksum. The build holds the lock ``<path>.lock``
    (:class:`~textvae.data.lock.StoreLock`) from before it looks at ``path`` until it ends.

    Parameters
    ----------
    path
        Local path (``file://`` URLs included) or fsspec URL (``s3://bucket/imdb.zarr``).
    corpus
        The reviews, e.g. from :func:`~textvae.data.corpus.open_corpus` (or any
        :class:`StoreSource`: :mod:`textvae.data.sources` builds stores from users' ids and texts).
    vocab_size, max_len
        Ids in the vocabulary (reserved ones included, >= 4) and ids per row.
    padding, truncating
        ``"pre"`` or ``"post"``, as in ``keras.utils.pad_sequences``.
    chunk_rows
        Rows per stored chunk (the unit of compression and of reading).
    progress
        A :data:`~textvae.progress.ProgressFn`, called as work advances: stage ``"vocab"``
        while counting words, then the split name while encoding its rows (count = rows done).
    overwrite
        Replace the store at ``path``. Without it an existing path raises StoreExistsError
        (for a URL: any object under the ``path/`` prefix); a local path that is neither a
        zarr group nor an empty folder is never deleted (StoreExistsError).
    storage_options
        Passed to fsspec for URLs (``endpoint_url``, ``key``/``secret``, ...); s3fs also reads
        the usual ``AWS_*`` environment variables, ``AWS_ENDPOINT_URL`` included.
    log
        Called with a line when the lock of a build that is gone is taken over (default: the
        line goes to stderr).
    workers
        Processes that ingest (``None``: all cores). With more than 1, workers count the words
        and encode and write chunks while this process reads the corpus
        (:mod:`textvae.data.parallel_ingest`); the store is byte for byte the one ``workers=1``
        (the plain in-process build) writes.

    Raises
    ------
    StoreLockedError
        Another build of ``path`` is running (its pid, host and start time are named).
    StoreExistsError
        Something is at ``path`` and ``overwrite`` is false.
    StoreNotFoundError
        The bucket of an ``s3://`` URL does not exist.
    StoreAccessError
        Object storage refused access (credentials, permissions).
    StoreWriteError
        A local ``path`` cannot be created (a parent is a file, or a folder without write
        permission), or the disk filled during the build (the partial store is removed).
    StoreUnavailableError
        Object storage stopped answering during the build.
    ValueError
        An argument out of range (see :mod:`textvae._checks` for the wording).
    """
    path = _location(path)
    vocab_size = check_vocab_size(vocab_size)
    max_len = positive_int("max_len", max_len)
    chunk_rows = positive_int("chunk_rows", chunk_rows)
    _check_chunk_bytes(chunk_rows, max_len, _token_dtype(vocab_size))
    one_of("padding", padding, PADDINGS)
    one_of("truncating", truncating, PADDINGS)
    workers = check_workers(workers)
    local = not is_url(path)
    _opts(path, storage_options)  # refuse storage options for a local path before any work
    if local:
        _check_writable(path)  # before counting words: that can take minutes
    else:
        _check_remote(path, storage_options)  # a missing bucket: one clear error, no lock
    with _lock(path, storage_options, log if log is not None else _stderr):
        _build_locked(
            path,
            corpus,
            vocab_size=vocab_size,
            max_len=max_len,
            padding=padding,
            truncating=truncating,
            chunk_rows=chunk_rows,
            overwrite=overwrite,
            progress=progress,
            storage_options=storage_options,
            workers=workers,
        )
    return TokenStore.open(path, storage_options=storage_options)


def _build_locked(
    path: str,
    corpus: Corpus | StoreSource,
    *,
    vocab_size: int,
    max_len: int,
    padding: str,
    truncating: str,
    chunk_rows: int,
    overwrite: bool,
    progress: ProgressFn | None,
    storage_options: Mapping[str, Any] | None,
    workers: int = 1,
) -> None:
    local = not is_url(path)
    existed = Path(path).exists() if local else _check_remote(path, storage_options, exists=True)
    if existed and not overwrite:
        raise StoreExistsError(
            f"{path} already exists: choose another path, delete it, or pass --overwrite"
        )
    if existed and local and not _replaceable(Path(path)):
        raise StoreExistsError(
            f"{path} exists and is not a token store: --overwrite replaces only a store or an "
            "empty folder; choose another path, or delete it yourself"
        )

    if workers == 1:
        vocab = corpus.vocabulary(vocab_size, progress=progress)
    else:
        # counting tasks of two chunks: 2,048 reviews by default, and several in a small test
        vocab = parallel_vocabulary(
            corpus, vocab_size, workers, progress, batch_rows=2 * chunk_rows
        )
    if vocab.size > vocab_size:
        raise InvalidArgumentError(
            f"corpus vocabulary has {vocab.size} ids, more than vocab_size={vocab_size}"
        )

    if existed and local:  # zarr's mode "w" clears a URL's keys itself
        shutil.rmtree(path) if Path(path).is_dir() else Path(path).unlink()
    try:
        try:
            group = zarr.open_group(
                store=path, mode="w", storage_options=_opts(path, storage_options), zarr_format=3
            )
        except OSError as err:
            if local and not isinstance(err, StoreWriteError):
                raise _write_error(path, _one_line(err)) from err
            raise
        meta = {
            "format": FORMAT,
            "vocab_size": vocab_size,
            "max_len": max_len,
            "pad_id": vocab.pad_id,
            "start_id": vocab.start_id,
            "oov_id": vocab.oov_id,
            "padding": padding,
            "truncating": truncating,
            "splits": list(corpus.splits),
            "source": corpus.source,
            "num_classes": corpus.num_classes,
            "complete": False,
        }
        group.attrs[_ATTR] = meta
        vocab_array = group.create_array(
            "vocab",
            shape=(vocab_size,),
            dtype=str,
            chunks=(vocab_size,),
            compressors=_compressors(),
            config=_ARRAY_CONFIG,
        )
        vocab_array[:] = np.array(vocab.padded(vocab_size).tokens, dtype=object)
        writer = (
            ParallelWriter(
                corpus,
                vocab,
                workers=workers,
                path=path,
                storage_options=_opts(path, storage_options),
                array_config=_ARRAY_CONFIG,
                max_len=max_len,
                padding=padding,
                truncating=truncating,
                chunk_rows=chunk_rows,
            )
            if workers > 1
            else contextlib.nullcontext()
        )
        with writer:  # on an error, stops the workers before the cleanup below
            for split in corpus.splits:
                _write_split(
                    group,
                    split,
                    corpus,
                    vocab,
                    vocab_size,
                    max_len,
                    padding,
                    truncating,
                    chunk_rows,
                    progress,
                    writer if workers > 1 else None,
                )
        group.attrs[_ATTR] = {**meta, "complete": True}
    except BaseException as err:
        if local and Path(path).exists():
            shutil.rmtree(path, ignore_errors=True)
        if isinstance(err, PermissionError) and not local:
            raise _access_error(path, err) from err
        if local and isinstance(err, OSError) and err.errno in _DISK_FULL:
            raise StoreWriteError(
                f"cannot write the store at {path} ({_one_line(err)}): the disk is full or a "
                "size limit was reached; the partial store was removed: free space or choose "
                "another STORE path, and run `textvae-ingest` again"
            ) from err
        if not local and isinstance(err, Exception) and is_transient(err):
            raise StoreUnavailableError(
                f"lost {path} during the build ({type(err).__name__}: {_one_line(err)}): the "
                "partial store is refused on open; when the storage answers again, run "
                "`textvae-ingest` again with --overwrite"
            ) from err
        raise


def _compressors() -> list[Any]:
    return [ZstdCodec(level=ZSTD_LEVEL), *CHECKSUM_CODECS]


def _write_split(
    group: zarr.Group,
    split: str,
    corpus: Corpus | StoreSource,
    vocab: Vocabulary,
    vocab_size: int,
    max_len: int,
    padding: str,
    truncating: str,
    chunk_rows: int,
    progress: ProgressFn | None,
    parallel: ParallelWriter | None = None,
) -> None:
    dtype = _token_dtype(vocab_size)
    pad_id = vocab.pad_id
    has_labels = corpus.num_classes is not None
    label_dtype = _label_dtype(corpus.num_classes) if has_labels else np.dtype(np.int8)
    compressors = _compressors()
    tokens = group.create_array(
        f"{split}/tokens",
        shape=(0, max_len),
        dtype=dtype,
        chunks=(chunk_rows, max_len),
        compressors=compressors,
        fill_value=pad_id,
        config=_ARRAY_CONFIG,
    )
    labels = None
    if has_labels:
        labels = group.create_array(
            f"{split}/labels",
            shape=(0,),
            dtype=label_dtype,
            chunks=(chunk_rows * 16,),
            compressors=compressors,
            fill_value=-1,
            config=_ARRAY_CONFIG,
        )
    lengths = group.create_array(
        f"{split}/lengths",
        shape=(0,),
        dtype=np.int32,
        chunks=(chunk_rows * 16,),
        compressors=compressors,
        fill_value=0,
        config=_ARRAY_CONFIG,
    )
    if parallel is not None:
        parallel.write_split(split, tokens, labels, lengths, progress)
        return
    block = np.full((chunk_rows, max_len), pad_id, dtype=dtype)
    block_labels = np.empty(chunk_rows, dtype=label_dtype)
    block_lengths = np.empty(chunk_rows, dtype=np.int32)
    n_rows = 0
    filled = 0

    def flush() -> None:
        nonlocal n_rows, filled
        end = n_rows + filled
        tokens.resize((end, max_len))
        lengths.resize((end,))
        tokens[n_rows:end] = block[:filled]
        lengths[n_rows:end] = block_lengths[:filled]
        if labels is not None:
            labels.resize((end,))
            labels[n_rows:end] = block_labels[:filled]
        n_rows = end
        filled = 0
        block.fill(pad_id)
        if progress is not None:
            progress(split, n_rows)

    for ids, label in corpus.encoded(split, vocab):
        pad_row(ids, max_len, padding, truncating, block[filled])
        if labels is not None:
            block_labels[filled] = label
        block_lengths[filled] = len(ids)
        filled += 1
        if filled == chunk_rows:
            flush()
    if filled:
        flush()


# --------------------------------------------------------------------------------------------
# From what a user passes to an opened store


def _cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "textvae")


def default_store_path(source: str | os.PathLike[str], vocab_size: int, max_len: int) -> Path:
    """Where :func:`resolve_store` keeps the store it ingests from the corpus ``source``.

    ``$TEXTVAE_CACHE/stores/<name>-<hash of the absolute path>-v<vocab_size>-l<max_len>.zarr``
    (the cache defaults to ``~/.cache/textvae``), so the same corpus at the same sizes is
    ingested once and reused.
    """
    resolved = str(Path(source).resolve())
    digest = hashlib.sha1(resolved.encode()).hexdigest()[:8]
    name = Path(resolved).name.split(".")[0] or "corpus"
    return _cache_dir() / "stores" / f"{name}-{digest}-v{vocab_size}-l{max_len}.zarr"


def resolve_store(
    data: str | os.PathLike[str] | None,
    *,
    vocab_size: int,
    max_len: int,
    store_path: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Log = print,
    progress: ProgressFn | None = None,
) -> TokenStore:
    """Open the store ``data`` names, or ingest the corpus ``data`` names (once) and open that.

    Parameters
    ----------
    data
        A token store (a URL, or a local zarr group: see :func:`is_store`), a corpus source
        (anything :func:`~textvae.data.corpus.open_corpus` reads), or ``None``: IMDB, found locally
        (:func:`~textvae.data.corpus.find_imdb`) or downloaded through ``keras.datasets`` (which
        fails with a clear message offline).
    vocab_size, max_len
        What the store must have; an existing store built otherwise raises
        :class:`~textvae.errors.StoreMismatchError`.
    store_path
        Where to keep the store ingested from a corpus (a local path or a URL); default
        :func:`default_store_path`. A complete store there is reused, an interrupted build
        there is built again. Ignored when ``data`` is a store.
    storage_options
        Passed to fsspec for whichever of ``data`` / ``store_path`` is a URL.
    log
        Called with one line for each decision (reuse, ingest, download).
    progress
        Passed to :func:`build_store` when a corpus is ingested.

    Raises
    ------
    ValueError
        ``storage_options`` given, but neither ``data`` nor ``store_path`` is a URL.
    TextVAEError
        Whatever :meth:`TokenStore.open`, :func:`build_store` and
        :func:`~textvae.data.corpus.open_corpus` raise.
    """
    expected = {"vocab_size": vocab_size, "max_len": max_len}
    remote = [os.fspath(p) for p in (data, store_path) if p is not None and is_url(p)]
    if storage_options and not remote:
        raise InvalidArgumentError(
            "storage_options apply to a URL store (s3://...); neither the data "
            f"({data!r}) nor the store path ({store_path!r}) is one"
        )
    if data is not None and is_store(data):
        data = _location(data)
        return TokenStore.open(data, storage_options=_url_opts(data, storage_options), **expected)
    if data is None:
        found = find_imdb()
        if found is None:
            log("IMDB not found locally: downloading it through keras.datasets")
            found = download_keras_imdb()
        source = str(found)
    else:
        source = _location(data)
    target = (
        _location(store_path)
        if store_path is not None
        else str(default_store_path(source, vocab_size, max_len))
    )
    opts = _url_opts(target, storage_options)
    interrupted = False
    try:
        store = TokenStore.open(target, storage_options=opts, **expected)
    except StoreNotFoundError:
        pass  # nothing there yet (a missing bucket is reported again by build_store)
    except IncompleteStoreError:
        if _builder(target, opts) is not None:
            raise  # another process is building it: its message says who
        interrupted = True
        log(f"{target} is an interrupted build: building it again")
    else:
        log(f"using the store {target} (built from {store.attrs.get('source')})")
        return store
    corpus = open_corpus(source)  # a missing or unknown corpus is reported before "ingesting"
    log(f"ingesting {source} into {target} (once; later runs reuse it)")
    return build_store(
        target,
        corpus,
        overwrite=interrupted,
        progress=progress,
        storage_options=opts,
        log=log,
        **expected,
    )


def _url_opts(path: str, storage_options: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return storage_options if is_url(path) else None
