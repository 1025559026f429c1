"""Reading labelled review corpora.

Four layouts are read, all streaming (memory grows with the vocabulary, not with the corpus):

- an ``aclImdb`` folder: ``<root>/train|test/pos|neg/<id>_<rating>.txt`` (``unsup`` is ignored);
- JSON Lines, plain or gzipped, one ``{"text": ..., "label": ...}`` object a line: one file (the
  ``train`` split) or a folder holding a ``*train*`` and a ``*test*`` file;
- CSV, plain or gzipped, with a header naming a ``text`` (or ``review``) and a ``label`` (or
  ``sentiment``) column: one file or a folder, as for JSON Lines;
- Keras' pre-tokenised ``imdb.npz`` with ``imdb_word_index.json`` beside it
  (:mod:`textvae.data.keras_imdb`).

:func:`open_corpus` detects the layout. Labels are 1 positive, 0 negative; ``0``/``1``,
``"0"``/``"1"``, ``pos``/``neg`` and ``positive``/``negative`` are accepted.

A corpus counts its training split's words and encodes its reviews with a
:class:`~textvae.data.vocab.Vocabulary` (tokenizing, ids and their conventions live in
:mod:`textvae.data.vocab`).

This module never imports TensorFlow or Keras (that costs seconds and 0.5 GB).
"""

from __future__ import annotations

import abc
import collections
import copy
import csv
import gzip
import itertools
import json
import os
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from textvae.data.textfiles import (
    MISSING,
    csv_records,
    csv_text,
    not_utf8_error,
    open_binary,
    parse_label,
)
from textvae.data.vocab import (
    OOV_ID,
    START_ID,
    Vocabulary,
    check_tokenizer,
    check_vocab_size,
    tokenize,
)
from textvae.errors import CorpusError, CorpusNotFoundError
from textvae.progress import VOCAB_STAGE, ProgressFn

__all__ = [
    "ACCEPTED_LAYOUTS",
    "ENV_VAR",
    "IMDB_METADATA",
    "KERAS_WORD_INDEX",
    "PROGRESS_EVERY",
    "AclImdbCorpus",
    "Corpus",
    "CsvCorpus",
    "JsonlCorpus",
    "not_utf8_error",
    "parse_label",
]

#: Environment variable naming a local IMDB copy (any layout :func:`open_corpus` reads).
ENV_VAR = "TEXTVAE_IMDB"

#: ``progress(stage, count)`` is called after every this many reviews (and once at the end).
PROGRESS_EVERY = 1000

#: The word index that goes beside Keras' ``imdb.npz``.
KERAS_WORD_INDEX = "imdb_word_index.json"

#: IMDB's metadata tarball (``aclImdb/<split>/urls_<pos|neg>.txt`` inside, line i the URL of
#: review i of that folder): beside IMDB's JSONL files, it groups their reviews by movie.
IMDB_METADATA = "aclImdb_metadata.tar.gz"

ACCEPTED_LAYOUTS = (
    "an aclImdb folder (train/pos, train/neg, ...), a .jsonl[.gz] or .csv[.gz] file or a folder "
    "of *train*/*test* ones, or a Keras imdb.npz with imdb_word_index.json beside it"
)


