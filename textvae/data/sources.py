"""Token stores from users' data: token ids from any tokenizer, or texts with any tokenizer.

:func:`build_store_from_ids` stores ids a user already has (a Hugging Face tokenizer, Keras'
``TextVectorization``, SentencePiece, an ``(N, L)`` array); :func:`build_store_from_texts`
tokenizes texts with a callable the user passes and builds the vocabulary as
:func:`~textvae.data.store.build_store` does. Labels are optional: none, binary, or integer classes
(``num_classes``). Splits may have any name a path can hold.

Both feed :func:`~textvae.data.store.build_store` a :class:`~textvae.data.store.StoreSource`, so the
store is built the same way: streaming (a chunk of rows in memory at a time), under the path's
lock, every chunk checksummed, ``complete`` written last. Every row and label is checked as it
is read; a bad one stops the build with an error naming the split, the row and the value, and
the partial store is removed.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from textvae._checks import int_at_least, int_in_range
from textvae.data.corpus import Corpus
from textvae.data.format import DEFAULT_CHUNK_ROWS
from textvae.data.store import MAX_CLASSES, Log, TokenStore, build_store
from textvae.data.vocab import Vocabulary, check_tokenizer, check_vocab_size, tokenize
from textvae.errors import InvalidArgumentError
from textvae.progress import ProgressFn

__all__ = [
    "ID_TOKEN",
    "IdTokens",
    "build_store_from_ids",
    "build_store_from_texts",
    "check_split_names",
]

#: Placeholder token of an id when :func:`build_store_from_ids` gets no token list.
ID_TOKEN = "<id:{id}>"
#: Names a split cannot have: they are the store's own nodes.
_TAKEN = ("vocab", "zarr.json")
#: Longest split name, in UTF-8 bytes (file names hold 255; zarr adds nothing to a folder's).
_MAX_NAME_BYTES = 200
_END = object()

#: One split's rows: an iterable (read once, in order), or a function returning a new one.
Rows = Iterable[Any] | Callable[[], Iterable[Any]]


# --------------------------------------------------------------------------------------------
# Split names


def _name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if "/" in name or "\\" in name:
        return "it holds a path separator ('/' or '\\')"
    if set(name) == {"."}:
        return "it is only periods ('.' and '..' are paths)"
    if name.startswith("__"):
        return "zarr reserves names that start with '__'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it holds a control character"
    if name != name.strip():
        return "it starts or ends with whitespace"
    if name in _TAKEN:
        return f"{name!r} is the name of the store's own {name} node"
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        return f"it is longer than {_MAX_NAME_BYTES} bytes (a folder name)"
    return None


def check_split_names(names: Iterable[Any]) -> tuple[str, ...]:
    """Check that every split name can be a zarr group and a folder; return them as a tuple.

    A name must be a non-empty str without ``/`` or ``\\``, not only periods, not starting with
    ``__`` (reserved by zarr), without control characters or surrounding whitespace, not
    ``vocab`` or ``zarr.json``, at most 200 bytes; no two may differ only in case (one folder on
    macOS and Windows).

    Raises
    ------
    InvalidArgumentError
        The first name that breaks a rule, with the rule.
    """
    names = tuple(names)
    if not names:
        raise InvalidArgumentError("a store needs at least one split. Received: no splits")
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"split names must be str. Received: {name!r} ({type(name).__name__})"
            )
        problem = _name_problem(name)
        if problem is not None:
            raise InvalidArgumentError(
                f"split name {name!r} cannot be stored ({problem}): choose a name of letters, "
                "digits, '-', '_' and '.', e.g. 'train', 'validation'"
            )
        folded = name.casefold()
        if folded in seen:
            raise InvalidArgumentError(
                f"split names {seen[folded]!r} and {name!r} differ only in case: they would be "
                "one folder on macOS and Windows; rename one"
            )
        seen[folded] = name
    return names


# --------------------------------------------------------------------------------------------
# Rows and labels, checked as they stream


def _rows(value: Rows) -> Iterable[Any]:
    return value() if callable(value) and not hasattr(value, "__iter__") else value


def _is_table(value: Any) -> bool:
    """An array-like of whole rows (NumPy, a memmap, zarr, h5py): read a block at a time."""
    return getattr(value, "ndim", None) == 2 and hasattr(value, "shape") and hasattr(value, "dtype")


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


def _table_rows(split: str, table: Any, vocab_size: int, block_rows: int) -> Iterator[np.ndarray]:
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


def _label_problem(split: str, i: int, label: Any, num_classes: int) -> InvalidArgumentError:
    if not isinstance(label, numbers.Integral) or isinstance(label, bool):
        rule = f"an integer class id in [0, {num_classes})"
        got = f"{label!r} ({type(label).__name__})"
    else:
        rule = f"in [0, num_classes={num_classes})"
        got = str(int(label))
    return InvalidArgumentError(
        f"labels of split {split!r}, row {i}: {got} is not {rule}: class ids run from 0 to "
        "num_classes - 1 (pass num_classes, or leave the split out of `labels` to store it "
        "unlabelled)"
    )


def _check_label_array(split: str, labels: np.ndarray, num_classes: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:  # Keras' (N, 1) labels
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InvalidArgumentError(
            f"labels of split {split!r} must be one class id per row (a 1-D array). "
            f"Received: an array of shape {labels.shape}"
        )
    if labels.size and labels.dtype.kind not in "iu":
        i = 0
        if labels.dtype.kind == "f":  # name the first value that is not a whole number
            whole = np.isfinite(labels) & (labels == np.round(labels))
            i = int(np.flatnonzero(~whole)[0]) if not whole.all() else 0
        value = labels[i].item() if labels.dtype.kind in "biufc" else labels[i]
        raise _label_problem(split, i, value, num_classes)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _label_problem(split, i, int(labels[i]), num_classes)
    return labels


def _labels_of(split: str, labels: Any, num_classes: int) -> Iterable[Any]:
    """A split's labels, checked at once when they are in memory (a list, an array)."""
    if isinstance(labels, (str, bytes)) or not (
        isinstance(labels, Iterable) or hasattr(labels, "__array__") or callable(labels)
    ):
        raise InvalidArgumentError(
            f"labels of split {split!r} must be a sequence or array of class ids. "
            f"Received: {type(labels).__name__}"
        )
    if isinstance(labels, (list, tuple, np.ndarray)) or hasattr(labels, "__array__"):
        array = np.asarray(labels)
        if array.dtype == object:
            for i, label in enumerate(array.ravel()):
                if not isinstance(label, numbers.Integral) or isinstance(label, bool):
                    raise _label_problem(split, i, label, num_classes)
            array = array.astype(np.int64)
        return _check_label_array(split, array, num_classes)
    return labels


