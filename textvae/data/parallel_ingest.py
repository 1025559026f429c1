"""Parallel ingest: counting words and encoding chunks of a corpus in several processes.

:func:`~textvae.data.store.build_store` with ``workers > 1`` uses this module; ``workers=1`` never
does. Measured on IMDB (README "textvae-ingest"), a single process spends about 40% of its time
in the tokenizer's regex, 30% looking up ids, 10% counting words and 15% reading and parsing the
corpus (gzip, JSON, CSV or files), the rest padding and compressing chunks. So:

- **the parent reads**: it alone iterates the corpus (``corpus.reviews(split)``) in source order,
  exactly as one process does, so every reader error is the same error at the same record;
- **workers do the rest**: in the vocabulary pass each task counts the tokens of a batch of
  reviews and the parent adds the counts (the vocabulary is the one a single process builds:
  :meth:`~textvae.data.vocab.Vocabulary.from_counts` does not depend on the order of counting); in
  the encoding pass each task is one chunk of rows (``chunk_rows``): the worker tokenizes,
  looks up, pads and writes that chunk of ``tokens`` itself, so no two processes write one
  chunk; the parent writes ``labels`` and ``lengths`` (5 bytes a row) in row order, the way one
  process does, and sets the arrays' final shape. The arrays are byte for byte those of one
  process (tested).

Memory stays bounded: at most ``2 x workers`` tasks (one chunk of reviews each) are in flight.
A corpus that does not tokenize with the built-in :func:`~textvae.data.vocab.tokenize` (Keras'
``imdb.npz``, a custom tokenizer, a source of ids) is encoded by the parent with its own
``encoded``; workers still pad, compress and write the chunks.

Processes are forked when that is safe (no numba thread pool launched, no TensorFlow, PyTorch
or JAX imported, no other threads than zarr's and fsspec's IO threads, which reset themselves
in a fork child): forking costs milliseconds where a fresh interpreter importing textvae costs
about a second of CPU per worker. Otherwise they come from a ``forkserver`` (a clean process
that imports this module once). Workers ignore Ctrl-C (the parent stops them) and exit when the
parent dies. On any failure the parent cancels the queued tasks and waits for the running ones
(one chunk each) before the build's cleanup removes the partial store.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from textvae._checks import int_at_least
from textvae.data.vocab import Vocabulary, pad_row, tokenize
from textvae.progress import VOCAB_STAGE, ProgressFn

__all__ = [
    "ParallelWriter",
    "check_workers",
    "default_workers",
    "parallel_vocabulary",
    "tokenizes_in_workers",
]

#: Tasks in flight per worker: one being worked on, one queued, so no worker waits for the
#: parent between tasks, and at most ``2 x workers`` chunks of reviews are held in memory.
_IN_FLIGHT_PER_WORKER = 2
#: Modules whose threads make fork() unsafe (thread pools a fork child inherits half of).
_FORK_UNSAFE_MODULES = ("tensorflow", "torch", "jax")
#: Threads a fork child can do without: zarr's and fsspec's event-loop threads and their
#: executors' idle threads (zarr and fsspec register at-fork hooks that give the child new ones).
_FORK_SAFE_THREADS = ("zarr_io", "fsspecIO", "asyncio_")
#: Python >= 3.12's warning on fork() in a process with threads.
_FORK_WARNING = r".*use of fork\(\) may lead to deadlocks"
#: How often a worker checks that the parent is still alive.
_PARENT_POLL_S = 0.5


def default_workers() -> int:
    """All cores: ``os.cpu_count()`` (1 when unknown)."""
    return os.cpu_count() or 1


def check_workers(workers: Any) -> int:
    """``workers`` as a positive int; ``None`` means :func:`default_workers`.

    Raises
    ------
    InvalidArgumentError
        Not an integer >= 1.
    """
    if workers is None:
        return default_workers()
    return int_at_least("workers", workers, 1, reason="it counts the ingest processes")


# --------------------------------------------------------------------------------------------
# How a corpus is split between the parent (reading) and the workers (the rest)


def tokenizes_in_workers(corpus: Any) -> bool:
    """Whether workers can tokenize ``corpus``'s texts themselves: a :class:`Corpus` that counts
    and encodes with the base class' methods and the built-in :func:`tokenize`."""
    from textvae.data.corpus import Corpus

    cls = type(corpus)
    return (
        isinstance(corpus, Corpus)
        and cls.count_words is Corpus.count_words
        and cls.vocabulary is Corpus.vocabulary
        and cls.encoded is Corpus.encoded
        and getattr(corpus, "tokenizer", tokenize) is tokenize
    )


