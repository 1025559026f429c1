"""Ingest on Dask: the two passes of :mod:`textvae.data.parallel` on a Dask cluster's workers.

``build_store(..., scheduler=...)`` (``textvae-ingest --scheduler ADDRESS``, the ``dask``
extra) runs the tasks that the process pool runs, :func:`~textvae.data.parallel.count_words`
and :func:`~textvae.data.parallel.encode_chunk`, on Dask's workers instead:
``scheduler="local"`` starts ``workers`` local Dask processes for the build (one thread each),
an address (``tcp://10.0.0.5:8786``) uses a running cluster and its workers. Everything else is
the build's as with the pool: this process reads the corpus in order, takes the store's lock,
adds the word counts, writes ``vocab``, ``labels``, ``lengths`` and ``complete``; every chunk of
``tokens`` is written by exactly one task, so the store is byte for byte the one of one process.

What a cluster adds, and how the build answers:

- **a worker dies** (killed, out of memory) while it runs a task: Dask runs the task again on
  another worker. A task encodes and writes one whole chunk from its records alone, so a rerun
  writes the same bytes and the build goes on. A task that kills a worker every time fails the
  build once Dask gives up on it (``distributed.scheduler.allowed-failures``, 3 by default):
  :class:`~textvae.errors.ClusterError`;
- **the scheduler cannot be reached or goes away**:
  :class:`~textvae.errors.ClusterUnavailableError`;
- **a task raises**: its error is raised here, as with one process (a corpus error names the
  record); a module that a worker cannot import (textvae itself, a ``--tokenizer``) is a
  :class:`~textvae.errors.ClusterError` saying what to install.

On any failure the queued tasks are cancelled and every worker is told that the build stopped:
a task of it that starts afterwards writes nothing, and the running ones are awaited, so no
chunk is written once the build's cleanup runs. A lost scheduler cannot relay that: its workers
close, finishing at most the task each runs, so the build waits twice the longest task seen
(:func:`_grace`) before its cleanup. The lock is the parent's and released as always.

A cluster's workers have their own environment and file systems: they must reach the store
(``s3://``, or a file system they share with this machine) with their own credentials or the
build's ``storage_options``, and have the same textvae installed. Dask is imported only here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from textvae._startup import import_extra
from textvae.data.location import one_line
from textvae.data.parallel import IN_FLIGHT_PER_WORKER, LOCAL_SCHEDULER, Engines, map_in_order
from textvae.errors import ClusterError, ClusterUnavailableError, TextVAEError

__all__ = ["DaskEngine", "dask_engines", "dask_setup"]

#: How long connecting to a scheduler, and waiting for its first worker, may take.
CONNECT_TIMEOUT_S = 30.0
#: How often a worker asked to stop a build looks whether its tasks have ended.
_STOP_POLL_S = 0.02
#: The wait for the tasks still running when the scheduler is lost (:func:`_grace`): at
#: least, at most, and before any task has ended (a chunk of 1,024 IMDB reviews, its worker's
#: first, took about 0.5 s here).
GRACE_S = (1.0, 30.0, 5.0)


@contextlib.contextmanager
def dask_engines(scheduler: str, workers: int) -> Iterator[Engines]:
    """The engines of one build on Dask: a client of the cluster at ``scheduler`` (or of a
    ``LocalCluster`` of ``workers`` processes, one thread each, for ``"local"``), closed on exit.

    Raises
    ------
    MissingExtraError
        Dask's ``distributed`` is not installed (the ``dask`` extra).
    ClusterUnavailableError
        The scheduler cannot be reached, or has no worker within :data:`CONNECT_TIMEOUT_S`.
    """
    distributed = import_extra("distributed", "dask", "textvae-ingest --scheduler")
    quiet = _QuietReconnect()
    logger = logging.getLogger("distributed.client")
    logger.addFilter(quiet)
    try:
        with _client(distributed, scheduler, workers) as client:
            try:
                yield functools.partial(DaskEngine, client, scheduler)
            except BaseException:
                # The build fails with one line of its own (or "interrupted"): what Dask and
                # tornado log while the cluster is torn down under it is noise, tracebacks of
                # callbacks cancelled mid-shutdown included (seen under load on Ctrl-C).
                _silence_teardown()
                raise
    finally:
        logger.removeFilter(quiet)
        _silence_teardown(undo=True)


_TEARDOWN_LOGGERS = ("distributed", "tornado")
_saved_levels: dict[str, int] = {}


def _silence_teardown(*, undo: bool = False) -> None:
    """Raise (or restore) the level of Dask's and tornado's loggers in this process."""
    for name in _TEARDOWN_LOGGERS:
        log = logging.getLogger(name)
        if undo:
            if name in _saved_levels:
                log.setLevel(_saved_levels.pop(name))
        elif name not in _saved_levels:
            _saved_levels[name] = log.level
            log.setLevel(logging.CRITICAL + 1)


class _QuietReconnect(logging.Filter):
    """Drops the traceback that Dask's client logs when its attempt to reconnect to a lost
    scheduler is cancelled as it closes: the build raises one error that says so."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


