"""Checks shared by the stores built from users' data (:mod:`textvae.data.from_ids`,
:mod:`textvae.data.from_texts`): split names, rows as they stream, and labels.

Every row and label is checked as it is read; a bad one stops the build with an error naming
the split, the row and the value.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from textvae._checks import int_at_least
from textvae.data.format import MAX_CLASSES
from textvae.errors import InvalidArgumentError

__all__ = [
    "SplitRows",
    "check_counts",
    "check_num_classes",
    "check_split_names",
    "check_splits",
    "is_table",
    "label_problem",
    "labelled",
    "labels_of",
    "rows_of",
]

#: Names a split cannot have: they are the store's own nodes.
_TAKEN = ("vocab", "zarr.json")
#: Longest split name, in UTF-8 bytes (file names hold 255; zarr adds nothing to a folder's).
_MAX_NAME_BYTES = 200
_END = object()

#: One split's rows as a user gives them: an iterable (read once, in order), or a function
#: returning a new one. (A :data:`~textvae.data.store.RowSelection` picks rows of a store.)
SplitRows = Iterable[Any] | Callable[[], Iterable[Any]]


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


def rows_of(value: SplitRows) -> Iterable[Any]:
    """The iterable of a split's rows (calling a function that returns one)."""
    return value() if callable(value) and not hasattr(value, "__iter__") else value


def is_table(value: Any) -> bool:
    """An array-like of whole rows (NumPy, a memmap, zarr, h5py): read a block at a time."""
    return getattr(value, "ndim", None) == 2 and hasattr(value, "shape") and hasattr(value, "dtype")


def label_problem(split: str, i: int, label: Any, num_classes: int) -> InvalidArgumentError:
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
        raise label_problem(split, i, value, num_classes)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise label_problem(split, i, int(labels[i]), num_classes)
    return labels


def labels_of(split: str, labels: Any, num_classes: int) -> Iterable[Any]:
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
                    raise label_problem(split, i, label, num_classes)
            array = array.astype(np.int64)
        return _check_label_array(split, array, num_classes)
    return labels


def labelled(
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
    it = iter(rows_of(labels))
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
            raise label_problem(split, n - 1, label, num_classes)
        yield row, int(label)
    if next(it, _END) is not _END:
        raise InvalidArgumentError(
            f"labels of split {split!r} hold more values than its {n} rows of {what}: give one "
            "label per row"
        )


def check_counts(split: str, rows: Any, labels: Any, what: str) -> None:
    """Compare the lengths of rows and labels before any work, where both have one."""
    try:
        n_rows = rows.shape[0] if is_table(rows) else len(rows)
        n_labels = len(labels)
    except TypeError:
        return  # a stream: counted as it is read
    if n_rows != n_labels:
        raise InvalidArgumentError(
            f"split {split!r} has {n_rows} rows of {what} but {n_labels} labels: give one label "
            "per row"
        )


def check_num_classes(num_classes: Any, labels: Any, splits: Sequence[str]) -> int | None:
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


def check_splits(data: Any, what: str) -> tuple[str, ...]:
    if not isinstance(data, Mapping):
        raise InvalidArgumentError(
            f"`{what}` must map split names to their rows ({{'train': ..., 'test': ...}}). "
            f"Received: {type(data).__name__}"
        )
    return check_split_names(data)