def _encodes_raw_in_workers(corpus: Any) -> bool:
    """Whether workers can encode ``corpus``'s raw reviews: Keras' ``imdb.npz`` (word ranks),
    whose per-review checks and id mapping are most of its cost."""
    from textvae.data.corpus import KerasImdbCorpus

    return isinstance(corpus, KerasImdbCorpus) and type(corpus).encoded is KerasImdbCorpus.encoded


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------------------------
# Process pool


def _start_method() -> str:
    """``"fork"`` when forking this process is safe, else ``"forkserver"`` (``"spawn"`` where
    neither exists)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and _fork_is_safe():
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _fork_is_safe() -> bool:
    # numba's GNU OpenMP pool kills or hangs a fork child once it has run (DESIGN.md).
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and getattr(parallel, "_is_initialized", False):
        return False
    if any(name in sys.modules for name in _FORK_UNSAFE_MODULES):
        return False
    main = threading.main_thread()
    return all(t is main or t.name.startswith(_FORK_SAFE_THREADS) for t in threading.enumerate())


def _context() -> multiprocessing.context.BaseContext:
    method = _start_method()
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # The server imports this module once; each worker is then a fork of it.
        context.set_forkserver_preload([__name__])
    return context


def _watch_parent(parent_pid: int) -> None:
    """In a worker: exit when the parent is gone (killed), so no worker outlives it."""
    while True:
        threading.Event().wait(_PARENT_POLL_S)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass


_STATE: dict[str, Any] = {}


def _init_worker(parent_pid: int, state: dict[str, Any]) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides (it stops the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    _STATE.clear()
    _STATE.update(state)


def _sendable(err: BaseException) -> BaseException:
    """``err`` if it survives pickling back to the parent, else a RuntimeError saying what it
    was (an exception that fails to unpickle would break the whole pool)."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return RuntimeError(f"{type(err).__name__}: {err}")


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a task in a worker; an error that would not unpickle in the parent is sent as a
    RuntimeError naming it."""
    try:
        return fn(*args)
    except Exception as err:
        sendable = _sendable(err)
        if sendable is err:
            raise
        raise sendable from None


class _Pool:
    """A process pool that maps tasks in order with a bounded number in flight, and on any
    failure (Ctrl-C included) cancels what is queued and waits for what runs before raising."""

    def __init__(self, workers: int, state: dict[str, Any]) -> None:
        self.workers = workers
        self._executor = futures.ProcessPoolExecutor(
            workers,
            mp_context=_context(),
            initializer=_init_worker,
            initargs=(os.getpid(), state),
        )

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def map(
        self,
        fn: Callable[..., Any],
        tasks: Iterator[tuple[Any, ...]],
        consume: Callable[[Any], None],
    ) -> None:
        """``consume(fn(*task))`` for every task, in the order of ``tasks``.

        ``tasks`` is iterated here (the parent's reading); if it raises, the results of the
        tasks before are consumed first, so a worker's error on an earlier record is the one
        raised, as in one process.
        """
        window = self.workers * _IN_FLIGHT_PER_WORKER
        pending: collections.deque[futures.Future[Any]] = collections.deque()
        try:
            while True:
                try:
                    task = next(tasks, None)
                except Exception:
                    while pending:
                        consume(pending.popleft().result())
                    raise
                if task is None:
                    break
                pending.append(self._submit(fn, task))
                if len(pending) >= window:
                    consume(pending.popleft().result())
            while pending:
                consume(pending.popleft().result())
        except BaseException:
            self._stop(pending)
            raise

    def _submit(self, fn: Callable[..., Any], task: tuple[Any, ...]) -> futures.Future[Any]:
        with warnings.catch_warnings():
            # Python >= 3.12 warns on any fork() of a process with threads; fork is chosen
            # only when the threads are zarr's and fsspec's, which reset in the child.
            warnings.filterwarnings("ignore", _FORK_WARNING, DeprecationWarning)
            return self._executor.submit(_call, fn, *task)

    def _stop(self, pending: collections.deque[futures.Future[Any]]) -> None:
        """Cancel the queued tasks and let the running ones end (a chunk each), so nothing
        writes to the store after this returns; a second Ctrl-C kills the workers."""
        for future in pending:
            future.cancel()
        try:
            futures.wait(pending)
        except BaseException:
            self._kill()
            raise

    def _kill(self) -> None:
        for process in list(getattr(self._executor, "_processes", {}).values()):
            process.kill()
        for process in list(getattr(self._executor, "_processes", {}).values()):
            process.join()


# --------------------------------------------------------------------------------------------
# The vocabulary pass


def _count(texts: list[str]) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    update = counts.update
    for text in texts:
        update(tokenize(text))
    return counts


def parallel_vocabulary(
    corpus: Any,
    vocab_size: int,
    workers: int,
    progress: ProgressFn | None = None,
    *,
    batch_rows: int = 2048,
) -> Vocabulary:
    """``corpus.vocabulary(vocab_size, progress)``, its words counted by ``workers`` processes.

    The same vocabulary as one process (counts are added; ties are broken by the token). A
    corpus whose words workers cannot count (see :func:`tokenizes_in_workers`) is counted in
    this process. ``progress(VOCAB_STAGE, n)`` is called as batches are counted and at the end.
    Each task counts ``batch_rows`` reviews: the parent adds every task's counts, in Python, so
    fewer, larger batches cost it less.
    """
    if workers < 2 or not tokenizes_in_workers(corpus):
        return corpus.vocabulary(vocab_size, progress=progress)
    counts: collections.Counter[str] = collections.Counter()
    done = 0

    def add(batch: tuple[int, collections.Counter[str]]) -> None:
        nonlocal done
        n, batch_counts = batch
        counts.update(batch_counts)
        done += n
        if progress is not None:
            progress(VOCAB_STAGE, done)

    texts = (text for text, _ in corpus.reviews("train"))
    tasks = ((batch,) for batch in _batches(texts, batch_rows))
    with _Pool(workers, {}) as pool:
        pool.map(_count_task, tasks, add)
    if progress is not None and done == 0:
        progress(VOCAB_STAGE, 0)
    return Vocabulary.from_counts(counts, vocab_size)


def _count_task(texts: list[str]) -> tuple[int, collections.Counter[str]]:
    return len(texts), _count(texts)


# --------------------------------------------------------------------------------------------
# The encoding pass


@dataclass(frozen=True)
class _Target:
    """Where and how workers write chunks of ``tokens`` (sent to each worker once)."""

    path: str
    storage_options: Mapping[str, Any] | None
    array_config: Mapping[str, Any]
    max_len: int
    padding: str
    truncating: str
    chunk_rows: int


class ParallelWriter:
    """Writes the splits of ``corpus`` into a store's arrays with ``workers`` processes.

    A context manager: the processes live from ``__enter__`` to ``__exit__``. Made by
    :func:`~textvae.data.store.build_store` after it created the store (and its ``vocab``).

    Parameters
    ----------
    corpus
        The corpus (or any source with ``reviews`` / ``encoded``) being ingested.
    vocab
        The store's vocabulary.
    workers
        Number of processes (>= 2).
    path, storage_options
        The store's location, opened by every worker.
    array_config
        zarr's runtime array config of the build (``write_empty_chunks``).
    max_len, padding, truncating, chunk_rows
        As given to :func:`~textvae.data.store.build_store`.
    """

    def __init__(
        self,
        corpus: Any,
        vocab: Vocabulary,
        *,
        workers: int,
        path: str,
        storage_options: Mapping[str, Any] | None,
        array_config: Mapping[str, Any],
        max_len: int,
        padding: str,
        truncating: str,
        chunk_rows: int,
    ) -> None:
        self.corpus = corpus
        self.vocab = vocab
        self.workers = workers
        self.chunk_rows = chunk_rows
        self._texts = tokenizes_in_workers(corpus)
        self._raw = _encodes_raw_in_workers(corpus)
        self._target = _Target(
            path,
            dict(storage_options) if storage_options else None,
            dict(array_config),
            max_len,
            padding,
            truncating,
            chunk_rows,
        )
        self._pool: _Pool | None = None

    def __enter__(self) -> ParallelWriter:
        state = {
            "target": self._target,
            "vocab": self.vocab if self._texts or self._raw else None,
            "corpus": self.corpus if self._raw else None,
        }
        self._pool = _Pool(self.workers, state).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.__exit__(*exc)
            self._pool = None

    def write_split(
        self,
        split: str,
        tokens: zarr.Array,
        labels: zarr.Array | None,
        lengths: zarr.Array,
        progress: ProgressFn | None = None,
    ) -> None:
        """Encode ``split`` into the empty arrays ``tokens``, ``labels`` (None: the store keeps
        no labels) and ``lengths``, as one process's ``_write_split`` would.

        Workers write ``tokens`` chunk by chunk; this process writes ``labels`` and ``lengths``
        in row order and finally gives ``tokens`` its shape.
        ``progress(split, rows_done)`` is called as chunks are done, in row order.
        """
        if self._pool is None:
            raise RuntimeError("ParallelWriter.write_split outside its `with` block")
        chunk_rows = self.chunk_rows
        # labels and lengths are written a whole chunk of theirs at a time (16 chunks of rows
        # by default): a chunk's bytes are its values and the fill value past the array's end,
        # however many writes built it, and one write per chunk spares the parent (which also
        # reads the corpus) most of zarr's work.
        sizes = [lengths.chunks[0]] + ([labels.chunks[0]] if labels is not None else [])
        span = max(sizes)
        buffer_lengths = np.empty(span, dtype=lengths.dtype)
        buffer_labels = np.empty(span, dtype=labels.dtype) if labels is not None else None
        n_rows = 0  # rows done (chunks of tokens written)
        n_written = 0  # rows of labels and lengths written

        def write_vectors() -> None:
            nonlocal n_written
            held = n_rows - n_written
            lengths.resize((n_rows,))
            lengths[n_written:n_rows] = buffer_lengths[:held]
            if labels is not None:
                labels.resize((n_rows,))
                labels[n_written:n_rows] = buffer_labels[:held]
            n_written = n_rows

        def flush(result: tuple[list[Any], list[int]]) -> None:
            nonlocal n_rows
            chunk_labels, chunk_lengths = result
            at = n_rows - n_written
            for k in range(len(chunk_lengths)):
                if at == span:
                    write_vectors()
                    at = 0
                buffer_lengths[at] = chunk_lengths[k]
                if buffer_labels is not None:
                    buffer_labels[at] = chunk_labels[k]  # the conversion one process makes
                at += 1
                n_rows += 1
            if progress is not None:
                progress(split, n_rows)

        if self._texts:
            records: Iterable[Any] = self.corpus.reviews(split)
            encode = _encode_texts_task
        elif self._raw:
            self.corpus._check_vocab(self.vocab)
            records = self.corpus.raw_reviews(split)
            encode = _encode_raw_task
        else:
            records = self.corpus.encoded(split, self.vocab)
            encode = _write_ids_task
        tasks = (
            (split, i * chunk_rows, batch) for i, batch in enumerate(_batches(records, chunk_rows))
        )
        self._pool.map(encode, tasks, flush)
        if n_rows > n_written:
            write_vectors()
        tokens.resize((n_rows, tokens.shape[1]))


def _tokens_view(split: str, end: int) -> zarr.Array:
    """The worker's handle on ``<split>/tokens`` with ``end`` rows: the parent sets the real
    shape at the end, so the shape is widened here in memory only (no metadata is written)."""
    target: _Target = _STATE["target"]
    opened = _STATE.get(("tokens", split))
    if opened is None:
        opened = zarr.open_array(
            store=target.path,
            path=f"{split}/tokens",
            mode="r+",
            storage_options=dict(target.storage_options) if target.storage_options else None,
            config=dict(target.array_config),
        )
        _STATE[("tokens", split)] = opened
    inner = opened.async_array
    metadata = inner.metadata.update_shape((end, target.max_len))
    return zarr.Array(zarr.AsyncArray(metadata, inner.store_path, inner.config))


def _write_rows(
    split: str, start: int, encoded: list[tuple[list[int], Any]]
) -> tuple[list[Any], list[int]]:
    """Pad ``encoded`` rows into one chunk of ``tokens`` starting at row ``start``; return
    (labels, lengths) for the parent."""
    target: _Target = _STATE["target"]
    view = _tokens_view(split, start + len(encoded))
    block = np.full((len(encoded), target.max_len), view.fill_value, dtype=view.dtype)
    lengths = []
    labels = []
    for row, (ids, label) in zip(block, encoded, strict=True):
        pad_row(ids, target.max_len, target.padding, target.truncating, row)
        lengths.append(len(ids))
        labels.append(label)
    view[start : start + len(encoded)] = block
    return labels, lengths


def _encode_texts_task(
    split: str, start: int, reviews: list[tuple[str, Any]]
) -> tuple[list[Any], list[int]]:
    vocab: Vocabulary = _STATE["vocab"]
    encode = vocab.encode
    return _write_rows(split, start, [(encode(tokenize(text)), label) for text, label in reviews])


def _write_ids_task(
    split: str, start: int, encoded: list[tuple[list[int], Any]]
) -> tuple[list[Any], list[int]]:
    return _write_rows(split, start, encoded)


def _encode_raw_task(
    split: str, start: int, raw: list[tuple[Any, Any]]
) -> tuple[list[Any], list[int]]:
    encoded = _STATE["corpus"].encode_raw(split, start, raw, _STATE["vocab"])
    return _write_rows(split, start, encoded)