class Corpus(abc.ABC):
    """A labelled corpus with named splits (``"train"`` first).

    Attributes
    ----------
    source:
        Human-readable description (layout and path), stored in a token store's attributes.
    splits:
        Names of the splits present, ``"train"`` first.
    num_classes:
        2: labels are binary (1 positive, 0 negative).
    tokenizer:
        Text -> list of str tokens; :func:`~textvae.data.vocab.tokenize` unless
        :meth:`with_tokenizer` chose another.
    """

    source: str
    splits: tuple[str, ...]
    num_classes: int | None = 2
    tokenizer: Callable[[str], list[str]] = staticmethod(tokenize)
    #: The nearest subclass that overrides count_words, vocabulary or encoded (None: none
    #: does, this class's are used): workers reproduce only the encodings they know.
    _encoding_owner: type | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if any(name in vars(cls) for name in ("count_words", "vocabulary", "encoded")):
            cls._encoding_owner = cls

    def tokenizes_in_workers(self) -> bool:
        """Whether parallel ingest workers may tokenise this corpus's texts themselves.

        True when the words are counted and encoded as here (a subclass that overrides
        :meth:`count_words`, :meth:`vocabulary` or :meth:`encoded` answers False unless it
        overrides this too) with the built-in :func:`~textvae.data.vocab.tokenize`: workers
        then split and look up the texts of :meth:`reviews`, which is most of the work.
        Otherwise the parent encodes and the workers only pad and write.
        """
        return self._encoding_owner is None and self.tokenizer is tokenize

    def encodes_raw_in_workers(self) -> bool:
        """Whether workers may encode this corpus's raw records (``raw_reviews``, then
        ``encode_raw``): False here; see :class:`~textvae.data.keras_imdb.KerasImdbCorpus`."""
        return False

    def with_tokenizer(self, tokenizer: Callable[[str], list[str]]) -> Corpus:
        """A copy of this corpus that splits its texts with ``tokenizer`` (text -> list of
        str tokens; every result is checked) instead of :func:`~textvae.data.vocab.tokenize`."""
        corpus = copy.copy(self)
        corpus.tokenizer = check_tokenizer(tokenizer)
        return corpus

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, splits={self.splits})"

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise CorpusError(
                f"{self.source} has no split {split!r}: choose one of {list(self.splits)}"
            )

    @abc.abstractmethod
    def _reviews(self, split: str) -> Iterator[tuple[str, int]]:
        """(text, label) of one split in source order; the split name is already checked."""

    def _where(self, split: str) -> str:
        """Where a split's reviews come from, for error messages."""
        return self.source

    def reviews(self, split: str = "train") -> Iterator[tuple[str, int]]:
        """(text, label) of every review of ``split``, in source order.

        Raises :class:`CorpusError` at the end of an empty split, or at the bad record.
        """
        self._check_split(split)
        n = 0
        for review in self._reviews(split):
            n += 1
            yield review
        if n == 0:
            raise CorpusError(
                f"{self._where(split)} holds no reviews in split {split!r}: "
                f"check that it is the right file (expected {ACCEPTED_LAYOUTS})"
            )

    def count_words(
        self, split: str = "train", progress: ProgressFn | None = None
    ) -> collections.Counter[str]:
        """Token counts of ``split``, streaming.

        ``progress(VOCAB_STAGE, n_reviews_done)`` is called every :data:`PROGRESS_EVERY`
        reviews and at the end.
        """
        counts: collections.Counter[str] = collections.Counter()
        update = counts.update
        n = 0
        split_text = self.tokenizer
        for n, (text, _) in enumerate(self.reviews(split), 1):
            update(split_text(text))
            if progress is not None and n % PROGRESS_EVERY == 0:
                progress(VOCAB_STAGE, n)
        if progress is not None:
            progress(VOCAB_STAGE, n)
        return counts

    def vocabulary(self, vocab_size: int, progress: ProgressFn | None = None) -> Vocabulary:
        """The ``vocab_size`` ids (reserved ones included) of the training split's words.

        ``progress`` is passed to :meth:`count_words`.
        """
        check_vocab_size(vocab_size)
        return Vocabulary.from_counts(self.count_words("train", progress), vocab_size)

    def groups(self, split: str = "train") -> tuple[str, list[Any]] | None:
        """``(what a group is, a key per review of split in source order)``, or None when the
        corpus names no groups (here: none). Ingest stores them as ``<split>/groups``, and
        training then holds out whole groups for validation: reviews of one movie are alike,
        and a validation split that shares movies with training overstates accuracy."""
        self._check_split(split)
        return None

    def offers_groups(self) -> bool:
        """Whether :meth:`groups` may name groups for the train split, told without reading the
        corpus (a store cached before groups existed is ingested again only then)."""
        return False

    def encoded(self, split: str, vocab: Vocabulary) -> Iterator[tuple[list[int], int]]:
        """(ids, label) of every review of ``split`` in source order; ids start with
        ``START_ID``, unknown words are ``OOV_ID``."""
        get = vocab.index().get
        split_text = self.tokenizer
        for text, label in self.reviews(split):
            ids = [START_ID]
            ids.extend([get(token, OOV_ID) for token in split_text(text)])
            yield ids, label


# --------------------------------------------------------------------------------------------
# aclImdb folders


def _acl_file_key(name: str) -> tuple[int, int, str]:
    head = name.split("_", 1)[0].split(".", 1)[0]
    if head.isdigit():
        return (0, int(head), name)
    return (1, 0, name)


_TITLE = re.compile(r"/title/(tt\d+)")


def _movie_of(url: str) -> str:
    """The IMDB title id (``tt0453418``) of a review's URL
    (``http://www.imdb.com/title/tt0453418/usercomments``), else the URL itself."""
    match = _TITLE.search(url)
    return match.group(1) if match else url.strip()


