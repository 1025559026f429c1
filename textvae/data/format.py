"""The token store's format: what a store holds and how it is laid out.

:class:`StoreSpec` is the shape of a store to build (vocabulary size, ids per row, padding and
truncation, rows per chunk), a frozen, validated dataclass that
:class:`~textvae.config.IngestConfig` holds and the ``build_store*`` functions take.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from textvae._checks import PADDINGS, one_of, positive_int
from textvae.data.vocab import check_vocab_size

__all__ = ["DEFAULT_CHUNK_ROWS", "StoreSpec"]

#: Rows per stored chunk (``chunk_rows``). 1024 rows x 300 ids is 600 kB raw, about 150 kB
#: compressed for IMDB.
DEFAULT_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class StoreSpec:
    """The shape of a token store to build.

    ``vocab_size`` counts every id, the reserved ones included (as Keras' ``num_words``);
    each review is padded or truncated to ``max_len`` ids, at the start (``"pre"``, Keras'
    ``pad_sequences`` default, which keeps a long review's end) or the end (``"post"``);
    ``chunk_rows`` rows are stored per chunk (the unit of compression and of reading).
    """

    vocab_size: int = 20000
    max_len: int = 300
    padding: str = "pre"
    truncating: str = "pre"
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __post_init__(self) -> None:
        check_vocab_size(self.vocab_size)
        positive_int("max_len", self.max_len)
        positive_int("chunk_rows", self.chunk_rows)
        one_of("padding", self.padding, PADDINGS)
        one_of("truncating", self.truncating, PADDINGS)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data."""
        return dataclasses.asdict(self)
