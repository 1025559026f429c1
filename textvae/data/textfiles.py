"""Reading a corpus's text files: plain or gzipped, the first non-UTF-8 byte located, labels
parsed from any accepted spelling, CSV records with a field over Python's size limit explained.

The helpers under :mod:`textvae.data.corpus` and :mod:`textvae.data.keras_imdb`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textvae.errors import CorpusError

__all__ = [
    "MISSING",
    "csv_records",
    "csv_text",
    "first_bad_utf8",
    "not_utf8_error",
    "open_binary",
    "parse_label",
]


def not_utf8_error(where: str, offset: int, byte: int) -> CorpusError:
    """The error of a corpus file that is not UTF-8 (``byte`` at ``offset`` of ``where``)."""
    return CorpusError(
        f"{where} is not UTF-8 (byte 0x{byte:02x} at offset {offset}): re-encode it, "
        "e.g. `iconv -f latin1 -t utf-8 IN > OUT`"
    )


def first_bad_utf8(path: Path) -> CorpusError:
    """Locate the first non-UTF-8 byte of a (possibly gzipped) file, by line."""
    offset = 0
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return not_utf8_error(f"{path}:{lineno}", offset + e.start, raw[e.start])
            offset += len(raw)
    return CorpusError(f"{path} is not UTF-8: re-encode it, e.g. `iconv -f latin1 -t utf-8`")


MISSING = object()
_LABELS = {
    "0": 0,
    "1": 1,
    "neg": 0,
    "pos": 1,
    "negative": 0,
    "positive": 1,
}


def parse_label(value: Any, where: str, field_name: str = "label") -> int:
    """A review's binary label (1 positive, 0 negative) from any accepted spelling, or the
    :class:`CorpusError` naming ``where`` and ``field_name``."""
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        label = _LABELS.get(value.strip().lower())
        if label is not None:
            return label
    if value is MISSING or value is None or value == "":
        raise CorpusError(
            f"{where}: review has no {field_name}: give every review a `{field_name}` "
            "of 1 (positive) or 0 (negative)"
        )
    raise CorpusError(
        f"{where}: unknown {field_name} {value!r}: use 1/0, pos/neg or positive/negative"
    )


def open_binary(path: Path) -> io.BufferedIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


@contextlib.contextmanager
def csv_text(path: Path, unreadable: str) -> Iterator[io.TextIOWrapper]:
    """The text of a CSV file (a BOM dropped), its decoding, gzip and CSV errors raised as
    :class:`CorpusError` (``unreadable`` names what the CSV error spoiled)."""
    try:
        with open_binary(path) as raw, io.TextIOWrapper(raw, "utf-8-sig", newline="") as f:
            yield f
    except UnicodeDecodeError:
        raise first_bad_utf8(path) from None
    except (gzip.BadGzipFile, EOFError) as e:
        raise CorpusError(f"{path} is not a valid gzip file ({e}): re-compress it") from None
    except csv.Error as e:
        raise CorpusError(f"{path}{unreadable} ({e})") from None


def csv_records(reader: Any, path: Path) -> Iterator[list[str]]:
    """The records of a ``csv.reader``; a field over Python's CSV size limit (131,072 characters
    by default) is a :class:`CorpusError` that says how to read the file."""
    # The limit is left as it is (raised by the user if they wish): it is process-wide, and it
    # is what turns a quote never closed (the rest of the file read as one field) into an error.
    start = reader.line_num + 1
    try:
        for row in reader:
            yield row
            start = reader.line_num + 1
    except csv.Error as e:
        if "field limit" not in str(e):
            raise
        raise CorpusError(
            f"{path}:{start}: a field is over Python's CSV limit of {csv.field_size_limit():,} "
            "characters: close a quote left open there, or, for reviews that long, convert the "
            "file to JSON Lines (no limit) or call csv.field_size_limit(N) before reading it"
        ) from None
