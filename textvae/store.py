"""The token store: padded token ids of a corpus in a chunked zarr v3 group (format 1).

Layout (see DESIGN.md, "The corpus store")::

    <store>/                 attrs["textvae"] = {"format": 1, "vocab_size": V, "max_len": L, ...,
                                                 "complete": true}
    <store>/vocab            (V,) strings, id -> token
    <store>/<split>/tokens   (N, L) uint16 (uint32 when V > 65,536), chunks of whole rows
    <store>/<split>/labels   (N,) int8: 1 positive, 0 negative, -1 unlabelled
    <store>/<split>/lengths  (N,) int32: tokens before padding/truncation

``complete`` is written last: a store whose build was interrupted never opens as valid.
A store can be a local path or any URL zarr understands through fsspec (``s3://...``).
This module knows nothing of batches or Keras.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from textvae.corpus import OOV_ID, PAD_ID, START_ID, Corpus, Vocabulary
from textvae.errors import (
    IncompleteStoreError,
    StoreAccessError,
    StoreExistsError,
    StoreFormatError,
    StoreMismatchError,
    StoreNotFoundError,
)

__all__ = ["DEFAULT_CHUNK_ROWS", "FORMAT", "TokenStore", "build_store", "pad_row"]

FORMAT = 1
#: Rows per chunk. 1024 rows x 300 ids is 600 kB raw, about 150 kB compressed for IMDB.
DEFAULT_CHUNK_ROWS = 1024
#: Measured on IMDB train (25,000 x 300 ids at vocab 20,000, README "Store codec"): zstd level 3
#: gives the smallest store (6.8 MB of 15 MB raw) at the same read speed as the blosc variants.
ZSTD_LEVEL = 3
#: Filler for vocabulary ids that the corpus never used (fewer distinct words than vocab_size).
UNUSED_TOKEN = "<unused:{id}>"
_ATTR = "textvae"
_PADDING = ("pre", "post")

ProgressFn = Callable[[str, int], None]
Rows = slice | Sequence[int] | np.ndarray


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)


class TokenStore:
    """A validated, read-only view of a textvae token store.

    Open one with :meth:`TokenStore.open`; build one with :func:`build_store`.
    Row reads go straight to zarr, so memory stays bounded by what is read.
    """

    def __init__(self, group: zarr.Group, path: str) -> None:
        self._group = group
        self.path = path
        self.attrs: dict[str, Any] = dict(group.attrs[_ATTR])
        self._vocab: tuple[str, ...] | None = None
        self._arrays: dict[tuple[str, str], zarr.Array] = {}

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

        Raises
        ------
        StoreNotFoundError
            Nothing at ``path`` (or, for a URL, no such bucket).
        StoreAccessError
            Object storage refused access (credentials, permissions).
        IncompleteStoreError
            The build never finished (no ``complete`` flag).
        StoreFormatError
            Something that is not a textvae format-1 store.
        StoreMismatchError
            A valid store whose vocab_size, max_len or splits are not the expected ones.
        """
        path = os.fspath(path)
        if not _is_url(path) and not Path(path).exists():
            raise StoreNotFoundError(
                f"no token store at {path}: build one with `textvae-ingest SOURCE {path} "
                "--vocab N --max-len L`"
            )
        if _is_url(path):
            _check_remote(path, storage_options)
        try:
            group = zarr.open_group(
                store=path, mode="r", storage_options=_opts(path, storage_options)
            )
        except PermissionError as err:
            raise _access_error(path, err) from err
        except FileNotFoundError as err:
            if not _is_url(path):
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
        if meta.get("format") != FORMAT:
            raise StoreFormatError(
                f"{path} is textvae store format {meta.get('format')!r}; this version reads "
                f"format {FORMAT}: rebuild it with this version's `textvae-ingest`"
            )
        if meta.get("complete") is not True:
            raise IncompleteStoreError(
                f"{path} is an incomplete store (its build was interrupted or failed): delete it "
                "and run `textvae-ingest` again, or run it with --overwrite"
            )
        store = cls(group, path)
        store._validate()
        store.check_expected(vocab_size=vocab_size, max_len=max_len, split=split)
        return store

    def _validate(self) -> None:
        for key in ("vocab_size", "max_len", "splits", "padding", "truncating"):
            if key not in self.attrs:
                raise StoreFormatError(
                    f"{self.path}: attribute '{key}' is missing from the store's metadata: "
                    "rebuild it with `textvae-ingest`"
                )
        try:
            vocab = self._group["vocab"]
        except KeyError:
            raise StoreFormatError(
                f"{self.path}: the 'vocab' array is missing: rebuild it with `textvae-ingest`"
            ) from None
        if vocab.shape != (self.vocab_size,):
            raise StoreFormatError(
                f"{self.path}: 'vocab' has shape {vocab.shape} but vocab_size is "
                f"{self.vocab_size}: the store is damaged, rebuild it with `textvae-ingest`"
            )
        expected_dtype = _token_dtype(self.vocab_size)
        for split in self.splits:
            try:
                tokens = self._array(split, "tokens")
                labels = self._array(split, "labels")
                lengths = self._array(split, "lengths")
            except KeyError as err:
                raise StoreFormatError(
                    f"{self.path}: split '{split}' lacks an array ({err}): the store is damaged, "
                    "rebuild it with `textvae-ingest`"
                ) from None
            n = tokens.shape[0]
            if tokens.ndim != 2 or tokens.shape[1] != self.max_len:
                raise StoreFormatError(
                    f"{self.path}: '{split}/tokens' has shape {tokens.shape}, expected "
                    f"(N, {self.max_len}): rebuild the store with `textvae-ingest`"
                )
            if np.dtype(tokens.dtype) != expected_dtype:
                raise StoreFormatError(
                    f"{self.path}: '{split}/tokens' has dtype {tokens.dtype}, expected "
                    f"{expected_dtype} for vocab_size {self.vocab_size}: rebuild the store"
                )
            if tokens.chunks[1] != self.max_len:
                raise StoreFormatError(
                    f"{self.path}: '{split}/tokens' chunks {tokens.chunks} do not hold whole rows"
                )
            if labels.shape != (n,) or lengths.shape != (n,):
                raise StoreFormatError(
                    f"{self.path}: split '{split}' has {n} token rows but labels "
                    f"{labels.shape} and lengths {lengths.shape}: rebuild the store"
                )

    def check_expected(
        self,
        *,
        vocab_size: int | None = None,
        max_len: int | None = None,
        split: str | None = None,
    ) -> None:
        """Raise :class:`StoreMismatchError` unless the store has what the caller expects."""
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
        if split not in self.splits:
            raise StoreMismatchError(
                f"the store at {self.path} has no split {split!r}; it has {list(self.splits)}"
            )

    def _array(self, split: str, name: str) -> zarr.Array:
        key = (split, name)
        if key not in self._arrays:
            self._arrays[key] = self._group[f"{split}/{name}"]
        return self._arrays[key]

    # -- metadata ---------------------------------------------------------------------------
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
        return str(self.attrs["padding"])

    @property
    def truncating(self) -> str:
        return str(self.attrs["truncating"])

    @property
    def token_dtype(self) -> np.dtype:
        return _token_dtype(self.vocab_size)

    def num_rows(self, split: str) -> int:
        """Number of reviews in ``split``."""
        self._check_split(split)
        return int(self._array(split, "tokens").shape[0])

    def chunk_rows(self, split: str) -> int:
        """Rows per stored chunk of ``split/tokens`` (the unit of decompression)."""
        self._check_split(split)
        return int(self._array(split, "tokens").chunks[0])

    def tokens(self, split: str) -> zarr.Array:
        """The raw zarr array of ``split`` token ids, for callers that slice it themselves."""
        self._check_split(split)
        return self._array(split, "tokens")

    @property
    def vocab(self) -> tuple[str, ...]:
        """Token strings by id (read once, then cached)."""
        if self._vocab is None:
            self._vocab = tuple(str(t) for t in self._group["vocab"][:])
        return self._vocab

    def vocabulary(self) -> Vocabulary:
        """The store's vocabulary as a :class:`~textvae.corpus.Vocabulary`."""
        return Vocabulary(self.vocab)

    # -- rows -------------------------------------------------------------------------------
    def read(self, split: str, rows: Rows) -> np.ndarray:
        """Token ids of ``rows`` (a slice or an array of row indices, any order) of ``split``."""
        return self._read(split, "tokens", rows)

    def labels(self, split: str, rows: Rows = slice(None)) -> np.ndarray:
        """Labels (int8: 1 positive, 0 negative, -1 unlabelled) of ``rows``."""
        return self._read(split, "labels", rows)

    def lengths(self, split: str, rows: Rows = slice(None)) -> np.ndarray:
        """Review lengths in ids (start id included) before padding/truncation."""
        return self._read(split, "lengths", rows)

    def _read(self, split: str, name: str, rows: Rows) -> np.ndarray:
        array = self._array(split, name) if split in self.splits else None
        if array is None:
            self._check_split(split)
        n = array.shape[0]
        if isinstance(rows, slice):
            return np.asarray(array[rows])
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
        block = array.get_orthogonal_selection((unique,))
        return np.asarray(block)[inverse]

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