def _labelled(
    split: str,
    rows: Iterable[Any],
    labels: Iterable[Any] | None,
    num_classes: int | None,
    what: str,
) -> Iterator[tuple[Any, int | None]]:
    """``(row, label)`` of every row: None without labels, -1 for a split left out of
    ``labels``, else the split's next label, checked; a count that differs is an error."""
    if num_classes is None:
        for row in rows:
            yield row, None
        return
    if labels is None:
        for row in rows:
            yield row, -1
        return
    checked = isinstance(labels, np.ndarray)
    it = iter(_rows(labels))
    n = 0
    for n, row in enumerate(rows, 1):
        label = next(it, _END)
        if label is _END:
            raise InvalidArgumentError(
                f"labels of split {split!r} hold {n - 1} values, but its {what} have more rows: "
                "give one label per row"
            )
        if not checked and (
            not isinstance(label, numbers.Integral)
            or isinstance(label, bool)
            or not 0 <= label < num_classes
        ):
            raise _label_problem(split, n - 1, label, num_classes)
        yield row, int(label)
    if next(it, _END) is not _END:
        raise InvalidArgumentError(
            f"labels of split {split!r} hold more values than its {n} rows of {what}: give one "
            "label per row"
        )


def _check_counts(split: str, rows: Any, labels: Any, what: str) -> None:
    """Compare the lengths of rows and labels before any work, where both have one."""
    try:
        n_rows = rows.shape[0] if _is_table(rows) else len(rows)
        n_labels = len(labels)
    except TypeError:
        return  # a stream: counted as it is read
    if n_rows != n_labels:
        raise InvalidArgumentError(
            f"split {split!r} has {n_rows} rows of {what} but {n_labels} labels: give one label "
            "per row"
        )