@contextlib.contextmanager
def _client(distributed: ModuleType, scheduler: str, workers: int) -> Iterator[Any]:
    if scheduler == LOCAL_SCHEDULER:
        # the scheduler's HTTP server (and dashboard, with bokeh) on a free port: its default,
        # 8787, may be taken (by another cluster), which is a warning and then a failure
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                preload=[__name__],  # dask_setup: the workers leave Ctrl-C to this process
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterUnavailableError(
            f"cannot reach the Dask scheduler at {scheduler} ({one_line(err)}): start it "
            f"(`dask scheduler`) or correct the address, or pass --scheduler {LOCAL_SCHEDULER}"
        ) from err
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError as err:
            raise ClusterUnavailableError(
                f"the Dask scheduler at {scheduler} has no worker after {CONNECT_TIMEOUT_S:g} s:"
                f" start some (`dask worker {scheduler}`) and run `textvae-ingest` again"
            ) from err
        yield client


class DaskEngine:
    """One pass on a Dask cluster: an :class:`~textvae.data.parallel.Engine`.

    ``state`` is sent once, as the result of a task that every task of the pass depends on
    (a worker fetches it once from another), rather than scattered: should every worker that
    holds it die, Dask computes it again, where scattered data would be lost. Tasks are
    submitted in order with at most ``2 x`` the cluster's threads in flight, and named
    ``<function>-<build>-<n>`` on the dashboard.
    """

    def __init__(self, client: Any, scheduler: str, state: dict[str, Any]) -> None:
        self.client = client
        self.scheduler = scheduler
        self.state = state
        self._build = f"textvae-{uuid.uuid4().hex[:12]}"
        self._shared: Any = None
        self._numbers = itertools.count()
        self._longest = 0.0  # seconds of the longest task done, as its worker measured it

    def __enter__(self) -> DaskEngine:
        try:
            self._shared = self.client.submit(_state, self.state, key=f"state-{self._build}")
        except Exception as err:
            raise self._cluster_error(err) or err from err
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._shared is not None and self.client.status == "running":
            self._shared.release()

    def run(
        self,
        fn: Callable[..., Any],
        tasks: Iterator[tuple[Any, ...]],
        consume: Callable[[Any], None],
    ) -> None:
        """:meth:`~textvae.data.parallel.Engine.run` on the cluster."""
        window = max(1, sum(self.client.nthreads().values())) * IN_FLIGHT_PER_WORKER

        def submit(task: tuple[Any, ...]) -> Any:
            key = f"{fn.__name__}-{self._build}-{next(self._numbers)}"
            return self.client.submit(
                _run_task, self._build, fn, self._shared, *task, key=key, pure=False
            )

        def take(timed: tuple[float, Any]) -> None:
            self._longest = max(self._longest, timed[0])
            consume(timed[1])

        try:
            map_in_order(submit, tasks, take, window, self._stop)
        except Exception as err:
            replaced = self._cluster_error(err)
            if replaced is None:
                raise
            raise replaced from err

    def _stop(self, pending: collections.deque[Any]) -> None:
        """Cancel the queued tasks, and have every worker refuse this build's tasks from now on
        and wait for its running ones. Once the scheduler is gone nobody can be asked: wait for
        the tasks that run to end (see :func:`_grace`)."""
        if self.client.status != "running":
            time.sleep(_grace(self._longest))
            return
        with contextlib.suppress(OSError, TimeoutError):
            self.client.cancel(list(pending))
            self.client.run(_stop_build, self._build, on_error="ignore")

    def _cluster_error(self, err: BaseException) -> ClusterError | None:
        """The error to raise for ``err`` (None: ``err`` itself, a task's own error)."""
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError
        from distributed.comm import CommClosedError

        again = "the store was not completed; run `textvae-ingest` again"
        if isinstance(err, TextVAEError):
            return None
        reason = getattr(err, "reason", None) or one_line(err) or type(err).__name__
        if self.client.status != "running" or isinstance(err, CommClosedError):
            return ClusterUnavailableError(
                f"lost the Dask scheduler at {self.scheduler} during the ingest ({reason}): "
                f"{again} once it is back (or with --scheduler {LOCAL_SCHEDULER})"
            )
        if isinstance(err, FutureCancelledError):
            return ClusterError(
                f"the Dask cluster at {self.scheduler} cancelled the ingest's task {err.key} "
                f"({reason}): {again}, with no other client cancelling its tasks"
            )
        if isinstance(err, KilledWorker):
            return ClusterError(
                f"Dask workers kept dying while running {err.task} ({one_line(err)}): {again} "
                "once the workers have more memory or are no longer being stopped"
            )
        if isinstance(err, ImportError):
            return ClusterError(
                f"a Dask worker cannot import {err.name or 'a module'} ({one_line(err)}): "
                "install the same textvae (and the module of any --tokenizer) on every worker; "
                f"{again}"
            )
        return None


