"""From what a user passes as ``--data`` to an opened store: :func:`resolve_store`.

A store (a URL, or a local zarr group) is opened; a corpus is ingested once into a cache folder
(:func:`default_store_path`) and that store opened on later runs; nothing means IMDB, found
locally or downloaded through ``keras.datasets``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from textvae.data.format import StoreSpec
from textvae.data.location import check_storage_options, is_url, local_path, url_options
from textvae.data.store import TokenStore
from textvae.errors import IncompleteStoreError, StoreNotFoundError, TextVAEError
from textvae.progress import ProgressFn

__all__ = [
    "CACHE_ENV_VAR",
    "check_data",
    "corpus_fingerprint",
    "default_store_path",
    "is_store",
    "resolve_store",
]

#: Environment variable naming the cache folder (default ``~/.cache/textvae``) in whose
#: ``stores/`` :func:`resolve_store` keeps the stores it ingests.
CACHE_ENV_VAR = "TEXTVAE_CACHE"


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a token store rather than a corpus to ingest.

    A URL always does (corpora are read from local files only); a local path does when it is a
    zarr v3 group (a folder holding ``zarr.json``). Whether the store is valid is
    :meth:`TokenStore.open`'s to say.
    """
    if is_url(path):
        return True
    return (Path(local_path(path)) / "zarr.json").is_file()


def _cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "textvae")


def corpus_fingerprint(source: str | os.PathLike[str]) -> str:
    """A short hash of the corpus files at ``source`` as they are now: each file's name (relative
    to ``source``), size and modification time. Reading them is not needed: a corpus that grew,
    shrank or was rewritten gets another fingerprint (a folder of 100,000 files is stat-ed in
    well under a second). A missing ``source`` has one too; :func:`open_corpus` reports it.
    """
    path = Path(source)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha1()
    for file in files:
        stat = file.stat()
        name = file.name if file == path else str(file.relative_to(path))
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:8]


def _store_name(source: str | os.PathLike[str], files: str, vocab_size: int, max_len: int) -> str:
    resolved = str(Path(source).resolve())
    where = hashlib.sha1(resolved.encode()).hexdigest()[:8]
    name = Path(resolved).name.split(".")[0] or "corpus"
    return f"{name}-{where}-{files}-v{vocab_size}-l{max_len}.zarr"


def default_store_path(source: str | os.PathLike[str], vocab_size: int, max_len: int) -> Path:
    """Where :func:`resolve_store` keeps the store it ingests from the corpus ``source``.

    ``$TEXTVAE_CACHE/stores/<name>-<hash of the absolute path>-<corpus_fingerprint>-v<vocab_size>
    -l<max_len>.zarr`` (the cache defaults to ``~/.cache/textvae``): the same corpus at the same
    sizes is ingested once and reused, and a corpus whose files changed (size or modification
    time) gets a new store instead of the stale one.
    """
    files = corpus_fingerprint(source)
    return _cache_dir() / "stores" / _store_name(source, files, vocab_size, max_len)


def _stale_stores(source: str, vocab_size: int, max_len: int, target: Path) -> list[Path]:
    """Cached stores of the same corpus path and sizes as ``target``, built from older files."""
    pattern = _store_name(source, "?" * 8, vocab_size, max_len)
    return sorted(p for p in target.parent.glob(pattern) if p != target)


def _groups_now(source: str) -> bool:
    """Whether the corpus at ``source`` names groups for its train split (read in full only
    when :meth:`~textvae.data.corpus.Corpus.offers_groups` says it may)."""
    from textvae.data.discover import open_corpus

    try:
        corpus = open_corpus(source)
        return bool(corpus.offers_groups()) and corpus.groups("train") is not None
    except (TextVAEError, OSError):
        return False  # the store is used as it is; a corpus problem is not this run's


def check_data(data: str | os.PathLike[str] | None, *, vocab_size: int, max_len: int) -> None:
    """Refuse now what :func:`resolve_store` would refuse about a local ``data``: a store that
    is incomplete, damaged or of other sizes (:meth:`TokenStore.open`), or a corpus path that is
    missing or of no known layout (:func:`~textvae.data.discover.open_corpus`).

    Reads no rows, ingests nothing, needs neither the network nor Keras: the commands call it
    before they import Keras (seconds), so such a mistake is one line at once. A URL and
    ``None`` (IMDB) are left to :func:`resolve_store`.
    """
    if data is None or is_url(data):
        return
    if is_store(data):
        TokenStore.open(local_path(data), vocab_size=vocab_size, max_len=max_len)
        return
    from textvae.data.discover import open_corpus

    open_corpus(local_path(data))