def _opts(path: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if storage_options and not _is_url(path):
        raise ValueError(
            f"storage_options apply to URLs (s3://...), not to the local path {path!r}"
        )
    return dict(storage_options) if storage_options else None


def pad_row(
    ids: Sequence[int], max_len: int, padding: str, truncating: str, out: np.ndarray
) -> None:
    """Write ``ids`` padded/truncated to ``max_len`` into the zeroed row ``out`` (Keras rules)."""
    if len(ids) > max_len:
        ids = ids[-max_len:] if truncating == "pre" else ids[:max_len]
    if padding == "pre":
        out[max_len - len(ids) :] = ids
    else:
        out[: len(ids)] = ids


def build_store(
    path: str | os.PathLike[str],
    corpus: Corpus,
    *,
    vocab_size: int,
    max_len: int,
    padding: str = "pre",
    truncating: str = "pre",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> TokenStore:
    """Build a format-1 token store from ``corpus``, streaming, and return it opened.

    The vocabulary comes from the training split only. Rows keep source order. Padding and
    truncation follow ``keras.utils.pad_sequences`` (``"pre"`` keeps the end of a long review).
    ``complete`` is written last; if the build fails or is interrupted (Ctrl-C), a local store
    it created is removed, and any store left behind (remote) is refused by :meth:`TokenStore.open`.

    Parameters
    ----------
    progress
        ``progress(stage, n)`` is called as work advances: stage ``"vocab"`` while counting
        words, then the split name while encoding its rows (n = rows done so far).
    overwrite
        Replace whatever is at ``path``. Without it an existing path raises StoreExistsError
        (for a URL: any object under the ``path/`` prefix).
    storage_options
        Passed to fsspec for URLs (``endpoint_url``, ``key``/``secret``, ...); s3fs also reads
        the usual ``AWS_*`` environment variables, ``AWS_ENDPOINT_URL`` included.

    Raises
    ------
    StoreExistsError
        Something is at ``path`` and ``overwrite`` is false.
    StoreNotFoundError
        The bucket of an ``s3://`` URL does not exist.
    StoreAccessError
        Object storage refused access (credentials, permissions).
    """
    path = os.fspath(path)
    if not isinstance(vocab_size, int) or vocab_size < 4:
        raise ValueError(
            f"`vocab_size` must be an integer >= 4. Received: vocab_size={vocab_size!r}"
        )
    if vocab_size > 2**32:
        raise ValueError(f"`vocab_size` must be <= 2**32. Received: vocab_size={vocab_size}")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"`max_len` must be a positive integer. Received: max_len={max_len!r}")
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(
            f"`chunk_rows` must be a positive integer. Received: chunk_rows={chunk_rows!r}"
        )
    for name, value in (("padding", padding), ("truncating", truncating)):
        if value not in _PADDING:
            raise ValueError(f"`{name}` must be 'pre' or 'post'. Received: {name}={value!r}")
    local = not _is_url(path)
    _opts(path, storage_options)  # refuse storage options for a local path before any work
    existed = Path(path).exists() if local else _check_remote(path, storage_options, exists=True)
    if existed and not overwrite:
        raise StoreExistsError(
            f"{path} already exists: choose another path, delete it, or pass --overwrite"
        )

    vocab = corpus.vocabulary(
        vocab_size, progress=(lambda n: progress("vocab", n)) if progress else None
    )
    if vocab.size > vocab_size:
        raise ValueError(
            f"corpus vocabulary has {vocab.size} ids, more than vocab_size={vocab_size}"
        )
    tokens = list(vocab.tokens) + [UNUSED_TOKEN.format(id=i) for i in range(vocab.size, vocab_size)]

    if existed and local:  # zarr's mode "w" clears a URL's keys itself
        shutil.rmtree(path) if Path(path).is_dir() else Path(path).unlink()
    try:
        group = zarr.open_group(
            store=path, mode="w", storage_options=_opts(path, storage_options), zarr_format=3
        )
        meta = {
            "format": FORMAT,
            "vocab_size": vocab_size,
            "max_len": max_len,
            "pad_id": PAD_ID,
            "start_id": START_ID,
            "oov_id": OOV_ID,
            "padding": padding,
            "truncating": truncating,
            "splits": list(corpus.splits),
            "source": corpus.source,
            "complete": False,
        }
        group.attrs[_ATTR] = meta
        vocab_array = group.create_array(
            "vocab", shape=(vocab_size,), dtype=str, chunks=(vocab_size,)
        )
        vocab_array[:] = np.array(tokens, dtype=object)
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
            )
        group.attrs[_ATTR] = {**meta, "complete": True}
    except BaseException as err:
        if local and Path(path).exists():
            shutil.rmtree(path, ignore_errors=True)
        if isinstance(err, PermissionError) and not local:
            raise _access_error(path, err) from err
        raise
    return TokenStore.open(path, storage_options=storage_options)


