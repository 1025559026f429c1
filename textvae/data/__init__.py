"""textvae.data: corpora, vocabularies and token stores (no Keras, no TensorFlow).

Read a store with :class:`TokenStore`; build one from a corpus (:func:`open_corpus`) with
:func:`build_store`, or from your own ids or texts with :func:`build_store_from_ids` /
:func:`build_store_from_texts`, its shape given by a :class:`StoreSpec`; turn a ``--data``
argument into an opened store with :func:`resolve_store`; check every chunk with
:func:`verify_store`.

Every name is imported on first use: opening a store imports zarr but neither the corpus
readers nor the ingest's process pool and lock, and ``import textvae.data`` (which the configs
do) imports nothing heavy at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textvae._lazy import attach

if TYPE_CHECKING:
    from textvae.data.corpus import Corpus
    from textvae.data.discover import open_corpus
    from textvae.data.format import DEFAULT_CHUNK_ROWS, StoreSpec
    from textvae.data.from_ids import build_store_from_ids
    from textvae.data.from_texts import build_store_from_texts
    from textvae.data.ingest import build_store
    from textvae.data.location import StoreLocation, is_url
    from textvae.data.resolve import is_store, resolve_store
    from textvae.data.store import TokenStore
    from textvae.data.verify import VerifyReport, verify_store
    from textvae.data.vocab import Vocabulary, tokenize

#: Each public name -> the module of the wing that defines it.
_HOMES = {
    "Corpus": "corpus",
    "DEFAULT_CHUNK_ROWS": "format",
    "StoreLocation": "location",
    "StoreSpec": "format",
    "TokenStore": "store",
    "VerifyReport": "verify",
    "Vocabulary": "vocab",
    "build_store": "ingest",
    "build_store_from_ids": "from_ids",
    "build_store_from_texts": "from_texts",
    "is_store": "resolve",
    "is_url": "location",
    "open_corpus": "discover",
    "resolve_store": "resolve",
    "tokenize": "vocab",
    "verify_store": "verify",
}

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "Corpus",
    "StoreLocation",
    "StoreSpec",
    "TokenStore",
    "VerifyReport",
    "Vocabulary",
    "build_store",
    "build_store_from_ids",
    "build_store_from_texts",
    "is_store",
    "is_url",
    "open_corpus",
    "resolve_store",
    "tokenize",
    "verify_store",
]


__getattr__, __dir__ = attach(__name__, _HOMES)
