"""Token stores from token ids a user already has: :func:`build_store_from_ids`.

The ids come from any tokenizer (a Hugging Face tokenizer, Keras' ``TextVectorization``,
SentencePiece, an ``(N, L)`` array) and are stored as given. The store is built as
:func:`~textvae.data.ingest.build_store` builds every store: streaming (a chunk of rows in
memory at a time), under the path's lock, every chunk checksummed, ``complete`` written last.
Every row and label is checked as it is read (:mod:`textvae.data.user`); a bad one stops the
build with an error naming the split, the row and the value, and the partial store is removed.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from textvae._checks import int_in_range
from textvae.data.format import StoreSpec
from textvae.data.ingest import Log, build_store, spec_of
from textvae.data.store import TokenStore
from textvae.data.user import (
    check_counts,
    check_num_classes,
    check_splits,
    is_table,
    labelled,
    labels_of,
    rows_of,
)
from textvae.errors import InvalidArgumentError
from textvae.progress import ProgressFn

__all__ = ["ID_TOKEN", "IdTokens", "build_store_from_ids"]

#: Placeholder token of an id when :func:`build_store_from_ids` gets no token list.
ID_TOKEN = "<id:{id}>"


# --------------------------------------------------------------------------------------------
# Rows of ids


def _first_non_integer(row: Any) -> tuple[int, Any] | None:
    try:
        items = list(row)
    except TypeError:
        return None
    for j, value in enumerate(items):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            return j, value
    return None


def _bad_row(split: str, i: int, row: Any) -> InvalidArgumentError:
    where = f"ids of split {split!r}, row {i}"
    if isinstance(row, (str, bytes)):
        what = f"is a {type(row).__name__} ({row[:30]!r}), not token ids"
        fix = "for texts, use `build_store_from_texts`"
    elif (found := _first_non_integer(row)) is not None:
        j, value = found
        what = f"holds {value!r} ({type(value).__name__}) at position {j}, not an integer id"
        fix = "every row must be a sequence of integer ids"
    else:
        what = f"is a {type(row).__name__}, not a flat sequence of integer ids"
        fix = "every row must be a sequence of integer ids"
    return InvalidArgumentError(f"{where} {what}: {fix}")


def _out_of_range(split: str, i: int, j: int, value: int, vocab_size: int) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"ids of split {split!r}, row {i}: id {value} at position {j} is outside "
        f"[0, vocab_size={vocab_size}): pass the tokenizer's full vocabulary size as vocab_size"
    )


def _checked_row(split: str, i: int, row: Any, vocab_size: int) -> np.ndarray:
    """``row`` as a 1-D integer array with every id in ``[0, vocab_size)``."""
    try:
        array = np.asarray(row)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, ints beyond int64
        raise _bad_row(split, i, row) from None
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise _bad_row(split, i, row)
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        j = int(np.flatnonzero((array < 0) | (array >= vocab_size))[0])
        raise _out_of_range(split, i, j, int(array[j]), vocab_size)
    return array


def _tablerows_of(split: str, table: Any, vocab_size: int, block_rows: int) -> Iterator[np.ndarray]:
    """The rows of a 2-D array, ``block_rows`` at a time, each block range-checked at once."""
    for start in range(0, table.shape[0], block_rows):
        block = np.asarray(table[start : start + block_rows])
        bad = block >= vocab_size
        if block.dtype.kind == "i":
            bad |= block < 0
        if bad.any():
            r, j = (int(k) for k in np.argwhere(bad)[0])
            raise _out_of_range(split, start + r, j, int(block[r, j]), vocab_size)
        yield from block


def _check_table(split: str, table: Any) -> None:
    try:
        dtype = np.dtype(table.dtype)
    except TypeError:  # a framework's own dtype (torch, TensorFlow): look at a row
        dtype = np.asarray(table[:1]).dtype
    if dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"ids of split {split!r} are a 2-D array of {dtype}, not of integers: cast it "
            "(`ids.astype(np.int64)`) if its values are whole ids"
        )


# --------------------------------------------------------------------------------------------
# The source


@dataclass(frozen=True)
class IdTokens:
    """The token of every id of a user's tokenizer, and its padding id: what a store built
    from ids keeps as its vocabulary. It has no start or out-of-vocabulary id (the user's ids
    are stored as given)."""

    tokens: tuple[str, ...]
    pad_id: int
    start_id: ClassVar[None] = None
    oov_id: ClassVar[None] = None

    @property
    def size(self) -> int:
        """Number of ids."""
        return len(self.tokens)

    def padded(self, vocab_size: int) -> IdTokens:
        """Itself: its ``vocab_size`` tokens are already all there."""
        if vocab_size != self.size:
            raise InvalidArgumentError(
                f"the token list has {self.size} tokens, but vocab_size={vocab_size}"
            )
        return self


def _id_tokens(tokens: Any, vocab_size: int) -> tuple[str, ...]:
    """The token list a user gave (a sequence by id, or a token -> id mapping such as a Hugging
    Face tokenizer's ``get_vocab()``), or placeholders (:data:`ID_TOKEN`)."""
    if tokens is None:
        return tuple(ID_TOKEN.format(id=i) for i in range(vocab_size))
    if isinstance(tokens, Mapping):
        by_id: list[str | None] = [None] * vocab_size
        for token, i in tokens.items():
            if not isinstance(token, str):
                raise InvalidArgumentError(
                    f"`tokens` must map str tokens to ids. Received: key {token!r}"
                )
            if not isinstance(i, numbers.Integral) or isinstance(i, bool):
                raise InvalidArgumentError(
                    f"`tokens` must map str tokens to integer ids. Received: {token!r} -> {i!r}"
                )
            if not 0 <= i < vocab_size:
                raise InvalidArgumentError(
                    f"`tokens` gives {token!r} the id {i}, outside [0, vocab_size={vocab_size})"
                )
            if by_id[i] is not None:
                raise InvalidArgumentError(
                    f"`tokens` gives the id {i} to both {by_id[i]!r} and {token!r}"
                )
            by_id[i] = token
        return tuple(ID_TOKEN.format(id=i) if t is None else t for i, t in enumerate(by_id))
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
        raise InvalidArgumentError(
            "`tokens` must be a sequence of str (the token of each id) or a mapping "
            f"token -> id. Received: {type(tokens).__name__}"
        )
    tokens = tuple(tokens)
    if len(tokens) != vocab_size:
        raise InvalidArgumentError(
            f"`tokens` must hold one token per id, vocab_size={vocab_size} of them. "
            f"Received: {len(tokens)} tokens"
        )
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise InvalidArgumentError(
                f"`tokens` must be str. Received: {token!r} ({type(token).__name__}) for id {i}"
            )
    return tokens


class _IdsSource:
    """A :class:`~textvae.data.ingest.StoreSource` of a user's token ids (and labels); the
    parent encodes them (workers only pad and write: nothing to tokenise)."""

    def __init__(
        self,
        ids: Mapping[str, Any],
        labels: Mapping[str, Any] | None,
        num_classes: int | None,
        tokens: tuple[str, ...],
        pad_id: int,
        vocab_size: int,
        block_rows: int,
        source: str,
    ) -> None:
        self.splits = tuple(ids)
        self.source = source
        self.num_classes = num_classes
        self._ids = ids
        self._labels = labels or {}
        self._tokens = IdTokens(tokens, pad_id)
        self._vocab_size = vocab_size
        self._block_rows = block_rows

    def vocabulary(self, vocab_size: int, progress: ProgressFn | None = None) -> IdTokens:
        return self._tokens

    def encoded(self, split: str, vocab: Any) -> Iterator[tuple[np.ndarray, int | None]]:
        data = self._ids[split]
        if is_table(data):
            rows: Iterable[np.ndarray] = _tablerows_of(
                split, data, self._vocab_size, self._block_rows
            )
        else:
            rows = (
                _checked_row(split, i, row, self._vocab_size) for i, row in enumerate(rows_of(data))
            )
        empty = True
        for item in labelled(split, rows, self._labels.get(split), self.num_classes, "ids"):
            empty = False
            yield item
        if empty:
            raise InvalidArgumentError(f"ids of split {split!r} hold no rows: give at least one")


def _holds_objects(data: Any) -> bool:
    """Whether an array holds Python objects (a 1-D object array of ragged rows)."""
    try:
        return np.dtype(data.dtype).kind == "O"
    except (TypeError, AttributeError):
        return False


def _check_id_split(split: str, data: Any) -> None:
    if is_table(data):
        _check_table(split, data)
        return
    ndim = getattr(data, "ndim", None)
    if ndim is not None and not (ndim == 1 and _holds_objects(data)):
        raise InvalidArgumentError(
            f"ids of split {split!r} must be a 2-D array (rows x ids) or a sequence of rows. "
            f"Received: an array of shape {data.shape}"
            + (": wrap one sequence as [ids]" if ndim == 1 else "")
        )
    if isinstance(data, (str, bytes)) or not (isinstance(data, Iterable) or callable(data)):
        raise InvalidArgumentError(
            f"ids of split {split!r} must be a 2-D array or an iterable of rows of ids. "
            f"Received: {type(data).__name__}"
        )


def build_store_from_ids(
    path: str | os.PathLike[str],
    ids: Mapping[str, Iterable[Sequence[int]] | np.ndarray],
    spec: StoreSpec | None = None,
    *,
    labels: Mapping[str, Iterable[int] | np.ndarray] | None = None,
    num_classes: int | None = None,
    tokens: Sequence[str] | Mapping[str, int] | None = None,
    pad_id: int = 0,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Log | None = None,
    source: str = "token ids",
    **legacy: Any,
) -> TokenStore:
    """Build a token store from token ids of any tokenizer, streaming, and return it opened.

    The ids are stored as given (no start id is added, nothing is renumbered); each row is
    padded with ``pad_id`` or truncated to ``max_len`` as ``keras.utils.pad_sequences(...,
    value=pad_id)`` does, and its length before that is kept (:meth:`TokenStore.lengths`).

    Parameters
    ----------
    path
        Local path or fsspec URL (``s3://...``), as for :func:`~textvae.data.ingest.build_store`.
    ids
        Split name -> rows: a 2-D integer array (NumPy, a memmap, zarr: read ``chunk_rows``
        rows at a time), or an iterable of integer sequences of any lengths (lists, a
        generator, a function returning a new iterable). A 2-D array's every column is a
        token: for an array that is padded already, pass its rows without the padding
        (``[row[:n] for row, n in zip(ids, mask.sum(1))]``) so the lengths stay true.
    spec
        The store's shape (:class:`~textvae.data.format.StoreSpec`): ``vocab_size`` is the
        number of ids of the tokenizer (ids must be in ``[0, vocab_size)``; stored as uint16 up
        to 65,536, else uint32), ``max_len`` the ids per stored row, and ``padding``,
        ``truncating``, ``chunk_rows`` as for :func:`~textvae.data.ingest.build_store`.
    labels
        Split name -> one class id per row (an array or an iterable); a split left out is
        stored unlabelled (-1). None: the store has no labels.
    num_classes
        Number of classes; default 2 when ``labels`` are given. Labels must be in
        ``[0, num_classes)``.
    tokens
        The token of each id (a sequence of ``vocab_size`` str, or a token -> id mapping such
        as a Hugging Face tokenizer's ``get_vocab()``); default placeholders ``"<id:N>"``.
        Read back with :attr:`TokenStore.token_strings`.
    pad_id
        The id that pads short rows (kept as the store's ``pad_id``).
    overwrite, progress, storage_options, log
        As for :func:`~textvae.data.ingest.build_store`.
    source
        What the ids are, kept in the store's metadata.
    **legacy
        Deprecated: ``vocab_size``, ``max_len``, ``padding``, ``truncating``, ``chunk_rows``;
        pass ``spec=StoreSpec(...)``.

    Raises
    ------
    InvalidArgumentError
        A bad argument, split name, row (not integers, an id outside the vocabulary) or label
        (outside ``[0, num_classes)``, a count that differs from the rows'); the message names
        the split, the row and the value.
    TextVAEError
        Whatever :func:`~textvae.data.ingest.build_store` raises.

    Examples
    --------
    >>> store = build_store_from_ids(
    ...     "tiny.zarr", {"train": [[5, 6, 7], [8]]}, StoreSpec(vocab_size=10, max_len=4),
    ...     labels={"train": [0, 2]}, num_classes=3)  # doctest: +SKIP
    >>> store.read("train", slice(None)).tolist()  # doctest: +SKIP
    [[0, 5, 6, 7], [0, 0, 0, 8]]
    """
    splits = check_splits(ids, "ids")
    spec = spec_of(spec, "build_store_from_ids", legacy)
    pad_id = int_in_range("pad_id", pad_id, 0, spec.vocab_size)
    num_classes = check_num_classes(num_classes, labels, splits)
    labels = dict(labels) if labels is not None else None
    for split in splits:
        _check_id_split(split, ids[split])
        if labels is not None and split in labels:
            labels[split] = labels_of(split, labels[split], num_classes)
            check_counts(split, ids[split], labels[split], "ids")
    source_ = _IdsSource(
        ids,
        labels,
        num_classes,
        _id_tokens(tokens, spec.vocab_size),
        pad_id,
        spec.vocab_size,
        spec.chunk_rows,
        str(source),
    )
    return build_store(
        path,
        source_,
        spec,
        overwrite=overwrite,
        progress=progress,
        storage_options=storage_options,
        log=log,
    )
