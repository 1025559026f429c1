"""The token store reader: :class:`TokenStore`, a validated, read-only view of a store.

The layout lives in :mod:`textvae.data.format`, building in :mod:`textvae.data.ingest`. A store
without ``complete`` never opens; a chunk that fails its crc32c, or whose file is missing, raises
:class:`StoreCorruptError` naming its rows on every read of every array (stores written before
checksums read unchecked, and a missing chunk of their ``labels`` reads as -1, unlabelled).
Reads of URLs (``s3://...``) retry transient faults for a bounded time
(:mod:`textvae.data.retry`). Opening a store imports neither the corpus readers nor the ingest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import zarr

from textvae._checks import positive_int
from textvae._compat import deprecated
from textvae.data.chunks import (
    ChunkCheckingStore,
    MissingChunkError,
    checking,
)
from textvae.data.damage import ChunkDamage
from textvae.data.format import (
    ATTR,
    DECODE_ERRORS,
    GROUP_DTYPE,
    GROUPS,
    READ_FORMATS,
    SPLIT_ARRAYS,
    damaged_store_problem,
    has_checksum,
    label_dtype,
    metadata_problem,
    token_dtype,
)
from textvae.data.location import is_url, local_path, one_line, open_group
from textvae.data.location import read_options as remote_read_options
from textvae.data.retry import call_with_retry, run_with_timeout
from textvae.data.retry import retry_seconds as retry_seconds_of
from textvae.data.vocab import PAD_ID, Vocabulary, check_vocab_size
from textvae.errors import (
    IncompleteStoreError,
    InvalidArgumentError,
    StoreFormatError,
    StoreMismatchError,
    StoreNotFoundError,
)

__all__ = ["RowSelection", "TokenStore"]

#: Which rows to read: a slice, or row indices in any order (negative ones count from the end).
RowSelection = slice | Sequence[int] | np.ndarray

T = TypeVar("T")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _builder(path: str, storage_options: Mapping[str, Any] | None) -> str | None:
    from textvae.data.lock import current_builder  # only for an incomplete store's message

    return current_builder(path, storage_options)


class TokenStore(ChunkDamage):
    """A validated, read-only view of a textvae token store.

    Open one with :meth:`TokenStore.open`; build one with :func:`build_store`.
    Row reads go straight to zarr, so memory stays bounded by what is read.
    """

    def __init__(self, group: zarr.Group, path: str, retry_s: float | None = None) -> None:
        self._group = group
        self.path = path
        self.attrs: dict[str, Any] = dict(group.attrs[ATTR])
        self._vocab: Vocabulary | None = None
        self._token_strings: tuple[str, ...] | None = None
        self._arrays: dict[tuple[str | None, str], zarr.Array] = {}
        self._remote = is_url(path)
        self._retry_s = retry_seconds_of(retry_s)
        store = group.store_path.store
        self._holes: set[str] = store.holes if isinstance(store, ChunkCheckingStore) else set()

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
            Passed to fsspec for a URL (endpoint, credentials, ...); not used for a local path
            (a reader may hold a run's options meant for its other location, a URL: the
            builders and :func:`~textvae.data.resolve.resolve_store` refuse unused ones).
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
            Something that is not a textvae store of a format this version reads.
        StoreMismatchError
            A valid store whose vocab_size, max_len or splits are not the expected ones.
        """
        path = local_path(path)
        if not is_url(path) and not Path(path).exists():
            raise StoreNotFoundError(
                f"no token store at {path}: build one with `textvae-ingest SOURCE {path} "
                "--vocab N --max-len L`"
            )
        damaged = None if is_url(path) else damaged_store_problem(Path(path))
        if damaged is not None:  # it lost its root zarr.json: not "not a zarr group"
            raise StoreFormatError(damaged)
        retry_s = retry_seconds_of(retry_seconds)
        storage_options = remote_read_options(path, storage_options) if is_url(path) else None
        group = open_group(path, storage_options, retry_s)
        meta = group.attrs.get(ATTR)
        if not isinstance(meta, dict) or meta.get("format") is None:
            raise StoreFormatError(
                f"{path} is a zarr group but not a textvae store (no '{ATTR}' attributes): "
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
        store = cls(checking(group), path, retry_s)
        store._validate()
        store.check_expected(vocab_size=vocab_size, max_len=max_len, split=split)
        return store

    def _validate(self) -> None:
        """Check the metadata and every array's type, shape and dtype (no data is read)."""
        problem = metadata_problem(self.attrs)
        if problem is not None:
            raise self._damaged(problem)
        vocab = self._node("vocab")
        if vocab.shape != (self.vocab_size,) or np.dtype(vocab.dtype).kind not in "OUT":
            raise self._damaged(
                f"'vocab' has shape {vocab.shape} and dtype {vocab.dtype}, expected "
                f"({self.vocab_size},) strings for vocab_size {self.vocab_size}"
            )
        expected_dtype = token_dtype(self.vocab_size)
        names = SPLIT_ARRAYS if self.has_labels else ("tokens", "lengths")
        labels_dtype = label_dtype(self.num_classes) if self.has_labels else None
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
            if labels_dtype is not None:
                vectors.insert(0, (nodes["labels"], "labels", labels_dtype))
            if labels_dtype is not None and not has_checksum(nodes["labels"]):
                # Written before checksums, when zarr skipped all-fill chunks: a missing chunk
                # of labels was all -1 (unlabelled, as a whole `unsup` split is). Tokens always
                # hold a start id or words, lengths >= 1: their chunks were always written.
                self._holes.add(f"{split}/labels")
            if self.group_by(split) is not None:
                groups = self._node(f"{split}/{GROUPS}", f"the {GROUPS!r} array of split {split!r}")
                self._arrays[(split, GROUPS)] = groups
                vectors.append((groups, GROUPS, GROUP_DTYPE))
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
            raise self._damaged(f"the metadata of {what} is unreadable ({one_line(err)})") from None
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
        return token_dtype(self.vocab_size)

    def num_rows(self, split: str) -> int:
        """Number of reviews in ``split``."""
        self._check_split(split)
        return int(self._array(split, "tokens").shape[0])

    def chunk_rows(self, split: str) -> int:
        """Rows per stored chunk of ``split/tokens`` (the unit of decompression)."""
        self._check_split(split)
        return int(self._array(split, "tokens").chunks[0])

    @property
    def shard_rows(self) -> int:
        """Rows per shard (objects of whole chunks) of every split's arrays; 0: not sharded."""
        return int(self.attrs.get("shard_rows") or 0)

    def group_by(self, split: str) -> str | None:
        """What the groups of ``split``'s rows are (``"movie"`` for IMDB, ``"group"`` for a
        JSONL ``group`` field), or None when the split has none (a corpus that names none, or
        a store built before groups existed)."""
        self._check_split(split)
        value = (self.attrs.get("group_by") or {}).get(split)
        return None if value is None else str(value)

    def has_groups(self, split: str) -> bool:
        """Whether ``split`` has a ``groups`` array (:meth:`groups`)."""
        return self.group_by(split) is not None

    @property
    def token_strings(self) -> tuple[str, ...]:
        """The token of every id (``vocab_size`` strings), for every store; read once, then
        cached. A store built from token ids without a token list holds placeholders
        (``"<id:5>"``). (Not ``tokens``: that is each split's array of ids.)"""
        if self._token_strings is None:
            strings = self._fetch(None, "vocab", slice(None))
            self._token_strings = tuple(str(t) for t in strings)
        return self._token_strings

    @property
    def tokens(self) -> tuple[str, ...]:
        """Deprecated name of :attr:`token_strings`."""
        deprecated("TokenStore.tokens", "TokenStore.token_strings")
        return self.token_strings

    @property
    def vocab(self) -> Vocabulary:
        """The store's :class:`~textvae.data.vocab.Vocabulary`, ``vocab_size`` tokens by id (read
        once, then cached). It is a sequence of tokens: ``store.vocab[i]``, ``list(store.vocab)``.

        Raises
        ------
        InvalidArgumentError
            A store built from a user's token ids has no textvae vocabulary (no ``<start>`` and
            ``<oov>`` ids): use :attr:`token_strings`.
        """
        if self._vocab is None:
            if self.start_id is None:
                raise InvalidArgumentError(
                    f"the store at {self.path} was built from token ids (start_id=None): it has "
                    "no textvae Vocabulary (reserved ids <pad>, <start>, <oov>); read its tokens "
                    "with `store.token_strings`"
                )
            try:
                self._vocab = Vocabulary(self.token_strings)
            except ValueError as err:
                raise StoreFormatError(
                    f"{self.path}: the 'vocab' array is not a textvae vocabulary ({err}): the "
                    "store is damaged, rebuild it with `textvae-ingest`"
                ) from None
        return self._vocab

    # -- rows -------------------------------------------------------------------------------
    def read(self, split: str, rows: RowSelection) -> np.ndarray:
        """Token ids of ``rows`` (a slice or an array of row indices, any order) of ``split``."""
        return self._read(split, "tokens", rows)

    def labels(self, split: str, rows: RowSelection = slice(None)) -> np.ndarray:
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

    def lengths(self, split: str, rows: RowSelection = slice(None)) -> np.ndarray:
        """Review lengths in ids (start id included) before padding/truncation."""
        return self._read(split, "lengths", rows)

    def groups(self, split: str, rows: RowSelection = slice(None)) -> np.ndarray | None:
        """The group of each of ``rows`` of ``split`` (int32, numbered from 0 within the split;
        two rows share a group when their numbers are equal: for IMDB, reviews of one movie,
        :meth:`group_by`), or None when the split has none (:meth:`has_groups`)."""
        if not self.has_groups(split):
            return None
        return self._read(split, GROUPS, rows)

    def _read(self, split: str, name: str, rows: RowSelection) -> np.ndarray:
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
        fails its checksum, cannot be decoded or has no file raises :class:`StoreCorruptError`."""
        array = self._array(split, name)
        try:
            return self._get(array, rows)
        except MissingChunkError as err:
            damage = self._missing_chunks(split, name, rows) or [self._missing(array, err.key)]
            raise self._corrupt(split, name, damage) from None
        except DECODE_ERRORS as err:
            damage = self._damaged_chunks(split, name, rows)
            if not damage:
                raise  # not a chunk's fault: a bug, keep the traceback
            raise self._corrupt(split, name, damage) from err

    def _call(self, attempt: Callable[[float | None], T]) -> T:
        """``attempt(None)`` for a local store; for a URL, retried under the store's deadline."""
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

        return np.asarray(self._call(attempt))

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