def resolve_store(
    data: str | os.PathLike[str] | None,
    *,
    vocab_size: int,
    max_len: int,
    store_path: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: ProgressFn | None = None,
) -> TokenStore:
    """Open the store ``data`` names, or ingest the corpus ``data`` names (once) and open that.

    Parameters
    ----------
    data
        A token store (a URL, or a local zarr group: see :func:`is_store`), a corpus source
        (anything :func:`~textvae.data.discover.open_corpus` reads), or ``None``: IMDB, found
        locally (:func:`~textvae.data.discover.find_imdb`) or downloaded through
        ``keras.datasets`` (which fails with a clear message offline).
    vocab_size, max_len
        What the store must have; an existing store built otherwise raises
        :class:`~textvae.errors.StoreMismatchError`.
    store_path
        Where to keep the store ingested from a corpus (a local path or a URL); default
        :func:`default_store_path`. A complete store there is reused, an interrupted build
        there is built again. Ignored when ``data`` is a store.
    storage_options
        Passed to fsspec for whichever of ``data`` / ``store_path`` is a URL.
    log
        Called with one line for each decision (reuse, ingest, download).
    progress
        Passed to :func:`~textvae.data.ingest.build_store` when a corpus is ingested.

    Raises
    ------
    ValueError
        ``storage_options`` given, but neither ``data`` nor ``store_path`` is a URL.
    TextVAEError
        Whatever :meth:`TokenStore.open`, :func:`~textvae.data.ingest.build_store` and
        :func:`~textvae.data.discover.open_corpus` raise.
    """
    expected = {"vocab_size": vocab_size, "max_len": max_len}
    storage_options = check_storage_options(storage_options, data, store_path)
    if data is not None and is_store(data):
        data = local_path(data)
        return TokenStore.open(data, storage_options=url_options(data, storage_options), **expected)
    # The writer side (corpus readers, ingest, lock) only when a corpus is to be ingested.
    from textvae.data.discover import find_imdb, open_corpus
    from textvae.data.ingest import build_store
    from textvae.data.keras_imdb import download_keras_imdb
    from textvae.data.lock import current_builder

    if data is None:
        found = find_imdb()
        if found is None:
            log("IMDB not found locally: downloading it through keras.datasets")
            found = download_keras_imdb()
        source = str(found)
    else:
        source = local_path(data)
    target = (
        local_path(store_path)
        if store_path is not None
        else str(default_store_path(source, vocab_size, max_len))
    )
    options = url_options(target, storage_options)
    interrupted = False
    try:
        store = TokenStore.open(target, storage_options=options, **expected)
    except StoreNotFoundError:
        pass  # nothing there yet (a missing bucket is reported again by build_store)
    except IncompleteStoreError:
        if current_builder(target, options) is not None:
            raise  # another process is building it: its message says who
        interrupted = True
        log(f"{target} is an interrupted build: building it again")
    else:
        if store_path is not None or store.has_groups("train") or not _groups_now(source):
            log(f"using the store {target} (built from {store.attrs.get('source')})")
            return store
        # cached before groups were stored: ingested again once, so validation holds out
        # whole groups (IMDB: movies) rather than reviews of movies trained on
        interrupted = True
        log(f"{target} has no groups, which {source} now gives: ingesting it again")
    corpus = open_corpus(source)  # a missing or unknown corpus is reported before "ingesting"
    stale = (
        [] if store_path is not None else _stale_stores(source, vocab_size, max_len, Path(target))
    )
    if stale:
        log(
            f"{source} changed since {stale[-1]} was built from it (its files' sizes or "
            "modification times differ): ingesting it again (delete the old store to free space)"
        )
    log(f"ingesting {source} into {target} (once; later runs reuse it)")
    return build_store(
        target,
        corpus,
        StoreSpec(vocab_size=vocab_size, max_len=max_len),
        overwrite=interrupted,
        progress=progress,
        storage_options=options,
        log=log,
    )