def _check_num_classes(num_classes: Any, labels: Any, splits: Sequence[str]) -> int | None:
    if labels is None:
        if num_classes is not None:
            raise InvalidArgumentError(
                f"`num_classes` applies to labels, and none were given. Received: "
                f"num_classes={num_classes!r}, labels=None: pass `labels=` too, or drop "
                "num_classes"
            )
        return None
    if not isinstance(labels, Mapping):
        raise InvalidArgumentError(
            "`labels` must map split names to their labels, like the data does "
            f"({{'train': [...], ...}}). Received: labels of type {type(labels).__name__}"
        )
    unknown = [s for s in labels if s not in splits]
    if unknown:
        raise InvalidArgumentError(
            f"`labels` has split {unknown[0]!r}, which the data has not; it has {list(splits)}"
        )
    if num_classes is None:
        return 2
    classes = int_at_least("num_classes", num_classes, 2, reason="binary labels are 2 classes")
    if classes > MAX_CLASSES:
        raise InvalidArgumentError(
            f"`num_classes` must be at most {MAX_CLASSES:,}. Received: num_classes={classes}"
        )
    return classes


def _check_splits(data: Any, what: str) -> tuple[str, ...]:
    if not isinstance(data, Mapping):
        raise InvalidArgumentError(
            f"`{what}` must map split names to their rows ({{'train': ..., 'test': ...}}). "
            f"Received: {type(data).__name__}"
        )
    return check_split_names(data)


