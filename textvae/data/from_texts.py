"""Token stores from texts, split by any tokenizer: :func:`build_store_from_texts`.

The vocabulary is built as :func:`~textvae.data.ingest.build_store` builds it (the most
frequent tokens of the ``train`` split, textvae's reserved ids); labels are optional (none,
binary, or integer classes) and every text and label is checked as it is read
(:mod:`textvae.data.user`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from textvae.data.corpus import Corpus
from textvae.data.format import StoreSpec
from textvae.data.ingest import Log, build_store, spec_of
from textvae.data.store import TokenStore
from textvae.data.user import (
    check_counts,
    check_num_classes,
    check_splits,
    labelled,
    labels_of,
    rows_of,
)
from textvae.data.vocab import Vocabulary, check_tokenizer, check_vocab_size, tokenize
from textvae.errors import InvalidArgumentError
from textvae.progress import ProgressFn

__all__ = ["build_store_from_texts"]


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
        texts = (
            _checked_text(split, i, text) for i, text in enumerate(rows_of(self._texts[split]))
        )
        empty = True
        for item in labelled(split, texts, self._labels.get(split), self.num_classes, "texts"):
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
    spec: StoreSpec | None = None,
    *,
    tokenizer: Callable[[str], Sequence[str]] = tokenize,
    labels: Mapping[str, Iterable[int] | np.ndarray] | None = None,
    num_classes: int | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Log | None = None,
    source: str = "texts",
    **legacy: Any,
) -> TokenStore:
    """Build a token store from texts, split into tokens by ``tokenizer``, and return it opened.

    As :func:`~textvae.data.ingest.build_store`: the vocabulary is the ``vocab_size - 3`` most
    frequent tokens of the ``train`` split (of the first split when none is named ``train``),
    with textvae's ids (0 padding, 1 start, 2 out-of-vocabulary); every row starts with id 1.

    Parameters
    ----------
    path
        Local path or fsspec URL, as for :func:`~textvae.data.ingest.build_store`.
    texts
        Split name -> texts (an iterable of str, or a function returning a new iterable). The
        vocabulary's split is read twice (counting, then encoding): it must be a list (or
        another re-iterable) or a function, not a one-shot iterator.
    tokenizer
        Text -> list of str tokens (default :func:`~textvae.data.vocab.tokenize`); every result
        is checked.
    labels, num_classes
        As for :func:`~textvae.data.from_ids.build_store_from_ids`.
    spec, overwrite, progress, storage_options, log
        As for :func:`~textvae.data.ingest.build_store`.
    source
        What the texts are, kept in the store's metadata.
    **legacy
        Deprecated: ``vocab_size``, ``max_len``, ``padding``, ``truncating``, ``chunk_rows``;
        pass ``spec=StoreSpec(...)``.

    Raises
    ------
    InvalidArgumentError
        A bad argument, split name, text (not a str), tokenizer result or label.
    TextVAEError
        Whatever :func:`~textvae.data.ingest.build_store` raises.
    """
    splits = check_splits(texts, "texts")
    spec = spec_of(spec, "build_store_from_texts", legacy)
    tokenizer = check_tokenizer(tokenizer)
    num_classes = check_num_classes(num_classes, labels, splits)
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
            labels[split] = labels_of(split, labels[split], num_classes)
            check_counts(split, texts[split], labels[split], "texts")
    corpus = _TextsCorpus(texts, labels, num_classes, vocab_split, str(source))
    corpus.tokenizer = tokenizer
    return build_store(
        path,
        corpus,
        spec,
        overwrite=overwrite,
        progress=progress,
        storage_options=storage_options,
        log=log,
    )