def _imdb_movies(tarball: Path) -> dict[tuple[str, str], list[str]] | None:
    """``{(split, "neg" | "pos"): [movie of review 0, 1, ...]}`` from IMDB's metadata tarball
    (:data:`IMDB_METADATA`), or None when it cannot be read."""
    movies: dict[tuple[str, str], list[str]] = {}
    pattern = re.compile(r"(?:.*/)?(\w+)/urls_(neg|pos)\.txt")
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar:
                match = pattern.fullmatch(member.name)
                f = tar.extractfile(member) if match and member.isfile() else None
                if f is not None:
                    lines = f.read().decode("utf-8").splitlines()
                    movies[(match[1], match[2])] = [_movie_of(u) for u in lines]
    except (OSError, tarfile.TarError, EOFError, UnicodeDecodeError):
        return None
    return movies or None


def _imdb_file(file: Any) -> tuple[str, str, int] | None:
    """(split, "neg" | "pos", review id) of an IMDB review's path (``train/pos/0_9.txt``)."""
    if not isinstance(file, str):
        return None
    parts = file.split("/")
    head = parts[-1].split("_", 1)[0]
    if len(parts) < 3 or parts[-2] not in ("neg", "pos") or not head.isdigit():
        return None
    return parts[-3], parts[-2], int(head)