# --------------------------------------------------------------------------------------------
# Token ids


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
    """A :class:`~textvae.data.store.StoreSource` of a user's token ids (and labels)."""

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
        if _is_table(data):
            rows: Iterable[np.ndarray] = _table_rows(
                split, data, self._vocab_size, self._block_rows
            )
        else:
            rows = (
                _checked_row(split, i, row, self._vocab_size) for i, row in enumerate(_rows(data))
            )
        empty = True
        for item in _labelled(split, rows, self._labels.get(split), self.num_classes, "ids"):
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
    if _is_table(data):
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
    *,
    vocab_size: int,
    max_len: int,
    labels: Mapping[str, Iterable[int] | np.ndarray] | None = None,
    num_classes: int | None = None,
    tokens: Sequence[str] | Mapping[str, int] | None = None,
    pad_id: int = 0,
    padding: str = "pre",
    truncating: str = "pre",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Log | None = None,
    source: str = "token ids",
) -> TokenStore:
    """Build a token store from token ids of any tokenizer, streaming, and return it opened.

    The ids are stored as given (no start id is added, nothing is renumbered); each row is
    padded with ``pad_id`` or truncated to ``max_len`` as ``keras.utils.pad_sequences(...,
    value=pad_id)`` does, and its length before that is kept (:meth:`TokenStore.lengths`).

    Parameters
    ----------
    path
        Local path or fsspec URL (``s3://...``), as for :func:`~textvae.data.store.build_store`.
    ids
        Split name -> rows: a 2-D integer array (NumPy, a memmap, zarr: read ``chunk_rows``
        rows at a time), or an iterable of integer sequences of any lengths (lists, a
        generator, a function returning a new iterable). A 2-D array's every column is a
        token: for an array that is padded already, pass its rows without the padding
        (``[row[:n] for row, n in zip(ids, mask.sum(1))]``) so the lengths stay true.
    vocab_size
        Number of ids of the tokenizer (ids must be in ``[0, vocab_size)``); stored as uint16
        up to 65,536, else uint32.
    max_len
        Ids per stored row.
    labels
        Split name -> one class id per row (an array or an iterable); a split left out is
        stored unlabelled (-1). None: the store has no labels.
    num_classes
        Number of classes; default 2 when ``labels`` are given. Labels must be in
        ``[0, num_classes)``.
    tokens
        The token of each id (a sequence of ``vocab_size`` str, or a token -> id mapping such
        as a Hugging Face tokenizer's ``get_vocab()``); default placeholders ``"<id:N>"``.
        Read back with :attr:`TokenStore.tokens`.
    pad_id
        The id that pads short rows (kept as the store's ``pad_id``).
    padding, truncating, chunk_rows, overwrite, progress, storage_options, log
        As for :func:`~textvae.data.store.build_store`.
    source
        What the ids are, kept in the store's metadata.

    Raises
    ------
    InvalidArgumentError
        A bad argument, split name, row (not integers, an id outside the vocabulary) or label
        (outside ``[0, num_classes)``, a count that differs from the rows'); the message names
        the split, the row and the value.
    TextVAEError
        Whatever :func:`~textvae.data.store.build_store` raises.

    Examples
    --------
    >>> store = build_store_from_ids(
    ...     "tiny.zarr", {"train": [[5, 6, 7], [8]]}, vocab_size=10, max_len=4,
    ...     labels={"train": [0, 2]}, num_classes=3)  # doctest: +SKIP
    >>> store.read("train", slice(None)).tolist()  # doctest: +SKIP
    [[0, 5, 6, 7], [0, 0, 0, 8]]
    """
    splits = _check_splits(ids, "ids")
    vocab_size = check_vocab_size(vocab_size)
    pad_id = int_in_range("pad_id", pad_id, 0, vocab_size)
    chunk_rows = int_at_least("chunk_rows", chunk_rows, 1)
    num_classes = _check_num_classes(num_classes, labels, splits)
    labels = dict(labels) if labels is not None else None
    for split in splits:
        _check_id_split(split, ids[split])
        if labels is not None and split in labels:
            labels[split] = _labels_of(split, labels[split], num_classes)
            _check_counts(split, ids[split], labels[split], "ids")
    source_ = _IdsSource(
        ids,
        labels,
        num_classes,
        _id_tokens(tokens, vocab_size),
        pad_id,
        vocab_size,
        chunk_rows,
        str(source),
    )
    return build_store(
        path,
        source_,
        vocab_size=vocab_size,
        max_len=max_len,
        padding=padding,
        truncating=truncating,
        chunk_rows=chunk_rows,
        overwrite=overwrite,
        progress=progress,
        storage_options=storage_options,
        log=log,
    )


# --------------------------------------------------------------------------------------------
# Texts


class _TextsCorpus(Corpus):
    """A :class:`~textvae.data.corpus.Corpus` of texts a user passes (and their labels)."""

    def __init__(
        self,
        texts: Mapping[str, Any],
        labels: Mapping[str, Any] | None,
        num_classes: int | None,
        vocab_split: str,
        source: str,
    ) -> None:
        self.splits = tuple(texts)
        self.source = source
        self.num_classes = num_classes
        self._texts = texts
        self._labels = labels or {}
        self._vocab_split = vocab_split

    def vocabulary(self, vocab_size: int, progress: ProgressFn | None = None) -> Vocabulary:
        """The vocabulary of the ``train`` split (else the first split)'s word counts."""
        check_vocab_size(vocab_size)
        # Counted without the labels: a label stream must be read once, while encoding.
        counting = _TextsCorpus(self._texts, None, None, self._vocab_split, self.source)
        counting.tokenizer = self.tokenizer
        return Vocabulary.from_counts(counting.count_words(self._vocab_split, progress), vocab_size)

    def _reviews(self, split: str) -> Iterator[tuple[str, int]]:
        texts = (_checked_text(split, i, text) for i, text in enumerate(_rows(self._texts[split])))
        empty = True
        for item in _labelled(split, texts, self._labels.get(split), self.num_classes, "texts"):
            empty = False
            yield item  # type: ignore[misc]
        if empty:
            raise InvalidArgumentError(f"texts of split {split!r} hold no rows: give at least one")


