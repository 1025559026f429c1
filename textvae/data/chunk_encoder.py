"""The chunk encoder of a build: one chunk of a split's records encoded, padded into
``<split>/tokens``, its labels and lengths returned. The same code runs in the building process
and in every worker of a parallel build (:mod:`textvae.data.parallel`, pickled to each once,
without the arrays it opened); :func:`textvae.data.ingest.build_store` writes the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from textvae.data.format import ARRAY_CONFIG, StoreSpec
from textvae.data.location import StoreLocation
from textvae.data.vocab import pad_row, tokenize

__all__ = ["ChunkEncoder"]


@dataclass
class ChunkEncoder:
    """Encodes one chunk of a split's records, pads it into ``<split>/tokens`` and returns its
    (labels, lengths): the same code in this process and in every worker (pickled to each once,
    without the arrays it opened).

    ``mode`` says what the records are: ``"ids"`` (``(ids, label)`` of ``corpus.encoded``),
    ``"texts"`` (``(text, label)`` of ``corpus.reviews``, tokenised with the built-in
    :func:`~textvae.data.vocab.tokenize`) or ``"raw"`` (``corpus.raw_reviews``).
    """

    location: StoreLocation
    spec: StoreSpec
    mode: str
    vocab: Any
    corpus: Any
    arrays: dict[str, zarr.Array] = field(default_factory=dict, repr=False)

    def for_workers(self) -> ChunkEncoder:
        """The copy that worker processes get: without the arrays opened here, and without the
        corpus (unless it encodes raw records) or the vocabulary (unless it encodes)."""
        return dataclasses.replace(
            self,
            vocab=None if self.mode == "ids" else self.vocab,
            corpus=self.corpus if self.mode == "raw" else None,
            arrays={},
        )

    def records(self, split: str) -> Iterable[Any]:
        """The records of ``split`` this encoder takes, read in this process."""
        if self.mode == "texts":
            return self.corpus.reviews(split)
        if self.mode == "raw":
            self.corpus.check_vocab(self.vocab)
            return self.corpus.raw_reviews(split)
        return self.corpus.encoded(split, self.vocab)

    def __call__(self, split: str, start: int, records: list[Any]) -> tuple[list[Any], list[int]]:
        if self.mode == "texts":
            encode = self.vocab.encode
            encoded = [(encode(tokenize(text)), label) for text, label in records]
        elif self.mode == "raw":
            encoded = self.corpus.encode_raw(split, start, records, self.vocab)
        else:
            encoded = records
        spec = self.spec
        view = self._tokens(split, start + len(encoded))
        block = np.full((len(encoded), spec.max_len), view.fill_value, dtype=view.dtype)
        lengths, labels = [], []
        for row, (ids, label) in zip(block, encoded, strict=True):
            pad_row(ids, spec.max_len, spec.padding, spec.truncating, row)
            lengths.append(len(ids))
            labels.append(label)
        view[start : start + len(encoded)] = block
        return labels, lengths

    def _tokens(self, split: str, end: int) -> zarr.Array:
        """``<split>/tokens`` with ``end`` rows: the parent sets the real shape at the end, so
        the shape is widened here in memory only (no metadata is written)."""
        opened = self.arrays.get(split)
        if opened is None:
            options = self.location.storage_options
            opened = zarr.open_array(
                store=self.location.path,
                path=f"{split}/tokens",
                mode="r+",
                storage_options=dict(options) if options else None,
                config=dict(ARRAY_CONFIG),
            )
            self.arrays[split] = opened
        inner = opened.async_array
        metadata = inner.metadata.update_shape((end, self.spec.max_len))
        return zarr.Array(zarr.AsyncArray(metadata, inner.store_path, inner.config))