class AclImdbCorpus(Corpus):
    """The original ``aclImdb`` folder layout.

    Reviews come from ``<root>/<split>/neg/*.txt`` (label 0) then ``<root>/<split>/pos/*.txt``
    (label 1), each folder in the order of the numeric review id of ``<id>_<rating>.txt`` (names
    without a numeric id after those, by name): the same order as the JSONL files of
    ``shared/data/imdb``. ``unsup`` is ignored. Only file names are held in memory, not texts.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise CorpusNotFoundError(
                f"aclImdb folder {self.root} does not exist: pass {ACCEPTED_LAYOUTS}"
            )
        splits = [s for s in ("train", "test") if self._has_split(s)]
        if "train" not in splits:
            raise CorpusError(
                f"{self.root} has no training split: expected {self.root / 'train' / 'pos'} "
                f"and {self.root / 'train' / 'neg'} folders of .txt reviews"
            )
        self.splits = tuple(splits)
        self.source = f"aclImdb folder {self.root}"

    def _has_split(self, split: str) -> bool:
        return any((self.root / split / label).is_dir() for label in ("neg", "pos"))

    def _where(self, split: str) -> str:
        return str(self.root / split)

    def _names(self, split: str) -> Iterator[tuple[int, str, list[str]]]:
        """(label, label folder, review file names in reading order) of ``split``."""
        for label, sub in ((0, "neg"), (1, "pos")):
            folder = self.root / split / sub
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                names = [e.name for e in entries if e.name.endswith(".txt") and e.is_file()]
            names.sort(key=_acl_file_key)
            yield label, sub, names

    def offers_groups(self) -> bool:
        """Whether ``<root>/train`` holds a ``urls_neg.txt`` or ``urls_pos.txt``."""
        return any((self.root / "train" / f"urls_{sub}.txt").is_file() for sub in ("neg", "pos"))

    def groups(self, split: str = "train") -> tuple[str, list[Any]] | None:
        """The movie of every review, from ``<root>/<split>/urls_<neg|pos>.txt`` (the
        dataset's own lists, line i the URL of review ``i_*.txt``); None without them, or when
        a review's id has no line."""
        self._check_split(split)
        keys: list[Any] = []
        for _, sub, names in self._names(split):
            urls = self.root / split / f"urls_{sub}.txt"
            if not urls.is_file():
                return None
            movies = [_movie_of(u) for u in urls.read_text(encoding="utf-8").splitlines()]
            for name in names:
                review_id = _acl_file_key(name)
                if review_id[0] != 0 or review_id[1] >= len(movies):
                    return None
                keys.append(movies[review_id[1]])
        return "movie", keys

    def _reviews(self, split: str) -> Iterator[tuple[str, int]]:
        for label, sub, names in self._names(split):
            folder = self.root / split / sub
            for name in names:
                path = folder / name
                raw = path.read_bytes()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise not_utf8_error(str(path), e.start, raw[e.start]) from None
                yield text.removeprefix("\ufeff"), label


# --------------------------------------------------------------------------------------------
# JSONL and CSV files


def _split_of(name: str) -> str | None:
    name = name.lower()
    if "train" in name:
        return "train"
    if "test" in name:
        return "test"
    return None


class _FileCorpus(Corpus):
    """A corpus with one file per split."""

    kind: str = ""
    suffixes: tuple[str, ...] = ()

    def __init__(self, paths: Mapping[str, str | os.PathLike[str]]) -> None:
        self.paths = {split: Path(p) for split, p in paths.items()}
        if "train" not in self.paths:
            raise CorpusError(f"{self.kind} corpus has no training file: got {self.paths}")
        for path in self.paths.values():
            if not path.is_file():
                raise CorpusNotFoundError(
                    f"{self.kind} file {path} does not exist: pass {ACCEPTED_LAYOUTS}"
                )
        self.splits = tuple(s for s in ("train", "test") if s in self.paths) + tuple(
            s for s in self.paths if s not in ("train", "test")
        )
        self.source = f"{self.kind} " + ", ".join(str(self.paths[s]) for s in self.splits)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> _FileCorpus:
        """One file (the ``train`` split) or a folder of ``*train*`` / ``*test*`` files."""
        path = Path(path)
        if path.is_file():
            return cls({"train": path})
        if not path.is_dir():
            raise CorpusNotFoundError(
                f"{cls.kind} source {path} does not exist: pass {ACCEPTED_LAYOUTS}"
            )
        files = sorted(p for p in path.iterdir() if p.is_file() and cls.matches(p))
        found: dict[str, Path] = {}
        for p in files:
            split = _split_of(p.name)
            if split is None:
                continue
            if split in found:
                raise CorpusError(
                    f"{path} holds two {split} files, {found[split].name} and {p.name}: "
                    "keep one, or pass the file itself"
                )
            found[split] = p
        if "train" not in found:
            names = ", ".join(p.name for p in files) or "none"
            raise CorpusError(
                f"{path} has no training split: no {cls.kind} file with 'train' in its name "
                f"(found: {names}); name it e.g. imdb_train{cls.suffixes[0]}"
            )
        return cls(found)

    @classmethod
    def matches(cls, path: Path) -> bool:
        return path.name.lower().endswith(cls.suffixes)

    def _where(self, split: str) -> str:
        return str(self.paths[split])


class JsonlCorpus(_FileCorpus):
    """JSON Lines (optionally gzipped): one object a line with ``text`` (or ``review``) and
    ``label`` (or ``sentiment``) fields, and optionally a ``group`` field (:meth:`groups`);
    other fields are ignored, blank lines skipped."""

    kind = "JSONL"
    suffixes = (".jsonl", ".jsonl.gz")

    def _records(self, split: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """(line number, line, parsed object) of every non-blank line of ``split``'s file."""
        path = self.paths[split]
        loads = json.loads
        offset = 0
        try:
            with open_binary(path) as f:
                for lineno, raw in enumerate(f, 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise not_utf8_error(
                            f"{path}:{lineno}", offset + e.start, raw[e.start]
                        ) from None
                    offset += len(raw)
                    if lineno == 1:
                        line = line.removeprefix("\ufeff")
                    if not line or line.isspace():
                        continue
                    try:
                        record = loads(line)
                    except json.JSONDecodeError as e:
                        raise CorpusError(
                            f"{path}:{lineno}: invalid JSON ({e.msg}, column {e.colno}): write one "
                            'object a line, like {"text": "...", "label": 1}'
                        ) from None
                    if not isinstance(record, dict):
                        raise CorpusError(
                            f"{path}:{lineno}: expected a JSON object, got "
                            f"{type(record).__name__}: write one object a line, like "
                            '{"text": "...", "label": 1}'
                        )
                    yield lineno, line, record
        except (gzip.BadGzipFile, EOFError, zipfile.BadZipFile) as e:
            raise CorpusError(f"{path} is not a valid gzip file ({e}): re-compress it") from None

    def _reviews(self, split: str) -> Iterator[tuple[str, int]]:
        path = self.paths[split]
        for lineno, line, record in self._records(split):
            text = record.get("text", record.get("review"))
            if not isinstance(text, str):
                raise CorpusError(
                    f"{path}:{lineno}: no `text` string field: give every review a "
                    '"text" (or "review") field'
                )
            if "\\u" in line:  # only an escape can make a lone surrogate
                _check_no_surrogate(text, f"{path}:{lineno}")
            label = record.get("label", record.get("sentiment", MISSING))
            yield text, parse_label(label, f"{path}:{lineno}")

    def offers_groups(self) -> bool:
        """Whether the train file's first record has a ``group`` field, or a ``file`` field
        with :data:`IMDB_METADATA` beside the file."""
        first = next(self._records("train"), None)
        if first is None:
            return False
        record = first[2]
        return "group" in record or (
            "file" in record and (self.paths["train"].parent / IMDB_METADATA).is_file()
        )

    def groups(self, split: str = "train") -> tuple[str, list[Any]] | None:
        """The group of every review: its ``group`` field (a string or an integer) when the
        file's records have one, which all must then have; else, for IMDB's JSONL files (a
        ``file`` field such as ``"train/pos/0_9.txt"``) with :data:`IMDB_METADATA` beside them,
        the movie it reviews, from the dataset's URL lists; else None."""
        self._check_split(split)
        path = self.paths[split]
        records = self._records(split)
        first = next(records, None)
        if first is None:
            return None
        if "group" in first[2]:
            keys = []
            for lineno, _, record in itertools.chain([first], records):
                group = record.get("group")
                if isinstance(group, bool) or not isinstance(group, (str, int)):
                    raise CorpusError(
                        f"{path}:{lineno}: `group` is {group!r}: give every review a string or "
                        'integer "group" field (e.g. the movie or author), or give none'
                    )
                keys.append(str(group))
            return "group", keys
        tarball = path.parent / IMDB_METADATA
        movies = _imdb_movies(tarball) if tarball.is_file() else None
        if movies is None:
            return None
        keys = []
        for _, _, record in itertools.chain([first], records):
            if "group" in record:
                raise CorpusError(
                    f"{path}: the first review has no `group` field but a later one has: give "
                    "every review a group, or none"
                )
            where = _imdb_file(record.get("file"))
            listed = movies.get(where[:2]) if where is not None else None
            if listed is None or where[2] >= len(listed):
                return None  # not the reviews the URL lists describe
            keys.append(listed[where[2]])
        return "movie", keys


def _check_no_surrogate(text: str, where: str) -> None:
    """Refuse a text holding a lone surrogate (JSON's ``"\\ud800"`` escape decodes to one): it
    is not Unicode text, and no store can hold a token made of it (UTF-8 cannot encode it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CorpusError(
            f"{where}: the text holds a lone surrogate {text[e.start]!r} at character {e.start} "
            "(a JSON escape \\ud800-\\udfff without its pair), which is not Unicode text: "
            "write the character itself, or both escapes of its surrogate pair"
        ) from None


_TEXT_COLUMNS = ("text", "review")
_LABEL_COLUMNS = ("label", "sentiment")


class CsvCorpus(_FileCorpus):
    """CSV (optionally gzipped) with a header row naming a ``text`` (or ``review``) column and a
    ``label`` (or ``sentiment``) column, case-insensitive; other columns are ignored. Quoted
    fields may span lines; error messages give the line where the record ends."""

    kind = "CSV"
    suffixes = (".csv", ".csv.gz")

    def __init__(self, paths: Mapping[str, str | os.PathLike[str]]) -> None:
        super().__init__(paths)
        self._columns = {split: self._read_header(path) for split, path in self.paths.items()}

    @staticmethod
    def _read_header(path: Path) -> tuple[int, int]:
        with csv_text(path, ":1: unreadable CSV header") as f:
            header = next(csv.reader(f), None)
        if header is None:
            raise CorpusError(f"{path} is empty: expected a header row with text and label columns")
        names = [h.strip().lower() for h in header]
        text_col = next((names.index(c) for c in _TEXT_COLUMNS if c in names), None)
        label_col = next((names.index(c) for c in _LABEL_COLUMNS if c in names), None)
        if text_col is None or label_col is None:
            raise CorpusError(
                f"{path}:1: header {header} lacks a "
                + ("text|review" if text_col is None else "label|sentiment")
                + " column: name the columns text,label"
            )
        return text_col, label_col

    def _reviews(self, split: str) -> Iterator[tuple[str, int]]:
        path = self.paths[split]
        text_col, label_col = self._columns[split]
        width = max(text_col, label_col) + 1
        with csv_text(path, ": unreadable CSV") as f:
            reader = csv.reader(f)
            next(reader, None)  # header, checked at open time
            for row in csv_records(reader, path):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) < width:
                    raise CorpusError(
                        f"{path}:{reader.line_num}: expected at least {width} columns, "
                        f"found {len(row)}: quote texts that hold commas"
                    )
                yield row[text_col], parse_label(row[label_col], f"{path}:{reader.line_num}")