def _checked_text(split: str, i: int, text: Any) -> str:
    if not isinstance(text, str):
        hint = ": decode it (`text.decode('utf-8')`)" if isinstance(text, bytes) else ""
        raise InvalidArgumentError(
            f"texts of split {split!r}, row {i} is a {type(text).__name__}, not a str{hint}"
        )
    return text


def build_store_from_texts(
    path: str | os.PathLike[str],
    texts: Mapping[str, Iterable[str]],
    *,
    vocab_size: int,
    max_len: int,
    tokenizer: Callable[[str], Sequence[str]] = tokenize,
    labels: Mapping[str, Iterable[int] | np.ndarray] | None = None,
    num_classes: int | None = None,
    padding: str = "pre",
    truncating: str = "pre",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Log | None = None,
    source: str = "texts",
) -> TokenStore:
    """Build a token store from texts, split into tokens by ``tokenizer``, and return it opened.

    As :func:`~textvae.data.store.build_store`: the vocabulary is the ``vocab_size - 3`` most
    frequent tokens of the ``train`` split (of the first split when none is named ``train``),
    with textvae's ids (0 padding, 1 start, 2 out-of-vocabulary); every row starts with id 1.

    Parameters
    ----------
    path
        Local path or fsspec URL, as for :func:`~textvae.data.store.build_store`.
    texts
        Split name -> texts (an iterable of str, or a function returning a new iterable). The
        vocabulary's split is read twice (counting, then encoding): it must be a list (or
        another re-iterable) or a function, not a one-shot iterator.
    tokenizer
        Text -> list of str tokens (default :func:`~textvae.data.vocab.tokenize`); every result
        is checked.
    labels, num_classes
        As for :func:`build_store_from_ids`.
    vocab_size, max_len, padding, truncating, chunk_rows, overwrite, progress,
    storage_options, log
        As for :func:`~textvae.data.store.build_store`.
    source
        What the texts are, kept in the store's metadata.

    Raises
    ------
    InvalidArgumentError
        A bad argument, split name, text (not a str), tokenizer result or label.
    TextVAEError
        Whatever :func:`~textvae.data.store.build_store` raises.
    """
    splits = _check_splits(texts, "texts")
    tokenizer = check_tokenizer(tokenizer)
    num_classes = _check_num_classes(num_classes, labels, splits)
    vocab_split = "train" if "train" in splits else splits[0]
    for split in splits:
        data = texts[split]
        if isinstance(data, (str, bytes)) or not (isinstance(data, Iterable) or callable(data)):
            raise InvalidArgumentError(
                f"texts of split {split!r} must be an iterable of str. "
                f"Received: {type(data).__name__}"
            )
    once = texts[vocab_split]
    if isinstance(once, Iterator):
        raise InvalidArgumentError(
            f"texts of split {vocab_split!r} are an iterator, which can be read once, but the "
            "vocabulary's split is read twice (counting, then encoding): pass a list, or a "
            "function that returns a new iterable on each call"
        )
    labels = dict(labels) if labels is not None else None
    if labels is not None:
        for split in list(labels):
            labels[split] = _labels_of(split, labels[split], num_classes)
            _check_counts(split, texts[split], labels[split], "texts")
    corpus = _TextsCorpus(texts, labels, num_classes, vocab_split, str(source))
    corpus.tokenizer = tokenizer
    return build_store(
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
        log=log,
    )
