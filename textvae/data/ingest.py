"""Building a token store: :func:`build_store`, its lock, its errors and its one write loop.

A build checks its arguments and the path, takes the path's lock
(:mod:`textvae.data.lock`), builds the vocabulary from the training split, writes ``vocab``,
then each split through :func:`_write_split`, and writes ``complete`` last. The write loop is
the same with one process or several: the rows are cut into chunks of ``chunk_rows`` records
(``shard_rows`` when sharded: one writer per object), a :class:`ChunkEncoder` encodes, pads and
writes each of ``tokens`` (here, or in a worker of :mod:`textvae.data.parallel` or of Dask), and
this process writes ``labels`` and ``lengths`` in row order and gives ``tokens`` its final
shape, then ``groups`` when the corpus names them (:func:`_write_groups`). So a build with
several workers is byte for byte the one of a single process (tested).
An overwrite writes the new store beside the old one and swaps it in when complete
(:mod:`textvae.data.swap`).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zarr

from textvae._compat import deprecated
from textvae.data import parallel, swap
from textvae.data.chunk_encoder import ChunkEncoder
from textvae.data.format import (
    ARRAY_CONFIG,
    ATTR,
    FORMAT,
    GROUP_DTYPE,
    GROUPS,
    StoreSpec,
    compressors,
    label_dtype,
    shard_rows_for,
)
from textvae.data.location import (
    StoreLocation,
    access_error,
    check_remote,
    one_line,
)
from textvae.data.lock import store_lock
from textvae.data.retry import is_transient
from textvae.data.store import TokenStore
from textvae.errors import (
    InvalidArgumentError,
    StoreExistsError,
    StoreUnavailableError,
    StoreWriteError,
    TextVAEError,
)
from textvae.progress import ProgressFn, VocabRows

__all__ = ["ChunkEncoder", "Log", "StoreSource", "build_store", "spec_of"]

#: errno values of a full disk, a quota or a file-size limit (RLIMIT_FSIZE gives EFBIG).
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: labels and lengths are written a whole chunk of theirs at a time: this many chunks of rows.
_VECTOR_CHUNKS = 16

Log = Callable[[str], None]

#: The shape keywords the ``build_store*`` functions took before :class:`StoreSpec`.
_LEGACY_KEYWORDS = tuple(f.name for f in dataclasses.fields(StoreSpec))


class StoreSource(Protocol):
    """What :func:`build_store` reads: a :class:`~textvae.data.corpus.Corpus`, or a source of
    users' token ids or texts (:mod:`textvae.data.from_ids`, :mod:`textvae.data.from_texts`).

    ``vocabulary`` returns an object with ``size``, ``padded(vocab_size).tokens`` and the
    special ids ``pad_id``, ``start_id``, ``oov_id`` (None: the ids have none), as
    :class:`~textvae.data.vocab.Vocabulary` has; ``encoded`` yields ``(ids, label)`` of every
    row of a split in order, ids in ``[0, vocab_size)``, label a class id, -1 (unlabelled) or
    None when ``num_classes`` is None (no labels). A source may also say that workers may
    tokenise it (``tokenizes_in_workers()``, then ``reviews(split)`` gives its texts) or encode
    its raw records (``encodes_raw_in_workers()``, then ``raw_reviews``, ``check_vocab`` and
    ``encode_raw``), as :class:`~textvae.data.corpus.Corpus` does; without them the parent
    encodes and workers only pad and write. A source may name a group per row too
    (``groups(split)``: ``(what a group is, a hashable key per row in row order)`` or None, as
    :class:`~textvae.data.corpus.JsonlCorpus` does for IMDB's movies): the store then has a
    ``groups`` array (:mod:`textvae.data.format`).
    """

    source: str
    splits: tuple[str, ...]
    num_classes: int | None

    def vocabulary(self, vocab_size: int, progress: ProgressFn | None = None) -> Any: ...

    def encoded(self, split: str, vocab: Any) -> Iterator[tuple[Sequence[int], int | None]]: ...


def _says(source: Any, question: str) -> bool:
    """A source's answer to ``question`` (a method of no arguments), False if it has none."""
    ask = getattr(source, question, None)
    return bool(ask()) if callable(ask) else False


def spec_of(
    spec: StoreSpec | None, function: str, legacy: Mapping[str, Any], *, stacklevel: int = 4
) -> StoreSpec:
    """The :class:`StoreSpec` a ``build_store*`` function was given: ``spec``, or (deprecated)
    one built from the old keywords ``vocab_size``, ``max_len``, ``padding``, ``truncating``,
    ``chunk_rows`` (``legacy``: the function's other keyword arguments)."""
    for name in legacy:
        if name not in _LEGACY_KEYWORDS:
            raise TypeError(f"{function}() got an unexpected keyword argument '{name}'")
    given = dict(legacy)
    if given:
        if spec is not None:
            raise InvalidArgumentError(
                f"{function}() takes the store's shape as `spec=StoreSpec(...)` or as the "
                f"deprecated keywords, not both. Received: spec={spec!r} and {sorted(given)}"
            )
        deprecated(
            f"{function}(vocab_size=..., max_len=...)",
            f"{function}(spec=StoreSpec(vocab_size=..., max_len=...))",
            stacklevel=stacklevel,
        )
        for required in ("vocab_size", "max_len"):
            if required not in given:
                raise TypeError(f"{function}() missing required keyword argument: '{required}'")
        return StoreSpec(**given)
    if not isinstance(spec, StoreSpec):
        raise InvalidArgumentError(
            f"`spec` must be a StoreSpec (e.g. StoreSpec(vocab_size=20000, max_len=300)). "
            f"Received: spec={spec!r}"
        )
    return spec


def build_store(
    path: str | os.PathLike[str],
    corpus: StoreSource,
    spec: StoreSpec | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    storage_options: Mapping[str, Any] | None = None,
    log: Log | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    **legacy: Any,
) -> TokenStore:
    """Build a token store (format 2) from ``corpus``, streaming, and return it opened.

    The vocabulary comes from the training split only. Rows keep source order. Padding and
    truncation follow ``keras.utils.pad_sequences`` (``"pre"`` keeps the end of a long review).
    ``complete`` is written last; if the build fails or is interrupted (Ctrl-C), a local store
    it created is removed, and any store left behind (remote) is refused by
    :meth:`TokenStore.open`. Every chunk carries a crc32c checksum. The build holds the lock
    ``<path>.lock`` (:class:`~textvae.data.lock.StoreLock`) from before it looks at ``path``
    until it ends.

    Parameters
    ----------
    path
        Local path (``file://`` URLs included) or fsspec URL (``s3://bucket/imdb.zarr``).
    corpus
        The reviews, e.g. from :func:`~textvae.data.discover.open_corpus` (or any
        :class:`StoreSource`).
    spec
        The store's shape: vocabulary size, ids per row, padding, truncation, rows per chunk.
    overwrite
        Replace the store at ``path``. Without it an existing path raises StoreExistsError
        (for a URL: any object under the ``path/`` prefix); a local path that is neither a
        zarr group nor an empty folder is never deleted (StoreExistsError). The new store is
        built beside the old one (``<path>.textvae-new-<pid>``, so there must be room for
        both) and put in its place only once complete (:mod:`textvae.data.swap`): a build
        that fails leaves the old store as it was, and its error says so. Every build first
        finishes or undoes what an interrupted overwrite of ``path`` left.
    progress
        A :data:`~textvae.progress.ProgressFn`, called as work advances: stage ``"vocab"``
        while counting words, then the split name while encoding its rows (count = rows done).
    storage_options
        Passed to fsspec for URLs (``endpoint_url``, ``key``/``secret``, ...); s3fs also reads
        the usual ``AWS_*`` environment variables, ``AWS_ENDPOINT_URL`` included.
    log
        Called with a line when the lock of a build that is gone is taken over (default: the
        line goes to stderr).
    workers
        Processes that ingest (``None``: all cores). With more than 1, workers count the words
        and encode and write chunks while this process reads the corpus
        (:mod:`textvae.data.parallel`); the store is byte for byte the one ``workers=1`` writes.
    scheduler
        Workers on Dask instead (:mod:`textvae.data.dask_ingest`): ``"local"`` (``workers``
        Dask processes) or a scheduler's address, ``workers`` unset. The same store.
    **legacy
        Deprecated: ``vocab_size``, ``max_len``, ``padding``, ``truncating``, ``chunk_rows``;
        pass ``spec=StoreSpec(...)``.

    Raises
    ------
    StoreLockedError
        Another build of ``path`` is running (its pid, host and start time are named).
    StoreExistsError
        Something is at ``path`` and ``overwrite`` is false.
    StoreNotFoundError
        The bucket of an ``s3://`` URL does not exist.
    StoreAccessError
        Object storage refused access (credentials, permissions).
    StoreWriteError
        A local ``path`` or its lock cannot be created (a parent is a file, a folder without
        write permission, or a file system that takes no files, as ``/proc``), or the disk
        filled during the build (the partial store is removed).
    StoreUnavailableError
        Object storage stopped answering during the build.
    ClusterError
        The Dask scheduler is unreachable or gone, or its workers died.
    ValueError
        An argument out of range (see :mod:`textvae._checks` for the wording).
    """
    spec = spec_of(spec, "build_store", legacy)
    scheduler = parallel.check_scheduler(scheduler, workers)
    workers = parallel.check_workers(workers)
    # storage options for a local path are refused before any work
    location = StoreLocation.parse(path, storage_options)
    path, storage_options = location.path, location.storage_options
    if location.is_url:
        check_remote(path, storage_options)  # a missing bucket: one clear error, no lock
    else:
        _check_writable(path)  # before counting words: that can take minutes
    log = log if log is not None else functools.partial(print, file=sys.stderr)
    with parallel.engines(workers, scheduler) as pass_engines:
        lock = store_lock(path, storage_options, log=log)
        try:
            lock.acquire()
        except OSError as err:  # a parent that cannot hold the lock file (e.g. under /proc)
            if location.is_url or isinstance(err, TextVAEError):
                raise
            reason = err.strerror or one_line(err)
            raise _write_error(path, f"cannot create {lock.lock_path}: {reason}") from err
        try:
            _build_locked(location, corpus, spec, overwrite, progress, pass_engines, log)
        finally:
            lock.release()
    return TokenStore.open(path, storage_options=storage_options)


def _write_error(path: str, reason: str) -> StoreWriteError:
    return StoreWriteError(
        f"cannot write the store at {path} ({reason}): choose a STORE path inside a folder "
        "you can write to"
    )


def _check_writable(path: str) -> None:
    """Refuse a local store path that cannot be created, without creating anything.

    The nearest existing ancestor of ``path`` must be a folder we may write into (zarr creates
    the folders below it).
    """
    ancestor = Path(path).absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise _write_error(path, f"{ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise _write_error(path, f"no permission to write in {ancestor}")


def _replaceable(path: Path) -> bool:
    """Whether ``--overwrite`` may delete the local ``path``: a zarr group (a store, perhaps an
    interrupted one) or an empty folder, never a user's file or folder of files."""
    return path.is_dir() and ((path / "zarr.json").is_file() or not any(path.iterdir()))


def _build_error(
    location: StoreLocation, err: BaseException, *, kept: bool = False
) -> BaseException | None:
    """The error a failed build raises instead of ``err`` (None: ``err`` itself).

    ``kept``: the build was an overwrite, and the old store was kept as it was (said in the
    message)."""
    path = location.path
    if isinstance(err, PermissionError) and location.is_url:
        return access_error(path, err)
    if not location.is_url and isinstance(err, OSError) and err.errno in _DISK_FULL:
        removed = "the partial store was removed"
        if kept:  # an overwrite needs room for both stores until the swap
            removed = f"the new build was removed and the store at {path} was kept as it was"
        return StoreWriteError(
            f"cannot write the store at {path} ({one_line(err)}): the disk is full or a "
            f"size limit was reached; {removed}: free space or choose another STORE path, "
            "and run `textvae-ingest` again"
        )
    if location.is_url and isinstance(err, Exception) and is_transient(err):
        if kept:
            return StoreUnavailableError(
                f"lost {path} during the build ({type(err).__name__}: {one_line(err)}): the "
                f"store at {path} was kept as it was; when the storage answers again, run "
                "`textvae-ingest` again with --overwrite"
            )
        return StoreUnavailableError(
            f"lost {path} during the build ({type(err).__name__}: {one_line(err)}): the "
            "partial store is refused on open; when the storage answers again, run "
            "`textvae-ingest` again with --overwrite"
        )
    if kept and isinstance(err, TextVAEError) and len(err.args) == 1:
        # the corpus or an argument stopped the build: say what became of the old store
        try:
            return type(err)(f"{err.args[0]}; the store at {path} was kept as it was")
        except TypeError:  # a class that takes other arguments: its own message then
            return None
    return None


def _build_locked(
    location: StoreLocation,
    corpus: StoreSource,
    spec: StoreSpec,
    overwrite: bool,
    progress: ProgressFn | None,
    pass_engines: parallel.Engines | None,
    log: Log,
) -> None:
    path, options, local = location.path, location.storage_options, not location.is_url
    swap.recover(location, log)
    existed = Path(path).exists() if local else check_remote(path, options, exists=True)
    if existed and not overwrite:
        raise StoreExistsError(
            f"{path} already exists: choose another path, delete it, or pass --overwrite"
        )
    if existed and local and not _replaceable(Path(path)):
        raise StoreExistsError(
            f"{path} exists and is not a token store: --overwrite replaces only a store or an "
            "empty folder; choose another path, or delete it yourself"
        )
    # An existing store is replaced only once its replacement is complete (textvae.data.swap):
    # the new one is built at a sibling, so a build that fails leaves the old one as it was.
    beside = swap.sibling(path if location.is_url else os.path.abspath(path))
    target = StoreLocation(beside, options) if existed else location
    counting = VocabRows(progress)  # the train split's rows, which choose the shards
    try:
        # counting tasks of two chunks: 2,048 reviews by default, several in a small test
        vocab = parallel.parallel_vocabulary(
            corpus, spec.vocab_size, pass_engines, counting, batch_rows=2 * spec.chunk_rows
        )
        spec = dataclasses.replace(spec, shard_rows=shard_rows_for(spec, counting.rows or None))
        if vocab.size > spec.vocab_size:
            raise InvalidArgumentError(
                f"corpus vocabulary has {vocab.size} ids, more than vocab_size={spec.vocab_size}"
            )
        _write_store(target, corpus, spec, vocab, progress, pass_engines)
    except BaseException as err:
        if local and Path(target.path).exists():
            shutil.rmtree(target.path, ignore_errors=True)
        elif existed:
            swap.remove(target)
        replaced = _build_error(location, err, kept=existed)
        if replaced is not None:
            raise replaced from err
        raise
    if existed:
        swap.swap_in(location, target)


def _write_store(
    location: StoreLocation,
    corpus: StoreSource,
    spec: StoreSpec,
    vocab: Any,
    progress: ProgressFn | None,
    pass_engines: parallel.Engines | None,
) -> None:
    """Write the whole store at ``location`` (nothing there), ``complete`` last."""
    path, options, local = location.path, location.storage_options, not location.is_url
    try:
        group = zarr.open_group(store=path, mode="w", storage_options=options, zarr_format=3)
    except OSError as err:
        if local and not isinstance(err, StoreWriteError):
            raise _write_error(path, one_line(err)) from err
        raise
    meta = {
        "format": FORMAT,
        "vocab_size": spec.vocab_size,
        "max_len": spec.max_len,
        "pad_id": vocab.pad_id,
        "start_id": vocab.start_id,
        "oov_id": vocab.oov_id,
        "padding": spec.padding,
        "truncating": spec.truncating,
        "splits": list(corpus.splits),
        "source": corpus.source,
        "num_classes": corpus.num_classes,
        "shard_rows": spec.shard_rows,
        "complete": False,
    }
    group.attrs[ATTR] = meta
    vocab_array = group.create_array(
        "vocab",
        shape=(spec.vocab_size,),
        dtype=str,
        chunks=(spec.vocab_size,),
        compressors=compressors(),
        config=ARRAY_CONFIG,
    )
    vocab_array[:] = np.array(vocab.padded(spec.vocab_size).tokens, dtype=object)
    encoder = ChunkEncoder(location, spec, _mode(corpus, pass_engines), vocab, corpus)
    grouped: dict[str, str] = {}  # what each split's groups are, for the splits that have them
    if pass_engines is None:
        for split in corpus.splits:
            _write_split(group, split, corpus, encoder, _map_here(encoder), progress)
            grouped.update(_write_groups(group, split, corpus, spec))
    else:
        # on an error, the engine stops its tasks before the caller's cleanup
        with pass_engines({"encoder": encoder.for_workers()}) as engine:
            map_chunks = functools.partial(engine.run, parallel.encode_chunk)
            for split in corpus.splits:
                _write_split(group, split, corpus, encoder, map_chunks, progress)
                grouped.update(_write_groups(group, split, corpus, spec))
    if grouped:
        meta["group_by"] = grouped
    group.attrs[ATTR] = {**meta, "complete": True}


def _write_groups(
    group: zarr.Group, split: str, corpus: StoreSource, spec: StoreSpec
) -> dict[str, str]:
    """Write ``<split>/groups`` when the corpus names a group for every row of ``split``
    (``corpus.groups(split)``: ``(what a group is, a key per row in row order)`` or None; a
    source without the method has none); return ``{split: what a group is}``, or ``{}``.

    Keys become dense int32 numbers in order of first appearance. Written here, after the
    split's rows, from the corpus alone: a build with workers writes the same bytes.
    """
    ask = getattr(corpus, "groups", None)
    found = ask(split) if callable(ask) else None
    if found is None:
        return {}
    name, keys = found
    numbers: dict[Any, int] = {}
    values = np.fromiter((numbers.setdefault(key, len(numbers)) for key in keys), dtype=GROUP_DTYPE)
    rows = group[f"{split}/tokens"].shape[0]
    if len(values) != rows:
        raise InvalidArgumentError(
            f"{corpus.source} names {len(values)} groups for the {rows} rows of split "
            f"{split!r}: a group must be given for every row, or for none"
        )
    shard = spec.shard_rows
    array = group.create_array(
        f"{split}/{GROUPS}",
        shape=(rows,),
        dtype=GROUP_DTYPE,
        chunks=(spec.chunk_rows * _VECTOR_CHUNKS,),
        shards=(shard * _VECTOR_CHUNKS,) if shard else None,
        compressors=compressors(),
        fill_value=-1,
        config=ARRAY_CONFIG,
    )
    array[:] = values
    return {split: name}


# --------------------------------------------------------------------------------------------
# The write loop


def _mode(corpus: StoreSource, pass_engines: parallel.Engines | None) -> str:
    """How chunks are encoded: ``"ids"`` (the parent runs ``corpus.encoded``; always with one
    process), ``"texts"`` (workers tokenise ``reviews``) or ``"raw"`` (workers run
    ``encode_raw`` on ``raw_reviews``)."""
    if pass_engines is not None and _says(corpus, "tokenizes_in_workers"):
        return "texts"
    if pass_engines is not None and _says(corpus, "encodes_raw_in_workers"):
        return "raw"
    return "ids"


#: ``map_chunks(tasks, consume)``: ``consume(encoder(*task))`` for every task, in order.
MapChunks = Callable[[Iterator[tuple[str, int, list[Any]]], Callable[[Any], None]], None]


def _map_here(encoder: ChunkEncoder) -> MapChunks:
    """The chunks encoded in this process."""

    def map_chunks(
        tasks: Iterator[tuple[str, int, list[Any]]], consume: Callable[[Any], None]
    ) -> None:
        for task in tasks:
            consume(encoder(*task))

    return map_chunks


def _write_split(
    group: zarr.Group,
    split: str,
    corpus: StoreSource,
    encoder: ChunkEncoder,
    map_chunks: MapChunks,
    progress: ProgressFn | None,
) -> None:
    """Write ``split``: chunks (shards) of ``tokens`` through ``map_chunks`` (here or in workers),
    then ``labels`` and ``lengths`` here in row order; ``progress(split, rows_done)``."""
    spec = encoder.spec
    codecs = compressors()
    shard = spec.shard_rows  # 0 (resolved by the build): every chunk is its own object
    tokens = group.create_array(
        f"{split}/tokens",
        shape=(0, spec.max_len),
        dtype=spec.token_dtype,
        chunks=(spec.chunk_rows, spec.max_len),
        shards=(shard, spec.max_len) if shard else None,
        compressors=codecs,
        fill_value=encoder.vocab.pad_id,
        config=ARRAY_CONFIG,
    )
    encoder.arrays[split] = tokens
    vectors = {"lengths": (np.dtype(np.int32), 0)}
    if corpus.num_classes is not None:
        vectors = {"labels": (label_dtype(corpus.num_classes), -1), **vectors}
    arrays = {
        name: group.create_array(
            f"{split}/{name}",
            shape=(0,),
            dtype=dtype,
            chunks=(spec.chunk_rows * _VECTOR_CHUNKS,),
            shards=(shard * _VECTOR_CHUNKS,) if shard else None,
            compressors=codecs,
            fill_value=fill,
            config=ARRAY_CONFIG,
        )
        for name, (dtype, fill) in vectors.items()
    }
    # labels and lengths are written a whole chunk of theirs at a time: a chunk's bytes are its
    # values and the fill value past the array's end, however many writes built it, and one
    # write per chunk spares the parent (which also reads the corpus) most of zarr's work.
    span = (shard or spec.chunk_rows) * _VECTOR_CHUNKS
    held = {name: np.empty(span, dtype=array.dtype) for name, array in arrays.items()}
    n_rows = 0  # rows done (chunks of tokens written)
    n_written = 0  # rows of labels and lengths written

    def write_vectors() -> None:
        nonlocal n_written
        for name, array in arrays.items():
            array.resize((n_rows,))
            array[n_written:n_rows] = held[name][: n_rows - n_written]
        n_written = n_rows

    def consume(result: tuple[list[Any], list[int]]) -> None:
        nonlocal n_rows
        for label, length in zip(*result, strict=True):
            if n_rows - n_written == span:
                write_vectors()
            at = n_rows - n_written
            held["lengths"][at] = length
            if "labels" in held:
                held["labels"][at] = label  # the conversion to the stored dtype
            n_rows += 1
        if progress is not None:
            progress(split, n_rows)

    records = encoder.records(split)
    unit = shard or spec.chunk_rows
    tasks = ((split, i * unit, batch) for i, batch in enumerate(parallel.batches(records, unit)))
    map_chunks(tasks, consume)
    if n_rows > n_written:
        write_vectors()
    tokens.resize((n_rows, spec.max_len))