# --------------------------------------------------------------------------------------------
# In a worker


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker of ``scheduler="local"`` as it starts: ignore
    Ctrl-C, which a terminal sends to the whole process group. The build then stops its tasks
    and closes the cluster, as with the pool's workers; a worker that died of it would finish
    its task at exit, after the partial store was removed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


#: Builds whose tasks run in this worker now (how many each), and builds stopped.
_RUNNING: collections.Counter[str] = collections.Counter()
_STOPPED: set[str] = set()
_GUARD = threading.Lock()


def _state(state: dict[str, Any]) -> dict[str, Any]:
    """The pass's state, as a task's result (see :class:`DaskEngine`)."""
    return state


def _grace(longest: float) -> float:
    """Seconds to let the running tasks of a build end once its scheduler is lost: twice the
    longest task seen, within :data:`GRACE_S` (its third value when none has ended yet)."""
    low, high, unknown = GRACE_S
    return min(max(2 * longest, low), high) if longest > 0 else unknown


def _run_task(
    build: str, fn: Callable[..., Any], state: dict[str, Any], *task: Any
) -> tuple[float, Any]:
    """``(seconds, fn(state, *task))``, unless ``build`` was stopped (then nothing is
    written)."""
    with _GUARD:
        if build in _STOPPED:
            return 0.0, None
        _RUNNING[build] += 1
    start = time.perf_counter()
    try:
        result = fn(state, *task)
        return time.perf_counter() - start, result
    finally:
        with _GUARD:
            _RUNNING[build] -= 1
            if _RUNNING[build] <= 0:
                del _RUNNING[build]


async def _stop_build(build: str) -> None:
    """On every worker (``Client.run``): no task of ``build`` starts from now on, and this
    returns once its running ones have ended."""
    with _GUARD:
        _STOPPED.add(build)
    while True:
        with _GUARD:
            if _RUNNING[build] == 0:
                return
        await asyncio.sleep(_STOP_POLL_S)
