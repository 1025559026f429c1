"""Parallel ingest: the process pool that counts words and encodes chunks of a corpus.

:func:`~textvae.data.ingest.build_store` with ``workers > 1`` uses this module; ``workers=1``
never starts a process. Measured on IMDB (README "textvae-ingest"), a single process spends
about 40% of its time in the tokenizer's regex, 30% looking up ids, 10% counting words and 15%
reading and parsing the corpus (gzip, JSON, CSV or files), the rest padding and compressing
chunks. So:

- **the parent reads**: it alone iterates the corpus in source order, exactly as one process
  does, so every reader error is the same error at the same record;
- **workers do the rest**: in the vocabulary pass each task counts the tokens of a batch of
  reviews and the parent adds the counts (the vocabulary is the one a single process builds:
  :meth:`~textvae.data.vocab.Vocabulary.from_counts` does not depend on the order of counting);
  in the encoding pass each task is one chunk of rows, which a worker encodes, pads and writes
  with the build's :class:`~textvae.data.ingest.ChunkEncoder` (:func:`run_encoder`): the write
  loop is :mod:`textvae.data.ingest`'s, the same with one process or several.

A corpus says itself whether workers may tokenise its texts
(:meth:`~textvae.data.corpus.Corpus.tokenizes_in_workers`) or encode its raw records
(:meth:`~textvae.data.corpus.Corpus.encodes_raw_in_workers`); otherwise the parent encodes and
workers still pad, compress and write the chunks. Memory stays bounded: at most
``2 x workers`` tasks (one chunk of reviews each) are in flight.

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
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any

from textvae._checks import int_at_least
from textvae.data.vocab import Vocabulary, tokenize
from textvae.progress import VOCAB_STAGE, ProgressFn

__all__ = [
    "Pool",
    "batches",
    "check_workers",
    "default_workers",
    "parallel_vocabulary",
    "run_encoder",
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


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
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
        # The server imports this module and the ingest (whose ChunkEncoder workers run) once;
        # each worker is then a fork of it.
        context.set_forkserver_preload([__name__, "textvae.data.ingest"])
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


def _init_worker(parent_pid: int, state: dict[str, Any], environ: dict[str, str]) -> None:
    # A forkserver's workers inherit the environment the server started with, which may be
    # older than the parent's (credentials, AWS_ENDPOINT_URL set since): take the parent's.
    os.environ.clear()
    os.environ.update(environ)
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


class Pool:
    """A process pool that maps tasks in order with a bounded number in flight, and on any
    failure (Ctrl-C included) cancels what is queued and waits for what runs before raising."""

    def __init__(self, workers: int, state: dict[str, Any]) -> None:
        self.workers = workers
        self._executor = futures.ProcessPoolExecutor(
            workers,
            mp_context=_context(),
            initializer=_init_worker,
            initargs=(os.getpid(), state, dict(os.environ)),
        )

    def __enter__(self) -> Pool:
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
    corpus whose words workers may not count (``corpus.tokenizes_in_workers()`` is false) is
    counted in
    this process. ``progress(VOCAB_STAGE, n)`` is called as batches are counted and at the end.
    Each task counts ``batch_rows`` reviews: the parent adds every task's counts, in Python, so
    fewer, larger batches cost it less.
    """
    asks = getattr(corpus, "tokenizes_in_workers", None)
    if workers < 2 or not (callable(asks) and asks()):
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
    tasks = ((batch,) for batch in batches(texts, batch_rows))
    with Pool(workers, {}) as pool:
        pool.map(_count_task, tasks, add)
    if progress is not None and done == 0:
        progress(VOCAB_STAGE, 0)
    return Vocabulary.from_counts(counts, vocab_size)


def _count_task(texts: list[str]) -> tuple[int, collections.Counter[str]]:
    return len(texts), _count(texts)


def run_encoder(split: str, start: int, records: list[Any]) -> Any:
    """In a worker: the build's :class:`~textvae.data.ingest.ChunkEncoder` (sent once, as the
    pool's state ``"encoder"``) on one chunk of records."""
    return _STATE["encoder"](split, start, records)