def _write_split(
    group: zarr.Group,
    split: str,
    corpus: Corpus,
    vocab: Vocabulary,
    vocab_size: int,
    max_len: int,
    padding: str,
    truncating: str,
    chunk_rows: int,
    progress: ProgressFn | None,
) -> None:
    dtype = _token_dtype(vocab_size)
    compressors = [ZstdCodec(level=ZSTD_LEVEL)]
    tokens = group.create_array(
        f"{split}/tokens",
        shape=(0, max_len),
        dtype=dtype,
        chunks=(chunk_rows, max_len),
        compressors=compressors,
        fill_value=PAD_ID,
    )
    labels = group.create_array(
        f"{split}/labels",
        shape=(0,),
        dtype=np.int8,
        chunks=(chunk_rows * 16,),
        compressors=compressors,
        fill_value=-1,
    )
    lengths = group.create_array(
        f"{split}/lengths",
        shape=(0,),
        dtype=np.int32,
        chunks=(chunk_rows * 16,),
        compressors=compressors,
        fill_value=0,
    )
    block = np.zeros((chunk_rows, max_len), dtype=dtype)
    block_labels = np.empty(chunk_rows, dtype=np.int8)
    block_lengths = np.empty(chunk_rows, dtype=np.int32)
    n_rows = 0
    filled = 0

    def flush() -> None:
        nonlocal n_rows, filled
        end = n_rows + filled
        tokens.resize((end, max_len))
        labels.resize((end,))
        lengths.resize((end,))
        tokens[n_rows:end] = block[:filled]
        labels[n_rows:end] = block_labels[:filled]
        lengths[n_rows:end] = block_lengths[:filled]
        n_rows = end
        filled = 0
        block.fill(PAD_ID)
        if progress is not None:
            progress(split, n_rows)

    for ids, label in corpus.encoded(split, vocab):
        pad_row(ids, max_len, padding, truncating, block[filled])
        block_labels[filled] = label
        block_lengths[filled] = len(ids)
        filled += 1
        if filled == chunk_rows:
            flush()
    if filled:
        flush()
