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
  with the build's :class:`~textvae.data.chunk_encoder.ChunkEncoder` (:func:`encode_chunk`):
  the write loop is :mod:`textvae.data.ingest`'s, the same with one process or several.

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

The two passes run on an *engine* (:data:`Engines`): this module's :class:`Pool`, or a Dask
cluster (:mod:`textvae.data.dask_ingest`, ``scheduler=``). Both run the same per-partition
functions, :func:`count_words` and :func:`encode_chunk`, so the store is the same whichever
engine writes it; :func:`engines` picks one for a build.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any, Protocol

from textvae._checks import int_at_least
from textvae.data.vocab import Vocabulary, tokenize
from textvae.errors import InvalidArgumentError
from textvae.progress import VOCAB_STAGE, ProgressFn

__all__ = [
    "IN_FLIGHT_PER_WORKER",
    "LOCAL_SCHEDULER",
    "Engine",
    "Engines",
    "Pool",
    "batches",
    "check_scheduler",
    "check_workers",
    "count_words",
    "default_workers",
    "encode_chunk",
    "engines",
    "map_in_order",
    "parallel_vocabulary",
]

#: Tasks in flight per worker: one being worked on, one queued, so no worker waits for the
#: parent between tasks, and at most ``2 x workers`` chunks of reviews are held in memory.
IN_FLIGHT_PER_WORKER = 2
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


#: ``scheduler=`` value that starts Dask's own local processes (``workers`` of them).
LOCAL_SCHEDULER = "local"


def check_scheduler(scheduler: Any, workers: Any) -> str | None:
    """``scheduler`` checked: None (this module's processes), :data:`LOCAL_SCHEDULER` or a Dask
    scheduler's address (``tcp://host:8786``), with which ``workers`` must be None or 1: the
    cluster's own workers run the ingest.

    Raises
    ------
    InvalidArgumentError
        Not a string without spaces, or ``workers`` given with an address.
    """
    if scheduler is None:
        return None
    if not isinstance(scheduler, str) or not scheduler or scheduler.split() != [scheduler]:
        raise InvalidArgumentError(
            f"`scheduler` must be a Dask scheduler's address (e.g. tcp://10.0.0.5:8786) or "
            f"{LOCAL_SCHEDULER!r}. Received: scheduler={scheduler!r}"
        )
    if scheduler != LOCAL_SCHEDULER and workers not in (None, 1):
        raise InvalidArgumentError(
            f"`workers` counts local processes: with scheduler={scheduler!r} the cluster's own "
            f"workers run the ingest; leave `workers` unset, or use scheduler={LOCAL_SCHEDULER!r}"
            f". Received: workers={workers!r}"
        )
    return scheduler


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
# Engines


class Engine(Protocol):
    """One pass's tasks on some workers (:class:`Pool`, or a Dask cluster's)."""

    def run(
        self,
        fn: Callable[..., Any],
        tasks: Iterator[tuple[Any, ...]],
        consume: Callable[[Any], None],
    ) -> None:
        """``consume(fn(state, *task))`` for every task, in the order of ``tasks`` (iterated
        here), ``state`` being the dict the engine was opened with; at most ``2 x workers``
        tasks in flight. On any failure, queued tasks are cancelled and running ones awaited
        before it raises: nothing writes to the store once it has returned or raised."""
        ...


#: ``engines(state)``: a context manager giving the :class:`Engine` of one pass, its tasks
#: sharing ``state`` (sent to each worker once).
Engines = Callable[[dict[str, Any]], contextlib.AbstractContextManager[Engine]]


def map_in_order(
    submit: Callable[[tuple[Any, ...]], Any],
    tasks: Iterator[tuple[Any, ...]],
    consume: Callable[[Any], None],
    window: int,
    stop: Callable[[collections.deque[Any]], None],
) -> None:
    """``consume(submit(task).result())`` for every task, in order, at most ``window`` futures
    in flight: the loop of every :class:`Engine`.

    ``tasks`` is iterated here (the parent's reading); if it raises, the results of the tasks
    before are consumed first, so a worker's error on an earlier record is the one raised, as in
    one process. On any failure (Ctrl-C included) ``stop(pending)`` gets the futures not
    consumed before the error is raised.
    """
    pending: collections.deque[Any] = collections.deque()
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
            pending.append(submit(task))
            if len(pending) >= window:
                consume(pending.popleft().result())
        while pending:
            consume(pending.popleft().result())
    except BaseException:
        stop(pending)
        raise


@contextlib.contextmanager
def engines(workers: int, scheduler: str | None = None) -> Iterator[Engines | None]:
    """The engines of one build: None (``workers=1``, no scheduler: everything in this
    process), a :class:`Pool` per pass, or a Dask cluster for the whole build (connected here,
    closed on exit; importing Dask only then)."""
    if scheduler is None:
        yield functools.partial(Pool, workers) if workers > 1 else None
        return
    from textvae.data.dask_ingest import dask_engines

    with dask_engines(scheduler, workers) as opened:
        yield opened


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
        # The server imports this module and the chunk encoder (which workers run) once; each
        # worker is then a fork of it.
        context.set_forkserver_preload([__name__, "textvae.data.chunk_encoder"])
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


def _with_state(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(_STATE, *args)


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

    def run(
        self,
        fn: Callable[..., Any],
        tasks: Iterator[tuple[Any, ...]],
        consume: Callable[[Any], None],
    ) -> None:
        """:meth:`Engine.run`: ``fn(state, *task)`` in the workers, ``state`` the pool's."""
        self.map(functools.partial(_with_state, fn), tasks, consume)

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
        window = self.workers * IN_FLIGHT_PER_WORKER
        map_in_order(functools.partial(self._submit, fn), tasks, consume, window, self._stop)

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
# The two passes: the per-partition functions every engine runs


def count_words(state: dict[str, Any], texts: list[str]) -> tuple[int, collections.Counter[str]]:
    """In a worker, the vocabulary pass: how many ``texts`` and the count of each token."""
    counts: collections.Counter[str] = collections.Counter()
    update = counts.update
    for text in texts:
        update(tokenize(text))
    return len(texts), counts


def encode_chunk(state: dict[str, Any], split: str, start: int, records: list[Any]) -> Any:
    """In a worker, the encoding pass: the build's :class:`~textvae.data.chunk_encoder.ChunkEncoder`
    (``state["encoder"]``, sent once) encodes, pads and writes the chunk of rows from
    ``start``; returns its (labels, lengths)."""
    return state["encoder"](split, start, records)


def parallel_vocabulary(
    corpus: Any,
    vocab_size: int,
    engines: Engines | None,
    progress: ProgressFn | None = None,
    *,
    batch_rows: int = 2048,
) -> Vocabulary:
    """``corpus.vocabulary(vocab_size, progress)``, its words counted by ``engines``' workers.

    The same vocabulary as one process (counts are added; ties are broken by the token). A
    corpus whose words workers may not count (``corpus.tokenizes_in_workers()`` is false), or
    ``engines=None``, is counted in this process. ``progress(VOCAB_STAGE, n)`` is called as
    batches are counted and at the end. Each task counts ``batch_rows`` reviews: the parent
    adds every task's counts, in Python, so fewer, larger batches cost it less.
    """
    asks = getattr(corpus, "tokenizes_in_workers", None)
    if engines is None or not (callable(asks) and asks()):
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
    with engines({}) as engine:
        engine.run(count_words, tasks, add)
    if progress is not None and done == 0:
        progress(VOCAB_STAGE, 0)
    return Vocabulary.from_counts(counts, vocab_size)
